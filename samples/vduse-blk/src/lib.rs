// SPDX-License-Identifier: GPL-2.0
//! vduse-blk: a virtio-blk device served from userspace through VDUSE.

pub mod blk;
pub mod device;
pub mod inflight;
pub mod memory;
pub mod queue;
pub mod size;
pub mod uapi;
pub mod vhost;
pub mod virtio;
