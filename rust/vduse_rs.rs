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
mod device;
mod eventfd;
mod ffi;
mod kutil;
mod msg;
mod registry;
mod sysfs;
#[allow(
    dead_code,
    reason = "a complete mirror of the uAPI header; the driver does not use every item"
)]
mod uapi;
mod vdpa;
mod vq;

use chrdev::{
    Cdev,
    DeviceNode,
    MINORS, //
};
use control::Control;
use device::Device;
use kernel::{
    prelude::*,
    sync::Arc, //
};
use registry::Vduse;
use vdpa::MgmtDev;

module! {
    type: VduseModule,
    name: "vduse_rs",
    authors: ["The vduse-rs developers"],
    description: "vDPA Device in Userspace, in Rust",
    license: "GPL",
}

/// The module: the control device, the cdev of the device nodes, and the shared state (class,
/// device numbers, devices).
///
/// Fields are dropped in declaration order: the control node goes before the cdevs, the cdevs
/// before the shared state that holds the class and the device numbers. Devices hold a
/// reference on the module, so none exists when it is dropped.
#[pin_data]
struct VduseModule {
    /// The vDPA management device `vduse` (unregistered first).
    _mgmt: MgmtDev,
    /// `/dev/vduse/control` (minor 0).
    control_node: DeviceNode,
    /// The cdev of the control device.
    #[pin]
    control_cdev: Cdev<Control>,
    /// The cdev of the device nodes (minors 1 to 2^20 - 1).
    #[pin]
    device_cdev: Cdev<Device>,
    /// Class, device numbers and devices.
    vduse: Arc<Vduse>,
}

impl kernel::InPlaceModule for VduseModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            vduse: Arc::pin_init(Vduse::new(), GFP_KERNEL)?,
            _mgmt: MgmtDev::register(vduse.clone())?,
            device_cdev <- Cdev::add(vduse.clone(), vduse.devt(1)?, MINORS - 1),
            control_cdev <- Cdev::add(vduse.clone(), vduse.devt(0)?, 1),
            // SAFETY: The class lives in `vduse`, dropped after this node (declaration order);
            // the node has no attribute groups.
            control_node: unsafe {
                DeviceNode::create(
                    vduse.class(),
                    vduse.devt(0)?,
                    c"control",
                    core::ptr::null_mut(),
                    core::ptr::null(),
                )?
            },
        })
    }
}
