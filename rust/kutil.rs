// SPDX-License-Identifier: GPL-2.0

//! Small kernel facilities with no Rust abstraction in 7.3: capabilities, module references,
//! `array_index_nospec`, `kstrtouint`.

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    ThisModule, //
};

/// Whether the current task has `CAP_NET_ADMIN` in the initial user namespace (`capable()`).
pub(crate) fn capable_net_admin() -> bool {
    // CAST: Capability numbers are small non-negative constants.
    // SAFETY: `capable` may be called from any process context.
    unsafe { bindings::capable(bindings::CAP_NET_ADMIN as i32) }
}

/// A reference on a module (`__module_get()` / `module_put()`): the module cannot be unloaded
/// while this exists.
///
/// # Invariants
///
/// This object owns one reference on `module`.
pub(crate) struct ModuleRef {
    module: &'static ThisModule,
}

impl ModuleRef {
    /// Takes a reference on `module`, which must be live (its code is running).
    pub(crate) fn get(module: &'static ThisModule) -> Self {
        // SAFETY: The module is live: its code is calling this. `__module_get` accepts NULL for
        // built-in code.
        unsafe { bindings::__module_get(module.as_ptr()) };
        // INVARIANT: Taken just above.
        Self { module }
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariant).
        unsafe { bindings::module_put(self.module.as_ptr()) };
    }
}

/// `array_index_nospec(index, size)`: `index` if `index < size`, else 0, computed without a
/// branch the CPU could speculate past. Use it on every index userspace supplies, after the
/// bounds check.
#[inline]
pub(crate) fn index_nospec(index: u32, size: u32) -> u32 {
    #[cfg(CONFIG_X86)]
    let mask: u32 = {
        let mask: u32;
        // SAFETY: `cmp; sbb` on registers: all-ones when `index < size`, else zero, as the x86
        // `array_index_mask_nospec` of `arch/x86/include/asm/barrier.h`. No memory is touched.
        unsafe {
            core::arch::asm!(
                "cmp {index:e}, {size:e}",
                "sbb {mask:e}, {mask:e}",
                index = in(reg) index,
                size = in(reg) size,
                mask = lateout(reg) mask,
                options(pure, nomem, nostack),
            )
        };
        mask
    };
    #[cfg(not(CONFIG_X86))]
    // The generic `array_index_mask_nospec` of `include/linux/nospec.h`.
    let mask: u32 = (!(index | size.wrapping_sub(1).wrapping_sub(index)) as i32 >> 31) as u32;
    index & mask
}

/// Parses a sysfs write with `kstrtouint(buf, 10, ..)`, the parser (and errno) of the C driver.
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
