//! The lbmethod family (group `lbmethod`, one name per method): the member
//! table a method reads and changes, what the core keeps beside it, how an
//! attempt went, and the method's table of entry points.
//!
//! OWNERSHIP: the arrays a method gets are borrowed from the balancer,
//! exclusively, for the call (its lock is held); the per-balancer state is
//! made by the method's `new_state` and freed by its `drop_state`.

use super::values::AbiStr;
use std::ffi::c_void;

/// Member status bits (Apache's `status=` flags).
pub mod flags {
    /// +D: administratively disabled; never picked.
    pub const DISABLED: u32 = 1 << 0;
    /// +N: draining; takes only its existing sticky sessions.
    pub const DRAINING: u32 = 1 << 1;
    /// +H: hot standby; used only when no ordinary member of the set is usable.
    pub const STANDBY: u32 = 1 << 2;
    /// +R: spare; replaces an unusable ordinary member one for one.
    pub const SPARE: u32 = 1 << 3;
    /// +E: in error (connect failed recently); not usable until `retry` passes.
    pub const IN_ERROR: u32 = 1 << 4;
    /// +S: stopped by the operator.
    pub const STOPPED: u32 = 1 << 5;
    /// +I: ignore errors: never put in error state.
    pub const IGNORE_ERRORS: u32 = 1 << 6;
    /// +C (ABI 1.3): failed its health checks; not usable until it passes
    /// `hcpasses` of them. An lbmethod built before 1.3 does not know
    /// this bit: the balancer shows such a member to it as in error too.
    pub const HC_FAILED: u32 = 1 << 7;
}

/// One balancer member as an lbmethod sees it.
///
/// `repr(C)` because it crosses from proxy_balancer into third-party
/// lbmethod modules. FROZEN: `find` gets an array of these, so its size is
/// the array's stride; new per-member data goes into a parallel array of a
/// new struct handed only to a new entry point (as [`LbStats`] is).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LbMember {
    /// loadfactor × 100 (Apache's `lbfactor`), 100..=10000.
    pub lbfactor: i64,
    /// The method's running score for this member (Apache's `lbstatus`).
    pub lbstatus: i64,
    /// Lower sets are tried first.
    pub lbset: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// Requests in flight on this member now.
    pub busy: u64,
    /// Bytes sent to the member so far.
    pub bytes_written: u64,
    /// Bytes read from the member so far.
    pub bytes_read: u64,
    /// Times this member was picked.
    pub elected: u64,
}

impl LbMember {
    /// Usable for new requests: not disabled, stopped or in error
    /// (Apache's `PROXY_WORKER_IS_USABLE`).
    pub fn is_usable(&self) -> bool {
        self.flags & (flags::DISABLED | flags::STOPPED | flags::IN_ERROR | flags::HC_FAILED) == 0
    }
    pub fn is_draining(&self) -> bool {
        self.flags & flags::DRAINING != 0
    }
    pub fn is_spare(&self) -> bool {
        self.flags & flags::SPARE != 0
    }
    pub fn is_standby(&self) -> bool {
        self.flags & flags::STANDBY != 0
    }
}

/// What the core keeps about a member besides [`LbMember`] (ABI 1.2):
/// `stats[i]` describes `members[i]`. Read-only for methods. FROZEN for the
/// same reason as `LbMember`: it travels as an array.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LbStats {
    /// Times an attempt put the member in error state (connect failed,
    /// `failonstatus`, `failontimeout`).
    pub errors: u64,
    /// Attempts that timed their response: the samples behind `response_avg_us`.
    pub samples: u64,
    /// Moving average of the time to the response head, in microseconds
    /// (each sample weighs 1/8, as TCP's smoothed RTT); 0 before the first sample.
    pub response_avg_us: u64,
}

impl LbStats {
    /// Adds one timed attempt to the average (`us` = 0: not timed, ignored).
    pub fn sample(&mut self, us: u64) {
        if us == 0 {
            return;
        }
        self.response_avg_us = if self.samples == 0 {
            us
        } else {
            let avg = self.response_avg_us as i128;
            (avg + (us as i128 - avg) / 8) as u64
        };
        self.samples = self.samples.saturating_add(1);
    }
}

/// [`LbOutcome::flags`] bits.
pub mod outcome_flags {
    /// The attempt failed and the request went on to another member.
    pub const FAILED_OVER: u32 = 1 << 0;
    /// The attempt was itself a failover: an earlier member failed first.
    pub const RETRY: u32 = 1 << 1;
}

/// How one attempt on one member went (ABI 1.2): proxy reports it to the
/// balancer, which hands it to the member's lbmethod ([`crate::lb::LbMethod::done`]).
/// Times are 0 when not measured (a proxy or scheme handler built before
/// ABI 1.2, or an attempt that never got a head).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LbOutcome {
    /// From the pick to the backend's response head, in microseconds.
    pub head_us: u64,
    /// From the pick to the end of the exchange (body relayed), in microseconds.
    pub total_us: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The exchange's result, a `proxy::exchange` code (0 = relayed).
    pub code: i32,
    /// [`outcome_flags`] bits.
    pub flags: u32,
    /// The backend's status, 0 if no response head arrived.
    pub status: u16,
}

impl LbOutcome {
    pub fn failed_over(&self) -> bool {
        self.flags & outcome_flags::FAILED_OVER != 0
    }
    /// What a pre-1.2 `BalancerV1::report` carries of it.
    pub fn exchange(&self) -> super::proxy::ExchangeOutcome {
        super::proxy::ExchangeOutcome {
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            status: self.status,
        }
    }
    /// The response time a latency-aware method should weigh: to the head
    /// when measured, else to the end; 0 when neither was.
    pub fn response_us(&self) -> u64 {
        if self.head_us != 0 {
            self.head_us
        } else {
            self.total_us
        }
    }
}

pub const GROUP: &str = "lbmethod";

/// Returned by `find` when the method panicked (the balancer answers 503).
pub const FIND_PANICKED: i64 = -2;
/// Returned by `find` when no member is usable.
pub const FIND_NONE: i64 = -1;

/// The C face of an lbmethod. Fields are only ever appended.
#[repr(C)]
pub struct LbMethodV1 {
    pub size: usize,
    /// Makes the per-balancer state. OWNERSHIP: freed with `drop_state`.
    pub new_state: extern "C" fn(data: *const c_void, balancer: AbiStr) -> *mut c_void,
    pub drop_state: extern "C" fn(data: *const c_void, state: *mut c_void),
    /// Index of the chosen member, [`FIND_NONE`] or [`FIND_PANICKED`].
    pub find: extern "C" fn(
        data: *const c_void,
        state: *mut c_void,
        members: *mut LbMember,
        len: usize,
        req: *mut c_void,
    ) -> i64,
    /// Called when the operator resets the balancer's statistics.
    pub reset:
        extern "C" fn(data: *const c_void, state: *mut c_void, members: *mut LbMember, len: usize),
    // ABI 1.2. The caller checks `size` before using these: a module built
    // for 1.0 or 1.1 has a table that ends above.
    /// As `find`, with `stats[i]` for `members[i]` (both `len` long).
    pub find_with_stats: extern "C" fn(
        data: *const c_void,
        state: *mut c_void,
        members: *mut LbMember,
        stats: *const LbStats,
        len: usize,
        req: *mut c_void,
    ) -> i64,
    /// One attempt on `members[member]` ended; once per pick.
    pub done: extern "C" fn(
        data: *const c_void,
        state: *mut c_void,
        members: *mut LbMember,
        stats: *const LbStats,
        len: usize,
        member: usize,
        outcome: *const LbOutcome,
    ),
}
