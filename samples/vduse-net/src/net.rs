// SPDX-License-Identifier: GPL-2.0
//! The virtio-net device: one queue pair (receive queue 0, transmit queue 1) served by one
//! thread, frames exchanged with a TAP device or looped back.
//!
//! No offloads: every frame carries a zeroed `virtio_net_hdr_v1` (12 bytes, `num_buffers` 1)
//! towards the driver, and the header of a transmitted frame is dropped. Checksum offload
//! (`VIRTIO_NET_F_CSUM`/`GUEST_CSUM`) would need the TAP's own vnet header
//! (`IFF_VNET_HDR`, `TUNSETOFFLOAD`) to carry partial checksums through; it is not offered.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use log::{debug, info, warn};
use vduse::device::Device;
use vduse::server::{set_config_and_notify, Backend, Event, EventCtx};
use vduse::virtio::*;
use vduse::vring::Vring;

use crate::tap::Tap;

/// Receive queue.
pub const RX: u16 = 0;
/// Transmit queue.
pub const TX: u16 = 1;

/// Where frames go.
pub enum Link {
    /// A TAP device: the other end of a point-to-point link.
    Tap(Tap),
    /// Every transmitted frame comes back on the receive queue (at most `LOOP_MAX` queued).
    Loopback(Mutex<VecDeque<Vec<u8>>>),
}

const LOOP_MAX: usize = 256;

/// Frame and byte counters of the device side.
#[derive(Debug, Default)]
pub struct Stats {
    /// Frames the driver transmitted (taken from queue 1).
    pub tx_frames: AtomicU64,
    /// Their bytes, without the virtio-net header.
    pub tx_bytes: AtomicU64,
    /// Frames delivered to the driver (put on queue 0).
    pub rx_frames: AtomicU64,
    /// Their bytes, without the header.
    pub rx_bytes: AtomicU64,
    /// Frames dropped because the driver's buffer was too small.
    pub rx_dropped: AtomicU64,
}

/// The virtio-net backend.
pub struct Net {
    link: Link,
    mac: [u8; 6],
    mtu: u16,
    link_up: AtomicBool,
    /// A frame read from the TAP while the receive queue had no buffer.
    pending: Mutex<Option<Vec<u8>>>,
    /// The counters.
    pub stats: Stats,
}

impl Net {
    /// A device with `mac` and `mtu`, its link up, on `link`.
    pub fn new(link: Link, mac: [u8; 6], mtu: u16) -> Self {
        Net {
            link,
            mac,
            mtu,
            link_up: AtomicBool::new(true),
            pending: Mutex::new(None),
            stats: Stats::default(),
        }
    }

    /// The features offered.
    pub fn features() -> u64 {
        bit(VIRTIO_F_VERSION_1)
            | bit(VIRTIO_F_ACCESS_PLATFORM)
            | bit(VIRTIO_RING_F_INDIRECT_DESC)
            | bit(VIRTIO_RING_F_EVENT_IDX)
            | bit(VIRTIO_NET_F_MAC)
            | bit(VIRTIO_NET_F_MTU)
            | bit(VIRTIO_NET_F_STATUS)
    }

    /// The config space.
    pub fn config(&self) -> NetConfig {
        NetConfig {
            mac: self.mac,
            status: if self.link_up.load(Ordering::Relaxed) {
                VIRTIO_NET_S_LINK_UP
            } else {
                0
            },
            max_virtqueue_pairs: 1,
            mtu: self.mtu,
        }
    }

    /// The link.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Sets the link state the config space reports (before the device is created).
    pub fn set_link_state(&self, up: bool) {
        self.link_up.store(up, Ordering::Relaxed);
    }

    /// Sets the link state in the config space and tells the driver.
    pub fn set_link(&self, dev: &Device, up: bool) {
        self.link_up.store(up, Ordering::Relaxed);
        let status = self.config().status.to_le_bytes();
        match set_config_and_notify(dev, VIRTIO_NET_CONFIG_STATUS, &status) {
            Ok(()) => info!("link {}", if up { "up" } else { "down" }),
            Err(e) => warn!("changing the link state: {e}"),
        }
    }

    fn max_frame(&self) -> usize {
        // Ethernet header and a VLAN tag on top of the MTU.
        usize::from(self.mtu) + 18
    }

    /// Serves the transmit queue: every frame goes to the link.
    fn transmit(&self, vring: &mut Vring) -> io::Result<()> {
        let mut buf = vec![0u8; VIRTIO_NET_HDR_LEN + 65536];
        loop {
            vring.disable_notification()?;
            while let Some(chain) = vring.pop()? {
                let out = chain.readable();
                let len = out.len() as usize;
                if chain.error.is_none() && len > VIRTIO_NET_HDR_LEN && len <= buf.len() {
                    let mem = vring.memory();
                    if out.read_into(&mem, &mut buf[..len]) {
                        let frame = &buf[VIRTIO_NET_HDR_LEN..len];
                        self.stats.tx_frames.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .tx_bytes
                            .fetch_add(frame.len() as u64, Ordering::Relaxed);
                        match &self.link {
                            Link::Tap(t) => t.send(frame)?,
                            Link::Loopback(q) => {
                                let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
                                if q.len() < LOOP_MAX {
                                    q.push_back(frame.to_vec());
                                }
                            }
                        }
                    }
                } else {
                    debug!("tx: chain {} of {len} bytes dropped", chain.head);
                }
                vring.add_used(chain.head, 0)?;
            }
            if !vring.enable_notification()? {
                break;
            }
        }
        vring.signal_used()?;
        Ok(())
    }

