// SPDX-License-Identifier: GPL-2.0

//! Layer 2: the VDUSE driver logic.
//!
//! Everything that knows VDUSE is here, and none of it is `unsafe` (`tools/check-layers`
//! enforces that): the driver is written against the abstractions of [`crate::kapi`], the uAPI
//! mirror [`crate::uapi`] and constants of the bindings ([`crate::ffi`]).
//!
//! | File | C counterpart in `drivers/vdpa/vdpa_user/vduse_dev.c` |
//! |------|---------------------------------------------------------|
//! | `api.rs` | API versions and VDUSE features (`vduse_ioctl()`'s version rules) |
//! | `registry.rs` | `vduse_class`, `vduse_idr`, `vduse_lock`, the management device |
//! | `control.rs` | `/dev/vduse/control` (`vduse_ioctl()`) |
//! | `device.rs` | `struct vduse_dev`, `vduse_dev_ioctl()`, `vduse_dev_read/write_iter()` |
//! | `device/vdpa_ops.rs` | `vduse_vdpa_config_ops`, `vduse_map_ops` |
//! | `device/sysfs_attrs.rs` | `vduse_dev_groups`, the `vqN` kobjects |
//! | `domain.rs` | `iova_domain.c`: the IOVA domain of an address space and its file |
//! | `msg.rs` | `vduse_dev_msg_sync()` and the message lists |
//! | `vq.rs` | `struct vduse_virtqueue` |

pub(crate) mod api;
pub(crate) mod control;
pub(crate) mod device;
pub(crate) mod domain;
pub(crate) mod msg;
pub(crate) mod registry;
pub(crate) mod ring;
pub(crate) mod vq;
