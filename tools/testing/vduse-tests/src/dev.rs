// SPDX-License-Identifier: GPL-2.0

//! Creating, opening and destroying VDUSE devices in test cases.

use crate::sys::{
    self, fmt_ret, Fd, Ret, CONTROL, VDUSE_CREATE_DEV, VDUSE_DESTROY_DEV, VDUSE_DEV_GET_FEATURES,
    VDUSE_GET_API_VERSION, VDUSE_SET_API_VERSION, VDUSE_SET_FEATURES,
};
use std::cell::RefCell;

/// `VIRTIO_F_VERSION_1`.
pub const F_VERSION_1: u64 = 1 << 32;
/// `VIRTIO_F_ACCESS_PLATFORM`.
pub const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// `VIRTIO_ID_NET`, `VIRTIO_ID_BLOCK`, `VIRTIO_ID_FS`.
pub const ID_NET: u32 = 1;
/// `VIRTIO_ID_BLOCK`.
pub const ID_BLOCK: u32 = 2;
/// `VIRTIO_ID_FS`.
pub const ID_FS: u32 = 26;

/// `struct vduse_dev_config` (336 bytes) plus its configuration space.
#[derive(Clone)]
pub struct DevConfig {
    /// Name bytes (NUL-padded to 256 when encoded).
    pub name: Vec<u8>,
    /// `vendor_id`.
    pub vendor_id: u32,
    /// `device_id`.
    pub device_id: u32,
    /// `features`.
    pub features: u64,
    /// `vq_num`.
    pub vq_num: u32,
    /// `vq_align`.
    pub vq_align: u32,
    /// `ngroups`.
    pub ngroups: u32,
    /// `nas`.
    pub nas: u32,
    /// `reserved[11]`.
    pub reserved: [u32; 11],
    /// The configuration space (its length is `config_size`).
    pub config: Vec<u8>,
    /// `config_size` if different from `config.len()`.
    pub config_size: Option<u32>,
}

impl DevConfig {
    /// A valid virtio-blk config named `name` (2 queues, 8 bytes of config space) for an API
    /// version 0 control fd.
    pub fn blk(name: &str) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            vendor_id: 0,
            device_id: ID_BLOCK,
            features: F_VERSION_1 | F_ACCESS_PLATFORM,
            vq_num: 2,
            vq_align: 4096,
            ngroups: 0,
            nas: 0,
            reserved: [0; 11],
            config: (0u8..8).collect(),
            config_size: None,
        }
    }

    /// The same, with `ngroups` = `nas` = 1 for an API version 1 control fd.
    pub fn blk_v1(name: &str) -> Self {
        Self {
            ngroups: 1,
            nas: 1,
            ..Self::blk(name)
        }
    }

    /// The bytes userspace passes to `VDUSE_CREATE_DEV`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; 256];
        let n = self.name.len().min(256);
        b[..n].copy_from_slice(&self.name[..n]);
        b.extend_from_slice(&self.vendor_id.to_ne_bytes());
        b.extend_from_slice(&self.device_id.to_ne_bytes());
        b.extend_from_slice(&self.features.to_ne_bytes());
        b.extend_from_slice(&self.vq_num.to_ne_bytes());
        b.extend_from_slice(&self.vq_align.to_ne_bytes());
        b.extend_from_slice(&self.ngroups.to_ne_bytes());
        b.extend_from_slice(&self.nas.to_ne_bytes());
        for r in self.reserved {
            b.extend_from_slice(&r.to_ne_bytes());
        }
        let size = self.config_size.unwrap_or(self.config.len() as u32);
        b.extend_from_slice(&size.to_ne_bytes());
        assert_eq!(b.len(), 336);
        b.extend_from_slice(&self.config);
        b
    }
}

/// The node name the driver makes of a raw name buffer: up to the first NUL, at most 255 bytes
/// (the last byte of the 256-byte field is always the terminator).
fn node_name(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(raw.len())
        .min(255);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The entries of `dir` (`/dev/vduse` or `/sys/class/vduse`) but `control`: the devices there.
pub fn listed_devices(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "control")
                .collect()
        })
        .unwrap_or_default()
}

