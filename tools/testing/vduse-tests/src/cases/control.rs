// SPDX-License-Identifier: GPL-2.0

//! `/dev/vduse/control`: the node, API versions and VDUSE features.

use super::support::open_control;
use crate::dev::{get_api, set_api, set_features};
use crate::harness::{Case, Ctx};
use crate::sys::{
    self, fmt_ret, Fd, CONTROL, VDUSE_BASE, VDUSE_GET_API_VERSION, VDUSE_GET_FEATURES,
};
use crate::sys::{ioc, IOC_NONE, IOC_READ, IOC_WRITE, VDUSE_SET_API_VERSION, VDUSE_SET_FEATURES};

fn expect_version(c: &mut Ctx, fd: &Fd, what: &str, want: u64) {
    let (r, v) = get_api(fd);
    c.expect(what, r, Ok(0));
    c.expect_eq(&format!("{what}.version"), v, want);
}

fn node_exists(c: &mut Ctx) {
    let meta = std::fs::metadata(CONTROL);
    let is_chr = meta
        .as_ref()
        .map(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()))
        .unwrap_or(false);
    c.expect_eq("control is a char device", is_chr, true);
    let minor = meta
        .map(|m| std::os::unix::fs::MetadataExt::rdev(&m) & 0xff)
        .unwrap_or(u64::MAX);
    c.expect_eq("control minor", minor, 0);
    let sys_dev = std::fs::read_to_string("/sys/class/vduse/control/dev").unwrap_or_default();
    c.expect_eq(
        "/sys/class/vduse/control/dev ends with :0",
        sys_dev.trim_end().ends_with(":0"),
        true,
    );
    let devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    c.expect_eq(
        "/proc/devices lists vduse",
        devices
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("vduse")),
        true,
    );
}

fn open_twice(c: &mut Ctx) {
    let a = open_control(c);
    let b = open_control(c);
    c.check(a.is_some() && b.is_some(), "control can be opened twice");
}

fn get_latches_v1(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    expect_version(c, &fd, "GET_API_VERSION", 1);
    expect_version(c, &fd, "GET_API_VERSION again", 1);
}

fn set_v0_then_get(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect("SET_API_VERSION(0)", set_api(&fd, 0), Ok(0));
    expect_version(c, &fd, "GET_API_VERSION", 0);
}

fn set_v1_then_get(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect("SET_API_VERSION(1)", set_api(&fd, 1), Ok(0));
    expect_version(c, &fd, "GET_API_VERSION", 1);
}

fn get_then_set_v0(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    expect_version(c, &fd, "GET_API_VERSION", 1);
    c.expect("SET_API_VERSION(0)", set_api(&fd, 0), Ok(0));
    expect_version(c, &fd, "GET_API_VERSION after SET(0)", 0);
}

fn set_v2_einval(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect("SET_API_VERSION(2)", set_api(&fd, 2), Err(libc::EINVAL));
    expect_version(c, &fd, "GET_API_VERSION", 1);
}

fn set_bad_keeps_previous(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect("SET_API_VERSION(0)", set_api(&fd, 0), Ok(0));
    c.expect("SET_API_VERSION(2)", set_api(&fd, 2), Err(libc::EINVAL));
    c.expect(
        "SET_API_VERSION(u64::MAX)",
        set_api(&fd, u64::MAX),
        Err(libc::EINVAL),
    );
    c.expect(
        "SET_API_VERSION(1<<32)",
        set_api(&fd, 1 << 32),
        Err(libc::EINVAL),
    );
    expect_version(c, &fd, "GET_API_VERSION", 0);
}

fn set_v1_then_v0(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect("SET_API_VERSION(1)", set_api(&fd, 1), Ok(0));
    c.expect("SET_API_VERSION(0)", set_api(&fd, 0), Ok(0));
    expect_version(c, &fd, "GET_API_VERSION", 0);
}

fn get_api_efault(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect(
        "GET_API_VERSION(NULL)",
        sys::ioctl(fd.0, VDUSE_GET_API_VERSION, 0),
        Err(libc::EFAULT),
    );
    c.expect(
        "GET_API_VERSION(bad address)",
        sys::ioctl(fd.0, VDUSE_GET_API_VERSION, 8),
        Err(libc::EFAULT),
    );
    expect_version(c, &fd, "GET_API_VERSION", 1);
}

fn set_api_efault(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect("SET_API_VERSION(0)", set_api(&fd, 0), Ok(0));
    c.expect(
        "SET_API_VERSION(NULL)",
        sys::ioctl(fd.0, VDUSE_SET_API_VERSION, 0),
        Err(libc::EFAULT),
    );
    expect_version(c, &fd, "GET_API_VERSION", 0);
}

