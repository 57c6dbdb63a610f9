// SPDX-License-Identifier: GPL-2.0

//! Ioctls and read/write/poll on `/dev/vduse/NAME`, before the device is on the vDPA bus.

use super::support::*;
use crate::dev::*;
use crate::harness::{Case, Ctx};
use crate::sys::{self, Fd, Ret};
use crate::sys::{
    VDUSE_CREATE_DEV, VDUSE_DEV_GET_FEATURES, VDUSE_DEV_SET_CONFIG, VDUSE_IOTLB_DEREG_UMEM,
    VDUSE_IOTLB_GET_FD2, VDUSE_IOTLB_GET_INFO, VDUSE_IOTLB_REG_UMEM, VDUSE_VQ_GET_INFO,
    VDUSE_VQ_INJECT_IRQ, VDUSE_VQ_SETUP, VDUSE_VQ_SETUP_KICKFD,
};

/// A device fd for `name` on API `api`, run `f` with it.
fn on_dev(c: &mut Ctx, api: u64, name: &str, f: impl FnOnce(&mut Ctx, &Fd)) {
    if let Some((_g, fd)) = with_open_dev(c, Some(api), name) {
        f(c, &fd);
    }
}

fn set_config(fd: &Fd, offset: u32, length: u32, data: &[u8]) -> Ret {
    let mut b = Vec::new();
    b.extend_from_slice(&offset.to_ne_bytes());
    b.extend_from_slice(&length.to_ne_bytes());
    b.extend_from_slice(data);
    sys::ioctl(fd.0, VDUSE_DEV_SET_CONFIG, b.as_mut_ptr() as usize)
}

fn vq_setup(fd: &Fd, index: u32, max: u16, group: u32, r1: u16, r2: u16) -> Ret {
    let mut b = Vec::new();
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&max.to_ne_bytes());
    b.extend_from_slice(&r1.to_ne_bytes());
    b.extend_from_slice(&group.to_ne_bytes());
    let mut r = [0u16; 10];
    r[9] = r2;
    for w in r {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    sys::ioctl(fd.0, VDUSE_VQ_SETUP, b.as_mut_ptr() as usize)
}

/// `VDUSE_VQ_GET_INFO` with `index` and the other 44 bytes filled with `fill`.
fn vq_info(fd: &Fd, index: u32, fill: u8) -> (Ret, Vec<u8>) {
    let mut b = vec![fill; 48];
    b[..4].copy_from_slice(&index.to_ne_bytes());
    let r = sys::ioctl(fd.0, VDUSE_VQ_GET_INFO, b.as_mut_ptr() as usize);
    (r, b)
}

fn kickfd(fd: &Fd, index: u32, efd: i32) -> Ret {
    let mut b = Vec::new();
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&efd.to_ne_bytes());
    sys::ioctl(fd.0, VDUSE_VQ_SETUP_KICKFD, b.as_mut_ptr() as usize)
}

fn u32_arg(fd: &Fd, cmd: u32, v: u32) -> Ret {
    let mut v = v;
    sys::ioctl_ptr(fd.0, cmd, &mut v)
}

fn get_features(c: &mut Ctx) {
    on_dev(c, 0, "t-getf", |c, fd| {
        let mut f: u64 = 0xdead;
        c.expect(
            "DEV_GET_FEATURES",
            sys::ioctl_ptr(fd.0, VDUSE_DEV_GET_FEATURES, &mut f),
            Ok(0),
        );
        c.expect_eq("driver features before any driver", f, 0);
        c.expect(
            "DEV_GET_FEATURES(NULL)",
            sys::ioctl(fd.0, VDUSE_DEV_GET_FEATURES, 0),
            Err(libc::EFAULT),
        );
    });
}

/// `(label, offset, length, expected)` for a device with 8 bytes of config space.
const SET_CONFIG_ROWS: &[(&str, u32, u32, i32)] = &[
    ("whole", 0, 8, 0),
    ("last_byte", 7, 1, 0),
    ("middle", 2, 4, 0),
    ("offset_at_end_len_1", 8, 1, libc::EINVAL),
    ("offset_past_end", 9, 1, libc::EINVAL),
    ("length_0", 0, 0, libc::EINVAL),
    ("length_past_end", 0, 9, libc::EINVAL),
    ("offset_u32_max", u32::MAX, 1, libc::EINVAL),
    ("length_u32_max", 4, u32::MAX, libc::EINVAL),
    ("wrap_offset_plus_length", 1, u32::MAX, libc::EINVAL),
];

