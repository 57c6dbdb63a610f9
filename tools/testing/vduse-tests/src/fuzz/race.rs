// SPDX-License-Identifier: GPL-2.0

//! The concurrent fuzzer: several threads create, destroy, open, close and use the same few
//! devices at once, write their sysfs attributes, and (with `vdpa`) put them on and take them
//! off the vDPA bus, for a bounded time. It is the shape of CVE-2026-74313 (open racing
//! destroy: C dropped `vduse_lock` before taking the device's lock) and of every
//! lifetime bug of its kind. Results are not compared between drivers (the interleaving is the
//! scheduler's); each must be one the operation may give at all, and the kernel's own checkers
//! (KASAN, lockdep, the hung-task detector, tools/lib/dmesg-check) judge the rest.

use crate::dev::{destroy_untracked, vq_setup, DevConfig};
use crate::fuzz::gen::Gen;
use crate::sys::{self, errno_name, Fd, Ret, CONTROL};
use crate::sys::{VDUSE_CREATE_DEV, VDUSE_DEV_SET_CONFIG, VDUSE_VQ_GET_INFO};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The names the threads fight over.
const NAMES: [&str; 2] = ["fzr0", "fzr1"];

/// What the threads saw: every (operation, result) with its count, and what they must not have
/// seen.
#[derive(Default)]
struct Seen {
    counts: BTreeMap<String, u64>,
    bad: Vec<String>,
}

type Bad = Arc<Mutex<Seen>>;

/// How many times each name's device was destroyed (by any thread): a device is added to the
/// bus once per life, since a second add leaks C's IOVA domains and their files keep vduse.ko
/// from unloading (D4).
type Lives = Arc<[AtomicU64; NAMES.len()]>;

fn allowed(bad: &Bad, op: &str, r: Ret, ok: &[i32]) {
    let res = match r {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("-{}", errno_name(e)),
    };
    if let Ok(mut s) = bad.lock() {
        *s.counts.entry(format!("{op} {res}")).or_default() += 1;
        if matches!(r, Err(e) if !ok.contains(&e)) {
            s.bad.push(format!("{op}: {res}"));
        }
    }
}

/// What one thread shares with the others.
struct Shared {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    bad: Bad,
    lives: Lives,
}

