// SPDX-License-Identifier: GPL-2.0

//! `vduse-tests faults --module c|rs`: fault injection on the driver loaded now (a kernel with
//! `CONFIG_FAULT_INJECTION`, `FAILSLAB`, `FAIL_PAGE_ALLOC` and their debugfs control: the debug
//! flavour). KTAP, one point per path.
//!
//! For each path, the Nth allocation the driver makes on it fails, for N = 1, 2, ... until the
//! path completes without reaching an Nth: `fail-nth` (Documentation/fault-injection/) with the
//! stack-trace filter set to the driver's text, so only allocations the driver's code asks for
//! (directly or through the kernel) are counted; failslab and fail_page_alloc both, sleeping
//! allocations included. Every injected failure must give the caller a clean errno (or succeed
//! on a fallback) and leave the device in a state the next operation accepts: no device left
//! half made, no node left behind, a later attempt without injection succeeds. The kernel's
//! checkers (KASAN, lockdep, kmemleak, tools/lib/dmesg-check) judge what the errno cannot show.
//!
//! Paths: `VDUSE_CREATE_DEV`; `VDUSE_VQ_SETUP` and `VDUSE_DEV_SET_CONFIG`; `vdpa dev add` (its
//! generic netlink request sent from this thread, so that fail-nth counts the allocations the
//! kernel makes for it, and reads 0 when one was failed: the kernel's "forcing a failure" line
//! is not printed for an allocation made with `__GFP_NOWARN`, which `kvmalloc` makes before it
//! falls back to `vmalloc`, so counting those lines missed injections); opening the device
//! node.
//!
//! With `--served NAME`, the paths that need a device a daemon serves and a bounce map that
//! only I/O makes (tools/testing/faults/run.sh sets that up with samples/vduse-blk and a read):
//! `VDUSE_IOTLB_REG_UMEM` of this process's memory, and the domain file (`VDUSE_IOTLB_GET_FD`
//! of the bounce region, `mmap`, a fault on each page). They run on a duplicate of the daemon's
//! descriptor (`pidfd_getfd`), since a VDUSE node has one opener, so that the injected thread is
//! this one while the daemon goes on serving.
//!
//! The stack filter looks 32 frames deep (the kernel's limit), so allocations deeper below the
//! driver's code are not counted.

use crate::dev::DevConfig;
use crate::sys::{self, errno_name, fmt_ret, Fd, Genl, Ret, CONTROL};
use crate::sys::{
    VDUSE_CREATE_DEV, VDUSE_DEV_SET_CONFIG, VDUSE_IOTLB_DEREG_UMEM, VDUSE_IOTLB_GET_FD,
    VDUSE_IOTLB_REG_UMEM,
};
use std::collections::BTreeMap;
use std::process::ExitCode;

const DEBUGFS: &str = "/sys/kernel/debug";
/// The most injection points a path is tried with.
const MAX_NTH: u32 = 400;

fn write(path: &str, v: &str) -> bool {
    std::fs::write(path, v).is_ok()
}

/// The text range of module `module` from /proc/kallsyms (its lowest and highest text symbol,
/// plus a page for the last function).
fn text_range(module: &str) -> Option<(u64, u64)> {
    let tag = format!("[{module}]");
    let all = std::fs::read_to_string("/proc/kallsyms").ok()?;
    let addrs: Vec<u64> = all
        .lines()
        .filter(|l| l.ends_with(&tag))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let a = u64::from_str_radix(f.next()?, 16).ok()?;
            let t = f.next()?;
            (a != 0 && (t == "t" || t == "T")).then_some(a)
        })
        .collect();
    Some((*addrs.iter().min()?, *addrs.iter().max()? + 4096))
}

/// Sets failslab and fail_page_alloc up for fail-nth within `range`; false if the kernel has
/// no fault injection.
fn arm(range: (u64, u64)) -> bool {
    let mut ok = true;
    for cap in ["failslab", "fail_page_alloc"] {
        let d = format!("{DEBUGFS}/{cap}");
        if !std::path::Path::new(&d).exists() {
            return false;
        }
        ok &= write(&format!("{d}/probability"), "0");
        ok &= write(&format!("{d}/ignore-gfp-wait"), "N");
        ok &= write(&format!("{d}/verbose"), "1");
        ok &= write(&format!("{d}/stacktrace-depth"), "32");
        ok &= write(&format!("{d}/require-start"), &range.0.to_string());
        ok &= write(&format!("{d}/require-end"), &range.1.to_string());
        ok &= write(&format!("{d}/reject-start"), "0");
        ok &= write(&format!("{d}/reject-end"), "0");
    }
    ok &= write(
        &format!("{DEBUGFS}/fail_page_alloc/ignore-gfp-highmem"),
        "N",
    );
    ok &= write(&format!("{DEBUGFS}/fail_page_alloc/min-order"), "0");
    ok
}

