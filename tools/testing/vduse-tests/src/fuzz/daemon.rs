// SPDX-License-Identifier: GPL-2.0

//! The misbehaving daemon (`vduse-tests fuzz-daemon`): a device on the vDPA bus under
//! vhost-vdpa, whose consumer (this process) sends every kind of request while the daemon (a
//! child process) answers them badly, seeded: right, failed, with another request's id, twice,
//! after `msg_timeout`, with reserved words set, cut short, not at all; it reads with short
//! buffers, registers and deregisters UMEM, closes and reopens its node, and is SIGKILLed at
//! random points and restarted (the reconnect path). Nothing is compared: every consumer call
//! must return (within its bound, `msg_timeout` is 1 s) with a result it may give at all, the
//! round's `vdpa dev del` and `DESTROY_DEV` must succeed, and the kernel's checkers judge the
//! rest.
//!
//! A request left unanswered breaks the device (it timed out), after which vhost-vdpa cannot
//! even open it (its reset fails with `EIO`): after three such opens in a row the round ends
//! and the next one starts on a fresh device, so that the operation budget (`rounds` x `ops`)
//! is spent on devices that still answer.

use crate::dev::{destroy_untracked, vq_setup, DevConfig, F_ACCESS_PLATFORM, F_VERSION_1};
use crate::fuzz::gen::Gen;
use crate::sys::{self, errno_name, Fd, Ret, CONTROL};
use crate::sys::{
    VDUSE_CREATE_DEV, VDUSE_IOTLB_DEREG_UMEM, VDUSE_IOTLB_REG_UMEM, VDUSE_SET_API_VERSION,
    VDUSE_SET_FEATURES, VHOST_GET_VRING_BASE, VHOST_SET_BACKEND_FEATURES, VHOST_SET_OWNER,
    VHOST_VDPA_GET_CONFIG, VHOST_VDPA_SET_VRING_ENABLE, VHOST_VDPA_SUSPEND,
};
use crate::vhost::{iotlb_update, set_status, use_vhost_vdpa, vhost_node, vhost_u64, vring_state};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const NAME: &str = "fzd0";
const UMEM: usize = 1 << 20;

/// The daemon: runs in the child until killed.
fn daemon(seed: u64) -> ! {
    let mut g = Gen::new(seed);
    let path = format!("/dev/vduse/{NAME}");
    let open = || sys::open(&path, libc::O_RDWR | libc::O_NONBLOCK).map(|f| f as i32);
    let mut fd = open().unwrap_or(-1);
    // The UMEM buffer, kept until the process dies (an address that is no mapping if it
    // cannot be made: MAP_FAILED, as before).
    let umem_map = sys::AnonMap::new(UMEM);
    let umem = umem_map
        .as_ref()
        .map_or(libc::MAP_FAILED as u64, sys::AnonMap::addr);
    let mut late: Vec<(Instant, [u8; 152])> = Vec::new();
    // A late answer breaks the device (its request timed out), which ends the round: only one
    // daemon in four answers late at all, so that most rounds test the other misbehaviours for
    // their whole length.
    let answers_late = g.chance(250);
    loop {
        if fd < 0 {
            std::thread::sleep(Duration::from_millis(50));
            fd = open().unwrap_or(-1);
            continue;
        }
        // Answers held back, now due (after msg_timeout: the driver has given up on them).
        let now = Instant::now();
        late.retain(|(due, resp)| {
            if *due <= now {
                let _ = sys::write(fd, resp);
                false
            } else {
                true
            }
        });
        match g.below(40) {
            0 => {
                let _ = sys::close(fd);
                fd = open().unwrap_or(-1);
                continue;
            }
            1 | 2 => {
                let mut u = [0u8; 48];
                u[..8].copy_from_slice(&umem.to_ne_bytes());
                u[16..24].copy_from_slice(&(UMEM as u64).to_ne_bytes());
                let cmd = if g.chance(500) {
                    VDUSE_IOTLB_REG_UMEM
                } else {
                    VDUSE_IOTLB_DEREG_UMEM
                };
                let _ = sys::ioctl(fd, cmd, u.as_mut_ptr() as usize);
            }
            _ => {}
        }
        if sys::poll_fd(fd, libc::POLLIN, 20).revents & libc::POLLIN == 0 {
            continue;
        }
        let size = if g.chance(900) {
            152
        } else {
            g.pick(&[0usize, 1, 24, 151, 4096])
        };
        let mut req = vec![0u8; size.max(152)];
        if sys::read(fd, &mut req[..size]) != Ok(152) {
            continue;
        }
        let mut resp = [0u8; 152];
        resp[..4].copy_from_slice(&req[4..8]);
        if req[..4] == [0, 0, 0, 0] {
            resp[24..28].copy_from_slice(&req[24..28]);
            resp[28..30].copy_from_slice(&g.mutate16(0).to_ne_bytes());
        }
        match g.below(20) {
            0..=9 => {
                let _ = sys::write(fd, &resp);
            }
            10 | 11 => {
                resp[4..8].copy_from_slice(&1u32.to_ne_bytes()); // FAILED
                let _ = sys::write(fd, &resp);
            }
            12 => {
                resp[4..8].copy_from_slice(&g.mutate32(2).to_ne_bytes()); // a result that is neither
                let _ = sys::write(fd, &resp);
            }
            13 => {
                let id = u32::from_ne_bytes([resp[0], resp[1], resp[2], resp[3]]);
                resp[..4].copy_from_slice(&g.mutate32(id).to_ne_bytes());
                let _ = sys::write(fd, &resp);
            }
            14 => {
                let _ = sys::write(fd, &resp);
                let _ = sys::write(fd, &resp);
            }
            15 if answers_late => late.push((Instant::now() + Duration::from_millis(1200), resp)),
            15 => {
                let _ = sys::write(fd, &resp);
            }
            16 => {
                resp[8..24].copy_from_slice(&g.bytes(16));
                let _ = sys::write(fd, &resp);
            }
            17 => {
                let n = g.index(152);
                let _ = sys::write(fd, &resp[..n]);
            }
            _ => {} // never answered
        }
    }
}

