// SPDX-License-Identifier: GPL-2.0

//! vduse-tests: differential conformance tests for VDUSE drivers.
//!
//! `vduse-tests run --module c|rs --transcript FILE` runs every case against the VDUSE driver
//! loaded now, prints KTAP and writes what each case observed to FILE. `vduse-tests compare
//! C_FILE RS_FILE` then checks that both drivers were observed doing the same thing, case by
//! case, except for the documented deviations. `tools/testing/differential.sh` does both in one
//! VM boot.

mod cases;
mod dev;
mod harness;
mod sys;

use clap::{Parser, Subcommand};
use harness::{Ctx, Module, DEVIATIONS};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

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
}

fn run(module: Module, transcript: &std::path::Path, filter: Option<&str>) -> ExitCode {
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
    let mut failed = 0;
    for (i, case) in cases.iter().enumerate() {
        let mut ctx = Ctx::new(module);
        (case.run)(&mut ctx);
        for line in &ctx.transcript {
            let _ = writeln!(out, "{}\t{}", case.name, line);
        }
        if ctx.transcript.is_empty() {
            let _ = writeln!(out, "{}\t(no observations)", case.name);
        }
        if ctx.failures.is_empty() {
            println!("ok {} {}", i + 1, case.name);
        } else {
            failed += 1;
            for f in &ctx.failures {
                println!("# {}: {f}", case.name);
            }
            println!("not ok {} {}", i + 1, case.name);
        }
    }
    let _ = out.flush();
    println!(
        "# {module:?}: {} passed, {failed} failed",
        cases.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn load(path: &std::path::Path) -> Option<BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| eprintln!("cannot read {}: {e}", path.display()))
        .ok()?;
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let (case, obs) = line.split_once('\t').unwrap_or((line, ""));
        map.entry(case.to_string())
            .or_default()
            .push(obs.to_string());
    }
    Some(map)
}

fn compare(c: &std::path::Path, rs: &std::path::Path) -> ExitCode {
    let (Some(c), Some(rs)) = (load(c), load(rs)) else {
        return ExitCode::FAILURE;
    };
    let names: Vec<&String> = c
        .keys()
        .chain(rs.keys().filter(|k| !c.contains_key(*k)))
        .collect();
    println!("KTAP version 1");
    println!("# differential: C vduse.ko vs vduse_rs.ko");
    println!("1..{}", names.len());
    let mut failed = 0;
    for (i, name) in names.iter().enumerate() {
        let deviation = DEVIATIONS.iter().find(|(case, _)| *case == name.as_str());
        let (a, b) = (c.get(*name), rs.get(*name));
        let verdict = match (a, b, deviation) {
            (Some(_), Some(_), Some((_, doc))) => Ok(format!(" # deviation {doc}")),
            (Some(a), Some(b), None) if a == b => Ok(String::new()),
            (Some(a), Some(b), None) => {
                let mut msg = String::new();
                for (k, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                    if x != y {
                        msg = format!("step {k}: C `{x}` vs Rust `{y}`");
                        break;
                    }
                }
                if msg.is_empty() {
                    msg = format!("C made {} observations, Rust {}", a.len(), b.len());
                }
                Err(msg)
            }
            (None, _, _) => Err("not run on C".to_string()),
            (_, None, _) => Err("not run on Rust".to_string()),
        };
        match verdict {
            Ok(note) => println!("ok {} {name}{note}", i + 1),
            Err(msg) => {
                failed += 1;
                println!("# {name}: {msg}");
                println!("not ok {} {name}", i + 1);
            }
        }
    }
    println!(
        "# differential: {} same, {failed} different",
        names.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Run {
            module,
            transcript,
            filter,
        } => run(module, &transcript, filter.as_deref()),
        Cmd::Compare { c, rs } => compare(&c, &rs),
        Cmd::Probe => cases::control::probe(),
        Cmd::Stress { cycles } => dev::stress(cycles),
        Cmd::List => {
            for case in cases::all() {
                println!("{}", case.name);
            }
            ExitCode::SUCCESS
        }
    }
}
