// SPDX-License-Identifier: GPL-2.0

//! One-shot commands for the shell tests (`tools/testing/orphan`, `tools/testing/fuzz`): create
//! a device, destroy one, try to open one, and play a daemon that scribbles over a queue's rings
//! before it goes; and one for the test VM's start (`tools/lib/vm-guest.sh`): show lockdep a
//! lock order the kernel otherwise takes only by chance.

use crate::dev;
use crate::sys::VDUSE_VQ_GET_INFO;
use crate::sys::{self, errno_name, Fd, CONTROL, VDUSE_IOTLB_GET_FD};
use std::process::ExitCode;

/// Prints what a call returned (`ok N` or the errno's name) and exits 0 only on success.
fn report(what: &str, r: sys::Ret) -> ExitCode {
    match r {
        Ok(v) => {
            println!("{what}: ok {v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{what}: {}", errno_name(e));
            ExitCode::FAILURE
        }
    }
}

/// `vduse-tests destroy NAME`: `VDUSE_DESTROY_DEV` on a fresh control fd.
pub fn destroy(name: &str) -> ExitCode {
    let r = sys::open(CONTROL, libc::O_RDWR).and_then(|fd| dev::destroy(&Fd(fd as i32), name));
    report("VDUSE_DESTROY_DEV", r)
}

/// `vduse-tests create NAME`: an API-1 virtio-blk device with both queues set up (so that
/// `vdpa dev add` accepts it), left behind.
pub fn create(name: &str) -> ExitCode {
    let r = sys::open(CONTROL, libc::O_RDWR).and_then(|fd| {
        let ctl = Fd(fd as i32);
        dev::set_api(&ctl, 1)?;
        dev::create(&ctl, &dev::DevConfig::blk_v1(name))?;
        let node = Fd(dev::open_dev(name, libc::O_RDWR)? as i32);
        for i in 0..2 {
            dev::vq_setup(node.0, i, 256)?;
        }
        Ok(0)
    });
    report("VDUSE_CREATE_DEV", r)
}

/// `vduse-tests open NAME`: opens `/dev/vduse/NAME` and closes it.
pub fn open(name: &str) -> ExitCode {
    let r = dev::open_dev(name, libc::O_RDWR).map(|fd| {
        drop(Fd(fd as i32));
        0
    });
    report("open", r)
}

/// A daemon's mapping of the IOTLB entry holding `iova` (`len` bytes from there).
struct Mapped {
    base: *mut u8,
    map_len: usize,
    at: usize,
}

impl Mapped {
    fn new(dev: &Fd, iova: u64, len: u64) -> Result<Self, String> {
        // struct vduse_iotlb_entry: offset, start, last, perm, padding.
        let mut e = [0u8; 32];
        e[8..16].copy_from_slice(&iova.to_ne_bytes());
        e[16..24].copy_from_slice(&(iova + len - 1).to_ne_bytes());
        let fd = sys::ioctl(dev.0, VDUSE_IOTLB_GET_FD, e.as_mut_ptr() as usize)
            .map_err(|e| format!("IOTLB_GET_FD({iova:#x}): {}", errno_name(e)))?;
        let fd = Fd(fd as i32);
        let word = |o: usize| u64::from_ne_bytes(e[o..o + 8].try_into().unwrap_or_default());
        let (offset, start, last) = (word(0), word(8), word(16));
        let map_len = (last - start + 1) as usize;
        // SAFETY: a fresh shared mapping of the domain file; checked for failure below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.0,
                offset as libc::off_t,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(Self {
            base: base.cast(),
            map_len,
            at: (iova - start) as usize,
        })
    }

