// SPDX-License-Identifier: GPL-2.0

//! Raw system calls on VDUSE nodes, each returning what the kernel returned: the value or the
//! errno. Nothing here interprets results; the cases do.

use std::ffi::CString;

/// What a system call returned: its non-negative value or the errno.
pub type Ret = Result<i64, i32>;

/// Formats a [`Ret`] the way the transcripts record it: `0`, `3`, `-EINVAL`.
pub fn fmt_ret(r: &Ret) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("-{}", errno_name(*e)),
    }
}

/// The symbolic name of an errno.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EFAULT => "EFAULT",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::ENOTTY => "ENOTTY",
        libc::E2BIG => "E2BIG",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EINTR => "EINTR",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("E#{e}"),
    };
    name.to_string()
}

/// A raw syscall's return: the value, or `errno` when negative.
pub fn check(r: i64) -> Ret {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// `open(path, flags)`.
pub fn open(path: &str, flags: i32) -> Ret {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    check(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) }.into())
}

/// `close(fd)`.
pub fn close(fd: i32) -> Ret {
    // SAFETY: Closing a descriptor number has no memory-safety requirements.
    check(unsafe { libc::close(fd) }.into())
}

/// `ioctl(fd, cmd, arg)` with a pointer (or any integer) argument.
pub fn ioctl(fd: i32, cmd: u32, arg: usize) -> Ret {
    // SAFETY: The kernel validates `arg`; a bad pointer gives EFAULT, which is what some cases
    // test. Valid pointers passed by the cases point to live buffers of the ioctl's size.
    check(unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) }.into())
}

/// `ioctl` with a pointer to `v`, which the kernel may read and write.
pub fn ioctl_ptr<T>(fd: i32, cmd: u32, v: &mut T) -> Ret {
    ioctl(fd, cmd, v as *mut T as usize)
}

/// `read(fd, buf)`.
pub fn read(fd: i32, buf: &mut [u8]) -> Ret {
    // SAFETY: `buf` is valid for writes of its length.
    check(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as i64)
}

/// `write(fd, buf)`.
pub fn write(fd: i32, buf: &[u8]) -> Ret {
    // SAFETY: `buf` is valid for reads of its length.
    check(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) } as i64)
}

/// `lseek(fd, off, whence)`.
pub fn lseek(fd: i32, off: i64, whence: i32) -> Ret {
    // SAFETY: No memory is passed.
    check(unsafe { libc::lseek(fd, off, whence) })
}

/// `mmap(NULL, len, prot, MAP_SHARED, fd, 0)`; unmaps again on success and returns 0.
pub fn mmap_probe(fd: i32, len: usize, prot: i32) -> Ret {
    // SAFETY: A fresh mapping chosen by the kernel; unmapped right away.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: `p` is the mapping just created, of length `len`.
    unsafe { libc::munmap(p, len) };
    Ok(0)
}

/// A duplicate, in this process, of descriptor `fd` of process `pid` (`pidfd_open` then
/// `pidfd_getfd`: the same open file, as `SCM_RIGHTS` would pass it; needs ptrace rights over
/// `pid`, which root has).
pub fn pidfd_getfd(pid: i32, fd: i32) -> Ret {
    // SAFETY: No memory is passed.
    let pidfd = Fd(check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })? as i32);
    // SAFETY: No memory is passed.
    check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.0, fd, 0) })
}

/// An anonymous private read-write mapping, unmapped on drop.
pub struct AnonMap {
    p: *mut u8,
    len: usize,
}

impl AnonMap {
    /// `len` bytes, or `None` if `mmap` fails.
    pub fn new(len: usize) -> Option<Self> {
        // SAFETY: a fresh mapping the kernel chooses; checked for failure below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then(|| Self { p: p.cast(), len })
    }

    /// Its address.
    pub fn addr(&self) -> u64 {
        self.p as u64
    }

    /// Writes `byte` to all of it (every page faulted in).
    pub fn fill(&self, byte: u8) {
        // SAFETY: `p` is our mapping of `len` writable bytes.
        unsafe { std::ptr::write_bytes(self.p, byte, self.len) };
    }
}

impl Drop for AnonMap {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.p.cast(), self.len) };
    }
}

/// `poll` on one fd for `events`, waiting at most `timeout_ms`; returns the `pollfd` with its
/// `revents` (0 on timeout or error).
pub fn poll_fd(fd: i32, events: i16, timeout_ms: i32) -> libc::pollfd {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, timeout_ms) } < 0 {
        p.revents = 0;
    }
    p
}

/// An owned file descriptor that closes on drop.
pub struct Fd(pub i32);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = close(self.0);
    }
}

/// `_IOC(dir, type, nr, size)` of `include/uapi/asm-generic/ioctl.h`.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (ty << 8) | nr
}
/// `_IOC_NONE`.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE`.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`.
pub const IOC_READ: u32 = 2;

/// The VDUSE ioctl type byte.
pub const VDUSE_BASE: u32 = 0x81;

