// SPDX-License-Identifier: GPL-2.0
//! A VDUSE device served end to end: negotiation with `/dev/vduse/control`, creation (or
//! re-attachment after a restart), the message loop that answers all six messages, and the
//! queue threads that run a [`Backend`].
//!
//! The backend is modelled on rust-vmm `vhost-user-backend`'s `handle_event`: it is told
//! *which* event fired (a queue's kick, or one of its own file descriptors such as a TAP
//! device) and gets every ring of its thread, so that a device whose work does not start with
//! a kick (virtio-net's receive queue is filled when the TAP is readable) fits as well as one
//! that answers each request as it comes (virtio-blk). A backend that wants its own threads,
//! or another event loop, overrides [`Backend::run_thread`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use vduse::server::{Backend, DeviceSpec, Event, EventCtx, Server};
//!
//! /// A device that completes every chain it is given with length 0.
//! struct Sink;
//!
//! impl Backend for Sink {
//!     fn handle_event(&self, ctx: &mut EventCtx<'_>, event: Event) -> std::io::Result<()> {
//!         let Event::Kick(q) = event else { return Ok(()) };
//!         if let Some(vring) = ctx.vring(q) {
//!             while let Some(chain) = vring.pop()? {
//!                 vring.add_used(chain.head, 0)?;
//!             }
//!             vring.signal_used()?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let spec = DeviceSpec::new("sink0", 0x2a, 1 << 32, vec![0; 8], 1);
//! let mut server = Server::create(spec, Arc::new(Sink))?;
//! server.run()?;
//! # Ok::<(), vduse::Error>(())
//! ```

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use log::{debug, error, info, warn};
use vmm_sys_util::eventfd::EventFd;

use crate::device::{self, errno, name_bytes, Control, Device};
use crate::error::{Error, Result};
use crate::inflight::{InflightLog, LogHeader};
use crate::memory::AddressSpace;
use crate::uapi::*;
use crate::virtio::*;
use crate::vring::{Ring, Start, Vring, VringConfig};

/// Which VDUSE API version to speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApiChoice {
    /// The newest the kernel offers, at most 1 (`VDUSE_GET_API_VERSION`).
    #[default]
    Auto,
    /// Version 0 (never asks, which would latch 1 on Linux >= 7.0).
    V0,
    /// Version 1, or an error if the kernel does not have it.
    V1,
}

/// `auto`, `0` or `1` (what a daemon's `--api-version` takes).
impl std::str::FromStr for ApiChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(ApiChoice::Auto),
            "0" => Ok(ApiChoice::V0),
            "1" => Ok(ApiChoice::V1),
            _ => Err(format!("'{s}': auto, 0 or 1")),
        }
    }
}

/// What [`negotiate`] settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The API version of the control fd.
    pub api_version: u64,
    /// The VDUSE features enabled on it (`VDUSE_F_*` bits).
    pub vduse_features: u64,
}

/// Negotiates the API version, then (with `features`) the VDUSE features this library
/// handles (`VDUSE_F_QUEUE_READY`, `VDUSE_F_SUSPEND`). A kernel without
/// `VDUSE_GET_FEATURES` answers `EINVAL` (or `ENOTTY`): no features, not an error.
///
/// # Errors
///
/// [`Error::Unsupported`] if `V1` was asked for and the kernel refuses it; [`Error::Io`].
pub fn negotiate(ctrl: &Control, api: ApiChoice, features: bool) -> Result<Negotiated> {
    let api_version = match api {
        ApiChoice::V0 => {
            ctrl.set_api_version(VDUSE_API_VERSION)
                .map_err(|e| Error::io("VDUSE_SET_API_VERSION", e))?;
            VDUSE_API_VERSION
        }
        ApiChoice::V1 => {
            ctrl.set_api_version(VDUSE_API_VERSION_1)
                .map_err(|e| Error::Unsupported(format!("VDUSE API 1 ({e})")))?;
            VDUSE_API_VERSION_1
        }
        ApiChoice::Auto => {
            // Linux >= 7.0 answers 1 (and latches it); older kernels answer 0.
            let offered = ctrl
                .get_api_version()
                .map_err(|e| Error::io("VDUSE_GET_API_VERSION", e))?;
            if offered > VDUSE_API_VERSION_1 {
                ctrl.set_api_version(VDUSE_API_VERSION_1)
                    .map_err(|e| Error::io("VDUSE_SET_API_VERSION", e))?;
            }
            offered.min(VDUSE_API_VERSION_1)
        }
    };
    info!("API version {api_version}");
    let mut vduse_features = 0;
    if !features {
        info!("not negotiating VDUSE features");
    } else {
        match ctrl.get_features() {
            Ok(offered) => {
                let want = offered & ((1 << VDUSE_F_QUEUE_READY) | (1 << VDUSE_F_SUSPEND));
                if want != 0 {
                    ctrl.set_features(want)
                        .map_err(|e| Error::io("VDUSE_SET_FEATURES", e))?;
                }
                vduse_features = want;
                info!("VDUSE features offered {offered:#x}, enabled {want:#x}");
            }
            Err(e) if matches!(errno(&e), libc::EINVAL | libc::ENOTTY) => {
                info!("kernel has no VDUSE features ({e})");
            }
            Err(e) => return Err(Error::io("VDUSE_GET_FEATURES", e)),
        }
    }
    Ok(Negotiated {
        api_version,
        vduse_features,
    })
}

