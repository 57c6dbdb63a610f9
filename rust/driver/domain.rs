// SPDX-License-Identifier: GPL-2.0

//! The IOVA domain of one address space of a VDUSE device, and its `[vduse-domain]` file.
//!
//! C version:
//! [`drivers/vdpa/vdpa_user/iova_domain.c`](srctree/drivers/vdpa/vdpa_user/iova_domain.c).
//!
//! The IOVA space of a domain:
//!
//! * `[0, bounce_size)`: the streaming region. `virtio_vdpa`'s buffers are bounced through it:
//!   `map_page` takes an IOVA range from [`Domain::stream`] (4 KiB units) and the bounce table
//!   copies between the buffer and bounce pages the daemon reaches by `mmap` of the domain file
//!   at offset 0 (see `kapi::bounce` for who owns which page when). The IOTLB entry of the
//!   whole region (what `VDUSE_IOTLB_GET_FD` returns) exists from the first `map_page` after a
//!   reset on, as in C.
//! * `[bounce_size, IOVA_LIMIT]`: the coherent region (`alloc`: the rings). Each buffer is
//!   whole pages of the kernel's, mapped at the IOVA [`Domain::coherent_iova`] gives it; the
//!   daemon reaches it by `mmap` of the domain file at offset IOVA. A buffer belongs to the
//!   domain from `alloc` to `free`, and lives on while userspace maps one of its pages.
//! * The consumer's mappings (`set_map`, vhost-vdpa): files of the consumer, returned as is.
//!
//! To avoid deadlocks, locks are taken in the order:
//!
//! 1. [`Spaces::filling`] (mutex, process context: creating an address space on first use;
//!    vhost-vdpa's `set_map` takes it with the `mmap_lock` held);
//! 2. [`Domain::maps`] (spinlock, interrupts disabled everywhere: the map ops take it in
//!    atomic context, even in softirq).
//!
//! Neither is taken under the other: 1 only guards the allocation of a new domain, and 2 is a
//! leaf. The IOVA allocators lock internally (interrupts disabled); the bounce table's switch
//! lock (`kapi::bounce`, an IRQ-safe rwlock) is a leaf of its own, never held with 2. Finding
//! a domain takes no lock ([`Spaces`]).
//!
//! A domain lives as long as the device holds it or a file or mapping of it exists: the domain
//! file's private data is an `Arc<Domain>`, and a mapping holds its file.

use crate::kapi::{
    anon_inode::anon_inode_getfile,
    bounce::{
        BounceTable,
        CopyDir, //
    },
    dma::DmaRegion,
    file_ops::{
        FaultResult,
        FileOps,
        VmFault, //
    },
    iova::{
        Caching,
        IovaCache,
        IovaDomain, //
    },
    pages::ContigPages,
    pin_pages::PinnedUserPages,
    vdpa::{
        IotlbMap,
        DMA_ATTR_SKIP_CPU_SYNC, //
    },
};
use core::ptr::NonNull;
use kernel::{
    alloc::KVVec,
    bindings::gfp_t,
    dma::DataDirection,
    fs::File,
    mm::virt::VmaNew,
    new_mutex, new_spinlock_irq,
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        ArcBorrow,
        Mutex,
        SetOnce,
        SpinLockIrq, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
};

/// The last IOVA of a domain (`VDUSE_IOVA_SIZE - 1`: the largest bounce buffer plus 128 MiB
/// of coherent space).
pub(crate) const IOVA_LIMIT: u64 = (1 << 30) + (128 << 20) - 1;

/// `VHOST_MAP_RW` (`VHOST_ACCESS_RW`).
// CAST: `VHOST_ACCESS_RW`, 3.
const PERM_RW: u8 = crate::ffi::VHOST_MAP_RW as u8;

/// A coherent buffer and the IOVAs it is mapped at.
struct Coherent {
    start: u64,
    last: u64,
    pages: Arc<ContigPages>,
}

