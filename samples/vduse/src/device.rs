// SPDX-License-Identifier: GPL-2.0
//! Thin wrappers around `/dev/vduse/control` and `/dev/vduse/$NAME`.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use log::{info, warn};
use vm_memory::MmapRegion;

use crate::memory::{IotlbMapping, IotlbSource};
use crate::uapi::*;

/// `ioctl(2)` returning the non-negative result or the errno as an error.
///
/// # Safety
///
/// `arg` must point to a value of the type `req` expects (or be unused by `req`).
unsafe fn ioctl<T>(f: &File, req: u32, arg: *mut T) -> io::Result<i32> {
    // SAFETY: forwarded to the caller.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), req as libc::c_ulong, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The errno of an I/O error, or 0.
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// `/dev/vduse/control`.
pub struct Control {
    file: File,
}

impl Control {
    /// Path of the VDUSE control node.
    pub const PATH: &'static str = "/dev/vduse/control";

    /// Open the control node read-write (close-on-exec); `ENOENT` usually means the `vduse`
    /// module is not loaded.
    pub fn open() -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(Self::PATH)?;
        Ok(Control { file })
    }

    /// `VDUSE_GET_API_VERSION`. Note: on Linux >= 7.0 merely asking opts this fd into API 1.
    pub fn get_api_version(&self) -> io::Result<u64> {
        let mut v = 0u64;
        // SAFETY: _IOR(u64).
        unsafe { ioctl(&self.file, VDUSE_GET_API_VERSION, &mut v) }?;
        Ok(v)
    }

    /// `VDUSE_SET_API_VERSION`: devices created through this fd afterwards use API `v`;
    /// `EINVAL` if the kernel does not know that version.
    pub fn set_api_version(&self, v: u64) -> io::Result<()> {
        let mut v = v;
        // SAFETY: _IOW(u64).
        unsafe { ioctl(&self.file, VDUSE_SET_API_VERSION, &mut v) }.map(drop)
    }

    /// `VDUSE_GET_FEATURES` (Linux >= 7.3; older kernels answer EINVAL).
    pub fn get_features(&self) -> io::Result<u64> {
        let mut v = 0u64;
        // SAFETY: _IOR(u64).
        unsafe { ioctl(&self.file, VDUSE_GET_FEATURES, &mut v) }?;
        Ok(v)
    }

    /// `VDUSE_SET_FEATURES`: enable the VDUSE features `f` (bits `1 << VDUSE_F_*`, a subset of
    /// [`Control::get_features`]) for devices created through this fd afterwards.
    pub fn set_features(&self, f: u64) -> io::Result<()> {
        let mut v = f;
        // SAFETY: _IOW(u64).
        unsafe { ioctl(&self.file, VDUSE_SET_FEATURES, &mut v) }.map(drop)
    }

    /// `VDUSE_CREATE_DEV` with `config` appended after the fixed part.
    pub fn create_dev(&self, cfg: &DevConfig, config: &[u8]) -> io::Result<()> {
        let fixed = std::mem::size_of::<DevConfig>();
        // u64 storage keeps the buffer 8-byte aligned like the C struct.
        let mut buf = vec![0u64; (fixed + config.len()).div_ceil(8)];
        let p = buf.as_mut_ptr().cast::<u8>();
        // SAFETY: `buf` holds at least fixed + config.len() bytes; DevConfig has no padding.
        unsafe {
            std::ptr::copy_nonoverlapping((cfg as *const DevConfig).cast::<u8>(), p, fixed);
            std::ptr::copy_nonoverlapping(config.as_ptr(), p.add(fixed), config.len());
            ioctl(&self.file, VDUSE_CREATE_DEV, p)
        }
        .map(drop)
    }

    /// `VDUSE_DESTROY_DEV` of device `name`: `EBUSY` while its node is open or it is still
    /// bound to the vDPA bus; an invalid name fails with `InvalidInput` before the ioctl.
    pub fn destroy_dev(&self, name: &str) -> io::Result<()> {
        let mut n = name_bytes(name)?;
        // SAFETY: _IOW(char[256]).
        unsafe { ioctl(&self.file, VDUSE_DESTROY_DEV, n.as_mut_ptr()) }.map(drop)
    }
}

/// A device name as the NUL-terminated `char[VDUSE_NAME_MAX]` of the uAPI.
pub fn name_bytes(name: &str) -> io::Result<[u8; VDUSE_NAME_MAX]> {
    if name.is_empty() || name.len() >= VDUSE_NAME_MAX || name.contains('/') || name.contains('\0')
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid device name",
        ));
    }
    let mut n = [0u8; VDUSE_NAME_MAX];
    n[..name.len()].copy_from_slice(name.as_bytes());
    Ok(n)
}

