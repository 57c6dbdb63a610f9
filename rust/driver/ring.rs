// SPDX-License-Identifier: GPL-2.0

//! A split virtqueue as the device side sees it, read by the kernel: which requests are in
//! flight, and completing them with an error once no daemon will ever serve them (the orphan
//! drain, `Documentation/orphan-drain.rst`). The C driver has no counterpart.
//!
//! The daemon pops requests from the available ring and completes them, in any order, into
//! the used ring; both rings keep only their last `num` entries, so which requests are in
//! flight cannot be read back from them once the daemon is gone. A [`Tracker`] therefore
//! follows both rings while the daemon serves them: at every kick and every interrupt the
//! daemon injects it counts the heads made available and the heads used since it last looked
//! ([`Tracker::observe`]). A head is in flight when it was made available once more than it
//! was used. When either ring moved by more than `num` entries between two looks, or shows an
//! entry that cannot be (a head out of range), the count is lost until the next moment with
//! nothing in flight (available index equal to used index), where it starts again from zero.
//!
//! Nothing read from a ring is trusted: the daemon maps every ring read-write and may have
//! scribbled over it before dying. Every index is checked against the ring size, every chain
//! is at most `num` descriptors long (the spec's limit, indirect tables included), and every
//! buffer byte is read or written only inside a mapping in flight ([`Buffers`]); anything else
//! stops the drain of that queue with a [`Stop`] the caller logs once.
//!
//! Little-endian layout (virtio 1.0, or legacy on a little-endian CPU). Packed rings are not
//! tracked (the device refuses to drain them: `Documentation/orphan-drain.rst`).

use crate::ffi;
use kernel::{
    alloc::KVVec,
    fmt,
    prelude::*,
    sync::barrier::{
        smp_mb,
        Full,
        Read,
        Write, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
};

// CAST: The descriptor and used ring flags are `__virtio16` bits (1, 2, 4).
/// `VRING_DESC_F_NEXT`.
const DESC_F_NEXT: u16 = ffi::VRING_DESC_F_NEXT as u16;
/// `VRING_DESC_F_WRITE`.
const DESC_F_WRITE: u16 = ffi::VRING_DESC_F_WRITE as u16;
/// `VRING_DESC_F_INDIRECT`.
const DESC_F_INDIRECT: u16 = ffi::VRING_DESC_F_INDIRECT as u16;
/// `VRING_USED_F_NO_NOTIFY`.
const USED_F_NO_NOTIFY: u16 = ffi::VRING_USED_F_NO_NOTIFY as u16;
/// `sizeof(struct vring_desc)`.
const DESC_SIZE: usize = core::mem::size_of::<ffi::vring_desc>();
/// `VIRTIO_BLK_S_IOERR`.
const BLK_S_IOERR: u8 = ffi::VIRTIO_BLK_S_IOERR as u8;
/// Largest split ring (the spec's `Queue Size` limit).
const MAX_NUM: u32 = 32768;
/// Rounds of [`Tracker::drain`] before it leaves the rest to its caller.
const DRAIN_ROUNDS: u32 = 16;

/// The memory of one ring area (the descriptor table, the available or the used ring).
pub(crate) trait Area {
    /// The `T` at byte offset `off`, `None` outside the area or misaligned.
    fn read<T: FromBytes + Copy>(&self, off: usize) -> Option<T>;
    /// Writes `v` at byte offset `off`, `None` outside the area or misaligned.
    fn write<T: AsBytes + Copy>(&self, off: usize, v: T) -> Option<()>;
}

/// The memory the descriptors point into, as the device reaches it.
pub(crate) trait Buffers {
    /// Reads `out.len()` bytes at device address `addr`.
    ///
    /// # Errors
    ///
    /// Any error if a byte is outside the buffers in flight.
    fn read(&self, addr: u64, out: &mut [u8]) -> Result;
    /// Writes `data` at device address `addr`.
    ///
    /// # Errors
    ///
    /// Any error if a byte is outside the buffers in flight.
    fn write(&self, addr: u64, data: &[u8]) -> Result;
}

/// What a queue carries, which decides how a request is completed by the drain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// virtio-blk: the status byte (the last byte of the chain) becomes `VIRTIO_BLK_S_IOERR`,
    /// used length 1.
    Block,
    /// virtio-net receive queue: buffers returned empty (used length 0). Buffers the driver
    /// posts once the drain has begun stay in the ring: returning them would have the driver
    /// refill and kick for ever.
    NetRx,
    /// virtio-net transmit queue: buffers returned (used length 0).
    NetTx,
    /// Any other device: buffers returned with used length 0.
    Other,
}

