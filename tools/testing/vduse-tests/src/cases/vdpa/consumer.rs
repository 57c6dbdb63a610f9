// SPDX-License-Identifier: GPL-2.0

//! A consumer's view and the daemon's of one device: mappings, the vring, interrupts, config,
//! and the suspend barrier.

use super::common::*;
use crate::cases::support::*;
use crate::daemon::*;
use crate::dev::*;
use crate::harness::Ctx;
use crate::sys::{self, Fd};
use crate::sys::{
    VDUSE_DEV_GET_FEATURES, VDUSE_DEV_SET_CONFIG, VDUSE_IOTLB_GET_FD2, VDUSE_VQ_GET_INFO,
    VDUSE_VQ_INJECT_IRQ, VDUSE_VQ_SETUP_KICKFD, VHOST_GET_FEATURES, VHOST_SET_BACKEND_FEATURES,
    VHOST_SET_OWNER, VHOST_SET_VRING_ADDR, VHOST_SET_VRING_BASE, VHOST_SET_VRING_CALL,
    VHOST_SET_VRING_KICK, VHOST_SET_VRING_NUM, VHOST_VDPA_GET_CONFIG, VHOST_VDPA_SET_CONFIG_CALL,
    VHOST_VDPA_SET_VRING_ENABLE, VHOST_VDPA_SUSPEND,
};
use crate::vhost::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a daemon sees of a consumer's actions, and what the consumer sees of the daemon's:
/// mappings with RW, RO and WO access through `VDUSE_IOTLB_GET_FD` (the v0 struct) and
/// `GET_FD2`; the vring set up by the consumer through `VQ_GET_INFO`; the negotiated features
/// through `DEV_GET_FEATURES`; `DEV_SET_CONFIG` through `VHOST_VDPA_GET_CONFIG`; and
/// `VQ_INJECT_IRQ`/`DEV_INJECT_CONFIG_IRQ` as the consumer's call and config eventfds firing.
pub(super) fn vhost_consumer_view(c: &mut Ctx) {
    let name = "t-vview";
    let Some((_guard, fd)) = on_vhost(c, name, 3) else {
        return;
    };
    let daemon = Daemon::start(fd.0, Policy::Answer);
    let Some(node) = vhost_node(name) else {
        c.check(false, "no vhost-vdpa node");
        return;
    };
    let Ok(vfd) = c.expect_ok("open(vhost-vdpa)", sys::open(&node, libc::O_RDWR)) else {
        return;
    };
    let v = Fd(vfd as i32);
    c.expect(
        "VHOST_SET_OWNER",
        sys::ioctl(v.0, VHOST_SET_OWNER, 0),
        Ok(0),
    );
    c.expect(
        "VHOST_SET_BACKEND_FEATURES(IOTLB_MSG_V2 | IOTLB_ASID | SUSPEND)",
        vhost_u64(v.0, VHOST_SET_BACKEND_FEATURES, 0x1a).0,
        Ok(0),
    );
    let feats = F_VERSION_1 | F_ACCESS_PLATFORM;
    c.expect_eq(
        "VHOST_GET_FEATURES: the device's",
        vhost_u64(v.0, VHOST_GET_FEATURES, 0),
        (Ok(0), feats),
    );
    // Three mappings: RW, RO, WO.
    for (iova, perm) in [(0x10_0000u64, 3u8), (0x20_0000, 1), (0x30_0000, 2)] {
        c.expect(
            &format!("vhost IOTLB update [{iova:#x}, +64K] perm {perm}"),
            iotlb_update_at(v.0, iova, perm).0,
            Ok(72),
        );
    }
    // VDUSE_IOTLB_GET_FD with the v0 struct (32 bytes); its 7 tail padding bytes are the
    // caller's and come back unchanged.
    let mut e = vec![0u8; 32];
    e[8..16].copy_from_slice(&0x10_0800u64.to_ne_bytes());
    e[16..24].copy_from_slice(&0x10_0800u64.to_ne_bytes());
    e[25..32].fill(0xa5);
    let r = sys::ioctl(
        fd.0,
        crate::sys::VDUSE_IOTLB_GET_FD,
        e.as_mut_ptr() as usize,
    );
    let _ = c.expect_ok("IOTLB_GET_FD (v0 struct) [0x100800]", r.map(|_| 0));
    let mut want = vec![0u8; 32];
    want[8..16].copy_from_slice(&0x10_0000u64.to_ne_bytes());
    want[16..24].copy_from_slice(&0x10_ffffu64.to_ne_bytes());
    want[24] = 3;
    want[25..32].fill(0xa5);
    want[..8].copy_from_slice(&e[..8]); // the offset in the file: the driver's choice
    c.obs(format!(
        "v0 entry offset {:#x}",
        u64::from_ne_bytes(e[..8].try_into().unwrap_or([0; 8]))
    ));
    c.expect_eq("v0 entry, all 32 bytes", e.clone(), want);
    if let Ok(f) = r {
        let f = Fd(f as i32);
        c.expect_eq("v0 fd access mode", accmode(f.0), libc::O_RDWR);
    }
    // GET_FD2 on the RO and WO ranges: the entry's perm is VDUSE_ACCESS_RO / _WO. 7.3 passes
    // perm_to_file_flags(perm) to receive_fd(), which uses those flags only for O_CLOEXEC
    // (none here): the fd is the consumer's file itself, open O_RDWR, and a writable shared
    // mapping of it succeeds whatever the perm; the daemon must honour perm itself.
    for (iova, perm) in [(0x20_0000u64, 1u8), (0x30_0000, 2)] {
        let mut e = entry_v2(iova, iova, 0, 0);
        e[25..32].fill(0x5a);
        let r = sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize);
        let _ = c.expect_ok(&format!("IOTLB_GET_FD2([{iova:#x}])"), r.map(|_| 0));
        let mut want = entry_v2(iova, iova + 0xffff, 0, 0);
        want[..8].copy_from_slice(&e[..8]);
        want[24] = perm;
        want[25..32].fill(0x5a);
        c.expect_eq(
            &format!("v2 entry [{iova:#x}], all 80 bytes"),
            e.clone(),
            want,
        );
        if let Ok(f) = r {
            let f = Fd(f as i32);
            // SAFETY: F_GETFD on a descriptor we own.
            let cloexec = unsafe { libc::fcntl(f.0, libc::F_GETFD) } & libc::FD_CLOEXEC;
            c.expect_eq(
                &format!("fd for perm {perm}: access mode, FD_CLOEXEC"),
                (accmode(f.0), cloexec),
                (libc::O_RDWR, 0),
            );
            c.expect(
                &format!("mmap(PROT_READ | PROT_WRITE) of the perm {perm} range"),
                sys::mmap_probe(f.0, 65536, libc::PROT_READ | libc::PROT_WRITE),
                Ok(0),
            );
        }
    }
    // The consumer sets up vring 0; the daemon reads it back.
    c.expect(
        "VHOST_SET_VRING_NUM(0, 16)",
        vring_state(v.0, VHOST_SET_VRING_NUM, 0, 16).0,
        Ok(0),
    );
    let mut addr = [0u64; 5];
    addr[0] = 0; // index 0, flags 0
    addr[1] = 0x10_0000; // desc_user_addr
    addr[2] = 0x10_2000; // used_user_addr
    addr[3] = 0x10_1000; // avail_user_addr
    c.expect(
        "VHOST_SET_VRING_ADDR(0)",
        sys::ioctl(v.0, VHOST_SET_VRING_ADDR, addr.as_mut_ptr() as usize),
        Ok(0),
    );
    c.expect(
        "VHOST_SET_VRING_BASE(0, 7)",
        vring_state(v.0, VHOST_SET_VRING_BASE, 0, 7).0,
        Ok(0),
    );
    c.expect(
        "VHOST_VDPA_SET_VRING_ENABLE(0, 1)",
        vring_state(v.0, VHOST_VDPA_SET_VRING_ENABLE, 0, 1).0,
        Ok(0),
    );
    let call = eventfd();
    let cfg_call = eventfd();
    c.expect(
        "VHOST_SET_VRING_CALL(0, eventfd)",
        vring_state(v.0, VHOST_SET_VRING_CALL, 0, call.0 as u32).0,
        Ok(0),
    );
    let mut cfd = cfg_call.0;
    c.expect(
        "VHOST_VDPA_SET_CONFIG_CALL(eventfd)",
        sys::ioctl_ptr(v.0, VHOST_VDPA_SET_CONFIG_CALL, &mut cfd),
        Ok(0),
    );
    vhost_to_driver_ok(c, &v);
    let mut f: u64 = 0;
    let r = sys::ioctl_ptr(fd.0, VDUSE_DEV_GET_FEATURES, &mut f);
    c.expect_eq("DEV_GET_FEATURES: the driver's", (r, f), (Ok(0), feats));
    let mut info = vec![0xeeu8; 48];
    info[..4].fill(0);
    let r = sys::ioctl(fd.0, VDUSE_VQ_GET_INFO, info.as_mut_ptr() as usize);
    c.expect("VQ_GET_INFO(0)", r, Ok(0));
    let mut want = vec![0u8; 48];
    want[4..8].copy_from_slice(&16u32.to_ne_bytes());
    want[8..16].copy_from_slice(&0x10_0000u64.to_ne_bytes());
    want[16..24].copy_from_slice(&0x10_1000u64.to_ne_bytes());
    want[24..32].copy_from_slice(&0x10_2000u64.to_ne_bytes());
    want[32..34].copy_from_slice(&7u16.to_ne_bytes());
    want[34..40].fill(0xee);
    want[40] = 1;
    want[41..48].fill(0xee);
    c.expect_eq(
        "vq_info after the consumer's setup, all 48 bytes",
        info,
        want,
    );
    // DEV_SET_CONFIG, read by the consumer.
    let mut b = Vec::new();
    b.extend_from_slice(&2u32.to_ne_bytes());
    b.extend_from_slice(&4u32.to_ne_bytes());
    b.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    c.expect(
        "DEV_SET_CONFIG(2, 4)",
        sys::ioctl(fd.0, VDUSE_DEV_SET_CONFIG, b.as_mut_ptr() as usize),
        Ok(0),
    );
    let mut g = vec![0u8; 16];
    g[4..8].copy_from_slice(&8u32.to_ne_bytes());
    let r = sys::ioctl(v.0, VHOST_VDPA_GET_CONFIG, g.as_mut_ptr() as usize);
    c.expect_eq(
        "VHOST_VDPA_GET_CONFIG(0, 8)",
        (r, g[8..16].to_vec()),
        (Ok(0), vec![0, 1, 0xde, 0xad, 0xbe, 0xef, 6, 7]),
    );
    // Interrupts, as the consumer receives them.
    c.expect_eq(
        "call eventfd quiet before the injection",
        sys::poll_fd(call.0, libc::POLLIN, 0).revents,
        0,
    );
    let mut i: u32 = 0;
    c.expect(
        "VQ_INJECT_IRQ(0)",
        sys::ioctl_ptr(fd.0, VDUSE_VQ_INJECT_IRQ, &mut i),
        Ok(0),
    );
    c.expect_eq(
        "the consumer's call eventfd fired once",
        wait_eventfd(&call),
        1,
    );
    c.expect_eq(
        "config eventfd quiet before the injection",
        sys::poll_fd(cfg_call.0, libc::POLLIN, 0).revents,
        0,
    );
    c.expect(
        "DEV_INJECT_CONFIG_IRQ",
        sys::ioctl(fd.0, crate::sys::VDUSE_DEV_INJECT_CONFIG_IRQ, 0),
        Ok(0),
    );
    c.expect_eq(
        "the consumer's config eventfd fired once",
        wait_eventfd(&cfg_call),
        1,
    );
    drop(v);
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    record_requests(c, &daemon.finish());
}

