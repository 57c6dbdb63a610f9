// SPDX-License-Identifier: GPL-2.0

//! Creating, opening and destroying VDUSE devices in test cases.

use crate::harness::Ctx;
use crate::sys::{self, ioc, Fd, Ret, CONTROL, IOC_READ, IOC_WRITE, VDUSE_BASE};

/// `VDUSE_CREATE_DEV`.
pub const VDUSE_CREATE_DEV: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x02, 336);
/// `VDUSE_DESTROY_DEV`.
pub const VDUSE_DESTROY_DEV: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x03, 256);
/// `VDUSE_DEV_GET_FEATURES`.
pub const VDUSE_DEV_GET_FEATURES: u32 = ioc(IOC_READ, VDUSE_BASE, 0x11, 8);
/// `VDUSE_DEV_SET_CONFIG`.
pub const VDUSE_DEV_SET_CONFIG: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x12, 8);
/// `VDUSE_VQ_SETUP`.
pub const VDUSE_VQ_SETUP: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x14, 32);
/// `VDUSE_VQ_GET_INFO`.
pub const VDUSE_VQ_GET_INFO: u32 = ioc(IOC_READ | IOC_WRITE, VDUSE_BASE, 0x15, 48);
/// `VDUSE_VQ_SETUP_KICKFD`.
pub const VDUSE_VQ_SETUP_KICKFD: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x16, 8);
/// `VDUSE_VQ_INJECT_IRQ`.
pub const VDUSE_VQ_INJECT_IRQ: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x17, 4);
/// `VDUSE_IOTLB_REG_UMEM`.
pub const VDUSE_IOTLB_REG_UMEM: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x18, 48);
/// `VDUSE_IOTLB_DEREG_UMEM`.
pub const VDUSE_IOTLB_DEREG_UMEM: u32 = ioc(IOC_WRITE, VDUSE_BASE, 0x19, 48);
/// `VDUSE_IOTLB_GET_INFO`.
pub const VDUSE_IOTLB_GET_INFO: u32 = ioc(IOC_READ | IOC_WRITE, VDUSE_BASE, 0x1a, 48);
/// `VDUSE_IOTLB_GET_FD2`.
pub const VDUSE_IOTLB_GET_FD2: u32 = ioc(IOC_READ | IOC_WRITE, VDUSE_BASE, 0x1b, 80);

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

/// `VDUSE_CREATE_DEV` on `fd`.
pub fn create(fd: &Fd, cfg: &DevConfig) -> Ret {
    let mut b = cfg.encode();
    let r = sys::ioctl(fd.0, VDUSE_CREATE_DEV, b.as_mut_ptr() as usize);
    if r.is_ok() {
        crate::harness::created(&node_name(&cfg.name));
    }
    r
}

/// `VDUSE_DESTROY_DEV` on `fd` of the raw 256-byte name buffer `name`.
pub fn destroy_raw(fd: &Fd, name: &[u8]) -> Ret {
    crate::harness::before_destroy(&node_name(name));
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
        crate::harness::post_check(&self.0);
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

/// A control fd with API version `api` (`None`: never asked).
pub fn control(c: &mut Ctx, api: Option<u64>) -> Option<Fd> {
    let fd = crate::cases::control::open_control(c)?;
    if let Some(v) = api {
        c.expect(
            &format!("SET_API_VERSION({v})"),
            crate::cases::control::set_api(&fd, v),
            Ok(0),
        );
    }
    Some(fd)
}

/// Creates `cfg` on a control fd of version `api` and expects success; returns the guard.
pub fn create_ok(c: &mut Ctx, api: Option<u64>, cfg: &DevConfig) -> Option<DevGuard> {
    let fd = control(c, api)?;
    let name = String::from_utf8_lossy(&cfg.name).into_owned();
    let guard = DevGuard(name.clone());
    match c.expect_ok(&format!("CREATE_DEV({name})"), create(&fd, cfg)) {
        Ok(_) => Some(guard),
        Err(_) => None,
    }
}

/// Opens `/dev/vduse/NAME`.
pub fn open_dev(name: &str, flags: i32) -> Ret {
    sys::open(&format!("/dev/vduse/{name}"), flags)
}

/// Creates a default blk device (API `api`) and opens its node; returns (guard, device fd).
pub fn with_open_dev(c: &mut Ctx, api: Option<u64>, name: &str) -> Option<(DevGuard, Fd)> {
    let cfg = if api == Some(1) {
        DevConfig::blk_v1(name)
    } else {
        DevConfig::blk(name)
    };
    let g = create_ok(c, api, &cfg)?;
    match c.expect_ok("open(device)", open_dev(name, libc::O_RDWR)) {
        Ok(fd) => Some((g, Fd(fd as i32))),
        Err(_) => None,
    }
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
        if crate::cases::control::set_api(&fd, u64::from(v1)).is_err() {
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
