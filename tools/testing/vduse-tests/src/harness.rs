// SPDX-License-Identifier: GPL-2.0

//! The case harness: each case records a transcript of what it observed (the differential part)
//! and asserts its expectations (the conformance part).

use crate::sys::{fmt_ret, Ret};
use std::cell::RefCell;
use std::fmt::Debug;

/// Which driver a run is against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Module {
    /// The in-tree C `vduse.ko` (the oracle).
    C,
    /// `vduse_rs.ko`.
    Rs,
}

/// A test case: a name (`area/what`) and its body.
pub struct Case {
    /// `area/what`, unique.
    pub name: String,
    /// The body.
    pub run: Box<dyn Fn(&mut Ctx)>,
}

impl Case {
    /// A case named `name` running `f`.
    pub fn new(name: impl Into<String>, f: impl Fn(&mut Ctx) + 'static) -> Self {
        Self {
            name: name.into(),
            run: Box::new(f),
        }
    }
}

/// The state of one running case.
pub struct Ctx {
    /// The driver under test (for the documented deviations only).
    pub module: Module,
    /// Observations, compared between drivers.
    pub transcript: Vec<String>,
    /// Failed expectations.
    pub failures: Vec<String>,
    /// Why the case did not run on this driver (`# SKIP`), if it did not.
    pub skipped: Option<String>,
}

impl Ctx {
    /// A context for a new case.
    pub fn new(module: Module) -> Self {
        Self {
            module,
            transcript: Vec::new(),
            failures: Vec::new(),
            skipped: None,
        }
    }

    /// Records an observation for the differential comparison.
    pub fn obs(&mut self, what: impl Into<String>) {
        self.transcript.push(what.into());
    }

    /// Records `what = ret` and expects `ret == want`.
    pub fn expect(&mut self, what: &str, ret: Ret, want: Ret) {
        self.obs(format!("{what} = {}", fmt_ret(&ret)));
        if ret != want {
            self.failures.push(format!(
                "{what}: got {}, expected {}",
                fmt_ret(&ret),
                fmt_ret(&want)
            ));
        }
    }

    /// Records `what = ret` and expects success (any value).
    pub fn expect_ok(&mut self, what: &str, ret: Ret) -> Ret {
        self.obs(format!("{what} = {}", fmt_ret(&ret)));
        if ret.is_err() {
            self.failures
                .push(format!("{what}: got {}, expected success", fmt_ret(&ret)));
        }
        ret
    }

