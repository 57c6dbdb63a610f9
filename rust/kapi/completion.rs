// SPDX-License-Identifier: GPL-2.0

//! A completion waited on killably, with or without a timeout: what `kernel::sync::Completion`
//! does not offer yet.
//!
//! C header: [`include/linux/completion.h`](srctree/include/linux/completion.h).

use kernel::{
    bindings,
    prelude::*,
    types::Opaque, //
};

/// How a [`KillableCompletion::wait`] ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum WaitEnd {
    /// Completed.
    Completed,
    /// The timeout expired first.
    TimedOut,
    /// A fatal signal arrived first.
    Killed,
}

/// A `struct completion` waited on with `wait_for_completion_killable[_timeout]`.
///
/// # Invariants
///
/// `inner` was initialised with `init_completion`.
#[pin_data]
pub(crate) struct KillableCompletion {
    #[pin]
    inner: Opaque<bindings::completion>,
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
            inner <- Opaque::ffi_init(|slot| unsafe { bindings::init_completion(slot) }),
        })
    }

    /// Completes it, waking every waiter now and later. May be called in atomic context.
    pub(crate) fn complete_all(&self) {
        // SAFETY: Initialised (type invariant).
        unsafe { bindings::complete_all(self.inner.get()) };
    }

    /// Waits until completed, `timeout_secs` seconds have passed (0: no timeout) or a fatal
    /// signal arrives (`wait_event_killable[_timeout]` in C). Sleeps: process context only.
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
