// SPDX-License-Identifier: GPL-2.0

//! One virtqueue of a VDUSE device.
//!
//! C version: `struct vduse_virtqueue` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//!
//! To avoid deadlocks, locks are taken in the order:
//!
//! 1. [`Vq::config`] (spinlock, interrupts disabled);
//! 2. [`Vq::kick`] (spinlock, interrupts disabled).
//!
//! [`Vq::ring`] (spinlock, interrupts disabled: kicks take it in atomic context, even inside
//! an eventfd wakeup) is a leaf of this list, never held with 1 or 2; under it only ring
//! memory and a domain's bounce table are read or written (the table's switch lock, a leaf of
//! `kapi::bounce`), and no eventfd is signalled. A kick tests whether the device is drained
//! without any lock (`Vq::draining`): from inside an eventfd wakeup it must not take 2, under
//! which the kick eventfd is signalled.
//!
//! [`Vq::irq_affinity`] (spinlock, process context only: sysfs, `set_vq_affinity`, injection)
//! and the callback slot [`Vq::cb`] (its own spinlock, bottom halves disabled, process
//! context only) are leaves, never held with another lock.
//!
//! `kick_vq` may run in atomic context, even in softirq (a virtqueue notify under a network
//! queue lock) or hard-irq: `config` and `kick` are taken with interrupts disabled everywhere,
//! so no context that interrupts a holder can deadlock on them (C's `kick_lock` is taken with
//! a plain `spin_lock` in `vduse_dev_reset`, which lockdep reports once virtio-net transmits
//! through it).
//!
//! Suspend is a barrier: [`Vq::suspend`] sets `suspended` under [`Vq::kick`], which every kick
//! tests under the same lock (also a deferred one), and mutes the callback slot, which every
//! interrupt delivery calls through; when it returns, no kick reaches the kick eventfd and no
//! interrupt reaches the driver until reset.
//!
//! In-flight tracking and the orphan drain ([`super::ring`]): a ring that lives in the
//! device's coherent memory (`virtio_vdpa`'s) is followed from its ready on; every kick and
//! every injected interrupt has [`Vq::ring`] count what was added to it. Once the device has
//! no daemon and never will ([`super::device`]), [`Vq::start_drain`] turns kicks into drain
//! requests (the device's drain work calls [`Vq::drain`]) instead of eventfd signals.

use super::{
    domain::{
        CoherentArea,
        Domain, //
    },
    ring::{
        self,
        Area,
        Buffers,
        Rings,
        Role,
        Stop,
        Tracker, //
    },
};
use crate::{
    kapi::{
        cpumask::CpuMask,
        eventfd::{
            self,
            EventFdCtx, //
        },
        sysfs::Attributes,
        vdpa::{
            Callback,
            CallbackSlot, //
        },
        workqueue::{
            enqueue_on,
            flush_work, //
        },
    },
    uapi,
};
use kernel::{
    cpu::{
        nr_cpu_ids,
        CpuId, //
    },
    impl_has_work, new_spinlock, new_work,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        new_spinlock_irq,
        Arc,
        SpinLock,
        SpinLockIrq, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    workqueue::{
        self,
        Work,
        WorkItem, //
    },
};

/// What `VDUSE_VQ_SETUP` and the vDPA driver set.
#[derive(Default)]
pub(crate) struct VqSettings {
    /// Maximum queue size set by `VDUSE_VQ_SETUP`; 0 means not set up.
    pub(crate) num_max: u16,
    /// Virtqueue group (API 1).
    pub(crate) group: u32,
    /// Queue size set by the driver.
    pub(crate) num: u32,
    /// Descriptor area IOVA.
    pub(crate) desc_addr: u64,
    /// Driver area IOVA.
    pub(crate) driver_addr: u64,
    /// Device area IOVA.
    pub(crate) device_addr: u64,
    /// Split (`state[0]`) or packed ring state, as in [`uapi::VqInfo::state`].
    pub(crate) state: [u16; 4],
    /// Whether the driver made the queue ready.
    pub(crate) ready: bool,
}

