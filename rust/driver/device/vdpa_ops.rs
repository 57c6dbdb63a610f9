// SPDX-License-Identifier: GPL-2.0

//! The `vdpa_config_ops` and map operations of a VDUSE device.
//!
//! C version: `vduse_vdpa_*()` and `vduse_map_ops` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//!
//! The vDPA core validates virtqueue indexes (`idx < nvqs`) before calling these; an index out
//! of range is still handled (ignored, or `EINVAL`) rather than trusted. Lock order: that of
//! [`super`]; `kick_vq` may run in atomic context and takes no sleeping lock.

use super::{
    Device,
    STATUS_DRIVER_OK,
    VIRTIO_F_RING_PACKED, //
};
use crate::{
    driver::{
        domain::{
            AddressSpace,
            Domain,
            Spaces, //
        },
        vq::Vq, //
    },
    kapi::{
        cpumask::CpuMask,
        dma::DmaRegion,
        iova::Caching,
        vdpa::{
            Borrowed,
            Callback,
            ConfigOps,
            Iotlb,
            IotlbMap,
            MapOps,
            MgmtDev,
            VdpaDevice,
            VqState,
            VqStateWords, //
        },
    },
    uapi::{
        self,
        req,
        DevRequest, //
    },
};
use core::ptr::NonNull;
use kernel::{
    bindings::gfp_t,
    dma::DataDirection,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc, //
    },
};

impl Device {
    /// The virtqueue `idx`, if it exists.
    fn vq_at(&self, idx: u16) -> Option<&Arc<Vq>> {
        self.vqs.get(usize::from(idx))
    }

    /// Sends a request and waits for the response, with the device's `msg_timeout`.
    fn request(&self, r: DevRequest) -> Result<uapi::DevResponse> {
        self.msgs.send(r, self.msg_timeout.load(Relaxed))
    }

    /// Whether every virtqueue was set up (`vduse_dev_is_ready`): the condition for
    /// `vdpa dev add`.
    pub(crate) fn is_ready(&self) -> bool {
        self.vqs.iter().all(|vq| vq.num_max() != 0)
    }

    /// Allocates the vDPA device (`vduse_dev_init_vdpa`) and puts the IOVA domains in use,
    /// creating address space 0 on the first add (the others on first use,
    /// [`Bound::create_space`]; each has `bounce_size / nas` bytes of bounce space, as in C);
    /// returns the device and whether the domains were not in use before (to undo if
    /// registration fails).
    ///
    /// The domains are kept across `vdpa dev del` and reused, emptied, by the next add (C
    /// creates new ones on every add and leaks the old: `Documentation/differences.rst`).
    ///
    /// # Errors
    ///
    /// `EEXIST` if the device is on the vDPA bus already; `ENOMEM` and errors of the
    /// allocations.
    pub(crate) fn init_vdpa(
        self: &Arc<Self>,
        mdev: &MgmtDev<'_>,
        name: &CStr,
    ) -> Result<(VdpaDevice, bool)> {
        let mut st = self.state.lock();
        if st.bound {
            return Err(EEXIST);
        }
        let sysfs = self.sysfs.lock();
        let node = sysfs.as_ref().ok_or(ENODEV)?.node().as_ref();
        let mut d = self.domain.lock();
        let per_space = d.bounce_size.checked_div(self.nas).ok_or(EINVAL)? as usize;
        let size = per_space.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let spaces = match &d.spaces {
            Some(s) if s.domain(0).is_some_and(|d0| d0.bounce_size() == size) => {
                for s in s.iter() {
                    s.domain.reset_bounce_map();
                    // Emptying cannot fail.
                    let _ = s.domain.set_consumer_maps(KVec::new());
                }
                s.clone()
            }
            // First add, or `bounce_size` changed after a failed one: space 0 now, the others
            // on first use. Unbound, so no op uses the old ones.
            _ => {
                let first = AddressSpace::new(
                    per_space,
                    super::max_iotlb_entries()?,
                    Caching::PerCpu,
                    &self.iova_cache,
                )?;
                let s = Spaces::new(self.nas, first)?;
                d.spaces = Some(s.clone());
                s
            }
        };
        let bound = Arc::new(
            Bound {
                dev: self.clone(),
                spaces,
            },
            GFP_KERNEL,
        )?;
        // The vDPA device holds `bound` (and so `self`) until `free`.
        let (ngroups, nas) = (self.ngroups, self.nas);
        let vdpa = if self.vduse_features.suspend() {
            VdpaDevice::alloc::<Ops<true>>(node, mdev, name, ngroups, nas, bound)
        } else {
            VdpaDevice::alloc::<Ops<false>>(node, mdev, name, ngroups, nas, bound)
        }?;
        st.bound = true;
        // From here on `bounce_size` is frozen.
        let new = !d.created;
        d.created = true;
        Ok((vdpa, new))
    }