/// Vring 0 of vhost-vdpa `v` set up (size 16, in the RW mapping at 0x100000, made first with
/// `map`; vhost keeps it across a reset), enabled, with `kick` and `call` eventfds, and the
/// device brought to DRIVER_OK.
fn vhost_vring0_running(c: &mut Ctx, v: &Fd, kick: &Fd, call: &Fd, map: bool) {
    if map {
        c.expect(
            "vhost IOTLB update [0x100000, +64K] RW",
            iotlb_update_at(v.0, 0x10_0000, 3).0,
            Ok(72),
        );
    }
    c.expect(
        "VHOST_SET_VRING_NUM(0, 16)",
        vring_state(v.0, VHOST_SET_VRING_NUM, 0, 16).0,
        Ok(0),
    );
    let mut addr = [0u64, 0x10_0000, 0x10_2000, 0x10_1000, 0];
    c.expect(
        "VHOST_SET_VRING_ADDR(0)",
        sys::ioctl(v.0, VHOST_SET_VRING_ADDR, addr.as_mut_ptr() as usize),
        Ok(0),
    );
    c.expect(
        "VHOST_SET_VRING_KICK(0, eventfd)",
        vring_state(v.0, VHOST_SET_VRING_KICK, 0, kick.0 as u32).0,
        Ok(0),
    );
    c.expect(
        "VHOST_SET_VRING_CALL(0, eventfd)",
        vring_state(v.0, VHOST_SET_VRING_CALL, 0, call.0 as u32).0,
        Ok(0),
    );
    c.expect(
        "VHOST_VDPA_SET_VRING_ENABLE(0, 1)",
        vring_state(v.0, VHOST_VDPA_SET_VRING_ENABLE, 0, 1).0,
        Ok(0),
    );
    vhost_to_driver_ok(c, v);
}