/// The device to create.
#[derive(Clone, Debug)]
pub struct DeviceSpec {
    /// VDUSE and vDPA device name.
    pub name: String,
    /// Virtio device id (`VIRTIO_ID_*`).
    pub device_id: u32,
    /// Virtio vendor id.
    pub vendor_id: u32,
    /// Virtio features offered (`VIRTIO_F_VERSION_1` is required by the kernel).
    pub features: u64,
    /// The initial config space.
    pub config: Vec<u8>,
    /// Number of virtqueues.
    pub num_queues: u16,
    /// Largest ring size offered for each queue.
    pub queue_size: u16,
    /// API version to speak.
    pub api: ApiChoice,
    /// Negotiate VDUSE features (`VDUSE_GET/SET_FEATURES`).
    pub vduse_features: bool,
    /// Back the bounce buffer with our own memory (`VDUSE_IOTLB_REG_UMEM`).
    pub umem: bool,
    /// The reconnect log: where the in-flight state of every queue is kept, so that a
    /// restarted daemon re-attaches without losing or repeating a request. `None`: no
    /// re-attachment (an existing device is an error).
    pub reconnect_log: Option<PathBuf>,
    /// A value the reconnect log must match on re-attachment besides the queue geometry
    /// (e.g. a disk's capacity), so that a daemon started with another configuration does
    /// not take over the device.
    pub identity: u64,
}

impl DeviceSpec {
    /// A spec with the defaults: API [`ApiChoice::Auto`], VDUSE features negotiated, rings of
    /// 256, no UMEM, a reconnect log in `/dev/shm` (or the temporary directory).
    pub fn new(
        name: &str,
        device_id: u32,
        features: u64,
        config: Vec<u8>,
        num_queues: u16,
    ) -> Self {
        DeviceSpec {
            name: name.to_string(),
            device_id,
            vendor_id: 0,
            features,
            config,
            num_queues,
            queue_size: 256,
            api: ApiChoice::Auto,
            vduse_features: true,
            umem: false,
            reconnect_log: Some(default_log_path("vduse", name)),
            identity: 0,
        }
    }
}

/// `/dev/shm/PREFIX-NAME.log`, or in the temporary directory without `/dev/shm`.
pub fn default_log_path(prefix: &str, name: &str) -> PathBuf {
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("{prefix}-{name}.log"))
}

/// What woke a queue thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The driver kicked queue `.0` (also delivered once when the thread starts, for what was
    /// available before).
    Kick(u16),
    /// The backend's file descriptor number `.0` of [`Backend::thread_fds`] is readable (or in
    /// error).
    Fd(usize),
}

/// A queue thread's view while it handles an event.
pub struct EventCtx<'a> {
    /// The thread's number (index into [`Backend::queues_per_thread`]).
    pub thread: usize,
    /// The rings this thread serves (the ready queues of its set).
    pub vrings: &'a mut [Vring],
    fd_enabled: &'a mut [bool],
}

impl EventCtx<'_> {
    /// The ring of queue `index`, if this thread serves it (and it is ready).
    pub fn vring(&mut self, index: u16) -> Option<&mut Vring> {
        self.vrings.iter_mut().find(|v| v.index() == index)
    }

    /// Stops (`false`) or resumes polling the backend's fd number `i`: e.g. a TAP while the
    /// receive queue has no buffers, until the driver kicks it.
    pub fn set_fd_enabled(&mut self, i: usize, on: bool) {
        if let Some(e) = self.fd_enabled.get_mut(i) {
            *e = on;
        }
    }
}

/// A virtio device's behaviour.
pub trait Backend: Send + Sync + 'static {
    /// The queues each thread serves, as bit masks (queue `i` is bit `i`); every queue must
    /// be in exactly one. Default: a thread per queue.
    fn queues_per_thread(&self, num_queues: u16) -> Vec<u64> {
        (0..num_queues.min(64)).map(|i| 1 << i).collect()
    }

    /// File descriptors thread `thread` polls besides the kicks (reported as [`Event::Fd`]
    /// with their position in this list). Default: none.
    fn thread_fds(&self, _thread: usize) -> Vec<RawFd> {
        Vec::new()
    }

    /// Handles one event on a queue thread. Called with data access allowed (while the
    /// bounce buffer is not being switched). An error is logged; the thread goes on (for an
    /// [`Event::Fd`], that fd stops being polled).
    ///
    /// # Errors
    ///
    /// Whatever the backend reports.
    fn handle_event(&self, ctx: &mut EventCtx<'_>, event: Event) -> io::Result<()>;

    /// Runs thread `thread` until `stop` is readable, then returns its rings. The default is
    /// [`event_loop`]; a backend may override it to run its own loop (or threads) instead.
    fn run_thread(
        self: Arc<Self>,
        dev: Arc<Device>,
        thread: usize,
        mut vrings: Vec<Vring>,
        stop: Arc<EventFd>,
    ) -> Vec<Vring> {
        event_loop(&*self, &dev, thread, &mut vrings, &stop);
        vrings
    }

    /// The driver set `DRIVER_OK` with `driver_features`, before the queues start.
    fn driver_ok(&self, _dev: &Device, _driver_features: u64) {}

    /// The device was reset (status 0), after its queues stopped.
    fn reset(&self) {}

    /// The daemon is shutting down (a signal, or the device broke), before its queues stop
    /// and the device is destroyed: stop what the backend runs on its own that holds the
    /// device (a destroy is refused while the node is open).
    fn stopping(&self) {}

    /// The daemon received `SIGUSR1` or `SIGUSR2` (blocked, read by the message loop): a
    /// backend may act on it (e.g. virtio-net toggles its link).
    fn signal(&self, _dev: &Device, _signo: i32) {}
}

