// SPDX-License-Identifier: GPL-2.0
//! The message loop of `vduse::server::Server` over a socket pair standing in for
//! `/dev/vduse/NAME`: requests written on one end, answers read back, state observed.
//! (The device ioctls fail on a socket; the server must answer regardless.)

use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vduse::device::Device;
use vduse::server::{Backend, DeviceSpec, Event, EventCtx, Negotiated, Server, State};
use vduse::uapi::*;

#[derive(Default)]
struct Counting {
    resets: AtomicUsize,
    driver_oks: AtomicUsize,
}

impl Backend for Counting {
    fn handle_event(&self, _ctx: &mut EventCtx<'_>, _event: Event) -> std::io::Result<()> {
        Ok(())
    }
    fn driver_ok(&self, _dev: &Device, _features: u64) {
        self.driver_oks.fetch_add(1, Ordering::Relaxed);
    }
    fn reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }
}

/// A server on one end of a `SOCK_SEQPACKET` pair (message boundaries kept, as the node's
/// reads and writes are one message each), and the other end.
fn pair(api_version: u64) -> (Server<Counting>, Arc<Counting>, File) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned here.
    let (ours, theirs) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    let backend = Arc::new(Counting::default());
    let spec = DeviceSpec::new("t0", 2, 1 << 32, vec![0; 8], 2);
    let server = Server::on_device(
        spec,
        backend.clone(),
        Device::from_file(ours, api_version),
        Negotiated {
            api_version,
            vduse_features: 0,
        },
    )
    .expect("server");
    (server, backend, theirs)
}

fn request(kernel: &File, id: u32, type_: u32, payload: &[(usize, u64, usize)]) {
    let mut r = DevRequest {
        type_,
        request_id: id,
        ..Default::default()
    };
    for &(off, v, len) in payload {
        r.payload_bytes_mut()[off..off + len].copy_from_slice(&v.to_ne_bytes()[..len]);
    }
    let b = r.as_bytes_mut();
    // SAFETY: writing the request's bytes.
    let n = unsafe {
        libc::write(
            std::os::fd::AsRawFd::as_raw_fd(kernel),
            b.as_ptr().cast(),
            b.len(),
        )
    };
    assert_eq!(n, 152);
}

/// (request id, result, first payload words) of the next answer.
fn answer(kernel: &File) -> (u32, u32, [u32; 2]) {
    let mut b = [0u8; 152];
    // SAFETY: reading into `b`.
    let n = unsafe {
        libc::read(
            std::os::fd::AsRawFd::as_raw_fd(kernel),
            b.as_mut_ptr().cast(),
            b.len(),
        )
    };
    assert_eq!(n, 152, "no answer");
    let w = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().unwrap());
    assert_eq!(&b[8..24], &[0u8; 16], "reserved words of the answer");
    (w(0), w(4), [w(24), w(28)])
}

fn roundtrip(
    s: &mut Server<Counting>,
    k: &File,
    id: u32,
    t: u32,
    p: &[(usize, u64, usize)],
) -> (u32, u32, [u32; 2]) {
    request(k, id, t, p);
    assert!(s.serve_messages());
    let a = answer(k);
    assert_eq!(a.0, id, "the answer carries the request id");
    a
}

