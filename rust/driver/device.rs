// SPDX-License-Identifier: GPL-2.0

//! One VDUSE device and its node `/dev/vduse/NAME`.
//!
//! C version: `struct vduse_dev`, `vduse_dev_ioctl()`, `vduse_dev_open()`,
//! `vduse_dev_release()` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//! uAPI: [`include/uapi/linux/vduse.h`](../include/uapi/linux/vduse.h).
//!
//! To avoid deadlocks, locks are taken in the order:
//!
//! 1. [`Device::state`] (mutex);
//! 2. [`Device::sysfs`] (mutex);
//! 3. [`Device::domain`] (mutex);
//! 4. [`Device::config`] (mutex; never with 3);
//! 5. the locks of a [`Vq`] (spinlocks, interrupts disabled; order in [`super::vq`]).
//!
//! The message channel ([`MsgChannel`], a spinlock), the config callback slot (a spinlock,
//! bottom halves disabled) and a domain's IOTLB lock ([`super::domain`]) are leaves: no other
//! lock is taken while they are held, and no message is sent (which sleeps) while any lock of
//! this list is held. `vdpa dev add` takes 1, 2, 3 in that order (`init_vdpa`).
//! `VDUSE_IOTLB_REG_UMEM` takes the `mmap_lock` under 3 (to pin the daemon's pages), so no op
//! the kernel may call with the `mmap_lock` held takes 3: `set_map` (vhost-vdpa holds it) finds
//! its domain in the bound device's [`Spaces`] and creates it there (`Bound::create_space`),
//! without the CPU hotplug lock, which the kernel takes before locks that come before the
//! `mmap_lock`. The mutexes are taken in process context only; `kick_vq` and the map ops,
//! which may run in atomic context, take none of them (`kick_vq` takes only the virtqueue's
//! kick lock; the map ops find their domain without a lock, then take the domain's own leaf
//! locks).

use super::{
    api::{
        ApiVersion,
        Features, //
    },
    domain::{
        AddressSpace,
        Domain,
        Spaces, //
    },
    msg::MsgChannel,
    ring::Role,
    vq::Vq,
};
use crate::{
    ffi,
    kapi::{
        cdev::Class,
        iova::IovaCache,
        kstrtox::parse_u32,
        module_ref::ModuleRef,
        vdpa::CallbackSlot, //
    },
    uapi,
};
use kernel::{
    fs::File,
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
    time::{
        Instant,
        Monotonic, //
    },
    workqueue::{
        new_delayed_work,
        new_work,
        DelayedWork,
        Work, //
    },
};

mod config;
mod ioctl;
mod orphan;
mod sysfs_attrs;
mod vdpa_ops;
pub(crate) use config::{
    name_of,
    virtio_id,
    ValidConfig, //
};

/// `VIRTIO_F_RING_PACKED`.
const VIRTIO_F_RING_PACKED: u64 = 1 << ffi::VIRTIO_F_RING_PACKED;
/// `VIRTIO_CONFIG_S_DRIVER_OK`.
const STATUS_DRIVER_OK: u8 = ffi::VIRTIO_CONFIG_S_DRIVER_OK as u8;
/// Default `msg_timeout`, seconds.
const MSG_DEFAULT_TIMEOUT: u32 = 30;
/// Default, smallest and largest `bounce_size`.
const DEFAULT_BOUNCE_SIZE: u32 = 64 << 20;
const MIN_BOUNCE_SIZE: u32 = 1 << 20;
const MAX_BOUNCE_SIZE: u32 = 1 << 30;

/// Mutable state of a device (`dev->lock` and the unlocked fields of C).
#[derive(Default)]
struct State {
    /// The device node is open (single opener); also set while the device is being destroyed.
    connected: bool,
    /// Registered on the vDPA bus.
    bound: bool,
    /// Virtio status set by the driver.
    status: u8,
    /// Virtio features the driver negotiated.
    driver_features: u64,
    /// Bumped by every reset.
    generation: u32,
    /// No daemon will serve the device again: its requests in flight were completed with an
    /// error (the orphan drain), and the node cannot be opened (`EPERM`).
    orphaned: bool,
    /// When the node was last closed (for `orphan_timeout`).
    closed_at: Option<Instant<Monotonic>>,
}

