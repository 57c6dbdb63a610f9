// SPDX-License-Identifier: GPL-2.0
//! One virtqueue: the ring logic (`virtio_queue::Queue` over the IOTLB view) and the thread
//! that serves it (kick eventfd -> process -> `VDUSE_VQ_INJECT_IRQ`).

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use log::{debug, error, info, warn};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use crate::blk::{walk_chain, Disk, WalkError};
use crate::device::Device;
use crate::inflight::InflightLog;
use crate::memory::{Access, AddressSpace, IotlbSource, RangeError};

/// Test hook: `VDUSE_BLK_CRASH_AT=taken:N` or `published:N` makes the daemon SIGKILL itself
/// while handling the N-th request of a queue, after taking it from the avail ring (`taken`)
/// or after publishing its completion but before clearing it from the reconnect log
/// (`published`): the two windows the reconnect log must cover. Used by the VM tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPoint {
    Taken(u64),
    Published(u64),
}

fn crash_point() -> Option<CrashPoint> {
    static CP: std::sync::OnceLock<Option<CrashPoint>> = std::sync::OnceLock::new();
    *CP.get_or_init(|| {
        let v = std::env::var("VDUSE_BLK_CRASH_AT").ok()?;
        let (mode, n) = v.split_once(':')?;
        let n: u64 = n.parse().ok()?;
        match mode {
            "taken" => Some(CrashPoint::Taken(n)),
            "published" => Some(CrashPoint::Published(n)),
            _ => None,
        }
    })
}

fn crash_now(what: &str) {
    eprintln!("vduse-blk: VDUSE_BLK_CRASH_AT: killing myself {what}");
    // SAFETY: plain syscalls.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

/// Ring geometry as reported by `VDUSE_VQ_GET_INFO`.
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    pub num: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
}

impl Ring {
    pub fn desc_size(&self) -> u64 {
        16 * u64::from(self.num)
    }
    /// flags, idx, ring[num], used_event
    pub fn avail_size(&self) -> u64 {
        6 + 2 * u64::from(self.num)
    }
    /// flags, idx, ring[num] of {id, len}, avail_event
    pub fn used_size(&self) -> u64 {
        6 + 8 * u64::from(self.num)
    }
}

/// How a queue starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// After DRIVER_OK / SET_VQ_READY: start from the ring state the kernel reports.
    Fresh { avail_index: u16 },
    /// After a daemon restart: recover from the in-flight log.
    Reattach,
}

/// The part of a queue that does not depend on threads or the kernel: testable on the host.
pub struct VqCore {
    pub index: u32,
    pub queue: Queue,
    pub ring: Ring,
    pub space: Arc<AddressSpace>,
    pub disk: Arc<Disk>,
    pub log: Option<Arc<InflightLog>>,
    pub resubmit: VecDeque<u16>,
    /// `next_avail` published for `VDUSE_GET_VQ_STATE` while the thread runs.
    pub last_avail: Arc<AtomicU16>,
    /// Requests completed since start (for tests and the exit log).
    pub completed: u64,
}

#[derive(Debug)]
pub enum SetupError {
    Rings(RangeError),
    Queue(virtio_queue::Error),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Rings(e) => write!(f, "rings not accessible: {e:?}"),
            SetupError::Queue(e) => write!(f, "bad queue configuration: {e}"),
        }
    }
}

