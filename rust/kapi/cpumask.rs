// SPDX-License-Identifier: GPL-2.0

//! CPU masks by value: what `kernel::cpumask` (which wraps masks in place) does not offer yet.
//!
//! C header: [`include/linux/cpumask.h`](srctree/include/linux/cpumask.h).

use kernel::{
    bindings,
    error::to_result,
    prelude::*, //
};

/// A CPU mask by value (`struct cpumask`, `NR_CPUS` bits).
#[derive(Clone, Copy)]
pub(crate) struct CpuMask(bindings::cpumask);

impl CpuMask {
    /// The mask of all possible CPU ids (`cpumask_setall`: bits up to `nr_cpu_ids`).
    pub(crate) fn all() -> Self {
        let mut mask: bindings::cpumask = pin_init::zeroed();
        // SAFETY: Reading a kernel global set at boot.
        let n = unsafe { bindings::nr_cpu_ids } as usize;
        let bits = usize::BITS as usize;
        for (i, word) in mask.bits.iter_mut().enumerate() {
            let lo = i * bits;
            *word = if n >= lo + bits {
                !0
            } else if n > lo {
                (1 << (n - lo)) - 1
            } else {
                0
            };
        }
        Self(mask)
    }

    /// Whether the mask has an online CPU (`cpumask_intersects(mask, cpu_online_mask)`).
    pub(crate) fn intersects_online(&self) -> bool {
        // SAFETY: `__cpu_online_mask` is a valid kernel global; it is copied with a volatile
        // read (CPU hotplug may change it concurrently, as for C's unlocked `cpumask_intersects`
        // the answer holds for a moment around the call).
        let online = unsafe { core::ptr::read_volatile(&raw const bindings::__cpu_online_mask) };
        self.0
            .bits
            .iter()
            .zip(online.bits.iter())
            .any(|(a, b)| a & b != 0)
    }

    /// A copy of the mask `raw` points to.
    ///
    /// # Safety
    ///
    /// `raw` is valid for reads of a `struct cpumask`.
    pub(crate) unsafe fn from_raw(raw: *const bindings::cpumask) -> Self {
        // SAFETY: Valid for reads (caller).
        Self(unsafe { *raw })
    }

    /// The C mask.
    pub(crate) fn as_raw(&self) -> &bindings::cpumask {
        &self.0
    }

    /// Whether CPU `cpu` is in the mask.
    pub(crate) fn contains(&self, cpu: u32) -> bool {
        let bits = usize::BITS;
        self.0
            .bits
            .get((cpu / bits) as usize)
            .is_some_and(|w| w & (1 << (cpu % bits)) != 0)
    }

    /// The first CPU of the mask after `after` (wrapping around) that is online, if any
    /// (`cpumask_next_and(.., cpu_online_mask)` with wrap-around; it never loops: at most
    /// `nr_cpu_ids` CPUs are looked at).
    pub(crate) fn next_online(&self, after: u32) -> Option<u32> {
        // SAFETY: As in `intersects_online`.
        let online = unsafe { core::ptr::read_volatile(&raw const bindings::__cpu_online_mask) };
        let online = Self(online);
        // SAFETY: Reading a kernel global set at boot.
        let n = unsafe { bindings::nr_cpu_ids };
        (1..=n)
            .filter_map(|k| after.wrapping_add(k).checked_rem(n))
            .find(|&cpu| self.contains(cpu) && online.contains(cpu))
    }

    /// `cpumask_parse`: a hex CPU bitmap such as `"3"` or `"ff,00000001"`.
    ///
    /// # Errors
    ///
    /// The errno of `bitmap_parse` (`EINVAL`, `EOVERFLOW`, ...).
    pub(crate) fn parse(input: &CStr) -> Result<Self> {
        let mut mask: bindings::cpumask = pin_init::zeroed();
        // SAFETY: `input` is NUL-terminated (`UINT_MAX` length: parse up to the NUL);
        // `mask.bits` holds `nr_cpu_ids` bits (`nr_cpu_ids <= NR_CPUS`).
        to_result(unsafe {
            bindings::bitmap_parse(
                input.as_char_ptr(),
                u32::MAX,
                mask.bits.as_mut_ptr(),
                // CAST: `nr_cpu_ids <= NR_CPUS`, a small positive number.
                bindings::nr_cpu_ids as i32,
            )
        })?;
        Ok(Self(mask))
    }
}
