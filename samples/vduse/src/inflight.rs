// SPDX-License-Identifier: GPL-2.0
//! The reconnect ("in-flight") log: a small file, mmapped shared, that survives the daemon.
//!
//! The kernel keeps a VDUSE device, its rings and its IOTLB alive when the daemon dies, and
//! requeues unanswered control messages for the next opener, but it does not know which
//! requests the daemon had taken from the avail ring. This log records that, the way QEMU's
//! libvduse and DPDK do it:
//!
//! * taking head `h` from the avail ring sets `desc[h].inflight = 1` (with a sequence counter
//!   so that resubmission keeps the original order);
//! * completing `h` first records `last_batch_head = h`, then publishes the used element and
//!   the used index in guest memory, then clears `desc[h].inflight` and stores the new used
//!   index in the log.
//!
//! After a crash, the used index in guest memory is the truth about completions. If it differs
//! from the log's `used_idx`, the daemon died between publishing and clearing: `last_batch_head`
//! was completed. Every head still marked in flight was taken but not completed and is
//! resubmitted; and `next_avail = used_idx + in-flight count` (every head taken is either used
//! or in flight), so a head taken from the ring but not yet marked is simply taken again.
//!
//! Layout (native endian, the file never leaves the host): a 64-byte header, then per queue
//! a 32-byte queue header and `queue_size` 16-byte descriptor slots, padded to 64 bytes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// The first 8 bytes of a log file.
pub const MAGIC: [u8; 8] = *b"VDUSEBLK";
/// The layout version, stored after [`MAGIC`]; [`InflightLog::open`] refuses any other.
pub const VERSION: u32 = 1;
const HDR_SIZE: usize = 64;
const VQ_HDR_SIZE: usize = 32;
const DESC_SIZE: usize = 16;

/// What the log records about the device it belongs to; checked on re-attach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogHeader {
    /// Number of virtqueues.
    pub num_queues: u32,
    /// Size of every virtqueue, in descriptors.
    pub queue_size: u32,
    /// The VDUSE API version the device was created with.
    pub api_version: u32,
    /// The VDUSE features enabled for the device (bits `1 << VDUSE_F_*`).
    pub vduse_features: u64,
    /// The virtio features the device offers.
    pub device_features: u64,
    /// The device's identity value (`DeviceSpec::identity`; for vduse-blk, the disk capacity
    /// in bytes).
    pub capacity: u64,
}

/// Per-queue recovery result.
#[derive(Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The avail ring index to resume taking heads at (used index + heads in flight).
    pub next_avail: u16,
    /// The used ring index to resume completing at (the used index in guest memory).
    pub next_used: u16,
    /// Heads to resubmit, oldest first.
    pub resubmit: Vec<u16>,
    /// The head whose completion was published to the used ring just before the crash
    /// (found completed, so not resubmitted).
    pub completed_at_crash: Option<u16>,
}

/// Size in bytes of one queue's area of the log: the queue header and `queue_size`
/// descriptor slots, padded to 64 bytes.
pub fn vq_area_size(queue_size: u32) -> usize {
    (VQ_HDR_SIZE + DESC_SIZE * queue_size as usize).div_ceil(64) * 64
}

/// Size in bytes of the whole log file: the header and `num_queues` queue areas.
pub fn log_size(num_queues: u32, queue_size: u32) -> usize {
    HDR_SIZE + num_queues as usize * vq_area_size(queue_size)
}

/// An open reconnect log, mapped shared; each queue's area is written by one thread at a time.
pub struct InflightLog {
    base: *mut u8,
    len: usize,
    hdr: LogHeader,
    _file: File,
}

// SAFETY: the mapping is shared memory accessed only through atomics; each queue's area is
// written by one thread at a time.
unsafe impl Send for InflightLog {}
// SAFETY: see above.
unsafe impl Sync for InflightLog {}