    /// Records `what == got` and expects `got == want`.
    pub fn expect_eq<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        self.obs(format!("{what} == {got:?}"));
        if got != want {
            self.failures
                .push(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }

    /// Whether the case must not run on `module` (a documented deviation); records why. The
    /// run reports the case as `# SKIP` with that reason on `module`.
    pub fn skip_on(&mut self, module: Module, why: &str) -> bool {
        if self.module == module {
            self.obs(format!("not run on {module:?}: {why}"));
            self.skipped = Some(why.to_string());
            return true;
        }
        false
    }

    /// Declares that this case breaks device `name` on purpose: the post-condition then expects
    /// it broken instead of healthy.
    pub fn meant_broken(&mut self, name: &str) {
        POST.with(|p| p.borrow_mut().meant_broken.push(name.to_string()));
    }

    /// Writes `value` to `/sys/class/vduse/NAME/ATTR` and expects the whole write to succeed.
    pub fn set_attr(&mut self, name: &str, attr: &str, value: &str) {
        let r = std::fs::write(format!("/sys/class/vduse/{name}/{attr}"), value)
            .map(|()| value.len() as i64)
            .map_err(|e| e.raw_os_error().unwrap_or(0));
        self.expect(
            &format!("write {attr} {value:?}"),
            r,
            Ok(value.len() as i64),
        );
    }

    /// Expects `cond`, without recording anything for the comparison.
    pub fn check(&mut self, cond: bool, what: &str) {
        if !cond {
            self.failures.push(what.to_string());
        }
    }
}

/// What the post-condition of the running case knows and found (per process: each case runs
/// in a process of its own).
#[derive(Default)]
struct Post {
    meant_broken: Vec<String>,
    failures: Vec<String>,
    /// Devices the case created whose post-condition has not been checked yet.
    unchecked: Vec<String>,
}

/// Records that the running case created device `name` (its post-condition is due).
pub fn created(name: &str) {
    POST.with(|p| {
        let mut p = p.borrow_mut();
        if !p.unchecked.iter().any(|n| n == name) {
            p.unchecked.push(name.to_string());
        }
    });
}

/// Before device `name` is destroyed: its post-condition, if the case created it and it was
/// not checked yet. Skipped while the device node is open (the case holds it, and the destroy
/// will fail with `EBUSY`): the check then runs at a later destroy or at the end of the case.
pub fn before_destroy(name: &str) {
    if POST.with(|p| p.borrow().unchecked.iter().any(|n| n == name)) {
        post_check_inner(name, true);
    }
}

/// At the end of a case: the post-condition of every device it created that still exists and
/// was not checked.
pub fn post_check_remaining() {
    let names = POST.with(|p| p.borrow().unchecked.clone());
    for n in names {
        post_check_inner(&n, false);
    }
}

thread_local! {
    static POST: RefCell<Post> = RefCell::new(Post::default());
}

/// The post-condition of every case on each device it created, checked when the device's guard
/// destroys it (`dev::DevGuard`) or when a case calls it before destroying a device itself: a
/// device the case did not mean to break is not broken (`poll` without `POLLERR`,
/// `VDUSE_DEV_GET_FEATURES` not `EPERM`), and one it meant to break is.
pub fn post_check(name: &str) {
    post_check_inner(name, false);
}

/// [`post_check`]; with `busy_ok`, a node held open elsewhere (`EBUSY`) defers the check.
fn post_check_inner(name: &str, busy_ok: bool) {
    use crate::sys;
    let fd = match crate::dev::open_dev(name, libc::O_RDWR | libc::O_NONBLOCK) {
        Ok(fd) => sys::Fd(fd as i32),
        Err(libc::ENOENT) => {
            // Not created, or already destroyed by the case.
            POST.with(|p| p.borrow_mut().unchecked.retain(|n| n != name));
            return;
        }
        Err(libc::EBUSY) if busy_ok => return,
        Err(e) => {
            post_fail(format!(
                "post-condition: cannot open /dev/vduse/{name} to check it: -{}",
                sys::errno_name(e)
            ));
            return;
        }
    };
    let p = sys::poll_fd(fd.0, libc::POLLIN | libc::POLLOUT, 0);
    let mut f = 0u64;
    let r = sys::ioctl_ptr(fd.0, crate::dev::VDUSE_DEV_GET_FEATURES, &mut f);
    let broken = p.revents & libc::POLLERR != 0 || r == Err(libc::EPERM);
    POST.with(|p| p.borrow_mut().unchecked.retain(|n| n != name));
    let meant = POST.with(|p| p.borrow().meant_broken.iter().any(|n| n == name));
    if broken != meant {
        post_fail(format!(
            "post-condition: device {name} is {} (poll revents {:#x}, DEV_GET_FEATURES {})",
            if broken {
                "broken, which the case did not mean"
            } else {
                "not broken, although the case meant to break it"
            },
            p.revents,
            fmt_ret(&r)
        ));
    }
}

fn post_fail(msg: String) {
    POST.with(|p| p.borrow_mut().failures.push(msg));
}

/// The post-condition failures found so far in this process; the post-condition state is
/// reset (nothing carries over to a case forked later).
pub fn take_post_failures() -> Vec<String> {
    POST.with(|p| std::mem::take(&mut *p.borrow_mut()).failures)
}

/// Cases whose transcript differs between the drivers by design, with the entry of
/// `Documentation/differences.rst` that explains it. Their expectations are asserted per driver;
/// their transcripts are not compared.
pub const DEVIATIONS: &[(&str, &str)] = &[
    (
        "device/kickfd_negative_fd",
        "D1 (Documentation/differences.rst)",
    ),
    (
        "device/iotlb_get_info_bad_args",
        "D2 (Documentation/differences.rst)",
    ),
    (
        "create/v1_ngroups_nas_max",
        "D3 (Documentation/differences.rst)",
    ),
    ("vdpa/nas_max_on_bus", "D3 (Documentation/differences.rst)"),
];
