// SPDX-License-Identifier: GPL-2.0
//! virtio and virtio-blk constants and the virtio-blk configuration space
//! (`include/uapi/linux/virtio_{ids,config,ring,blk}.h`).

#![allow(missing_docs)]

pub const VIRTIO_ID_NET: u32 = 1;
pub const VIRTIO_ID_BLOCK: u32 = 2;

// Device status bits.
pub const VIRTIO_CONFIG_S_ACKNOWLEDGE: u8 = 1;
pub const VIRTIO_CONFIG_S_DRIVER: u8 = 2;
pub const VIRTIO_CONFIG_S_DRIVER_OK: u8 = 4;
pub const VIRTIO_CONFIG_S_FEATURES_OK: u8 = 8;
pub const VIRTIO_CONFIG_S_NEEDS_RESET: u8 = 0x40;
pub const VIRTIO_CONFIG_S_FAILED: u8 = 0x80;

// Transport / ring feature bits.
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;
pub const VIRTIO_F_VERSION_1: u32 = 32;
pub const VIRTIO_F_ACCESS_PLATFORM: u32 = 33;

// Split-ring descriptor flags.
pub const VRING_DESC_F_NEXT: u16 = 1;
pub const VRING_DESC_F_WRITE: u16 = 2;
pub const VRING_DESC_F_INDIRECT: u16 = 4;

// virtio-blk feature bits.
pub const VIRTIO_BLK_F_SIZE_MAX: u32 = 1;
pub const VIRTIO_BLK_F_SEG_MAX: u32 = 2;
pub const VIRTIO_BLK_F_RO: u32 = 5;
pub const VIRTIO_BLK_F_BLK_SIZE: u32 = 6;
pub const VIRTIO_BLK_F_FLUSH: u32 = 9;
pub const VIRTIO_BLK_F_TOPOLOGY: u32 = 10;
/// Never offered: VDUSE rejects it (the config space is read-only).
pub const VIRTIO_BLK_F_CONFIG_WCE: u32 = 11;
pub const VIRTIO_BLK_F_MQ: u32 = 12;
pub const VIRTIO_BLK_F_DISCARD: u32 = 13;
pub const VIRTIO_BLK_F_WRITE_ZEROES: u32 = 14;

// Request types.
pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
pub const VIRTIO_BLK_T_DISCARD: u32 = 11;
pub const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;

// Request status.
pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

pub const VIRTIO_BLK_ID_BYTES: usize = 20;
pub const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: u32 = 1;

/// virtio-blk always counts in 512-byte sectors, whatever the logical block size.
pub const SECTOR_SHIFT: u32 = 9;
pub const SECTOR_SIZE: u64 = 1 << SECTOR_SHIFT;

/// `struct virtio_blk_outhdr` (request header, 16 bytes, little endian).
pub const BLK_OUTHDR_SIZE: usize = 16;
/// `struct virtio_blk_discard_write_zeroes` (16 bytes, little endian).
pub const BLK_DWZ_SEG_SIZE: usize = 16;

/// `struct virtio_blk_config` up to and including `unused1[3]` (the fields this device uses;
/// the kernel zero-fills reads beyond `config_size`). All fields little endian (VERSION_1).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlkConfig {
    pub capacity: u64,
    pub size_max: u32,
    pub seg_max: u32,
    pub geometry_cylinders: u16,
    pub geometry_heads: u8,
    pub geometry_sectors: u8,
    pub blk_size: u32,
    pub physical_block_exp: u8,
    pub alignment_offset: u8,
    pub min_io_size: u16,
    pub opt_io_size: u32,
    pub wce: u8,
    pub unused: u8,
    pub num_queues: u16,
    pub max_discard_sectors: u32,
    pub max_discard_seg: u32,
    pub discard_sector_alignment: u32,
    pub max_write_zeroes_sectors: u32,
    pub max_write_zeroes_seg: u32,
    pub write_zeroes_may_unmap: u8,
    pub unused1: [u8; 3],
}

const _: () = assert!(std::mem::size_of::<BlkConfig>() == 60);

impl BlkConfig {
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: packed POD.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                std::mem::size_of::<Self>(),
            )
        }
    }
}

pub const fn bit(b: u32) -> u64 {
    1u64 << b
}

// virtio-net (`include/uapi/linux/virtio_net.h`).
pub const VIRTIO_NET_F_CSUM: u32 = 0;
pub const VIRTIO_NET_F_GUEST_CSUM: u32 = 1;
pub const VIRTIO_NET_F_MTU: u32 = 3;
pub const VIRTIO_NET_F_MAC: u32 = 5;
pub const VIRTIO_NET_F_MRG_RXBUF: u32 = 15;
pub const VIRTIO_NET_F_STATUS: u32 = 16;
pub const VIRTIO_NET_F_CTRL_VQ: u32 = 17;
pub const VIRTIO_NET_F_MQ: u32 = 22;
/// `status` of the config space: the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;
/// `struct virtio_net_hdr_v1` (with `VIRTIO_F_VERSION_1` the header always has `num_buffers`).
pub const VIRTIO_NET_HDR_LEN: usize = 12;
/// Offset of `status` in `struct virtio_net_config`.
pub const VIRTIO_NET_CONFIG_STATUS: u32 = 6;

/// The first fields of `struct virtio_net_config` (up to `mtu`: what the features offered
/// here describe).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConfig {
    pub mac: [u8; 6],
    pub status: u16,
    pub max_virtqueue_pairs: u16,
    pub mtu: u16,
}

impl NetConfig {
    /// The config space bytes (little endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.mac.to_vec();
        b.extend_from_slice(&self.status.to_le_bytes());
        b.extend_from_slice(&self.max_virtqueue_pairs.to_le_bytes());
        b.extend_from_slice(&self.mtu.to_le_bytes());
        b
    }
}
