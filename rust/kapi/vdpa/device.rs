// SPDX-License-Identifier: GPL-2.0

//! Allocating and registering a vDPA device whose ops are implemented in Rust.
//!
//! C header: [`include/linux/vdpa.h`](srctree/include/linux/vdpa.h) (`vdpa_alloc_device()`,
//! `_vdpa_register_device()`).

use super::{
    alloc::{
        DeviceAlloc,
        GroupToken, //
    },
    config_ops::ConfigOpsVTable,
    map_ops::{
        MapOps,
        MapOpsVTable, //
    },
    mgmt::MgmtDev,
};
use crate::{
    ffi,
    kapi::root_device::device_as_raw, //
};
use kernel::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    prelude::*, //
};

/// A vDPA device allocated and not registered yet.
///
/// # Invariants
///
/// `raw` was returned by `__vdpa_alloc_device` with the size of [`DeviceAlloc`] and the op
/// tables of some [`ConfigOps`] type, whose driver data it holds; this object owns the
/// allocation's device reference.
pub(crate) struct VdpaDevice {
    raw: *mut ffi::vdpa_device,
}

impl VdpaDevice {
    /// `vdpa_alloc_device()`: a device named `name`, child of `parent`, of management device
    /// `mdev`, with `ngroups` virtqueue groups and `nas` address spaces, whose config and map
    /// ops are `T`'s and whose driver data is `data` (handed back by `ConfigOps::free`).
    pub(crate) fn alloc<T: MapOps>(
        parent: &kernel::device::Device,
        mdev: &MgmtDev<'_>,
        name: &CStr,
        ngroups: u32,
        nas: u32,
        data: T::Ptr,
    ) -> Result<Self> {
        let mut groups = KVec::with_capacity(ngroups as usize, GFP_KERNEL)?;
        for group in 0..ngroups {
            groups.push(
                GroupToken {
                    alloc: core::ptr::null_mut(),
                    group,
                },
                GFP_KERNEL,
            )?;
        }
        // SAFETY: `parent` is a valid device (a reference to a `Device`), which the vDPA
        // device holds a reference on once registered; the op tables are static; the size covers
        // `DeviceAlloc`, whose `vdpa_device` is at offset 0; `name` is copied.
        let raw = from_err_ptr(unsafe {
            ffi::__vdpa_alloc_device(
                device_as_raw(parent),
                &ConfigOpsVTable::<T>::VTABLE,
                &MapOpsVTable::<T>::VTABLE,
                ngroups,
                nas,
                core::mem::size_of::<DeviceAlloc>(),
                name.as_char_ptr(),
                true,
            )
        })?;
        // SAFETY: `raw` was just allocated with the size of `DeviceAlloc`, with `T`'s tables,
        // whose driver data is a `T::Ptr`; no op runs before the device is registered. From
        // here on `free` takes the driver data back.
        unsafe { DeviceAlloc::init(DeviceAlloc::of(raw), data, groups, mdev.as_raw()) };
        // INVARIANT: Allocated with `T`'s tables, holding `T`'s driver data.
        Ok(Self { raw })
    }

    /// `_vdpa_register_device()` with `nvqs` virtqueues, from the management device's
    /// `dev_add` (whose lock the vDPA core holds: `mdev` exists only there). On failure the
    /// device is released, which runs the `free` op.
    pub(crate) fn register(self, _mdev: &MgmtDev<'_>, nvqs: u32) -> Result {
        // The `get_vq_affinity` slots, one per virtqueue (dropped with `self` on failure).
        let mut slots = KVec::with_capacity(nvqs as usize, GFP_KERNEL)?;
        for _ in 0..nvqs {
            slots.push(pin_init::zeroed::<bindings::cpumask>(), GFP_KERNEL)?;
        }
        let raw = self.raw;
        core::mem::forget(self);
        // SAFETY: Allocated and filled (type invariant) and not registered yet: no op runs.
        // From here on `free` gives the masks back.
        unsafe { DeviceAlloc::set_affinity(DeviceAlloc::of(raw), slots) };
        // SAFETY: Allocated (type invariant); called within `dev_add`, with `vdpa_dev_lock`
        // held by the vDPA core as `_vdpa_register_device` requires.
        let ret = unsafe { ffi::_vdpa_register_device(raw, nvqs) };
        if ret != 0 {
            // SAFETY: We own the allocation's reference (type invariant, not dropped: forgotten
            // above); dropping it releases the device and runs `free`.
            unsafe { bindings::put_device(&raw mut (*raw).dev) };
        }
        to_result(ret)
    }
}

impl Drop for VdpaDevice {
    fn drop(&mut self) {
        // SAFETY: We own the allocation's reference (type invariant); the release runs `free`.
        unsafe { bindings::put_device(&raw mut (*self.raw).dev) };
    }
}
