// SPDX-License-Identifier: GPL-2.0

//! Character devices of a device class: a class, its device numbers, a `cdev` and device nodes.
//!
//! C headers: [`include/linux/cdev.h`](srctree/include/linux/cdev.h),
//! [`include/linux/device/class.h`](srctree/include/linux/device/class.h),
//! [`include/linux/fs.h`](srctree/include/linux/fs.h).
//!
//! `MiscDeviceRegistration` gives one node per registration and no class of its own; a driver
//! with a class (`/sys/class/NAME`), nodes in a subdirectory of `/dev` (a `devnode` callback)
//! and one `cdev` covering many minors needs these instead. Upstream this would be
//! `kernel::cdev` and `kernel::device::class`.

use super::{
    file_ops::{
        FileOps,
        FileOpsVTable, //
    },
    sysfs::{
        self,
        Attributes, //
    },
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    fs::File,
    prelude::*,
    sync::Arc,
    types::{
        ForeignOwnable,
        Opaque, //
    },
};

/// Number of bits of the minor part of a `dev_t` (`MINORBITS`).
pub(crate) const MINORBITS: u32 = crate::ffi::MINORBITS;
/// Number of minors of a major (`1 << MINORBITS`).
pub(crate) const MINORS: u32 = 1 << MINORBITS;

/// `MKDEV()`.
const fn mkdev(major: u32, minor: u32) -> bindings::dev_t {
    (major << MINORBITS) | minor
}

/// A registered device class whose device nodes live in a subdirectory of `/dev`.
///
/// # Invariants
///
/// `inner` is a `struct class` registered with `class_register()`, with `name` and `devnode` set
/// from `name` and [`Class::devnode`]; it is unregistered exactly once, in `drop`.
#[pin_data(PinnedDrop)]
pub(crate) struct Class {
    /// Subdirectory of `/dev` for the nodes of this class.
    dir: &'static CStr,
    #[pin]
    inner: Opaque<bindings::class>,
}

// SAFETY: `class_unregister` may be called from any thread; `&Class` only gives access to the
// class pointer.
unsafe impl Send for Class {}
// SAFETY: All `&self` methods may be called in parallel.
unsafe impl Sync for Class {}

impl Class {
    /// Registers the class `name`; its device nodes appear as `/dev/<dir>/<device name>`.
    pub(crate) fn register(name: &'static CStr, dir: &'static CStr) -> Result<Arc<Self>> {
        Arc::pin_init(Self::new(name, dir), GFP_KERNEL)
    }

