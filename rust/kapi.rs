// SPDX-License-Identifier: GPL-2.0

//! Layer 1: generic kernel abstractions.
//!
//! Each file is shaped like a module of `rust/kernel/` and would become one upstream; none
//! names a type of the driver above it (`crate::driver`), and `tools/check-layers` enforces
//! that. All of the crate's `unsafe` code is here and in the bindings below (`crate::ffi`).
//!
//! | File | Upstream module | C header |
//! |------|-----------------|----------|
//! | `cdev.rs` | `kernel::cdev`, `kernel::device::class` | `linux/cdev.h`, `linux/device/class.h` |
//! | `file_ops.rs` | `kernel::fs::file_operations` | `linux/fs.h` |
//! | `fd.rs` | `kernel::fs::file` (`receive_fd`) | `linux/file.h` |
//! | `sysfs.rs` | `kernel::sysfs` | `linux/sysfs.h`, `linux/device.h` |
//! | `kobject.rs` | `kernel::kobject` | `linux/kobject.h` |
//! | `root_device.rs` | `kernel::device` | `linux/device.h` |
//! | `cpumask.rs` | `kernel::cpumask` | `linux/cpumask.h` |
//! | `eventfd.rs` | `kernel::eventfd` | `linux/eventfd.h` |
//! | `completion.rs` | `kernel::sync::completion` | `linux/completion.h` |
//! | `module_ref.rs` | `kernel::module` | `linux/module.h` |
//! | `nospec.rs` | `kernel::nospec` | `linux/nospec.h` |
//! | `cred.rs` | `kernel::cred` | `linux/capability.h` |
//! | `kstrtox.rs` | `kernel::str` | `linux/kstrtox.h` |
//! | `workqueue.rs` | `kernel::workqueue` | `linux/workqueue.h` |
//! | `vdpa.rs`, `vdpa/` | `kernel::vdpa` | `linux/vdpa.h`, `linux/vhost_iotlb.h`, `linux/virtio_config.h` |
//! | `anon_inode.rs` | `kernel::fs::anon_inode` | `linux/anon_inodes.h` |
//! | `iova.rs` | `kernel::iova` | `linux/iova.h` |
//! | `pages.rs` | `kernel::page` | `linux/gfp.h` |
//! | `pin_pages.rs` | `kernel::mm::pin` | `linux/mm.h` (`pin_user_pages`) |
//! | `dma.rs` | `kernel::dma` (streaming mappings) | `linux/dma-mapping.h` |
//! | `bounce.rs` | `kernel::dma::bounce` (a software IOTLB) | `linux/dma-mapping.h` |
//! | `rwlock.rs` | `kernel::sync::rwlock` | `linux/rwlock.h` |
//! | `spinlock_bh.rs` | `kernel::sync::lock::spinlock` (a `_bh` backend) | `linux/spinlock.h` |

pub(crate) mod anon_inode;
pub(crate) mod bounce;
pub(crate) mod cdev;
pub(crate) mod completion;
pub(crate) mod cpumask;
pub(crate) mod cred;
pub(crate) mod dma;
pub(crate) mod eventfd;
pub(crate) mod fd;
pub(crate) mod file_ops;
pub(crate) mod iova;
pub(crate) mod kobject;
pub(crate) mod kstrtox;
pub(crate) mod module_ref;
pub(crate) mod nospec;
pub(crate) mod pages;
pub(crate) mod pin_pages;
pub(crate) mod root_device;
pub(crate) mod rwlock;
pub(crate) mod spinlock_bh;
pub(crate) mod sysfs;
pub(crate) mod vdpa;
pub(crate) mod workqueue;