/// The default queue thread: polls the kicks of `vrings`, the backend's fds and `stop`, and
/// calls [`Backend::handle_event`] for each event, holding [`Device::data_access`].
pub fn event_loop<B: Backend + ?Sized>(
    backend: &B,
    dev: &Device,
    thread: usize,
    vrings: &mut [Vring],
    stop: &EventFd,
) {
    let fds = backend.thread_fds(thread);
    let mut enabled = vec![true; fds.len()];
    let call = |vrings: &mut [Vring], enabled: &mut [bool], event: Event| {
        let _data = dev.data_access();
        let mut ctx = EventCtx {
            thread,
            vrings,
            fd_enabled: enabled,
        };
        if let Err(e) = backend.handle_event(&mut ctx, event) {
            error!("thread {thread}: {event:?}: {e}");
            if let Event::Fd(i) = event {
                ctx.set_fd_enabled(i, false);
            }
        }
    };
    // What was made available before the thread started.
    for i in 0..vrings.len() {
        let q = vrings[i].index();
        call(vrings, &mut enabled, Event::Kick(q));
    }
    loop {
        let mut pfd = vec![pollin(stop.as_raw_fd())];
        pfd.extend(vrings.iter().map(|v| pollin(v.kick_fd())));
        let extra: Vec<usize> = (0..fds.len()).filter(|&i| enabled[i]).collect();
        pfd.extend(extra.iter().map(|&i| pollin(fds[i])));
        // SAFETY: `pfd` is a valid array of pollfds.
        let r = unsafe { libc::poll(pfd.as_mut_ptr(), pfd.len() as libc::nfds_t, -1) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            error!("thread {thread}: poll: {e}");
            return;
        }
        if pfd[0].revents != 0 {
            return;
        }
        for (i, p) in pfd[1..=vrings.len()].to_vec().iter().enumerate() {
            if p.revents != 0 {
                vrings[i].clear_kick();
                let q = vrings[i].index();
                call(vrings, &mut enabled, Event::Kick(q));
            }
        }
        for (k, p) in pfd[1 + vrings.len()..].to_vec().iter().enumerate() {
            if p.revents != 0 {
                call(vrings, &mut enabled, Event::Fd(extra[k]));
            }
        }
    }
}

fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// The device's state as the message loop tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Reset (status 0) or being set up: no queue runs.
    Reset,
    /// `DRIVER_OK`: ready queues run.
    Running,
    /// `VDUSE_SUSPEND` answered: no queue runs until reset.
    Suspended,
}

struct QueueThread {
    stop: Arc<EventFd>,
    handle: JoinHandle<Vec<Vring>>,
}

/// A created (or re-attached) VDUSE device and its message loop.
pub struct Server<B: Backend> {
    spec: DeviceSpec,
    backend: Arc<B>,
    /// The control device, to destroy the device at the end (`None`: not ours to destroy).
    ctrl: Option<Control>,
    dev: Arc<Device>,
    negotiated: Negotiated,
    log: Option<Arc<InflightLog>>,
    reattached: bool,
    spaces: Vec<Arc<AddressSpace>>,
    group_asid: Vec<u32>,
    status: u8,
    state: State,
    driver_features: u64,
    vq_ready: Vec<bool>,
    sets: Vec<u64>,
    threads: Vec<Option<QueueThread>>,
    /// `next_avail` of each running queue (shared with its ring).
    live_avail: Vec<Option<Arc<AtomicU16>>>,
    /// `next_avail` of each stopped queue, for `VDUSE_GET_VQ_STATE`.
    saved_avail: Vec<u16>,
    /// `SIGINT`, `SIGTERM`, `SIGUSR1`, `SIGUSR2`, blocked before any queue thread exists.
    sigfd: OwnedFd,
}

