// SPDX-License-Identifier: GPL-2.0

//! The single-threaded fuzzer: seeded operations on the control node and the device nodes,
//! each argument a valid one mutated field by field (or a bad pointer, or a short buffer), every
//! result written to a transcript line `N<TAB>OPERATION<TAB>RESULT<TAB>TAG`.
//!
//! Two runs with one seed on two drivers make the same calls for as long as the drivers answer
//! alike (the next operation depends only on the seed and on what was recorded), so their
//! transcripts compare line by line (`vduse-tests fuzz-compare`). TAG names the documented
//! difference (Documentation/differences.rst) an operation's *input* falls under, decided before
//! the call; the comparison accepts only that difference's result pair there.
//!
//! Inputs left out on purpose, each covered by a case of its own: `ngroups`/`nas` above 255
//! (D3: C's allocation WARNs), more than 256 queues (65536 sysfs directories per device make a
//! run slow, not thorough), names `.` and `..`, and a second `vdpa dev add` of one device (D4:
//! C leaks the first add's IOVA domains, whose files keep vduse.ko from unloading).

use crate::dev::{DevConfig, F_ACCESS_PLATFORM, F_VERSION_1, ID_NET};
use crate::fuzz::arena::{Arena, Ptr, ROOM};
use crate::fuzz::gen::Gen;
use crate::sys::{self, fmt_ret, ioc, Fd, Ret, CONTROL, IOC_NONE, IOC_READ, IOC_WRITE};
use crate::sys::{
    VDUSE_BASE, VDUSE_CREATE_DEV, VDUSE_DESTROY_DEV, VDUSE_DEV_GET_FEATURES,
    VDUSE_DEV_INJECT_CONFIG_IRQ, VDUSE_DEV_SET_CONFIG, VDUSE_GET_API_VERSION, VDUSE_GET_FEATURES,
    VDUSE_IOTLB_DEREG_UMEM, VDUSE_IOTLB_GET_FD, VDUSE_IOTLB_GET_FD2, VDUSE_IOTLB_GET_INFO,
    VDUSE_IOTLB_REG_UMEM, VDUSE_SET_API_VERSION, VDUSE_SET_FEATURES, VDUSE_VQ_GET_INFO,
    VDUSE_VQ_INJECT_IRQ, VDUSE_VQ_SETUP, VDUSE_VQ_SETUP_KICKFD,
};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

/// The names operations pick from: four plain ones, then the edge cases (empty, a slash, 255
/// bytes, 256 bytes without a NUL, a byte that is not UTF-8).
fn name_pool() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..4).map(|i| format!("fz{i}").into_bytes()).collect();
    v.push(Vec::new());
    v.push(b"fz/x".to_vec());
    v.push(vec![b'f'; 255]);
    v.push(vec![b'f'; 256]);
    v.push(vec![b'f', b'z', 0xff]);
    v
}

/// The node name a raw name buffer gives (up to the first NUL, at most 255 bytes).
fn node_name(raw: &[u8]) -> Vec<u8> {
    let end = raw
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(raw.len())
        .min(255);
    raw[..end].to_vec()
}

/// How the transcript shows a name: printable ASCII as is, long runs shortened, other bytes
/// escaped.
fn show(name: &[u8]) -> String {
    if name.len() > 16 && name.iter().all(|&c| c == name[0]) {
        return format!("{}x{}", name[0] as char, name.len());
    }
    name.iter()
        .map(|&c| {
            if c.is_ascii_graphic() {
                (c as char).to_string()
            } else {
                format!("\\x{c:02x}")
            }
        })
        .collect()
}

/// A device the run created (as its successful `CREATE_DEV` said).
struct Dev {
    name: Vec<u8>,
    vq_num: u32,
    config_size: u32,
    on_bus: bool,
    /// Was put on the bus once: it is not added again (D4: each later add leaks C's IOVA
    /// domains, and their files pin vduse.ko).
    added: bool,
}

/// An open device node.
struct OpenDev {
    name: Vec<u8>,
    fd: Fd,
    nonblock: bool,
}

/// Options of one run.
pub struct Opts {
    /// The seed.
    pub seed: u64,
    /// Operations to make (the cleanup at the end is extra).
    pub ops: u64,
    /// Also `vdpa dev add`/`del` (needs iproute2's `vdpa`; no vDPA bus driver should be loaded).
    pub vdpa: bool,
}

