// SPDX-License-Identifier: GPL-2.0

//! Regression cases for the C driver's CVEs, one per class (shared/reference/vduse_anchors.md
//! §1.5; Documentation/security.rst maps each to the defence that answers it). 7.3's C driver
//! has all four fixed, so these run on both drivers and their transcripts are compared; the
//! kernel's checkers (KASAN on the debug kernel, the dmesg check everywhere) judge the rest.

use super::vdpa::{on_vhost, open_vhost};
use crate::daemon::{Daemon, Policy};
use crate::dev::*;
use crate::harness::{Case, Ctx};
use crate::sys::{self, Fd, Ret, CONTROL};
use crate::sys::{VDUSE_CREATE_DEV, VDUSE_DEV_SET_CONFIG, VHOST_VDPA_GET_CONFIG};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// `VHOST_VDPA_GET_CONFIG(off, len)` (`struct vhost_vdpa_config` + `len` bytes): the result and
/// the bytes read.
fn get_config(v: &Fd, off: u32, len: u32) -> (Ret, Vec<u8>) {
    let mut b = vec![0u8; 8 + (len as usize).min(64)];
    b[..4].copy_from_slice(&off.to_ne_bytes());
    b[4..8].copy_from_slice(&len.to_ne_bytes());
    let r = sys::ioctl(v.0, VHOST_VDPA_GET_CONFIG, b.as_mut_ptr() as usize);
    (
        r,
        if r.is_ok() {
            b[8..].to_vec()
        } else {
            Vec::new()
        },
    )
}

/// `VDUSE_DEV_SET_CONFIG(off, len)` with `data`.
fn set_config(fd: &Fd, off: u32, len: u32, data: &[u8]) -> Ret {
    let mut b = off.to_ne_bytes().to_vec();
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(data);
    b.resize(8 + 64, 0);
    sys::ioctl(fd.0, VDUSE_DEV_SET_CONFIG, b.as_mut_ptr() as usize)
}

/// A device on vhost-vdpa, served by a daemon that answers every request, and its vhost node.
/// The fields drop in order: the vhost node first (its release resets the device, which the
/// daemon answers), then the daemon, the device node, the device.
struct OnVhost {
    v: Fd,
    _daemon: Daemon,
    fd: Fd,
    _g: DevGuard,
}

fn served_on_vhost(c: &mut Ctx, name: &str) -> Option<OnVhost> {
    let (g, fd) = on_vhost(c, name, 0)?;
    let daemon = Daemon::start(fd.0, Policy::Answer);
    let v = open_vhost(c, name, 0)?;
    Some(OnVhost {
        v,
        _daemon: daemon,
        fd,
        _g: g,
    })
}

/// CVE-2021-47604: the vDPA `get_config` op read past the config space for an offset a
/// consumer chose. A consumer (vhost-vdpa here) asking for bytes outside the 8-byte space gets
/// an error and no bytes; asking inside gets exactly the daemon's bytes.
fn get_config_bounds(c: &mut Ctx) {
    // Bound whole: a pattern taking only some fields would drop the rest (the daemon, the
    // device) at the end of the statement.
    let Some(dev) = served_on_vhost(c, "t-cve04") else {
        return;
    };
    let v = &dev.v;
    c.expect_eq(
        "GET_CONFIG(0, 8)",
        get_config(v, 0, 8),
        (Ok(0), (0u8..8).collect()),
    );
    c.expect_eq("GET_CONFIG(7, 1)", get_config(v, 7, 1), (Ok(0), vec![7]));
    for (off, len) in [
        (8, 1),
        (9, 1),
        (4, 5),
        (0, 9),
        (u32::MAX, 1),
        (1, u32::MAX),
        (0, 0),
    ] {
        let (r, bytes) = get_config(v, off, len);
        c.obs(format!("GET_CONFIG({off}, {len}) = {}", sys::fmt_ret(&r)));
        c.check(
            r.is_err(),
            &format!("GET_CONFIG({off}, {len}) outside the space succeeded"),
        );
        c.check(bytes.is_empty(), "bytes returned for a refused read");
    }
}

/// CVE-2021-47605: `VDUSE_DEV_SET_CONFIG` wrote past the config space when `offset + length`
/// wrapped around. Every out-of-bounds or wrapping pair is `EINVAL` and changes nothing; the
/// bytes a consumer reads afterwards are the original ones but for the one in-bounds write.
fn set_config_bounds(c: &mut Ctx) {
    let Some(dev) = served_on_vhost(c, "t-cve05") else {
        return;
    };
    let (v, fd) = (&dev.v, &dev.fd);
    let data = [0xaa; 64];
    for (off, len) in [
        (8, 1),
        (4, 5),
        (0, 9),
        (4, u32::MAX - 3), // 4 + len wraps to 0
        (u32::MAX, 1),     // wraps to 0
        (u32::MAX, 2),
        (0x8000_0000, 0x8000_0008),
        (0, 0),
    ] {
        c.expect(
            &format!("SET_CONFIG({off:#x}, {len:#x})"),
            set_config(fd, off, len, &data),
            Err(libc::EINVAL),
        );
    }
    c.expect(
        "SET_CONFIG(6, 2)",
        set_config(fd, 6, 2, &[0x55, 0x66]),
        Ok(0),
    );
    c.expect_eq(
        "the consumer's view",
        get_config(v, 0, 8),
        (Ok(0), vec![0, 1, 2, 3, 4, 5, 0x55, 0x66]),
    );
}

