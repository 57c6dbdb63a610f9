/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C headers vduse_rs needs beyond the kernel crate's `kernel::bindings`: bindgen turns the
 * items declared in these files (tools/gen-bindings: --allowlist-file) into
 * rust/ffi/bindings_generated.rs; the types they use from other headers resolve to
 * `kernel::bindings`.
 */
#include <linux/vdpa.h>
#include <linux/vhost_iotlb.h>
#include <linux/iova.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/anon_inodes.h>
