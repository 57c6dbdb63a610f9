// SPDX-License-Identifier: GPL-2.0

//! `kstrtouint()`: the kernel's parser of numbers written to sysfs (7.3's `kernel::str` has no
//! counterpart).
//!
//! C header: [`include/linux/kstrtox.h`](srctree/include/linux/kstrtox.h).

use kernel::{
    bindings,
    error::to_result,
    prelude::*, //
};

/// Parses a decimal `u32` with `kstrtouint(buf, 10, ..)`: an optional `+`, digits and an
/// optional trailing newline, as sysfs writes come.
///
/// # Errors
///
/// `EINVAL` or `ERANGE` from `kstrtouint`.
pub(crate) fn parse_u32(buf: &CStr) -> Result<u32> {
    let mut v: u32 = 0;
    // SAFETY: `buf` is NUL-terminated; `v` is valid for writes.
    to_result(unsafe { bindings::kstrtouint(buf.as_char_ptr(), 10, &mut v) })?;
    Ok(v)
}
