// SPDX-License-Identifier: GPL-2.0

//! The message channel of a VDUSE device: requests the kernel sends to the daemon, read from
//! `/dev/vduse/NAME`, and the responses the daemon writes back.
//!
//! C version: `vduse_dev_read_iter()`, `vduse_dev_write_iter()`, `vduse_dev_poll()`,
//! `vduse_dev_msg_sync()` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//!
//! In C a message lives on the stack of the kernel thread that sends it, on one of two lists.
//! Here the whole channel is one [`Channel`] under one spinlock: a message waiting to be read
//! (`send`), read and waiting for its response (`recv`), or answered (`done`, until its sender
//! picks the response up). Responses are matched by request id, so a daemon that answers a
//! request whose sender already gave up only gets `ENOENT`, and a sender never sees memory that
//! is gone.

use crate::{
    ffi,
    kapi::completion::{
        KillableCompletion,
        WaitEnd, //
    },
    uapi::{
        DevRequest,
        DevResponse,
        VDUSE_REQ_RESULT_OK, //
    },
};
use kernel::{
    alloc::KVec,
    new_poll_condvar, new_spinlock,
    prelude::*,
    sync::{
        poll::PollCondVar,
        Arc,
        SpinLock, //
    },
};

use ffi::{
    EPOLLERR,
    EPOLLIN,
    EPOLLOUT,
    EPOLLRDNORM,
    EPOLLWRNORM, //
};

/// A request on its way: the request and the completion its sender waits on.
struct Pending {
    req: DevRequest,
    waiter: Arc<KillableCompletion>,
}

/// The queues of the channel.
#[derive(Default)]
struct Channel {
    /// Requests not read yet, oldest first.
    send: KVec<Pending>,
    /// Requests read and not answered yet.
    recv: KVec<Pending>,
    /// Responses not yet collected by their sender.
    done: KVec<DevResponse>,
    /// Request id of the next request (`msg_unique`).
    next_id: u32,
    /// Whether, and why, the device is broken.
    broken: Broken,
}

/// Whether, and why, a channel is broken: every request fails at once with `EIO`.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Broken {
    /// Requests go to the daemon.
    #[default]
    No,
    /// For good: a request timed out, or the daemon refused a queue.
    ForGood,
    /// By the orphan drain ([`MsgChannel::break_for_orphan`]); `refused`: a request failed
    /// because of it, one that C would have sent and waited for. Only an orphan that refused
    /// nothing can be lifted ([`MsgChannel::lift_orphan_break`]).
    Orphan { refused: bool },
}

impl Channel {
    /// `vduse_dev_broken()`: fails every pending request and marks the channel broken. A
    /// sender woken without a response in `done` fails its request with `EIO`.
    fn set_broken(&mut self) {
        self.fail_pending();
        self.broken = Broken::ForGood;
    }

    /// Fails every pending request; returns whether there was one.
    fn fail_pending(&mut self) -> bool {
        let mut any = false;
        for list in [&mut self.recv, &mut self.send] {
            for p in core::mem::take(list) {
                p.waiter.complete_all();
                any = true;
            }
        }
        any
    }

    /// Whether requests fail at once.
    fn is_broken(&self) -> bool {
        self.broken != Broken::No
    }

    /// Removes the request `id` from whichever list holds it.
    fn forget(&mut self, id: u32) {
        for list in [&mut self.send, &mut self.recv] {
            if let Some(pos) = list.iter().position(|p| p.req.request_id == id) {
                let _ = list.remove(pos);
                return;
            }
        }
    }
}

/// What [`MsgChannel::read`] does when no request is pending.
pub(crate) enum ReadMode {
    /// Fail with `EAGAIN` (`O_NONBLOCK`).
    NonBlocking,
    /// Sleep until a request arrives or a signal.
    Blocking,
}

