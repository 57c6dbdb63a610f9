// SPDX-License-Identifier: GPL-2.0
//! vduse-blk: a virtio-blk device served from userspace through VDUSE, on the [`vduse`]
//! library (whose modules are re-exported here under their old paths).

pub mod blk;
pub mod queue;
pub mod size;

pub use vduse::{chain, device, inflight, memory, uapi, vhost, virtio};
