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

// The layers, bottom up (`Documentation/design.rst`): bindings, generic kernel abstractions,
// driver logic. `tools/check-layers` keeps `unsafe` out of the driver and the driver out of the
// abstractions.
mod ffi;
mod uapi;

mod kapi;

mod driver;

use driver::{
    control::Control,
    device::Device,
    registry::Vduse, //
};
use kapi::{
    cdev::{
        Cdev,
        DeviceNode,
        MINORS, //
    },
    vdpa,
};
use kernel::{
    prelude::*,
    sync::Arc, //
};

module! {
    type: VduseModule,
    name: "vduse_rs",
    authors: ["The vduse-rs developers"],
    description: "vDPA Device in Userspace, in Rust",
    license: "GPL",
    params: {
        max_iotlb_entries: i32 {
            default: 2048,
            description: "Maximum number of iotlb entries. (default: 2048)",
        },
        orphan_timeout: u32 {
            default: 0,
            description: "Seconds a device on the vDPA bus may stay without a daemon before its \
                requests in flight are failed (0: never, as vduse.ko)",
        },
        orphan_drain: u8 {
            default: 1,
            description: "Follow the requests in flight of each virtio_vdpa queue at every kick \
                and interrupt, so that the orphan drain can fail them when the daemon is gone \
                (1, default); 0: no tracking, and a dead daemon's requests stay in flight, as \
                with vduse.ko",
        },
        irq_inline: u8 {
            default: 1,
            description: "VDUSE_VQ_INJECT_IRQ calls the driver's callback in the injecting thread \
                when it runs on a CPU of irq_cb_affinity (1, default), or always from a work \
                item, as vduse.ko (0)",
        },
    },
}

/// The module: the management device, the control node, the cdevs of the nodes, and the
/// shared state (class, device numbers, devices).
///
/// Fields are dropped in declaration order: the management device first (which deletes the
/// vDPA devices still on the bus), the control node before the cdevs, the cdevs before the
/// shared state. Devices hold a reference on the module, so none exists when it is dropped.
#[pin_data]
struct VduseModule {
    /// The vDPA management device `vduse`.
    #[pin]
    _mgmt: vdpa::Registration<Vduse>,
    /// `/dev/vduse/control` (minor 0).
    _control_node: DeviceNode,
    /// The cdev of the control device.
    #[pin]
    _control_cdev: Cdev<Control>,
    /// The cdev of the device nodes (minors 1 to 2^20 - 1).
    #[pin]
    _device_cdev: Cdev<Device>,
    /// Class, device numbers and devices.
    vduse: Arc<Vduse>,
}

impl kernel::InPlaceModule for VduseModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            vduse: Arc::pin_init(Vduse::new(), GFP_KERNEL)?,
            _mgmt <- vdpa::Registration::register(vduse.clone()),
            _device_cdev <- Cdev::add(vduse.clone(), vduse.devt(1)?, MINORS - 1),
            _control_cdev <- Cdev::add(vduse.clone(), vduse.devt(0)?, 1),
            _control_node: DeviceNode::create(vduse.class(), vduse.devt(0)?, c"control")?,
        })
    }
}
