//! The proxy family's own interfaces, shared by `proxy`, `proxy_http` and
//! `proxy_balancer` (Apache's `mod_proxy.h`): the scheme handler that does
//! the exchange with a backend, and the balancer that picks a member.
//! Both are providers: `("proxy_scheme", "http")`, `("proxy_balancer", "balancer")`.

use crate::abi::{AbiFuture, AbiStr, HeaderVisitor};
use crate::lb::LbOutcome;
use crate::sdk::module::{guard, report_panic, Registrar};
use crate::sdk::{Module, Request};
use std::ffi::c_void;
use std::future::Future;

pub const SCHEME_GROUP: &str = "proxy_scheme";

/// A scheme as users write it in URLs (`http` as `http://`), for messages.
pub fn show_scheme(scheme: &str) -> String {
    format!("{scheme}://")
}
pub const BALANCER_GROUP: &str = "proxy_balancer";
pub const BALANCER_NAME: &str = "balancer";

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
    /// The client stopped sending its body for longer than `Timeout`: 408.
    pub const CLIENT_TIMEOUT: i32 = 9;
    /// ERROR_OVERRIDE took the backend's error status (in the outcome) instead
    /// of relaying its page.
    pub const OVERRIDDEN: i32 = 7;
    /// The backend did not take the request body in time: 504 (a timeout
    /// for `failontimeout` too).
    pub const BODY_TIMEOUT: i32 = 8;
    /// No scheme handler claimed the target.
    pub const DECLINED: i32 = crate::abi::code::DECLINED;
}

#[repr(C)]
pub struct SchemeHandlerV1 {
    pub size: usize,
    pub exchange:
        extern "C" fn(data: *const c_void, req: *mut c_void, ex: *const ProxyExchange) -> AbiFuture,
}

/// Safe view of a [`ProxyExchange`] for the scheme handler.
pub struct Exchange {
    raw: *const ProxyExchange,
}
// SAFETY: the caller keeps the exchange alive and unchanged while the
// handler's future runs; it holds only immutable data plus the outcome,
// which only the handler writes.
unsafe impl Send for Exchange {}

impl Exchange {
    fn raw(&self) -> &ProxyExchange {
        // SAFETY: valid for the life of the handler future (see ProxyExchange).
        unsafe { &*self.raw }
    }
    pub fn target(&self) -> &str {
        // SAFETY: as in raw(); the caller built it from a &str.
        unsafe { self.raw().target.as_str() }
    }
    pub fn worker(&self) -> &str {
        // SAFETY: as in target().
        unsafe { self.raw().worker.as_str() }
    }
    pub fn params(&self) -> WorkerParams {
        self.raw().params
    }
    pub fn flags(&self) -> u32 {
        self.raw().flags
    }
    pub fn set_outcome(&mut self, outcome: ExchangeOutcome) {
        // SAFETY: the outcome pointer is valid and written only by us.
        unsafe { *self.raw().outcome = outcome };
    }
    /// Whether the caller wants the time to the response head
    /// ([`Exchange::set_head_time`]); measure it only then.
    pub fn wants_times(&self) -> bool {
        self.flags() & exchange_flags::TIMED != 0
    }
    /// The time from the exchange's start to the backend's response head;
    /// ignored when the caller did not ask ([`Exchange::wants_times`]).
    pub fn set_head_time(&mut self, elapsed: std::time::Duration) {
        if self.wants_times() {
            let timed = self.raw().outcome as *mut TimedOutcome;
            // SAFETY: with TIMED set the caller's outcome is a TimedOutcome
            // (SchemeHandle::exchange), valid and written only by us.
            unsafe { (*timed).head_us = micros(elapsed) };
        }
    }
}

/// `d` in whole microseconds, at least 1 (0 means "not measured"), saturating.
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Implemented by a module that speaks a backend protocol (proxy_http,
/// proxy_wstunnel). The future is returned unboxed (an `async` block or
/// `async fn`): the SDK's box for the boundary is its only allocation.
pub trait SchemeHandler: Send + Sync + 'static {
    /// Relays `req` to `ex.target()`; resolves to an [`exchange`] code.
    fn exchange(
        &'static self,
        req: Request,
        ex: Exchange,
    ) -> impl Future<Output = i32> + Send + 'static;
}