/// CVE-2022-49329: reading `msg_timeout` through the control device dereferenced a device
/// that is not there. The control device has no such attribute; every attribute it has reads.
fn control_msg_timeout(c: &mut Ctx) {
    let dir = "/sys/class/vduse/control";
    for attr in ["msg_timeout", "bounce_size", "vq0/irq_cb_affinity"] {
        let r = std::fs::read(format!("{dir}/{attr}")).map(|_| 0);
        c.expect(
            &format!("read control/{attr}"),
            r.map_err(|e| e.raw_os_error().unwrap_or(0)),
            Err(libc::ENOENT),
        );
        let w = std::fs::write(format!("{dir}/{attr}"), "1").map(|()| 0);
        c.check(w.is_err(), &format!("write control/{attr} succeeded"));
    }
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in &files {
        let r = std::fs::read(format!("{dir}/{f}"));
        // uevent and dev read; anything else must at least not crash the kernel.
        c.obs(format!(
            "read control/{f}: {}",
            if r.is_ok() { "ok" } else { "error" }
        ));
    }
    c.obs(format!("control's files: {files:?}"));
}

/// CVE-2026-74313: `open` of a device node raced `VDUSE_DESTROY_DEV` (C dropped `vduse_lock`
/// before taking the device's lock: a use-after-free). Two threads for 3 seconds: one creates
/// and destroys the device, the other opens it, uses it, checks that its node is still there
/// (`DESTROY_DEV` is `EBUSY` while it is open) and closes it. Every result must be one the
/// operation may give at all; KASAN (debug kernel) and the dmesg check judge the memory.
fn open_vs_destroy(c: &mut Ctx) {
    let name = "t-cve13";
    let _g = DevGuard(name.to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let opens = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(Mutex::new(Vec::<String>::new()));
    let (s2, o2, b2) = (stop.clone(), opens.clone(), bad.clone());
    let opener = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            match open_dev(name, libc::O_RDWR) {
                Ok(fd) => {
                    let fd = Fd(fd as i32);
                    let mut f = 0u64;
                    let r = sys::ioctl_ptr(fd.0, crate::sys::VDUSE_DEV_GET_FEATURES, &mut f);
                    if r.is_err() {
                        b2.lock()
                            .map(|mut b| b.push(format!("GET_FEATURES {r:?}")))
                            .ok();
                    }
                    // While it is open, DESTROY_DEV is EBUSY: the node must still be there.
                    if !std::path::Path::new("/dev/vduse").join(name).exists() {
                        let what = "the node went away while open".to_string();
                        b2.lock()
                            .map(|mut b| {
                                if !b.contains(&what) {
                                    b.push(what)
                                }
                            })
                            .ok();
                    }
                    o2.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e == libc::ENOENT || e == libc::ENODEV => {}
                Err(e) => {
                    b2.lock()
                        .map(|mut b| b.push(format!("open -{}", sys::errno_name(e))))
                        .ok();
                }
            }
        }
    });
    let ctl = match sys::open(CONTROL, libc::O_RDWR) {
        Ok(fd) => Fd(fd as i32),
        Err(_) => return c.check(false, "open(control)"),
    };
    let t0 = std::time::Instant::now();
    let (mut created, mut destroyed) = (0u64, 0u64);
    while t0.elapsed() < std::time::Duration::from_secs(3) {
        let mut b = DevConfig::blk(name).encode();
        match sys::ioctl(ctl.0, VDUSE_CREATE_DEV, b.as_mut_ptr() as usize) {
            Ok(_) => created += 1,
            Err(e) => bad
                .lock()
                .map(|mut v| v.push(format!("CREATE_DEV -{}", sys::errno_name(e))))
                .map(|_| ())
                .unwrap_or(()),
        }
        // EBUSY while the other thread has it open: try again.
        loop {
            match destroy_untracked(ctl.0, name.as_bytes()) {
                Ok(_) => break destroyed += 1,
                Err(libc::EBUSY) => std::thread::yield_now(),
                Err(e) => {
                    bad.lock()
                        .map(|mut v| v.push(format!("DESTROY_DEV -{}", sys::errno_name(e))))
                        .ok();
                    break;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    c.check(opener.join().is_ok(), "the opener thread panicked");
    let bad = bad.lock().map(|b| b.clone()).unwrap_or_default();
    c.expect_eq("unexpected results", bad, Vec::<String>::new());
    // (The counts depend on the scheduler: checked, not recorded for the comparison.)
    c.check(
        created == destroyed,
        &format!("{created} created, {destroyed} destroyed"),
    );
    c.check(
        created > 10,
        &format!("only {created} create/destroy cycles in 3 s"),
    );
    c.check(
        opens.load(Ordering::Relaxed) > 0,
        "the opener never won a race (the case tests nothing)",
    );
    c.expect_eq(
        "node left",
        std::path::Path::new("/dev/vduse").join(name).exists(),
        false,
    );
}

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("cve/2021-47604_get_config_bounds", get_config_bounds),
        Case::new("cve/2021-47605_set_config_bounds", set_config_bounds),
        Case::new("cve/2022-49329_control_msg_timeout", control_msg_timeout),
        Case::new("cve/2026-74313_open_vs_destroy", open_vs_destroy),
    ]
}
