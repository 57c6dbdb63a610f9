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

use crate::uapi::{
    DevRequest,
    DevResponse, //
};
use kernel::{
    alloc::KVec,
    new_poll_condvar, new_spinlock,
    prelude::*,
    sync::{
        poll::PollCondVar,
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

/// The queues of the channel.
#[derive(Default)]
struct Channel {
    /// Requests not read yet, oldest first.
    send: KVec<DevRequest>,
    /// Requests read and not answered yet.
    recv: KVec<DevRequest>,
    /// Responses not yet collected by their sender.
    done: KVec<DevResponse>,
    /// A request timed out: the device is broken for good.
    broken: bool,
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
                let req = ch.send.remove(0)?;
                // Before the lock is dropped the request must be on a list, so that a sender
                // timing out now finds it.
                ch.recv.push(req, GFP_ATOMIC)?;
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
        if let Some(pos) = ch.recv.iter().position(|r| r.request_id == request_id) {
            if let Ok(req) = ch.recv.remove(pos) {
                // Cannot fail: the element was just removed from a list of the same size.
                let _ = ch.send.insert_within_capacity(0, req);
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
            .position(|r| r.request_id == resp.request_id)
            .ok_or(ENOENT)?;
        ch.recv.remove(pos)?;
        ch.done.push(resp, GFP_ATOMIC)?;
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

    /// Whether the device is broken (a request timed out).
    pub(crate) fn is_broken(&self) -> bool {
        self.inner.lock().broken
    }
}