    fn write(&self, off: usize, bytes: &[u8]) {
        assert!(self.at + off + bytes.len() <= self.map_len);
        // SAFETY: inside the mapping (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(self.at + off), bytes.len())
        };
    }

    fn read_u16(&self, off: usize) -> u16 {
        assert!(self.at + off + 2 <= self.map_len);
        // SAFETY: inside the mapping (checked above).
        unsafe { self.base.add(self.at + off).cast::<u16>().read_unaligned() }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

/// `vduse-tests scribble NAME QUEUE`: opens the device as its daemon would, and makes split
/// queue QUEUE lie: every descriptor a device-writable one chained to itself, two more
/// requests (heads 0 and 1) in the available ring; then closes it, as a daemon that dies.
/// Refuses a queue with requests in flight (its available and used indexes differ).
pub fn scribble(name: &str, queue: u32) -> ExitCode {
    match try_scribble(name, queue) {
        Ok(msg) => {
            println!("scribble: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("scribble: {e}");
            ExitCode::FAILURE
        }
    }
}

fn try_scribble(name: &str, queue: u32) -> Result<String, String> {
    let dev = Fd(
        dev::open_dev(name, libc::O_RDWR).map_err(|e| format!("open: {}", errno_name(e)))? as i32
    );
    // struct vduse_vq_info: index, num, desc_addr, driver_addr, device_addr, state, ready.
    let mut info = [0u8; 48];
    info[..4].copy_from_slice(&queue.to_ne_bytes());
    sys::ioctl(dev.0, VDUSE_VQ_GET_INFO, info.as_mut_ptr() as usize)
        .map_err(|e| format!("VQ_GET_INFO: {}", errno_name(e)))?;
    let num = u32::from_ne_bytes(info[4..8].try_into().unwrap_or_default());
    let addr = |o: usize| u64::from_ne_bytes(info[o..o + 8].try_into().unwrap_or_default());
    let (desc, avail, used) = (addr(8), addr(16), addr(24));
    if num == 0 || info[40] == 0 {
        return Err(format!("queue {queue} is not ready"));
    }
    // Only a queue with nothing in flight: the point is that the kernel refuses a lying ring
    // without any request being lost to the lie.
    let u = Mapped::new(&dev, used, 4 + 8 * u64::from(num))?;
    let a = Mapped::new(&dev, avail, 4 + 2 * u64::from(num))?;
    let (ai, ui) = (u16::from_le(a.read_u16(2)), u16::from_le(u.read_u16(2)));
    if ai != ui {
        return Err(format!(
            "queue {queue} has {} requests in flight (available {ai}, used {ui})",
            ai.wrapping_sub(ui)
        ));
    }
    let d = Mapped::new(&dev, desc, 16 * u64::from(num))?;
    for i in 0..num as u16 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&0xdead_0000u64.to_le_bytes());
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..14].copy_from_slice(&(1u16 | 2).to_le_bytes());
        b[14..].copy_from_slice(&i.to_le_bytes());
        d.write(16 * usize::from(i), &b);
    }
    let idx = ai;
    for (k, head) in [0u16, 1].iter().enumerate() {
        let slot = usize::from(idx.wrapping_add(k as u16) % num as u16);
        a.write(4 + 2 * slot, &head.to_le_bytes());
    }
    a.write(2, &idx.wrapping_add(2).to_le_bytes());
    Ok(format!(
        "queue {queue}: {num} descriptors looped, available index {idx} -> {}",
        idx.wrapping_add(2)
    ))
}

/// Whether `/proc/lockdep` (its text) records that `to` was taken with `from` held (a direct
/// dependency: a ` -> [key] NAME` line under `from`'s class line).
fn lockdep_has_edge(text: &str, from: &str, to: &str) -> bool {
    let mut in_from = false;
    for line in text.lines() {
        match line.strip_prefix(" -> ") {
            Some(dep) => {
                if in_from && dep.split_once("] ").is_some_and(|(_, name)| name == to) {
                    return true;
                }
            }
            None => in_from = line.rsplit_once(": ").is_some_and(|(_, name)| name == from),
        }
    }
    false
}

