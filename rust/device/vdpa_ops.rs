// SPDX-License-Identifier: GPL-2.0

//! The `vdpa_config_ops` of a VDUSE device, as safe methods (the FFI shims are in `vdpa.rs`).
//!
//! C version: `vduse_vdpa_*()` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//!
//! The vDPA core validates virtqueue indexes (`idx < nvqs`) before calling these; an index out
//! of range is still handled (ignored, or `EINVAL`) rather than trusted.

use super::{
    Device,
    VIRTIO_F_RING_PACKED, //
};
use crate::{
    uapi::{
        self,
        req,
        DevRequest, //
    },
    vdpa::{
        Callback,
        IotlbMap,
        MgmtRef,
        VdpaDev, //
    },
    vq::Vq,
};
use kernel::{
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

    /// Allocates the vDPA device (`vduse_dev_init_vdpa`) and marks the IOVA domains created;
    /// returns the device and whether the domains are new (to undo if registration fails).
    ///
    /// # Errors
    ///
    /// `EEXIST` if the device is on the vDPA bus already; errors of the allocation.
    pub(crate) fn init_vdpa(
        self: &Arc<Self>,
        mdev: &MgmtRef,
        name: &CStr,
    ) -> Result<(VdpaDev, bool)> {
        let mut st = self.state.lock();
        if st.bound {
            return Err(EEXIST);
        }
        let sysfs = self.sysfs.lock();
        let node = sysfs.as_ref().ok_or(ENODEV)?.node();
        let vdpa = VdpaDev::alloc(
            self,
            node,
            mdev,
            name,
            (self.ngroups, self.nas),
            self.vduse_features.suspend(),
        )?;
        st.bound = true;
        // The IOVA domains exist from the first `vdpa dev add` on: `bounce_size` is frozen.
        // Every add starts them afresh (C allocates new domains), without mappings.
        let mut d = self.domain.lock();
        let new = !d.created;
        d.created = true;
        d.maps.clear();
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

    pub(crate) fn vdpa_set_vq_address(&self, idx: u16, desc: u64, driver: u64, device: u64) {
        if let Some(vq) = self.vq_at(idx) {
            vq.set_address(desc, driver, device);
        }
    }

    pub(crate) fn vdpa_set_vq_num(&self, idx: u16, num: u32) {
        if let Some(vq) = self.vq_at(idx) {
            vq.set_num(num);
        }
    }

    pub(crate) fn vdpa_get_vq_size(&self, idx: u16) -> u16 {
        self.vq_at(idx).map_or(0, |vq| vq.size())
    }

    /// `kick_vq`: may be called in atomic context (virtqueue notify, vhost's eventfd wakeup),
    /// so it takes no sleeping lock.
    pub(crate) fn vdpa_kick_vq(&self, idx: u16) {
        if let Some(vq) = self.vq_at(idx) {
            vq.kick(self.suspended.load(Relaxed));
        }
    }

    pub(crate) fn vdpa_set_vq_cb(&self, idx: u16, cb: Option<Callback>) {
        if let Some(vq) = self.vq_at(idx) {
            vq.set_cb(cb);
        }
    }

    /// `set_vq_ready`: with `VDUSE_F_QUEUE_READY` the daemon is asked first; if it refuses,
    /// the device is broken, as in C.
    pub(crate) fn vdpa_set_vq_ready(&self, idx: u16, ready: bool) {
        let Some(vq) = self.vq_at(idx) else { return };
        if self.vduse_features.queue_ready() {
            let mut r = DevRequest::new(req::SET_VQ_READY);
            r.put_u32(0, u32::from(idx));
            r.put_u32(4, u32::from(ready));
            if self.request(r).is_err() {
                self.msgs.break_device();
                return;
            }
        }
        vq.set_ready(ready);
    }

    pub(crate) fn vdpa_get_vq_ready(&self, idx: u16) -> bool {
        self.vq_at(idx).is_some_and(|vq| vq.ready())
    }

    fn packed(&self) -> bool {
        self.state.lock().driver_features & VIRTIO_F_RING_PACKED != 0
    }

    pub(crate) fn vdpa_set_vq_state(&self, idx: u16, split: u16, packed: [u16; 4]) {
        let is_packed = self.packed();
        if let Some(vq) = self.vq_at(idx) {
            vq.set_state(is_packed, split, packed);
        }
    }

    /// `get_vq_state`: asks the daemon (`VDUSE_GET_VQ_STATE`). Returns whether the ring is
    /// packed and the four state words of the response.
    pub(crate) fn vdpa_get_vq_state(&self, idx: u16) -> Result<(bool, [u16; 4])> {
        self.vq_at(idx).ok_or(EINVAL)?;
        let packed = self.packed();
        let mut r = DevRequest::new(req::GET_VQ_STATE);
        r.put_u32(0, u32::from(idx));
        let resp = self.request(r)?;
        // `struct vduse_vq_state`: `index` (4 bytes), then the split or packed state.
        Ok((packed, [4, 6, 8, 10].map(|off| resp.u16_at(off))))
    }

    pub(crate) fn vdpa_get_vq_align(&self) -> u32 {
        self.vq_align
    }

    pub(crate) fn vdpa_get_vq_group(&self, idx: u16) -> u32 {
        if !self.api.has_groups() {
            return 0;
        }
        self.vq_at(idx).map_or(0, |vq| vq.group())
    }

    pub(crate) fn vdpa_get_device_features(&self) -> u64 {
        self.device_features
    }

    pub(crate) fn vdpa_set_driver_features(&self, features: u64) {
        self.state.lock().driver_features = features;
    }

    pub(crate) fn vdpa_get_driver_features(&self) -> u64 {
        self.state.lock().driver_features
    }

    pub(crate) fn vdpa_set_config_cb(&self, cb: Option<Callback>) {
        *self.config_cb.lock() = cb;
    }

    pub(crate) fn vdpa_get_vq_num_max(&self) -> u16 {
        self.vqs.iter().map(|vq| vq.num_max()).max().unwrap_or(0)
    }

    pub(crate) fn vdpa_get_device_id(&self) -> u32 {
        self.device_id
    }

    pub(crate) fn vdpa_get_vendor_id(&self) -> u32 {
        self.vendor_id
    }

    pub(crate) fn vdpa_get_status(&self) -> u8 {
        self.state.lock().status
    }

    /// `VDUSE_SET_STATUS` to the daemon.
    fn send_status(&self, status: u8) -> Result {
        let mut r = DevRequest::new(req::SET_STATUS);
        r.put_u8(0, status);
        self.request(r).map(|_| ())
    }

    /// `set_status`: the status changes only if the daemon accepts it.
    pub(crate) fn vdpa_set_status(&self, status: u8) {
        if self.send_status(status).is_ok() {
            self.state.lock().status = status;
        }
    }

    pub(crate) fn vdpa_get_config_size(&self) -> usize {
        self.config.lock().len()
    }

    /// `get_config`: `out` is zeroed, then filled from `offset` as far as the space goes.
    pub(crate) fn vdpa_get_config(&self, offset: u32, out: &mut [u8]) {
        out.fill(0);
        let config = self.config.lock();
        if let Some(src) = config.get(offset as usize..) {
            let n = src.len().min(out.len());
            out[..n].copy_from_slice(&src[..n]);
        }
    }

    pub(crate) fn vdpa_get_generation(&self) -> u32 {
        self.state.lock().generation
    }

    /// `reset`: tells the daemon (status 0), then resets the device whatever it answered.
    pub(crate) fn vdpa_reset(&self) -> Result {
        let r = self.send_status(0);
        self.reset_local();
        r
    }

    /// `vduse_dev_reset`.
    fn reset_local(&self) {
        {
            let mut st = self.state.lock();
            st.status = 0;
            st.driver_features = 0;
            st.generation = st.generation.wrapping_add(1);
        }
        self.suspended.store(false, Relaxed);
        *self.config_cb.lock() = None;
        for vq in self.vqs.iter() {
            vq.reset();
            vq.flush_kicks();
        }
    }

    /// `set_map`: replaces the mappings of address space `asid` with the consumer's (so
    /// `VDUSE_IOTLB_GET_FD` finds them), then tells the daemon (`VDUSE_UPDATE_IOTLB` for the
    /// whole range); if it refuses, the address space is left without mappings, as C's
    /// `vduse_domain_clear_map` leaves it.
    ///
    /// # Errors
    ///
    /// `EINVAL` (bad `asid`), `ENOSPC` (more than [`super::MAX_IOTLB_ENTRIES`] mappings), `EIO`
    /// (the daemon refused or did not answer), `ENOMEM`.
    pub(crate) fn vdpa_set_map(&self, asid: u32, maps: KVec<IotlbMap>) -> Result {
        if asid >= self.nas {
            return Err(EINVAL);
        }
        if maps.len() > super::MAX_IOTLB_ENTRIES {
            return Err(ENOSPC);
        }
        self.domain.lock().set_maps(asid, maps)?;
        let mut r = DevRequest::new(req::UPDATE_IOTLB);
        r.put_u64(0, 0);
        r.put_u64(8, u64::MAX);
        if self.api.has_groups() {
            r.put_u32(16, asid);
        }
        let res = self.request(r).map(|_| ());
        if res.is_err() {
            // Cannot fail: clearing never allocates.
            let _ = self.domain.lock().set_maps(asid, KVec::new());
        }
        res
    }

    /// `set_group_asid` (API 1): asks the daemon (`VDUSE_SET_VQ_GROUP_ASID`).
    pub(crate) fn vdpa_set_group_asid(&self, group: u32, asid: u32) -> Result {
        if !self.api.has_groups() || group >= self.ngroups || asid >= self.nas {
            return Err(EINVAL);
        }
        let mut r = DevRequest::new(req::SET_VQ_GROUP_ASID);
        r.put_u32(0, group);
        r.put_u32(4, asid);
        self.request(r).map(|_| ())
    }

    /// `suspend` (`VDUSE_F_SUSPEND`): once the daemon accepted, no kick or interrupt is
    /// delivered until reset.
    pub(crate) fn vdpa_suspend(&self) -> Result {
        self.request(DevRequest::new(req::SUSPEND))?;
        self.suspended.store(true, Relaxed);
        for vq in self.vqs.iter() {
            vq.sync_kicks();
        }
        Ok(())
    }

    /// `free`: the vDPA core releases the vDPA device; the VDUSE device is off the bus.
    pub(crate) fn vdpa_free(&self) {
        self.state.lock().bound = false;
    }

    /// `VDUSE_DEV_INJECT_CONFIG_IRQ`, after [`Device::check_irq_allowed`].
    pub(crate) fn inject_config_irq(&self) {
        if let Some(cb) = self.config_cb.lock().as_ref() {
            cb.call();
        }
    }
}