/// The kick side of a virtqueue.
#[derive(Default)]
struct Kick {
    /// The eventfd userspace installed with `VDUSE_VQ_SETUP_KICKFD`.
    kickfd: Option<EventFdCtx>,
    /// A kick arrived while no eventfd was installed; replayed when one is.
    kicked: bool,
    /// The queue is ready (a copy of [`VqSettings::ready`], changed under both locks).
    ready: bool,
    /// The device is suspended: kicks are dropped until reset.
    suspended: bool,
}

/// Whether an injected interrupt may be delivered in the injecting thread (the `irq_inline`
/// module parameter; 0 makes every one take the work item hop, as C).
fn irq_inline() -> bool {
    crate::module_parameters::irq_inline.value() != 0
}

/// The in-flight tracking of a ring in the device's coherent memory.
struct Tracked {
    tracker: Tracker<CoherentArea>,
    /// The domain the buffers are mapped in (the virtqueue group's).
    domain: Arc<Domain>,
}

/// The ring side of a virtqueue.
#[derive(Default)]
struct RingState {
    /// Set from the queue's ready on, for a split ring in coherent memory.
    tracked: Option<Tracked>,
    /// The ring is packed: not tracked.
    packed: bool,
    /// The drain stopped (and said why): nothing more is drained until reset.
    stopped: bool,
}

impl Area for CoherentArea {
    fn read<T: FromBytes + Copy>(&self, off: usize) -> Option<T> {
        CoherentArea::read(self, off)
    }
    fn write<T: AsBytes + Copy>(&self, off: usize, v: T) -> Option<()> {
        CoherentArea::write(self, off, v)
    }
}

/// The buffers of a ring: the streaming mappings in flight in its domain.
impl Buffers for Arc<Domain> {
    fn read(&self, addr: u64, out: &mut [u8]) -> Result {
        self.bounce_read(addr, out)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result {
        self.bounce_write(addr, data)
    }
}

/// One virtqueue.
#[pin_data]
pub(crate) struct Vq {
    /// Configuration and state.
    #[pin]
    config: SpinLockIrq<VqSettings>,
    /// Kick eventfd.
    #[pin]
    kick: SpinLockIrq<Kick>,
    /// CPUs the interrupt callback may run on (`vqN/irq_cb_affinity`).
    #[pin]
    irq_affinity: SpinLock<CpuMask>,
    /// The vDPA driver's interrupt callback (`irq_lock` in C).
    #[pin]
    cb: CallbackSlot,
    /// Delivers a kick from a context where an eventfd may not be signalled.
    #[pin]
    kick_work: Work<Vq, KICK_WORK>,
    /// Delivers an interrupt on a CPU of `irq_affinity`.
    #[pin]
    irq_work: Work<Vq, IRQ_WORK>,
    /// The CPU the last queued interrupt was sent to (round robin over the mask).
    irq_cpu: Atomic<u32>,
    /// How many interrupt callbacks ran on each CPU (debugfs `vqN_irq_cpus`).
    irq_stats: Arc<IrqStats>,
    /// What the queue carries: how the drain completes a request.
    role: Role,
    /// In-flight tracking and drain state (a leaf lock, interrupts disabled).
    #[pin]
    ring: SpinLockIrq<RingState>,
    /// The device is drained (no daemon will serve it again): kicks are drain requests, for
    /// good. An atomic, not under [`Vq::kick`]: a kick from inside an eventfd wakeup (vhost's,
    /// holding the eventfd's wait queue lock) must not take the kick lock, which is held when
    /// the kick eventfd is signalled.
    draining: Atomic<bool>,
    /// A kick arrived while draining: the device's drain work drains this queue again.
    drain_pending: Atomic<bool>,
    /// Whether [`RingState::tracked`] is set (changed under the ring lock): the kick and
    /// interrupt paths of an untracked queue (vhost-vdpa's) skip the lock.
    tracked: Atomic<bool>,
}

/// The work item id of [`Vq::kick_work`].
const KICK_WORK: u64 = 0;
/// The work item id of [`Vq::irq_work`].
const IRQ_WORK: u64 = 1;

impl_has_work! {
    impl HasWork<Self, KICK_WORK> for Vq { self.kick_work }
    impl HasWork<Self, IRQ_WORK> for Vq { self.irq_work }
}

impl WorkItem<IRQ_WORK> for Vq {
    type Pointer = Arc<Vq>;