/// Sets this thread's fail-nth.
fn set_nth(n: u32) -> bool {
    write("/proc/thread-self/fail-nth", &n.to_string())
}

/// True if the armed failure was injected (fail-nth reads 0); disarms it either way.
fn injected() -> bool {
    let v = std::fs::read_to_string("/proc/thread-self/fail-nth").unwrap_or_default();
    let hit = v.trim() == "0";
    set_nth(0);
    hit
}

/// One path's record: how many injection points it has, and the results they gave.
#[derive(Default)]
struct Tally {
    points: u32,
    results: BTreeMap<String, u32>,
    bad: Vec<String>,
    complete: bool,
}

impl Tally {
    fn result(&mut self, r: &str) {
        *self.results.entry(r.to_string()).or_default() += 1;
    }

    /// Prints the point; `min_points`: the path certainly allocates (creating a device, putting
    /// it on the bus), so a run that injected nothing tested nothing.
    fn report(&self, n: usize, name: &str, min_points: u32) -> bool {
        let res: Vec<String> = self
            .results
            .iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect();
        let good = self.bad.is_empty() && self.complete && self.points >= min_points;
        for b in self.bad.iter().take(10) {
            println!("# faults/{name}: {b}");
        }
        if !self.complete {
            println!("# faults/{name}: still failing after {MAX_NTH} injection points");
        }
        println!(
            "{}ok {n} faults/{name} # {} injection points: {}",
            if good { "" } else { "not " },
            self.points,
            if res.is_empty() {
                "none".into()
            } else {
                res.join(", ")
            }
        );
        good
    }
}

fn create(ctl: &Fd, name: &str) -> Ret {
    let mut b = DevConfig::blk(name).encode();
    sys::ioctl(ctl.0, VDUSE_CREATE_DEV, b.as_mut_ptr() as usize)
}

fn destroy(ctl: &Fd, name: &str) -> Ret {
    crate::dev::destroy_untracked(ctl.0, name.as_bytes())
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/vduse").join(name).exists()
}

fn vq_setup(fd: &Fd, i: u32) -> Ret {
    crate::dev::vq_setup(fd.0, i, 256)
}

fn vdpa(args: &[&str]) -> i32 {
    std::process::Command::new("vdpa")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(-1)
}

/// `VDPA_CMD_DEV_NEW` (`linux/vdpa.h`).
const VDPA_CMD_DEV_NEW: u8 = 3;
/// `VDPA_ATTR_MGMTDEV_DEV_NAME`.
const VDPA_ATTR_MGMTDEV_DEV_NAME: u16 = 2;
/// `VDPA_ATTR_DEV_NAME`.
const VDPA_ATTR_DEV_NAME: u16 = 4;

/// `VDUSE_CREATE_DEV`: a failure leaves no device; a success is a whole device.
fn create_path(ctl: &Fd) -> Tally {
    let mut t = Tally::default();
    let name = "t-fi-create";
    for n in 1..=MAX_NTH {
        set_nth(n);
        let r = create(ctl, name);
        let hit = injected();
        if !hit {
            t.complete = true;
            if r.is_err() {
                t.bad
                    .push(format!("no injection, and CREATE_DEV gave {}", fmt_ret(&r)));
            }
            let _ = destroy(ctl, name);
            break;
        }
        t.points += 1;
        t.result(&fmt_ret(&r));
        match r {
            Err(e) if e == libc::ENOMEM || e == libc::ENOSPC => {
                if exists(name) {
                    t.bad.push(format!(
                        "point {n}: -{}, and the device exists",
                        errno_name(e)
                    ));
                }
                let d = destroy(ctl, name);
                if d != Err(libc::EINVAL) {
                    t.bad.push(format!(
                        "point {n}: a failed create left a device ({})",
                        fmt_ret(&d)
                    ));
                }
            }
            Err(e) => t
                .bad
                .push(format!("point {n}: unexpected -{}", errno_name(e))),
            Ok(_) => {
                if !exists(name) {
                    t.bad.push(format!(
                        "point {n}: created, but no /sys/class/vduse/{name}"
                    ));
                }
                let d = destroy(ctl, name);
                if d.is_err() {
                    t.bad
                        .push(format!("point {n}: then DESTROY_DEV {}", fmt_ret(&d)));
                }
            }
        }
    }
    t
}

