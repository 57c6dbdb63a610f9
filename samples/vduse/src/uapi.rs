// SPDX-License-Identifier: GPL-2.0
//! Hand-written mirror of `include/uapi/linux/vduse.h` (Linux 7.3, x86_64 layout).
//!
//! Every structure is `#[repr(C)]` with its padding spelled out as named fields, so that a
//! value can be zero-initialised and copied to the kernel without uninitialised bytes. The
//! sizes, offsets and ioctl numbers are checked against the C header by `tests/uapi_layout.rs`.
//! Unions of the C header are represented as raw byte arrays with typed accessors.

#![allow(missing_docs)]

use std::mem::size_of;

// ---- ioctl number encoding (asm-generic/ioctl.h; x86 uses the generic layout) ---------------

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    assert!(size < (1 << IOC_SIZEBITS));
    (dir << IOC_DIRSHIFT)
        | (ty << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
}
pub const fn io(ty: u32, nr: u32) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}
pub const fn ior<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_READ, ty, nr, size_of::<T>())
}
pub const fn iow<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_WRITE, ty, nr, size_of::<T>())
}
pub const fn iowr<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size_of::<T>())
}

// ---- control device ---------------------------------------------------------------------------

pub const VDUSE_BASE: u32 = 0x81;

pub const VDUSE_API_VERSION: u64 = 0;
pub const VDUSE_API_VERSION_1: u64 = 1;

pub const VDUSE_NAME_MAX: usize = 256;

pub const VDUSE_F_QUEUE_READY: u32 = 0;
pub const VDUSE_F_SUSPEND: u32 = 1;

/// `struct vduse_dev_config` (without the trailing flexible `config[]` array).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DevConfig {
    pub name: [u8; VDUSE_NAME_MAX],
    pub vendor_id: u32,
    pub device_id: u32,
    pub features: u64,
    pub vq_num: u32,
    pub vq_align: u32,
    /// API >= 1 only; must be 0 with API 0.
    pub ngroups: u32,
    /// API >= 1 only; must be 0 with API 0.
    pub nas: u32,
    pub reserved: [u32; 11],
    pub config_size: u32,
    // __u8 config[] follows
}

/// `struct vduse_iotlb_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IotlbEntry {
    pub offset: u64,
    pub start: u64,
    pub last: u64,
    pub perm: u8,
    pub _pad: [u8; 7],
}

pub const VDUSE_ACCESS_RO: u8 = 0x1;
pub const VDUSE_ACCESS_WO: u8 = 0x2;
pub const VDUSE_ACCESS_RW: u8 = 0x3;

/// `struct vduse_iotlb_entry_v2` (API >= 1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IotlbEntryV2 {
    pub offset: u64,
    pub start: u64,
    pub last: u64,
    pub perm: u8,
    pub padding: [u8; 7],
    pub asid: u32,
    pub reserved: [u32; 11],
}

/// `struct vduse_config_data` header (payload follows).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigData {
    pub offset: u32,
    pub length: u32,
}

/// `struct vduse_vq_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VqConfig {
    pub index: u32,
    pub max_size: u16,
    pub reserved1: u16,
    /// API >= 1 only.
    pub group: u32,
    pub reserved2: [u16; 10],
}

/// `struct vduse_vq_info`. The C union `{split, packed}` is `state`: for a split ring,
/// `state[0]` is `split.avail_index`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VqInfo {
    pub index: u32,
    pub num: u32,
    pub desc_addr: u64,
    pub driver_addr: u64,
    pub device_addr: u64,
    pub state: [u16; 4],
    pub ready: u8,
    pub _pad: [u8; 7],
}

impl VqInfo {
    pub fn split_avail_index(&self) -> u16 {
        self.state[0]
    }
}

/// `struct vduse_vq_eventfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VqEventfd {
    pub index: u32,
    pub fd: i32,
}

pub const VDUSE_EVENTFD_DEASSIGN: i32 = -1;

/// `struct vduse_iova_umem`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IovaUmem {
    pub uaddr: u64,
    pub iova: u64,
    pub size: u64,
    pub asid: u32,
    pub reserved: [u32; 5],
}

/// `struct vduse_iova_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IovaInfo {
    pub start: u64,
    pub last: u64,
    pub capability: u64,
    pub asid: u32,
    pub reserved: [u32; 5],
}

pub const VDUSE_IOVA_CAP_UMEM: u64 = 1 << 0;

pub const VDUSE_GET_API_VERSION: u32 = ior::<u64>(VDUSE_BASE, 0x00);
pub const VDUSE_SET_API_VERSION: u32 = iow::<u64>(VDUSE_BASE, 0x01);
pub const VDUSE_CREATE_DEV: u32 = iow::<DevConfig>(VDUSE_BASE, 0x02);
pub const VDUSE_DESTROY_DEV: u32 = iow::<[u8; VDUSE_NAME_MAX]>(VDUSE_BASE, 0x03);
pub const VDUSE_GET_FEATURES: u32 = ior::<u64>(VDUSE_BASE, 0x04);
pub const VDUSE_SET_FEATURES: u32 = iow::<u64>(VDUSE_BASE, 0x05);

