// SPDX-License-Identifier: GPL-2.0

//! The vDPA bus: management devices, vDPA devices and their config and map operations,
//! implemented by Rust types.
//!
//! C header: [`include/linux/vdpa.h`](srctree/include/linux/vdpa.h).
//!
//! Upstream this would be `kernel::vdpa`. A driver implements [`MgmtOps`] (its `dev_add`
//! allocates a [`VdpaDevice`] and registers it), [`ConfigOps`] for the devices' config
//! operations and [`MapOps`] for their virtqueue groups' mapping operations.

mod alloc;
pub(crate) mod config_ops;
pub(crate) mod device;
pub(crate) mod iotlb;
pub(crate) mod map_ops;
pub(crate) mod mgmt;

pub(crate) use config_ops::{
    Borrowed,
    Callback,
    CallbackSlot,
    ConfigOps,
    VqState,
    VqStateWords, //
};
pub(crate) use device::VdpaDevice;
pub(crate) use iotlb::{
    Iotlb,
    IotlbMap, //
};
pub(crate) use map_ops::{
    MapOps,
    DMA_ATTR_SKIP_CPU_SYNC, //
};
pub(crate) use mgmt::{
    MgmtDev,
    MgmtOps,
    Registration, //
};
