// SPDX-License-Identifier: GPL-2.0

//! The vDPA bus: the management device `vduse`, the vDPA device of each VDUSE device, and the
//! `vdpa_config_ops` / `virtio_map_ops` tables the vDPA core and `virtio_vdpa` call.
//!
//! C version: `vduse_mgmtdev_init()`, `vdpa_dev_add()`, `vduse_vdpa_config_ops` and
//! `vduse_map_ops` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//! C header: [`include/linux/vdpa.h`](srctree/include/linux/vdpa.h).
//!
//! This is the `unsafe` layer: each callback turns its raw arguments into a `&Device` and plain
//! values and calls a safe method of [`Device`] (`device/vdpa_ops.rs`).

use crate::{
    chrdev::DeviceNode,
    device::Device,
    ffi,
    registry::Vduse, //
};
use kernel::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    fs::File,
    prelude::*,
    str::CStrExt,
    sync::{
        aref::ARef,
        Arc, //
    },
};

/// The driver data following `struct vdpa_device` in the allocation the vDPA core makes
/// (`struct vduse_vdpa` in C).
///
/// # Invariants
///
/// `dev` comes from `Arc::into_raw` and is turned back into an `Arc` exactly once, by the
/// `free` op (when the vDPA core releases the device).
#[repr(C)]
struct VduseVdpa {
    vdpa: ffi::vdpa_device,
    dev: *const Device,
}

const _: () = assert!(core::mem::offset_of!(VduseVdpa, vdpa) == 0);

/// The [`Device`] of a vDPA device allocated by [`VdpaDev::alloc`].
///
/// # Safety
///
/// `vdpa` is a live vDPA device allocated by [`VdpaDev::alloc`] (its `free` op has not run).
unsafe fn device<'a>(vdpa: *mut ffi::vdpa_device) -> &'a Device {
    // SAFETY: `vdpa` is the first field of a `VduseVdpa` (allocated with its size), whose `dev`
    // holds a reference until `free` (type invariant of `VduseVdpa`).
    unsafe { &*(*vdpa.cast::<VduseVdpa>()).dev }
}

/// A callback the vDPA driver installed (`struct vdpa_callback`): virtqueue or config
/// interrupts.
#[derive(Clone, Copy)]
pub(crate) struct Callback {
    raw: ffi::vdpa_callback,
}

// SAFETY: The vDPA driver's callback may be called from any thread (it is an interrupt
// handler in spirit); the pointers are only passed back to it.
unsafe impl Send for Callback {}
// SAFETY: As above.
unsafe impl Sync for Callback {}

impl Callback {
    /// Copies a callback the vDPA core passed; `None` if it has no function.
    ///
    /// # Safety
    ///
    /// `cb` is NULL or valid for reads.
    unsafe fn from_raw(cb: *const ffi::vdpa_callback) -> Option<Self> {
        if cb.is_null() {
            return None;
        }
        // SAFETY: `cb` is valid for reads (caller).
        let raw = unsafe { *cb };
        raw.callback.map(|_| Self { raw })
    }

    /// Calls it. The caller holds the lock that `set_vq_cb`/`set_config_cb`/reset take to
    /// replace it, so the driver has not withdrawn it.
    pub(crate) fn call(&self) {
        if let Some(f) = self.raw.callback {
            // SAFETY: The vDPA driver guarantees that its callback and private data are valid
            // until it replaces them (see above).
            unsafe { f(self.raw.private) };
        }
    }
}

/// One mapping of a vDPA consumer's IOTLB (vhost-vdpa with `use_va`): IOVAs `start..=last`
/// backed by `file` from `offset`, with `VHOST_ACCESS_*` permissions `perm`.
pub(crate) struct IotlbMap {
    pub(crate) start: u64,
    pub(crate) last: u64,
    pub(crate) perm: u8,
    pub(crate) file: ARef<File>,
    pub(crate) offset: u64,
}

