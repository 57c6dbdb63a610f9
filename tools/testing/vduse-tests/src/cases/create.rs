// SPDX-License-Identifier: GPL-2.0

//! `VDUSE_CREATE_DEV` and `VDUSE_DESTROY_DEV`: validation per API version, names, minors,
//! permissions, life cycle.

use super::support::*;
use crate::dev::*;
use crate::harness::{Case, Ctx, Module};
use crate::sys::{self, Fd};
use crate::sys::{VDUSE_CREATE_DEV, VDUSE_DESTROY_DEV};
use std::os::unix::fs::MetadataExt;

/// `(label, api, mutation, expected errno or 0)`: one creation case per row.
type Row = (&'static str, Option<u64>, fn(&mut DevConfig), i32);

fn rows() -> Vec<Row> {
    vec![
        ("blk_v0", Some(0), |_| {}, 0),
        ("blk_unasked", None, |_| {}, 0),
        ("blk_v1", Some(1), |c| (c.ngroups, c.nas) = (1, 1), 0),
        ("fs_v0", Some(0), |c| c.device_id = ID_FS, 0),
        (
            "fs_with_wce_bit",
            Some(0),
            |c| (c.device_id, c.features) = (ID_FS, c.features | 1 << 11),
            0,
        ),
        ("net_v0", Some(0), |c| c.device_id = ID_NET, 0),
        (
            "v1_ngroups_0",
            Some(1),
            |c| (c.ngroups, c.nas) = (0, 1),
            libc::EINVAL,
        ),
        (
            "v1_nas_0",
            Some(1),
            |c| (c.ngroups, c.nas) = (1, 0),
            libc::EINVAL,
        ),
        (
            "v1_ngroups_0x10000",
            Some(1),
            |c| (c.ngroups, c.nas) = (0x10000, 1),
            libc::EINVAL,
        ),
        (
            "v1_nas_0x10000",
            Some(1),
            |c| (c.ngroups, c.nas) = (1, 0x10000),
            libc::EINVAL,
        ),
        (
            "v1_ngroups_nas_256",
            Some(1),
            |c| (c.ngroups, c.nas) = (256, 256),
            0,
        ),
        (
            "v1_ngroups_4_nas_2",
            Some(1),
            |c| (c.ngroups, c.nas) = (4, 2),
            0,
        ),
        ("v0_ngroups_1", Some(0), |c| c.ngroups = 1, libc::EINVAL),
        ("v0_nas_1", Some(0), |c| c.nas = 1, libc::EINVAL),
        (
            "unasked_ngroups_1",
            None,
            |c| (c.ngroups, c.nas) = (1, 1),
            libc::EINVAL,
        ),
        ("reserved_0", Some(0), |c| c.reserved[0] = 1, libc::EINVAL),
        (
            "reserved_10",
            Some(0),
            |c| c.reserved[10] = 0x8000_0000,
            libc::EINVAL,
        ),
        ("vq_align_0", Some(0), |c| c.vq_align = 0, libc::EINVAL),
        ("vq_align_2", Some(0), |c| c.vq_align = 2, libc::EINVAL),
        ("vq_align_3", Some(0), |c| c.vq_align = 3, libc::EINVAL),
        ("vq_align_4", Some(0), |c| c.vq_align = 4, 0),
        ("vq_align_6", Some(0), |c| c.vq_align = 6, libc::EINVAL),
        ("vq_align_64", Some(0), |c| c.vq_align = 64, 0),
        ("vq_align_page", Some(0), |c| c.vq_align = 4096, 0),
        (
            "vq_align_2pages",
            Some(0),
            |c| c.vq_align = 8192,
            libc::EINVAL,
        ),
        (
            "vq_align_2g",
            Some(0),
            |c| c.vq_align = 0x8000_0000,
            libc::EINVAL,
        ),
        ("config_size_0", Some(0), |c| c.config.clear(), 0),
        (
            "config_size_page",
            Some(0),
            |c| c.config = vec![0x5a; 4096],
            0,
        ),
        (
            "config_size_page_plus_1",
            Some(0),
            |c| c.config = vec![0; 4097],
            libc::EINVAL,
        ),
        (
            "config_size_u32_max",
            Some(0),
            |c| c.config_size = Some(u32::MAX),
            libc::EINVAL,
        ),
        ("vq_num_0", Some(0), |c| c.vq_num = 0, 0),
        ("vq_num_64", Some(0), |c| c.vq_num = 64, 0),
        (
            "vq_num_0x10000",
            Some(0),
            |c| c.vq_num = 0x10000,
            libc::EINVAL,
        ),
        (
            "vq_num_u32_max",
            Some(0),
            |c| c.vq_num = u32::MAX,
            libc::EINVAL,
        ),
        ("name_empty", Some(0), |c| c.name.clear(), libc::EINVAL),
        ("device_id_0", Some(0), |c| c.device_id = 0, libc::EINVAL),
        ("device_id_3", Some(0), |c| c.device_id = 3, libc::EINVAL),
        (
            "device_id_u32_max",
            Some(0),
            |c| c.device_id = u32::MAX,
            libc::EINVAL,
        ),
        ("vendor_id_any", Some(0), |c| c.vendor_id = 0xdead_beef, 0),
        (
            "no_access_platform",
            Some(0),
            |c| c.features = F_VERSION_1,
            libc::EINVAL,
        ),
        (
            "blk_config_wce",
            Some(0),
            |c| c.features |= 1 << 11,
            libc::EINVAL,
        ),
        (
            "blk_no_version_1",
            Some(0),
            |c| c.features = F_ACCESS_PLATFORM,
            0,
        ),
        (
            "net_ctrl_vq",
            Some(0),
            |c| (c.device_id, c.features) = (ID_NET, c.features | 1 << 17),
            libc::EINVAL,
        ),
        (
            "net_no_version_1",
            Some(0),
            |c| (c.device_id, c.features) = (ID_NET, F_ACCESS_PLATFORM),
            libc::EINVAL,
        ),
        (
            "all_feature_bits_blk",
            Some(0),
            |c| c.features = !(1u64 << 11),
            0,
        ),
    ]
}

/// One creation row: create with the mutation, check the result, the node, and destroy.
fn create_row(c: &mut Ctx, api: Option<u64>, f: fn(&mut DevConfig), want: i32, name: &str) {
    let Some(fd) = control(c, api) else { return };
    let mut cfg = DevConfig::blk(name);
    f(&mut cfg);
    let _g = DevGuard(name.to_string());
    let want = if want == 0 { Ok(0) } else { Err(want) };
    c.expect("CREATE_DEV", create(&fd, &cfg), want);
    let node = std::path::Path::new("/dev/vduse").join(name).exists();
    c.expect_eq("node exists", node, want.is_ok());
    if want.is_ok() {
        c.expect("DESTROY_DEV", destroy(&fd, name), Ok(0));
        let node = std::path::Path::new("/dev/vduse").join(name).exists();
        c.expect_eq("node exists after destroy", node, false);
    }
}

fn latches_v0(c: &mut Ctx) {
    let Some(fd) = control(c, None) else { return };
    let _g = DevGuard("t-latch".into());
    c.expect("CREATE_DEV", create(&fd, &DevConfig::blk("t-latch")), Ok(0));
    let (r, v) = get_api(&fd);
    c.expect("GET_API_VERSION", r, Ok(0));
    c.expect_eq("version after an unasked CREATE_DEV", v, 0);
}

fn latches_v0_even_on_einval(c: &mut Ctx) {
    let Some(fd) = control(c, None) else { return };
    let mut cfg = DevConfig::blk("t-latch2");
    cfg.vq_align = 3;
    c.expect("CREATE_DEV(bad)", create(&fd, &cfg), Err(libc::EINVAL));
    let (_, v) = get_api(&fd);
    c.expect_eq("version after a failed unasked CREATE_DEV", v, 0);
}

fn efault_does_not_latch(c: &mut Ctx) {
    let Some(fd) = control(c, None) else { return };
    c.expect(
        "CREATE_DEV(NULL)",
        sys::ioctl(fd.0, VDUSE_CREATE_DEV, 0),
        Err(libc::EFAULT),
    );
    let (_, v) = get_api(&fd);
    c.expect_eq("version after CREATE_DEV(NULL)", v, 1);
}

/// The config space lies across the end of a mapping: the fixed part is readable, the config
/// bytes are not.
fn efault_config_bytes(c: &mut Ctx) {
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    let _g = DevGuard("t-efault".into());
    // SAFETY: Two fresh anonymous pages; the second is unmapped again.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        c.check(false, "mmap");
        return;
    }
    let b = DevConfig::blk("t-efault").encode();
    // SAFETY: The first page is ours; the struct ends at its end, the config would follow in
    // the (unmapped) second page.
    unsafe {
        libc::munmap(p.cast::<u8>().add(4096).cast(), 4096);
        let dst = p.cast::<u8>().add(4096 - 336);
        std::ptr::copy_nonoverlapping(b.as_ptr(), dst, 336);
        c.expect(
            "CREATE_DEV(config bytes unmapped)",
            sys::ioctl(fd.0, VDUSE_CREATE_DEV, dst as usize),
            Err(libc::EFAULT),
        );
        libc::munmap(p, 4096);
    }
    c.expect_eq(
        "node exists",
        std::path::Path::new("/dev/vduse/t-efault").exists(),
        false,
    );
}