extern "C" fn scheme_shim<H: SchemeHandler>(
    data: *const c_void,
    req: *mut c_void,
    ex: *const ProxyExchange,
) -> AbiFuture {
    // SAFETY: `data` is the &'static H registered in register_scheme.
    let handler: &'static H = unsafe { &*(data as *const H) };
    guard(AbiFuture::ready(crate::abi::code::PANICKED), || {
        // SAFETY: the caller passes a live request and exchange (see ProxyExchange).
        let req = unsafe { Request::from_raw(req) };
        crate::future::export(handler.exchange(req, Exchange { raw: ex }), report_panic)
    })
}

/// Registers `handler` for URLs of `scheme` (e.g. "http").
pub fn register_scheme<M: Module, H: SchemeHandler>(
    r: &mut Registrar<M>,
    scheme: &str,
    handler: &'static H,
) {
    let vtable: &'static SchemeHandlerV1 = Box::leak(Box::new(SchemeHandlerV1 {
        size: std::mem::size_of::<SchemeHandlerV1>(),
        exchange: scheme_shim::<H>,
    }));
    r.provider_raw(
        SCHEME_GROUP,
        scheme,
        1,
        vtable as *const _ as *const c_void,
        handler as *const H as *const c_void,
    );
}

/// A scheme handler found in the registry.
#[derive(Clone, Copy)]
pub struct SchemeHandle {
    vtable: &'static SchemeHandlerV1,
    data: *const c_void,
}
// SAFETY: providers are Send + Sync by their traits and live forever.
unsafe impl Send for SchemeHandle {}
// SAFETY: as above.
unsafe impl Sync for SchemeHandle {}

impl SchemeHandle {
    pub fn lookup(scheme: &str) -> Option<SchemeHandle> {
        let p = crate::sdk::provider::lookup(SCHEME_GROUP, scheme)?;
        // SAFETY: providers in SCHEME_GROUP are registered by register_scheme.
        let vtable = unsafe { &*(p.vtable as *const SchemeHandlerV1) };
        Some(SchemeHandle {
            vtable,
            data: p.data,
        })
    }

    /// Runs the exchange. `req` stays usable afterwards.
    pub async fn exchange(
        &self,
        req: &mut Request,
        target: &str,
        worker: &str,
        params: WorkerParams,
        flags: u32,
    ) -> (i32, ExchangeOutcome) {
        let flags = flags & !exchange_flags::TIMED;
        let (code, timed) = self
            .exchange_timed(req, target, worker, params, flags)
            .await;
        (code, timed.outcome)
    }

    /// The same with the time to the response head, which is filled only
    /// when `flags` has [`exchange_flags::TIMED`] and the handler measures it.
    pub async fn exchange_timed(
        &self,
        req: &mut Request,
        target: &str,
        worker: &str,
        params: WorkerParams,
        flags: u32,
    ) -> (i32, TimedOutcome) {
        let mut timed = TimedOutcome::default();
        let ex = ProxyExchange {
            target: AbiStr::new(target.as_bytes()),
            worker: AbiStr::new(worker.as_bytes()),
            params,
            flags,
            // The prefix, at the same address: what a pre-1.2 handler writes.
            outcome: &mut timed as *mut TimedOutcome as *mut ExchangeOutcome,
        };
        let raw = (self.vtable.exchange)(self.data, req.as_raw(), &ex);
        // SAFETY: made by scheme_shim via future::export; `ex`, `timed`
        // and `req` outlive it because we await it here, in this frame.
        let code = unsafe { crate::future::Imported::new(raw) }.await;
        (code, timed)
    }
}

// ---------------------------------------------------------------------------
// The balancer provider

/// A member picked for one attempt.
#[repr(C)]
pub struct MemberPick {
    pub member: u32,
    /// The member's URL, e.g. `http://127.0.0.1:8080`. OWNERSHIP: lives as long as the process.
    pub url: AbiStr,
    pub params: WorkerParams,
}