/// The run's state.
struct Fuzz {
    g: Gen,
    arena: Arena,
    out: std::io::BufWriter<std::fs::File>,
    n: u64,
    names: Vec<Vec<u8>>,
    ctl: Vec<Fd>,
    devs: Vec<Dev>,
    open: Vec<OpenDev>,
    eventfd: Fd,
    umem: *mut u8,
    counts: BTreeMap<&'static str, u64>,
    vdpa: bool,
}

/// The size of the buffer `REG_UMEM` is pointed at: C's default bounce size.
const UMEM_SIZE: usize = 64 << 20;

impl Fuzz {
    /// Writes one transcript line.
    fn rec(&mut self, kind: &'static str, op: String, res: String, tag: &str) {
        *self.counts.entry(kind).or_default() += 1;
        let _ = writeln!(self.out, "{}\t{op}\t{res}\t{tag}", self.n);
    }

    /// `ioctl(fd, cmd, arg)` with `bytes` placed as `ptr` says; the result, and on success the
    /// first `out` bytes of the argument as the kernel left them.
    fn ioctl(&mut self, fd: i32, cmd: u32, bytes: &[u8], ptr: Ptr, out: usize) -> (Ret, Vec<u8>) {
        let addr = self.arena.place(bytes, ptr);
        let r = sys::ioctl(fd, cmd, addr);
        let back = match (r, ptr) {
            (Ok(_), Ptr::Valid) => self.arena.read_back(addr, out).unwrap_or_default(),
            _ => Vec::new(),
        };
        (r, back)
    }

    fn ctl_fd(&mut self) -> (usize, i32) {
        let i = self.g.index(self.ctl.len());
        (i, self.ctl[i].0)
    }

    fn pool_name(&mut self) -> Vec<u8> {
        let i = if self.g.chance(900) {
            self.g.index(4)
        } else {
            self.g.index(self.names.len())
        };
        self.names[i].clone()
    }

    fn dev(&self, name: &[u8]) -> Option<&Dev> {
        self.devs.iter().find(|d| d.name == name)
    }

    // --- the control node -------------------------------------------------------------------

    fn create(&mut self) {
        let (ci, fd) = self.ctl_fd();
        let raw = self.pool_name();
        let g = &mut self.g;
        let v1 = g.chance(500);
        let net = g.chance(200);
        let mut c = if v1 {
            DevConfig::blk_v1("")
        } else {
            DevConfig::blk("")
        };
        c.name = raw;
        let clen = g.pick(&[8usize, 60, 256, 4096, 4097]);
        c.config = g.bytes(clen.min(ROOM - 336));
        if net {
            c.device_id = ID_NET;
            c.features = F_VERSION_1 | F_ACCESS_PLATFORM | (1 << 5); // VIRTIO_NET_F_MAC
        }
        c.vq_num = g.pick(&[1, 2, 4, 16]);
        if v1 {
            c.ngroups = g.pick(&[1, 1, 2]);
            c.nas = g.pick(&[1, 1, 2]);
        }
        // Each field mutated one time in ten.
        if g.chance(100) {
            c.vendor_id = g.mutate32(c.vendor_id);
        }
        if g.chance(100) {
            let r = g.u64() as u32;
            c.device_id = g.pick(&[0, 1, 2, 3, 4, 26, 0xffff, u32::MAX, r]);
        }
        if g.chance(100) {
            c.features = g.mutate(c.features, 64);
        }
        if g.chance(100) {
            c.vq_num = g.mutate32(c.vq_num);
            if c.vq_num > 256 && c.vq_num <= 0xffff {
                c.vq_num %= 257;
            }
        }
        if g.chance(100) {
            c.vq_align = g.mutate32(c.vq_align);
        }
        if g.chance(100) {
            c.ngroups = g.mutate32(c.ngroups);
            if c.ngroups > 255 && c.ngroups <= 0xffff {
                c.ngroups &= 0xff; // D3
            }
        }
        if g.chance(100) {
            c.nas = g.mutate32(c.nas);
            if c.nas > 255 && c.nas <= 0xffff {
                c.nas &= 0xff; // D3
            }
        }
        if g.chance(50) {
            let i = g.index(11);
            c.reserved[i] = g.reserved().max(1);
        }
        if g.chance(100) {
            c.config_size = Some(g.mutate32(clen as u32));
        }
        let bytes = c.encode();
        let ptr = Ptr::choose(g, bytes.len());
        let desc = format!(
            "CREATE_DEV ctl{ci} name={} v{} id={:#x} vendor={:#x} feat={:#x} vqs={} align={:#x} groups={} nas={} res={:?} csize={}{}",
            show(&c.name),
            u8::from(v1),
            c.device_id,
            c.vendor_id,
            c.features,
            c.vq_num,
            c.vq_align,
            c.ngroups,
            c.nas,
            c.reserved.iter().filter(|&&r| r != 0).count(),
            c.config_size.unwrap_or(clen as u32),
            ptr.label()
        );
        let (r, _) = self.ioctl(fd, VDUSE_CREATE_DEV, &bytes, ptr, 0);
        if r.is_ok() {
            self.devs.push(Dev {
                name: node_name(&c.name),
                vq_num: c.vq_num,
                config_size: c.config_size.unwrap_or(clen as u32),
                on_bus: false,
                added: false,
            });
        }
        self.rec("CREATE_DEV", desc, fmt_ret(&r), "");
    }