fn duplicate_name(c: &mut Ctx) {
    let Some(_g) = create_ok(c, Some(0), &DevConfig::blk("t-dup")) else {
        return;
    };
    let Some(fd) = control(c, Some(1)) else {
        return;
    };
    c.expect(
        "CREATE_DEV(same name, v1)",
        create(&fd, &DevConfig::blk_v1("t-dup")),
        Err(libc::EEXIST),
    );
    let mut net = DevConfig::blk_v1("t-dup");
    net.device_id = ID_NET;
    c.expect(
        "CREATE_DEV(same name, net)",
        create(&fd, &net),
        Err(libc::EEXIST),
    );
}

fn recreate_after_destroy(c: &mut Ctx) {
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    let _g = DevGuard("t-again".into());
    for i in 0..3 {
        c.expect(
            &format!("CREATE_DEV #{i}"),
            create(&fd, &DevConfig::blk("t-again")),
            Ok(0),
        );
        c.expect(&format!("DESTROY_DEV #{i}"), destroy(&fd, "t-again"), Ok(0));
    }
}

fn net_needs_cap_net_admin(c: &mut Ctx) {
    let _g = DevGuard("t-netcap".into());
    let r = without_net_admin(|| {
        let fd = sys::open(crate::sys::CONTROL, libc::O_RDWR)?;
        let fd = Fd(fd as i32);
        let mut cfg = DevConfig::blk("t-netcap");
        cfg.device_id = ID_NET;
        create(&fd, &cfg)
    });
    c.expect("CREATE_DEV(net) without CAP_NET_ADMIN", r, Err(libc::EPERM));
    let r = without_net_admin(|| {
        let fd = sys::open(crate::sys::CONTROL, libc::O_RDWR)?;
        let fd = Fd(fd as i32);
        let r = create(&fd, &DevConfig::blk("t-netcap"));
        let _ = destroy(&fd, "t-netcap");
        r
    });
    c.expect("CREATE_DEV(blk) without CAP_NET_ADMIN", r, Ok(0));
}