/// Result codes of [`BalancerV1::pick`].
pub mod pick {
    pub const OK: i32 = 0;
    /// Every member is unusable: 503.
    pub const NONE_USABLE: i32 = 1;
    /// No balancer by that name.
    pub const NO_SUCH_BALANCER: i32 = 2;
}

#[repr(C)]
pub struct BalancerV1 {
    pub size: usize,
    pub exists: extern "C" fn(data: *const c_void, name: AbiStr) -> bool,
    pub max_attempts: extern "C" fn(data: *const c_void, name: AbiStr) -> u32,
    pub pick: extern "C" fn(
        data: *const c_void,
        name: AbiStr,
        req: *mut c_void,
        out: *mut MemberPick,
    ) -> i32,
    pub report: extern "C" fn(
        data: *const c_void,
        name: AbiStr,
        member: u32,
        code: i32,
        outcome: *const ExchangeOutcome,
    ),
    pub visit_members:
        extern "C" fn(data: *const c_void, name: AbiStr, visitor: HeaderVisitor, ud: *mut c_void),
    /// Writes a text table of every balancer and member (state, elected,
    /// busy, errors) through `visitor(ud, text, "")`, for `modproxy status`.
    pub status_table: extern "C" fn(data: *const c_void, visitor: HeaderVisitor, ud: *mut c_void),
    /// How long a request may wait for a usable member (the balancer's
    /// `timeout`, Apache's ProxySet timeout), in milliseconds; 0 = no wait.
    pub wait_ms: extern "C" fn(data: *const c_void, name: AbiStr) -> u64,
    // ABI 1.2. The caller checks `size` first and falls back to `report`.
    /// As `report`, with the attempt's times and failover flags, so that
    /// the member's lbmethod hears how it went ([`crate::lb::LbMethod::done`]).
    pub report_done:
        extern "C" fn(data: *const c_void, name: AbiStr, member: u32, outcome: *const LbOutcome),
}

/// A picked member as the safe side sees it.
#[derive(Debug, Clone)]
pub struct Picked {
    pub member: u32,
    pub url: &'static str,
    pub params: WorkerParams,
}

/// Implemented by proxy_balancer.
pub trait Balancer: Send + Sync + 'static {
    fn exists(&self, name: &str) -> bool;
    /// Failover attempts allowed after the first.
    fn max_attempts(&self, name: &str) -> u32;
    /// Picks a member for `req`: `Err` carries a [`pick`] code.
    fn pick(&self, name: &str, req: &mut Request) -> Result<Picked, i32>;
    /// Tells the balancer how the attempt went (an [`exchange`] code); what
    /// a proxy built before ABI 1.2 calls.
    fn report(&self, name: &str, member: u32, code: i32, outcome: &ExchangeOutcome);
    /// The same with times and failover flags (ABI 1.2). The default drops
    /// them and calls `report`.
    fn report_done(&self, name: &str, member: u32, outcome: &LbOutcome) {
        self.report(name, member, outcome.code, &outcome.exchange())
    }
    /// Every member URL, for ProxyPassReverse.
    fn member_urls(&self, name: &str) -> Vec<String>;
    /// A text table of every balancer and member, for `modproxy status`.
    fn status_table(&self) -> String {
        String::new()
    }
    /// How long a request may wait for a usable member before the 503.
    fn wait(&self, _name: &str) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

fn str_arg<'a>(s: AbiStr) -> &'a str {
    // SAFETY: the caller passes a &str for the duration of the call.
    unsafe { s.as_str() }
}

