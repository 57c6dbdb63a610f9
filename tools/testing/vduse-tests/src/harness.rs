// SPDX-License-Identifier: GPL-2.0

//! The case harness: each case records a transcript of what it observed (the differential part)
//! and asserts its expectations (the conformance part).

use crate::sys::{fmt_ret, Ret};
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