    /// Undoes [`Device::init_vdpa`]'s domain creation after a failed registration (C destroys
    /// the domains it just created).
    pub(crate) fn undo_domains(&self) {
        self.domain.lock().created = false;
    }

    /// The number of virtqueues.
    pub(crate) fn vq_num(&self) -> u32 {
        // CAST: At most 0xffff.
        self.vqs.len() as u32
    }

    fn packed(&self) -> bool {
        self.state.lock().driver_features & VIRTIO_F_RING_PACKED != 0
    }

    /// `VDUSE_SET_STATUS` to the daemon.
    fn send_status(&self, status: u8) -> Result {
        let r = DevRequest::with(req::SET_STATUS, &uapi::DevStatus { status });
        self.request(r).map(|_| ())
    }

    /// `VDUSE_DEV_INJECT_CONFIG_IRQ`, after [`Device::check_irq_allowed`].
    pub(crate) fn inject_config_irq(&self) {
        self.config_cb.call(|| ());
    }
}

/// A VDUSE device while it is on the vDPA bus: what the vDPA device holds (its ops' `this`),
/// from `vdpa dev add` until the `free` op.
///
/// The address spaces are held here as well as in [`Device`]'s domain state: they cannot
/// change while the device is bound (they are replaced only by an add), so the ops find a
/// domain here without a lock or a reference count, in any context.
pub(crate) struct Bound {
    dev: Arc<Device>,
    spaces: Arc<Spaces>,
}

impl core::ops::Deref for Bound {
    type Target = Device;

    fn deref(&self) -> &Device {
        &self.dev
    }
}

impl Bound {
    /// The domain of virtqueue group `group`, for a map op. Any context: takes no lock.
    fn group_domain(&self, group: u32) -> Result<&Arc<Domain>> {
        let asid = self.groups.get(group as usize).ok_or(EINVAL)?.load(Relaxed);
        self.spaces.domain(asid).ok_or(EINVAL)
    }

    /// The domain of address space `asid`, created now if it was not yet (process context;
    /// called with the `mmap_lock` held by vhost-vdpa's `set_map`, so it takes no mutex of
    /// the device, only [`Spaces`]' creation mutex, and not the CPU hotplug lock: its IOVA
    /// allocators have no per-CPU caches, [`Caching::None`]).
    ///
    /// Address spaces other than 0 are created on first use rather than by `vdpa dev add`
    /// (C creates all `nas` at once: two IOVA domains with per-CPU caches each, so a device
    /// with `nas` near 0xffff could not be added; `Documentation/differences.rst`, D3).
    ///
    /// # Errors
    ///
    /// `EINVAL` (`asid` out of range), `ENOMEM`.
    fn create_space(&self, asid: u32) -> Result<&Arc<Domain>> {
        // Every address space has the bounce size of space 0 (created by the add).
        let bounce_size = self.spaces.domain(0).ok_or(EINVAL)?.bounce_size();
        // Without per-CPU caches: registering them takes the CPU hotplug lock, which must not
        // be taken under the `mmap_lock` (`Caching`). Spaces other than 0 serve vhost-vdpa,
        // which maps its own IOVAs: their allocators serve only a driver's map ops after a
        // `set_group_asid`.
        let s = self.spaces.fill(asid, || {
            AddressSpace::new(
                bounce_size,
                super::max_iotlb_entries()?,
                Caching::None,
                &self.iova_cache,
            )
        })?;
        Ok(&s.domain)
    }

    /// `vduse_dev_reset`.
    fn reset_local(&self) {
        {
            let mut st = self.state.lock();
            st.status = 0;
            self.driver_ok.store(false, Relaxed);
            st.driver_features = 0;
            st.generation = st.generation.wrapping_add(1);
        }
        self.suspended.store(false, Relaxed);
        self.config_cb.clear();
        // The bounce region's IOTLB entry goes; the coherent buffers are the driver's to free.
        for s in self.spaces.iter() {
            s.domain.reset_bounce_map();
        }
        for vq in self.vqs.iter() {
            vq.reset();
            vq.flush_kicks();
        }
    }
}