/// `VDUSE_DESTROY_DEV` of `name` on control fd `fd`, without [`destroy`]'s post-condition
/// bookkeeping: for the fuzzers and concurrent cases, whose devices come and go on their own.
pub fn destroy_untracked(fd: i32, name: &[u8]) -> Ret {
    let mut b = [0u8; 256];
    let n = name.len().min(256);
    b[..n].copy_from_slice(&name[..n]);
    sys::ioctl(fd, VDUSE_DESTROY_DEV, b.as_mut_ptr() as usize)
}

/// `VDUSE_VQ_SETUP` of queue `index` with `max_size` entries, group 0, reserved words zero.
pub fn vq_setup(fd: i32, index: u32, max_size: u16) -> Ret {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&index.to_ne_bytes());
    b[4..6].copy_from_slice(&max_size.to_ne_bytes());
    sys::ioctl(fd, crate::sys::VDUSE_VQ_SETUP, b.as_mut_ptr() as usize)
}

/// `VDUSE_CREATE_DEV` on `fd`.
pub fn create(fd: &Fd, cfg: &DevConfig) -> Ret {
    let mut b = cfg.encode();
    let r = sys::ioctl(fd.0, VDUSE_CREATE_DEV, b.as_mut_ptr() as usize);
    if r.is_ok() {
        created(&node_name(&cfg.name));
    }
    r
}

/// `VDUSE_DESTROY_DEV` on `fd` of the raw 256-byte name buffer `name`.
pub fn destroy_raw(fd: &Fd, name: &[u8]) -> Ret {
    before_destroy(&node_name(name));
    let mut b = [0u8; 256];
    let n = name.len().min(256);
    b[..n].copy_from_slice(&name[..n]);
    sys::ioctl(fd.0, VDUSE_DESTROY_DEV, b.as_mut_ptr() as usize)
}

/// `VDUSE_DESTROY_DEV` on `fd`.
pub fn destroy(fd: &Fd, name: &str) -> Ret {
    destroy_raw(fd, name.as_bytes())
}

/// Destroys a device when dropped (through a fresh control fd), so that a failing case leaves
/// nothing behind for the next one.
pub struct DevGuard(pub String);

impl Drop for DevGuard {
    fn drop(&mut self) {
        post_check(&self.0);
        if let Ok(fd) = sys::open(CONTROL, libc::O_RDWR) {
            let fd = Fd(fd as i32);
            if destroy(&fd, &self.0) == Err(libc::EBUSY) {
                // Still on the vDPA bus (a case that failed half-way): take it off first.
                let _ = std::process::Command::new("vdpa")
                    .args(["dev", "del", &self.0])
                    .output();
                let _ = destroy(&fd, &self.0);
            }
        }
    }
}

/// Opens `/dev/vduse/NAME`.
pub fn open_dev(name: &str, flags: i32) -> Ret {
    sys::open(&format!("/dev/vduse/{name}"), flags)
}

/// Runs `f` in a child process without `CAP_NET_ADMIN` in its effective set; returns what `f`
/// returned (a [`Ret`] passed back through the exit status: 0 = Ok(0), else errno).
pub fn without_net_admin(f: impl FnOnce() -> Ret) -> Ret {
    // SAFETY: fork in a single-threaded test program; the child only makes syscalls and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Default, Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let mut h = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let mut d = [Data::default(); 2];
        // SAFETY: Valid header and two data structs, as capget/capset v3 expect.
        unsafe {
            libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr());
            d[0].effective &= !(1 << 12); // CAP_NET_ADMIN
            if libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) != 0 {
                libc::_exit(255);
            }
        }
        let code = match f() {
            Ok(_) => 0,
            Err(e) => e,
        };
        // SAFETY: Leaving the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: Waiting for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match libc::WEXITSTATUS(status) {
        0 => Ok(0),
        e => Err(e),
    }
}

