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
//! 4. [`Device::spaces`] (spinlock, interrupts disabled: the map ops take it in atomic
//!    context, even in softirq);
//! 5. [`Device::config`] (mutex; never with 4);
//! 6. the locks of a [`Vq`] (spinlocks, interrupts disabled; order in [`super::vq`]).
//!
//! The message channel ([`MsgChannel`], a spinlock), the config callback slot (a spinlock,
//! bottom halves disabled) and a domain's IOTLB lock ([`super::domain`]) are leaves: no other
//! lock is taken while they are held, and no message is sent (which sleeps) while any lock of
//! this list is held. `vdpa dev add` takes 1, 2, 3, 4 in that order (`init_vdpa`).
//! `VDUSE_IOTLB_REG_UMEM` takes the `mmap_lock` under 3 (to pin the daemon's pages), so no op
//! the kernel may call with the `mmap_lock` held takes 3: `set_map` (vhost-vdpa holds it) finds
//! its domain through 4 only, and creates it ([`Device::create_space`]) with no lock held before
//! installing it under 4. The mutexes are taken in process context only; `kick_vq` and the
//! map ops, which may run in atomic context, take none of them (`kick_vq` takes only the
//! virtqueue's kick lock; the map ops take 4 briefly to find a domain, then the domain's own
//! leaf locks).

use super::{
    api::{
        ApiVersion,
        Features, //
    },
    domain::{
        AddressSpace,
        Domain, //
    },
    msg::{
        MsgChannel,
        ReadMode, //
    },
    ring::Role,
    vq::Vq,
};
use crate::{
    ffi,
    kapi::{
        cdev::Class,
        eventfd::EventFdCtx,
        fd::receive_fd,
        file_ops::{
            kiocb_nonblock,
            FileOps, //
        },
        iova::IovaCache,
        misc::parse_u32,
        module_ref::ModuleRef,
        nospec::index_nospec,
        vdpa::CallbackSlot,
    },
    uapi,
};

mod sysfs_attrs;
mod vdpa_ops;
use kernel::{
    alloc::KVVec,
    fs::{
        File,
        Kiocb, //
    },
    ioctl::_IOC_SIZE,
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    new_mutex, new_spinlock_irq,
    page::PAGE_SIZE,
    prelude::*,
    str::BStr,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        poll::PollTable,
        Arc,
        ArcBorrow,
        Mutex,
        SpinLockIrq, //
    },
    time::{
        msecs_to_jiffies,
        Instant,
        Monotonic, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    workqueue::{
        self,
        impl_has_delayed_work,
        impl_has_work,
        new_delayed_work,
        new_work,
        DelayedWork,
        Work,
        WorkItem, //
    },
};

/// Virtio device ids a VDUSE device may have (`allowed_device_id` in C).
pub(crate) mod virtio_id {
    use crate::ffi;

    /// `VIRTIO_ID_NET`.
    pub(crate) const NET: u32 = ffi::VIRTIO_ID_NET;
    /// `VIRTIO_ID_BLOCK`.
    pub(crate) const BLOCK: u32 = ffi::VIRTIO_ID_BLOCK;
    /// `VIRTIO_ID_FS`.
    pub(crate) const FS: u32 = ffi::VIRTIO_ID_FS;
}

/// Virtio feature bits the creation rules look at.
mod virtio_f {
    use crate::ffi;

    /// `VIRTIO_BLK_F_CONFIG_WCE`.
    pub(super) const BLK_CONFIG_WCE: u64 = 1 << ffi::VIRTIO_BLK_F_CONFIG_WCE;
    /// `VIRTIO_NET_F_CTRL_VQ`.
    pub(super) const NET_CTRL_VQ: u64 = 1 << ffi::VIRTIO_NET_F_CTRL_VQ;
    /// `VIRTIO_F_VERSION_1`.
    pub(super) const VERSION_1: u64 = 1 << ffi::VIRTIO_F_VERSION_1;
    /// `VIRTIO_F_ACCESS_PLATFORM`.
    pub(super) const ACCESS_PLATFORM: u64 = 1 << ffi::VIRTIO_F_ACCESS_PLATFORM;
}

