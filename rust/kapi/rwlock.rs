// SPDX-License-Identifier: GPL-2.0

//! A reader-writer spinlock (`rwlock_t`) taken with interrupts disabled on both sides
//! (`read_lock_irqsave`, `write_lock_irqsave`): what `kernel::sync` does not offer yet.
//!
//! C header: [`include/linux/rwlock.h`](srctree/include/linux/rwlock.h).
//!
//! Readers run concurrently with each other, in any context (a reader may interrupt another
//! reader on the same CPU: queued rwlocks let readers in interrupt context through even while a
//! writer waits); a writer excludes every reader. Both sides disable interrupts and preemption
//! while they hold the lock, so a holder can never be interrupted or preempted by a context
//! that then spins on the same lock, and lockdep sees both sides.

use core::{
    cell::UnsafeCell,
    marker::PhantomPinned,
    ops::{
        Deref,
        DerefMut, //
    },
};
use kernel::{
    bindings,
    prelude::*,
    sync::LockClassKey,
    types::{
        NotThreadSafe,
        Opaque, //
    },
};

#[cfg(CONFIG_PREEMPT_RT)]
compile_error!("kapi::rwlock: a PREEMPT_RT rwlock_t sleeps; this lock is for atomic context");

/// Creates a [`RwLockIrq`] initialiser with a lock class of its own and an optional name.
macro_rules! new_rwlock_irq {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::kapi::rwlock::RwLockIrq::new(
            $inner,
            ::kernel::optional_name!($($name)?),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_rwlock_irq;

/// A value protected by an `rwlock_t`, taken with interrupts disabled.
///
/// # Invariants
///
/// `lock` is an initialised `rwlock_t`; `data` is read only while a reader or the writer holds
/// it, and written only while the writer holds it.
#[pin_data]
pub(crate) struct RwLockIrq<T> {
    #[pin]
    lock: Opaque<bindings::rwlock_t>,
    #[pin]
    _pin: PhantomPinned,
    data: UnsafeCell<T>,
}

// SAFETY: The lock hands out `&T` to several threads at once (readers) and `&mut T` to one
// (the writer): `T` must be `Send` and `Sync`.
unsafe impl<T: Send + Sync> Sync for RwLockIrq<T> {}
// SAFETY: Moving the lock to another thread moves its `T`.
unsafe impl<T: Send> Send for RwLockIrq<T> {}

impl<T> RwLockIrq<T> {
    /// A lock holding `data`, with lock class `key` and name `name` (for lockdep).
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid for writes; `name` and `key` live forever.
            // INVARIANT: The lock is initialised here.
            lock <- Opaque::ffi_init(|slot: *mut bindings::rwlock_t| unsafe {
                init_rwlock(slot, name, key)
            }),
            _pin: PhantomPinned,
            data: UnsafeCell::new(data),
        })
    }

    /// Takes the lock for reading (interrupts disabled until the guard is dropped). Any context.
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        // SAFETY: The lock is initialised (type invariant).
        let flags = unsafe { bindings::_raw_read_lock_irqsave(self.lock.get()) };
        // INVARIANT: The read lock is held until the guard is dropped.
        ReadGuard {
            lock: self,
            flags,
            _not_send: NotThreadSafe,
        }
    }

    /// Takes the lock for writing (interrupts disabled until the guard is dropped). Any
    /// context, but never while this CPU holds it for reading.
    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        // SAFETY: The lock is initialised (type invariant).
        let flags = unsafe { bindings::_raw_write_lock_irqsave(self.lock.get()) };
        // INVARIANT: The write lock is held until the guard is dropped.
        WriteGuard {
            lock: self,
            flags,
            _not_send: NotThreadSafe,
        }
    }
}

/// Initialises the `rwlock_t` at `slot` (`rwlock_init`).
///
/// # Safety
///
/// `slot` is valid for writes and not in use.
#[cfg(CONFIG_DEBUG_SPINLOCK)]
unsafe fn init_rwlock(
    slot: *mut bindings::rwlock_t,
    name: &'static CStr,
    key: Pin<&'static LockClassKey>,
) {
    // SAFETY: Per the safety requirements; `name` and `key` live forever.
    unsafe { bindings::__rwlock_init(slot, name.as_char_ptr(), key.as_ptr()) }
}

/// Initialises the `rwlock_t` at `slot` (`rwlock_init`).
///
/// # Safety
///
/// `slot` is valid for writes and not in use.
#[cfg(not(CONFIG_DEBUG_SPINLOCK))]
unsafe fn init_rwlock(
    slot: *mut bindings::rwlock_t,
    _name: &'static CStr,
    _key: Pin<&'static LockClassKey>,
) {
    // Without `CONFIG_DEBUG_SPINLOCK` `rwlock_init` is `__RW_LOCK_UNLOCKED`: an unlocked queued
    // rwlock (a zero count and an unlocked, zero, wait spinlock) and nothing else.
    // SAFETY: Per the safety requirements.
    unsafe { slot.write_bytes(0, 1) }
}

/// The lock held for reading.
///
/// # Invariants
///
/// `lock` is held for reading; `flags` are the interrupt flags `read_lock_irqsave` saved.
pub(crate) struct ReadGuard<'a, T> {
    lock: &'a RwLockIrq<T>,
    flags: usize,
    /// Released on the CPU that took it.
    _not_send: NotThreadSafe,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: Readers may read `data` (type invariants).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: Held for reading, with these flags (type invariant).
        unsafe { bindings::_raw_read_unlock_irqrestore(self.lock.lock.get(), self.flags) };
    }
}

/// The lock held for writing.
///
/// # Invariants
///
/// `lock` is held for writing; `flags` are the interrupt flags `write_lock_irqsave` saved.
pub(crate) struct WriteGuard<'a, T> {
    lock: &'a RwLockIrq<T>,
    flags: usize,
    /// Released on the CPU that took it.
    _not_send: NotThreadSafe,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The writer may read `data` (type invariants).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: The writer excludes every reader (type invariants).
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: Held for writing, with these flags (type invariant).
        unsafe { bindings::_raw_write_unlock_irqrestore(self.lock.lock.get(), self.flags) };
    }
}
