//! The balancer family (group `proxy_balancer`, name `balancer`): how
//! proxy asks proxy_balancer for a member and reports how the attempt went.

use super::lbmethod::LbOutcome;
use super::proxy::{ExchangeOutcome, WorkerParams};
use super::values::{AbiStr, HeaderVisitor};
use std::ffi::c_void;

pub const BALANCER_GROUP: &str = "proxy_balancer";
pub const BALANCER_NAME: &str = "balancer";

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
