// SPDX-License-Identifier: GPL-2.0

//! `/sys/class/vduse/NAME`: `msg_timeout`, `bounce_size`, `vqN/irq_cb_affinity`.

use super::support::*;
use crate::dev::*;
use crate::harness::{Case, Ctx};
use std::io::Write;

/// Reads a sysfs file; `Err(errno)` if it cannot be read.
fn read(path: &str) -> Result<String, i32> {
    std::fs::read_to_string(path).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// Writes `value` to a sysfs file in one write; returns the bytes written or the errno.
fn write(path: &str, value: &str) -> Result<i64, i32> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.raw_os_error().unwrap_or(0))?;
    f.write(value.as_bytes())
        .map(|n| n as i64)
        .map_err(|e| e.raw_os_error().unwrap_or(0))
}

fn layout(c: &mut Ctx) {
    let mut cfg = DevConfig::blk("t-sys");
    cfg.vq_num = 3;
    let Some(_g) = create_ok(c, Some(0), &cfg) else {
        return;
    };
    let mut entries: Vec<String> = std::fs::read_dir("/sys/class/vduse/t-sys")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "power" && n != "subsystem" && n != "uevent")
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    c.expect_eq(
        "entries of /sys/class/vduse/t-sys",
        entries,
        ["bounce_size", "dev", "msg_timeout", "vq0", "vq1", "vq2"]
            .map(String::from)
            .to_vec(),
    );
    let mut vq: Vec<String> = std::fs::read_dir("/sys/class/vduse/t-sys/vq1")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    vq.sort();
    c.expect_eq("entries of vq1", vq, vec!["irq_cb_affinity".to_string()]);
    let mode = |p: &str| {
        std::fs::metadata(p)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0)
    };
    c.expect_eq(
        "msg_timeout mode",
        mode("/sys/class/vduse/t-sys/msg_timeout"),
        0o644,
    );
    c.expect_eq(
        "bounce_size mode",
        mode("/sys/class/vduse/t-sys/bounce_size"),
        0o644,
    );
    c.expect_eq(
        "irq_cb_affinity mode",
        mode("/sys/class/vduse/t-sys/vq0/irq_cb_affinity"),
        0o644,
    );
    let dev = read("/sys/class/vduse/t-sys/dev").unwrap_or_default();
    c.expect_eq(
        "dev minor",
        dev.trim_end().rsplit(':').next().map(String::from),
        Some("1".to_string()),
    );
}

fn no_vqs(c: &mut Ctx) {
    let mut cfg = DevConfig::blk("t-novq");
    cfg.vq_num = 0;
    let Some(_g) = create_ok(c, Some(0), &cfg) else {
        return;
    };
    c.expect_eq(
        "vq0 exists",
        std::path::Path::new("/sys/class/vduse/t-novq/vq0").exists(),
        false,
    );
}

/// `(label, file, value to write, expected write result, expected read back)`.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Result<i64, i32>,
    &'static str,
);
const ROWS: &[Row] = &[
    ("msg_timeout_default", "msg_timeout", "", Ok(0), "30\n"),
    ("msg_timeout_5", "msg_timeout", "5", Ok(1), "5\n"),
    ("msg_timeout_newline", "msg_timeout", "7\n", Ok(2), "7\n"),
    ("msg_timeout_0", "msg_timeout", "0", Ok(1), "0\n"),
    (
        "msg_timeout_u32_max",
        "msg_timeout",
        "4294967295",
        Ok(10),
        "4294967295\n",
    ),
    (
        "msg_timeout_overflow",
        "msg_timeout",
        "4294967296",
        Err(libc::ERANGE),
        "30\n",
    ),
    (
        "msg_timeout_negative",
        "msg_timeout",
        "-1",
        Err(libc::EINVAL),
        "30\n",
    ),
    (
        "msg_timeout_text",
        "msg_timeout",
        "abc",
        Err(libc::EINVAL),
        "30\n",
    ),
    (
        "msg_timeout_leading_space",
        "msg_timeout",
        " 7",
        Err(libc::EINVAL),
        "30\n",
    ),
    (
        "msg_timeout_hex",
        "msg_timeout",
        "0x10",
        Err(libc::EINVAL),
        "30\n",
    ),
    (
        "bounce_size_default",
        "bounce_size",
        "",
        Ok(0),
        "67108864\n",
    ),
    (
        "bounce_size_min",
        "bounce_size",
        "1048576",
        Ok(7),
        "1048576\n",
    ),
    (
        "bounce_size_max",
        "bounce_size",
        "1073741824",
        Ok(10),
        "1073741824\n",
    ),
    (
        "bounce_size_below_min",
        "bounce_size",
        "1048575",
        Err(libc::EINVAL),
        "67108864\n",
    ),
    (
        "bounce_size_above_max",
        "bounce_size",
        "1073741825",
        Err(libc::EINVAL),
        "67108864\n",
    ),
    (
        "bounce_size_page_rounded",
        "bounce_size",
        "1052671",
        Ok(7),
        "1048576\n",
    ),
    (
        "bounce_size_text",
        "bounce_size",
        "1M",
        Err(libc::EINVAL),
        "67108864\n",
    ),
    (
        "bounce_size_overflow",
        "bounce_size",
        "99999999999",
        Err(libc::ERANGE),
        "67108864\n",
    ),
    (
        "irq_cb_affinity_cpu0",
        "vq0/irq_cb_affinity",
        "1",
        Ok(1),
        "1\n",
    ),
    (
        "irq_cb_affinity_empty_mask",
        "vq0/irq_cb_affinity",
        "0",
        Err(libc::EINVAL),
        "3\n",
    ),
    (
        "irq_cb_affinity_text",
        "vq0/irq_cb_affinity",
        "zz",
        Err(libc::EINVAL),
        "3\n",
    ),
    (
        "irq_cb_affinity_beyond_nr_cpu_ids",
        "vq0/irq_cb_affinity",
        "4",
        Err(libc::EOVERFLOW),
        "3\n",
    ),
    (
        "irq_cb_affinity_too_wide",
        "vq0/irq_cb_affinity",
        "100000000",
        Err(libc::EOVERFLOW),
        "3\n",
    ),
];

fn row(c: &mut Ctx, i: usize, r: Row) {
    let (_, file, value, want, back) = r;
    let name = format!("t-sysrow{i}");
    let Some(_g) = create_ok(c, Some(0), &DevConfig::blk(&name)) else {
        return;
    };
    let path = format!("/sys/class/vduse/{name}/{file}");
    if !value.is_empty() {
        let got = write(&path, value);
        c.expect_eq(&format!("write({value:?})"), got, want);
    }
    c.expect_eq("read back", read(&path), Ok(back.to_string()));
}

/// The cases of this file. The affinity rows assume a 2-CPU guest (`tools/vm-run` default).
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::new("sysfs/layout", layout),
        Case::new("sysfs/no_vqs", no_vqs),
    ];
    for (i, &r) in ROWS.iter().enumerate() {
        v.push(Case::new(format!("sysfs/{}", r.0), move |c: &mut Ctx| {
            row(c, i, r)
        }));
    }
    v
}
