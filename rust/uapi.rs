// SPDX-License-Identifier: GPL-2.0

//! Rust mirror of the VDUSE uAPI.
//!
//! uAPI: [`include/uapi/linux/vduse.h`](../include/uapi/linux/vduse.h) (Linux 7.3, copied into
//! this repository). Every struct is `#[repr(C)]` with its padding spelled out as named fields,
//! so that `FromBytes`/`AsBytes` hold and no uninitialised byte ever reaches userspace. The sizes
//! are checked at compile time against the values the C header gives on x86_64.

use kernel::{
    ioctl::{
        _IO,
        _IOR,
        _IOW,
        _IOWR, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
};

/// The ioctl type byte of VDUSE.
const VDUSE_BASE: u32 = 0x81;

/// Length of a device name buffer, including the terminating NUL.
pub(crate) const VDUSE_NAME_MAX: usize = 256;

/// API version 0: the original API.
pub(crate) const VDUSE_API_VERSION: u64 = 0;
/// API version 1: virtqueue groups and address spaces.
pub(crate) const VDUSE_API_VERSION_1: u64 = 1;

/// Feature bit: the device expects `VDUSE_SET_VQ_READY` requests.
pub(crate) const VDUSE_F_QUEUE_READY: u32 = 0;
/// Feature bit: the device expects `VDUSE_SUSPEND` requests.
pub(crate) const VDUSE_F_SUSPEND: u32 = 1;

/// `struct vduse_dev_config`, without its trailing flexible `config[]` array.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DevConfig {
    /// NUL-terminated device name.
    pub(crate) name: [u8; VDUSE_NAME_MAX],
    /// Virtio vendor id.
    pub(crate) vendor_id: u32,
    /// Virtio device id.
    pub(crate) device_id: u32,
    /// Virtio features offered by the device.
    pub(crate) features: u64,
    /// Number of virtqueues.
    pub(crate) vq_num: u32,
    /// Virtqueue alignment.
    pub(crate) vq_align: u32,
    /// Number of virtqueue groups (API 1).
    pub(crate) ngroups: u32,
    /// Number of address spaces (API 1).
    pub(crate) nas: u32,
    /// Must be zero.
    pub(crate) reserved: [u32; 11],
    /// Size of the trailing configuration space.
    pub(crate) config_size: u32,
}

/// `struct vduse_iotlb_entry`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct IotlbEntry {
    /// Offset of the mapping in the returned file.
    pub(crate) offset: u64,
    /// First IOVA of the mapping.
    pub(crate) start: u64,
    /// Last IOVA of the mapping.
    pub(crate) last: u64,
    /// `VDUSE_ACCESS_*`.
    pub(crate) perm: u8,
    /// Tail padding of the C struct.
    pub(crate) padding: [u8; 7],
}

/// `struct vduse_iotlb_entry_v2`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct IotlbEntryV2 {
    /// Offset of the mapping in the returned file.
    pub(crate) offset: u64,
    /// First IOVA of the mapping.
    pub(crate) start: u64,
    /// Last IOVA of the mapping.
    pub(crate) last: u64,
    /// `VDUSE_ACCESS_*`.
    pub(crate) perm: u8,
    /// Padding.
    pub(crate) padding: [u8; 7],
    /// Address space.
    pub(crate) asid: u32,
    /// Must be zero.
    pub(crate) reserved: [u32; 11],
}

/// `struct vduse_config_data`, without its trailing flexible `buffer[]`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct ConfigData {
    /// Offset into the configuration space.
    pub(crate) offset: u32,
    /// Number of bytes that follow.
    pub(crate) length: u32,
}

/// `struct vduse_vq_config`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VqConfig {
    /// Virtqueue index.
    pub(crate) index: u32,
    /// Maximum queue size.
    pub(crate) max_size: u16,
    /// Must be zero.
    pub(crate) reserved1: u16,
    /// Virtqueue group (API 1).
    pub(crate) group: u32,
    /// Must be zero.
    pub(crate) reserved2: [u16; 10],
}

