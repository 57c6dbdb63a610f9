// SPDX-License-Identifier: GPL-2.0

//! The orphan drain of a device (`Documentation/orphan-drain.rst`; no C counterpart): when
//! it starts, the drain work that answers later kicks, and the `orphan_timeout` timer. Lock
//! order: that of [`super`]; the drain itself takes only each queue's ring lock
//! ([`super::super::vq`]).

use super::{
    Device,
    DRAIN_WORK,
    ORPHAN_TIMER, //
};
use kernel::{
    prelude::*,
    str::BStr,
    sync::{
        atomic::Relaxed,
        Arc,
        ArcBorrow, //
    },
    time::msecs_to_jiffies,
    workqueue::{
        self,
        impl_has_delayed_work,
        impl_has_work,
        WorkItem, //
    },
};

impl_has_work! {
    impl HasWork<Self, DRAIN_WORK> for Device { self.drain_work }
}
impl_has_delayed_work! {
    impl HasDelayedWork<Self, ORPHAN_TIMER> for Device { self.orphan_timer }
}

impl WorkItem<DRAIN_WORK> for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        this.drain_queues();
        this.requeue_drain();
    }
}

impl WorkItem<ORPHAN_TIMER> for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        this.orphan_timer_fired();
    }
}

/// `orphan_timeout`, in seconds (0: off).
fn orphan_timeout() -> u32 {
    crate::module_parameters::orphan_timeout.value()
}

impl Device {
    /// The node was closed: with `orphan_timeout` set, the device is orphaned if no daemon
    /// opens it within that time while it is on the vDPA bus (a extension of the uAPI,
    /// `Documentation/orphan-drain.rst`).
    pub(super) fn arm_orphan_timer(self: &Arc<Self>) {
        let secs = orphan_timeout();
        if secs == 0 {
            return;
        }
        let delay = msecs_to_jiffies(secs.saturating_mul(1000));
        // Already queued (an earlier close): that run sees the later close and re-arms.
        let _ = workqueue::system().enqueue_delayed::<_, ORPHAN_TIMER>(self.clone(), delay);
    }

    /// The orphan timer ran: orphans the device if it is still on the bus with its node closed
    /// since `orphan_timeout`, re-arms for the rest if it was closed later. Process context.
    fn orphan_timer_fired(self: &Arc<Self>) {
        let secs = orphan_timeout();
        let left = {
            let st = self.state.lock();
            let Some(closed) = st.closed_at else { return };
            if secs == 0 || st.connected || st.orphaned || !st.bound {
                return;
            }
            let waited = closed.elapsed().as_millis();
            i64::from(secs) * 1000 - waited
        };
        if left > 0 {
            // CAST: `0 < left <= secs * 1000`, which fits in `u32`.
            let delay = msecs_to_jiffies(left as u32);
            let _ = workqueue::system().enqueue_delayed::<_, ORPHAN_TIMER>(self.clone(), delay);
            return;
        }
        pr_info!(
            "{}: no daemon for {} s (orphan_timeout)\n",
            BStr::from_bytes(self.name()),
            secs
        );
        self.orphan();
    }

    /// The orphan drain (`Documentation/orphan-drain.rst`): if the device is on the vDPA bus
    /// and no process has its node open, it is orphaned: every request to the daemon fails at
    /// once from now on (the device is broken, as after a timeout), the node cannot be opened
    /// again, and every request the driver has in flight is completed as a device does on a
    /// fatal error, now and at every later kick. For good, unless it had no effect at all
    /// ([`Device::end_orphan`]). Called by `vdpa dev del` before the
    /// driver is removed (which waits for those requests), and when the node of a broken
    /// device is closed. Process context.
    ///
    /// Returns whether the device was orphaned now.
    pub(crate) fn orphan(self: &Arc<Self>) -> bool {
        {
            let mut st = self.state.lock();
            if st.connected || st.orphaned || !st.bound {
                return false;
            }
            st.orphaned = true;
        }
        self.msgs.break_for_orphan();
        for vq in self.vqs.iter() {
            vq.start_drain();
        }
        let n = self.drain_queues();
        pr_info!(
            "{}: no daemon: {} requests in flight failed\n",
            BStr::from_bytes(self.name()),
            n
        );
        self.requeue_drain();
        true
    }

    /// Queues the drain work again for the virtqueues whose driver kept adding requests.
    fn requeue_drain(self: &Arc<Self>) {
        if self.vqs.iter().any(|vq| vq.drain_pending()) {
            // Already queued: that run drains them.
            let _ = workqueue::system().enqueue::<_, DRAIN_WORK>(self.clone());
        }
    }

    /// Drains each virtqueue a drain was requested for, saying once per queue why its drain
    /// stopped; returns how many requests were completed. Process context.
    fn drain_queues(&self) -> u64 {
        let mut total = 0u64;
        for (i, vq) in self.vqs.iter().enumerate() {
            if !vq.take_drain_pending() {
                continue;
            }
            match vq.drain() {
                Ok(n) => total += u64::from(n),
                Err(why) => {
                    self.drain_stopped.store(true, Relaxed);
                    pr_warn!(
                        "{}: queue {}: requests in flight left as they are: {}\n",
                        BStr::from_bytes(self.name()),
                        i,
                        why
                    );
                }
            }
        }
        self.drained.add(total, Relaxed);
        total
    }

    /// The device left the vDPA bus (the virtio driver, if one was bound, has reset it: no
    /// ring is followed any more). If it was orphaned: an orphan that had no effect (no request
    /// completed by the drain, none refused to a driver, no drain stopped on a bad ring) is
    /// lifted, so that the device is left as C leaves it and its node opens again; otherwise
    /// says how many requests the drain completed in all (the first drain's line counts only
    /// those in flight then) and the device stays orphaned. Process context.
    pub(super) fn end_orphan(&self) {
        let mut st = self.state.lock();
        if !st.orphaned {
            return;
        }
        let drained = self.drained.load(Relaxed);
        if drained == 0 && !self.drain_stopped.load(Relaxed) && self.msgs.lift_orphan_break() {
            for vq in self.vqs.iter() {
                vq.stop_drain();
            }
            st.orphaned = false;
            drop(st);
            pr_info!(
                "{}: orphan drain: nothing was in flight, the device may be served again\n",
                BStr::from_bytes(self.name())
            );
            return;
        }
        drop(st);
        pr_info!(
            "{}: orphan drain: {} requests failed in all\n",
            BStr::from_bytes(self.name()),
            drained
        );
    }

    /// A kick of virtqueue `vq` asked for a drain: queued to the device's drain work. Any
    /// context.
    pub(crate) fn queue_drain(self: ArcBorrow<'_, Self>) {
        // Already queued: that run drains this queue too.
        let _ = workqueue::system().enqueue::<_, DRAIN_WORK>(Arc::from(self));
    }
}
