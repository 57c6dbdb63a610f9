// SPDX-License-Identifier: GPL-2.0

//! A bounce table: a software IOTLB that serves streaming DMA mappings by copying between the
//! memory the DMA API lends (`map_page`) and bounce pages of its own, which a device (or a
//! userspace daemon, through an `mmap`) reaches at addresses `0..size`.
//!
//! C version: the bounce half of `drivers/vdpa/vdpa_user/iova_domain.c`.
//!
//! # Who owns which page when
//!
//! * The bounce pages belong to the table, from their allocation (on demand, by the first
//!   [`BounceTable::map`] that touches them) until the table is dropped; userspace mappings of
//!   a page take references of their own, so a page outlives the table while mapped.
//! * A slot (4 KiB of bounce space, whatever the page size) belongs to one streaming mapping
//!   between [`BounceTable::map`] and [`BounceTable::unmap`] (the IOVA allocator hands each
//!   range to one mapping); only that mapping's calls read or write its slot.
//! * The lent memory belongs to the caller of the DMA API; the table reads and writes it only
//!   between `map` and `unmap` (the DMA API's contract, which [`DmaRegion`] carries).
//! * User pages ([`BounceTable::register_user`]) replace the bounce pages as the bounce
//!   buffer while registered: the table holds them (pinned) and copies the contents of the
//!   slots in use from the kernel pages to them on registration, and back on unregistration,
//!   so a mapping in flight never sees a change.
//!
//! Copies run concurrently with each other (a copy only touches the slots of its own
//! mapping); switching between kernel and user pages excludes them, as C's `bounce_lock` does
//! (readers: the copies; writer: the switch).
//!
//! To avoid deadlocks, locks are taken in the order:
//!
//! 1. [`BounceTable::user`] (an `rwlock_t`, interrupts disabled on both sides: copies take it
//!    for reading from every map op, even in hard-irq or softirq context; a switch holds it for
//!    writing, so it can neither be interrupted nor preempted by a copy that would then spin).
//!
//! It is a leaf: nothing else is taken under it.

use super::{
    dma::DmaRegion,
    pages::page_address,
    pin_pages::PinnedUserPages,
    rwlock::{
        new_rwlock_irq,
        RwLockIrq, //
    },
};
use core::ptr::{
    null_mut,
    NonNull, //
};
use kernel::{
    alloc::KVVec,
    bindings,
    page::{
        BorrowedPage,
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::atomic::{
        Acquire,
        Atomic,
        Relaxed,
        Release, //
    },
};

#[cfg(CONFIG_HIGHMEM)]
compile_error!("kapi::bounce needs a kernel without CONFIG_HIGHMEM");

/// The bounce granularity: 4 KiB, whatever `PAGE_SIZE` is.
pub(crate) const SLOT_SHIFT: u32 = 12;
/// The size of a slot.
pub(crate) const SLOT_SIZE: usize = 1 << SLOT_SHIFT;

/// Which way a [`BounceTable::copy`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyDir {
    /// From the lent memory into the bounce pages (the device is to read).
    ToDevice,
    /// From the bounce pages into the lent memory (the device wrote).
    FromDevice,
}

/// The bounce pages and slots of `size` bytes of bounce space. Every method may run in atomic
/// context (it never sleeps and allocates with `GFP_ATOMIC`).
///
/// # Invariants
///
/// * `pages[i]` is NULL or a page (order 0) the table owns one reference on, never replaced
///   once set.
/// * `orig[s]` is 0 or the kernel address the start of slot `s` stands for in the
///   [`DmaRegion`] of the mapping that owns the slot (valid until that mapping's `unmap`).
/// * While `user` holds pages (one per entry of `pages`), copies use them instead of `pages`;
///   it changes only under the write lock, when no copy is under way.
#[pin_data(PinnedDrop)]
pub(crate) struct BounceTable {
    size: usize,
    pages: KVVec<Atomic<*mut bindings::page>>,
    orig: KVVec<Atomic<usize>>,
    /// The registered user pages, if any: read-locked by every copy, write-locked by a switch.
    #[pin]
    user: RwLockIrq<Option<PinnedUserPages>>,
}

