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
#include <linux/dma-mapping.h>
#include <uapi/linux/eventpoll.h>
#include <uapi/linux/virtio_blk.h>
#include <uapi/linux/virtio_config.h>
#include <uapi/linux/virtio_ids.h>
#include <uapi/linux/virtio_net.h>
#include <uapi/linux/virtio_ring.h>

/*
 * Macros bindgen cannot evaluate (casts) or whose headers are not allowlisted, as constants;
 * tools/gen-bindings strips the RUST_CONST_HELPER_ prefix, as the kernel's bindings do. The
 * constant of an integer-literal macro is a u32, the type the kernel's bindgen gives the macro
 * itself wherever it binds the macro's header (in-tree it binds them all, so tools/patches
 * leaves these constants out).
 */
/* bindgen does not evaluate the all-ones DMA_MAPPING_ERROR; its complement it does. */
const dma_addr_t RUST_CONST_HELPER_DMA_MAPPING_ERROR_COMPLEMENT = ~DMA_MAPPING_ERROR;
const __poll_t RUST_CONST_HELPER_EPOLLIN = EPOLLIN;
const __poll_t RUST_CONST_HELPER_EPOLLOUT = EPOLLOUT;
const __poll_t RUST_CONST_HELPER_EPOLLERR = EPOLLERR;
const __poll_t RUST_CONST_HELPER_EPOLLRDNORM = EPOLLRDNORM;
const __poll_t RUST_CONST_HELPER_EPOLLWRNORM = EPOLLWRNORM;
const u32 RUST_CONST_HELPER_VIRTIO_ID_NET = VIRTIO_ID_NET;
const u32 RUST_CONST_HELPER_VIRTIO_ID_BLOCK = VIRTIO_ID_BLOCK;
const u32 RUST_CONST_HELPER_VIRTIO_ID_FS = VIRTIO_ID_FS;
const u32 RUST_CONST_HELPER_VIRTIO_BLK_F_CONFIG_WCE = VIRTIO_BLK_F_CONFIG_WCE;
const u32 RUST_CONST_HELPER_VIRTIO_NET_F_CTRL_VQ = VIRTIO_NET_F_CTRL_VQ;
const u32 RUST_CONST_HELPER_VIRTIO_F_VERSION_1 = VIRTIO_F_VERSION_1;
const u32 RUST_CONST_HELPER_VIRTIO_F_ACCESS_PLATFORM = VIRTIO_F_ACCESS_PLATFORM;
const u32 RUST_CONST_HELPER_VIRTIO_F_RING_PACKED = VIRTIO_F_RING_PACKED;
const u32 RUST_CONST_HELPER_VIRTIO_CONFIG_S_DRIVER_OK = VIRTIO_CONFIG_S_DRIVER_OK;
const u32 RUST_CONST_HELPER_VIRTIO_DEV_ANY_ID = VIRTIO_DEV_ANY_ID;
const u32 RUST_CONST_HELPER_MINORBITS = MINORBITS;
const u32 RUST_CONST_HELPER_VIRTIO_BLK_S_IOERR = VIRTIO_BLK_S_IOERR;
