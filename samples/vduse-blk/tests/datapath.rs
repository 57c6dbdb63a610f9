// SPDX-License-Identifier: GPL-2.0
//! Host tests of the data path: virtio-blk requests built by hand in a split ring that lives
//! in "IOVA space" (memfds handed out by a fake IOTLB), processed by `VqCore` exactly as the
//! queue threads do, against a memfd disk.

use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use vduse::vring::{Ring, Start, Transport, Vring, VringConfig};
use vduse_blk::blk::{layout, walk_chain, Desc, Disk, Sg, WalkError};
use vduse_blk::inflight::{InflightLog, LogHeader};
use vduse_blk::memory::{Access, AddressSpace, IotlbMapping, IotlbSource, RangeError};
use vduse_blk::queue;
use vduse_blk::uapi::{VDUSE_ACCESS_RO, VDUSE_ACCESS_RW};
use vduse_blk::virtio::*;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

const QSIZE: u16 = 16;
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
const BUF: u64 = 0x10000;
/// A second IOTLB entry, only faulted in when a request points there.
const FAR: u64 = 0x100000;
const DISK_SIZE: u64 = 1 << 20;

fn memfd(len: u64) -> File {
    let name = std::ffi::CString::new("vduse-blk-test").unwrap();
    // SAFETY: valid C string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: fresh fd.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(len).unwrap();
    f
}

struct FakeIotlb {
    entries: Vec<(u64, u64, u8, File)>,
    lookups: AtomicU32,
    /// Interrupts injected.
    irqs: AtomicU32,
}

impl Transport for FakeIotlb {
    fn inject_irq(&self, _index: u32) -> io::Result<()> {
        self.irqs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl IotlbSource for FakeIotlb {
    fn iotlb_get_fd(&self, _asid: u32, start: u64, last: u64) -> io::Result<Option<IotlbMapping>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        for (s, l, p, f) in &self.entries {
            if *s <= last && *l >= start {
                return Ok(Some(IotlbMapping {
                    file: f.try_clone()?,
                    offset: 0,
                    start: *s,
                    last: *l,
                    perm: *p,
                }));
            }
        }
        Ok(None)
    }
}

struct Rig {
    iotlb: Arc<FakeIotlb>,
    space: Arc<AddressSpace>,
    disk: Arc<Disk>,
    disk_file: File,
    avail_idx: u16,
    next_desc: u16,
}

impl Rig {
    fn new(read_only: bool) -> Rig {
        let iotlb = FakeIotlb {
            entries: vec![
                (0, 0xfffff, VDUSE_ACCESS_RW, memfd(0x100000)),
                (FAR, FAR + 0xffff, VDUSE_ACCESS_RW, memfd(0x10000)),
                (0x200000, 0x200fff, VDUSE_ACCESS_RO, memfd(0x1000)),
            ],
            lookups: Default::default(),
            irqs: Default::default(),
        };
        let disk_file = memfd(DISK_SIZE);
        let pattern: Vec<u8> = (0..DISK_SIZE).map(|i| (i * 7 % 251) as u8).collect();
        disk_file.write_all_at(&pattern, 0).unwrap();
        let disk = Arc::new(Disk::new(
            disk_file.try_clone().unwrap(),
            DISK_SIZE,
            read_only,
            "vduse-test-serial-0123456789",
        ));
        Rig {
            iotlb: Arc::new(iotlb),
            space: Arc::new(AddressSpace::new(0)),
            disk,
            disk_file,
            avail_idx: 0,
            next_desc: 0,
        }
    }

    fn ring() -> Ring {
        Ring {
            num: QSIZE,
            desc: DESC,
            avail: AVAIL,
            used: USED,
        }
    }

