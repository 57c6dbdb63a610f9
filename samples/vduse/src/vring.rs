// SPDX-License-Identifier: GPL-2.0
//! One virtqueue as a backend sees it: the split ring (`virtio_queue::Queue`) over the IOTLB
//! view of its address space, with the descriptor chains walked and checked, completions
//! recorded in the reconnect log, and the driver notified through `VDUSE_VQ_INJECT_IRQ`.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use log::{debug, info, warn};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryLoadGuard, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::chain::{walk_chain, Desc, Sg, WalkError};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::inflight::InflightLog;
use crate::memory::{Access, AddressSpace, IotlbSource, RangeError};

/// What a ring needs of its device: IOTLB lookups (to map what the rings and buffers point
/// at) and interrupts. [`Device`] is one; a test can provide another.
pub trait Transport: IotlbSource + Send + Sync {
    /// Interrupts the driver for queue `index` (`VDUSE_VQ_INJECT_IRQ`).
    ///
    /// # Errors
    ///
    /// The OS error.
    fn inject_irq(&self, index: u32) -> std::io::Result<()>;
}

impl Transport for Device {
    fn inject_irq(&self, index: u32) -> std::io::Result<()> {
        self.vq_inject_irq(index)
    }
}

/// Test hook for reconnect tests: `VDUSE_CRASH_AT=taken:N` or `published:N` makes the daemon
/// SIGKILL itself at the N-th chain of a queue, after taking it from the available ring
/// (`taken`) or after publishing its completion but before the reconnect log records that
/// (`published`): the two windows the reconnect log must cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPoint {
    Taken(u64),
    Published(u64),
}

fn crash_point() -> Option<CrashPoint> {
    static CP: std::sync::OnceLock<Option<CrashPoint>> = std::sync::OnceLock::new();
    *CP.get_or_init(|| {
        let v = std::env::var("VDUSE_CRASH_AT").ok()?;
        let (mode, n) = v.split_once(':')?;
        let n: u64 = n.parse().ok()?;
        match mode {
            "taken" => Some(CrashPoint::Taken(n)),
            "published" => Some(CrashPoint::Published(n)),
            _ => None,
        }
    })
}

fn crash_now(what: &str) {
    log::error!("VDUSE_CRASH_AT: killing myself {what}");
    // SAFETY: plain syscalls.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

/// Where a split ring lives (from `VDUSE_VQ_GET_INFO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Number of entries.
    pub num: u16,
    /// IOVA of the descriptor table.
    pub desc: u64,
    /// IOVA of the available (driver) ring.
    pub avail: u64,
    /// IOVA of the used (device) ring.
    pub used: u64,
}

impl Ring {
    /// Bytes of the descriptor table.
    pub fn desc_size(&self) -> u64 {
        16 * u64::from(self.num)
    }

    /// Bytes of the available ring: `flags`, `idx`, `ring[num]`, `used_event`.
    pub fn avail_size(&self) -> u64 {
        6 + 2 * u64::from(self.num)
    }

    /// Bytes of the used ring: `flags`, `idx`, `ring[num]` of `{id, len}`, `avail_event`.
    pub fn used_size(&self) -> u64 {
        6 + 8 * u64::from(self.num)
    }
}

/// How a queue starts serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A fresh start (`DRIVER_OK`, or `SET_VQ_READY` 1): from the kernel's avail index.
    Fresh {
        /// The index to take the next request from.
        avail_index: u16,
    },
    /// After a daemon restart: from the reconnect log (or, without one, from the used index).
    Reattach,
}

/// One descriptor chain taken from the available ring.
#[derive(Debug)]
pub struct Chain {
    /// Its head index: what [`Vring::add_used`] completes.
    pub head: u16,
    /// Its descriptors, indirect tables resolved, each range checked for the access its
    /// `write` flag says.
    pub descs: Vec<Desc>,
    /// Why the chain cannot be used (malformed, or memory the IOTLB does not map); `descs` is
    /// then empty. A device completes such a chain with length 0.
    pub error: Option<WalkError>,
}

