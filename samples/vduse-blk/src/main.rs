// SPDX-License-Identifier: GPL-2.0
//! vduse-blk: a virtio-blk device served from userspace through VDUSE.
//!
//! See README.md for usage and the negotiation logic.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use log::{debug, error, info, warn};

use vduse_blk::blk::{self, Disk};
use vduse_blk::device::{self, errno, name_bytes, Control, Device};
use vduse_blk::inflight::{InflightLog, LogHeader};
use vduse_blk::memory::AddressSpace;
use vduse_blk::queue::{Ring, Start, VqCore, Worker};
use vduse_blk::size::parse_size;
use vduse_blk::uapi::*;
use vduse_blk::virtio::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ApiArg {
    /// The newest version both sides know.
    Auto,
    /// Force API version 0 (the path of Linux < 7.0).
    #[value(name = "0")]
    V0,
    /// Require API version 1.
    #[value(name = "1")]
    V1,
}

/// virtio-blk device in userspace over VDUSE.
#[derive(Parser, Debug)]
#[command(name = "vduse-blk", version)]
struct Args {
    /// VDUSE (and vDPA) device name.
    #[arg(long, default_value = "vduse-blk0")]
    name: String,
    /// Backing file or block device (created when --size is also given).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Capacity, e.g. 64M or 1G; without --file the disk lives in RAM (a memfd).
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Number of virtqueues (each served by its own thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    queues: u16,
    /// Maximum size of each virtqueue (a power of two).
    #[arg(long, default_value_t = 256)]
    queue_size: u16,
    /// Expose a read-only disk (VIRTIO_BLK_F_RO).
    #[arg(long)]
    read_only: bool,
    /// VDUSE API version to use.
    #[arg(long, value_enum, default_value = "auto")]
    api_version: ApiArg,
    /// Do not negotiate VDUSE features (VDUSE_GET/SET_FEATURES).
    #[arg(long)]
    no_features: bool,
    /// Reconnect log [default: /dev/shm/vduse-blk-NAME.log].
    #[arg(long)]
    reconnect_log: Option<PathBuf>,
    /// Serve the bounce buffer from our own memory (VDUSE_IOTLB_REG_UMEM) where the kernel
    /// offers it (needs RLIMIT_MEMLOCK >= bounce_size); otherwise map the kernel's.
    #[arg(long)]
    umem: bool,
    /// With --umem: switch the bounce buffer to the kernel's pages and back (DEREG_UMEM,
    /// REG_UMEM) every MS milliseconds (0: back to back) while serving, as a stress test of
    /// the kernel's switch under I/O.
    #[arg(long, value_name = "MS", requires = "umem")]
    umem_cycle: Option<u64>,
}

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env)
        .format(|buf, rec| {
            let lvl = match rec.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            writeln!(buf, "vduse-blk: {lvl}{}", rec.args())
        })
        .init();
}

/// Open or create the backing store; returns the file and the capacity in bytes.
fn open_backend(args: &Args) -> io::Result<(File, u64)> {
    let file = match &args.file {
        None => {
            let size = args.size.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "give --file PATH and/or --size BYTES",
                )
            })?;
            let name = device::cstr("vduse-blk")?;
            // SAFETY: valid C string.
            let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fresh fd we own.
            let f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            f.set_len(size)?;
            return Ok((f, size & !(SECTOR_SIZE - 1)));
        }
        Some(p) => p,
    };
    let mut oo = OpenOptions::new();
    oo.read(true).write(!args.read_only);
    if args.size.is_some() && !args.read_only {
        oo.create(true);
    }
    let f = oo
        .open(file)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
    let md = f.metadata()?;
    let mut size = if md.file_type().is_file() {
        md.len()
    } else {
        // Block device: BLKGETSIZE64.
        let mut sz = 0u64;
        const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
        // SAFETY: BLKGETSIZE64 writes a u64.
        if unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64, &mut sz) } < 0 {
            return Err(io::Error::last_os_error());
        }
        sz
    };
    if let Some(want) = args.size {
        if md.file_type().is_file() && want > size && !args.read_only {
            f.set_len(want)?;
            size = want;
        } else {
            size = size.min(want);
        }
    }
    Ok((f, size & !(SECTOR_SIZE - 1)))
}

