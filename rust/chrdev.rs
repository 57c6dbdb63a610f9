// SPDX-License-Identifier: GPL-2.0

//! Character devices of a device class: the `/dev/vduse/*` nodes and `/sys/class/vduse`.
//!
//! C headers: [`include/linux/cdev.h`](srctree/include/linux/cdev.h),
//! [`include/linux/device/class.h`](srctree/include/linux/device/class.h),
//! [`include/linux/fs.h`](srctree/include/linux/fs.h).
//!
//! `MiscDeviceRegistration` gives one node per registration and no class of our own; VDUSE needs
//! a class (`/sys/class/vduse`), a `devnode` callback (`/dev/vduse/NAME`) and one `cdev` covering
//! up to 2^20 minors. This file is the thin `unsafe` layer for those, written in the style of
//! `rust/kernel/miscdevice.rs`; the driver logic above it has no `unsafe`.

use core::marker::PhantomData;
use kernel::{
    bindings,
    error::{
        from_err_ptr,
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    fs::{
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*,
    sync::poll::PollTable,
    types::{
        ForeignOwnable,
        Opaque, //
    },
};

/// Number of bits of the minor part of a `dev_t` (`MINORBITS`).
pub(crate) const MINORBITS: u32 = 20;
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
    pub(crate) fn register(name: &'static CStr, dir: &'static CStr) -> impl PinInit<Self, Error> {
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
        // [`DeviceNode`] cannot outlive the `&Class` it was created from.
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

/// The file operations of the nodes of a [`Cdev`].
#[vtable]
pub(crate) trait FileOps: Sized {
    /// What kind of pointer the per-open state is wrapped in.
    type Ptr: ForeignOwnable + Send + Sync;
    /// Data shared by all nodes of the `cdev`, handed to [`FileOps::open`].
    type Shared: Send + Sync;

    /// Opens minor `minor`. The returned pointer becomes the private data of the file.
    fn open(shared: &Self::Shared, minor: u32, file: &File) -> Result<Self::Ptr>;

    /// Releases the file.
    fn release(this: Self::Ptr, _file: &File) {
        drop(this);
    }

    /// `read_iter`.
    fn read_iter(_kiocb: Kiocb<'_, Self::Ptr>, _iov: &mut IovIterDest<'_>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `write_iter`.
    fn write_iter(_kiocb: Kiocb<'_, Self::Ptr>, _iov: &mut IovIterSource<'_>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `poll`: registers the waits and returns the `EPOLL*` mask.
    fn poll(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _table: PollTable<'_>,
    ) -> u32 {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `unlocked_ioctl`.
    fn ioctl(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _cmd: u32,
        _arg: usize,
    ) -> Result<isize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `compat_ioctl`; without it, `compat_ptr_ioctl` forwards to [`FileOps::ioctl`].
    #[cfg(CONFIG_COMPAT)]
    fn compat_ioctl(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _cmd: u32,
        _arg: usize,
    ) -> Result<isize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// A character device (`struct cdev`) serving a range of minors with the operations of `T`.
///
/// # Invariants
///
/// `cdev` was initialised with `cdev_init()` and the file operations of `T`, added with
/// `cdev_add()`, and is deleted exactly once, in `drop`. `shared` is initialised before `cdev` is
/// added and dropped after it is deleted.
#[pin_data(PinnedDrop)]
pub(crate) struct Cdev<T: FileOps> {
    /// Handed to every `open`.
    shared: T::Shared,
    #[pin]
    cdev: Opaque<bindings::cdev>,
    _t: PhantomData<T>,
}

// SAFETY: `cdev_del` may be called from any thread; `T::Shared` is `Send`.
unsafe impl<T: FileOps> Send for Cdev<T> {}
// SAFETY: `&Cdev` only gives access to `T::Shared`, which is `Sync`.
unsafe impl<T: FileOps> Sync for Cdev<T> {}

impl<T: FileOps> Cdev<T> {
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

    /// The `Cdev` a file of this cdev was opened through.
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
                // SAFETY: `open` may set the private data; every other callback reads it back
                // as `T::Ptr`.
                unsafe { (*raw_file).private_data = ptr.into_foreign().cast() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// `file` is a file of this cdev being released.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The private data was set by `open`; release takes it back exactly once.
        let ptr = unsafe { <T::Ptr as ForeignOwnable>::from_foreign((*file).private_data.cast()) };
        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        T::release(ptr, unsafe { File::from_raw_file(file) });
        0
    }

    /// # Safety
    ///
    /// `kiocb` is for a file of this cdev; `iter` is a valid destination iterator.
    unsafe extern "C" fn read_iter(
        kiocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: The file of `kiocb` was opened through `open`, so its private data is a
        // `T::Ptr`.
        let kiocb = unsafe { Kiocb::from_raw(kiocb) };
        // SAFETY: `iter` is a valid iterator for writing.
        let iov = unsafe { IovIterDest::from_raw(iter) };
        match T::read_iter(kiocb, iov) {
            // CAST: A read never exceeds `isize::MAX` bytes.
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// `kiocb` is for a file of this cdev; `iter` is a valid source iterator.
    unsafe extern "C" fn write_iter(
        kiocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: The file of `kiocb` was opened through `open`, so its private data is a
        // `T::Ptr`.
        let kiocb = unsafe { Kiocb::from_raw(kiocb) };
        // SAFETY: `iter` is a valid iterator for reading.
        let iov = unsafe { IovIterSource::from_raw(iter) };
        match T::write_iter(kiocb, iov) {
            // CAST: A write never exceeds `isize::MAX` bytes.
            Ok(n) => n as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// `file` is a file of this cdev; `table` is a valid poll table (or NULL).
    unsafe extern "C" fn poll(
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> bindings::__poll_t {
        // SAFETY: The private data was set by `open` and is released only in `release`.
        let this = unsafe { <T::Ptr as ForeignOwnable>::borrow((*file).private_data.cast()) };
        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        let f = unsafe { File::from_raw_file(file) };
        // SAFETY: `table` is the poll table of this `poll` call.
        let table = unsafe { PollTable::from_raw(table) };
        T::poll(this, f, table)
    }

    /// # Safety
    ///
    /// `file` is a file of this cdev.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: The private data was set by `open` and is released only in `release`.
        let this = unsafe { <T::Ptr as ForeignOwnable>::borrow((*file).private_data.cast()) };
        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        let f = unsafe { File::from_raw_file(file) };
        match T::ioctl(this, f, cmd, arg) {
            // CAST: `long` and `isize` have the same size in the kernel.
            Ok(ret) => ret as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// `file` is a file of this cdev.
    #[cfg(CONFIG_COMPAT)]
    unsafe extern "C" fn compat_ioctl(
        file: *mut bindings::file,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        // SAFETY: The private data was set by `open` and is released only in `release`.
        let this = unsafe { <T::Ptr as ForeignOwnable>::borrow((*file).private_data.cast()) };
        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        let f = unsafe { File::from_raw_file(file) };
        match T::compat_ioctl(this, f, cmd, arg) {
            // CAST: `long` and `isize` have the same size in the kernel.
            Ok(ret) => ret as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }

    const VTABLE: bindings::file_operations = bindings::file_operations {
        open: Some(Self::open),
        release: Some(Self::release),
        read_iter: if T::HAS_READ_ITER {
            Some(Self::read_iter)
        } else {
            None
        },
        write_iter: if T::HAS_WRITE_ITER {
            Some(Self::write_iter)
        } else {
            None
        },
        poll: if T::HAS_POLL { Some(Self::poll) } else { None },
        unlocked_ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl)
        } else {
            None
        },
        #[cfg(CONFIG_COMPAT)]
        compat_ioctl: if T::HAS_COMPAT_IOCTL {
            Some(Self::compat_ioctl)
        } else if T::HAS_IOCTL {
            bindings::compat_ptr_ioctl
        } else {
            None
        },
        llseek: Some(bindings::noop_llseek),
        owner: kernel::module::this_module::<T::OwnerModule>().as_ptr(),
        ..pin_init::zeroed()
    };
}

#[pinned_drop]
impl<T: FileOps> PinnedDrop for Cdev<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Added in `add` (type invariant). Files still open keep a reference to the
        // cdev's kobject, not to `self`, and hold the module, so no `open` can run after this.
        unsafe { bindings::cdev_del(self.cdev.get()) };
    }
}

/// A device node of a [`Class`] (`device_create`), e.g. `/dev/vduse/control`.
///
/// # Invariants
///
/// `dev` was created with `device_create()` for `devt` in `class`; it is destroyed exactly once,
/// in `drop`; `class` outlives this object.
pub(crate) struct DeviceNode {
    class: *mut bindings::class,
    devt: bindings::dev_t,
    dev: *mut bindings::device,
}

// SAFETY: `device_destroy` may be called from any thread.
unsafe impl Send for DeviceNode {}
// SAFETY: `&DeviceNode` gives no access to the device beyond its raw pointer.
unsafe impl Sync for DeviceNode {}

impl DeviceNode {
    /// Creates the node `name` for `devt` in `class`, with the sysfs attribute `groups`.
    ///
    /// # Safety
    ///
    /// `class` outlives the returned object, and `groups` (NULL or a NULL-terminated array of
    /// attribute groups) outlives it too.
    pub(crate) unsafe fn create(
        class: &Class,
        devt: bindings::dev_t,
        name: &CStr,
        drvdata: *mut c_void,
        groups: *const *const bindings::attribute_group,
    ) -> Result<Self> {
        // SAFETY: `class` is registered; the format takes one string, `name`, which
        // `device_create_with_groups` copies. `groups` is valid by the caller's guarantee.
        let dev = from_err_ptr(unsafe {
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
        })?;
        // INVARIANT: Created just above; the caller guarantees the class outlives us.
        Ok(Self {
            class: class.as_raw(),
            devt,
            dev,
        })
    }

    /// The `struct device` of the node, valid as long as `self`.
    pub(crate) fn as_raw(&self) -> *mut bindings::device {
        self.dev
    }
}

impl Drop for DeviceNode {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the device exists and the class is still registered.
        unsafe { bindings::device_destroy(self.class, self.devt) };
    }
}

/// The `f_flags` of the file of `kiocb` (e.g. `O_NONBLOCK`).
pub(crate) fn kiocb_file_flags<T: ForeignOwnable>(kiocb: &Kiocb<'_, T>) -> u32 {
    // SAFETY: A `Kiocb` wraps a valid `struct kiocb` whose `ki_filp` is the file being read or
    // written, alive for the call. `f_flags` is read like `File::flags` does (racy by design).
    unsafe { core::ptr::read_volatile(&raw const (*(*kiocb.as_raw()).ki_filp).f_flags) }
}
