//! The proxy family's safe interfaces, shared by `proxy`, `proxy_http`,
//! `proxy_wstunnel` and `proxy_balancer` (Apache's `mod_proxy.h`): the
//! scheme handler that does the exchange with a backend (here), and the
//! balancer that picks a member ([`balancer`]). Their C faces are in
//! [`crate::abi::proxy`] and [`crate::abi::balancer`].

mod balancer;
mod replay;

pub use crate::abi::balancer::{BALANCER_GROUP, BALANCER_NAME};
pub use crate::abi::proxy::{
    exchange_flags, worker_flags, ExchangeOutcome, StaticText, TimedOutcome, WorkerParams,
    SCHEME_GROUP,
};
pub use balancer::{
    call_status_table, register_balancer, Balancer, BalancerHandle, PickError, Picked,
};
pub use replay::{BodyProgress, REPLAY_LIMIT};

use crate::abi::proxy::{exchange as code, ProxyExchange, SchemeHandlerV1};
use crate::abi::{AbiFuture, AbiStr};
use crate::future::IntoCode;
use crate::sdk::module::Registrar;
use crate::sdk::shim::{report_panic, shim_fn};
use crate::sdk::{Module, Request};
use std::ffi::c_void;
use std::future::Future;

/// A scheme as users write it in URLs (`http` as `http://`), for messages.
pub fn show_scheme(scheme: &str) -> String {
    format!("{scheme}://")
}

/// How an exchange with a backend ended: what the proxy answers the
/// client, and what the balancer counts against the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeStatus {
    /// The response was relayed.
    Relayed,
    /// Nothing was sent: connect refused or timed out. Safe to try another member.
    ConnectFailed,
    /// No response head in time: 502 (Apache answers 502, not 504).
    Timeout,
    /// Malformed or oversized response head: 502.
    BadResponse,
    /// Failed after the response head went out: abort the client connection.
    Aborted,
    /// The client's request was at fault (its body broke off, or the
    /// target could not be built): 400.
    ClientError,
    /// The client's body went over the configured limit: 413.
    ClientTooLarge,
    /// ProxyErrorOverride took the backend's error status (in the outcome)
    /// instead of relaying its page.
    Overridden,
    /// The backend did not take the request body in time: 504 (a timeout
    /// for `failontimeout` too).
    BodyTimeout,
    /// The client stopped sending its body for longer than `Timeout`: 408.
    ClientTimeout,
    /// No scheme handler claimed the target.
    Declined,
    /// The handler panicked (its module logged why), or answered a code
    /// this build does not know: 500.
    Failed,
}

impl ExchangeStatus {
    const ALL: [(ExchangeStatus, i32); 11] = [
        (ExchangeStatus::Relayed, code::OK),
        (ExchangeStatus::ConnectFailed, code::CONNECT_FAILED),
        (ExchangeStatus::Timeout, code::TIMEOUT),
        (ExchangeStatus::BadResponse, code::BAD_RESPONSE),
        (ExchangeStatus::Aborted, code::ABORTED),
        (ExchangeStatus::ClientError, code::CLIENT_ERROR),
        (ExchangeStatus::ClientTooLarge, code::CLIENT_TOO_LARGE),
        (ExchangeStatus::Overridden, code::OVERRIDDEN),
        (ExchangeStatus::BodyTimeout, code::BODY_TIMEOUT),
        (ExchangeStatus::ClientTimeout, code::CLIENT_TIMEOUT),
        (ExchangeStatus::Declined, code::DECLINED),
    ];

    /// The status a code from the boundary stands for.
    pub fn from_code(c: i32) -> ExchangeStatus {
        Self::ALL
            .iter()
            .find(|(_, known)| *known == c)
            .map_or(ExchangeStatus::Failed, |(status, _)| *status)
    }
    /// The code it travels as ([`crate::abi::proxy::exchange`]).
    pub fn code(self) -> i32 {
        Self::ALL
            .iter()
            .find(|(status, _)| *status == self)
            .map_or(crate::abi::code::PANICKED, |(_, c)| *c)
    }
    /// A timeout waiting on the backend (`failontimeout` counts these).
    pub fn is_backend_timeout(self) -> bool {
        matches!(self, ExchangeStatus::Timeout | ExchangeStatus::BodyTimeout)
    }
}

