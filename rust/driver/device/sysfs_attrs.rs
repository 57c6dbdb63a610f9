// SPDX-License-Identifier: GPL-2.0

//! The node `/dev/vduse/NAME` of a device and its sysfs attributes: `msg_timeout`,
//! `bounce_size` and `vqN/irq_cb_affinity`.
//!
//! C version: `vduse_dev_groups`, `vq_type` and `vduse_dev_init_vqs()` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).

use super::Device;
use crate::{
    driver::vq::Vq,
    kapi::{
        cdev::{
            Class,
            DeviceNode, //
        },
        kobject::KobjectDir,
        sysfs::Attributes,
    },
};
use kernel::{
    prelude::*,
    str::CString,
    sync::Arc, //
};

/// `msg_timeout` and `bounce_size` of `/sys/class/vduse/NAME`.
impl Attributes for Device {
    const NAMES: &'static [&'static CStr] = &[c"msg_timeout", c"bounce_size"];
    type Value = u32;

    fn show(&self, index: usize) -> u32 {
        match index {
            0 => self.msg_timeout(),
            _ => self.bounce_size(),
        }
    }

    fn store(&self, index: usize, input: &CStr) -> Result {
        match index {
            0 => self.set_msg_timeout(input),
            _ => self.set_bounce_size(input),
        }
    }
}

/// The node of a device and its `vqN` directories.
///
/// Fields drop in declaration order: the `vqN` directories (children of the node) first.
pub(crate) struct DeviceSysfs {
    /// `vqN` directories.
    _vqs: KVec<KobjectDir>,
    /// `/dev/vduse/NAME` and `/sys/class/vduse/NAME`; holds a reference on the device (its
    /// attributes' data) until the node is gone.
    node: DeviceNode,
}

impl DeviceSysfs {
    /// Creates the node `name` of `dev` for `devt` in `class`, with `msg_timeout`,
    /// `bounce_size`, and a `vqN/irq_cb_affinity` per virtqueue.
    pub(crate) fn create(
        class: &Arc<Class>,
        dev: &Arc<Device>,
        devt: u32,
        name: &CStr,
        vqs: &[Arc<Vq>],
    ) -> Result<Self> {
        let node = DeviceNode::with_attrs(class, devt, name, dev.clone())?;
        let mut dirs = KVec::with_capacity(vqs.len(), GFP_KERNEL)?;
        for (i, vq) in vqs.iter().enumerate() {
            let dir_name = CString::try_from_fmt(fmt!("vq{i}"))?;
            dirs.push(KobjectDir::add(&node, &dir_name, vq.clone())?, GFP_KERNEL)?;
        }
        Ok(Self { _vqs: dirs, node })
    }

    /// The node.
    pub(crate) fn node(&self) -> &DeviceNode {
        &self.node
    }
}