    /// The rings as the driver sees them (through the IOTLB entry, not the daemon's map).
    fn drv(&self) -> GuestMemoryMmap {
        let f = self.iotlb.entries[0].3.try_clone().unwrap();
        GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(0),
            0x100000,
            Some(vm_memory::FileOffset::new(f, 0)),
        )])
        .unwrap()
    }

    fn core(&self, start: Start, event_idx: bool, log: Option<Arc<InflightLog>>) -> Vring {
        Vring::new(
            VringConfig {
                index: 0,
                max_size: QSIZE,
                ring: Self::ring(),
                event_idx,
                start,
            },
            self.space.clone(),
            self.iotlb.clone(),
            log,
        )
        .unwrap()
    }

    /// Serves the queue; whether the driver was interrupted.
    fn serve(&self, v: &mut Vring) -> bool {
        let before = self.iotlb.irqs.load(Ordering::Relaxed);
        queue::serve(&self.disk, v).unwrap();
        self.iotlb.irqs.load(Ordering::Relaxed) != before
    }

    fn write_desc(&self, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let m = self.drv();
        let a = GuestAddress(table + 16 * u64::from(i));
        m.write_obj(addr.to_le(), a).unwrap();
        m.write_obj(len.to_le(), a.unchecked_add(8)).unwrap();
        m.write_obj(flags.to_le(), a.unchecked_add(12)).unwrap();
        m.write_obj(next.to_le(), a.unchecked_add(14)).unwrap();
    }

    /// Put a chain of (addr, len, writable) buffers in the descriptor table; returns its head.
    fn chain(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (k, &(addr, len, w)) in bufs.iter().enumerate() {
            let i = self.next_desc;
            self.next_desc = (self.next_desc + 1) % QSIZE;
            let mut flags = if w { VRING_DESC_F_WRITE } else { 0 };
            if k + 1 < bufs.len() {
                flags |= VRING_DESC_F_NEXT;
            }
            self.write_desc(DESC, i, addr, len, flags, self.next_desc);
        }
        head
    }

    fn publish(&mut self, head: u16) {
        let m = self.drv();
        m.write_obj(
            head.to_le(),
            GuestAddress(AVAIL + 4 + 2 * u64::from(self.avail_idx % QSIZE)),
        )
        .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        m.write_obj(self.avail_idx.to_le(), GuestAddress(AVAIL + 2))
            .unwrap();
    }

    fn used_idx(&self) -> u16 {
        self.drv().read_obj::<u16>(GuestAddress(USED + 2)).unwrap()
    }

    fn used_elem(&self, n: u16) -> (u32, u32) {
        let a = USED + 4 + 8 * u64::from(n % QSIZE);
        let m = self.drv();
        (
            m.read_obj(GuestAddress(a)).unwrap(),
            m.read_obj(GuestAddress(a + 4)).unwrap(),
        )
    }

    fn header(&self, at: u64, ty: u32, sector: u64) {
        let m = self.drv();
        m.write_obj(ty.to_le(), GuestAddress(at)).unwrap();
        m.write_obj(0u32, GuestAddress(at + 4)).unwrap();
        m.write_obj(sector.to_le(), GuestAddress(at + 8)).unwrap();
    }

    fn status(&self, at: u64) -> u8 {
        self.drv().read_obj(GuestAddress(at)).unwrap()
    }

    /// A complete request: header at BUF+off, data, status; returns (head, status addr).
    fn request(
        &mut self,
        off: u64,
        ty: u32,
        sector: u64,
        data: Option<(u64, u32, bool)>,
    ) -> (u16, u64) {
        let hdr = BUF + off;
        let st = BUF + off + 0x100;
        self.header(hdr, ty, sector);
        self.drv().write_obj(0xffu8, GuestAddress(st)).unwrap();
        let mut bufs = vec![(hdr, 16, false)];
        if let Some(d) = data {
            bufs.push(d);
        }
        bufs.push((st, 1, true));
        (self.chain(&bufs), st)
    }
}

fn pattern_at(off: u64, len: usize) -> Vec<u8> {
    (off..off + len as u64)
        .map(|i| (i * 7 % 251) as u8)
        .collect()
}

