// SPDX-License-Identifier: GPL-2.0

//! The configuration operations of a vDPA device (`struct vdpa_config_ops`), implemented by a
//! Rust type, and the interrupt callbacks the vDPA driver installs through them.
//!
//! C header: [`include/linux/vdpa.h`](srctree/include/linux/vdpa.h).
//!
//! The vDPA core and the vDPA drivers above it (`virtio_vdpa`, `vhost_vdpa`) call these on a
//! device allocated with [`super::device::VdpaDevice::alloc`], whose driver data is a
//! [`ConfigOps::Ptr`] until the `free` op takes it back. Optional operations are left NULL when
//! the implementation does not define them, as `MiscdeviceVTable` does with `mmap`: a type
//! without [`ConfigOps::suspend`] gives a device that cannot be suspended.

use super::{
    alloc::DeviceAlloc,
    iotlb::Iotlb, //
};
use crate::{
    ffi,
    kapi::{
        cpumask::CpuMask,
        spinlock_bh::{
            new_spinlock_bh,
            SpinLockBh, //
        },
    },
};
use core::marker::PhantomData;
use kernel::{
    error::VTABLE_DEFAULT_ERROR,
    prelude::*,
    types::ForeignOwnable, //
};

/// The driver data of a device, borrowed for the duration of an op.
pub(crate) type Borrowed<'a, T> = <<T as ConfigOps>::Ptr as ForeignOwnable>::Borrowed<'a>;

/// The state of a virtqueue as `set_vq_state` passes it, in both readings of `struct
/// vdpa_vq_state` (which one holds is decided by the negotiated `VIRTIO_F_RING_PACKED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VqStateWords {
    /// The split ring's `avail_index`.
    pub(crate) split_avail_index: u16,
    /// The packed ring's `last_avail_counter`, `last_avail_idx`, `last_used_counter`,
    /// `last_used_idx`.
    pub(crate) packed: [u16; 4],
}

/// The state of a virtqueue as `get_vq_state` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VqState {
    /// A split ring's `avail_index`.
    Split(u16),
    /// A packed ring's `last_avail_counter`, `last_avail_idx`, `last_used_counter`,
    /// `last_used_idx` (counters 1 bit, indexes 15 bits; higher bits are dropped).
    Packed([u16; 4]),
}

/// A callback the vDPA driver installs (`struct vdpa_callback`) with `set_vq_cb` or
/// `set_config_cb`, for the duration of that op. It can only be stored into a
/// [`CallbackSlot`], which is the only place it is called from.
pub(crate) struct Callback<'a> {
    raw: ffi::vdpa_callback,
    _op: PhantomData<&'a ()>,
}

/// An installed callback.
///
/// # Invariants
///
/// `callback` is `Some`; the vDPA driver keeps it and `private` valid until it installs another
/// callback in its place or resets the device.
struct Installed(ffi::vdpa_callback);

// SAFETY: The vDPA driver's callback may be called from any CPU and context (it is an interrupt
// handler in spirit); `private` is only passed back to it.
unsafe impl Send for Installed {}

/// Where a device keeps the callback of one virtqueue, or its config callback.
///
/// # Invariants
///
/// `cb` holds the callback of the most recent [`CallbackSlot::set`] (or nothing after
/// [`CallbackSlot::clear`]). Implementations of [`ConfigOps`] store every callback they receive
/// in its slot within the op, and clear the slots in `reset`, so a slot never holds a callback
/// the vDPA driver withdrew.
///
/// The slot's lock is a leaf, taken with bottom halves disabled (C's `spin_lock_bh(irq_lock)`
/// around the callback): the callback runs with softirqs held off, and those it raises (a
/// `napi_schedule`, a block-layer completion) run as the lock is released, in the calling
/// thread, not in `ksoftirqd`. Every method runs in process context, interrupts enabled.
#[pin_data]
pub(crate) struct CallbackSlot {
    #[pin]
    inner: SpinLockBh<Slot>,
}

/// What a [`CallbackSlot`] holds.
#[derive(Default)]
struct Slot {
    cb: Option<Installed>,
    /// Muted (the device is suspended): the callback is kept but not called.
    muted: bool,
}

