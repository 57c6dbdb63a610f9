// SPDX-License-Identifier: GPL-2.0
//! vdpa-poke: drive a vDPA block device through /dev/vhost-vdpa-N, the way a VMM would, to
//! make VDUSE send the messages virtio-vdpa never sends: UPDATE_IOTLB (set_map),
//! SET_VQ_GROUP_ASID, SET_VQ_READY from VHOST_VDPA_SET_VRING_ENABLE, SUSPEND and
//! GET_VQ_STATE. It also runs two requests (GET_ID and a read) through a ring in a memfd, so
//! the daemon's IOTLB_GET_FD path over vhost-vdpa memory is exercised end to end.
//!
//! Exit status 0 only if every step the kernel supports worked; each step prints one line.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use vduse_blk::vhost::*;
use vduse_blk::virtio::*;
use vmm_sys_util::eventfd::EventFd;

#[derive(Parser, Debug)]
#[command(name = "vdpa-poke")]
struct Args {
    /// The vhost-vdpa character device.
    #[arg(long)]
    dev: String,
    /// Expected GET_ID string (prefix of the 20-byte serial).
    #[arg(long)]
    expect_id: Option<String>,
    /// Bind virtqueue group 0 to address space 0 (VHOST_VDPA_SET_GROUP_ASID).
    #[arg(long)]
    asid: bool,
    /// Suspend the device after the I/O (VHOST_VDPA_SUSPEND) and check it stops.
    #[arg(long)]
    suspend: bool,
}

// SAFETY (for callers): `arg` must match what `req` expects.
unsafe fn ioctl<T>(f: &File, req: u32, arg: *mut T) -> io::Result<i32> {
    // SAFETY: forwarded.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), req as libc::c_ulong, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn step<T>(what: &str, r: io::Result<T>) -> Result<T, String> {
    match r {
        Ok(v) => {
            println!("vdpa-poke: {what}: ok");
            Ok(v)
        }
        Err(e) => Err(format!("{what}: {e}")),
    }
}

const QSIZE: u16 = 16;
const IOVA: u64 = 0x10_0000;
const MEM: usize = 0x10_0000;
const DESC: usize = 0;
const AVAIL: usize = 0x1000;
const USED: usize = 0x2000;
const HDR: usize = 0x4000;
const IDBUF: usize = 0x5000;
const DATA: usize = 0x6000;
const STATUS: usize = 0x8000;

struct Mem {
    p: *mut u8,
}

impl Mem {
    fn w16(&self, off: usize, v: u16) {
        // SAFETY: off < MEM, shared mapping we own; volatile for the device's sake.
        unsafe { std::ptr::write_volatile(self.p.add(off).cast::<u16>(), v.to_le()) }
    }
    fn w32(&self, off: usize, v: u32) {
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(self.p.add(off).cast::<u32>(), v.to_le()) }
    }
    fn w64(&self, off: usize, v: u64) {
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(self.p.add(off).cast::<u64>(), v.to_le()) }
    }
    fn r8(&self, off: usize) -> u8 {
        // SAFETY: as above.
        unsafe { std::ptr::read_volatile(self.p.add(off)) }
    }
    fn r16(&self, off: usize) -> u16 {
        // SAFETY: as above.
        u16::from_le(unsafe { std::ptr::read_volatile(self.p.add(off).cast::<u16>()) })
    }
    fn r32(&self, off: usize) -> u32 {
        // SAFETY: as above.
        u32::from_le(unsafe { std::ptr::read_volatile(self.p.add(off).cast::<u32>()) })
    }
    fn desc(&self, i: u16, off: usize, len: u32, flags: u16, next: u16) {
        let d = DESC + 16 * usize::from(i);
        self.w64(d, IOVA + off as u64);
        self.w32(d + 8, len);
        self.w16(d + 12, flags);
        self.w16(d + 14, next);
    }
}