#[test]
fn read_write_flush_getid() {
    let mut rig = Rig::new(false);
    let mut core = rig.core(Start::Fresh { avail_index: 0 }, false, None);

    // Write 1 KiB at sector 2.
    let data = BUF + 0x1000;
    rig.drv()
        .write_slice(&[0xabu8; 1024], GuestAddress(data))
        .unwrap();
    let (h1, s1) = rig.request(0, VIRTIO_BLK_T_OUT, 2, Some((data, 1024, false)));
    rig.publish(h1);
    // Read sector 8..10 into another buffer.
    let rbuf = BUF + 0x2000;
    let (h2, s2) = rig.request(0x200, VIRTIO_BLK_T_IN, 8, Some((rbuf, 1024, true)));
    rig.publish(h2);
    let (h3, s3) = rig.request(0x400, VIRTIO_BLK_T_FLUSH, 0, None);
    rig.publish(h3);
    let idbuf = BUF + 0x3000;
    let (h4, s4) = rig.request(0x600, VIRTIO_BLK_T_GET_ID, 0, Some((idbuf, 20, true)));
    rig.publish(h4);

    assert!(rig.serve(&mut core), "must notify without EVENT_IDX");
    assert_eq!(rig.used_idx(), 4);
    assert_eq!(rig.used_elem(0), (u32::from(h1), 1));
    assert_eq!(rig.used_elem(1), (u32::from(h2), 1025));
    assert_eq!(rig.used_elem(2), (u32::from(h3), 1));
    assert_eq!(rig.used_elem(3), (u32::from(h4), 21));
    for s in [s1, s2, s3, s4] {
        assert_eq!(rig.status(s), VIRTIO_BLK_S_OK);
    }
    let mut got = vec![0u8; 1024];
    rig.disk_file.read_exact_at(&mut got, 1024).unwrap();
    assert_eq!(got, vec![0xab; 1024]);
    rig.drv().read_slice(&mut got, GuestAddress(rbuf)).unwrap();
    assert_eq!(got, pattern_at(8 * 512, 1024));
    let mut id = [0u8; 20];
    rig.drv().read_slice(&mut id, GuestAddress(idbuf)).unwrap();
    assert_eq!(&id, b"vduse-test-serial-01");
    assert_eq!(core.next_avail(), 4);
    assert_eq!(core.next_used(), 4);
}

#[test]
fn errors_and_unsupported() {
    let mut rig = Rig::new(false);
    let mut core = rig.core(Start::Fresh { avail_index: 0 }, false, None);
    // Read past the end.
    let (h1, s1) = rig.request(
        0,
        VIRTIO_BLK_T_IN,
        DISK_SIZE / 512 - 1,
        Some((BUF + 0x1000, 1024, true)),
    );
    rig.publish(h1);
    // Unknown request type.
    let (h2, s2) = rig.request(0x200, 0x77, 0, None);
    rig.publish(h2);
    // Discard with the unmap flag (only valid for write zeroes).
    let seg = BUF + 0x3000;
    let m = rig.drv();
    m.write_obj(4u64.to_le(), GuestAddress(seg)).unwrap();
    m.write_obj(8u32.to_le(), GuestAddress(seg + 8)).unwrap();
    m.write_obj(1u32.to_le(), GuestAddress(seg + 12)).unwrap();
    let (h3, s3) = rig.request(0x400, VIRTIO_BLK_T_DISCARD, 0, Some((seg, 16, false)));
    rig.publish(h3);
    // A chain with no writable status byte: completed with length 0.
    let h4 = rig.chain(&[(BUF + 0x600, 16, false)]);
    rig.header(BUF + 0x600, VIRTIO_BLK_T_IN, 0);
    rig.publish(h4);
    rig.serve(&mut core);
    assert_eq!(rig.used_idx(), 4);
    assert_eq!(rig.status(s1), VIRTIO_BLK_S_IOERR);
    assert_eq!(rig.status(s2), VIRTIO_BLK_S_UNSUPP);
    assert_eq!(rig.status(s3), VIRTIO_BLK_S_UNSUPP);
    assert_eq!(rig.used_elem(3), (u32::from(h4), 0));
}