impl<B: Backend> Server<B> {
    /// Negotiates with `/dev/vduse/control`, creates the device (or, if it exists and the
    /// reconnect log describes it, re-attaches to it as the same daemon restarted) and opens
    /// `/dev/vduse/NAME`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], [`Error::Exists`], [`Error::Unsupported`], [`Error::Io`].
    pub fn create(spec: DeviceSpec, backend: Arc<B>) -> Result<Self> {
        let name = name_bytes(&spec.name)
            .map_err(|_| Error::InvalidConfig(format!("device name '{}'", spec.name)))?;
        if spec.num_queues == 0 || spec.num_queues > 64 {
            return Err(Error::InvalidConfig("1 to 64 queues".into()));
        }
        if !spec.queue_size.is_power_of_two() {
            return Err(Error::InvalidConfig("queue size: a power of two".into()));
        }
        // Checked before the kernel is asked for anything.
        let sets = thread_sets(&*backend, spec.num_queues)?;
        // Before any queue thread exists, so that every thread inherits the mask.
        let sigfd = block_signals(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGUSR2])
            .map_err(|e| Error::io("signalfd", e))?;
        let ctrl = Control::open().map_err(|e| Error::io("open /dev/vduse/control", e))?;
        let mut negotiated = negotiate(&ctrl, spec.api, spec.vduse_features)?;
        let mut cfg = DevConfig {
            name,
            vendor_id: spec.vendor_id,
            device_id: spec.device_id,
            features: spec.features,
            vq_num: u32::from(spec.num_queues),
            vq_align: 4096,
            ngroups: 0,
            nas: 0,
            reserved: [0; 11],
            config_size: u32::try_from(spec.config.len())
                .map_err(|_| Error::InvalidConfig("config space too large".into()))?,
        };
        if negotiated.api_version >= VDUSE_API_VERSION_1 {
            cfg.ngroups = 1;
            cfg.nas = 1;
        }
        let hdr = |n: &Negotiated| LogHeader {
            num_queues: u32::from(spec.num_queues),
            queue_size: u32::from(spec.queue_size),
            api_version: n.api_version as u32,
            vduse_features: n.vduse_features,
            device_features: spec.features,
            capacity: spec.identity,
        };
        let (log, reattached) = match ctrl.create_dev(&cfg, &spec.config) {
            Ok(()) => {
                info!(
                    "created /dev/vduse/{} (device id {}, {} queue(s) of {}, features {:#x})",
                    spec.name, spec.device_id, spec.num_queues, spec.queue_size, spec.features
                );
                let log = spec.reconnect_log.as_ref().and_then(|p| {
                    InflightLog::create(p, hdr(&negotiated))
                        .map_err(|e| {
                            warn!(
                                "reconnect log {}: {e}; a restarted daemon will not re-attach",
                                p.display()
                            )
                        })
                        .ok()
                });
                (log, false)
            }
            Err(e) if errno(&e) == libc::EEXIST => {
                let Some(path) = spec.reconnect_log.as_ref().filter(|p| p.exists()) else {
                    return Err(Error::Exists(format!(
                        "device {} already exists and there is no reconnect log for it: \
                         destroy it first (`vdpa dev del {0}`, then stop its daemon)",
                        spec.name
                    )));
                };
                let l = InflightLog::open(path).map_err(|e| Error::io("reconnect log", e))?;
                let h = l.header();
                let want = hdr(&negotiated);
                if (h.num_queues, h.queue_size, h.capacity, h.device_features)
                    != (
                        want.num_queues,
                        want.queue_size,
                        want.capacity,
                        want.device_features,
                    )
                {
                    return Err(Error::Exists(format!(
                        "device {} exists but its reconnect log {} describes another \
                         configuration",
                        spec.name,
                        path.display()
                    )));
                }
                negotiated = Negotiated {
                    api_version: u64::from(h.api_version),
                    vduse_features: h.vduse_features,
                };
                info!(
                    "device {} exists: re-attaching with {} (API {}, VDUSE features {:#x})",
                    spec.name,
                    path.display(),
                    negotiated.api_version,
                    negotiated.vduse_features
                );
                (Some(l), true)
            }
            Err(e) => return Err(Error::io("VDUSE_CREATE_DEV", e)),
        };
        // A killed predecessor may still be closing the device (single opener): retry EBUSY.
        let open =
            || Device::open(&spec.name, negotiated.api_version).map(|d| d.with_umem(spec.umem));
        let mut opened = open();
        for _ in 0..50 {
            match &opened {
                Err(e) if errno(e) == libc::EBUSY => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    opened = open();
                }
                _ => break,
            }
        }
        let dev = match opened {
            Ok(d) => Arc::new(d),
            Err(e) => {
                if !reattached {
                    let _ = ctrl.destroy_dev(&spec.name);
                }
                return Err(Error::io("open /dev/vduse/NAME", e));
            }
        };
        if !reattached {
            for i in 0..u32::from(spec.num_queues) {
                if let Err(e) = dev.vq_setup(i, spec.queue_size, 0) {
                    drop(dev);
                    let _ = ctrl.destroy_dev(&spec.name);
                    return Err(Error::io("VDUSE_VQ_SETUP", e));
                }
            }
        }
        let mut s = Self::assemble(spec, backend, sets, Some(ctrl), dev, negotiated, sigfd);
        s.log = log;
        s.reattached = reattached;
        if reattached {
            s.attach_running();
        }
        Ok(s)
    }

    /// Serves a device that was created and opened elsewhere (`dev`), e.g. a node passed by
    /// a manager process, or a socket standing in for one in a test. It is not destroyed at
    /// the end, and no reconnect log is kept.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (the queue split of the backend), [`Error::Io`] (signalfd).
    pub fn on_device(
        spec: DeviceSpec,
        backend: Arc<B>,
        dev: Device,
        negotiated: Negotiated,
    ) -> Result<Self> {
        let sigfd = block_signals(&[libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGUSR2])
            .map_err(|e| Error::io("signalfd", e))?;
        let spec = DeviceSpec {
            reconnect_log: None,
            ..spec
        };
        let sets = thread_sets(&*backend, spec.num_queues)?;
        Ok(Self::assemble(
            spec,
            backend,
            sets,
            None,
            Arc::new(dev),
            negotiated,
            sigfd,
        ))
    }

    fn assemble(
        spec: DeviceSpec,
        backend: Arc<B>,
        sets: Vec<u64>,
        ctrl: Option<Control>,
        dev: Arc<Device>,
        negotiated: Negotiated,
        sigfd: OwnedFd,
    ) -> Self {
        let nq = usize::from(spec.num_queues);
        let nsets = sets.len();
        Server {
            spec,
            backend,
            ctrl,
            dev,
            negotiated,
            log: None,
            reattached: false,
            spaces: vec![Arc::new(AddressSpace::new(0))],
            group_asid: vec![0],
            status: 0,
            state: State::Reset,
            driver_features: 0,
            vq_ready: vec![false; nq],
            sets,
            threads: (0..nsets).map(|_| None).collect(),
            live_avail: vec![None; nq],
            saved_avail: vec![0; nq],
            sigfd,
        }
    }

    /// The open device.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// What was negotiated (or, after re-attachment, what the previous daemon negotiated).
    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// Whether this daemon took over an existing device.
    pub fn reattached(&self) -> bool {
        self.reattached
    }

    /// The device's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The last status the driver set.
    pub fn status(&self) -> u8 {
        self.status
    }

    /// Changes the config space (`VDUSE_DEV_SET_CONFIG`) and tells the driver
    /// (`VDUSE_DEV_INJECT_CONFIG_IRQ`; refused, and not an error, while the driver is not
    /// running).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] from `VDUSE_DEV_SET_CONFIG`.
    pub fn set_config(&self, offset: u32, data: &[u8]) -> Result<()> {
        set_config_and_notify(&self.dev, offset, data)
    }

    /// Takes the queues of a running device back after a restart (`VDUSE_VQ_GET_INFO`).
    fn attach_running(&mut self) {
        match self.dev.driver_features() {
            Ok(f) => self.driver_features = f,
            Err(e) => warn!("VDUSE_DEV_GET_FEATURES: {e}"),
        }
        for i in 0..self.spec.num_queues {
            if let Ok(info) = self.dev.vq_info(u32::from(i)) {
                self.vq_ready[usize::from(i)] = info.ready != 0;
            }
        }
        if self.vq_ready.iter().any(|&r| r) {
            // The kernel accepts kicks only for ready queues of a running device.
            self.status = VIRTIO_CONFIG_S_ACKNOWLEDGE
                | VIRTIO_CONFIG_S_DRIVER
                | VIRTIO_CONFIG_S_FEATURES_OK
                | VIRTIO_CONFIG_S_DRIVER_OK;
            self.state = State::Running;
            for t in 0..self.sets.len() {
                self.restart_thread(t, Start::Reattach);
            }
        }
    }

    fn set_of(&self, q: u16) -> usize {
        self.sets
            .iter()
            .position(|s| s & (1 << q) != 0)
            .unwrap_or(0)
    }

    /// Stops thread `t` (if it runs) and returns its rings, kick fds unhooked.
    fn stop_thread(&mut self, t: usize) -> Vec<Vring> {
        let Some(th) = self.threads[t].take() else {
            return Vec::new();
        };
        let _ = th.stop.write(1);
        let vrings = th.handle.join().unwrap_or_else(|_| {
            error!("queue thread {t} panicked");
            Vec::new()
        });
        for v in &vrings {
            // Kicks arriving from now on are latched by the kernel.
            let _ = self
                .dev
                .vq_setup_kickfd(u32::from(v.index()), VDUSE_EVENTFD_DEASSIGN);
            let i = usize::from(v.index());
            self.saved_avail[i] = v.next_avail();
            self.live_avail[i] = None;
            info!("vq {}: stopped after {} requests", v.index(), v.completed());
        }
        vrings
    }

    fn stop_all(&mut self) {
        for t in 0..self.threads.len() {
            self.stop_thread(t);
        }
    }

    /// A ring for queue `q`, from `VDUSE_VQ_GET_INFO`.
    fn make_vring(&mut self, q: u16, start: Start) -> Result<Vring> {
        let info = self
            .dev
            .vq_info(u32::from(q))
            .map_err(|e| Error::io("VDUSE_VQ_GET_INFO", e))?;
        if info.num == 0 || info.num > u32::from(self.spec.queue_size) {
            return Err(Error::Ring {
                index: q,
                what: format!("bad ring size {}", info.num),
            });
        }
        let ring = Ring {
            num: info.num as u16,
            desc: info.desc_addr,
            avail: info.driver_addr,
            used: info.device_addr,
        };
        let start = match start {
            Start::Fresh { .. } => Start::Fresh {
                avail_index: info.split_avail_index(),
            },
            s => s,
        };
        let space = self.spaces[self.group_asid[0] as usize].clone();
        let v = Vring::new(
            VringConfig {
                index: q,
                max_size: self.spec.queue_size,
                ring,
                event_idx: self.driver_features & bit(VIRTIO_RING_F_EVENT_IDX) != 0,
                start,
            },
            space,
            self.dev.clone(),
            self.log.clone(),
        )?;
        info!(
            "vq {q}: started ({}, size {}, desc {:#x} avail {:#x} used {:#x}, next_avail {}{})",
            if start == Start::Reattach {
                "re-attached"
            } else {
                "fresh"
            },
            ring.num,
            ring.desc,
            ring.avail,
            ring.used,
            v.next_avail(),
            match v.resubmissions().len() {
                0 => String::new(),
                n => format!(", resubmitting {n} in-flight"),
            }
        );
        if start == Start::Reattach {
            // Completions published by the previous daemon may not have been signalled.
            let _ = v.inject_irq();
        }
        Ok(v)
    }

    /// (Re)starts thread `t` with the ready queues of its set: rings of queues still ready
    /// are kept, new ones made with `start`.
    fn restart_thread(&mut self, t: usize, start: Start) {
        let mut vrings: Vec<Vring> = self
            .stop_thread(t)
            .into_iter()
            .filter(|v| self.vq_ready[usize::from(v.index())])
            .collect();
        if self.state != State::Running {
            return;
        }
        for q in 0..self.spec.num_queues {
            let wanted = self.sets[t] & (1 << q) != 0 && self.vq_ready[usize::from(q)];
            if wanted && !vrings.iter().any(|v| v.index() == q) {
                match self.make_vring(q, start) {
                    Ok(v) => vrings.push(v),
                    Err(e) => error!("vq {q}: cannot start: {e}"),
                }
            }
        }
        if vrings.is_empty() {
            return;
        }
        vrings.sort_by_key(|v| v.index());
        for v in &vrings {
            if let Err(e) = self.dev.vq_setup_kickfd(u32::from(v.index()), v.kick_fd()) {
                error!("vq {}: VDUSE_VQ_SETUP_KICKFD: {e}", v.index());
            }
            self.live_avail[usize::from(v.index())] = Some(v.last_avail());
        }
        let stop = match EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                error!("eventfd: {e}");
                return;
            }
        };
        let (backend, dev, stop2) = (self.backend.clone(), self.dev.clone(), stop.clone());
        match std::thread::Builder::new()
            .name(format!("vduse-q{t}"))
            .spawn(move || backend.run_thread(dev, t, vrings, stop2))
        {
            Ok(handle) => self.threads[t] = Some(QueueThread { stop, handle }),
            Err(e) => error!("cannot start queue thread {t}: {e}"),
        }
    }

    fn reset(&mut self) {
        self.stop_all();
        if let Some(l) = &self.log {
            for i in 0..u32::from(self.spec.num_queues) {
                l.reset_vq(i, 0);
            }
        }
        for s in &self.spaces {
            s.clear();
        }
        self.saved_avail.iter_mut().for_each(|a| *a = 0);
        self.vq_ready.iter_mut().for_each(|r| *r = false);
        self.group_asid.iter_mut().for_each(|a| *a = 0);
        self.state = State::Reset;
        self.driver_features = 0;
        self.backend.reset();
    }

    /// Answers one message (public for tests: the loop of [`Server::run`] calls it).
    pub fn handle(&mut self, req: &DevRequest) -> DevResponse {
        use crate::uapi::payload as p;
        let mut resp = DevResponse::new(req.request_id, VDUSE_REQ_RESULT_OK);
        let name = msg_type_name(req.type_);
        match req.type_ {
            VDUSE_GET_VQ_STATE => {
                let i = req.payload_u32(p::VQ_STATE_INDEX);
                match self.saved_avail.get(i as usize) {
                    Some(&saved) => {
                        let avail = self.live_avail[i as usize]
                            .as_ref()
                            .map_or(saved, |a| a.load(Ordering::Relaxed));
                        info!("msg {name} vq={i} avail_index={avail}");
                        resp.set_vq_state_split(i, avail);
                    }
                    None => {
                        info!("msg {name} vq={i} (invalid)");
                        resp.result = VDUSE_REQ_RESULT_FAILED;
                    }
                }
            }
            VDUSE_SET_STATUS => {
                let status = req.payload_u8(p::STATUS);
                info!("msg {name} status={status:#x}");
                let old = self.status;
                if status == 0 {
                    self.reset();
                } else if status & VIRTIO_CONFIG_S_DRIVER_OK != 0
                    && old & VIRTIO_CONFIG_S_DRIVER_OK == 0
                {
                    match self.dev.driver_features() {
                        Ok(f) => self.driver_features = f,
                        Err(e) => warn!("VDUSE_DEV_GET_FEATURES: {e}"),
                    }
                    info!("driver features {:#x}", self.driver_features);
                    // Ring memory may have been reallocated since the last run: map afresh.
                    for s in &self.spaces {
                        s.clear();
                    }
                    // Without VDUSE_F_QUEUE_READY no SET_VQ_READY comes: the kernel's own
                    // flag (set by the driver before DRIVER_OK) says which queues run.
                    for q in 0..self.spec.num_queues {
                        let i = usize::from(q);
                        if !self.vq_ready[i] {
                            self.vq_ready[i] =
                                self.dev.vq_info(u32::from(q)).is_ok_and(|v| v.ready != 0);
                        }
                    }
                    self.backend.driver_ok(&self.dev, self.driver_features);
                    self.state = State::Running;
                    for t in 0..self.sets.len() {
                        self.restart_thread(t, Start::Fresh { avail_index: 0 });
                    }
                }
                self.status = status;
            }
            VDUSE_UPDATE_IOTLB => {
                let start = req.payload_u64(p::IOVA_START);
                let last = req.payload_u64(p::IOVA_LAST);
                let asid = if self.negotiated.api_version >= VDUSE_API_VERSION_1 {
                    req.payload_u32(p::IOVA_V2_ASID)
                } else {
                    0
                };
                info!("msg {name} asid={asid} start={start:#x} last={last:#x}");
                if let Some(space) = self.spaces.get(asid as usize).cloned() {
                    space.remove_range(start, last);
                    match space.map_range(&*self.dev, start, last) {
                        Ok(n) => debug!("asid {asid}: {n} IOTLB entries mapped"),
                        // Not fatal: entries are faulted in again on use.
                        Err(e) => warn!("asid {asid}: re-mapping {start:#x}-{last:#x}: {e}"),
                    }
                } else {
                    resp.result = VDUSE_REQ_RESULT_FAILED;
                }
            }
            VDUSE_SET_VQ_GROUP_ASID => {
                let group = req.payload_u32(p::GROUP_ASID_GROUP);
                let asid = req.payload_u32(p::GROUP_ASID_ASID);
                info!("msg {name} group={group} asid={asid}");
                if (group as usize) < self.group_asid.len() && (asid as usize) < self.spaces.len() {
                    self.group_asid[group as usize] = asid;
                } else {
                    resp.result = VDUSE_REQ_RESULT_FAILED;
                }
            }
            VDUSE_SET_VQ_READY => {
                let i = req.payload_u32(p::VQ_READY_NUM);
                let ready = req.payload_u32(p::VQ_READY_READY) != 0;
                info!("msg {name} vq={i} ready={}", u8::from(ready));
                match u16::try_from(i).ok().filter(|&q| q < self.spec.num_queues) {
                    Some(q) => {
                        self.vq_ready[usize::from(q)] = ready;
                        if self.state == State::Running || !ready {
                            let t = self.set_of(q);
                            self.restart_thread(t, Start::Fresh { avail_index: 0 });
                        }
                    }
                    None => resp.result = VDUSE_REQ_RESULT_FAILED,
                }
            }
            VDUSE_SUSPEND => {
                info!("msg {name}");
                // Answer only once no queue thread can touch the rings any more.
                self.stop_all();
                self.state = State::Suspended;
                info!("suspended: all queues quiesced");
            }
            t => {
                info!("msg {name} type={t}");
                resp.result = VDUSE_REQ_RESULT_FAILED;
            }
        }
        resp
    }

    /// Answers every queued message (non-blocking); `false` if the device fd is broken.
    pub fn serve_messages(&mut self) -> bool {
        loop {
            let req = match self.dev.read_request() {
                Ok(Some(r)) => r,
                Ok(None) => return true,
                Err(e) => {
                    error!("reading a message: {e}");
                    return false;
                }
            };
            let resp = self.handle(&req);
            if let Err(e) = self.dev.write_response(&resp) {
                error!("answering message {}: {e}", req.request_id);
            }
        }
    }

    /// Serves the device until `SIGINT` or `SIGTERM`, then destroys it: while it is still on
    /// the vDPA bus (`vdpa dev del` not done yet) it keeps serving, says so once, and
    /// retries every 500 ms. `SIGUSR1`/`SIGUSR2` go to [`Backend::signal`].
    ///
    /// [`Server::create`] blocked those signals in the calling thread (and so in the queue
    /// threads it starts): create the server from the main thread before starting others, or
    /// block them there yourself.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (poll, signalfd, `VDUSE_DESTROY_DEV`).
    pub fn run(&mut self) -> Result<()> {
        let sigfd = self.sigfd.try_clone().map_err(|e| Error::io("dup", e))?;
        let mut shutdown = false;
        let mut told = false;
        loop {
            if shutdown && self.try_destroy(&mut told)? {
                return Ok(());
            }
            let mut fds = [pollin(self.dev.raw_fd()), pollin(sigfd.as_raw_fd())];
            let timeout = if shutdown { 500 } else { -1 };
            // SAFETY: valid pollfd array.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("poll", e));
            }
            if fds[1].revents & libc::POLLIN != 0 {
                let mut si = [0u8; 128];
                // SAFETY: reading a signalfd_siginfo into a large enough buffer.
                let n = unsafe { libc::read(sigfd.as_raw_fd(), si.as_mut_ptr().cast(), si.len()) };
                if n >= 4 {
                    let signo = i32::from_ne_bytes([si[0], si[1], si[2], si[3]]);
                    if signo == libc::SIGUSR1 || signo == libc::SIGUSR2 {
                        self.backend.signal(&self.dev, signo);
                    } else {
                        info!("signal {signo}: shutting down");
                        if !shutdown {
                            self.backend.stopping();
                        }
                        shutdown = true;
                        told = false;
                    }
                }
            }
            if fds[0].revents & libc::POLLERR != 0 {
                error!(
                    "device {} is broken (a control message timed out); shutting down",
                    self.spec.name
                );
                if !shutdown {
                    self.backend.stopping();
                }
                shutdown = true;
                // Avoid spinning on a permanently broken fd.
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            if fds[0].revents & libc::POLLIN != 0 {
                self.serve_messages();
            }
        }
    }

    /// Tries to destroy the device; `Ok(false)` if it must keep serving.
    fn try_destroy(&mut self, told: &mut bool) -> Result<bool> {
        let name = self.spec.name.clone();
        if device::vdpa_attached(&name) {
            if !*told {
                eprintln!(
                    "vduse: device {name} is still attached to the vDPA bus: run `vdpa dev del \
                     {name}` first (still serving; will destroy the device once it is detached)"
                );
                *told = true;
            }
            return Ok(false);
        }
        self.stop_all();
        for s in &self.spaces {
            s.clear();
        }
        // Close our node first: VDUSE_DESTROY_DEV refuses an open device. A placeholder
        // keeps `self.dev` valid until the node is re-opened below.
        let placeholder = Arc::new(Device::from_file(
            std::fs::File::open("/dev/null").map_err(|e| Error::io("open /dev/null", e))?,
            self.negotiated.api_version,
        ));
        self.dev = placeholder;
        let Some(ctrl) = &self.ctrl else {
            // Not ours to destroy.
            return Ok(true);
        };
        match ctrl.destroy_dev(&name) {
            Ok(()) => {
                info!("device {name} destroyed");
                if let Some(p) = &self.spec.reconnect_log {
                    let _ = std::fs::remove_file(p);
                }
                Ok(true)
            }
            Err(e) if errno(&e) == libc::EBUSY => {
                debug!("VDUSE_DESTROY_DEV: {e}; re-attaching and retrying");
                let d = Device::open(&name, self.negotiated.api_version)
                    .map_err(|e| Error::io("open /dev/vduse/NAME", e))?;
                self.dev = Arc::new(d.with_umem(self.spec.umem));
                self.attach_running();
                Ok(false)
            }
            Err(e) => Err(Error::io("VDUSE_DESTROY_DEV", e)),
        }
    }
}

