// SPDX-License-Identifier: GPL-2.0

//! Read-write sysfs attributes served by a Rust type: of a device (`struct device_attribute`)
//! or of a raw kobject (`struct attribute` with the kobject type's `sysfs_ops`).
//!
//! C headers: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h),
//! [`include/linux/device.h`](srctree/include/linux/device.h).
//!
//! 7.3 has no Rust abstraction for attributes; upstream this would be `kernel::sysfs`. A type
//! implementing [`Attributes`] names its attributes; the C tables (attributes, the
//! NULL-terminated pointer array, the group) are built at compile time per type, as associated
//! constants, the way `MiscdeviceVTable` builds its `file_operations`.

use super::cpumask::CpuMask;
use core::{
    marker::PhantomData,
    ptr::null, //
};
use kernel::{
    bindings,
    prelude::*,
    str::as_char_ptr_in_const_context, //
};

/// Most attributes one [`Attributes`] type may have.
pub(crate) const MAX_ATTRS: usize = 4;

/// A page-sized sysfs `show` buffer.
///
/// # Invariants
///
/// `buf` is the `PAGE_SIZE` buffer of a running `show` handler.
pub(crate) struct ShowBuf {
    buf: *mut c_char,
}

impl ShowBuf {
    /// Wraps the buffer of a `show` handler.
    ///
    /// # Safety
    ///
    /// `buf` is the `PAGE_SIZE` buffer of the running `show` handler, and the `ShowBuf` does
    /// not outlive the handler.
    pub(crate) unsafe fn from_raw(buf: *mut c_char) -> Self {
        // INVARIANT: Per the safety requirements.
        Self { buf }
    }

    /// The raw buffer, valid for the `show` call this buffer was made for.
    pub(crate) fn as_raw(&self) -> *mut c_char {
        self.buf
    }
}

/// A value a `show` handler prints.
pub(crate) trait Show {
    /// Prints the value and a newline into `buf` (`sysfs_emit`); the byte count or an errno.
    fn emit(&self, buf: ShowBuf) -> isize;
}

impl Show for u32 {
    fn emit(&self, buf: ShowBuf) -> isize {
        // SAFETY: `buf` is a show buffer (type invariant); the format takes one `unsigned int`.
        // CAST: At most `PAGE_SIZE`.
        unsafe { bindings::sysfs_emit(buf.as_raw(), c"%u\n".as_char_ptr(), *self) as isize }
    }
}

impl Show for CpuMask {
    /// `"%*pb\n"`, as `cpumask_pr_args` prints it.
    fn emit(&self, buf: ShowBuf) -> isize {
        // SAFETY: `buf` is a show buffer; `%*pb` takes the number of bits and a bitmap pointer,
        // which points to `self`, alive for the call.
        unsafe {
            bindings::sysfs_emit(
                buf.as_raw(),
                c"%*pb\n".as_char_ptr(),
                bindings::nr_cpu_ids,
                self.as_raw().bits.as_ptr(),
            ) as isize
        }
    }
}

/// Read-write attributes (mode 0644) of an object of type `Self`.
pub(crate) trait Attributes: Sized {
    /// The attribute names, in index order; at most [`MAX_ATTRS`].
    const NAMES: &'static [&'static CStr];

    /// What `show` prints.
    type Value: Show;

    /// The value of attribute `index` (an index into [`Attributes::NAMES`]).
    fn show(&self, index: usize) -> Self::Value;

    /// Stores a write of `input` (NUL-terminated, as sysfs passes it) to attribute `index`.
    fn store(&self, index: usize, input: &CStr) -> Result;
}

