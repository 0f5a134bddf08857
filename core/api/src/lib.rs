//! modproxy-api: the module ABI and the safe SDK that every modproxy module
//! links, and that the host uses to read modules.
//!
//! Two layers a reader can tell apart:
//! - [`abi`]: the contract, and only the contract: every `repr(C)` type and
//!   table, one file per family (values, header, host services, hooks,
//!   proxy scheme, balancer, lbmethod, metrics), each pointer with its
//!   ownership note, and the version rule with the layout hash.
//! - [`sdk`]: the safe traits and handles module authors use, generated
//!   `extern "C"` shims included: [`sdk::Module`], [`sdk::Request`], the
//!   host's runtime in [`sdk::net`], and the families [`proxy`] (the
//!   interfaces the proxy family shares), [`lb`] (the documented API for
//!   third-party load-balancing methods) and [`metrics`], re-exported here.
//!
//! Between them, the conversion helpers [`waker`], [`future`] and
//! [`chunk`] turn ABI values into Rust ones; `unsafe` lives only in these
//! and in the SDK's shims. [`suggest`] makes "did you mean …?" for
//! configuration errors.
//!
//! Not for: running a server. This crate has no tokio (a module's own tokio
//! has no reactor: it must use the host's, through [`sdk::net`]).
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
pub mod chunk;
pub mod future;
pub mod hash;
pub mod sdk;
pub mod suggest;
pub mod waker;

pub use bytes::Bytes;
pub use sdk::module::HandlerFuture;
pub use sdk::{lb, metrics, proxy};
pub use sdk::{
    log, ConfigError, Headers, IoError, Level, Module, Registrar, Request, Section, Status,
};
