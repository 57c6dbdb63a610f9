// SPDX-License-Identifier: GPL-2.0
//! vduse-blk: a virtio-blk device served from userspace through VDUSE.
//!
//! See README.md for usage and the negotiation logic.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use log::{error, info, warn};

use vduse::device::{self, Device};
use vduse::server::{default_log_path, ApiChoice, Backend, DeviceSpec, Event, EventCtx, Server};
use vduse_blk::blk::{self, Disk};
use vduse_blk::queue;
use vduse_blk::size::parse_size;
use vduse_blk::uapi::*;
use vduse_blk::virtio::*;

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
    /// A null backend of --size bytes: reads and writes move no data, as QEMU's null-co and
    /// ublk's null target (for benchmarks).
    #[arg(long, requires = "size", conflicts_with = "file")]
    null: bool,
    /// Number of virtqueues (each served by its own thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    queues: u16,
    /// Maximum size of each virtqueue (a power of two).
    #[arg(long, default_value_t = 256)]
    queue_size: u16,
    /// Expose a read-only disk (VIRTIO_BLK_F_RO).
    #[arg(long)]
    read_only: bool,
    /// VDUSE API version: auto (the newest the kernel offers, at most 1), 0 or 1.
    #[arg(long, default_value = "auto")]
    api_version: ApiChoice,
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

/// The virtio-blk backend: each queue served on its own thread, request by request.
struct Blk {
    disk: Arc<Disk>,
    num_queues: u16,
    /// `--umem-cycle`: the thread switching the bounce buffer, and its stop flag.
    umem_cycler: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl Backend for Blk {
    fn handle_event(&self, ctx: &mut EventCtx<'_>, event: Event) -> io::Result<()> {
        if let Event::Kick(q) = event {
            if let Some(vring) = ctx.vring(q) {
                queue::serve(&self.disk, vring)?;
            }
        }
        Ok(())
    }

    fn driver_ok(&self, dev: &Device, _driver_features: u64) {
        check_iotlb_enumeration(dev, self.num_queues);
    }

    fn stopping(&self) {
        let cycler = self
            .umem_cycler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((stop, t)) = cycler {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
}

/// With API 1: enumerates the IOTLB of address space 0 as a client without the ring
/// addresses would (`VDUSE_IOTLB_GET_INFO` from 0, then from the last entry's end + 1), logs
/// the entries, and warns about every ring area of a ready queue that lies in none of them.
fn check_iotlb_enumeration(dev: &Device, num_queues: u16) {
    if dev.api_version() < VDUSE_API_VERSION_1 {
        return;
    }
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
    for q in 0..u32::from(num_queues) {
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

fn run(args: Args) -> Result<(), String> {
    if !args.queue_size.is_power_of_two() || args.queue_size < 4 || args.queue_size > 32768 {
        return Err(format!(
            "--queue-size {} must be a power of two in 4..=32768",
            args.queue_size
        ));
    }
    device::name_bytes(&args.name).map_err(|_| format!("invalid device name '{}'", args.name))?;
    let (file, capacity) = open_backend(&args).map_err(|e| format!("backing store: {e}"))?;
    if capacity == 0 {
        return Err("the disk has no capacity".into());
    }
    let serial = format!("vduse-{}", args.name);
    let disk = Disk::new(file, capacity, args.read_only, &serial);
    let disk = Arc::new(if args.null { disk.null_backend() } else { disk });
    let config = blk_config(&args, capacity);
    let mut spec = DeviceSpec::new(
        &args.name,
        VIRTIO_ID_BLOCK,
        device_features(&args),
        config.as_bytes().to_vec(),
        args.queues,
    );
    spec.queue_size = args.queue_size;
    spec.api = args.api_version;
    spec.vduse_features = !args.no_features;
    spec.umem = args.umem;
    spec.reconnect_log = Some(
        args.reconnect_log
            .clone()
            .unwrap_or_else(|| default_log_path("vduse-blk", &args.name)),
    );
    // The disk's capacity must match on re-attachment.
    spec.identity = capacity;
    let backend = Arc::new(Blk {
        disk,
        num_queues: args.queues,
        umem_cycler: Mutex::new(None),
    });
    let mut server = Server::create(spec, backend.clone()).map_err(|e| e.to_string())?;
    if let Some(ms) = args.umem_cycle {
        *backend
            .umem_cycler
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = spawn_umem_cycler(server.device().clone(), ms);
    }
    if server.negotiated().vduse_features & (1 << VDUSE_F_QUEUE_READY) != 0 {
        info!("SET_VQ_READY messages enabled");
    }
    info!("serving /dev/vduse/{}", args.name);
    server.run().map_err(|e| e.to_string())
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