impl Role {
    /// Whether a kick during the drain is answered by draining again.
    pub(crate) fn drains_kicks(self) -> bool {
        self != Role::NetRx
    }
}

/// Why a chain could not be completed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ChainError {
    /// A descriptor index (a head or a `next`) at or past the table's size.
    IndexOutOfRange(u16),
    /// More descriptors than the table holds: a loop.
    Loop,
    /// An indirect descriptor inside an indirect table, or chained with `NEXT`.
    NestedIndirect,
    /// An indirect table whose length is 0, not a multiple of 16 or longer than the queue.
    IndirectLength(u32),
    /// A descriptor that could not be read (outside the ring or the buffers in flight).
    Unreadable(u64),
    /// The last descriptor is not device-writable, or is empty: no status byte.
    NoStatus,
    /// The status byte is outside the buffers in flight.
    StatusOutside(u64),
}

/// Why the drain of a queue stopped (logged once by the caller).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Stop {
    /// The available index moved by more than the ring holds between two looks.
    AvailJump {
        /// The index at the last look.
        from: u16,
        /// The index now.
        to: u16,
    },
    /// The used index moved by more than the ring holds between two looks.
    UsedJump {
        /// The index at the last look.
        from: u16,
        /// The index now.
        to: u16,
    },
    /// An available ring entry names a head out of range.
    AvailEntry(u16),
    /// A used ring entry names an id out of range.
    UsedEntry(u32),
    /// The counts do not add up to the indexes (some entry was overwritten).
    Inconsistent {
        /// Requests in flight by the indexes.
        in_flight: u16,
        /// Heads counted in flight (up to the first bad count).
        counted: u32,
    },
    /// A ring area could not be read or written.
    RingUnreadable,
    /// A packed ring: not tracked, not drained.
    Packed,
    /// A request's chain is broken.
    Chain {
        /// The request's head.
        head: u16,
        /// What is wrong with it.
        err: ChainError,
    },
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Stop::AvailJump { from, to } => {
                write!(f, "available index jumped from {from} to {to}")
            }
            Stop::UsedJump { from, to } => write!(f, "used index jumped from {from} to {to}"),
            Stop::AvailEntry(h) => write!(f, "available ring names head {h}, out of range"),
            Stop::UsedEntry(id) => write!(f, "used ring names id {id}, out of range"),
            Stop::Inconsistent { in_flight, counted } => write!(
                f,
                "indexes say {in_flight} requests in flight, the rings {counted}"
            ),
            Stop::RingUnreadable => write!(f, "ring outside its memory"),
            Stop::Packed => write!(f, "packed ring, not drained"),
            Stop::Chain { head, err } => {
                write!(f, "request {head}: ")?;
                match err {
                    ChainError::IndexOutOfRange(i) => write!(f, "descriptor {i} out of range"),
                    ChainError::Loop => write!(f, "descriptor loop"),
                    ChainError::NestedIndirect => write!(f, "nested indirect descriptor"),
                    ChainError::IndirectLength(l) => write!(f, "indirect table of {l} bytes"),
                    ChainError::Unreadable(a) => write!(f, "descriptor at {a:#x} unreadable"),
                    ChainError::NoStatus => write!(f, "no device-writable status byte"),
                    ChainError::StatusOutside(a) => {
                        write!(f, "status byte at {a:#x} outside the buffers in flight")
                    }
                }
            }
        }
    }
}

/// A descriptor (`struct vring_desc`), in CPU byte order.
#[derive(Clone, Copy, Default)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