/// `/dev/vduse/$NAME`.
pub struct Device {
    file: File,
    api_version: u64,
    /// Offer our own memory as the bounce buffer (`--umem`).
    umem: bool,
    /// The bounce buffer registered with `VDUSE_IOTLB_REG_UMEM`: (address space, memory).
    /// Kept for as long as the device is open: the kernel keeps the registration until then.
    umem_buf: Mutex<Option<(u32, MmapRegion)>>,
    /// Held for reading by a queue thread while it reads or writes buffers, for writing while
    /// the bounce buffer is switched ([`Device::cycle_umem`]): between `DEREG_UMEM` and
    /// `REG_UMEM` the kernel's pages, not ours, hold the data.
    data_gate: RwLock<()>,
}

impl Device {
    /// The node of device `name`, `/dev/vduse/$NAME` (the name is not validated).
    pub fn path(name: &str) -> String {
        format!("/dev/vduse/{name}")
    }

    /// Open the device (single opener: EBUSY while another daemon holds it).
    pub fn open(name: &str, api_version: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(Self::path(name))?;
        Ok(Device {
            file,
            api_version,
            umem: false,
            umem_buf: Mutex::new(None),
            data_gate: RwLock::new(()),
        })
    }

    /// A device on an already open file: for tests, where a socket stands in for the node
    /// (the message channel works, the ioctls fail).
    pub fn from_file(file: File, api_version: u64) -> Self {
        Device {
            file,
            api_version,
            umem: false,
            umem_buf: Mutex::new(None),
            data_gate: RwLock::new(()),
        }
    }