fn per_fd_version(c: &mut Ctx) {
    let (Some(a), Some(b)) = (open_control(c), open_control(c)) else {
        return;
    };
    c.expect("fd a: SET_API_VERSION(0)", set_api(&a, 0), Ok(0));
    expect_version(c, &b, "fd b: GET_API_VERSION", 1);
    expect_version(c, &a, "fd a: GET_API_VERSION", 0);
}

fn version_not_kept_across_open(c: &mut Ctx) {
    {
        let Some(a) = open_control(c) else { return };
        c.expect("SET_API_VERSION(0)", set_api(&a, 0), Ok(0));
    }
    let Some(b) = open_control(c) else { return };
    expect_version(c, &b, "new fd: GET_API_VERSION", 1);
}

fn get_features(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    let mut f: u64 = 0xdead_beef;
    let r = sys::ioctl_ptr(fd.0, VDUSE_GET_FEATURES, &mut f);
    c.expect("GET_FEATURES", r, Ok(0));
    c.expect_eq("GET_FEATURES.value", f, 0x3);
}

fn get_features_v0_fd(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect("SET_API_VERSION(0)", set_api(&fd, 0), Ok(0));
    let mut f: u64 = 0;
    let r = sys::ioctl_ptr(fd.0, VDUSE_GET_FEATURES, &mut f);
    c.expect("GET_FEATURES on a v0 fd", r, Ok(0));
    c.expect_eq("GET_FEATURES.value", f, 0x3);
}

fn get_features_efault(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect(
        "GET_FEATURES(NULL)",
        sys::ioctl(fd.0, VDUSE_GET_FEATURES, 0),
        Err(libc::EFAULT),
    );
}

fn set_features_subsets(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    for f in [0u64, 1, 2, 3, 3, 0] {
        c.expect(
            &format!("SET_FEATURES({f:#x})"),
            set_features(&fd, f),
            Ok(0),
        );
    }
}

fn set_features_unknown_bits(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    for f in [4u64, 7, 8, 1 << 2, 1 << 31, 1 << 32, 1 << 63, u64::MAX] {
        c.expect(
            &format!("SET_FEATURES({f:#x})"),
            set_features(&fd, f),
            Err(libc::EINVAL),
        );
    }
}

fn set_features_any_version(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect("SET_API_VERSION(0)", set_api(&fd, 0), Ok(0));
    c.expect("v0: SET_FEATURES(0x3)", set_features(&fd, 3), Ok(0));
    c.expect("SET_API_VERSION(1)", set_api(&fd, 1), Ok(0));
    c.expect("v1: SET_FEATURES(0x1)", set_features(&fd, 1), Ok(0));
    let Some(fd2) = open_control(c) else { return };
    c.expect("unasked: SET_FEATURES(0x2)", set_features(&fd2, 2), Ok(0));
    // Setting features does not latch a version.
    expect_version(c, &fd2, "GET_API_VERSION", 1);
}

fn set_features_efault(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    c.expect(
        "SET_FEATURES(NULL)",
        sys::ioctl(fd.0, VDUSE_SET_FEATURES, 0),
        Err(libc::EFAULT),
    );
}

fn unknown_ioctls(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    let mut buf = [0u8; 512];
    let p = buf.as_mut_ptr() as usize;
    let cmds: [(&str, u32); 9] = [
        ("cmd 0", 0),
        ("_IO(0x81, 0x06)", ioc(IOC_NONE, VDUSE_BASE, 0x06, 0)),
        ("_IOR(0x81, 0x00, u32)", ioc(IOC_READ, VDUSE_BASE, 0x00, 4)),
        ("_IOW(0x81, 0x01, u32)", ioc(IOC_WRITE, VDUSE_BASE, 0x01, 4)),
        (
            "_IOWR(0x81, 0x04, u64)",
            ioc(IOC_READ | IOC_WRITE, VDUSE_BASE, 0x04, 8),
        ),
        ("IOTLB_GET_FD on control", crate::sys::VDUSE_IOTLB_GET_FD),
        (
            "DEV_INJECT_CONFIG_IRQ on control",
            crate::sys::VDUSE_DEV_INJECT_CONFIG_IRQ,
        ),
        (
            "_IOR('T', 0x01, int) (TCGETS-like)",
            ioc(IOC_READ, b'T' as u32, 0x01, 4),
        ),
        ("FIONREAD", libc::FIONREAD as u32),
    ];
    for (name, cmd) in cmds {
        c.expect(name, sys::ioctl(fd.0, cmd, p), Err(libc::EINVAL));
    }
}

