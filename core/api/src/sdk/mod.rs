//! The safe SDK: what a module author uses. No `unsafe` is needed above
//! this layer; every function the host calls is generated here, through
//! [`shim`]'s one macro, with its panic caught on the module's side.
//!
//! Families, each the safe face of one file in [`crate::abi`]: [`module`]
//! (declaring a module, hooks, sections), [`request`], [`net`] (the
//! host's runtime), [`proxy`] (scheme handlers and the balancer), [`lb`]
//! (lbmethods), [`metrics`]. The plain-data `repr(C)` types a trait
//! signature uses (`LbMember`, `WorkerParams`, …) are re-exported beside it.

pub mod filter;
pub mod health;
pub mod host;
pub mod lb;
pub mod members;
pub mod metrics;
pub mod module;
pub mod net;
pub mod networks;
pub mod provider;
pub mod proxy;
pub mod purge;
pub mod request;
pub mod section;
pub mod shim;
pub mod splice;
pub mod tunnel;

pub use crate::abi::{order, utf8, HookKind};
pub use host::{log, module_name, Level};
pub use module::{ConfigError, Module, Registrar, Section, Status};
pub use request::{FieldList, Headers, Request};
pub use splice::Spliced;

use crate::abi::io;

/// Why a host I/O service failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoError {
    /// The peer refused the connection.
    Refused,
    /// The operation's deadline passed.
    Timeout,
    /// The peer reset or closed the connection.
    Reset,
    /// The client went away or its body broke off.
    Aborted,
    /// The request body is over the configured limit.
    TooLarge,
    /// The TLS handshake failed; the host logged why.
    Tls,
    Other,
}

impl IoError {
    pub(crate) fn from_code(code: i32) -> IoError {
        match code {
            io::ERR_REFUSED => IoError::Refused,
            io::ERR_TIMEOUT => IoError::Timeout,
            io::ERR_RESET => IoError::Reset,
            io::ERR_ABORTED => IoError::Aborted,
            io::ERR_TOO_LARGE => IoError::TooLarge,
            io::ERR_TLS => IoError::Tls,
            _ => IoError::Other,
        }
    }
    pub fn code(self) -> i32 {
        match self {
            IoError::Refused => io::ERR_REFUSED,
            IoError::Timeout => io::ERR_TIMEOUT,
            IoError::Reset => io::ERR_RESET,
            IoError::Aborted => io::ERR_ABORTED,
            IoError::TooLarge => io::ERR_TOO_LARGE,
            IoError::Tls => io::ERR_TLS,
            IoError::Other => io::ERR_OTHER,
        }
    }
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoError::Refused => "connection refused",
            IoError::Timeout => "timed out",
            IoError::Reset => "connection reset",
            IoError::Aborted => "client aborted",
            IoError::TooLarge => "request body too large",
            IoError::Tls => "TLS handshake failed (the error log says why)",
            IoError::Other => "I/O error",
        })
    }
}

impl std::error::Error for IoError {}