    fn destroy(&mut self) {
        let (ci, fd) = self.ctl_fd();
        let mut raw = vec![0u8; 256];
        let name = if self.g.chance(30) {
            raw = self.g.bytes(256);
            raw.clone()
        } else {
            let n = self.pool_name();
            raw[..n.len()].copy_from_slice(&n);
            n
        };
        let ptr = Ptr::choose(&mut self.g, 256);
        let (r, _) = self.ioctl(fd, VDUSE_DESTROY_DEV, &raw, ptr, 0);
        if r.is_ok() {
            let nn = node_name(&raw);
            self.devs.retain(|d| d.name != nn);
        }
        let op = format!("DESTROY_DEV ctl{ci} name={}{}", show(&name), ptr.label());
        self.rec("DESTROY_DEV", op, fmt_ret(&r), "");
    }

    fn api_and_features(&mut self) {
        let (ci, fd) = self.ctl_fd();
        let which = self.g.below(4);
        let (cmd, label, val) = match which {
            0 => (VDUSE_GET_API_VERSION, "GET_API_VERSION", 0),
            1 => (
                VDUSE_SET_API_VERSION,
                "SET_API_VERSION",
                self.g.mutate(1, 64),
            ),
            2 => (VDUSE_GET_FEATURES, "GET_FEATURES", 0),
            _ => (VDUSE_SET_FEATURES, "SET_FEATURES", self.g.mutate(3, 64)),
        };
        let ptr = Ptr::choose(&mut self.g, 8);
        let (r, back) = self.ioctl(fd, cmd, &val.to_ne_bytes(), ptr, 8);
        let mut res = fmt_ret(&r);
        if which.is_multiple_of(2) && back.len() == 8 {
            res += &format!(
                " value={:#x}",
                u64::from_ne_bytes(back[..8].try_into().unwrap_or([0; 8]))
            );
        }
        let op = format!("{label} ctl{ci} {val:#x}{}", ptr.label());
        self.rec(label, op, res, "");
    }

    fn open_close_control(&mut self) {
        if self.ctl.len() < 3 && (self.ctl.len() == 1 || self.g.chance(500)) {
            let r = sys::open(CONTROL, libc::O_RDWR);
            if let Ok(fd) = r {
                self.ctl.push(Fd(fd as i32));
            }
            self.rec("open control", "open control".into(), ok_or_errno(&r), "");
        } else if self.ctl.len() > 1 {
            let i = self.g.index(self.ctl.len());
            self.ctl.remove(i);
            self.rec("close control", format!("close ctl{i}"), "0".into(), "");
        }
    }

    // --- the device nodes ---------------------------------------------------------------------

    fn open_dev(&mut self) {
        let name = self.pool_name();
        let nonblock = self.g.chance(800);
        let mode = self
            .g
            .pick(&[libc::O_RDWR, libc::O_RDWR, libc::O_RDONLY, libc::O_WRONLY]);
        let flags = mode | if nonblock { libc::O_NONBLOCK } else { 0 };
        let mut path = b"/dev/vduse/".to_vec();
        path.extend_from_slice(&name);
        let r = open_bytes(&path, flags);
        if let Ok(fd) = r {
            self.open.push(OpenDev {
                name: name.clone(),
                fd: Fd(fd as i32),
                nonblock,
            });
        }
        let op = format!("open {} flags={flags:#x}", show(&name));
        self.rec("open dev", op, ok_or_errno(&r), "");
    }

