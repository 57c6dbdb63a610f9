// SPDX-License-Identifier: GPL-2.0

//! What 7.3's `kernel::workqueue` lacks: `flush_work`, `flush_delayed_work`, and
//! `queue_work_on` with a CPU.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h).

use kernel::{
    bindings,
    prelude::*,
    workqueue::{
        DelayedWork,
        Queue,
        RawWorkItem,
        Work, //
    },
};

/// Waits until `work` is neither queued nor running (`flush_work`). Sleeps: process context
/// only.
pub(crate) fn flush_work<T: ?Sized, const ID: u64>(work: &Work<T, ID>) {
    // SAFETY: `work` is a reference, so aligned and not dangling (`raw_get`), to an initialised
    // work item alive for the call; `flush_work` may sleep, which callers allow (process
    // context).
    unsafe { bindings::flush_work(Work::raw_get(work)) };
}

/// Runs `work` now if its timer is pending, and waits until it is neither queued nor running
/// (`flush_delayed_work`; the Rust workqueue has no cancel, which would leak the queued
/// pointer). Sleeps: process context only.
pub(crate) fn flush_delayed_work<T: ?Sized, const ID: u64>(work: &DelayedWork<T, ID>) {
    // CAST: `DelayedWork` is a `repr(transparent)` wrapper of `Opaque<struct delayed_work>`.
    let raw = core::ptr::from_ref(work)
        .cast::<bindings::delayed_work>()
        .cast_mut();
    // SAFETY: `raw` points to an initialised delayed work item alive for the call (a
    // reference); `flush_delayed_work` may sleep, which callers allow (process context).
    unsafe { bindings::flush_delayed_work(raw) };
}

/// Enqueues `w` on `queue` to run on CPU `cpu` (`queue_work_on`); like [`Queue::enqueue`],
/// which always uses `WORK_CPU_UNBOUND`. May be called in atomic context. For a per-CPU
/// workqueue the work runs on `cpu` (or, if it goes offline meanwhile, where the workqueue
/// core moves it).
pub(crate) fn enqueue_on<W, const ID: u64>(queue: &Queue, cpu: u32, w: W) -> W::EnqueueOutput
where
    W: RawWorkItem<ID> + Send + 'static,
{
    let queue_ptr = core::ptr::from_ref(queue)
        .cast::<bindings::workqueue_struct>()
        .cast_mut();
    // CAST: CPU ids are below `nr_cpu_ids`, which fits in `int`.
    let cpu = cpu as c_int;
    // SAFETY: As for `Queue::enqueue` (`Queue` is a transparent wrapper of the C workqueue):
    // the closure returns `false` only if the work item is already queued; `W` is `Send` and
    // `'static`; `queue_work_on` accepts any possible CPU id.
    unsafe { w.__enqueue(move |work_ptr| bindings::queue_work_on(cpu, queue_ptr, work_ptr)) }
}