// SAFETY: The pages may be used and freed from any thread; the slots are atomics.
unsafe impl Send for BounceTable {}
// SAFETY: All `&self` methods are safe to call concurrently (atomics; slots owned by mappings).
unsafe impl Sync for BounceTable {}

impl BounceTable {
    /// A table of `size` bytes (a multiple of `PAGE_SIZE`), without pages yet. Process context.
    pub(crate) fn new(size: usize) -> Result<impl PinInit<Self>> {
        if size == 0 || size % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        let npages = size >> PAGE_SHIFT;
        let nslots = size >> SLOT_SHIFT;
        let mut pages = KVVec::with_capacity(npages, GFP_KERNEL)?;
        for _ in 0..npages {
            pages.push(Atomic::new(null_mut()), GFP_KERNEL)?;
        }
        let mut orig = KVVec::with_capacity(nslots, GFP_KERNEL)?;
        for _ in 0..nslots {
            orig.push(Atomic::new(0), GFP_KERNEL)?;
        }
        // INVARIANT: No page, no mapped slot, no user pages.
        Ok(pin_init!(Self {
            size,
            pages,
            orig,
            user <- new_rwlock_irq!(None, "BounceTable::user"),
        }))
    }

    /// The page copies use for bounce page `i`: the user page while `user` holds pages.
    fn copy_page(&self, user: &Option<PinnedUserPages>, i: usize) -> *mut bindings::page {
        match user {
            Some(u) => u.page(i).map_or(null_mut(), |p| p.as_ptr()),
            None => self.pages.get(i).map_or(null_mut(), |p| p.load(Acquire)),
        }
    }

    /// Whether user pages are registered.
    pub(crate) fn has_user_pages(&self) -> bool {
        self.user.read().is_some()
    }

    /// Registers `user` (one page per page of the table) as the bounce buffer: the slots in
    /// use are copied into it first, with every copy excluded (interrupts off for one scan of
    /// the table). Process context.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the number of pages differs, `EEXIST` if pages are registered already; the
    /// pages are then returned, to be unpinned by the caller outside the lock.
    pub(crate) fn register_user(
        &self,
        user: PinnedUserPages,
    ) -> core::result::Result<(), (Error, PinnedUserPages)> {
        if user.len() != self.pages.len() {
            return Err((EINVAL, user));
        }
        let mut guard = self.user.write();
        if guard.is_some() {
            drop(guard);
            return Err((EEXIST, user));
        }
        for i in 0..self.pages.len() {
            if let Some(dst) = user.page(i) {
                self.copy_in_use(i, self.pages[i].load(Acquire), dst.as_ptr());
            }
        }
        *guard = Some(user);
        Ok(())
    }

    /// Unregisters the user pages, copying the slots in use back into kernel pages; returns
    /// them, to be unpinned by dropping them outside the lock. Process context.
    pub(crate) fn unregister_user(&self) -> Option<PinnedUserPages> {
        let mut guard = self.user.write();
        let user = guard.take()?;
        for i in 0..self.pages.len() {
            if let Some(src) = user.page(i) {
                self.copy_in_use(i, src.as_ptr(), self.pages[i].load(Acquire));
            }
        }
        drop(guard);
        Some(user)
    }