fn name_255_truncated(c: &mut Ctx) {
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    let long: String = "n".repeat(256);
    let short: String = "n".repeat(255);
    let _g = DevGuard(short.clone());
    let mut cfg = DevConfig::blk("x");
    cfg.name = long.as_bytes().to_vec();
    c.expect("CREATE_DEV(256 chars, no NUL)", create(&fd, &cfg), Ok(0));
    c.expect_eq(
        "node has the first 255 chars",
        std::path::Path::new("/dev/vduse").join(&short).exists(),
        true,
    );
    c.expect(
        "DESTROY_DEV(256 chars, no NUL)",
        destroy_raw(&fd, long.as_bytes()),
        Ok(0),
    );
}

fn name_with_slash(c: &mut Ctx) {
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    let _g = DevGuard("t/slash".into());
    c.expect(
        "CREATE_DEV(t/slash)",
        create(&fd, &DevConfig::blk("t/slash")),
        Ok(0),
    );
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/vduse")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    c.obs(format!("/sys/class/vduse: {names:?}"));
    c.expect("DESTROY_DEV(t/slash)", destroy(&fd, "t/slash"), Ok(0));
}

/// `ngroups` = `nas` = 0xffff under API 1: valid, but 7.3 allocates both arrays with
/// `kzalloc`, which on a lockdep kernel exceeds the largest kmalloc size: the page allocator
/// WARNs and CREATE_DEV fails with ENOMEM. vduse_rs accepts it (Documentation/differences.rst,
/// D3). Not run on C: its WARN would fail the run's dmesg check.
fn ngroups_nas_max(c: &mut Ctx) {
    if c.skip_on(Module::C, "the C driver WARNs in the page allocator") {
        return;
    }
    let Some(fd) = control(c, Some(1)) else {
        return;
    };
    let _g = DevGuard("t-max".into());
    let mut cfg = DevConfig::blk_v1("t-max");
    (cfg.ngroups, cfg.nas) = (0xffff, 0xffff);
    c.expect(
        "CREATE_DEV(ngroups = nas = 0xffff)",
        create(&fd, &cfg),
        Ok(0),
    );
    c.expect("DESTROY_DEV", destroy(&fd, "t-max"), Ok(0));
}

