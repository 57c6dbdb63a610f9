// SPDX-License-Identifier: GPL-2.0
//! Descriptor chains of a split virtqueue, walked over the IOTLB view (indirect tables
//! resolved, every range checked), and scatter-gather lists over guest memory.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::memory::{Access, RangeError};
use crate::virtio::*;

/// One descriptor of a chain, after indirect tables are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// IOVA of the buffer.
    pub addr: u64,
    /// Length of the buffer in bytes.
    pub len: u32,
    /// Device-writable (VRING_DESC_F_WRITE).
    pub write: bool,
}

/// Why [`walk_chain`] could not walk a descriptor chain.
#[derive(Debug, PartialEq, Eq)]
pub enum WalkError {
    /// A descriptor, table or buffer is not (yet) mapped or not accessible.
    Range(RangeError),
    /// The driver built a malformed chain.
    Invalid(&'static str),
}

impl From<RangeError> for WalkError {
    fn from(e: RangeError) -> Self {
        WalkError::Range(e)
    }
}

fn read_desc(mem: &GuestMemoryMmap, table: u64, i: u16) -> Result<(u64, u32, u16, u16), WalkError> {
    let addr = table
        .checked_add(u64::from(i) * 16)
        .ok_or(WalkError::Range(RangeError::Overflow))?;
    let mut raw = [0u8; 16];
    mem.read_slice(&mut raw, GuestAddress(addr))
        .map_err(|_| WalkError::Range(RangeError::Unmapped(addr)))?;
    Ok((
        u64::from_le_bytes(raw[0..8].try_into().unwrap()),
        u32::from_le_bytes(raw[8..12].try_into().unwrap()),
        u16::from_le_bytes(raw[12..14].try_into().unwrap()),
        u16::from_le_bytes(raw[14..16].try_into().unwrap()),
    ))
}

/// Walk the split-ring descriptor chain starting at `head`, resolving an indirect table, and
/// check every buffer with `check` (which sees the access the device will need).
///
/// This is deliberately separate from `virtio_queue::DescriptorChain`: that iterator cannot be
/// built for an arbitrary head (needed to resubmit in-flight requests after a reconnect) and
/// it ends silently on a memory error, which would hide an IOTLB entry that needs faulting in.
pub fn walk_chain(
    mem: &GuestMemoryMmap,
    desc_table: u64,
    queue_size: u16,
    head: u16,
    check: &mut dyn FnMut(u64, u64, Access) -> Result<(), RangeError>,
) -> Result<Vec<Desc>, WalkError> {
    if head >= queue_size {
        return Err(WalkError::Invalid("head index out of range"));
    }
    let mut out = Vec::new();
    let mut table = desc_table;
    let mut max = queue_size;
    let mut i = head;
    let mut indirect = false;
    let mut count = 0u32;
    loop {
        let (addr, len, flags, next) = read_desc(mem, table, i)?;
        if flags & VRING_DESC_F_INDIRECT != 0 {
            if indirect {
                return Err(WalkError::Invalid("nested indirect descriptor"));
            }
            if count != 0 || flags & VRING_DESC_F_NEXT != 0 {
                return Err(WalkError::Invalid("indirect descriptor inside a chain"));
            }
            if len == 0 || len % 16 != 0 || len / 16 > 0xffff {
                return Err(WalkError::Invalid("bad indirect table length"));
            }
            check(addr, u64::from(len), Access::Read)?;
            indirect = true;
            table = addr;
            max = (len / 16) as u16;
            i = 0;
            continue;
        }
        count += 1;
        if count > u32::from(max) {
            return Err(WalkError::Invalid("descriptor loop"));
        }
        let write = flags & VRING_DESC_F_WRITE != 0;
        if len > 0 {
            check(
                addr,
                u64::from(len),
                if write { Access::Write } else { Access::Read },
            )?;
        }
        out.push(Desc { addr, len, write });
        if flags & VRING_DESC_F_NEXT == 0 {
            return Ok(out);
        }
        if next >= max {
            return Err(WalkError::Invalid("next index out of range"));
        }
        i = next;
    }
}

/// A scatter-gather list of guest ranges, each `(IOVA, length in bytes)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sg(pub Vec<(u64, u64)>);

impl Sg {
    /// Total length of the list in bytes (the sum of the range lengths).
    pub fn len(&self) -> u64 {
        self.0.iter().map(|s| s.1).sum()
    }
    /// Whether the list holds no bytes (it may still hold zero-length ranges).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The sub-list `[off, off+len)`.
    pub fn slice(&self, mut off: u64, mut len: u64) -> Sg {
        let mut out = Vec::new();
        for &(a, l) in &self.0 {
            if len == 0 {
                break;
            }
            if off >= l {
                off -= l;
                continue;
            }
            let take = (l - off).min(len);
            out.push((a + off, take));
            len -= take;
            off = 0;
        }
        Sg(out)
    }
    /// Copy `buf.len()` bytes from the start of the list.
    pub fn read_into(&self, mem: &GuestMemoryMmap, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        for &(a, l) in &self.0 {
            if done == buf.len() {
                break;
            }
            let take = (buf.len() - done).min(l as usize);
            if mem
                .read_slice(&mut buf[done..done + take], GuestAddress(a))
                .is_err()
            {
                return false;
            }
            done += take;
        }
        done == buf.len()
    }
    /// Copy `buf` to the start of the list; returns bytes written.
    pub fn write_from(&self, mem: &GuestMemoryMmap, buf: &[u8]) -> Option<u64> {
        let mut done = 0usize;
        for &(a, l) in &self.0 {
            if done == buf.len() {
                break;
            }
            let take = (buf.len() - done).min(l as usize);
            mem.write_slice(&buf[done..done + take], GuestAddress(a))
                .ok()?;
            done += take;
        }
        Some(done as u64)
    }
}