impl IntoCode for ExchangeStatus {
    fn into_code(self) -> i32 {
        self.code()
    }
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
    /// Relays `req` to `ex.target()`.
    fn exchange(
        &'static self,
        req: Request,
        ex: Exchange,
    ) -> impl Future<Output = ExchangeStatus> + Send + 'static;
}

shim_fn! {
    fn scheme_shim<H: SchemeHandler>(
        data: *const c_void,
        req: *mut c_void,
        ex: *const ProxyExchange,
    ) -> AbiFuture = AbiFuture::ready(crate::abi::code::PANICKED);
    {
        // SAFETY: `data` is the &'static H registered in register_scheme;
        // the caller passes a live request and exchange (see ProxyExchange).
        let (handler, req) = unsafe { (&*(data as *const H), Request::from_raw(req)) };
        crate::future::export(handler.exchange(req, Exchange { raw: ex }), report_panic)
    }
}

/// Registers `handler` for URLs of `scheme` (e.g. "http").
pub fn register_scheme<M: Module, H: SchemeHandler>(
    r: &mut Registrar<M>,
    scheme: &str,
    handler: &'static H,
) {
    let table = SchemeHandlerV1 {
        size: std::mem::size_of::<SchemeHandlerV1>(),
        exchange: scheme_shim::<H>,
    };
    r.provider(SCHEME_GROUP, scheme, table, handler);
}

/// A scheme handler found in the registry. Holds the entry points copied
/// out of the provider's table, as far as its `size` says it has them.
#[derive(Clone, Copy)]
pub struct SchemeHandle {
    exchange: ExchangeFn,
    data: *const c_void,
}
type ExchangeFn = extern "C" fn(*const c_void, *mut c_void, *const ProxyExchange) -> AbiFuture;
// SAFETY: providers are Send + Sync by their traits and live forever.
unsafe impl Send for SchemeHandle {}
// SAFETY: as above.
unsafe impl Sync for SchemeHandle {}

impl SchemeHandle {
    pub fn lookup(scheme: &str) -> Option<SchemeHandle> {
        let p = crate::sdk::provider::lookup(SCHEME_GROUP, scheme)?;
        let table = p.vtable as *const SchemeHandlerV1;
        // SAFETY: providers in SCHEME_GROUP are registered by
        // register_scheme; `exchange` has been in every version's table.
        let exchange = unsafe { (*table).exchange };
        Some(SchemeHandle {
            exchange,
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
    ) -> (ExchangeStatus, ExchangeOutcome) {
        let flags = flags & !exchange_flags::TIMED;
        let (status, timed) = self
            .exchange_timed(req, target, worker, params, flags)
            .await;
        (status, timed.outcome)
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
    ) -> (ExchangeStatus, TimedOutcome) {
        let mut timed = TimedOutcome::default();
        let ex = ProxyExchange {
            target: AbiStr::new(target.as_bytes()),
            worker: AbiStr::new(worker.as_bytes()),
            params,
            flags,
            // The prefix, at the same address: what a pre-1.2 handler writes.
            outcome: &mut timed as *mut TimedOutcome as *mut ExchangeOutcome,
        };
        let raw = (self.exchange)(self.data, req.as_raw(), &ex);
        // SAFETY: made by scheme_shim via future::export; `ex`, `timed`
        // and `req` outlive it because we await it here, in this frame.
        let code = unsafe { crate::future::Imported::new(raw) }.await;
        (ExchangeStatus::from_code(code), timed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status survives the trip through its code, and codes a newer
    /// module might send read as a failure, not as success.
    #[test]
    fn statuses_round_trip_and_unknown_codes_fail() {
        for (status, code) in ExchangeStatus::ALL {
            assert_eq!(ExchangeStatus::from_code(code), status);
            assert_eq!(status.code(), code);
        }
        assert_eq!(ExchangeStatus::from_code(42), ExchangeStatus::Failed);
        assert_eq!(
            ExchangeStatus::from_code(crate::abi::code::PANICKED),
            ExchangeStatus::Failed
        );
    }
}