/// The IOTLB of a domain.
#[derive(Default)]
struct Maps {
    /// The bounce region's entry exists (from the first `map_page` after a reset).
    bounce_mapped: bool,
    /// Coherent buffers, sorted by start (the IOVA allocator hands them out top down).
    coherent: KVec<Coherent>,
    /// The consumer's mappings, sorted by start.
    consumer: KVec<IotlbMap>,
}

impl Maps {
    /// The number of IOTLB entries: the bounce region's, one per coherent buffer, and the
    /// consumer's, counted together against the domain's limit as C's single `vhost_iotlb`
    /// counts them (`max_iotlb_entries`).
    fn entries(&self) -> usize {
        usize::from(self.bounce_mapped) + self.coherent.len() + self.consumer.len()
    }
}

/// One IOTLB entry, as `VDUSE_IOTLB_GET_FD` and `VDUSE_IOTLB_GET_INFO` return it.
pub(crate) struct Entry {
    /// First IOVA.
    pub(crate) start: u64,
    /// Last IOVA (inclusive).
    pub(crate) last: u64,
    /// `VHOST_ACCESS_*`.
    pub(crate) perm: u8,
    /// Offset of `start` in the file.
    pub(crate) offset: u64,
    /// The consumer's file, or `None` for the domain's own file.
    pub(crate) file: Option<ARef<File>>,
    /// The entry is the whole bounce region (`VDUSE_IOVA_CAP_UMEM`).
    pub(crate) is_bounce: bool,
}

/// The IOVA domain of one address space.
#[pin_data]
pub(crate) struct Domain {
    /// Bounce pages and slots of the streaming region.
    #[pin]
    bounce: BounceTable,
    /// IOVAs of the streaming region, in 4 KiB units from 4 KiB (0 is never handed out).
    #[pin]
    stream: IovaDomain,
    /// IOVAs of the coherent region, in pages from `bounce_size`.
    #[pin]
    coherent_iova: IovaDomain,
    /// The IOTLB (leaf lock, interrupts disabled).
    #[pin]
    maps: SpinLockIrq<Maps>,
    /// Most entries the IOTLB may hold ([`Maps::entries`]).
    max_entries: usize,
    /// A copy of [`Maps::bounce_mapped`] (changed with it, under [`Domain::maps`]): `map_page`
    /// takes the lock only while the bounce region's entry is not yet in the IOTLB.
    bounce_mapped: Atomic<bool>,
}