fn thread(seed: u64, id: u64, vdpa: bool, sh: Shared) {
    let Shared {
        stop,
        ops,
        bad,
        lives,
    } = sh;
    let mut g = Gen::new(seed.wrapping_mul(1000).wrapping_add(id));
    // The life (`lives`) in which this thread put each device on the bus, if it did.
    let mut added_in: [Option<u64>; NAMES.len()] = [None; NAMES.len()];
    let ctl = match sys::open(CONTROL, libc::O_RDWR) {
        Ok(fd) => Fd(fd as i32),
        Err(e) => return allowed(&bad, "open control", Err(e), &[]),
    };
    let mut held: Vec<Fd> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let which = g.index(NAMES.len());
        let name = NAMES[which];
        match g.weighted(&[20, 20, 30, 15, 10, if vdpa && id == 0 { 3 } else { 0 }]) {
            0 => {
                let mut b = DevConfig::blk(name).encode();
                let r = sys::ioctl(ctl.0, VDUSE_CREATE_DEV, b.as_mut_ptr() as usize);
                allowed(&bad, "CREATE_DEV", r, &[libc::EEXIST]);
            }
            1 => {
                let r = destroy_untracked(ctl.0, name.as_bytes());
                if r.is_ok() {
                    lives[which].fetch_add(1, Ordering::SeqCst);
                }
                // EINVAL: no such device (C's answer); EBUSY: open or on the bus.
                allowed(&bad, "DESTROY_DEV", r, &[libc::EINVAL, libc::EBUSY]);
            }
            2 => {
                // Open, use, close: the device may vanish around the open (ENOENT) or be
                // open elsewhere (EBUSY), or (vduse_rs) be orphaned by a del that is running
                // while its node is closed (EPERM until the device is off the bus, D8), never
                // anything worse.
                let r = sys::open(
                    &format!("/dev/vduse/{name}"),
                    libc::O_RDWR | libc::O_NONBLOCK,
                );
                let ok = [libc::ENOENT, libc::EBUSY, libc::ENODEV, libc::EPERM];
                allowed(&bad, "open", r, &ok);
                if let Ok(fd) = r {
                    let fd = Fd(fd as i32);
                    let mut info = [0u8; 48];
                    let r = sys::ioctl(fd.0, VDUSE_VQ_GET_INFO, info.as_mut_ptr() as usize);
                    allowed(&bad, "VQ_GET_INFO", r, &[]);
                    // Both queues set up, so that `vdpa dev add` can succeed.
                    for i in 0..2u32 {
                        allowed(&bad, "VQ_SETUP", vq_setup(fd.0, i, 256), &[]);
                    }
                    let mut cfg = [0u8; 12];
                    cfg[4..8].copy_from_slice(&4u32.to_ne_bytes());
                    let r = sys::ioctl(fd.0, VDUSE_DEV_SET_CONFIG, cfg.as_mut_ptr() as usize);
                    allowed(&bad, "DEV_SET_CONFIG", r, &[]);
                    if g.chance(300) && held.len() < 2 {
                        held.push(fd);
                    }
                }
            }
            3 => {
                held.clear();
            }
            4 => {
                let attr = g.pick(&["msg_timeout", "bounce_size", "vq0/irq_cb_affinity"]);
                let path = format!("/sys/class/vduse/{name}/{attr}");
                let r = if g.chance(500) {
                    std::fs::read(&path).map(|_| 0)
                } else {
                    let v = match attr {
                        "msg_timeout" => "5",
                        "bounce_size" => "1048576",
                        _ => "1",
                    };
                    std::fs::write(&path, v).map(|()| 0)
                };
                // ENOENT: the device is gone (EACCES: gone, and the write's O_CREAT met the
                // sysfs directory); EPERM: bounce_size once on the bus.
                let r = r.map_err(|e| e.raw_os_error().unwrap_or(0));
                let ok = [libc::ENOENT, libc::ENODEV, libc::EACCES, libc::EPERM];
                allowed(&bad, attr, r, &ok);
            }
            _ => {
                let life = lives[which].load(Ordering::SeqCst);
                let add = g.chance(500) && added_in[which] != Some(life);
                let args: Vec<&str> = if add {
                    vec!["dev", "add", "name", name, "mgmtdev", "vduse"]
                } else {
                    vec!["dev", "del", name]
                };
                let r = std::process::Command::new("vdpa").args(&args).output();
                let code = r.map(|o| o.status.code().unwrap_or(-1)).unwrap_or(-1);
                if add && code == 0 {
                    // On the bus, the device cannot be destroyed: this is the life it was
                    // added in (a destroy before the add counted already).
                    added_in[which] = Some(lives[which].load(Ordering::SeqCst));
                }
                if let Ok(mut s) = bad.lock() {
                    *s.counts
                        .entry(format!("vdpa {} exit {code}", args[1]))
                        .or_default() += 1;
                }
            }
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `threads` threads for `seconds`; then takes the devices off the bus and destroys them.
/// True if every result was one its operation may give and nothing is left behind.
pub fn run(seed: u64, threads: u64, seconds: u64, vdpa: bool) -> bool {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let bad: Bad = Arc::new(Mutex::new(Seen::default()));
    let t0 = Instant::now();
    let lives: Lives = Arc::new([const { AtomicU64::new(0) }; NAMES.len()]);
    let handles: Vec<_> = (0..threads)
        .map(|id| {
            let sh = Shared {
                stop: stop.clone(),
                ops: ops.clone(),
                bad: bad.clone(),
                lives: lives.clone(),
            };
            std::thread::spawn(move || thread(seed, id, vdpa, sh))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let joined = handles.into_iter().all(|h| h.join().is_ok());
    let secs = t0.elapsed().as_secs_f64();
    for name in NAMES {
        let _ = std::process::Command::new("vdpa")
            .args(["dev", "del", name])
            .output();
        if let Ok(fd) = sys::open(CONTROL, libc::O_RDWR) {
            let fd = Fd(fd as i32);
            let _ = destroy_untracked(fd.0, name.as_bytes());
        }
    }
    let left = NAMES
        .iter()
        .filter(|n| std::path::Path::new("/sys/class/vduse").join(n).exists())
        .count();
    let (counts, bad) = bad
        .lock()
        .map(|s| (s.counts.clone(), s.bad.clone()))
        .unwrap_or_default();
    let n = ops.load(Ordering::Relaxed);
    println!(
        "# fuzz race: seed {seed}, {threads} threads, {n} operations in {secs:.1}s ({:.0}/s), {} unexpected results, {left} devices left",
        n as f64 / secs.max(0.001),
        bad.len()
    );
    let c: Vec<String> = counts.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    println!("# fuzz race: results: {}", c.join(", "));
    for b in bad.iter().take(20) {
        println!("# unexpected: {b}");
    }
    joined && bad.is_empty() && left == 0
}
