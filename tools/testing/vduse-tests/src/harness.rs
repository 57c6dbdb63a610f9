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
    pub name: &'static str,
    /// The body.
    pub run: fn(&mut Ctx),
}

/// The state of one running case.
pub struct Ctx {
    /// Observations, compared between drivers.
    pub transcript: Vec<String>,
    /// Failed expectations.
    pub failures: Vec<String>,
}

impl Ctx {
    /// A context for a new case.
    pub fn new() -> Self {
        Self {
            transcript: Vec::new(),
            failures: Vec::new(),
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
pub const DEVIATIONS: &[(&str, &str)] = &[];