impl Domain {
    /// A domain whose streaming region is `bounce_size` bytes (rounded up to pages), with at
    /// most `max_entries` IOTLB entries.
    fn new(
        bounce_size: usize,
        max_entries: usize,
        caching: Caching,
        cache: &IovaCache,
    ) -> Result<impl PinInit<Self, Error> + '_> {
        let size = bounce_size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let bounce = BounceTable::new(size)?;
        Ok(try_pin_init!(Self {
            bounce <- bounce,
            stream <- IovaDomain::new(crate::kapi::bounce::SLOT_SIZE, 1, caching, cache),
            coherent_iova <- IovaDomain::new(PAGE_SIZE, size >> PAGE_SHIFT, caching, cache),
            maps <- new_spinlock_irq!(Maps::default(), "Domain::maps"),
            max_entries,
            bounce_mapped: Atomic::new(false),
        }))
    }

    /// The size of the streaming region.
    pub(crate) fn bounce_size(&self) -> usize {
        self.bounce.size()
    }

    /// `map_page` (atomic context): a streaming mapping of `region`, bounced.
    pub(crate) fn map_page(
        &self,
        region: DmaRegion,
        dir: DataDirection,
        attrs: usize,
    ) -> Result<u64> {
        let size = region.len();
        let iova = self
            .stream
            .alloc(size, self.bounce.size() as u64 - 1)
            .ok_or(ENOMEM)?;
        // The bounce region's entry, inserted lazily as in C, if the IOTLB has room for it
        // (C: `vduse_domain_init_bounce_map` fails with `ENOSPC`).
        let entry = if self.bounce_mapped.load(Relaxed) {
            Ok(())
        } else {
            let mut maps = self.maps.lock();
            if !maps.bounce_mapped && maps.entries() >= self.max_entries {
                Err(ENOSPC)
            } else {
                maps.bounce_mapped = true;
                self.bounce_mapped.store(true, Relaxed);
                Ok(())
            }
        };
        if let Err(e) = entry.and_then(|()| self.bounce.map(iova, region)) {
            self.bounce.unmap(iova, size);
            self.stream.free(iova, size);
            return Err(e);
        }
        if attrs & DMA_ATTR_SKIP_CPU_SYNC == 0 && to_device(dir) {
            self.bounce.copy(iova, size, CopyDir::ToDevice);
        }
        Ok(iova)
    }

    /// `unmap_page` (atomic context).
    pub(crate) fn unmap_page(&self, iova: u64, size: usize, dir: DataDirection, attrs: usize) {
        if attrs & DMA_ATTR_SKIP_CPU_SYNC == 0 && from_device(dir) {
            self.bounce.copy(iova, size, CopyDir::FromDevice);
        }
        self.bounce.unmap(iova, size);
        self.stream.free(iova, size);
    }

    /// `sync_single_for_device` (atomic context).
    pub(crate) fn sync_for_device(&self, iova: u64, size: usize, dir: DataDirection) {
        if to_device(dir) {
            self.bounce.copy(iova, size, CopyDir::ToDevice);
        }
    }

    /// `sync_single_for_cpu` (atomic context).
    pub(crate) fn sync_for_cpu(&self, iova: u64, size: usize, dir: DataDirection) {
        if from_device(dir) {
            self.bounce.copy(iova, size, CopyDir::FromDevice);
        }
    }

    /// `alloc` (may be atomic context, with an atomic `gfp`): a zeroed coherent buffer.
    pub(crate) fn alloc_coherent(&self, size: usize, gfp: gfp_t) -> Result<(NonNull<u8>, u64)> {
        let pages = Arc::new(
            ContigPages::alloc(size, gfp)?,
            kernel::alloc::flags::GFP_ATOMIC,
        )?;
        let vaddr = pages.vaddr();
        // Last: nothing after it can fail without giving the range back.
        let start = self.coherent_iova.alloc(size, IOVA_LIMIT).ok_or(ENOMEM)?;
        let entry = Coherent {
            start,
            // The IOTLB entry covers the `size` bytes asked for, as in C; the pages behind it
            // are whole. OVERFLOW: `size > 0` (`ContigPages::alloc` refuses 0) and
            // `start + size - 1 <= IOVA_LIMIT` (the allocator's limit).
            last: start + size as u64 - 1,
            pages,
        };
        let inserted = {
            let mut maps = self.maps.lock();
            let pos = maps.coherent.partition_point(|c| c.start < start);
            if maps.entries() >= self.max_entries {
                // C: `vduse_iotlb_add_range` fails with `ENOSPC`, the allocation with it.
                false
            } else {
                match maps.coherent.reserve(1, kernel::alloc::flags::GFP_ATOMIC) {
                    // Cannot fail: capacity was reserved just above.
                    Ok(()) => maps.coherent.insert_within_capacity(pos, entry).is_ok(),
                    Err(_) => false,
                }
            }
        };
        if !inserted {
            self.coherent_iova.free(start, size);
            return Err(ENOMEM);
        }
        Ok((vaddr, start))
    }

    /// `free` (may be atomic context): frees a buffer of [`Domain::alloc_coherent`].
    pub(crate) fn free_coherent(&self, iova: u64, size: usize) {
        let entry = {
            let mut maps = self.maps.lock();
            match maps.coherent.iter().position(|c| c.start == iova) {
                Some(pos) => maps.coherent.remove(pos).ok(),
                None => None,
            }
        };
        if entry.is_some() {
            self.coherent_iova.free(iova, size);
        }
        // The pages go when the last userspace mapping of them does.
        drop(entry);
    }

    /// Removes the bounce region's entry (device reset); the bounce pages stay.
    pub(crate) fn reset_bounce_map(&self) {
        let mut maps = self.maps.lock();
        maps.bounce_mapped = false;
        self.bounce_mapped.store(false, Relaxed);
    }

    /// Replaces the consumer's mappings (`set_map`); the old ones are released outside the
    /// lock.
    ///
    /// # Errors
    ///
    /// `ENOSPC` if they do not fit in the IOTLB beside the bounce and coherent entries (C's
    /// `vhost_iotlb` limit); the domain is then left without consumer mappings, as C's
    /// `vduse_domain_set_map` leaves it.
    pub(crate) fn set_consumer_maps(&self, mut maps: KVec<IotlbMap>) -> Result {
        maps.sort_unstable_by_key(|m| m.start);
        let (old, res) = {
            let mut m = self.maps.lock();
            let others = m.entries() - m.consumer.len();
            if others.saturating_add(maps.len()) > self.max_entries {
                (core::mem::take(&mut m.consumer), Err(ENOSPC))
            } else {
                (core::mem::replace(&mut m.consumer, maps), Ok(()))
            }
        };
        drop(old);
        res
    }

    /// The first entry (by start) overlapping `start..=last`, with a reference on its file if
    /// it is the consumer's.
    pub(crate) fn lookup(&self, start: u64, last: u64) -> Option<Entry> {
        let maps = self.maps.lock();
        let bounce_last = self.bounce.size() as u64 - 1;
        let mut best: Option<Entry> = None;
        let mut consider = |e: Entry| {
            if best.as_ref().is_none_or(|b| e.start < b.start) {
                best = Some(e);
            }
        };
        if maps.bounce_mapped && start <= bounce_last {
            consider(Entry {
                start: 0,
                last: bounce_last,
                perm: PERM_RW,
                offset: 0,
                file: None,
                is_bounce: true,
            });
        }
        if let Some(c) = first_overlap(&maps.coherent, |c| (c.start, c.last), start, last) {
            consider(Entry {
                start: c.start,
                last: c.last,
                perm: PERM_RW,
                offset: c.start,
                file: None,
                is_bounce: false,
            });
        }
        if let Some(m) = first_overlap(&maps.consumer, |m| (m.start, m.last), start, last) {
            consider(Entry {
                start: m.start,
                last: m.last,
                perm: m.perm,
                offset: m.offset,
                file: Some(m.file.clone()),
                is_bounce: false,
            });
        }
        best
    }

    /// `VDUSE_IOTLB_REG_UMEM` (the caller serialises it with [`Domain::dereg_umem`]): the
    /// daemon's pages at `uaddr` become the bounce buffer. As in C, only the whole bounce
    /// region (`iova` 0, `size` the bounce size, `uaddr` page aligned) and only while its IOTLB
    /// entry exists. Process context.
    ///
    /// # Errors
    ///
    /// `EINVAL` (those rules), `EEXIST` (registered already), `ENOMEM` (over
    /// `RLIMIT_MEMLOCK`, or not all pages pinned), errors of `pin_user_pages`.
    pub(crate) fn reg_umem(&self, iova: u64, uaddr: u64, size: u64) -> Result {
        let bounce = self.bounce.size() as u64;
        if !self.maps.lock().bounce_mapped
            || size != bounce
            || iova != 0
            || uaddr % PAGE_SIZE as u64 != 0
        {
            return Err(EINVAL);
        }
        if self.bounce.has_user_pages() {
            return Err(EEXIST);
        }
        let pages = PinnedUserPages::pin(uaddr, self.bounce.size() >> PAGE_SHIFT)?;
        // Refused pages are unpinned here, outside the table's lock.
        self.bounce.register_user(pages).map_err(|(e, _pages)| e)
    }

    /// `VDUSE_IOTLB_DEREG_UMEM`: the kernel's bounce pages are the buffer again (with the
    /// contents of the slots in use); the user pages are unpinned. Process context.
    ///
    /// # Errors
    ///
    /// `ENOENT` (none registered), `EINVAL` (`iova` or `size` not those registered).
    pub(crate) fn dereg_umem(&self, iova: u64, size: u64) -> Result {
        if !self.bounce.has_user_pages() {
            return Err(ENOENT);
        }
        if iova != 0 || size != self.bounce.size() as u64 {
            return Err(EINVAL);
        }
        // Unpinned here, outside the table's locks.
        drop(self.bounce.unregister_user());
        Ok(())
    }

    /// The `len` bytes at `iova`, if they lie in one coherent buffer (a ring the driver
    /// allocated); the buffer's pages stay alive with the area, even once the driver frees
    /// them. Any context.
    pub(crate) fn coherent_area(&self, iova: u64, len: usize) -> Option<CoherentArea> {
        let last = iova.checked_add(u64::try_from(len).ok()?.checked_sub(1)?)?;
        let maps = self.maps.lock();
        let c = first_overlap(&maps.coherent, |c| (c.start, c.last), iova, iova)?;
        if last > c.last {
            return None;
        }
        Some(CoherentArea {
            pages: c.pages.clone(),
            off: usize::try_from(iova - c.start).ok()?,
            len,
        })
    }

    /// Writes `data` at `iova` of the streaming region, as the device: into the bounce slots
    /// of a mapping in flight, which the driver reads on unmap. Any context.
    ///
    /// # Errors
    ///
    /// `EFAULT` outside the slots of the mappings in flight.
    pub(crate) fn bounce_write(&self, iova: u64, data: &[u8]) -> Result {
        self.bounce.write(iova, data)
    }

    /// Reads `out.len()` bytes at `iova` of the streaming region, as the device. Any context.
    ///
    /// # Errors
    ///
    /// `EFAULT` outside the slots of the mappings in flight.
    pub(crate) fn bounce_read(&self, iova: u64, out: &mut [u8]) -> Result {
        self.bounce.read(iova, out)
    }

    /// The coherent buffer holding `iova`, and the page index of `iova` in it.
    fn coherent_at(&self, iova: u64) -> Option<(Arc<ContigPages>, usize)> {
        let maps = self.maps.lock();
        let c = first_overlap(&maps.coherent, |c| (c.start, c.last), iova, iova)?;
        let index = usize::try_from((iova - c.start) >> PAGE_SHIFT).ok()?;
        Some((c.pages.clone(), index))
    }
}

