// SPDX-License-Identifier: GPL-2.0

//! `tcg-profile`: a QEMU TCG plugin (`-plugin file=libtcg_profile.so,out=PATH,marker=ADDR`)
//! that counts the guest instructions executed in each translation block of the guest kernel,
//! all vCPUs together, and the user-space ones as one sum. Each time a vCPU starts the block
//! at `marker` (a kernel function's entry the guest calls on purpose, e.g. `ksys_sync` through
//! `sync`), the counts since the previous marker are written to `PATH.N` (N = 0, 1, ...) as
//! `ADDRESS COUNT` lines (hex, the block's first address; `user` for user space) and restarted.
//!
//! Under TCG, time follows the instructions executed far more than anything a sampling
//! profiler can see (a sample taken with interrupts off lands where they are enabled again):
//! counts are exact and do not move from run to run, so two drivers doing the same I/O can be
//! compared function by function (`tools/bench/tcg-profile.py`). A block's count is its
//! instruction count times its executions: a block left early (an exception, an interrupt)
//! is counted whole.
//!
//! Built against the plugin API as QEMU 10.0 exports it (`qemu_plugin_version` 2 to 4): only
//! the calls below, declared here, whose signatures have not changed since version 1.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

type PluginId = u64;
#[repr(C)]
struct Tb {
    _opaque: [u8; 0],
}
type TbTransCb = extern "C" fn(PluginId, *mut Tb);
type VcpuUdataCb = extern "C" fn(c_uint, *mut c_void);
type UdataCb = extern "C" fn(PluginId, *mut c_void);
/// `QEMU_PLUGIN_CB_NO_REGS`.
const CB_NO_REGS: c_int = 0;

extern "C" {
    fn qemu_plugin_register_vcpu_tb_trans_cb(id: PluginId, cb: TbTransCb);
    fn qemu_plugin_register_vcpu_tb_exec_cb(
        tb: *mut Tb,
        cb: VcpuUdataCb,
        flags: c_int,
        userdata: *mut c_void,
    );
    fn qemu_plugin_tb_n_insns(tb: *const Tb) -> usize;
    fn qemu_plugin_tb_vaddr(tb: *const Tb) -> u64;
    fn qemu_plugin_register_atexit_cb(id: PluginId, cb: UdataCb, userdata: *mut c_void);
}

/// The API version this plugin was written against.
#[no_mangle]
pub static qemu_plugin_version: c_int = 2;

/// One translated block: where it starts, how many instructions it has, and the instructions
/// executed in it since the last dump. Never freed (QEMU may run a block until it exits).
struct Block {
    vaddr: u64,
    insns: u64,
    count: AtomicU64,
}

struct State {
    out: String,
    marker: u64,
    blocks: Mutex<Vec<&'static Block>>,
    user: AtomicU64,
    dumps: AtomicUsize,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> Option<&'static State> {
    STATE.get()
}

/// Guest addresses at or above this are the kernel's (x86-64, 4- or 5-level paging).
const KERNEL_START: u64 = 0xff00_0000_0000_0000;

extern "C" fn on_exec(_vcpu: c_uint, udata: *mut c_void) {
    // SAFETY: `udata` is a leaked `Block` (never freed).
    let b = unsafe { &*(udata as *const Block) };
    b.count.fetch_add(b.insns, Relaxed);
}

extern "C" fn on_user(_vcpu: c_uint, udata: *mut c_void) {
    if let Some(s) = state() {
        s.user.fetch_add(udata as u64, Relaxed);
    }
}

extern "C" fn on_marker(_vcpu: c_uint, udata: *mut c_void) {
    on_exec(_vcpu, udata);
    if let Some(s) = state() {
        dump(s);
    }
}

/// Writes the counts since the last dump to `out.N` and restarts them.
fn dump(s: &State) {
    let n = s.dumps.fetch_add(1, Relaxed);
    let mut by_addr: HashMap<u64, u64> = HashMap::new();
    for b in s.blocks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let c = b.count.swap(0, Relaxed);
        if c != 0 {
            *by_addr.entry(b.vaddr).or_default() += c;
        }
    }
    let user = s.user.swap(0, Relaxed);
    let path = format!("{}.{n}", s.out);
    let mut lines: Vec<(u64, u64)> = by_addr.into_iter().collect();
    lines.sort_unstable();
    let text: String = std::iter::once(format!("user {user}\n"))
        .chain(lines.iter().map(|(a, c)| format!("{a:x} {c}\n")))
        .collect();
    if let Err(e) = std::fs::File::create(&path).and_then(|mut f| f.write_all(text.as_bytes())) {
        eprintln!("tcg-profile: {path}: {e}");
    }
}

extern "C" fn on_trans(_id: PluginId, tb: *mut Tb) {
    let Some(s) = state() else { return };
    // SAFETY: `tb` is the block being translated, valid during this callback.
    let (vaddr, insns) = unsafe { (qemu_plugin_tb_vaddr(tb), qemu_plugin_tb_n_insns(tb) as u64) };
    if vaddr < KERNEL_START {
        // SAFETY: As above; the count is passed as the user data itself.
        unsafe {
            qemu_plugin_register_vcpu_tb_exec_cb(tb, on_user, CB_NO_REGS, insns as *mut c_void)
        };
        return;
    }
    let b: &'static Block = Box::leak(Box::new(Block {
        vaddr,
        insns,
        count: AtomicU64::new(0),
    }));
    s.blocks.lock().unwrap_or_else(|e| e.into_inner()).push(b);
    let cb = if vaddr == s.marker {
        on_marker
    } else {
        on_exec
    };
    // SAFETY: As above; `b` lives for the rest of the process.
    unsafe {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, cb, CB_NO_REGS, b as *const Block as *mut c_void)
    };
}

extern "C" fn on_exit(_id: PluginId, _u: *mut c_void) {
    if let Some(s) = state() {
        dump(s);
    }
}

/// # Safety
///
/// Called by QEMU with `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: PluginId,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let (mut out, mut marker) = (None, None);
    for i in 0..argc.max(0) as usize {
        // SAFETY: `argv` has `argc` valid C strings (QEMU).
        let a = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy();
        if let Some(v) = a.strip_prefix("out=") {
            out = Some(v.to_string());
        } else if let Some(v) = a.strip_prefix("marker=") {
            marker = u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
        } else {
            eprintln!("tcg-profile: unknown argument {a}");
            return 1;
        }
    }
    let (Some(out), Some(marker)) = (out, marker) else {
        eprintln!("tcg-profile: needs out=PATH and marker=ADDRESS");
        return 1;
    };
    let fresh = State {
        out,
        marker,
        blocks: Mutex::new(Vec::new()),
        user: AtomicU64::new(0),
        dumps: AtomicUsize::new(0),
    };
    if STATE.set(fresh).is_err() {
        eprintln!("tcg-profile: installed twice");
        return 1;
    }
    // SAFETY: Registering this plugin's callbacks with its id.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
        qemu_plugin_register_atexit_cb(id, on_exit, std::ptr::null_mut());
    }
    0
}