/// `vduse-tests stress N`: N cycles of create (API 0 and 1 alternately, 4 queues), open,
/// close, destroy of the same name; every cycle must get minor 1 again and leave no node.
pub fn stress(cycles: u32) -> std::process::ExitCode {
    use std::os::unix::fs::MetadataExt;
    let fail = |what: String| {
        println!("not ok 1 stress: {what}");
        std::process::ExitCode::FAILURE
    };
    let Ok(fd) = sys::open(CONTROL, libc::O_RDWR) else {
        return fail("open control".into());
    };
    let fd = Fd(fd as i32);
    for i in 0..cycles {
        let v1 = i % 2 == 1;
        if set_api(&fd, u64::from(v1)).is_err() {
            return fail(format!("cycle {i}: SET_API_VERSION"));
        }
        let mut cfg = if v1 {
            DevConfig::blk_v1("t-stress")
        } else {
            DevConfig::blk("t-stress")
        };
        cfg.vq_num = 4;
        if let Err(e) = create(&fd, &cfg) {
            return fail(format!("cycle {i}: CREATE_DEV: -{}", sys::errno_name(e)));
        }
        let minor = std::fs::metadata("/dev/vduse/t-stress")
            .map(|m| libc::minor(m.rdev()))
            .ok();
        if minor != Some(1) {
            return fail(format!("cycle {i}: minor {minor:?}, expected 1"));
        }
        match open_dev("t-stress", libc::O_RDWR) {
            Ok(d) => {
                let _ = sys::close(d as i32);
            }
            Err(e) => return fail(format!("cycle {i}: open: -{}", sys::errno_name(e))),
        }
        if let Err(e) = destroy(&fd, "t-stress") {
            return fail(format!("cycle {i}: DESTROY_DEV: -{}", sys::errno_name(e)));
        }
    }
    let left = std::fs::read_dir("/dev/vduse")
        .map(|d| d.count())
        .unwrap_or(0);
    if left != 1 {
        return fail(format!(
            "{left} nodes left in /dev/vduse, expected only control"
        ));
    }
    println!("ok 1 stress: {cycles} create/open/close/destroy cycles");
    std::process::ExitCode::SUCCESS
}

/// A 48-byte IOVA struct (`vduse_iova_umem`/`vduse_iova_info`) with `asid` at 24 and a
/// reserved word at 28 + 4 * `reserved_at` set to `reserved`.
pub fn iova48(a: u64, b: u64, c3: u64, asid: u32, reserved: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [a, b, c3] {
        v.extend_from_slice(&x.to_ne_bytes());
    }
    v.extend_from_slice(&asid.to_ne_bytes());
    v.extend_from_slice(&reserved.to_ne_bytes());
    v.extend_from_slice(&[0; 16]);
    v
}

/// A 80-byte `vduse_iotlb_entry_v2`.
pub fn entry_v2(start: u64, last: u64, asid: u32, reserved: u32) -> Vec<u8> {
    let mut v = vec![0u8; 80];
    v[8..16].copy_from_slice(&start.to_ne_bytes());
    v[16..24].copy_from_slice(&last.to_ne_bytes());
    v[32..36].copy_from_slice(&asid.to_ne_bytes());
    v[36..40].copy_from_slice(&reserved.to_ne_bytes());
    v
}

/// `VDUSE_GET_API_VERSION`, returning (ret, version).
pub fn get_api(fd: &Fd) -> (Ret, u64) {
    let mut v: u64 = 0xdead_beef;
    let r = sys::ioctl_ptr(fd.0, VDUSE_GET_API_VERSION, &mut v);
    (r, v)
}

/// `VDUSE_SET_API_VERSION`.
pub fn set_api(fd: &Fd, v: u64) -> Ret {
    let mut v = v;
    sys::ioctl_ptr(fd.0, VDUSE_SET_API_VERSION, &mut v)
}

/// `VDUSE_SET_FEATURES`.
pub fn set_features(fd: &Fd, f: u64) -> Ret {
    let mut f = f;
    sys::ioctl_ptr(fd.0, VDUSE_SET_FEATURES, &mut f)
}

