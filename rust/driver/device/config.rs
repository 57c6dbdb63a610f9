// SPDX-License-Identifier: GPL-2.0

//! The creation rules of a device: `vduse_validate_config()`, `device_is_allowed()` and
//! `features_is_valid()` of
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).

use crate::{
    driver::api::ApiVersion,
    ffi,
    uapi, //
};
use kernel::{
    page::PAGE_SIZE,
    prelude::*, //
};

/// Virtio device ids a VDUSE device may have (`allowed_device_id` in C).
pub(crate) mod virtio_id {
    use crate::ffi;

    /// `VIRTIO_ID_NET`.
    pub(crate) const NET: u32 = ffi::VIRTIO_ID_NET;
    /// `VIRTIO_ID_BLOCK`.
    pub(crate) const BLOCK: u32 = ffi::VIRTIO_ID_BLOCK;
    /// `VIRTIO_ID_FS`.
    pub(crate) const FS: u32 = ffi::VIRTIO_ID_FS;
}

/// Virtio feature bits the creation rules look at.
mod virtio_f {
    use crate::ffi;

    /// `VIRTIO_BLK_F_CONFIG_WCE`.
    pub(super) const BLK_CONFIG_WCE: u64 = 1 << ffi::VIRTIO_BLK_F_CONFIG_WCE;
    /// `VIRTIO_NET_F_CTRL_VQ`.
    pub(super) const NET_CTRL_VQ: u64 = 1 << ffi::VIRTIO_NET_F_CTRL_VQ;
    /// `VIRTIO_F_VERSION_1`.
    pub(super) const VERSION_1: u64 = 1 << ffi::VIRTIO_F_VERSION_1;
    /// `VIRTIO_F_ACCESS_PLATFORM`.
    pub(super) const ACCESS_PLATFORM: u64 = 1 << ffi::VIRTIO_F_ACCESS_PLATFORM;
}

/// `VRING_USED_ALIGN_SIZE`: the smallest virtqueue alignment.
const VRING_USED_ALIGN_SIZE: u32 = ffi::VRING_USED_ALIGN_SIZE;
/// Largest number of virtqueues.
const MAX_VQ_NUM: u32 = 0xffff;

/// A `struct vduse_dev_config` that passed `vduse_validate_config()`.
pub(crate) struct ValidConfig {
    /// The name: NUL-terminated, at most `VDUSE_NAME_MAX - 1` bytes before the NUL.
    pub(crate) name: [u8; uapi::VDUSE_NAME_MAX],
    /// The raw config.
    pub(crate) raw: uapi::DevConfig,
    /// Effective number of virtqueue groups.
    pub(crate) ngroups: u32,
    /// Effective number of address spaces.
    pub(crate) nas: u32,
}

impl ValidConfig {
    /// `vduse_validate_config()` + `device_is_allowed()` + `features_is_valid()` of 7.3.
    ///
    /// # Errors
    ///
    /// `EINVAL` for any violated rule.
    pub(crate) fn new(raw: &uapi::DevConfig, api: ApiVersion) -> Result<Self> {
        if raw.reserved.iter().any(|&w| w != 0) {
            return Err(EINVAL);
        }
        let (ngroups, nas) = api.groups_and_spaces(raw.ngroups, raw.nas)?;
        if raw.vq_align < VRING_USED_ALIGN_SIZE
            || !raw.vq_align.is_power_of_two()
            || raw.vq_align as usize > PAGE_SIZE
        {
            return Err(EINVAL);
        }
        if raw.config_size as usize > PAGE_SIZE || raw.vq_num > MAX_VQ_NUM || raw.name[0] == 0 {
            return Err(EINVAL);
        }
        let f = raw.features;
        let allowed = match raw.device_id {
            virtio_id::BLOCK => f & virtio_f::BLK_CONFIG_WCE == 0,
            virtio_id::NET => f & virtio_f::NET_CTRL_VQ == 0 && f & virtio_f::VERSION_1 != 0,
            virtio_id::FS => true,
            _ => false,
        };
        if !allowed || f & virtio_f::ACCESS_PLATFORM == 0 {
            return Err(EINVAL);
        }
        let mut name = raw.name;
        // The name is cut at 255 bytes after validation, as in C.
        name[uapi::VDUSE_NAME_MAX - 1] = 0;
        Ok(Self {
            name,
            raw: *raw,
            ngroups,
            nas,
        })
    }

    /// The name, without its NUL.
    pub(crate) fn name(&self) -> &[u8] {
        name_of(&self.name)
    }
}

/// The bytes of a NUL-terminated name buffer before the first NUL.
pub(crate) fn name_of(buf: &[u8]) -> &[u8] {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..len]
}

#[kunit_tests(vduse_rs_device)]
mod tests {
    use super::*;

    /// A valid API 0 virtio-blk config.
    fn blk() -> uapi::DevConfig {
        let mut name = [0u8; uapi::VDUSE_NAME_MAX];
        name[..3].copy_from_slice(b"blk");
        uapi::DevConfig {
            name,
            vendor_id: 0,
            device_id: virtio_id::BLOCK,
            features: virtio_f::VERSION_1 | virtio_f::ACCESS_PLATFORM,
            vq_num: 1,
            vq_align: 4096,
            ngroups: 0,
            nas: 0,
            reserved: [0; 11],
            config_size: 8,
        }
    }

    fn check(f: impl Fn(&mut uapi::DevConfig), api: ApiVersion) -> Result {
        let mut c = blk();
        f(&mut c);
        ValidConfig::new(&c, api).map(|_| ())
    }

    #[test]
    fn validation_rules() {
        let v0 = ApiVersion::V0;
        assert_eq!(check(|_| {}, v0), Ok(()));
        assert_eq!(check(|c| c.reserved[3] = 1, v0), Err(EINVAL));
        assert_eq!(check(|c| c.vq_align = 2, v0), Err(EINVAL));
        assert_eq!(check(|c| c.vq_align = 12, v0), Err(EINVAL));
        assert_eq!(
            check(|c| c.vq_align = 2 * PAGE_SIZE as u32, v0),
            Err(EINVAL)
        );
        assert_eq!(
            check(|c| c.config_size = PAGE_SIZE as u32 + 1, v0),
            Err(EINVAL)
        );
        assert_eq!(check(|c| c.vq_num = 0x10000, v0), Err(EINVAL));
        assert_eq!(check(|c| c.name[0] = 0, v0), Err(EINVAL));
        assert_eq!(check(|c| c.device_id = 3, v0), Err(EINVAL));
        assert_eq!(check(|c| c.features = virtio_f::VERSION_1, v0), Err(EINVAL));
        assert_eq!(
            check(|c| c.features |= virtio_f::BLK_CONFIG_WCE, v0),
            Err(EINVAL)
        );
        assert_eq!(check(|c| c.device_id = virtio_id::NET, v0), Ok(()));
        assert_eq!(
            check(
                |c| (c.device_id, c.features) = (virtio_id::NET, virtio_f::ACCESS_PLATFORM),
                v0
            ),
            Err(EINVAL)
        );
        assert_eq!(check(|c| c.ngroups = 1, v0), Err(EINVAL));
        assert_eq!(
            check(|c| (c.ngroups, c.nas) = (1, 1), ApiVersion::V1),
            Ok(())
        );
    }

    #[test]
    fn name_cut_at_255() {
        let mut c = blk();
        c.name = [b'n'; uapi::VDUSE_NAME_MAX];
        let v = ValidConfig::new(&c, ApiVersion::V0);
        assert_eq!(v.map(|v| v.name().len()), Ok(uapi::VDUSE_NAME_MAX - 1));
    }
}
