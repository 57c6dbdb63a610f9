// SPDX-License-Identifier: GPL-2.0

//! A sysfs directory below a device node: a raw kobject with read-write attributes served by
//! a Rust type.
//!
//! C header: [`include/linux/kobject.h`](srctree/include/linux/kobject.h).
//!
//! 7.3 has no Rust abstraction for raw kobjects; upstream this would be `kernel::kobject`.

use super::{
    root_device::device_as_raw,
    sysfs::{
        store_result,
        Attributes,
        KobjAttr,
        KobjAttrTable,
        Show,
        ShowBuf, //
    },
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::Arc,
    types::Opaque, //
};

/// The allocation of a kobject directory: the kobject and the data its attributes show.
///
/// # Invariants
///
/// `kobj` was initialised with `kobject_init(.., &KobjType::<T>::KTYPE)`; the allocation is a
/// leaked `KBox<Inner<T>>` that the kobject's `release` frees.
#[pin_data]
struct Inner<T> {
    #[pin]
    kobj: Opaque<bindings::kobject>,
    data: Arc<T>,
}

/// The `struct kobj_type` of the directories of `T`.
struct KobjType<T: Attributes>(PhantomData<T>);

impl<T: Attributes + Send + Sync> KobjType<T> {
    const SYSFS_OPS: bindings::sysfs_ops = bindings::sysfs_ops {
        show: Some(Self::show),
        store: Some(Self::store),
    };

    const KTYPE: bindings::kobj_type = bindings::kobj_type {
        release: Some(Self::release),
        sysfs_ops: &Self::SYSFS_OPS,
        // CAST: The kernel only reads the array.
        default_groups: core::ptr::from_ref(&KobjAttrTable::<T>::GROUPS)
            .cast_mut()
            .cast(),
        ..pin_init::zeroed()
    };

    /// The [`Inner`] of `kobj`.
    ///
    /// # Safety
    ///
    /// `kobj` is the `kobj` field of a live `Inner<T>`.
    unsafe fn inner<'a>(kobj: *mut bindings::kobject) -> &'a Inner<T> {
        // SAFETY: Per the safety requirements; `Opaque` is `repr(transparent)`.
        unsafe { &*kernel::container_of!(kobj.cast::<Opaque<bindings::kobject>>(), Inner<T>, kobj) }
    }

    /// # Safety
    ///
    /// Called by the kobject core when the last reference on an `Inner<T>`'s kobject is gone.
    unsafe extern "C" fn release(kobj: *mut bindings::kobject) {
        // SAFETY: `kobj` is the field of an `Inner<T>` leaked from a `KBox` (type invariant of
        // `Inner`); this is the last reference, so the box is reconstituted exactly once.
        let raw = unsafe {
            kernel::container_of!(kobj.cast::<Opaque<bindings::kobject>>(), Inner<T>, kobj)
        };
        // SAFETY: See above.
        drop(unsafe { KBox::from_raw(raw) });
    }

    /// # Safety
    ///
    /// Called by sysfs for an attribute of [`KobjAttrTable<T>`] of a kobject of this type.
    unsafe extern "C" fn show(
        kobj: *mut bindings::kobject,
        attr: *mut bindings::attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: sysfs holds the kobject alive while a handler runs.
        let inner = unsafe { Self::inner(kobj) };
        // SAFETY: `attr` is the `raw` field (first, `repr(C)`) of a `KobjAttr`.
        let index = unsafe { (*attr.cast::<KobjAttr>()).index };
        // SAFETY: `buf` is the show buffer of this call.
        let buf = unsafe { ShowBuf::from_raw(buf) };
        inner.data.show(index).emit(buf)
    }

    /// # Safety
    ///
    /// Called by sysfs for an attribute of [`KobjAttrTable<T>`] of a kobject of this type, with
    /// a NUL-terminated buffer.
    unsafe extern "C" fn store(
        kobj: *mut bindings::kobject,
        attr: *mut bindings::attribute,
        buf: *const c_char,
        count: usize,
    ) -> isize {
        // SAFETY: sysfs holds the kobject alive while a handler runs.
        let inner = unsafe { Self::inner(kobj) };
        // SAFETY: `attr` is the `raw` field (first, `repr(C)`) of a `KobjAttr`.
        let index = unsafe { (*attr.cast::<KobjAttr>()).index };
        // SAFETY: sysfs store buffers are NUL-terminated.
        let input = unsafe { CStr::from_char_ptr(buf) };
        store_result(inner.data.store(index, input), count)
    }
}

/// A directory `NAME` below a device node with the attributes of a `T`; removed when dropped
/// (the kobject may live on while its files are open, and then frees itself).
///
/// # Invariants
///
/// `kobj` is the `kobj` field of a live, added `Inner<T>` (for some `T`), on which this owns a
/// reference.
pub(crate) struct KobjectDir {
    kobj: *mut bindings::kobject,
}

// SAFETY: `kobject_put` may be called from any thread.
unsafe impl Send for KobjectDir {}
// SAFETY: `&KobjectDir` allows nothing.
unsafe impl Sync for KobjectDir {}

impl KobjectDir {
    /// Creates the directory `name` below `parent`, its attributes served by `data`.
    pub(crate) fn add<T: Attributes + Send + Sync + 'static>(
        parent: &kernel::device::Device,
        name: &CStr,
        data: Arc<T>,
    ) -> Result<Self> {
        let boxed = KBox::pin_init(
            pin_init!(Inner::<T> {
                kobj <- Opaque::ffi_init(|slot: *mut bindings::kobject| {
                    // SAFETY: `slot` is valid for writes; `kobject_init` expects zeroed memory.
                    unsafe { slot.write(pin_init::zeroed()) };
                    // SAFETY: `slot` is zeroed; the kobject type is static.
                    unsafe { bindings::kobject_init(slot, &KobjType::<T>::KTYPE) };
                }),
                data,
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: From here on the kobject owns the allocation: its `release` turns it back
        // into a box. It is never moved (it stays where `KBox::pin_init` put it).
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(boxed) });
        // SAFETY: `raw` is valid.
        let kobj = unsafe { (*raw).kobj.get() };
        // INVARIANT: We own the initial reference of the kobject; dropping `this` on the error
        // path below puts it, which frees the allocation.
        let this = Self { kobj };
        // SAFETY: `kobj` is initialised; `parent` is a valid device (a reference to a
        // `Device`), on whose kobject `kobject_add` takes a reference; the format takes one
        // string, which is copied.
        to_result(unsafe {
            bindings::kobject_add(
                kobj,
                &raw mut (*device_as_raw(parent)).kobj,
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        })?;
        Ok(this)
    }
}

impl Drop for KobjectDir {
    fn drop(&mut self) {
        // SAFETY: We own a reference (type invariant); the last put removes the sysfs directory
        // (if added) and calls the release.
        unsafe { bindings::kobject_put(self.kobj) };
    }
}
