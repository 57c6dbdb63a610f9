// SPDX-License-Identifier: GPL-2.0

//! The vhost-vdpa client of the cases: binding new vDPA devices to `vhost_vdpa`, finding their
//! nodes, and the ioctls and IOTLB messages a VMM would send (syscalls only: no case logic).

use crate::sys::{self, Fd, Ret, VHOST_VDPA_GET_STATUS, VHOST_VDPA_SET_STATUS};

/// Unloads `virtio_vdpa` and loads `vhost_vdpa`, so new vDPA devices bind to vhost.
pub fn use_vhost_vdpa() {
    let _ = std::process::Command::new("rmmod")
        .arg("virtio_vdpa")
        .output();
    let _ = std::process::Command::new("modprobe")
        .arg("vhost_vdpa")
        .output();
}

/// The vhost-vdpa node of vDPA device `name`.
pub fn vhost_node(name: &str) -> Option<String> {
    let dir = format!("/sys/bus/vdpa/devices/{name}");
    std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("vhost-vdpa-").then(|| format!("/dev/{n}"))
        })
}

/// A vhost ioctl with a `u64` in and out: (ret, value).
pub fn vhost_u64(fd: i32, cmd: u32, v: u64) -> (Ret, u64) {
    let mut v = v;
    let r = sys::ioctl_ptr(fd, cmd, &mut v);
    (r, v)
}

/// A vhost ioctl with a `struct vhost_vring_state` (index, num): (ret, num).
pub fn vring_state(fd: i32, cmd: u32, index: u32, num: u32) -> (Ret, u32) {
    let mut s = [index, num];
    let r = sys::ioctl(fd, cmd, s.as_mut_ptr() as usize);
    (r, s[1])
}

/// `VHOST_VDPA_SET_STATUS`.
pub fn set_status(fd: i32, status: u8) -> Ret {
    let mut s = status;
    sys::ioctl_ptr(fd, VHOST_VDPA_SET_STATUS, &mut s)
}

/// Writes a `VHOST_IOTLB_UPDATE` (`struct vhost_msg_v2`) mapping IOVA 0x100000 to 64 KiB of a
/// memfd: vhost-vdpa calls `set_map`, which sends `VDUSE_UPDATE_IOTLB`.
pub fn iotlb_update(vfd: i32) -> (Ret, u64) {
    iotlb_update_at(vfd, 0x10_0000, 3)
}

/// [`iotlb_update`] at `iova` with vhost access `perm` (1 RO, 2 WO, 3 RW).
pub fn iotlb_update_at(vfd: i32, iova: u64, perm: u8) -> (Ret, u64) {
    iotlb_update_in(vfd, 0, iova, perm)
}

/// [`iotlb_update_at`] in address space `asid` (needs `VHOST_BACKEND_F_IOTLB_ASID`).
pub fn iotlb_update_in(vfd: i32, asid: u32, iova: u64, perm: u8) -> (Ret, u64) {
    // SAFETY: Creating and mapping a memfd of 64 KiB; the mapping is leaked for the test's
    // duration (vhost-vdpa keeps a reference to the file).
    let uaddr = unsafe {
        let m = libc::memfd_create(c"vduse-test".as_ptr(), 0);
        libc::ftruncate(m, 65536);
        let p = libc::mmap(
            std::ptr::null_mut(),
            65536,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            m,
            0,
        );
        libc::close(m);
        if p != libc::MAP_FAILED {
            // What the "VMM" put at IOVA 0x100800, for the daemon side to find.
            std::ptr::copy_nonoverlapping(b"guest memory".as_ptr(), p.cast::<u8>().add(0x800), 12);
        }
        p as u64
    };
    let mut msg = [0u8; 72];
    msg[..4].copy_from_slice(&2u32.to_ne_bytes()); // VHOST_IOTLB_MSG_V2
    msg[4..8].copy_from_slice(&asid.to_ne_bytes());
    msg[8..16].copy_from_slice(&iova.to_ne_bytes()); // iova
    msg[16..24].copy_from_slice(&65536u64.to_ne_bytes()); // size
    msg[24..32].copy_from_slice(&uaddr.to_ne_bytes()); // uaddr
    msg[32] = perm; // VHOST_ACCESS_*
    msg[33] = 2; // VHOST_IOTLB_UPDATE
    (sys::write(vfd, &msg), uaddr)
}

/// Sends one `vhost_msg_v2` of IOTLB message type `kind` (2 update, 5 batch begin, 6 batch end).
pub fn iotlb_msg(vfd: i32, iova: u64, size: u64, uaddr: u64, kind: u8) -> Ret {
    let mut msg = [0u8; 72];
    msg[..4].copy_from_slice(&2u32.to_ne_bytes()); // VHOST_IOTLB_MSG_V2, asid 0
    msg[8..16].copy_from_slice(&iova.to_ne_bytes());
    msg[16..24].copy_from_slice(&size.to_ne_bytes());
    msg[24..32].copy_from_slice(&uaddr.to_ne_bytes());
    msg[32] = 3; // VHOST_ACCESS_RW
    msg[33] = kind;
    sys::write(vfd, &msg)
}

/// Reloads `vhost_vdpa` with its own `max_iotlb_entries` (also 2048 by default, which would
/// refuse the 2049th update before VDUSE sees it); true if it took.
pub fn vhost_vdpa_iotlb_limit(limit: u32) -> bool {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let arg = format!("max_iotlb_entries={limit}");
    run("modprobe", &["-r", "vhost_vdpa"]) && run("modprobe", &["vhost_vdpa", &arg])
}

/// `VHOST_VDPA_GET_STATUS`: (ret, status).
pub fn get_status(v: &Fd) -> (Ret, u8) {
    let mut st = 0u8;
    let r = sys::ioctl_ptr(v.0, VHOST_VDPA_GET_STATUS, &mut st);
    (r, st)
}
