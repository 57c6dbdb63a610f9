// SPDX-License-Identifier: GPL-2.0

//! Address spaces and the IOTLB: two spaces, the largest `nas` on the bus, the vhost-vdpa
//! IOTLB entry limit.

use super::common::*;
use crate::daemon::*;
use crate::dev::*;
use crate::harness::Ctx;
use crate::sys::{self, Fd, Ret};
use crate::sys::{VDUSE_IOTLB_GET_FD2, VDUSE_IOTLB_GET_INFO, VHOST_VDPA_SET_GROUP_ASID};
use crate::vhost::*;
use crate::Module;

/// API 1 with two virtqueue groups and two address spaces: vhost-vdpa moves group 1 (queue 1)
/// to address space 1 (`VDUSE_SET_VQ_GROUP_ASID`), maps memory there (`VDUSE_UPDATE_IOTLB` with
/// asid 1), and the daemon finds that mapping through `IOTLB_GET_FD2`/`GET_INFO` in address
/// space 1 only.
pub(super) fn two_address_spaces(c: &mut Ctx) {
    let name = "t-v2as";
    let Some((_guard, fd)) = on_vhost_two_spaces(c, name) else {
        return;
    };
    let daemon = Daemon::start(fd.0, Policy::Answer);
    let q = |b: &[u8], i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    // Backend features IOTLB_MSG_V2 | IOTLB_ASID | SUSPEND.
    if let Some(v) = open_vhost(c, name, 0x1a) {
        c.expect(
            "VHOST_VDPA_SET_GROUP_ASID(group 1, asid 1)",
            vring_state(v.0, VHOST_VDPA_SET_GROUP_ASID, 1, 1).0,
            Ok(0),
        );
        c.expect(
            "vhost IOTLB update in asid 1",
            iotlb_update_in(v.0, 1, 0x10_0000, 3).0,
            Ok(72),
        );
        let mut e = entry_v2(0x10_0800, 0x10_0800, 1, 0);
        let r = sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize);
        if let Ok(mfd) = c.expect_ok("IOTLB_GET_FD2(asid 1, [0x100800])", r) {
            drop(Fd(mfd as i32));
        }
        c.expect_eq(
            "asid 1 entry offset, start, last, perm",
            (q(&e, 0), q(&e, 8), q(&e, 16), e[24]),
            (0, 0x10_0000, 0x10_ffff, 3),
        );
        let mut e = entry_v2(0x10_0800, 0x10_0800, 0, 0);
        c.expect(
            "IOTLB_GET_FD2(asid 0, [0x100800])",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize),
            Err(libc::EINVAL),
        );
        let mut i = iova48(0x10_0000, 0x10_0000, 0, 1, 0);
        c.expect(
            "IOTLB_GET_INFO(asid 1, [0x100000])",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize),
            Ok(0),
        );
        c.expect_eq(
            "asid 1 info start, last, capability",
            (q(&i, 0), q(&i, 8), q(&i, 16)),
            (0x10_0000, 0x10_ffff, 0),
        );
        let mut i = iova48(0x10_0000, 0x10_0000, 0, 0, 0);
        c.expect(
            "IOTLB_GET_INFO(asid 0, [0x100000])",
            sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize),
            Err(libc::EINVAL),
        );
    }
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    record_requests(c, &daemon.finish());
}

/// Sum of the `/proc/meminfo` fields `keys`, in KiB.
fn meminfo_kib(keys: &[&str]) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            keys.contains(&k)
                .then(|| v.trim().trim_end_matches(" kB").parse::<u64>().ok())?
        })
        .sum()
}

/// D3: `nas` = 0xffff on the bus. `vdpa dev add` creates address space 0 only (C creates all
/// 0xffff at once: two IOVA domains with per-CPU caches each, gigabytes); a space is created
/// when a group moves to it or the consumer maps memory in it, and one never used answers the
/// daemon's lookups as an empty one does (`EINVAL`).
pub(super) fn nas_max_on_bus(c: &mut Ctx) {
    if c.skip_on(
        Module::C,
        "the C driver WARNs in the page allocator at CREATE_DEV (D3)",
    ) {
        return;
    }
    let name = "t-nasmax";
    let keys = ["Slab", "Percpu", "VmallocUsed"];
    let before = meminfo_kib(&keys);
    let Some((_guard, fd)) = on_vhost_spaces(c, name, 0xffff) else {
        return;
    };
    let grown = meminfo_kib(&keys).saturating_sub(before);
    c.check(
        grown < 16 * 1024,
        &format!("vdpa dev add allocated {grown} KiB (Slab + Percpu + VmallocUsed), want < 16 MiB"),
    );
    let daemon = Daemon::start(fd.0, Policy::Answer);
    let q = |b: &[u8], i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    if let Some(v) = open_vhost(c, name, 0x1a) {
        c.expect(
            "VHOST_VDPA_SET_GROUP_ASID(group 1, asid 0xfffe)",
            vring_state(v.0, VHOST_VDPA_SET_GROUP_ASID, 1, 0xfffe).0,
            Ok(0),
        );
        c.expect(
            "vhost IOTLB update in asid 0xfffd (a space no group uses)",
            iotlb_update_in(v.0, 0xfffd, 0x10_0000, 3).0,
            Ok(72),
        );
        let mut e = entry_v2(0x10_0800, 0x10_0800, 0xfffd, 0);
        let r = sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize);
        if let Ok(mfd) = c.expect_ok("IOTLB_GET_FD2(asid 0xfffd, [0x100800])", r) {
            drop(Fd(mfd as i32));
        }
        c.expect_eq(
            "asid 0xfffd entry start, last, perm",
            (q(&e, 8), q(&e, 16), e[24]),
            (0x10_0000, 0x10_ffff, 3),
        );
        for asid in [0xfffe, 0xfffc, 0xffff] {
            let mut e = entry_v2(0, u64::MAX, asid, 0);
            c.expect(
                &format!("IOTLB_GET_FD2(asid {asid:#x}, everything)"),
                sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize),
                Err(libc::EINVAL),
            );
            let mut i = iova48(0, u64::MAX, 0, asid, 0);
            c.expect(
                &format!("IOTLB_GET_INFO(asid {asid:#x}, everything)"),
                sys::ioctl(fd.0, VDUSE_IOTLB_GET_INFO, i.as_mut_ptr() as usize),
                Err(libc::EINVAL),
            );
        }
    }
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    record_requests(c, &daemon.finish());
}