/// The backend's queue sets, checked: every queue in exactly one.
fn thread_sets<B: Backend>(backend: &B, num_queues: u16) -> Result<Vec<u64>> {
    let sets = backend.queues_per_thread(num_queues);
    let all = if num_queues >= 64 {
        u64::MAX
    } else {
        (1u64 << num_queues) - 1
    };
    let covered = sets.iter().fold(0u64, |a, s| a | s);
    let total: u32 = sets.iter().map(|s| s.count_ones()).sum();
    if covered != all || total != u32::from(num_queues) {
        return Err(Error::InvalidConfig(
            "queues_per_thread must put every queue in exactly one thread".into(),
        ));
    }
    Ok(sets)
}

/// `VDUSE_DEV_SET_CONFIG` then `VDUSE_DEV_INJECT_CONFIG_IRQ` (whose refusal while the driver
/// is not running is not an error: it reads the config when it starts).
///
/// # Errors
///
/// [`Error::Io`] from `VDUSE_DEV_SET_CONFIG`.
pub fn set_config_and_notify(dev: &Device, offset: u32, data: &[u8]) -> Result<()> {
    dev.set_config(offset, data)
        .map_err(|e| Error::io("VDUSE_DEV_SET_CONFIG", e))?;
    if let Err(e) = dev.inject_config_irq() {
        debug!("VDUSE_DEV_INJECT_CONFIG_IRQ: {e} (driver not running)");
    }
    Ok(())
}

/// Blocks `signals` in the calling thread and returns a signalfd that reads them.
///
/// # Errors
///
/// The OS error of `pthread_sigmask` or `signalfd`.
pub fn block_signals(signals: &[i32]) -> io::Result<OwnedFd> {
    // SAFETY: plain signal-mask manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}