    /// The next frame for the driver: the one kept back, or one from the link.
    fn next_frame(&self, buf: &mut Vec<u8>) -> io::Result<bool> {
        if let Some(f) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            *buf = f;
            return Ok(true);
        }
        match &self.link {
            Link::Tap(t) => {
                buf.resize(65536, 0);
                match t.recv(buf)? {
                    Some(n) => {
                        buf.truncate(n);
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
            Link::Loopback(q) => match q.lock().unwrap_or_else(|e| e.into_inner()).pop_front() {
                Some(f) => {
                    *buf = f;
                    Ok(true)
                }
                None => Ok(false),
            },
        }
    }

    /// Fills the receive queue from the link; returns `false` if it ran out of buffers with a
    /// frame waiting (stop polling the link until the driver adds buffers).
    fn receive(&self, vring: &mut Vring) -> io::Result<bool> {
        let mut frame = Vec::new();
        let mut starved = false;
        while self.next_frame(&mut frame)? {
            let chain = match vring.pop()? {
                Some(c) => c,
                None => {
                    // Ask for a kick, then look once more: the driver may have added buffers
                    // meanwhile.
                    let more = vring.enable_notification()?;
                    match if more { vring.pop()? } else { None } {
                        Some(c) => c,
                        None => {
                            *self.pending.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(std::mem::take(&mut frame));
                            starved = true;
                            break;
                        }
                    }
                }
            };
            let dst = chain.writable();
            let total = VIRTIO_NET_HDR_LEN + frame.len();
            let mut used = 0u32;
            if chain.error.is_none() && dst.len() >= total as u64 && frame.len() <= self.max_frame()
            {
                let mut hdr = [0u8; VIRTIO_NET_HDR_LEN];
                // num_buffers = 1 (the last field of `virtio_net_hdr_v1`).
                hdr[10..12].copy_from_slice(&1u16.to_le_bytes());
                let mem = vring.memory();
                let ok = dst.write_from(&mem, &hdr) == Some(hdr.len() as u64)
                    && dst
                        .slice(hdr.len() as u64, frame.len() as u64)
                        .write_from(&mem, &frame)
                        == Some(frame.len() as u64);
                if ok {
                    used = total as u32;
                    self.stats.rx_frames.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .rx_bytes
                        .fetch_add(frame.len() as u64, Ordering::Relaxed);
                }
            }
            if used == 0 {
                self.stats.rx_dropped.fetch_add(1, Ordering::Relaxed);
                debug!(
                    "rx: frame of {} bytes dropped (buffer of {} bytes)",
                    frame.len(),
                    dst.len()
                );
                // A buffer the driver sees as empty: it counts a length error and reuses it.
                used = VIRTIO_NET_HDR_LEN as u32;
            }
            vring.add_used(chain.head, used)?;
        }
        vring.signal_used()?;
        Ok(!starved)
    }
}

impl Backend for Net {
    /// Both queues on one thread: a transmitted frame may be looped back to the receive
    /// queue, and the TAP is polled once.
    fn queues_per_thread(&self, _num_queues: u16) -> Vec<u64> {
        vec![(1 << RX) | (1 << TX)]
    }

    fn thread_fds(&self, _thread: usize) -> Vec<RawFd> {
        match &self.link {
            Link::Tap(t) => vec![t.as_raw_fd()],
            Link::Loopback(_) => Vec::new(),
        }
    }

    fn handle_event(&self, ctx: &mut EventCtx<'_>, event: Event) -> io::Result<()> {
        match event {
            Event::Kick(TX) => {
                if let Some(tx) = ctx.vring(TX) {
                    self.transmit(tx)?;
                }
                if matches!(self.link, Link::Loopback(_)) {
                    if let Some(rx) = ctx.vring(RX) {
                        self.receive(rx)?;
                    }
                }
            }
            // New receive buffers, or frames on the link.
            Event::Kick(_) | Event::Fd(_) => {
                let Some(rx) = ctx.vring(RX) else {
                    return Ok(());
                };
                let more = self.receive(rx)?;
                ctx.set_fd_enabled(0, more);
            }
        }
        Ok(())
    }

    fn driver_ok(&self, _dev: &Device, driver_features: u64) {
        info!("driver features {driver_features:#x}");
    }

    fn reset(&self) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// `SIGUSR1`: link down; `SIGUSR2`: link up.
    fn signal(&self, dev: &Device, signo: i32) {
        self.set_link(dev, signo == libc::SIGUSR2);
    }
}
