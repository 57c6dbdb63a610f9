// SPDX-License-Identifier: GPL-2.0
//! The library's error type.

use std::io;

/// What can go wrong while creating or serving a VDUSE device.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; `op` names it (an ioctl, `open`, ...).
    Io {
        /// The operation, e.g. `"VDUSE_CREATE_DEV"`.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel does not offer what was asked for (an API version, a feature).
    Unsupported(String),
    /// The device description is invalid (before anything is asked of the kernel).
    InvalidConfig(String),
    /// The device exists already and cannot be re-attached to (no or another reconnect log).
    Exists(String),
    /// A virtqueue cannot be served: its rings are not mapped, or the driver set it up wrong.
    Ring {
        /// The queue.
        index: u16,
        /// What is wrong.
        what: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`].
    pub fn io(op: &'static str, source: io::Error) -> Self {
        Error::Io { op, source }
    }

    /// The errno of an [`Error::Io`], if it is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { op, source } => write!(f, "{op}: {source}"),
            Error::Unsupported(s) => write!(f, "not supported by this kernel: {s}"),
            Error::InvalidConfig(s) => write!(f, "invalid device: {s}"),
            Error::Exists(s) => write!(f, "{s}"),
            Error::Ring { index, what } => write!(f, "vq {index}: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// For code that reports [`io::Error`]s, such as [`crate::server::Backend::handle_event`]:
/// an [`Error::Io`] becomes its OS error, the others [`io::ErrorKind::Other`].
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { source, .. } => source,
            e => io::Error::other(e),
        }
    }
}