#[test]
fn answers_every_message_type() {
    use vduse::uapi::payload as p;
    let (mut s, backend, k) = pair(VDUSE_API_VERSION_1);
    const OK: u32 = VDUSE_REQ_RESULT_OK;
    const FAILED: u32 = VDUSE_REQ_RESULT_FAILED;

    // GET_VQ_STATE: a stopped queue reports where it stopped (0 before any start).
    let (_, r, w) = roundtrip(
        &mut s,
        &k,
        7,
        VDUSE_GET_VQ_STATE,
        &[(p::VQ_STATE_INDEX, 1, 4)],
    );
    assert_eq!((r, w[0], w[1] & 0xffff), (OK, 1, 0));
    let (_, r, _) = roundtrip(
        &mut s,
        &k,
        8,
        VDUSE_GET_VQ_STATE,
        &[(p::VQ_STATE_INDEX, 2, 4)],
    );
    assert_eq!(r, FAILED, "queue 2 of 2");

    // SET_STATUS up to DRIVER_OK: the backend hears of it once; the queues cannot start (no
    // VDUSE_VQ_GET_INFO on a socket) but the message is answered.
    for (id, st) in [(9, 1u64), (10, 3), (11, 0xb), (12, 0xf), (13, 0xf)] {
        let (_, r, _) = roundtrip(&mut s, &k, id, VDUSE_SET_STATUS, &[(p::STATUS, st, 1)]);
        assert_eq!(r, OK);
    }
    assert_eq!(s.state(), State::Running);
    assert_eq!(s.status(), 0xf);
    assert_eq!(backend.driver_oks.load(Ordering::Relaxed), 1);

    // UPDATE_IOTLB: address space 0 exists, 1 does not (one address space).
    let (_, r, _) = roundtrip(
        &mut s,
        &k,
        14,
        VDUSE_UPDATE_IOTLB,
        &[
            (p::IOVA_START, 0, 8),
            (p::IOVA_LAST, u64::MAX, 8),
            (p::IOVA_V2_ASID, 0, 4),
        ],
    );
    assert_eq!(r, OK);
    let (_, r, _) = roundtrip(
        &mut s,
        &k,
        15,
        VDUSE_UPDATE_IOTLB,
        &[
            (p::IOVA_START, 0, 8),
            (p::IOVA_LAST, 0xfff, 8),
            (p::IOVA_V2_ASID, 1, 4),
        ],
    );
    assert_eq!(r, FAILED);

    // SET_VQ_GROUP_ASID: group 0 to space 0 only.
    let (_, r, _) = roundtrip(
        &mut s,
        &k,
        16,
        VDUSE_SET_VQ_GROUP_ASID,
        &[(0, 0, 4), (4, 0, 4)],
    );
    assert_eq!(r, OK);
    let (_, r, _) = roundtrip(
        &mut s,
        &k,
        17,
        VDUSE_SET_VQ_GROUP_ASID,
        &[(0, 1, 4), (4, 0, 4)],
    );
    assert_eq!(r, FAILED);

    // SET_VQ_READY: queue 1 of 2 yes, queue 2 no.
    let (_, r, _) = roundtrip(
        &mut s,
        &k,
        18,
        VDUSE_SET_VQ_READY,
        &[(p::VQ_READY_NUM, 1, 4), (p::VQ_READY_READY, 1, 4)],
    );
    assert_eq!(r, OK);
    let (_, r, _) = roundtrip(
        &mut s,
        &k,
        19,
        VDUSE_SET_VQ_READY,
        &[(p::VQ_READY_NUM, 2, 4), (p::VQ_READY_READY, 1, 4)],
    );
    assert_eq!(r, FAILED);

    // SUSPEND, then reset: the backend hears of the reset, the state follows.
    let (_, r, _) = roundtrip(&mut s, &k, 20, VDUSE_SUSPEND, &[]);
    assert_eq!(r, OK);
    assert_eq!(s.state(), State::Suspended);
    let (_, r, _) = roundtrip(&mut s, &k, 21, VDUSE_SET_STATUS, &[(p::STATUS, 0, 1)]);
    assert_eq!(r, OK);
    assert_eq!(s.state(), State::Reset);
    assert_eq!(backend.resets.load(Ordering::Relaxed), 1);

    // A type this library does not know.
    let (_, r, _) = roundtrip(&mut s, &k, 22, 42, &[]);
    assert_eq!(r, FAILED);
}

#[test]
fn api_0_ignores_the_asid_word() {
    use vduse::uapi::payload as p;
    let (mut s, _, k) = pair(VDUSE_API_VERSION);
    // With API 0 the message has no asid: whatever is at its offset, space 0 is meant.
    let (_, r, _) = roundtrip(
        &mut s,
        &k,
        1,
        VDUSE_UPDATE_IOTLB,
        &[
            (p::IOVA_START, 0, 8),
            (p::IOVA_LAST, 0xfff, 8),
            (p::IOVA_V2_ASID, 5, 4),
        ],
    );
    assert_eq!(r, VDUSE_REQ_RESULT_OK);
}

#[test]
fn many_queued_messages_all_answered_in_order() {
    use vduse::uapi::payload as p;
    let (mut s, _, k) = pair(VDUSE_API_VERSION_1);
    for id in 100..110 {
        request(&k, id, VDUSE_GET_VQ_STATE, &[(p::VQ_STATE_INDEX, 0, 4)]);
    }
    assert!(s.serve_messages());
    for id in 100..110 {
        assert_eq!(answer(&k).0, id);
    }
}
