//! The health family, safe side (ABI 1.3): [`HealthTargets`] is what
//! proxy_balancer implements (the members to check, and a place to book
//! each check), [`HealthHandle`] is how a checker (proxy_hcheck) reaches
//! it. The C face is [`crate::abi::health`].

pub use crate::abi::health::{HEALTH_GROUP, HEALTH_NAME};

use crate::abi::health::{agent_state, hc_method, HcReport, HcTarget, HealthV1};
use crate::abi::AbiStr;
use crate::sdk::module::Registrar;
use crate::sdk::provider;
use crate::sdk::proxy::WorkerParams;
use crate::sdk::shim::shim_fn;
use crate::sdk::Module;
use std::ffi::c_void;
use std::time::Duration;

/// How a member is checked (`hcmethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMethod {
    /// No active check: an agent or passive checks only.
    None,
    /// A TCP connect.
    Tcp,
    Options,
    Head,
    Get,
    /// AJP13's CPING, answered CPONG (ABI 1.5).
    Cping,
}

impl CheckMethod {
    fn code(self) -> u32 {
        match self {
            CheckMethod::None => hc_method::NONE,
            CheckMethod::Tcp => hc_method::TCP,
            CheckMethod::Options => hc_method::OPTIONS,
            CheckMethod::Head => hc_method::HEAD,
            CheckMethod::Get => hc_method::GET,
            CheckMethod::Cping => hc_method::CPING,
        }
    }
    fn from_code(c: u32) -> CheckMethod {
        match c {
            hc_method::TCP => CheckMethod::Tcp,
            hc_method::OPTIONS => CheckMethod::Options,
            hc_method::HEAD => CheckMethod::Head,
            hc_method::GET => CheckMethod::Get,
            hc_method::CPING => CheckMethod::Cping,
            _ => CheckMethod::None,
        }
    }
    /// The HTTP method it sends, if it sends one.
    pub fn http_method(self) -> Option<&'static str> {
        match self {
            CheckMethod::Options => Some("OPTIONS"),
            CheckMethod::Head => Some("HEAD"),
            CheckMethod::Get => Some("GET"),
            CheckMethod::None | CheckMethod::Tcp | CheckMethod::Cping => None,
        }
    }
}

/// One member to check; the strings live as long as the process.
#[derive(Debug, Clone)]
pub struct CheckTarget {
    pub balancer: &'static str,
    pub member: u32,
    pub method: CheckMethod,
    pub url: &'static str,
    pub uri: &'static str,
    /// The `hcexpr` condition's name; empty for "a 2xx or 3xx status".
    pub expr: &'static str,
    /// The agent's `host:port`; empty for none.
    pub agent: &'static str,
    /// Where the member is configured, for messages.
    pub at: &'static str,
    pub interval: Duration,
    pub timeout: Duration,
    pub params: WorkerParams,
}

/// What a member's agent answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Up,
    Down,
    Drain,
    Maint,
    /// Unreachable, or an answer with no word or weight it understood.
    Failed,
}

/// An agent's answer: a state, a weight in percent, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentAnswer {
    pub state: Option<AgentState>,
    pub weight_percent: Option<u32>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The active check passed (true when there is none).
    pub passed: bool,
    pub duration: Duration,
    /// Why it failed; empty on a pass.
    pub reason: String,
    /// The agent's answer, when the member has an agent.
    pub agent: Option<AgentAnswer>,
}

/// Implemented by proxy_balancer.
pub trait HealthTargets: Send + Sync + 'static {
    /// Every member with a check configured.
    fn targets(&self) -> Vec<CheckTarget>;
    /// Books one check of `balancer`'s member `member`.
    fn report(&self, balancer: &str, member: u32, report: &CheckReport);
}

fn str_arg<'a>(s: AbiStr) -> &'a str {
    // SAFETY: the caller passes a &str for the duration of the call.
    unsafe { s.as_str() }
}

fn static_str(s: &'static str) -> AbiStr {
    AbiStr::new(s.as_bytes())
}

