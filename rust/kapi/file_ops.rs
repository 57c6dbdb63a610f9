// SPDX-License-Identifier: GPL-2.0

//! File operations implemented in Rust: the `struct file_operations` of a [`FileOps`] type.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h).
//!
//! Upstream, this would be the generic part of `kernel::miscdevice`'s `MiscdeviceVTable`,
//! shared by every way a file comes to exist: a character device's `open` (see
//! [`super::cdev`]) or an anonymous inode created with its private data already set. The
//! private data of such a file is a [`FileOps::Ptr`], taken back exactly once by `release`.

use core::marker::PhantomData;
use kernel::{
    bindings,
    error::VTABLE_DEFAULT_ERROR,
    fs::{
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    mm::virt::VmaNew,
    page::Page,
    prelude::*,
    sync::poll::PollTable,
    types::ForeignOwnable,
};

/// The operations of a file whose private data is a [`FileOps::Ptr`].
#[vtable]
pub(crate) trait FileOps: Sized {
    /// What kind of pointer the per-file state is wrapped in.
    type Ptr: ForeignOwnable + Send + Sync;

    /// Releases the file (its last reference is gone).
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

    /// `mmap`: sets up a new mapping of the file. With [`FileOps::fault`], the mapping's pages
    /// are served by it (the mapping's `vm_ops` are set after this returns `Ok`).
    fn mmap(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _vma: &VmaNew,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The `fault` of a mapping made by [`FileOps::mmap`]: insert the page at
    /// [`VmFault::pgoff`] with [`VmFault::insert`], or fail with [`FaultResult::SIGBUS`].
    /// Process context, with the mapping's `mmap_lock` held for reading: may sleep.
    fn fault(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _vmf: &VmFault<'_>,
    ) -> FaultResult {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The outcome of a page fault (`vm_fault_t`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FaultResult(bindings::vm_fault_t);

impl FaultResult {
    /// `VM_FAULT_SIGBUS`: the access gets `SIGBUS`.
    pub(crate) const SIGBUS: Self = Self(bindings::vm_fault_reason_VM_FAULT_SIGBUS);
}

/// A page fault in a mapping of a [`FileOps`] file with [`FileOps::fault`].
///
/// # Invariants
///
/// `raw` is the valid `struct vm_fault` of a running `fault` handler.
pub(crate) struct VmFault<'a> {
    raw: *mut bindings::vm_fault,
    _fault: PhantomData<&'a ()>,
}

impl VmFault<'_> {
    /// The offset of the faulting page in the file, in pages.
    pub(crate) fn pgoff(&self) -> usize {
        // SAFETY: `raw` is valid (type invariant).
        unsafe { (*self.raw).__bindgen_anon_1.pgoff }
    }

    /// Maps `page` at the faulting address (`vmf_insert_page_mkwrite`), writable if the access
    /// is a write to a shared mapping; the mapping takes its own reference on the page. In a
    /// private mapping the page is mapped read-only, so a write copies it (COW), as it does for
    /// a page a C `fault` handler returns in `vmf->page`: a private mapping never writes the
    /// shared page.
    pub(crate) fn insert(&self, page: &Page) -> FaultResult {
        // SAFETY: `raw` is valid (type invariant).
        let write_fault = unsafe { (*self.raw).flags } & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
        // SAFETY: `raw` is valid (type invariant), and so is the VMA it faults in.
        let vm_flags = unsafe {
            (*(*self.raw).__bindgen_anon_1.vma)
                .__bindgen_anon_2
                .vm_flags
        };
        let write = write_fault && vm_flags & bindings::VM_SHARED != 0;
        // SAFETY: `raw` is a fault being handled and `page` a valid page, alive for the call;
        // the page table takes its own reference on it.
        FaultResult(unsafe { bindings::vmf_insert_page_mkwrite(self.raw, page.as_ptr(), write) })
    }
}

/// The signature of a file's `open` operation.
pub(crate) type OpenFn = unsafe extern "C" fn(*mut bindings::inode, *mut bindings::file) -> c_int;

/// The `struct file_operations` of `T`.
pub(crate) struct FileOpsVTable<T: FileOps>(PhantomData<T>);

/// The `struct vm_operations_struct` of the mappings of `T`'s files.
struct VmOpsVTable<T: FileOps>(PhantomData<T>);

impl<T: FileOps> VmOpsVTable<T> {
    const VTABLE: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(Self::fault),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// `vmf` is a fault in a mapping that [`FileOpsVTable::mmap`] set up for a file of `T`.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: The mapping holds a reference on its file, whose private data is a `T::Ptr`
        // until its `release`, which cannot run while the mapping exists.
        let this = unsafe {
            let file = (*(*vmf).__bindgen_anon_1.vma).vm_file;
            <T::Ptr as ForeignOwnable>::borrow((*file).private_data.cast())
        };
        // INVARIANT: The fault being handled.
        let vmf = VmFault {
            raw: vmf,
            _fault: PhantomData,
        };
        T::fault(this, &vmf).0
    }
}

impl<T: FileOps> FileOpsVTable<T> {
    /// The table, with `open` as its open operation.
    ///
    /// `open` (if any) must set the private data of the file to a pointer obtained from
    /// [`ForeignOwnable::into_foreign`] on a `T::Ptr`, or fail. A file created without `open`
    /// (an anonymous inode) must have such a private data from its creation.
    pub(crate) const fn build(open: Option<OpenFn>) -> bindings::file_operations {
        bindings::file_operations {
            open,
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
            mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
            llseek: Some(bindings::noop_llseek),
            owner: kernel::module::this_module::<T::OwnerModule>().as_ptr(),
            ..pin_init::zeroed()
        }
    }

    /// The `T::Ptr` in the private data of `file`, borrowed.
    ///
    /// # Safety
    ///
    /// `file` is a valid file of this table, between its `open` (or creation) and `release`.
    unsafe fn borrow<'a>(file: *mut bindings::file) -> <T::Ptr as ForeignOwnable>::Borrowed<'a> {
        // SAFETY: The private data is a `T::Ptr` (contract of `build`), released only by
        // `release`, which cannot run while another operation of the file is running.
        unsafe { <T::Ptr as ForeignOwnable>::borrow((*file).private_data.cast()) }
    }

    /// # Safety
    ///
    /// `file` is a file of this table being released.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The private data is a `T::Ptr` (contract of `build`); release takes it back
        // exactly once.
        let ptr = unsafe { <T::Ptr as ForeignOwnable>::from_foreign((*file).private_data.cast()) };
        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        T::release(ptr, unsafe { File::from_raw_file(file) });
        0
    }

    /// # Safety
    ///
    /// `kiocb` is for a file of this table; `iter` is a valid destination iterator.
    unsafe extern "C" fn read_iter(
        kiocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: The private data of the kiocb's file is a `T::Ptr` (contract of `build`).
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
    /// `kiocb` is for a file of this table; `iter` is a valid source iterator.
    unsafe extern "C" fn write_iter(
        kiocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: The private data of the kiocb's file is a `T::Ptr` (contract of `build`).
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
    /// `file` is a file of this table; `table` is a valid poll table (or NULL).
    unsafe extern "C" fn poll(
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> bindings::__poll_t {
        // SAFETY: A file of this table (caller).
        let this = unsafe { Self::borrow(file) };
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
    /// `file` is a file of this table.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: A file of this table (caller).
        let this = unsafe { Self::borrow(file) };
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
    /// `file` is a file of this table; `vma` a mapping of it being set up.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: A file of this table (caller).
        let this = unsafe { Self::borrow(file) };
        // SAFETY: The caller provides a VMA that is undergoing its initial setup.
        let area = unsafe { VmaNew::from_raw(vma) };
        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        let f = unsafe { File::from_raw_file(file) };
        match T::mmap(this, f, area) {
            Ok(()) => {
                if T::HAS_FAULT {
                    // SAFETY: The VMA is being set up for a file of `T` (its `vm_file`); the
                    // table is static.
                    unsafe { (*vma).vm_ops = &VmOpsVTable::<T>::VTABLE };
                }
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// `file` is a file of this table.
    #[cfg(CONFIG_COMPAT)]
    unsafe extern "C" fn compat_ioctl(
        file: *mut bindings::file,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        // SAFETY: A file of this table (caller).
        let this = unsafe { Self::borrow(file) };
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
}

/// Whether the file of `kiocb` was opened with `O_NONBLOCK`.
pub(crate) fn kiocb_nonblock<T: ForeignOwnable>(kiocb: &Kiocb<'_, T>) -> bool {
    // SAFETY: A `Kiocb` wraps a valid `struct kiocb` whose `ki_filp` is the file being read or
    // written, alive for the call. `f_flags` is read like `File::flags` does (racy by design).
    let flags =
        unsafe { core::ptr::read_volatile(&raw const (*(*kiocb.as_raw()).ki_filp).f_flags) };
    flags & kernel::fs::file::flags::O_NONBLOCK != 0
}
