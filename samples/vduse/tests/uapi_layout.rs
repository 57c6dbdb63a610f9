// SPDX-License-Identifier: GPL-2.0
//! Checks the hand-written uAPI mirror (`src/uapi.rs`, `src/virtio.rs`) against the C headers:
//! a small C program is generated, compiled with the system `cc` against the repository's
//! `include/uapi/linux/vduse.h` (and the system's virtio headers) and run; every size, offset,
//! constant and ioctl number it prints must equal the Rust value.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use vduse::uapi::*;
use vduse::virtio::*;

fn repo_uapi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../include/uapi")
}

/// (name, C expression, Rust value)
fn checks() -> Vec<(String, String, u64)> {
    let mut v: Vec<(String, String, u64)> = Vec::new();
    let mut add = |name: &str, c: &str, r: u64| v.push((name.to_string(), c.to_string(), r));

    // Struct sizes.
    add(
        "sizeof dev_config",
        "sizeof(struct vduse_dev_config)",
        size_of::<DevConfig>() as u64,
    );
    add(
        "sizeof iotlb_entry",
        "sizeof(struct vduse_iotlb_entry)",
        size_of::<IotlbEntry>() as u64,
    );
    add(
        "sizeof iotlb_entry_v2",
        "sizeof(struct vduse_iotlb_entry_v2)",
        size_of::<IotlbEntryV2>() as u64,
    );
    add(
        "sizeof config_data",
        "sizeof(struct vduse_config_data)",
        size_of::<ConfigData>() as u64,
    );
    add(
        "sizeof vq_config",
        "sizeof(struct vduse_vq_config)",
        size_of::<VqConfig>() as u64,
    );
    add(
        "sizeof vq_info",
        "sizeof(struct vduse_vq_info)",
        size_of::<VqInfo>() as u64,
    );
    add(
        "sizeof vq_eventfd",
        "sizeof(struct vduse_vq_eventfd)",
        size_of::<VqEventfd>() as u64,
    );
    add(
        "sizeof iova_umem",
        "sizeof(struct vduse_iova_umem)",
        size_of::<IovaUmem>() as u64,
    );
    add(
        "sizeof iova_info",
        "sizeof(struct vduse_iova_info)",
        size_of::<IovaInfo>() as u64,
    );
    add(
        "sizeof dev_request",
        "sizeof(struct vduse_dev_request)",
        size_of::<DevRequest>() as u64,
    );
    add(
        "sizeof dev_response",
        "sizeof(struct vduse_dev_response)",
        size_of::<DevResponse>() as u64,
    );
    add(
        "alignof dev_request",
        "_Alignof(struct vduse_dev_request)",
        std::mem::align_of::<DevRequest>() as u64,
    );
    add(
        "alignof dev_response",
        "_Alignof(struct vduse_dev_response)",
        std::mem::align_of::<DevResponse>() as u64,
    );
    add(
        "alignof dev_config",
        "_Alignof(struct vduse_dev_config)",
        std::mem::align_of::<DevConfig>() as u64,
    );

    // Field offsets.
    macro_rules! off {
        ($cs:literal, $cf:literal, $rs:ty, $($rf:tt)+) => {
            add(
                concat!("offsetof ", $cs, ".", $cf),
                concat!("offsetof(struct ", $cs, ", ", $cf, ")"),
                offset_of!($rs, $($rf)+) as u64,
            )
        };
    }
    off!("vduse_dev_config", "vendor_id", DevConfig, vendor_id);
    off!("vduse_dev_config", "device_id", DevConfig, device_id);
    off!("vduse_dev_config", "features", DevConfig, features);
    off!("vduse_dev_config", "vq_num", DevConfig, vq_num);
    off!("vduse_dev_config", "vq_align", DevConfig, vq_align);
    off!("vduse_dev_config", "ngroups", DevConfig, ngroups);
    off!("vduse_dev_config", "nas", DevConfig, nas);
    off!("vduse_dev_config", "reserved", DevConfig, reserved);
    off!("vduse_dev_config", "config_size", DevConfig, config_size);
    add(
        "offsetof vduse_dev_config.config",
        "offsetof(struct vduse_dev_config, config)",
        size_of::<DevConfig>() as u64,
    );
    off!("vduse_iotlb_entry", "offset", IotlbEntry, offset);
    off!("vduse_iotlb_entry", "start", IotlbEntry, start);
    off!("vduse_iotlb_entry", "last", IotlbEntry, last);
    off!("vduse_iotlb_entry", "perm", IotlbEntry, perm);
    off!("vduse_iotlb_entry_v2", "start", IotlbEntryV2, start);
    off!("vduse_iotlb_entry_v2", "last", IotlbEntryV2, last);
    off!("vduse_iotlb_entry_v2", "perm", IotlbEntryV2, perm);
    off!("vduse_iotlb_entry_v2", "padding", IotlbEntryV2, padding);
    off!("vduse_iotlb_entry_v2", "asid", IotlbEntryV2, asid);
    off!("vduse_iotlb_entry_v2", "reserved", IotlbEntryV2, reserved);
    off!("vduse_config_data", "length", ConfigData, length);
    off!("vduse_vq_config", "max_size", VqConfig, max_size);
    off!("vduse_vq_config", "reserved1", VqConfig, reserved1);
    off!("vduse_vq_config", "group", VqConfig, group);
    off!("vduse_vq_config", "reserved2", VqConfig, reserved2);
    off!("vduse_vq_info", "num", VqInfo, num);
    off!("vduse_vq_info", "desc_addr", VqInfo, desc_addr);
    off!("vduse_vq_info", "driver_addr", VqInfo, driver_addr);
    off!("vduse_vq_info", "device_addr", VqInfo, device_addr);
    off!("vduse_vq_info", "split.avail_index", VqInfo, state);
    off!("vduse_vq_info", "packed", VqInfo, state);
    off!("vduse_vq_info", "ready", VqInfo, ready);
    off!("vduse_vq_eventfd", "fd", VqEventfd, fd);
    off!("vduse_iova_umem", "iova", IovaUmem, iova);
    off!("vduse_iova_umem", "size", IovaUmem, size);
    off!("vduse_iova_umem", "asid", IovaUmem, asid);
    off!("vduse_iova_umem", "reserved", IovaUmem, reserved);
    off!("vduse_iova_info", "last", IovaInfo, last);
    off!("vduse_iova_info", "capability", IovaInfo, capability);
    off!("vduse_iova_info", "asid", IovaInfo, asid);
    off!("vduse_iova_info", "reserved", IovaInfo, reserved);
    off!("vduse_dev_request", "request_id", DevRequest, request_id);
    off!("vduse_dev_request", "reserved", DevRequest, reserved);
    off!("vduse_dev_request", "vq_state", DevRequest, payload);
    off!("vduse_dev_request", "padding", DevRequest, payload);
    off!("vduse_dev_response", "result", DevResponse, result);
    off!("vduse_dev_response", "reserved", DevResponse, reserved);
    off!("vduse_dev_response", "vq_state", DevResponse, payload);

    // Offsets of union members inside the message payload.
    let base = MSG_PAYLOAD_OFFSET as u64;
    let req = |m: &str| format!("offsetof(struct vduse_dev_request, {m})");
    let mut addp = |name: &str, c: String, r: usize| v.push((name.to_string(), c, base + r as u64));
    addp(
        "req vq_state.index",
        req("vq_state.index"),
        payload::VQ_STATE_INDEX,
    );
    addp(
        "req vq_state.split.avail_index",
        req("vq_state.split.avail_index"),
        payload::VQ_STATE_SPLIT_AVAIL_INDEX,
    );
    addp("req s.status", req("s.status"), payload::STATUS);
    addp("req iova.start", req("iova.start"), payload::IOVA_START);
    addp("req iova.last", req("iova.last"), payload::IOVA_LAST);
    addp(
        "req iova_v2.start",
        req("iova_v2.start"),
        payload::IOVA_START,
    );
    addp("req iova_v2.last", req("iova_v2.last"), payload::IOVA_LAST);
    addp(
        "req iova_v2.asid",
        req("iova_v2.asid"),
        payload::IOVA_V2_ASID,
    );
    addp(
        "req vq_group_asid.group",
        req("vq_group_asid.group"),
        payload::GROUP_ASID_GROUP,
    );
    addp(
        "req vq_group_asid.asid",
        req("vq_group_asid.asid"),
        payload::GROUP_ASID_ASID,
    );
    addp(
        "req vq_ready.num",
        req("vq_ready.num"),
        payload::VQ_READY_NUM,
    );
    addp(
        "req vq_ready.ready",
        req("vq_ready.ready"),
        payload::VQ_READY_READY,
    );
    addp(
        "resp vq_state.split.avail_index",
        "offsetof(struct vduse_dev_response, vq_state.split.avail_index)".into(),
        payload::VQ_STATE_SPLIT_AVAIL_INDEX,
    );
    v.push((
        "sizeof req.vq_ready.ready".into(),
        "sizeof(((struct vduse_dev_request *)0)->vq_ready.ready)".into(),
        4,
    ));
    v.push((
        "sizeof req.vq_state".into(),
        "sizeof(struct vduse_vq_state)".into(),
        12,
    ));
    v.push((
        "sizeof iova_range_v2".into(),
        "sizeof(struct vduse_iova_range_v2)".into(),
        24,
    ));

    // Constants.
    let mut addc = |name: &str, r: u64| v.push((name.to_string(), name.to_string(), r));
    addc("VDUSE_BASE", u64::from(VDUSE_BASE));
    addc("VDUSE_API_VERSION", VDUSE_API_VERSION);
    addc("VDUSE_API_VERSION_1", VDUSE_API_VERSION_1);
    addc("VDUSE_F_QUEUE_READY", u64::from(VDUSE_F_QUEUE_READY));
    addc("VDUSE_F_SUSPEND", u64::from(VDUSE_F_SUSPEND));
    addc("VDUSE_NAME_MAX", VDUSE_NAME_MAX as u64);
    addc("VDUSE_ACCESS_RO", u64::from(VDUSE_ACCESS_RO));
    addc("VDUSE_ACCESS_WO", u64::from(VDUSE_ACCESS_WO));
    addc("VDUSE_ACCESS_RW", u64::from(VDUSE_ACCESS_RW));
    addc(
        "VDUSE_EVENTFD_DEASSIGN",
        VDUSE_EVENTFD_DEASSIGN as i64 as u64,
    );
    addc("VDUSE_IOVA_CAP_UMEM", VDUSE_IOVA_CAP_UMEM);
    addc("VDUSE_GET_VQ_STATE", u64::from(VDUSE_GET_VQ_STATE));
    addc("VDUSE_SET_STATUS", u64::from(VDUSE_SET_STATUS));
    addc("VDUSE_UPDATE_IOTLB", u64::from(VDUSE_UPDATE_IOTLB));
    addc(
        "VDUSE_SET_VQ_GROUP_ASID",
        u64::from(VDUSE_SET_VQ_GROUP_ASID),
    );
    addc("VDUSE_SET_VQ_READY", u64::from(VDUSE_SET_VQ_READY));
    addc("VDUSE_SUSPEND", u64::from(VDUSE_SUSPEND));
    addc("VDUSE_REQ_RESULT_OK", u64::from(VDUSE_REQ_RESULT_OK));
    addc(
        "VDUSE_REQ_RESULT_FAILED",
        u64::from(VDUSE_REQ_RESULT_FAILED),
    );
    for (name, val) in IOCTLS {
        addc(name, u64::from(*val));
    }

    // virtio constants and the virtio-blk config layout (system headers).
    for (name, val) in vduse::vhost::IOCTLS {
        addc(name, u64::from(*val));
    }
    {
        use vduse::vhost::*;
        addc("VHOST_IOTLB_MSG_V2", u64::from(VHOST_IOTLB_MSG_V2));
        addc("VHOST_IOTLB_UPDATE", u64::from(VHOST_IOTLB_UPDATE));
        addc("VHOST_IOTLB_INVALIDATE", u64::from(VHOST_IOTLB_INVALIDATE));
        addc("VHOST_ACCESS_RW", u64::from(VHOST_ACCESS_RW));
        addc(
            "VHOST_BACKEND_F_IOTLB_MSG_V2",
            u64::from(VHOST_BACKEND_F_IOTLB_MSG_V2),
        );
        addc(
            "VHOST_BACKEND_F_IOTLB_BATCH",
            u64::from(VHOST_BACKEND_F_IOTLB_BATCH),
        );
        addc(
            "VHOST_BACKEND_F_IOTLB_ASID",
            u64::from(VHOST_BACKEND_F_IOTLB_ASID),
        );
        addc(
            "VHOST_BACKEND_F_SUSPEND",
            u64::from(VHOST_BACKEND_F_SUSPEND),
        );
        v.push((
            "sizeof vhost_msg_v2".into(),
            "sizeof(struct vhost_msg_v2)".into(),
            std::mem::size_of::<MsgV2>() as u64,
        ));
        v.push((
            "offsetof vhost_msg_v2.iotlb".into(),
            "offsetof(struct vhost_msg_v2, iotlb)".into(),
            std::mem::offset_of!(MsgV2, iotlb) as u64,
        ));
        v.push((
            "offsetof vhost_iotlb_msg.perm".into(),
            "offsetof(struct vhost_iotlb_msg, perm)".into(),
            std::mem::offset_of!(IotlbMsg, perm) as u64,
        ));
        v.push((
            "offsetof vhost_iotlb_msg.type".into(),
            "offsetof(struct vhost_iotlb_msg, type)".into(),
            std::mem::offset_of!(IotlbMsg, type_) as u64,
        ));
        v.push((
            "offsetof vhost_vring_addr.avail_user_addr".into(),
            "offsetof(struct vhost_vring_addr, avail_user_addr)".into(),
            std::mem::offset_of!(VringAddr, avail_user_addr) as u64,
        ));
        v.push((
            "sizeof vhost_vring_addr".into(),
            "sizeof(struct vhost_vring_addr)".into(),
            std::mem::size_of::<VringAddr>() as u64,
        ));
    }
    let mut addc = |name: &str, r: u64| v.push((name.to_string(), name.to_string(), r));
    addc("VIRTIO_ID_BLOCK", u64::from(VIRTIO_ID_BLOCK));
    addc(
        "VIRTIO_CONFIG_S_ACKNOWLEDGE",
        u64::from(VIRTIO_CONFIG_S_ACKNOWLEDGE),
    );
    addc("VIRTIO_CONFIG_S_DRIVER", u64::from(VIRTIO_CONFIG_S_DRIVER));
    addc(
        "VIRTIO_CONFIG_S_DRIVER_OK",
        u64::from(VIRTIO_CONFIG_S_DRIVER_OK),
    );
    addc(
        "VIRTIO_CONFIG_S_FEATURES_OK",
        u64::from(VIRTIO_CONFIG_S_FEATURES_OK),
    );
    addc(
        "VIRTIO_CONFIG_S_NEEDS_RESET",
        u64::from(VIRTIO_CONFIG_S_NEEDS_RESET),
    );
    addc("VIRTIO_CONFIG_S_FAILED", u64::from(VIRTIO_CONFIG_S_FAILED));
    addc(
        "VIRTIO_RING_F_INDIRECT_DESC",
        u64::from(VIRTIO_RING_F_INDIRECT_DESC),
    );
    addc(
        "VIRTIO_RING_F_EVENT_IDX",
        u64::from(VIRTIO_RING_F_EVENT_IDX),
    );
    addc("VIRTIO_F_VERSION_1", u64::from(VIRTIO_F_VERSION_1));
    addc(
        "VIRTIO_F_ACCESS_PLATFORM",
        u64::from(VIRTIO_F_ACCESS_PLATFORM),
    );
    addc("VRING_DESC_F_NEXT", u64::from(VRING_DESC_F_NEXT));
    addc("VRING_DESC_F_WRITE", u64::from(VRING_DESC_F_WRITE));
    addc("VRING_DESC_F_INDIRECT", u64::from(VRING_DESC_F_INDIRECT));
    addc("VIRTIO_BLK_F_SIZE_MAX", u64::from(VIRTIO_BLK_F_SIZE_MAX));
    addc("VIRTIO_BLK_F_SEG_MAX", u64::from(VIRTIO_BLK_F_SEG_MAX));
    addc("VIRTIO_BLK_F_RO", u64::from(VIRTIO_BLK_F_RO));
    addc("VIRTIO_BLK_F_BLK_SIZE", u64::from(VIRTIO_BLK_F_BLK_SIZE));
    addc("VIRTIO_BLK_F_FLUSH", u64::from(VIRTIO_BLK_F_FLUSH));
    addc("VIRTIO_BLK_F_TOPOLOGY", u64::from(VIRTIO_BLK_F_TOPOLOGY));
    addc(
        "VIRTIO_BLK_F_CONFIG_WCE",
        u64::from(VIRTIO_BLK_F_CONFIG_WCE),
    );
    addc("VIRTIO_BLK_F_MQ", u64::from(VIRTIO_BLK_F_MQ));
    addc("VIRTIO_BLK_F_DISCARD", u64::from(VIRTIO_BLK_F_DISCARD));
    addc(
        "VIRTIO_BLK_F_WRITE_ZEROES",
        u64::from(VIRTIO_BLK_F_WRITE_ZEROES),
    );
    addc("VIRTIO_BLK_T_IN", u64::from(VIRTIO_BLK_T_IN));
    addc("VIRTIO_BLK_T_OUT", u64::from(VIRTIO_BLK_T_OUT));
    addc("VIRTIO_BLK_T_FLUSH", u64::from(VIRTIO_BLK_T_FLUSH));
    addc("VIRTIO_BLK_T_GET_ID", u64::from(VIRTIO_BLK_T_GET_ID));
    addc("VIRTIO_BLK_T_DISCARD", u64::from(VIRTIO_BLK_T_DISCARD));
    addc(
        "VIRTIO_BLK_T_WRITE_ZEROES",
        u64::from(VIRTIO_BLK_T_WRITE_ZEROES),
    );
    addc("VIRTIO_BLK_S_OK", u64::from(VIRTIO_BLK_S_OK));
    addc("VIRTIO_BLK_S_IOERR", u64::from(VIRTIO_BLK_S_IOERR));
    addc("VIRTIO_BLK_S_UNSUPP", u64::from(VIRTIO_BLK_S_UNSUPP));
    addc("VIRTIO_BLK_ID_BYTES", VIRTIO_BLK_ID_BYTES as u64);
    addc(
        "VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP",
        u64::from(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
    );
    v.push((
        "sizeof outhdr".into(),
        "sizeof(struct virtio_blk_outhdr)".into(),
        BLK_OUTHDR_SIZE as u64,
    ));
    v.push((
        "sizeof dwz".into(),
        "sizeof(struct virtio_blk_discard_write_zeroes)".into(),
        BLK_DWZ_SEG_SIZE as u64,
    ));
    macro_rules! boff {
        ($cf:literal, $($rf:tt)+) => {
            v.push((
                concat!("offsetof virtio_blk_config.", $cf).into(),
                concat!("offsetof(struct virtio_blk_config, ", $cf, ")").into(),
                offset_of!(BlkConfig, $($rf)+) as u64,
            ))
        };
    }
    boff!("capacity", capacity);
    boff!("size_max", size_max);
    boff!("seg_max", seg_max);
    boff!("geometry.cylinders", geometry_cylinders);
    boff!("geometry.heads", geometry_heads);
    boff!("geometry.sectors", geometry_sectors);
    boff!("blk_size", blk_size);
    boff!("physical_block_exp", physical_block_exp);
    boff!("alignment_offset", alignment_offset);
    boff!("min_io_size", min_io_size);
    boff!("opt_io_size", opt_io_size);
    boff!("wce", wce);
    boff!("num_queues", num_queues);
    boff!("max_discard_sectors", max_discard_sectors);
    boff!("max_discard_seg", max_discard_seg);
    boff!("discard_sector_alignment", discard_sector_alignment);
    boff!("max_write_zeroes_sectors", max_write_zeroes_sectors);
    boff!("max_write_zeroes_seg", max_write_zeroes_seg);
    boff!("write_zeroes_may_unmap", write_zeroes_may_unmap);
    boff!("unused1", unused1);
    v
}

#[test]
fn uapi_matches_c_header() {
    let inc = repo_uapi_dir();
    let hdr = inc.join("linux/vduse.h");
    assert!(
        hdr.exists(),
        "{} is missing: the layout test needs the repository's uAPI header",
        hdr.display()
    );
    let checks = checks();
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <sys/ioctl.h>\n\
         #include <linux/vduse.h>\n#include <linux/virtio_blk.h>\n#include <linux/virtio_config.h>\n\
         #include <linux/virtio_ring.h>\n#include <linux/virtio_ids.h>\n#include <linux/vhost.h>\n\
         /* Fail loudly if an older system <linux/vduse.h> was picked up instead of the repo's. */\n\
         #ifndef VDUSE_GET_FEATURES\n#error not the 7.3 vduse.h\n#endif\n\
         int main(void) {\n",
    );
    for (i, (name, c, _)) in checks.iter().enumerate() {
        if name.starts_with("VHOST_") {
            // vhost constants come from the system header, which may predate some of them.
            src.push_str(&format!(
                "#ifdef {c}\n    printf(\"{i} %llu\\n\", (unsigned long long)({c}));\n#else\n    printf(\"{i} missing\\n\");\n#endif\n"
            ));
        } else {
            src.push_str(&format!(
                "    printf(\"{i} %llu\\n\", (unsigned long long)({c}));\n"
            ));
        }
    }
    src.push_str("    return 0;\n}\n");

    let dir = std::env::temp_dir().join(format!("vduse-blk-uapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c, &src).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg("-std=gnu11")
        .arg("-Wall")
        .arg("-I")
        .arg(&inc)
        .arg("-o")
        .arg(&exe)
        .arg(&c)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let got: BTreeMap<usize, Option<u64>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (i, v) = l.split_once(' ').unwrap();
            (i.parse().unwrap(), v.parse().ok())
        })
        .collect();
    assert_eq!(got.len(), checks.len());
    let mut bad = Vec::new();
    let mut missing = Vec::new();
    for (i, (name, _, rust)) in checks.iter().enumerate() {
        match got[&i] {
            None => missing.push(name.clone()),
            Some(c) if c != *rust => bad.push(format!(
                "{name}: C {c} (0x{c:x}) != Rust {rust} (0x{rust:x})"
            )),
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "not in the system's <linux/vhost.h>, unchecked: {}",
            missing.join(" ")
        );
    }
    // The vhost-vdpa ioctls the helper relies on have all been in Linux since 6.3.
    assert!(
        missing.len() <= 2,
        "too many vhost constants missing: {missing:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(bad.is_empty(), "uAPI mismatches:\n{}", bad.join("\n"));
    eprintln!(
        "{} uAPI values checked against {}",
        checks.len(),
        hdr.display()
    );
}

/// The reference table of ioctl numbers (shared/reference/ioctls.txt) as an independent check
/// of the encoding helpers.
#[test]
fn ioctl_numbers_match_reference_table() {
    let expect: &[(&str, u32)] = &[
        ("VDUSE_GET_API_VERSION", 0x80088100),
        ("VDUSE_SET_API_VERSION", 0x40088101),
        ("VDUSE_CREATE_DEV", 0x41508102),
        ("VDUSE_DESTROY_DEV", 0x41008103),
        ("VDUSE_GET_FEATURES", 0x80088104),
        ("VDUSE_SET_FEATURES", 0x40088105),
        ("VDUSE_IOTLB_GET_FD", 0xc0208110),
        ("VDUSE_DEV_GET_FEATURES", 0x80088111),
        ("VDUSE_DEV_SET_CONFIG", 0x40088112),
        ("VDUSE_DEV_INJECT_CONFIG_IRQ", 0x00008113),
        ("VDUSE_VQ_SETUP", 0x40208114),
        ("VDUSE_VQ_GET_INFO", 0xc0308115),
        ("VDUSE_VQ_SETUP_KICKFD", 0x40088116),
        ("VDUSE_VQ_INJECT_IRQ", 0x40048117),
        ("VDUSE_IOTLB_REG_UMEM", 0x40308118),
        ("VDUSE_IOTLB_DEREG_UMEM", 0x40308119),
        ("VDUSE_IOTLB_GET_INFO", 0xc030811a),
        ("VDUSE_IOTLB_GET_FD2", 0xc050811b),
    ];
    assert_eq!(IOCTLS.len(), expect.len());
    for ((n1, v1), (n2, v2)) in IOCTLS.iter().zip(expect) {
        assert_eq!(n1, n2);
        assert_eq!(v1, v2, "{n1}");
    }
}