fn destroy_unknown(c: &mut Ctx) {
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    c.expect(
        "DESTROY_DEV(nope)",
        destroy(&fd, "t-nope"),
        Err(libc::EINVAL),
    );
    c.expect("DESTROY_DEV(\"\")", destroy(&fd, ""), Err(libc::EINVAL));
    c.expect(
        "DESTROY_DEV(control)",
        destroy(&fd, "control"),
        Err(libc::EINVAL),
    );
    c.expect(
        "DESTROY_DEV(NULL)",
        sys::ioctl(fd.0, VDUSE_DESTROY_DEV, 0),
        Err(libc::EFAULT),
    );
}

fn destroy_while_open(c: &mut Ctx) {
    let Some((g, dfd)) = with_open_dev(c, Some(0), "t-busy") else {
        return;
    };
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    c.expect(
        "DESTROY_DEV while open",
        destroy(&fd, &g.0),
        Err(libc::EBUSY),
    );
    drop(dfd);
    c.expect("DESTROY_DEV after close", destroy(&fd, &g.0), Ok(0));
}

fn destroy_from_other_fd(c: &mut Ctx) {
    let Some(_g) = create_ok(c, Some(1), &DevConfig::blk_v1("t-other")) else {
        return;
    };
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    c.expect(
        "DESTROY_DEV from another fd",
        destroy(&fd, "t-other"),
        Ok(0),
    );
}

fn minors_lowest_free(c: &mut Ctx) {
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    let names = ["t-m1", "t-m2", "t-m3"];
    let _g: Vec<DevGuard> = names.iter().map(|n| DevGuard(n.to_string())).collect();
    let minor = |n: &str| {
        std::fs::metadata(format!("/dev/vduse/{n}"))
            .map(|m| (m.rdev() & 0xff) | ((m.rdev() >> 12) & !0xff))
            .unwrap_or(u64::MAX)
    };
    for n in names {
        c.expect(
            &format!("CREATE_DEV({n})"),
            create(&fd, &DevConfig::blk(n)),
            Ok(0),
        );
    }
    let m: Vec<u64> = names.iter().map(|n| minor(n)).collect();
    c.expect_eq("minors", m.clone(), vec![1, 2, 3]);
    c.expect("DESTROY_DEV(t-m1)", destroy(&fd, "t-m1"), Ok(0));
    c.expect(
        "CREATE_DEV(t-m4)",
        create(&fd, &DevConfig::blk("t-m4")),
        Ok(0),
    );
    let _g4 = DevGuard("t-m4".into());
    c.expect_eq("t-m4 takes the lowest free minor", minor("t-m4"), 1);
}

fn open_single(c: &mut Ctx) {
    let Some((g, _dfd)) = with_open_dev(c, Some(0), "t-single") else {
        return;
    };
    c.expect(
        "second open",
        open_dev(&g.0, libc::O_RDWR).map(|fd| {
            sys::close(fd as i32).ok();
            fd.min(0)
        }),
        Err(libc::EBUSY),
    );
}

fn reopen_after_close(c: &mut Ctx) {
    let Some((g, dfd)) = with_open_dev(c, Some(0), "t-reopen") else {
        return;
    };
    drop(dfd);
    let r = open_dev(&g.0, libc::O_RDWR);
    let _ = c.expect_ok("open after close", r.map(|_| 0));
    if let Ok(fd) = r {
        sys::close(fd as i32).ok();
    }
}

fn open_after_destroy(c: &mut Ctx) {
    let Some(g) = create_ok(c, Some(0), &DevConfig::blk("t-gone")) else {
        return;
    };
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    c.expect("DESTROY_DEV", destroy(&fd, &g.0), Ok(0));
    c.expect(
        "open after destroy",
        open_dev(&g.0, libc::O_RDWR),
        Err(libc::ENOENT),
    );
}

