// SPDX-License-Identifier: GPL-2.0

//! Capabilities: `capable()` (7.3's `kernel::cred` has no counterpart).
//!
//! C header: [`include/linux/capability.h`](srctree/include/linux/capability.h).

use kernel::bindings;

/// Whether the current task has `CAP_NET_ADMIN` in the initial user namespace (`capable()`).
pub(crate) fn capable_net_admin() -> bool {
    // CAST: Capability numbers are small non-negative constants.
    // SAFETY: `capable` may be called from any process context.
    unsafe { bindings::capable(bindings::CAP_NET_ADMIN as i32) }
}