impl CallbackSlot {
    /// An empty slot.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock_bh!(Slot::default(), "CallbackSlot::inner"),
        })
    }

    /// Installs `cb` (from the `set_vq_cb` or `set_config_cb` op being run), replacing the
    /// previous callback; a callback without a function empties the slot.
    pub(crate) fn set(&self, cb: Callback<'_>) {
        // INVARIANT: Only a callback with a function is kept.
        self.inner.lock().cb = cb.raw.callback.map(|_| Installed(cb.raw));
    }

    /// Empties and unmutes the slot (device reset).
    pub(crate) fn clear(&self) {
        *self.inner.lock() = Slot::default();
    }

    /// Mutes the slot until [`CallbackSlot::clear`]: when this returns, a callback running on
    /// another CPU has returned and none will be called (a barrier, as C's suspend gets from
    /// `cancel_work_sync` on its injection work).
    pub(crate) fn mute(&self) {
        self.inner.lock().muted = true;
    }

    /// Calls the installed callback, if any and not muted, under the slot's lock (so that it
    /// cannot be replaced, and the slot not muted, while it runs), then `then` (still under
    /// the lock, on the same CPU); returns whether it was called. Process context, interrupts
    /// enabled; the vDPA driver's callback must not sleep.
    pub(crate) fn call(&self, then: impl FnOnce()) -> bool {
        let guard = self.inner.lock();
        let Some(Installed(raw)) = guard.cb.as_ref() else {
            return false;
        };
        if guard.muted {
            return false;
        }
        if let Some(f) = raw.callback {
            // SAFETY: The callback is installed, so the vDPA driver has not withdrawn it (type
            // invariant of `Installed`), and it cannot be replaced while we hold the lock.
            unsafe { f(raw.private) };
        }
        then();
        true
    }
}

/// The configuration operations of a vDPA device.
///
/// Each op receives the device's driver data, borrowed. Unless its doc says otherwise, an op
/// runs in process context and may sleep.
#[vtable]
pub(crate) trait ConfigOps: Sized {
    /// The driver data: a pointer the device holds until `free`.
    type Ptr: ForeignOwnable + Send + Sync;