/// `struct vduse_vq_info`. The C anonymous union of `split`/`packed` state is `state`:
/// `state[0]` is `split.avail_index` or `packed.last_avail_counter`, and so on.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VqInfo {
    /// Virtqueue index.
    pub(crate) index: u32,
    /// Queue size negotiated by the driver.
    pub(crate) num: u32,
    /// Descriptor area IOVA.
    pub(crate) desc_addr: u64,
    /// Driver area IOVA.
    pub(crate) driver_addr: u64,
    /// Device area IOVA.
    pub(crate) device_addr: u64,
    /// Split or packed ring state.
    pub(crate) state: [u16; 4],
    /// Whether the queue is ready.
    pub(crate) ready: u8,
    /// Tail padding of the C struct.
    pub(crate) padding: [u8; 7],
}

/// `struct vduse_vq_eventfd`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VqEventfd {
    /// Virtqueue index.
    pub(crate) index: u32,
    /// Eventfd, or [`VDUSE_EVENTFD_DEASSIGN`].
    pub(crate) fd: i32,
}

/// De-assign the kick eventfd of a virtqueue.
pub(crate) const VDUSE_EVENTFD_DEASSIGN: i32 = -1;

/// `struct vduse_iova_umem`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct IovaUmem {
    /// Userspace address of the memory.
    pub(crate) uaddr: u64,
    /// IOVA it backs.
    pub(crate) iova: u64,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Address space (API 1).
    pub(crate) asid: u32,
    /// Must be zero.
    pub(crate) reserved: [u32; 5],
}

/// `VDUSE_IOVA_CAP_UMEM`: user memory may be registered for the region
/// (`VDUSE_IOTLB_REG_UMEM`).
pub(crate) const VDUSE_IOVA_CAP_UMEM: u64 = 1 << 0;

/// `struct vduse_iova_info`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct IovaInfo {
    /// First IOVA of the region.
    pub(crate) start: u64,
    /// Last IOVA of the region.
    pub(crate) last: u64,
    /// `VDUSE_IOVA_CAP_*`.
    pub(crate) capability: u64,
    /// Address space (API 1).
    pub(crate) asid: u32,
    /// Must be zero.
    pub(crate) reserved: [u32; 5],
}

/// Request types of `struct vduse_dev_request`.
pub(crate) mod req {
    /// `VDUSE_GET_VQ_STATE`.
    pub(crate) const GET_VQ_STATE: u32 = 0;
    /// `VDUSE_SET_STATUS`.
    pub(crate) const SET_STATUS: u32 = 1;
    /// `VDUSE_UPDATE_IOTLB`.
    pub(crate) const UPDATE_IOTLB: u32 = 2;
    /// `VDUSE_SET_VQ_GROUP_ASID`.
    pub(crate) const SET_VQ_GROUP_ASID: u32 = 3;
    /// `VDUSE_SET_VQ_READY`.
    pub(crate) const SET_VQ_READY: u32 = 4;
    /// `VDUSE_SUSPEND`.
    pub(crate) const SUSPEND: u32 = 5;
}

/// `VDUSE_REQ_RESULT_OK`.
pub(crate) const VDUSE_REQ_RESULT_OK: u32 = 0;
/// `VDUSE_REQ_RESULT_FAILED`.
pub(crate) const VDUSE_REQ_RESULT_FAILED: u32 = 1;

/// `struct vduse_dev_request`. The C union at offset 24 is `payload`, 128 bytes as its
/// `padding[32]` member (`__u32` words); its typed members are [`VqStateMsg`], [`DevStatus`],
/// [`IovaRange`], [`IovaRangeV2`], [`VqGroupAsid`] and [`VqReady`] ([`DevRequest::with`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DevRequest {
    /// Request type, see [`req`].
    pub(crate) type_: u32,
    /// Request id, echoed in the response.
    pub(crate) request_id: u32,
    /// Reserved, zero.
    pub(crate) reserved: [u32; 4],
    /// The request payload.
    pub(crate) payload: [u64; 16],
}