    /// `VDUSE_DEV_SET_CONFIG`: `data` at `offset` of the config space.
    pub fn set_config(&self, offset: u32, data: &[u8]) -> io::Result<()> {
        let hdr = std::mem::size_of::<ConfigData>();
        // u64 words: the buffer is aligned for the header.
        let mut buf = vec![0u64; (hdr + data.len()).div_ceil(8)];
        let length = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "config too large"))?;
        let h = ConfigData { offset, length };
        // SAFETY: `buf` holds the header and `data.len()` bytes after it; both are plain bytes.
        unsafe {
            let p = buf.as_mut_ptr().cast::<u8>();
            std::ptr::write_unaligned(p.cast::<ConfigData>(), h);
            std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(hdr), data.len());
            ioctl(&self.file, VDUSE_DEV_SET_CONFIG, buf.as_mut_ptr())
        }
        .map(drop)
    }

    /// `VDUSE_DEV_INJECT_CONFIG_IRQ`: tells the driver the config space changed.
    pub fn inject_config_irq(&self) -> io::Result<()> {
        // SAFETY: _IO: no argument.
        unsafe {
            ioctl(
                &self.file,
                VDUSE_DEV_INJECT_CONFIG_IRQ,
                std::ptr::null_mut::<u8>(),
            )
        }
        .map(drop)
    }

    /// With `on`, the bounce buffer is registered from our own memory when first mapped.
    pub fn with_umem(mut self, on: bool) -> Self {
        self.umem = on;
        self
    }

    /// `VDUSE_IOTLB_GET_INFO`: the entry overlapping `[start, last]` and its capabilities.
    pub fn iova_info(&self, asid: u32, start: u64, last: u64) -> io::Result<IovaInfo> {
        let mut i = IovaInfo {
            start,
            last,
            capability: 0,
            asid,
            reserved: [0; 5],
        };
        // SAFETY: _IOWR(struct vduse_iova_info).
        unsafe { ioctl(&self.file, VDUSE_IOTLB_GET_INFO, &mut i) }?;
        Ok(i)
    }

    /// `VDUSE_IOTLB_REG_UMEM`: `size` bytes at `uaddr` become the bounce buffer of `asid`.
    fn reg_umem(&self, asid: u32, uaddr: u64, size: u64) -> io::Result<()> {
        let mut u = IovaUmem {
            uaddr,
            iova: 0,
            size,
            asid,
            reserved: [0; 5],
        };
        // SAFETY: _IOW(struct vduse_iova_umem).
        unsafe { ioctl(&self.file, VDUSE_IOTLB_REG_UMEM, &mut u) }?;
        Ok(())
    }

    /// `VDUSE_IOTLB_DEREG_UMEM` of the whole bounce region of `asid`.
    fn dereg_umem(&self, asid: u32, size: u64) -> io::Result<()> {
        let mut u = IovaUmem {
            uaddr: 0,
            iova: 0,
            size,
            asid,
            reserved: [0; 5],
        };
        // SAFETY: _IOW(struct vduse_iova_umem).
        unsafe { ioctl(&self.file, VDUSE_IOTLB_DEREG_UMEM, &mut u) }?;
        Ok(())
    }

    /// A guard to hold while reading or writing the data of requests (see `data_gate`).
    pub fn data_access(&self) -> RwLockReadGuard<'_, ()> {
        self.data_gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// With our bounce buffer registered: `VDUSE_IOTLB_DEREG_UMEM` then `VDUSE_IOTLB_REG_UMEM`
    /// of the same memory, while no queue thread touches data (the kernel copies the slots in
    /// use out and back in; the driver's DMA goes on meanwhile). `Ok(false)` if nothing is
    /// registered (yet).
    pub fn cycle_umem(&self) -> io::Result<bool> {
        let _no_data_access = self.data_gate.write().unwrap_or_else(|e| e.into_inner());
        let buf = self.umem_buf.lock().unwrap_or_else(|e| e.into_inner());
        let Some((asid, region)) = buf.as_ref() else {
            return Ok(false);
        };
        let len = region.size() as u64;
        self.dereg_umem(*asid, len)?;
        self.reg_umem(*asid, region.as_ptr() as u64, len)?;
        Ok(true)
    }

    /// The VDUSE API version given when the device was opened (not asked of the kernel).
    pub fn api_version(&self) -> u64 {
        self.api_version
    }

    /// The raw fd of the device node, to poll for control messages; it stays owned by `self`.
    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// `VDUSE_DEV_GET_FEATURES`: the features the driver accepted.
    pub fn driver_features(&self) -> io::Result<u64> {
        let mut v = 0u64;
        // SAFETY: _IOR(u64).
        unsafe { ioctl(&self.file, VDUSE_DEV_GET_FEATURES, &mut v) }?;
        Ok(v)
    }

    /// `VDUSE_VQ_SETUP`: queue `index` gets at most `max_size` descriptors and belongs to
    /// virtqueue group `group` (API >= 1 only; pass 0 otherwise).
    pub fn vq_setup(&self, index: u32, max_size: u16, group: u32) -> io::Result<()> {
        let mut c = VqConfig {
            index,
            max_size,
            group,
            ..Default::default()
        };
        // SAFETY: _IOW(struct vduse_vq_config).
        unsafe { ioctl(&self.file, VDUSE_VQ_SETUP, &mut c) }.map(drop)
    }

    /// `VDUSE_VQ_GET_INFO`: how the driver set up queue `index` (size, ring IOVAs, avail
    /// index, ready).
    pub fn vq_info(&self, index: u32) -> io::Result<VqInfo> {
        let mut i = VqInfo {
            index,
            ..Default::default()
        };
        // SAFETY: _IOWR(struct vduse_vq_info).
        unsafe { ioctl(&self.file, VDUSE_VQ_GET_INFO, &mut i) }?;
        Ok(i)
    }

    /// `VDUSE_VQ_SETUP_KICKFD`: the kernel signals eventfd `fd` when the driver kicks queue
    /// `index`; `VDUSE_EVENTFD_DEASSIGN` removes it.
    pub fn vq_setup_kickfd(&self, index: u32, fd: i32) -> io::Result<()> {
        let mut e = VqEventfd { index, fd };
        // SAFETY: _IOW(struct vduse_vq_eventfd).
        unsafe { ioctl(&self.file, VDUSE_VQ_SETUP_KICKFD, &mut e) }.map(drop)
    }

    /// `VDUSE_VQ_INJECT_IRQ`: interrupts the driver for queue `index` (new used buffers).
    pub fn vq_inject_irq(&self, index: u32) -> io::Result<()> {
        let mut i = index;
        // SAFETY: _IOW(u32).
        unsafe { ioctl(&self.file, VDUSE_VQ_INJECT_IRQ, &mut i) }.map(drop)
    }

    /// Read one control message; `Ok(None)` if none is queued (the fd is non-blocking).
    pub fn read_request(&self) -> io::Result<Option<DevRequest>> {
        let mut req = DevRequest::default();
        let buf = req.as_bytes_mut();
        // SAFETY: valid buffer of the right size.
        let n = unsafe { libc::read(self.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match errno(&e) {
                libc::EAGAIN | libc::EINTR => Ok(None),
                _ => Err(e),
            };
        }
        if n as usize != std::mem::size_of::<DevRequest>() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short VDUSE message",
            ));
        }
        Ok(Some(req))
    }

    /// Write the reply to one control message; a short write is a `WriteZero` error.
    pub fn write_response(&self, resp: &DevResponse) -> io::Result<()> {
        let b = resp.as_bytes();
        // SAFETY: valid buffer.
        let n = unsafe { libc::write(self.file.as_raw_fd(), b.as_ptr().cast(), b.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != b.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short VDUSE response",
            ));
        }
        Ok(())
    }
}