/// What the post-condition of the running case knows and found (per process: each case runs
/// in a process of its own).
#[derive(Default)]
struct Post {
    meant_broken: Vec<String>,
    failures: Vec<String>,
    /// Devices the case created whose post-condition has not been checked yet.
    unchecked: Vec<String>,
}

/// Records that the running case created device `name` (its post-condition is due).
pub fn created(name: &str) {
    POST.with(|p| {
        let mut p = p.borrow_mut();
        if !p.unchecked.iter().any(|n| n == name) {
            p.unchecked.push(name.to_string());
        }
    });
}

/// Before device `name` is destroyed: its post-condition, if the case created it and it was
/// not checked yet. Skipped while the device node is open (the case holds it, and the destroy
/// will fail with `EBUSY`): the check then runs at a later destroy or at the end of the case.
pub fn before_destroy(name: &str) {
    if POST.with(|p| p.borrow().unchecked.iter().any(|n| n == name)) {
        post_check_inner(name, true);
    }
}

/// At the end of a case: the post-condition of every device it created that still exists and
/// was not checked.
pub fn post_check_remaining() {
    let names = POST.with(|p| p.borrow().unchecked.clone());
    for n in names {
        post_check_inner(&n, false);
    }
}

thread_local! {
    static POST: RefCell<Post> = RefCell::new(Post::default());
}

/// The post-condition of every case on each device it created, checked when the device's guard
/// destroys it (`dev::DevGuard`) or when a case calls it before destroying a device itself: a
/// device the case did not mean to break is not broken (`poll` without `POLLERR`,
/// `VDUSE_DEV_GET_FEATURES` not `EPERM`), and one it meant to break is.
pub fn post_check(name: &str) {
    post_check_inner(name, false);
}

/// [`post_check`]; with `busy_ok`, a node held open elsewhere (`EBUSY`) defers the check.
fn post_check_inner(name: &str, busy_ok: bool) {
    let fd = match open_dev(name, libc::O_RDWR | libc::O_NONBLOCK) {
        Ok(fd) => sys::Fd(fd as i32),
        Err(libc::ENOENT) => {
            // Not created, or already destroyed by the case.
            POST.with(|p| p.borrow_mut().unchecked.retain(|n| n != name));
            return;
        }
        Err(libc::EBUSY) if busy_ok => return,
        Err(e) => {
            post_fail(format!(
                "post-condition: cannot open /dev/vduse/{name} to check it: -{}",
                sys::errno_name(e)
            ));
            return;
        }
    };
    let p = sys::poll_fd(fd.0, libc::POLLIN | libc::POLLOUT, 0);
    let mut f = 0u64;
    let r = sys::ioctl_ptr(fd.0, VDUSE_DEV_GET_FEATURES, &mut f);
    let broken = p.revents & libc::POLLERR != 0 || r == Err(libc::EPERM);
    POST.with(|p| p.borrow_mut().unchecked.retain(|n| n != name));
    let meant = POST.with(|p| p.borrow().meant_broken.iter().any(|n| n == name));
    if broken != meant {
        post_fail(format!(
            "post-condition: device {name} is {} (poll revents {:#x}, DEV_GET_FEATURES {})",
            if broken {
                "broken, which the case did not mean"
            } else {
                "not broken, although the case meant to break it"
            },
            p.revents,
            fmt_ret(&r)
        ));
    }
}

fn post_fail(msg: String) {
    POST.with(|p| p.borrow_mut().failures.push(msg));
}

/// The post-condition failures found so far in this process; the post-condition state is
/// reset (nothing carries over to a case forked later).
pub fn take_post_failures() -> Vec<String> {
    POST.with(|p| std::mem::take(&mut *p.borrow_mut()).failures)
}

/// Declares that the running case breaks device `name` on purpose: the post-condition then
/// expects it broken instead of healthy.
pub fn meant_broken(name: &str) {
    POST.with(|p| p.borrow_mut().meant_broken.push(name.to_string()));
}