/// Part of a coherent buffer (a ring area), read and written by the device side.
pub(crate) struct CoherentArea {
    pages: Arc<ContigPages>,
    off: usize,
    len: usize,
}

impl CoherentArea {
    /// The `T` at `off` in the area, `None` past its end or misaligned. Any context.
    pub(crate) fn read<T: FromBytes + Copy>(&self, off: usize) -> Option<T> {
        self.check::<T>(off)?;
        self.pages.read(self.off.checked_add(off)?)
    }

    /// Writes `v` at `off` in the area, `None` past its end or misaligned. Any context.
    pub(crate) fn write<T: AsBytes + Copy>(&self, off: usize, v: T) -> Option<()> {
        self.check::<T>(off)?;
        self.pages.write(self.off.checked_add(off)?, v)
    }

    fn check<T>(&self, off: usize) -> Option<()> {
        (off.checked_add(core::mem::size_of::<T>())? <= self.len).then_some(())
    }
}

/// Whether a mapping in direction `dir` copies to the device.
fn to_device(dir: DataDirection) -> bool {
    matches!(dir, DataDirection::ToDevice | DataDirection::Bidirectional)
}

/// Whether a mapping in direction `dir` copies from the device.
fn from_device(dir: DataDirection) -> bool {
    matches!(
        dir,
        DataDirection::FromDevice | DataDirection::Bidirectional
    )
}