    fn run(this: Arc<Vq>) {
        this.deliver_irq();
    }
}

/// How many interrupt callbacks of a virtqueue ran on each CPU.
pub(crate) struct IrqStats {
    per_cpu: KVec<Atomic<u64>>,
}

impl IrqStats {
    fn new() -> Result<Arc<Self>> {
        let n = nr_cpu_ids() as usize;
        let mut per_cpu = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            per_cpu.push(Atomic::new(0), GFP_KERNEL)?;
        }
        Ok(Arc::new(Self { per_cpu }, GFP_KERNEL)?)
    }

    /// Counts a callback on the current CPU. Any context.
    fn count(&self) {
        if let Some(c) = self.per_cpu.get(CpuId::current().as_u32() as usize) {
            c.add(1, Relaxed);
        }
    }
}

/// `cpuN COUNT` per CPU, for debugfs.
impl core::fmt::Debug for IrqStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (cpu, c) in self.per_cpu.iter().enumerate() {
            writeln!(f, "cpu{cpu} {}", c.load(Relaxed))?;
        }
        Ok(())
    }
}

impl WorkItem<KICK_WORK> for Vq {
    type Pointer = Arc<Vq>;

    fn run(this: Arc<Vq>) {
        this.kick_now();
    }
}

impl Vq {
    /// A fresh virtqueue carrying `role`.
    pub(crate) fn new(role: Role) -> Result<impl PinInit<Self>> {
        let irq_stats = IrqStats::new()?;
        Ok(pin_init!(Self {
            config <- new_spinlock_irq!(VqSettings::default(), "Vq::config"),
            kick <- new_spinlock_irq!(Kick::default(), "Vq::kick"),
            irq_affinity <- new_spinlock!(CpuMask::all(), "Vq::irq_affinity"),
            cb <- CallbackSlot::new(),
            kick_work <- new_work!("Vq::kick_work"),
            irq_work <- new_work!("Vq::irq_work"),
            irq_cpu: Atomic::new(0),
            irq_stats,
            role,
            ring <- new_spinlock_irq!(RingState::default(), "Vq::ring"),
            draining: Atomic::new(false),
            drain_pending: Atomic::new(false),
            tracked: Atomic::new(false),
        }))
    }

    /// The interrupt statistics.
    pub(crate) fn irq_stats(&self) -> &Arc<IrqStats> {
        &self.irq_stats
    }

    /// `VDUSE_VQ_SETUP`, after validation.
    pub(crate) fn setup(&self, max_size: u16, group: u32) {
        let mut c = self.config.lock();
        c.num_max = max_size;
        c.group = group;
    }

    /// `VDUSE_VQ_GET_INFO`: the queue's state into `info`; with `packed`, the four packed ring
    /// state words, else only the split ring's `avail_index` (the other words keep what
    /// userspace passed, as in C).
    pub(crate) fn fill_info(&self, info: &mut uapi::VqInfo, packed: bool) {
        let c = self.config.lock();
        info.num = c.num;
        info.desc_addr = c.desc_addr;
        info.driver_addr = c.driver_addr;
        info.device_addr = c.device_addr;
        if packed {
            info.state = c.state;
        } else {
            info.state[0] = c.state[0];
        }
        info.ready = u8::from(c.ready);
    }

