// SPDX-License-Identifier: GPL-2.0

//! Helpers of the vDPA cases: the `vdpa` tool, a device set up and put on `vhost_vdpa`, the
//! vhost-vdpa node opened and driven to `DRIVER_OK`, eventfds, and the requests a daemon saw.

use crate::cases::support::*;
use crate::dev::*;
use crate::harness::Ctx;
use crate::sys::{self, Fd, Ret};
use crate::sys::{
    VDUSE_DEV_GET_FEATURES, VDUSE_IOTLB_GET_FD2, VDUSE_IOTLB_GET_INFO, VDUSE_VQ_SETUP,
    VHOST_SET_BACKEND_FEATURES, VHOST_SET_FEATURES, VHOST_SET_OWNER,
};
use crate::vhost::*;

/// Records what the daemon saw and expects every request's undefined bytes to be zero.
pub(super) fn record_requests(c: &mut Ctx, seen: &[String]) {
    for (i, r) in seen.iter().enumerate() {
        c.obs(format!("request {i}: {r}"));
        c.check(
            !r.contains("NONZERO"),
            &format!("request {i} has non-zero reserved or padding bytes: {r}"),
        );
    }
}

/// Runs the `vdpa` tool; returns its exit status and the errno it reported (the symbolic
/// name of the errno whose `strerror` text ends its message), or its whole message if that is
/// no errno text.
pub(crate) fn vdpa(args: &[&str]) -> String {
    match std::process::Command::new("vdpa").args(args).output() {
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
            let code = o.status.code().unwrap_or(-1);
            if err.is_empty() {
                return format!("exit {code}");
            }
            // The longest strerror text found, so "No such device" does not match
            // "No such device or address".
            let errno = (1..134)
                .filter_map(|e| {
                    // SAFETY: strerror returns a valid NUL-terminated string.
                    let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(e)) }
                        .to_string_lossy()
                        .into_owned();
                    err.contains(&text).then_some((text.len(), e))
                })
                .max();
            match errno {
                Some((_, e)) => format!("exit {code} -{}", sys::errno_name(e)),
                None => format!("exit {code} {err:?}"),
            }
        }
        Err(e) => format!("cannot run vdpa: {e}"),
    }
}

/// The daemon's side of a consumer mapping: `VDUSE_IOTLB_GET_FD2` and `GET_INFO` around IOVA
/// 0x100800, an mmap of the returned fd, and a lookup that misses.
pub(super) fn daemon_view(c: &mut Ctx, fd: &Fd) {
    let mut e = entry_v2(0x10_0800, 0x10_0800, 0, 0);
    let r = sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize);
    let _ = c.expect_ok("IOTLB_GET_FD2([0x100800])", r.map(|_| 0));
    let q = |b: &[u8], i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    c.expect_eq(
        "entry offset, start, last, perm",
        (q(&e, 0), q(&e, 8), q(&e, 16), e[24]),
        (0, 0x10_0000, 0x10_ffff, 3),
    );
    if let Ok(mfd) = r {
        let mfd = Fd(mfd as i32);
        // SAFETY: Mapping 64 KiB of the returned file read-only, reading 12 bytes, unmapping.
        let seen = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                65536,
                libc::PROT_READ,
                libc::MAP_SHARED,
                mfd.0,
                q(&e, 0) as i64,
            );
            if p == libc::MAP_FAILED {
                Vec::new()
            } else {
                let v = std::slice::from_raw_parts(p.cast::<u8>().add(0x800), 12).to_vec();
                libc::munmap(p, 65536);
                v
            }
        };
        c.expect_eq(
            "bytes at IOVA 0x100800 through the fd",
            String::from_utf8_lossy(&seen).into_owned(),
            "guest memory".to_string(),
        );
    }
    let mut i = iova48(0x10_0000, 0x10_0000, 0, 0, 0);
    c.expect(
        "IOTLB_GET_INFO([0x100000])",
        sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize),
        Ok(0),
    );
    c.expect_eq(
        "info start, last, capability",
        (q(&i, 0), q(&i, 8), q(&i, 16)),
        (0x10_0000, 0x10_ffff, 0),
    );
    let mut e = entry_v2(0x20_0000, 0x20_0fff, 0, 0);
    c.expect(
        "IOTLB_GET_FD2 outside every mapping",
        sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize),
        Err(libc::EINVAL),
    );
}

/// A v1 blk device with 2 queues, features `vduse_features`, set up and opened.
pub(super) fn ready_device(c: &mut Ctx, name: &str, vduse_features: u64) -> Option<(DevGuard, Fd)> {
    let ctl = control(c, Some(1))?;
    c.expect("SET_FEATURES", set_features(&ctl, vduse_features), Ok(0));
    let guard = DevGuard(name.to_string());
    c.expect("CREATE_DEV", create(&ctl, &DevConfig::blk_v1(name)), Ok(0));
    let fd = Fd(c
        .expect_ok("open(device)", open_dev(name, libc::O_RDWR))
        .ok()? as i32);
    setup_vqs(c, &fd, false);
    Some((guard, fd))
}

/// `VDUSE_VQ_SETUP` of queues 0 and 1 (size 256); with `groups`, queue i in group i.
pub(super) fn setup_vqs(c: &mut Ctx, fd: &Fd, groups: bool) {
    for i in 0..2u32 {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_ne_bytes());
        b[4..6].copy_from_slice(&256u16.to_ne_bytes());
        let group = if groups { i } else { 0 };
        b[8..12].copy_from_slice(&group.to_ne_bytes());
        c.expect(
            &format!("VQ_SETUP({i}, group {group})"),
            sys::ioctl(fd.0, VDUSE_VQ_SETUP, b.as_mut_ptr() as usize),
            Ok(0),
        );
    }
}