/// Feature bits offered to the driver.
fn device_features(args: &Args) -> u64 {
    let mut f = bit(VIRTIO_F_VERSION_1)
        | bit(VIRTIO_F_ACCESS_PLATFORM)
        | bit(VIRTIO_RING_F_INDIRECT_DESC)
        | bit(VIRTIO_RING_F_EVENT_IDX)
        | bit(VIRTIO_BLK_F_SEG_MAX)
        | bit(VIRTIO_BLK_F_BLK_SIZE)
        | bit(VIRTIO_BLK_F_FLUSH);
    if args.queues > 1 {
        f |= bit(VIRTIO_BLK_F_MQ);
    }
    if args.read_only {
        f |= bit(VIRTIO_BLK_F_RO);
    } else {
        f |= bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
    }
    // Never VIRTIO_BLK_F_CONFIG_WCE: VDUSE refuses it (read-only config space).
    f
}

fn blk_config(args: &Args, capacity: u64) -> BlkConfig {
    BlkConfig {
        capacity: (capacity >> SECTOR_SHIFT).to_le(),
        seg_max: blk::SEG_MAX.min(u32::from(args.queue_size) - 2).to_le(),
        blk_size: 512u32.to_le(),
        num_queues: args.queues.to_le(),
        max_discard_sectors: blk::MAX_DISCARD_SECTORS.to_le(),
        max_discard_seg: blk::MAX_DWZ_SEG.to_le(),
        discard_sector_alignment: 8u32.to_le(),
        max_write_zeroes_sectors: blk::MAX_WRITE_ZEROES_SECTORS.to_le(),
        max_write_zeroes_seg: blk::MAX_DWZ_SEG.to_le(),
        write_zeroes_may_unmap: 1,
        ..Default::default()
    }
}

/// API version and VDUSE features for a new device (see README.md, "Negotiation").
fn negotiate(ctrl: &Control, args: &Args) -> io::Result<(u64, u64)> {
    let api = match args.api_version {
        ApiArg::V0 => {
            ctrl.set_api_version(VDUSE_API_VERSION)?;
            VDUSE_API_VERSION
        }
        ApiArg::V1 => {
            ctrl.set_api_version(VDUSE_API_VERSION_1).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("the kernel does not offer VDUSE API 1: {e}"),
                )
            })?;
            VDUSE_API_VERSION_1
        }
        ApiArg::Auto => {
            // Linux >= 7.0 answers 1 (and latches it); older kernels answer 0.
            let offered = ctrl.get_api_version()?;
            if offered > VDUSE_API_VERSION_1 {
                ctrl.set_api_version(VDUSE_API_VERSION_1)?;
            }
            offered.min(VDUSE_API_VERSION_1)
        }
    };
    info!("API version {api}");
    let mut feats = 0;
    if args.no_features {
        info!("not negotiating VDUSE features (--no-features)");
    } else {
        match ctrl.get_features() {
            Ok(offered) => {
                let want = offered & ((1 << VDUSE_F_QUEUE_READY) | (1 << VDUSE_F_SUSPEND));
                if want != 0 {
                    ctrl.set_features(want)?;
                }
                feats = want;
                info!("VDUSE features offered {offered:#x}, enabled {want:#x}");
            }
            Err(e) if matches!(errno(&e), libc::EINVAL | libc::ENOTTY) => {
                info!("kernel has no VDUSE features ({e})");
            }
            Err(e) => return Err(e),
        }
    }
    Ok((api, feats))
}

