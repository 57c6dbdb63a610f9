// SPDX-License-Identifier: GPL-2.0

//! vduse-tests: differential conformance tests for VDUSE drivers.
//!
//! `vduse-tests run --module c|rs --transcript FILE` runs every case against the VDUSE driver
//! loaded now, prints KTAP and writes what each case observed to FILE. `vduse-tests compare
//! C_FILE RS_FILE` then checks that both drivers were observed doing the same thing, case by
//! case, except for the documented deviations. `tools/testing/differential.sh` does both in one
//! VM boot.

mod cases;
mod daemon;
mod dev;
mod faults;
mod fuzz;
mod harness;
mod sys;
mod tools;
mod vhost;

use clap::{Parser, Subcommand};
use harness::{Case, Ctx, Module, DEVIATIONS};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Differential conformance tests for VDUSE drivers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the cases against the VDUSE driver loaded now.
    Run {
        /// Which driver is loaded.
        #[arg(long, value_enum)]
        module: Module,
        /// Where to write the transcript.
        #[arg(long)]
        transcript: std::path::PathBuf,
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Seconds a case may take: then it is killed and reported `not ok` (and if it
        /// survives SIGKILL, the run stops with `Bail out!`).
        #[arg(long, default_value_t = 60)]
        case_timeout: u64,
    },
    /// Compare the transcripts of the C and the Rust driver.
    Compare {
        /// Transcript of the C driver.
        c: std::path::PathBuf,
        /// Transcript of the Rust driver.
        rs: std::path::PathBuf,
    },
    /// List the cases.
    List,
    /// Show what the loaded driver answers on the control node (for the demo).
    Probe,
    /// Create, open, close and destroy a device N times; check that minors and names are
    /// reused (nothing leaks) and that nothing is left at the end.
    Stress {
        /// Number of cycles.
        cycles: u32,
    },
    /// `VDUSE_DESTROY_DEV` NAME; prints `ok 0` or the errno.
    Destroy {
        /// The device.
        name: String,
    },
    /// `VDUSE_CREATE_DEV` of an API-1 virtio-blk device NAME with both queues set up, left
    /// for others to use (trinity); prints `ok 0` or the errno.
    Create {
        /// The device.
        name: String,
    },
    /// Open /dev/vduse/NAME and close it; prints `ok N` or the errno.
    Open {
        /// The device.
        name: String,
    },
    /// Show lockdep the kernel's `kernfs_rwsem` -> `mmap_lock` order (a page fault in a sysfs
    /// readdir) at the start of each test boot, so that a cycle through it is reported in
    /// every boot, not by chance.
    LockdepPrime,
    /// Act as a daemon that scribbles over split queue QUEUE's rings and dies.
    Scribble {
        /// The device.
        name: String,
        /// The queue.
        queue: u32,
    },
    /// Seeded single-threaded fuzzing of the control and device nodes; writes a transcript
    /// (`fuzz-compare` matches the transcripts of one seed on both drivers).
    Fuzz {
        /// The seed: the same seed makes the same operations.
        #[arg(long)]
        seed: u64,
        /// How many operations.
        #[arg(long, default_value_t = 10_000)]
        ops: u64,
        /// Where to write the transcript.
        #[arg(long)]
        transcript: std::path::PathBuf,
        /// Also `vdpa dev add`/`del` (no vDPA bus driver may be loaded).
        #[arg(long)]
        vdpa: bool,
    },
    /// Fault injection (fail-nth) on the paths of the driver loaded now (KTAP).
    Faults {
        /// The loaded driver's module name (vduse or vduse_rs).
        #[arg(long)]
        module: String,
        /// A path not to run (reported as skipped), e.g. one that crashes this driver.
        #[arg(long)]
        skip: Vec<String>,
        /// Run the paths that need a served device with a bounce map instead: UMEM
        /// registration and the domain file, on device NAME (its daemon's descriptor).
        #[arg(long, value_name = "NAME")]
        served: Option<String>,
    },
    /// Compare the fuzz transcripts of one seed on the C and the Rust driver.
    FuzzCompare {
        /// Transcript of the C driver.
        c: std::path::PathBuf,
        /// Transcript of the Rust driver.
        rs: std::path::PathBuf,
    },
    /// A misbehaving daemon (bad, late, duplicated or missing answers, SIGKILL and restart)
    /// under a vhost-vdpa consumer's requests.
    FuzzDaemon {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Devices made, served badly and removed in turn.
        #[arg(long, default_value_t = 3)]
        rounds: u64,
        /// Consumer operations per round.
        #[arg(long, default_value_t = 200)]
        ops: u64,
    },
    /// Threads racing create, destroy, open, use and sysfs writes on the same devices.
    FuzzRace {
        /// The seed of the threads' choices.
        #[arg(long)]
        seed: u64,
        /// How many threads.
        #[arg(long, default_value_t = 4)]
        threads: u64,
        /// For how long.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Also `vdpa dev add`/`del` from one thread.
        #[arg(long)]
        vdpa: bool,
    },
}

