//! The C ABI between the modproxy host and its modules: only `repr(C)` data,
//! `extern "C"` function pointers, borrowed byte slices, opaque handles and
//! owned objects that carry their own drop function cross it.
//!
//! Trust and version policy: a module exports [`ENTRY_SYMBOL`], a function
//! returning a [`ModuleHeader`]. The loader checks `magic`, `abi_version`
//! (a major and a minor, see [`version`]) and `layout_hash` before it
//! reads anything else, so a module built against another ABI is refused
//! instead of misread, and one built for an older minor is served. Tables
//! start with their size; fields are only ever appended.
//!
//! Ownership: `AbiStr` is always *borrowed* (valid for the duration of the
//! call that hands it over unless documented otherwise). Anything allocated
//! on one side is freed by that side, through the drop function that
//! travels with it (a host with its own allocator aborted in the prototype
//! when this rule was broken).
//!
//! One file per family, each with its ownership notes: [`values`] (what
//! crosses in every call), [`header`] (the entry symbol), [`host`] (the
//! host services), [`hooks`], [`proxy`] (scheme handlers), [`balancer`],
//! [`lbmethod`], [`health`], [`filter`], [`purge`], [`members`], [`metrics`]; [`version`] holds the versioning rule and the
//! layout hash over all of them. Nothing here imports from the SDK.

pub mod balancer;
pub mod filter;
pub mod header;
pub mod health;
pub mod hooks;
pub mod host;
pub mod lbmethod;
pub mod members;
pub mod metrics;
pub mod proxy;
pub mod purge;
pub mod values;
pub mod version;

pub use header::{ModuleEntryFn, ModuleHeader, ENTRY_SYMBOL, MAGIC};
pub use hooks::{
    code, order, AbiSection, ChildInitFn, HandlerHookFn, HookKind, PostConfigFn, RequestHookFn,
    SectionFn,
};
pub use host::{field, headers, idle_state, io, server_file, tls_flags, AbiProvider, HostApi};
pub use values::{
    utf8, AbiChunk, AbiFieldList, AbiFieldSpan, AbiFuture, AbiStr, AbiWaker, AbiWakerVTable,
    HeaderVisitor, POLL_PENDING,
};
pub use version::{layout_hash_for, AbiVersion, ABI_VERSION, LAYOUT_HASH};