/// Waits until the used index reaches `want` and the device signalled the completion the way
/// a VMM learns of it: an interrupt on the call eventfd (`VDUSE_VQ_INJECT_IRQ` in the daemon).
/// Returns whether the used index got there and how many interrupts arrived meanwhile.
fn wait_interrupt(m: &Mem, call: &EventFd, want: u16, timeout: Duration) -> (bool, u64) {
    let t0 = Instant::now();
    let mut irqs = 0;
    while t0.elapsed() < timeout {
        if m.r16(USED + 2) == want && irqs > 0 {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: call.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        if pfd.revents & libc::POLLIN != 0 {
            irqs += call.read().unwrap_or(0);
        }
    }
    (m.r16(USED + 2) == want, irqs)
}

fn run(args: &Args) -> Result<(), String> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&args.dev)
        .map_err(|e| format!("{}: {e}", args.dev))?;
    // SAFETY: _IO.
    step("VHOST_SET_OWNER", unsafe {
        ioctl::<u8>(&f, VHOST_SET_OWNER, std::ptr::null_mut())
    })?;
    let mut id = 0u32;
    // SAFETY: _IOR(u32).
    step("VHOST_VDPA_GET_DEVICE_ID", unsafe {
        ioctl(&f, VHOST_VDPA_GET_DEVICE_ID, &mut id)
    })?;
    if id != VIRTIO_ID_BLOCK {
        return Err(format!("device id {id}, not a block device"));
    }
    let mut bf = 0u64;
    // SAFETY: _IOR(u64).
    step("VHOST_GET_BACKEND_FEATURES", unsafe {
        ioctl(&f, VHOST_GET_BACKEND_FEATURES, &mut bf)
    })?;
    println!("vdpa-poke: backend features {bf:#x}");
    let mut want = (1u64 << VHOST_BACKEND_F_IOTLB_MSG_V2) | (1 << VHOST_BACKEND_F_IOTLB_ASID);
    if args.suspend {
        if bf & (1 << VHOST_BACKEND_F_SUSPEND) == 0 {
            return Err(
                "VHOST_BACKEND_F_SUSPEND not offered (VDUSE_F_SUSPEND not negotiated?)".into(),
            );
        }
        want |= 1 << VHOST_BACKEND_F_SUSPEND;
    }
    want &= bf;
    // SAFETY: _IOW(u64).
    step("VHOST_SET_BACKEND_FEATURES", unsafe {
        ioctl(&f, VHOST_SET_BACKEND_FEATURES, &mut want)
    })?;
    let mut feat = 0u64;
    // SAFETY: _IOR(u64).
    step("VHOST_GET_FEATURES", unsafe {
        ioctl(&f, VHOST_GET_FEATURES, &mut feat)
    })?;
    let mut drv = feat & (bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_ACCESS_PLATFORM));
    // SAFETY: _IOW(u64).
    step("VHOST_SET_FEATURES", unsafe {
        ioctl(&f, VHOST_SET_FEATURES, &mut drv)
    })?;

    let set_status = |s: u8| {
        let mut s = s;
        // SAFETY: _IOW(u8).
        unsafe { ioctl(&f, VHOST_VDPA_SET_STATUS, &mut s) }
    };
    step(
        "status ACKNOWLEDGE|DRIVER|FEATURES_OK",
        set_status(
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
        ),
    )?;

    if args.asid {
        let mut ng = 0u32;
        let mut nas = 0u32;
        // SAFETY: _IOR(u32).
        step("VHOST_VDPA_GET_GROUP_NUM", unsafe {
            ioctl(&f, VHOST_VDPA_GET_GROUP_NUM, &mut ng)
        })?;
        // SAFETY: _IOR(u32).
        step("VHOST_VDPA_GET_AS_NUM", unsafe {
            ioctl(&f, VHOST_VDPA_GET_AS_NUM, &mut nas)
        })?;
        println!("vdpa-poke: {ng} group(s), {nas} address space(s)");
        let mut g = VringState { index: 0, num: 0 };
        // SAFETY: _IOWR(struct vhost_vring_state).
        step("VHOST_VDPA_GET_VRING_GROUP vq 0", unsafe {
            ioctl(&f, VHOST_VDPA_GET_VRING_GROUP, &mut g)
        })?;
        let mut s = VringState {
            index: g.num,
            num: 0,
        };
        // SAFETY: _IOW(struct vhost_vring_state).
        step(
            &format!("VHOST_VDPA_SET_GROUP_ASID group {} asid 0", g.num),
            unsafe { ioctl(&f, VHOST_VDPA_SET_GROUP_ASID, &mut s) },
        )?;
    }

    // Guest memory: a memfd (VDUSE needs shared, file-backed memory to hand to the daemon).
    let name = std::ffi::CString::new("vdpa-poke").unwrap();
    // SAFETY: valid C string.
    let mfd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if mfd < 0 {
        return Err(format!("memfd_create: {}", io::Error::last_os_error()));
    }
    // SAFETY: fresh fd.
    let mem_file = unsafe { File::from_raw_fd(mfd) };
    mem_file.set_len(MEM as u64).map_err(|e| e.to_string())?;
    // SAFETY: mapping our memfd.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            mfd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap: {}", io::Error::last_os_error()));
    }
    let m = Mem { p: p.cast() };
    let msg = MsgV2 {
        type_: VHOST_IOTLB_MSG_V2,
        asid: 0,
        iotlb: IotlbMsg {
            iova: IOVA,
            size: MEM as u64,
            uaddr: p as u64,
            perm: VHOST_ACCESS_RW,
            type_: VHOST_IOTLB_UPDATE,
            _pad: [0; 6],
        },
        _pad: [0; 64 - std::mem::size_of::<IotlbMsg>()],
    };
    // SAFETY: writing a plain struct.
    let n = unsafe {
        libc::write(
            f.as_raw_fd(),
            (&msg as *const MsgV2).cast(),
            std::mem::size_of::<MsgV2>(),
        )
    };
    step(
        "VHOST_IOTLB_UPDATE (-> VDUSE_UPDATE_IOTLB)",
        if n == std::mem::size_of::<MsgV2>() as isize {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        },
    )?;

    let kick = EventFd::new(libc::EFD_CLOEXEC).map_err(|e| e.to_string())?;
    let call = EventFd::new(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK).map_err(|e| e.to_string())?;
    let mut s = VringState {
        index: 0,
        num: u32::from(QSIZE),
    };
    // SAFETY: matching argument types below.
    unsafe {
        step(
            "VHOST_SET_VRING_NUM",
            ioctl(&f, VHOST_SET_VRING_NUM, &mut s),
        )?;
        let mut a = VringAddr {
            index: 0,
            flags: 0,
            desc_user_addr: IOVA + DESC as u64,
            used_user_addr: IOVA + USED as u64,
            avail_user_addr: IOVA + AVAIL as u64,
            log_guest_addr: 0,
        };
        step(
            "VHOST_SET_VRING_ADDR",
            ioctl(&f, VHOST_SET_VRING_ADDR, &mut a),
        )?;
        let mut b = VringState { index: 0, num: 0 };
        step(
            "VHOST_SET_VRING_BASE",
            ioctl(&f, VHOST_SET_VRING_BASE, &mut b),
        )?;
        let mut k = VringFile {
            index: 0,
            fd: kick.as_raw_fd(),
        };
        step(
            "VHOST_SET_VRING_KICK",
            ioctl(&f, VHOST_SET_VRING_KICK, &mut k),
        )?;
        let mut c = VringFile {
            index: 0,
            fd: call.as_raw_fd(),
        };
        step(
            "VHOST_SET_VRING_CALL",
            ioctl(&f, VHOST_SET_VRING_CALL, &mut c),
        )?;
        let mut e = VringState { index: 0, num: 1 };
        step(
            "VHOST_VDPA_SET_VRING_ENABLE vq 0 (-> SET_VQ_READY)",
            ioctl(&f, VHOST_VDPA_SET_VRING_ENABLE, &mut e),
        )?;
    }
    step(
        "status DRIVER_OK",
        set_status(
            VIRTIO_CONFIG_S_ACKNOWLEDGE
                | VIRTIO_CONFIG_S_DRIVER
                | VIRTIO_CONFIG_S_FEATURES_OK
                | VIRTIO_CONFIG_S_DRIVER_OK,
        ),
    )?;

    // Request 1: GET_ID. Request 2: read sector 0.
    let f_next = VRING_DESC_F_NEXT;
    let f_w = VRING_DESC_F_WRITE;
    m.w32(HDR, VIRTIO_BLK_T_GET_ID);
    m.w64(HDR + 8, 0);
    m.desc(0, HDR, 16, f_next, 1);
    m.desc(1, IDBUF, 20, f_next | f_w, 2);
    m.desc(2, STATUS, 1, f_w, 0);
    m.w32(HDR + 16, VIRTIO_BLK_T_IN);
    m.w64(HDR + 24, 0);
    m.desc(3, HDR + 16, 16, f_next, 4);
    m.desc(4, DATA, 512, f_next | f_w, 5);
    m.desc(5, STATUS + 1, 1, f_w, 0);
    for i in 0..2 {
        // Status bytes start as 0xff so a missing write is visible.
        // SAFETY: inside the mapping.
        unsafe { std::ptr::write_volatile(m.p.add(STATUS + i), 0xff) };
    }
    m.w16(AVAIL + 4, 0);
    m.w16(AVAIL + 6, 3);
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    m.w16(AVAIL + 2, 2);
    kick.write(1).map_err(|e| e.to_string())?;
    let (done, irqs) = wait_interrupt(&m, &call, 2, Duration::from_secs(20));
    if !done || irqs == 0 {
        return Err(format!(
            "requests not completed with an interrupt: used idx {}, {irqs} interrupt(s)",
            m.r16(USED + 2)
        ));
    }
    println!("vdpa-poke: completion interrupt received on the call eventfd: ok");
    let (st0, st1) = (m.r8(STATUS), m.r8(STATUS + 1));
    let used_len0 = m.r32(USED + 8);
    let idb: Vec<u8> = (0..20).map(|i| m.r8(IDBUF + i)).collect();
    let idstr = String::from_utf8_lossy(&idb)
        .trim_end_matches('\0')
        .to_string();
    println!(
        "vdpa-poke: GET_ID -> status {st0} len {used_len0} id '{idstr}'; READ -> status {st1}"
    );
    if st0 != VIRTIO_BLK_S_OK || st1 != VIRTIO_BLK_S_OK {
        return Err("request failed".into());
    }
    if let Some(e) = &args.expect_id {
        if !idstr.starts_with(e.as_str()) {
            return Err(format!("GET_ID returned '{idstr}', expected '{e}'"));
        }
    }
    println!("vdpa-poke: I/O over vhost-vdpa: ok");

    if args.suspend {
        // SAFETY: _IO.
        step("VHOST_VDPA_SUSPEND (-> SUSPEND)", unsafe {
            ioctl::<u8>(&f, VHOST_VDPA_SUSPEND, std::ptr::null_mut())
        })?;
        // Interrupts signalled before the suspend completed are legitimate: forget them.
        let _ = call.read();
        let mut b = VringState { index: 0, num: 0 };
        // SAFETY: _IOWR(struct vhost_vring_state).
        step("VHOST_GET_VRING_BASE (-> GET_VQ_STATE)", unsafe {
            ioctl(&f, VHOST_GET_VRING_BASE, &mut b)
        })?;
        println!("vdpa-poke: vring base after suspend: {}", b.num);
        if b.num != 2 {
            return Err(format!("vring base {} after 2 requests", b.num));
        }
        // A request queued now must not be served.
        m.w32(HDR + 32, VIRTIO_BLK_T_GET_ID);
        m.desc(6, HDR + 32, 16, f_next, 7);
        m.desc(7, IDBUF + 64, 20, f_next | f_w, 8);
        m.desc(8, STATUS + 2, 1, f_w, 0);
        m.w16(AVAIL + 8, 6);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        m.w16(AVAIL + 2, 3);
        let _ = kick.write(1);
        let (done, irqs) = wait_interrupt(&m, &call, 3, Duration::from_secs(2));
        if done || irqs != 0 {
            return Err(format!(
                "a request was served or signalled after SUSPEND ({irqs} interrupt(s))"
            ));
        }
        println!("vdpa-poke: no request served while suspended: ok");
    }
    // Closing the fd resets the device (SET_STATUS 0).
    drop(f);
    // SAFETY: our mapping.
    unsafe { libc::munmap(p, MEM) };
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => {
            println!("vdpa-poke: all steps passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("vdpa-poke: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