/// `open` of the node, `VDUSE_VQ_SETUP` and `VDUSE_DEV_SET_CONFIG`: each may fail cleanly; the
/// device then still works.
fn device_path(ctl: &Fd) -> Tally {
    let mut t = Tally::default();
    let name = "t-fi-dev";
    if create(ctl, name).is_err() {
        t.bad.push("CREATE_DEV without injection failed".into());
        return t;
    }
    for n in 1..=MAX_NTH {
        set_nth(n);
        let o = sys::open(&format!("/dev/vduse/{name}"), libc::O_RDWR);
        let mut r = o.map(|_| 0);
        let fd = o.ok().map(|f| Fd(f as i32));
        if let Some(fd) = &fd {
            r = vq_setup(fd, 0).and_then(|_| {
                let mut b = [0u8; 12];
                b[4..8].copy_from_slice(&4u32.to_ne_bytes());
                sys::ioctl(fd.0, VDUSE_DEV_SET_CONFIG, b.as_mut_ptr() as usize)
            });
        }
        let hit = injected();
        drop(fd);
        if !hit {
            t.complete = true;
            if r.is_err() {
                t.bad.push(format!(
                    "no injection, and the sequence gave {}",
                    fmt_ret(&r)
                ));
            }
            break;
        }
        t.points += 1;
        t.result(&fmt_ret(&r));
        if !matches!(r, Ok(_) | Err(libc::ENOMEM)) {
            t.bad.push(format!("point {n}: unexpected {}", fmt_ret(&r)));
        }
    }
    let d = destroy(ctl, name);
    if d.is_err() {
        t.bad
            .push(format!("DESTROY_DEV at the end: {}", fmt_ret(&d)));
    }
    t
}

/// `vdpa dev add`: a failure leaves the device off the bus, and a later add works.
fn vdpa_add_path(ctl: &Fd) -> Tally {
    let mut t = Tally::default();
    let name = "t-fi-vdpa";
    let genl = match Genl::open().and_then(|g| Ok((g.family("vdpa")?, g))) {
        Ok(g) => g,
        Err(e) => {
            t.bad
                .push(format!("generic netlink family vdpa: -{}", errno_name(e)));
            return t;
        }
    };
    if create(ctl, name).is_err() {
        t.bad.push("CREATE_DEV without injection failed".into());
        return t;
    }
    let fd = match sys::open(&format!("/dev/vduse/{name}"), libc::O_RDWR) {
        Ok(f) => Fd(f as i32),
        Err(e) => {
            t.bad.push(format!("open: -{}", errno_name(e)));
            return t;
        }
    };
    if vq_setup(&fd, 0).is_err() || vq_setup(&fd, 1).is_err() {
        t.bad.push("VQ_SETUP without injection failed".into());
    }
    let on_bus = || {
        std::path::Path::new("/sys/bus/vdpa/devices")
            .join(name)
            .exists()
    };
    // `vdpa dev add name NAME mgmtdev vduse`, sent from this thread.
    let add = |g: &(u16, Genl)| {
        g.1.request(
            g.0,
            VDPA_CMD_DEV_NEW,
            &[
                (VDPA_ATTR_MGMTDEV_DEV_NAME, "vduse"),
                (VDPA_ATTR_DEV_NAME, name),
            ],
        )
        .map(|_| 0)
    };
    for n in 1..=MAX_NTH {
        set_nth(n);
        let r = add(&genl);
        let hit = injected();
        if !hit {
            t.complete = true;
            if r.is_err() {
                t.bad
                    .push(format!("no injection, and the add gave {}", fmt_ret(&r)));
            }
            break;
        }
        t.points += 1;
        t.result(&fmt_ret(&r));
        if r.is_ok() {
            if vdpa(&["dev", "del", name]) != 0 {
                t.bad.push(format!(
                    "point {n}: added despite the failure, then del failed"
                ));
            }
        } else if on_bus() {
            t.bad.push(format!(
                "point {n}: the add failed but {name} is on the bus"
            ));
            vdpa(&["dev", "del", name]);
        }
    }
    // The device works on the bus and leaves it again.
    if on_bus() {
        vdpa(&["dev", "del", name]);
    }
    let d = {
        drop(fd);
        destroy(ctl, name)
    };
    if d.is_err() {
        t.bad
            .push(format!("DESTROY_DEV at the end: {}", fmt_ret(&d)));
    }
    t
}

