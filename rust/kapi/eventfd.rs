// SPDX-License-Identifier: GPL-2.0

//! Eventfd contexts held by a driver (`struct eventfd_ctx`), e.g. an eventfd that userspace
//! passed by file descriptor, and signalled from any context.
//!
//! C header: [`include/linux/eventfd.h`](srctree/include/linux/eventfd.h).

use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*, //
};

/// A reference to an eventfd context (`struct eventfd_ctx`).
///
/// # Invariants
///
/// `ctx` is a valid eventfd context on which this object owns one reference.
pub(crate) struct EventFdCtx {
    ctx: *mut bindings::eventfd_ctx,
}

// SAFETY: An eventfd context reference may be used and dropped from any thread.
unsafe impl Send for EventFdCtx {}
// SAFETY: `eventfd_signal` may be called concurrently on the same context.
unsafe impl Sync for EventFdCtx {}

impl EventFdCtx {
    /// Takes a reference on the eventfd context of file descriptor `fd` of the current task.
    ///
    /// # Errors
    ///
    /// `EBADF` if `fd` is not open, `EINVAL` if it is not an eventfd (`eventfd_ctx_fdget`).
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: `eventfd_ctx_fdget` accepts any integer and returns a context or an ERR_PTR.
        let ctx = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        // INVARIANT: `eventfd_ctx_fdget` returned a context with a reference for us.
        Ok(Self { ctx })
    }

    /// Signals the eventfd (adds 1 to its counter). May be called in atomic context, but not from
    /// inside another eventfd's wakeup (see [`signal_allowed`]).
    pub(crate) fn signal(&self) {
        // SAFETY: `ctx` is valid (type invariant).
        unsafe { bindings::eventfd_signal_mask(self.ctx, 0) };
    }
}

impl Drop for EventFdCtx {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariant).
        unsafe { bindings::eventfd_ctx_put(self.ctx) };
    }
}

/// Whether the current task may signal an eventfd now (`eventfd_signal_allowed()`): not from
/// inside an eventfd wakeup, where `eventfd_signal` would warn about the nesting.
pub(crate) fn signal_allowed() -> bool {
    // SAFETY: `get_current` returns the running task, valid for this call; `in_eventfd` is only
    // written by the task itself.
    unsafe { (*bindings::get_current()).in_eventfd() == 0 }
}