/// Converts a `store` result to the `ssize_t` sysfs expects.
pub(crate) fn store_result(r: Result, count: usize) -> isize {
    match r {
        // CAST: sysfs writes are at most a page.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// A `struct attribute` named `name`, mode 0644 (`__ATTR_RW`).
pub(crate) const fn attr_rw(name: &'static CStr) -> bindings::attribute {
    bindings::attribute {
        name: as_char_ptr_in_const_context(name),
        mode: 0o644,
        ..pin_init::zeroed()
    }
}

/// A device attribute and its index in [`Attributes::NAMES`].
#[repr(C)]
struct DevAttr {
    raw: bindings::device_attribute,
    index: usize,
}

/// The C attribute tables of the device attributes of `T`.
pub(crate) struct DeviceAttrTable<T: Attributes>(PhantomData<T>);

impl<T: Attributes> DeviceAttrTable<T> {
    const ATTRS: [DevAttr; MAX_ATTRS] = {
        assert!(T::NAMES.len() <= MAX_ATTRS);
        let mut attrs = [const {
            DevAttr {
                raw: pin_init::zeroed(),
                index: 0,
            }
        }; MAX_ATTRS];
        let mut i = 0;
        while i < T::NAMES.len() {
            attrs[i] = DevAttr {
                raw: bindings::device_attribute {
                    attr: attr_rw(T::NAMES[i]),
                    __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 {
                        show: Some(Self::show),
                    },
                    __bindgen_anon_2: bindings::device_attribute__bindgen_ty_2 {
                        store: Some(Self::store),
                    },
                },
                index: i,
            };
            i += 1;
        }
        attrs
    };

    const PTRS: [*const bindings::attribute; MAX_ATTRS + 1] = {
        let a: &'static [DevAttr; MAX_ATTRS] = &Self::ATTRS;
        let n = T::NAMES.len();
        [
            dev_attr_ptr(a, n, 0),
            dev_attr_ptr(a, n, 1),
            dev_attr_ptr(a, n, 2),
            dev_attr_ptr(a, n, 3),
            null(),
        ]
    };

    const GROUP: bindings::attribute_group = bindings::attribute_group {
        __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
            attrs_const: core::ptr::from_ref(&Self::PTRS).cast::<*const bindings::attribute>(),
        },
        ..pin_init::zeroed()
    };

    const GROUPS: [*const bindings::attribute_group; 2] = [&Self::GROUP, null()];

    /// The NULL-terminated attribute group array (static), for `device_create_with_groups`:
    /// the device's driver data must be a `T`.
    pub(crate) fn groups() -> *const *const bindings::attribute_group {
        let groups: &'static [*const bindings::attribute_group; 2] = &Self::GROUPS;
        groups.as_ptr()
    }

    /// The `T` and the attribute index of a handler call.
    ///
    /// # Safety
    ///
    /// `dev` is a device created with [`Self::groups`] whose driver data is a `T` alive for the
    /// call; `attr` is one of the attributes of [`Self::ATTRS`].
    unsafe fn args<'a>(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
    ) -> (&'a T, usize) {
        // SAFETY: `raw` is the first field of a `DevAttr` (`repr(C)`) (caller).
        let index = unsafe { (*attr.cast::<DevAttr>()).index };
        // SAFETY: The driver data is a live `T` (caller).
        (unsafe { &*(*dev).driver_data.cast::<T>() }, index)
    }

    /// # Safety
    ///
    /// Called by sysfs for an attribute of [`Self::ATTRS`] on a device created with
    /// [`Self::groups`], with its page buffer.
    unsafe extern "C" fn show(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: Per the function's requirements; the device's creator keeps the driver data
        // alive until the device is destroyed, which waits for running handlers.
        let (data, index) = unsafe { Self::args(dev, attr) };
        // SAFETY: `buf` is the show buffer of this call.
        data.show(index).emit(unsafe { ShowBuf::from_raw(buf) })
    }

    /// # Safety
    ///
    /// Called by sysfs for an attribute of [`Self::ATTRS`] on a device created with
    /// [`Self::groups`], with a NUL-terminated buffer.
    unsafe extern "C" fn store(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *const c_char,
        count: usize,
    ) -> isize {
        // SAFETY: As in `show`.
        let (data, index) = unsafe { Self::args(dev, attr) };
        // SAFETY: sysfs store buffers are NUL-terminated.
        let input = unsafe { CStr::from_char_ptr(buf) };
        store_result(data.store(index, input), count)
    }
}

/// A pointer to the attribute of `attrs[i]`, or NULL from the `n`-th on.
const fn dev_attr_ptr(
    attrs: &'static [DevAttr; MAX_ATTRS],
    n: usize,
    i: usize,
) -> *const bindings::attribute {
    if i < n {
        &attrs[i].raw.attr
    } else {
        null()
    }
}

/// A kobject attribute and its index in [`Attributes::NAMES`].
#[repr(C)]
pub(crate) struct KobjAttr {
    /// The C attribute (first: a `*mut attribute` of the table points to a `KobjAttr`).
    pub(crate) raw: bindings::attribute,
    /// Its index in [`Attributes::NAMES`].
    pub(crate) index: usize,
}

/// The attributes of `T` as plain `struct attribute`s, with the group array of a kobject type.
pub(crate) struct KobjAttrTable<T: Attributes>(PhantomData<T>);

impl<T: Attributes> KobjAttrTable<T> {
    const ATTRS: [KobjAttr; MAX_ATTRS] = {
        assert!(T::NAMES.len() <= MAX_ATTRS);
        let mut attrs = [const {
            KobjAttr {
                raw: pin_init::zeroed(),
                index: 0,
            }
        }; MAX_ATTRS];
        let mut i = 0;
        while i < T::NAMES.len() {
            attrs[i] = KobjAttr {
                raw: attr_rw(T::NAMES[i]),
                index: i,
            };
            i += 1;
        }
        attrs
    };

    const PTRS: [*const bindings::attribute; MAX_ATTRS + 1] = {
        let a: &'static [KobjAttr; MAX_ATTRS] = &Self::ATTRS;
        let n = T::NAMES.len();
        [
            kobj_attr_ptr(a, n, 0),
            kobj_attr_ptr(a, n, 1),
            kobj_attr_ptr(a, n, 2),
            kobj_attr_ptr(a, n, 3),
            null(),
        ]
    };

    const GROUP: bindings::attribute_group = bindings::attribute_group {
        __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
            attrs_const: core::ptr::from_ref(&Self::PTRS).cast::<*const bindings::attribute>(),
        },
        ..pin_init::zeroed()
    };

    /// The NULL-terminated group array of a `struct kobj_type`'s `default_groups`.
    pub(crate) const GROUPS: [*const bindings::attribute_group; 2] = [&Self::GROUP, null()];
}

/// A pointer to the attribute of `attrs[i]`, or NULL from the `n`-th on.
const fn kobj_attr_ptr(
    attrs: &'static [KobjAttr; MAX_ATTRS],
    n: usize,
    i: usize,
) -> *const bindings::attribute {
    if i < n {
        &attrs[i].raw
    } else {
        null()
    }
}