#[test]
fn write_zeroes_and_discard() {
    let mut rig = Rig::new(false);
    let mut core = rig.core(Start::Fresh { avail_index: 0 }, false, None);
    let seg = BUF + 0x3000;
    let m = rig.drv();
    m.write_obj(16u64.to_le(), GuestAddress(seg)).unwrap();
    m.write_obj(8u32.to_le(), GuestAddress(seg + 8)).unwrap();
    m.write_obj(0u32.to_le(), GuestAddress(seg + 12)).unwrap();
    let (h1, s1) = rig.request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, Some((seg, 16, false)));
    rig.publish(h1);
    let seg2 = BUF + 0x3100;
    m.write_obj(64u64.to_le(), GuestAddress(seg2)).unwrap();
    m.write_obj(8u32.to_le(), GuestAddress(seg2 + 8)).unwrap();
    m.write_obj(0u32.to_le(), GuestAddress(seg2 + 12)).unwrap();
    let (h2, s2) = rig.request(0x200, VIRTIO_BLK_T_DISCARD, 0, Some((seg2, 16, false)));
    rig.publish(h2);
    // Two segments exceed max_write_zeroes_seg = 1.
    let (h3, s3) = rig.request(0x400, VIRTIO_BLK_T_WRITE_ZEROES, 0, Some((seg, 32, false)));
    rig.publish(h3);
    rig.serve(&mut core);
    assert_eq!(rig.status(s1), VIRTIO_BLK_S_OK);
    assert_eq!(rig.status(s2), VIRTIO_BLK_S_OK);
    assert_eq!(rig.status(s3), VIRTIO_BLK_S_IOERR);
    let mut got = vec![0xffu8; 4096];
    rig.disk_file.read_exact_at(&mut got, 16 * 512).unwrap();
    assert_eq!(got, vec![0; 4096]);
    // The bytes around are untouched.
    rig.disk_file
        .read_exact_at(&mut got[..512], 15 * 512)
        .unwrap();
    assert_eq!(&got[..512], &pattern_at(15 * 512, 512)[..]);
}

#[test]
fn read_only_disk_refuses_writes() {
    let mut rig = Rig::new(true);
    let mut core = rig.core(Start::Fresh { avail_index: 0 }, false, None);
    let (h1, s1) = rig.request(0, VIRTIO_BLK_T_OUT, 0, Some((BUF + 0x1000, 512, false)));
    rig.publish(h1);
    let (h2, s2) = rig.request(0x200, VIRTIO_BLK_T_IN, 0, Some((BUF + 0x2000, 512, true)));
    rig.publish(h2);
    rig.serve(&mut core);
    assert_eq!(rig.status(s1), VIRTIO_BLK_S_IOERR);
    assert_eq!(rig.status(s2), VIRTIO_BLK_S_OK);
    let mut got = vec![0u8; 512];
    rig.disk_file.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(got, pattern_at(0, 512));
}

