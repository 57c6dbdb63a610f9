// SPDX-License-Identifier: GPL-2.0

//! All test cases, by area.

use crate::harness::Case;

pub mod compat;
pub mod control;
pub mod create;
pub mod cve;
pub mod device;
pub mod support;
pub mod sysfs;
pub mod vdpa;

/// Every case, in run order.
pub fn all() -> Vec<Case> {
    let mut v = control::cases();
    v.extend(create::cases());
    v.extend(device::cases());
    v.extend(sysfs::cases());
    v.extend(compat::cases());
    v.extend(vdpa::cases());
    v.extend(cve::cases());
    v
}