pub const VDUSE_IOTLB_GET_FD: u32 = iowr::<IotlbEntry>(VDUSE_BASE, 0x10);
pub const VDUSE_DEV_GET_FEATURES: u32 = ior::<u64>(VDUSE_BASE, 0x11);
pub const VDUSE_DEV_SET_CONFIG: u32 = iow::<ConfigData>(VDUSE_BASE, 0x12);
pub const VDUSE_DEV_INJECT_CONFIG_IRQ: u32 = io(VDUSE_BASE, 0x13);
pub const VDUSE_VQ_SETUP: u32 = iow::<VqConfig>(VDUSE_BASE, 0x14);
pub const VDUSE_VQ_GET_INFO: u32 = iowr::<VqInfo>(VDUSE_BASE, 0x15);
pub const VDUSE_VQ_SETUP_KICKFD: u32 = iow::<VqEventfd>(VDUSE_BASE, 0x16);
pub const VDUSE_VQ_INJECT_IRQ: u32 = iow::<u32>(VDUSE_BASE, 0x17);
pub const VDUSE_IOTLB_REG_UMEM: u32 = iow::<IovaUmem>(VDUSE_BASE, 0x18);
pub const VDUSE_IOTLB_DEREG_UMEM: u32 = iow::<IovaUmem>(VDUSE_BASE, 0x19);
pub const VDUSE_IOTLB_GET_INFO: u32 = iowr::<IovaInfo>(VDUSE_BASE, 0x1a);
pub const VDUSE_IOTLB_GET_FD2: u32 = iowr::<IotlbEntryV2>(VDUSE_BASE, 0x1b);

// ---- messages ---------------------------------------------------------------------------------

pub const VDUSE_GET_VQ_STATE: u32 = 0;
pub const VDUSE_SET_STATUS: u32 = 1;
pub const VDUSE_UPDATE_IOTLB: u32 = 2;
pub const VDUSE_SET_VQ_GROUP_ASID: u32 = 3;
pub const VDUSE_SET_VQ_READY: u32 = 4;
pub const VDUSE_SUSPEND: u32 = 5;

pub const VDUSE_REQ_RESULT_OK: u32 = 0;
pub const VDUSE_REQ_RESULT_FAILED: u32 = 1;

/// Byte offset of the payload union in both request and response.
pub const MSG_PAYLOAD_OFFSET: usize = 24;

/// Offsets of union members inside the payload (relative to `MSG_PAYLOAD_OFFSET`).
pub mod payload {
    /// `vq_state.index` (u32)
    pub const VQ_STATE_INDEX: usize = 0;
    /// `vq_state.split.avail_index` (u16)
    pub const VQ_STATE_SPLIT_AVAIL_INDEX: usize = 4;
    /// `s.status` (u8)
    pub const STATUS: usize = 0;
    /// `iova.start` / `iova_v2.start` (u64)
    pub const IOVA_START: usize = 0;
    /// `iova.last` / `iova_v2.last` (u64)
    pub const IOVA_LAST: usize = 8;
    /// `iova_v2.asid` (u32)
    pub const IOVA_V2_ASID: usize = 16;
    /// `vq_group_asid.group` (u32)
    pub const GROUP_ASID_GROUP: usize = 0;
    /// `vq_group_asid.asid` (u32)
    pub const GROUP_ASID_ASID: usize = 4;
    /// `vq_ready.num` (u32)
    pub const VQ_READY_NUM: usize = 0;
    /// `vq_ready.ready` (u32)
    pub const VQ_READY_READY: usize = 4;
}

/// `struct vduse_dev_request` (152 bytes, 8-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct DevRequest {
    pub type_: u32,
    pub request_id: u32,
    pub reserved: [u32; 4],
    /// The C union; see [`payload`] for member offsets.
    pub payload: [u64; 16],
}

