// SPDX-License-Identifier: GPL-2.0

//! The module-wide state: the `vduse` class, the character device numbers and the devices.
//!
//! C version: `vduse_class`, `vduse_major`, `vduse_idr` and `vduse_lock` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//!
//! To avoid deadlocks, locks are taken in the order:
//!
//! 1. a control fd's `Control::state` (mutex);
//! 2. [`Vduse::devices`] (mutex);
//! 3. a device's locks, in the order of [`super::device`].
//!
//! `vdpa dev add` enters at 2 with the vDPA core's `vdpa_dev_lock` (a rwsem) held, which is
//! therefore taken before all of these. Everything here runs in process context.

use super::{
    api::{
        ApiVersion,
        Features, //
    },
    device::{
        virtio_id,
        Device,
        ValidConfig, //
    },
};
use crate::kapi::{
    cdev::{
        CdevOps,
        ChrdevRegion,
        Class,
        MINORS, //
    },
    cred::capable_net_admin,
    iova::IovaCache,
    vdpa::{
        MgmtDev,
        MgmtOps, //
    },
};
use kernel::{
    debugfs::Dir,
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
    /// `/sys/class/vduse`, nodes in `/dev/vduse/` (the nodes hold it too).
    class: Arc<Class>,
    /// Minor 0 is the control device, 1.. the devices.
    region: ChrdevRegion,
    /// The devices, sorted by minor (`vduse_idr` under `vduse_lock`).
    #[pin]
    devices: Mutex<KVec<Arc<Device>>>,
    /// The IOVA allocator's caches (`vduse_domain_init`), held for the module's lifetime: a
    /// domain may outlive its device (a daemon's mapping of its file) and frees into the
    /// caches when it goes. Each device holds a reference too, for the domains it creates.
    _iova_cache: IovaCache,
    /// `/sys/kernel/debug/vduse_rs`: per-device statistics.
    debugfs: Dir,
}

impl Vduse {
    /// Registers the class and allocates the device numbers.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            class: Class::register(c"vduse", c"vduse")?,
            region: ChrdevRegion::alloc(MINORS, c"vduse")?,
            devices <- new_mutex!(KVec::new(), "Vduse::devices"),
            _iova_cache: IovaCache::get()?,
            debugfs: Dir::new(c"vduse_rs"),
        })
    }

    /// The class of all nodes.
    pub(crate) fn class(&self) -> &Arc<Class> {
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
        let (minor, pos) = lowest_free_minor(devices.iter().map(|d| d.minor()), MINORS)?;
        let dev = Device::new(cfg, config, minor, api, features)?;
        devices.reserve(1, GFP_KERNEL)?;
        dev.add_node(&self.class, &self.debugfs, self.devt(minor)?)?;
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
        // The node, its sysfs directory and `/dev/char/MAJ:MIN` go before the name and the
        // minor are free again, as in C (`device_destroy()` under `vduse_lock`): a
        // `CREATE_DEV` of the same name waiting for the lock must not find the old ones still
        // there (found by `vduse-tests fuzz-race`). Their removal waits only for sysfs and
        // debugfs handlers, which take a device's locks (3), never this one.
        dev.remove_node();
        drop(devices);
        dev.flush_work();
        Ok(())
    }

    /// `vdpa dev add NAME mgmtdev vduse` (`vdpa_dev_add()`): puts device NAME on the vDPA bus.
    ///
    /// # Errors
    ///
    /// `EINVAL` (no such device, or a virtqueue not set up with `VDUSE_VQ_SETUP`), `EEXIST`
    /// (already on the bus), or an error of the vDPA core.
    pub(crate) fn vdpa_dev_add(&self, mdev: &MgmtDev<'_>, name: &CStr) -> Result {
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
        let r = vdpa.register(mdev, dev.vq_num());
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

/// The device nodes `/dev/vduse/NAME`: opened by minor through the registry.
impl CdevOps for Device {
    type Shared = Arc<Vduse>;

    fn open(vduse: &Arc<Vduse>, minor: u32, _file: &kernel::fs::File) -> Result<Arc<Device>> {
        vduse.open_device(minor)
    }
}

/// The management device `vduse`: `vdpa dev add NAME mgmtdev vduse` puts device NAME on the
/// vDPA bus.
impl MgmtOps for Vduse {
    type Data = Arc<Vduse>;
    const NAME: &'static CStr = c"vduse";
    /// As in C, virtio-fs devices can be created but are not listed.
    const DEVICE_IDS: &'static [u32] = &[virtio_id::BLOCK, virtio_id::NET];

    fn dev_add(vduse: &Arc<Vduse>, mdev: &MgmtDev<'_>, name: &CStr) -> Result {
        vduse.vdpa_dev_add(mdev, name)
    }

    /// A device whose node nobody holds is orphaned before its driver goes, so that removing
    /// the driver does not wait for ever on requests no daemon will serve
    /// ([`Device::orphan`]).
    fn dev_del(vduse: &Arc<Vduse>, name: &CStr) {
        let dev = vduse
            .devices
            .lock()
            .iter()
            .find(|d| d.name() == name.to_bytes())
            .cloned();
        if let Some(dev) = dev {
            dev.orphan();
        }
    }
}

/// The lowest free minor from 1 below `limit`, given the minors in use in increasing order, and
/// its position in that order (`idr_alloc(.., 1, limit, ..)`).
///
/// # Errors
///
/// `ENOSPC` if every minor is in use.
fn lowest_free_minor(used: impl Iterator<Item = u32>, limit: u32) -> Result<(u32, usize)> {
    let mut minor = 1;
    let mut pos = 0;
    for m in used {
        if m != minor {
            break;
        }
        minor += 1;
        pos += 1;
    }
    if minor >= limit {
        return Err(ENOSPC);
    }
    Ok((minor, pos))
}

#[kunit_tests(vduse_rs_registry)]
mod tests {
    use super::*;

    fn alloc(used: &[u32], limit: u32) -> Result<(u32, usize)> {
        lowest_free_minor(used.iter().copied(), limit)
    }

    #[test]
    fn minors() {
        assert_eq!(alloc(&[], 8), Ok((1, 0)));
        assert_eq!(alloc(&[1, 2, 3], 8), Ok((4, 3)));
        assert_eq!(alloc(&[2, 3], 8), Ok((1, 0)));
        assert_eq!(alloc(&[1, 3, 4], 8), Ok((2, 1)));
        assert_eq!(alloc(&[1, 2, 3, 4, 5, 6], 8), Ok((7, 6)));
        assert_eq!(alloc(&[1, 2, 3, 4, 5, 6, 7], 8), Err(ENOSPC));
        assert_eq!(alloc(&[], 1), Err(ENOSPC));
    }
}