impl VqCore {
    /// Set up the queue: map the rings and work out where to resume.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: u32,
        max_size: u16,
        ring: Ring,
        event_idx: bool,
        start: Start,
        space: Arc<AddressSpace>,
        disk: Arc<Disk>,
        log: Option<Arc<InflightLog>>,
        src: &dyn IotlbSource,
    ) -> Result<Self, SetupError> {
        space
            .ensure(src, ring.desc, ring.desc_size(), Access::Read)
            .map_err(SetupError::Rings)?;
        space
            .ensure(src, ring.avail, ring.avail_size(), Access::Read)
            .map_err(SetupError::Rings)?;
        space
            .ensure(src, ring.used, ring.used_size(), Access::Write)
            .map_err(SetupError::Rings)?;
        let mut queue = Queue::new(max_size).map_err(SetupError::Queue)?;
        queue.try_set_size(ring.num).map_err(SetupError::Queue)?;
        queue
            .try_set_desc_table_address(GuestAddress(ring.desc))
            .map_err(SetupError::Queue)?;
        queue
            .try_set_avail_ring_address(GuestAddress(ring.avail))
            .map_err(SetupError::Queue)?;
        queue
            .try_set_used_ring_address(GuestAddress(ring.used))
            .map_err(SetupError::Queue)?;
        queue.set_event_idx(event_idx);
        queue.set_ready(true);
        let used_idx: u16 = {
            let mem = space.memory();
            u16::from_le(
                mem.load(GuestAddress(ring.used + 2), Ordering::Acquire)
                    .map_err(|_| SetupError::Rings(RangeError::Unmapped(ring.used + 2)))?,
            )
        };
        let mut resubmit = VecDeque::new();
        match start {
            Start::Fresh { avail_index } => {
                queue.set_next_avail(avail_index);
                queue.set_next_used(used_idx);
                if let Some(l) = &log {
                    l.reset_vq(index, used_idx);
                }
            }
            Start::Reattach => {
                if let Some(l) = &log {
                    let r = l.recover(index, used_idx);
                    if let Some(h) = r.completed_at_crash {
                        info!("vq {index}: head {h} was completed just before the crash");
                    }
                    queue.set_next_avail(r.next_avail);
                    queue.set_next_used(r.next_used);
                    resubmit = r.resubmit.into();
                } else {
                    queue.set_next_avail(used_idx);
                    queue.set_next_used(used_idx);
                }
            }
        }
        let last_avail = Arc::new(AtomicU16::new(queue.next_avail()));
        Ok(VqCore {
            index,
            queue,
            ring,
            space,
            disk,
            log,
            resubmit,
            last_avail,
            completed: 0,
        })
    }

    /// Index of the next avail-ring entry to take.
    pub fn next_avail(&self) -> u16 {
        self.queue.next_avail()
    }

    /// Index of the next used-ring entry to fill.
    pub fn next_used(&self) -> u16 {
        self.queue.next_used()
    }

    /// Execute one request and put it on the used ring.
    fn complete_head(
        &mut self,
        src: &dyn IotlbSource,
        head: u16,
    ) -> Result<(), virtio_queue::Error> {
        let mut tries = 0;
        let (mem, completion) = loop {
            let mem = self.space.memory();
            let space = &self.space;
            let walk = walk_chain(
                &mem,
                self.ring.desc,
                self.ring.num,
                head,
                &mut |a, l, acc| space.check(a, l, acc),
            );
            match walk {
                Ok(descs) => {
                    let c = self.disk.handle(&mem, &descs);
                    break (mem, c);
                }
                Err(WalkError::Range(RangeError::Unmapped(iova))) if tries < 16 => {
                    tries += 1;
                    if self.space.ensure(src, iova, 1, Access::Read).is_err() {
                        warn!(
                            "vq {}: request {head}: IOVA {iova:#x} is not mapped",
                            self.index
                        );
                        break (mem, None);
                    }
                }
                Err(e) => {
                    warn!("vq {}: bad request {head}: {e:?}", self.index);
                    break (mem, None);
                }
            }
        };
        let used_len = completion.map_or(0, |c| c.used_len);
        if let Some(l) = &self.log {
            l.pre_complete(self.index, head);
        }
        self.queue.add_used(&*mem, head, used_len)?;
        if crash_point() == Some(CrashPoint::Published(self.completed + 1)) {
            crash_now("after publishing a completion");
        }
        if let Some(l) = &self.log {
            l.post_complete(self.index, head, self.queue.next_used());
        }
        self.completed += 1;
        Ok(())
    }

    /// Serve everything available; returns whether the driver must be notified.
    pub fn process(&mut self, src: &dyn IotlbSource) -> Result<bool, virtio_queue::Error> {
        let mut added = false;
        while let Some(head) = self.resubmit.pop_front() {
            debug!("vq {}: resubmitting in-flight request {head}", self.index);
            self.complete_head(src, head)?;
            added = true;
        }
        loop {
            let mem = self.space.memory();
            self.queue.disable_notification(&*mem)?;
            loop {
                let mem = self.space.memory();
                let Some(chain) = self.queue.pop_descriptor_chain(&*mem) else {
                    break;
                };
                let head = chain.head_index();
                if let Some(l) = &self.log {
                    l.mark_inflight(self.index, head);
                }
                self.last_avail
                    .store(self.queue.next_avail(), Ordering::Relaxed);
                if crash_point() == Some(CrashPoint::Taken(self.completed + 1)) {
                    crash_now("with a request taken but not executed");
                }
                self.complete_head(src, head)?;
                added = true;
            }
            let mem = self.space.memory();
            if !self.queue.enable_notification(&*mem)? {
                break;
            }
        }
        if !added {
            return Ok(false);
        }
        let mem = self.space.memory();
        self.queue.needs_notification(&*mem)
    }
}

