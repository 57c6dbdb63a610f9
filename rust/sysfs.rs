// SPDX-License-Identifier: GPL-2.0

//! sysfs of a VDUSE device: `/sys/class/vduse/NAME/{msg_timeout,bounce_size}` and
//! `/sys/class/vduse/NAME/vqN/irq_cb_affinity`.
//!
//! C version: `vduse_dev_attrs`, `vq_type` and their handlers in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//! C headers: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h),
//! [`include/linux/kobject.h`](srctree/include/linux/kobject.h).
//!
//! 7.3 has no Rust abstraction for device attributes or raw kobjects; this is the thin `unsafe`
//! layer. The handlers call safe methods of [`Device`] and [`Vq`].

use crate::{
    chrdev::DeviceNode,
    device::Device,
    registry::Vduse,
    vq::Vq, //
};
use core::ptr::null;
use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    str::{
        as_char_ptr_in_const_context,
        CStrExt, //
    },
    sync::Arc,
    types::Opaque,
};

/// A `static` holding C data with raw pointers, which the kernel only reads.
#[repr(transparent)]
struct Static<T>(T);

// SAFETY: The wrapped C structures are never written after initialisation (by us or by the
// kernel, which takes them as `const`), so sharing them between threads is fine.
unsafe impl<T> Sync for Static<T> {}

/// A read-write attribute: mode 0644, like C's `__ATTR_RW`.
const fn attr_rw(name: &'static CStr) -> bindings::attribute {
    bindings::attribute {
        name: as_char_ptr_in_const_context(name),
        mode: 0o644,
        ..pin_init::zeroed()
    }
}

/// A `u32` attribute of a VDUSE device, shown as `"%u\n"`.
trait U32Attr {
    /// The value to show.
    fn show(dev: &Device) -> u32;
    /// Stores a write.
    fn store(dev: &Device, input: &CStr) -> Result;
}

/// `msg_timeout`.
struct MsgTimeout;

impl U32Attr for MsgTimeout {
    fn show(dev: &Device) -> u32 {
        dev.msg_timeout()
    }
    fn store(dev: &Device, input: &CStr) -> Result {
        dev.set_msg_timeout(input)
    }
}

/// `bounce_size`.
struct BounceSize;

impl U32Attr for BounceSize {
    fn show(dev: &Device) -> u32 {
        dev.bounce_size()
    }
    fn store(dev: &Device, input: &CStr) -> Result {
        dev.set_bounce_size(input)
    }
}

/// The read-write device attribute `name` of `A`.
const fn u32_attr<A: U32Attr>(name: &'static CStr) -> bindings::device_attribute {
    bindings::device_attribute {
        attr: attr_rw(name),
        __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 {
            show: Some(u32_show::<A>),
        },
        __bindgen_anon_2: bindings::device_attribute__bindgen_ty_2 {
            store: Some(u32_store::<A>),
        },
    }
}

static MSG_TIMEOUT: Static<bindings::device_attribute> =
    Static(u32_attr::<MsgTimeout>(c"msg_timeout"));
static BOUNCE_SIZE: Static<bindings::device_attribute> =
    Static(u32_attr::<BounceSize>(c"bounce_size"));

static DEV_ATTRS: Static<[*const bindings::attribute; 3]> = Static([
    &raw const MSG_TIMEOUT.0.attr,
    &raw const BOUNCE_SIZE.0.attr,
    null(),
]);

static DEV_GROUP: Static<bindings::attribute_group> = Static(bindings::attribute_group {
    __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
        attrs_const: DEV_ATTRS.0.as_ptr(),
    },
    ..pin_init::zeroed()
});

static DEV_GROUPS: Static<[*const bindings::attribute_group; 2]> =
    Static([&raw const DEV_GROUP.0, null()]);

/// The node of a VDUSE device and its sysfs objects.
///
/// # Invariants
///
/// `node` was created in the class of `_vduse` with [`DEV_GROUPS`] and `_dev` as driver data;
/// both references keep those alive until the node is gone (fields drop in declaration order:
/// `vqs`, then `node`, then the references).
pub(crate) struct DeviceSysfs {
    /// `vqN` kobjects (children of the node: removed first).
    _vqs: KVec<VqSysfs>,
    /// `/dev/vduse/NAME` and `/sys/class/vduse/NAME`.
    node: DeviceNode,
    /// The driver data of the node's attributes.
    _dev: Arc<Device>,
    /// The class of the node.
    _vduse: Arc<Vduse>,
}