    /// Copies page `i` from `src` to `dst` if one of its slots is in use (and both exist).
    fn copy_in_use(&self, i: usize, src: *mut bindings::page, dst: *mut bindings::page) {
        let per_page = PAGE_SIZE / SLOT_SIZE;
        let in_use = (i * per_page..(i + 1) * per_page)
            .any(|s| self.orig.get(s).is_some_and(|o| o.load(Acquire) != 0));
        if !in_use || src.is_null() || dst.is_null() {
            return;
        }
        // SAFETY: Both are pages of the table or of its registered user pages, alive here
        // (the caller holds the write lock, so no other switch can free them).
        unsafe {
            let s = page_address(src);
            let d = page_address(dst);
            core::ptr::copy_nonoverlapping(s, d, PAGE_SIZE);
        }
    }

    /// The size of the bounce space.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The slots of `iova..iova + len`, if inside the table.
    fn slots(&self, iova: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(iova).ok()?;
        let end = start.checked_add(len)?;
        if len == 0 || end > self.size {
            return None;
        }
        Some(start >> SLOT_SHIFT..end.div_ceil(SLOT_SIZE))
    }

    /// The page of bounce address `addr`, allocated if missing.
    fn page_or_alloc(&self, addr: usize) -> Result<NonNull<bindings::page>> {
        let slot = self.pages.get(addr >> PAGE_SHIFT).ok_or(EINVAL)?;
        if let Some(p) = NonNull::new(slot.load(Acquire)) {
            return Ok(p);
        }
        // SAFETY: Allocating one zeroed page; allowed in atomic context with `GFP_ATOMIC`.
        let new = unsafe { bindings::alloc_pages(bindings::GFP_ATOMIC | bindings::__GFP_ZERO, 0) };
        let new = NonNull::new(new).ok_or(ENOMEM)?;
        match slot.cmpxchg(null_mut(), new.as_ptr(), Release) {
            // INVARIANT: Set once; the table owns the reference.
            Ok(_) => Ok(new),
            Err(other) => {
                // Another mapping of the same page allocated it first.
                // SAFETY: `new` is ours and unused.
                unsafe { bindings::__free_pages(new.as_ptr(), 0) };
                NonNull::new(other).ok_or(ENOMEM)
            }
        }
    }

    /// Maps `region` at `iova` (a range the caller allocated for it alone): allocates the
    /// missing bounce pages and records the lent memory of every slot.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the range is outside the table, `ENOMEM`.
    pub(crate) fn map(&self, iova: u64, region: DmaRegion) -> Result {
        let slots = self.slots(iova, region.len()).ok_or(EINVAL)?;
        // The lent address that the start of the first slot stands for.
        let base = region.va().wrapping_sub((iova as usize) & (SLOT_SIZE - 1));
        for (k, s) in slots.enumerate() {
            self.page_or_alloc(s << SLOT_SHIFT)?;
            // INVARIANT: The slot belongs to this mapping, whose region is valid until unmap.
            self.orig[s].store(base.wrapping_add(k << SLOT_SHIFT), Release);
        }
        Ok(())
    }

    /// Ends the mapping at `iova..iova + len`: its slots stand for nothing any more.
    pub(crate) fn unmap(&self, iova: u64, len: usize) {
        if let Some(slots) = self.slots(iova, len) {
            for s in slots {
                // INVARIANT: The mapping is gone.
                self.orig[s].store(0, Relaxed);
            }
        }
    }

