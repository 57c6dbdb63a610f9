// SPDX-License-Identifier: GPL-2.0
//! virtio-blk request handling: the request/status protocol against a file (or memfd)
//! backend, on descriptor chains walked by [`vduse::chain`].

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use log::debug;
use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

pub use vduse::chain::{walk_chain, Desc, Sg, WalkError};
use vduse::virtio::*;

/// The parts of a virtio-blk request.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// Device-readable bytes (header + data-out).
    pub out: Sg,
    /// Device-writable bytes (data-in + status).
    pub inb: Sg,
}

/// Split a chain into its readable and writable parts (readable ones must come first).
pub fn layout(descs: &[Desc]) -> Result<Layout, &'static str> {
    let mut out = Vec::new();
    let mut inb = Vec::new();
    for d in descs {
        if d.write {
            inb.push((d.addr, u64::from(d.len)));
        } else {
            if !inb.is_empty() {
                return Err("readable descriptor after a writable one");
            }
            out.push((d.addr, u64::from(d.len)));
        }
    }
    let l = Layout {
        out: Sg(out),
        inb: Sg(inb),
    };
    if l.out.len() < BLK_OUTHDR_SIZE as u64 {
        return Err("request header missing");
    }
    if l.inb.is_empty() {
        return Err("status byte missing");
    }
    Ok(l)
}

/// The backing store: a regular file, a block device or a memfd (RAM).
pub struct Disk {
    file: File,
    size: u64,
    read_only: bool,
    /// A null backend: reads and writes move no data (benchmarks; `--null`).
    null: bool,
    id: [u8; VIRTIO_BLK_ID_BYTES],
}

/// Limits advertised in the config space and enforced here.
pub const MAX_DISCARD_SECTORS: u32 = 0x40_0000; // 2 GiB
pub const MAX_WRITE_ZEROES_SECTORS: u32 = 0x40_0000;
pub const MAX_DWZ_SEG: u32 = 1;
pub const SEG_MAX: u32 = 126;

fn pread_all(fd: i32, mut ptr: *mut u8, mut len: usize, mut off: u64) -> io::Result<()> {
    while len > 0 {
        // SAFETY: `ptr..ptr+len` lies inside a live guest-memory mapping held by the caller.
        let n = unsafe { libc::pread(fd, ptr.cast(), len, off as libc::off_t) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            // Past the end of a file shorter than the device: reads as zeroes.
            // SAFETY: as above.
            unsafe { std::ptr::write_bytes(ptr, 0, len) };
            return Ok(());
        }
        let n = n as usize;
        // SAFETY: n <= len.
        ptr = unsafe { ptr.add(n) };
        len -= n;
        off += n as u64;
    }
    Ok(())
}

fn pwrite_all(fd: i32, mut ptr: *const u8, mut len: usize, mut off: u64) -> io::Result<()> {
    while len > 0 {
        // SAFETY: `ptr..ptr+len` lies inside a live guest-memory mapping held by the caller.
        let n = unsafe { libc::pwrite(fd, ptr.cast(), len, off as libc::off_t) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
        }
        let n = n as usize;
        // SAFETY: n <= len.
        ptr = unsafe { ptr.add(n) };
        len -= n;
        off += n as u64;
    }
    Ok(())
}

/// Outcome of one request: the status written and the used length to report.
#[derive(Debug, PartialEq, Eq)]
pub struct Completion {
    pub status: u8,
    pub used_len: u32,
}

impl Disk {
    pub fn new(file: File, size: u64, read_only: bool, id: &str) -> Self {
        let mut idb = [0u8; VIRTIO_BLK_ID_BYTES];
        let n = id.len().min(VIRTIO_BLK_ID_BYTES);
        idb[..n].copy_from_slice(&id.as_bytes()[..n]);
        Disk {
            file,
            size,
            read_only,
            null: false,
            id: idb,
        }
    }

