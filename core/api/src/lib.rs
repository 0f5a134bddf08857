//! modproxy-api: the module ABI and the safe SDK that every modproxy module
//! links, and that the host uses to read modules.
//!
//! - [`abi`]: the `repr(C)` contract (entry symbol, version check, host
//!   services table, hook kinds). Only this and the conversion helpers
//!   ([`waker`], [`future`], [`chunk`]) contain `unsafe`.
//! - [`sdk`]: traits and types for module authors: [`sdk::Module`],
//!   [`sdk::Request`], the host's runtime in [`sdk::net`].
//! - [`proxy`] and [`lb`]: the interfaces the proxy family shares, and the
//!   documented API for third-party load-balancing methods.
//! - [`metrics`]: the `metrics` provider through which a module adds its
//!   lines to the server's Prometheus text.
//! - [`suggest`]: "did you mean …?" for configuration errors.
//!
//! Not for: running a server. This crate has no tokio (a module's own tokio
//! has no reactor: it must use the host's, through [`sdk::net`]).
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
pub mod chunk;
pub mod future;
pub mod hash;
pub mod lb;
pub mod metrics;
pub mod proxy;
pub mod sdk;
pub mod suggest;
pub mod waker;

pub use bytes::Bytes;
pub use sdk::module::HandlerFuture;
pub use sdk::{log, Headers, IoError, Level, Module, Registrar, Request, Section, Status};