#[test]
fn indirect_split_header_and_lazy_iotlb() {
    let mut rig = Rig::new(false);
    let mut core = rig.core(Start::Fresh { avail_index: 0 }, false, None);
    let regions_after_setup = rig.space.num_regions();
    // Indirect table in the far entry (not mapped yet), header split over two descriptors,
    // data in two pieces, status in the far entry too.
    let table = FAR;
    let hdr = FAR + 0x1000;
    let st = FAR + 0x2000;
    let d1 = BUF + 0x4000;
    let d2 = FAR + 0x3000;
    rig.header(BUF + 0x5000, 0, 0); // scratch to build the header bytes
    let far = rig.iotlb.entries[1].3.try_clone().unwrap();
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&VIRTIO_BLK_T_IN.to_le_bytes());
    h[8..16].copy_from_slice(&3u64.to_le_bytes());
    far.write_all_at(&h, hdr - FAR).unwrap();
    far.write_all_at(&[0xff], st - FAR).unwrap();
    let wd = |i: u16, addr: u64, len: u32, flags: u16, next: u16| {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&addr.to_le_bytes());
        b[8..12].copy_from_slice(&len.to_le_bytes());
        b[12..14].copy_from_slice(&flags.to_le_bytes());
        b[14..16].copy_from_slice(&next.to_le_bytes());
        far.write_all_at(&b, table - FAR + 16 * u64::from(i))
            .unwrap();
    };
    let n = VRING_DESC_F_NEXT;
    let w = VRING_DESC_F_WRITE;
    wd(0, hdr, 4, n, 1);
    wd(1, hdr + 4, 12, n, 2);
    wd(2, d1, 512, n | w, 3);
    wd(3, d2, 512, n | w, 4);
    wd(4, st, 1, w, 0);
    let head = rig.next_desc;
    rig.write_desc(DESC, head, table, 5 * 16, VRING_DESC_F_INDIRECT, 0);
    rig.publish(head);

    // The walker reports the missing entry rather than stopping silently.
    let mem = rig.space.memory();
    let e = walk_chain(&mem, DESC, QSIZE, head, &mut |a, l, acc| {
        rig.space.check(a, l, acc)
    });
    assert_eq!(e, Err(WalkError::Range(RangeError::Unmapped(FAR))));
    drop(mem);

    rig.serve(&mut core);
    assert_eq!(
        rig.space.num_regions(),
        regions_after_setup + 1,
        "far entry faulted in"
    );
    let mut stb = [0u8];
    far.read_exact_at(&mut stb, st - FAR).unwrap();
    assert_eq!(stb[0], VIRTIO_BLK_S_OK);
    assert_eq!(rig.used_elem(0), (u32::from(head), 1025));
    let mut got = vec![0u8; 512];
    rig.drv().read_slice(&mut got, GuestAddress(d1)).unwrap();
    assert_eq!(got, pattern_at(3 * 512, 512));
    far.read_exact_at(&mut got, d2 - FAR).unwrap();
    assert_eq!(got, pattern_at(4 * 512, 512));
}

#[test]
fn unmapped_and_read_only_buffers_fail_the_request_only() {
    let mut rig = Rig::new(false);
    let mut core = rig.core(Start::Fresh { avail_index: 0 }, false, None);
    // Data buffer in a hole of the IOTLB.
    let (h1, s1) = rig.request(0, VIRTIO_BLK_T_IN, 0, Some((0x900000, 512, true)));
    rig.publish(h1);
    // Device-writable buffer in a read-only entry.
    let (h2, s2) = rig.request(0x200, VIRTIO_BLK_T_IN, 0, Some((0x200000, 512, true)));
    rig.publish(h2);
    let (h3, s3) = rig.request(0x400, VIRTIO_BLK_T_IN, 0, Some((BUF + 0x1000, 512, true)));
    rig.publish(h3);
    rig.serve(&mut core);
    assert_eq!(rig.used_idx(), 3);
    assert_eq!(rig.used_elem(0), (u32::from(h1), 0));
    assert_eq!(rig.used_elem(1), (u32::from(h2), 0));
    assert_eq!(rig.status(s1), 0xff, "no status written");
    assert_eq!(rig.status(s2), 0xff, "no status written");
    assert_eq!(rig.status(s3), VIRTIO_BLK_S_OK);
}

