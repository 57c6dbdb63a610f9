// SPDX-License-Identifier: GPL-2.0

//! The VDUSE API versions and VDUSE features this module speaks, and their rules.
//!
//! C version: `vduse_ioctl()` and `vduse_validate_config()` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//!
//! Everything that depends on the API version or on a VDUSE feature bit is decided here, so that
//! an API 2 or a new feature bit is a change to this file (plus the code the new behaviour needs)
//! and nowhere else.

use crate::uapi;
use kernel::prelude::*;

/// A VDUSE API version a control file descriptor can use.
///
/// The order is the order of the versions: a later version is greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ApiVersion {
    /// `VDUSE_API_VERSION`: one virtqueue group, one address space.
    V0,
    /// `VDUSE_API_VERSION_1`: virtqueue groups and address spaces (ASIDs).
    V1,
}

impl ApiVersion {
    /// The newest version this module implements.
    pub(crate) const LATEST: Self = Self::V1;

    /// The version a control fd gets for `VDUSE_CREATE_DEV` when it never asked for one.
    ///
    /// Old userspace that knows nothing of versions gets the original API.
    pub(crate) const DEFAULT_FOR_CREATE: Self = Self::V0;

    /// The version a control fd latches the first time it asks `VDUSE_GET_API_VERSION`.
    ///
    /// Asking is taken as a sign that userspace knows about versions: it gets the newest.
    pub(crate) const LATCHED_ON_GET: Self = Self::LATEST;

    /// Parses a version from `VDUSE_SET_API_VERSION`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a version this module does not implement.
    pub(crate) fn from_user(version: u64) -> Result<Self> {
        match version {
            uapi::VDUSE_API_VERSION => Ok(Self::V0),
            uapi::VDUSE_API_VERSION_1 => Ok(Self::V1),
            _ => Err(EINVAL),
        }
    }

    /// Whether devices of this version have virtqueue groups and address spaces (`ngroups`,
    /// `nas`, `VQ_SETUP.group`, ASIDs in the IOTLB ioctls and messages, `IOTLB_GET_FD2`).
    pub(crate) const fn has_groups(self) -> bool {
        matches!(self, Self::V1)
    }

    /// Checks `ngroups` and `nas` of `VDUSE_CREATE_DEV` and returns the effective numbers of
    /// virtqueue groups and address spaces.
    ///
    /// # Errors
    ///
    /// `EINVAL`: under API 0 both must be 0 (they were reserved words); from API 1 each must be
    /// in `1..=0xffff`.
    pub(crate) fn groups_and_spaces(self, ngroups: u32, nas: u32) -> Result<(u32, u32)> {
        const MAX: u32 = 0xffff;
        if !self.has_groups() {
            return if ngroups == 0 && nas == 0 {
                Ok((1, 1))
            } else {
                Err(EINVAL)
            };
        }
        if (1..=MAX).contains(&ngroups) && (1..=MAX).contains(&nas) {
            Ok((ngroups, nas))
        } else {
            Err(EINVAL)
        }
    }

    /// The value userspace sees for this version.
    pub(crate) const fn to_user(self) -> u64 {
        match self {
            Self::V0 => uapi::VDUSE_API_VERSION,
            Self::V1 => uapi::VDUSE_API_VERSION_1,
        }
    }
}

/// The VDUSE features this module offers (`VDUSE_GET_FEATURES`).
pub(crate) const VDUSE_FEATURES: u64 =
    (1 << uapi::VDUSE_F_QUEUE_READY) | (1 << uapi::VDUSE_F_SUSPEND);

/// The VDUSE features enabled on a control fd and copied into each device created through it.
///
/// # Invariants
///
/// Only bits of [`VDUSE_FEATURES`] are set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Features(u64);

impl Features {
    /// The raw bits.
    pub(crate) const fn bits(self) -> u64 {
        self.0
    }

    /// Whether `VDUSE_SET_VQ_READY` requests are sent (`VDUSE_F_QUEUE_READY`).
    pub(crate) const fn queue_ready(self) -> bool {
        self.0 & (1 << uapi::VDUSE_F_QUEUE_READY) != 0
    }

    /// Whether the device can be suspended, with `VDUSE_SUSPEND` requests (`VDUSE_F_SUSPEND`).
    pub(crate) const fn suspend(self) -> bool {
        self.0 & (1 << uapi::VDUSE_F_SUSPEND) != 0
    }

    /// Parses the argument of `VDUSE_SET_FEATURES`.
    ///
    /// The rule is the subset rule of 7.3: any subset of [`VDUSE_FEATURES`], whatever the API
    /// version of the fd.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `bits` has a bit this module does not offer.
    pub(crate) fn from_user(bits: u64) -> Result<Self> {
        if bits & !VDUSE_FEATURES != 0 {
            return Err(EINVAL);
        }
        // INVARIANT: Checked just above.
        Ok(Self(bits))
    }
}

#[kunit_tests(vduse_rs_api)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_user() {
        assert_eq!(ApiVersion::from_user(0), Ok(ApiVersion::V0));
        assert_eq!(ApiVersion::from_user(1), Ok(ApiVersion::V1));
        assert_eq!(ApiVersion::from_user(2), Err(EINVAL));
        assert_eq!(ApiVersion::from_user(u64::MAX), Err(EINVAL));
        assert_eq!(ApiVersion::LATCHED_ON_GET.to_user(), 1);
        assert_eq!(ApiVersion::DEFAULT_FOR_CREATE.to_user(), 0);
    }

    #[test]
    fn groups_and_spaces_per_version() {
        assert_eq!(ApiVersion::V0.groups_and_spaces(0, 0), Ok((1, 1)));
        assert_eq!(ApiVersion::V0.groups_and_spaces(1, 0), Err(EINVAL));
        assert_eq!(ApiVersion::V0.groups_and_spaces(0, 1), Err(EINVAL));
        assert_eq!(ApiVersion::V1.groups_and_spaces(0, 1), Err(EINVAL));
        assert_eq!(ApiVersion::V1.groups_and_spaces(1, 0), Err(EINVAL));
        assert_eq!(ApiVersion::V1.groups_and_spaces(4, 2), Ok((4, 2)));
        assert_eq!(
            ApiVersion::V1.groups_and_spaces(0xffff, 0xffff),
            Ok((0xffff, 0xffff))
        );
        assert_eq!(ApiVersion::V1.groups_and_spaces(0x10000, 1), Err(EINVAL));
    }

    #[test]
    fn features_subset_rule() {
        assert_eq!(VDUSE_FEATURES, 0x3);
        for bits in 0..=3u64 {
            assert_eq!(Features::from_user(bits).map(Features::bits), Ok(bits));
        }
        assert_eq!(Features::from_user(4), Err(EINVAL));
        assert_eq!(Features::from_user(1 << 63), Err(EINVAL));
        let f = Features::from_user(3).unwrap_or_default();
        assert!(f.queue_ready() && f.suspend());
        assert!(!Features::default().queue_ready() && !Features::default().suspend());
    }
}
