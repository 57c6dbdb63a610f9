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

/// How a [`KillableCompletion::wait`] ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// Completed.
    Completed,
    /// The timeout expired first.
    TimedOut,
    /// A fatal signal arrived first.
    Killed,
}

/// A `struct completion` waited on with `wait_for_completion_killable[_timeout]`, which
/// `kernel::sync::Completion` does not offer.
///
/// # Invariants
///
/// `inner` was initialised with `init_completion`.
#[pin_data]
pub(crate) struct KillableCompletion {
    #[pin]
    inner: kernel::types::Opaque<bindings::completion>,
}

// SAFETY: A completion may be completed and waited on from any thread.
unsafe impl Send for KillableCompletion {}
// SAFETY: All methods take `&self` and the C functions synchronise internally.
unsafe impl Sync for KillableCompletion {}

impl KillableCompletion {
    /// A new, not completed completion.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes; `init_completion` initialises all of it.
            // INVARIANT: Initialised here.
            inner <- kernel::types::Opaque::ffi_init(|slot| unsafe { bindings::init_completion(slot) }),
        })
    }

    /// Completes it, waking every waiter now and later.
    pub(crate) fn complete_all(&self) {
        // SAFETY: Initialised (type invariant).
        unsafe { bindings::complete_all(self.inner.get()) };
    }

    /// Waits until completed, `timeout_secs` seconds have passed (0: no timeout) or a fatal
    /// signal arrives (`wait_event_killable[_timeout]` in C).
    pub(crate) fn wait(&self, timeout_secs: u32) -> WaitEnd {
        if timeout_secs == 0 {
            // SAFETY: Initialised (type invariant); we may sleep.
            return match unsafe { bindings::wait_for_completion_killable(self.inner.get()) } {
                0 => WaitEnd::Completed,
                _ => WaitEnd::Killed,
            };
        }
        // OVERFLOW: At most 2^32 * CONFIG_HZ fits in `u64`; capped at `MAX_SCHEDULE_TIMEOUT`
        // (`LONG_MAX`), as the C `(long)msg_timeout * HZ` is.
        let jiffies = usize::try_from(u64::from(timeout_secs) * u64::from(bindings::CONFIG_HZ))
            .unwrap_or(usize::MAX)
            .min(isize::MAX.unsigned_abs());
        // SAFETY: Initialised (type invariant); we may sleep.
        match unsafe { bindings::wait_for_completion_killable_timeout(self.inner.get(), jiffies) } {
            0 => WaitEnd::TimedOut,
            r if r < 0 => WaitEnd::Killed,
            _ => WaitEnd::Completed,
        }
    }
}

/// Waits until `work` is neither queued nor running (`flush_work`).
pub(crate) fn flush_work<T: ?Sized, const ID: u64>(work: &kernel::workqueue::Work<T, ID>) {
    // SAFETY: `work` is a reference, so aligned and not dangling (`raw_get`), to an initialised
    // work item alive for the call; `flush_work` may sleep, which callers allow (process
    // context).
    unsafe { bindings::flush_work(kernel::workqueue::Work::raw_get(work)) };
}

#[kunit_tests(vduse_rs_kutil)]
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
