// SPDX-License-Identifier: GPL-2.0

//! A scripted VDUSE daemon for the cases: a thread that reads the device's messages, records
//! them and answers as its [`Policy`] says (syscalls only: no case logic).

use crate::sys;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How the test daemon treats requests.
#[derive(Clone, Copy)]
pub enum Policy {
    /// Answer every request with `VDUSE_REQ_RESULT_OK`.
    Answer,
    /// Read requests and never answer.
    Ignore,
    /// Answer the requests for which the predicate holds with `VDUSE_REQ_RESULT_FAILED`, the
    /// others with `VDUSE_REQ_RESULT_OK`.
    FailIf(fn(&[u8]) -> bool),
}

/// A daemon thread serving the message channel of an open device.
pub struct Daemon {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The `VDUSE_*` request types.
pub const GET_VQ_STATE: u32 = 0;
pub const SET_STATUS: u32 = 1;
pub const UPDATE_IOTLB: u32 = 2;
pub const SET_VQ_GROUP_ASID: u32 = 3;
pub const SET_VQ_READY: u32 = 4;
pub const SUSPEND: u32 = 5;

pub fn req_type(req: &[u8]) -> u32 {
    u32::from_ne_bytes([req[0], req[1], req[2], req[3]])
}

/// Hex of `b` without its trailing zero bytes (`-` when all are zero): a complete record of
/// `b`'s content, every byte included.
pub fn hex_trimmed(b: &[u8]) -> String {
    let n = b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
    if n == 0 {
        return "-".into();
    }
    b[..n].iter().map(|x| format!("{x:02x}")).collect()
}

/// A readable summary of a request, then all of its bytes but the request id (reserved words
/// and union padding included), so that the transcripts compare whole requests; and a
/// `NONZERO` note when a byte the request type does not define (reserved, the union beyond
/// the type's member) is not zero: a driver leaking stack bytes through padding.
pub fn describe(req: &[u8]) -> String {
    let w = |i: usize| u32::from_ne_bytes([req[i], req[i + 1], req[i + 2], req[i + 3]]);
    let q = |i: usize| u64::from_ne_bytes(req[i..i + 8].try_into().unwrap_or([0; 8]));
    let (what, defined) = match req_type(req) {
        GET_VQ_STATE => (format!("GET_VQ_STATE index={}", w(24)), 4),
        SET_STATUS => (format!("SET_STATUS status={:#x}", req[24]), 1),
        UPDATE_IOTLB => (
            format!("UPDATE_IOTLB [{:#x}, {:#x}] asid={}", q(24), q(32), w(40)),
            20,
        ),
        SET_VQ_GROUP_ASID => (
            format!("SET_VQ_GROUP_ASID group={} asid={}", w(24), w(28)),
            8,
        ),
        SET_VQ_READY => (format!("SET_VQ_READY num={} ready={}", w(24), w(28)), 8),
        SUSPEND => ("SUSPEND".to_string(), 0),
        t => (format!("type {t}"), 128),
    };
    let mut s = format!(
        "{what} (reserved {}, union {})",
        hex_trimmed(&req[8..24]),
        hex_trimmed(&req[24..])
    );
    let undefined = req[8..24].iter().chain(&req[24 + defined..]);
    if undefined.clone().any(|&b| b != 0) {
        s += " NONZERO reserved or padding bytes";
    }
    s
}

impl Daemon {
    /// Serves `fd` (non-blocking reads, polled) with `policy`. GET_VQ_STATE is answered with
    /// avail_index 0x1234.
    pub fn start(fd: i32, policy: Policy) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let mut req = [0u8; 152];
            while !s.load(Ordering::Relaxed) {
                let p = sys::poll_fd(fd, libc::POLLIN, 50);
                if p.revents & libc::POLLIN == 0 {
                    continue;
                }
                if sys::read(fd, &mut req) != Ok(152) {
                    continue;
                }
                if let Ok(mut log) = l.lock() {
                    log.push(describe(&req));
                }
                let fail = match policy {
                    Policy::Ignore => continue,
                    Policy::Answer => false,
                    Policy::FailIf(f) => f(&req),
                };
                let mut resp = [0u8; 152];
                resp[..4].copy_from_slice(&req[4..8]); // request_id
                if fail {
                    resp[4..8].copy_from_slice(&1u32.to_ne_bytes()); // VDUSE_REQ_RESULT_FAILED
                }
                if req[..4] == [0, 0, 0, 0] {
                    // GET_VQ_STATE: vq_state.index, then split.avail_index.
                    resp[24..28].copy_from_slice(&req[24..28]);
                    resp[28..30].copy_from_slice(&0x1234u16.to_ne_bytes());
                }
                let _ = sys::write(fd, &resp);
            }
        });
        Self {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// Stops the thread and returns what it saw.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
