// SPDX-License-Identifier: GPL-2.0

//! The module-wide state: the `vduse` class, the character device numbers and the devices.
//!
//! C version: `vduse_class`, `vduse_major`, `vduse_idr` and `vduse_lock` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//!
//! Locks are taken in the order: a control fd's state, `devices`, then a device's locks.

use crate::{
    api::{
        ApiVersion,
        Features, //
    },
    chrdev::{
        ChrdevRegion,
        Class,
        MINORS, //
    },
    device::{
        virtio_id,
        Device,
        ValidConfig, //
    },
    kutil::capable_net_admin,
    vdpa::MgmtRef,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
};

/// The module-wide state, shared by the control device, the device nodes and every device.
#[pin_data]
pub(crate) struct Vduse {
    /// `/sys/class/vduse`, nodes in `/dev/vduse/`.
    #[pin]
    class: Class,
    /// Minor 0 is the control device, 1.. the devices.
    region: ChrdevRegion,
    /// The devices, sorted by minor (`vduse_idr` under `vduse_lock`).
    #[pin]
    devices: Mutex<KVec<Arc<Device>>>,
}

impl Vduse {
    /// Registers the class and allocates the device numbers.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            class <- Class::register(c"vduse", c"vduse"),
            region: ChrdevRegion::alloc(MINORS, c"vduse")?,
            devices <- new_mutex!(KVec::new(), "Vduse::devices"),
        })
    }

    /// The class of all nodes.
    pub(crate) fn class(&self) -> &Class {
        &self.class
    }

    /// The device number of `minor`.
    pub(crate) fn devt(&self, minor: u32) -> Result<u32> {
        self.region.devt(minor)
    }

    /// `VDUSE_CREATE_DEV` after validation (`vduse_create_dev()`).
    ///
    /// # Errors
    ///
    /// `EPERM` (net device without `CAP_NET_ADMIN`), `EEXIST` (name taken), `ENOSPC` (no minor
    /// left), `ENOMEM`, or an error creating the node.
    pub(crate) fn create_dev(
        self: &Arc<Self>,
        cfg: &ValidConfig,
        config: KVec<u8>,
        api: ApiVersion,
        features: Features,
    ) -> Result {
        if cfg.raw.device_id == virtio_id::NET && !capable_net_admin() {
            return Err(EPERM);
        }
        let mut devices = self.devices.lock();
        if devices.iter().any(|d| d.name() == cfg.name()) {
            return Err(EEXIST);
        }
        // The lowest free minor from 1, as `idr_alloc(.., 1, VDUSE_DEV_MAX, ..)`.
        let mut minor = 1;
        let mut pos = devices.len();
        for (i, d) in devices.iter().enumerate() {
            if d.minor() != minor {
                pos = i;
                break;
            }
            minor += 1;
        }
        if minor >= MINORS {
            return Err(ENOSPC);
        }
        let dev = Device::new(self.clone(), cfg, config, minor, api, features)?;
        devices.reserve(1, GFP_KERNEL)?;
        dev.add_node(self.devt(minor)?)?;
        // Cannot fail: capacity was reserved above.
        devices
            .insert_within_capacity(pos, dev)
            .map_err(|_| ENOMEM)?;
        Ok(())
    }

    /// `VDUSE_DESTROY_DEV` (`vduse_destroy_dev()`).
    ///
    /// # Errors
    ///
    /// `EINVAL` (no such device), `EBUSY` (open, or on the vDPA bus).
    pub(crate) fn destroy_dev(&self, name: &[u8]) -> Result {
        let mut devices = self.devices.lock();
        let pos = devices
            .iter()
            .position(|d| d.name() == name)
            .ok_or(EINVAL)?;
        devices[pos].begin_destroy()?;
        let dev = devices.remove(pos).map_err(|_| EINVAL)?;
        drop(devices);
        dev.remove_node();
        Ok(())
    }

    /// `vdpa dev add NAME mgmtdev vduse` (`vdpa_dev_add()`): puts device NAME on the vDPA bus.
    ///
    /// # Errors
    ///
    /// `EINVAL` (no such device, or a virtqueue not set up with `VDUSE_VQ_SETUP`), `EEXIST`
    /// (already on the bus), or an error of the vDPA core.
    pub(crate) fn vdpa_dev_add(&self, mdev: &MgmtRef, name: &CStr) -> Result {
        let (dev, (vdpa, new_domains)) = {
            let devices = self.devices.lock();
            let dev = devices
                .iter()
                .find(|d| d.name() == name.to_bytes())
                .ok_or(EINVAL)?;
            if !dev.is_ready() {
                return Err(EINVAL);
            }
            (dev.clone(), dev.init_vdpa(mdev, name)?)
        };
        let r = vdpa.register(dev.vq_num());
        if r.is_err() && new_domains {
            dev.undo_domains();
        }
        r
    }

    /// Opens the node of minor `minor` (`vduse_dev_open()`): one opener at a time.
    ///
    /// # Errors
    ///
    /// `ENODEV` (no such device), `EBUSY` (already open, or being destroyed).
    pub(crate) fn open_device(&self, minor: u32) -> Result<Arc<Device>> {
        let devices = self.devices.lock();
        let dev = devices.iter().find(|d| d.minor() == minor).ok_or(ENODEV)?;
        dev.connect()?;
        Ok(dev.clone())
    }
}
