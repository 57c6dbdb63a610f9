// SPDX-License-Identifier: GPL-2.0

//! vduse_rs: VDUSE (vDPA Device in Userspace) in Rust.
//!
//! A drop-in for the C `vduse.ko` of Linux 7.3
//! ([`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c)): the same
//! uAPI ([`include/uapi/linux/vduse.h`](../include/uapi/linux/vduse.h)), the same device class
//! `vduse`, the same nodes under `/dev/vduse/`. The two modules cannot be loaded at the same
//! time, as they register the same class and character device names.
//!
//! Userspace talks to `/dev/vduse/control`:
//!
//! ```c
//! int fd = open("/dev/vduse/control", O_RDWR);
//! __u64 version, features;
//! ioctl(fd, VDUSE_GET_API_VERSION, &version);   /* latches the newest version, 1 */
//! if (ioctl(fd, VDUSE_GET_FEATURES, &features) == 0)
//!         ioctl(fd, VDUSE_SET_FEATURES, &features);
//! ```
//!
//! See `Documentation/` in the repository for the design and every difference from the C driver.

mod api;
mod chrdev;
mod control;
#[allow(
    dead_code,
    reason = "a complete mirror of the uAPI header; the driver does not use every item"
)]
mod uapi;

use chrdev::{
    Cdev,
    ChrdevRegion,
    Class,
    DeviceNode,
    MINORS, //
};
use control::Control;
use kernel::prelude::*;

module! {
    type: VduseModule,
    name: "vduse_rs",
    authors: ["The vduse-rs developers"],
    description: "vDPA Device in Userspace, in Rust",
    license: "GPL",
}

/// The module: the `vduse` class, its character device region and the control device.
///
/// Fields are dropped in declaration order: the control node goes before its cdev, the cdev
/// before the region, and all of them before the class.
#[pin_data]
struct VduseModule {
    /// `/dev/vduse/control` (minor 0).
    control_node: DeviceNode,
    /// The cdev of the control device.
    #[pin]
    control_cdev: Cdev<Control>,
    /// Minors 0 (control) to 2^20 - 1 (devices).
    region: ChrdevRegion,
    /// `/sys/class/vduse`, nodes in `/dev/vduse/`.
    #[pin]
    class: Class,
}

impl kernel::InPlaceModule for VduseModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            class <- Class::register(c"vduse", c"vduse"),
            region: ChrdevRegion::alloc(MINORS, c"vduse")?,
            control_cdev <- Cdev::add((), region.devt(0)?, 1),
            // SAFETY: The node is a field of the same module as `class` and is dropped before it
            // (declaration order); it has no attribute groups.
            control_node: unsafe {
                DeviceNode::create(
                    &class,
                    region.devt(0)?,
                    c"control",
                    core::ptr::null_mut(),
                    core::ptr::null(),
                )?
            },
        })
    }
}