impl Chain {
    /// The device-readable part (the descriptors before the first writable one).
    pub fn readable(&self) -> Sg {
        Sg(self
            .descs
            .iter()
            .filter(|d| !d.write)
            .map(|d| (d.addr, u64::from(d.len)))
            .collect())
    }

    /// The device-writable part.
    pub fn writable(&self) -> Sg {
        Sg(self
            .descs
            .iter()
            .filter(|d| d.write)
            .map(|d| (d.addr, u64::from(d.len)))
            .collect())
    }
}

/// A virtqueue being served.
///
/// Made by the [`crate::server::Server`] when the driver sets the queue up, and handed to the
/// backend's thread that serves it (see [`crate::server::Backend`]); given back when the queue
/// stops.
pub struct Vring {
    index: u16,
    queue: Queue,
    ring: Ring,
    space: Arc<AddressSpace>,
    dev: Arc<dyn Transport>,
    log: Option<Arc<InflightLog>>,
    resubmit: VecDeque<u16>,
    last_avail: Arc<AtomicU16>,
    kick: EventFd,
    completed: u64,
    /// Completions published since the driver was last notified.
    unsignalled: bool,
}

impl std::fmt::Debug for Vring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vring")
            .field("index", &self.index)
            .field("ring", &self.ring)
            .field("next_avail", &self.queue.next_avail())
            .field("next_used", &self.queue.next_used())
            .finish()
    }
}

/// What [`Vring::new`] needs to know about the queue.
#[derive(Clone, Copy, Debug)]
pub struct VringConfig {
    /// The queue index.
    pub index: u16,
    /// The largest ring size the device offered (`VDUSE_VQ_SETUP`).
    pub max_size: u16,
    /// The ring.
    pub ring: Ring,
    /// `VIRTIO_RING_F_EVENT_IDX` was negotiated.
    pub event_idx: bool,
    /// Where to start.
    pub start: Start,
}

impl Vring {
    /// Sets the queue up: maps its rings through `dev`'s IOTLB and works out where to resume
    /// (with [`Start::Reattach`], from `log`: the chains taken and not completed before are
    /// served again first, by [`Vring::pop`]).
    ///
    /// # Errors
    ///
    /// [`Error::Ring`] if the rings are not mapped or the configuration is invalid.
    pub fn new(
        cfg: VringConfig,
        space: Arc<AddressSpace>,
        dev: Arc<dyn Transport>,
        log: Option<Arc<InflightLog>>,
    ) -> Result<Self> {
        let VringConfig {
            index,
            max_size,
            ring,
            event_idx,
            start,
        } = cfg;
        let bad = |what: String| Error::Ring { index, what };
        for (addr, len, access) in [
            (ring.desc, ring.desc_size(), Access::Read),
            (ring.avail, ring.avail_size(), Access::Read),
            (ring.used, ring.used_size(), Access::Write),
        ] {
            space
                .ensure(dev.as_ref(), addr, len, access)
                .map_err(|e| bad(format!("ring area {addr:#x} not accessible: {e:?}")))?;
        }
        let q = |e: virtio_queue::Error| bad(format!("bad queue configuration: {e}"));
        let mut queue = Queue::new(max_size).map_err(q)?;
        queue.try_set_size(ring.num).map_err(q)?;
        queue
            .try_set_desc_table_address(GuestAddress(ring.desc))
            .map_err(q)?;
        queue
            .try_set_avail_ring_address(GuestAddress(ring.avail))
            .map_err(q)?;
        queue
            .try_set_used_ring_address(GuestAddress(ring.used))
            .map_err(q)?;
        queue.set_event_idx(event_idx);
        queue.set_ready(true);
        let used_idx: u16 = {
            let mem = space.memory();
            u16::from_le(
                mem.load(GuestAddress(ring.used + 2), Ordering::Acquire)
                    .map_err(|_| bad("used ring not readable".into()))?,
            )
        };
        let mut resubmit = VecDeque::new();
        let vq = u32::from(index);
        match start {
            Start::Fresh { avail_index } => {
                queue.set_next_avail(avail_index);
                queue.set_next_used(used_idx);
                if let Some(l) = &log {
                    l.reset_vq(vq, used_idx);
                }
            }
            Start::Reattach => match &log {
                Some(l) => {
                    let r = l.recover(vq, used_idx);
                    if let Some(h) = r.completed_at_crash {
                        info!("vq {index}: head {h} was completed just before the crash");
                    }
                    queue.set_next_avail(r.next_avail);
                    queue.set_next_used(r.next_used);
                    resubmit = r.resubmit.into();
                }
                None => {
                    queue.set_next_avail(used_idx);
                    queue.set_next_used(used_idx);
                }
            },
        }
        let last_avail = Arc::new(AtomicU16::new(queue.next_avail()));
        let kick = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
            .map_err(|e| Error::io("eventfd", e))?;
        Ok(Vring {
            index,
            queue,
            ring,
            space,
            dev,
            log,
            resubmit,
            last_avail,
            kick,
            completed: 0,
            unsignalled: false,
        })
    }

