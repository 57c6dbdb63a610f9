// SPDX-License-Identifier: GPL-2.0

//! The 32-bit (compat) ioctl path, through `tools/testing/compat/vduse-compat32` (an i386
//! program built by `tools/testing/run-all`): its output is this case's transcript.

use crate::harness::{Case, Ctx};

fn run_compat32(c: &mut Ctx) {
    let root = std::env::var("VDUSE_RS_ROOT").unwrap_or_else(|_| ".".into());
    let bin = format!("{root}/tools/testing/compat/vduse-compat32");
    match std::process::Command::new(&bin).output() {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                c.obs(line);
            }
            c.expect_eq("vduse-compat32 exit status", out.status.code(), Some(0));
        }
        Err(e) => c.check(false, &format!("cannot run {bin}: {e}")),
    }
}

/// The cases of this file.
pub fn cases() -> Vec<Case> {
    vec![Case::new("compat/ioctls_32bit", run_compat32)]
}
