// SPDX-License-Identifier: GPL-2.0

//! Reading a vDPA consumer's IOTLB (`struct vhost_iotlb`), as `set_map` passes it.
//!
//! C header: [`include/linux/vhost_iotlb.h`](srctree/include/linux/vhost_iotlb.h).

use crate::ffi;
use kernel::{
    fs::File,
    prelude::*,
    sync::aref::ARef, //
};

/// One mapping of a consumer's IOTLB that is backed by a file (vhost-vdpa with `use_va`):
/// IOVAs `start..=last` backed by `file` from `offset`, with `VHOST_ACCESS_*` permissions
/// `perm`.
pub(crate) struct IotlbMap {
    /// First IOVA.
    pub(crate) start: u64,
    /// Last IOVA (inclusive).
    pub(crate) last: u64,
    /// `VHOST_ACCESS_RO`, `_WO` or `_RW`.
    pub(crate) perm: u8,
    /// The file backing the range.
    pub(crate) file: ARef<File>,
    /// Offset in `file` of `start`.
    pub(crate) offset: u64,
}

/// A consumer's IOTLB, borrowed for the duration of a `set_map` op.
///
/// # Invariants
///
/// `raw` is a valid `struct vhost_iotlb`, not changed while this exists.
pub(crate) struct Iotlb<'a> {
    raw: *mut ffi::vhost_iotlb,
    _op: core::marker::PhantomData<&'a ()>,
}

impl Iotlb<'_> {
    /// Wraps the IOTLB of a `set_map` call.
    ///
    /// # Safety
    ///
    /// `raw` is a valid `struct vhost_iotlb` that does not change while the result exists.
    pub(crate) unsafe fn from_raw(raw: *mut ffi::vhost_iotlb) -> Self {
        // INVARIANT: Per the safety requirements.
        Self {
            raw,
            _op: core::marker::PhantomData,
        }
    }

    /// Copies every mapping, in IOVA order, each with a reference on its file.
    ///
    /// # Errors
    ///
    /// `EINVAL` if a mapping has no file (the consumer does not use `use_va`), `ENOMEM`.
    pub(crate) fn file_maps(&self) -> Result<KVec<IotlbMap>> {
        let mut maps = KVec::new();
        // SAFETY: `raw` is valid (type invariant).
        let mut map = unsafe { ffi::vhost_iotlb_itree_first(self.raw, 0, u64::MAX) };
        while !map.is_null() {
            // SAFETY: `map` is a map of the IOTLB, valid while it is unchanged.
            let m = unsafe { &*map };
            let mf = m.opaque.cast::<ffi::vdpa_map_file>();
            if mf.is_null() {
                return Err(EINVAL);
            }
            // SAFETY: `mf` is the `vdpa_map_file` vhost-vdpa attached to the map, whose file it
            // holds a reference on; `ARef::from` takes one of ours. No fdget_pos is active here.
            let (file, offset) =
                unsafe { (ARef::from(File::from_raw_file((*mf).file)), (*mf).offset) };
            maps.push(
                IotlbMap {
                    start: m.start,
                    last: m.last,
                    // CAST: `VHOST_ACCESS_*` fit in a byte (uAPI `perm` is a `__u8`).
                    perm: m.perm as u8,
                    file,
                    offset,
                },
                GFP_KERNEL,
            )?;
            // SAFETY: As above.
            map = unsafe { ffi::vhost_iotlb_itree_next(map, 0, u64::MAX) };
        }
        Ok(maps)
    }
}