    fn close_dev(&mut self) {
        if self.open.is_empty() {
            return self.open_dev();
        }
        let i = self.g.index(self.open.len());
        let d = self.open.remove(i);
        let op = format!("close {}", show(&d.name));
        let r = sys::close(d.fd.0);
        std::mem::forget(d.fd);
        self.rec("close dev", op, fmt_ret(&r), "");
    }

    /// The fd a device operation goes to: an open device node mostly, else a control fd or an
    /// fd number that is not open; with the device it belongs to.
    fn target(&mut self) -> (String, i32, Option<usize>) {
        if !self.open.is_empty() && self.g.chance(970) {
            let i = self.g.index(self.open.len());
            return (show(&self.open[i].name), self.open[i].fd.0, Some(i));
        }
        if self.g.chance(500) {
            let (ci, fd) = self.ctl_fd();
            (format!("ctl{ci}"), fd, None)
        } else {
            ("badfd".into(), 999, None)
        }
    }

    fn dev_ioctl(&mut self) {
        let (who, fd, oi) = self.target();
        let (vq_num, csize, name) = match oi.and_then(|i| self.dev(&self.open[i].name)) {
            Some(d) => (d.vq_num, d.config_size, d.name.clone()),
            None => (2, 8, Vec::new()),
        };
        let _ = name;
        let g = &mut self.g;
        let vq = |g: &mut Gen| {
            let i = g.below(u64::from(vq_num.max(1))) as u32;
            g.mutate32(i)
        };
        let mut tag = "";
        let (label, cmd, bytes, out, desc): (&'static str, u32, Vec<u8>, usize, String) =
            match g.below(13) {
                0 => (
                    "DEV_GET_FEATURES",
                    VDUSE_DEV_GET_FEATURES,
                    vec![0; 8],
                    8,
                    String::new(),
                ),
                1 => {
                    let off = g.below(u64::from(csize.max(1))) as u32;
                    let off = g.mutate32(off);
                    let room = u64::from(csize.saturating_sub(off)).max(1);
                    let len = 1 + g.below(room) as u32;
                    let len = g.mutate32(len);
                    let mut b = off.to_ne_bytes().to_vec();
                    b.extend_from_slice(&len.to_ne_bytes());
                    b.extend(g.bytes((len as usize).min(ROOM - 8)));
                    (
                        "DEV_SET_CONFIG",
                        VDUSE_DEV_SET_CONFIG,
                        b,
                        0,
                        format!("off={off} len={len}"),
                    )
                }
                2 => (
                    "INJECT_CONFIG_IRQ",
                    VDUSE_DEV_INJECT_CONFIG_IRQ,
                    Vec::new(),
                    0,
                    String::new(),
                ),
                3 => {
                    let idx = vq(g);
                    let max = g.pick(&[256, 1024, 32768]);
                    let max = g.mutate16(max);
                    let group = g.mutate32(0);
                    let mut b = idx.to_ne_bytes().to_vec();
                    b.extend_from_slice(&max.to_ne_bytes());
                    b.extend_from_slice(&(g.reserved() as u16).to_ne_bytes());
                    b.extend_from_slice(&group.to_ne_bytes());
                    let r2: Vec<u16> = (0..10).map(|_| g.reserved() as u16).collect();
                    for r in &r2 {
                        b.extend_from_slice(&r.to_ne_bytes());
                    }
                    let res = b[6..8] != [0, 0] || r2.iter().any(|&r| r != 0);
                    let d = format!("index={idx} max={max} group={group} res={}", u8::from(res));
                    ("VQ_SETUP", VDUSE_VQ_SETUP, b, 0, d)
                }
                4 => {
                    let idx = vq(g);
                    let mut b = idx.to_ne_bytes().to_vec();
                    b.resize(48, 0);
                    (
                        "VQ_GET_INFO",
                        VDUSE_VQ_GET_INFO,
                        b,
                        48,
                        format!("index={idx}"),
                    )
                }
                5 => {
                    let idx = vq(g);
                    let (kfd, what) = match g.below(6) {
                        0 | 1 => (self.eventfd.0, "eventfd"),
                        2 => (-1, "-1"),
                        3 => (-2, "-2"),
                        4 => (i32::MIN, "INT_MIN"),
                        _ => (999, "closed"),
                    };
                    if kfd < -1 {
                        tag = "D1";
                    }
                    let mut b = idx.to_ne_bytes().to_vec();
                    b.extend_from_slice(&kfd.to_ne_bytes());
                    let d = format!("index={idx} fd={what}");
                    ("VQ_SETUP_KICKFD", VDUSE_VQ_SETUP_KICKFD, b, 0, d)
                }
                6 => {
                    let idx = vq(g);
                    let b = idx.to_ne_bytes().to_vec();
                    (
                        "VQ_INJECT_IRQ",
                        VDUSE_VQ_INJECT_IRQ,
                        b,
                        0,
                        format!("index={idx}"),
                    )
                }
                7 | 8 => {
                    let v2 = g.chance(500);
                    let start = g.mutate(0, 64);
                    let last = g.pick(&[0xfff, 0xffff_ffff, u64::MAX]);
                    let last = g.mutate(last, 64);
                    let perm = g.mutate(3, 8) as u8;
                    let mut b = 0u64.to_ne_bytes().to_vec();
                    b.extend_from_slice(&start.to_ne_bytes());
                    b.extend_from_slice(&last.to_ne_bytes());
                    b.push(perm);
                    b.resize(32, 0);
                    if v2 {
                        let asid = g.mutate32(0);
                        b[28..32].copy_from_slice(&asid.to_ne_bytes());
                        for _ in 0..11 {
                            b.extend_from_slice(&g.reserved().to_ne_bytes());
                        }
                        let d = format!("start={start:#x} last={last:#x} perm={perm} asid={asid}");
                        ("IOTLB_GET_FD2", VDUSE_IOTLB_GET_FD2, b, 80, d)
                    } else {
                        let d = format!("start={start:#x} last={last:#x} perm={perm}");
                        ("IOTLB_GET_FD", VDUSE_IOTLB_GET_FD, b, 32, d)
                    }
                }
                9 | 10 => {
                    let reg = g.chance(600);
                    let (uaddr, what) = match g.below(6) {
                        0..=2 => (self.umem as u64, "umem"),
                        3 => (self.umem as u64 + 1, "umem+1"),
                        4 => (0, "0"),
                        _ => (0xffff_8880_0000_0000, "kernel"),
                    };
                    let iova = g.mutate(0, 64);
                    let size = g.pick(&[UMEM_SIZE as u64, 1 << 20]);
                    let size = g.mutate(size, 64);
                    let asid = g.mutate32(0);
                    let mut b = uaddr.to_ne_bytes().to_vec();
                    b.extend_from_slice(&iova.to_ne_bytes());
                    b.extend_from_slice(&size.to_ne_bytes());
                    b.extend_from_slice(&asid.to_ne_bytes());
                    let res: Vec<u32> = (0..5).map(|_| g.reserved()).collect();
                    for r in &res {
                        b.extend_from_slice(&r.to_ne_bytes());
                    }
                    let d = format!(
                        "uaddr={what} iova={iova:#x} size={size:#x} asid={asid} res={}",
                        u8::from(res.iter().any(|&r| r != 0))
                    );
                    if reg {
                        ("IOTLB_REG_UMEM", VDUSE_IOTLB_REG_UMEM, b, 0, d)
                    } else {
                        ("IOTLB_DEREG_UMEM", VDUSE_IOTLB_DEREG_UMEM, b, 0, d)
                    }
                }
                11 => {
                    let start = g.mutate(0, 64);
                    let last = g.pick(&[0xfff, u64::MAX]);
                    let last = g.mutate(last, 64);
                    let asid = if g.chance(900) { 0 } else { g.mutate32(0) };
                    let res: Vec<u32> = (0..5).map(|_| g.reserved()).collect();
                    if asid != 0 || res.iter().any(|&r| r != 0) {
                        tag = "D2";
                    }
                    let mut b = start.to_ne_bytes().to_vec();
                    b.extend_from_slice(&last.to_ne_bytes());
                    b.extend_from_slice(&0u64.to_ne_bytes());
                    b.extend_from_slice(&asid.to_ne_bytes());
                    for r in &res {
                        b.extend_from_slice(&r.to_ne_bytes());
                    }
                    let d = format!("start={start:#x} last={last:#x} asid={asid}");
                    ("IOTLB_GET_INFO", VDUSE_IOTLB_GET_INFO, b, 48, d)
                }
                _ => {
                    // Any command: VDUSE's type byte with another number, size or direction,
                    // or a control-node command on this fd.
                    let dir = g.pick(&[IOC_NONE, IOC_READ, IOC_WRITE, IOC_READ | IOC_WRITE]);
                    let nr = g.below(0x30) as u32;
                    let r = g.index(1 << 14);
                    let size = g.pick(&[0usize, 4, 8, 32, 48, 80, 256, 336, r]);
                    let cmd = if g.chance(300) {
                        g.pick(&[VDUSE_CREATE_DEV, VDUSE_DESTROY_DEV, VDUSE_GET_API_VERSION])
                    } else {
                        ioc(dir, VDUSE_BASE, nr, size)
                    };
                    let b = g.bytes(size.min(ROOM));
                    // A number that is a real command's: its random argument may fall under a
                    // documented difference, tagged as for that command (found by `make fuzz`,
                    // seed 1, operation 86883: IOTLB_GET_INFO with reserved words set).
                    let word = |o: usize| b.get(o..o + 4).map(|w| [w[0], w[1], w[2], w[3]]);
                    if cmd == VDUSE_IOTLB_GET_INFO
                        && b.get(24..48).is_some_and(|r| r.iter().any(|&x| x != 0))
                    {
                        tag = "D2";
                    }
                    if cmd == VDUSE_VQ_SETUP_KICKFD
                        && word(4).is_some_and(|w| i32::from_ne_bytes(w) < -1)
                    {
                        tag = "D1";
                    }
                    ("other ioctl", cmd, b, 0, format!("cmd={cmd:#x}"))
                }
            };
        let ptr = if cmd == VDUSE_DEV_INJECT_CONFIG_IRQ {
            Ptr::Valid
        } else {
            Ptr::choose(&mut self.g, bytes.len())
        };
        if tag == "D2" && matches!(ptr, Ptr::Null | Ptr::Kernel | Ptr::Guard | Ptr::Short(_)) {
            tag = ""; // a bad pointer: EFAULT from both
        }
        let (r, back) = self.ioctl(fd, cmd, &bytes, ptr, out);
        let mut res = fmt_ret(&r);
        match label {
            "DEV_GET_FEATURES" if back.len() == 8 => res += &format!(" {:#x}", le64(&back, 0)),
            "VQ_GET_INFO" if back.len() == 48 => {
                res += &format!(
                    " index={} num={} desc={:#x} driver={:#x} device={:#x} state={:#x} ready={}",
                    le32(&back, 0),
                    le32(&back, 4),
                    le64(&back, 8),
                    le64(&back, 16),
                    le64(&back, 24),
                    le64(&back, 32),
                    back[40]
                )
            }
            "IOTLB_GET_FD" | "IOTLB_GET_FD2" if r.is_ok() => {
                let v = r.unwrap_or(-1) as i32;
                res = format!(
                    "fd offset={:#x} start={:#x} last={:#x} perm={}",
                    le64(&back, 0),
                    le64(&back, 8),
                    le64(&back, 16),
                    back.get(24).copied().unwrap_or(0)
                );
                let _ = sys::close(v);
            }
            "IOTLB_GET_INFO" if back.len() == 48 => {
                res += &format!(
                    " start={:#x} last={:#x} cap={:#x}",
                    le64(&back, 0),
                    le64(&back, 8),
                    le64(&back, 16)
                );
            }
            _ => {}
        }
        let op = format!("{label} {who} {desc}{}", ptr.label());
        self.rec(label, op, res, tag);
    }

    fn read_write_poll(&mut self) {
        let (who, fd, oi) = self.target();
        let nonblock = oi.map(|i| self.open[i].nonblock).unwrap_or(true);
        match self.g.below(3) {
            0 if nonblock => {
                let size = self.g.pick(&[0usize, 1, 151, 152, 153, 4096]);
                let ptr = Ptr::choose(&mut self.g, size);
                let addr = self.arena.place(&vec![0; size], ptr);
                // SAFETY: `addr` is in the arena (`size` <= ROOM writable bytes there) or a
                // pointer the kernel must refuse without writing.
                let r = unsafe { libc::read(fd, addr as *mut libc::c_void, size) };
                let r = ret_of(r as i64);
                let op = format!("read {who} size={size}{}", ptr.label());
                self.rec("read", op, fmt_ret(&r), "");
            }
            0 | 1 => {
                let size = self.g.pick(&[0usize, 1, 151, 152, 153, 300]);
                let mut b = self.g.bytes(size);
                if size >= 8 && self.g.chance(500) {
                    b[4..8].copy_from_slice(&self.g.pick(&[0u32, 1]).to_ne_bytes());
                }
                let ptr = Ptr::choose(&mut self.g, size);
                let addr = self.arena.place(&b, ptr);
                // SAFETY: `addr` is in the arena with `size` bytes readable, or a pointer the
                // kernel must refuse.
                let r = unsafe { libc::write(fd, addr as *const libc::c_void, size) };
                let r = ret_of(r as i64);
                let op = format!("write {who} size={size}{}", ptr.label());
                self.rec("write", op, fmt_ret(&r), "");
            }
            _ => {
                let p = sys::poll_fd(fd, libc::POLLIN | libc::POLLOUT, 0);
                self.rec(
                    "poll",
                    format!("poll {who}"),
                    format!("revents={:#x}", p.revents),
                    "",
                );
            }
        }
    }

    fn mmap_lseek(&mut self) {
        let (who, fd, _) = self.target();
        if self.g.chance(500) {
            let r = sys::mmap_probe(fd, 4096, libc::PROT_READ);
            self.rec("mmap", format!("mmap {who}"), fmt_ret(&r), "");
        } else {
            let off = self.g.mutate(0, 64) as i64;
            let r = sys::lseek(fd, off, libc::SEEK_SET);
            self.rec("lseek", format!("lseek {who} {off}"), fmt_ret(&r), "");
        }
    }

    fn sysfs(&mut self) {
        let name = self.pool_name();
        let mut dir = b"/sys/class/vduse/".to_vec();
        if self.g.chance(100) {
            dir.extend_from_slice(b"control"); // CVE-2022-49329: no msg_timeout there
        } else {
            dir.extend_from_slice(&name);
        }
        let attr = match self.g.below(4) {
            0 | 1 => "msg_timeout".to_string(),
            2 => "bounce_size".to_string(),
            _ => format!("vq{}/irq_cb_affinity", self.g.below(3)),
        };
        let mut path = dir.clone();
        path.push(b'/');
        path.extend_from_slice(attr.as_bytes());
        let p = OsStr::from_bytes(&path);
        let shown = format!("{}/{attr}", show(&dir[17..]));
        if self.g.chance(500) {
            let r = std::fs::read(p);
            let res = match r {
                Ok(v) => format!("{:?}", String::from_utf8_lossy(&v)),
                Err(e) => format!("-{}", sys::errno_name(e.raw_os_error().unwrap_or(0))),
            };
            self.rec("sysfs read", format!("read {shown}"), res, "");
        } else {
            let v = self.g.pick(&[
                "0",
                "1",
                "30",
                "-1",
                "4294967295",
                "4294967296",
                "abc",
                "",
                "4096",
                "1048576",
                "67108864",
                "1073741824",
                "3",
                "0-1",
                "ff",
                "1\n",
            ]);
            let r = std::fs::write(p, v);
            let res = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("-{}", sys::errno_name(e.raw_os_error().unwrap_or(0))),
            };
            self.rec("sysfs write", format!("write {shown} {v:?}"), res, "");
        }
    }

