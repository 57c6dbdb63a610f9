// SPDX-License-Identifier: GPL-2.0

//! The memory a streaming DMA mapping lends: what a `dma_map_ops`/`virtio_map_ops`
//! implementation receives in `map_page` and may use until `unmap_page`. 7.3's `kernel::dma`
//! covers coherent allocations only; upstream this would sit beside them.
//!
//! C header: [`include/linux/dma-mapping.h`](srctree/include/linux/dma-mapping.h).

use super::pages::page_address;
use core::ptr::NonNull;
use kernel::bindings;

/// Kernel memory lent for one streaming DMA mapping (`map_page`'s page, offset and size),
/// valid until the matching `unmap_page`.
///
/// # Invariants
///
/// `va..va + len` is kernel memory (direct map) that stays valid until the mapping it was
/// lent for is unmapped.
pub(crate) struct DmaRegion {
    va: usize,
    len: usize,
}

impl DmaRegion {
    /// The memory of a `map_page` call.
    ///
    /// # Safety
    ///
    /// `page`, `offset` and `len` are the arguments of a streaming DMA `map_page` call: the
    /// physically contiguous memory from `offset` in `page` stays valid until the matching
    /// `unmap_page`.
    pub(crate) unsafe fn from_map_page(
        page: NonNull<bindings::page>,
        offset: usize,
        len: usize,
    ) -> Self {
        // SAFETY: The page is allocated (the safety requirements); physically contiguous memory
        // is contiguous in the direct map.
        let va = unsafe { page_address(page.as_ptr()) } as usize;
        // INVARIANT: Per the safety requirements.
        Self {
            va: va + offset,
            len,
        }
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The kernel address of the first byte.
    pub(crate) fn va(&self) -> usize {
        self.va
    }
}