impl Desc {
    /// From the 16 bytes of a `struct vring_desc`.
    fn from_le(b: &[u8; DESC_SIZE]) -> Self {
        Self {
            addr: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// The three areas of a split ring of `num` entries.
pub(crate) struct Rings<A> {
    /// The descriptor table (`16 * num` bytes).
    pub(crate) desc: A,
    /// The available ring (`6 + 2 * num` bytes).
    pub(crate) avail: A,
    /// The used ring (`6 + 8 * num` bytes).
    pub(crate) used: A,
}

/// The sizes of the three areas of a split ring of `num` entries (the available and used
/// rings with their event index fields, which `virtio_ring` always allocates), or `None` if
/// `num` is not a power of two up to 32768.
pub(crate) fn area_sizes(num: u32) -> Option<[usize; 3]> {
    if num == 0 || num > MAX_NUM || !num.is_power_of_two() {
        return None;
    }
    let n = num as usize;
    Some([DESC_SIZE * n, 6 + 2 * n, 6 + 8 * n])
}

/// The in-flight requests of a split ring, followed from its indexes (see the module
/// documentation). Every method may run in atomic context; only [`Tracker::new`] allocates,
/// and a tracker is dropped in process context (its counts may be `vmalloc`ed).
pub(crate) struct Tracker<A> {
    rings: Rings<A>,
    /// Ring size, a power of two.
    num: u16,
    /// The available index last looked at.
    seen_avail: u16,
    /// The used index last looked at (or written by the drain).
    seen_used: u16,
    /// Per head: times made available minus times used, since the last moment with nothing
    /// in flight. Saturating: only garbage gets near the limits.
    count: KVVec<i32>,
    /// How many entries of `count` are not 0.
    nonzero: u32,
    /// Why the counts cannot be trusted until the next moment with nothing in flight.
    lost: Option<Stop>,
}

impl<A: Area> Tracker<A> {
    /// Starts following `rings` of `num` entries (checked with [`area_sizes`] by the caller)
    /// from their current indexes. Process context.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `num` is not a valid ring size, `ENOMEM`.
    pub(crate) fn new(rings: Rings<A>, num: u32) -> Result<Self> {
        area_sizes(num).ok_or(EINVAL)?;
        // Up to 128 KiB for the largest ring: `kvmalloc`. Dropped in process context only.
        let mut count = KVVec::with_capacity(num as usize, GFP_KERNEL)?;
        count.resize(num as usize, 0, GFP_KERNEL)?;
        let mut t = Self {
            rings,
            // CAST: At most 32768 (`area_sizes`).
            num: num as u16,
            seen_avail: 0,
            seen_used: 0,
            count,
            nonzero: 0,
            lost: None,
        };
        match (t.avail_idx(), t.used_idx()) {
            (Some(a), Some(u)) => {
                (t.seen_avail, t.seen_used) = (a, u);
                if a != u {
                    t.lost = Some(Stop::Inconsistent {
                        in_flight: a.wrapping_sub(u),
                        counted: 0,
                    });
                }
            }
            _ => t.lost = Some(Stop::RingUnreadable),
        }
        Ok(t)
    }

    fn avail_idx(&self) -> Option<u16> {
        self.rings.avail.read::<u16>(2).map(u16::from_le)
    }

    fn used_idx(&self) -> Option<u16> {
        self.rings.used.read::<u16>(2).map(u16::from_le)
    }

    /// The ring slot of index `i`.
    fn slot(&self, i: u16) -> usize {
        usize::from(i & (self.num - 1))
    }

    /// Adds `delta` to the count of `head` (in range: checked by the caller).
    fn bump(&mut self, head: u16, delta: i32) {
        if let Some(c) = self.count.get_mut(usize::from(head)) {
            let was = *c;
            *c = c.saturating_add(delta);
            match (was == 0, *c == 0) {
                (true, false) => self.nonzero += 1,
                (false, true) => self.nonzero -= 1,
                _ => {}
            }
        }
    }

    /// Marks the counts lost (keeping the first reason).
    fn lose(&mut self, why: Stop) {
        self.lost.get_or_insert(why);
    }

    /// Counts the entries added to both rings since the last look. Any context.
    pub(crate) fn observe(&mut self) {
        let num = self.num;
        let Some(a) = self.avail_idx() else {
            return self.lose(Stop::RingUnreadable);
        };
        // The entries below the index are read after it (the driver's `virtio_wmb`).
        smp_mb(Read);
        let new = a.wrapping_sub(self.seen_avail);
        if new > num {
            self.lose(Stop::AvailJump {
                from: self.seen_avail,
                to: a,
            });
        } else if self.lost.is_none() {
            for k in 0..new {
                let i = self.seen_avail.wrapping_add(k);
                match self.rings.avail.read::<u16>(4 + 2 * self.slot(i)) {
                    Some(h) if u16::from_le(h) < num => self.bump(u16::from_le(h), 1),
                    Some(h) => return self.lose_at(Stop::AvailEntry(u16::from_le(h)), a),
                    None => return self.lose_at(Stop::RingUnreadable, a),
                }
            }
        }
        self.seen_avail = a;
        let Some(u) = self.used_idx() else {
            return self.lose(Stop::RingUnreadable);
        };
        smp_mb(Read);
        let new = u.wrapping_sub(self.seen_used);
        if new > num {
            self.lose(Stop::UsedJump {
                from: self.seen_used,
                to: u,
            });
        } else if self.lost.is_none() {
            for k in 0..new {
                let i = self.seen_used.wrapping_add(k);
                match self.rings.used.read::<u32>(4 + 8 * self.slot(i)) {
                    // CAST: Below `num`, a `u16`.
                    Some(id) if u32::from_le(id) < u32::from(num) => {
                        self.bump(u32::from_le(id) as u16, -1)
                    }
                    Some(id) => {
                        self.seen_used = u;
                        return self.lose(Stop::UsedEntry(u32::from_le(id)));
                    }
                    None => {
                        self.seen_used = u;
                        return self.lose(Stop::RingUnreadable);
                    }
                }
            }
        }
        self.seen_used = u;
        if a == u && (self.lost.is_some() || self.nonzero != 0) {
            // Nothing in flight: counting starts again from here.
            self.count.iter_mut().for_each(|c| *c = 0);
            self.nonzero = 0;
            self.lost = None;
        }
    }

    /// Loses the counts while reading the available ring up to `a`; the used side is looked
    /// at next time.
    fn lose_at(&mut self, why: Stop, a: u16) {
        self.seen_avail = a;
        self.lose(why);
    }

    /// The number of requests in flight by the indexes.
    pub(crate) fn in_flight(&self) -> u16 {
        self.seen_avail.wrapping_sub(self.seen_used)
    }

    /// Completes every request in flight as a device does on a fatal error (per `role`),
    /// after a last look at the rings, and asks the driver to kick for the next request it
    /// makes available (`VRING_USED_F_NO_NOTIFY` cleared, `avail_event` at the available index:
    /// the dead daemon may have left notifications off), looking again after that, as a
    /// device must, for a request made available meanwhile. Returns how many requests were
    /// completed and whether requests are left for another call (the driver kept adding
    /// them). The caller then calls the queue's callback. Any context (the buffers are written
    /// with no sleeping lock).
    ///
    /// # Errors
    ///
    /// The reason to stop draining this queue; the requests completed before it are in the
    /// used ring.
    pub(crate) fn drain(&mut self, role: Role, bufs: &impl Buffers) -> Result<(u16, bool), Stop> {
        let mut total = 0u16;
        for _ in 0..DRAIN_ROUNDS {
            total = total.wrapping_add(self.drain_once(role, bufs)?);
            if !role.drains_kicks() {
                return Ok((total, false));
            }
            self.want_kicks()?;
            // The event index is visible before the available index is read again (the
            // driver's side: `virtio_mb` between publishing its index and reading ours).
            smp_mb(Full);
            if self.avail_idx() == Some(self.seen_avail) {
                return Ok((total, false));
            }
        }
        Ok((total, true))
    }

    /// Asks for a kick at the next request made available: `VRING_USED_F_NO_NOTIFY` off (the
    /// used ring's only flag), `avail_event` at the available index.
    fn want_kicks(&self) -> Result<(), Stop> {
        let off = 4 + 8 * usize::from(self.num);
        let used = &self.rings.used;
        let flags = used.read::<u16>(0).ok_or(Stop::RingUnreadable)?;
        used.write(0, (u16::from_le(flags) & !USED_F_NO_NOTIFY).to_le())
            .and_then(|()| used.write(off, self.seen_avail.to_le()))
            .ok_or(Stop::RingUnreadable)
    }

    /// One round of [`Tracker::drain`]: completes what is in flight now.
    fn drain_once(&mut self, role: Role, bufs: &impl Buffers) -> Result<u16, Stop> {
        self.observe();
        if let Some(why) = self.lost {
            return Err(why);
        }
        let in_flight = self.in_flight();
        let mut counted = 0u32;
        for &c in self.count.iter() {
            match c {
                0 => {}
                1 => counted += 1,
                _ => {
                    return Err(Stop::Inconsistent { in_flight, counted });
                }
            }
        }
        if counted != u32::from(in_flight) {
            return Err(Stop::Inconsistent { in_flight, counted });
        }
        let mut done = 0u16;
        let mut res = Ok(());
        for head in 0..self.num {
            if self.count.get(usize::from(head)) != Some(&1) {
                continue;
            }
            let len = match role {
                Role::Block => match self.fail_blk(head, bufs) {
                    Ok(()) => 1u32,
                    Err(err) => {
                        res = Err(Stop::Chain { head, err });
                        break;
                    }
                },
                Role::NetRx | Role::NetTx | Role::Other => 0,
            };
            let slot = 4 + 8 * self.slot(self.seen_used.wrapping_add(done));
            let written = self
                .rings
                .used
                .write(slot, u32::from(head).to_le())
                .and_then(|()| self.rings.used.write(slot + 4, len.to_le()));
            if written.is_none() {
                res = Err(Stop::RingUnreadable);
                break;
            }
            self.bump(head, -1);
            done += 1;
        }
        if done > 0 {
            let idx = self.seen_used.wrapping_add(done);
            // The entries are visible before the index that publishes them.
            smp_mb(Write);
            if self.rings.used.write(2, idx.to_le()).is_none() {
                return Err(Stop::RingUnreadable);
            }
            self.seen_used = idx;
        }
        res.map(|()| done)
    }

    /// Descriptor `i` of the queue's table.
    fn desc(&self, i: u16) -> Result<Desc, ChainError> {
        let off = DESC_SIZE * usize::from(i);
        let d = &self.rings.desc;
        match (
            d.read::<u64>(off),
            d.read::<u32>(off + 8),
            d.read::<u16>(off + 12),
            d.read::<u16>(off + 14),
        ) {
            (Some(addr), Some(len), Some(flags), Some(next)) => Ok(Desc {
                addr: u64::from_le(addr),
                len: u32::from_le(len),
                flags: u16::from_le(flags),
                next: u16::from_le(next),
            }),
            // CAST: Inside a table of at most 32768 descriptors.
            _ => Err(ChainError::Unreadable(off as u64)),
        }
    }

    /// Writes `VIRTIO_BLK_S_IOERR` into the status byte of request `head`: the last byte of
    /// the last descriptor of its chain, which must be device-writable.
    fn fail_blk(&self, head: u16, bufs: &impl Buffers) -> Result<(), ChainError> {
        let mut table: Option<(u64, u16)> = None;
        let mut i = head;
        // Descriptors left before the chain is longer than its table: a loop.
        let mut budget = self.num;
        loop {
            let d = match table {
                None => self.desc(i)?,
                Some((addr, _)) => {
                    let at = addr
                        .checked_add(DESC_SIZE as u64 * u64::from(i))
                        .ok_or(ChainError::Unreadable(addr))?;
                    let mut bytes = [0u8; DESC_SIZE];
                    bufs.read(at, &mut bytes)
                        .map_err(|_| ChainError::Unreadable(at))?;
                    Desc::from_le(&bytes)
                }
            };
            if d.flags & DESC_F_INDIRECT != 0 {
                if table.is_some() || d.flags & DESC_F_NEXT != 0 {
                    return Err(ChainError::NestedIndirect);
                }
                let n = d.len / DESC_SIZE as u32;
                if d.len == 0 || d.len % DESC_SIZE as u32 != 0 || n > u32::from(self.num) {
                    return Err(ChainError::IndirectLength(d.len));
                }
                // CAST: At most `num`, a `u16`.
                table = Some((d.addr, n as u16));
                (i, budget) = (0, n as u16);
                continue;
            }
            if d.flags & DESC_F_NEXT == 0 {
                if d.flags & DESC_F_WRITE == 0 || d.len == 0 {
                    return Err(ChainError::NoStatus);
                }
                let at = d
                    .addr
                    .checked_add(u64::from(d.len) - 1)
                    .ok_or(ChainError::StatusOutside(d.addr))?;
                return bufs
                    .write(at, &[BLK_S_IOERR])
                    .map_err(|_| ChainError::StatusOutside(at));
            }
            budget = budget.checked_sub(1).ok_or(ChainError::Loop)?;
            if budget == 0 {
                return Err(ChainError::Loop);
            }
            let size = table.map_or(self.num, |(_, n)| n);
            if d.next >= size {
                return Err(ChainError::IndexOutOfRange(d.next));
            }
            i = d.next;
        }
    }
}

#[kunit_tests(vduse_rs_ring)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// Plain memory standing for a ring area or the buffers (cells: nothing here can fail
    /// but a range check).
    struct Mem(KVec<Cell<u8>>);

    impl Mem {
        fn new(len: usize) -> Result<Self> {
            let mut v = KVec::with_capacity(len, GFP_KERNEL)?;
            for _ in 0..len {
                v.push(Cell::new(0), GFP_KERNEL)?;
            }
            Ok(Self(v))
        }

        fn get(&self, off: usize, out: &mut [u8]) -> Option<()> {
            for (i, b) in out.iter_mut().enumerate() {
                *b = self.0.get(off.checked_add(i)?)?.get();
            }
            Some(())
        }

        fn set(&self, off: usize, data: &[u8]) -> Option<()> {
            // All or nothing: the range is checked first.
            self.0.get(off.checked_add(data.len())?.checked_sub(1)?)?;
            for (i, &b) in data.iter().enumerate() {
                self.0.get(off + i)?.set(b);
            }
            Some(())
        }

        /// The offset of device address `addr` (buffers live at `0x1000..`).
        fn at(addr: u64) -> Result<usize> {
            Ok(usize::try_from(addr.checked_sub(0x1000).ok_or(EFAULT)?)?)
        }
    }

    impl Area for Mem {
        fn read<T: FromBytes + Copy>(&self, off: usize) -> Option<T> {
            let mut buf = [0u8; 8];
            let b = buf.get_mut(..core::mem::size_of::<T>())?;
            self.get(off, b)?;
            T::from_bytes_copy(b)
        }
        fn write<T: AsBytes + Copy>(&self, off: usize, v: T) -> Option<()> {
            self.set(off, v.as_bytes())
        }
    }

    /// Buffers at device addresses `0x1000..0x1000 + len`.
    impl Buffers for Mem {
        fn read(&self, addr: u64, out: &mut [u8]) -> Result {
            self.get(Self::at(addr)?, out).ok_or(EFAULT)
        }
        fn write(&self, addr: u64, data: &[u8]) -> Result {
            self.set(Self::at(addr)?, data).ok_or(EFAULT)
        }
    }

    const NUM: u16 = 8;

    /// A driver and a daemon on one ring.
    struct Sim {
        t: Tracker<Mem>,
        avail: u16,
        used: u16,
    }

    impl Sim {
        fn new() -> Result<Self> {
            let [d, a, u] = area_sizes(u32::from(NUM)).ok_or(EINVAL)?;
            let rings = Rings {
                desc: Mem::new(d)?,
                avail: Mem::new(a)?,
                used: Mem::new(u)?,
            };
            Ok(Self {
                t: Tracker::new(rings, u32::from(NUM))?,
                avail: 0,
                used: 0,
            })
        }
        fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
            let o = DESC_SIZE * usize::from(i);
            let d = &self.t.rings.desc;
            let _ = Area::write(d, o, addr.to_le());
            let _ = Area::write(d, o + 8, len.to_le());
            let _ = Area::write(d, o + 12, flags.to_le());
            let _ = Area::write(d, o + 14, next.to_le());
        }
        /// The driver makes `head` available.
        fn offer(&mut self, head: u16) {
            let r = &self.t.rings.avail;
            let _ = Area::write(r, 4 + 2 * usize::from(self.avail % NUM), head.to_le());
            self.avail = self.avail.wrapping_add(1);
            let _ = Area::write(r, 2, self.avail.to_le());
        }
        /// The daemon completes `head`.
        fn complete(&mut self, head: u16) {
            let r = &self.t.rings.used;
            let _ = Area::write(
                r,
                4 + 8 * usize::from(self.used % NUM),
                u32::from(head).to_le(),
            );
            self.used = self.used.wrapping_add(1);
            let _ = Area::write(r, 2, self.used.to_le());
        }
        fn used_entry(&self, k: u16) -> Option<u32> {
            Area::read::<u32>(&self.t.rings.used, 4 + 8 * usize::from(k % NUM))
        }
    }

    /// Completions out of order, heads reused, and more than `num` entries in total: the
    /// requests still in flight are exactly those made available and not used.
    #[test]
    fn tracks_out_of_order_completions() -> Result {
        let mut s = Sim::new()?;
        let bufs = Mem::new(0x100)?;
        for round in 0..5u16 {
            for h in 0..4 {
                s.offer(h);
            }
            s.t.observe();
            // Completed 2, 0, 3 (in that order); 1 stays in flight the last round only.
            for h in [2, 0, 3] {
                s.complete(h);
            }
            if round < 4 {
                s.complete(1);
            }
            s.t.observe();
        }
        assert_eq!(s.t.in_flight(), 1);
        assert_eq!(s.t.drain(Role::Other, &bufs), Ok((1, false)));
        assert_eq!(s.used_entry(s.used), Some(1));
        assert_eq!(Area::read::<u16>(&s.t.rings.used, 2), Some(s.used + 1));
        // Kicks asked for: notifications on, the event index at the available index.
        let event = 4 + 8 * usize::from(NUM);
        assert_eq!(Area::read::<u16>(&s.t.rings.used, 0), Some(0));
        assert_eq!(Area::read::<u16>(&s.t.rings.used, event), Some(s.avail));
        // Nothing left: a second drain completes nothing.
        assert_eq!(s.t.drain(Role::Other, &bufs), Ok((0, false)));
        Ok(())
    }

    /// Counts commute: a head used and made available again between two looks, or made
    /// available and used between them, is counted right whatever the order of the looks.
    #[test]
    fn counts_between_looks() -> Result {
        let mut s = Sim::new()?;
        let bufs = Mem::new(0x100)?;
        s.offer(0);
        s.t.observe();
        s.complete(0);
        s.offer(0);
        s.offer(1);
        s.complete(1);
        assert_eq!(s.t.drain(Role::Other, &bufs), Ok((1, false)));
        assert_eq!(s.used_entry(s.used), Some(0));
        Ok(())
    }

    /// A virtio-blk request: header, data, status; direct and indirect. The status byte
    /// becomes `VIRTIO_BLK_S_IOERR`, the used length 1.
    #[test]
    fn block_status_byte() -> Result {
        let mut s = Sim::new()?;
        let bufs = Mem::new(0x100)?;
        s.desc(0, 0x1000, 16, DESC_F_NEXT, 1);
        s.desc(1, 0x1010, 32, DESC_F_NEXT | DESC_F_WRITE, 2);
        s.desc(2, 0x1030, 1, DESC_F_WRITE, 0);
        s.offer(0);
        // An indirect table in the buffers at 0x1040: two descriptors.
        s.desc(3, 0x1040, 32, DESC_F_INDIRECT, 0);
        let ind = [
            (0x1080u64, 16u32, DESC_F_NEXT, 1u16),
            (0x1090, 2, DESC_F_WRITE, 0),
        ];
        for (k, (a, l, f, n)) in ind.iter().enumerate() {
            let mut b = [0u8; DESC_SIZE];
            b[..8].copy_from_slice(&a.to_le_bytes());
            b[8..12].copy_from_slice(&l.to_le_bytes());
            b[12..14].copy_from_slice(&f.to_le_bytes());
            b[14..].copy_from_slice(&n.to_le_bytes());
            Buffers::write(&bufs, 0x1040 + 16 * k as u64, &b)?;
        }
        s.offer(3);
        assert_eq!(s.t.drain(Role::Block, &bufs), Ok((2, false)));
        let mut st = [0u8; 1];
        Buffers::read(&bufs, 0x1030, &mut st)?;
        assert_eq!(st[0], BLK_S_IOERR);
        // The last byte of the 2-byte status descriptor.
        Buffers::read(&bufs, 0x1091, &mut st)?;
        assert_eq!(st[0], BLK_S_IOERR);
        assert_eq!(Area::read::<u32>(&s.t.rings.used, 8), Some(1));
        Ok(())
    }

    /// Broken chains stop the drain with their reason, never loop or write outside.
    #[test]
    fn broken_chains_stop() -> Result {
        let bufs = Mem::new(0x100)?;
        let case = |setup: &dyn Fn(&Sim)| -> Result<Result<u16, Stop>> {
            let mut s = Sim::new()?;
            setup(&s);
            s.offer(0);
            Ok(s.t.drain(Role::Block, &bufs).map(|(n, _)| n))
        };
        let chain = |err| Err(Stop::Chain { head: 0, err });
        // A loop: 0 -> 1 -> 0.
        let r = case(&|s| {
            s.desc(0, 0x1000, 1, DESC_F_NEXT | DESC_F_WRITE, 1);
            s.desc(1, 0x1000, 1, DESC_F_NEXT | DESC_F_WRITE, 0);
        })?;
        assert_eq!(r, chain(ChainError::Loop));
        // A descriptor pointing to itself.
        let r = case(&|s| s.desc(0, 0x1000, 1, DESC_F_NEXT | DESC_F_WRITE, 0))?;
        assert_eq!(r, chain(ChainError::Loop));
        assert_eq!(
            case(&|s| s.desc(0, 0x1000, 1, DESC_F_NEXT, NUM))?,
            chain(ChainError::IndexOutOfRange(NUM))
        );
        assert_eq!(
            case(&|s| s.desc(0, 0x1000, 1, 0, 0))?,
            chain(ChainError::NoStatus)
        );
        assert_eq!(
            case(&|s| s.desc(0, 0x1000, 0, DESC_F_WRITE, 0))?,
            chain(ChainError::NoStatus)
        );
        // A length past the buffers, and an address that wraps.
        assert_eq!(
            case(&|s| s.desc(0, 0x1000, 0x101, DESC_F_WRITE, 0))?,
            chain(ChainError::StatusOutside(0x1100))
        );
        assert_eq!(
            case(&|s| s.desc(0, u64::MAX, 2, DESC_F_WRITE, 0))?,
            chain(ChainError::StatusOutside(u64::MAX))
        );
        // Indirect tables: too long, nested, outside the buffers.
        assert_eq!(
            case(&|s| s.desc(0, 0x1000, 16 * (u32::from(NUM) + 1), DESC_F_INDIRECT, 0))?,
            chain(ChainError::IndirectLength(16 * (u32::from(NUM) + 1)))
        );
        assert_eq!(
            case(&|s| s.desc(0, 0x1000, 15, DESC_F_INDIRECT, 0))?,
            chain(ChainError::IndirectLength(15))
        );
        assert_eq!(
            case(&|s| s.desc(0, 0x1000, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1))?,
            chain(ChainError::NestedIndirect)
        );
        assert_eq!(
            case(&|s| s.desc(0, 0x9000, 16, DESC_F_INDIRECT, 0))?,
            chain(ChainError::Unreadable(0x9000))
        );
        Ok(())
    }

    /// A scribbled ring loses the counts (no drain of that queue) until nothing is in flight.
    #[test]
    fn scribbled_rings_lose_count() -> Result {
        let bufs = Mem::new(0x100)?;
        // A head out of range in the available ring.
        let mut s = Sim::new()?;
        s.offer(NUM + 3);
        assert_eq!(
            s.t.drain(Role::Other, &bufs),
            Err(Stop::AvailEntry(NUM + 3))
        );
        // The available index moved by more than the ring holds.
        let mut s = Sim::new()?;
        let _ = Area::write(&s.t.rings.avail, 2, (NUM + 1).to_le());
        assert_eq!(
            s.t.drain(Role::Other, &bufs),
            Err(Stop::AvailJump {
                from: 0,
                to: NUM + 1
            })
        );
        // A used entry out of range, then a used entry naming a head not in flight.
        let mut s = Sim::new()?;
        s.offer(0);
        s.complete(100);
        assert_eq!(s.t.drain(Role::Other, &bufs), Err(Stop::UsedEntry(100)));
        let mut s = Sim::new()?;
        s.offer(0);
        s.offer(1);
        s.complete(2);
        assert_eq!(
            s.t.drain(Role::Other, &bufs),
            Err(Stop::Inconsistent {
                in_flight: 1,
                counted: 2
            })
        );
        // Nothing in flight again: counting starts afresh.
        s.offer(2);
        s.complete(0);
        s.complete(1);
        s.t.observe();
        s.offer(4);
        assert_eq!(s.t.drain(Role::Other, &bufs), Ok((1, false)));
        Ok(())
    }
}
