// SPDX-License-Identifier: GPL-2.0

//! The vDPA bus and the message channel: `vdpa dev add/del`, the requests the driver sends to
//! the daemon (driven through `vhost_vdpa`), timeouts, the broken state, reconnection.
//!
//! These cases bind devices to `vhost_vdpa` (they unload `virtio_vdpa` first): vhost-vdpa's
//! ioctls reach every request type without a working data path.

mod bus;
mod common;
mod consumer;
mod failures;
mod requests;
mod spaces;

use crate::harness::Case;
pub(super) use common::{on_vhost, open_vhost};

/// The cases of this module, in run order.
pub fn cases() -> Vec<Case> {
    vec![
        Case::new("vdpa/mgmtdev_show", bus::mgmtdev),
        Case::new("vdpa/add_unknown_einval", bus::add_unknown),
        Case::new("vdpa/add_needs_vq_setup", bus::add_needs_vq_setup),
        Case::new("vdpa/del_closed_reopens", bus::del_closed_reopens),
        Case::new(
            "vdpa/vhost_lifecycle_all_requests",
            requests::vhost_lifecycle,
        ),
        Case::new("vdpa/vhost_no_vduse_features", requests::vhost_no_features),
        Case::new("vdpa/timeout_breaks_device", requests::timeout_breaks),
        Case::new("vdpa/reconnect_requeues", requests::reconnect),
        Case::new("vdpa/killable_wait", requests::killable_wait),
        Case::new("vdpa/vhost_consumer_view", consumer::vhost_consumer_view),
        Case::new(
            "vdpa/vhost_v0_update_iotlb",
            consumer::vhost_v0_update_iotlb,
        ),
        Case::new("vdpa/failed_set_status", failures::fail_set_status),
        Case::new("vdpa/failed_update_iotlb", failures::fail_update_iotlb),
        Case::new("vdpa/failed_set_vq_ready", failures::fail_set_vq_ready),
        Case::new(
            "vdpa/failed_set_vq_group_asid",
            failures::fail_set_group_asid,
        ),
        Case::new("vdpa/failed_suspend", failures::fail_suspend),
        Case::new("vdpa/failed_get_vq_state", failures::fail_get_vq_state),
        Case::new("vdpa/two_address_spaces", spaces::two_address_spaces),
        Case::new("vdpa/suspend_barrier", consumer::suspend_barrier),
        Case::new("vdpa/nas_max_on_bus", spaces::nas_max_on_bus),
        Case::new("vdpa/iotlb_entries_limit", spaces::iotlb_entries_limit),
    ]
}
