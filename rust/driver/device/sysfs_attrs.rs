// SPDX-License-Identifier: GPL-2.0

//! The node `/dev/vduse/NAME` of a device and its sysfs attributes: `msg_timeout`,
//! `bounce_size` and `vqN/irq_cb_affinity`.
//!
//! C version: `vduse_dev_groups`, `vq_type` and `vduse_dev_init_vqs()` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).

use super::Device;
use crate::{
    driver::vq::{
        IrqStats,
        Vq, //
    },
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
    debugfs::{
        Dir,
        File as DebugFile, //
    },
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

/// The node of a device, its `vqN` directories, and its debugfs directory
/// (`vduse_rs/NAME/vqN_irq_cpus`: how many interrupt callbacks of each queue ran on each CPU).
///
/// Fields drop in declaration order: the debugfs files before their directory, the `vqN`
/// directories (children of the node) before the node.
pub(crate) struct DeviceSysfs {
    /// `vqN_irq_cpus` in debugfs.
    _irq_files: KVec<Pin<KBox<DebugFile<Arc<IrqStats>>>>>,
    /// `vduse_rs/NAME` in debugfs.
    _debug_dir: Dir,
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
        debug_root: &Dir,
        dev: &Arc<Device>,
        devt: u32,
        name: &CStr,
        vqs: &[Arc<Vq>],
    ) -> Result<Self> {
        let node = DeviceNode::with_attrs(class, devt, name, dev.clone())?;
        let mut dirs = KVec::with_capacity(vqs.len(), GFP_KERNEL)?;
        for (i, vq) in vqs.iter().enumerate() {
            let dir_name = CString::try_from_fmt(fmt!("vq{i}"))?;
            dirs.push(
                KobjectDir::add(node.as_ref(), &dir_name, vq.clone())?,
                GFP_KERNEL,
            )?;
        }
        let debug_dir = debug_root.subdir(name);
        let mut irq_files = KVec::with_capacity(vqs.len(), GFP_KERNEL)?;
        for (i, vq) in vqs.iter().enumerate() {
            let file_name = CString::try_from_fmt(fmt!("vq{i}_irq_cpus"))?;
            let file = KBox::pin_init(
                debug_dir.read_only_file(&file_name, vq.irq_stats().clone()),
                GFP_KERNEL,
            )?;
            irq_files.push(file, GFP_KERNEL)?;
        }
        Ok(Self {
            _irq_files: irq_files,
            _debug_dir: debug_dir,
            _vqs: dirs,
            node,
        })
    }

    /// The node.
    pub(crate) fn node(&self) -> &DeviceNode {
        &self.node
    }
}