    fn new(name: &'static CStr, dir: &'static CStr) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            dir,
            inner <- Opaque::try_ffi_init(move |slot: *mut bindings::class| {
                let mut class: bindings::class = pin_init::zeroed();
                class.name = name.as_char_ptr();
                class.devnode = Some(Self::devnode);
                // SAFETY: `slot` is valid for writes; the initializer owns it.
                unsafe { slot.write(class) };
                // SAFETY: `slot` holds a fully initialised class that stays pinned until `drop`
                // unregisters it.
                // INVARIANT: On success the class is registered.
                to_result(unsafe { bindings::class_register(slot) })
            }),
        })
    }

    /// The raw class pointer.
    pub(crate) fn as_raw(&self) -> *mut bindings::class {
        self.inner.get()
    }

    /// `devnode` callback: names the node `<dir>/<device name>`.
    ///
    /// # Safety
    ///
    /// `dev` is a valid device whose class is the `inner` field of a [`Class`].
    unsafe extern "C" fn devnode(dev: *const bindings::device, _mode: *mut u16) -> *mut c_char {
        // SAFETY: `dev` is valid and its class is `Class::inner` (the only class this callback is
        // installed in); `Opaque<T>` is `repr(transparent)` over `T`.
        let this = unsafe {
            &*kernel::container_of!(
                (*dev).class.cast::<Opaque<bindings::class>>().cast_mut(),
                Class,
                inner
            )
        };
        // SAFETY: The format takes two strings; `dir` is a static C string and `dev_name` returns
        // the valid, NUL-terminated name of a registered device.
        unsafe {
            bindings::kasprintf(
                bindings::GFP_KERNEL,
                c"%s/%s".as_char_ptr(),
                this.dir.as_char_ptr(),
                bindings::dev_name(dev),
            )
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Class {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered by the type invariant; every device created in it is gone because a
        // [`DeviceNode`] holds a reference on its class.
        unsafe { bindings::class_unregister(self.inner.get()) };
    }
}

/// A range of character device numbers (`alloc_chrdev_region`).
///
/// # Invariants
///
/// `[base, base + count)` is allocated to this object and released exactly once, in `drop`.
pub(crate) struct ChrdevRegion {
    base: bindings::dev_t,
    count: u32,
}

impl ChrdevRegion {
    /// Allocates `count` minors of a dynamic major, starting at minor 0.
    pub(crate) fn alloc(count: u32, name: &'static CStr) -> Result<Self> {
        let mut base: bindings::dev_t = 0;
        // SAFETY: `base` is valid for writes and `name` is a static C string (the chrdev core
        // keeps the pointer).
        to_result(unsafe {
            bindings::alloc_chrdev_region(&mut base, 0, count, name.as_char_ptr())
        })?;
        // INVARIANT: Allocated just above.
        Ok(Self { base, count })
    }

    /// The major number.
    pub(crate) fn major(&self) -> u32 {
        self.base >> MINORBITS
    }

    /// The device number of `minor`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `minor` is outside the region.
    pub(crate) fn devt(&self, minor: u32) -> Result<bindings::dev_t> {
        if minor >= self.count {
            return Err(EINVAL);
        }
        Ok(mkdev(self.major(), minor))
    }
}

impl Drop for ChrdevRegion {
    fn drop(&mut self) {
        // SAFETY: The region was allocated by `alloc` (type invariant).
        unsafe { bindings::unregister_chrdev_region(self.base, self.count) };
    }
}

/// The operations of the nodes of a [`Cdev`]: [`FileOps`] and an `open` by minor number.
pub(crate) trait CdevOps: FileOps {
    /// Data shared by all nodes of the `cdev`, handed to [`CdevOps::open`].
    type Shared: Send + Sync;

    /// Opens minor `minor`. The returned pointer becomes the private data of the file.
    fn open(shared: &Self::Shared, minor: u32, file: &File) -> Result<Self::Ptr>;
}

/// A character device (`struct cdev`) serving a range of minors with the operations of `T`.
///
/// # Invariants
///
/// `cdev` was initialised with `cdev_init()` and the file operations of `T`, added with
/// `cdev_add()`, and is deleted exactly once, in `drop`. `shared` is initialised before `cdev` is
/// added and dropped after it is deleted.
#[pin_data(PinnedDrop)]
pub(crate) struct Cdev<T: CdevOps> {
    /// Handed to every `open`.
    shared: T::Shared,
    #[pin]
    cdev: Opaque<bindings::cdev>,
    _t: PhantomData<T>,
}

// SAFETY: `cdev_del` may be called from any thread; `T::Shared` is `Send`.
unsafe impl<T: CdevOps> Send for Cdev<T> {}
// SAFETY: `&Cdev` only gives access to `T::Shared`, which is `Sync`.
unsafe impl<T: CdevOps> Sync for Cdev<T> {}

impl<T: CdevOps> Cdev<T> {
    const VTABLE: bindings::file_operations = FileOpsVTable::<T>::build(Some(Self::open));

    /// Adds a cdev for `count` device numbers starting at `first`.
    pub(crate) fn add(
        shared: T::Shared,
        first: bindings::dev_t,
        count: u32,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            shared,
            cdev <- Opaque::try_ffi_init(move |slot: *mut bindings::cdev| {
                // SAFETY: `slot` is valid for writes; `VTABLE` is static.
                unsafe { bindings::cdev_init(slot, &Self::VTABLE) };
                // SAFETY: `slot` was just initialised.
                unsafe { (*slot).owner = Self::VTABLE.owner };
                // SAFETY: `slot` is initialised and pinned; `shared` is initialised already
                // (fields are initialised in order), so an `open` racing with this is fine.
                // INVARIANT: On success the cdev is live.
                to_result(unsafe { bindings::cdev_add(slot, first, count) })
            }),
            _t: PhantomData,
        })
    }

    /// The `Cdev` a file of this cdev is being opened through.
    ///
    /// # Safety
    ///
    /// `inode` is the inode of a node of a live `Cdev<T>`.
    unsafe fn from_inode<'a>(inode: *mut bindings::inode) -> &'a Self {
        // SAFETY: `inode` is valid (caller). `i_cdev` lives in an anonymous union of `struct
        // inode` (with `i_pipe` and `i_link`); for a character device node it is the cdev.
        // bindgen numbers anonymous unions, so a different kernel config that moves it makes
        // this fail to compile rather than read another field.
        let cdev = unsafe { (*inode).__bindgen_anon_5.i_cdev };
        // SAFETY: `chrdev_open` set `i_cdev` to our cdev, which stays alive while a file is
        // being opened through it; `Opaque<T>` is `repr(transparent)`.
        unsafe { &*kernel::container_of!(cdev.cast::<Opaque<bindings::cdev>>(), Self, cdev) }
    }

    /// The `open` of [`Cdev::VTABLE`]: sets the private data to a `T::Ptr`, as
    /// [`FileOpsVTable::build`] requires.
    ///
    /// # Safety
    ///
    /// `inode` and `file` are a file being opened through this cdev.
    unsafe extern "C" fn open(inode: *mut bindings::inode, raw_file: *mut bindings::file) -> c_int {
        // SAFETY: Guaranteed by the caller.
        let this = unsafe { Self::from_inode(inode) };
        // SAFETY: `inode` is valid; `i_rdev` does not change.
        let minor = unsafe { (*inode).i_rdev } & (MINORS - 1);
        // SAFETY:
        // * The file is valid for the duration of `T::open`.
        // * There is no active fdget_pos region on the file on this thread.
        let file = unsafe { File::from_raw_file(raw_file) };
        match T::open(&this.shared, minor, file) {
            Ok(ptr) => {
                // SAFETY: `open` may set the private data; the other operations read it back
                // as `T::Ptr`.
                unsafe { (*raw_file).private_data = ptr.into_foreign().cast() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }
}

#[pinned_drop]
impl<T: CdevOps> PinnedDrop for Cdev<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Added in `add` (type invariant). Files still open keep a reference to the
        // cdev's kobject, not to `self`, and hold the module, so no `open` can run after this.
        unsafe { bindings::cdev_del(self.cdev.get()) };
    }
}

