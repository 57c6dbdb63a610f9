// SPDX-License-Identifier: GPL-2.0
//! vduse: serve virtio devices from a Linux process through VDUSE (vDPA Device in Userspace).
//!
//! A daemon describes its device ([`server::DeviceSpec`]), implements [`server::Backend`]
//! and hands both to [`server::Server`], which negotiates with `/dev/vduse/control` (API 1
//! with a fallback to 0, VDUSE features with the `EINVAL` fallback of older kernels), creates
//! the device or re-attaches to it after a restart, answers the six control messages, and
//! runs the queue threads that call the backend. The lower layers are public too:
//! [`device`] (the ioctls), [`memory`] (the IOTLB as `vm-memory` regions), [`vring`] and
//! [`chain`] (the rings), [`inflight`] (the reconnect log), [`uapi`] (`linux/vduse.h`).
#![warn(missing_docs)]

pub mod chain;
pub mod device;
pub mod error;
pub mod inflight;
pub mod memory;
pub mod server;
pub mod uapi;
pub mod vhost;
pub mod virtio;
pub mod vring;

pub use error::{Error, Result};