/// Suspend is a barrier: one thread kicks through vhost-vdpa in a tight loop and another
/// injects interrupts in a tight loop (on CPU 0, with the queue's `irq_cb_affinity` on CPU 1,
/// so that every interrupt goes through the driver's deferred path) while `VHOST_VDPA_SUSPEND`
/// runs; a SCHED_FIFO thread spinning on CPU 1 keeps the deferred deliveries waiting there
/// (the kernel gives normal threads only a small share of a starved CPU), so that some are
/// still queued when the suspend is asked for. Once it returned (and what fired before is
/// read away), the daemon's kick eventfd and the consumer's call eventfd stay still for a
/// whole measured window, longer than the starvation, and the injections get `EINVAL`. Then a
/// kick made while no kick eventfd is installed, before a reset, is not replayed to the
/// eventfd installed after it.
pub(super) fn suspend_barrier(c: &mut Ctx) {
    const WINDOW: Duration = Duration::from_millis(1500);
    let name = "t-vsusp";
    // This thread and those it starts (the test daemon's included) on CPU 0; CPU 1 is the
    // interrupts' (and the spinning thread's).
    c.check(pin_to_cpu(0), "cannot pin the case to CPU 0");
    let Some((_guard, fd)) = on_vhost(c, name, 3) else {
        return;
    };
    let daemon = Daemon::start(fd.0, Policy::Answer);
    // IOTLB_MSG_V2 | IOTLB_ASID | SUSPEND.
    let Some(v) = open_vhost(c, name, 0x1a) else {
        return;
    };
    let (kick, call, dkick) = (eventfd(), eventfd(), eventfd());
    vhost_vring0_running(c, &v, &kick, &call, true);
    let mut e = [0u32, dkick.0 as u32];
    c.expect(
        "VQ_SETUP_KICKFD(0, eventfd)",
        sys::ioctl(fd.0, VDUSE_VQ_SETUP_KICKFD, e.as_mut_ptr() as usize),
        Ok(0),
    );
    c.expect_eq(
        "a vhost kick reaches the daemon's kick eventfd",
        (
            sys::write(kick.0, &1u64.to_ne_bytes()),
            wait_eventfd(&dkick) > 0,
        ),
        (Ok(8), true),
    );
    c.set_attr(name, "vq0/irq_cb_affinity", "2");
    let mut i: u32 = 0;
    c.expect(
        "VQ_INJECT_IRQ(0)",
        sys::ioctl_ptr(fd.0, VDUSE_VQ_INJECT_IRQ, &mut i),
        Ok(0),
    );
    c.expect_eq(
        "the consumer's call eventfd fired",
        wait_eventfd(&call) > 0,
        true,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (kick_fd, dev_fd) = (kick.0, fd.0);
    let kicker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin_to_cpu(0);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if sys::write(kick_fd, &1u64.to_ne_bytes()) == Ok(8) {
                    n += 1;
                }
            }
            n
        })
    };
    let injector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let pinned = pin_to_cpu(0);
            let (mut ok, mut refused) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let mut i: u32 = 0;
                match sys::ioctl_ptr(dev_fd, VDUSE_VQ_INJECT_IRQ, &mut i) {
                    Ok(0) => ok += 1,
                    Err(libc::EINVAL) => refused += 1,
                    _ => {}
                }
            }
            (pinned, ok, refused)
        })
    };
    let starver = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: Scheduling policy of this thread only.
            let fifo = pin_to_cpu(1)
                && unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
            while fifo && !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
            fifo
        })
    };
    // Both loops running for a while before the suspend.
    std::thread::sleep(Duration::from_millis(300));
    c.expect(
        "VHOST_VDPA_SUSPEND under kicks and injections",
        sys::ioctl(v.0, VHOST_VDPA_SUSPEND, 0),
        Ok(0),
    );
    // What was delivered before the suspend returned is read away; from now on nothing.
    drain_eventfd(&dkick);
    drain_eventfd(&call);
    std::thread::sleep(WINDOW);
    let late_kick = drain_eventfd(&dkick);
    let late_irq = drain_eventfd(&call);
    stop.store(true, Ordering::Relaxed);
    let kicks = kicker.join().unwrap_or(0);
    let (pinned, injected, refused) = injector.join().unwrap_or((false, 0, 0));
    let starved = starver.join().unwrap_or(false);
    c.check(starved, "no SCHED_FIFO thread on CPU 1");
    let counts = format!("{kicks} kicks, {injected} injections accepted, {refused} refused");
    c.check(pinned, "the injecting thread could not be pinned to CPU 0");
    c.check(
        kicks > 0 && injected > 0,
        &format!("the loops did not run before the suspend ({counts})"),
    );
    c.check(
        refused > 0,
        &format!("no injection was refused after the suspend ({counts})"),
    );
    c.expect_eq(
        "after SUSPEND returned: kick eventfd, call eventfd quiet",
        (late_kick, late_irq),
        (false, false),
    );
    c.expect(
        "VQ_INJECT_IRQ(0) after SUSPEND",
        sys::ioctl_ptr(fd.0, VDUSE_VQ_INJECT_IRQ, &mut i),
        Err(libc::EINVAL),
    );

    // A kick latched with no kick eventfd installed (`kicked`) does not outlive a reset.
    c.expect("VHOST_VDPA_SET_STATUS(0): reset", set_status(v.0, 0), Ok(0));
    vhost_vring0_running(c, &v, &kick, &call, false);
    let mut e = [0u32, (-1i32) as u32];
    c.expect(
        "VQ_SETUP_KICKFD(0, DEASSIGN)",
        sys::ioctl(fd.0, VDUSE_VQ_SETUP_KICKFD, e.as_mut_ptr() as usize),
        Ok(0),
    );
    drain_eventfd(&dkick);
    c.expect(
        "a vhost kick with no kick eventfd (latched)",
        sys::write(kick.0, &1u64.to_ne_bytes()),
        Ok(8),
    );
    std::thread::sleep(Duration::from_millis(200));
    c.expect("VHOST_VDPA_SET_STATUS(0): reset", set_status(v.0, 0), Ok(0));
    vhost_vring0_running(c, &v, &kick, &call, false);
    let mut e = [0u32, dkick.0 as u32];
    c.expect(
        "VQ_SETUP_KICKFD(0, eventfd) after the reset",
        sys::ioctl(fd.0, VDUSE_VQ_SETUP_KICKFD, e.as_mut_ptr() as usize),
        Ok(0),
    );
    std::thread::sleep(Duration::from_millis(200));
    c.expect_eq(
        "the kick latched before the reset is not replayed",
        drain_eventfd(&dkick),
        false,
    );
    drop(v);
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    drop(daemon);
}

