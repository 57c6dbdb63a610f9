// SPDX-License-Identifier: GPL-2.0

//! A counted reference on a module (`__module_get()` / `module_put()`).
//!
//! C header: [`include/linux/module.h`](srctree/include/linux/module.h).

use kernel::{
    bindings,
    ThisModule, //
};

/// A reference on a module: the module cannot be unloaded while this exists.
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
