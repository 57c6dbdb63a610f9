// SPDX-License-Identifier: GPL-2.0

//! C declarations `kernel::bindings` does not have: the vDPA bus, vhost IOTLBs, the IOVA
//! allocator, virtio map operations, anonymous inodes.
//!
//! C headers: [`include/linux/vdpa.h`](srctree/include/linux/vdpa.h),
//! [`include/linux/vhost_iotlb.h`](srctree/include/linux/vhost_iotlb.h),
//! [`include/linux/iova.h`](srctree/include/linux/iova.h),
//! [`include/linux/virtio_config.h`](srctree/include/linux/virtio_config.h).
//!
//! `ffi/bindings_generated.rs` is generated at build time by `tools/gen-bindings` from
//! `ffi/bindings_helper.h`, with the bindgen command and flags of the target kernel (so struct
//! layouts match its configuration). Types declared elsewhere resolve to `kernel::bindings`.
//! The abstractions of `crate::kapi` use its functions and types; the driver uses only its
//! constants (the `RUST_CONST_HELPER_` items of `ffi/bindings_helper.h`).

#[allow(
    dead_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    improper_ctypes,
    missing_docs,
    clippy::all,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks,
    unnecessary_transmutes,
    reason = "bindgen output (the same allowances as the kernel's `bindings` crate)"
)]
mod generated {
    use kernel::bindings::*;
    use kernel::ffi;
    use pin_init::MaybeZeroable;
    include!("ffi/bindings_generated.rs");
}

pub(crate) use generated::*;

// The layouts this module relies on, checked against the generated bindings.
const _: () = assert!(core::mem::offset_of!(generated::vdpa_device, dev) == 0);
