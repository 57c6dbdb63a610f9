// SPDX-License-Identifier: GPL-2.0

//! Handing a file to the calling process as a new file descriptor, with the security check a
//! received file gets (`receive_fd`): what `kernel::fs::file` does not offer yet
//! (`FileDescriptorReservation` installs a file without the LSM's `file_receive` hook).
//!
//! C: `receive_fd()` in [`fs/file.c`](srctree/fs/file.c).

use kernel::{
    bindings,
    error::to_result,
    fs::File,
    prelude::*, //
};

/// Installs `file` in a new file descriptor of the calling process, after the LSM allowed it
/// (`security_file_receive`), with `o_flags` (`O_CLOEXEC` or 0); returns the descriptor. The
/// descriptor takes a reference of its own. Process context.
///
/// # Errors
///
/// `EMFILE` (no free descriptor), the LSM's error.
pub(crate) fn receive_fd(file: &File, o_flags: u32) -> Result<u32> {
    // SAFETY: `file` is a valid file for the duration of the call; `receive_fd` takes its own
    // reference on success, and a NULL `ufd` means no user pointer is written.
    let fd = unsafe { bindings::receive_fd(file.as_ptr(), core::ptr::null_mut(), o_flags) };
    to_result(fd)?;
    // CAST: Non-negative after `to_result`.
    Ok(fd as u32)
}
