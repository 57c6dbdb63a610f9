// SPDX-License-Identifier: GPL-2.0

//! The IOVA allocator (`struct iova_domain`) of `drivers/iommu/iova.c`.
//!
//! C header: [`include/linux/iova.h`](srctree/include/linux/iova.h).

use crate::ffi;
use kernel::{
    error::to_result,
    prelude::*,
    types::Opaque, //
};

/// The IOVA caches (`iova_cache_get()`): held by a module for as long as it may create
/// [`IovaDomain`]s.
///
/// # Invariants
///
/// Owns one reference on the caches.
pub(crate) struct IovaCache(());

impl IovaCache {
    /// Takes a reference on the caches.
    pub(crate) fn get() -> Result<Self> {
        // SAFETY: Always safe to call in process context.
        to_result(unsafe { ffi::iova_cache_get() })?;
        // INVARIANT: Taken just above.
        Ok(Self(()))
    }
}

impl Drop for IovaCache {
    fn drop(&mut self) {
        // SAFETY: We own a reference (type invariant).
        unsafe { ffi::iova_cache_put() };
    }
}

/// An IOVA allocator: ranges of `granule`-sized units from `start_pfn` on. Allocation and
/// freeing may be called in atomic context (the allocator's locks disable interrupts and it
/// allocates with `GFP_ATOMIC`).
///
/// # Invariants
///
/// `inner` was initialised with `init_iova_domain()` and `iova_domain_init_rcaches()`, and is
/// released with `put_iova_domain()` exactly once, in `drop`. `shift` is `log2(granule)`.
#[pin_data(PinnedDrop)]
pub(crate) struct IovaDomain {
    #[pin]
    inner: Opaque<ffi::iova_domain>,
    shift: u32,
}

// SAFETY: The allocator's functions may be called from any thread and synchronise internally.
unsafe impl Send for IovaDomain {}
// SAFETY: As above.
unsafe impl Sync for IovaDomain {}

impl IovaDomain {
    /// An allocator of `granule`-byte units (a power of two, at most `PAGE_SIZE`) handing out
    /// unit numbers from `start_pfn` on. Callers must hold an [`IovaCache`].
    pub(crate) fn new(
        granule: usize,
        start_pfn: usize,
        _cache: &IovaCache,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(move |slot: *mut ffi::iova_domain| {
                // SAFETY: `slot` is valid for writes; `granule` is a power of two.
                unsafe { ffi::init_iova_domain(slot, granule, start_pfn) };
                // SAFETY: Initialised just above. On failure it frees what it allocated and
                // the domain needs no `put_iova_domain` (nothing else was allocated).
                // INVARIANT: Initialised on success.
                to_result(unsafe { ffi::iova_domain_init_rcaches(slot) })
            }),
            shift: granule.trailing_zeros(),
        })
    }

    /// The number of units `size` bytes take (`iova_align(size) >> shift`).
    fn units(&self, size: usize) -> usize {
        size.div_ceil(1 << self.shift)
    }

    /// Allocates `size` bytes (rounded up to units; small sizes are size-aligned) ending at or
    /// below `limit` (an address); its first address, or `None`. May be called in atomic
    /// context.
    pub(crate) fn alloc(&self, size: usize, limit: u64) -> Option<u64> {
        let units = self.units(size);
        if units == 0 {
            return None;
        }
        // CAST: `limit >> shift` fits in `unsigned long` on 64-bit.
        let limit_pfn = (limit >> self.shift) as usize;
        // SAFETY: Initialised (type invariant); `alloc_iova_fast` may run in atomic context.
        let pfn = unsafe { ffi::alloc_iova_fast(self.inner.get(), units, limit_pfn, true) };
        // Unit 0 is never handed out (`start_pfn` >= 1): 0 is the failure value.
        (pfn != 0).then(|| (pfn as u64) << self.shift)
    }

    /// Frees a range of [`IovaDomain::alloc`] (the same `size`). May be called in atomic
    /// context.
    pub(crate) fn free(&self, addr: u64, size: usize) {
        // CAST: An address this allocator handed out, shifted, fits in `unsigned long`.
        let pfn = (addr >> self.shift) as usize;
        // SAFETY: Initialised (type invariant); the range was allocated here.
        unsafe { ffi::free_iova_fast(self.inner.get(), pfn, self.units(size)) };
    }
}

#[pinned_drop]
impl PinnedDrop for IovaDomain {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Initialised (type invariant); released once, here.
        unsafe { ffi::put_iova_domain(self.inner.get()) };
    }
}
