// SPDX-License-Identifier: GPL-2.0

//! One virtqueue of a VDUSE device.
//!
//! C version: `struct vduse_virtqueue` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//!
//! Locks are taken in the order: `config`, then `kick`. `irq_affinity` is independent.

use crate::{
    eventfd::EventFdCtx,
    sysfs::CpuMask,
    uapi, //
};
use kernel::{
    new_spinlock,
    prelude::*,
    sync::SpinLock, //
};

/// What `VDUSE_VQ_SETUP` and the vDPA driver set.
#[derive(Default)]
pub(crate) struct VqConfig {
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
}

/// One virtqueue.
#[pin_data]
pub(crate) struct Vq {
    /// Configuration and state.
    #[pin]
    config: SpinLock<VqConfig>,
    /// Kick eventfd.
    #[pin]
    kick: SpinLock<Kick>,
    /// CPUs the interrupt callback may run on (`vqN/irq_cb_affinity`).
    #[pin]
    irq_affinity: SpinLock<CpuMask>,
}

impl Vq {
    /// A fresh virtqueue.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            config <- new_spinlock!(VqConfig::default(), "Vq::config"),
            kick <- new_spinlock!(Kick::default(), "Vq::kick"),
            irq_affinity <- new_spinlock!(CpuMask::all(), "Vq::irq_affinity"),
        })
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
        let ready = self.config.lock().ready;
        let old = {
            let mut k = self.kick.lock();
            let old = core::mem::replace(&mut k.kickfd, ctx);
            if ready && k.kicked {
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