/// An API 0 device on vhost_vdpa: `VDUSE_UPDATE_IOTLB` comes in the v0 layout (start, last;
/// nothing after them).
pub(super) fn vhost_v0_update_iotlb(c: &mut Ctx) {
    let name = "t-vv0";
    use_vhost_vdpa();
    let Some(ctl) = control(c, Some(0)) else {
        return;
    };
    let _guard = DevGuard(name.to_string());
    c.expect(
        "CREATE_DEV (API 0)",
        create(&ctl, &DevConfig::blk(name)),
        Ok(0),
    );
    let Ok(fd) = c.expect_ok("open(device)", open_dev(name, libc::O_RDWR)) else {
        return;
    };
    let fd = Fd(fd as i32);
    setup_vqs(c, &fd, false);
    c.expect_eq(
        "vdpa dev add",
        vdpa(&["dev", "add", "name", name, "mgmtdev", "vduse"]),
        "exit 0".to_string(),
    );
    let daemon = Daemon::start(fd.0, Policy::Answer);
    // Backend feature IOTLB_MSG_V2.
    if let Some(v) = open_vhost(c, name, 0x2) {
        c.expect("vhost IOTLB update", iotlb_update(v.0).0, Ok(72));
    }
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    let seen = daemon.finish();
    record_requests(c, &seen);
    // v0 layout: start (8 bytes), last (8 bytes), then zeros: the union's hex is at most 32
    // digits long.
    let updates: Vec<&String> = seen
        .iter()
        .filter(|r| r.starts_with("UPDATE_IOTLB"))
        .collect();
    c.check(!updates.is_empty(), "no UPDATE_IOTLB request");
    for u in updates {
        let union = u.split("union ").nth(1).unwrap_or("").trim_end_matches(')');
        let union = union.split(')').next().unwrap_or("");
        c.check(
            union.len() <= 32,
            &format!("UPDATE_IOTLB on an API 0 device is not in the v0 layout: {u}"),
        );
    }
}
