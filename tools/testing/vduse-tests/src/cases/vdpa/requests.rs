// SPDX-License-Identifier: GPL-2.0

//! Every request type through vhost-vdpa, timeouts and the broken state, reconnection and the
//! killable wait.

use super::common::*;
use crate::cases::support::*;
use crate::daemon::*;
use crate::dev::*;
use crate::harness::Ctx;
use crate::sys::{self, Fd};
use crate::sys::{
    VDUSE_DEV_GET_FEATURES, VDUSE_VQ_INJECT_IRQ, VHOST_GET_BACKEND_FEATURES, VHOST_GET_VRING_BASE,
    VHOST_SET_BACKEND_FEATURES, VHOST_SET_OWNER, VHOST_VDPA_GET_STATUS, VHOST_VDPA_SET_GROUP_ASID,
    VHOST_VDPA_SET_VRING_ENABLE, VHOST_VDPA_SUSPEND,
};
use crate::vhost::*;
use std::time::Duration;

/// The whole life cycle on vhost_vdpa, with every request type.
pub(super) fn vhost_lifecycle(c: &mut Ctx) {
    let name = "t-vlife";
    let Some((guard, fd)) = on_vhost(c, name, 3) else {
        return;
    };
    let daemon = Daemon::start(fd.0, Policy::Answer);
    c.expect_eq(
        "vdpa dev add again",
        vdpa(&["dev", "add", "name", name, "mgmtdev", "vduse"]),
        "exit 1 -EEXIST".to_string(),
    );
    let ctl = control(c, Some(1));
    if let Some(ctl) = &ctl {
        c.expect(
            "DESTROY_DEV while on the bus",
            destroy(ctl, name),
            Err(libc::EBUSY),
        );
    }
    let bounce = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/sys/class/vduse/{name}/bounce_size"));
    let r = bounce.and_then(|mut f| std::io::Write::write(&mut f, b"1048576"));
    c.expect_eq(
        "bounce_size write after vdpa dev add",
        r.map_err(|e| e.raw_os_error().unwrap_or(0)),
        Err(libc::EPERM),
    );
    let Some(node) = vhost_node(name) else {
        c.check(false, "no vhost-vdpa node");
        return;
    };
    let vfd = c.expect_ok("open(vhost-vdpa)", sys::open(&node, libc::O_RDWR));
    if let Ok(vfd) = vfd {
        let v = Fd(vfd as i32);
        c.expect(
            "VHOST_SET_OWNER",
            sys::ioctl(v.0, VHOST_SET_OWNER, 0),
            Ok(0),
        );
        let (r, feats) = vhost_u64(v.0, VHOST_GET_BACKEND_FEATURES, 0);
        c.expect("VHOST_GET_BACKEND_FEATURES", r, Ok(0));
        // Bit numbers: IOTLB_MSG_V2 1, IOTLB_BATCH 2, IOTLB_ASID 3, SUSPEND 4.
        c.expect_eq(
            "backend features IOTLB_ASID and SUSPEND",
            feats & 0x18,
            0x18,
        );
        c.expect(
            "VHOST_SET_BACKEND_FEATURES",
            vhost_u64(v.0, VHOST_SET_BACKEND_FEATURES, feats & 0x1e).0,
            Ok(0),
        );
        c.expect(
            "vhost IOTLB update (memfd mapping)",
            iotlb_update(v.0).0,
            Ok(72),
        );
        daemon_view(c, &fd);
        let (r, base) = vring_state(v.0, VHOST_GET_VRING_BASE, 1, 0);
        c.expect("VHOST_GET_VRING_BASE(1)", r, Ok(0));
        c.expect_eq("vring base from the daemon", base, 0x1234);
        c.expect(
            "VHOST_VDPA_SET_VRING_ENABLE(0, 1)",
            vring_state(v.0, VHOST_VDPA_SET_VRING_ENABLE, 0, 1).0,
            Ok(0),
        );
        c.expect(
            "VHOST_VDPA_SET_GROUP_ASID(0, 0)",
            vring_state(v.0, VHOST_VDPA_SET_GROUP_ASID, 0, 0).0,
            Ok(0),
        );
        for s in [0x1u8, 0x3, 0xb, 0xf] {
            c.expect(
                &format!("VHOST_VDPA_SET_STATUS({s:#x})"),
                set_status(v.0, s),
                Ok(0),
            );
        }
        let mut st = 0u8;
        c.expect(
            "VHOST_VDPA_GET_STATUS",
            sys::ioctl_ptr(v.0, VHOST_VDPA_GET_STATUS, &mut st),
            Ok(0),
        );
        c.expect_eq("status", st, 0xf);
        let mut f: u64 = 0;
        c.expect(
            "DEV_GET_FEATURES",
            sys::ioctl_ptr(fd.0, VDUSE_DEV_GET_FEATURES, &mut f),
            Ok(0),
        );
        c.obs(format!("driver features {f:#x}"));
        c.expect(
            "VHOST_VDPA_SUSPEND",
            sys::ioctl(v.0, VHOST_VDPA_SUSPEND, 0),
            Ok(0),
        );
        c.expect(
            "VQ_INJECT_IRQ while suspended",
            {
                let mut i: u32 = 0;
                sys::ioctl_ptr(fd.0, VDUSE_VQ_INJECT_IRQ, &mut i)
            },
            Err(libc::EINVAL),
        );
    }
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    let seen = daemon.finish();
    record_requests(c, &seen);
    for want in [
        "GET_VQ_STATE index=1",
        "SET_VQ_READY num=0 ready=1",
        "SET_VQ_GROUP_ASID group=0 asid=0",
        "SET_STATUS status=0xf",
        "SUSPEND",
        "SET_STATUS status=0x0",
    ] {
        c.check(
            seen.iter().any(|s| s.starts_with(&format!("{want} ("))),
            &format!("the daemon did not see {want}"),
        );
    }
    drop(fd);
    // The post-condition, before this case destroys the device itself.
    post_check(name);
    if let Some(ctl) = &ctl {
        c.expect("DESTROY_DEV after vdpa dev del", destroy(ctl, name), Ok(0));
    }
    drop(guard);
}