/// Copies the mappings of the consumer's IOTLB passed to `set_map`, each with a reference on
/// its file.
///
/// # Safety
///
/// `iotlb` is the valid `struct vhost_iotlb` of a `set_map` call, not changed during it.
unsafe fn read_iotlb(iotlb: *mut ffi::vhost_iotlb) -> Result<KVec<IotlbMap>> {
    let mut maps = KVec::new();
    // SAFETY: `iotlb` is valid (caller).
    let mut map = unsafe { ffi::vhost_iotlb_itree_first(iotlb, 0, u64::MAX) };
    while !map.is_null() {
        // SAFETY: `map` is a map of `iotlb`, valid while `iotlb` is unchanged.
        let m = unsafe { &*map };
        let mf = m.opaque.cast::<ffi::vdpa_map_file>();
        if mf.is_null() {
            // A `use_va` consumer passes a `vdpa_map_file` with every map.
            return Err(EINVAL);
        }
        // SAFETY: `mf` is the `vdpa_map_file` vhost-vdpa attached to the map, whose file it
        // holds a reference on; `ARef::from` takes one of ours. No fdget_pos is active here.
        let (file, offset) = unsafe { (ARef::from(File::from_raw_file((*mf).file)), (*mf).offset) };
        maps.push(
            IotlbMap {
                start: m.start,
                last: m.last,
                // CAST: `VHOST_ACCESS_*` fit in a byte (uAPI `perm` is a `__u8`).
                perm: m.perm as u8,
                file,
                offset,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: As above.
        map = unsafe { ffi::vhost_iotlb_itree_next(map, 0, u64::MAX) };
    }
    Ok(maps)
}

/// A vDPA device of a VDUSE device, from allocation until the vDPA core frees it.
///
/// # Invariants
///
/// `raw` was returned by `__vdpa_alloc_device` with [`VduseVdpa`]'s size and one of our op
/// tables; it stays valid until the `free` op runs, which clears the [`Device`]'s reference
/// to this object first.
#[derive(Clone, Copy)]
pub(crate) struct VdpaDev {
    raw: *mut ffi::vdpa_device,
}

// SAFETY: The vDPA functions used on it may be called from any thread.
unsafe impl Send for VdpaDev {}
// SAFETY: As above.
unsafe impl Sync for VdpaDev {}

/// The management device a `dev_add` call is for.
///
/// # Invariants
///
/// `raw` is our registered management device; a `MgmtRef` only exists during a `dev_add`
/// callback (it is created there and not `Clone`).
pub(crate) struct MgmtRef {
    raw: *mut ffi::vdpa_mgmt_dev,
}

impl VdpaDev {
    /// `vdpa_alloc_device()` for `dev`, child of its node `parent`, with the ops variant that
    /// has `suspend` when `suspend` is set. The device holds a reference on `dev` until freed.
    pub(crate) fn alloc(
        dev: &Arc<Device>,
        parent: &DeviceNode,
        mdev: &MgmtRef,
        name: &CStr,
        (ngroups, nas): (u32, u32),
        suspend: bool,
    ) -> Result<Self> {
        let ops = if suspend { &OPS_WITH_SUSPEND } else { &OPS };
        // SAFETY: `parent` is registered (type invariant of `DeviceNode`); the ops tables are
        // static; the size covers `VduseVdpa`, whose `vdpa_device` is at offset 0 (asserted
        // above); `name` is copied.
        let raw = from_err_ptr(unsafe {
            ffi::__vdpa_alloc_device(
                parent.as_raw(),
                ops,
                &MAP_OPS,
                ngroups,
                nas,
                core::mem::size_of::<VduseVdpa>(),
                name.as_char_ptr(),
                true,
            )
        })?;
        // SAFETY: `raw` was just allocated with room for `VduseVdpa`; nothing else uses it yet.
        // INVARIANT: The reference is given back by `free`.
        unsafe {
            (*raw.cast::<VduseVdpa>()).dev = Arc::into_raw(dev.clone());
            (*raw).mdev = mdev.raw;
        }
        Ok(Self { raw })
    }

    /// `_vdpa_register_device()` with `nvqs` virtqueues; on failure the device is released
    /// (`put_device`), which runs the `free` op.
    pub(crate) fn register(self, nvqs: u32) -> Result {
        // SAFETY: Valid (type invariant); called from `dev_add`, with `vdpa_dev_lock` held by
        // the vDPA core as `_vdpa_register_device` requires.
        let ret = unsafe { ffi::_vdpa_register_device(self.raw, nvqs) };
        if ret != 0 {
            // SAFETY: Drops the allocation's reference: the device is released and freed.
            unsafe { bindings::put_device(&raw mut (*self.raw).dev) };
        }
        to_result(ret)
    }
}

/// The management device `vduse`: a bare `struct device` (`/sys/devices/vduse`) and the
/// `struct vdpa_mgmt_dev` that `vdpa dev add ... mgmtdev vduse` finds.
#[repr(C)]
struct MgmtInner {
    mgmt: ffi::vdpa_mgmt_dev,
    dev: bindings::device,
    vduse: Arc<Vduse>,
}

/// The registered management device.
///
/// # Invariants
///
/// `inner` is a leaked `KBox<MgmtInner>` whose `dev` is registered and whose `mgmt` is
/// registered with the vDPA core; `drop` unregisters both, and the device's release frees the
/// box.
pub(crate) struct MgmtDev {
    inner: *mut MgmtInner,
}

// SAFETY: Unregistration may happen on any thread.
unsafe impl Send for MgmtDev {}
// SAFETY: `&MgmtDev` gives access to nothing.
unsafe impl Sync for MgmtDev {}

impl MgmtDev {
    /// Registers the management device `vduse` for the devices of `vduse`.
    pub(crate) fn register(vduse: Arc<Vduse>) -> Result<Self> {
        let inner = KBox::into_raw(KBox::new(
            MgmtInner {
                mgmt: pin_init::zeroed(),
                dev: pin_init::zeroed(),
                vduse,
            },
            GFP_KERNEL,
        )?);
        // SAFETY: `inner` is a valid allocation we own; the format takes no argument.
        let ret = unsafe { bindings::dev_set_name(&raw mut (*inner).dev, c"vduse".as_char_ptr()) };
        if ret != 0 {
            // SAFETY: Not registered: we still own the box.
            drop(unsafe { KBox::from_raw(inner) });
            return Err(Error::from_errno(ret));
        }
        // SAFETY: As above; from `device_register` on the device's release owns the box.
        let ret = unsafe {
            (*inner).dev.release = Some(mgmt_release);
            bindings::device_register(&raw mut (*inner).dev)
        };
        if ret != 0 {
            // SAFETY: `device_register` failed: drop its reference, the release frees the box.
            unsafe { bindings::put_device(&raw mut (*inner).dev) };
            return Err(Error::from_errno(ret));
        }
        // SAFETY: `inner` is alive (the device holds it); the tables are static and the vDPA
        // core only reads them.
        let ret = unsafe {
            (*inner).mgmt.id_table = ID_TABLE.as_ptr().cast_mut();
            (*inner).mgmt.ops = &MGMT_OPS;
            (*inner).mgmt.device = &raw mut (*inner).dev;
            ffi::vdpa_mgmtdev_register(&raw mut (*inner).mgmt)
        };
        if ret != 0 {
            // SAFETY: Registered above; the release frees the box.
            unsafe { bindings::device_unregister(&raw mut (*inner).dev) };
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: Both registrations succeeded.
        Ok(Self { inner })
    }
}

impl Drop for MgmtDev {
    fn drop(&mut self) {
        // SAFETY: Registered (type invariant). `vdpa_mgmtdev_unregister` deletes the vDPA
        // devices still on the bus (`dev_del`); then the device's release frees the box.
        unsafe {
            ffi::vdpa_mgmtdev_unregister(&raw mut (*self.inner).mgmt);
            bindings::device_unregister(&raw mut (*self.inner).dev);
        }
    }
}

/// # Safety
///
/// Called by the driver core when the last reference on the management device is gone.
unsafe extern "C" fn mgmt_release(dev: *mut bindings::device) {
    // SAFETY: `dev` is the `dev` field of a leaked `KBox<MgmtInner>` (type invariant of
    // `MgmtDev`); this is the last reference.
    let inner = unsafe { kernel::container_of!(dev, MgmtInner, dev) };
    // SAFETY: See above; reconstituted once.
    drop(unsafe { KBox::from_raw(inner) });
}

/// # Safety
///
/// Called by the vDPA core for `vdpa dev add NAME mgmtdev vduse`, with `vdpa_dev_lock` held.
unsafe extern "C" fn dev_add(
    mdev: *mut ffi::vdpa_mgmt_dev,
    name: *const c_char,
    _config: *const ffi::vdpa_dev_set_config,
) -> c_int {
    // SAFETY: `mdev` is the `mgmt` field of our `MgmtInner`, alive while registered.
    let inner = unsafe { &*kernel::container_of!(mdev, MgmtInner, mgmt) };
    // SAFETY: `name` is a NUL-terminated string from the vDPA core.
    let name = unsafe { CStr::from_char_ptr(name) };
    // INVARIANT: Our management device, for the duration of this callback.
    match inner.vduse.vdpa_dev_add(&MgmtRef { raw: mdev }, name) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the vDPA core for `vdpa dev del`, with `vdpa_dev_lock` held.
unsafe extern "C" fn dev_del(_mdev: *mut ffi::vdpa_mgmt_dev, vdpa: *mut ffi::vdpa_device) {
    // SAFETY: `vdpa` is one of ours, registered; the lock `_vdpa_unregister_device` needs is
    // held by the caller.
    unsafe { ffi::_vdpa_unregister_device(vdpa) };
}

/// `VIRTIO_DEV_ANY_ID`.
const VIRTIO_DEV_ANY_ID: u32 = 0xffff_ffff;

/// The device types listed by the management device (as in C, virtio-fs devices can be
/// created but are not listed).
static ID_TABLE: [ffi::virtio_device_id; 3] = [
    ffi::virtio_device_id {
        device: crate::device::virtio_id::BLOCK,
        vendor: VIRTIO_DEV_ANY_ID,
    },
    ffi::virtio_device_id {
        device: crate::device::virtio_id::NET,
        vendor: VIRTIO_DEV_ANY_ID,
    },
    ffi::virtio_device_id {
        device: 0,
        vendor: 0,
    },
];

static MGMT_OPS: ffi::vdpa_mgmtdev_ops = ffi::vdpa_mgmtdev_ops {
    dev_add: Some(dev_add),
    dev_del: Some(dev_del),
    ..pin_init::zeroed()
};

/// The `vdpa_config_ops` callbacks. Each is called by the vDPA core or a vDPA driver on one of
/// our devices (the `# Safety` of every function below).
mod ops {
    use super::*;

    macro_rules! dev {
        ($vdpa:expr) => {
            // SAFETY: The vDPA core only calls the ops of a device it holds, which was allocated
            // by `VdpaDev::alloc` and not freed.
            unsafe { device($vdpa) }
        };
    }

    /// The `set_vq_address` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_vq_address(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> c_int {
        dev!(vdpa).vdpa_set_vq_address(idx, desc, driver, device);
        0
    }

    /// The `set_vq_num` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_vq_num(vdpa: *mut ffi::vdpa_device, idx: u16, num: u32) {
        dev!(vdpa).vdpa_set_vq_num(idx, num)
    }

    /// The `get_vq_size` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_vq_size(vdpa: *mut ffi::vdpa_device, idx: u16) -> u16 {
        dev!(vdpa).vdpa_get_vq_size(idx)
    }

    /// The `kick_vq` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn kick_vq(vdpa: *mut ffi::vdpa_device, idx: u16) {
        dev!(vdpa).vdpa_kick_vq(idx)
    }

    /// The `set_vq_cb` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_vq_cb(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        cb: *mut ffi::vdpa_callback,
    ) {
        // SAFETY: `cb` is NULL or valid for reads (vDPA core).
        dev!(vdpa).vdpa_set_vq_cb(idx, unsafe { Callback::from_raw(cb) })
    }

    /// The `set_vq_ready` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_vq_ready(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        ready: bool,
    ) {
        dev!(vdpa).vdpa_set_vq_ready(idx, ready)
    }

    /// The `get_vq_ready` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_vq_ready(vdpa: *mut ffi::vdpa_device, idx: u16) -> bool {
        dev!(vdpa).vdpa_get_vq_ready(idx)
    }

    /// The `set_vq_state` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_vq_state(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        state: *const ffi::vdpa_vq_state,
    ) -> c_int {
        // SAFETY: `state` is valid for reads (vDPA core).
        let (split, packed) = unsafe { vq_state_words(&*state) };
        dev!(vdpa).vdpa_set_vq_state(idx, split, packed);
        0
    }

    /// The `get_vq_state` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_vq_state(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        state: *mut ffi::vdpa_vq_state,
    ) -> c_int {
        match dev!(vdpa).vdpa_get_vq_state(idx) {
            Ok((packed, words)) => {
                // SAFETY: `state` is valid for writes (vDPA core).
                unsafe { set_vq_state_words(&mut *state, packed, words) };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// The `get_vq_align` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_vq_align(vdpa: *mut ffi::vdpa_device) -> u32 {
        dev!(vdpa).vdpa_get_vq_align()
    }

    /// The `get_vq_group` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_vq_group(vdpa: *mut ffi::vdpa_device, idx: u16) -> u32 {
        dev!(vdpa).vdpa_get_vq_group(idx)
    }

    /// The `get_vq_map` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_vq_map(
        _vdpa: *mut ffi::vdpa_device,
        _idx: u16,
    ) -> ffi::virtio_map {
        // No IOVA domain yet: a NULL group makes every map op fail (see `MAP_OPS`).
        pin_init::zeroed()
    }

    /// The `get_device_features` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_device_features(vdpa: *mut ffi::vdpa_device) -> u64 {
        dev!(vdpa).vdpa_get_device_features()
    }

    /// The `set_driver_features` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_driver_features(
        vdpa: *mut ffi::vdpa_device,
        features: u64,
    ) -> c_int {
        dev!(vdpa).vdpa_set_driver_features(features);
        0
    }

    /// The `get_driver_features` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_driver_features(vdpa: *mut ffi::vdpa_device) -> u64 {
        dev!(vdpa).vdpa_get_driver_features()
    }

    /// The `set_config_cb` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_config_cb(
        vdpa: *mut ffi::vdpa_device,
        cb: *mut ffi::vdpa_callback,
    ) {
        // SAFETY: `cb` is NULL or valid for reads (vDPA core).
        dev!(vdpa).vdpa_set_config_cb(unsafe { Callback::from_raw(cb) })
    }

    /// The `get_vq_num_max` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_vq_num_max(vdpa: *mut ffi::vdpa_device) -> u16 {
        dev!(vdpa).vdpa_get_vq_num_max()
    }

    /// The `get_device_id` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_device_id(vdpa: *mut ffi::vdpa_device) -> u32 {
        dev!(vdpa).vdpa_get_device_id()
    }

    /// The `get_vendor_id` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_vendor_id(vdpa: *mut ffi::vdpa_device) -> u32 {
        dev!(vdpa).vdpa_get_vendor_id()
    }

    /// The `get_status` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_status(vdpa: *mut ffi::vdpa_device) -> u8 {
        dev!(vdpa).vdpa_get_status()
    }

    /// The `set_status` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_status(vdpa: *mut ffi::vdpa_device, status: u8) {
        dev!(vdpa).vdpa_set_status(status)
    }

    /// The `get_config_size` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_config_size(vdpa: *mut ffi::vdpa_device) -> usize {
        dev!(vdpa).vdpa_get_config_size()
    }

    /// The `get_config` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_config(
        vdpa: *mut ffi::vdpa_device,
        offset: c_uint,
        buf: *mut c_void,
        len: c_uint,
    ) {
        // SAFETY: `buf` is valid for writes of `len` bytes (vDPA core).
        let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize) };
        dev!(vdpa).vdpa_get_config(offset, out)
    }

    /// The `set_config` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_config(
        _vdpa: *mut ffi::vdpa_device,
        _offset: c_uint,
        _buf: *const c_void,
        _len: c_uint,
    ) {
        // The configuration space is read-only for the driver, as in C.
    }

    /// The `get_generation` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn get_generation(vdpa: *mut ffi::vdpa_device) -> u32 {
        dev!(vdpa).vdpa_get_generation()
    }

    /// The `reset` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn reset(vdpa: *mut ffi::vdpa_device) -> c_int {
        match dev!(vdpa).vdpa_reset() {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// The `set_map` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_map(
        vdpa: *mut ffi::vdpa_device,
        asid: c_uint,
        iotlb: *mut ffi::vhost_iotlb,
    ) -> c_int {
        // SAFETY: `iotlb` is the consumer's IOTLB for this call (vDPA core).
        let maps = match unsafe { read_iotlb(iotlb) } {
            Ok(maps) => maps,
            Err(e) => return e.to_errno(),
        };
        match dev!(vdpa).vdpa_set_map(asid, maps) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// The `set_group_asid` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn set_group_asid(
        vdpa: *mut ffi::vdpa_device,
        group: c_uint,
        asid: c_uint,
    ) -> c_int {
        match dev!(vdpa).vdpa_set_group_asid(group, asid) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// The `suspend` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn suspend(vdpa: *mut ffi::vdpa_device) -> c_int {
        match dev!(vdpa).vdpa_suspend() {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// The `free` op.
    ///
    /// # Safety
    ///
    /// Called by the vDPA core or a vDPA driver on one of our live devices, with the
    /// arguments `struct vdpa_config_ops` documents.
    pub(super) unsafe extern "C" fn free(vdpa: *mut ffi::vdpa_device) {
        // SAFETY: The vDPA core frees the device after this: give back the reference `alloc`
        // stored (type invariant of `VduseVdpa`).
        let dev = unsafe { Arc::from_raw((*vdpa.cast::<VduseVdpa>()).dev) };
        dev.vdpa_free();
    }

    /// Both readings of a `struct vdpa_vq_state`: the split ring's `avail_index`, and the
    /// packed ring's counters and indexes (unpacked from their bitfields).
    ///
    /// # Safety
    ///
    /// None beyond `state` being a valid reference; `unsafe` for the union access.
    unsafe fn vq_state_words(state: &ffi::vdpa_vq_state) -> (u16, [u16; 4]) {
        // SAFETY: Both members are plain data; which one is meaningful is decided by the caller
        // from the negotiated features, as in C.
        let (split, p) = unsafe {
            (
                state.__bindgen_anon_1.split.as_ref(),
                state.__bindgen_anon_1.packed.as_ref(),
            )
        };
        (
            split.avail_index,
            [
                p.last_avail_counter(),
                p.last_avail_idx(),
                p.last_used_counter(),
                p.last_used_idx(),
            ],
        )
    }

    /// Fills a `struct vdpa_vq_state` from a `VDUSE_GET_VQ_STATE` response's four words.
    ///
    /// # Safety
    ///
    /// None beyond `state` being a valid reference; `unsafe` for the union access.
    unsafe fn set_vq_state_words(state: &mut ffi::vdpa_vq_state, packed: bool, w: [u16; 4]) {
        // SAFETY: Writing plain data into the union member that `packed` selects.
        unsafe {
            if packed {
                let p = state.__bindgen_anon_1.packed.as_mut();
                p.set_last_avail_counter(w[0] & 1);
                p.set_last_avail_idx(w[1] & 0x7fff);
                p.set_last_used_counter(w[2] & 1);
                p.set_last_used_idx(w[3] & 0x7fff);
            } else {
                state.__bindgen_anon_1.split.as_mut().avail_index = w[0];
            }
        }
    }
}

/// The op table without `suspend` (device created without `VDUSE_F_SUSPEND`).
static OPS: ffi::vdpa_config_ops = ffi::vdpa_config_ops {
    set_vq_address: Some(ops::set_vq_address),
    set_vq_num: Some(ops::set_vq_num),
    get_vq_size: Some(ops::get_vq_size),
    kick_vq: Some(ops::kick_vq),
    set_vq_cb: Some(ops::set_vq_cb),
    set_vq_ready: Some(ops::set_vq_ready),
    get_vq_ready: Some(ops::get_vq_ready),
    set_vq_state: Some(ops::set_vq_state),
    get_vq_state: Some(ops::get_vq_state),
    get_vq_align: Some(ops::get_vq_align),
    get_vq_group: Some(ops::get_vq_group),
    get_vq_map: Some(ops::get_vq_map),
    get_device_features: Some(ops::get_device_features),
    set_driver_features: Some(ops::set_driver_features),
    get_driver_features: Some(ops::get_driver_features),
    set_config_cb: Some(ops::set_config_cb),
    get_vq_num_max: Some(ops::get_vq_num_max),
    get_device_id: Some(ops::get_device_id),
    get_vendor_id: Some(ops::get_vendor_id),
    get_status: Some(ops::get_status),
    set_status: Some(ops::set_status),
    reset: Some(ops::reset),
    get_config_size: Some(ops::get_config_size),
    get_config: Some(ops::get_config),
    set_config: Some(ops::set_config),
    get_generation: Some(ops::get_generation),
    set_map: Some(ops::set_map),
    set_group_asid: Some(ops::set_group_asid),
    free: Some(ops::free),
    ..pin_init::zeroed()
};

/// The op table with `suspend` (`VDUSE_F_SUSPEND`).
static OPS_WITH_SUSPEND: ffi::vdpa_config_ops = ffi::vdpa_config_ops {
    suspend: Some(ops::suspend),
    ..OPS
};

/// Map operations for `virtio_vdpa`. The bounce-buffer IOVA domain is not implemented yet:
/// every mapping and allocation fails, so a virtio driver bound through `virtio_vdpa` fails its
/// probe with `ENOMEM` instead of touching memory it has no mapping for.
static MAP_OPS: ffi::virtio_map_ops = ffi::virtio_map_ops {
    map_page: Some(map_page),
    unmap_page: Some(unmap_page),
    alloc: Some(map_alloc),
    free: Some(map_free),
    mapping_error: Some(mapping_error),
    ..pin_init::zeroed()
};

/// `DMA_MAPPING_ERROR`.
const DMA_MAPPING_ERROR: u64 = !0;

/// The `map_page` map op.
///
/// # Safety
///
/// Called by the virtio core with the arguments `struct virtio_map_ops` documents.
unsafe extern "C" fn map_page(
    _map: ffi::virtio_map,
    _page: *mut bindings::page,
    _offset: c_ulong,
    _size: usize,
    _dir: bindings::dma_data_direction,
    _attrs: c_ulong,
) -> bindings::dma_addr_t {
    DMA_MAPPING_ERROR
}

/// The `unmap_page` map op.
///
/// # Safety
///
/// Called by the virtio core with the arguments `struct virtio_map_ops` documents.
unsafe extern "C" fn unmap_page(
    _map: ffi::virtio_map,
    _handle: bindings::dma_addr_t,
    _size: usize,
    _dir: bindings::dma_data_direction,
    _attrs: c_ulong,
) {
}

/// The `map_alloc` map op.
///
/// # Safety
///
/// Called by the virtio core with the arguments `struct virtio_map_ops` documents.
unsafe extern "C" fn map_alloc(
    _map: ffi::virtio_map,
    _size: usize,
    _handle: *mut bindings::dma_addr_t,
    _gfp: bindings::gfp_t,
) -> *mut c_void {
    core::ptr::null_mut()
}

/// The `map_free` map op.
///
/// # Safety
///
/// Called by the virtio core with the arguments `struct virtio_map_ops` documents.
unsafe extern "C" fn map_free(
    _map: ffi::virtio_map,
    _size: usize,
    _vaddr: *mut c_void,
    _handle: bindings::dma_addr_t,
    _attrs: c_ulong,
) {
}

/// The `mapping_error` map op.
///
/// # Safety
///
/// Called by the virtio core with the arguments `struct virtio_map_ops` documents.
unsafe extern "C" fn mapping_error(_map: ffi::virtio_map, handle: bindings::dma_addr_t) -> c_int {
    if handle == DMA_MAPPING_ERROR {
        ENOMEM.to_errno()
    } else {
        0
    }
}