impl std::fmt::Debug for InflightLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InflightLog")
            .field("header", &self.hdr)
            .finish()
    }
}

impl Drop for InflightLog {
    fn drop(&mut self) {
        // SAFETY: we own this mapping.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn map(file: &File, len: usize) -> io::Result<*mut u8> {
    // SAFETY: mapping a file we opened, with a length we checked against its size.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

impl InflightLog {
    /// Create (or overwrite) the log for a new device.
    pub fn create(path: &Path, hdr: LogHeader) -> io::Result<Arc<Self>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        let len = log_size(hdr.num_queues, hdr.queue_size);
        file.set_len(len as u64)?;
        let base = map(&file, len)?;
        let log = InflightLog {
            base,
            len,
            hdr,
            _file: file,
        };
        // SAFETY: the header lies inside the mapping; nothing else uses it yet.
        unsafe {
            let b = log.base;
            std::ptr::copy_nonoverlapping(MAGIC.as_ptr(), b, 8);
            (b.add(8) as *mut u32).write(VERSION);
            (b.add(12) as *mut u32).write(hdr.num_queues);
            (b.add(16) as *mut u32).write(hdr.queue_size);
            (b.add(20) as *mut u32).write(hdr.api_version);
            (b.add(24) as *mut u64).write(hdr.vduse_features);
            (b.add(32) as *mut u64).write(hdr.device_features);
            (b.add(40) as *mut u64).write(hdr.capacity);
        }
        Ok(Arc::new(log))
    }

    /// Open an existing log and decode its header.
    pub fn open(path: &Path) -> io::Result<Arc<Self>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let flen = file.metadata()?.len() as usize;
        let bad = |m: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {m}", path.display()),
            )
        };
        if flen < HDR_SIZE {
            return Err(bad("too short for a vduse-blk reconnect log"));
        }
        let base = map(&file, flen)?;
        let mut log = InflightLog {
            base,
            len: flen,
            hdr: LogHeader::default(),
            _file: file,
        };
        // SAFETY: the header lies inside the mapping.
        let hdr = unsafe {
            let b = log.base;
            let mut magic = [0u8; 8];
            std::ptr::copy_nonoverlapping(b, magic.as_mut_ptr(), 8);
            if magic != MAGIC {
                return Err(bad("bad magic"));
            }
            if (b.add(8) as *const u32).read() != VERSION {
                return Err(bad("unsupported version"));
            }
            LogHeader {
                num_queues: (b.add(12) as *const u32).read(),
                queue_size: (b.add(16) as *const u32).read(),
                api_version: (b.add(20) as *const u32).read(),
                vduse_features: (b.add(24) as *const u64).read(),
                device_features: (b.add(32) as *const u64).read(),
                capacity: (b.add(40) as *const u64).read(),
            }
        };
        if hdr.num_queues == 0
            || hdr.num_queues > 0xffff
            || hdr.queue_size == 0
            || hdr.queue_size > 32768
            || log_size(hdr.num_queues, hdr.queue_size) != flen
        {
            return Err(bad("inconsistent header"));
        }
        log.hdr = hdr;
        Ok(Arc::new(log))
    }

    /// The header written by [`InflightLog::create`] or decoded by [`InflightLog::open`].
    pub fn header(&self) -> LogHeader {
        self.hdr
    }

    fn vq_base(&self, vq: u32) -> *mut u8 {
        assert!(vq < self.hdr.num_queues);
        // SAFETY: inside the mapping (checked sizes).
        unsafe {
            self.base
                .add(HDR_SIZE + vq as usize * vq_area_size(self.hdr.queue_size))
        }
    }

    fn used_idx(&self, vq: u32) -> &AtomicU16 {
        // SAFETY: aligned location inside the mapping, only accessed atomically.
        unsafe { &*(self.vq_base(vq) as *const AtomicU16) }
    }
    fn last_batch_head(&self, vq: u32) -> &AtomicU16 {
        // SAFETY: as above.
        unsafe { &*(self.vq_base(vq).add(2) as *const AtomicU16) }
    }
    fn pending(&self, vq: u32) -> &AtomicU32 {
        // SAFETY: as above. 1 while a completion is being published.
        unsafe { &*(self.vq_base(vq).add(4) as *const AtomicU32) }
    }
    fn counter(&self, vq: u32) -> &AtomicU64 {
        // SAFETY: as above.
        unsafe { &*(self.vq_base(vq).add(8) as *const AtomicU64) }
    }
    fn desc_inflight(&self, vq: u32, head: u16) -> &AtomicU8 {
        assert!(u32::from(head) < self.hdr.queue_size);
        // SAFETY: as above.
        unsafe {
            &*(self
                .vq_base(vq)
                .add(VQ_HDR_SIZE + DESC_SIZE * head as usize) as *const AtomicU8)
        }
    }
    fn desc_counter(&self, vq: u32, head: u16) -> &AtomicU64 {
        // SAFETY: as above.
        unsafe {
            &*(self
                .vq_base(vq)
                .add(VQ_HDR_SIZE + DESC_SIZE * head as usize + 8)
                as *const AtomicU64)
        }
    }

    /// Forget everything about queue `vq` (device reset or fresh start).
    pub fn reset_vq(&self, vq: u32, used_idx: u16) {
        for h in 0..self.hdr.queue_size {
            self.desc_inflight(vq, h as u16).store(0, Ordering::Relaxed);
            self.desc_counter(vq, h as u16).store(0, Ordering::Relaxed);
        }
        self.counter(vq).store(0, Ordering::Relaxed);
        self.last_batch_head(vq).store(0, Ordering::Relaxed);
        self.pending(vq).store(0, Ordering::Relaxed);
        self.used_idx(vq).store(used_idx, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Head `head` was taken from the avail ring.
    pub fn mark_inflight(&self, vq: u32, head: u16) {
        let c = self.counter(vq).fetch_add(1, Ordering::Relaxed);
        self.desc_counter(vq, head).store(c, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.desc_inflight(vq, head).store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// About to publish the completion of `head`.
    pub fn pre_complete(&self, vq: u32, head: u16) {
        self.last_batch_head(vq).store(head, Ordering::Relaxed);
        self.pending(vq).store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// The completion of `head` is visible in the used ring, whose index is now `used_idx`.
    pub fn post_complete(&self, vq: u32, head: u16, used_idx: u16) {
        fence(Ordering::SeqCst);
        self.desc_inflight(vq, head).store(0, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.used_idx(vq).store(used_idx, Ordering::Relaxed);
        self.pending(vq).store(0, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Number of heads marked in flight.
    pub fn inflight_count(&self, vq: u32) -> usize {
        (0..self.hdr.queue_size)
            .filter(|&h| self.desc_inflight(vq, h as u16).load(Ordering::Relaxed) != 0)
            .count()
    }

    /// Reconcile the log with the used index found in guest memory after a restart.
    pub fn recover(&self, vq: u32, guest_used_idx: u16) -> Recovery {
        let mut completed_at_crash = None;
        if self.used_idx(vq).load(Ordering::Relaxed) != guest_used_idx {
            // Died after publishing the used element but before clearing the in-flight flag.
            let h = self.last_batch_head(vq).load(Ordering::Relaxed);
            if u32::from(h) < self.hdr.queue_size {
                self.desc_inflight(vq, h).store(0, Ordering::Relaxed);
                completed_at_crash = Some(h);
            }
            fence(Ordering::SeqCst);
            self.used_idx(vq).store(guest_used_idx, Ordering::Relaxed);
        }
        self.pending(vq).store(0, Ordering::Relaxed);
        let mut list: Vec<(u64, u16)> = (0..self.hdr.queue_size)
            .map(|h| h as u16)
            .filter(|&h| self.desc_inflight(vq, h).load(Ordering::Relaxed) != 0)
            .map(|h| (self.desc_counter(vq, h).load(Ordering::Relaxed), h))
            .collect();
        list.sort();
        if let Some(&(c, _)) = list.last() {
            let cur = self.counter(vq).load(Ordering::Relaxed);
            if cur <= c {
                self.counter(vq).store(c + 1, Ordering::Relaxed);
            }
        }
        fence(Ordering::SeqCst);
        Recovery {
            next_avail: guest_used_idx.wrapping_add(list.len() as u16),
            next_used: guest_used_idx,
            resubmit: list.into_iter().map(|(_, h)| h).collect(),
            completed_at_crash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("vduse-blk-test-{}-{name}", std::process::id()))
    }

    fn hdr() -> LogHeader {
        LogHeader {
            num_queues: 2,
            queue_size: 8,
            api_version: 1,
            vduse_features: 3,
            device_features: 0x3_0000_7000,
            capacity: 64 << 20,
        }
    }

    #[test]
    fn header_roundtrip_and_validation() {
        let p = tmp("hdr");
        let log = InflightLog::create(&p, hdr()).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().len() as usize,
            log_size(2, 8)
        );
        assert_eq!(log_size(2, 8), 64 + 2 * 192);
        drop(log);
        let log = InflightLog::open(&p).unwrap();
        assert_eq!(log.header(), hdr());
        drop(log);
        // A truncated or foreign file is refused.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(100).unwrap();
        assert!(InflightLog::open(&p).is_err());
        std::fs::write(&p, [0u8; 512]).unwrap();
        assert!(InflightLog::open(&p)
            .unwrap_err()
            .to_string()
            .contains("bad magic"));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn recovery_cases() {
        let p = tmp("rec");
        let log = InflightLog::create(&p, hdr()).unwrap();
        log.reset_vq(0, 10);
        log.reset_vq(1, 0);
        // vq0: take 3, 5, 1; complete 5 fully.
        for h in [3, 5, 1] {
            log.mark_inflight(0, h);
        }
        log.pre_complete(0, 5);
        log.post_complete(0, 5, 11);
        // Complete 3 but "crash" after the used index was published (guest says 12).
        log.pre_complete(0, 3);
        // vq1: one request taken, nothing completed.
        log.mark_inflight(1, 7);
        drop(log);

        let log = InflightLog::open(&p).unwrap();
        let r = log.recover(0, 12);
        assert_eq!(
            r,
            Recovery {
                next_avail: 13,
                next_used: 12,
                resubmit: vec![1],
                completed_at_crash: Some(3),
            }
        );
        let r = log.recover(1, 0);
        assert_eq!(
            r,
            Recovery {
                next_avail: 1,
                next_used: 0,
                resubmit: vec![7],
                completed_at_crash: None,
            }
        );
        // Same crash point, but the used index was *not* published: 3 is resubmitted too,
        // in the order the heads were taken.
        log.reset_vq(0, 100);
        log.mark_inflight(0, 6);
        log.mark_inflight(0, 2);
        log.pre_complete(0, 6);
        let r = log.recover(0, 100);
        assert_eq!(
            r,
            Recovery {
                next_avail: 102,
                next_used: 100,
                resubmit: vec![6, 2],
                completed_at_crash: None,
            }
        );
        // Wrapping used index.
        log.reset_vq(1, 0xffff);
        log.mark_inflight(1, 0);
        log.pre_complete(1, 0);
        log.post_complete(1, 0, 0);
        log.mark_inflight(1, 4);
        assert_eq!(log.inflight_count(1), 1);
        let r = log.recover(1, 0);
        assert_eq!(
            r,
            Recovery {
                next_avail: 1,
                next_used: 0,
                resubmit: vec![4],
                completed_at_crash: None,
            }
        );
        std::fs::remove_file(&p).unwrap();
    }
}