    /// The queue index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The ring's location and size.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// Index of the next available-ring entry to take.
    pub fn next_avail(&self) -> u16 {
        self.queue.next_avail()
    }

    /// Index of the next used-ring entry to fill.
    pub fn next_used(&self) -> u16 {
        self.queue.next_used()
    }

    /// Chains completed since the queue started.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// The heads of the chains taken before a restart and not completed then, still to be
    /// served again (first, oldest first, by [`Vring::pop`]).
    pub fn resubmissions(&self) -> Vec<u16> {
        self.resubmit.iter().copied().collect()
    }

    /// The next available index, as the server answers `VDUSE_GET_VQ_STATE` with while the
    /// queue runs.
    pub(crate) fn last_avail(&self) -> Arc<AtomicU16> {
        self.last_avail.clone()
    }

    /// The kick eventfd (installed with `VDUSE_VQ_SETUP_KICKFD` while the queue is served).
    pub fn kick_fd(&self) -> RawFd {
        self.kick.as_raw_fd()
    }

    /// Consumes a pending kick (non-blocking).
    pub fn clear_kick(&self) {
        let _ = self.kick.read();
    }

    /// The IOTLB view of the queue's address space; a guest address is an IOVA.
    pub fn memory(&self) -> GuestMemoryLoadGuard<GuestMemoryMmap> {
        self.space.memory()
    }

    /// Makes `[addr, addr + len)` accessible for `access`, faulting IOTLB entries in.
    ///
    /// # Errors
    ///
    /// The range is not mapped (or not with that access).
    pub fn ensure(
        &self,
        addr: u64,
        len: u64,
        access: Access,
    ) -> std::result::Result<(), RangeError> {
        self.space.ensure(self.dev.as_ref(), addr, len, access)
    }

    /// Walks the chain at `head`, faulting in the IOTLB entries it needs.
    fn walk(&self, head: u16) -> std::result::Result<Vec<Desc>, WalkError> {
        for _ in 0..16 {
            let mem = self.space.memory();
            let space = &self.space;
            match walk_chain(
                &mem,
                self.ring.desc,
                self.ring.num,
                head,
                &mut |a, l, acc| space.check(a, l, acc),
            ) {
                Err(WalkError::Range(RangeError::Unmapped(iova))) => {
                    if self.ensure(iova, 1, Access::Read).is_err() {
                        return Err(WalkError::Range(RangeError::Unmapped(iova)));
                    }
                }
                r => return r,
            }
        }
        Err(WalkError::Invalid("too many IOTLB faults in one chain"))
    }

