// SPDX-License-Identifier: GPL-2.0

//! `array_index_nospec()`: bounds an index under speculation.
//!
//! C header: [`include/linux/nospec.h`](srctree/include/linux/nospec.h).

use kernel::prelude::kunit_tests;

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

#[kunit_tests(vduse_rs_kapi_nospec)]
mod tests {
    use super::*;

    #[test]
    fn index_nospec_clamps() {
        assert_eq!(index_nospec(0, 1), 0);
        assert_eq!(index_nospec(5, 6), 5);
        assert_eq!(index_nospec(6, 6), 0);
        assert_eq!(index_nospec(u32::MAX, 6), 0);
        assert_eq!(index_nospec(0xfffe, 0xffff), 0xfffe);
        assert_eq!(index_nospec(0, 0), 0);
    }
}
