// SPDX-License-Identifier: GPL-2.0

//! Where the fuzzer puts ioctl arguments: two read-write pages followed by a `PROT_NONE` page,
//! so that an argument can be placed to end exactly where readable memory ends (a short
//! buffer: the kernel's copy of the rest faults), or replaced by a pointer the kernel must
//! refuse (NULL, a kernel address, the inaccessible page).

use crate::fuzz::gen::Gen;

const PAGE: usize = 4096;
/// Readable and writable bytes before the guard page.
pub const ROOM: usize = 2 * PAGE;

/// How an argument is passed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ptr {
    /// At the start of the arena, wholly readable and writable.
    Valid,
    /// The NULL pointer.
    Null,
    /// An address in the kernel's half.
    Kernel,
    /// The first byte of the `PROT_NONE` page.
    Guard,
    /// Only the first N bytes are mapped; the rest lies in the guard page.
    Short(usize),
}

impl Ptr {
    /// Mostly [`Ptr::Valid`]; a bad pointer one time in 25, for an argument of `size` bytes.
    pub fn choose(g: &mut Gen, size: usize) -> Ptr {
        if size == 0 || !g.chance(40) {
            return Ptr::Valid;
        }
        match g.below(4) {
            0 => Ptr::Null,
            1 => Ptr::Kernel,
            2 => Ptr::Guard,
            _ => Ptr::Short((1 + g.index((size - 1).max(1))).min(size)),
        }
    }

    /// How the transcript names it (never an address: those differ between runs).
    pub fn label(self) -> String {
        match self {
            Ptr::Valid => String::new(),
            Ptr::Null => " ptr=null".into(),
            Ptr::Kernel => " ptr=kernel".into(),
            Ptr::Guard => " ptr=guard".into(),
            Ptr::Short(n) => format!(" ptr=short{n}"),
        }
    }
}

/// The mapping; unmapped on drop.
///
/// # Invariants
///
/// `base` is the start of a private anonymous mapping of `ROOM + PAGE` bytes whose first `ROOM`
/// bytes are readable and writable and whose last page is `PROT_NONE`.
pub struct Arena {
    base: *mut u8,
}

impl Arena {
    /// Maps the arena.
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: A fresh anonymous mapping chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ROOM + PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: The last page of the mapping just made.
        if unsafe { libc::mprotect(p.cast::<u8>().add(ROOM).cast(), PAGE, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // INVARIANT: mapped and protected as documented just above.
        Ok(Self { base: p.cast() })
    }

    /// Zeroes the arena, copies `bytes` (at most [`ROOM`]) where `ptr` says and returns the
    /// address to pass to the kernel.
    pub fn place(&mut self, bytes: &[u8], ptr: Ptr) -> usize {
        // SAFETY: By the type invariant the first ROOM bytes are writable.
        let room = unsafe { std::slice::from_raw_parts_mut(self.base, ROOM) };
        room.fill(0);
        let n = bytes.len().min(ROOM);
        match ptr {
            Ptr::Valid => {
                room[..n].copy_from_slice(&bytes[..n]);
                self.base as usize
            }
            Ptr::Short(k) => {
                let k = k.min(n);
                room[ROOM - k..].copy_from_slice(&bytes[..k]);
                self.base as usize + ROOM - k
            }
            Ptr::Null => 0,
            Ptr::Kernel => 0xffff_8880_0000_0000,
            Ptr::Guard => self.base as usize + ROOM,
        }
    }

    /// The `n` bytes at `addr` if they lie in the readable part, else nothing.
    pub fn read_back(&self, addr: usize, n: usize) -> Option<Vec<u8>> {
        let start = self.base as usize;
        if addr < start || addr.checked_add(n)? > start + ROOM {
            return None;
        }
        // SAFETY: [addr, addr + n) lies in the readable part (checked above).
        Some(unsafe { std::slice::from_raw_parts(addr as *const u8, n) }.to_vec())
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: The mapping of the type invariant, not used after this.
        unsafe { libc::munmap(self.base.cast(), ROOM + PAGE) };
    }
}