/// The vhost-vdpa node of device `name`, opened and owned, with `backend` features.
pub(crate) fn open_vhost(c: &mut Ctx, name: &str, backend: u64) -> Option<Fd> {
    let Some(node) = vhost_node(name) else {
        c.check(false, "no vhost-vdpa node");
        return None;
    };
    let v = Fd(c
        .expect_ok("open(vhost-vdpa)", sys::open(&node, libc::O_RDWR))
        .ok()? as i32);
    c.expect(
        "VHOST_SET_OWNER",
        sys::ioctl(v.0, VHOST_SET_OWNER, 0),
        Ok(0),
    );
    c.expect(
        &format!("VHOST_SET_BACKEND_FEATURES({backend:#x})"),
        vhost_u64(v.0, VHOST_SET_BACKEND_FEATURES, backend).0,
        Ok(0),
    );
    Some(v)
}

/// [`ready_device`], then `vdpa dev add` onto `vhost_vdpa` (which sends no request yet).
pub(crate) fn on_vhost(c: &mut Ctx, name: &str, vduse_features: u64) -> Option<(DevGuard, Fd)> {
    use_vhost_vdpa();
    let dev = ready_device(c, name, vduse_features)?;
    c.expect_eq(
        "vdpa dev add",
        vdpa(&["dev", "add", "name", name, "mgmtdev", "vduse"]),
        "exit 0".to_string(),
    );
    Some(dev)
}

/// An eventfd (non-blocking).
pub(super) fn eventfd() -> Fd {
    // SAFETY: Creating an eventfd.
    Fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Waits at most 5 s for eventfd `e` to fire; returns its counter (0: it did not fire).
pub(super) fn wait_eventfd(e: &Fd) -> u64 {
    let p = sys::poll_fd(e.0, libc::POLLIN, 5000);
    if p.revents & libc::POLLIN == 0 {
        return 0;
    }
    let mut v = [0u8; 8];
    match sys::read(e.0, &mut v) {
        Ok(8) => u64::from_ne_bytes(v),
        _ => 0,
    }
}

/// The access mode (`O_ACCMODE` bits) of `fd`.
pub(super) fn accmode(fd: i32) -> i32 {
    // SAFETY: F_GETFL on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_GETFL) & libc::O_ACCMODE }
}

/// Pins the calling thread to `cpu`; whether that worked.
pub(super) fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: A zeroed `cpu_set_t` is an empty set; CPU_SET and sched_setaffinity(0) act on
    // this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Whether eventfd `e` has fired since it was last read (reads and so resets it).
pub(super) fn drain_eventfd(e: &Fd) -> bool {
    let mut v = [0u8; 8];
    sys::read(e.0, &mut v) == Ok(8)
}

/// Brings the device of vhost-vdpa `v` to DRIVER_OK with `VERSION_1 | ACCESS_PLATFORM`
/// (ACKNOWLEDGE, DRIVER, the features, FEATURES_OK, DRIVER_OK).
pub(super) fn vhost_to_driver_ok(c: &mut Ctx, v: &Fd) {
    for s in [0x1u8, 0x3] {
        c.expect(
            &format!("VHOST_VDPA_SET_STATUS({s:#x})"),
            set_status(v.0, s),
            Ok(0),
        );
    }
    c.expect(
        "VHOST_SET_FEATURES(VERSION_1 | ACCESS_PLATFORM)",
        vhost_u64(v.0, VHOST_SET_FEATURES, F_VERSION_1 | F_ACCESS_PLATFORM).0,
        Ok(0),
    );
    for s in [0xbu8, 0xf] {
        c.expect(
            &format!("VHOST_VDPA_SET_STATUS({s:#x})"),
            set_status(v.0, s),
            Ok(0),
        );
    }
}

pub(super) fn dev_features(fd: &Fd) -> Ret {
    let mut f: u64 = 0;
    sys::ioctl_ptr(fd.0, VDUSE_DEV_GET_FEATURES, &mut f)
}

/// An API 1 device with two virtqueue groups (queue i in group i) and two address spaces,
/// VDUSE features 3, opened and added onto `vhost_vdpa`.
pub(super) fn on_vhost_two_spaces(c: &mut Ctx, name: &str) -> Option<(DevGuard, Fd)> {
    on_vhost_spaces(c, name, 2)
}

/// [`on_vhost_two_spaces`] with `nas` address spaces.
pub(super) fn on_vhost_spaces(c: &mut Ctx, name: &str, nas: u32) -> Option<(DevGuard, Fd)> {
    use_vhost_vdpa();
    let ctl = control(c, Some(1))?;
    c.expect("SET_FEATURES", set_features(&ctl, 3), Ok(0));
    let guard = DevGuard(name.to_string());
    let mut cfg = DevConfig::blk_v1(name);
    (cfg.ngroups, cfg.nas) = (2, nas);
    c.expect(
        &format!("CREATE_DEV (ngroups 2, nas {nas:#x})"),
        create(&ctl, &cfg),
        Ok(0),
    );
    let fd = Fd(c
        .expect_ok("open(device)", open_dev(name, libc::O_RDWR))
        .ok()? as i32);
    setup_vqs(c, &fd, true);
    c.expect_eq(
        "vdpa dev add",
        vdpa(&["dev", "add", "name", name, "mgmtdev", "vduse"]),
        "exit 0".to_string(),
    );
    Some((guard, fd))
}