    /// `VDUSE_VQ_SETUP_KICKFD`: installs (`Some`) or removes (`None`) the kick eventfd. A kick
    /// latched while the queue was ready and had no eventfd is delivered to the new one.
    pub(crate) fn set_kickfd(&self, ctx: Option<EventFdCtx>) {
        let old = {
            let mut k = self.kick.lock();
            let old = core::mem::replace(&mut k.kickfd, ctx);
            if k.ready && !k.suspended && k.kicked {
                if let Some(fd) = &k.kickfd {
                    fd.signal();
                    k.kicked = false;
                }
            }
            old
        };
        // The old context is put outside the spinlock.
        drop(old);
    }

    /// Maximum size set by `VDUSE_VQ_SETUP` (0: not set up).
    pub(crate) fn num_max(&self) -> u16 {
        self.config.lock().num_max
    }

    /// The group set by `VDUSE_VQ_SETUP`.
    pub(crate) fn group(&self) -> u32 {
        self.config.lock().group
    }

    /// `set_vq_address`.
    pub(crate) fn set_address(&self, desc: u64, driver: u64, device: u64) {
        let mut c = self.config.lock();
        c.desc_addr = desc;
        c.driver_addr = driver;
        c.device_addr = device;
    }

    /// `set_vq_num`.
    pub(crate) fn set_num(&self, num: u32) {
        self.config.lock().num = num;
    }

    /// `get_vq_size`: the driver's size, or the maximum while it set none.
    pub(crate) fn size(&self) -> u16 {
        let c = self.config.lock();
        if c.num != 0 {
            // CAST: As C's `u16` return: queue sizes fit in 16 bits.
            c.num as u16
        } else {
            c.num_max
        }
    }

    /// `set_vq_ready` (after the optional `VDUSE_SET_VQ_READY` request).
    pub(crate) fn set_ready(&self, ready: bool) {
        let mut c = self.config.lock();
        c.ready = ready;
        self.kick.lock().ready = ready;
    }

    /// `get_vq_ready`.
    pub(crate) fn ready(&self) -> bool {
        self.config.lock().ready
    }

    /// `set_vq_state`: the packed ring words, or the split ring's `avail_index`.
    pub(crate) fn set_state(&self, packed: bool, split: u16, packed_words: [u16; 4]) {
        let mut c = self.config.lock();
        if packed {
            c.state = packed_words;
        } else {
            c.state[0] = split;
        }
    }

    /// `set_vq_cb`.
    pub(crate) fn set_cb(&self, cb: Callback<'_>) {
        self.cb.set(cb);
    }

    /// `VDUSE_VQ_INJECT_IRQ`: delivers an interrupt to the vDPA driver on a CPU of
    /// `irq_cb_affinity`: right here if the calling thread runs on one (no workqueue hop;
    /// unless the `irq_inline` module parameter is 0),
    /// else through a work item queued on the next online CPU of the mask (round robin). With
    /// no online CPU in the mask (they went offline after the store), here as well: C loops
    /// forever there (`Documentation/differences.rst`). Process context.
    pub(crate) fn inject_irq(self: &Arc<Self>) {
        // The daemon completed requests: counted before the driver sees them.
        self.observe();
        // The CPU to queue on, decided on the stored mask in place (no copy of `NR_CPUS` bits
        // per interrupt); `None`: here. The lock is not held while delivering.
        let queue_on = {
            let mask = self.irq_affinity.lock();
            if irq_inline() && mask.contains(CpuId::current().as_u32()) {
                None
            } else {
                mask.next_online(self.irq_cpu.load(Relaxed))
            }
        };
        match queue_on {
            Some(cpu) => {
                self.irq_cpu.store(cpu, Relaxed);
                // Already queued: that run delivers this interrupt too.
                let _ = enqueue_on::<_, IRQ_WORK>(workqueue::system_highpri(), cpu, self.clone());
            }
            None => self.deliver_irq(),
        }
    }

    /// Calls the vDPA driver's callback if the queue is ready (`vduse_vq_irq_inject`). Process
    /// context (the injecting thread or the interrupt work), interrupts enabled.
    fn deliver_irq(&self) {
        if self.ready() {
            // Counted under the slot's lock, where the CPU cannot change.
            self.cb.call(|| self.irq_stats.count());
        }
    }

