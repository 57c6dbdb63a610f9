// SPDX-License-Identifier: GPL-2.0

//! The mapping operations of a vDPA device's virtqueue groups (`struct virtio_map_ops`), which
//! `virtio_vdpa` uses instead of the DMA API, implemented by a Rust type.
//!
//! C header: [`include/linux/virtio_config.h`](srctree/include/linux/virtio_config.h).
//!
//! [`ConfigOps::get_vq_map`] names the group of a queue; the `virtio_map` token handed to the
//! virtio core points to a [`GroupToken`] that this layer allocates with the device and frees
//! in its `free` op, so every map op finds the device's driver data and the group without
//! trusting the implementation with a pointer. A queue without a group (a NULL token) gets
//! `DMA_MAPPING_ERROR`, NULL or nothing without reaching the implementation.
//!
//! **All of these ops may be called in atomic context**, including softirq (a network driver's
//! NAPI refill, its transmit under the queue lock) and with interrupts disabled: an
//! implementation never sleeps, allocates with `GFP_ATOMIC` only (or the `gfp` it is given),
//! takes only spinlocks that are taken with interrupts disabled everywhere, and touches no
//! memory that can fault.

use super::{
    alloc::GroupToken,
    config_ops::{
        Borrowed,
        ConfigOps, //
    },
};
use crate::{
    ffi,
    kapi::dma::DmaRegion, //
};
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    dma::DataDirection,
    prelude::*, //
};

/// `DMA_MAPPING_ERROR`: the address a failed mapping returns.
pub(crate) const DMA_MAPPING_ERROR: u64 = !ffi::DMA_MAPPING_ERROR_COMPLEMENT;

/// `DMA_ATTR_SKIP_CPU_SYNC`: the mapping's buffer is not to be synchronised by map/unmap.
pub(crate) const DMA_ATTR_SKIP_CPU_SYNC: usize = bindings::DMA_ATTR_SKIP_CPU_SYNC as usize;

/// The mapping operations of a device's virtqueue groups, identified by their index. Every op
/// may run in atomic context (see the module documentation).
pub(crate) trait MapOps: ConfigOps {
    /// `map_page`: makes the lent memory `region` visible to the device; returns the device
    /// address.
    fn map_page(
        this: Borrowed<'_, Self>,
        group: u32,
        region: DmaRegion,
        dir: DataDirection,
        attrs: usize,
    ) -> Result<u64>;

    /// `unmap_page`: ends a mapping of [`MapOps::map_page`].
    fn unmap_page(
        this: Borrowed<'_, Self>,
        group: u32,
        addr: u64,
        size: usize,
        dir: DataDirection,
        attrs: usize,
    );

    /// `sync_single_for_cpu`.
    fn sync_for_cpu(
        this: Borrowed<'_, Self>,
        group: u32,
        addr: u64,
        size: usize,
        dir: DataDirection,
    );

    /// `sync_single_for_device`.
    fn sync_for_device(
        this: Borrowed<'_, Self>,
        group: u32,
        addr: u64,
        size: usize,
        dir: DataDirection,
    );

    /// `alloc`: a zeroed coherent buffer of `size` bytes, allocated with `gfp`; its kernel
    /// address and device address. The buffer stays the implementation's until `free`.
    fn alloc_coherent(
        this: Borrowed<'_, Self>,
        group: u32,
        size: usize,
        gfp: bindings::gfp_t,
    ) -> Result<(NonNull<u8>, u64)>;

    /// `free`: frees a buffer of [`MapOps::alloc_coherent`].
    fn free_coherent(
        this: Borrowed<'_, Self>,
        group: u32,
        size: usize,
        vaddr: NonNull<u8>,
        addr: u64,
    );