/// 7.3's `max_iotlb_entries` (2048): an address space holds 2048 consumer mappings; one more
/// and `set_map` fails (`ENOSPC`, ignored by vhost-vdpa at `BATCH_END`), the space is left
/// without consumer mappings and the daemon gets no `UPDATE_IOTLB`. (vhost-vdpa's own limit is
/// raised for the case, so that the 2049th mapping reaches the VDUSE driver.)
pub(super) fn iotlb_entries_limit(c: &mut Ctx) {
    let name = "t-iotlbmax";
    use_vhost_vdpa();
    c.expect_eq(
        "reload vhost_vdpa with max_iotlb_entries=4096",
        vhost_vdpa_iotlb_limit(4096),
        true,
    );
    iotlb_entries_limit_on(c, name);
    c.expect_eq(
        "reload vhost_vdpa with its default max_iotlb_entries (2048)",
        vhost_vdpa_iotlb_limit(2048),
        true,
    );
}

fn iotlb_entries_limit_on(c: &mut Ctx, name: &str) {
    let Some((_guard, fd)) = on_vhost(c, name, 0) else {
        return;
    };
    let daemon = Daemon::start(fd.0, Policy::Answer);
    const N: u64 = 2049;
    // vhost-vdpa pins every page and counts it against RLIMIT_MEMLOCK (8 MiB by default).
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: Setting this process's RLIMIT_MEMLOCK from a valid struct; then creating and
    // mapping a memfd of N pages, leaked for the test's duration (vhost-vdpa pins them).
    let uaddr = unsafe {
        libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited);
        let m = libc::memfd_create(c"vduse-test".as_ptr(), 0);
        libc::ftruncate(m, (N * 4096) as i64);
        let p = libc::mmap(
            std::ptr::null_mut(),
            (N * 4096) as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            m,
            0,
        );
        libc::close(m);
        p as u64
    };
    // One 4 KiB mapping every 8 KiB from 16 MiB: none can merge with another.
    let iova = |i: u64| 0x100_0000 + i * 0x2000;
    let lookup = |i: u64| {
        let mut e = entry_v2(iova(i), iova(i), 0, 0);
        let r = sys::ioctl(fd.0, VDUSE_IOTLB_GET_FD2, e.as_mut_ptr() as usize);
        if let Ok(mfd) = r {
            drop(Fd(mfd as i32));
        }
        r.map(|_| 0)
    };
    // Backend features IOTLB_MSG_V2 | IOTLB_BATCH | IOTLB_ASID.
    if let Some(v) = open_vhost(c, name, 0xe) {
        let batch = |from: u64, to: u64| -> Vec<Ret> {
            let mut rets = vec![iotlb_msg(v.0, 0, 0, 0, 5)];
            for i in from..to {
                rets.push(iotlb_msg(v.0, iova(i), 4096, uaddr + i * 4096, 2));
            }
            rets.push(iotlb_msg(v.0, 0, 0, 0, 6));
            rets.dedup();
            rets
        };
        c.expect_eq(
            "batch of 2048 updates: write results",
            batch(0, N - 1),
            vec![Ok(72)],
        );
        c.expect("IOTLB_GET_FD2(first of 2048)", lookup(0), Ok(0));
        c.expect("IOTLB_GET_FD2(last of 2048)", lookup(N - 2), Ok(0));
        c.expect_eq(
            "batch of one more update: write results",
            batch(N - 1, N),
            vec![Ok(72)],
        );
        c.expect(
            "IOTLB_GET_FD2(first, after 2049)",
            lookup(0),
            Err(libc::EINVAL),
        );
        c.expect("IOTLB_GET_FD2(2049th)", lookup(N - 1), Err(libc::EINVAL));
    }
    c.expect_eq(
        "vdpa dev del",
        vdpa(&["dev", "del", name]),
        "exit 0".to_string(),
    );
    record_requests(c, &daemon.finish());
}