impl IotlbSource for Device {
    /// With `--umem`, the bounce region (the entry at IOVA 0 that `VDUSE_IOTLB_GET_INFO` marks
    /// `VDUSE_IOVA_CAP_UMEM`) is backed by anonymous memory of ours, registered once; on a
    /// kernel or entry without the capability, or if registration fails (e.g. over
    /// `RLIMIT_MEMLOCK`), the entry's file is mapped as usual.
    fn user_memory(&self, asid: u32, m: &IotlbMapping) -> Option<MmapRegion> {
        if !self.umem || m.start != 0 {
            return None;
        }
        let len = usize::try_from(m.last.checked_add(1)?).ok()?;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let mut buf = self.umem_buf.lock().unwrap();
        if buf.is_none() {
            match self.iova_info(asid, 0, 0) {
                Ok(i) if i.capability & VDUSE_IOVA_CAP_UMEM != 0 && i.last == m.last => {}
                Ok(_) => return None,
                Err(e) => {
                    warn!("VDUSE_IOTLB_GET_INFO: {e}; mapping the bounce buffer's file");
                    return None;
                }
            }
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
            let region = MmapRegion::build(None, len, prot, flags).ok()?;
            if let Err(e) = self.reg_umem(asid, region.as_ptr() as u64, len as u64) {
                warn!("VDUSE_IOTLB_REG_UMEM: {e}; mapping the bounce buffer's file");
                return None;
            }
            info!(
                "asid {asid}: bounce buffer in our own memory (VDUSE_IOTLB_REG_UMEM, {len} bytes)"
            );
            *buf = Some((asid, region));
        }
        let (a, region) = buf.as_ref()?;
        if *a != asid || region.size() != len {
            return None;
        }
        // SAFETY: a view of the registered buffer, which `self` keeps mapped (and the kernel
        // pinned) while the device is open; the view does not unmap it.
        unsafe { MmapRegion::build_raw(region.as_ptr(), len, prot, libc::MAP_PRIVATE) }.ok()
    }

    /// `VDUSE_IOTLB_GET_FD2` with API 1, `VDUSE_IOTLB_GET_FD` (address space 0 only) with API 0.
    fn iotlb_get_fd(&self, asid: u32, start: u64, last: u64) -> io::Result<Option<IotlbMapping>> {
        let r = if self.api_version >= VDUSE_API_VERSION_1 {
            let mut e = IotlbEntryV2 {
                start,
                last,
                asid,
                ..Default::default()
            };
            // SAFETY: _IOWR(struct vduse_iotlb_entry_v2).
            unsafe { ioctl(&self.file, VDUSE_IOTLB_GET_FD2, &mut e) }
                .map(|fd| (fd, e.offset, e.start, e.last, e.perm))
        } else {
            if asid != 0 {
                return Ok(None);
            }
            let mut e = IotlbEntry {
                start,
                last,
                ..Default::default()
            };
            // SAFETY: _IOWR(struct vduse_iotlb_entry).
            unsafe { ioctl(&self.file, VDUSE_IOTLB_GET_FD, &mut e) }
                .map(|fd| (fd, e.offset, e.start, e.last, e.perm))
        };
        match r {
            Ok((fd, offset, start, last, perm)) => {
                // SAFETY: the kernel installed a new fd for us.
                let file = unsafe { File::from_raw_fd(fd) };
                // The kernel does not set O_CLOEXEC on it.
                // SAFETY: plain fcntl on our fd.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                Ok(Some(IotlbMapping {
                    file,
                    offset,
                    start,
                    last,
                    perm,
                }))
            }
            Err(e) if errno(&e) == libc::EINVAL => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether a vDPA device `name` still exists (then `VDUSE_DESTROY_DEV` says EBUSY).
///
/// `vdpa dev del` removes the `/sys/bus/vdpa/devices/NAME` link *before* the virtio driver is
/// unbound (which still needs the daemon to answer messages); the vDPA device's own directory
/// under its VDUSE parent goes only after that. A remaining race (the vDPA device freed a
/// little after its directory) is covered by retrying on EBUSY.
pub fn vdpa_attached(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/bus/vdpa/devices/{name}")).exists()
        || std::path::Path::new(&format!("/sys/class/vduse/{name}/{name}")).exists()
}

/// C string helper for paths.
pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in string"))
}