fn set_config_row(c: &mut Ctx, i: usize, off: u32, len: u32, want: i32) {
    on_dev(c, 0, &format!("t-cfg{i}"), |c, fd| {
        let data = vec![0xa5u8; 16];
        let want = if want == 0 { Ok(0) } else { Err(want) };
        c.expect("DEV_SET_CONFIG", set_config(fd, off, len, &data), want);
    });
}

fn set_config_efault(c: &mut Ctx) {
    on_dev(c, 0, "t-cfgfault", |c, fd| {
        c.expect(
            "DEV_SET_CONFIG(NULL)",
            sys::ioctl(fd.0, VDUSE_DEV_SET_CONFIG, 0),
            Err(libc::EFAULT),
        );
    });
}

fn set_config_no_space(c: &mut Ctx) {
    let mut cfg = DevConfig::blk("t-cfg0size");
    cfg.config.clear();
    let Some(_g) = create_ok(c, Some(0), &cfg) else {
        return;
    };
    let Ok(fd) = c.expect_ok("open", open_dev("t-cfg0size", libc::O_RDWR)) else {
        return;
    };
    let fd = Fd(fd as i32);
    c.expect(
        "DEV_SET_CONFIG(0, 1) on empty space",
        set_config(&fd, 0, 1, &[1]),
        Err(libc::EINVAL),
    );
    c.expect(
        "DEV_SET_CONFIG(0, 0) on empty space",
        set_config(&fd, 0, 0, &[]),
        Err(libc::EINVAL),
    );
}

fn inject_config_irq(c: &mut Ctx) {
    on_dev(c, 0, "t-cirq", |c, fd| {
        c.expect(
            "DEV_INJECT_CONFIG_IRQ before DRIVER_OK",
            sys::ioctl(fd.0, crate::sys::VDUSE_DEV_INJECT_CONFIG_IRQ, 0),
            Err(libc::EINVAL),
        );
    });
}