/// `VIRTIO_F_RING_PACKED`.
const VIRTIO_F_RING_PACKED: u64 = 1 << ffi::VIRTIO_F_RING_PACKED;
/// `VIRTIO_CONFIG_S_DRIVER_OK`.
const STATUS_DRIVER_OK: u8 = ffi::VIRTIO_CONFIG_S_DRIVER_OK;
/// `VRING_USED_ALIGN_SIZE`: the smallest virtqueue alignment.
const VRING_USED_ALIGN_SIZE: u32 = ffi::VRING_USED_ALIGN_SIZE;
/// Largest number of virtqueues.
const MAX_VQ_NUM: u32 = 0xffff;
/// Default `msg_timeout`, seconds.
const MSG_DEFAULT_TIMEOUT: u32 = 30;
/// Default, smallest and largest `bounce_size`.
const DEFAULT_BOUNCE_SIZE: u32 = 64 << 20;
const MIN_BOUNCE_SIZE: u32 = 1 << 20;
const MAX_BOUNCE_SIZE: u32 = 1 << 30;

/// A `struct vduse_dev_config` that passed `vduse_validate_config()`.
pub(crate) struct ValidConfig {
    /// The name: NUL-terminated, at most `VDUSE_NAME_MAX - 1` bytes before the NUL.
    pub(crate) name: [u8; uapi::VDUSE_NAME_MAX],
    /// The raw config.
    pub(crate) raw: uapi::DevConfig,
    /// Effective number of virtqueue groups.
    pub(crate) ngroups: u32,
    /// Effective number of address spaces.
    pub(crate) nas: u32,
}

impl ValidConfig {
    /// `vduse_validate_config()` + `device_is_allowed()` + `features_is_valid()` of 7.3.
    ///
    /// # Errors
    ///
    /// `EINVAL` for any violated rule.
    pub(crate) fn new(raw: &uapi::DevConfig, api: ApiVersion) -> Result<Self> {
        if raw.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let (ngroups, nas) = api.groups_and_spaces(raw.ngroups, raw.nas)?;
        if raw.vq_align < VRING_USED_ALIGN_SIZE
            || !raw.vq_align.is_power_of_two()
            || raw.vq_align as usize > PAGE_SIZE
        {
            return Err(EINVAL);
        }
        if raw.config_size as usize > PAGE_SIZE || raw.vq_num > MAX_VQ_NUM || raw.name[0] == 0 {
            return Err(EINVAL);
        }
        let f = raw.features;
        let allowed = match raw.device_id {
            virtio_id::BLOCK => f & virtio_f::BLK_CONFIG_WCE == 0,
            virtio_id::NET => f & virtio_f::NET_CTRL_VQ == 0 && f & virtio_f::VERSION_1 != 0,
            virtio_id::FS => true,
            _ => false,
        };
        if !allowed || f & virtio_f::ACCESS_PLATFORM == 0 {
            return Err(EINVAL);
        }
        let mut name = raw.name;
        // The name is cut at 255 bytes after validation, as in C.
        name[uapi::VDUSE_NAME_MAX - 1] = 0;
        Ok(Self {
            name,
            raw: *raw,
            ngroups,
            nas,
        })
    }

    /// The name, without its NUL.
    pub(crate) fn name(&self) -> &[u8] {
        name_of(&self.name)
    }
}

/// The bytes of a NUL-terminated name buffer before the first NUL.
pub(crate) fn name_of(buf: &[u8]) -> &[u8] {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..len]
}

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
    #[pin]
    state: Mutex<State>,
    #[pin]
    domain: Mutex<DomainState>,
    /// The address spaces, one IOVA domain each (`dev->as[]`); empty until the first
    /// `vdpa dev add`, which creates address space 0; the others are created on first use
    /// ([`Device::create_space`]), `None` until then. IRQ-safe: the map ops look a domain up
    /// in atomic context.
    #[pin]
    spaces: SpinLockIrq<KVVec<Option<AddressSpace>>>,
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

/// The work item id of [`Device::drain_work`].
const DRAIN_WORK: u64 = 0;
/// The work item id of [`Device::orphan_timer`].
const ORPHAN_TIMER: u64 = 1;

impl_has_work! {
    impl HasWork<Self, DRAIN_WORK> for Device { self.drain_work }
}
impl_has_delayed_work! {
    impl HasDelayedWork<Self, ORPHAN_TIMER> for Device { self.orphan_timer }
}

impl WorkItem<DRAIN_WORK> for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        this.drain_queues();
        this.requeue_drain();
    }
}

impl WorkItem<ORPHAN_TIMER> for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        this.orphan_timer_fired();
    }
}