/// Without `VDUSE_F_QUEUE_READY` and `VDUSE_F_SUSPEND` no such requests are sent, and
/// vhost-vdpa offers no suspend.
pub(super) fn vhost_no_features(c: &mut Ctx) {
    let name = "t-vnofeat";
    let Some((_guard, fd)) = on_vhost(c, name, 0) else {
        return;
    };
    let daemon = Daemon::start(fd.0, Policy::Answer);
    if let Some(node) = vhost_node(name) {
        if let Ok(vfd) = sys::open(&node, libc::O_RDWR) {
            let v = Fd(vfd as i32);
            c.expect(
                "VHOST_SET_OWNER",
                sys::ioctl(v.0, VHOST_SET_OWNER, 0),
                Ok(0),
            );
            let (_, feats) = vhost_u64(v.0, VHOST_GET_BACKEND_FEATURES, 0);
            c.expect_eq(
                "backend features without VDUSE_F_SUSPEND: no SUSPEND bit",
                feats & 0x10,
                0,
            );
            c.expect(
                "VHOST_VDPA_SET_VRING_ENABLE(1, 1)",
                vring_state(v.0, VHOST_VDPA_SET_VRING_ENABLE, 1, 1).0,
                Ok(0),
            );
        }
    }
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    record_requests(c, &daemon.finish());
}

/// A request that times out breaks the device for good.
pub(super) fn timeout_breaks(c: &mut Ctx) {
    let name = "t-vtimeout";
    let Some((_guard, fd)) = on_vhost(c, name, 0) else {
        return;
    };
    c.set_attr(name, "msg_timeout", "1");
    meant_broken(name);
    let daemon = Daemon::start(fd.0, Policy::Ignore);
    if let Some(node) = vhost_node(name) {
        // Opening vhost-vdpa resets the device: SET_STATUS(0), never answered.
        let r = sys::open(&node, libc::O_RDWR);
        c.obs(format!(
            "open(vhost-vdpa) with a silent daemon = {}",
            sys::fmt_ret(&r)
        ));
        if let Ok(v) = r {
            sys::close(v as i32).ok();
        }
    }
    record_requests(c, &daemon.finish());
    let mut f: u64 = 0;
    c.expect(
        "DEV_GET_FEATURES on a broken device",
        sys::ioctl_ptr(fd.0, VDUSE_DEV_GET_FEATURES, &mut f),
        Err(libc::EPERM),
    );
    let p = sys::poll_fd(fd.0, libc::POLLIN, 0);
    c.expect_eq(
        "poll on a broken device has POLLERR",
        p.revents & libc::POLLERR,
        libc::POLLERR,
    );
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
}

/// Opens the node of device `name` again (a daemon reconnecting); fails the case if it cannot.
fn reopen(c: &mut Ctx, name: &str) -> Option<Fd> {
    match open_dev(name, libc::O_RDWR) {
        Ok(f) => Some(Fd(f as i32)),
        Err(e) => {
            c.check(false, &format!("reopen: {e}"));
            None
        }
    }
}