extern "C" fn bal_exists<B: Balancer>(data: *const c_void, name: AbiStr) -> bool {
    // SAFETY: `data` is the &'static B registered in register_balancer.
    let b = unsafe { &*(data as *const B) };
    guard(false, || b.exists(str_arg(name)))
}
extern "C" fn bal_max_attempts<B: Balancer>(data: *const c_void, name: AbiStr) -> u32 {
    // SAFETY: as in bal_exists.
    let b = unsafe { &*(data as *const B) };
    guard(0, || b.max_attempts(str_arg(name)))
}
extern "C" fn bal_pick<B: Balancer>(
    data: *const c_void,
    name: AbiStr,
    req: *mut c_void,
    out: *mut MemberPick,
) -> i32 {
    // SAFETY: as in bal_exists.
    let b = unsafe { &*(data as *const B) };
    guard(crate::abi::code::PANICKED, || {
        // SAFETY: the caller passes a live request for the call.
        let mut req = unsafe { Request::from_raw(req) };
        match b.pick(str_arg(name), &mut req) {
            Ok(p) => {
                // SAFETY: `out` is valid for writing, provided by the caller.
                unsafe {
                    *out = MemberPick {
                        member: p.member,
                        url: AbiStr::new(p.url.as_bytes()),
                        params: p.params,
                    }
                };
                pick::OK
            }
            Err(code) => code,
        }
    })
}
extern "C" fn bal_report<B: Balancer>(
    data: *const c_void,
    name: AbiStr,
    member: u32,
    code: i32,
    outcome: *const ExchangeOutcome,
) {
    // SAFETY: as in bal_exists; `outcome` is valid for the call.
    let (b, outcome) = unsafe { (&*(data as *const B), &*outcome) };
    guard((), || b.report(str_arg(name), member, code, outcome))
}
extern "C" fn bal_report_done<B: Balancer>(
    data: *const c_void,
    name: AbiStr,
    member: u32,
    outcome: *const LbOutcome,
) {
    // SAFETY: as in bal_exists; `outcome` is valid for the call.
    let (b, outcome) = unsafe { (&*(data as *const B), &*outcome) };
    guard((), || b.report_done(str_arg(name), member, outcome))
}
extern "C" fn bal_wait_ms<B: Balancer>(data: *const c_void, name: AbiStr) -> u64 {
    // SAFETY: as in bal_exists.
    let b = unsafe { &*(data as *const B) };
    guard(0, || {
        u64::try_from(b.wait(str_arg(name)).as_millis()).unwrap_or(u64::MAX)
    })
}
extern "C" fn bal_visit<B: Balancer>(
    data: *const c_void,
    name: AbiStr,
    visitor: HeaderVisitor,
    ud: *mut c_void,
) {
    // SAFETY: as in bal_exists.
    let b = unsafe { &*(data as *const B) };
    guard((), || {
        for url in b.member_urls(str_arg(name)) {
            visitor(ud, AbiStr::new(url.as_bytes()), AbiStr::EMPTY);
        }
    })
}

extern "C" fn bal_status_table<B: Balancer>(
    data: *const c_void,
    visitor: HeaderVisitor,
    ud: *mut c_void,
) {
    // SAFETY: as in bal_exists.
    let b = unsafe { &*(data as *const B) };
    let text = guard(String::new(), || b.status_table());
    visitor(ud, AbiStr::new(text.as_bytes()), AbiStr::EMPTY);
}

/// The host's side of [`BalancerV1::status_table`]: `None` when the
/// provider predates it.
///
/// # Safety
/// `vtable` and `data` must be the provider registered in
/// [`BALANCER_GROUP`] by [`register_balancer`].
pub unsafe fn call_status_table(vtable: *const c_void, data: *const c_void) -> Option<String> {
    // SAFETY: guaranteed by the caller; `size` is the first field of every version.
    let vtable = unsafe { &*(vtable as *const BalancerV1) };
    let end = std::mem::offset_of!(BalancerV1, status_table) + std::mem::size_of::<usize>();
    if vtable.size < end {
        return None;
    }
    extern "C" fn append(ud: *mut c_void, text: AbiStr, _: AbiStr) {
        // SAFETY: `ud` is the String below, alive for the call.
        let out = unsafe { &mut *(ud as *mut String) };
        out.push_str(str_arg(text));
    }
    let mut out = String::new();
    (vtable.status_table)(data, append, &mut out as *mut String as *mut c_void);
    Some(out)
}

pub fn register_balancer<M: Module, B: Balancer>(r: &mut Registrar<M>, balancer: &'static B) {
    let vtable: &'static BalancerV1 = Box::leak(Box::new(BalancerV1 {
        size: std::mem::size_of::<BalancerV1>(),
        exists: bal_exists::<B>,
        max_attempts: bal_max_attempts::<B>,
        pick: bal_pick::<B>,
        report: bal_report::<B>,
        visit_members: bal_visit::<B>,
        status_table: bal_status_table::<B>,
        wait_ms: bal_wait_ms::<B>,
        report_done: bal_report_done::<B>,
    }));
    r.provider_raw(
        BALANCER_GROUP,
        BALANCER_NAME,
        1,
        vtable as *const _ as *const c_void,
        balancer as *const B as *const c_void,
    );
}