    /// Takes the next chain: first those a previous daemon took and did not complete, then
    /// the available ring's. `None` when nothing is available.
    ///
    /// # Errors
    ///
    /// The available ring cannot be read.
    pub fn pop(&mut self) -> Result<Option<Chain>> {
        let head = match self.resubmit.pop_front() {
            Some(h) => {
                debug!("vq {}: serving in-flight chain {h} again", self.index);
                h
            }
            None => {
                let mem = self.space.memory();
                let Some(chain) = self.queue.pop_descriptor_chain(&*mem) else {
                    return Ok(None);
                };
                let head = chain.head_index();
                if let Some(l) = &self.log {
                    l.mark_inflight(u32::from(self.index), head);
                }
                self.last_avail
                    .store(self.queue.next_avail(), Ordering::Relaxed);
                if crash_point() == Some(CrashPoint::Taken(self.completed + 1)) {
                    crash_now("with a chain taken but not served");
                }
                head
            }
        };
        Ok(Some(match self.walk(head) {
            Ok(descs) => Chain {
                head,
                descs,
                error: None,
            },
            Err(e) => {
                warn!("vq {}: unusable chain {head}: {e:?}", self.index);
                Chain {
                    head,
                    descs: Vec::new(),
                    error: Some(e),
                }
            }
        }))
    }

    /// Puts a chain on the used ring, `len` bytes written to it by the device.
    ///
    /// # Errors
    ///
    /// The used ring cannot be written.
    pub fn add_used(&mut self, head: u16, len: u32) -> Result<()> {
        let vq = u32::from(self.index);
        if let Some(l) = &self.log {
            l.pre_complete(vq, head);
        }
        let mem = self.space.memory();
        self.queue
            .add_used(&*mem, head, len)
            .map_err(|e| self.ring_error(e))?;
        if crash_point() == Some(CrashPoint::Published(self.completed + 1)) {
            crash_now("after publishing a completion");
        }
        if let Some(l) = &self.log {
            l.post_complete(vq, head, self.queue.next_used());
        }
        self.completed += 1;
        self.unsignalled = true;
        Ok(())
    }

    /// Asks the driver not to kick (while the device is busy with the ring anyway).
    ///
    /// # Errors
    ///
    /// The ring cannot be written.
    pub fn disable_notification(&mut self) -> Result<()> {
        let mem = self.space.memory();
        self.queue
            .disable_notification(&*mem)
            .map_err(|e| self.ring_error(e))
    }

    /// Asks the driver to kick again; `true` if chains became available meanwhile (serve them
    /// before sleeping).
    ///
    /// # Errors
    ///
    /// The ring cannot be accessed.
    pub fn enable_notification(&mut self) -> Result<bool> {
        let mem = self.space.memory();
        self.queue
            .enable_notification(&*mem)
            .map_err(|e| self.ring_error(e))
    }

    /// Notifies the driver of the completions since the last call, if it wants to be
    /// (`VDUSE_VQ_INJECT_IRQ`, subject to `VIRTIO_RING_F_EVENT_IDX`).
    ///
    /// # Errors
    ///
    /// The ring cannot be read, or the kernel refused the interrupt.
    pub fn signal_used(&mut self) -> Result<()> {
        if !self.unsignalled {
            return Ok(());
        }
        self.unsignalled = false;
        let needed = {
            let mem = self.space.memory();
            self.queue
                .needs_notification(&*mem)
                .map_err(|e| self.ring_error(e))?
        };
        if needed {
            self.inject_irq()?;
        }
        Ok(())
    }

    /// Interrupts the driver unconditionally (e.g. after a restart, for completions a
    /// previous daemon published but may not have signalled).
    ///
    /// # Errors
    ///
    /// The kernel refused (the device is not running, or is suspended).
    pub fn inject_irq(&self) -> Result<()> {
        self.dev
            .inject_irq(u32::from(self.index))
            .map_err(|e| Error::io("VDUSE_VQ_INJECT_IRQ", e))
    }

    fn ring_error(&self, e: virtio_queue::Error) -> Error {
        Error::Ring {
            index: self.index,
            what: e.to_string(),
        }
    }
}
