//! The health family (ABI 1.3; group `proxy_health`, name `balancer`):
//! proxy_balancer lists the members that have health checks configured,
//! a checker module (proxy_hcheck) runs the checks and reports each one
//! back. The balancer keeps the state (consecutive passes and failures,
//! the health-check-failed flag) and shows it; the checker only probes.

use super::proxy::WorkerParams;
use super::values::AbiStr;
use std::ffi::c_void;

pub const HEALTH_GROUP: &str = "proxy_health";
pub const HEALTH_NAME: &str = "balancer";

/// [`HcTarget::method`]: how a member is checked (Apache's `hcmethod`).
pub mod hc_method {
    /// No active check (an agent check only, or passive checks only).
    pub const NONE: u32 = 0;
    /// A TCP connect.
    pub const TCP: u32 = 1;
    pub const OPTIONS: u32 = 2;
    pub const HEAD: u32 = 3;
    pub const GET: u32 = 4;
    /// ABI 1.5. AJP13's CPING, answered CPONG (ajp:// members).
    pub const CPING: u32 = 5;
}

/// One member to check. OWNERSHIP: the strings live as long as the
/// process (configuration leaked once at startup).
#[repr(C)]
pub struct HcTarget {
    /// The balancer's name (without `balancer://`).
    pub balancer: AbiStr,
    /// The member's index in the balancer, as in [`HealthV1::report`].
    pub member: u32,
    /// One of [`hc_method`].
    pub method: u32,
    /// The member's URL, e.g. `http://127.0.0.1:8080`.
    pub url: AbiStr,
    /// `hcuri`: the path appended to the member's URL.
    pub uri: AbiStr,
    /// `hcexpr`: the name of the condition a response must meet; empty
    /// for the default (a 2xx or 3xx status).
    pub expr: AbiStr,
    /// `hcagent`: `host:port` of the member's agent; empty for none.
    pub agent: AbiStr,
    /// Where the member is configured (`FILE: KEY`), for messages.
    pub at: AbiStr,
    /// `hcinterval`, between the starts of two checks.
    pub interval_ms: u64,
    /// `hctimeout`: one check's limit.
    pub timeout_ms: u64,
    /// The member's worker settings (connect timeout, TLS).
    pub params: WorkerParams,
}

/// [`HcReport::agent`]: what a member's agent answered (HAProxy's agent check).
pub mod agent_state {
    /// No agent configured, or it gave no state word.
    pub const NONE: u32 = 0;
    pub const UP: u32 = 1;
    pub const DOWN: u32 = 2;
    pub const DRAIN: u32 = 3;
    pub const MAINT: u32 = 4;
    /// The agent could not be reached or answered nonsense.
    pub const FAILED: u32 = 5;
}

/// One check's result. OWNERSHIP: borrowed for the call.
#[repr(C)]
pub struct HcReport {
    /// 1 when the active check passed (or there is none), 0 when it failed.
    pub passed: u32,
    /// One of [`agent_state`].
    pub agent: u32,
    /// The weight the agent gave, in percent of the configured
    /// loadfactor; 0 when it gave none.
    pub agent_weight: u32,
    /// How long the check took, in microseconds.
    pub duration_us: u64,
    /// Why it failed, for the status page; empty on a pass.
    pub reason: AbiStr,
}

/// The C face of the balancer's health interface. Fields are only ever appended.
#[repr(C)]
pub struct HealthV1 {
    pub size: usize,
    /// Calls `visitor(ud, target)` for each member with a check
    /// configured; the target is borrowed for that call.
    pub visit_targets: extern "C" fn(
        data: *const c_void,
        visitor: extern "C" fn(ud: *mut c_void, target: *const HcTarget),
        ud: *mut c_void,
    ),
    /// Books one check of `balancer`'s member `member`.
    pub report:
        extern "C" fn(data: *const c_void, balancer: AbiStr, member: u32, report: *const HcReport),
}
