// SPDX-License-Identifier: GPL-2.0

//! The vDPA bus itself: the management device, `vdpa dev add` refused, and a del of a device
//! whose node is closed.

use super::common::*;
use crate::cases::support::*;
use crate::dev::*;
use crate::harness::Ctx;
use crate::sys::VDUSE_VQ_GET_INFO;
use crate::sys::{self, Fd};
use crate::vhost::*;

pub(super) fn add_needs_vq_setup(c: &mut Ctx) {
    use_vhost_vdpa();
    let Some(_g) = create_ok(c, Some(0), &DevConfig::blk("t-vnotready")) else {
        return;
    };
    c.expect_eq(
        "vdpa dev add (queues not set up)",
        vdpa(&["dev", "add", "name", "t-vnotready", "mgmtdev", "vduse"]),
        "exit 1 -EINVAL".to_string(),
    );
}

pub(super) fn add_unknown(c: &mut Ctx) {
    use_vhost_vdpa();
    c.expect_eq(
        "vdpa dev add (no such VDUSE device)",
        vdpa(&["dev", "add", "name", "t-vnone", "mgmtdev", "vduse"]),
        "exit 1 -EINVAL".to_string(),
    );
}

pub(super) fn mgmtdev(c: &mut Ctx) {
    let out = std::process::Command::new("vdpa")
        .args(["mgmtdev", "show"])
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    c.expect_eq(
        "vdpa mgmtdev show",
        text.split_whitespace().collect::<Vec<_>>().join(" "),
        "vduse: supported_classes net block max_supported_vqs 0 dev_features".to_string(),
    );
}

/// `vdpa dev del` of a device whose node is closed, when nothing was in flight and its bus
/// driver (vhost_vdpa, never opened) sent no request: the node opens again and the daemon's
/// ioctls work, as on C. vduse_rs orphans the device while the del runs (D8) and lifts that when
/// the device leaves the bus, since the drain had nothing to do.
pub(super) fn del_closed_reopens(c: &mut Ctx) {
    use_vhost_vdpa();
    let name = "t-vdelclosed";
    let Some((_guard, fd)) = ready_device(c, name, 0) else {
        return;
    };
    drop(fd);
    c.expect_eq(
        "vdpa dev add",
        vdpa(&["dev", "add", "name", name, "mgmtdev", "vduse"]),
        "exit 0".to_string(),
    );
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    let Ok(fd) = c.expect_ok("open(device) after the del", open_dev(name, libc::O_RDWR)) else {
        return;
    };
    let fd = Fd(fd as i32);
    c.expect("DEV_GET_FEATURES", dev_features(&fd).map(|_| 0), Ok(0));
    let mut info = [0u8; 48];
    c.expect(
        "VQ_GET_INFO(0)",
        sys::ioctl(fd.0, VDUSE_VQ_GET_INFO, info.as_mut_ptr() as usize),
        Ok(0),
    );
    // (Not added again: a second add leaks C's IOVA domains and, with their files, a
    // reference on vduse.ko, D4.)
}