impl DeviceSysfs {
    /// Creates the node `name` of `dev` for `devt` in `vduse`'s class, with `msg_timeout`,
    /// `bounce_size`, and a `vqN/irq_cb_affinity` per virtqueue.
    ///
    /// The result holds a reference on `dev`: the device drops it when it removes its node.
    pub(crate) fn create(
        vduse: Arc<Vduse>,
        dev: Arc<Device>,
        devt: u32,
        name: &CStr,
        vqs: &[Arc<Vq>],
    ) -> Result<Self> {
        // SAFETY: The class (in `vduse`) and the driver data (`dev`) are kept alive by the
        // returned object until after the node is destroyed (type invariant); `DEV_GROUPS` is
        // static.
        let node = unsafe {
            DeviceNode::create(
                vduse.class(),
                devt,
                name,
                Arc::as_ptr(&dev).cast_mut().cast(),
                DEV_GROUPS.0.as_ptr(),
            )?
        };
        let mut kobjs = KVec::with_capacity(vqs.len(), GFP_KERNEL)?;
        for (i, vq) in vqs.iter().enumerate() {
            // CAST: At most 0xffff virtqueues.
            let index = i as u32;
            // SAFETY: `node` is registered and is dropped after the `vqN` kobjects (field
            // order).
            let kobj = unsafe { VqSysfs::add(node.as_raw(), index, vq.clone())? };
            kobjs.push(kobj, GFP_KERNEL)?;
        }
        // INVARIANT: Created above with the groups and driver data the invariant names.
        Ok(Self {
            _vqs: kobjs,
            node,
            _dev: dev,
            _vduse: vduse,
        })
    }

    /// The node.
    pub(crate) fn node(&self) -> &DeviceNode {
        &self.node
    }
}

/// The [`Device`] whose node `dev` is.
///
/// # Safety
///
/// `dev` is the node of a [`DeviceSysfs`], whose driver data is the device it holds a reference
/// on until the node is destroyed (`device_destroy` also waits for running attribute handlers).
unsafe fn drvdata<'a>(dev: *mut bindings::device) -> &'a Device {
    // SAFETY: Per the function's safety requirements.
    unsafe { &*(*dev).driver_data.cast::<Device>() }
}

/// Converts a handler result to the `ssize_t` sysfs expects.
fn store_result(r: Result, count: usize) -> isize {
    match r {
        // CAST: sysfs writes are at most a page.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `show` of a [`U32Attr`].
///
/// # Safety
///
/// Called by sysfs on the node of a VDUSE device, with its show buffer.
unsafe extern "C" fn u32_show<A: U32Attr>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: A VDUSE device node (caller).
    let v = A::show(unsafe { drvdata(dev) });
    // SAFETY: `buf` is a sysfs buffer; the format takes one `unsigned int`.
    unsafe { bindings::sysfs_emit(buf, c"%u\n".as_char_ptr(), v) as isize }
}

/// `store` of a [`U32Attr`].
///
/// # Safety
///
/// Called by sysfs on the node of a VDUSE device, with a NUL-terminated buffer.
unsafe extern "C" fn u32_store<A: U32Attr>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: sysfs store buffers are NUL-terminated.
    let input = unsafe { CStr::from_char_ptr(buf) };
    // SAFETY: A VDUSE device node (caller).
    store_result(A::store(unsafe { drvdata(dev) }, input), count)
}

/// The kobject `vqN` of a virtqueue, child of the device node.
///
/// # Invariants
///
/// `kobj` was initialised with `kobject_init(.., &VQ_KTYPE)`; the allocation holding it is a
/// leaked `KBox<VqKobject>` that the kobject's `release` frees.
#[pin_data]
struct VqKobject {
    #[pin]
    kobj: Opaque<bindings::kobject>,
    vq: Arc<Vq>,
}