/// What one case run in its own process reported.
struct Outcome {
    transcript: Vec<String>,
    failures: Vec<String>,
    skipped: Option<String>,
}

/// Line prefixes of the encoding a case process sends back to the runner.
const T_OBS: &str = "o ";
const T_FAIL: &str = "f ";
const T_SKIP: &str = "s ";

fn one_line(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unline(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(ch) = it.next() {
        match (ch, ch == '\\') {
            (_, true) => match it.next() {
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// The kernel's view of a process that does not end: its state, wait channel and the kernel
/// stack of each of its threads, as KTAP comments (evidence for a hang).
fn hang_evidence(pid: i32) -> Vec<String> {
    let mut v = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for t in tasks {
        let state = std::fs::read_to_string(t.join("status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("State: ?")
            .to_string();
        let wchan = std::fs::read_to_string(t.join("wchan")).unwrap_or_default();
        v.push(format!("task {}: {state}, wchan {wchan}", t.display()));
        for l in std::fs::read_to_string(t.join("stack"))
            .unwrap_or_default()
            .lines()
        {
            v.push(format!("    {l}"));
        }
    }
    v
}

/// After a case was killed: takes every VDUSE device it left off the vDPA bus and destroys it,
/// so that the next cases (and the module unload) find a clean driver.
fn cleanup_devices() {
    let names = dev::listed_devices("/dev/vduse");
    for n in names {
        println!("# cleanup after the killed case: vdpa dev del {n}, DESTROY_DEV {n}");
        drop(dev::DevGuard(n));
    }
    // What the cleanup's post-conditions found belongs to the killed case, not to the next
    // case, which is forked from this process.
    for f in dev::take_post_failures() {
        println!("# cleanup after the killed case: {f}");
    }
}

/// Runs `case` in a child process and waits at most `limit` for it. `Err` carries the reason
/// it did not end normally and whether the child is gone (`false`: it survived SIGKILL, stuck
/// in the kernel).
fn run_case(case: &Case, module: Module, limit: Duration) -> Result<Outcome, (String, bool)> {
    let mut p = [0i32; 2];
    // SAFETY: `p` has room for the two descriptors.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(("pipe2 failed".into(), true));
    }
    let _ = std::io::stdout().flush();
    // SAFETY: The runner is single-threaded; the child runs the case and leaves by `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: Closing our copy of the read end.
        unsafe { libc::close(p[0]) };
        // SAFETY: Our own process group, so that a timeout kills the case's children too.
        unsafe { libc::setpgid(0, 0) };
        let mut ctx = Ctx::new(module);
        (case.run)(&mut ctx);
        dev::post_check_remaining();
        ctx.failures.extend(dev::take_post_failures());
        let mut msg = String::new();
        for l in &ctx.transcript {
            msg += &format!("{T_OBS}{}\n", one_line(l));
        }
        for l in &ctx.failures {
            msg += &format!("{T_FAIL}{}\n", one_line(l));
        }
        if let Some(why) = &ctx.skipped {
            msg += &format!("{T_SKIP}{}\n", one_line(why));
        }
        // SAFETY: Writing our buffer to the pipe, then leaving without running the runner's
        // destructors.
        unsafe {
            let mut off = 0;
            while off < msg.len() {
                let n = libc::write(p[1], msg.as_ptr().add(off).cast(), msg.len() - off);
                if n <= 0 {
                    break;
                }
                off += n as usize;
            }
            libc::_exit(0);
        }
    }
    // SAFETY: Closing our copy of the write end.
    unsafe { libc::close(p[1]) };
    let rd = sys::Fd(p[0]);
    if pid < 0 {
        return Err(("fork failed".into(), true));
    }
    let t0 = Instant::now();
    let mut data = Vec::new();
    let mut status = 0;
    let mut buf = [0u8; 65536];
    let mut exited = false;
    loop {
        let pf = sys::poll_fd(rd.0, libc::POLLIN, 100);
        if pf.revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            match sys::read(rd.0, &mut buf) {
                Ok(n) if n > 0 => data.extend_from_slice(&buf[..n as usize]),
                _ => {}
            }
        }
        // SAFETY: Polling our own child.
        if !exited && unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            exited = true;
        }
        if exited && pf.revents & libc::POLLIN == 0 {
            break;
        }
        if !exited && t0.elapsed() > limit {
            let mut why = format!("timed out after {}s", limit.as_secs());
            let evidence = hang_evidence(pid);
            // SAFETY: Killing our own child, then reaping it for at most 10 s.
            let gone = unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
                let mut gone = false;
                for _ in 0..100 {
                    if libc::waitpid(pid, &mut status, libc::WNOHANG) == pid {
                        gone = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                gone
            };
            for l in evidence {
                println!("# {}: {l}", case.name);
            }
            if !gone {
                why += ", and survived SIGKILL (stuck in the kernel)";
            }
            if gone {
                cleanup_devices();
            }
            return Err((why, gone));
        }
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exited with status {}", libc::WEXITSTATUS(status))
        };
        return Err((format!("the case process {how} (panic?)"), true));
    }
    let mut o = Outcome {
        transcript: Vec::new(),
        failures: Vec::new(),
        skipped: None,
    };
    for l in String::from_utf8_lossy(&data).lines() {
        if let Some(x) = l.strip_prefix(T_OBS) {
            o.transcript.push(unline(x));
        } else if let Some(x) = l.strip_prefix(T_FAIL) {
            o.failures.push(unline(x));
        } else if let Some(x) = l.strip_prefix(T_SKIP) {
            o.skipped = Some(unline(x));
        }
    }
    Ok(o)
}

/// Verdict lines in a transcript: `CASE\t!verdict ok`, `... !verdict skip REASON`,
/// `... !verdict not ok REASON`. They are not observations: `compare` reads them apart.
const VERDICT: &str = "!verdict ";

fn run(
    module: Module,
    transcript: &std::path::Path,
    filter: Option<&str>,
    limit: Duration,
) -> ExitCode {
    let cases: Vec<_> = cases::all()
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    let mut out = match std::fs::File::create(transcript) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            eprintln!("cannot create {}: {e}", transcript.display());
            return ExitCode::FAILURE;
        }
    };
    println!("KTAP version 1");
    println!("# vduse-tests run --module {module:?}");
    println!("1..{}", cases.len());
    let (mut failed, mut skipped) = (0, 0);
    for (i, case) in cases.iter().enumerate() {
        let n = i + 1;
        let name = &case.name;
        match run_case(case, module, limit) {
            Ok(o) => {
                for line in &o.transcript {
                    let _ = writeln!(out, "{name}\t{line}");
                }
                if o.failures.is_empty() && o.transcript.is_empty() {
                    let _ = writeln!(out, "{name}\t{VERDICT}not ok it observed nothing");
                    failed += 1;
                    println!("# {name}: the case observed nothing");
                    println!("not ok {n} {name}");
                } else if !o.failures.is_empty() {
                    failed += 1;
                    for f in &o.failures {
                        println!("# {name}: {f}");
                    }
                    let _ = writeln!(out, "{name}\t{VERDICT}not ok {}", o.failures.join("; "));
                    println!("not ok {n} {name}");
                } else if let Some(why) = &o.skipped {
                    skipped += 1;
                    let _ = writeln!(out, "{name}\t{VERDICT}skip {why}");
                    println!("ok {n} {name} # SKIP {why}");
                } else {
                    let _ = writeln!(out, "{name}\t{VERDICT}ok");
                    println!("ok {n} {name}");
                }
            }
            Err((why, gone)) => {
                failed += 1;
                let _ = writeln!(out, "{name}\t{VERDICT}not ok {why}");
                println!("# {name}: {why}");
                println!("not ok {n} {name}");
                if !gone {
                    let _ = out.flush();
                    println!("Bail out! {name} is stuck in the kernel; the other cases cannot run");
                    return ExitCode::FAILURE;
                }
            }
        }
        let _ = out.flush();
    }
    println!(
        "# {module:?}: {} passed, {failed} failed, {skipped} skipped",
        cases.len() - failed - skipped
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A transcript: per case, its observations and its verdict line (if the case ended).
type Transcript = BTreeMap<String, (Vec<String>, Option<String>)>;

/// Reads a transcript; a missing one (its run never started) reads as empty, so that every
/// case of the other driver is still reported, as not run on this one.
fn load(path: &std::path::Path) -> Option<Transcript> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "# {} is missing: that run did not take place",
                path.display()
            );
            String::new()
        }
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return None;
        }
    };
    let mut map: Transcript = BTreeMap::new();
    for line in text.lines() {
        let (case, obs) = line.split_once('\t').unwrap_or((line, ""));
        let e = map.entry(case.to_string()).or_default();
        match obs.strip_prefix(VERDICT) {
            Some(v) => e.1 = Some(v.to_string()),
            None => e.0.push(obs.to_string()),
        }
    }
    Some(map)
}