/// Bounce-buffer settings (`dev->domain_lock`).
struct DomainState {
    /// Bounce buffer size, `bounce_size` in sysfs (split evenly between the address spaces).
    bounce_size: u32,
    /// The IOVA domains are in use (from a successful `vdpa dev add` on): `bounce_size` is
    /// frozen.
    created: bool,
    /// The address spaces (`dev->as[]`): `None` until the first `vdpa dev add`, which makes
    /// them (space 0 then, the others on first use); kept across `vdpa dev del` and reused by
    /// the next add, replaced only by an add after `bounce_size` changed. The bound vDPA
    /// device holds them too (`Bound`), for the ops that must not take this mutex.
    spaces: Option<Arc<Spaces>>,
}

/// Most entries an address space's IOTLB holds (bounce region, coherent buffers and the
/// consumer's mappings together): the `max_iotlb_entries` module parameter, as in C's
/// `iova_domain.c` (2048 by default), read when an address space is created.
///
/// # Errors
///
/// `ENOMEM` if it is not positive (C's `vduse_domain_create` fails, and `vdpa dev add` with
/// it).
fn max_iotlb_entries() -> Result<usize> {
    let n = crate::module_parameters::max_iotlb_entries.value();
    usize::try_from(n).ok().filter(|&n| n > 0).ok_or(ENOMEM)
}

/// The work item id of [`Device::drain_work`].
pub(super) const DRAIN_WORK: u64 = 0;
/// The work item id of [`Device::orphan_timer`].
pub(super) const ORPHAN_TIMER: u64 = 1;

/// One VDUSE device.
#[pin_data]
pub(crate) struct Device {
    /// NUL-terminated name.
    name: [u8; uapi::VDUSE_NAME_MAX],
    /// Minor number of the node.
    minor: u32,
    /// API version of the control fd that created it.
    api: ApiVersion,
    /// VDUSE features of the control fd that created it.
    vduse_features: Features,
    /// Virtio device id.
    device_id: u32,
    /// Virtio vendor id.
    vendor_id: u32,
    /// Virtio features offered.
    device_features: u64,
    /// Virtqueue alignment.
    vq_align: u32,
    /// Number of virtqueue groups.
    ngroups: u32,
    /// Number of address spaces.
    nas: u32,
    /// The virtqueues.
    vqs: KVec<Arc<Vq>>,
    /// Request timeout in seconds, 0 = none (`msg_timeout` in sysfs).
    msg_timeout: Atomic<u32>,
    /// Suspended by the vDPA driver (`VDUSE_F_SUSPEND`) until reset: the injection ioctls
    /// refuse it. The barrier itself (no kick, no callback) is each queue's ([`Vq::suspend`]).
    suspended: Atomic<bool>,
    /// How many requests the orphan drain completed, in all (said when the device leaves the
    /// bus).
    drained: Atomic<u64>,
    /// The drain of a queue stopped on a ring it could not follow (the orphan is then for
    /// good).
    drain_stopped: Atomic<bool>,
    /// `VIRTIO_CONFIG_S_DRIVER_OK` is set in [`State::status`] (changed with it, under
    /// [`Device::state`]): `VDUSE_VQ_INJECT_IRQ` tests it without the mutex.
    driver_ok: Atomic<bool>,
    #[pin]
    state: Mutex<State>,
    #[pin]
    domain: Mutex<DomainState>,
    /// The address space of each virtqueue group (`groups[i].as`), switched by
    /// `set_group_asid`.
    groups: KVec<Atomic<u32>>,
    /// The configuration space.
    #[pin]
    config: Mutex<KVec<u8>>,
    /// Messages to the daemon.
    #[pin]
    msgs: MsgChannel,
    /// The vDPA driver's config interrupt callback.
    #[pin]
    config_cb: CallbackSlot,
    /// Node and sysfs objects; `None` once destroyed (they hold a reference on the device,
    /// dropped there).
    #[pin]
    sysfs: Mutex<Option<sysfs_attrs::DeviceSysfs>>,
    /// The IOVA caches, held for the domains this device creates.
    iova_cache: IovaCache,
    /// Drains the virtqueues kicked while the device is orphaned.
    #[pin]
    drain_work: Work<Device, DRAIN_WORK>,
    /// Orphans the device `orphan_timeout` seconds after its node was closed.
    #[pin]
    orphan_timer: DelayedWork<Device, ORPHAN_TIMER>,
    /// The module stays loaded while a device exists.
    _module: ModuleRef,
}