/// The message channel of one device.
///
/// Locks: `inner` (a spinlock, process context only) is a leaf lock; `readers` is only waited
/// on with it held. [`MsgChannel::send`] sleeps: it is never called with a lock held.
#[pin_data]
pub(crate) struct MsgChannel {
    #[pin]
    inner: SpinLock<Channel>,
    /// Readers and pollers wait here (`dev->waitq`).
    #[pin]
    readers: PollCondVar,
}

impl MsgChannel {
    /// An empty channel.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock!(Channel::default(), "MsgChannel::inner"),
            readers <- new_poll_condvar!("MsgChannel::readers"),
        })
    }

    /// The poll condition variable of readers.
    pub(crate) fn readers(&self) -> &PollCondVar {
        &self.readers
    }

    /// Takes the oldest pending request, moving it to the read-and-unanswered list.
    ///
    /// # Errors
    ///
    /// `EAGAIN` (non-blocking, nothing pending), `ERESTARTSYS` (signal while sleeping),
    /// `ENOMEM`.
    pub(crate) fn read(&self, mode: ReadMode) -> Result<DevRequest> {
        let mut ch = self.inner.lock();
        loop {
            if !ch.send.is_empty() {
                // Before the lock is dropped the request must be on a list, so that a sender
                // timing out now finds it: `recv` has room for every request (`enqueue`).
                let p = ch.send.remove(0)?;
                let req = p.req;
                if let Err(e) = ch.recv.push_within_capacity(p) {
                    // Not reached (see `enqueue`); put it back rather than lose it.
                    if ch.send.insert_within_capacity(0, e.0).is_err() {
                        pr_err!("message channel lost a request\n");
                    }
                    return Err(ENOMEM);
                }
                return Ok(req);
            }
            if let ReadMode::NonBlocking = mode {
                return Err(EAGAIN);
            }
            if self.readers.wait_interruptible(&mut ch) {
                return Err(ERESTARTSYS);
            }
        }
    }

    /// Puts back a request whose copy to userspace failed, at the head, if it is still
    /// unanswered (its sender may have given up meanwhile).
    pub(crate) fn unread(&self, request_id: u32) {
        let mut ch = self.inner.lock();
        if let Some(pos) = ch.recv.iter().position(|p| p.req.request_id == request_id) {
            if let Ok(p) = ch.recv.remove(pos) {
                // `send` has room for every request (`enqueue`).
                if ch.send.insert_within_capacity(0, p).is_err() {
                    pr_err!("message channel lost a request\n");
                }
            }
        }
    }

    /// Records a response of the daemon.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the reserved words are not zero, `ENOENT` if no read request has this id.
    pub(crate) fn write(&self, resp: DevResponse) -> Result {
        if resp.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let mut ch = self.inner.lock();
        let pos = ch
            .recv
            .iter()
            .position(|p| p.req.request_id == resp.request_id)
            .ok_or(ENOENT)?;
        ch.done.push(resp, GFP_ATOMIC)?;
        let p = ch.recv.remove(pos)?;
        p.waiter.complete_all();
        Ok(())
    }

    /// The `EPOLL*` mask of the channel.
    pub(crate) fn poll_mask(&self) -> u32 {
        let ch = self.inner.lock();
        let mut mask = 0;
        if ch.is_broken() {
            mask |= EPOLLERR;
        }
        if !ch.send.is_empty() {
            mask |= EPOLLIN | EPOLLRDNORM;
        }
        if !ch.recv.is_empty() {
            mask |= EPOLLOUT | EPOLLWRNORM;
        }
        mask
    }

    /// The daemon closed the device: requests it read but did not answer are put back at the
    /// head of the queue (`list_splice_init` in C), to be read again after it reconnects.
    pub(crate) fn requeue_unanswered(&self) {
        let mut ch = self.inner.lock();
        // Both lists have room for every request (`enqueue`): no allocation, nothing lost, and
        // the emptied `send` becomes `recv` with its room.
        let mut queue = core::mem::take(&mut ch.recv);
        for req in ch.send.drain_all() {
            if queue.push_within_capacity(req).is_err() {
                // Not reached (see `enqueue`).
                pr_err!("message channel lost a request\n");
            }
        }
        let emptied = core::mem::replace(&mut ch.send, queue);
        ch.recv = emptied;
        drop(ch);
        self.readers.notify_all();
    }

    /// Sends `req` to the daemon and waits for its response (`vduse_dev_msg_sync()`):
    /// `timeout_secs` seconds (0: forever), killable. A timeout breaks the device for good.
    ///
    /// # Errors
    ///
    /// `EIO` if the device is broken, the request timed out or was interrupted by a fatal
    /// signal, or the daemon answered `VDUSE_REQ_RESULT_FAILED`; `ENOMEM`.
    pub(crate) fn send(&self, req: DevRequest, timeout_secs: u32) -> Result<DevResponse> {
        let waiter = Arc::pin_init(KillableCompletion::new(), GFP_KERNEL)?;
        let id = self.enqueue(req, waiter.clone())?;
        let end = waiter.wait(timeout_secs);
        self.collect(id, end)
    }

    /// The first half of [`MsgChannel::send`]: queues `req` with a new id (returned), whose
    /// response completes `waiter`.
    fn enqueue(&self, mut req: DevRequest, waiter: Arc<KillableCompletion>) -> Result<u32> {
        let id = {
            let mut ch = self.inner.lock();
            match ch.broken {
                Broken::No => {}
                Broken::ForGood => return Err(EIO),
                Broken::Orphan { .. } => {
                    ch.broken = Broken::Orphan { refused: true };
                    return Err(EIO);
                }
            }
            let id = ch.next_id;
            ch.next_id = id.wrapping_add(1);
            req.request_id = id;
            // Each list gets room for every request in the channel, this one included, so that
            // moving requests between them (`read`, `unread`, `requeue_unanswered`) never
            // allocates and never loses one.
            let (sent, read) = (ch.send.len(), ch.recv.len());
            ch.send.reserve(read + 1, GFP_ATOMIC)?;
            ch.recv.reserve(sent + 1, GFP_ATOMIC)?;
            if ch
                .send
                .push_within_capacity(Pending { req, waiter })
                .is_err()
            {
                return Err(ENOMEM);
            }
            id
        };
        self.readers.notify_all();
        Ok(id)
    }

    /// The second half of [`MsgChannel::send`], once the wait for request `id` ended with
    /// `end`: its response, or why there is none.
    fn collect(&self, id: u32, end: WaitEnd) -> Result<DevResponse> {
        let mut ch = self.inner.lock();
        let resp = match ch.done.iter().position(|r| r.request_id == id) {
            Some(pos) => ch.done.remove(pos).ok(),
            None => None,
        };
        let Some(resp) = resp else {
            ch.forget(id);
            if end == WaitEnd::TimedOut {
                ch.set_broken();
                drop(ch);
                self.readers.notify_all();
            }
            return Err(EIO);
        };
        if resp.result != VDUSE_REQ_RESULT_OK {
            return Err(EIO);
        }
        Ok(resp)
    }

    /// Breaks the device for good (the daemon refused a queue): pending requests fail.
    pub(crate) fn break_device(&self) {
        self.inner.lock().set_broken();
        self.readers.notify_all();
    }

    /// Breaks the device for the orphan drain: pending requests fail, and so does every later
    /// one, at once, until [`MsgChannel::lift_orphan_break`]. A device broken for good stays so.
    pub(crate) fn break_for_orphan(&self) {
        {
            let mut ch = self.inner.lock();
            if ch.broken == Broken::No {
                let refused = ch.fail_pending();
                ch.broken = Broken::Orphan { refused };
            }
        }
        self.readers.notify_all();
    }

    /// Ends an orphan break that refused no request: the channel works again, and `true`.
    /// Otherwise (a request was refused, or the device is broken for good) nothing changes.
    pub(crate) fn lift_orphan_break(&self) -> bool {
        let mut ch = self.inner.lock();
        if ch.broken == (Broken::Orphan { refused: false }) {
            ch.broken = Broken::No;
            return true;
        }
        false
    }

    /// Whether the device is broken (a request timed out, the daemon refused a queue, or the
    /// device is orphaned).
    pub(crate) fn is_broken(&self) -> bool {
        self.inner.lock().is_broken()
    }
}

