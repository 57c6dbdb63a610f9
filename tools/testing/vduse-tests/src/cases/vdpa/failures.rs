// SPDX-License-Identifier: GPL-2.0

//! Requests the daemon answers `VDUSE_REQ_RESULT_FAILED`: what the device state is after each.

use super::common::*;
use crate::daemon::*;
use crate::dev::*;
use crate::harness::Ctx;
use crate::sys::{self, Fd};
use crate::sys::{
    VDUSE_IOTLB_GET_FD2, VDUSE_IOTLB_GET_INFO, VDUSE_VQ_INJECT_IRQ, VHOST_GET_VRING_BASE,
    VHOST_VDPA_SET_GROUP_ASID, VHOST_VDPA_SET_VRING_ENABLE, VHOST_VDPA_SUSPEND,
};
use crate::vhost::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// A device on vhost_vdpa (both VDUSE features) whose daemon answers the requests `fail`
/// selects with `VDUSE_REQ_RESULT_FAILED` and the others with OK; vhost-vdpa opened, owned,
/// backend features IOTLB_MSG_V2 | IOTLB_ASID | SUSPEND set. Runs `f` with (device fd,
/// vhost-vdpa fd), then takes the device off the bus and records every request seen.
fn with_failing(
    c: &mut Ctx,
    name: &str,
    fail: fn(&[u8]) -> bool,
    f: impl FnOnce(&mut Ctx, &Fd, &Fd),
) {
    let Some((_guard, fd)) = on_vhost(c, name, 3) else {
        return;
    };
    let daemon = Daemon::start(fd.0, Policy::FailIf(fail));
    // Backend features IOTLB_MSG_V2 | IOTLB_ASID | SUSPEND.
    if let Some(v) = open_vhost(c, name, 0x1a) {
        f(c, &fd, &v);
    }
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    record_requests(c, &daemon.finish());
}

/// SET_STATUS answered FAILED (any status but 0): the device status stays what it was.
pub(super) fn fail_set_status(c: &mut Ctx) {
    with_failing(
        c,
        "t-fstatus",
        |r| req_type(r) == SET_STATUS && r[24] != 0,
        |c, fd, v| {
            c.expect("VHOST_VDPA_SET_STATUS(0x1)", set_status(v.0, 0x1), Ok(0));
            c.expect_eq("status after a refused 0x1", get_status(v), (Ok(0), 0));
            c.expect("DEV_GET_FEATURES: not broken", dev_features(fd), Ok(0));
        },
    );
}

/// UPDATE_IOTLB answered FAILED: `set_map` fails and the new mapping is rolled back (the
/// daemon finds nothing at its IOVA).
pub(super) fn fail_update_iotlb(c: &mut Ctx) {
    with_failing(
        c,
        "t-fiotlb",
        |r| req_type(r) == UPDATE_IOTLB,
        |c, fd, v| {
            let r = iotlb_update(v.0).0;
            c.expect("vhost IOTLB update, refused", r, Err(libc::EFAULT));
            let mut e = entry_v2(0x10_0800, 0x10_0800, 0, 0);
            c.expect(
                "IOTLB_GET_FD2([0x100800]) after the rollback",
                sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize),
                Err(libc::EINVAL),
            );
            let mut i = iova48(0x10_0000, 0x10_0000, 0, 0, 0);
            let r = sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize);
            c.obs(format!(
                "IOTLB_GET_INFO([0x100000]) after the rollback = {} {}",
                sys::fmt_ret(&r),
                hex_trimmed(&i)
            ));
            c.expect("DEV_GET_FEATURES: not broken", dev_features(fd), Ok(0));
        },
    );
}

/// SET_VQ_READY answered FAILED: 7.3 can do no better than break the device.
pub(super) fn fail_set_vq_ready(c: &mut Ctx) {
    let name = "t-fready";
    meant_broken(name);
    with_failing(
        c,
        name,
        |r| req_type(r) == SET_VQ_READY,
        |c, fd, v| {
            c.expect(
                "VHOST_VDPA_SET_VRING_ENABLE(0, 1), refused",
                vring_state(v.0, VHOST_VDPA_SET_VRING_ENABLE, 0, 1).0,
                Ok(0),
            );
            c.expect(
                "DEV_GET_FEATURES on the broken device",
                dev_features(fd),
                Err(libc::EPERM),
            );
            let p = sys::poll_fd(fd.0, libc::POLLIN, 0);
            c.expect_eq("poll has POLLERR", p.revents & libc::POLLERR, libc::POLLERR);
        },
    );
}