/// `(label, api, index, max, group, reserved1, reserved2, expected)`; devices have 2 queues
/// and, under API 1, one group.
type VqRow = (&'static str, u64, u32, u16, u32, u16, u16, i32);
const VQ_SETUP_ROWS: &[VqRow] = &[
    ("v0_ok", 0, 0, 256, 0, 0, 0, 0),
    ("v0_last_queue", 0, 1, 128, 0, 0, 0, 0),
    ("v0_max_0", 0, 0, 0, 0, 0, 0, 0),
    ("v0_max_0xffff", 0, 0, 0xffff, 0, 0, 0, 0),
    ("v0_index_out_of_range", 0, 2, 256, 0, 0, 0, libc::EINVAL),
    ("v0_index_u32_max", 0, u32::MAX, 256, 0, 0, 0, libc::EINVAL),
    ("v0_group_1", 0, 0, 256, 1, 0, 0, libc::EINVAL),
    ("v0_reserved1", 0, 0, 256, 0, 1, 0, libc::EINVAL),
    ("v0_reserved2", 0, 0, 256, 0, 0, 1, libc::EINVAL),
    ("v1_ok", 1, 0, 256, 0, 0, 0, 0),
    ("v1_group_eq_ngroups", 1, 0, 256, 1, 0, 0, libc::EINVAL),
    ("v1_reserved2", 1, 1, 256, 0, 0, 7, libc::EINVAL),
];

fn vq_setup_row(c: &mut Ctx, i: usize, row: VqRow) {
    let (_, api, index, max, group, r1, r2, want) = row;
    on_dev(c, api, &format!("t-vqs{i}"), |c, fd| {
        let want = if want == 0 { Ok(0) } else { Err(want) };
        c.expect("VQ_SETUP", vq_setup(fd, index, max, group, r1, r2), want);
    });
}

fn vq_setup_efault(c: &mut Ctx) {
    on_dev(c, 0, "t-vqsf", |c, fd| {
        c.expect(
            "VQ_SETUP(NULL)",
            sys::ioctl(fd.0, VDUSE_VQ_SETUP, 0),
            Err(libc::EFAULT),
        );
    });
}

fn vq_get_info(c: &mut Ctx) {
    on_dev(c, 0, "t-vqinfo", |c, fd| {
        c.expect("VQ_SETUP(0, 256)", vq_setup(fd, 0, 256, 0, 0, 0), Ok(0));
        for fill in [0u8, 0xee] {
            let (r, b) = vq_info(fd, 0, fill);
            c.expect(&format!("VQ_GET_INFO(0), fill {fill:#x}"), r, Ok(0));
            // The whole struct, tail padding included. 7.3 copies the caller's struct in,
            // sets the fields and copies it all back: for a split ring only avail_index
            // (bytes 32..34) of the union is written, so 34..40 and the tail padding
            // 41..48 keep the caller's bytes; anything else there would be kernel memory.
            c.expect_eq(
                &format!("vq_info all 48 bytes, fill {fill:#x}"),
                b.clone(),
                {
                    let mut want = vec![0u8; 48];
                    want[34..40].fill(fill);
                    want[41..48].fill(fill);
                    want
                },
            );
        }
        let (r, _) = vq_info(fd, 2, 0);
        c.expect("VQ_GET_INFO(2)", r, Err(libc::EINVAL));
        let (r, _) = vq_info(fd, u32::MAX, 0);
        c.expect("VQ_GET_INFO(u32::MAX)", r, Err(libc::EINVAL));
        c.expect(
            "VQ_GET_INFO(NULL)",
            sys::ioctl(fd.0, VDUSE_VQ_GET_INFO, 0),
            Err(libc::EFAULT),
        );
    });
}

fn kickfd_eventfd(c: &mut Ctx) {
    on_dev(c, 0, "t-kick", |c, fd| {
        // SAFETY: Creating an eventfd.
        let efd = Fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) });
        c.expect("VQ_SETUP_KICKFD(0, eventfd)", kickfd(fd, 0, efd.0), Ok(0));
        c.expect(
            "VQ_SETUP_KICKFD(0, eventfd) again",
            kickfd(fd, 0, efd.0),
            Ok(0),
        );
        c.expect("VQ_SETUP_KICKFD(1, eventfd)", kickfd(fd, 1, efd.0), Ok(0));
        c.expect("VQ_SETUP_KICKFD(0, -1)", kickfd(fd, 0, -1), Ok(0));
        c.expect("VQ_SETUP_KICKFD(0, -1) again", kickfd(fd, 0, -1), Ok(0));
        c.expect(
            "VQ_SETUP_KICKFD(2, eventfd)",
            kickfd(fd, 2, efd.0),
            Err(libc::EINVAL),
        );
        c.expect(
            "VQ_SETUP_KICKFD(2, -1)",
            kickfd(fd, 2, -1),
            Err(libc::EINVAL),
        );
        let mut pending: u64 = 0;
        // SAFETY: Non-blocking probe read of 8 bytes from the eventfd.
        let n = unsafe {
            libc::fcntl(efd.0, libc::F_SETFL, libc::O_NONBLOCK);
            libc::read(efd.0, (&mut pending as *mut u64).cast(), 8)
        };
        c.expect_eq("no kick was signalled", n, -1);
    });
}

fn kickfd_bad_fds(c: &mut Ctx) {
    on_dev(c, 0, "t-kickbad", |c, fd| {
        c.expect(
            "VQ_SETUP_KICKFD(0, 9999)",
            kickfd(fd, 0, 9999),
            Err(libc::EBADF),
        );
        let null = sys::open("/dev/null", libc::O_RDONLY).map(|f| Fd(f as i32));
        if let Ok(null) = null {
            c.expect(
                "VQ_SETUP_KICKFD(0, /dev/null)",
                kickfd(fd, 0, null.0),
                Err(libc::EINVAL),
            );
        }
        c.expect(
            "VQ_SETUP_KICKFD(NULL)",
            sys::ioctl(fd.0, VDUSE_VQ_SETUP_KICKFD, 0),
            Err(libc::EFAULT),
        );
    });
}

/// fd < -1: 7.3 returns success and does nothing; vduse_rs returns `EINVAL`
/// (Documentation/differences.rst, D1).
fn kickfd_negative(c: &mut Ctx) {
    let want = match c.module {
        crate::harness::Module::C => Ok(0),
        crate::harness::Module::Rs => Err(libc::EINVAL),
    };
    on_dev(c, 0, "t-kickneg", |c, fd| {
        c.expect("VQ_SETUP_KICKFD(0, -2)", kickfd(fd, 0, -2), want);
        c.expect(
            "VQ_SETUP_KICKFD(0, i32::MIN)",
            kickfd(fd, 0, i32::MIN),
            want,
        );
    });
}

