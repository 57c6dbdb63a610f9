// SPDX-License-Identifier: GPL-2.0

//! A vDPA management device (`struct vdpa_mgmt_dev`): what `vdpa dev add NAME mgmtdev MGMT`
//! finds, implemented by a Rust type.
//!
//! C header: [`include/linux/vdpa.h`](srctree/include/linux/vdpa.h).

use crate::{
    ffi,
    kapi::root_device::RootDevice, //
};
use core::marker::PhantomData;
use kernel::{
    error::to_result,
    prelude::*,
    types::Opaque, //
};

/// Most virtio device ids a management device lists.
pub(crate) const MAX_DEVICE_IDS: usize = 4;

/// `VIRTIO_DEV_ANY_ID`.
const VIRTIO_DEV_ANY_ID: u32 = ffi::VIRTIO_DEV_ANY_ID;

/// The operations of a management device.
pub(crate) trait MgmtOps: Sized {
    /// Data shared with every `dev_add`.
    type Data: Send + Sync;
    /// The name of the management device (`/sys/devices/NAME`, `vdpa mgmtdev show`).
    const NAME: &'static CStr;
    /// The virtio device ids it lists (any vendor); at most [`MAX_DEVICE_IDS`].
    const DEVICE_IDS: &'static [u32];

    /// `vdpa dev add name NAME mgmtdev ...`: allocates and registers a vDPA device. Called with
    /// the vDPA core's device lock held.
    fn dev_add(data: &Self::Data, mdev: &MgmtDev<'_>, name: &CStr) -> Result;

    /// `vdpa dev del NAME`, before the vDPA device is unregistered (which removes the driver
    /// bound to it: for `virtio_vdpa`, waiting for every request in flight). Called with the
    /// vDPA core's device lock held. Does nothing by default.
    fn dev_del(_data: &Self::Data, _name: &CStr) {}
}

/// The management device a `dev_add` call is for (only exists during the call, with the vDPA
/// core's device lock held).
///
/// # Invariants
///
/// `raw` is a registered management device, for the lifetime `'a` of the `dev_add` call.
pub(crate) struct MgmtDev<'a> {
    raw: *mut ffi::vdpa_mgmt_dev,
    _call: PhantomData<&'a ()>,
}

impl MgmtDev<'_> {
    /// The raw management device.
    pub(crate) fn as_raw(&self) -> *mut ffi::vdpa_mgmt_dev {
        self.raw
    }
}

/// A registered management device of `T`.
///
/// # Invariants
///
/// `mgmt` is registered with `vdpa_mgmtdev_register()` with the tables of `T` and `root` as its
/// device, and is unregistered exactly once, in `drop`, before `root` and `data` are dropped.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: MgmtOps> {
    /// `/sys/devices/NAME` (dropped after `mgmt` is unregistered: field order and `drop`).
    root: RootDevice,
    /// Handed to every `dev_add`.
    data: T::Data,
    #[pin]
    mgmt: Opaque<ffi::vdpa_mgmt_dev>,
}

// SAFETY: Unregistration may happen on any thread; `T::Data` is `Send`.
unsafe impl<T: MgmtOps> Send for Registration<T> {}
// SAFETY: `&Registration` only gives access to `T::Data`, which is `Sync`.
unsafe impl<T: MgmtOps> Sync for Registration<T> {}

impl<T: MgmtOps> Registration<T> {
    const IDS: [ffi::virtio_device_id; MAX_DEVICE_IDS + 1] = {
        assert!(T::DEVICE_IDS.len() <= MAX_DEVICE_IDS);
        let mut ids = [const {
            ffi::virtio_device_id {
                device: 0,
                vendor: 0,
            }
        }; MAX_DEVICE_IDS + 1];
        let mut i = 0;
        while i < T::DEVICE_IDS.len() {
            ids[i] = ffi::virtio_device_id {
                device: T::DEVICE_IDS[i],
                vendor: VIRTIO_DEV_ANY_ID,
            };
            i += 1;
        }
        ids
    };