impl Device {
    /// Creates a device (without its node) from a validated config.
    pub(crate) fn new(
        cfg: &ValidConfig,
        config: KVec<u8>,
        minor: u32,
        api: ApiVersion,
        vduse_features: Features,
    ) -> Result<Arc<Self>> {
        let mut vqs = KVec::with_capacity(cfg.raw.vq_num as usize, GFP_KERNEL)?;
        for i in 0..cfg.raw.vq_num {
            let role = match cfg.raw.device_id {
                virtio_id::BLOCK => Role::Block,
                // No control queue (refused at creation): receive and transmit queue pairs.
                virtio_id::NET if i % 2 == 0 => Role::NetRx,
                virtio_id::NET => Role::NetTx,
                _ => Role::Other,
            };
            vqs.push(Arc::pin_init(Vq::new(role)?, GFP_KERNEL)?, GFP_KERNEL)?;
        }
        // Every group starts in address space 0.
        let mut groups = KVec::with_capacity(cfg.ngroups as usize, GFP_KERNEL)?;
        for _ in 0..cfg.ngroups {
            groups.push(Atomic::new(0), GFP_KERNEL)?;
        }
        let iova_cache = IovaCache::get()?;
        Arc::pin_init(
            try_pin_init!(Self {
                name: cfg.name,
                minor,
                api,
                vduse_features,
                device_id: cfg.raw.device_id,
                vendor_id: cfg.raw.vendor_id,
                device_features: cfg.raw.features,
                vq_align: cfg.raw.vq_align,
                ngroups: cfg.ngroups,
                nas: cfg.nas,
                vqs,
                msg_timeout: Atomic::new(MSG_DEFAULT_TIMEOUT),
                suspended: Atomic::new(false),
                drained: Atomic::new(0),
                drain_stopped: Atomic::new(false),
                driver_ok: Atomic::new(false),
                state <- new_mutex!(State::default(), "Device::state"),
                domain <- new_mutex!(
                    DomainState {
                        bounce_size: DEFAULT_BOUNCE_SIZE,
                        created: false,
                        spaces: None,
                    },
                    "Device::domain"
                ),
                groups,
                config <- new_mutex!(config, "Device::config"),
                msgs <- MsgChannel::new(),
                config_cb <- CallbackSlot::new(),
                sysfs <- new_mutex!(None, "Device::sysfs"),
                iova_cache,
                drain_work <- new_work!("Device::drain_work"),
                orphan_timer <- new_delayed_work!("Device::orphan_timer"),
                _module: ModuleRef::get(kernel::module::this_module::<crate::LocalModule>()),
            }),
            GFP_KERNEL,
        )
    }

    /// Creates the node `/dev/vduse/NAME` in `class` (with `msg_timeout`, `bounce_size`) and
    /// the `vqN` directories.
    pub(crate) fn add_node(
        self: &Arc<Self>,
        class: &Arc<Class>,
        debug_root: &kernel::debugfs::Dir,
        devt: u32,
    ) -> Result {
        let name = CStr::from_bytes_until_nul(&self.name).map_err(|_| EINVAL)?;
        let sysfs =
            sysfs_attrs::DeviceSysfs::create(class, debug_root, self, devt, name, &self.vqs)?;
        *self.sysfs.lock() = Some(sysfs);
        Ok(())
    }

    /// The name, without NUL.
    pub(crate) fn name(&self) -> &[u8] {
        name_of(&self.name)
    }

    /// Minor number of the node.
    pub(crate) fn minor(&self) -> u32 {
        self.minor
    }

    /// Opens the node: one opener at a time, never while being destroyed, and never once
    /// orphaned.
    ///
    /// # Errors
    ///
    /// `EBUSY`; `EPERM` once orphaned ([`Device::orphan`]).
    pub(crate) fn connect(&self) -> Result {
        let mut st = self.state.lock();
        if st.connected {
            return Err(EBUSY);
        }
        if st.orphaned {
            return Err(EPERM);
        }
        st.connected = true;
        Ok(())
    }