    /// `set_vq_affinity`: the vDPA driver spreads its queues' interrupts (`None`: all CPUs).
    pub(crate) fn set_driver_affinity(&self, mask: Option<CpuMask>) {
        *self.irq_affinity.lock() = mask.unwrap_or_else(CpuMask::all);
    }

    /// `kick_vq`: signals the kick eventfd, latches the kick if there is none; dropped while
    /// the device is suspended or the queue not ready (both tested under [`Vq::kick`], so that
    /// [`Vq::suspend`] and [`Vq::reset`] order every kick). From inside an eventfd wakeup
    /// (vhost's kick path) another eventfd may not be signalled: the kick is then deferred to a
    /// work item, which tests the same. While the device is drained, returns whether the
    /// caller must queue the device's drain work instead. May run in atomic context, even in
    /// softirq: takes only IRQ-safe spinlocks.
    pub(crate) fn kick(self: &Arc<Self>) -> bool {
        // What the driver just made available is counted first.
        self.observe();
        if self.draining.load(Acquire) {
            if !self.role.drains_kicks() {
                return false;
            }
            self.drain_pending.store(true, Relaxed);
            return true;
        }
        if eventfd::signal_allowed() {
            self.kick_now();
        } else {
            // Already queued: that run delivers this kick too.
            let _ = workqueue::system().enqueue::<_, KICK_WORK>(self.clone());
        }
        false
    }

    /// Delivers a kick now, unless suspended, not ready or drained. May run in atomic context.
    fn kick_now(&self) {
        if self.draining.load(Acquire) {
            return;
        }
        let mut k = self.kick.lock();
        if k.suspended || !k.ready {
            return;
        }
        match &k.kickfd {
            Some(fd) => fd.signal(),
            None => k.kicked = true,
        }
    }

    /// Counts what was added to the rings since the last look, if the ring is tracked. Any
    /// context.
    fn observe(&self) {
        // A look skipped while tracking starts is made by the next event or the drain.
        if !self.tracked.load(Relaxed) {
            return;
        }
        if let Some(t) = self.ring.lock().tracked.as_mut() {
            t.tracker.observe();
        }
    }

    /// Starts tracking the ring now that the driver made it ready, if it is a split ring
    /// (`packed` false) in `domain`'s coherent memory (`virtio_vdpa`'s rings; a consumer's,
    /// such as vhost-vdpa's, are not). Process context.
    pub(crate) fn track(&self, domain: Arc<Domain>, packed: bool) {
        let (num, desc, driver, device) = {
            let c = self.config.lock();
            (c.num, c.desc_addr, c.driver_addr, c.device_addr)
        };
        let tracked = if packed {
            None
        } else {
            ring::area_sizes(num).and_then(|[d, a, u]| {
                let rings = Rings {
                    desc: domain.coherent_area(desc, d)?,
                    avail: domain.coherent_area(driver, a)?,
                    used: domain.coherent_area(device, u)?,
                };
                let tracker = Tracker::new(rings, num).ok()?;
                Some(Tracked { tracker, domain })
            })
        };
        let old = {
            let mut r = self.ring.lock();
            r.packed = packed;
            r.stopped = false;
            self.tracked.store(tracked.is_some(), Relaxed);
            core::mem::replace(&mut r.tracked, tracked)
        };
        // The old tracker's memory goes outside the spinlock.
        drop(old);
    }

    /// Stops tracking (the queue is no longer ready, or reset). Process context.
    pub(crate) fn untrack(&self) {
        let old = {
            let mut r = self.ring.lock();
            self.tracked.store(false, Relaxed);
            core::mem::take(&mut *r)
        };
        drop(old);
    }

    /// The device will never be served again: kicks become drain requests, and the queue
    /// is to be drained ([`Vq::take_drain_pending`]). Any context.
    pub(crate) fn start_drain(&self) {
        self.draining.store(true, Release);
        self.drain_pending.store(true, Relaxed);
    }

