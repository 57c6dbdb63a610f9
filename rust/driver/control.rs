// SPDX-License-Identifier: GPL-2.0

//! The VDUSE control device, `/dev/vduse/control`.
//!
//! C version: `vduse_ioctl()`, `vduse_open()`, `vduse_release()` in
//! [`drivers/vdpa/vdpa_user/vduse_dev.c`](srctree/drivers/vdpa/vdpa_user/vduse_dev.c).
//! uAPI: [`include/uapi/linux/vduse.h`](../include/uapi/linux/vduse.h).
//!
//! Every open file of the control device has its own API version and VDUSE features; the rules
//! for both live in [`super::api`].

use super::{
    api::{
        ApiVersion,
        Features,
        VDUSE_FEATURES, //
    },
    device::{
        name_of,
        ValidConfig, //
    },
    registry::Vduse,
};
use crate::{
    kapi::{
        cdev::CdevOps,
        file_ops::FileOps, //
    },
    uapi, //
};
use kernel::{
    fs::File,
    ioctl::_IOC_SIZE,
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

/// What one open control file remembers.
#[derive(Default)]
struct ControlState {
    /// The API version, once asked for (`GET_API_VERSION`) or set (`SET_API_VERSION`).
    api_version: Option<ApiVersion>,
    /// The VDUSE features set with `SET_FEATURES`.
    features: Features,
}

/// One open file of `/dev/vduse/control`.
#[pin_data]
pub(crate) struct Control {
    /// The module-wide state, where devices are created.
    vduse: Arc<Vduse>,
    #[pin]
    state: Mutex<ControlState>,
}

impl Control {
    /// `VDUSE_GET_API_VERSION`: the fd's version, latching [`ApiVersion::LATCHED_ON_GET`] the
    /// first time it is asked.
    fn get_api_version(&self) -> u64 {
        let mut state = self.state.lock();
        state
            .api_version
            .get_or_insert(ApiVersion::LATCHED_ON_GET)
            .to_user()
    }

    /// `VDUSE_SET_API_VERSION`.
    fn set_api_version(&self, version: u64) -> Result {
        let version = ApiVersion::from_user(version)?;
        self.state.lock().api_version = Some(version);
        Ok(())
    }

    /// `VDUSE_CREATE_DEV`: the fixed part of `struct vduse_dev_config` at `arg`, followed by
    /// `config_size` bytes of configuration space.
    fn create_dev(&self, arg: usize) -> Result {
        let head_len = core::mem::size_of::<uapi::DevConfig>();
        let raw: uapi::DevConfig = UserSlice::new(UserPtr::from_addr(arg), head_len)
            .reader()
            .read()?;
        // The state lock is held to the end, like `vduse_lock` in C: the version a CREATE_DEV
        // latches and the features it copies are those of this moment.
        let mut state = self.state.lock();
        let api = *state
            .api_version
            .get_or_insert(ApiVersion::DEFAULT_FOR_CREATE);
        let cfg = ValidConfig::new(&raw, api)?;
        let mut config = KVec::new();
        UserSlice::new(
            UserPtr::from_addr(arg).wrapping_byte_add(head_len),
            raw.config_size as usize,
        )
        .read_all(&mut config, GFP_KERNEL)?;
        self.vduse.create_dev(&cfg, config, api, state.features)
    }

    /// `VDUSE_DESTROY_DEV`.
    fn destroy_dev(&self, arg: usize) -> Result {
        let mut name = [0u8; uapi::VDUSE_NAME_MAX];
        UserSlice::new(UserPtr::from_addr(arg), name.len())
            .reader()
            .read_slice(&mut name)?;
        name[uapi::VDUSE_NAME_MAX - 1] = 0;
        let _state = self.state.lock();
        self.vduse.destroy_dev(name_of(&name))
    }

    /// `VDUSE_SET_FEATURES`.
    fn set_features(&self, bits: u64) -> Result {
        let features = Features::from_user(bits)?;
        self.state.lock().features = features;
        Ok(())
    }
}

impl CdevOps for Control {
    type Shared = Arc<Vduse>;

    fn open(vduse: &Arc<Vduse>, _minor: u32, _file: &File) -> Result<Self::Ptr> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                vduse: vduse.clone(),
                state <- new_mutex!(ControlState::default(), "Control::state"),
            }),
            GFP_KERNEL,
        )
    }
}

#[vtable]
impl FileOps for Control {
    type Ptr = Pin<KBox<Self>>;

    fn ioctl(this: Pin<&Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let user = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
        match cmd {
            uapi::VDUSE_GET_API_VERSION => {
                let version = this.get_api_version();
                user.writer().write(&version)?;
            }
            uapi::VDUSE_SET_API_VERSION => this.set_api_version(user.reader().read::<u64>()?)?,
            uapi::VDUSE_CREATE_DEV => this.create_dev(arg)?,
            uapi::VDUSE_DESTROY_DEV => this.destroy_dev(arg)?,
            uapi::VDUSE_GET_FEATURES => user.writer().write(&VDUSE_FEATURES)?,
            uapi::VDUSE_SET_FEATURES => this.set_features(user.reader().read::<u64>()?)?,
            // The control device answers unknown commands with EINVAL, not ENOTTY (7.3).
            _ => return Err(EINVAL),
        }
        Ok(0)
    }
}
