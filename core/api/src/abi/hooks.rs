//! The request pipeline's hooks: their kinds and order, the signatures the
//! host calls, and the configuration sections a module claims.

use super::values::{AbiFuture, AbiStr};
use std::ffi::c_void;

/// Hook return codes, as Apache's: OK, DECLINED, or an HTTP status >= 100
/// that ends the request with that status.
pub mod code {
    pub const OK: i32 = 0;
    pub const DECLINED: i32 = -1;
    /// The module panicked; the SDK already logged the message.
    pub const PANICKED: i32 = -2;
    /// The hook failed for a reason it logged; the host answers 500.
    pub const ERROR: i32 = -3;
}

/// The request pipeline, in the order hooks run for each request.
/// `run-all`: every hook runs until one returns an error status.
/// `run-first`: hooks run until one does not decline.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// run-all, once after configuration: validate cross-module wiring.
    PostConfig = 0,
    /// run-all, right after the request head is read.
    PostReadRequest = 1,
    /// run-first: map the URI to a resource (mod_proxy claims requests here).
    TranslateName = 2,
    /// run-all: allow or deny.
    AccessChecker = 3,
    /// run-all: last changes before the handler.
    Fixups = 4,
    /// run-first, async: produce the response.
    Handler = 5,
    /// run-all, just before the response head is sent (ProxyPassReverse).
    ResponseHeaders = 6,
    /// run-all, after the response is finished (or aborted).
    LogTransaction = 7,
    /// ABI 1.3. run-all, once per server process when it starts serving
    /// (never in configtest), on the main worker's runtime: where a module
    /// starts its background tasks with `spawn` (Apache's child_init).
    ChildInit = 8,
    /// ABI 1.4. An output filter (`abi::filter`): `func` is its table.
    /// Filters run in order on every response whose head they accept.
    OutputFilter = 9,
    /// ABI 1.5. An input filter: the same table as an output filter
    /// (`abi::filter::OutputFilterV1`); its `start` sees the request head
    /// before the handlers run, its `body` each chunk of the request body.
    InputFilter = 10,
}

impl HookKind {
    pub const ALL: [HookKind; 11] = [
        HookKind::PostConfig,
        HookKind::PostReadRequest,
        HookKind::TranslateName,
        HookKind::AccessChecker,
        HookKind::Fixups,
        HookKind::Handler,
        HookKind::ResponseHeaders,
        HookKind::LogTransaction,
        HookKind::ChildInit,
        HookKind::OutputFilter,
        HookKind::InputFilter,
    ];
    pub fn from_u32(v: u32) -> Option<HookKind> {
        HookKind::ALL.get(v as usize).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            HookKind::PostConfig => "post_config",
            HookKind::PostReadRequest => "post_read_request",
            HookKind::TranslateName => "translate_name",
            HookKind::AccessChecker => "access_checker",
            HookKind::Fixups => "fixups",
            HookKind::Handler => "handler",
            HookKind::ResponseHeaders => "response_headers",
            HookKind::LogTransaction => "log_transaction",
            HookKind::ChildInit => "child_init",
            HookKind::OutputFilter => "output_filter",
            HookKind::InputFilter => "input_filter",
        }
    }
    pub fn runs_first(self) -> bool {
        matches!(self, HookKind::TranslateName | HookKind::Handler)
    }
}

/// Apache's APR_HOOK_REALLY_FIRST / FIRST / MIDDLE / LAST.
pub mod order {
    /// Before every FIRST hook: for a handler an operator maps to a path
    /// (the balancer manager), which a FIRST `pass "/"` would swallow.
    pub const REALLY_FIRST: i32 = -10;
    pub const FIRST: i32 = 0;
    pub const MIDDLE: i32 = 10;
    pub const LAST: i32 = 20;
}

/// Signature of a synchronous request hook.
pub type RequestHookFn = extern "C" fn(module: *const c_void, req: *mut c_void) -> i32;
/// Signature of the handler hook: returns a future whose result is a hook code.
pub type HandlerHookFn = extern "C" fn(module: *const c_void, req: *mut c_void) -> AbiFuture;
/// Signature of the child_init hook (ABI 1.3).
pub type ChildInitFn = extern "C" fn(module: *const c_void) -> i32;
/// Signature of the post_config hook.
pub type PostConfigFn = extern "C" fn(module: *const c_void, errors: *mut c_void) -> i32;
/// Receives one configuration section the module claimed.
pub type SectionFn =
    extern "C" fn(module: *const c_void, section: *const AbiSection, errors: *mut c_void) -> i32;

/// One claimed configuration section, as TOML text `value = ...`.
#[repr(C)]
pub struct AbiSection {
    /// The claim, e.g. `vhost.proxy`.
    pub path: AbiStr,
    /// The virtual host's index, or -1 for a server-wide section.
    pub vhost: i64,
    /// The file it was read from, for error messages.
    pub file: AbiStr,
    /// Where it sits in the file, e.g. `vhost[0].proxy`, for error messages.
    pub key: AbiStr,
    pub toml: AbiStr,
}