/// `vduse-tests lockdep-prime`: makes lockdep record the kernel's `kernfs_rwsem` ->
/// `mmap_lock` order (a page fault in a sysfs `readdir`), and waits until `/proc/lockdep` shows
/// it. Lockdep learns only the orders that happen, and this one happens only by chance: the
/// fault handler first tries the `mmap_lock` without waiting (a trylock, which lockdep does not
/// record as an order), so the order is learnt only when the lock is contended at that moment.
/// Without it, a driver taking the CPU hotplug lock under the `mmap_lock` (a cycle through
/// `cpuhp_state_mutex` and `kernfs_rwsem`) is reported in some boots only. So: one thread maps
/// and unmaps (the `mmap_lock` for writing) while this one lists `/sys/kernel` into a buffer
/// that ends at an inaccessible page (each call faults, in the kernel, with `kernfs_rwsem`
/// held), until the order is recorded. Without lockdep there is nothing to do.
pub fn lockdep_prime() -> ExitCode {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::time::{Duration, Instant};
    const FROM: &str = "&root->kernfs_rwsem";
    const TO: &str = "&mm->mmap_lock";
    let recorded = || {
        std::fs::read_to_string("/proc/lockdep")
            .ok()
            .map(|t| lockdep_has_edge(&t, FROM, TO))
    };
    match recorded() {
        None => {
            println!("lockdep-prime: no /proc/lockdep (lockdep is off): nothing to prime");
            return ExitCode::SUCCESS;
        }
        Some(true) => {
            println!("lockdep-prime: {FROM} -> {TO} already recorded");
            return ExitCode::SUCCESS;
        }
        Some(false) => {}
    }
    // Two pages: the first writable, the second inaccessible. The listing starts 48 bytes
    // before the second: "." and ".." (24 bytes each) are written before `kernfs_rwsem` is
    // taken (`dir_emit_dots`), the first real entry faults with it held.
    const LEN: usize = 4096;
    // SAFETY: A new private anonymous mapping; no existing memory is touched.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        println!("lockdep-prime: mmap: {}", errno_name(e));
        return ExitCode::FAILURE;
    }
    // SAFETY: The second page of the mapping just made.
    let guard = unsafe { map.cast::<u8>().add(LEN) };
    // SAFETY: As above; making it inaccessible affects only this mapping.
    if unsafe { libc::mprotect(guard.cast(), LEN, libc::PROT_NONE) } != 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        println!("lockdep-prime: mprotect: {}", errno_name(e));
        return ExitCode::FAILURE;
    }
    // SAFETY: 48 bytes before the guard page, inside the writable first page.
    let buf = unsafe { guard.sub(48) };
    let dir = match sys::open("/sys/kernel", libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => Fd(fd as i32),
        Err(e) => {
            println!("lockdep-prime: open /sys/kernel: {}", errno_name(e));
            return ExitCode::FAILURE;
        }
    };
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (mut calls, mut seen) = (0u64, false);
    std::thread::scope(|t| {
        t.spawn(|| {
            while !stop.load(Relaxed) {
                // SAFETY: A new private anonymous mapping, unmapped at once.
                unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        LEN,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    if p != libc::MAP_FAILED {
                        libc::munmap(p, LEN);
                    }
                }
            }
        });
        while !seen && start.elapsed() < Duration::from_secs(60) {
            for _ in 0..200 {
                let _ = sys::lseek(dir.0, 0, libc::SEEK_SET);
                // SAFETY: The kernel checks the buffer: it writes what fits in the first page
                // and fails with `EFAULT` at the guard page.
                let _ = unsafe { libc::syscall(libc::SYS_getdents64, dir.0, buf, LEN) };
                calls += 1;
            }
            seen = recorded() == Some(true);
        }
        stop.store(true, Relaxed);
    });
    // SAFETY: Mapped above, not used after this.
    unsafe { libc::munmap(map, 2 * LEN) };
    let secs = start.elapsed().as_secs_f64();
    if seen {
        println!("lockdep-prime: {FROM} -> {TO} recorded after {calls} listings ({secs:.1}s)");
        ExitCode::SUCCESS
    } else {
        println!("lockdep-prime: {FROM} -> {TO} not recorded after {calls} listings ({secs:.1}s)");
        ExitCode::FAILURE
    }
}