/// The balancer provider as proxy sees it.
#[derive(Clone, Copy)]
pub struct BalancerHandle {
    vtable: &'static BalancerV1,
    data: *const c_void,
    /// `report_done`, when the provider's table has it (ABI 1.2).
    report_done: Option<ReportDoneFn>,
}
type ReportDoneFn = extern "C" fn(*const c_void, AbiStr, u32, *const LbOutcome);
// SAFETY: providers are Send + Sync by their traits and live forever.
unsafe impl Send for BalancerHandle {}
// SAFETY: as above.
unsafe impl Sync for BalancerHandle {}

impl BalancerHandle {
    pub fn lookup() -> Option<BalancerHandle> {
        let p = crate::sdk::provider::lookup(BALANCER_GROUP, BALANCER_NAME)?;
        let raw = p.vtable as *const BalancerV1;
        let end = std::mem::offset_of!(BalancerV1, report_done) + std::mem::size_of::<usize>();
        // SAFETY: the provider in BALANCER_GROUP is registered by
        // register_balancer; `size` is in every version, `report_done` only
        // in tables at least that long (read through the raw pointer).
        let report_done = unsafe { ((*raw).size >= end).then(|| (*raw).report_done) };
        // SAFETY: as above.
        let vtable = unsafe { &*raw };
        Some(BalancerHandle {
            vtable,
            data: p.data,
            report_done,
        })
    }
    pub fn exists(&self, name: &str) -> bool {
        (self.vtable.exists)(self.data, AbiStr::new(name.as_bytes()))
    }
    pub fn max_attempts(&self, name: &str) -> u32 {
        (self.vtable.max_attempts)(self.data, AbiStr::new(name.as_bytes()))
    }
    /// How long a request may wait for a usable member (0 = no wait).
    pub fn wait(&self, name: &str) -> std::time::Duration {
        std::time::Duration::from_millis((self.vtable.wait_ms)(
            self.data,
            AbiStr::new(name.as_bytes()),
        ))
    }
    pub fn pick(&self, name: &str, req: &mut Request) -> Result<Picked, i32> {
        let mut out = MemberPick {
            member: 0,
            url: AbiStr::EMPTY,
            params: WorkerParams::default(),
        };
        match (self.vtable.pick)(
            self.data,
            AbiStr::new(name.as_bytes()),
            req.as_raw(),
            &mut out,
        ) {
            pick::OK => Ok(Picked {
                member: out.member,
                // SAFETY: member URLs live as long as the process (see MemberPick).
                url: unsafe { out.url.as_str() },
                params: out.params,
            }),
            code => Err(code),
        }
    }
    pub fn report(&self, name: &str, member: u32, code: i32, outcome: &ExchangeOutcome) {
        (self.vtable.report)(
            self.data,
            AbiStr::new(name.as_bytes()),
            member,
            code,
            outcome,
        );
    }
    /// Reports an attempt with its times; to a balancer built before ABI
    /// 1.2 as a plain `report`.
    pub fn report_done(&self, name: &str, member: u32, outcome: &LbOutcome) {
        let Some(f) = self.report_done else {
            return self.report(name, member, outcome.code, &outcome.exchange());
        };
        f(self.data, AbiStr::new(name.as_bytes()), member, outcome);
    }
    pub fn member_urls(&self, name: &str) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        extern "C" fn collect(ud: *mut c_void, url: AbiStr, _: AbiStr) {
            // SAFETY: `ud` is the Vec below, alive for the call.
            let urls = unsafe { &mut *(ud as *mut Vec<String>) };
            urls.push(str_arg(url).to_owned());
        }
        (self.vtable.visit_members)(
            self.data,
            AbiStr::new(name.as_bytes()),
            collect,
            &mut urls as *mut _ as *mut c_void,
        );
        urls
    }
}