/// A device node of a [`Class`] (`device_create`), e.g. `/dev/DIR/NAME`, optionally with
/// read-write sysfs attributes served by its driver data.
///
/// # Invariants
///
/// `dev` was created with `device_create_with_groups()` for `devt` in `class`, with the
/// attribute groups of `data`'s type and `data` as driver data (or neither); it is destroyed
/// exactly once, in `drop`, before `data` and `class` are released.
pub(crate) struct DeviceNode {
    dev: *mut bindings::device,
    devt: bindings::dev_t,
    class: Arc<Class>,
    data: Option<Arc<dyn Send + Sync>>,
}

// SAFETY: `device_destroy` may be called from any thread; the driver data is `Send + Sync`.
unsafe impl Send for DeviceNode {}
// SAFETY: `&DeviceNode` gives no access to the device beyond its raw pointer.
unsafe impl Sync for DeviceNode {}

impl DeviceNode {
    /// Creates the node `name` for `devt` in `class`, without attributes.
    pub(crate) fn create(class: &Arc<Class>, devt: bindings::dev_t, name: &CStr) -> Result<Self> {
        // SAFETY: No driver data and no groups.
        unsafe { Self::create_raw(class, devt, name, core::ptr::null_mut(), core::ptr::null()) }
            .map(|dev| Self {
                dev,
                devt,
                class: class.clone(),
                data: None,
            })
    }

    /// Creates the node `name` for `devt` in `class`, with the read-write attributes of `T`
    /// served by `data`, which the node holds until it is destroyed.
    pub(crate) fn with_attrs<T: Attributes + Send + Sync + 'static>(
        class: &Arc<Class>,
        devt: bindings::dev_t,
        name: &CStr,
        data: Arc<T>,
    ) -> Result<Self> {
        // SAFETY: The driver data is the `T` of `data`, which the node keeps until after the
        // device is destroyed; the groups are those of `T` (static).
        let dev = unsafe {
            Self::create_raw(
                class,
                devt,
                name,
                Arc::as_ptr(&data).cast_mut().cast(),
                sysfs::DeviceAttrTable::<T>::groups(),
            )?
        };
        // INVARIANT: Created with `T`'s groups and `data` as driver data.
        Ok(Self {
            dev,
            devt,
            class: class.clone(),
            data: Some(data),
        })
    }

    /// `device_create_with_groups()`.
    ///
    /// # Safety
    ///
    /// `groups` is NULL or a static, NULL-terminated array of attribute groups whose handlers
    /// accept `drvdata` as the driver data, valid until the device is destroyed.
    unsafe fn create_raw(
        class: &Class,
        devt: bindings::dev_t,
        name: &CStr,
        drvdata: *mut c_void,
        groups: *const *const bindings::attribute_group,
    ) -> Result<*mut bindings::device> {
        // SAFETY: `class` is registered; the format takes one string, `name`, which
        // `device_create_with_groups` copies. `groups` and `drvdata` are valid (caller).
        from_err_ptr(unsafe {
            bindings::device_create_with_groups(
                class.as_raw(),
                core::ptr::null_mut(),
                devt,
                drvdata,
                // CAST: The C prototype lacks a `const`; the array is only read.
                groups.cast_mut(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        })
    }
}

/// A node is a class device: it can be the parent of other devices and kobjects.
impl AsRef<kernel::device::Device> for DeviceNode {
    fn as_ref(&self) -> &kernel::device::Device {
        // SAFETY: `dev` is a registered device until `self` is dropped (type invariant), and
        // `self` holds its initial reference meanwhile, so it is valid for the returned
        // lifetime.
        unsafe { kernel::device::Device::from_raw(self.dev) }
    }
}

impl Drop for DeviceNode {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the device exists and the class is registered (we hold
        // it). `device_destroy` removes the attributes and waits for running handlers, so the
        // driver data (dropped after this) is no longer used.
        unsafe { bindings::device_destroy(self.class.as_raw(), self.devt) };
        drop(self.data.take());
    }
}