/// `struct vduse_dev_response`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct DevResponse {
    /// Id of the request answered.
    pub(crate) request_id: u32,
    /// `VDUSE_REQ_RESULT_*`.
    pub(crate) result: u32,
    /// Must be zero.
    pub(crate) reserved: [u32; 4],
    /// The response payload.
    pub(crate) payload: [u32; 32],
}

/// `struct vduse_vq_state`: the payload of `VDUSE_GET_VQ_STATE` (request: `index`; response:
/// the state). `state` is the C union: the split ring's `avail_index` in `state[0]`, or the
/// packed ring's `last_avail_counter`, `last_avail_idx`, `last_used_counter`, `last_used_idx`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VqStateMsg {
    /// Virtqueue index.
    pub(crate) index: u32,
    /// Split or packed state.
    pub(crate) state: [u16; 4],
}

/// `struct vduse_dev_status`: the payload of `VDUSE_SET_STATUS`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DevStatus {
    /// Virtio device status.
    pub(crate) status: u8,
}

/// `struct vduse_iova_range`: the payload of `VDUSE_UPDATE_IOTLB` (API 0).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct IovaRange {
    /// First IOVA.
    pub(crate) start: u64,
    /// Last IOVA (inclusive).
    pub(crate) last: u64,
}

/// `struct vduse_iova_range_v2`: the payload of `VDUSE_UPDATE_IOTLB` (API 1).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct IovaRangeV2 {
    /// First IOVA.
    pub(crate) start: u64,
    /// Last IOVA (inclusive).
    pub(crate) last: u64,
    /// Address space.
    pub(crate) asid: u32,
    /// Zero.
    pub(crate) padding: u32,
}

/// `struct vduse_vq_group_asid`: the payload of `VDUSE_SET_VQ_GROUP_ASID`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VqGroupAsid {
    /// Virtqueue group.
    pub(crate) group: u32,
    /// Its new address space.
    pub(crate) asid: u32,
}

/// `struct vduse_vq_ready`: the payload of `VDUSE_SET_VQ_READY`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VqReady {
    /// Virtqueue index.
    pub(crate) num: u32,
    /// 1: ready, 0: not.
    pub(crate) ready: u32,
}

// SAFETY: The following structs are `#[repr(C)]`, consist only of integers and integer arrays
// and have no implicit padding (every gap of the C layout is a named field; the size assertions
// below check that the sizes equal the sum of the fields). Every bit pattern is valid for them.
unsafe impl FromBytes for DevConfig {}
// SAFETY: See above.
unsafe impl AsBytes for DevConfig {}
// SAFETY: See above.
unsafe impl FromBytes for IotlbEntry {}
// SAFETY: See above.
unsafe impl AsBytes for IotlbEntry {}
// SAFETY: See above.
unsafe impl FromBytes for IotlbEntryV2 {}
// SAFETY: See above.
unsafe impl AsBytes for IotlbEntryV2 {}
// SAFETY: See above.
unsafe impl FromBytes for ConfigData {}
// SAFETY: See above.
unsafe impl FromBytes for VqConfig {}
// SAFETY: See above.
unsafe impl FromBytes for VqInfo {}
// SAFETY: See above.
unsafe impl AsBytes for VqInfo {}
// SAFETY: See above.
unsafe impl FromBytes for VqEventfd {}
// SAFETY: See above.
unsafe impl FromBytes for IovaUmem {}
// SAFETY: See above.
unsafe impl FromBytes for IovaInfo {}
// SAFETY: See above.
unsafe impl AsBytes for IovaInfo {}
// SAFETY: See above.
unsafe impl AsBytes for DevRequest {}
// SAFETY: See above.
unsafe impl FromBytes for DevResponse {}
// SAFETY: See above.
unsafe impl AsBytes for DevResponse {}
// SAFETY: See above.
unsafe impl FromBytes for DevRequest {}
// SAFETY: See above.
unsafe impl AsBytes for VqStateMsg {}
// SAFETY: See above.
unsafe impl FromBytes for VqStateMsg {}
// SAFETY: See above.
unsafe impl AsBytes for DevStatus {}
// SAFETY: See above.
unsafe impl AsBytes for IovaRange {}
// SAFETY: See above.
unsafe impl AsBytes for IovaRangeV2 {}
// SAFETY: See above.
unsafe impl AsBytes for VqGroupAsid {}
// SAFETY: See above.
unsafe impl AsBytes for VqReady {}