/// The first of `items` (in their order) whose range `(start, last)` (inclusive, from
/// `range`) overlaps `start..=last`; for items sorted by start, as `vhost_iotlb_itree_first`
/// finds it.
pub(crate) fn first_overlap<T>(
    items: &[T],
    range: impl Fn(&T) -> (u64, u64),
    start: u64,
    last: u64,
) -> Option<&T> {
    items.iter().find(|m| {
        let (s, l) = range(m);
        s <= last && start <= l
    })
}

/// The `[vduse-domain]` file: `mmap` gives the daemon the bounce region (offset 0) and the
/// coherent buffers (offset = IOVA).
#[vtable]
impl FileOps for Domain {
    type Ptr = Arc<Domain>;

    fn mmap(_this: ArcBorrow<'_, Domain>, _file: &File, vma: &VmaNew) -> Result {
        vma.set_dontdump();
        vma.set_dontexpand();
        Ok(())
    }

    /// Serves a page: a bounce page (`SIGBUS` if it was never used), or a page of a coherent
    /// buffer (`SIGBUS` outside every buffer).
    fn fault(this: ArcBorrow<'_, Domain>, vmf: &VmFault<'_>) -> FaultResult {
        let Some(iova) = (vmf.pgoff() as u64).checked_shl(PAGE_SHIFT as u32) else {
            return FaultResult::SIGBUS;
        };
        if iova < this.bounce.size() as u64 {
            return match this.bounce.page(iova) {
                Some(page) => vmf.insert(&page),
                None => FaultResult::SIGBUS,
            };
        }
        // The buffer may be freed meanwhile: its pages stay alive through the `Arc` until the
        // page is inserted (the mapping then holds its own reference).
        let Some((pages, index)) = this.coherent_at(iova) else {
            return FaultResult::SIGBUS;
        };
        match pages.page(index) {
            Some(page) => vmf.insert(&page),
            None => FaultResult::SIGBUS,
        }
    }
}

