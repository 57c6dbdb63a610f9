// SPDX-License-Identifier: GPL-2.0
//! The daemon's view of one VDUSE address space: a `GuestMemoryMmap` whose regions are the
//! IOTLB entries handed out by `VDUSE_IOTLB_GET_FD(2)`, mmapped at the returned file offset,
//! with `GuestAddress` = IOVA.
//!
//! The kernel tells the daemon about IOTLB changes only for `set_map` (vhost-vdpa) through
//! `VDUSE_UPDATE_IOTLB`. With virtio-vdpa the bounce map is created lazily by the first DMA
//! mapping and the coherent (ring) allocations come and go with the driver, without any
//! message: so besides the eager re-mapping on `UPDATE_IOTLB` the space faults entries in on
//! demand (`ensure`) and is dropped as a whole on reset and on DRIVER_OK.

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

use log::{debug, warn};
use vm_memory::{
    FileOffset, GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryBackend,
    GuestMemoryLoadGuard, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap, MmapRegion,
};

use crate::uapi::{VDUSE_ACCESS_RO, VDUSE_ACCESS_RW, VDUSE_ACCESS_WO};

/// One IOTLB entry as returned by `VDUSE_IOTLB_GET_FD(2)`.
#[derive(Debug)]
pub struct IotlbMapping {
    /// The file backing the entry (from the device: the new fd the ioctl returned).
    pub file: File,
    /// Offset in `file` of the byte at IOVA `start`.
    pub offset: u64,
    /// First IOVA of the entry.
    pub start: u64,
    /// Last IOVA of the entry (inclusive).
    pub last: u64,
    /// Access the driver granted: `VDUSE_ACCESS_RO`, `VDUSE_ACCESS_WO` or `VDUSE_ACCESS_RW`.
    pub perm: u8,
}

/// Something that can look up IOTLB entries (the VDUSE device, or a fake in tests).
pub trait IotlbSource {
    /// The first IOTLB entry of address space `asid` overlapping `[start, last]`;
    /// `Ok(None)` if there is none.
    fn iotlb_get_fd(&self, asid: u32, start: u64, last: u64) -> io::Result<Option<IotlbMapping>>;

    /// Memory of the daemon's own that backs entry `m` instead of its file (the bounce buffer
    /// registered with `VDUSE_IOTLB_REG_UMEM`), if any.
    fn user_memory(&self, _asid: u32, _m: &IotlbMapping) -> Option<MmapRegion> {
        None
    }
}

struct Region {
    region: Arc<GuestRegionMmap>,
    /// First and last IOVA covered by the mapping (may be larger than the entry when the
    /// file offset was not page aligned).
    start: u64,
    last: u64,
    perm: u8,
}

/// Access the data path needs on a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The device reads the range (a driver-written buffer, the descriptor table or avail ring,
    /// an indirect table).
    Read,
    /// The device writes the range (a device-writable buffer, the used ring).
    Write,
}

/// Why a range is not usable.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeError {
    /// No IOTLB entry covers this IOVA.
    Unmapped(u64),
    /// The entry covering this IOVA forbids the access.
    Denied(u64),
    /// Address arithmetic overflow.
    Overflow,
}

/// One VDUSE address space: its IOTLB entries mapped into our memory.
pub struct AddressSpace {
    /// The address space id (ASID) whose entries are mapped here.
    pub asid: u32,
    mem: GuestMemoryAtomic<GuestMemoryMmap>,
    regions: Mutex<Vec<Region>>,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as u64
    }
}

fn perm_allows(perm: u8, access: Access) -> bool {
    match access {
        Access::Read => perm & VDUSE_ACCESS_RO != 0,
        Access::Write => perm & VDUSE_ACCESS_WO != 0,
    }
}

impl AddressSpace {
    /// An empty space for address space `asid`: nothing mapped yet.
    pub fn new(asid: u32) -> Self {
        AddressSpace {
            asid,
            mem: GuestMemoryAtomic::new(GuestMemoryMmap::new()),
            regions: Mutex::new(Vec::new()),
        }
    }

    /// A snapshot of the current mappings; mappings stay valid as long as the snapshot lives.
    pub fn memory(&self) -> GuestMemoryLoadGuard<GuestMemoryMmap> {
        self.mem.memory()
    }

    fn publish(&self, regions: &[Region]) {
        let coll = if regions.is_empty() {
            GuestMemoryMmap::new()
        } else {
            match GuestMemoryMmap::from_arc_regions(
                regions.iter().map(|r| r.region.clone()).collect(),
            ) {
                Ok(c) => c,
                Err(e) => {
                    // Cannot happen: the list is kept sorted and non-overlapping.
                    warn!("internal error building the memory map: {e}");
                    return;
                }
            }
        };
        self.mem.lock().unwrap().replace(coll);
    }