#[kunit_tests(vduse_rs_msg)]
mod tests {
    use super::*;
    use crate::uapi::VDUSE_REQ_RESULT_FAILED;

    fn channel() -> Result<Pin<KBox<MsgChannel>>> {
        KBox::pin_init(MsgChannel::new(), GFP_KERNEL)
    }

    /// Queues a request of type `ty`; its id and the completion its sender would wait on.
    fn enqueue(ch: &MsgChannel, ty: u32) -> Result<(u32, Arc<KillableCompletion>)> {
        let waiter = Arc::pin_init(KillableCompletion::new(), GFP_KERNEL)?;
        let id = ch.enqueue(DevRequest::new(ty), waiter.clone())?;
        Ok((id, waiter))
    }

    fn read_type(ch: &MsgChannel) -> Result<u32> {
        ch.read(ReadMode::NonBlocking).map(|r| r.type_)
    }

    fn answer(id: u32, result: u32) -> DevResponse {
        DevResponse {
            request_id: id,
            result,
            reserved: [0; 4],
            payload: [0; 32],
        }
    }

    #[test]
    fn fifo_and_poll() -> Result {
        let ch = channel()?;
        assert_eq!(ch.poll_mask(), 0);
        assert_eq!(read_type(&ch), Err(EAGAIN));
        let (a, _) = enqueue(&ch, 1)?;
        let (b, _) = enqueue(&ch, 2)?;
        assert_eq!(b, a.wrapping_add(1));
        assert_eq!(ch.poll_mask(), EPOLLIN | EPOLLRDNORM);
        assert_eq!(read_type(&ch), Ok(1));
        assert_eq!(
            ch.poll_mask(),
            EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM
        );
        assert_eq!(read_type(&ch), Ok(2));
        assert_eq!(ch.poll_mask(), EPOLLOUT | EPOLLWRNORM);
        assert_eq!(read_type(&ch), Err(EAGAIN));
        Ok(())
    }