fn inject_vq_irq(c: &mut Ctx) {
    on_dev(c, 0, "t-vqirq", |c, fd| {
        c.expect(
            "VQ_INJECT_IRQ(0) before DRIVER_OK",
            u32_arg(fd, VDUSE_VQ_INJECT_IRQ, 0),
            Err(libc::EINVAL),
        );
        c.expect(
            "VQ_INJECT_IRQ(2)",
            u32_arg(fd, VDUSE_VQ_INJECT_IRQ, 2),
            Err(libc::EINVAL),
        );
        c.expect(
            "VQ_INJECT_IRQ(NULL)",
            sys::ioctl(fd.0, VDUSE_VQ_INJECT_IRQ, 0),
            Err(libc::EFAULT),
        );
    });
}

fn iotlb_get_fd(c: &mut Ctx) {
    on_dev(c, 0, "t-getfd", |c, fd| {
        let mut e = entry_v2(0, 0xfff, 0, 0);
        c.expect(
            "IOTLB_GET_FD([0, 0xfff]) without a domain",
            sys::ioctl(
                fd.0,
                crate::sys::VDUSE_IOTLB_GET_FD,
                e.as_mut_ptr() as usize,
            ),
            Err(libc::EINVAL),
        );
        let mut e = entry_v2(0x1000, 0, 0, 0);
        c.expect(
            "IOTLB_GET_FD(start > last)",
            sys::ioctl(
                fd.0,
                crate::sys::VDUSE_IOTLB_GET_FD,
                e.as_mut_ptr() as usize,
            ),
            Err(libc::EINVAL),
        );
        c.expect(
            "IOTLB_GET_FD(NULL)",
            sys::ioctl(fd.0, crate::sys::VDUSE_IOTLB_GET_FD, 0),
            Err(libc::EFAULT),
        );
        let mut e = entry_v2(0, 0xfff, 0, 0);
        c.expect(
            "IOTLB_GET_FD2 on a v0 device",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize),
            Err(libc::ENOTTY),
        );
    });
}

fn iotlb_get_fd2(c: &mut Ctx) {
    on_dev(c, 1, "t-getfd2", |c, fd| {
        for (what, mut e, want) in [
            (
                "IOTLB_GET_FD2 without a domain",
                entry_v2(0, 0xfff, 0, 0),
                libc::EINVAL,
            ),
            (
                "IOTLB_GET_FD2(reserved)",
                entry_v2(0, 0xfff, 0, 1),
                libc::EINVAL,
            ),
            (
                "IOTLB_GET_FD2(asid = nas)",
                entry_v2(0, 0xfff, 1, 0),
                libc::EINVAL,
            ),
            (
                "IOTLB_GET_FD2(start > last)",
                entry_v2(2, 1, 0, 0),
                libc::EINVAL,
            ),
        ] {
            c.expect(
                what,
                sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize),
                Err(want),
            );
        }
        c.expect(
            "IOTLB_GET_FD2(NULL)",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, 0),
            Err(libc::EFAULT),
        );
    });
}

