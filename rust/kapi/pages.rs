// SPDX-License-Identifier: GPL-2.0

//! Physically contiguous kernel memory of whole pages (`alloc_pages_exact()` in C), each page
//! with its own reference count, so that single pages can be mapped to userspace.
//!
//! C header: [`include/linux/gfp.h`](srctree/include/linux/gfp.h).

use core::ptr::NonNull;
use kernel::{
    bindings,
    page::{
        BorrowedPage,
        PAGE_SIZE, //
    },
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
    },
};

// The direct map gives every page of this allocation a permanent, contiguous kernel address;
// with high memory it would not.
#[cfg(CONFIG_HIGHMEM)]
compile_error!("kapi::pages needs a kernel without CONFIG_HIGHMEM");
// With it `kmap_local_page` maps a page temporarily even where a direct-map address exists.
#[cfg(CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP)]
compile_error!("kapi::pages needs a kernel without CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP");

/// The permanent kernel address of `page` (`page_address()`, which has no binding: it is a
/// macro around an inline function). Without high memory every page is in the direct map and
/// `kmap_local_page` returns that address and maps nothing, so it needs no `kunmap_local`, may
/// be used on any CPU and stays valid for as long as the page is allocated.
///
/// # Safety
///
/// `page` is a valid, allocated page.
pub(crate) unsafe fn page_address(page: *mut bindings::page) -> *mut u8 {
    // SAFETY: `page` is valid (the safety requirements); without high memory this is
    // `lowmem_page_address` (the compile-time checks above).
    unsafe { bindings::kmap_local_page(page) }.cast()
}

/// `npages` zeroed pages, physically contiguous, with a contiguous kernel address.
///
/// # Invariants
///
/// `head` is the first of `npages` pages allocated together (`alloc_pages` then `split_page`),
/// each with its own reference owned by this object; `vaddr` is their kernel address.
pub(crate) struct ContigPages {
    head: NonNull<bindings::page>,
    npages: usize,
    vaddr: NonNull<u8>,
}

// SAFETY: The pages may be used and freed from any thread.
unsafe impl Send for ContigPages {}
// SAFETY: `&ContigPages` only hands out addresses and borrowed pages.
unsafe impl Sync for ContigPages {}

impl ContigPages {
    /// Allocates `size` bytes, rounded up to whole pages, zeroed, with `gfp` (which may be
    /// atomic: this then runs in atomic context).
    pub(crate) fn alloc(size: usize, gfp: bindings::gfp_t) -> Result<Self> {
        let npages = size.div_ceil(PAGE_SIZE);
        if npages == 0 {
            return Err(EINVAL);
        }
        // As `alloc_pages_exact`: beyond the buddy allocator's largest block is `ENOMEM`.
        let order = npages
            .checked_next_power_of_two()
            .map(|n| n.trailing_zeros())
            .filter(|&o| o <= bindings::MAX_PAGE_ORDER)
            .ok_or(ENOMEM)?;
        // As `alloc_pages_exact`, which strips them: `split_page` needs a block that is not
        // compound, and the pages need a kernel address (no high memory).
        let gfp = gfp & !((1 << bindings::___GFP_COMP_BIT) | bindings::__GFP_HIGHMEM);
        // SAFETY: Any flags and an order up to `MAX_PAGE_ORDER` are accepted; NULL on failure.
        let head = unsafe { bindings::alloc_pages(gfp | bindings::__GFP_ZERO, order) };
        let head = NonNull::new(head).ok_or(ENOMEM)?;
        // SAFETY: `head` is a non-compound block of order `order` we own: afterwards each of
        // its pages has a reference count of its own.
        unsafe { bindings::split_page(head.as_ptr(), order) };
        for i in npages..(1 << order) {
            // SAFETY: Page `i` of the split block, which we own and do not keep.
            unsafe { bindings::__free_pages(head.as_ptr().add(i), 0) };
        }
        // SAFETY: `head` is allocated; its address is valid until the page is freed.
        let vaddr = unsafe { page_address(head.as_ptr()) };
        // INVARIANT: `npages` pages of one block, each with its reference.
        Ok(Self {
            head,
            npages,
            vaddr: NonNull::new(vaddr.cast()).ok_or(ENOMEM)?,
        })
    }

    /// The kernel address of the first byte.
    pub(crate) fn vaddr(&self) -> NonNull<u8> {
        self.vaddr
    }

    /// The size in bytes (whole pages).
    pub(crate) fn len(&self) -> usize {
        self.npages * PAGE_SIZE
    }

    /// Reads the `T` at byte offset `off`, `None` if it is not inside the pages or not
    /// aligned for `T`. A single volatile access: the memory may be shared with a device or a
    /// userspace mapping that writes it concurrently (as `dma::CoherentAllocation` reads).
    /// Any context.
    pub(crate) fn read<T: FromBytes + Copy>(&self, off: usize) -> Option<T> {
        let p = self.at::<T>(off)?;
        // SAFETY: `p` is inside the pages (checked by `at`), aligned, and valid for reads while
        // `self` holds them; any bit pattern is a valid `T` (`FromBytes`).
        Some(unsafe { p.as_ptr().read_volatile() })
    }

    /// Writes `v` at byte offset `off`, `None` if it is not inside the pages or not aligned
    /// for `T`; a single volatile access, as [`ContigPages::read`]. Any context.
    pub(crate) fn write<T: AsBytes + Copy>(&self, off: usize, v: T) -> Option<()> {
        let p = self.at::<T>(off)?;
        // SAFETY: `p` is inside the pages (checked by `at`), aligned, and valid for writes
        // while `self` holds them (the pages are shared memory: nothing holds a Rust reference
        // to them).
        unsafe { p.as_ptr().write_volatile(v) };
        Some(())
    }

    /// The address of a `T` at byte offset `off`, if it is inside the pages and aligned.
    fn at<T>(&self, off: usize) -> Option<NonNull<T>> {
        let end = off.checked_add(core::mem::size_of::<T>())?;
        if end > self.len() || off % core::mem::align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: `off < self.len()`: inside the allocation that starts at `vaddr`.
        Some(unsafe { self.vaddr.add(off) }.cast())
    }

    /// Page `i`, if `i` is below the number of pages.
    pub(crate) fn page(&self, i: usize) -> Option<BorrowedPage<'_>> {
        if i >= self.npages {
            return None;
        }
        // SAFETY: Page `i` of the block (in range), valid while `self` holds it: the struct
        // pages of one buddy block are contiguous.
        Some(unsafe { BorrowedPage::from_raw(NonNull::new_unchecked(self.head.as_ptr().add(i))) })
    }
}

impl Drop for ContigPages {
    fn drop(&mut self) {
        for i in 0..self.npages {
            // SAFETY: We own one reference on each page (type invariant); a page still mapped
            // to userspace lives on until its last reference is gone.
            unsafe { bindings::__free_pages(self.head.as_ptr().add(i), 0) };
        }
    }
}