#[test]
fn walker_agrees_with_virtio_queue_chains() {
    use virtio_queue::{Queue, QueueOwnedT, QueueT};
    let mut rig = Rig::new(false);
    let core = rig.core(Start::Fresh { avail_index: 0 }, false, None);
    drop(core);
    let chains: [&[(u64, u32, bool)]; 3] = [
        &[
            (BUF, 16, false),
            (BUF + 0x100, 4096, false),
            (BUF + 0x2000, 1, true),
        ],
        &[
            (BUF + 0x3000, 16, false),
            (BUF + 0x4000, 512, true),
            (BUF + 0x5000, 512, true),
            (BUF + 0x6000, 1, true),
        ],
        &[(BUF + 0x7000, 16, false), (BUF + 0x7100, 1, true)],
    ];
    let mut heads = Vec::new();
    for c in chains {
        let h = rig.chain(c);
        rig.publish(h);
        heads.push(h);
    }
    let mut q = Queue::new(QSIZE).unwrap();
    q.try_set_desc_table_address(GuestAddress(DESC)).unwrap();
    q.try_set_avail_ring_address(GuestAddress(AVAIL)).unwrap();
    q.try_set_used_ring_address(GuestAddress(USED)).unwrap();
    q.set_ready(true);
    let mem = rig.drv();
    for (k, chain) in q.iter(&mem).unwrap().enumerate() {
        assert_eq!(chain.head_index(), heads[k]);
        let theirs: Vec<Desc> = chain
            .clone()
            .map(|d| Desc {
                addr: d.addr().0,
                len: d.len(),
                write: d.is_write_only(),
            })
            .collect();
        let ours = walk_chain(&mem, DESC, QSIZE, heads[k], &mut |_, _, _| Ok(())).unwrap();
        assert_eq!(ours, theirs);
        let expect: Vec<Desc> = chains[k]
            .iter()
            .map(|&(addr, len, write)| Desc { addr, len, write })
            .collect();
        assert_eq!(ours, expect);
    }
}