fn features_copied_at_create(c: &mut Ctx) {
    // VDUSE features are per control fd and copied at creation; nothing observable changes on
    // the device node yet, but both orders must be accepted.
    let Some(fd) = control(c, Some(1)) else {
        return;
    };
    let _g = DevGuard("t-feat".into());
    c.expect("SET_FEATURES(3)", crate::dev::set_features(&fd, 3), Ok(0));
    c.expect(
        "CREATE_DEV",
        create(&fd, &DevConfig::blk_v1("t-feat")),
        Ok(0),
    );
    c.expect("SET_FEATURES(0)", crate::dev::set_features(&fd, 0), Ok(0));
    c.expect("DESTROY_DEV", destroy(&fd, "t-feat"), Ok(0));
}

fn set_api_after_create(c: &mut Ctx) {
    let Some(fd) = control(c, None) else { return };
    let _g = DevGuard("t-after".into());
    c.expect(
        "CREATE_DEV (latches 0)",
        create(&fd, &DevConfig::blk("t-after")),
        Ok(0),
    );
    c.expect("SET_API_VERSION(1)", set_api(&fd, 1), Ok(0));
    c.expect(
        "CREATE_DEV v0 layout on v1 fd",
        create(&fd, &DevConfig::blk("t-after2")),
        Err(libc::EINVAL),
    );
    let _g2 = DevGuard("t-after2".into());
    c.expect(
        "CREATE_DEV v1 layout",
        create(&fd, &DevConfig::blk_v1("t-after2")),
        Ok(0),
    );
}

fn create_many(c: &mut Ctx) {
    let Some(fd) = control(c, Some(0)) else {
        return;
    };
    let n = 64;
    let guards: Vec<DevGuard> = (0..n).map(|i| DevGuard(format!("t-many{i}"))).collect();
    let mut ok = 0;
    for g in &guards {
        if create(&fd, &DevConfig::blk(&g.0)).is_ok() {
            ok += 1;
        }
    }
    c.expect_eq("created", ok, n);
    let listed = std::fs::read_dir("/dev/vduse")
        .map(|d| d.count())
        .unwrap_or(0);
    c.expect_eq("nodes in /dev/vduse (with control)", listed, n + 1);
    let mut destroyed = 0;
    for g in &guards {
        if destroy(&fd, &g.0).is_ok() {
            destroyed += 1;
        }
    }
    c.expect_eq("destroyed", destroyed, n);
}

/// The cases of this file.
pub fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = rows()
        .into_iter()
        .enumerate()
        .map(|(i, (label, api, f, want))| {
            Case::new(format!("create/{label}"), move |c: &mut Ctx| {
                create_row(c, api, f, want, &format!("t-row{i}"))
            })
        })
        .collect();
    v.extend([
        Case::new("create/v1_ngroups_nas_max", ngroups_nas_max),
        Case::new("create/unasked_latches_v0", latches_v0),
        Case::new(
            "create/unasked_latches_v0_on_einval",
            latches_v0_even_on_einval,
        ),
        Case::new("create/efault_does_not_latch", efault_does_not_latch),
        Case::new("create/efault_config_bytes", efault_config_bytes),
        Case::new("create/duplicate_name_eexist", duplicate_name),
        Case::new("create/recreate_after_destroy", recreate_after_destroy),
        Case::new("create/net_needs_cap_net_admin", net_needs_cap_net_admin),
        Case::new("create/name_256_truncated_to_255", name_255_truncated),
        Case::new("create/name_with_slash", name_with_slash),
        Case::new(
            "create/features_copied_at_create",
            features_copied_at_create,
        ),
        Case::new("create/set_api_after_create", set_api_after_create),
        Case::new("create/many", create_many),
        Case::new("destroy/unknown_einval", destroy_unknown),
        Case::new("destroy/while_open_ebusy", destroy_while_open),
        Case::new("destroy/from_other_fd", destroy_from_other_fd),
        Case::new("create/minors_lowest_free", minors_lowest_free),
        Case::new("open/single_opener_ebusy", open_single),
        Case::new("open/reopen_after_close", reopen_after_close),
        Case::new("open/after_destroy_enoent", open_after_destroy),
    ]);
    v
}