    /// The node was closed: it may be opened again.
    fn disconnect(&self) {
        let mut st = self.state.lock();
        st.connected = false;
        st.closed_at = Some(Instant::now());
    }

    /// `VDUSE_DESTROY_DEV`: refuses while the node is open or the device is on the vDPA bus;
    /// otherwise marks it (so nobody opens it any more) and removes its node.
    ///
    /// # Errors
    ///
    /// `EBUSY`.
    pub(crate) fn begin_destroy(&self) -> Result {
        let mut st = self.state.lock();
        if st.bound || st.connected {
            return Err(EBUSY);
        }
        st.connected = true;
        Ok(())
    }

    /// Removes node and sysfs objects (after [`Device::begin_destroy`]); then
    /// [`Device::flush_work`] waits for the deferred work, so that no module code runs for this
    /// device once it is gone.
    pub(crate) fn remove_node(&self) {
        let sysfs = self.sysfs.lock().take();
        drop(sysfs);
    }

    /// After [`Device::remove_node`], with no registry lock held: waits for the orphan timer,
    /// the drain and the kick work items of a device being destroyed.
    pub(crate) fn flush_work(&self) {
        // The timer runs now and finds the device being destroyed (`connected`).
        crate::kapi::workqueue::flush_delayed_work(&self.orphan_timer);
        crate::kapi::workqueue::flush_work(&self.drain_work);
        for vq in self.vqs.iter() {
            vq.flush_kicks();
        }
    }

    /// `msg_timeout` (sysfs show).
    pub(crate) fn msg_timeout(&self) -> u32 {
        self.msg_timeout.load(Relaxed)
    }

    /// `msg_timeout` (sysfs store).
    pub(crate) fn set_msg_timeout(&self, input: &CStr) -> Result {
        self.msg_timeout.store(parse_u32(input)?, Relaxed);
        Ok(())
    }

    /// `bounce_size` (sysfs show).
    pub(crate) fn bounce_size(&self) -> u32 {
        self.domain.lock().bounce_size
    }

    /// `bounce_size` (sysfs store): 1 MiB to 1 GiB, rounded down to pages, and only before the
    /// device was first added to the vDPA bus.
    pub(crate) fn set_bounce_size(&self, input: &CStr) -> Result {
        let mut d = self.domain.lock();
        if d.created {
            return Err(EPERM);
        }
        let size = parse_u32(input)?;
        if !(MIN_BOUNCE_SIZE..=MAX_BOUNCE_SIZE).contains(&size) {
            return Err(EINVAL);
        }
        // CAST: `PAGE_SIZE` fits in `u32`.
        d.bounce_size = size & !(PAGE_SIZE as u32 - 1);
        Ok(())
    }

    /// The domain of address space `asid` and its file, once the domains are in use.
    /// `EINVAL` for an address space not created yet: it has no mapping, and every lookup in
    /// an empty domain is `EINVAL`. Takes [`Device::domain`] (process context, never under the
    /// `mmap_lock`: the ioctls).
    fn space_in_use(&self, asid: u32) -> Result<(Arc<Domain>, ARef<File>)> {
        let d = self.domain.lock();
        let s = Self::space_locked(&d, asid).ok_or(EINVAL)?;
        Ok((s.domain.clone(), s.file.clone()))
    }

    /// The domain of address space `asid` while `d` (the [`Device::domain`] guard the caller
    /// holds) says the domains are in use.
    fn domain_locked(&self, d: &DomainState, asid: u32) -> Option<Arc<Domain>> {
        Self::space_locked(d, asid).map(|s| s.domain.clone())
    }

    /// Address space `asid` of `d` (the [`Device::domain`] guard), if the domains are in use
    /// and it exists.
    fn space_locked(d: &DomainState, asid: u32) -> Option<&AddressSpace> {
        d.spaces.as_ref().filter(|_| d.created)?.get(asid)
    }

    /// The device node was closed: user memory registered through it is deregistered (the
    /// kernel's bounce pages take over, as in C).
    fn dereg_all_umem(&self) {
        let d = self.domain.lock();
        for asid in 0..self.nas {
            if let Some(domain) = self.domain_locked(&d, asid) {
                // `ENOENT` when none is registered: nothing to do.
                let _ = domain.dereg_umem(0, domain.bounce_size() as u64);
            }
        }
    }
}