/// An address space: its domain and the domain's file.
pub(crate) struct AddressSpace {
    /// The domain.
    pub(crate) domain: Arc<Domain>,
    /// Its `[vduse-domain]` file (holds a reference on the domain).
    pub(crate) file: ARef<File>,
}

impl AddressSpace {
    /// A new address space with a streaming region of `bounce_size` bytes and an IOTLB of
    /// at most `max_entries` entries, its IOVA allocators with or without per-CPU caches
    /// (without: it may be created with the `mmap_lock` held, [`Caching`]).
    pub(crate) fn new(
        bounce_size: usize,
        max_entries: usize,
        caching: Caching,
        cache: &IovaCache,
    ) -> Result<Self> {
        let domain = Arc::pin_init(
            Domain::new(bounce_size, max_entries, caching, cache)?,
            GFP_KERNEL,
        )?;
        let file = anon_inode_getfile::<Domain>(c"[vduse-domain]", domain.clone())?;
        Ok(Self { domain, file })
    }
}

/// The address spaces of a device, `nas` slots: space 0 from the start, the others filled on
/// first use ([`Spaces::fill`]). A slot, once filled, is never emptied or replaced (a device
/// whose domains must change gets a new `Spaces`), so it is read without a lock or a
/// reference count, in any context: the map ops borrow a domain from it.
///
/// To avoid deadlocks, locks are taken in the order:
///
/// 1. [`Spaces::filling`] (mutex): serializes the filling of slots only (so that a filler
///    never sees a slot another thread is writing, which [`SetOnce`] would report empty). It
///    is taken with the `mmap_lock` held (vhost-vdpa's `set_map`), so no lock that comes
///    before the `mmap_lock` is taken under it: it allocates a domain and its file, nothing
///    more.
#[pin_data]
pub(crate) struct Spaces {
    slots: KVVec<SetOnce<AddressSpace>>,
    #[pin]
    filling: Mutex<()>,
}

impl Spaces {
    /// `nas` address spaces, the first of them `first`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `nas` is 0, `ENOMEM`.
    pub(crate) fn new(nas: u32, first: AddressSpace) -> Result<Arc<Self>> {
        let mut slots = KVVec::with_capacity(nas as usize, GFP_KERNEL)?;
        for _ in 0..nas {
            slots.push(SetOnce::new(), GFP_KERNEL)?;
        }
        // Empty: it cannot be populated already.
        let _ = slots.first().ok_or(EINVAL)?.populate(first);
        Arc::pin_init(
            try_pin_init!(Self {
                slots,
                filling <- new_mutex!((), "Spaces::filling"),
            }),
            GFP_KERNEL,
        )
    }