/// One driver's verdict on a case: `Ok(None)` passed, `Ok(Some(why))` skipped, `Err` failed.
fn verdict(v: Option<&(Vec<String>, Option<String>)>) -> Result<Option<String>, String> {
    match v.and_then(|(_, v)| v.as_deref()) {
        None => Err("did not run".into()),
        Some("ok") => Ok(None),
        Some(v) => match v.strip_prefix("skip ") {
            Some(why) => Ok(Some(why.to_string())),
            None => Err(v.strip_prefix("not ok ").unwrap_or(v).to_string()),
        },
    }
}

/// One test point per case: it passes only if the case's expectations held on C, held on Rust,
/// and both transcripts are the same (except for the documented deviations, whose
/// transcripts are not compared, and cases that run on one driver only, reported as such).
fn compare(c: &std::path::Path, rs: &std::path::Path) -> ExitCode {
    let (Some(c), Some(rs)) = (load(c), load(rs)) else {
        return ExitCode::FAILURE;
    };
    // The plan is the case table, not what the transcripts happen to hold: a case missing
    // from a transcript (its run never started, or stopped early) fails as "did not run", and
    // a name that is no case of this runner fails too.
    let table: Vec<String> = cases::all().into_iter().map(|k| k.name).collect();
    let strays: Vec<&String> = c
        .keys()
        .chain(rs.keys())
        .filter(|k| !table.contains(*k))
        .collect();
    let names: Vec<&String> = table.iter().chain(strays.iter().copied()).collect();
    println!("KTAP version 1");
    println!("# differential: C vduse.ko vs vduse_rs.ko, one point per case");
    println!("1..{}", names.len());
    let mut failed = 0;
    let (mut same, mut dev, mut one) = (0, 0, 0);
    for (i, name) in names.iter().enumerate() {
        let deviation = DEVIATIONS.iter().find(|(case, _)| *case == name.as_str());
        let (a, b) = (c.get(*name), rs.get(*name));
        let mut errs = Vec::new();
        if !table.contains(*name) {
            errs.push("not a case of this runner (stale or foreign transcript)".to_string());
        }
        let vc = verdict(a).map_err(|e| errs.push(format!("C: {e}")));
        let vr = verdict(b).map_err(|e| errs.push(format!("Rust: {e}")));
        let mut note = String::new();
        if let (Ok(vc), Ok(vr)) = (vc, vr) {
            match (vc, vr, deviation) {
                (Some(w1), Some(w2), _) => errs.push(format!("skipped on both: {w1}; {w2}")),
                (Some(why), None, Some((_, doc))) => {
                    note = format!(" # Rust only ({doc}): not run on C: {why}");
                    one += 1;
                }
                (None, Some(why), Some((_, doc))) => {
                    note = format!(" # C only ({doc}): not run on Rust: {why}");
                    one += 1;
                }
                (Some(why), None, None) | (None, Some(why), None) => errs.push(format!(
                    "skipped on one driver without a documented reason: {why}"
                )),
                (None, None, Some((_, doc))) => {
                    note = format!(" # deviation {doc}");
                    dev += 1;
                }
                (None, None, None) => {
                    if let Some(msg) = transcript_diff(a, b) {
                        errs.push(msg);
                    } else {
                        same += 1;
                    }
                }
            }
        } else if deviation.is_none() {
            // A failed expectation does not hide a difference in what was observed.
            errs.extend(transcript_diff(a, b));
        }
        if errs.is_empty() {
            println!("ok {} {name}{note}", i + 1);
        } else {
            failed += 1;
            for e in errs {
                println!("# {name}: {e}");
            }
            println!("not ok {} {name}", i + 1);
        }
    }
    println!(
        "# differential: {} cases: {same} identical, {dev} documented deviations, {one} on one driver only, {failed} failed",
        names.len()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Where two drivers' observations of a case differ, if they do (`None` when both are the same
/// or one driver has none: "did not run" is reported by the verdicts).
fn transcript_diff(
    a: Option<&(Vec<String>, Option<String>)>,
    b: Option<&(Vec<String>, Option<String>)>,
) -> Option<String> {
    let (a, b) = (&a?.0, &b?.0);
    if a == b {
        return None;
    }
    for (k, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        if x != y {
            return Some(format!(
                "transcripts differ at step {k}: C `{x}` vs Rust `{y}`"
            ));
        }
    }
    Some(format!("C made {} observations, Rust {}", a.len(), b.len()))
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Run {
            module,
            transcript,
            filter,
            case_timeout,
        } => run(
            module,
            &transcript,
            filter.as_deref(),
            Duration::from_secs(case_timeout),
        ),
        Cmd::Compare { c, rs } => compare(&c, &rs),
        Cmd::Probe => cases::control::probe(),
        Cmd::Stress { cycles } => dev::stress(cycles),
        Cmd::Destroy { name } => tools::destroy(&name),
        Cmd::Create { name } => tools::create(&name),
        Cmd::Open { name } => tools::open(&name),
        Cmd::Scribble { name, queue } => tools::scribble(&name, queue),
        Cmd::LockdepPrime => tools::lockdep_prime(),
        Cmd::Fuzz {
            seed,
            ops,
            transcript,
            vdpa,
        } => match fuzz::ops::run(&fuzz::ops::Opts { seed, ops, vdpa }, &transcript) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                println!("# fuzz: the cleanup left devices behind");
                ExitCode::FAILURE
            }
            Err(e) => {
                println!("# fuzz: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Faults {
            module,
            skip,
            served,
        } => faults::run(&module, &skip, served.as_deref()),
        Cmd::FuzzCompare { c, rs } => match fuzz::compare(&c, &rs) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                println!("# fuzz-compare: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::FuzzDaemon { seed, rounds, ops } => {
            if fuzz::daemon::run(seed, rounds, ops) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::FuzzRace {
            seed,
            threads,
            seconds,
            vdpa,
        } => {
            if fuzz::race::run(seed, threads, seconds, vdpa) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::List => {
            for case in cases::all() {
                println!("{}", case.name);
            }
            ExitCode::SUCCESS
        }
    }
}