fn read_write_seek_mmap(c: &mut Ctx) {
    let Some(fd) = open_control(c) else { return };
    let mut buf = [0u8; 16];
    c.expect(
        "read(control)",
        sys::read(fd.0, &mut buf),
        Err(libc::EINVAL),
    );
    c.expect("write(control)", sys::write(fd.0, &buf), Err(libc::EINVAL));
    c.expect(
        "lseek(control, 5, SEEK_SET)",
        sys::lseek(fd.0, 5, libc::SEEK_SET),
        Ok(0),
    );
    c.expect(
        "mmap(control)",
        sys::mmap_probe(fd.0, 4096, libc::PROT_READ),
        Err(libc::ENODEV),
    );
}

fn open_readonly_ok(c: &mut Ctx) {
    let r = c.expect_ok(
        "open(control, O_RDONLY)",
        sys::open(CONTROL, libc::O_RDONLY),
    );
    if let Ok(fd) = r {
        let fd = Fd(fd as i32);
        expect_version(c, &fd, "GET_API_VERSION on O_RDONLY fd", 1);
    }
}

/// Prints what the driver answers to the four control ioctls.
pub fn probe() -> std::process::ExitCode {
    let fd = match sys::open(CONTROL, libc::O_RDWR) {
        Ok(fd) => Fd(fd as i32),
        Err(e) => {
            eprintln!("open {CONTROL}: -{}", sys::errno_name(e));
            return std::process::ExitCode::FAILURE;
        }
    };
    let (r, v) = get_api(&fd);
    println!("VDUSE_GET_API_VERSION = {} -> version {v}", fmt_ret(&r));
    let mut f: u64 = 0;
    let r = sys::ioctl_ptr(fd.0, VDUSE_GET_FEATURES, &mut f);
    println!(
        "VDUSE_GET_FEATURES    = {} -> features {f:#x} (QUEUE_READY={}, SUSPEND={})",
        fmt_ret(&r),
        f & 1,
        (f >> 1) & 1
    );
    println!(
        "VDUSE_SET_FEATURES({f:#x}) = {}",
        fmt_ret(&set_features(&fd, f))
    );
    println!(
        "VDUSE_SET_FEATURES(0x4) = {}",
        fmt_ret(&set_features(&fd, 4))
    );
    println!("VDUSE_SET_API_VERSION(2) = {}", fmt_ret(&set_api(&fd, 2)));
    println!("VDUSE_SET_API_VERSION(0) = {}", fmt_ret(&set_api(&fd, 0)));
    let (r, v) = get_api(&fd);
    println!("VDUSE_GET_API_VERSION = {} -> version {v}", fmt_ret(&r));
    std::process::ExitCode::SUCCESS
}

/// The cases of this file.
pub fn cases() -> Vec<Case> {
    vec![
        Case::new("control/node_exists", node_exists),
        Case::new("control/open_twice", open_twice),
        Case::new("control/open_readonly", open_readonly_ok),
        Case::new("control/get_api_version_latches_v1", get_latches_v1),
        Case::new("control/set_api_version_0", set_v0_then_get),
        Case::new("control/set_api_version_1", set_v1_then_get),
        Case::new("control/get_then_set_api_version_0", get_then_set_v0),
        Case::new("control/set_api_version_1_then_0", set_v1_then_v0),
        Case::new("control/set_api_version_2_einval", set_v2_einval),
        Case::new(
            "control/set_api_version_bad_keeps_previous",
            set_bad_keeps_previous,
        ),
        Case::new("control/get_api_version_efault", get_api_efault),
        Case::new("control/set_api_version_efault", set_api_efault),
        Case::new("control/api_version_per_fd", per_fd_version),
        Case::new(
            "control/api_version_not_kept_across_open",
            version_not_kept_across_open,
        ),
        Case::new("control/get_features", get_features),
        Case::new("control/get_features_on_v0_fd", get_features_v0_fd),
        Case::new("control/get_features_efault", get_features_efault),
        Case::new("control/set_features_subsets", set_features_subsets),
        Case::new(
            "control/set_features_unknown_bits_einval",
            set_features_unknown_bits,
        ),
        Case::new("control/set_features_any_version", set_features_any_version),
        Case::new("control/set_features_efault", set_features_efault),
        Case::new("control/unknown_ioctls_einval", unknown_ioctls),
        Case::new("control/read_write_seek_mmap", read_write_seek_mmap),
    ]
}