/// The owner of a [`VqKobject`]: drops its reference with `kobject_put` (the kobject may live on
/// while sysfs files are open; it then frees itself).
///
/// # Invariants
///
/// `kobj` is the `kobj` field of a live, added [`VqKobject`], on which this owns a reference.
pub(crate) struct VqSysfs {
    kobj: *mut bindings::kobject,
}

// SAFETY: `kobject_put` may be called from any thread.
unsafe impl Send for VqSysfs {}
// SAFETY: `&VqSysfs` allows nothing.
unsafe impl Sync for VqSysfs {}

impl VqSysfs {
    /// Creates `vq<index>` under `parent`, exposing `vq`'s interrupt affinity.
    ///
    /// # Safety
    ///
    /// `parent` is a registered device that outlives the returned object.
    pub(crate) unsafe fn add(
        parent: *mut bindings::device,
        index: u32,
        vq: Arc<Vq>,
    ) -> Result<Self> {
        let boxed = KBox::pin_init(
            pin_init!(VqKobject {
                kobj <- Opaque::ffi_init(|slot: *mut bindings::kobject| {
                    // SAFETY: `slot` is valid for writes; `kobject_init` expects zeroed memory.
                    unsafe { slot.write(pin_init::zeroed()) };
                    // SAFETY: `slot` is zeroed; `VQ_KTYPE` is static.
                    unsafe { bindings::kobject_init(slot, &VQ_KTYPE.0) };
                }),
                vq,
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: From here on the kobject owns the allocation: `vq_release` turns it back into
        // a box. It is never moved (it stays where `KBox::pin_init` put it).
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(boxed) });
        // SAFETY: `raw` is valid.
        let kobj = unsafe { (*raw).kobj.get() };
        // SAFETY: `kobj` is initialised; `parent` is registered (caller); the format takes one
        // `int`.
        let ret = unsafe {
            bindings::kobject_add(
                kobj,
                &raw mut (*parent).kobj,
                c"vq%d".as_char_ptr(),
                index as c_int,
            )
        };
        // INVARIANT: We own the initial reference of the kobject.
        let this = Self { kobj };
        to_result(ret)?;
        Ok(this)
    }
}

impl Drop for VqSysfs {
    fn drop(&mut self) {
        // SAFETY: We own a reference (type invariant); the last put removes the sysfs directory
        // (if added) and calls `vq_release`.
        unsafe { bindings::kobject_put(self.kobj) };
    }
}

/// The [`VqKobject`] of `kobj`.
///
/// # Safety
///
/// `kobj` is the `kobj` field of a live [`VqKobject`].
unsafe fn vq_of<'a>(kobj: *mut bindings::kobject) -> &'a VqKobject {
    // SAFETY: Per the safety requirements; `Opaque` is `repr(transparent)`.
    unsafe { &*kernel::container_of!(kobj.cast::<Opaque<bindings::kobject>>(), VqKobject, kobj) }
}

/// # Safety
///
/// Called by the kobject core when the last reference on a [`VqKobject`] is gone.
unsafe extern "C" fn vq_release(kobj: *mut bindings::kobject) {
    // SAFETY: `kobj` is the field of a `VqKobject` leaked from a `KBox` in `VqSysfs::add`
    // (type invariant of `VqKobject`); this is the last reference.
    let raw =
        unsafe { kernel::container_of!(kobj.cast::<Opaque<bindings::kobject>>(), VqKobject, kobj) };
    // SAFETY: See above: the box is reconstituted exactly once.
    drop(unsafe { KBox::from_raw(raw) });
}

/// # Safety
///
/// Called by sysfs for an attribute of a [`VqKobject`].
unsafe extern "C" fn vq_attr_show(
    kobj: *mut bindings::kobject,
    _attr: *mut bindings::attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: sysfs holds the kobject alive while a handler runs.
    let vq = unsafe { vq_of(kobj) };
    let mask = vq.vq.irq_affinity();
    // SAFETY: `buf` is a sysfs buffer; `%*pb` takes the number of bits and a bitmap pointer,
    // which points to `mask`, alive for the call.
    unsafe {
        bindings::sysfs_emit(
            buf,
            c"%*pb\n".as_char_ptr(),
            bindings::nr_cpu_ids,
            mask.0.bits.as_ptr(),
        ) as isize
    }
}

/// # Safety
///
/// Called by sysfs for an attribute of a [`VqKobject`].
unsafe extern "C" fn vq_attr_store(
    kobj: *mut bindings::kobject,
    _attr: *mut bindings::attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: sysfs holds the kobject alive while a handler runs.
    let vq = unsafe { vq_of(kobj) };
    // SAFETY: `buf` is a NUL-terminated sysfs store buffer.
    let input = unsafe { CStr::from_char_ptr(buf) };
    store_result(
        parse_cpumask(input).and_then(|m| vq.vq.set_irq_affinity(m)),
        count,
    )
}

/// A CPU mask by value (`struct cpumask`, `NR_CPUS` bits).
#[derive(Clone, Copy)]
pub(crate) struct CpuMask(bindings::cpumask);

impl CpuMask {
    /// The mask of all possible CPU ids (`cpumask_setall`: bits up to `nr_cpu_ids`).
    pub(crate) fn all() -> Self {
        let mut mask: bindings::cpumask = pin_init::zeroed();
        // SAFETY: Reading a kernel global set at boot.
        let n = unsafe { bindings::nr_cpu_ids } as usize;
        let bits = usize::BITS as usize;
        for (i, word) in mask.bits.iter_mut().enumerate() {
            let lo = i * bits;
            *word = if n >= lo + bits {
                !0
            } else if n > lo {
                (1 << (n - lo)) - 1
            } else {
                0
            };
        }
        Self(mask)
    }