    /// Number of mapped regions.
    pub fn num_regions(&self) -> usize {
        self.regions.lock().unwrap().len()
    }

    /// Drop every mapping (unmapped once the last snapshot is gone).
    pub fn clear(&self) {
        let mut regions = self.regions.lock().unwrap();
        regions.clear();
        self.publish(&regions);
    }

    /// Drop the mappings overlapping `[start, last]`.
    pub fn remove_range(&self, start: u64, last: u64) {
        let mut regions = self.regions.lock().unwrap();
        let before = regions.len();
        regions.retain(|r| r.last < start || r.start > last);
        if regions.len() != before {
            self.publish(&regions);
        }
    }

    /// Map one IOTLB entry (from `src`'s user memory, or else its file), replacing any
    /// (stale) mapping it overlaps.
    pub fn add_mapping(&self, src: &dyn IotlbSource, m: IotlbMapping) -> io::Result<()> {
        let psz = page_size();
        let delta = m.offset % psz;
        if m.start < delta || m.last < m.start {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unaligned IOTLB entry",
            ));
        }
        let start = m.start - delta;
        let len = m.last - start + 1;
        if len == 0 || len > usize::MAX as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "IOTLB entry too large",
            ));
        }
        let prot = match m.perm {
            VDUSE_ACCESS_RO => libc::PROT_READ,
            VDUSE_ACCESS_WO | VDUSE_ACCESS_RW => libc::PROT_READ | libc::PROT_WRITE,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad IOTLB permission",
                ))
            }
        };
        let mmap = match src.user_memory(self.asid, &m) {
            Some(user) => user,
            None => {
                let fo = FileOffset::new(m.file, m.offset - delta);
                MmapRegion::build(Some(fo), len as usize, prot, libc::MAP_SHARED).map_err(|e| {
                    io::Error::other(format!("mmap of IOVA {:#x}-{:#x}: {e}", m.start, m.last))
                })?
            }
        };
        let region = GuestRegionMmap::new(mmap, GuestAddress(start))
            .ok_or_else(|| io::Error::other("IOVA range overflows"))?;
        let last = start + len - 1;
        debug!(
            "asid {} map IOVA {:#x}-{:#x} offset {:#x} perm {}",
            self.asid, m.start, m.last, m.offset, m.perm
        );
        let mut regions = self.regions.lock().unwrap();
        regions.retain(|r| r.last < start || r.start > last);
        let pos = regions.partition_point(|r| r.start < start);
        regions.insert(
            pos,
            Region {
                region: Arc::new(region),
                start,
                last,
                perm: m.perm,
            },
        );
        self.publish(&regions);
        Ok(())
    }

    /// Map every IOTLB entry overlapping `[start, last]` (used for `VDUSE_UPDATE_IOTLB`).
    /// Returns the number of entries mapped.
    pub fn map_range(&self, src: &dyn IotlbSource, start: u64, last: u64) -> io::Result<usize> {
        let mut cur = start;
        let mut n = 0;
        while cur <= last {
            let Some(m) = src.iotlb_get_fd(self.asid, cur, last)? else {
                break;
            };
            let next = m.last.checked_add(1);
            if m.last < cur {
                break; // the kernel never returns this; do not loop forever
            }
            self.add_mapping(src, m)?;
            n += 1;
            match next {
                Some(nx) => cur = nx,
                None => break,
            }
        }
        Ok(n)
    }

    /// Check `[addr, addr+len)` is mapped with `access`; otherwise return the first bad IOVA.
    pub fn check(&self, addr: u64, len: u64, access: Access) -> Result<(), RangeError> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len - 1).ok_or(RangeError::Overflow)?;
        let regions = self.regions.lock().unwrap();
        let mut cur = addr;
        loop {
            let idx = regions.partition_point(|r| r.last < cur);
            match regions.get(idx) {
                Some(r) if r.start <= cur => {
                    if !perm_allows(r.perm, access) {
                        return Err(RangeError::Denied(cur));
                    }
                    if r.last >= end {
                        return Ok(());
                    }
                    cur = r.last + 1;
                }
                _ => return Err(RangeError::Unmapped(cur)),
            }
        }
    }

    /// Make `[addr, addr+len)` usable for `access`, faulting IOTLB entries in from `src`.
    pub fn ensure(
        &self,
        src: &dyn IotlbSource,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<(), RangeError> {
        // Each round maps one more entry; a range never needs more than a handful.
        for _ in 0..64 {
            match self.check(addr, len, access) {
                Ok(()) => return Ok(()),
                Err(RangeError::Unmapped(iova)) => match src.iotlb_get_fd(self.asid, iova, iova) {
                    Ok(Some(m)) => {
                        if let Err(e) = self.add_mapping(src, m) {
                            warn!("cannot map IOVA {iova:#x}: {e}");
                            return Err(RangeError::Unmapped(iova));
                        }
                    }
                    Ok(None) => return Err(RangeError::Unmapped(iova)),
                    Err(e) => {
                        warn!("IOTLB lookup of IOVA {iova:#x} failed: {e}");
                        return Err(RangeError::Unmapped(iova));
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Err(RangeError::Unmapped(addr))
    }
}

/// Host address of an IOVA in a snapshot (for tests and diagnostics).
pub fn host_address(mem: &GuestMemoryMmap, iova: u64) -> Option<*mut u8> {
    let r = mem.find_region(GuestAddress(iova))?;
    let off = iova - r.start_addr().0;
    r.get_host_address(vm_memory::MemoryRegionAddress(off)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use vm_memory::Bytes;

    /// A fake IOTLB backed by one memfd per entry.
    pub struct FakeIotlb {
        pub entries: Vec<(u64, u64, u8, File)>,
    }

    impl IotlbSource for FakeIotlb {
        fn iotlb_get_fd(
            &self,
            _asid: u32,
            start: u64,
            last: u64,
        ) -> io::Result<Option<IotlbMapping>> {
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

    fn memfd(len: u64) -> File {
        let mut f = tempfile(len);
        f.flush().unwrap();
        f
    }

    pub fn tempfile(len: u64) -> File {
        let name = std::ffi::CString::new("vduse-blk-test").unwrap();
        // SAFETY: valid C string.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: fresh fd we own.
        let f = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        f.set_len(len).unwrap();
        f
    }

    #[test]
    fn fault_in_and_access() {
        let a = memfd(0x10000);
        a.write_all_at(b"hello", 0x10).unwrap();
        let b = memfd(0x2000);
        let iotlb = FakeIotlb {
            entries: vec![
                (0, 0xffff, VDUSE_ACCESS_RW, a),
                (0x40000, 0x41fff, VDUSE_ACCESS_RO, b),
            ],
        };
        let space = AddressSpace::new(0);
        assert_eq!(
            space.check(0x10, 5, Access::Read),
            Err(RangeError::Unmapped(0x10))
        );
        space.ensure(&iotlb, 0x10, 5, Access::Read).unwrap();
        let mut buf = [0u8; 5];
        space
            .memory()
            .read_slice(&mut buf, GuestAddress(0x10))
            .unwrap();
        assert_eq!(&buf, b"hello");
        // A range spanning the mapped entry and a hole fails at the hole.
        assert_eq!(
            space.ensure(&iotlb, 0xfff0, 0x20, Access::Read),
            Err(RangeError::Unmapped(0x10000))
        );
        // Read-only entries refuse device writes.
        space.ensure(&iotlb, 0x40000, 16, Access::Read).unwrap();
        assert_eq!(
            space.check(0x40000, 16, Access::Write),
            Err(RangeError::Denied(0x40000))
        );
        assert_eq!(space.num_regions(), 2);
        space.remove_range(0x40000, 0x40000);
        assert_eq!(space.num_regions(), 1);
        space.clear();
        assert_eq!(space.num_regions(), 0);
        assert!(space.memory().find_region(GuestAddress(0x10)).is_none());
    }

    #[test]
    fn map_range_enumerates_entries() {
        let iotlb = FakeIotlb {
            entries: vec![
                (0, 0xfff, VDUSE_ACCESS_RW, memfd(0x1000)),
                (0x3000, 0x4fff, VDUSE_ACCESS_RW, memfd(0x2000)),
                (0x8000, 0x8fff, VDUSE_ACCESS_WO, memfd(0x1000)),
            ],
        };
        let space = AddressSpace::new(0);
        assert_eq!(space.map_range(&iotlb, 0, u64::MAX).unwrap(), 3);
        assert_eq!(space.num_regions(), 3);
        assert!(space.check(0x3000, 0x2000, Access::Write).is_ok());
        assert_eq!(
            space.check(0x1000, 1, Access::Read),
            Err(RangeError::Unmapped(0x1000))
        );
        // A snapshot keeps its mappings alive after they are dropped from the space.
        let snap = space.memory();
        space.clear();
        snap.write_slice(b"x", GuestAddress(0x3000)).unwrap();
    }
}
