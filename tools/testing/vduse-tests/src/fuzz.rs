// SPDX-License-Identifier: GPL-2.0

//! The VDUSE fuzzer (`vduse-tests fuzz`, `fuzz-compare`, `fuzz-race`; driven by
//! tools/testing/fuzz/run.sh): seeded, reproducible from its seed, bounded in operations or
//! time.
//!
//! - [`ops`]: single-threaded mutated ioctls, reads, writes, sysfs writes on the control and
//!   device nodes, with a transcript that [`compare`] matches between C vduse.ko and vduse_rs.ko
//!   (the differential mode);
//! - [`race`]: threads creating, destroying, opening and using the same devices at once;
//! - [`daemon`]: a daemon answering a vhost-vdpa consumer's requests badly, killed and restarted.

mod arena;
pub mod daemon;
mod gen;
pub mod ops;
pub mod race;

use std::io::BufRead;

/// The documented differences an operation's input can fall under, with the results C and
/// vduse_rs give there (Documentation/differences.rst).
const DIFFERENCES: &[(&str, &str, &str)] = &[("D1", "0", "-EINVAL"), ("D2", "-EFAULT", "-EINVAL")];

/// Fields of a transcript line: number, operation, result, tag.
fn fields(line: &str) -> (&str, &str, &str, &str) {
    let mut it = line.splitn(4, '\t');
    let n = it.next().unwrap_or("");
    let op = it.next().unwrap_or("");
    let res = it.next().unwrap_or("");
    let tag = it.next().unwrap_or("");
    (n, op, res, tag)
}

/// Compares the transcripts of one seed on C (`c`) and on vduse_rs (`rs`); prints the first
/// difference with the operations before it. True if they agree everywhere but in documented
/// differences.
pub fn compare(c: &std::path::Path, rs: &std::path::Path) -> std::io::Result<bool> {
    let open = |p: &std::path::Path| -> std::io::Result<Vec<String>> {
        std::io::BufReader::new(std::fs::File::open(p)?)
            .lines()
            .collect()
    };
    let (a, b) = (open(c)?, open(rs)?);
    let mut documented = std::collections::BTreeMap::<&str, u64>::new();
    let mut compared = 0u64;
    for (i, (la, lb)) in a.iter().zip(b.iter()).enumerate() {
        compared += 1;
        if la == lb {
            continue;
        }
        let (fa, fb) = (fields(la), fields(lb));
        if fa.0 == fb.0 && fa.1 == fb.1 && fa.3 == fb.3 {
            if let Some((tag, _, _)) = DIFFERENCES
                .iter()
                .find(|(t, rc, rr)| *t == fa.3 && *rc == fa.2 && *rr == fb.2)
            {
                *documented.entry(tag).or_default() += 1;
                continue;
            }
        }
        println!("# fuzz-compare: the transcripts differ at line {}:", i + 1);
        for l in &a[i.saturating_sub(5)..i] {
            println!("#   both: {l}");
        }
        println!("#   C:    {la}");
        println!("#   Rust: {lb}");
        return Ok(false);
    }
    if a.len() != b.len() {
        println!(
            "# fuzz-compare: C's transcript has {} lines, Rust's {}",
            a.len(),
            b.len()
        );
        return Ok(false);
    }
    let d: Vec<String> = documented.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "# fuzz-compare: {compared} lines agree; documented differences: {}",
        if d.is_empty() {
            "none".into()
        } else {
            d.join(", ")
        }
    );
    Ok(true)
}