    /// Copies `iova..iova + len` of a mapping between its bounce pages and its lent memory.
    /// Addresses outside the table, or slots not mapped, are left alone.
    pub(crate) fn copy(&self, iova: u64, len: usize, dir: CopyDir) {
        let Some(slots) = self.slots(iova, len) else {
            return;
        };
        // CAST: Inside the table (checked above), so it fits in `usize`.
        let mut addr = iova as usize;
        let end = addr + len;
        let user = self.user.read();
        for s in slots {
            let orig = self.orig[s].load(Acquire);
            let page = self.copy_page(&user, addr >> PAGE_SHIFT);
            if orig == 0 || page.is_null() {
                break;
            }
            let in_slot = addr & (SLOT_SIZE - 1);
            let sz = (SLOT_SIZE - in_slot).min(end - addr);
            // SAFETY: A kernel page lives as long as the table (type invariant), a user page
            // as long as it is registered, which the read lock held here guarantees.
            let bounce = unsafe { page_address(page) };
            // SAFETY: `addr % PAGE_SIZE + sz <= PAGE_SIZE` (a slot never crosses a page).
            let bounce = unsafe { bounce.add(addr & (PAGE_SIZE - 1)) };
            let lent = (orig + in_slot) as *mut u8;
            // SAFETY: `lent..lent + sz` is inside the region of the mapping that owns the slot,
            // valid until its unmap (type invariant), which has not happened: the caller is
            // that mapping. The two ranges are distinct memory.
            unsafe {
                match dir {
                    CopyDir::ToDevice => core::ptr::copy_nonoverlapping(lent, bounce, sz),
                    CopyDir::FromDevice => core::ptr::copy_nonoverlapping(bounce, lent, sz),
                }
            }
            addr += sz;
        }
        drop(user);
    }

    /// Copies `data` into the bounce buffer at `iova`, as a device writes it: the driver finds
    /// it in its own memory when the mapping is unmapped or synced for the CPU. Only inside
    /// slots that belong to a mapping now (another mapping's slot, if the caller's notion of
    /// what is mapped is stale, is at worst bounce data the device could write anyway). Any
    /// context.
    ///
    /// # Errors
    ///
    /// `EFAULT` if a byte of the range is outside the table or in a slot no mapping owns.
    pub(crate) fn write(&self, iova: u64, data: &[u8]) -> Result {
        self.access(iova, data.len(), |bounce, k, sz| {
            // SAFETY: `bounce..bounce + sz` is inside one bounce page (`access`); the data is
            // ours; the two do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(data.as_ptr().add(k), bounce, sz) }
        })
    }

    /// Copies the bounce buffer at `iova` into `out`, as a device reads it (a mapping to the
    /// device was copied in when it was mapped); only inside slots a mapping owns now. Any
    /// context.
    ///
    /// # Errors
    ///
    /// `EFAULT`, as [`BounceTable::write`].
    pub(crate) fn read(&self, iova: u64, out: &mut [u8]) -> Result {
        let dst = out.as_mut_ptr();
        self.access(iova, out.len(), |bounce, k, sz| {
            // SAFETY: `bounce..bounce + sz` is inside one bounce page (`access`); `dst + k..
            // dst + k + sz` is inside `out`; the two do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(bounce, dst.add(k), sz) }
        })
    }

    /// Calls `f(bounce address, offset in the range, length)` for each piece of
    /// `iova..iova + len` within one slot, after checking that every slot of the range is
    /// owned by a mapping and has its page, under the read lock (so a switch to or from user
    /// pages waits).
    fn access(&self, iova: u64, len: usize, mut f: impl FnMut(*mut u8, usize, usize)) -> Result {
        let slots = self.slots(iova, len).ok_or(EFAULT)?;
        // CAST: Inside the table (checked above), so it fits in `usize`.
        let start = iova as usize;
        let user = self.user.read();
        for s in slots {
            let page = self.copy_page(&user, (s << SLOT_SHIFT) >> PAGE_SHIFT);
            if self.orig[s].load(Acquire) == 0 || page.is_null() {
                return Err(EFAULT);
            }
        }
        let mut addr = start;
        let end = start + len;
        while addr < end {
            let page = self.copy_page(&user, addr >> PAGE_SHIFT);
            let sz = (SLOT_SIZE - (addr & (SLOT_SIZE - 1))).min(end - addr);
            // SAFETY: `page` is non-null (checked above for every slot) and alive while the
            // read lock is held (a kernel page lives as long as the table, a user page as
            // long as it is registered); `addr % PAGE_SIZE + sz <= PAGE_SIZE`.
            let bounce = unsafe { page_address(page).add(addr & (PAGE_SIZE - 1)) };
            f(bounce, addr - start, sz);
            addr += sz;
        }
        drop(user);
        Ok(())
    }