/// `VDUSE_GET_API_VERSION`.
pub const VDUSE_GET_API_VERSION: u32 = ioc(IOC_READ, VDUSE_BASE, 0x00, 8);
/// `VDUSE_SET_API_VERSION`.
pub const VDUSE_SET_API_VERSION: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x01, 8);
/// `VDUSE_GET_FEATURES`.
pub const VDUSE_GET_FEATURES: u32 = ioc(IOC_READ, VDUSE_BASE, 0x04, 8);
/// `VDUSE_SET_FEATURES`.
pub const VDUSE_SET_FEATURES: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x05, 8);
/// `VDUSE_IOTLB_GET_FD`.
pub const VDUSE_IOTLB_GET_FD: u32 = ioc(IOC_READ | IOC_WRITE, VDUSE_BASE, 0x10, 32);
/// `VDUSE_DEV_INJECT_CONFIG_IRQ`.
pub const VDUSE_DEV_INJECT_CONFIG_IRQ: u32 = ioc(IOC_NONE, VDUSE_BASE, 0x13, 0);
/// `VDUSE_CREATE_DEV`.
pub const VDUSE_CREATE_DEV: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x02, 336);
/// `VDUSE_DESTROY_DEV`.
pub const VDUSE_DESTROY_DEV: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x03, 256);
/// `VDUSE_DEV_GET_FEATURES`.
pub const VDUSE_DEV_GET_FEATURES: u32 = ioc(IOC_READ, VDUSE_BASE, 0x11, 8);
/// `VDUSE_DEV_SET_CONFIG`.
pub const VDUSE_DEV_SET_CONFIG: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x12, 8);
/// `VDUSE_VQ_SETUP`.
pub const VDUSE_VQ_SETUP: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x14, 32);
/// `VDUSE_VQ_GET_INFO`.
pub const VDUSE_VQ_GET_INFO: u32 = ioc(IOC_READ | IOC_WRITE, VDUSE_BASE, 0x15, 48);
/// `VDUSE_VQ_SETUP_KICKFD`.
pub const VDUSE_VQ_SETUP_KICKFD: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x16, 8);
/// `VDUSE_VQ_INJECT_IRQ`.
pub const VDUSE_VQ_INJECT_IRQ: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x17, 4);
/// `VDUSE_IOTLB_REG_UMEM`.
pub const VDUSE_IOTLB_REG_UMEM: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x18, 48);
/// `VDUSE_IOTLB_DEREG_UMEM`.
pub const VDUSE_IOTLB_DEREG_UMEM: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x19, 48);
/// `VDUSE_IOTLB_GET_INFO`.
pub const VDUSE_IOTLB_GET_INFO: u32 = ioc(IOC_READ | IOC_WRITE, VDUSE_BASE, 0x1a, 48);
/// `VDUSE_IOTLB_GET_FD2`.
pub const VDUSE_IOTLB_GET_FD2: u32 = ioc(IOC_READ | IOC_WRITE, VDUSE_BASE, 0x1b, 80);

/// The vhost ioctl type (`VHOST_VIRTIO`).
pub const VHOST: u32 = 0xaf;
/// `VHOST_GET_FEATURES`.
pub const VHOST_GET_FEATURES: u32 = ioc(IOC_READ, VHOST, 0x00, 8);
/// `VHOST_SET_FEATURES`.
pub const VHOST_SET_FEATURES: u32 = ioc(IOC_WRITE, VHOST, 0x00, 8);
/// `VHOST_SET_OWNER`.
pub const VHOST_SET_OWNER: u32 = ioc(IOC_NONE, VHOST, 0x01, 0);
/// `VHOST_SET_VRING_NUM`.
pub const VHOST_SET_VRING_NUM: u32 = ioc(IOC_WRITE, VHOST, 0x10, 8);
/// `VHOST_SET_VRING_ADDR`.
pub const VHOST_SET_VRING_ADDR: u32 = ioc(IOC_WRITE, VHOST, 0x11, 40);
/// `VHOST_SET_VRING_BASE`.
pub const VHOST_SET_VRING_BASE: u32 = ioc(IOC_WRITE, VHOST, 0x12, 8);
/// `VHOST_SET_VRING_KICK`.
pub const VHOST_SET_VRING_KICK: u32 = ioc(IOC_WRITE, VHOST, 0x20, 8);
/// `VHOST_SET_VRING_CALL`.
pub const VHOST_SET_VRING_CALL: u32 = ioc(IOC_WRITE, VHOST, 0x21, 8);
/// `VHOST_VDPA_GET_CONFIG`.
pub const VHOST_VDPA_GET_CONFIG: u32 = ioc(IOC_READ, VHOST, 0x73, 8);
/// `VHOST_VDPA_SET_CONFIG_CALL`.
pub const VHOST_VDPA_SET_CONFIG_CALL: u32 = ioc(IOC_WRITE, VHOST, 0x77, 4);
/// `VHOST_GET_VRING_BASE`.
pub const VHOST_GET_VRING_BASE: u32 = ioc(IOC_READ | IOC_WRITE, VHOST, 0x12, 8);
/// `VHOST_SET_BACKEND_FEATURES`.
pub const VHOST_SET_BACKEND_FEATURES: u32 = ioc(IOC_WRITE, VHOST, 0x25, 8);
/// `VHOST_GET_BACKEND_FEATURES`.
pub const VHOST_GET_BACKEND_FEATURES: u32 = ioc(IOC_READ, VHOST, 0x26, 8);
/// `VHOST_VDPA_GET_STATUS`.
pub const VHOST_VDPA_GET_STATUS: u32 = ioc(IOC_READ, VHOST, 0x71, 1);
/// `VHOST_VDPA_SET_STATUS`.
pub const VHOST_VDPA_SET_STATUS: u32 = ioc(IOC_WRITE, VHOST, 0x72, 1);
/// `VHOST_VDPA_SET_VRING_ENABLE`.
pub const VHOST_VDPA_SET_VRING_ENABLE: u32 = ioc(IOC_WRITE, VHOST, 0x75, 8);
/// `VHOST_VDPA_SET_GROUP_ASID`.
pub const VHOST_VDPA_SET_GROUP_ASID: u32 = ioc(IOC_WRITE, VHOST, 0x7c, 8);
/// `VHOST_VDPA_SUSPEND`.
pub const VHOST_VDPA_SUSPEND: u32 = ioc(IOC_NONE, VHOST, 0x7d, 0);
/// The control node.
pub const CONTROL: &str = "/dev/vduse/control";