    fn vdpa(&mut self) {
        let name = self.names[self.g.index(4)].clone();
        // A del of a device whose node nobody holds orphans it on vduse_rs while the del runs
        // (D8); with no bus driver bound nothing is in flight or refused, so the orphan is
        // lifted when the device leaves the bus, and the node opens again as on C.
        let added = self.devs.iter().any(|d| d.name == name && d.added);
        let add = self.g.chance(600) && !added;
        let n = String::from_utf8_lossy(&name).into_owned();
        let args: Vec<&str> = if add {
            vec!["dev", "add", "name", &n, "mgmtdev", "vduse"]
        } else {
            vec!["dev", "del", &n]
        };
        let r = std::process::Command::new("vdpa").args(&args).output();
        let res = match r {
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                format!("exit {} {:?}", o.status.code().unwrap_or(-1), err.trim())
            }
            Err(e) => format!("spawn failed: {e}"),
        };
        let okay = res.starts_with("exit 0 ");
        if let Some(d) = self.devs.iter_mut().find(|d| d.name == name) {
            if okay {
                d.on_bus = add;
                d.added |= add;
            }
        }
        self.rec("vdpa", format!("vdpa {}", args.join(" ")), res, "");
    }

    /// One operation.
    fn step(&mut self) {
        let w = [
            25,                            // CREATE_DEV
            12,                            // DESTROY_DEV
            20,                            // API version, features
            5,                             // open/close a control fd
            25,                            // open a device
            15,                            // close a device
            300,                           // device ioctls
            40,                            // read, write, poll
            10,                            // mmap, lseek
            25,                            // sysfs
            if self.vdpa { 2 } else { 0 }, // vdpa dev add/del
        ];
        match self.g.weighted(&w) {
            0 => self.create(),
            1 => self.destroy(),
            2 => self.api_and_features(),
            3 => self.open_close_control(),
            4 => self.open_dev(),
            5 => self.close_dev(),
            6 => self.dev_ioctl(),
            7 => self.read_write_poll(),
            8 => self.mmap_lseek(),
            9 => self.sysfs(),
            _ => self.vdpa(),
        }
    }

    /// Closes everything and destroys every device the run made; true if nothing is left.
    fn cleanup(&mut self) -> bool {
        self.open.clear();
        let on_bus: Vec<Vec<u8>> = self
            .devs
            .iter()
            .filter(|d| d.on_bus)
            .map(|d| d.name.clone())
            .collect();
        for name in on_bus {
            let n = String::from_utf8_lossy(&name).into_owned();
            let r = std::process::Command::new("vdpa")
                .args(["dev", "del", &n])
                .output();
            let code = r.map(|o| o.status.code().unwrap_or(-1)).unwrap_or(-1);
            self.rec(
                "cleanup",
                format!("cleanup vdpa dev del {n}"),
                format!("exit {code}"),
                "",
            );
        }
        let fd = match sys::open(CONTROL, libc::O_RDWR) {
            Ok(fd) => Fd(fd as i32),
            Err(_) => return false,
        };
        let names: Vec<Vec<u8>> = self.devs.iter().map(|d| d.name.clone()).collect();
        for name in names {
            let r = crate::dev::destroy_untracked(fd.0, &name);
            self.rec(
                "cleanup",
                format!("cleanup DESTROY_DEV {}", show(&name)),
                fmt_ret(&r),
                "",
            );
        }
        self.devs.clear();
        let left = crate::dev::listed_devices("/sys/class/vduse");
        self.rec(
            "cleanup",
            "left in /sys/class/vduse".into(),
            format!("{left:?}"),
            "",
        );
        left.is_empty()
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0)
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_ne_bytes)
        .unwrap_or(0)
}