    const OPS: ffi::vdpa_mgmtdev_ops = ffi::vdpa_mgmtdev_ops {
        dev_add: Some(Self::dev_add),
        dev_del: Some(Self::dev_del),
        ..pin_init::zeroed()
    };

    /// Registers the management device [`MgmtOps::NAME`] of `T`.
    pub(crate) fn register(data: T::Data) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            root: RootDevice::register(T::NAME)?,
            data,
            mgmt <- Self::register_mgmt(root.as_raw()),
        })
    }

    /// Fills in and registers the `struct vdpa_mgmt_dev`, with `dev` as its device.
    fn register_mgmt(
        dev: *mut kernel::bindings::device,
    ) -> impl PinInit<Opaque<ffi::vdpa_mgmt_dev>, Error> {
        Opaque::try_ffi_init(move |slot: *mut ffi::vdpa_mgmt_dev| {
            let ids: &'static [ffi::virtio_device_id; MAX_DEVICE_IDS + 1] = &Self::IDS;
            let mut mgmt: ffi::vdpa_mgmt_dev = pin_init::zeroed();
            mgmt.device = dev;
            mgmt.ops = &Self::OPS;
            // CAST: The vDPA core only reads the table.
            mgmt.id_table = ids.as_ptr().cast_mut();
            // SAFETY: `slot` is valid for writes.
            unsafe { slot.write(mgmt) };
            // SAFETY: `slot` is initialised and pinned until `drop` unregisters it; `dev` is the
            // registered root device, dropped after that; the tables are static.
            // INVARIANT: Registered on success.
            to_result(unsafe { ffi::vdpa_mgmtdev_register(slot) })
        })
    }

    /// # Safety
    ///
    /// Called by the vDPA core for `vdpa dev add`, with `vdpa_dev_lock` held, on a registered
    /// management device of this type.
    unsafe extern "C" fn dev_add(
        mdev: *mut ffi::vdpa_mgmt_dev,
        name: *const c_char,
        _config: *const ffi::vdpa_dev_set_config,
    ) -> c_int {
        // SAFETY: `mdev` is the `mgmt` field of a live `Registration<T>` (registered, so not
        // dropped yet); `Opaque` is `repr(transparent)`.
        let this = unsafe {
            &*kernel::container_of!(mdev.cast::<Opaque<ffi::vdpa_mgmt_dev>>(), Self, mgmt)
        };
        // SAFETY: `name` is a NUL-terminated string from the vDPA core, valid for the call.
        let name = unsafe { CStr::from_char_ptr(name) };
        // INVARIANT: A registered management device, for the duration of this call.
        let mdev = MgmtDev {
            raw: mdev,
            _call: PhantomData,
        };
        match T::dev_add(&this.data, &mdev, name) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the vDPA core for `vdpa dev del` (or the management device's unregistration),
    /// with `vdpa_dev_lock` held, on a device `dev_add` registered.
    unsafe extern "C" fn dev_del(mdev: *mut ffi::vdpa_mgmt_dev, vdpa: *mut ffi::vdpa_device) {
        // SAFETY: As in `dev_add`: `mdev` is the `mgmt` field of a live `Registration<T>`.
        let this = unsafe {
            &*kernel::container_of!(mdev.cast::<Opaque<ffi::vdpa_mgmt_dev>>(), Self, mgmt)
        };
        // SAFETY: `vdpa` is a registered device: its name is a NUL-terminated string, valid
        // while it is registered, which lasts beyond this call.
        let name =
            unsafe { CStr::from_char_ptr(kernel::bindings::dev_name(&raw const (*vdpa).dev)) };
        T::dev_del(&this.data, name);
        // SAFETY: `vdpa` is registered; the lock `_vdpa_unregister_device` needs is held.
        unsafe { ffi::_vdpa_unregister_device(vdpa) };
    }
}

#[pinned_drop]
impl<T: MgmtOps> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered (type invariant). This deletes the vDPA devices still on the bus
        // (`dev_del`); `root` and `data` are dropped after this.
        unsafe { ffi::vdpa_mgmtdev_unregister(self.mgmt.get()) };
    }
}
