// SPDX-License-Identifier: GPL-2.0

//! The file operations of a device node: the device ioctls (and their i386 compat forms) and
//! the message channel's `read`, `write` and `poll`.
//!
//! C version: `vduse_dev_ioctl()`, `vduse_dev_read_iter()`, `vduse_dev_write_iter()`,
//! `vduse_dev_poll()`, `vduse_dev_release()` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//! Lock order: that of [`super`].

use super::{
    Device,
    STATUS_DRIVER_OK,
    VIRTIO_F_RING_PACKED, //
};
use crate::{
    driver::{
        msg::ReadMode,
        vq::Vq, //
    },
    kapi::{
        eventfd::EventFdCtx,
        fd::receive_fd,
        file_ops::{
            kiocb_nonblock,
            FileOps, //
        },
        nospec::index_nospec,
    },
    uapi,
};
use kernel::{
    fs::{
        File,
        Kiocb, //
    },
    ioctl::_IOC_SIZE,
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        atomic::Relaxed,
        poll::PollTable,
        Arc,
        ArcBorrow, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

impl Device {
    /// The virtqueue `index` from userspace, or `EINVAL`.
    fn vq(&self, index: u32) -> Result<&Arc<Vq>> {
        // CAST: `vq_num <= 0xffff`.
        let n = self.vqs.len() as u32;
        if index >= n {
            return Err(EINVAL);
        }
        self.vqs.get(index_nospec(index, n) as usize).ok_or(EINVAL)
    }

    /// Whether interrupts may be injected now (`vduse_dev_queue_irq_work` preconditions).
    fn check_irq_allowed(&self) -> Result {
        // Without the state mutex: a status that changes right after the test is no different
        // from one that changes right after the lock is dropped (the callbacks have their own
        // locks, which a reset takes).
        if self.suspended.load(Relaxed) || !self.driver_ok.load(Relaxed) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// `VDUSE_DEV_SET_CONFIG`.
    fn set_config(&self, arg: usize) -> Result {
        let hdr_len = core::mem::size_of::<uapi::ConfigData>();
        let hdr: uapi::ConfigData = UserSlice::new(UserPtr::from_addr(arg), hdr_len)
            .reader()
            .read()?;
        // The size is fixed at creation: checked without the lock.
        // CAST: `config_size <= PAGE_SIZE`.
        let size = self.config.lock().len() as u32;
        if hdr.offset > size || hdr.length == 0 || hdr.length > size - hdr.offset {
            return Err(EINVAL);
        }
        let (off, len) = (hdr.offset as usize, hdr.length as usize);
        // Copied before the lock is taken: a user page whose fault blocks must not stall
        // `get_config` (virtio probe runs it under the vDPA core's global lock).
        let mut data = KVec::new();
        UserSlice::new(UserPtr::from_addr(arg).wrapping_byte_add(hdr_len), len)
            .reader()
            .read_all(&mut data, GFP_KERNEL)?;
        let mut config = self.config.lock();
        let dst = config.get_mut(off..off + len).ok_or(EINVAL)?;
        dst.copy_from_slice(data.get(..len).ok_or(EFAULT)?);
        Ok(())
    }

    /// `VDUSE_VQ_SETUP`.
    fn vq_setup(&self, c: uapi::VqConfig) -> Result {
        let vq = self.vq(c.index)?;
        if self.api.has_groups() {
            if c.group >= self.ngroups || self.state.lock().status & STATUS_DRIVER_OK != 0 {
                return Err(EINVAL);
            }
        } else if c.group != 0 {
            return Err(EINVAL);
        }
        if c.reserved1 != 0 || c.reserved2.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        vq.setup(c.max_size, c.group);
        Ok(())
    }

    /// `VDUSE_VQ_GET_INFO`: fills in `info` (whose `index` userspace set) as C does.
    fn vq_get_info(&self, info: &mut uapi::VqInfo) -> Result {
        let packed = self.state.lock().driver_features & VIRTIO_F_RING_PACKED != 0;
        self.vq(info.index)?.fill_info(info, packed);
        Ok(())
    }

    /// `VDUSE_VQ_SETUP_KICKFD`.
    ///
    /// Unlike 7.3, a negative fd other than `VDUSE_EVENTFD_DEASSIGN` is `EINVAL`, not a silent
    /// success (`Documentation/differences.rst`).
    fn vq_setup_kickfd(&self, e: uapi::VqEventfd) -> Result {
        let vq = self.vq(e.index)?;
        let ctx = match e.fd {
            uapi::VDUSE_EVENTFD_DEASSIGN => None,
            fd if fd < 0 => return Err(EINVAL),
            fd => Some(EventFdCtx::from_fd(fd)?),
        };
        vq.set_kickfd(ctx);
        Ok(())
    }

    /// The address space `asid` from userspace for the IOTLB ioctls, or `EINVAL`.
    fn check_asid(&self, asid: u32) -> Result<u32> {
        if (!self.api.has_groups() && asid != 0) || asid >= self.nas {
            return Err(EINVAL);
        }
        Ok(index_nospec(asid, self.nas))
    }

    /// `VDUSE_IOTLB_GET_FD` and `VDUSE_IOTLB_GET_FD2`: the first mapping overlapping
    /// `e.start..=e.last`, written back into `e` (offset, range, permissions), and its file:
    /// the consumer's, or the domain's own for the bounce region and the coherent buffers.
    fn iotlb_get_fd(&self, e: &mut uapi::IotlbEntryV2) -> Result<ARef<File>> {
        if e.reserved.iter().any(|&w| w != 0) || e.start > e.last || e.asid >= self.nas {
            return Err(EINVAL);
        }
        let (domain, domain_file) = self.space_in_use(index_nospec(e.asid, self.nas))?;
        let m = domain.lookup(e.start, e.last).ok_or(EINVAL)?;
        e.offset = m.offset;
        e.start = m.start;
        e.last = m.last;
        e.perm = m.perm;
        Ok(m.file.unwrap_or(domain_file))
    }

    /// Installs `file` in a new file descriptor of the calling process through `receive_fd`,
    /// as C does (the LSM's `file_receive` check included; C's `perm_to_file_flags` gives no
    /// `O_CLOEXEC`, so the flags are 0); the fd is the ioctl's return value.
    fn install_fd(file: ARef<File>) -> Result<isize> {
        let fd = receive_fd(&file, 0)?;
        // CAST: File descriptors are non-negative `int`s.
        Ok(fd as isize)
    }

    /// `VDUSE_IOTLB_GET_INFO`.
    ///
    /// Unlike 7.3 (which returns `EFAULT`), bad reserved words or a bad `asid` are `EINVAL`
    /// (`Documentation/differences.rst`).
    fn iotlb_get_info(&self, info: &uapi::IovaInfo) -> Result<uapi::IovaInfo> {
        if info.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let asid = self.check_asid(info.asid)?;
        if info.start > info.last {
            return Err(EINVAL);
        }
        let (domain, _) = self.space_in_use(asid)?;
        let m = domain.lookup(info.start, info.last).ok_or(EINVAL)?;
        Ok(uapi::IovaInfo {
            start: m.start,
            last: m.last,
            // User memory may back the bounce region only.
            capability: if m.is_bounce {
                uapi::VDUSE_IOVA_CAP_UMEM
            } else {
                0
            },
            ..*info
        })
    }

    /// `VDUSE_IOTLB_REG_UMEM`.
    fn reg_umem(&self, u: &uapi::IovaUmem) -> Result {
        if u.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let asid = self.check_asid(u.asid)?;
        // Held across the registration: it serialises registrations and deregistrations.
        let d = self.domain.lock();
        self.domain_locked(&d, asid)
            .ok_or(EINVAL)?
            .reg_umem(u.iova, u.uaddr, u.size)
    }

    /// `VDUSE_IOTLB_DEREG_UMEM`.
    fn dereg_umem(&self, u: &uapi::IovaUmem) -> Result {
        if u.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let asid = self.check_asid(u.asid)?;
        let d = self.domain.lock();
        // Nothing can be registered without a domain.
        self.domain_locked(&d, asid)
            .ok_or(ENOENT)?
            .dereg_umem(u.iova, u.size)
    }

    /// One device ioctl, `cmd` already decoded from its compat form if any.
    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        if self.msgs.is_broken() {
            return Err(EPERM);
        }
        let user = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
        match cmd {
            uapi::VDUSE_IOTLB_GET_FD | uapi::VDUSE_IOTLB_GET_FD2 => {
                if cmd == uapi::VDUSE_IOTLB_GET_FD2 && !self.api.has_groups() {
                    return Err(ENOTTY);
                }
                // GET_FD reads the v1 layout's prefix; the rest stays zero (asid 0).
                let size = _IOC_SIZE(cmd);
                let mut e = uapi::IotlbEntryV2::default();
                let (mut r, mut w) = user.reader_writer();
                r.read_slice(e.as_bytes_mut().get_mut(..size).ok_or(EINVAL)?)?;
                let file = self.iotlb_get_fd(&mut e)?;
                // Written back before the fd exists, as in C: a fault leaves no fd behind.
                w.write_slice(e.as_bytes().get(..size).ok_or(EINVAL)?)?;
                Self::install_fd(file)
            }
            uapi::VDUSE_DEV_GET_FEATURES => {
                let f = self.state.lock().driver_features;
                user.writer().write(&f)?;
                Ok(0)
            }
            uapi::VDUSE_DEV_SET_CONFIG => self.set_config(arg).map(|()| 0),
            uapi::VDUSE_DEV_INJECT_CONFIG_IRQ => {
                self.check_irq_allowed()?;
                self.inject_config_irq();
                Ok(0)
            }
            uapi::VDUSE_VQ_SETUP => self.vq_setup(user.reader().read()?).map(|()| 0),
            uapi::VDUSE_VQ_GET_INFO => {
                let (mut r, mut w) = user.reader_writer();
                let mut info: uapi::VqInfo = r.read()?;
                self.vq_get_info(&mut info)?;
                w.write(&info)?;
                Ok(0)
            }
            uapi::VDUSE_VQ_SETUP_KICKFD => self.vq_setup_kickfd(user.reader().read()?).map(|()| 0),
            uapi::VDUSE_VQ_INJECT_IRQ => {
                let index: u32 = user.reader().read()?;
                let vq = self.vq(index)?;
                self.check_irq_allowed()?;
                vq.inject_irq();
                Ok(0)
            }
            uapi::VDUSE_IOTLB_REG_UMEM => self.reg_umem(&user.reader().read()?).map(|()| 0),
            uapi::VDUSE_IOTLB_DEREG_UMEM => self.dereg_umem(&user.reader().read()?).map(|()| 0),
            uapi::VDUSE_IOTLB_GET_INFO => {
                let (mut r, mut w) = user.reader_writer();
                let info = self.iotlb_get_info(&r.read()?)?;
                w.write(&info)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// Reads a `T` the size of its i386 layout (`COMPAT_VDUSE_*`), zero-extended.
fn read_compat<T: FromBytes + AsBytes + Default>(arg: usize, len: usize) -> Result<T> {
    let mut v = T::default();
    UserSlice::new(UserPtr::from_addr(arg), len)
        .reader()
        .read_slice(v.as_bytes_mut().get_mut(..len).ok_or(EINVAL)?)?;
    Ok(v)
}

/// `COMPAT_VDUSE_IOTLB_GET_FD`: `struct vduse_iotlb_entry` on i386 (28 bytes).
const COMPAT_IOTLB_GET_FD: u32 = 0xc01c_8110;
/// `COMPAT_VDUSE_VQ_GET_INFO`: `struct vduse_vq_info` on i386 (44 bytes).
const COMPAT_VQ_GET_INFO: u32 = 0xc02c_8115;

#[vtable]
impl FileOps for Device {
    type Ptr = Arc<Device>;

    fn release(this: Arc<Device>, _file: &File) {
        this.dereg_all_umem();
        this.msgs.requeue_unanswered();
        this.disconnect();
        // Broken (a request timed out) and now without a daemon: never to be served again.
        if this.msgs.is_broken() {
            this.orphan();
        } else {
            this.arm_orphan_timer();
        }
    }

    fn read_iter(kiocb: Kiocb<'_, Arc<Device>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let size = core::mem::size_of::<uapi::DevRequest>();
        if iov.len() < size {
            return Err(EINVAL);
        }
        let dev = kiocb.file();
        let mode = if kiocb_nonblock(&kiocb) {
            ReadMode::NonBlocking
        } else {
            ReadMode::Blocking
        };
        let req = dev.msgs.read(mode)?;
        if iov.copy_to_iter(req.as_bytes()) != size {
            dev.msgs.unread(req.request_id);
            return Err(EFAULT);
        }
        Ok(size)
    }

    fn write_iter(kiocb: Kiocb<'_, Arc<Device>>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let size = core::mem::size_of::<uapi::DevResponse>();
        let mut resp = uapi::DevResponse {
            request_id: 0,
            result: 0,
            reserved: [0; 4],
            payload: [0; 32],
        };
        if iov.copy_from_iter(resp.as_bytes_mut()) != size {
            return Err(EINVAL);
        }
        kiocb.file().msgs.write(resp)?;
        Ok(size)
    }

    fn poll(this: ArcBorrow<'_, Device>, file: &File, table: PollTable<'_>) -> u32 {
        table.register_wait(file, this.msgs.readers());
        this.msgs.poll_mask()
    }

    fn ioctl(this: ArcBorrow<'_, Device>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        this.ioctl(cmd, arg)
    }

    #[cfg(CONFIG_COMPAT)]
    fn compat_ioctl(
        this: ArcBorrow<'_, Device>,
        _file: &File,
        cmd: u32,
        arg: usize,
    ) -> Result<isize> {
        match cmd {
            COMPAT_IOTLB_GET_FD => {
                if this.msgs.is_broken() {
                    return Err(EPERM);
                }
                let len = _IOC_SIZE(COMPAT_IOTLB_GET_FD);
                let e: uapi::IotlbEntry = read_compat(arg, len)?;
                let mut v2 = uapi::IotlbEntryV2 {
                    offset: e.offset,
                    start: e.start,
                    last: e.last,
                    perm: e.perm,
                    ..Default::default()
                };
                let file = this.iotlb_get_fd(&mut v2)?;
                let out = uapi::IotlbEntry {
                    offset: v2.offset,
                    start: v2.start,
                    last: v2.last,
                    perm: v2.perm,
                    padding: [0; 7],
                };
                UserSlice::new(UserPtr::from_addr(arg), len)
                    .writer()
                    .write_slice(out.as_bytes().get(..len).ok_or(EINVAL)?)?;
                Self::install_fd(file)
            }
            COMPAT_VQ_GET_INFO => {
                if this.msgs.is_broken() {
                    return Err(EPERM);
                }
                // The compat path starts from a zeroed struct, as C does.
                let len = _IOC_SIZE(COMPAT_VQ_GET_INFO);
                let mut info: uapi::VqInfo = read_compat(arg, len)?;
                info.padding = [0; 7];
                info.ready = 0;
                this.vq_get_info(&mut info)?;
                UserSlice::new(UserPtr::from_addr(arg), len)
                    .writer()
                    .write_slice(info.as_bytes().get(..len).ok_or(EINVAL)?)?;
                Ok(0)
            }
            // `compat_ptr()` is the identity on x86_64: the other layouts are the same.
            _ => this.ioctl(cmd, arg),
        }
    }
}