/// Checks at compile time that `T` has the size the C header gives.
macro_rules! assert_size {
    ($t:ty, $size:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $size);
    };
}

// Sizes of the x86_64 C layout (`shared/reference/ioctls.txt`, computed from the 7.3 header).
assert_size!(DevConfig, 336);
assert_size!(IotlbEntry, 32);
assert_size!(IotlbEntryV2, 80);
assert_size!(ConfigData, 8);
assert_size!(VqConfig, 32);
assert_size!(VqInfo, 48);
assert_size!(VqEventfd, 8);
assert_size!(IovaUmem, 48);
assert_size!(IovaInfo, 48);
assert_size!(DevRequest, 152);
assert_size!(DevResponse, 152);
const _: () = assert!(core::mem::offset_of!(DevConfig, features) == 264);
const _: () = assert!(core::mem::offset_of!(DevConfig, config_size) == 332);
const _: () = assert!(core::mem::offset_of!(VqInfo, ready) == 40);
const _: () = assert!(core::mem::offset_of!(IotlbEntryV2, asid) == 32);
const _: () = assert!(core::mem::offset_of!(DevRequest, payload) == 24);
const _: () = assert!(core::mem::offset_of!(DevResponse, payload) == 24);
// The payloads: each a member of the 128-byte union at offset 24.
assert_size!(VqStateMsg, 12);
const _: () = assert!(core::mem::offset_of!(VqStateMsg, state) == 4);
assert_size!(DevStatus, 1);
assert_size!(IovaRange, 16);
assert_size!(IovaRangeV2, 24);
const _: () = assert!(core::mem::offset_of!(IovaRangeV2, asid) == 16);
assert_size!(VqGroupAsid, 8);
assert_size!(VqReady, 8);

/// Control device: get the API version.
pub(crate) const VDUSE_GET_API_VERSION: u32 = _IOR::<u64>(VDUSE_BASE, 0x00);
/// Control device: set the API version.
pub(crate) const VDUSE_SET_API_VERSION: u32 = _IOW::<u64>(VDUSE_BASE, 0x01);
/// Control device: create a device.
pub(crate) const VDUSE_CREATE_DEV: u32 = _IOW::<DevConfig>(VDUSE_BASE, 0x02);
/// Control device: destroy a device.
pub(crate) const VDUSE_DESTROY_DEV: u32 = _IOW::<[u8; VDUSE_NAME_MAX]>(VDUSE_BASE, 0x03);
/// Control device: get the VDUSE features.
pub(crate) const VDUSE_GET_FEATURES: u32 = _IOR::<u64>(VDUSE_BASE, 0x04);
/// Control device: set the VDUSE features.
pub(crate) const VDUSE_SET_FEATURES: u32 = _IOW::<u64>(VDUSE_BASE, 0x05);

