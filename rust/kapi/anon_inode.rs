// SPDX-License-Identifier: GPL-2.0

//! Files on the anonymous inode (`anon_inode_getfile()`), served by a [`FileOps`] type, e.g.
//! a file a driver hands out through an ioctl.
//!
//! C header: [`include/linux/anon_inodes.h`](srctree/include/linux/anon_inodes.h).

use super::file_ops::{
    FileOps,
    FileOpsVTable, //
};
use crate::ffi;
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings, error::from_err_ptr, fs::File, prelude::*, sync::aref::ARef, types::ForeignOwnable,
};

/// The file operations of anonymous files of `T` (no `open`: the private data is set at
/// creation).
struct AnonVTable<T: FileOps>(PhantomData<T>);

impl<T: FileOps> AnonVTable<T> {
    const VTABLE: bindings::file_operations = FileOpsVTable::<T>::build(None);
}

/// Creates an anonymous file `name` (as `/proc/PID/fd` shows it, e.g. `[name]`), read-write,
/// whose private data is `data` until its release ([`FileOps::release`]). The file holds a
/// reference on the module of `T`.
pub(crate) fn anon_inode_getfile<T: FileOps>(
    name: &'static CStr,
    data: T::Ptr,
) -> Result<ARef<File>> {
    let ptr = data.into_foreign();
    // SAFETY: `name` is a static C string; the table is static and its operations read the
    // private data as `T::Ptr`, which `ptr` is.
    let file = from_err_ptr(unsafe {
        ffi::anon_inode_getfile(
            name.as_char_ptr(),
            &AnonVTable::<T>::VTABLE,
            ptr.cast(),
            // CAST: `O_RDWR` is a small flag.
            bindings::O_RDWR as c_int,
        )
    });
    match file {
        // SAFETY: `anon_inode_getfile` returned a new file with one reference, which we own;
        // `File` is a transparent wrapper of `struct file`.
        Ok(file) => Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(file.cast::<File>())) }),
        Err(e) => {
            // SAFETY: The file was not created: the private data is still ours.
            drop(unsafe { <T::Ptr as ForeignOwnable>::from_foreign(ptr) });
            Err(e)
        }
    }
}