/// The config and map ops of a device: `Ops<true>` for a device created with
/// `VDUSE_F_SUSPEND` (the vDPA core then offers `suspend`), `Ops<false>` without. `#[vtable]`
/// keeps a `HAS_SUSPEND` the impl declares, so one impl serves both.
pub(crate) struct Ops<const SUSPEND: bool>;

#[vtable]
impl<const SUSPEND: bool> ConfigOps for Ops<SUSPEND> {
    type Ptr = Arc<Bound>;

    const HAS_SUSPEND: bool = SUSPEND;

    fn set_vq_address(
        this: Borrowed<'_, Self>,
        idx: u16,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> Result {
        if let Some(vq) = this.vq_at(idx) {
            vq.set_address(desc, driver, device);
        }
        Ok(())
    }

    fn set_vq_num(this: Borrowed<'_, Self>, idx: u16, num: u32) {
        if let Some(vq) = this.vq_at(idx) {
            vq.set_num(num);
        }
    }

    fn get_vq_size(this: Borrowed<'_, Self>, idx: u16) -> u16 {
        this.vq_at(idx).map_or(0, |vq| vq.size())
    }

    /// `kick_vq`: may be called in atomic context (virtqueue notify, vhost's eventfd wakeup),
    /// so it takes no sleeping lock. Once orphaned, a kick queues the drain work.
    fn kick_vq(this: Borrowed<'_, Self>, idx: u16) {
        if this.vq_at(idx).is_some_and(|vq| vq.kick()) {
            this.dev.as_arc_borrow().queue_drain();
        }
    }

    fn set_vq_cb(this: Borrowed<'_, Self>, idx: u16, cb: Callback<'_>) {
        if let Some(vq) = this.vq_at(idx) {
            vq.set_cb(cb);
        }
    }

    /// `set_vq_ready`: with `VDUSE_F_QUEUE_READY` the daemon is asked first; if it refuses,
    /// the device is broken, as in C.
    fn set_vq_ready(this: Borrowed<'_, Self>, idx: u16, ready: bool) {
        let Some(vq) = this.vq_at(idx) else { return };
        if this.vduse_features.queue_ready() {
            let r = DevRequest::with(
                req::SET_VQ_READY,
                &uapi::VqReady {
                    num: u32::from(idx),
                    ready: u32::from(ready),
                },
            );
            if this.request(r).is_err() {
                this.msgs.break_device();
                return;
            }
        }
        vq.set_ready(ready);
        // The ring is followed from here on, for the orphan drain (unless the `orphan_drain`
        // module parameter turned that off).
        let track = ready && crate::module_parameters::orphan_drain.value() != 0;
        match track.then(|| this.group_domain(vq.group())) {
            Some(Ok(domain)) => vq.track(domain.clone(), this.packed()),
            _ => vq.untrack(),
        }
    }

    fn get_vq_ready(this: Borrowed<'_, Self>, idx: u16) -> bool {
        this.vq_at(idx).is_some_and(|vq| vq.ready())
    }

    fn set_vq_state(this: Borrowed<'_, Self>, idx: u16, state: VqStateWords) -> Result {
        let is_packed = this.packed();
        if let Some(vq) = this.vq_at(idx) {
            vq.set_state(is_packed, state.split_avail_index, state.packed);
        }
        Ok(())
    }

    /// `get_vq_state`: asks the daemon (`VDUSE_GET_VQ_STATE`).
    fn get_vq_state(this: Borrowed<'_, Self>, idx: u16) -> Result<VqState> {
        this.vq_at(idx).ok_or(EINVAL)?;
        let packed = this.packed();
        let r = DevRequest::with(
            req::GET_VQ_STATE,
            &uapi::VqStateMsg {
                index: u32::from(idx),
                ..Default::default()
            },
        );
        let state = this.request(r)?.payload_as::<uapi::VqStateMsg>().state;
        Ok(if packed {
            VqState::Packed(state)
        } else {
            VqState::Split(state[0])
        })
    }

    fn get_vq_align(this: Borrowed<'_, Self>) -> u32 {
        this.vq_align
    }

    fn get_vq_group(this: Borrowed<'_, Self>, idx: u16) -> u32 {
        if !this.api.has_groups() {
            return 0;
        }
        this.vq_at(idx).map_or(0, |vq| vq.group())
    }

    fn get_vq_map(this: Borrowed<'_, Self>, idx: u16) -> Option<u32> {
        Some(Self::get_vq_group(this, idx))
    }

    fn get_device_features(this: Borrowed<'_, Self>) -> u64 {
        this.device_features
    }

    fn set_driver_features(this: Borrowed<'_, Self>, features: u64) -> Result {
        this.state.lock().driver_features = features;
        Ok(())
    }

    fn get_driver_features(this: Borrowed<'_, Self>) -> u64 {
        this.state.lock().driver_features
    }

    fn set_config_cb(this: Borrowed<'_, Self>, cb: Callback<'_>) {
        this.config_cb.set(cb);
    }

    fn get_vq_num_max(this: Borrowed<'_, Self>) -> u16 {
        this.vqs.iter().map(|vq| vq.num_max()).max().unwrap_or(0)
    }

    fn get_device_id(this: Borrowed<'_, Self>) -> u32 {
        this.device_id
    }

    fn get_vendor_id(this: Borrowed<'_, Self>) -> u32 {
        this.vendor_id
    }

    fn get_status(this: Borrowed<'_, Self>) -> u8 {
        this.state.lock().status
    }

    /// `set_status`: the status changes only if the daemon accepts it.
    fn set_status(this: Borrowed<'_, Self>, status: u8) {
        if this.send_status(status).is_ok() {
            let mut st = this.state.lock();
            st.status = status;
            this.driver_ok
                .store(status & STATUS_DRIVER_OK != 0, Relaxed);
        }
    }

    /// `reset`: tells the daemon (status 0), then resets the device whatever it answered.
    fn reset(this: Borrowed<'_, Self>) -> Result {
        let r = this.send_status(0);
        this.reset_local();
        r
    }

    fn get_config_size(this: Borrowed<'_, Self>) -> usize {
        this.config.lock().len()
    }

    /// `get_config`: `out` is zeroed, then filled from `offset` as far as the space goes.
    fn get_config(this: Borrowed<'_, Self>, offset: u32, out: &mut [u8]) {
        out.fill(0);
        let config = this.config.lock();
        if let Some(src) = config.get(offset as usize..) {
            let n = src.len().min(out.len());
            out[..n].copy_from_slice(&src[..n]);
        }
    }

    fn set_config(_this: Borrowed<'_, Self>, _offset: u32, _data: &[u8]) {
        // The configuration space is read-only for the driver, as in C.
    }

    fn get_generation(this: Borrowed<'_, Self>) -> u32 {
        this.state.lock().generation
    }

    /// `set_map`: replaces the mappings of address space `asid` with the consumer's (so
    /// `VDUSE_IOTLB_GET_FD` finds them), then tells the daemon (`VDUSE_UPDATE_IOTLB` for the
    /// whole range); if it refuses, the address space is left without mappings, as C's
    /// `vduse_domain_clear_map` leaves it.
    ///
    /// # Errors
    ///
    /// `EINVAL` (bad `asid`), `ENOSPC` (more mappings than the IOTLB holds:
    /// [`crate::driver::domain::Domain::set_consumer_maps`]), `EIO`
    /// (the daemon refused or did not answer), `ENOMEM`.
    fn set_map(this: Borrowed<'_, Self>, asid: u32, iotlb: &Iotlb<'_>) -> Result {
        let maps: KVec<IotlbMap> = iotlb.file_maps()?;
        if asid >= this.nas {
            return Err(EINVAL);
        }
        // From the bound device's spaces, not through `Device::domain`: vhost-vdpa holds the
        // `mmap_lock` here (see the lock order). An address space never used has no mapping to
        // clear, so an empty map does not create it.
        let domain = if maps.is_empty() {
            this.spaces.domain(asid)
        } else {
            Some(this.create_space(asid)?)
        };
        if let Some(domain) = &domain {
            domain.set_consumer_maps(maps)?;
        }
        // The whole range; with API 1, of the address space.
        let r = if this.api.has_groups() {
            DevRequest::with(
                req::UPDATE_IOTLB,
                &uapi::IovaRangeV2 {
                    start: 0,
                    last: u64::MAX,
                    asid,
                    padding: 0,
                },
            )
        } else {
            DevRequest::with(
                req::UPDATE_IOTLB,
                &uapi::IovaRange {
                    start: 0,
                    last: u64::MAX,
                },
            )
        };
        let res = this.request(r).map(|_| ());
        if let (Err(_), Some(domain)) = (&res, &domain) {
            // Emptying cannot fail.
            let _ = domain.set_consumer_maps(KVec::new());
        }
        res
    }

    fn set_vq_affinity(this: Borrowed<'_, Self>, idx: u16, mask: Option<CpuMask>) -> Result {
        if let Some(vq) = this.vq_at(idx) {
            vq.set_driver_affinity(mask);
        }
        Ok(())
    }

    fn get_vq_affinity(this: Borrowed<'_, Self>, idx: u16) -> Option<CpuMask> {
        this.vq_at(idx).map(|vq| vq.irq_affinity())
    }

    /// `set_group_asid` (API 1): asks the daemon (`VDUSE_SET_VQ_GROUP_ASID`).
    fn set_group_asid(this: Borrowed<'_, Self>, group: u32, asid: u32) -> Result {
        if !this.api.has_groups() || group >= this.ngroups || asid >= this.nas {
            return Err(EINVAL);
        }
        // The group's map ops will look the space up in atomic context: it must exist first.
        this.create_space(asid)?;
        let r = DevRequest::with(req::SET_VQ_GROUP_ASID, &uapi::VqGroupAsid { group, asid });
        this.request(r)?;
        // The group's map ops use the new address space from now on.
        if let Some(g) = this.groups.get(group as usize) {
            g.store(asid, Relaxed);
        }
        Ok(())
    }

    /// `free`: the vDPA core releases the vDPA device; the VDUSE device is off the bus.
    fn free(this: Arc<Bound>) {
        this.state.lock().bound = false;
        this.end_orphan();
    }

    /// `suspend` (`VDUSE_F_SUSPEND`): once the daemon accepted, no kick or interrupt is
    /// delivered until reset. When this returns, every kick and interrupt that started before
    /// has finished, deferred ones included (C: the `kick_lock` cycle and `cancel_work_sync`).
    fn suspend(this: Borrowed<'_, Self>) -> Result {
        this.request(DevRequest::new(req::SUSPEND))?;
        // Refuses `VDUSE_*_INJECT_IRQ` from now on (EINVAL, as C).
        this.suspended.store(true, Relaxed);
        for vq in this.vqs.iter() {
            vq.suspend();
        }
        this.config_cb.mute();
        Ok(())
    }
}

impl<const SUSPEND: bool> MapOps for Ops<SUSPEND> {
    fn map_page(
        this: Borrowed<'_, Self>,
        group: u32,
        region: DmaRegion,
        dir: DataDirection,
        attrs: usize,
    ) -> Result<u64> {
        this.group_domain(group)?.map_page(region, dir, attrs)
    }
    fn unmap_page(
        this: Borrowed<'_, Self>,
        group: u32,
        addr: u64,
        size: usize,
        dir: DataDirection,
        attrs: usize,
    ) {
        if let Ok(d) = this.group_domain(group) {
            d.unmap_page(addr, size, dir, attrs)
        }
    }
    fn sync_for_cpu(
        this: Borrowed<'_, Self>,
        group: u32,
        addr: u64,
        size: usize,
        dir: DataDirection,
    ) {
        if let Ok(d) = this.group_domain(group) {
            d.sync_for_cpu(addr, size, dir)
        }
    }
    fn sync_for_device(
        this: Borrowed<'_, Self>,
        group: u32,
        addr: u64,
        size: usize,
        dir: DataDirection,
    ) {
        if let Ok(d) = this.group_domain(group) {
            d.sync_for_device(addr, size, dir)
        }
    }
    fn alloc_coherent(
        this: Borrowed<'_, Self>,
        group: u32,
        size: usize,
        gfp: gfp_t,
    ) -> Result<(NonNull<u8>, u64)> {
        this.group_domain(group)?.alloc_coherent(size, gfp)
    }
    fn free_coherent(
        this: Borrowed<'_, Self>,
        group: u32,
        size: usize,
        _vaddr: NonNull<u8>,
        addr: u64,
    ) {
        if let Ok(d) = this.group_domain(group) {
            d.free_coherent(addr, size)
        }
    }
    fn need_sync(this: Borrowed<'_, Self>, group: u32, addr: u64) -> bool {
        this.group_domain(group)
            .is_ok_and(|d| addr < d.bounce_size() as u64)
    }
    fn max_mapping_size(this: Borrowed<'_, Self>, group: u32) -> usize {
        this.group_domain(group).map_or(0, |d| d.bounce_size())
    }
}
