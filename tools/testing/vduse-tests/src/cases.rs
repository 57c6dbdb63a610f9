// SPDX-License-Identifier: GPL-2.0

//! All test cases, by area.

use crate::harness::Case;

pub mod control;

/// Every case, in run order.
pub fn all() -> impl Iterator<Item = &'static Case> {
    control::CASES.iter()
}
