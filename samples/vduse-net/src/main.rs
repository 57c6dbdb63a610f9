// SPDX-License-Identifier: GPL-2.0
//! vduse-net: a virtio-net device served from userspace through VDUSE, with a TAP device as
//! the other end of the link (or a loopback).

mod net;
mod tap;

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use clap::Parser;
use log::{error, info, warn};
use vduse::server::{default_log_path, ApiChoice, DeviceSpec, Server};
use vduse::virtio::VIRTIO_ID_NET;

use net::{Link, Net};
use tap::Tap;

/// virtio-net device in userspace over VDUSE, linked to a TAP device.
#[derive(Parser, Debug)]
#[command(name = "vduse-net", version)]
struct Args {
    /// VDUSE (and vDPA) device name.
    #[arg(long, default_value = "vduse-net0")]
    name: String,
    /// The TAP device at the other end (created in the daemon's network namespace, or
    /// attached to if it exists).
    #[arg(long, default_value = "vdtap0", conflicts_with = "loopback")]
    tap: String,
    /// No TAP: every transmitted frame comes back on the receive queue (for benchmarks).
    #[arg(long)]
    loopback: bool,
    /// MAC address of the device [default: 52:54:00 and three bytes from the name].
    #[arg(long, value_parser = parse_mac)]
    mac: Option<[u8; 6]>,
    /// MTU offered to the driver (VIRTIO_NET_F_MTU); the TAP gets the same.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(68..=9000))]
    mtu: u16,
    /// Maximum size of each virtqueue (a power of two).
    #[arg(long, default_value_t = 256)]
    queue_size: u16,
    /// VDUSE API version: auto (the newest the kernel offers, at most 1), 0 or 1.
    #[arg(long, default_value = "auto")]
    api_version: ApiChoice,
    /// Do not negotiate VDUSE features (VDUSE_GET/SET_FEATURES).
    #[arg(long)]
    no_features: bool,
    /// Reconnect log [default: /dev/shm/vduse-net-NAME.log].
    #[arg(long)]
    reconnect_log: Option<PathBuf>,
    /// Serve the bounce buffer from our own memory (VDUSE_IOTLB_REG_UMEM).
    #[arg(long)]
    umem: bool,
    /// Start with the link down (VIRTIO_NET_S_LINK_UP clear); SIGUSR2 brings it up.
    #[arg(long)]
    link_down: bool,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err("six hex bytes separated by ':'".into());
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|e| format!("{p}: {e}"))?;
    }
    if mac[0] & 1 != 0 {
        return Err("a multicast address cannot be a device's".into());
    }
    Ok(mac)
}

/// 52:54:00 (the locally administered range QEMU uses) and three bytes of an FNV-1a hash of
/// `name`: stable across restarts.
fn default_mac(name: &str) -> [u8; 6] {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let b = h.to_le_bytes();
    [0x52, 0x54, 0x00, b[0], b[1], b[2]]
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
            writeln!(buf, "vduse-net: {lvl}{}", rec.args())
        })
        .init();
}

/// Sets the MTU of interface `name` (`SIOCSIFMTU`).
fn set_mtu(name: &str, mtu: u16) -> std::io::Result<()> {
    #[repr(C)]
    struct IfReqMtu {
        name: [u8; libc::IFNAMSIZ],
        mtu: libc::c_int,
        _pad: [u8; 20],
    }
    let mut req = IfReqMtu {
        name: [0; libc::IFNAMSIZ],
        mtu: libc::c_int::from(mtu),
        _pad: [0; 20],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: a datagram socket for the ioctl, closed below; SIOCSIFMTU reads a `struct
    // ifreq`, which `req` is laid out as.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let r = libc::ioctl(s, libc::SIOCSIFMTU, &mut req);
        let e = std::io::Error::last_os_error();
        libc::close(s);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

fn run(args: Args) -> Result<(), String> {
    if !args.queue_size.is_power_of_two() || !(4..=32768).contains(&args.queue_size) {
        return Err(format!(
            "--queue-size {} must be a power of two in 4..=32768",
            args.queue_size
        ));
    }
    let mac = args.mac.unwrap_or_else(|| default_mac(&args.name));
    let link = if args.loopback {
        Link::Loopback(Mutex::new(VecDeque::new()))
    } else {
        let tap = Tap::open(&args.tap).map_err(|e| format!("TAP {}: {e}", args.tap))?;
        set_mtu(tap.name(), args.mtu).map_err(|e| format!("MTU of {}: {e}", tap.name()))?;
        // It outlives a crash, so that a restarted daemon finds it as it was; a clean
        // shutdown lets it go.
        tap.set_persist(true)
            .map_err(|e| format!("TUNSETPERSIST {}: {e}", tap.name()))?;
        info!("TAP {} (MTU {})", tap.name(), args.mtu);
        Link::Tap(tap)
    };
    let backend = Arc::new(Net::new(link, mac, args.mtu));
    if args.link_down {
        backend.set_link_state(false);
    }
    let mut spec = DeviceSpec::new(
        &args.name,
        VIRTIO_ID_NET,
        Net::features(),
        backend.config().to_bytes(),
        2,
    );
    spec.queue_size = args.queue_size;
    spec.api = args.api_version;
    spec.vduse_features = !args.no_features;
    spec.umem = args.umem;
    spec.reconnect_log = Some(
        args.reconnect_log
            .clone()
            .unwrap_or_else(|| default_log_path("vduse-net", &args.name)),
    );
    spec.identity = u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);
    let mut server = Server::create(spec, backend.clone()).map_err(|e| e.to_string())?;
    info!(
        "serving /dev/vduse/{} (MAC {}, MTU {}{})",
        args.name,
        mac.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        args.mtu,
        if server.reattached() {
            ", re-attached"
        } else {
            ""
        }
    );
    let r = server.run();
    let s = &backend.stats;
    info!(
        "tx {} frames {} bytes, rx {} frames {} bytes, rx dropped {}",
        s.tx_frames.load(Ordering::Relaxed),
        s.tx_bytes.load(Ordering::Relaxed),
        s.rx_frames.load(Ordering::Relaxed),
        s.rx_bytes.load(Ordering::Relaxed),
        s.rx_dropped.load(Ordering::Relaxed)
    );
    if let Err(e) = &r {
        error!("{e}");
    } else if let Link::Tap(t) = backend.link() {
        if let Err(e) = t.set_persist(false) {
            warn!("TAP {}: clearing persistence: {e}", t.name());
        }
    }
    r.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