/// A daemon that reads a request and dies: the request is read again, with its id, after
/// reconnecting; answering it then completes the waiting operation.
pub(super) fn reconnect(c: &mut Ctx) {
    let name = "t-vreconn";
    let Some((_guard, fd)) = on_vhost(c, name, 0) else {
        return;
    };
    c.set_attr(name, "msg_timeout", "20");
    let Some(node) = vhost_node(name) else {
        c.check(false, "no vhost-vdpa node");
        return;
    };
    // Opening vhost-vdpa blocks on SET_STATUS(0) until the daemon answers.
    let opener = std::thread::spawn(move || {
        let r = sys::open(&node, libc::O_RDWR);
        if let Ok(v) = r {
            sys::close(v as i32).ok();
        }
        r.map(|_| 0)
    });
    let mut req = [0u8; 152];
    let mut first = None;
    for _ in 0..100 {
        let p = sys::poll_fd(fd.0, libc::POLLIN, 100);
        if p.revents & libc::POLLIN != 0 && sys::read(fd.0, &mut req) == Ok(152) {
            first = Some(req);
            break;
        }
    }
    let Some(first) = first else {
        c.check(false, "no request arrived");
        return;
    };
    c.obs(format!("first read: {}", describe(&first)));
    c.check(
        !describe(&first).contains("NONZERO"),
        "the first request has non-zero reserved or padding bytes",
    );
    // A read whose copy to userspace fails puts the request back, by id (vduse_dev_read_iter):
    // put this one back that way, then read it again.
    drop(fd);
    let Some(fd) = reopen(c, name) else { return };
    // SAFETY: A read into an unmapped address: the kernel's copy fails with EFAULT.
    let r = unsafe { libc::read(fd.0, 8usize as *mut libc::c_void, 152) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    c.expect(
        "read into a bad buffer",
        if r < 0 { Err(errno) } else { Ok(r as i64) },
        Err(libc::EFAULT),
    );
    let mut again = [0u8; 152];
    c.expect(
        "read after the EFAULT",
        sys::read(fd.0, &mut again),
        Ok(152),
    );
    c.expect_eq(
        "same request id after EFAULT",
        again[4..8].to_vec(),
        first[4..8].to_vec(),
    );
    let p = sys::poll_fd(fd.0, libc::POLLIN | libc::POLLOUT, 0);
    c.obs(format!("poll after the read: {:#x}", p.revents));
    drop(fd); // the daemon "dies"
    let Some(fd) = reopen(c, name) else { return };
    let r = sys::read(fd.0, &mut req);
    c.expect("read after reconnect", r, Ok(152));
    c.expect_eq("same request again", describe(&req), describe(&first));
    c.expect_eq("same request id", req[4..8].to_vec(), first[4..8].to_vec());
    let mut resp = [0u8; 152];
    resp[..4].copy_from_slice(&req[4..8]);
    c.expect("answer it", sys::write(fd.0, &resp), Ok(152));
    c.expect(
        "answer it twice",
        sys::write(fd.0, &resp),
        Err(libc::ENOENT),
    );
    // The opener closes vhost-vdpa right away, which resets the device again
    // (SET_STATUS(0)): serve it before waiting for the opener.
    let daemon = Daemon::start(fd.0, Policy::Answer);
    let r = opener.join().unwrap_or(Err(-1));
    c.expect("the blocked open(vhost-vdpa) completes", r, Ok(0));
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    record_requests(c, &daemon.finish());
}

/// Waits until process `pid` sleeps (state `S` or `D` in `/proc/PID/stat`) with a wait
/// channel in the kernel, for at most `limit`.
fn wait_sleeping(pid: i32, limit: Duration) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < limit {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if matches!(state, Some("S" | "D")) && !wchan.is_empty() && wchan != "0" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// `msg_timeout` 0 waits forever, but killably: SIGKILL to the process waiting for an
/// answer fails that request only (the device is not broken), and the request is withdrawn.
pub(super) fn killable_wait(c: &mut Ctx) {
    let name = "t-vkill";
    let Some((_guard, fd)) = on_vhost(c, name, 0) else {
        return;
    };
    c.set_attr(name, "msg_timeout", "0");
    let Some(node) = vhost_node(name) else {
        c.check(false, "no vhost-vdpa node");
        return;
    };
    // SAFETY: fork in this single-threaded case; the child only opens the node (which blocks
    // on the unanswered SET_STATUS(0)) and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let _ = sys::open(&node, libc::O_RDWR);
        // SAFETY: Leaving the child.
        unsafe { libc::_exit(0) };
    }
    let p = sys::poll_fd(fd.0, libc::POLLIN, 5000);
    c.expect_eq(
        "a request is pending while the child waits",
        p.revents & libc::POLLIN,
        libc::POLLIN,
    );
    c.expect_eq(
        "the child sleeps in the kernel, waiting for the answer",
        wait_sleeping(pid, Duration::from_secs(10)),
        true,
    );
    let mut status = 0;
    // SAFETY: Signalling and reaping our child.
    let reaped = unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0)
    };
    c.expect_eq(
        "child killed by SIGKILL",
        (
            reaped == pid,
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        ),
        (true, true),
    );
    let p = sys::poll_fd(fd.0, libc::POLLIN | libc::POLLOUT, 0);
    c.expect_eq(
        "poll after the kill: request withdrawn, not broken",
        p.revents,
        0,
    );
    let mut f: u64 = 0;
    c.expect(
        "DEV_GET_FEATURES after the kill",
        sys::ioctl_ptr(fd.0, VDUSE_DEV_GET_FEATURES, &mut f),
        Ok(0),
    );
    let daemon = Daemon::start(fd.0, Policy::Answer);
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    record_requests(c, &daemon.finish());
}