    /// Address space `asid`, if it exists (any context).
    pub(crate) fn get(&self, asid: u32) -> Option<&AddressSpace> {
        self.slots.get(asid as usize)?.as_ref()
    }

    /// The domain of address space `asid`, if it exists (any context).
    pub(crate) fn domain(&self, asid: u32) -> Option<&Arc<Domain>> {
        self.get(asid).map(|s| &s.domain)
    }

    /// The address spaces that exist (any context).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &AddressSpace> {
        self.slots.iter().filter_map(SetOnce::as_ref)
    }

    /// Address space `asid`, made by `make` now if it does not exist yet. Process context
    /// (takes [`Spaces::filling`] if the slot is empty).
    ///
    /// # Errors
    ///
    /// `EINVAL` if `asid` is out of range; the errors of `make`.
    pub(crate) fn fill(
        &self,
        asid: u32,
        make: impl FnOnce() -> Result<AddressSpace>,
    ) -> Result<&AddressSpace> {
        let slot = self.slots.get(asid as usize).ok_or(EINVAL)?;
        if let Some(s) = slot.as_ref() {
            return Ok(s);
        }
        let _filling = self.filling.lock();
        if slot.as_ref().is_none() {
            // Only fillers populate a slot, one at a time: it is still empty.
            let _ = slot.populate(make()?);
        }
        slot.as_ref().ok_or(EINVAL)
    }
}

#[kunit_tests(vduse_rs_domain)]
mod tests {
    use super::*;

    #[test]
    fn iotlb_range_lookup() {
        let maps = [(0x1000u64, 0x1fffu64), (0x3000, 0x3fff), (0x4000, 0x7fff)];
        let find = |s, l| first_overlap(&maps, |m| *m, s, l).copied();
        assert_eq!(find(0, u64::MAX), Some((0x1000, 0x1fff)));
        assert_eq!(find(0x1fff, 0x1fff), Some((0x1000, 0x1fff)));
        assert_eq!(find(0x2000, 0x2fff), None);
        assert_eq!(find(0x2fff, 0x3000), Some((0x3000, 0x3fff)));
        assert_eq!(find(0x3800, 0x4800), Some((0x3000, 0x3fff)));
        assert_eq!(find(0x5000, 0x5000), Some((0x4000, 0x7fff)));
        assert_eq!(find(0x8000, u64::MAX), None);
        assert_eq!(find(0, 0xfff), None);
    }

    /// Several coherent buffers (allocated top down by the IOVA allocator): a lookup finds the
    /// lowest one overlapping the range, as `vhost_iotlb_itree_first` does, so that a client
    /// enumerating with `start = last + 1` sees every buffer, in order.
    #[test]
    fn coherent_lookup_lowest_first() -> Result {
        let cache = IovaCache::get()?;
        let space = AddressSpace::new(1 << 20, 2048, Caching::PerCpu, &cache)?;
        let d = &space.domain;
        let mut bufs = KVec::new();
        for size in [10246usize, 4096, 8192, 100] {
            let (_, iova) = d.alloc_coherent(size, kernel::bindings::GFP_KERNEL)?;
            bufs.push((iova, size), GFP_KERNEL)?;
        }
        let mut seen = KVec::new();
        let mut start = 0u64;
        while let Some(e) = d.lookup(start, u64::MAX) {
            seen.push((e.start, e.last), GFP_KERNEL)?;
            match e.last.checked_add(1) {
                Some(next) => start = next,
                None => break,
            }
        }
        let mut want = KVec::new();
        for &(iova, size) in bufs.iter() {
            want.push((iova, iova + size as u64 - 1), GFP_KERNEL)?;
        }
        want.sort_unstable();
        assert_eq!(&seen[..], &want[..]);
        // The last byte of the lowest buffer is in that buffer, not in one above it.
        let (low, low_last) = want[0];
        assert_eq!(d.lookup(low_last, low_last + 1).map(|e| e.start), Some(low));
        for &(iova, size) in bufs.iter() {
            d.free_coherent(iova, size);
        }
        assert!(d.lookup(0, u64::MAX).is_none());
        Ok(())
    }