    #[test]
    fn responses_by_id() -> Result {
        let ch = channel()?;
        let (a, wa) = enqueue(&ch, 1)?;
        let (b, wb) = enqueue(&ch, 2)?;
        // Not read yet: no response is accepted.
        assert_eq!(ch.write(answer(a, VDUSE_REQ_RESULT_OK)), Err(ENOENT));
        read_type(&ch)?;
        read_type(&ch)?;
        let mut bad = answer(b, VDUSE_REQ_RESULT_OK);
        bad.reserved[2] = 1;
        assert_eq!(ch.write(bad), Err(EINVAL));
        // Out of order, by id.
        assert_eq!(ch.write(answer(b, VDUSE_REQ_RESULT_FAILED)), Ok(()));
        assert_eq!(wb.wait(1), WaitEnd::Completed);
        assert_eq!(ch.collect(b, WaitEnd::Completed).map(|_| ()), Err(EIO));
        assert_eq!(ch.write(answer(a, VDUSE_REQ_RESULT_OK)), Ok(()));
        assert_eq!(wa.wait(1), WaitEnd::Completed);
        assert_eq!(
            ch.collect(a, WaitEnd::Completed).map(|r| r.request_id),
            Ok(a)
        );
        // Answered once only.
        assert_eq!(ch.write(answer(a, VDUSE_REQ_RESULT_OK)), Err(ENOENT));
        assert!(!ch.is_broken());
        Ok(())
    }

    #[test]
    fn requeue() -> Result {
        let ch = channel()?;
        let (a, _) = enqueue(&ch, 1)?;
        enqueue(&ch, 2)?;
        enqueue(&ch, 3)?;
        // A failed copy to userspace puts the request back at the head.
        assert_eq!(read_type(&ch), Ok(1));
        ch.unread(a);
        assert_eq!(read_type(&ch), Ok(1));
        assert_eq!(read_type(&ch), Ok(2));
        // The daemon closes: read-and-unanswered requests go first, in their order.
        ch.requeue_unanswered();
        assert_eq!(read_type(&ch), Ok(1));
        assert_eq!(read_type(&ch), Ok(2));
        assert_eq!(read_type(&ch), Ok(3));
        assert_eq!(read_type(&ch), Err(EAGAIN));
        Ok(())
    }