    /// The kernel bounce page holding `addr`, if it was allocated and no user pages are
    /// registered (then the daemon has the buffer in its own memory); valid while `self` is.
    pub(crate) fn page(&self, addr: u64) -> Option<BorrowedPage<'_>> {
        if self.has_user_pages() {
            return None;
        }
        let i = usize::try_from(addr).ok()? >> PAGE_SHIFT;
        let p = NonNull::new(self.pages.get(i)?.load(Acquire))?;
        // SAFETY: A page of the table, never freed before the table (type invariant).
        Some(unsafe { BorrowedPage::from_raw(p) })
    }
}

#[pinned_drop]
impl PinnedDrop for BounceTable {
    fn drop(self: Pin<&mut Self>) {
        for p in self.pages.iter() {
            let p = p.load(Relaxed);
            if !p.is_null() {
                // SAFETY: The table owns one reference (type invariant); a page still mapped to
                // userspace lives on until its last reference is gone.
                unsafe { bindings::__free_pages(p, 0) };
            }
        }
    }
}

#[kunit_tests(vduse_rs_kapi_bounce)]
mod tests {
    use super::*;
    use crate::kapi::pages::ContigPages;

    /// `len` bytes of lent memory, from byte `off` of `mem`, as a `map_page` call lends them.
    fn region(mem: &ContigPages, off: usize, len: usize) -> Result<DmaRegion> {
        assert!(off + len <= mem.len());
        let head = mem.page(0).ok_or(EINVAL)?;
        let head = NonNull::new(head.as_ptr()).ok_or(EINVAL)?;
        // SAFETY: `mem` is physically contiguous and outlives every use of the region: each
        // test unmaps (or drops the table) before dropping `mem`.
        Ok(unsafe { DmaRegion::from_map_page(head, off, len) })
    }

    /// Lent memory of `pages` pages whose byte `i` is `f(i)`.
    fn lent(pages: usize, f: impl Fn(usize) -> u8) -> Result<ContigPages> {
        let mem = ContigPages::alloc(pages * PAGE_SIZE, bindings::GFP_KERNEL)?;
        for i in 0..mem.len() {
            mem.write(i, f(i)).ok_or(EINVAL)?;
        }
        Ok(mem)
    }

    fn table(pages: usize) -> Result<Pin<KBox<BounceTable>>> {
        KBox::pin_init(BounceTable::new(pages * PAGE_SIZE)?, GFP_KERNEL)
    }

    #[test]
    fn new_rejects_bad_sizes() {
        assert!(matches!(BounceTable::new(0), Err(e) if e == EINVAL));
        assert!(matches!(BounceTable::new(PAGE_SIZE + 1), Err(e) if e == EINVAL));
        assert!(BounceTable::new(PAGE_SIZE).is_ok());
    }

    /// A mapping of part of a slot: its bytes go to the bounce page at the same offset, and
    /// back; the bytes of the lent page around it are never written.
    #[test]
    fn partial_slot_both_directions() -> Result {
        let t = table(4)?;
        let mem = lent(1, |_| 0xaa)?;
        let iova = (PAGE_SIZE + 0x100) as u64;
        assert!(t.page(iova).is_none());
        t.map(iova, region(&mem, 0x100, 300)?)?;
        assert!(t.page(iova).is_some());
        // The bounce page starts zeroed: nothing was copied yet.
        let mut out = [0xffu8; 300];
        t.read(iova, &mut out)?;
        assert!(out.iter().all(|&b| b == 0));
        t.copy(iova, 300, CopyDir::ToDevice);
        t.read(iova, &mut out)?;
        assert!(out.iter().all(|&b| b == 0xaa));
        // The device writes three bytes; the driver syncs for the CPU.
        t.write(iova + 10, &[1, 2, 3])?;
        t.copy(iova, 300, CopyDir::FromDevice);
        assert_eq!(mem.read::<u8>(0x100 + 9), Some(0xaa));
        assert_eq!(mem.read::<u8>(0x100 + 10), Some(1));
        assert_eq!(mem.read::<u8>(0x100 + 12), Some(3));
        assert_eq!(mem.read::<u8>(0x100 + 13), Some(0xaa));
        // Only the region is copied back, not the rest of the slot.
        t.write(iova + 300, &[7])?;
        t.copy(iova, 300, CopyDir::FromDevice);
        assert_eq!(mem.read::<u8>(0x100 + 300), Some(0xaa));
        t.unmap(iova, 300);
        assert_eq!(t.read(iova, &mut out), Err(EFAULT));
        Ok(())
    }