    /// `need_sync`.
    fn need_sync(this: Borrowed<'_, Self>, group: u32, addr: u64) -> bool;

    /// `max_mapping_size`.
    fn max_mapping_size(this: Borrowed<'_, Self>, group: u32) -> usize;
}

/// The `struct virtio_map_ops` of `T`.
pub(crate) struct MapOpsVTable<T: MapOps>(PhantomData<T>);

/// Converts a C DMA direction; an unknown value is treated as bidirectional (the most
/// conservative: data is copied both ways).
fn direction(dir: bindings::dma_data_direction) -> DataDirection {
    match dir {
        bindings::dma_data_direction::DMA_TO_DEVICE => DataDirection::ToDevice,
        bindings::dma_data_direction::DMA_FROM_DEVICE => DataDirection::FromDevice,
        bindings::dma_data_direction::DMA_NONE => DataDirection::None,
        _ => DataDirection::Bidirectional,
    }
}

impl<T: MapOps> MapOpsVTable<T> {
    /// The table.
    pub(crate) const VTABLE: ffi::virtio_map_ops = ffi::virtio_map_ops {
        map_page: Some(Self::map_page),
        unmap_page: Some(Self::unmap_page),
        sync_single_for_cpu: Some(Self::sync_single_for_cpu),
        sync_single_for_device: Some(Self::sync_single_for_device),
        alloc: Some(Self::alloc),
        free: Some(Self::free),
        need_sync: Some(Self::need_sync),
        mapping_error: Some(Self::mapping_error),
        max_mapping_size: Some(Self::max_mapping_size),
    };

    /// The driver data and group of `map`, if it names one.
    ///
    /// # Safety
    ///
    /// `map` was returned by the `get_vq_map` op of a live device of this table (NULL, or a
    /// [`GroupToken`] of the device, valid until its `free`).
    unsafe fn token<'a>(map: ffi::virtio_map) -> Option<(Borrowed<'a, T>, u32)> {
        // SAFETY: Both union members are pointers; `group` is the one `get_vq_map` set.
        let token = unsafe { map.group }.cast::<GroupToken>();
        // SAFETY: NULL or a token of a live device (caller).
        let token = unsafe { token.as_ref() }?;
        // SAFETY: The token's device is live and of this table, so its driver data is a
        // `T::Ptr`; no op runs concurrently with or after `free`.
        let this = unsafe { super::alloc::DeviceAlloc::data::<T::Ptr>(token.alloc) };
        Some((this, token.group))
    }

    // Every op below: # Safety: called by the virtio core with a `map` from `get_vq_map` of a
    // live device of this table, and the other arguments `struct virtio_map_ops` documents.

    /// # Safety
    ///
    /// See above; `page` is a valid page.
    unsafe extern "C" fn map_page(
        map: ffi::virtio_map,
        page: *mut bindings::page,
        offset: c_ulong,
        size: usize,
        dir: bindings::dma_data_direction,
        attrs: c_ulong,
    ) -> bindings::dma_addr_t {
        // SAFETY: See above.
        let (Some((this, group)), Some(page)) = (unsafe { Self::token(map) }, NonNull::new(page))
        else {
            return DMA_MAPPING_ERROR;
        };
        // SAFETY: The arguments of a streaming `map_page`: the memory stays valid until the
        // matching `unmap_page`.
        let region = unsafe { DmaRegion::from_map_page(page, offset, size) };
        T::map_page(this, group, region, direction(dir), attrs).unwrap_or(DMA_MAPPING_ERROR)
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn unmap_page(
        map: ffi::virtio_map,
        handle: bindings::dma_addr_t,
        size: usize,
        dir: bindings::dma_data_direction,
        attrs: c_ulong,
    ) {
        // SAFETY: See above.
        if let Some((this, group)) = unsafe { Self::token(map) } {
            T::unmap_page(this, group, handle, size, direction(dir), attrs)
        }
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn sync_single_for_cpu(
        map: ffi::virtio_map,
        handle: bindings::dma_addr_t,
        size: usize,
        dir: bindings::dma_data_direction,
    ) {
        // SAFETY: See above.
        if let Some((this, group)) = unsafe { Self::token(map) } {
            T::sync_for_cpu(this, group, handle, size, direction(dir))
        }
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn sync_single_for_device(
        map: ffi::virtio_map,
        handle: bindings::dma_addr_t,
        size: usize,
        dir: bindings::dma_data_direction,
    ) {
        // SAFETY: See above.
        if let Some((this, group)) = unsafe { Self::token(map) } {
            T::sync_for_device(this, group, handle, size, direction(dir))
        }
    }

    /// # Safety
    ///
    /// See above; `handle` is valid for writes.
    unsafe extern "C" fn alloc(
        map: ffi::virtio_map,
        size: usize,
        handle: *mut bindings::dma_addr_t,
        gfp: bindings::gfp_t,
    ) -> *mut c_void {
        // SAFETY: `handle` is valid for writes (virtio core).
        unsafe { *handle = DMA_MAPPING_ERROR };
        // SAFETY: See above.
        let Some((this, group)) = (unsafe { Self::token(map) }) else {
            return core::ptr::null_mut();
        };
        match T::alloc_coherent(this, group, size, gfp) {
            Ok((vaddr, addr)) => {
                // SAFETY: `handle` is valid for writes (virtio core).
                unsafe { *handle = addr };
                vaddr.as_ptr().cast()
            }
            Err(_) => core::ptr::null_mut(),
        }
    }

    /// # Safety
    ///
    /// See above; `vaddr` and `handle` come from `alloc` on the same map.
    unsafe extern "C" fn free(
        map: ffi::virtio_map,
        size: usize,
        vaddr: *mut c_void,
        handle: bindings::dma_addr_t,
        _attrs: c_ulong,
    ) {
        // SAFETY: See above.
        let token = unsafe { Self::token(map) };
        if let (Some((this, group)), Some(vaddr)) = (token, NonNull::new(vaddr)) {
            T::free_coherent(this, group, size, vaddr.cast(), handle)
        }
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn need_sync(map: ffi::virtio_map, handle: bindings::dma_addr_t) -> bool {
        // SAFETY: See above.
        unsafe { Self::token(map) }.is_some_and(|(this, group)| T::need_sync(this, group, handle))
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn mapping_error(
        _map: ffi::virtio_map,
        handle: bindings::dma_addr_t,
    ) -> c_int {
        if handle == DMA_MAPPING_ERROR {
            ENOMEM.to_errno()
        } else {
            0
        }
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn max_mapping_size(map: ffi::virtio_map) -> usize {
        // SAFETY: See above.
        unsafe { Self::token(map) }.map_or(0, |(this, group)| T::max_mapping_size(this, group))
    }
}
