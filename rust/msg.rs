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
    kutil::{
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

/// `EPOLLIN`.
pub(crate) const EPOLLIN: u32 = 0x1;
/// `EPOLLOUT`.
pub(crate) const EPOLLOUT: u32 = 0x4;
/// `EPOLLERR`.
pub(crate) const EPOLLERR: u32 = 0x8;
/// `EPOLLRDNORM`.
pub(crate) const EPOLLRDNORM: u32 = 0x40;
/// `EPOLLWRNORM`.
pub(crate) const EPOLLWRNORM: u32 = 0x100;

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
    /// A request timed out: the device is broken for good.
    broken: bool,
}

impl Channel {
    /// `vduse_dev_broken()`: fails every pending request and marks the channel broken. A
    /// sender woken without a response in `done` fails its request with `EIO`.
    fn set_broken(&mut self) {
        if self.broken {
            return;
        }
        for list in [&mut self.recv, &mut self.send] {
            for p in core::mem::take(list) {
                p.waiter.complete_all();
            }
        }
        self.broken = true;
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
/// Locks: `inner` is a leaf lock; `readers` is only waited on with it held.
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
                let p = ch.send.remove(0)?;
                let req = p.req;
                // Before the lock is dropped the request must be on a list, so that a sender
                // timing out now finds it.
                ch.recv.push(p, GFP_ATOMIC)?;
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
                if ch.send.reserve(1, GFP_ATOMIC).is_ok() {
                    // Cannot fail: capacity was reserved just above.
                    let _ = ch.send.insert_within_capacity(0, p);
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
        if ch.broken {
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
        let mut queue = core::mem::take(&mut ch.recv);
        let unread = core::mem::take(&mut ch.send);
        for req in unread {
            // On allocation failure the request is lost to the daemon and its sender times
            // out, as with a dead daemon.
            let _ = queue.push(req, GFP_ATOMIC);
        }
        ch.send = queue;
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
    pub(crate) fn send(&self, mut req: DevRequest, timeout_secs: u32) -> Result<DevResponse> {
        let waiter = Arc::pin_init(KillableCompletion::new(), GFP_KERNEL)?;
        let id = {
            let mut ch = self.inner.lock();
            if ch.broken {
                return Err(EIO);
            }
            let id = ch.next_id;
            ch.next_id = id.wrapping_add(1);
            req.request_id = id;
            ch.send.push(
                Pending {
                    req,
                    waiter: waiter.clone(),
                },
                GFP_ATOMIC,
            )?;
            id
        };
        self.readers.notify_all();
        let end = waiter.wait(timeout_secs);
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

    /// Whether the device is broken (a request timed out).
    pub(crate) fn is_broken(&self) -> bool {
        self.inner.lock().broken
    }
}
