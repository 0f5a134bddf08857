//! The members family (ABI 1.6): balancer members that come and go at run
//! time, and manager changes shared across a fleet.
//!
//! Two providers, one each way:
//!
//! - group `proxy_members`, name `balancer` ([`MembersV1`]): offered by
//!   proxy_balancer. A source module (proxy_discovery) lists the balancers
//!   that name a source (`discovery = {…}` or `manager_sync = {…}`), hands
//!   over each balancer's whole discovered member set whenever it changes,
//!   says when its store went stale, and applies manager changes other
//!   nodes made.
//! - group `proxy_member_sync`, name `discovery` ([`MemberSyncV1`]):
//!   offered by the source module. proxy_balancer calls it after its own
//!   balancer manager changed a member of a balancer with `manager_sync`,
//!   so that the change reaches the store.
//!
//! Every entry may be called from any thread (the source module runs its
//! store clients on a thread of its own): proxy_balancer's state is behind
//! its locks, and the source module only queues what it is told.

use super::values::AbiStr;
use std::ffi::c_void;

pub const MEMBERS_GROUP: &str = "proxy_members";
pub const MEMBERS_NAME: &str = "balancer";
pub const SYNC_GROUP: &str = "proxy_member_sync";
pub const SYNC_NAME: &str = "discovery";

/// [`MemberSource::kind`]: which key of the balancer's table named it.
pub mod source_kind {
    /// `discovery = {…}`: where the balancer's members come from.
    pub const DISCOVERY: u32 = 1;
    /// `manager_sync = {…}`: where its manager changes are shared.
    pub const MANAGER_SYNC: u32 = 2;
}

/// One balancer's source. OWNERSHIP: borrowed for the visitor's call.
#[repr(C)]
pub struct MemberSource {
    /// The balancer's name (without `balancer://`).
    pub balancer: AbiStr,
    /// One of [`source_kind`].
    pub kind: u32,
    /// The key's value as JSON, exactly as the config file wrote it.
    pub config: AbiStr,
    /// Where the key is (`FILE: KEY`), for messages.
    pub at: AbiStr,
}

/// One discovered member. OWNERSHIP: borrowed for the call.
#[repr(C)]
pub struct MemberSpec {
    /// Where it came from, for messages (an etcd key, a DNS record).
    pub origin: AbiStr,
    /// The member as JSON with the keys of a config member (`url`,
    /// `loadfactor`, `lbset`, `route`, `status`, `retry`, …).
    pub json: AbiStr,
}

/// A member's operator settings, as the balancer manager changes them.
/// OWNERSHIP: borrowed for the call.
#[repr(C)]
pub struct MemberSettings {
    pub loadfactor: u32,
    pub lbset: u32,
    pub route: AbiStr,
    /// The operator's flags only, e.g. `+D+N` (empty: none set).
    pub status: AbiStr,
}

/// [`MembersV1::apply_settings`]'s answer.
pub mod apply_code {
    pub const OK: i32 = 0;
    /// The balancer has no member by that URL (yet).
    pub const NO_SUCH_MEMBER: i32 = 1;
    /// The settings are not valid for the member; the balancer logged why.
    pub const INVALID: i32 = 2;
}

/// proxy_balancer's face to a source module. Fields are only ever appended.
#[repr(C)]
pub struct MembersV1 {
    pub size: usize,
    /// Calls `visitor(ud, source)` for each balancer key naming a source.
    pub visit_sources: extern "C" fn(
        data: *const c_void,
        visitor: extern "C" fn(ud: *mut c_void, source: *const MemberSource),
        ud: *mut c_void,
    ),
    /// Replaces `balancer`'s discovered members by the `n` at `specs`: a
    /// new URL is added (its lbmethod counters levelled with the others',
    /// so it gets no burst), a known one updated, a missing one drained.
    /// Returns how many specs were refused (the balancer logged why).
    pub set_members: extern "C" fn(
        data: *const c_void,
        balancer: AbiStr,
        specs: *const MemberSpec,
        n: usize,
    ) -> u32,
    /// The source of `balancer` is unreachable since Unix time
    /// `since_unix` (0: reachable again); `reason` says why.
    pub set_stale:
        extern "C" fn(data: *const c_void, balancer: AbiStr, since_unix: u64, reason: AbiStr),
    /// Applies a manager change read from the store to member `url` of
    /// `balancer`; one of [`apply_code`]. Not passed back to the sync
    /// provider.
    pub apply_settings: extern "C" fn(
        data: *const c_void,
        balancer: AbiStr,
        url: AbiStr,
        settings: *const MemberSettings,
    ) -> i32,
}

/// The source module's face to proxy_balancer. Fields are only ever appended.
#[repr(C)]
pub struct MemberSyncV1 {
    pub size: usize,
    /// This node's balancer manager set member `url` of `balancer` to
    /// `settings`.
    pub changed: extern "C" fn(
        data: *const c_void,
        balancer: AbiStr,
        url: AbiStr,
        settings: *const MemberSettings,
    ),
}
