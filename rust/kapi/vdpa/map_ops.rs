// SPDX-License-Identifier: GPL-2.0

//! The mapping operations of a vDPA device's virtqueue groups (`struct virtio_map_ops`), which
//! `virtio_vdpa` uses instead of the DMA API, implemented by a Rust type.
//!
//! C header: [`include/linux/virtio_config.h`](srctree/include/linux/virtio_config.h).
//!
//! Every op receives the group that [`super::ConfigOps::get_vq_map`] handed out for the queue;
//! a queue without one (a NULL `virtio_map`) gets `DMA_MAPPING_ERROR`, NULL or nothing from
//! this table without reaching the implementation.
//!
//! **All of these ops may be called in atomic context**, including softirq (a network driver's
//! NAPI refill, its transmit under the queue lock) and with interrupts disabled: an
//! implementation never sleeps, allocates with `GFP_ATOMIC` only (or the `gfp` it is given),
//! takes only spinlocks that are taken with interrupts or bottom halves disabled everywhere,
//! and touches no memory that can fault.

use crate::ffi;
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    dma::DataDirection,
    page::BorrowedPage,
    prelude::*, //
};

/// `DMA_MAPPING_ERROR`: the address a failed mapping returns.
pub(crate) const DMA_MAPPING_ERROR: u64 = !ffi::DMA_MAPPING_ERROR_COMPLEMENT;

/// The mapping operations of a device's virtqueue groups. Every op may run in atomic context
/// (see the module documentation).
pub(crate) trait MapOps: Sized {
    /// The mapping context of one virtqueue group.
    type Group: Send + Sync;

    /// `map_page`: makes `size` bytes of `page` from `offset` visible to the device; returns
    /// the device address. Called in atomic context.
    fn map_page(
        group: &Self::Group,
        page: &BorrowedPage<'_>,
        offset: usize,
        size: usize,
        dir: DataDirection,
        attrs: usize,
    ) -> Result<u64>;

    /// `unmap_page`: ends a mapping of [`MapOps::map_page`]. Called in atomic context.
    fn unmap_page(group: &Self::Group, addr: u64, size: usize, dir: DataDirection, attrs: usize);

    /// `sync_single_for_cpu`. Called in atomic context.
    fn sync_for_cpu(group: &Self::Group, addr: u64, size: usize, dir: DataDirection);

    /// `sync_single_for_device`. Called in atomic context.
    fn sync_for_device(group: &Self::Group, addr: u64, size: usize, dir: DataDirection);

    /// `alloc`: a coherent buffer of `size` bytes; its kernel address and device address.
    /// May be called in atomic context: allocate with `gfp`.
    fn alloc(group: &Self::Group, size: usize, gfp: bindings::gfp_t) -> Result<(NonNull<u8>, u64)>;

    /// `free`: frees a buffer of [`MapOps::alloc`]. Called in atomic context.
    fn free(group: &Self::Group, size: usize, vaddr: NonNull<u8>, addr: u64, attrs: usize);

    /// `need_sync`. Called in atomic context.
    fn need_sync(group: &Self::Group, addr: u64) -> bool;

    /// `max_mapping_size`. Called in atomic context.
    fn max_mapping_size(group: &Self::Group) -> usize;
}

/// The `struct virtio_map_ops` of `M`.
pub(crate) struct MapOpsVTable<M: MapOps>(PhantomData<M>);

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

impl<M: MapOps> MapOpsVTable<M> {
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

    /// The group of `map`, if any.
    ///
    /// # Safety
    ///
    /// `map` was returned by the `get_vq_map` op of a live device whose map ops are this table:
    /// NULL, or a `&M::Group` valid until the device is freed.
    unsafe fn group<'a>(map: ffi::virtio_map) -> Option<&'a M::Group> {
        // SAFETY: Both union members are pointers; `group` is the one `get_vq_map` set.
        let group = unsafe { map.group };
        // SAFETY: NULL or a valid `M::Group` (caller).
        unsafe { group.cast::<M::Group>().as_ref() }
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
        let Some(group) = (unsafe { Self::group(map) }) else {
            return DMA_MAPPING_ERROR;
        };
        let Some(page) = NonNull::new(page) else {
            return DMA_MAPPING_ERROR;
        };
        // SAFETY: The page is valid for the call (virtio core).
        let page = unsafe { BorrowedPage::from_raw(page) };
        M::map_page(group, &page, offset, size, direction(dir), attrs).unwrap_or(DMA_MAPPING_ERROR)
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
        if let Some(group) = unsafe { Self::group(map) } {
            M::unmap_page(group, handle, size, direction(dir), attrs)
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
        if let Some(group) = unsafe { Self::group(map) } {
            M::sync_for_cpu(group, handle, size, direction(dir))
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
        if let Some(group) = unsafe { Self::group(map) } {
            M::sync_for_device(group, handle, size, direction(dir))
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
        // SAFETY: See above.
        let Some(group) = (unsafe { Self::group(map) }) else {
            return core::ptr::null_mut();
        };
        match M::alloc(group, size, gfp) {
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
        attrs: c_ulong,
    ) {
        // SAFETY: See above.
        if let (Some(group), Some(vaddr)) = (unsafe { Self::group(map) }, NonNull::new(vaddr)) {
            M::free(group, size, vaddr.cast(), handle, attrs)
        }
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn need_sync(map: ffi::virtio_map, handle: bindings::dma_addr_t) -> bool {
        // SAFETY: See above.
        unsafe { Self::group(map) }.is_some_and(|group| M::need_sync(group, handle))
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
        unsafe { Self::group(map) }.map_or(0, M::max_mapping_size)
    }
}