    /// A mapping across a slot boundary (and a page of the lent memory) is copied in pieces
    /// that line up.
    #[test]
    fn across_slots() -> Result {
        let t = table(4)?;
        let pattern = |i: usize| (i % 251) as u8;
        let mem = lent(2, pattern)?;
        let (off, len) = (PAGE_SIZE - 0x100, 0x300);
        // The IOVA keeps the in-slot offset of the lent address, as the IOVA domain gives it.
        let iova = (SLOT_SIZE + (off & (SLOT_SIZE - 1))) as u64;
        t.map(iova, region(&mem, off, len)?)?;
        t.copy(iova, len, CopyDir::ToDevice);
        let mut out = [0u8; 0x300];
        t.read(iova, &mut out)?;
        assert!(out.iter().enumerate().all(|(k, &b)| b == pattern(off + k)));
        let back = [0x5au8; 0x300];
        t.write(iova, &back)?;
        t.copy(iova, len, CopyDir::FromDevice);
        assert!((0..len).all(|k| mem.read::<u8>(off + k) == Some(0x5a)));
        assert_eq!(mem.read::<u8>(off - 1), Some(pattern(off - 1)));
        assert_eq!(mem.read::<u8>(off + len), Some(pattern(off + len)));
        t.unmap(iova, len);
        Ok(())
    }

    /// Which addresses a mapping, a read or a write may use.
    #[test]
    fn slot_accounting() -> Result {
        let t = table(4)?;
        let mem = lent(1, |_| 0)?;
        let size = t.size() as u64;
        assert_eq!(t.map(size, region(&mem, 0, 16)?), Err(EINVAL));
        assert_eq!(t.map(size - 8, region(&mem, 0, 16)?), Err(EINVAL));
        assert_eq!(t.map(0, region(&mem, 0, 0)?), Err(EINVAL));
        t.map(0, region(&mem, 0, 16)?)?;
        let mut b = [0u8; 8];
        // The whole slot of a mapping is its own; the next slot is nobody's.
        t.read(0, &mut b)?;
        t.read(SLOT_SIZE as u64 - 8, &mut b)?;
        assert_eq!(t.read(SLOT_SIZE as u64 - 4, &mut b), Err(EFAULT));
        assert_eq!(t.write(SLOT_SIZE as u64, &b), Err(EFAULT));
        assert_eq!(t.read(size - 4, &mut b), Err(EFAULT));
        assert_eq!(t.read(u64::MAX, &mut b), Err(EFAULT));
        assert_eq!(t.read(0, &mut []), Err(EFAULT));
        // A copy outside the table or of an unmapped slot does nothing (and does not fault).
        t.copy(size, 16, CopyDir::ToDevice);
        t.copy(2 * SLOT_SIZE as u64, 16, CopyDir::FromDevice);
        t.unmap(0, 16);
        assert_eq!(t.read(0, &mut b), Err(EFAULT));
        // The page stays: bounce pages live as long as the table.
        assert!(t.page(0).is_some());
        assert!(t.page(size).is_none());
        Ok(())
    }
}