    /// The orphan state of the device was lifted ([`super::device`]): kicks are kicks again.
    /// Only once the device is off the vDPA bus, so that no kick races it. Any context.
    pub(crate) fn stop_drain(&self) {
        self.draining.store(false, Release);
        self.drain_pending.store(false, Relaxed);
    }

    /// Whether a drain of this queue was requested since the last call.
    pub(crate) fn take_drain_pending(&self) -> bool {
        self.drain_pending.xchg(false, Relaxed)
    }

    /// Completes every request in flight with an error ([`ring::Tracker::drain`]), then
    /// calls the driver's callback if any was. Returns how many, or why the drain of this
    /// queue stopped, once: afterwards the queue is left as it is until reset. A queue whose
    /// ring is not tracked has nothing to drain, unless it is packed. If the driver kept
    /// adding requests, a drain is requested again ([`Vq::take_drain_pending`]). Process
    /// context.
    pub(crate) fn drain(&self) -> Result<u16, Stop> {
        let res = {
            let mut r = self.ring.lock();
            if r.stopped {
                return Ok(0);
            }
            let packed = r.packed;
            let res = match r.tracked.as_mut() {
                Some(t) => t.tracker.drain(self.role, &t.domain),
                None if packed => Err(Stop::Packed),
                None => Ok((0, false)),
            };
            r.stopped = res.is_err();
            res
        };
        let (n, more) = res?;
        if more {
            self.drain_pending.store(true, Relaxed);
        }
        if n > 0 {
            self.deliver_irq();
        }
        Ok(n)
    }

    /// Whether a drain of this queue is requested.
    pub(crate) fn drain_pending(&self) -> bool {
        self.drain_pending.load(Relaxed)
    }

    /// Waits until no deferred kick or interrupt is queued or running.
    pub(crate) fn flush_kicks(&self) {
        flush_work(&self.kick_work);
        flush_work(&self.irq_work);
    }

    /// Suspends the queue (`VDUSE_F_SUSPEND`): when this returns, no kick is delivered and no
    /// interrupt callback runs until [`Vq::reset`] (a kick or an interrupt that started before
    /// has finished; a deferred one finds the queue suspended). Process context.
    pub(crate) fn suspend(&self) {
        self.kick.lock().suspended = true;
        self.cb.mute();
        self.flush_kicks();
    }

    /// Resets the queue (`vduse_dev_reset`): not ready, no addresses, state, kick eventfd or
    /// callback.
    pub(crate) fn reset(&self) {
        {
            let mut c = self.config.lock();
            *c = VqSettings {
                num_max: c.num_max,
                group: c.group,
                ..VqSettings::default()
            };
        }
        // A drained device stays drained (`draining` is kept).
        let old = core::mem::take(&mut *self.kick.lock());
        drop(old);
        self.untrack();
        self.drain_pending.store(false, Relaxed);
        self.cb.clear();
    }

    /// The interrupt affinity.
    pub(crate) fn irq_affinity(&self) -> CpuMask {
        *self.irq_affinity.lock()
    }

    /// Sets the interrupt affinity (`irq_cb_affinity` store).
    ///
    /// # Errors
    ///
    /// `EINVAL` if the mask has no online CPU.
    pub(crate) fn set_irq_affinity(&self, mask: CpuMask) -> Result {
        if !mask.intersects_online() {
            return Err(EINVAL);
        }
        *self.irq_affinity.lock() = mask;
        Ok(())
    }
}

/// `vqN/irq_cb_affinity`.
impl Attributes for Vq {
    const NAMES: &'static [&'static CStr] = &[c"irq_cb_affinity"];
    type Value = CpuMask;

    fn show(&self, _index: usize) -> CpuMask {
        self.irq_affinity()
    }

    fn store(&self, _index: usize, input: &CStr) -> Result {
        self.set_irq_affinity(CpuMask::parse(input)?)
    }
}
