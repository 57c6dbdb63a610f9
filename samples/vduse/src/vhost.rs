// SPDX-License-Identifier: GPL-2.0
//! The part of `include/uapi/linux/vhost.h` / `vhost_types.h` that `vdpa-poke` uses.

#![allow(missing_docs)]

use crate::uapi::{io, ior, iow, iowr};

pub const VHOST_VIRTIO: u32 = 0xAF;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VringState {
    pub index: u32,
    pub num: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VringFile {
    pub index: u32,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VringAddr {
    pub index: u32,
    pub flags: u32,
    pub desc_user_addr: u64,
    pub used_user_addr: u64,
    pub avail_user_addr: u64,
    pub log_guest_addr: u64,
}

/// `struct vhost_iotlb_msg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IotlbMsg {
    pub iova: u64,
    pub size: u64,
    pub uaddr: u64,
    pub perm: u8,
    pub type_: u8,
    pub _pad: [u8; 6],
}

/// `struct vhost_msg_v2` (the union is padded to 64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MsgV2 {
    pub type_: u32,
    pub asid: u32,
    pub iotlb: IotlbMsg,
    pub _pad: [u8; 64 - std::mem::size_of::<IotlbMsg>()],
}

pub const VHOST_IOTLB_MSG_V2: u32 = 0x2;
pub const VHOST_IOTLB_UPDATE: u8 = 2;
pub const VHOST_IOTLB_INVALIDATE: u8 = 3;
pub const VHOST_ACCESS_RW: u8 = 0x3;

pub const VHOST_BACKEND_F_IOTLB_MSG_V2: u32 = 0x1;
pub const VHOST_BACKEND_F_IOTLB_BATCH: u32 = 0x2;
pub const VHOST_BACKEND_F_IOTLB_ASID: u32 = 0x3;
pub const VHOST_BACKEND_F_SUSPEND: u32 = 0x4;

pub const VHOST_GET_FEATURES: u32 = ior::<u64>(VHOST_VIRTIO, 0x00);
pub const VHOST_SET_FEATURES: u32 = iow::<u64>(VHOST_VIRTIO, 0x00);
pub const VHOST_SET_OWNER: u32 = io(VHOST_VIRTIO, 0x01);
pub const VHOST_SET_VRING_NUM: u32 = iow::<VringState>(VHOST_VIRTIO, 0x10);
pub const VHOST_SET_VRING_ADDR: u32 = iow::<VringAddr>(VHOST_VIRTIO, 0x11);
pub const VHOST_SET_VRING_BASE: u32 = iow::<VringState>(VHOST_VIRTIO, 0x12);
pub const VHOST_GET_VRING_BASE: u32 = iowr::<VringState>(VHOST_VIRTIO, 0x12);
pub const VHOST_SET_VRING_KICK: u32 = iow::<VringFile>(VHOST_VIRTIO, 0x20);
pub const VHOST_SET_VRING_CALL: u32 = iow::<VringFile>(VHOST_VIRTIO, 0x21);
pub const VHOST_SET_BACKEND_FEATURES: u32 = iow::<u64>(VHOST_VIRTIO, 0x25);
pub const VHOST_GET_BACKEND_FEATURES: u32 = ior::<u64>(VHOST_VIRTIO, 0x26);
pub const VHOST_VDPA_GET_DEVICE_ID: u32 = ior::<u32>(VHOST_VIRTIO, 0x70);
pub const VHOST_VDPA_GET_STATUS: u32 = ior::<u8>(VHOST_VIRTIO, 0x71);
pub const VHOST_VDPA_SET_STATUS: u32 = iow::<u8>(VHOST_VIRTIO, 0x72);
pub const VHOST_VDPA_SET_VRING_ENABLE: u32 = iow::<VringState>(VHOST_VIRTIO, 0x75);
pub const VHOST_VDPA_GET_AS_NUM: u32 = ior::<u32>(VHOST_VIRTIO, 0x7A);
pub const VHOST_VDPA_GET_VRING_GROUP: u32 = iowr::<VringState>(VHOST_VIRTIO, 0x7B);
pub const VHOST_VDPA_SET_GROUP_ASID: u32 = iow::<VringState>(VHOST_VIRTIO, 0x7C);
pub const VHOST_VDPA_SUSPEND: u32 = io(VHOST_VIRTIO, 0x7D);
pub const VHOST_VDPA_GET_GROUP_NUM: u32 = ior::<u32>(VHOST_VIRTIO, 0x81);

const _: () = assert!(std::mem::size_of::<MsgV2>() == 72);
const _: () = assert!(std::mem::size_of::<VringAddr>() == 40);

pub const IOCTLS: &[(&str, u32)] = &[
    ("VHOST_GET_FEATURES", VHOST_GET_FEATURES),
    ("VHOST_SET_FEATURES", VHOST_SET_FEATURES),
    ("VHOST_SET_OWNER", VHOST_SET_OWNER),
    ("VHOST_SET_VRING_NUM", VHOST_SET_VRING_NUM),
    ("VHOST_SET_VRING_ADDR", VHOST_SET_VRING_ADDR),
    ("VHOST_SET_VRING_BASE", VHOST_SET_VRING_BASE),
    ("VHOST_GET_VRING_BASE", VHOST_GET_VRING_BASE),
    ("VHOST_SET_VRING_KICK", VHOST_SET_VRING_KICK),
    ("VHOST_SET_VRING_CALL", VHOST_SET_VRING_CALL),
    ("VHOST_SET_BACKEND_FEATURES", VHOST_SET_BACKEND_FEATURES),
    ("VHOST_GET_BACKEND_FEATURES", VHOST_GET_BACKEND_FEATURES),
    ("VHOST_VDPA_GET_DEVICE_ID", VHOST_VDPA_GET_DEVICE_ID),
    ("VHOST_VDPA_GET_STATUS", VHOST_VDPA_GET_STATUS),
    ("VHOST_VDPA_SET_STATUS", VHOST_VDPA_SET_STATUS),
    ("VHOST_VDPA_SET_VRING_ENABLE", VHOST_VDPA_SET_VRING_ENABLE),
    ("VHOST_VDPA_GET_AS_NUM", VHOST_VDPA_GET_AS_NUM),
    ("VHOST_VDPA_GET_VRING_GROUP", VHOST_VDPA_GET_VRING_GROUP),
    ("VHOST_VDPA_SET_GROUP_ASID", VHOST_VDPA_SET_GROUP_ASID),
    ("VHOST_VDPA_SUSPEND", VHOST_VDPA_SUSPEND),
    ("VHOST_VDPA_GET_GROUP_NUM", VHOST_VDPA_GET_GROUP_NUM),
];