/// A duplicate of the descriptor some process holds on `/dev/vduse/NAME` (its daemon's).
fn daemon_fd(name: &str) -> Result<Fd, String> {
    let node = std::path::PathBuf::from(format!("/dev/vduse/{name}"));
    let num = |n: &std::ffi::OsStr| n.to_str().and_then(|s| s.parse::<i32>().ok());
    let procs = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    for p in procs.flatten() {
        let Some(pid) = num(&p.file_name()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for f in fds.flatten() {
            if std::fs::read_link(f.path()).ok().as_ref() != Some(&node) {
                continue;
            }
            if let Some(fd) = num(&f.file_name()) {
                return sys::pidfd_getfd(pid, fd)
                    .map(|d| Fd(d as i32))
                    .map_err(|e| format!("pidfd_getfd({pid}, {fd}): -{}", errno_name(e)));
            }
        }
    }
    Err(format!("no process has {} open", node.display()))
}

/// The bounce size of device `name` (its sysfs attribute).
fn bounce_size(name: &str) -> Option<usize> {
    std::fs::read_to_string(format!("/sys/class/vduse/{name}/bounce_size"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `VmPin` of this process (kB): the pages pinned on its `mm` (`mm->pinned_vm`).
fn vm_pin_kb() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmPin:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `VDUSE_IOTLB_REG_UMEM` of a buffer of the bounce size: a failure leaves nothing registered
/// and no page pinned (`VmPin` as before); a registration is whole (`DEREG_UMEM` takes it).
fn reg_umem_path(dev: &Fd, size: usize) -> Tally {
    let mut t = Tally::default();
    let Some(buf) = sys::AnonMap::new(size) else {
        t.bad.push(format!("cannot map {size} bytes"));
        return t;
    };
    // Touched, so that pinning it allocates nothing of its own.
    buf.fill(0xa5);
    let umem = |cmd| {
        // struct vduse_iova_umem: uaddr, iova, size, asid, reserved.
        let mut u = [0u8; 48];
        u[..8].copy_from_slice(&buf.addr().to_ne_bytes());
        u[16..24].copy_from_slice(&(size as u64).to_ne_bytes());
        sys::ioctl(dev.0, cmd, u.as_mut_ptr() as usize)
    };
    let pin0 = vm_pin_kb();
    if pin0.is_none() {
        t.bad.push("no VmPin in /proc/self/status".into());
        return t;
    }
    for n in 1..=MAX_NTH {
        set_nth(n);
        let r = umem(VDUSE_IOTLB_REG_UMEM);
        let hit = injected();
        let d = umem(VDUSE_IOTLB_DEREG_UMEM);
        let pin = vm_pin_kb();
        if pin != pin0 {
            t.bad.push(format!(
                "point {n}: VmPin {pin0:?} kB before, {pin:?} kB after REG_UMEM {} and DEREG_UMEM {}",
                fmt_ret(&r),
                fmt_ret(&d)
            ));
        }
        if !hit {
            t.complete = true;
            if r.is_err() || d.is_err() {
                t.bad.push(format!(
                    "no injection, and REG_UMEM gave {}, DEREG_UMEM {}",
                    fmt_ret(&r),
                    fmt_ret(&d)
                ));
            }
            break;
        }
        t.points += 1;
        t.result(&fmt_ret(&r));
        match r {
            Ok(_) if d.is_err() => t.bad.push(format!(
                "point {n}: registered, then DEREG_UMEM {}",
                fmt_ret(&d)
            )),
            Err(libc::ENOMEM) if d != Err(libc::ENOENT) => t.bad.push(format!(
                "point {n}: -ENOMEM, and DEREG_UMEM gave {} (a registration left behind)",
                fmt_ret(&d)
            )),
            Ok(_) | Err(libc::ENOMEM) => {}
            Err(e) => t
                .bad
                .push(format!("point {n}: unexpected -{}", errno_name(e))),
        }
    }
    t
}

/// What one page of the domain file gave: its bytes, or the errno of the fault.
type PageRead = Result<Vec<u8>, i32>;

/// The bounce region through the domain file, as a daemon reaches it: `VDUSE_IOTLB_GET_FD`
/// of IOVA 0, `mmap` of the entry, then each page of `pages` copied out through a pipe
/// (`write` from the mapping, so that a failed fault is `EFAULT` to the copy, not `SIGBUS`
/// to this process).
fn read_domain_file(dev: &Fd, pages: &[usize]) -> Result<Vec<(usize, PageRead)>, i32> {
    // struct vduse_iotlb_entry: offset, start, last, perm, padding.
    let mut e = [0u8; 32];
    let fd = Fd(sys::ioctl(dev.0, VDUSE_IOTLB_GET_FD, e.as_mut_ptr() as usize)? as i32);
    let word = |o: usize| u64::from_ne_bytes(e[o..o + 8].try_into().unwrap_or_default());
    let (offset, start, last) = (word(0), word(8), word(16));
    let len =
        usize::try_from(last.saturating_sub(start).saturating_add(1)).map_err(|_| libc::E2BIG)?;
    let mut p = [0i32; 2];
    // SAFETY: `p` has room for the two descriptors.
    sys::check(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }.into())?;
    let (rd, wr) = (Fd(p[0]), Fd(p[1]));
    // SAFETY: a fresh shared mapping of the domain file; checked for failure below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.0,
            offset as libc::off_t,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    let mut out = Vec::new();
    for &i in pages.iter().filter(|&&i| (i + 1) * 4096 <= len) {
        // SAFETY: page `i` lies inside the mapping (filtered above); the kernel reads it.
        let w =
            sys::check(
                unsafe { libc::write(wr.0, base.cast::<u8>().add(i * 4096).cast(), 4096) } as i64,
            );
        let r = w.and_then(|_| {
            let mut b = vec![0u8; 4096];
            sys::read(rd.0, &mut b).map(|_| b)
        });
        out.push((i, r));
    }
    // SAFETY: our mapping.
    unsafe { libc::munmap(base, len) };
    Ok(out)
}

/// The domain file: `GET_FD`, `mmap` and each page's fault may fail cleanly (`ENOMEM`, a copy
/// out of the page `EFAULT`); a page that faults in has the bytes it had without injection
/// (no I/O runs meanwhile). The pages tried are those that fault in without injection (a
/// bounce slot has a page once a map has used it).
fn domain_file_path(dev: &Fd, size: usize) -> Tally {
    let mut t = Tally::default();
    let all: Vec<usize> = (0..size / 4096).collect();
    let base: Vec<(usize, Vec<u8>)> = match read_domain_file(dev, &all) {
        Ok(v) => v
            .into_iter()
            .filter_map(|(i, r)| r.ok().map(|b| (i, b)))
            .collect(),
        Err(e) => {
            t.bad.push(format!("without injection: -{}", errno_name(e)));
            return t;
        }
    };
    if base.is_empty() {
        t.bad
            .push("no page of the bounce region faults in: nothing to inject into".into());
        return t;
    }
    println!(
        "# faults/domain_file: {} of {} bounce pages fault in",
        base.len(),
        all.len()
    );
    let pages: Vec<usize> = base.iter().map(|(i, _)| *i).collect();
    for n in 1..=MAX_NTH {
        set_nth(n);
        let r = read_domain_file(dev, &pages);
        let hit = injected();
        let (res, faults) = match &r {
            Err(e) => (format!("-{}", errno_name(*e)), 0),
            Ok(v) => {
                let f = v.iter().filter(|(_, r)| r.is_err()).count();
                (
                    if f == 0 {
                        "0".into()
                    } else {
                        format!("{f} pages -EFAULT")
                    },
                    f,
                )
            }
        };
        if let Ok(v) = &r {
            for ((i, got), (_, want)) in v.iter().zip(&base) {
                match got {
                    Ok(b) if b != want => t
                        .bad
                        .push(format!("point {n}: page {i} reads other bytes than before")),
                    Err(e) if *e != libc::EFAULT => t.bad.push(format!(
                        "point {n}: page {i}: unexpected -{}",
                        errno_name(*e)
                    )),
                    _ => {}
                }
            }
        }
        if !hit {
            t.complete = true;
            if r.is_err() || faults != 0 {
                t.bad
                    .push(format!("no injection, and the domain file gave {res}"));
            }
            break;
        }
        t.points += 1;
        t.result(&res);
        if matches!(r, Err(e) if e != libc::ENOMEM) {
            t.bad.push(format!("point {n}: unexpected {res}"));
        }
    }
    t
}

/// What the paths run on: the control node, and with `--served` the served device's node
/// (a duplicate of its daemon's descriptor) and bounce size.
struct Ctx {
    ctl: Fd,
    served: Option<(Fd, usize)>,
}

/// A path: its allocations failed in turn, the results tallied.
type Path = fn(&Ctx) -> Tally;

/// The paths on devices of their own, left unbound.
const PATHS: [(&str, Path); 3] = [
    ("create_dev", |c| create_path(&c.ctl)),
    ("device_ioctls", |c| device_path(&c.ctl)),
    ("vdpa_dev_add", |c| vdpa_add_path(&c.ctl)),
];

/// The paths on a served device (`--served`).
const SERVED_PATHS: [(&str, Path); 2] = [
    ("reg_umem", |c| served(c, reg_umem_path)),
    ("domain_file", |c| served(c, domain_file_path)),
];

/// Runs `path` on the served device.
fn served(c: &Ctx, path: fn(&Fd, usize) -> Tally) -> Tally {
    match &c.served {
        Some((fd, size)) => path(fd, *size),
        None => Tally {
            bad: vec!["no served device".into()],
            ..Tally::default()
        },
    }
}

/// The subcommand: runs every path (of [`PATHS`], or of [`SERVED_PATHS`] on the device
/// `served`) but those named in `skip`.
pub fn run(module: &str, skip: &[String], served: Option<&str>) -> ExitCode {
    let paths: &[(&str, Path)] = if served.is_some() {
        &SERVED_PATHS
    } else {
        &PATHS
    };
    println!("KTAP version 1");
    // A misspelt --skip would run the path it was meant to keep out.
    if let Some(s) = skip.iter().find(|s| !paths.iter().any(|(n, _)| n == s)) {
        println!("Bail out! --skip {s}: no such path");
        return ExitCode::FAILURE;
    }
    println!("1..{}", paths.len());
    let range = text_range(module);
    let armed = range.map(arm).unwrap_or(false);
    if !armed {
        let why = if range.is_none() {
            format!("no text symbols of {module} in /proc/kallsyms")
        } else {
            "this kernel has no fault injection (the debug flavour has)".to_string()
        };
        for (i, (n, _)) in paths.iter().enumerate() {
            println!("ok {} faults/{n} # SKIP {why}", i + 1);
        }
        return ExitCode::SUCCESS;
    }
    let ctl = match sys::open(CONTROL, libc::O_RDWR) {
        Ok(f) => Fd(f as i32),
        Err(e) => {
            println!("Bail out! open(control): -{}", errno_name(e));
            return ExitCode::FAILURE;
        }
    };
    let served = match served.map(|n| {
        let size = bounce_size(n).ok_or(format!("no /sys/class/vduse/{n}/bounce_size"))?;
        daemon_fd(n).map(|fd| (fd, size))
    }) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            println!("Bail out! --served: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx { ctl, served };
    let mut good = true;
    for (i, (name, path)) in paths.iter().enumerate() {
        if skip.iter().any(|s| s == name) {
            println!("ok {} faults/{name} # SKIP --skip {name}", i + 1);
            continue;
        }
        // Opening the node and VQ_SETUP/SET_CONFIG may allocate nothing (C's do not); nor
        // need the domain file's fault (C's hands the page to the mm core, which allocates the
        // page table outside the driver's frames).
        let min_points = if matches!(*name, "device_ioctls" | "domain_file") {
            0
        } else {
            1
        };
        good &= path(&ctx).report(i + 1, name, min_points);
    }
    if good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