    /// Address spaces: 0 from the start, another filled once (a second fill returns the first
    /// one's domain without making another), none out of range.
    #[test]
    fn spaces_fill_once() -> Result {
        let cache = IovaCache::get()?;
        let make = || AddressSpace::new(1 << 20, 16, Caching::None, &cache);
        let spaces = Spaces::new(3, make()?)?;
        assert!(spaces.get(0).is_some());
        assert!(spaces.get(1).is_none());
        assert_eq!(spaces.iter().count(), 1);
        let first: *const Domain = &*spaces.fill(1, make)?.domain;
        let mut made = false;
        let again: *const Domain = &*spaces
            .fill(1, || {
                made = true;
                make()
            })?
            .domain;
        assert!(!made);
        assert!(core::ptr::eq(first, again));
        assert_eq!(spaces.iter().count(), 2);
        assert!(spaces.fill(3, make).is_err());
        assert!(spaces.domain(3).is_none());
        // A failed make leaves the slot empty, for the next fill.
        assert_eq!(spaces.fill(2, || Err(ENOMEM)).err(), Some(ENOMEM));
        assert!(spaces.get(2).is_none());
        assert!(Spaces::new(0, make()?).is_err());
        Ok(())
    }

    /// The IOTLB limit counts coherent buffers and the consumer's mappings together, as C's
    /// one `vhost_iotlb` does (`max_iotlb_entries`); a `set_map` that does not fit is `ENOSPC`
    /// and leaves no consumer mapping behind.
    #[test]
    fn iotlb_limit_counts_every_entry() -> Result {
        let cache = IovaCache::get()?;
        let space = AddressSpace::new(1 << 20, 3, Caching::None, &cache)?;
        let d = &space.domain;
        // Above the coherent region, so no lookup below can find a coherent buffer.
        let consumer = |starts: &[u64]| -> Result<KVec<IotlbMap>> {
            let mut v = KVec::new();
            for &start in starts {
                let m = IotlbMap {
                    start,
                    last: start + 0xfff,
                    perm: 3,
                    file: space.file.clone(),
                    offset: 0,
                };
                v.push(m, GFP_KERNEL)?;
            }
            Ok(v)
        };
        let gfp = kernel::bindings::GFP_KERNEL;
        let (_, a) = d.alloc_coherent(4096, gfp)?;
        let (_, b) = d.alloc_coherent(4096, gfp)?;
        assert_eq!(d.set_consumer_maps(consumer(&[0x8000_0000])?), Ok(()));
        // Full: two coherent entries and one of the consumer.
        assert!(d.alloc_coherent(4096, gfp).is_err());
        assert_eq!(
            d.set_consumer_maps(consumer(&[0x8000_0000, 0x9000_0000])?),
            Err(ENOSPC)
        );
        assert!(d.lookup(0x8000_0000, 0x8000_0000).is_none());
        // The failed `set_map` emptied the consumer's share: room for a coherent buffer again.
        let (_, c) = d.alloc_coherent(4096, gfp)?;
        for iova in [a, b, c] {
            d.free_coherent(iova, 4096);
        }
        assert_eq!(
            d.set_consumer_maps(consumer(&[0x8000_0000, 0x9000_0000])?),
            Ok(())
        );
        assert_eq!(
            d.lookup(0x9000_0000, 0x9000_0000).map(|e| e.start),
            Some(0x9000_0000)
        );
        // The maps hold the domain's own file, which holds the domain: break that cycle, or the
        // file (and with it a reference on the module) would never be released.
        assert_eq!(d.set_consumer_maps(KVec::new()), Ok(()));
        Ok(())
    }
}
