// SPDX-License-Identifier: GPL-2.0

//! The allocation the vDPA core makes for a device of this layer: `struct vdpa_device` followed
//! by the driver data, the groups' `virtio_map` tokens and the affinity masks. Private to the
//! vDPA abstractions: [`super::device`] fills it, the config ops ([`super::config_ops`]) read
//! it and free it, the map ops ([`super::map_ops`]) find it from a token.

use crate::ffi;
use core::ffi::c_void;

/// The driver data following `struct vdpa_device` in the allocation the vDPA core makes for a
/// device of [`super::config_ops::ConfigOpsVTable`] (as C drivers embed it first in their own struct).
///
/// # Invariants
///
/// Between allocation and the `free` op, `data` is a pointer from `ForeignOwnable::into_foreign`
/// of the `T::Ptr` of the table the device was allocated with, `groups` is NULL or the
/// buffer of a `KVec<GroupToken>` of length `ngroups` and capacity `groups_cap` whose tokens
/// point to this allocation, and `affinity` is NULL or the buffer of a `KVec<cpumask>` of
/// length `naffinity` and capacity `affinity_cap` (from registration on).
#[repr(C)]
pub(crate) struct DeviceAlloc {
    /// The vDPA device (first: a `*mut vdpa_device` of the vDPA core points to a
    /// `DeviceAlloc`).
    pub(crate) vdpa: ffi::vdpa_device,
    /// The driver data, a foreign `T::Ptr`.
    pub(crate) data: *mut c_void,
    /// The `virtio_map` tokens of the groups.
    pub(crate) groups: *mut GroupToken,
    /// The number of groups.
    pub(crate) ngroups: u32,
    /// The capacity of the tokens' buffer.
    pub(crate) groups_cap: usize,
    /// One `struct cpumask` per virtqueue, where `get_vq_affinity` puts the mask it returns
    /// (the C op returns a pointer the caller reads afterwards).
    pub(crate) affinity: *mut kernel::bindings::cpumask,
    /// The number of entries of `affinity`.
    pub(crate) naffinity: usize,
    /// The capacity of the buffer of `affinity`.
    pub(crate) affinity_cap: usize,
}

const _: () = assert!(core::mem::offset_of!(DeviceAlloc, vdpa) == 0);

/// What a `virtio_map` token of a device points to: the device's allocation and a group.
#[repr(C)]
pub(crate) struct GroupToken {
    pub(crate) alloc: *mut DeviceAlloc,
    pub(crate) group: u32,
}
