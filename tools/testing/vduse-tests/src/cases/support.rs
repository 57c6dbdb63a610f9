// SPDX-License-Identifier: GPL-2.0

//! What the cases share on top of [`crate::dev`]: control fds, devices and nodes opened with
//! their expectations recorded in the case's [`Ctx`].

use crate::dev::{create, open_dev, set_api, DevConfig, DevGuard};
use crate::harness::Ctx;
use crate::sys::{self, Fd, CONTROL};

/// Opens the control node, failing the case if it cannot.
pub fn open_control(c: &mut Ctx) -> Option<Fd> {
    match c.expect_ok("open(control)", sys::open(CONTROL, libc::O_RDWR)) {
        Ok(fd) => Some(Fd(fd as i32)),
        Err(_) => None,
    }
}

/// A control fd with API version `api` (`None`: never asked).
pub fn control(c: &mut Ctx, api: Option<u64>) -> Option<Fd> {
    let fd = open_control(c)?;
    if let Some(v) = api {
        c.expect(&format!("SET_API_VERSION({v})"), set_api(&fd, v), Ok(0));
    }
    Some(fd)
}

/// Creates `cfg` on a control fd of version `api` and expects success; returns the guard.
pub fn create_ok(c: &mut Ctx, api: Option<u64>, cfg: &DevConfig) -> Option<DevGuard> {
    let fd = control(c, api)?;
    let name = String::from_utf8_lossy(&cfg.name).into_owned();
    let guard = DevGuard(name.clone());
    match c.expect_ok(&format!("CREATE_DEV({name})"), create(&fd, cfg)) {
        Ok(_) => Some(guard),
        Err(_) => None,
    }
}

/// Creates a default blk device (API `api`) and opens its node; returns (guard, device fd).
pub fn with_open_dev(c: &mut Ctx, api: Option<u64>, name: &str) -> Option<(DevGuard, Fd)> {
    let cfg = if api == Some(1) {
        DevConfig::blk_v1(name)
    } else {
        DevConfig::blk(name)
    };
    let g = create_ok(c, api, &cfg)?;
    match c.expect_ok("open(device)", open_dev(name, libc::O_RDWR)) {
        Ok(fd) => Some((g, Fd(fd as i32))),
        Err(_) => None,
    }
}