struct Daemon {
    name: String,
    ctrl: Control,
    dev: Option<Arc<Device>>,
    disk: Arc<Disk>,
    log: Option<Arc<InflightLog>>,
    log_path: PathBuf,
    api: u64,
    umem: bool,
    vduse_features: u64,
    queue_size: u16,
    num_queues: u32,
    spaces: Vec<Arc<AddressSpace>>,
    group_asid: Vec<u32>,
    status: u8,
    driver_features: u64,
    vq_ready: Vec<bool>,
    workers: Vec<Option<Worker>>,
    /// next_avail of stopped queues, for GET_VQ_STATE.
    saved_avail: Vec<u16>,
    suspended: bool,
    shutdown: bool,
    told_attached: bool,
    /// `--umem-cycle`: the thread switching the bounce buffer, and its stop flag.
    umem_cycler: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Daemon {
    fn dev(&self) -> &Arc<Device> {
        self.dev.as_ref().expect("device open")
    }

    fn has_vduse_feature(&self, f: u32) -> bool {
        self.vduse_features & (1 << f) != 0
    }

    fn start_queue(&mut self, i: u32, start: Start) {
        if self.workers[i as usize].is_some() {
            return;
        }
        let dev = self.dev().clone();
        let info = match dev.vq_info(i) {
            Ok(info) => info,
            Err(e) => {
                error!("vq {i}: VDUSE_VQ_GET_INFO: {e}");
                return;
            }
        };
        if info.num == 0 || info.num > u32::from(self.queue_size) {
            error!("vq {i}: bad ring size {}", info.num);
            return;
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
        let event_idx = self.driver_features & bit(VIRTIO_RING_F_EVENT_IDX) != 0;
        let core = match VqCore::new(
            i,
            self.queue_size,
            ring,
            event_idx,
            start,
            space,
            self.disk.clone(),
            self.log.clone(),
            &*dev,
        ) {
            Ok(c) => c,
            Err(e) => {
                error!("vq {i}: cannot start: {e}");
                return;
            }
        };
        info!(
            "vq {i}: started ({}, size {}, desc {:#x} avail {:#x} used {:#x}, next_avail {}{})",
            if matches!(start, Start::Reattach) {
                "re-attached"
            } else {
                "fresh"
            },
            ring.num,
            ring.desc,
            ring.avail,
            ring.used,
            core.next_avail(),
            if core.resubmit.is_empty() {
                String::new()
            } else {
                format!(", resubmitting {} in-flight", core.resubmit.len())
            }
        );
        match Worker::spawn(core, dev, matches!(start, Start::Reattach)) {
            Ok(w) => self.workers[i as usize] = Some(w),
            Err(e) => error!("vq {i}: cannot start thread: {e}"),
        }
    }

    fn stop_queue(&mut self, i: u32) {
        if let Some(w) = self.workers[i as usize].take() {
            if let Some(core) = w.stop() {
                self.saved_avail[i as usize] = core.next_avail();
                info!("vq {i}: stopped after {} requests", core.completed);
            }
        }
    }

    fn stop_all(&mut self) {
        for i in 0..self.num_queues {
            self.stop_queue(i);
        }
    }

    /// With API 1: enumerates the IOTLB of address space 0 as a client without the ring
    /// addresses would (`VDUSE_IOTLB_GET_INFO` from 0, then from the last entry's end + 1),
    /// logs the entries, and warns about every ring area of a ready queue that lies in none
    /// of them.
    fn check_iotlb_enumeration(&self) {
        if self.api < VDUSE_API_VERSION_1 {
            return;
        }
        let dev = self.dev();
        let mut entries = Vec::new();
        let mut start = 0u64;
        while let Ok(i) = dev.iova_info(0, start, u64::MAX) {
            entries.push((i.start, i.last));
            match i.last.checked_add(1) {
                Some(next) if entries.len() < 4096 => start = next,
                _ => break,
            }
        }
        let list: Vec<String> = entries
            .iter()
            .map(|(s, l)| format!("[{s:#x}, {l:#x}]"))
            .collect();
        info!(
            "IOTLB of asid 0: {} entries: {}",
            entries.len(),
            list.join(" ")
        );
        let mut rings = 0;
        for q in 0..self.num_queues {
            let Ok(v) = dev.vq_info(q) else { continue };
            if v.ready == 0 {
                continue;
            }
            rings += 1;
            for (what, a) in [
                ("desc", v.desc_addr),
                ("driver", v.driver_addr),
                ("device", v.device_addr),
            ] {
                if !entries.iter().any(|&(s, l)| s <= a && a <= l) {
                    warn!("vq {q}: {what} area {a:#x} is in no IOTLB entry found by enumeration");
                }
            }
        }
        info!("IOTLB enumeration checked against the rings of {rings} ready queue(s)");
    }

    fn start_ready_queues(&mut self, start: Start) {
        for i in 0..self.num_queues {
            let ready = self.vq_ready[i as usize]
                || self.dev().vq_info(i).map(|v| v.ready != 0).unwrap_or(false);
            if ready {
                self.start_queue(i, start);
            }
        }
    }

    fn reset(&mut self) {
        self.stop_all();
        if let Some(l) = &self.log {
            for i in 0..self.num_queues {
                l.reset_vq(i, 0);
            }
        }
        for s in &self.spaces {
            s.clear();
        }
        self.saved_avail.iter_mut().for_each(|a| *a = 0);
        self.vq_ready.iter_mut().for_each(|r| *r = false);
        self.group_asid.iter_mut().for_each(|a| *a = 0);
        self.suspended = false;
        self.driver_features = 0;
    }

    fn handle(&mut self, req: &DevRequest) -> DevResponse {
        use vduse_blk::uapi::payload as p;
        let mut resp = DevResponse::new(req.request_id, VDUSE_REQ_RESULT_OK);
        let name = msg_type_name(req.type_);
        match req.type_ {
            VDUSE_GET_VQ_STATE => {
                let i = req.payload_u32(p::VQ_STATE_INDEX);
                if i >= self.num_queues {
                    info!("msg {name} vq={i} (invalid)");
                    resp.result = VDUSE_REQ_RESULT_FAILED;
                } else {
                    let avail = match &self.workers[i as usize] {
                        Some(w) => w.last_avail.load(Ordering::Relaxed),
                        None => self.saved_avail[i as usize],
                    };
                    info!("msg {name} vq={i} avail_index={avail}");
                    resp.set_vq_state_split(i, avail);
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
                    match self.dev().driver_features() {
                        Ok(f) => self.driver_features = f,
                        Err(e) => warn!("VDUSE_DEV_GET_FEATURES: {e}"),
                    }
                    info!("driver features {:#x}", self.driver_features);
                    // Ring memory may have been reallocated since the last run: map afresh.
                    for s in &self.spaces {
                        s.clear();
                    }
                    self.check_iotlb_enumeration();
                    self.start_ready_queues(Start::Fresh { avail_index: 0 });
                }
                self.status = status;
            }
            VDUSE_UPDATE_IOTLB => {
                let start = req.payload_u64(p::IOVA_START);
                let last = req.payload_u64(p::IOVA_LAST);
                let asid = if self.api >= VDUSE_API_VERSION_1 {
                    req.payload_u32(p::IOVA_V2_ASID)
                } else {
                    0
                };
                info!("msg {name} asid={asid} start={start:#x} last={last:#x}");
                if let Some(space) = self.spaces.get(asid as usize).cloned() {
                    space.remove_range(start, last);
                    match space.map_range(&**self.dev(), start, last) {
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
                if i >= self.num_queues {
                    resp.result = VDUSE_REQ_RESULT_FAILED;
                } else {
                    self.vq_ready[i as usize] = ready;
                    if !ready {
                        self.stop_queue(i);
                    } else if self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0 && !self.suspended {
                        self.start_queue(i, Start::Fresh { avail_index: 0 });
                    }
                }
            }
            VDUSE_SUSPEND => {
                info!("msg {name}");
                // Answer only once no queue thread can touch the rings any more.
                self.stop_all();
                self.suspended = true;
                info!("suspended: all queues quiesced");
            }
            t => {
                info!("msg {name} type={t}");
                resp.result = VDUSE_REQ_RESULT_FAILED;
            }
        }
        resp
    }

    /// Re-attach to an existing device (after a restart, or after a refused destroy).
    fn attach_running(&mut self) {
        match self.dev().driver_features() {
            Ok(f) => self.driver_features = f,
            Err(e) => warn!("VDUSE_DEV_GET_FEATURES: {e}"),
        }
        for i in 0..self.num_queues {
            if let Ok(info) = self.dev().vq_info(i) {
                self.vq_ready[i as usize] = info.ready != 0;
            }
        }
        if self.vq_ready.iter().any(|&r| r) {
            // The kernel accepts kicks only for ready queues of a running device.
            self.status = VIRTIO_CONFIG_S_ACKNOWLEDGE
                | VIRTIO_CONFIG_S_DRIVER
                | VIRTIO_CONFIG_S_FEATURES_OK
                | VIRTIO_CONFIG_S_DRIVER_OK;
            self.start_ready_queues(Start::Reattach);
        }
    }

    /// Try to destroy the device; false if it must keep serving.
    fn try_destroy(&mut self) -> Result<bool, ()> {
        if device::vdpa_attached(&self.name) {
            if !self.told_attached {
                eprintln!(
                    "vduse-blk: device {n} is still attached to the vDPA bus: run `vdpa dev del {n}` first \
                     (still serving; will destroy the device once it is detached)",
                    n = self.name
                );
                self.told_attached = true;
            }
            return Ok(false);
        }
        if let Some((stop, t)) = self.umem_cycler.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
        self.stop_all();
        for s in &self.spaces {
            s.clear();
        }
        self.dev = None;
        match self.ctrl.destroy_dev(&self.name) {
            Ok(()) => {
                info!("device {} destroyed", self.name);
                let _ = std::fs::remove_file(&self.log_path);
                Ok(true)
            }
            Err(e) if errno(&e) == libc::EBUSY => {
                if !self.told_attached {
                    eprintln!(
                        "vduse-blk: device {n} is still attached to the vDPA bus: run `vdpa dev del {n}` \
                         first (VDUSE_DESTROY_DEV: {e}; still serving)",
                        n = self.name
                    );
                    self.told_attached = true;
                } else {
                    debug!("VDUSE_DESTROY_DEV: {e}; retrying");
                }
                match Device::open(&self.name, self.api).map(|d| d.with_umem(self.umem)) {
                    Ok(d) => {
                        self.dev = Some(Arc::new(d));
                        self.attach_running();
                        Ok(false)
                    }
                    Err(e) => {
                        error!("cannot re-open /dev/vduse/{}: {e}", self.name);
                        Err(())
                    }
                }
            }
            Err(e) => {
                error!("VDUSE_DESTROY_DEV {}: {e}", self.name);
                Err(())
            }
        }
    }

    fn run(&mut self, sigfd: &OwnedFd) -> Result<(), ()> {
        loop {
            if self.shutdown {
                match self.try_destroy() {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(()) => return Err(()),
                }
            }
            let devfd = self.dev().raw_fd();
            let mut fds = [
                libc::pollfd {
                    fd: devfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sigfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let timeout = if self.shutdown { 500 } else { -1 };
            // SAFETY: valid pollfd array.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                error!("poll: {e}");
                return Err(());
            }
            if fds[1].revents & libc::POLLIN != 0 {
                let mut si = [0u8; 128];
                // SAFETY: reading a signalfd_siginfo into a large enough buffer.
                unsafe { libc::read(sigfd.as_raw_fd(), si.as_mut_ptr().cast(), si.len()) };
                let signo = u32::from_ne_bytes(si[0..4].try_into().unwrap());
                info!("signal {signo}: shutting down");
                self.shutdown = true;
                self.told_attached = false;
            }
            if fds[0].revents & libc::POLLERR != 0 {
                error!(
                    "device {} is broken (a control message timed out); shutting down",
                    self.name
                );
                self.shutdown = true;
                // Avoid spinning on a permanently broken fd.
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            if fds[0].revents & libc::POLLIN != 0 {
                loop {
                    let req = match self.dev().read_request() {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(e) => {
                            error!("reading a message: {e}");
                            break;
                        }
                    };
                    let resp = self.handle(&req);
                    if let Err(e) = self.dev().write_response(&resp) {
                        error!("answering message {}: {e}", req.request_id);
                    }
                }
            }
        }
    }
}

fn block_signals() -> io::Result<OwnedFd> {
    // SAFETY: plain signal-mask manipulation before any thread exists.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
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

fn run(args: Args) -> Result<(), String> {
    if !args.queue_size.is_power_of_two() || args.queue_size < 4 || args.queue_size > 32768 {
        return Err(format!(
            "--queue-size {} must be a power of two in 4..=32768",
            args.queue_size
        ));
    }
    name_bytes(&args.name).map_err(|_| format!("invalid device name '{}'", args.name))?;
    let (file, capacity) = open_backend(&args).map_err(|e| format!("backing store: {e}"))?;
    if capacity == 0 {
        return Err("the disk has no capacity".into());
    }
    let serial = format!("vduse-{}", args.name);
    let disk = Arc::new(Disk::new(file, capacity, args.read_only, &serial));
    let log_path = args.reconnect_log.clone().unwrap_or_else(|| {
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("vduse-blk-{}.log", args.name))
    });

    // Signals are handled through a signalfd in the control thread; block them before any
    // thread is spawned so that every thread inherits the mask.
    let sigfd = block_signals().map_err(|e| format!("signalfd: {e}"))?;

    let ctrl = Control::open()
        .map_err(|e| format!("{}: {e} (is the vduse module loaded?)", Control::PATH))?;
    let (mut api, mut vfeat) = negotiate(&ctrl, &args).map_err(|e| format!("negotiation: {e}"))?;

    let features = device_features(&args);
    let config = blk_config(&args, capacity);
    let mut cfg = DevConfig {
        name: name_bytes(&args.name).unwrap(),
        vendor_id: 0,
        device_id: VIRTIO_ID_BLOCK,
        features,
        vq_num: u32::from(args.queues),
        vq_align: 4096,
        ngroups: 0,
        nas: 0,
        reserved: [0; 11],
        config_size: std::mem::size_of::<BlkConfig>() as u32,
    };
    if api >= VDUSE_API_VERSION_1 {
        cfg.ngroups = 1;
        cfg.nas = 1;
    }
    let hdr = LogHeader {
        num_queues: u32::from(args.queues),
        queue_size: u32::from(args.queue_size),
        api_version: api as u32,
        vduse_features: vfeat,
        device_features: features,
        capacity,
    };

    let (log, reattach) = match ctrl.create_dev(&cfg, config.as_bytes()) {
        Ok(()) => {
            info!(
                "created /dev/vduse/{} ({} bytes, {} queue(s) of {}, features {features:#x})",
                args.name, capacity, args.queues, args.queue_size
            );
            match InflightLog::create(&log_path, hdr) {
                Ok(l) => {
                    info!("reconnect log {}", log_path.display());
                    (Some(l), false)
                }
                Err(e) => {
                    warn!(
                        "reconnect log {}: {e}; a restarted daemon will not be able to re-attach",
                        log_path.display()
                    );
                    (None, false)
                }
            }
        }
        Err(e) if errno(&e) == libc::EEXIST => {
            if !Path::new(&log_path).exists() {
                return Err(format!(
                    "device {} already exists and there is no reconnect log at {}: \
                     destroy it first (`vdpa dev del {0}`, then stop its daemon)",
                    args.name,
                    log_path.display()
                ));
            }
            let l = InflightLog::open(&log_path).map_err(|e| format!("reconnect log: {e}"))?;
            let h = l.header();
            if h.num_queues != hdr.num_queues
                || h.queue_size != hdr.queue_size
                || h.capacity != hdr.capacity
            {
                return Err(format!(
                    "device {} exists but its reconnect log {} describes another configuration \
                     ({} queue(s) of {}, {} bytes)",
                    args.name,
                    log_path.display(),
                    h.num_queues,
                    h.queue_size,
                    h.capacity
                ));
            }
            api = u64::from(h.api_version);
            vfeat = h.vduse_features;
            info!(
                "device {} exists: re-attaching with {} (API {api}, VDUSE features {vfeat:#x})",
                args.name,
                log_path.display()
            );
            (Some(l), true)
        }
        Err(e) => return Err(format!("VDUSE_CREATE_DEV {}: {e}", args.name)),
    };

    // A killed predecessor may still be closing the device (single opener): retry EBUSY.
    let open = || Device::open(&args.name, api).map(|d| d.with_umem(args.umem));
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
            if !reattach {
                let _ = ctrl.destroy_dev(&args.name);
            }
            return Err(format!("{}: {e}", Device::path(&args.name)));
        }
    };
    if !reattach {
        for i in 0..u32::from(args.queues) {
            if let Err(e) = dev.vq_setup(i, args.queue_size, 0) {
                drop(dev);
                let _ = ctrl.destroy_dev(&args.name);
                return Err(format!("VDUSE_VQ_SETUP {i}: {e}"));
            }
        }
    }

    let nq = u32::from(args.queues);
    let mut d = Daemon {
        name: args.name.clone(),
        ctrl,
        dev: Some(dev),
        disk,
        log,
        log_path,
        api,
        umem: args.umem,
        vduse_features: vfeat,
        queue_size: args.queue_size,
        num_queues: nq,
        spaces: vec![Arc::new(AddressSpace::new(0))],
        group_asid: vec![0],
        status: 0,
        driver_features: 0,
        vq_ready: vec![false; nq as usize],
        workers: (0..nq).map(|_| None).collect(),
        saved_avail: vec![0; nq as usize],
        suspended: false,
        shutdown: false,
        told_attached: false,
        umem_cycler: None,
    };
    if let Some(ms) = args.umem_cycle {
        d.umem_cycler = spawn_umem_cycler(d.dev().clone(), ms);
    }
    if d.has_vduse_feature(VDUSE_F_QUEUE_READY) {
        debug!("SET_VQ_READY messages enabled");
    }
    if reattach {
        d.attach_running();
    }
    info!("serving /dev/vduse/{}", d.name);
    d.run(&sigfd).map_err(|()| "giving up".to_string())
}

/// `--umem-cycle MS`: every `period_ms`, once our bounce buffer is registered, switch it to the
/// kernel's pages and back ([`Device::cycle_umem`]) until stopped; the number of switches is
/// logged every 100 and at the end.
fn spawn_umem_cycler(
    dev: Arc<Device>,
    period_ms: u64,
) -> Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("umem-cycle".into())
        .spawn(move || {
            let mut cycles = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                match dev.cycle_umem() {
                    Ok(true) => {
                        cycles += 1;
                        if cycles.is_multiple_of(100) {
                            info!("bounce buffer re-registered {cycles} times");
                        }
                        std::thread::sleep(std::time::Duration::from_millis(period_ms));
                    }
                    // Not registered yet (no DMA mapping so far).
                    Ok(false) => std::thread::sleep(std::time::Duration::from_millis(10)),
                    Err(e) => {
                        error!("switching the bounce buffer (after {cycles} switches): {e}");
                        break;
                    }
                }
            }
            info!("bounce buffer re-registered {cycles} times in all");
        });
    match spawned {
        Ok(t) => Some((stop, t)),
        Err(e) => {
            error!("cannot start the --umem-cycle thread: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
