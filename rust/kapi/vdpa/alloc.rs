// SPDX-License-Identifier: GPL-2.0

//! The allocation the vDPA core makes for a device of this layer: `struct vdpa_device` followed
//! by the driver data, the groups' `virtio_map` tokens and the affinity masks. Private to the
//! vDPA abstractions, and the only place its fields are touched: [`super::device`] fills it
//! ([`DeviceAlloc::init`], [`DeviceAlloc::set_affinity`]), the config ops
//! ([`super::config_ops`]) and the map ops ([`super::map_ops`], from a token) read it, and the
//! `free` op empties it ([`DeviceAlloc::take`]).

use crate::ffi;
use core::ffi::c_void;
use kernel::{
    bindings,
    prelude::*,
    types::ForeignOwnable, //
};

/// The driver data following `struct vdpa_device` in the allocation the vDPA core makes for a
/// device of [`super::config_ops::ConfigOpsVTable`] (as C drivers embed it first in their own
/// struct).
///
/// # Invariants
///
/// Between allocation and the `free` op, `data` is a pointer from `ForeignOwnable::into_foreign`
/// of the `T::Ptr` of the table the device was allocated with, `groups` is NULL or the
/// buffer of a `KVec<GroupToken>` of length `ngroups` and capacity `groups_cap` whose tokens
/// point to this allocation, and `affinity` is NULL or the buffer of a `KVec<cpumask>` of
/// length `naffinity` and capacity `affinity_cap` (from registration on).
#[repr(C)]
pub(super) struct DeviceAlloc {
    /// The vDPA device (first: a `*mut vdpa_device` of the vDPA core points to a
    /// `DeviceAlloc`).
    vdpa: ffi::vdpa_device,
    /// The driver data, a foreign `T::Ptr`.
    data: *mut c_void,
    /// The `virtio_map` tokens of the groups.
    groups: *mut GroupToken,
    /// The number of groups.
    ngroups: u32,
    /// The capacity of the tokens' buffer.
    groups_cap: usize,
    /// One `struct cpumask` per virtqueue, where `get_vq_affinity` puts the mask it returns
    /// (the C op returns a pointer the caller reads afterwards).
    affinity: *mut bindings::cpumask,
    /// The number of entries of `affinity`.
    naffinity: usize,
    /// The capacity of the buffer of `affinity`.
    affinity_cap: usize,
}

const _: () = assert!(core::mem::offset_of!(DeviceAlloc, vdpa) == 0);

impl DeviceAlloc {
    /// The allocation of device `vdpa` (its `vdpa_device` is the first field).
    pub(super) fn of(vdpa: *mut ffi::vdpa_device) -> *mut Self {
        vdpa.cast()
    }

    /// Fills a new allocation: the driver data `data`, the groups' tokens (pointed back at the
    /// allocation) and the management device. The affinity masks come at registration.
    ///
    /// # Safety
    ///
    /// `this` was just returned by `__vdpa_alloc_device` with the size of `Self` (zeroed by
    /// it), for an op table whose driver data is a `P`; no op runs yet.
    pub(super) unsafe fn init<P: ForeignOwnable>(
        this: *mut Self,
        data: P,
        mut groups: KVec<GroupToken>,
        mdev: *mut ffi::vdpa_mgmt_dev,
    ) {
        for token in groups.iter_mut() {
            token.alloc = this;
        }
        let (tokens, len, cap) = groups.into_raw_parts();
        // SAFETY: `this` is a fresh allocation of `Self` nobody else uses yet (the caller).
        // INVARIANT: `data` is a `P` from `into_foreign`; the tokens' buffer is a `KVec`'s of
        // `len` tokens pointing here; no masks yet.
        unsafe {
            (*this).data = data.into_foreign().cast();
            (*this).groups = tokens;
            // CAST: `len` is the number of groups, a `u32`.
            (*this).ngroups = len as u32;
            (*this).groups_cap = cap;
            (*this).vdpa.mdev = mdev;
        }
    }

    /// Gives the device its affinity masks, one per virtqueue.
    ///
    /// # Safety
    ///
    /// `this` was filled by [`DeviceAlloc::init`] and is not registered yet (no op runs).
    pub(super) unsafe fn set_affinity(this: *mut Self, masks: KVec<bindings::cpumask>) {
        let (ptr, len, cap) = masks.into_raw_parts();
        // SAFETY: Nobody else uses the allocation yet (the caller).
        // INVARIANT: A `KVec`'s buffer of `len` masks.
        unsafe {
            (*this).affinity = ptr;
            (*this).naffinity = len;
            (*this).affinity_cap = cap;
        }
    }

    /// The driver data, borrowed.
    ///
    /// # Safety
    ///
    /// `this` is a live device (its `free` op has not run) whose driver data is a `P`, and
    /// stays live for `'a`.
    pub(super) unsafe fn data<'a, P: ForeignOwnable>(this: *mut Self) -> P::Borrowed<'a> {
        // SAFETY: `data` is a `P` from `into_foreign` until `free` (type invariant), which has
        // not run and will not while the borrow lives (the caller).
        unsafe { P::borrow((*this).data.cast()) }
    }

    /// The groups' tokens and how many there are.
    ///
    /// # Safety
    ///
    /// `this` is a live device; the tokens stay valid until its `free` op.
    pub(super) unsafe fn groups(this: *mut Self) -> (*mut GroupToken, u32) {
        // SAFETY: A live device (the caller): the fields are as `init` set them.
        unsafe { ((*this).groups, (*this).ngroups) }
    }

    /// The affinity masks (NULL before registration) and how many there are.
    ///
    /// # Safety
    ///
    /// `this` is a live device; the masks stay valid until its `free` op.
    pub(super) unsafe fn affinity(this: *mut Self) -> (*mut bindings::cpumask, usize) {
        // SAFETY: A live device (the caller): the fields are as `set_affinity` set them.
        unsafe { ((*this).affinity, (*this).naffinity) }
    }

    /// Empties the allocation for the `free` op: returns the driver data and frees the tokens
    /// and the masks.
    ///
    /// # Safety
    ///
    /// `this` is a device of an op table whose driver data is a `P`, in its `free` op: called
    /// once, and no other op runs concurrently or afterwards.
    pub(super) unsafe fn take<P: ForeignOwnable>(this: *mut Self) -> P {
        // SAFETY: `data` is the `P` stored by `init` (type invariant), taken back exactly once
        // (the caller).
        let data = unsafe { P::from_foreign((*this).data.cast()) };
        // SAFETY: The buffers of `KVec`s (type invariant), given back once; nobody uses them
        // any more (the caller).
        unsafe {
            let groups = (*this).groups;
            if !groups.is_null() {
                let n = (*this).ngroups as usize;
                drop(KVec::from_raw_parts(groups, n, (*this).groups_cap));
            }
            let affinity = (*this).affinity;
            if !affinity.is_null() {
                let n = (*this).naffinity;
                drop(KVec::from_raw_parts(affinity, n, (*this).affinity_cap));
            }
        }
        data
    }
}

/// What a `virtio_map` token of a device points to: the device's allocation and a group.
#[repr(C)]
pub(super) struct GroupToken {
    pub(super) alloc: *mut DeviceAlloc,
    pub(super) group: u32,
}
