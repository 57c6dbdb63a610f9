// SPDX-License-Identifier: GPL-2.0

//! A spinlock taken with bottom halves disabled (`spin_lock_bh`): what `kernel::sync` does
//! not offer yet, as a backend of `kernel::sync::lock::Lock`.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h).
//!
//! While the lock is held, softirqs cannot run on this CPU; those raised meanwhile (a
//! `napi_schedule`, a block-layer completion softirq) run when it is released, in the
//! releasing context, instead of being handed to `ksoftirqd`. Process context, interrupts
//! enabled (releasing it with interrupts disabled is a bug `local_bh_enable` warns about).

use kernel::{
    bindings,
    sync::lock::{
        Backend,
        Lock, //
    },
};

/// Creates a [`SpinLockBh`] initialiser with a lock class of its own and an optional name.
macro_rules! new_spinlock_bh {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        ::kernel::sync::lock::Lock::<_, $crate::kapi::spinlock_bh::SpinLockBhBackend>::new(
            $inner,
            ::kernel::optional_name!($($name)?),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_spinlock_bh;

/// A spinlock taken with bottom halves disabled.
pub(crate) type SpinLockBh<T> = Lock<T, SpinLockBhBackend>;

/// The backend of [`SpinLockBh`]: a `spinlock_t` and `spin_lock_bh`/`spin_unlock_bh`.
pub(crate) struct SpinLockBhBackend;

/// The `raw_spinlock_t` inside the `spinlock_t` at `ptr` (`&lock->rlock`): without
/// PREEMPT_RT a `spinlock_t` is a union whose `rlock` member is at offset 0 (bindgen sees the
/// union as an opaque blob, so the cast stands for the member access).
fn rlock(ptr: *mut bindings::spinlock_t) -> *mut bindings::raw_spinlock_t {
    ptr.cast()
}

#[cfg(CONFIG_PREEMPT_RT)]
compile_error!("kapi::spinlock_bh: a PREEMPT_RT spinlock_t is a sleeping lock without `rlock`");

// SAFETY: `spin_lock_bh` on a `spinlock_t` gives mutual exclusion; `unlock` releases what
// `lock` or `try_lock` took, on the same CPU (guards are not `Send`).
unsafe impl Backend for SpinLockBhBackend {
    type State = bindings::spinlock_t;
    type GuardState = ();

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: `ptr` is valid for writes, `name` and `key` live forever (the safety
        // requirements of `Backend::init`).
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: `ptr` points to an initialised lock (the safety requirements of `lock`).
        unsafe { bindings::_raw_spin_lock_bh(rlock(ptr)) }
    }

    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        // SAFETY: As in `lock`.
        (unsafe { bindings::_raw_spin_trylock_bh(rlock(ptr)) } != 0).then_some(())
    }

    unsafe fn unlock(ptr: *mut Self::State, _guard_state: &Self::GuardState) {
        // SAFETY: The caller holds the lock (the safety requirements of `unlock`).
        unsafe { bindings::_raw_spin_unlock_bh(rlock(ptr)) }
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: `ptr` points to an initialised lock.
        unsafe { bindings::spin_assert_is_held(ptr) }
    }
}