    /// Makes this a null backend: reads leave the driver's buffers as they are and writes are
    /// dropped, as QEMU's `null-co` and ublk's `null` target do (for benchmarks).
    pub fn null_backend(mut self) -> Self {
        self.null = true;
        self
    }

    /// Capacity in bytes (a multiple of 512).
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    fn in_bounds(&self, sector: u64, len: u64) -> bool {
        sector
            .checked_mul(SECTOR_SIZE)
            .and_then(|o| o.checked_add(len))
            .is_some_and(|end| end <= self.size)
    }

    fn read_to_guest(&self, mem: &GuestMemoryMmap, sg: &Sg, mut off: u64) -> io::Result<()> {
        if self.null {
            return Ok(());
        }
        for &(a, l) in &sg.0 {
            let slices = mem
                .get_slices(GuestAddress(a), l as usize, Permissions::Write)
                .map_err(io::Error::other)?;
            for s in slices {
                let s = s.map_err(io::Error::other)?;
                let g = s.ptr_guard_mut();
                pread_all(self.fd(), g.as_ptr(), s.len(), off)?;
                off += s.len() as u64;
            }
        }
        Ok(())
    }

    fn write_from_guest(&self, mem: &GuestMemoryMmap, sg: &Sg, mut off: u64) -> io::Result<()> {
        if self.null {
            return Ok(());
        }
        for &(a, l) in &sg.0 {
            let slices = mem
                .get_slices(GuestAddress(a), l as usize, Permissions::Read)
                .map_err(io::Error::other)?;
            for s in slices {
                let s = s.map_err(io::Error::other)?;
                let g = s.ptr_guard();
                pwrite_all(self.fd(), g.as_ptr(), s.len(), off)?;
                off += s.len() as u64;
            }
        }
        Ok(())
    }