fn ret_of(r: i64) -> Ret {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// `open` of a path given as bytes.
fn open_bytes(path: &[u8], flags: i32) -> Ret {
    let c = std::ffi::CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    ret_of(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) }.into())
}

/// The transcript form of an open's result: fd numbers differ between runs, only success is
/// recorded.
fn ok_or_errno(r: &Ret) -> String {
    match r {
        Ok(_) => "fd".into(),
        Err(_) => fmt_ret(r),
    }
}

/// Runs `opts.ops` operations and the cleanup, writing the transcript to `path`; prints the
/// operation counts. The result: whether the cleanup left nothing behind.
pub fn run(opts: &Opts, path: &std::path::Path) -> std::io::Result<bool> {
    let out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let ctl =
        Fd(sys::open(CONTROL, libc::O_RDWR).map_err(std::io::Error::from_raw_os_error)? as i32);
    // SAFETY: A new eventfd, owned by `Fd` from here on.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: A fresh anonymous mapping, never unmapped (the process ends after the run).
    let umem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            UMEM_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if umem == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let mut f = Fuzz {
        g: Gen::new(opts.seed),
        arena: Arena::new()?,
        out,
        n: 0,
        names: name_pool(),
        ctl: vec![ctl],
        devs: Vec::new(),
        open: Vec::new(),
        eventfd: Fd(efd),
        umem: umem.cast(),
        counts: BTreeMap::new(),
        vdpa: opts.vdpa,
    };
    let _ = writeln!(
        f.out,
        "# vduse-tests fuzz --seed {} --ops {}",
        opts.seed, opts.ops
    );
    let t0 = std::time::Instant::now();
    let mut next_report = 10u64;
    for n in 0..opts.ops {
        f.n = n;
        f.step();
        if t0.elapsed().as_secs() >= next_report {
            println!(
                "# fuzz: {n} of {} operations after {}s",
                opts.ops, next_report
            );
            next_report += 30;
        }
    }
    f.n = opts.ops;
    let clean = f.cleanup();
    f.out.flush()?;
    let secs = t0.elapsed().as_secs_f64();
    let counts: Vec<String> = f.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "# fuzz: seed {} made {} operations in {secs:.1}s ({:.0}/s): {}",
        opts.seed,
        opts.ops,
        opts.ops as f64 / secs.max(0.001),
        counts.join(", ")
    );
    Ok(clean)
}