fn umem(c: &mut Ctx) {
    for api in [0u64, 1] {
        on_dev(c, api, &format!("t-umem{api}"), |c, fd| {
            let mut u = iova48(0x1000, 0, 64 << 20, 0, 0);
            c.expect(
                &format!("v{api}: REG_UMEM without a domain"),
                sys::ioctl(fd.0, VDUSE_IOTLB_REG_UMEM, u.as_mut_ptr() as usize),
                Err(libc::EINVAL),
            );
            let mut u = iova48(0x1000, 0, 64 << 20, 0, 1);
            c.expect(
                &format!("v{api}: REG_UMEM(reserved)"),
                sys::ioctl(fd.0, VDUSE_IOTLB_REG_UMEM, u.as_mut_ptr() as usize),
                Err(libc::EINVAL),
            );
            let mut u = iova48(0x1000, 0, 64 << 20, 1, 0);
            c.expect(
                &format!("v{api}: REG_UMEM(asid 1)"),
                sys::ioctl(fd.0, VDUSE_IOTLB_REG_UMEM, u.as_mut_ptr() as usize),
                Err(libc::EINVAL),
            );
            let mut u = iova48(0, 0, 64 << 20, 0, 0);
            c.expect(
                &format!("v{api}: DEREG_UMEM nothing registered"),
                sys::ioctl(fd.0, VDUSE_IOTLB_DEREG_UMEM, u.as_mut_ptr() as usize),
                Err(libc::ENOENT),
            );
            let mut u = iova48(0, 0, 64 << 20, 0, 1);
            c.expect(
                &format!("v{api}: DEREG_UMEM(reserved)"),
                sys::ioctl(fd.0, VDUSE_IOTLB_DEREG_UMEM, u.as_mut_ptr() as usize),
                Err(libc::EINVAL),
            );
            let mut u = iova48(0, 0, 64 << 20, 1, 0);
            c.expect(
                &format!("v{api}: DEREG_UMEM(asid 1)"),
                sys::ioctl(fd.0, VDUSE_IOTLB_DEREG_UMEM, u.as_mut_ptr() as usize),
                Err(libc::EINVAL),
            );
            c.expect(
                &format!("v{api}: REG_UMEM(NULL)"),
                sys::ioctl(fd.0, VDUSE_IOTLB_REG_UMEM, 0),
                Err(libc::EFAULT),
            );
            c.expect(
                &format!("v{api}: DEREG_UMEM(NULL)"),
                sys::ioctl(fd.0, VDUSE_IOTLB_DEREG_UMEM, 0),
                Err(libc::EFAULT),
            );
        });
    }
}

fn get_info(c: &mut Ctx) {
    on_dev(c, 1, "t-info", |c, fd| {
        let mut i = iova48(0, 0xfff, 0, 0, 0);
        c.expect(
            "IOTLB_GET_INFO without a domain",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize),
            Err(libc::EINVAL),
        );
        c.expect(
            "IOTLB_GET_INFO(NULL)",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, 0),
            Err(libc::EFAULT),
        );
    });
}

/// Bad `reserved` or `asid` in `IOTLB_GET_INFO`: 7.3 returns `EFAULT`, vduse_rs `EINVAL`
/// (Documentation/differences.rst, D2).
fn get_info_bad_args(c: &mut Ctx) {
    let want = match c.module {
        crate::harness::Module::C => Err(libc::EFAULT),
        crate::harness::Module::Rs => Err(libc::EINVAL),
    };
    on_dev(c, 1, "t-infobad", |c, fd| {
        let mut i = iova48(0, 0xfff, 0, 0, 1);
        c.expect(
            "IOTLB_GET_INFO(reserved)",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize),
            want,
        );
        let mut i = iova48(0, 0xfff, 0, 1, 0);
        c.expect(
            "IOTLB_GET_INFO(asid = nas)",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize),
            want,
        );
    });
    on_dev(c, 0, "t-infobad0", |c, fd| {
        let mut i = iova48(0, 0xfff, 0, 1, 0);
        c.expect(
            "v0: IOTLB_GET_INFO(asid 1)",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize),
            want,
        );
    });
}

fn unknown_ioctls(c: &mut Ctx) {
    on_dev(c, 0, "t-unknown", |c, fd| {
        let mut buf = [0u8; 512];
        let p = buf.as_mut_ptr() as usize;
        for (name, cmd) in [
            ("cmd 0", 0u32),
            (
                "GET_API_VERSION on a device",
                crate::sys::VDUSE_GET_API_VERSION,
            ),
            ("CREATE_DEV on a device", VDUSE_CREATE_DEV),
            ("_IO(0x81, 0x1c)", crate::sys::ioc(0, 0x81, 0x1c, 0)),
            (
                "VQ_SETUP with a wrong size",
                crate::sys::ioc(1, 0x81, 0x14, 16),
            ),
        ] {
            c.expect(name, sys::ioctl(fd.0, cmd, p), Err(libc::ENOTTY));
        }
    });
}

