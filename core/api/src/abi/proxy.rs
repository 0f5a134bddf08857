//! The scheme handler family (group `proxy_scheme`, one name per URL
//! scheme): what the proxy hands a module that speaks a backend protocol,
//! and what it hears back (Apache's `proxy_scheme_handler` in mod_proxy.h).

use super::values::{AbiFuture, AbiStr};
use std::ffi::c_void;

pub const SCHEME_GROUP: &str = "proxy_scheme";

/// Per-worker settings (ProxyPass / BalancerMember keys).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerParams {
    /// Wait this long for the backend's response head and each read (`timeout`).
    pub timeout_ms: u64,
    /// Wait this long for the TCP connect (`connection_timeout`).
    pub connect_timeout_ms: u64,
    /// Close pooled connections idle longer than this (`ttl`); 0 = never.
    pub ttl_ms: u64,
    /// Most idle connections kept (`max`).
    pub max_idle: u32,
    /// [`worker_flags`] bits.
    pub flags: u32,
    /// `tls_ca_file`: PEM roots to verify an `https://` backend against,
    /// instead of the system's; empty for the system's.
    pub tls_ca_file: StaticText,
}

/// A string inside a `repr(C)` value that lives as long as the process
/// (configuration strings leaked once at startup; modules are never
/// unloaded), so the value can stay `Copy`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StaticText(AbiStr);

impl StaticText {
    pub const EMPTY: StaticText = StaticText(AbiStr::EMPTY);
    pub fn new(s: &'static str) -> StaticText {
        StaticText(AbiStr::new(s.as_bytes()))
    }
    pub fn as_str(&self) -> &'static str {
        // SAFETY: made by `new` from a `&'static str` (in this module or
        // another one, which is never unloaded).
        unsafe { self.0.as_str() }
    }
}

impl std::fmt::Debug for StaticText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}
impl PartialEq for StaticText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for StaticText {}

impl Default for WorkerParams {
    fn default() -> Self {
        WorkerParams {
            timeout_ms: 60_000,
            connect_timeout_ms: 60_000,
            ttl_ms: 0,
            max_idle: 256,
            flags: 0,
            tls_ca_file: StaticText::EMPTY,
        }
    }
}

pub mod worker_flags {
    /// `disable_reuse`: one connection per request.
    pub const DISABLE_REUSE: u32 = 1 << 0;
    /// `keepalive`: TCP keepalive probes on backend connections.
    pub const TCP_KEEPALIVE: u32 = 1 << 1;
    /// `tls_verify = false`: accept any certificate from an `https://`
    /// backend (self-signed test backends). Never for production.
    pub const TLS_INSECURE: u32 = 1 << 2;
    /// `upgrade = "websocket"`: WebSocket upgrades are tunnelled to this
    /// worker (proxy_wstunnel).
    pub const UPGRADE_WEBSOCKET: u32 = 1 << 3;
}

/// How the request leaves for the backend (ProxyPreserveHost and friends).
pub mod exchange_flags {
    pub const PRESERVE_HOST: u32 = 1 << 0;
    pub const ADD_FORWARDED: u32 = 1 << 1;
    pub const VIA: u32 = 1 << 2;
    /// ProxyErrorOverride: on a 4xx/5xx from the backend, send no head and
    /// finish with [`super::exchange::OVERRIDDEN`]; the core's error page answers.
    pub const ERROR_OVERRIDE: u32 = 1 << 3;
    /// ABI 1.2: `outcome` points to a [`super::TimedOutcome`] (whose first
    /// field is the `ExchangeOutcome`), and the handler may fill its times.
    /// A handler built before 1.2 ignores the bit and writes the prefix only.
    pub const TIMED: u32 = 1 << 4;
}

/// One exchange with a backend. OWNERSHIP: borrowed from the caller, which
/// keeps it alive and in place until the returned future is dropped.
#[repr(C)]
pub struct ProxyExchange {
    /// `http://host:port/path?query` as it goes to the backend.
    pub target: AbiStr,
    /// Which connection pool to use, e.g. `http://127.0.0.1:8080`.
    pub worker: AbiStr,
    pub params: WorkerParams,
    pub flags: u32,
    /// Filled in by the scheme handler.
    pub outcome: *mut ExchangeOutcome,
}

// SAFETY: the exchange is built and read inside one future (the caller's),
// which may move between threads; the pointers it holds point into that
// same future's state.
unsafe impl Send for ProxyExchange {}

/// What happened, for the balancer's statistics and the failover decision.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeOutcome {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The backend's status, 0 if none arrived.
    pub status: u16,
}

/// An [`ExchangeOutcome`] with times (ABI 1.2), announced to the scheme
/// handler by [`exchange_flags::TIMED`]: `ExchangeOutcome` itself cannot
/// grow, as a handler writes it whole through a pointer to the caller's.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimedOutcome {
    pub outcome: ExchangeOutcome,
    /// From the exchange's start to the backend's response head, in
    /// microseconds; 0 when none arrived or the handler does not measure.
    pub head_us: u64,
}

/// Result codes of a scheme handler's future.
pub mod exchange {
    /// The response was relayed.
    pub const OK: i32 = 0;
    /// Nothing was sent: connect refused or timed out. Safe to try another member.
    pub const CONNECT_FAILED: i32 = 1;
    /// No response head in time: 502 (Apache answers 502, not 504).
    pub const TIMEOUT: i32 = 2;
    /// Malformed or oversized response head: 502.
    pub const BAD_RESPONSE: i32 = 3;
    /// Failed after the response head went out: abort the client connection.
    pub const ABORTED: i32 = 4;
    /// The client's request was at fault (its body broke off, or the target
    /// could not be built): 400.
    pub const CLIENT_ERROR: i32 = 5;
    /// The client's body went over the configured limit: 413.
    pub const CLIENT_TOO_LARGE: i32 = 6;
    /// ERROR_OVERRIDE took the backend's error status (in the outcome) instead
    /// of relaying its page.
    pub const OVERRIDDEN: i32 = 7;
    /// The backend did not take the request body in time: 504 (a timeout
    /// for `failontimeout` too).
    pub const BODY_TIMEOUT: i32 = 8;
    /// The client stopped sending its body for longer than `Timeout`: 408.
    pub const CLIENT_TIMEOUT: i32 = 9;
    /// No scheme handler claimed the target.
    pub const DECLINED: i32 = crate::abi::hooks::code::DECLINED;
}

#[repr(C)]
pub struct SchemeHandlerV1 {
    pub size: usize,
    pub exchange:
        extern "C" fn(data: *const c_void, req: *mut c_void, ex: *const ProxyExchange) -> AbiFuture,
}