    /// Whether the mask has an online CPU (`cpumask_intersects(mask, cpu_online_mask)`).
    pub(crate) fn intersects_online(&self) -> bool {
        // SAFETY: `__cpu_online_mask` is a valid kernel global; it is copied with a volatile
        // read (CPU hotplug may change it concurrently, as for C's unlocked `cpumask_intersects`
        // the answer holds for a moment around the call).
        let online = unsafe { core::ptr::read_volatile(&raw const bindings::__cpu_online_mask) };
        self.0
            .bits
            .iter()
            .zip(online.bits.iter())
            .any(|(a, b)| a & b != 0)
    }
}

/// `cpumask_parse`: a hex CPU bitmap as written to `irq_cb_affinity`.
fn parse_cpumask(input: &CStr) -> Result<CpuMask> {
    let mut mask: bindings::cpumask = pin_init::zeroed();
    // SAFETY: `input` is NUL-terminated (`UINT_MAX` length: parse up to the NUL); `mask.bits`
    // holds `nr_cpu_ids` bits (`nr_cpu_ids <= NR_CPUS`).
    to_result(unsafe {
        bindings::bitmap_parse(
            input.as_char_ptr(),
            u32::MAX,
            mask.bits.as_mut_ptr(),
            // CAST: `nr_cpu_ids <= NR_CPUS`, a small positive number.
            bindings::nr_cpu_ids as i32,
        )
    })?;
    Ok(CpuMask(mask))
}

static VQ_AFFINITY: Static<bindings::attribute> = Static(attr_rw(c"irq_cb_affinity"));

static VQ_ATTRS: Static<[*const bindings::attribute; 2]> =
    Static([&raw const VQ_AFFINITY.0, null()]);

static VQ_GROUP: Static<bindings::attribute_group> = Static(bindings::attribute_group {
    __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
        attrs_const: VQ_ATTRS.0.as_ptr(),
    },
    ..pin_init::zeroed()
});

static VQ_GROUPS: Static<[*const bindings::attribute_group; 2]> =
    Static([&raw const VQ_GROUP.0, null()]);

static VQ_SYSFS_OPS: Static<bindings::sysfs_ops> = Static(bindings::sysfs_ops {
    show: Some(vq_attr_show),
    store: Some(vq_attr_store),
});

static VQ_KTYPE: Static<bindings::kobj_type> = Static(bindings::kobj_type {
    release: Some(vq_release),
    sysfs_ops: &raw const VQ_SYSFS_OPS.0,
    // CAST: The kernel only reads the array.
    default_groups: (&raw const VQ_GROUPS.0).cast_mut().cast(),
    ..pin_init::zeroed()
});
