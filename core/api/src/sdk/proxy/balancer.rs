//! The balancer provider, safe side: the [`Balancer`] trait proxy_balancer
//! implements, and the [`BalancerHandle`] proxy calls it through.

use super::{ExchangeOutcome, ExchangeStatus, WorkerParams};
use crate::abi::balancer::{pick, BalancerV1, MemberPick, BALANCER_GROUP, BALANCER_NAME};
use crate::abi::lbmethod::LbOutcome;
use crate::abi::{AbiStr, HeaderVisitor};
use crate::sdk::module::Registrar;
use crate::sdk::provider::{self, table_reaches};
use crate::sdk::shim::shim_fn;
use crate::sdk::{Module, Request};
use std::ffi::c_void;
use std::mem::offset_of;

/// A picked member as the safe side sees it.
#[derive(Debug, Clone)]
pub struct Picked {
    pub member: u32,
    pub url: &'static str,
    pub params: WorkerParams,
}

/// Why no member was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickError {
    /// Every member is unusable: 503.
    NoneUsable,
    /// No balancer by that name.
    NoSuchBalancer,
    /// The balancer panicked (its module logged why), or answered a code
    /// this build does not know: 500.
    Failed,
}

impl PickError {
    fn code(self) -> i32 {
        match self {
            PickError::NoneUsable => pick::NONE_USABLE,
            PickError::NoSuchBalancer => pick::NO_SUCH_BALANCER,
            PickError::Failed => crate::abi::code::PANICKED,
        }
    }
    fn from_code(code: i32) -> PickError {
        match code {
            pick::NONE_USABLE => PickError::NoneUsable,
            pick::NO_SUCH_BALANCER => PickError::NoSuchBalancer,
            _ => PickError::Failed,
        }
    }
}