/// A running queue thread.
pub struct Worker {
    pub index: u32,
    stop: Arc<EventFd>,
    handle: JoinHandle<VqCore>,
    pub last_avail: Arc<AtomicU16>,
}

fn poll_two(a: i32, b: i32) -> io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd {
            fd: a,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: valid array of pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok((fds[0].revents != 0, fds[1].revents != 0));
    }
}

impl Worker {
    /// Install a fresh kick eventfd and start serving the queue on its own thread.
    pub fn spawn(mut core: VqCore, dev: Arc<Device>, notify_first: bool) -> io::Result<Worker> {
        let index = core.index;
        let kick = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
        let stop = Arc::new(EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?);
        dev.vq_setup_kickfd(index, kick.as_raw_fd())?;
        let last_avail = core.last_avail.clone();
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("vq{index}"))
            .spawn(move || {
                let irq = |dev: &Device| {
                    if let Err(e) = dev.vq_inject_irq(index) {
                        debug!("vq {index}: inject irq: {e}");
                    }
                };
                if notify_first {
                    // Completions published by a previous daemon may not have been signalled.
                    irq(&dev);
                }
                loop {
                    // Data is touched only here; the interrupt goes out after.
                    let served = {
                        let _data = dev.data_access();
                        core.process(&*dev)
                    };
                    match served {
                        Ok(true) => irq(&dev),
                        Ok(false) => {}
                        Err(e) => error!("vq {index}: ring error: {e}"),
                    }
                    match poll_two(kick.as_raw_fd(), stop2.as_raw_fd()) {
                        Ok((_, true)) => break,
                        Ok((true, false)) => {
                            let _ = kick.read();
                        }
                        Ok((false, false)) => {}
                        Err(e) => {
                            error!("vq {index}: poll: {e}");
                            break;
                        }
                    }
                }
                // Unhook the eventfd; kicks arriving from now on are latched by the kernel.
                let _ = dev.vq_setup_kickfd(index, crate::uapi::VDUSE_EVENTFD_DEASSIGN);
                core
            })?;
        Ok(Worker {
            index,
            stop,
            handle,
            last_avail,
        })
    }

    /// Stop the thread after the request it is executing (if any) and return the queue.
    pub fn stop(self) -> Option<VqCore> {
        let _ = self.stop.write(1);
        match self.handle.join() {
            Ok(core) => Some(core),
            Err(_) => {
                error!("vq {}: worker thread panicked", self.index);
                None
            }
        }
    }
}