/// Device: get a file descriptor for an IOTLB mapping.
pub(crate) const VDUSE_IOTLB_GET_FD: u32 = _IOWR::<IotlbEntry>(VDUSE_BASE, 0x10);
/// Device: get the negotiated virtio features.
pub(crate) const VDUSE_DEV_GET_FEATURES: u32 = _IOR::<u64>(VDUSE_BASE, 0x11);
/// Device: write to the configuration space.
pub(crate) const VDUSE_DEV_SET_CONFIG: u32 = _IOW::<ConfigData>(VDUSE_BASE, 0x12);
/// Device: inject a configuration interrupt.
pub(crate) const VDUSE_DEV_INJECT_CONFIG_IRQ: u32 = _IO(VDUSE_BASE, 0x13);
/// Device: set up a virtqueue.
pub(crate) const VDUSE_VQ_SETUP: u32 = _IOW::<VqConfig>(VDUSE_BASE, 0x14);
/// Device: get virtqueue information.
pub(crate) const VDUSE_VQ_GET_INFO: u32 = _IOWR::<VqInfo>(VDUSE_BASE, 0x15);
/// Device: set the kick eventfd of a virtqueue.
pub(crate) const VDUSE_VQ_SETUP_KICKFD: u32 = _IOW::<VqEventfd>(VDUSE_BASE, 0x16);
/// Device: inject a virtqueue interrupt.
pub(crate) const VDUSE_VQ_INJECT_IRQ: u32 = _IOW::<u32>(VDUSE_BASE, 0x17);
/// Device: register userspace bounce memory.
pub(crate) const VDUSE_IOTLB_REG_UMEM: u32 = _IOW::<IovaUmem>(VDUSE_BASE, 0x18);
/// Device: deregister userspace bounce memory.
pub(crate) const VDUSE_IOTLB_DEREG_UMEM: u32 = _IOW::<IovaUmem>(VDUSE_BASE, 0x19);
/// Device: get information about an IOVA region.
pub(crate) const VDUSE_IOTLB_GET_INFO: u32 = _IOWR::<IovaInfo>(VDUSE_BASE, 0x1a);
/// Device: get a file descriptor for an IOTLB mapping of an address space (API 1).
pub(crate) const VDUSE_IOTLB_GET_FD2: u32 = _IOWR::<IotlbEntryV2>(VDUSE_BASE, 0x1b);

// The ioctl numbers of `shared/reference/ioctls.txt`.
const _: () = assert!(VDUSE_GET_API_VERSION == 0x8008_8100);
const _: () = assert!(VDUSE_SET_API_VERSION == 0x4008_8101);
const _: () = assert!(VDUSE_CREATE_DEV == 0x4150_8102);
const _: () = assert!(VDUSE_DESTROY_DEV == 0x4100_8103);
const _: () = assert!(VDUSE_GET_FEATURES == 0x8008_8104);
const _: () = assert!(VDUSE_SET_FEATURES == 0x4008_8105);
const _: () = assert!(VDUSE_IOTLB_GET_FD == 0xc020_8110);
const _: () = assert!(VDUSE_DEV_GET_FEATURES == 0x8008_8111);
const _: () = assert!(VDUSE_DEV_SET_CONFIG == 0x4008_8112);
const _: () = assert!(VDUSE_DEV_INJECT_CONFIG_IRQ == 0x0000_8113);
const _: () = assert!(VDUSE_VQ_SETUP == 0x4020_8114);
const _: () = assert!(VDUSE_VQ_GET_INFO == 0xc030_8115);
const _: () = assert!(VDUSE_VQ_SETUP_KICKFD == 0x4008_8116);
const _: () = assert!(VDUSE_VQ_INJECT_IRQ == 0x4004_8117);
const _: () = assert!(VDUSE_IOTLB_REG_UMEM == 0x4030_8118);
const _: () = assert!(VDUSE_IOTLB_DEREG_UMEM == 0x4030_8119);
const _: () = assert!(VDUSE_IOTLB_GET_INFO == 0xc030_811a);
const _: () = assert!(VDUSE_IOTLB_GET_FD2 == 0xc050_811b);

impl DevRequest {
    /// A request of type `type_` with an empty payload (the id is set when it is sent).
    pub(crate) fn new(type_: u32) -> Self {
        Self {
            type_,
            request_id: 0,
            reserved: [0; 4],
            payload: [0; 16],
        }
    }

    /// A request of type `type_` whose payload (the C union) starts with `payload`, the rest
    /// zero.
    pub(crate) fn with<P: AsBytes>(type_: u32, payload: &P) -> Self {
        const { assert!(core::mem::size_of::<P>() <= 128) };
        let mut r = Self::new(type_);
        let bytes = payload.as_bytes();
        if let Some(dst) = r.payload.as_bytes_mut().get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        r
    }
}

impl DevResponse {
    /// The payload (the C union) read as a `P`.
    pub(crate) fn payload_as<P: FromBytes + Default>(&self) -> P {
        P::from_bytes_copy_prefix(self.payload.as_bytes()).map_or_else(P::default, |(p, _)| p)
    }
}