    fn fallocate(&self, mode: i32, off: u64, len: u64) -> io::Result<()> {
        // SAFETY: plain syscall on our own fd.
        let r = unsafe { libc::fallocate(self.fd(), mode, off as libc::off_t, len as libc::off_t) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn write_zeroes_range(&self, off: u64, len: u64, unmap: bool) -> io::Result<()> {
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        let zero = libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE;
        let first = if unmap { punch } else { zero };
        if self.fallocate(first, off, len).is_ok() {
            return Ok(());
        }
        if self
            .fallocate(if unmap { zero } else { punch }, off, len)
            .is_ok()
        {
            return Ok(());
        }
        // Block devices and file systems without either: write zeroes.
        let buf = vec![0u8; 64 * 1024];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            pwrite_all(self.fd(), buf.as_ptr(), n, off + done)?;
            done += n as u64;
        }
        Ok(())
    }

    fn discard_range(&self, off: u64, len: u64) -> io::Result<()> {
        // Discard is advisory: a backend that cannot punch holes just ignores it.
        let _ = self.fallocate(
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        );
        Ok(())
    }

    fn dwz(&self, mem: &GuestMemoryMmap, data: &Sg, discard: bool) -> u8 {
        if self.read_only {
            return VIRTIO_BLK_S_IOERR;
        }
        let n = data.len();
        if n == 0 || !n.is_multiple_of(BLK_DWZ_SEG_SIZE as u64) {
            return VIRTIO_BLK_S_IOERR;
        }
        let nseg = n / BLK_DWZ_SEG_SIZE as u64;
        if nseg > u64::from(MAX_DWZ_SEG) {
            return VIRTIO_BLK_S_IOERR;
        }
        for i in 0..nseg {
            let mut seg = [0u8; BLK_DWZ_SEG_SIZE];
            if !data
                .slice(i * BLK_DWZ_SEG_SIZE as u64, BLK_DWZ_SEG_SIZE as u64)
                .read_into(mem, &mut seg)
            {
                return VIRTIO_BLK_S_IOERR;
            }
            let sector = u64::from_le_bytes(seg[0..8].try_into().unwrap());
            let num = u32::from_le_bytes(seg[8..12].try_into().unwrap());
            let flags = u32::from_le_bytes(seg[12..16].try_into().unwrap());
            let max = if discard {
                MAX_DISCARD_SECTORS
            } else {
                MAX_WRITE_ZEROES_SECTORS
            };
            if flags & !VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0 || (discard && flags != 0) {
                return VIRTIO_BLK_S_UNSUPP;
            }
            if num > max || !self.in_bounds(sector, u64::from(num) * SECTOR_SIZE) {
                return VIRTIO_BLK_S_IOERR;
            }
            let off = sector * SECTOR_SIZE;
            let len = u64::from(num) * SECTOR_SIZE;
            let r = if discard {
                self.discard_range(off, len)
            } else {
                self.write_zeroes_range(off, len, flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0)
            };
            if r.is_err() {
                return VIRTIO_BLK_S_IOERR;
            }
        }
        VIRTIO_BLK_S_OK
    }

    /// Execute one request described by `descs`, write its status byte, and return the status
    /// and the number of bytes written to device-writable buffers. `None` if the chain is so
    /// malformed that no status can be written (the request is completed with length 0).
    pub fn handle(&self, mem: &GuestMemoryMmap, descs: &[Desc]) -> Option<Completion> {
        let l = match layout(descs) {
            Ok(l) => l,
            Err(e) => {
                debug!("vduse-blk: malformed request: {e}");
                return None;
            }
        };
        let mut hdr = [0u8; BLK_OUTHDR_SIZE];
        if !l.out.read_into(mem, &mut hdr) {
            return None;
        }
        let ty = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        let in_len = l.inb.len();
        let data_in = l.inb.slice(0, in_len - 1);
        let status_sg = l.inb.slice(in_len - 1, 1);
        let data_out = l
            .out
            .slice(BLK_OUTHDR_SIZE as u64, l.out.len() - BLK_OUTHDR_SIZE as u64);
        let mut written = 0u64;
        let status = match ty {
            VIRTIO_BLK_T_IN => {
                let n = data_in.len();
                let ok = self.in_bounds(sector, n)
                    && self
                        .read_to_guest(mem, &data_in, sector * SECTOR_SIZE)
                        .is_ok();
                if ok {
                    written = n;
                    VIRTIO_BLK_S_OK
                } else {
                    VIRTIO_BLK_S_IOERR
                }
            }
            VIRTIO_BLK_T_OUT => {
                let n = data_out.len();
                let ok = !self.read_only
                    && self.in_bounds(sector, n)
                    && self
                        .write_from_guest(mem, &data_out, sector * SECTOR_SIZE)
                        .is_ok();
                if ok {
                    VIRTIO_BLK_S_OK
                } else {
                    VIRTIO_BLK_S_IOERR
                }
            }
            VIRTIO_BLK_T_FLUSH => {
                // SAFETY: plain syscall on our own fd.
                if unsafe { libc::fdatasync(self.fd()) } == 0 || self.read_only {
                    VIRTIO_BLK_S_OK
                } else {
                    VIRTIO_BLK_S_IOERR
                }
            }
            VIRTIO_BLK_T_GET_ID => {
                let n = data_in.len().min(VIRTIO_BLK_ID_BYTES as u64) as usize;
                match data_in.write_from(mem, &self.id[..n]) {
                    Some(w) => {
                        written = w;
                        VIRTIO_BLK_S_OK
                    }
                    None => VIRTIO_BLK_S_IOERR,
                }
            }
            VIRTIO_BLK_T_DISCARD => self.dwz(mem, &data_out, true),
            VIRTIO_BLK_T_WRITE_ZEROES => self.dwz(mem, &data_out, false),
            _ => VIRTIO_BLK_S_UNSUPP,
        };
        status_sg.write_from(mem, &[status])?;
        Some(Completion {
            status,
            used_len: (written + 1) as u32,
        })
    }
}