/// Implemented by proxy_balancer.
pub trait Balancer: Send + Sync + 'static {
    fn exists(&self, name: &str) -> bool;
    /// Failover attempts allowed after the first.
    fn max_attempts(&self, name: &str) -> u32;
    /// Picks a member for `req`.
    fn pick(&self, name: &str, req: &mut Request) -> Result<Picked, PickError>;
    /// Tells the balancer how the attempt went; what a proxy built before
    /// ABI 1.2 calls.
    fn report(&self, name: &str, member: u32, status: ExchangeStatus, outcome: &ExchangeOutcome);
    /// The same with times and failover flags (ABI 1.2). The default drops
    /// them and calls `report`.
    fn report_done(&self, name: &str, member: u32, outcome: &LbOutcome) {
        let status = ExchangeStatus::from_code(outcome.code);
        self.report(name, member, status, &outcome.exchange())
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

/// The balancer behind a shim's `data`.
///
/// # Safety
/// `data` is the `&'static B` registered by [`register_balancer`].
unsafe fn this<'a, B>(data: *const c_void) -> &'a B {
    // SAFETY: guaranteed by the caller.
    unsafe { &*(data as *const B) }
}

shim_fn! {
    fn bal_exists<B: Balancer>(data: *const c_void, name: AbiStr) -> bool = false;
    {
        // SAFETY: the host calls the table register_balancer made for B.
        unsafe { this::<B>(data) }.exists(str_arg(name))
    }

    fn bal_max_attempts<B: Balancer>(data: *const c_void, name: AbiStr) -> u32 = 0;
    {
        // SAFETY: as in bal_exists.
        unsafe { this::<B>(data) }.max_attempts(str_arg(name))
    }

    fn bal_pick<B: Balancer>(
        data: *const c_void,
        name: AbiStr,
        req: *mut c_void,
        out: *mut MemberPick,
    ) -> i32 = crate::abi::code::PANICKED;
    {
        // SAFETY: as in bal_exists; the caller passes a live request for the call.
        let (b, mut req) = unsafe { (this::<B>(data), Request::from_raw(req)) };
        match b.pick(str_arg(name), &mut req) {
            Ok(p) => {
                let pick = MemberPick {
                    member: p.member,
                    url: AbiStr::new(p.url.as_bytes()),
                    params: p.params,
                };
                // SAFETY: `out` is valid for writing, provided by the caller.
                unsafe { *out = pick };
                pick::OK
            }
            Err(e) => e.code(),
        }
    }

    fn bal_report<B: Balancer>(
        data: *const c_void,
        name: AbiStr,
        member: u32,
        code: i32,
        outcome: *const ExchangeOutcome,
    ) = ();
    {
        // SAFETY: as in bal_exists; `outcome` is valid for the call.
        let (b, outcome) = unsafe { (this::<B>(data), &*outcome) };
        b.report(str_arg(name), member, ExchangeStatus::from_code(code), outcome)
    }

    fn bal_report_done<B: Balancer>(
        data: *const c_void,
        name: AbiStr,
        member: u32,
        outcome: *const LbOutcome,
    ) = ();
    {
        // SAFETY: as in bal_report.
        let (b, outcome) = unsafe { (this::<B>(data), &*outcome) };
        b.report_done(str_arg(name), member, outcome)
    }

    fn bal_wait_ms<B: Balancer>(data: *const c_void, name: AbiStr) -> u64 = 0;
    {
        // SAFETY: as in bal_exists.
        let wait = unsafe { this::<B>(data) }.wait(str_arg(name));
        u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
    }

    fn bal_visit<B: Balancer>(
        data: *const c_void,
        name: AbiStr,
        visitor: HeaderVisitor,
        ud: *mut c_void,
    ) = ();
    {
        // SAFETY: as in bal_exists.
        for url in unsafe { this::<B>(data) }.member_urls(str_arg(name)) {
            visitor(ud, AbiStr::new(url.as_bytes()), AbiStr::EMPTY);
        }
    }

    fn bal_status_table<B: Balancer>(data: *const c_void, visitor: HeaderVisitor, ud: *mut c_void) = ();
    {
        // SAFETY: as in bal_exists.
        let text = unsafe { this::<B>(data) }.status_table();
        visitor(ud, AbiStr::new(text.as_bytes()), AbiStr::EMPTY);
    }
}

/// The host's side of [`BalancerV1::status_table`]: `None` when the
/// provider's table does not reach it.
///
/// # Safety
/// `vtable` and `data` must be the provider registered in
/// [`BALANCER_GROUP`] by [`register_balancer`].
pub unsafe fn call_status_table(vtable: *const c_void, data: *const c_void) -> Option<String> {
    let table = vtable as *const BalancerV1;
    // SAFETY: guaranteed by the caller; the field is read only when the
    // table's size reaches it.
    let status_table = unsafe {
        table_reaches(table, offset_of!(BalancerV1, status_table)).then(|| (*table).status_table)
    }?;
    extern "C" fn append(ud: *mut c_void, text: AbiStr, _: AbiStr) {
        // SAFETY: `ud` is the String below, alive for the call.
        let out = unsafe { &mut *(ud as *mut String) };
        out.push_str(str_arg(text));
    }
    let mut out = String::new();
    status_table(data, append, &mut out as *mut String as *mut c_void);
    Some(out)
}

pub fn register_balancer<M: Module, B: Balancer>(r: &mut Registrar<M>, balancer: &'static B) {
    let table = BalancerV1 {
        size: std::mem::size_of::<BalancerV1>(),
        exists: bal_exists::<B>,
        max_attempts: bal_max_attempts::<B>,
        pick: bal_pick::<B>,
        report: bal_report::<B>,
        visit_members: bal_visit::<B>,
        status_table: bal_status_table::<B>,
        wait_ms: bal_wait_ms::<B>,
        report_done: bal_report_done::<B>,
    };
    r.provider(BALANCER_GROUP, BALANCER_NAME, table, balancer);
}

type ExistsFn = extern "C" fn(*const c_void, AbiStr) -> bool;
type MaxAttemptsFn = extern "C" fn(*const c_void, AbiStr) -> u32;
type PickFn = extern "C" fn(*const c_void, AbiStr, *mut c_void, *mut MemberPick) -> i32;
type ReportFn = extern "C" fn(*const c_void, AbiStr, u32, i32, *const ExchangeOutcome);
type VisitFn = extern "C" fn(*const c_void, AbiStr, HeaderVisitor, *mut c_void);
type WaitFn = extern "C" fn(*const c_void, AbiStr) -> u64;
type ReportDoneFn = extern "C" fn(*const c_void, AbiStr, u32, *const LbOutcome);

/// The balancer provider as proxy sees it: the entry points copied out of
/// its table, the ones appended after 1.0 only when its `size` reaches
/// them (no reference to a table shorter than today's is ever made).
#[derive(Clone, Copy)]
pub struct BalancerHandle {
    data: *const c_void,
    exists: ExistsFn,
    max_attempts: MaxAttemptsFn,
    pick: PickFn,
    report: ReportFn,
    visit_members: VisitFn,
    wait_ms: WaitFn,
    /// ABI 1.2.
    report_done: Option<ReportDoneFn>,
}
// SAFETY: providers are Send + Sync by their traits and live forever.
unsafe impl Send for BalancerHandle {}
// SAFETY: as above.
unsafe impl Sync for BalancerHandle {}

impl BalancerHandle {
    pub fn lookup() -> Option<BalancerHandle> {
        let p = provider::lookup(BALANCER_GROUP, BALANCER_NAME)?;
        let t = p.vtable as *const BalancerV1;
        // SAFETY: the provider in BALANCER_GROUP is registered by
        // register_balancer (of this minor or an older one): the 1.0
        // entries are in every table, the others past the size check.
        unsafe {
            Some(BalancerHandle {
                data: p.data,
                exists: (*t).exists,
                max_attempts: (*t).max_attempts,
                pick: (*t).pick,
                report: (*t).report,
                visit_members: (*t).visit_members,
                wait_ms: (*t).wait_ms,
                report_done: table_reaches(t, offset_of!(BalancerV1, report_done))
                    .then(|| (*t).report_done),
            })
        }
    }
    pub fn exists(&self, name: &str) -> bool {
        (self.exists)(self.data, AbiStr::new(name.as_bytes()))
    }
    pub fn max_attempts(&self, name: &str) -> u32 {
        (self.max_attempts)(self.data, AbiStr::new(name.as_bytes()))
    }
    /// How long a request may wait for a usable member (0 = no wait).
    pub fn wait(&self, name: &str) -> std::time::Duration {
        let ms = (self.wait_ms)(self.data, AbiStr::new(name.as_bytes()));
        std::time::Duration::from_millis(ms)
    }
    pub fn pick(&self, name: &str, req: &mut Request) -> Result<Picked, PickError> {
        let mut out = MemberPick {
            member: 0,
            url: AbiStr::EMPTY,
            params: WorkerParams::default(),
        };
        let name = AbiStr::new(name.as_bytes());
        match (self.pick)(self.data, name, req.as_raw(), &mut out) {
            pick::OK => Ok(Picked {
                member: out.member,
                // SAFETY: member URLs live as long as the process (see MemberPick).
                url: unsafe { out.url.as_str() },
                params: out.params,
            }),
            code => Err(PickError::from_code(code)),
        }
    }
    pub fn report(
        &self,
        name: &str,
        member: u32,
        status: ExchangeStatus,
        outcome: &ExchangeOutcome,
    ) {
        let name = AbiStr::new(name.as_bytes());
        (self.report)(self.data, name, member, status.code(), outcome);
    }
    /// Reports an attempt with its times; to a balancer built before ABI
    /// 1.2 as a plain `report`.
    pub fn report_done(&self, name: &str, member: u32, outcome: &LbOutcome) {
        let Some(f) = self.report_done else {
            let status = ExchangeStatus::from_code(outcome.code);
            return self.report(name, member, status, &outcome.exchange());
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
        let ud = &mut urls as *mut Vec<String> as *mut c_void;
        (self.visit_members)(self.data, AbiStr::new(name.as_bytes()), collect, ud);
        urls
    }
}
