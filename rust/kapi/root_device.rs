// SPDX-License-Identifier: GPL-2.0

//! A root device: a bare `struct device` at `/sys/devices/NAME` (`root_device_register()`),
//! e.g. the parent of a management device; and the raw `struct device` of a
//! [`kernel::device::Device`] that 7.3 keeps private.
//!
//! C header: [`include/linux/device.h`](srctree/include/linux/device.h).

use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*, //
};

/// The `struct device` of `dev` (upstream `Device::as_raw`, private to the `kernel` crate in
/// 7.3), valid as long as the reference.
pub(crate) fn device_as_raw(dev: &kernel::device::Device) -> *mut bindings::device {
    // CAST: `Device` is a `repr(transparent)` wrapper of `Opaque<struct device>`, itself
    // `repr(transparent)`.
    core::ptr::from_ref(dev)
        .cast::<bindings::device>()
        .cast_mut()
}

/// A registered root device.
///
/// # Invariants
///
/// `dev` was returned by `__root_device_register()` and is unregistered exactly once, in `drop`.
pub(crate) struct RootDevice {
    dev: *mut bindings::device,
}

// SAFETY: `root_device_unregister` may be called from any thread.
unsafe impl Send for RootDevice {}
// SAFETY: `&RootDevice` gives no access beyond the raw pointer.
unsafe impl Sync for RootDevice {}

impl RootDevice {
    /// Registers `/sys/devices/<name>` (without a `module` link, like a device registered by
    /// hand with `device_register()`).
    pub(crate) fn register(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated and copied; a NULL owner creates no module link.
        let dev = from_err_ptr(unsafe {
            bindings::__root_device_register(name.as_char_ptr(), core::ptr::null_mut())
        })?;
        // INVARIANT: Registered just above.
        Ok(Self { dev })
    }

    /// The `struct device`, valid as long as `self`.
    pub(crate) fn as_raw(&self) -> *mut bindings::device {
        self.dev
    }
}

impl Drop for RootDevice {
    fn drop(&mut self) {
        // SAFETY: Registered (type invariant); the device frees itself when its last reference
        // is gone.
        unsafe { bindings::root_device_unregister(self.dev) };
    }
}