impl DevRequest {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `payload` is plain old data of 128 bytes.
        unsafe { std::slice::from_raw_parts(self.payload.as_ptr().cast::<u8>(), 128) }
    }
    pub fn payload_u8(&self, off: usize) -> u8 {
        self.bytes()[off]
    }
    pub fn payload_u16(&self, off: usize) -> u16 {
        u16::from_ne_bytes(self.bytes()[off..off + 2].try_into().unwrap())
    }
    pub fn payload_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.bytes()[off..off + 4].try_into().unwrap())
    }
    pub fn payload_u64(&self, off: usize) -> u64 {
        u64::from_ne_bytes(self.bytes()[off..off + 8].try_into().unwrap())
    }
    /// Mutable payload bytes (for building requests in tests).
    pub fn payload_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`.
        unsafe { std::slice::from_raw_parts_mut(self.payload.as_mut_ptr().cast::<u8>(), 128) }
    }
    /// Raw view of the whole request, for `read(2)`.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: repr(C), no implicit padding, every bit pattern is valid.
        unsafe {
            std::slice::from_raw_parts_mut((self as *mut Self).cast::<u8>(), size_of::<Self>())
        }
    }
}

/// `struct vduse_dev_response` (152 bytes, 4-byte aligned).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DevResponse {
    pub request_id: u32,
    pub result: u32,
    /// Must be zero (the kernel rejects the write otherwise).
    pub reserved: [u32; 4],
    pub payload: [u32; 32],
}

impl DevResponse {
    pub fn new(request_id: u32, result: u32) -> Self {
        DevResponse {
            request_id,
            result,
            reserved: [0; 4],
            payload: [0; 32],
        }
    }
    /// Set `vq_state.index` and `vq_state.split.avail_index`.
    pub fn set_vq_state_split(&mut self, index: u32, avail_index: u16) {
        self.payload[0] = index;
        // split.avail_index is the first u16 after index.
        let b = avail_index.to_ne_bytes();
        let w = self.payload[1].to_ne_bytes();
        self.payload[1] = u32::from_ne_bytes([b[0], b[1], w[2], w[3]]);
    }
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C), no implicit padding.
        unsafe { std::slice::from_raw_parts((self as *const Self).cast::<u8>(), size_of::<Self>()) }
    }
}

// Compile-time checks of the sizes recorded in shared/reference/ioctls.txt; the full check
// against the C header is the host test.
const _: () = assert!(size_of::<DevConfig>() == 336);
const _: () = assert!(size_of::<IotlbEntry>() == 32);
const _: () = assert!(size_of::<IotlbEntryV2>() == 80);
const _: () = assert!(size_of::<ConfigData>() == 8);
const _: () = assert!(size_of::<VqConfig>() == 32);
const _: () = assert!(size_of::<VqInfo>() == 48);
const _: () = assert!(size_of::<VqEventfd>() == 8);
const _: () = assert!(size_of::<IovaUmem>() == 48);
const _: () = assert!(size_of::<IovaInfo>() == 48);
const _: () = assert!(size_of::<DevRequest>() == 152);
const _: () = assert!(size_of::<DevResponse>() == 152);

/// All ioctl numbers by their C name (used by the layout test and by `--help`-level tooling).
pub const IOCTLS: &[(&str, u32)] = &[
    ("VDUSE_GET_API_VERSION", VDUSE_GET_API_VERSION),
    ("VDUSE_SET_API_VERSION", VDUSE_SET_API_VERSION),
    ("VDUSE_CREATE_DEV", VDUSE_CREATE_DEV),
    ("VDUSE_DESTROY_DEV", VDUSE_DESTROY_DEV),
    ("VDUSE_GET_FEATURES", VDUSE_GET_FEATURES),
    ("VDUSE_SET_FEATURES", VDUSE_SET_FEATURES),
    ("VDUSE_IOTLB_GET_FD", VDUSE_IOTLB_GET_FD),
    ("VDUSE_DEV_GET_FEATURES", VDUSE_DEV_GET_FEATURES),
    ("VDUSE_DEV_SET_CONFIG", VDUSE_DEV_SET_CONFIG),
    ("VDUSE_DEV_INJECT_CONFIG_IRQ", VDUSE_DEV_INJECT_CONFIG_IRQ),
    ("VDUSE_VQ_SETUP", VDUSE_VQ_SETUP),
    ("VDUSE_VQ_GET_INFO", VDUSE_VQ_GET_INFO),
    ("VDUSE_VQ_SETUP_KICKFD", VDUSE_VQ_SETUP_KICKFD),
    ("VDUSE_VQ_INJECT_IRQ", VDUSE_VQ_INJECT_IRQ),
    ("VDUSE_IOTLB_REG_UMEM", VDUSE_IOTLB_REG_UMEM),
    ("VDUSE_IOTLB_DEREG_UMEM", VDUSE_IOTLB_DEREG_UMEM),
    ("VDUSE_IOTLB_GET_INFO", VDUSE_IOTLB_GET_INFO),
    ("VDUSE_IOTLB_GET_FD2", VDUSE_IOTLB_GET_FD2),
];

/// Name of a message type, for logs.
pub fn msg_type_name(t: u32) -> &'static str {
    match t {
        VDUSE_GET_VQ_STATE => "GET_VQ_STATE",
        VDUSE_SET_STATUS => "SET_STATUS",
        VDUSE_UPDATE_IOTLB => "UPDATE_IOTLB",
        VDUSE_SET_VQ_GROUP_ASID => "SET_VQ_GROUP_ASID",
        VDUSE_SET_VQ_READY => "SET_VQ_READY",
        VDUSE_SUSPEND => "SUSPEND",
        _ => "UNKNOWN",
    }
}