    /// Moving requests between the lists never needs memory: each list always has room for
    /// every request in the channel, before and after a requeue.
    #[test]
    fn room_for_every_request() -> Result {
        let ch = channel()?;
        for ty in 1..=5 {
            enqueue(&ch, ty)?;
        }
        let room = |ch: &MsgChannel| {
            let c = ch.inner.lock();
            let total = c.send.len() + c.recv.len();
            c.send.capacity() >= total && c.recv.capacity() >= total
        };
        assert!(room(&ch));
        assert_eq!(read_type(&ch), Ok(1));
        assert_eq!(read_type(&ch), Ok(2));
        assert!(room(&ch));
        ch.requeue_unanswered();
        assert!(room(&ch));
        for ty in 1..=5 {
            assert_eq!(read_type(&ch), Ok(ty));
        }
        ch.requeue_unanswered();
        assert!(room(&ch));
        Ok(())
    }

    #[test]
    fn timeout_breaks() -> Result {
        let ch = channel()?;
        let (a, _) = enqueue(&ch, 1)?;
        let (_, wb) = enqueue(&ch, 2)?;
        read_type(&ch)?;
        // A killed sender withdraws its request; the device stays usable.
        assert_eq!(ch.collect(a, WaitEnd::Killed).map(|_| ()), Err(EIO));
        assert!(!ch.is_broken());
        assert_eq!(ch.write(answer(a, VDUSE_REQ_RESULT_OK)), Err(ENOENT));
        // A timeout breaks it: pending senders are woken, new requests fail.
        let (c, _) = enqueue(&ch, 3)?;
        assert_eq!(ch.collect(c, WaitEnd::TimedOut).map(|_| ()), Err(EIO));
        assert!(ch.is_broken());
        assert_eq!(wb.wait(1), WaitEnd::Completed);
        assert_eq!(ch.poll_mask() & EPOLLERR, EPOLLERR);
        assert_eq!(enqueue(&ch, 4).map(|_| ()), Err(EIO));
        // A device broken for good is not lifted by the orphan drain's end.
        ch.break_for_orphan();
        assert!(!ch.lift_orphan_break());
        assert!(ch.is_broken());
        Ok(())
    }

    /// An orphan break is lifted only if it refused nothing: no request pending when it came,
    /// none sent while it lasted.
    #[test]
    fn orphan_break_lifts_only_if_unused() -> Result {
        let ch = channel()?;
        ch.break_for_orphan();
        assert!(ch.is_broken());
        assert_eq!(ch.poll_mask() & EPOLLERR, EPOLLERR);
        assert!(ch.lift_orphan_break());
        assert!(!ch.is_broken());
        assert!(!ch.lift_orphan_break());
        // Works again.
        enqueue(&ch, 1)?;
        assert_eq!(read_type(&ch), Ok(1));
        ch.requeue_unanswered();

        // A request pending at the break fails, and the break stays.
        let (_, w) = enqueue(&ch, 2)?;
        ch.break_for_orphan();
        assert_eq!(w.wait(1), WaitEnd::Completed);
        assert!(!ch.lift_orphan_break());
        assert!(ch.is_broken());

        // A request refused during the break keeps it too.
        let ch = channel()?;
        ch.break_for_orphan();
        assert_eq!(enqueue(&ch, 3).map(|_| ()), Err(EIO));
        assert!(!ch.lift_orphan_break());
        // And a break for good after it stays for good.
        let ch = channel()?;
        ch.break_for_orphan();
        ch.break_device();
        assert!(!ch.lift_orphan_break());
        assert!(ch.is_broken());
        Ok(())
    }
}