/// SET_VQ_GROUP_ASID answered FAILED: the ioctl fails and the group stays where it was; the
/// device is not broken and a later switch is sent and succeeds.
pub(super) fn fail_set_group_asid(c: &mut Ctx) {
    // The first request moving group 1 to address space 1 is refused, later ones are not.
    static REFUSED: AtomicBool = AtomicBool::new(false);
    fn first_move(r: &[u8]) -> bool {
        req_type(r) == SET_VQ_GROUP_ASID
            && r[24..28] == 1u32.to_ne_bytes()
            && r[28..32] == 1u32.to_ne_bytes()
            && !REFUSED.swap(true, Ordering::Relaxed)
    }
    let name = "t-fasid";
    let Some((_guard, fd)) = on_vhost_two_spaces(c, name) else {
        return;
    };
    let daemon = Daemon::start(fd.0, Policy::FailIf(first_move));
    // Backend features IOTLB_MSG_V2 | IOTLB_ASID | SUSPEND.
    if let Some(v) = open_vhost(c, name, 0x1a) {
        c.expect(
            "VHOST_VDPA_SET_GROUP_ASID(1, 1), refused",
            vring_state(v.0, VHOST_VDPA_SET_GROUP_ASID, 1, 1).0,
            Err(libc::EIO),
        );
        c.expect("DEV_GET_FEATURES: not broken", dev_features(&fd), Ok(0));
        // The refused move left group 1 where it was: the same move is asked for again (not
        // taken as done) and succeeds.
        c.expect(
            "VHOST_VDPA_SET_GROUP_ASID(1, 1) again, accepted",
            vring_state(v.0, VHOST_VDPA_SET_GROUP_ASID, 1, 1).0,
            Ok(0),
        );
    }
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    let seen = daemon.finish();
    c.expect_eq(
        "SET_VQ_GROUP_ASID group=1 asid=1 requests the daemon saw",
        seen.iter()
            .filter(|s| s.starts_with("SET_VQ_GROUP_ASID group=1 asid=1 ("))
            .count(),
        2,
    );
    record_requests(c, &seen);
}

/// SUSPEND answered FAILED: the ioctl fails and the device is not suspended (interrupts can
/// still be injected after DRIVER_OK, where a suspended device refuses them).
pub(super) fn fail_suspend(c: &mut Ctx) {
    with_failing(
        c,
        "t-fsusp",
        |r| req_type(r) == SUSPEND,
        |c, fd, v| {
            for s in [0x1u8, 0x3, 0xb, 0xf] {
                c.expect(
                    &format!("VHOST_VDPA_SET_STATUS({s:#x})"),
                    set_status(v.0, s),
                    Ok(0),
                );
            }
            c.expect(
                "VHOST_VDPA_SUSPEND, refused",
                sys::ioctl(v.0, VHOST_VDPA_SUSPEND, 0),
                Err(libc::EIO),
            );
            let mut i: u32 = 0;
            c.expect(
                "VQ_INJECT_IRQ(0): not suspended",
                sys::ioctl_ptr(fd.0, VDUSE_VQ_INJECT_IRQ, &mut i),
                Ok(0),
            );
            c.expect("DEV_GET_FEATURES: not broken", dev_features(fd), Ok(0));
        },
    );
}

/// GET_VQ_STATE answered FAILED: VHOST_GET_VRING_BASE fails.
pub(super) fn fail_get_vq_state(c: &mut Ctx) {
    with_failing(
        c,
        "t-fvqstate",
        |r| req_type(r) == GET_VQ_STATE,
        |c, fd, v| {
            let (r, _) = vring_state(v.0, VHOST_GET_VRING_BASE, 1, 0);
            c.expect("VHOST_GET_VRING_BASE(1), refused", r, Err(libc::EIO));
            c.expect("DEV_GET_FEATURES: not broken", dev_features(fd), Ok(0));
        },
    );
}