fn read_write_poll(c: &mut Ctx) {
    on_dev(c, 0, "t-rw", |c, fd| {
        let mut buf = vec![0u8; 152];
        c.expect(
            "read(151 bytes)",
            sys::read(fd.0, &mut buf[..151]),
            Err(libc::EINVAL),
        );
        c.expect(
            "write(151 bytes)",
            sys::write(fd.0, &buf[..151]),
            Err(libc::EINVAL),
        );
        c.expect(
            "write(response to unknown id)",
            sys::write(fd.0, &buf),
            Err(libc::ENOENT),
        );
        let mut resp = vec![0u8; 152];
        resp[8] = 1;
        c.expect(
            "write(reserved set)",
            sys::write(fd.0, &resp),
            Err(libc::EINVAL),
        );
        let mut big = vec![0u8; 300];
        big[0] = 7;
        c.expect(
            "write(300 bytes, unknown id)",
            sys::write(fd.0, &big),
            Err(libc::ENOENT),
        );
        c.expect(
            "poll(IN|OUT)",
            poll(fd, libc::POLLIN | libc::POLLOUT, 0),
            Ok(0),
        );
        c.expect("lseek", sys::lseek(fd.0, 10, libc::SEEK_SET), Ok(0));
        c.expect(
            "mmap",
            sys::mmap_probe(fd.0, 4096, libc::PROT_READ),
            Err(libc::ENODEV),
        );
    });
}

fn poll(fd: &Fd, events: i16, timeout: i32) -> Ret {
    Ok(i64::from(sys::poll_fd(fd.0, events, timeout).revents))
}

fn read_nonblock(c: &mut Ctx) {
    let Some(_g) = create_ok(c, Some(0), &DevConfig::blk("t-nb")) else {
        return;
    };
    let r = open_dev("t-nb", libc::O_RDWR | libc::O_NONBLOCK);
    let Ok(fd) = c.expect_ok("open(O_NONBLOCK)", r) else {
        return;
    };
    let fd = Fd(fd as i32);
    let mut buf = vec![0u8; 152];
    c.expect(
        "read with nothing pending",
        sys::read(fd.0, &mut buf),
        Err(libc::EAGAIN),
    );
    let mut big = vec![0u8; 4096];
    c.expect(
        "read(4096) with nothing pending",
        sys::read(fd.0, &mut big),
        Err(libc::EAGAIN),
    );
}

extern "C" fn on_alarm(_: i32) {}

fn read_blocking_eintr(c: &mut Ctx) {
    on_dev(c, 0, "t-block", |c, fd| {
        // SAFETY: A handler without SA_RESTART, so the read returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_alarm as *const () as usize;
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
            libc::alarm(1);
        }
        let mut buf = vec![0u8; 152];
        c.expect(
            "blocking read, interrupted",
            sys::read(fd.0, &mut buf),
            Err(libc::EINTR),
        );
    });
}

/// The cases of this file.
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::new("device/get_features", get_features),
        Case::new("device/set_config_efault", set_config_efault),
        Case::new("device/set_config_empty_space", set_config_no_space),
        Case::new("device/inject_config_irq_einval", inject_config_irq),
        Case::new("device/vq_setup_efault", vq_setup_efault),
        Case::new("device/vq_get_info", vq_get_info),
        Case::new("device/kickfd_eventfd", kickfd_eventfd),
        Case::new("device/kickfd_bad_fds", kickfd_bad_fds),
        Case::new("device/kickfd_negative_fd", kickfd_negative),
        Case::new("device/vq_inject_irq_einval", inject_vq_irq),
        Case::new("device/iotlb_get_fd", iotlb_get_fd),
        Case::new("device/iotlb_get_fd2", iotlb_get_fd2),
        Case::new("device/umem", umem),
        Case::new("device/iotlb_get_info", get_info),
        Case::new("device/iotlb_get_info_bad_args", get_info_bad_args),
        Case::new("device/unknown_ioctls_enotty", unknown_ioctls),
        Case::new("device/read_write_poll", read_write_poll),
        Case::new("device/read_nonblock_eagain", read_nonblock),
        Case::new("device/read_blocking_eintr", read_blocking_eintr),
    ];
    for (i, &(label, off, len, want)) in SET_CONFIG_ROWS.iter().enumerate() {
        v.push(Case::new(
            format!("device/set_config_{label}"),
            move |c: &mut Ctx| set_config_row(c, i, off, len, want),
        ));
    }
    for (i, &row) in VQ_SETUP_ROWS.iter().enumerate() {
        v.push(Case::new(
            format!("device/vq_setup_{}", row.0),
            move |c: &mut Ctx| vq_setup_row(c, i, row),
        ));
    }
    v
}