shim_fn! {
    fn visit_targets<H: HealthTargets>(
        data: *const c_void,
        visitor: extern "C" fn(*mut c_void, *const HcTarget),
        ud: *mut c_void,
    ) = ();
    {
        // SAFETY: `data` is the &'static H registered in register_health.
        let h = unsafe { &*(data as *const H) };
        for t in h.targets() {
            let raw = HcTarget {
                balancer: static_str(t.balancer),
                member: t.member,
                method: t.method.code(),
                url: static_str(t.url),
                uri: static_str(t.uri),
                expr: static_str(t.expr),
                agent: static_str(t.agent),
                at: static_str(t.at),
                interval_ms: millis(t.interval),
                timeout_ms: millis(t.timeout),
                params: t.params,
            };
            visitor(ud, &raw);
        }
    }

    fn report_shim<H: HealthTargets>(
        data: *const c_void,
        balancer: AbiStr,
        member: u32,
        report: *const HcReport,
    ) = ();
    {
        // SAFETY: as in visit_targets; `report` is valid for the call.
        let (h, raw) = unsafe { (&*(data as *const H), &*report) };
        h.report(str_arg(balancer), member, &from_raw(raw))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn from_raw(raw: &HcReport) -> CheckReport {
    let state = match raw.agent {
        agent_state::UP => Some(AgentState::Up),
        agent_state::DOWN => Some(AgentState::Down),
        agent_state::DRAIN => Some(AgentState::Drain),
        agent_state::MAINT => Some(AgentState::Maint),
        agent_state::FAILED => Some(AgentState::Failed),
        _ => None,
    };
    let weight = (raw.agent_weight != 0).then_some(raw.agent_weight);
    let agent = (state.is_some() || weight.is_some()).then_some(AgentAnswer {
        state,
        weight_percent: weight,
    });
    CheckReport {
        passed: raw.passed != 0,
        duration: Duration::from_micros(raw.duration_us),
        // SAFETY: borrowed for this call, copied out here.
        reason: unsafe { raw.reason.to_str_lossy() }.into_owned(),
        agent,
    }
}

fn to_raw(report: &CheckReport) -> HcReport {
    let answer = report.agent.unwrap_or_default();
    HcReport {
        passed: u32::from(report.passed),
        agent: match answer.state {
            None => agent_state::NONE,
            Some(AgentState::Up) => agent_state::UP,
            Some(AgentState::Down) => agent_state::DOWN,
            Some(AgentState::Drain) => agent_state::DRAIN,
            Some(AgentState::Maint) => agent_state::MAINT,
            Some(AgentState::Failed) => agent_state::FAILED,
        },
        agent_weight: answer.weight_percent.unwrap_or(0),
        duration_us: u64::try_from(report.duration.as_micros()).unwrap_or(u64::MAX),
        reason: AbiStr::new(report.reason.as_bytes()),
    }
}

/// Registers proxy_balancer's health interface.
pub fn register_health<M: Module, H: HealthTargets>(r: &mut Registrar<M>, source: &'static H) {
    let table = HealthV1 {
        size: std::mem::size_of::<HealthV1>(),
        visit_targets: visit_targets::<H>,
        report: report_shim::<H>,
    };
    r.provider(HEALTH_GROUP, HEALTH_NAME, table, source);
}

type VisitFn =
    extern "C" fn(*const c_void, extern "C" fn(*mut c_void, *const HcTarget), *mut c_void);
type ReportFn = extern "C" fn(*const c_void, AbiStr, u32, *const HcReport);

/// The balancer's health interface as a checker sees it.
#[derive(Clone, Copy)]
pub struct HealthHandle {
    data: *const c_void,
    visit_targets: VisitFn,
    report: ReportFn,
}
// SAFETY: providers are Send + Sync by their traits and live forever.
unsafe impl Send for HealthHandle {}
// SAFETY: as above.
unsafe impl Sync for HealthHandle {}

impl HealthHandle {
    pub fn lookup() -> Option<HealthHandle> {
        let p = provider::lookup(HEALTH_GROUP, HEALTH_NAME)?;
        let t = p.vtable as *const HealthV1;
        // SAFETY: registered by register_health; both entries have been in
        // the table since it first appeared (1.3).
        let (visit_targets, report) = unsafe { ((*t).visit_targets, (*t).report) };
        Some(HealthHandle {
            data: p.data,
            visit_targets,
            report,
        })
    }

    pub fn targets(&self) -> Vec<CheckTarget> {
        extern "C" fn collect(ud: *mut c_void, t: *const HcTarget) {
            // SAFETY: `ud` is the Vec below and `t` a target borrowed for
            // this call, whose strings live as long as the process.
            let (out, t) = unsafe { (&mut *(ud as *mut Vec<CheckTarget>), &*t) };
            // SAFETY: as above: the strings are 'static.
            let s = |a: AbiStr| -> &'static str { unsafe { a.as_str() } };
            out.push(CheckTarget {
                balancer: s(t.balancer),
                member: t.member,
                method: CheckMethod::from_code(t.method),
                url: s(t.url),
                uri: s(t.uri),
                expr: s(t.expr),
                agent: s(t.agent),
                at: s(t.at),
                interval: Duration::from_millis(t.interval_ms),
                timeout: Duration::from_millis(t.timeout_ms),
                params: t.params,
            });
        }
        let mut out: Vec<CheckTarget> = Vec::new();
        (self.visit_targets)(
            self.data,
            collect,
            &mut out as *mut Vec<CheckTarget> as *mut c_void,
        );
        out
    }

    pub fn report(&self, balancer: &str, member: u32, report: &CheckReport) {
        let raw = to_raw(report);
        (self.report)(self.data, AbiStr::new(balancer.as_bytes()), member, &raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_cross_the_boundary_unchanged() {
        let report = CheckReport {
            passed: false,
            duration: Duration::from_micros(1234),
            reason: "status 503".into(),
            agent: Some(AgentAnswer {
                state: Some(AgentState::Drain),
                weight_percent: Some(75),
            }),
        };
        assert_eq!(from_raw(&to_raw(&report)), report);
        let plain = CheckReport {
            passed: true,
            duration: Duration::ZERO,
            reason: String::new(),
            agent: None,
        };
        assert_eq!(from_raw(&to_raw(&plain)), plain);
    }
}
