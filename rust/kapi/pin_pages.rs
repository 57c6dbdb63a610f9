// SPDX-License-Identifier: GPL-2.0

//! User pages pinned for the long term (`pin_user_pages(FOLL_LONGTERM | FOLL_WRITE)`), charged
//! to the process's `RLIMIT_MEMLOCK` through `mm->pinned_vm`, as drivers that let userspace
//! supply DMA memory do.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/sched/signal.h`](srctree/include/linux/sched/signal.h).
//!
//! `mm_struct::pinned_vm` sits in the anonymous struct bindgen calls `__bindgen_anon_1` (the
//! part of `mm_struct` that structure-layout randomisation may shuffle): a kernel configuration
//! that moves it makes this fail to compile rather than touch another field.

use core::ptr::NonNull;
use kernel::{
    alloc::KVVec,
    bindings, current,
    mm::Mm,
    page::{
        BorrowedPage,
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::aref::ARef,
};

/// Pages of the current process pinned from `uaddr` on.
///
/// # Invariants
///
/// Every entry of `pages` is a page pinned by `pin_user_pages` for this object, charged to
/// `mm->pinned_vm` (the `pages.len()` pages are added to it); `mm` holds an `mmgrab`.
pub(crate) struct PinnedUserPages {
    pages: KVVec<NonNull<bindings::page>>,
    mm: ARef<Mm>,
}

// SAFETY: Pinned pages may be used and unpinned from any thread.
unsafe impl Send for PinnedUserPages {}
// SAFETY: `&PinnedUserPages` only hands out borrowed pages.
unsafe impl Sync for PinnedUserPages {}

impl PinnedUserPages {
    /// Pins `npages` pages from the page-aligned address `uaddr` of the current process,
    /// writable. Process context (sleeps).
    ///
    /// # Errors
    ///
    /// `EINVAL` (unaligned address, no pages, a kernel thread), `ENOMEM` (over `RLIMIT_MEMLOCK`,
    /// or fewer pages pinned than asked), or the error of `pin_user_pages`.
    pub(crate) fn pin(uaddr: u64, npages: usize) -> Result<Self> {
        if uaddr % PAGE_SIZE as u64 != 0 || npages == 0 {
            return Err(EINVAL);
        }
        let uaddr = usize::try_from(uaddr).map_err(|_| EINVAL)?;
        let mut raw: KVVec<*mut bindings::page> = KVVec::with_capacity(npages, GFP_KERNEL)?;
        raw.resize(npages, core::ptr::null_mut(), GFP_KERNEL)?;
        let task = current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let mm_raw = mm.as_raw();
        let pinned = {
            let _guard = mm.mmap_read_lock();
            // SAFETY: `current->signal` is valid while the task runs; `rlim_cur` is read once,
            // as `rlimit()` does (`READ_ONCE`).
            let limit = unsafe {
                core::ptr::read_volatile(
                    &raw const (*(*task.as_ptr()).signal).rlim[bindings::RLIMIT_MEMLOCK as usize]
                        .rlim_cur,
                )
            } as usize
                >> PAGE_SHIFT;
            // SAFETY: `mm` is the live mm of the current task.
            let already =
                unsafe { bindings::atomic64_read(&raw const (*mm_raw).__bindgen_anon_1.pinned_vm) };
            let already = usize::try_from(already).unwrap_or(usize::MAX);
            if npages.checked_add(already).is_none_or(|n| n > limit) {
                return Err(ENOMEM);
            }
            // CAST: `npages` fits in `long` (it is backed by a kvmalloc'ed array).
            // SAFETY: The mmap lock is held for reading; `raw` has room for `npages` pointers.
            unsafe {
                bindings::pin_user_pages(
                    uaddr,
                    npages as c_ulong,
                    bindings::FOLL_LONGTERM | bindings::FOLL_WRITE,
                    raw.as_mut_ptr(),
                )
            }
        };
        // CAST: At most `npages`, or a negative errno.
        if pinned != npages as c_long {
            if pinned > 0 {
                // SAFETY: The first `pinned` entries were pinned just above.
                unsafe { bindings::unpin_user_pages(raw.as_mut_ptr(), pinned as c_ulong) };
            }
            return Err(if pinned < 0 {
                // CAST: A negative errno fits in `int`.
                Error::from_errno(pinned as c_int)
            } else {
                ENOMEM
            });
        }
        let mut pages = KVVec::with_capacity(npages, GFP_KERNEL).inspect_err(|_| {
            // SAFETY: All `npages` entries were pinned above.
            unsafe { bindings::unpin_user_pages(raw.as_mut_ptr(), npages as c_ulong) };
        })?;
        for p in raw.iter() {
            // `pin_user_pages` filled every entry: none is NULL.
            if let Some(p) = NonNull::new(*p) {
                // Cannot fail: the capacity is `npages`.
                let _ = pages.push_within_capacity(p);
            }
        }
        // SAFETY: `mm` is the live mm of the current task.
        unsafe {
            bindings::atomic64_add(npages as i64, &raw mut (*mm_raw).__bindgen_anon_1.pinned_vm)
        };
        // INVARIANT: Pinned and charged; `ARef::from` takes an `mmgrab`.
        Ok(Self {
            pages,
            mm: ARef::from(&**mm),
        })
    }

    /// The number of pages.
    pub(crate) fn len(&self) -> usize {
        self.pages.len()
    }

    /// Page `i`, valid while `self` is.
    pub(crate) fn page(&self, i: usize) -> Option<BorrowedPage<'_>> {
        // SAFETY: A page pinned by `self` (type invariant), valid until unpinned in `drop`.
        self.pages
            .get(i)
            .map(|p| unsafe { BorrowedPage::from_raw(*p) })
    }
}

impl Drop for PinnedUserPages {
    fn drop(&mut self) {
        let n = self.pages.len();
        // SAFETY: The pages were pinned by `self` (type invariant) and are unpinned once, here,
        // marked dirty (the device wrote to them). `NonNull<page>` has the layout of a pointer.
        unsafe {
            bindings::unpin_user_pages_dirty_lock(
                self.pages.as_mut_ptr().cast(),
                n as c_ulong,
                true,
            )
        };
        // SAFETY: `mm` is held by `mmgrab`; the pages were charged to it (type invariant).
        unsafe {
            bindings::atomic64_sub(
                n as i64,
                &raw mut (*self.mm.as_raw()).__bindgen_anon_1.pinned_vm,
            )
        };
    }
}