    /// `set_vq_address`: the descriptor, driver and device areas of virtqueue `idx`.
    fn set_vq_address(
        this: Borrowed<'_, Self>,
        idx: u16,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> Result;
    /// `set_vq_num`: the size of virtqueue `idx`.
    fn set_vq_num(this: Borrowed<'_, Self>, idx: u16, num: u32);
    /// `get_vq_size`.
    fn get_vq_size(_this: Borrowed<'_, Self>, _idx: u16) -> u16 {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `kick_vq`: the driver made buffers available. Called in atomic context, even in softirq
    /// (a virtqueue notify under a network queue lock): must not sleep, and every lock it
    /// takes must be taken with interrupts (or bottom halves) disabled everywhere.
    fn kick_vq(this: Borrowed<'_, Self>, idx: u16);
    /// `set_vq_cb`: the interrupt callback of virtqueue `idx`; store it in its slot.
    fn set_vq_cb(this: Borrowed<'_, Self>, idx: u16, cb: Callback<'_>);
    /// `set_vq_ready`.
    fn set_vq_ready(this: Borrowed<'_, Self>, idx: u16, ready: bool);
    /// `get_vq_ready`.
    fn get_vq_ready(this: Borrowed<'_, Self>, idx: u16) -> bool;
    /// `set_vq_state`.
    fn set_vq_state(this: Borrowed<'_, Self>, idx: u16, state: VqStateWords) -> Result;
    /// `get_vq_state`.
    fn get_vq_state(this: Borrowed<'_, Self>, idx: u16) -> Result<VqState>;
    /// `get_vq_align`.
    fn get_vq_align(this: Borrowed<'_, Self>) -> u32;
    /// `get_vq_group`.
    fn get_vq_group(_this: Borrowed<'_, Self>, _idx: u16) -> u32 {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `get_vq_map`: the group (below the device's `ngroups`) whose mapping operations
    /// ([`super::MapOps`]) serve virtqueue `idx`; `None` makes every map op of that queue fail.
    fn get_vq_map(_this: Borrowed<'_, Self>, _idx: u16) -> Option<u32> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `get_device_features`.
    fn get_device_features(this: Borrowed<'_, Self>) -> u64;
    /// `set_driver_features`.
    fn set_driver_features(this: Borrowed<'_, Self>, features: u64) -> Result;
    /// `get_driver_features`.
    fn get_driver_features(this: Borrowed<'_, Self>) -> u64;
    /// `set_config_cb`: the config interrupt callback; store it in its slot.
    fn set_config_cb(this: Borrowed<'_, Self>, cb: Callback<'_>);
    /// `get_vq_num_max`.
    fn get_vq_num_max(this: Borrowed<'_, Self>) -> u16;
    /// `get_device_id`.
    fn get_device_id(this: Borrowed<'_, Self>) -> u32;
    /// `get_vendor_id`.
    fn get_vendor_id(this: Borrowed<'_, Self>) -> u32;
    /// `get_status`.
    fn get_status(this: Borrowed<'_, Self>) -> u8;
    /// `set_status`.
    fn set_status(this: Borrowed<'_, Self>, status: u8);
    /// `reset`: must clear every [`CallbackSlot`] of the device.
    fn reset(_this: Borrowed<'_, Self>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `get_config_size`.
    fn get_config_size(this: Borrowed<'_, Self>) -> usize;
    /// `get_config`: `out.len()` bytes of the configuration space from `offset`.
    fn get_config(this: Borrowed<'_, Self>, offset: u32, out: &mut [u8]);
    /// `set_config`: the driver writes `data` at `offset`.
    fn set_config(this: Borrowed<'_, Self>, offset: u32, data: &[u8]);
    /// `get_generation`.
    fn get_generation(_this: Borrowed<'_, Self>) -> u32 {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `set_map`: the consumer's whole IOTLB of address space `asid`.
    fn set_map(_this: Borrowed<'_, Self>, _asid: u32, _iotlb: &Iotlb<'_>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `set_group_asid`.
    fn set_group_asid(_this: Borrowed<'_, Self>, _group: u32, _asid: u32) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `set_vq_affinity`: the CPUs virtqueue `idx`'s interrupt callback should run on (`None`:
    /// all).
    fn set_vq_affinity(_this: Borrowed<'_, Self>, _idx: u16, _mask: Option<CpuMask>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `get_vq_affinity`: the CPUs virtqueue `idx`'s interrupt callback runs on, if known.
    fn get_vq_affinity(_this: Borrowed<'_, Self>, _idx: u16) -> Option<CpuMask> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `suspend`; without it the device cannot be suspended.
    fn suspend(_this: Borrowed<'_, Self>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `free`: the vDPA core releases the device; the driver data is handed back.
    fn free(this: Self::Ptr);
}

/// The `struct vdpa_config_ops` of `T`.
pub(crate) struct ConfigOpsVTable<T: ConfigOps>(PhantomData<T>);

/// Converts an op result to the `int` C expects.
fn to_errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

impl<T: ConfigOps> ConfigOpsVTable<T> {
    /// The table.
    pub(crate) const VTABLE: ffi::vdpa_config_ops = ffi::vdpa_config_ops {
        set_vq_address: Some(Self::set_vq_address),
        set_vq_num: Some(Self::set_vq_num),
        get_vq_size: if T::HAS_GET_VQ_SIZE {
            Some(Self::get_vq_size)
        } else {
            None
        },
        kick_vq: Some(Self::kick_vq),
        set_vq_cb: Some(Self::set_vq_cb),
        set_vq_ready: Some(Self::set_vq_ready),
        get_vq_ready: Some(Self::get_vq_ready),
        set_vq_state: Some(Self::set_vq_state),
        get_vq_state: Some(Self::get_vq_state),
        get_vq_align: Some(Self::get_vq_align),
        get_vq_group: if T::HAS_GET_VQ_GROUP {
            Some(Self::get_vq_group)
        } else {
            None
        },
        get_vq_map: if T::HAS_GET_VQ_MAP {
            Some(Self::get_vq_map)
        } else {
            None
        },
        get_device_features: Some(Self::get_device_features),
        set_driver_features: Some(Self::set_driver_features),
        get_driver_features: Some(Self::get_driver_features),
        set_config_cb: Some(Self::set_config_cb),
        get_vq_num_max: Some(Self::get_vq_num_max),
        get_device_id: Some(Self::get_device_id),
        get_vendor_id: Some(Self::get_vendor_id),
        get_status: Some(Self::get_status),
        set_status: Some(Self::set_status),
        reset: if T::HAS_RESET {
            Some(Self::reset)
        } else {
            None
        },
        get_config_size: Some(Self::get_config_size),
        get_config: Some(Self::get_config),
        set_config: Some(Self::set_config),
        get_generation: if T::HAS_GET_GENERATION {
            Some(Self::get_generation)
        } else {
            None
        },
        set_map: if T::HAS_SET_MAP {
            Some(Self::set_map)
        } else {
            None
        },
        set_group_asid: if T::HAS_SET_GROUP_ASID {
            Some(Self::set_group_asid)
        } else {
            None
        },
        set_vq_affinity: if T::HAS_SET_VQ_AFFINITY {
            Some(Self::set_vq_affinity)
        } else {
            None
        },
        get_vq_affinity: if T::HAS_GET_VQ_AFFINITY {
            Some(Self::get_vq_affinity)
        } else {
            None
        },
        suspend: if T::HAS_SUSPEND {
            Some(Self::suspend)
        } else {
            None
        },
        free: Some(Self::free),
        ..pin_init::zeroed()
    };

    /// The driver data of `vdpa`, borrowed.
    ///
    /// # Safety
    ///
    /// `vdpa` is a live device allocated with this table (its `free` op has not run).
    unsafe fn this<'a>(vdpa: *mut ffi::vdpa_device) -> Borrowed<'a, T> {
        // SAFETY: A live device allocated with this table (the caller), so its driver data is a
        // `T::Ptr`; the vDPA core calls no other op concurrently with or after `free`.
        unsafe { DeviceAlloc::data::<T::Ptr>(DeviceAlloc::of(vdpa)) }
    }

    // Every op below: # Safety: called by the vDPA core or a vDPA driver on a live device
    // allocated with this table, with the arguments `struct vdpa_config_ops` documents.

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn set_vq_address(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        desc: u64,
        driver: u64,
        device: u64,
    ) -> c_int {
        // SAFETY: A live device of this table.
        to_errno(T::set_vq_address(
            unsafe { Self::this(vdpa) },
            idx,
            desc,
            driver,
            device,
        ))
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn set_vq_num(vdpa: *mut ffi::vdpa_device, idx: u16, num: u32) {
        // SAFETY: A live device of this table.
        T::set_vq_num(unsafe { Self::this(vdpa) }, idx, num)
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_vq_size(vdpa: *mut ffi::vdpa_device, idx: u16) -> u16 {
        // SAFETY: A live device of this table.
        T::get_vq_size(unsafe { Self::this(vdpa) }, idx)
    }

    /// # Safety
    ///
    /// See above. May be called in atomic context.
    unsafe extern "C" fn kick_vq(vdpa: *mut ffi::vdpa_device, idx: u16) {
        // SAFETY: A live device of this table.
        T::kick_vq(unsafe { Self::this(vdpa) }, idx)
    }

    /// The callback `cb` points to, for the duration of the op.
    ///
    /// # Safety
    ///
    /// `cb` is NULL or valid for reads.
    unsafe fn callback<'a>(cb: *const ffi::vdpa_callback) -> Callback<'a> {
        let raw = if cb.is_null() {
            pin_init::zeroed()
        } else {
            // SAFETY: Valid for reads (caller).
            unsafe { *cb }
        };
        Callback {
            raw,
            _op: PhantomData,
        }
    }

    /// # Safety
    ///
    /// See above; `cb` is NULL or valid for reads.
    unsafe extern "C" fn set_vq_cb(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        cb: *mut ffi::vdpa_callback,
    ) {
        // SAFETY: A live device of this table; `cb` per the op's contract.
        T::set_vq_cb(unsafe { Self::this(vdpa) }, idx, unsafe {
            Self::callback(cb)
        })
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn set_vq_ready(vdpa: *mut ffi::vdpa_device, idx: u16, ready: bool) {
        // SAFETY: A live device of this table.
        T::set_vq_ready(unsafe { Self::this(vdpa) }, idx, ready)
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_vq_ready(vdpa: *mut ffi::vdpa_device, idx: u16) -> bool {
        // SAFETY: A live device of this table.
        T::get_vq_ready(unsafe { Self::this(vdpa) }, idx)
    }

    /// # Safety
    ///
    /// See above; `state` is valid for reads.
    unsafe extern "C" fn set_vq_state(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        state: *const ffi::vdpa_vq_state,
    ) -> c_int {
        // SAFETY: `state` is valid for reads (vDPA core). Every member of a C union starts at
        // the union's address, which the union's alignment makes aligned for each (read through
        // a cast rather than a bindgen accessor: whether bindgen makes the union a Rust `union`
        // or a struct of `__BindgenUnionField`s depends on what else it binds). Both members are
        // plain data; which one is meaningful is for the implementation to decide from the
        // features.
        let words = unsafe {
            let union = &raw const (*state).__bindgen_anon_1;
            let split = &*union.cast::<ffi::vdpa_vq_state_split>();
            let p = &*union.cast::<ffi::vdpa_vq_state_packed>();
            VqStateWords {
                split_avail_index: split.avail_index,
                packed: [
                    p.last_avail_counter(),
                    p.last_avail_idx(),
                    p.last_used_counter(),
                    p.last_used_idx(),
                ],
            }
        };
        // SAFETY: A live device of this table.
        to_errno(T::set_vq_state(unsafe { Self::this(vdpa) }, idx, words))
    }

    /// # Safety
    ///
    /// See above; `state` is valid for writes.
    unsafe extern "C" fn get_vq_state(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        state: *mut ffi::vdpa_vq_state,
    ) -> c_int {
        // SAFETY: A live device of this table.
        match T::get_vq_state(unsafe { Self::this(vdpa) }, idx) {
            // SAFETY: `state` is valid for writes (vDPA core); writing plain data into the
            // union member the state is for, at the union's address (as in `set_vq_state`).
            Ok(VqState::Split(avail)) => unsafe {
                let union = &raw mut (*state).__bindgen_anon_1;
                (*union.cast::<ffi::vdpa_vq_state_split>()).avail_index = avail;
                0
            },
            // SAFETY: As above.
            Ok(VqState::Packed(w)) => unsafe {
                let union = &raw mut (*state).__bindgen_anon_1;
                let p = &mut *union.cast::<ffi::vdpa_vq_state_packed>();
                p.set_last_avail_counter(w[0] & 1);
                p.set_last_avail_idx(w[1] & 0x7fff);
                p.set_last_used_counter(w[2] & 1);
                p.set_last_used_idx(w[3] & 0x7fff);
                0
            },
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_vq_align(vdpa: *mut ffi::vdpa_device) -> u32 {
        // SAFETY: A live device of this table.
        T::get_vq_align(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_vq_group(vdpa: *mut ffi::vdpa_device, idx: u16) -> u32 {
        // SAFETY: A live device of this table.
        T::get_vq_group(unsafe { Self::this(vdpa) }, idx)
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_vq_map(vdpa: *mut ffi::vdpa_device, idx: u16) -> ffi::virtio_map {
        // SAFETY: A live device of this table.
        let group = T::get_vq_map(unsafe { Self::this(vdpa) }, idx);
        // SAFETY: A live device.
        let (groups, ngroups) = unsafe { DeviceAlloc::groups(DeviceAlloc::of(vdpa)) };
        match group {
            // The token lives until `free`; the map ops of the device (`MapOpsVTable<T>`)
            // read it back.
            Some(g) if g < ngroups && !groups.is_null() => ffi::virtio_map {
                // SAFETY: `g` is in bounds of the token buffer.
                group: unsafe { groups.add(g as usize) }.cast(),
            },
            // A NULL token: every map op fails.
            _ => pin_init::zeroed(),
        }
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_device_features(vdpa: *mut ffi::vdpa_device) -> u64 {
        // SAFETY: A live device of this table.
        T::get_device_features(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn set_driver_features(vdpa: *mut ffi::vdpa_device, features: u64) -> c_int {
        // SAFETY: A live device of this table.
        to_errno(T::set_driver_features(
            unsafe { Self::this(vdpa) },
            features,
        ))
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_driver_features(vdpa: *mut ffi::vdpa_device) -> u64 {
        // SAFETY: A live device of this table.
        T::get_driver_features(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above; `cb` is NULL or valid for reads.
    unsafe extern "C" fn set_config_cb(vdpa: *mut ffi::vdpa_device, cb: *mut ffi::vdpa_callback) {
        // SAFETY: A live device of this table; `cb` per the op's contract.
        T::set_config_cb(unsafe { Self::this(vdpa) }, unsafe { Self::callback(cb) })
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_vq_num_max(vdpa: *mut ffi::vdpa_device) -> u16 {
        // SAFETY: A live device of this table.
        T::get_vq_num_max(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_device_id(vdpa: *mut ffi::vdpa_device) -> u32 {
        // SAFETY: A live device of this table.
        T::get_device_id(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_vendor_id(vdpa: *mut ffi::vdpa_device) -> u32 {
        // SAFETY: A live device of this table.
        T::get_vendor_id(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_status(vdpa: *mut ffi::vdpa_device) -> u8 {
        // SAFETY: A live device of this table.
        T::get_status(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn set_status(vdpa: *mut ffi::vdpa_device, status: u8) {
        // SAFETY: A live device of this table.
        T::set_status(unsafe { Self::this(vdpa) }, status)
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn reset(vdpa: *mut ffi::vdpa_device) -> c_int {
        // SAFETY: A live device of this table.
        to_errno(T::reset(unsafe { Self::this(vdpa) }))
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_config_size(vdpa: *mut ffi::vdpa_device) -> usize {
        // SAFETY: A live device of this table.
        T::get_config_size(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above; `buf` is valid for writes of `len` bytes.
    unsafe extern "C" fn get_config(
        vdpa: *mut ffi::vdpa_device,
        offset: c_uint,
        buf: *mut c_void,
        len: c_uint,
    ) {
        // SAFETY: `buf` is valid for writes of `len` bytes (vDPA core).
        let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize) };
        // SAFETY: A live device of this table.
        T::get_config(unsafe { Self::this(vdpa) }, offset, out)
    }

    /// # Safety
    ///
    /// See above; `buf` is valid for reads of `len` bytes.
    unsafe extern "C" fn set_config(
        vdpa: *mut ffi::vdpa_device,
        offset: c_uint,
        buf: *const c_void,
        len: c_uint,
    ) {
        // SAFETY: `buf` is valid for reads of `len` bytes (vDPA core).
        let data = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
        // SAFETY: A live device of this table.
        T::set_config(unsafe { Self::this(vdpa) }, offset, data)
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_generation(vdpa: *mut ffi::vdpa_device) -> u32 {
        // SAFETY: A live device of this table.
        T::get_generation(unsafe { Self::this(vdpa) })
    }

    /// # Safety
    ///
    /// See above; `iotlb` is the consumer's IOTLB, unchanged during the call.
    unsafe extern "C" fn set_map(
        vdpa: *mut ffi::vdpa_device,
        asid: c_uint,
        iotlb: *mut ffi::vhost_iotlb,
    ) -> c_int {
        // SAFETY: Per the op's contract.
        let iotlb = unsafe { Iotlb::from_raw(iotlb) };
        // SAFETY: A live device of this table.
        to_errno(T::set_map(unsafe { Self::this(vdpa) }, asid, &iotlb))
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn set_group_asid(
        vdpa: *mut ffi::vdpa_device,
        group: c_uint,
        asid: c_uint,
    ) -> c_int {
        // SAFETY: A live device of this table.
        to_errno(T::set_group_asid(unsafe { Self::this(vdpa) }, group, asid))
    }

    /// # Safety
    ///
    /// See above; `mask` is NULL or valid for reads.
    unsafe extern "C" fn set_vq_affinity(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
        mask: *const kernel::bindings::cpumask,
    ) -> c_int {
        // SAFETY: NULL or valid for reads (vDPA driver).
        let mask = (!mask.is_null()).then(|| unsafe { CpuMask::from_raw(mask) });
        // SAFETY: A live device of this table.
        to_errno(T::set_vq_affinity(unsafe { Self::this(vdpa) }, idx, mask))
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn get_vq_affinity(
        vdpa: *mut ffi::vdpa_device,
        idx: u16,
    ) -> *const kernel::bindings::cpumask {
        // SAFETY: A live device of this table.
        let Some(mask) = T::get_vq_affinity(unsafe { Self::this(vdpa) }, idx) else {
            return core::ptr::null();
        };
        // SAFETY: A live device.
        let (slots, n) = unsafe { DeviceAlloc::affinity(DeviceAlloc::of(vdpa)) };
        if slots.is_null() || usize::from(idx) >= n {
            return core::ptr::null();
        }
        // SAFETY: `idx` is in bounds of the buffer, which lives until `free`. Callers of the
        // same queue's op store the same bytes (C's `&vq->irq_affinity` is read the same way,
        // unlocked); the write is volatile so that it is not elided.
        unsafe {
            let slot = slots.add(usize::from(idx));
            core::ptr::write_volatile(slot, *mask.as_raw());
            slot
        }
    }

    /// # Safety
    ///
    /// See above.
    unsafe extern "C" fn suspend(vdpa: *mut ffi::vdpa_device) -> c_int {
        // SAFETY: A live device of this table.
        to_errno(T::suspend(unsafe { Self::this(vdpa) }))
    }

    /// # Safety
    ///
    /// See above; the vDPA core frees the device after this returns.
    unsafe extern "C" fn free(vdpa: *mut ffi::vdpa_device) {
        // SAFETY: The `free` op of a device of this table, whose driver data is a `T::Ptr`:
        // called once by the vDPA core, and no other op runs concurrently or afterwards.
        let data = unsafe { DeviceAlloc::take::<T::Ptr>(DeviceAlloc::of(vdpa)) };
        T::free(data);
    }
}
