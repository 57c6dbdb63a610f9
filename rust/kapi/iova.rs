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

/// Whether an [`IovaDomain`] keeps per-CPU caches of freed ranges (`struct iova_rcache`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Caching {
    /// Per-CPU caches (`iova_domain_init_rcaches()`): allocation and freeing mostly stay off
    /// the allocator's tree lock. Registering the caches takes the CPU hotplug lock
    /// (`cpus_read_lock()`), which the kernel takes before locks that are taken before the
    /// `mmap_lock` (`cpuhp_state_mutex`, then `kernfs_rwsem` on sysfs creation): such a domain
    /// must not be created with the `mmap_lock` held.
    PerCpu,
    /// No caches: every allocation and free takes the tree lock. Creating the domain takes no
    /// lock, so it may be created with the `mmap_lock` held.
    None,
}

/// An IOVA allocator: ranges of `granule`-sized units from `start_pfn` on. Allocation and
/// freeing may be called in atomic context (the allocator's locks disable interrupts and it
/// allocates with `GFP_ATOMIC`).
///
/// # Invariants
///
/// `inner` was initialised with `init_iova_domain()`, and with `iova_domain_init_rcaches()`
/// if `caching` is [`Caching::PerCpu`], and is released with `put_iova_domain()` exactly once,
/// in `drop`. `shift` is `log2(granule)`.
#[pin_data(PinnedDrop)]
pub(crate) struct IovaDomain {
    #[pin]
    inner: Opaque<ffi::iova_domain>,
    shift: u32,
    caching: Caching,
}

// SAFETY: The allocator's functions may be called from any thread and synchronise internally.
unsafe impl Send for IovaDomain {}
// SAFETY: As above.
unsafe impl Sync for IovaDomain {}

impl IovaDomain {
    /// An allocator of `granule`-byte units (a power of two, at most `PAGE_SIZE`) handing out
    /// unit numbers from `start_pfn` on, with or without per-CPU caches. Callers must hold an
    /// [`IovaCache`]. Process context; with [`Caching::PerCpu`], not with the `mmap_lock`
    /// held.
    pub(crate) fn new(
        granule: usize,
        start_pfn: usize,
        caching: Caching,
        _cache: &IovaCache,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(move |slot: *mut ffi::iova_domain| {
                // `init_iova_domain()` leaves `rcaches` as it finds it (C callers allocate the
                // domain zeroed) and `put_iova_domain()` frees the caches if it is not NULL:
                // zeroed first, as C's callers have it.
                // SAFETY: `slot` is valid for writes of one `iova_domain`, for which all zeroes
                // is a valid (not yet initialised) value; `granule` is a power of two.
                unsafe {
                    core::ptr::write_bytes(slot, 0, 1);
                    ffi::init_iova_domain(slot, granule, start_pfn)
                };
                if caching == Caching::None {
                    // INVARIANT: Initialised, without caches.
                    return Ok(());
                }
                // SAFETY: Initialised just above. On failure it frees what it allocated and
                // the domain needs no `put_iova_domain` (nothing else was allocated).
                // INVARIANT: Initialised on success.
                to_result(unsafe { ffi::iova_domain_init_rcaches(slot) })
            }),
            shift: granule.trailing_zeros(),
            caching,
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
        let pfn = match self.caching {
            // SAFETY: Initialised with caches (type invariant); `alloc_iova_fast` may run in
            // atomic context.
            Caching::PerCpu => unsafe {
                ffi::alloc_iova_fast(self.inner.get(), units, limit_pfn, true)
            },
            Caching::None => {
                // SAFETY: Initialised (type invariant); `alloc_iova` may run in atomic
                // context (`GFP_ATOMIC`, the tree lock with interrupts disabled).
                let iova = unsafe { ffi::alloc_iova(self.inner.get(), units, limit_pfn, true) };
                if iova.is_null() {
                    return None;
                }
                // SAFETY: A range `alloc_iova` just returned, owned by the tree until freed.
                unsafe { (*iova).pfn_lo }
            }
        };
        // Unit 0 is never handed out (`start_pfn` >= 1): 0 is the failure value.
        (pfn != 0).then(|| (pfn as u64) << self.shift)
    }

    /// Frees a range of [`IovaDomain::alloc`] (the same `size`). May be called in atomic
    /// context.
    pub(crate) fn free(&self, addr: u64, size: usize) {
        // CAST: An address this allocator handed out, shifted, fits in `unsigned long`.
        let pfn = (addr >> self.shift) as usize;
        match self.caching {
            // SAFETY: Initialised with caches (type invariant); the range was allocated here.
            Caching::PerCpu => unsafe {
                ffi::free_iova_fast(self.inner.get(), pfn, self.units(size))
            },
            // SAFETY: Initialised (type invariant); the range was allocated here, so it is in
            // the tree (`free_iova` finds it by its first unit).
            Caching::None => unsafe { ffi::free_iova(self.inner.get(), pfn) },
        }
    }
}

#[pinned_drop]
impl PinnedDrop for IovaDomain {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Initialised (type invariant); released once, here.
        unsafe { ffi::put_iova_domain(self.inner.get()) };
    }
}

#[kunit_tests(vduse_rs_kapi_iova)]
mod tests {
    use super::*;
    use kernel::page::PAGE_SIZE;

    /// Units 1 to 16 (unit 0 is never handed out): two-unit ranges come size-aligned and below
    /// the limit until seven fill every aligned pair; a freed one is handed out again; the two
    /// single units left over (1 and 16) go one by one; then nothing is left.
    fn fill_free_refill(caching: Caching) -> Result {
        let cache = IovaCache::get()?;
        let d = KBox::pin_init(IovaDomain::new(PAGE_SIZE, 1, caching, &cache), GFP_KERNEL)?;
        let page = PAGE_SIZE as u64;
        let limit = 17 * page - 1;
        let mut pairs = KVec::new();
        while let Some(a) = d.alloc(2 * PAGE_SIZE, limit) {
            assert_eq!(a % (2 * page), 0);
            assert!(a >= 2 * page && a + 2 * page - 1 <= limit);
            assert!(!pairs.contains(&a));
            pairs.push(a, GFP_KERNEL)?;
        }
        assert_eq!(pairs.len(), 7);
        d.free(pairs[3], 2 * PAGE_SIZE);
        assert_eq!(d.alloc(2 * PAGE_SIZE, limit), Some(pairs[3]));
        let mut singles = [d.alloc(PAGE_SIZE, limit), d.alloc(PAGE_SIZE, limit)];
        singles.sort_unstable();
        assert_eq!(singles, [Some(page), Some(16 * page)]);
        assert_eq!(d.alloc(PAGE_SIZE, limit), None);
        for a in pairs.iter() {
            d.free(*a, 2 * PAGE_SIZE);
        }
        for a in singles.iter().flatten() {
            d.free(*a, PAGE_SIZE);
        }
        Ok(())
    }

    #[test]
    fn per_cpu_caches() -> Result {
        fill_free_refill(Caching::PerCpu)
    }

    /// Without caches (zeroed first: `put_iova_domain` must see no caches to free).
    #[test]
    fn no_caches() -> Result {
        fill_free_refill(Caching::None)
    }
}