/// `orphan_timeout`, in seconds (0: off).
fn orphan_timeout() -> u32 {
    crate::module_parameters::orphan_timeout.value()
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
                state <- new_mutex!(State::default(), "Device::state"),
                domain <- new_mutex!(
                    DomainState {
                        bounce_size: DEFAULT_BOUNCE_SIZE,
                        created: false,
                    },
                    "Device::domain"
                ),
                spaces <- new_spinlock_irq!(KVVec::new(), "Device::spaces"),
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

    /// The node was closed: with `orphan_timeout` set, the device is orphaned if no daemon
    /// opens it within that time while it is on the vDPA bus (a extension of the uAPI,
    /// `Documentation/orphan-drain.rst`).
    fn arm_orphan_timer(self: &Arc<Self>) {
        let secs = orphan_timeout();
        if secs == 0 {
            return;
        }
        let delay = msecs_to_jiffies(secs.saturating_mul(1000));
        // Already queued (an earlier close): that run sees the later close and re-arms.
        let _ = workqueue::system().enqueue_delayed::<_, ORPHAN_TIMER>(self.clone(), delay);
    }

    /// The orphan timer ran: orphans the device if it is still on the bus with its node closed
    /// since `orphan_timeout`, re-arms for the rest if it was closed later. Process context.
    fn orphan_timer_fired(self: &Arc<Self>) {
        let secs = orphan_timeout();
        let left = {
            let st = self.state.lock();
            let Some(closed) = st.closed_at else { return };
            if secs == 0 || st.connected || st.orphaned || !st.bound {
                return;
            }
            let waited = closed.elapsed().as_millis();
            i64::from(secs) * 1000 - waited
        };
        if left > 0 {
            // CAST: `0 < left <= secs * 1000`, which fits in `u32`.
            let delay = msecs_to_jiffies(left as u32);
            let _ = workqueue::system().enqueue_delayed::<_, ORPHAN_TIMER>(self.clone(), delay);
            return;
        }
        pr_info!(
            "{}: no daemon for {} s (orphan_timeout)\n",
            BStr::from_bytes(self.name()),
            secs
        );
        self.orphan();
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

    /// Removes node and sysfs objects (after [`Device::begin_destroy`]), and waits for
    /// deferred kicks, so that no module code runs for this device once it is gone.
    pub(crate) fn remove_node(&self) {
        let sysfs = self.sysfs.lock().take();
        drop(sysfs);
        // The timer runs now and finds the device being destroyed (`connected`).
        crate::kapi::misc::flush_delayed_work(&self.orphan_timer);
        crate::kapi::misc::flush_work(&self.drain_work);
        for vq in self.vqs.iter() {
            vq.flush_kicks();
        }
    }

    /// The orphan drain (`Documentation/orphan-drain.rst`): if the device is on the vDPA bus
    /// and no process has its node open, it is orphaned for good: every request to the daemon
    /// fails at once from now on (the device is broken, as after a timeout), the node cannot
    /// be opened again, and every request the driver has in flight is completed as a device
    /// does on a fatal error, now and at every later kick. Called by `vdpa dev del` before the
    /// driver is removed (which waits for those requests), and when the node of a broken
    /// device is closed. Process context.
    ///
    /// Returns whether the device was orphaned now.
    pub(crate) fn orphan(self: &Arc<Self>) -> bool {
        {
            let mut st = self.state.lock();
            if st.connected || st.orphaned || !st.bound {
                return false;
            }
            st.orphaned = true;
        }
        self.msgs.break_device();
        for vq in self.vqs.iter() {
            vq.start_drain();
        }
        let n = self.drain_queues();
        pr_info!(
            "{}: no daemon: {} requests in flight failed\n",
            BStr::from_bytes(self.name()),
            n
        );
        self.requeue_drain();
        true
    }

    /// Queues the drain work again for the virtqueues whose driver kept adding requests.
    fn requeue_drain(self: &Arc<Self>) {
        if self.vqs.iter().any(|vq| vq.drain_pending()) {
            // Already queued: that run drains them.
            let _ = workqueue::system().enqueue::<_, DRAIN_WORK>(self.clone());
        }
    }

    /// Drains each virtqueue a drain was requested for, saying once per queue why its drain
    /// stopped; returns how many requests were completed. Process context.
    fn drain_queues(&self) -> u64 {
        let mut total = 0u64;
        for (i, vq) in self.vqs.iter().enumerate() {
            if !vq.take_drain_pending() {
                continue;
            }
            match vq.drain() {
                Ok(n) => total += u64::from(n),
                Err(why) => pr_warn!(
                    "{}: queue {}: requests in flight left as they are: {}\n",
                    BStr::from_bytes(self.name()),
                    i,
                    why
                ),
            }
        }
        total
    }

    /// A kick of virtqueue `vq` asked for a drain: queued to the device's drain work. Any
    /// context.
    pub(crate) fn queue_drain(self: ArcBorrow<'_, Self>) {
        // Already queued: that run drains this queue too.
        let _ = workqueue::system().enqueue::<_, DRAIN_WORK>(Arc::from(self));
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

    /// The virtqueue `index` from userspace, or `EINVAL`.
    fn vq(&self, index: u32) -> Result<&Arc<Vq>> {
        // CAST: `vq_num <= 0xffff`.
        let n = self.vqs.len() as u32;
        if index >= n {
            return Err(EINVAL);
        }
        self.vqs.get(index_nospec(index, n) as usize).ok_or(EINVAL)
    }

    /// Whether interrupts may be injected now (`vduse_dev_queue_irq_work` preconditions).
    fn check_irq_allowed(&self) -> Result {
        let st = self.state.lock();
        if self.suspended.load(Relaxed) || st.status & STATUS_DRIVER_OK == 0 {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// `VDUSE_DEV_SET_CONFIG`.
    fn set_config(&self, arg: usize) -> Result {
        let hdr_len = core::mem::size_of::<uapi::ConfigData>();
        let hdr: uapi::ConfigData = UserSlice::new(UserPtr::from_addr(arg), hdr_len)
            .reader()
            .read()?;
        // The size is fixed at creation: checked without the lock.
        // CAST: `config_size <= PAGE_SIZE`.
        let size = self.config.lock().len() as u32;
        if hdr.offset > size || hdr.length == 0 || hdr.length > size - hdr.offset {
            return Err(EINVAL);
        }
        let (off, len) = (hdr.offset as usize, hdr.length as usize);
        // Copied before the lock is taken: a user page whose fault blocks must not stall
        // `get_config` (virtio probe runs it under the vDPA core's global lock).
        let mut data = KVec::new();
        UserSlice::new(UserPtr::from_addr(arg).wrapping_byte_add(hdr_len), len)
            .reader()
            .read_all(&mut data, GFP_KERNEL)?;
        let mut config = self.config.lock();
        let dst = config.get_mut(off..off + len).ok_or(EINVAL)?;
        dst.copy_from_slice(data.get(..len).ok_or(EFAULT)?);
        Ok(())
    }

    /// `VDUSE_VQ_SETUP`.
    fn vq_setup(&self, c: uapi::VqConfig) -> Result {
        let vq = self.vq(c.index)?;
        if self.api.has_groups() {
            if c.group >= self.ngroups || self.state.lock().status & STATUS_DRIVER_OK != 0 {
                return Err(EINVAL);
            }
        } else if c.group != 0 {
            return Err(EINVAL);
        }
        if c.reserved1 != 0 || c.reserved2.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        vq.setup(c.max_size, c.group);
        Ok(())
    }

    /// `VDUSE_VQ_GET_INFO`: fills in `info` (whose `index` userspace set) as C does.
    fn vq_get_info(&self, info: &mut uapi::VqInfo) -> Result {
        let packed = self.state.lock().driver_features & VIRTIO_F_RING_PACKED != 0;
        self.vq(info.index)?.fill_info(info, packed);
        Ok(())
    }

    /// `VDUSE_VQ_SETUP_KICKFD`.
    ///
    /// Unlike 7.3, a negative fd other than `VDUSE_EVENTFD_DEASSIGN` is `EINVAL`, not a silent
    /// success (`Documentation/differences.rst`).
    fn vq_setup_kickfd(&self, e: uapi::VqEventfd) -> Result {
        let vq = self.vq(e.index)?;
        let ctx = match e.fd {
            uapi::VDUSE_EVENTFD_DEASSIGN => None,
            fd if fd < 0 => return Err(EINVAL),
            fd => Some(EventFdCtx::from_fd(fd)?),
        };
        vq.set_kickfd(ctx);
        Ok(())
    }

    /// The address space `asid` from userspace for the IOTLB ioctls, or `EINVAL`.
    fn check_asid(&self, asid: u32) -> Result<u32> {
        if (!self.api.has_groups() && asid != 0) || asid >= self.nas {
            return Err(EINVAL);
        }
        Ok(index_nospec(asid, self.nas))
    }

    /// The domain of address space `asid` (checked by the caller) and its file, once the
    /// domains are in use. `EINVAL` for an address space not created yet: it has no mapping,
    /// and every lookup in an empty domain is `EINVAL`.
    fn space(&self, asid: u32) -> Result<(Arc<Domain>, ARef<File>)> {
        let d = self.domain.lock();
        if !d.created {
            return Err(EINVAL);
        }
        let spaces = self.spaces.lock();
        let s = spaces
            .get(asid as usize)
            .and_then(Option::as_ref)
            .ok_or(EINVAL)?;
        Ok((s.domain.clone(), s.file.clone()))
    }

    /// The domain of virtqueue group `group`, for a map op (atomic context: takes only the
    /// IRQ-safe [`Device::spaces`]).
    fn group_domain(&self, group: u32) -> Result<Arc<Domain>> {
        let asid = self.groups.get(group as usize).ok_or(EINVAL)?.load(Relaxed);
        self.space_domain(asid)
    }

    /// The domain of address space `asid`, taking only [`Device::spaces`]: for the ops that
    /// run while the device is on the bus, some with locks of their callers held (vhost-vdpa
    /// calls `set_map` with the `mmap_lock`, which `reg_umem` takes under [`Device::domain`]).
    fn space_domain(&self, asid: u32) -> Result<Arc<Domain>> {
        let spaces = self.spaces.lock();
        let s = spaces
            .get(asid as usize)
            .and_then(Option::as_ref)
            .ok_or(EINVAL)?;
        Ok(s.domain.clone())
    }

    /// The domain of address space `asid`, created now if it was not yet (process context;
    /// called with the `mmap_lock` held by vhost-vdpa's `set_map`, so it takes no mutex of
    /// this device: it allocates with no lock held and installs the new space under
    /// [`Device::spaces`], dropping its own if another thread installed one first).
    ///
    /// Address spaces other than 0 are created on first use rather than by `vdpa dev add`
    /// (C creates all `nas` at once: two IOVA domains with per-CPU caches each, so a device
    /// with `nas` near 0xffff could not be added; `Documentation/differences.rst`, D3).
    ///
    /// # Errors
    ///
    /// `EINVAL` (`asid` out of range, or the device was never added), `ENOMEM`.
    pub(crate) fn create_space(&self, asid: u32) -> Result<Arc<Domain>> {
        let bounce_size = {
            let spaces = self.spaces.lock();
            match spaces.get(asid as usize).ok_or(EINVAL)? {
                Some(s) => return Ok(s.domain.clone()),
                // Every address space has the bounce size of space 0 (created by the add).
                None => spaces
                    .first()
                    .and_then(Option::as_ref)
                    .ok_or(EINVAL)?
                    .domain
                    .bounce_size(),
            }
        };
        let mut new = Some(AddressSpace::new(
            bounce_size,
            max_iotlb_entries()?,
            &self.iova_cache,
        )?);
        let domain = {
            let mut spaces = self.spaces.lock();
            let slot = spaces.get_mut(asid as usize).ok_or(EINVAL)?;
            if slot.is_none() {
                *slot = new.take();
            }
            slot.as_ref().ok_or(EINVAL)?.domain.clone()
        };
        // A space another thread installed first: ours goes, outside the spinlock.
        drop(new);
        Ok(domain)
    }

    /// `VDUSE_IOTLB_GET_FD` and `VDUSE_IOTLB_GET_FD2`: the first mapping overlapping
    /// `e.start..=e.last`, written back into `e` (offset, range, permissions), and its file:
    /// the consumer's, or the domain's own for the bounce region and the coherent buffers.
    fn iotlb_get_fd(&self, e: &mut uapi::IotlbEntryV2) -> Result<ARef<File>> {
        if e.reserved.iter().any(|&w| w != 0) || e.start > e.last || e.asid >= self.nas {
            return Err(EINVAL);
        }
        let (domain, domain_file) = self.space(index_nospec(e.asid, self.nas))?;
        let m = domain.lookup(e.start, e.last).ok_or(EINVAL)?;
        e.offset = m.offset;
        e.start = m.start;
        e.last = m.last;
        e.perm = m.perm;
        Ok(m.file.unwrap_or(domain_file))
    }

    /// Installs `file` in a new file descriptor of the calling process through `receive_fd`,
    /// as C does (the LSM's `file_receive` check included; C's `perm_to_file_flags` gives no
    /// `O_CLOEXEC`, so the flags are 0); the fd is the ioctl's return value.
    fn install_fd(file: ARef<File>) -> Result<isize> {
        let fd = receive_fd(&file, 0)?;
        // CAST: File descriptors are non-negative `int`s.
        Ok(fd as isize)
    }

    /// `VDUSE_IOTLB_GET_INFO`.
    ///
    /// Unlike 7.3 (which returns `EFAULT`), bad reserved words or a bad `asid` are `EINVAL`
    /// (`Documentation/differences.rst`).
    fn iotlb_get_info(&self, info: &uapi::IovaInfo) -> Result<uapi::IovaInfo> {
        if info.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let asid = self.check_asid(info.asid)?;
        if info.start > info.last {
            return Err(EINVAL);
        }
        let (domain, _) = self.space(asid)?;
        let m = domain.lookup(info.start, info.last).ok_or(EINVAL)?;
        Ok(uapi::IovaInfo {
            start: m.start,
            last: m.last,
            // User memory may back the bounce region only.
            capability: if m.is_bounce {
                uapi::VDUSE_IOVA_CAP_UMEM
            } else {
                0
            },
            ..*info
        })
    }

    /// The domain of address space `asid` while `d` (the [`Device::domain`] guard) says the
    /// domains are in use.
    fn domain_of(&self, d: &DomainState, asid: u32) -> Option<Arc<Domain>> {
        if !d.created {
            return None;
        }
        self.spaces
            .lock()
            .get(asid as usize)
            .and_then(Option::as_ref)
            .map(|s| s.domain.clone())
    }

    /// `VDUSE_IOTLB_REG_UMEM`.
    fn reg_umem(&self, u: &uapi::IovaUmem) -> Result {
        if u.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let asid = self.check_asid(u.asid)?;
        // Held across the registration: it serialises registrations and deregistrations.
        let d = self.domain.lock();
        self.domain_of(&d, asid)
            .ok_or(EINVAL)?
            .reg_umem(u.iova, u.uaddr, u.size)
    }

    /// `VDUSE_IOTLB_DEREG_UMEM`.
    fn dereg_umem(&self, u: &uapi::IovaUmem) -> Result {
        if u.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let asid = self.check_asid(u.asid)?;
        let d = self.domain.lock();
        // Nothing can be registered without a domain.
        self.domain_of(&d, asid)
            .ok_or(ENOENT)?
            .dereg_umem(u.iova, u.size)
    }

    /// The device node was closed: user memory registered through it is deregistered (the
    /// kernel's bounce pages take over, as in C).
    fn dereg_all_umem(&self) {
        let d = self.domain.lock();
        for asid in 0..self.nas {
            if let Some(domain) = self.domain_of(&d, asid) {
                // `ENOENT` when none is registered: nothing to do.
                let _ = domain.dereg_umem(0, domain.bounce_size() as u64);
            }
        }
    }

    /// One device ioctl, `cmd` already decoded from its compat form if any.
    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        if self.msgs.is_broken() {
            return Err(EPERM);
        }
        let user = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
        match cmd {
            uapi::VDUSE_IOTLB_GET_FD | uapi::VDUSE_IOTLB_GET_FD2 => {
                if cmd == uapi::VDUSE_IOTLB_GET_FD2 && !self.api.has_groups() {
                    return Err(ENOTTY);
                }
                // GET_FD reads the v1 layout's prefix; the rest stays zero (asid 0).
                let size = _IOC_SIZE(cmd);
                let mut e = uapi::IotlbEntryV2::default();
                let (mut r, mut w) = user.reader_writer();
                r.read_slice(e.as_bytes_mut().get_mut(..size).ok_or(EINVAL)?)?;
                let file = self.iotlb_get_fd(&mut e)?;
                // Written back before the fd exists, as in C: a fault leaves no fd behind.
                w.write_slice(e.as_bytes().get(..size).ok_or(EINVAL)?)?;
                Self::install_fd(file)
            }
            uapi::VDUSE_DEV_GET_FEATURES => {
                let f = self.state.lock().driver_features;
                user.writer().write(&f)?;
                Ok(0)
            }
            uapi::VDUSE_DEV_SET_CONFIG => self.set_config(arg).map(|()| 0),
            uapi::VDUSE_DEV_INJECT_CONFIG_IRQ => {
                self.check_irq_allowed()?;
                self.inject_config_irq();
                Ok(0)
            }
            uapi::VDUSE_VQ_SETUP => self.vq_setup(user.reader().read()?).map(|()| 0),
            uapi::VDUSE_VQ_GET_INFO => {
                let (mut r, mut w) = user.reader_writer();
                let mut info: uapi::VqInfo = r.read()?;
                self.vq_get_info(&mut info)?;
                w.write(&info)?;
                Ok(0)
            }
            uapi::VDUSE_VQ_SETUP_KICKFD => self.vq_setup_kickfd(user.reader().read()?).map(|()| 0),
            uapi::VDUSE_VQ_INJECT_IRQ => {
                let index: u32 = user.reader().read()?;
                let vq = self.vq(index)?;
                self.check_irq_allowed()?;
                vq.inject_irq();
                Ok(0)
            }
            uapi::VDUSE_IOTLB_REG_UMEM => self.reg_umem(&user.reader().read()?).map(|()| 0),
            uapi::VDUSE_IOTLB_DEREG_UMEM => self.dereg_umem(&user.reader().read()?).map(|()| 0),
            uapi::VDUSE_IOTLB_GET_INFO => {
                let (mut r, mut w) = user.reader_writer();
                let info = self.iotlb_get_info(&r.read()?)?;
                w.write(&info)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// Reads a `T` the size of its i386 layout (`COMPAT_VDUSE_*`), zero-extended.
fn read_compat<T: FromBytes + AsBytes + Default>(arg: usize, len: usize) -> Result<T> {
    let mut v = T::default();
    UserSlice::new(UserPtr::from_addr(arg), len)
        .reader()
        .read_slice(v.as_bytes_mut().get_mut(..len).ok_or(EINVAL)?)?;
    Ok(v)
}

/// `COMPAT_VDUSE_IOTLB_GET_FD`: `struct vduse_iotlb_entry` on i386 (28 bytes).
const COMPAT_IOTLB_GET_FD: u32 = 0xc01c_8110;
/// `COMPAT_VDUSE_VQ_GET_INFO`: `struct vduse_vq_info` on i386 (44 bytes).
const COMPAT_VQ_GET_INFO: u32 = 0xc02c_8115;

#[vtable]
impl FileOps for Device {
    type Ptr = Arc<Device>;

    fn release(this: Arc<Device>, _file: &File) {
        this.dereg_all_umem();
        this.msgs.requeue_unanswered();
        this.disconnect();
        // Broken (a request timed out) and now without a daemon: never to be served again.
        if this.msgs.is_broken() {
            this.orphan();
        } else {
            this.arm_orphan_timer();
        }
    }

    fn read_iter(kiocb: Kiocb<'_, Arc<Device>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let size = core::mem::size_of::<uapi::DevRequest>();
        if iov.len() < size {
            return Err(EINVAL);
        }
        let dev = kiocb.file();
        let mode = if kiocb_nonblock(&kiocb) {
            ReadMode::NonBlocking
        } else {
            ReadMode::Blocking
        };
        let req = dev.msgs.read(mode)?;
        if iov.copy_to_iter(req.as_bytes()) != size {
            dev.msgs.unread(req.request_id);
            return Err(EFAULT);
        }
        Ok(size)
    }

    fn write_iter(kiocb: Kiocb<'_, Arc<Device>>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let size = core::mem::size_of::<uapi::DevResponse>();
        let mut resp = uapi::DevResponse {
            request_id: 0,
            result: 0,
            reserved: [0; 4],
            payload: [0; 32],
        };
        if iov.copy_from_iter(resp.as_bytes_mut()) != size {
            return Err(EINVAL);
        }
        kiocb.file().msgs.write(resp)?;
        Ok(size)
    }

    fn poll(this: ArcBorrow<'_, Device>, file: &File, table: PollTable<'_>) -> u32 {
        table.register_wait(file, this.msgs.readers());
        this.msgs.poll_mask()
    }

    fn ioctl(this: ArcBorrow<'_, Device>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        this.ioctl(cmd, arg)
    }

    #[cfg(CONFIG_COMPAT)]
    fn compat_ioctl(
        this: ArcBorrow<'_, Device>,
        _file: &File,
        cmd: u32,
        arg: usize,
    ) -> Result<isize> {
        match cmd {
            COMPAT_IOTLB_GET_FD => {
                if this.msgs.is_broken() {
                    return Err(EPERM);
                }
                let len = _IOC_SIZE(COMPAT_IOTLB_GET_FD);
                let e: uapi::IotlbEntry = read_compat(arg, len)?;
                let mut v2 = uapi::IotlbEntryV2 {
                    offset: e.offset,
                    start: e.start,
                    last: e.last,
                    perm: e.perm,
                    ..Default::default()
                };
                let file = this.iotlb_get_fd(&mut v2)?;
                let out = uapi::IotlbEntry {
                    offset: v2.offset,
                    start: v2.start,
                    last: v2.last,
                    perm: v2.perm,
                    padding: [0; 7],
                };
                UserSlice::new(UserPtr::from_addr(arg), len)
                    .writer()
                    .write_slice(out.as_bytes().get(..len).ok_or(EINVAL)?)?;
                Self::install_fd(file)
            }
            COMPAT_VQ_GET_INFO => {
                if this.msgs.is_broken() {
                    return Err(EPERM);
                }
                // The compat path starts from a zeroed struct, as C does.
                let len = _IOC_SIZE(COMPAT_VQ_GET_INFO);
                let mut info: uapi::VqInfo = read_compat(arg, len)?;
                info.padding = [0; 7];
                info.ready = 0;
                this.vq_get_info(&mut info)?;
                UserSlice::new(UserPtr::from_addr(arg), len)
                    .writer()
                    .write_slice(info.as_bytes().get(..len).ok_or(EINVAL)?)?;
                Ok(0)
            }
            // `compat_ptr()` is the identity on x86_64: the other layouts are the same.
            _ => this.ioctl(cmd, arg),
        }
    }
}

#[kunit_tests(vduse_rs_device)]
mod tests {
    use super::*;

    /// A valid API 0 virtio-blk config.
    fn blk() -> uapi::DevConfig {
        let mut name = [0u8; uapi::VDUSE_NAME_MAX];
        name[..3].copy_from_slice(b"blk");
        uapi::DevConfig {
            name,
            vendor_id: 0,
            device_id: virtio_id::BLOCK,
            features: virtio_f::VERSION_1 | virtio_f::ACCESS_PLATFORM,
            vq_num: 1,
            vq_align: 4096,
            ngroups: 0,
            nas: 0,
            reserved: [0; 11],
            config_size: 8,
        }
    }

    fn check(f: impl Fn(&mut uapi::DevConfig), api: ApiVersion) -> Result {
        let mut c = blk();
        f(&mut c);
        ValidConfig::new(&c, api).map(|_| ())
    }

    #[test]
    fn validation_rules() {
        let v0 = ApiVersion::V0;
        assert_eq!(check(|_| {}, v0), Ok(()));
        assert_eq!(check(|c| c.reserved[3] = 1, v0), Err(EINVAL));
        assert_eq!(check(|c| c.vq_align = 2, v0), Err(EINVAL));
        assert_eq!(check(|c| c.vq_align = 12, v0), Err(EINVAL));
        assert_eq!(
            check(|c| c.vq_align = 2 * PAGE_SIZE as u32, v0),
            Err(EINVAL)
        );
        assert_eq!(
            check(|c| c.config_size = PAGE_SIZE as u32 + 1, v0),
            Err(EINVAL)
        );
        assert_eq!(check(|c| c.vq_num = 0x10000, v0), Err(EINVAL));
        assert_eq!(check(|c| c.name[0] = 0, v0), Err(EINVAL));
        assert_eq!(check(|c| c.device_id = 3, v0), Err(EINVAL));
        assert_eq!(check(|c| c.features = virtio_f::VERSION_1, v0), Err(EINVAL));
        assert_eq!(
            check(|c| c.features |= virtio_f::BLK_CONFIG_WCE, v0),
            Err(EINVAL)
        );
        assert_eq!(check(|c| c.device_id = virtio_id::NET, v0), Ok(()));
        assert_eq!(
            check(
                |c| (c.device_id, c.features) = (virtio_id::NET, virtio_f::ACCESS_PLATFORM),
                v0
            ),
            Err(EINVAL)
        );
        assert_eq!(check(|c| c.ngroups = 1, v0), Err(EINVAL));
        assert_eq!(
            check(|c| (c.ngroups, c.nas) = (1, 1), ApiVersion::V1),
            Ok(())
        );
    }

    #[test]
    fn name_cut_at_255() {
        let mut c = blk();
        c.name = [b'n'; uapi::VDUSE_NAME_MAX];
        let v = ValidConfig::new(&c, ApiVersion::V0);
        assert_eq!(v.map(|v| v.name().len()), Ok(uapi::VDUSE_NAME_MAX - 1));
    }
}