#[test]
fn malformed_chains() {
    let rig = Rig::new(false);
    let mem = rig.drv();
    // A descriptor loop.
    rig.write_desc(DESC, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
    rig.write_desc(DESC, 1, BUF, 16, VRING_DESC_F_NEXT, 0);
    assert_eq!(
        walk_chain(&mem, DESC, QSIZE, 0, &mut |_, _, _| Ok(())),
        Err(WalkError::Invalid("descriptor loop"))
    );
    // next out of range.
    rig.write_desc(DESC, 2, BUF, 16, VRING_DESC_F_NEXT, QSIZE);
    assert!(matches!(
        walk_chain(&mem, DESC, QSIZE, 2, &mut |_, _, _| Ok(())),
        Err(WalkError::Invalid(_))
    ));
    // Head out of range.
    assert!(matches!(
        walk_chain(&mem, DESC, QSIZE, QSIZE, &mut |_, _, _| Ok(())),
        Err(WalkError::Invalid(_))
    ));
    // Indirect table with a bad length.
    rig.write_desc(DESC, 3, FAR, 17, VRING_DESC_F_INDIRECT, 0);
    assert!(matches!(
        walk_chain(&mem, DESC, QSIZE, 3, &mut |_, _, _| Ok(())),
        Err(WalkError::Invalid(_))
    ));
    // Writable before readable is rejected by the request layout.
    let l = layout(&[
        Desc {
            addr: 0,
            len: 1,
            write: true,
        },
        Desc {
            addr: 16,
            len: 16,
            write: false,
        },
    ]);
    assert!(l.is_err());
    let l = layout(&[
        Desc {
            addr: 0,
            len: 20,
            write: false,
        },
        Desc {
            addr: 64,
            len: 9,
            write: true,
        },
    ])
    .unwrap();
    assert_eq!(l.out, Sg(vec![(0, 20)]));
    assert_eq!(l.inb.slice(8, 1), Sg(vec![(72, 1)]));
    let _ = Access::Read;
}

#[test]
fn event_idx_suppresses_notifications() {
    let mut rig = Rig::new(false);
    let mut core = rig.core(Start::Fresh { avail_index: 0 }, true, None);
    // used_event (avail->ring[num]) = 1: notify only once the used index passes 1.
    rig.drv()
        .write_obj(1u16.to_le(), GuestAddress(AVAIL + 4 + 2 * u64::from(QSIZE)))
        .unwrap();
    let (h1, _) = rig.request(0, VIRTIO_BLK_T_FLUSH, 0, None);
    rig.publish(h1);
    assert!(
        !rig.serve(&mut core),
        "used 0->1 does not cross used_event 1"
    );
    let (h2, _) = rig.request(0x200, VIRTIO_BLK_T_FLUSH, 0, None);
    rig.publish(h2);
    assert!(rig.serve(&mut core), "used 1->2 crosses used_event 1");
    // The device published avail_event = next_avail for the driver.
    let avail_event: u16 = rig
        .drv()
        .read_obj(GuestAddress(USED + 4 + 8 * u64::from(QSIZE)))
        .unwrap();
    assert_eq!(avail_event, 2);
    // Nothing new: no notification.
    assert!(!rig.serve(&mut core));
}

#[test]
fn reattach_resubmits_inflight_requests_once() {
    let path = std::env::temp_dir().join(format!("vduse-blk-dp-{}.log", std::process::id()));
    let hdr = LogHeader {
        num_queues: 1,
        queue_size: u32::from(QSIZE),
        ..Default::default()
    };
    let log = InflightLog::create(&path, hdr).unwrap();
    let mut rig = Rig::new(false);

    // Daemon A serves two writes.
    let mut a = rig.core(Start::Fresh { avail_index: 0 }, false, Some(log.clone()));
    let mut reqs = Vec::new();
    for k in 0..2u64 {
        let data = BUF + 0x8000 + k * 0x1000;
        rig.drv()
            .write_slice(&[k as u8 + 1; 512], GuestAddress(data))
            .unwrap();
        let r = rig.request(k * 0x200, VIRTIO_BLK_T_OUT, k, Some((data, 512, false)));
        rig.publish(r.0);
        reqs.push(r);
    }
    rig.serve(&mut a);
    assert_eq!(rig.used_idx(), 2);
    assert_eq!(log.inflight_count(0), 0);

    // Two more writes are taken by A, which dies before completing them (we do what A's
    // pop does: mark them in flight; nothing reaches the used ring).
    for k in 2..4u64 {
        let data = BUF + 0x8000 + k * 0x1000;
        rig.drv()
            .write_slice(&[k as u8 + 1; 512], GuestAddress(data))
            .unwrap();
        let r = rig.request(k * 0x200, VIRTIO_BLK_T_OUT, k, Some((data, 512, false)));
        rig.publish(r.0);
        log.mark_inflight(0, r.0);
        reqs.push(r);
    }
    drop(a);
    drop(log);
    // And the driver queues one more afterwards.
    let data = BUF + 0xc000;
    rig.drv()
        .write_slice(&[5u8; 512], GuestAddress(data))
        .unwrap();
    let r = rig.request(4 * 0x200, VIRTIO_BLK_T_OUT, 4, Some((data, 512, false)));
    rig.publish(r.0);
    reqs.push(r);

    // Daemon B re-attaches from the log: new memory view, same rings.
    let log = InflightLog::open(&path).unwrap();
    rig.space = Arc::new(AddressSpace::new(0));
    let mut b = rig.core(Start::Reattach, false, Some(log.clone()));
    assert_eq!(b.next_avail(), 4, "2 used + 2 in flight");
    assert_eq!(b.resubmissions(), vec![reqs[2].0, reqs[3].0]);
    rig.serve(&mut b);
    assert_eq!(rig.used_idx(), 5, "each request completed exactly once");
    let ids: Vec<u32> = (0..5).map(|n| rig.used_elem(n).0).collect();
    assert_eq!(ids, reqs.iter().map(|r| u32::from(r.0)).collect::<Vec<_>>());
    for (k, r) in reqs.iter().enumerate() {
        assert_eq!(rig.status(r.1), VIRTIO_BLK_S_OK);
        let mut got = vec![0u8; 512];
        rig.disk_file
            .read_exact_at(&mut got, k as u64 * 512)
            .unwrap();
        assert_eq!(got, vec![k as u8 + 1; 512], "sector {k}");
    }
    assert_eq!(log.inflight_count(0), 0);
    std::fs::remove_file(&path).unwrap();
}