/// A generic netlink socket (`NETLINK_GENERIC`), for the requests of iproute2's `vdpa` made
/// in this thread (so that the thread's `fail-nth` counts the kernel's allocations for them).
pub struct Genl(Fd);

/// `CTRL_ATTR_FAMILY_NAME` (`linux/genetlink.h`).
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// `CTRL_CMD_GETFAMILY`.
const CTRL_CMD_GETFAMILY: u8 = 3;

impl Genl {
    pub fn open() -> Result<Self, i32> {
        // SAFETY: Plain socket creation; the fd is owned by the returned `Fd`.
        let fd = check(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        } as i64)?;
        Ok(Self(Fd(fd as i32)))
    }

    /// Sends request `cmd` of `family` with string attributes `attrs` (type, value) and
    /// waits for the kernel's acknowledgement; the reply's attributes (after the generic
    /// header) of the first message that is not an acknowledgement, or the request's errno.
    pub fn request(&self, family: u16, cmd: u8, attrs: &[(u16, &str)]) -> Result<Vec<u8>, i32> {
        let mut msg = vec![0u8; 16];
        msg.extend_from_slice(&[cmd, 1, 0, 0]);
        for (ty, v) in attrs {
            let len = 4 + v.len() + 1;
            msg.extend_from_slice(&(len as u16).to_ne_bytes());
            msg.extend_from_slice(&ty.to_ne_bytes());
            msg.extend_from_slice(v.as_bytes());
            msg.push(0);
            msg.resize(msg.len().next_multiple_of(4), 0);
        }
        let n = msg.len() as u32;
        msg[0..4].copy_from_slice(&n.to_ne_bytes());
        msg[4..6].copy_from_slice(&family.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        msg[6..8].copy_from_slice(&flags.to_ne_bytes());
        msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
        write(self.0 .0, &msg)?;
        let mut reply = Vec::new();
        let mut buf = vec![0u8; 16384];
        loop {
            let k = read(self.0 .0, &mut buf)? as usize;
            let mut off = 0;
            while off + 16 <= k {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                if len < 16 || off + len > k {
                    return Err(libc::EPROTO);
                }
                if ty == libc::NLMSG_ERROR as u16 {
                    let e = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
                    return if e == 0 { Ok(reply) } else { Err(-e) };
                }
                if reply.is_empty() && len > 20 {
                    reply = buf[off + 20..off + len].to_vec();
                }
                off += len.next_multiple_of(4);
            }
        }
    }

    /// The id of generic netlink family `name`.
    pub fn family(&self, name: &str) -> Result<u16, i32> {
        let attrs = self.request(
            libc::GENL_ID_CTRL as u16,
            CTRL_CMD_GETFAMILY,
            &[(CTRL_ATTR_FAMILY_NAME, name)],
        )?;
        let mut off = 0;
        while off + 4 <= attrs.len() {
            let len = u16::from_ne_bytes([attrs[off], attrs[off + 1]]) as usize;
            let ty = u16::from_ne_bytes([attrs[off + 2], attrs[off + 3]]);
            if len < 4 || off + len > attrs.len() {
                break;
            }
            if ty == libc::CTRL_ATTR_FAMILY_ID as u16 && len >= 6 {
                return Ok(u16::from_ne_bytes([attrs[off + 4], attrs[off + 5]]));
            }
            off += len.next_multiple_of(4);
        }
        Err(libc::ENOENT)
    }
}