/// Forks a daemon child with `seed`.
fn spawn(seed: u64) -> i32 {
    // SAFETY: This process is single-threaded here; the child runs the daemon loop and never
    // returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Not the consumer's descriptors: an inherited vhost-vdpa fd would keep the vhost node
        // open (EBUSY for the consumer's next open) for as long as this daemon lives.
        for fd in 3..1024 {
            // SAFETY: Closing descriptors of this (single-threaded) child, which uses none yet.
            unsafe { libc::close(fd) };
        }
        daemon(seed);
    }
    pid
}

fn kill(pid: i32) {
    if pid > 0 {
        // SAFETY: Our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

fn vdpa(args: &[&str]) -> i32 {
    std::process::Command::new("vdpa")
        .args(args)
        .output()
        .ok()
        .and_then(|o| o.status.code())
        .unwrap_or(-1)
}

/// What a consumer call may give when the daemon misbehaves: success, or the errors vhost-vdpa
/// and VDUSE give for a failed or unanswered request, a broken device or a bad state.
const CONSUMER_OK: &[i32] = &[
    libc::EIO,
    libc::EINVAL,
    libc::EPERM,
    libc::EFAULT,
    libc::EBUSY,
    libc::ENOENT,
    libc::EOPNOTSUPP,
    libc::ENOTTY,
    libc::ETIMEDOUT,
    libc::ENODEV,
    libc::ENOBUFS,
];

/// Runs `rounds` x `ops` consumer operations, in rounds of at most `ops` on a device each (a
/// round ends early when the device is broken); true if every call returned in time with an
/// allowed result and every round ended clean.
pub fn run(seed: u64, rounds: u64, ops: u64) -> bool {
    use_vhost_vdpa();
    let mut g = Gen::new(seed);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad: Vec<String> = Vec::new();
    let t0 = Instant::now();
    let mut total = 0u64;
    let budget = rounds.saturating_mul(ops);
    let (mut round, mut broken) = (0u64, 0u64);
    while total < budget {
        round += 1;
        let Ok(ctl) = sys::open(CONTROL, libc::O_RDWR).map(|f| Fd(f as i32)) else {
            bad.push("open(control)".into());
            break;
        };
        let mut v = 1u64;
        let _ = sys::ioctl_ptr(ctl.0, VDUSE_SET_API_VERSION, &mut v);
        let mut f = 3u64;
        let _ = sys::ioctl_ptr(ctl.0, VDUSE_SET_FEATURES, &mut f);
        let mut cfg = DevConfig::blk_v1(NAME);
        cfg.features = F_VERSION_1 | F_ACCESS_PLATFORM;
        let mut b = cfg.encode();
        if sys::ioctl(ctl.0, VDUSE_CREATE_DEV, b.as_mut_ptr() as usize).is_err() {
            bad.push(format!("round {round}: CREATE_DEV failed"));
            break;
        }
        let _ = std::fs::write(format!("/sys/class/vduse/{NAME}/msg_timeout"), "1");
        let _ = std::fs::write(
            format!("/sys/class/vduse/{NAME}/bounce_size"),
            UMEM.to_string(),
        );
        if let Ok(fd) = sys::open(&format!("/dev/vduse/{NAME}"), libc::O_RDWR) {
            for i in 0..2u32 {
                let _ = vq_setup(fd as i32, i, 256);
            }
            let _ = sys::close(fd as i32);
        }
        if vdpa(&["dev", "add", "name", NAME, "mgmtdev", "vduse"]) != 0 {
            bad.push(format!("round {round}: vdpa dev add failed"));
        }
        let mut child = spawn(seed.wrapping_mul(7919).wrapping_add(round));
        let mut vfd: Option<Fd> = None;
        let mut eio_streak = 0u32;
        for _ in 0..ops {
            if total >= budget {
                break;
            }
            total += 1;
            if vfd.is_none() {
                let r = vhost_node(NAME)
                    .ok_or(libc::ENOENT)
                    .and_then(|n| sys::open(&n, libc::O_RDWR));
                let res = match r {
                    Ok(_) => "ok".to_string(),
                    Err(e) => format!("-{}", errno_name(e)),
                };
                *counts.entry(format!("open vhost {res}")).or_default() += 1;
                // One EIO is a reset the daemon refused or left unanswered; three in a row,
                // a broken device: nothing more to learn from it.
                eio_streak = if r == Err(libc::EIO) {
                    eio_streak + 1
                } else {
                    0
                };
                if eio_streak >= 3 {
                    broken += 1;
                    break;
                }
                vfd = r.ok().map(|f| Fd(f as i32));
                if let Some(v) = &vfd {
                    let _ = sys::ioctl(v.0, VHOST_SET_OWNER, 0);
                    let _ = vhost_u64(v.0, VHOST_SET_BACKEND_FEATURES, 0x1e);
                }
                continue;
            }
            let v = vfd.as_ref().map(|v| v.0).unwrap_or(-1);
            let start = Instant::now();
            let (what, r): (&str, Ret) = match g.below(12) {
                0 | 1 => {
                    let s = g.pick(&[0u8, 1, 3, 0xb, 0xf, 0x40]);
                    ("SET_STATUS", set_status(v, s))
                }
                2 => (
                    "GET_VRING_BASE",
                    vring_state(v, VHOST_GET_VRING_BASE, g.below(3) as u32, 0).0,
                ),
                3 => {
                    let e = g.below(2) as u32;
                    (
                        "SET_VRING_ENABLE",
                        vring_state(v, VHOST_VDPA_SET_VRING_ENABLE, g.below(2) as u32, e).0,
                    )
                }
                4 => ("IOTLB_UPDATE", iotlb_update(v).0),
                5 => ("SUSPEND", sys::ioctl(v, VHOST_VDPA_SUSPEND, 0)),
                6 => {
                    let mut c = [0u8; 16];
                    c[4..8].copy_from_slice(&8u32.to_ne_bytes());
                    (
                        "GET_CONFIG",
                        sys::ioctl(v, VHOST_VDPA_GET_CONFIG, c.as_mut_ptr() as usize),
                    )
                }
                7 => {
                    vfd = None;
                    ("close vhost", Ok(0))
                }
                8 => {
                    kill(child);
                    child = spawn(g.u64());
                    ("SIGKILL daemon", Ok(0))
                }
                _ => {
                    std::thread::sleep(Duration::from_millis(20));
                    ("pause", Ok(0))
                }
            };
            let took = start.elapsed();
            let res = match r {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("-{}", errno_name(e)),
            };
            *counts.entry(format!("{what} {res}")).or_default() += 1;
            if matches!(r, Err(e) if !CONSUMER_OK.contains(&e)) {
                bad.push(format!("round {round}: {what}: {res}"));
            }
            // A request waits at most msg_timeout (1 s); a call makes at most a few.
            if took > Duration::from_secs(15) {
                bad.push(format!("round {round}: {what} took {took:?}"));
            }
        }
        drop(vfd);
        kill(child);
        let t = Instant::now();
        let del = vdpa(&["dev", "del", NAME]);
        if del != 0 || t.elapsed() > Duration::from_secs(30) {
            bad.push(format!(
                "round {round}: vdpa dev del exit {del} after {:?}",
                t.elapsed()
            ));
        }
        let d = destroy_untracked(ctl.0, NAME.as_bytes());
        if d.is_err() {
            bad.push(format!("round {round}: DESTROY_DEV {}", sys::fmt_ret(&d)));
            break;
        }
    }
    let c: Vec<String> = counts.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    println!(
        "# fuzz daemon: seed {seed}, {round} rounds ({broken} ended by a broken device), {total} \
         consumer operations in {:.1}s; {}",
        t0.elapsed().as_secs_f64(),
        c.join(", ")
    );
    for b in bad.iter().take(20) {
        println!("# unexpected: {b}");
    }
    bad.is_empty()
}
