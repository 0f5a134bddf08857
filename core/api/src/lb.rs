//! The load-balancing method (lbmethod) API: the member table a method reads
//! and changes, and the selection helpers Apache's methods share.
//!
//! A balancer hands its lbmethod a slice of [`LbMember`] while it holds the
//! balancer's lock, so a method may read and write every field without
//! further synchronisation; state that outlives one pick lives in
//! `lbstatus` (per member) or in the method's per-balancer state.
//!
//! Since ABI 1.2 a method may also read [`LbStats`] (what the core keeps
//! per member: errors, a response-time average) and hear how each attempt
//! went ([`LbOutcome`], through [`LbMethod::done`]). `LbMember` itself is
//! frozen: it travels as an array, so a new field would move every member
//! after the first for a module built before it.

pub mod select;

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
        self.flags & (flags::DISABLED | flags::STOPPED | flags::IN_ERROR) == 0
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
/// balancer, which hands it to the member's lbmethod ([`LbMethod::done`]).
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
    pub fn exchange(&self) -> crate::proxy::ExchangeOutcome {
        crate::proxy::ExchangeOutcome {
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

// ---------------------------------------------------------------------------
// The lbmethod provider: group "lbmethod", one name per method.

use crate::abi::AbiStr;
use crate::sdk::module::{guard, Registrar};
use crate::sdk::{Module, Request};
use std::ffi::c_void;

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

/// A load-balancing method (Apache's `proxy_balancer_method`).
///
/// Thread safety: `find` and `reset` are called with the balancer's lock
/// held, so `state` and `members` are yours alone during the call; `&self`
/// is shared by every balancer and thread, so keep it immutable (or use
/// atomics). Never block: the call sits on a request's path.
pub trait LbMethod: Send + Sync + 'static {
    /// Per-balancer state, made once per balancer that uses this method.
    type State: Send + 'static;
    fn new_state(&self, balancer: &str) -> Self::State;
    /// Picks a member index among `members` (config order), or `None` when
    /// none is usable. See [`select::get_best`] for Apache's shared rules.
    fn find(
        &self,
        state: &mut Self::State,
        members: &mut [LbMember],
        req: &Request,
    ) -> Option<usize>;
    /// Runs once when the method is attached to a balancer (at startup,
    /// before the first `find`; and when the balancer manager switches a
    /// balancer to it), to bring `lbstatus` and `state` to a fresh start.
    fn reset(&self, _state: &mut Self::State, _members: &mut [LbMember]) {}
    /// As `find`, with what the core keeps about each member (`stats[i]`
    /// for `members[i]`). The default ignores it and calls `find`.
    fn find_with_stats(
        &self,
        state: &mut Self::State,
        members: &mut [LbMember],
        _stats: &[LbStats],
        req: &Request,
    ) -> Option<usize> {
        self.find(state, members, req)
    }
    /// How an attempt on `members[member]` went: called once for each pick
    /// (sticky ones too), when the exchange ends, under the same lock as
    /// `find`; `busy` and the byte counts already include it. The default
    /// does nothing.
    fn done(
        &self,
        _state: &mut Self::State,
        _members: &mut [LbMember],
        _stats: &[LbStats],
        _member: usize,
        _outcome: &LbOutcome,
    ) {
    }
}

fn members_mut<'a>(members: *mut LbMember, len: usize) -> &'a mut [LbMember] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: the balancer passes its member table, exclusively borrowed for the call.
    unsafe { std::slice::from_raw_parts_mut(members, len) }
}

fn stats_ref<'a>(stats: *const LbStats, len: usize) -> &'a [LbStats] {
    if len == 0 || stats.is_null() {
        return &[];
    }
    // SAFETY: the balancer passes its stats array, `len` long, alive for the call.
    unsafe { std::slice::from_raw_parts(stats, len) }
}

extern "C" fn lb_new_state<L: LbMethod>(data: *const c_void, balancer: AbiStr) -> *mut c_void {
    // SAFETY: `data` is the &'static L registered in register_lbmethod.
    let method = unsafe { &*(data as *const L) };
    guard(std::ptr::null_mut(), || {
        // SAFETY: the name is valid for the call.
        let name = unsafe { balancer.to_str_lossy() };
        Box::into_raw(Box::new(method.new_state(&name))) as *mut c_void
    })
}
extern "C" fn lb_drop_state<L: LbMethod>(_data: *const c_void, state: *mut c_void) {
    if !state.is_null() {
        guard((), || {
            // SAFETY: made by lb_new_state::<L>, freed once.
            drop(unsafe { Box::from_raw(state as *mut L::State) })
        });
    }
}
extern "C" fn lb_find<L: LbMethod>(
    data: *const c_void,
    state: *mut c_void,
    members: *mut LbMember,
    len: usize,
    req: *mut c_void,
) -> i64 {
    // SAFETY: as in lb_new_state; `state` was made by lb_new_state::<L> and
    // the balancer's lock makes our access exclusive.
    let (method, state) = unsafe { (&*(data as *const L), &mut *(state as *mut L::State)) };
    guard(FIND_PANICKED, || {
        // SAFETY: the balancer passes the live request.
        let req = unsafe { Request::from_raw(req) };
        match method.find(state, members_mut(members, len), &req) {
            Some(i) if i < len => i as i64,
            _ => FIND_NONE,
        }
    })
}
extern "C" fn lb_find_with_stats<L: LbMethod>(
    data: *const c_void,
    state: *mut c_void,
    members: *mut LbMember,
    stats: *const LbStats,
    len: usize,
    req: *mut c_void,
) -> i64 {
    // SAFETY: as in lb_find.
    let (method, state) = unsafe { (&*(data as *const L), &mut *(state as *mut L::State)) };
    guard(FIND_PANICKED, || {
        // SAFETY: the balancer passes the live request.
        let req = unsafe { Request::from_raw(req) };
        let (members, stats) = (members_mut(members, len), stats_ref(stats, len));
        match method.find_with_stats(state, members, stats, &req) {
            Some(i) if i < len => i as i64,
            _ => FIND_NONE,
        }
    })
}
extern "C" fn lb_done<L: LbMethod>(
    data: *const c_void,
    state: *mut c_void,
    members: *mut LbMember,
    stats: *const LbStats,
    len: usize,
    member: usize,
    outcome: *const LbOutcome,
) {
    // SAFETY: as in lb_find; `outcome` is valid for the call.
    let (method, state, outcome) = unsafe {
        (
            &*(data as *const L),
            &mut *(state as *mut L::State),
            &*outcome,
        )
    };
    if member >= len {
        return;
    }
    guard((), || {
        let (members, stats) = (members_mut(members, len), stats_ref(stats, len));
        method.done(state, members, stats, member, outcome)
    })
}
extern "C" fn lb_reset<L: LbMethod>(
    data: *const c_void,
    state: *mut c_void,
    members: *mut LbMember,
    len: usize,
) {
    // SAFETY: as in lb_find.
    let (method, state) = unsafe { (&*(data as *const L), &mut *(state as *mut L::State)) };
    guard((), || method.reset(state, members_mut(members, len)))
}

/// Registers `method` as lbmethod `name` (e.g. "byrequests").
pub fn register_lbmethod<M: Module, L: LbMethod>(
    r: &mut Registrar<M>,
    name: &str,
    method: &'static L,
) {
    let vtable: &'static LbMethodV1 = Box::leak(Box::new(LbMethodV1 {
        size: std::mem::size_of::<LbMethodV1>(),
        new_state: lb_new_state::<L>,
        drop_state: lb_drop_state::<L>,
        find: lb_find::<L>,
        reset: lb_reset::<L>,
        find_with_stats: lb_find_with_stats::<L>,
        done: lb_done::<L>,
    }));
    r.provider_raw(
        GROUP,
        name,
        1,
        vtable as *const _ as *const c_void,
        method as *const L as *const c_void,
    );
}

/// The entry points a module's table has: the 1.0 ones always, the 1.2
/// ones when its `size` says so (copied out, so that no reference to a
/// table shorter than today's `LbMethodV1` is ever made).
#[derive(Clone, Copy)]
struct Entries {
    drop_state: extern "C" fn(*const c_void, *mut c_void),
    find: extern "C" fn(*const c_void, *mut c_void, *mut LbMember, usize, *mut c_void) -> i64,
    reset: extern "C" fn(*const c_void, *mut c_void, *mut LbMember, usize),
    find_with_stats: Option<FindWithStatsFn>,
    done: Option<DoneFn>,
}
type FindWithStatsFn = extern "C" fn(
    *const c_void,
    *mut c_void,
    *mut LbMember,
    *const LbStats,
    usize,
    *mut c_void,
) -> i64;
type DoneFn = extern "C" fn(
    *const c_void,
    *mut c_void,
    *mut LbMember,
    *const LbStats,
    usize,
    usize,
    *const LbOutcome,
);

impl Entries {
    /// # Safety
    /// `vt` is an lbmethod provider's table, at least as long as its `size`.
    unsafe fn read(vt: *const LbMethodV1) -> Entries {
        use std::mem::{offset_of, size_of};
        // SAFETY: `size`, `drop_state`, `find` and `reset` are in every
        // version's table (1.0 on); the appended ones only past the size check.
        unsafe {
            let size = (*vt).size;
            let fptr = size_of::<usize>();
            let v12 = size >= offset_of!(LbMethodV1, done) + fptr;
            Entries {
                drop_state: (*vt).drop_state,
                find: (*vt).find,
                reset: (*vt).reset,
                find_with_stats: v12.then(|| (*vt).find_with_stats),
                done: v12.then(|| (*vt).done),
            }
        }
    }
}

/// An lbmethod found in the registry, with one balancer's state.
pub struct LbMethodInstance {
    entries: Entries,
    data: *const c_void,
    state: *mut c_void,
}
// SAFETY: the method is Send + Sync and its State is Send (LbMethod bounds).
unsafe impl Send for LbMethodInstance {}

/// Why an lbmethod could not be attached to a balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceError {
    /// No module registered a method by that name.
    NotLoaded,
    /// The method failed to make its per-balancer state.
    StateFailed,
}

/// Why a pick failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindError {
    NoneUsable,
    /// The method panicked (already logged by its module).
    Panicked,
}

impl LbMethodInstance {
    /// Finds method `name` and makes its state for `balancer`.
    pub fn new(name: &str, balancer: &str) -> Result<LbMethodInstance, InstanceError> {
        let p = crate::sdk::provider::lookup(GROUP, name).ok_or(InstanceError::NotLoaded)?;
        let vt = p.vtable as *const LbMethodV1;
        // SAFETY: providers in GROUP are registered by register_lbmethod (of
        // this or an older minor, whose table is as long as its `size`).
        let (entries, new_state) = unsafe { (Entries::read(vt), (*vt).new_state) };
        let state = new_state(p.data, AbiStr::new(balancer.as_bytes()));
        if state.is_null() {
            // Its new_state panicked (already logged by its module); a null
            // state must never reach find.
            return Err(InstanceError::StateFailed);
        }
        Ok(LbMethodInstance {
            entries,
            data: p.data,
            state,
        })
    }
    /// Asks the method for a member; `stats` (as long as `members`) reaches
    /// only methods built for ABI 1.2 or later.
    pub fn find(
        &mut self,
        members: &mut [LbMember],
        stats: &[LbStats],
        req: &Request,
    ) -> Result<usize, FindError> {
        let (ms, len) = (members.as_mut_ptr(), members.len());
        let got = match self.entries.find_with_stats {
            Some(f) if stats.len() == len => {
                f(self.data, self.state, ms, stats.as_ptr(), len, req.as_raw())
            }
            _ => (self.entries.find)(self.data, self.state, ms, len, req.as_raw()),
        };
        match got {
            FIND_PANICKED => Err(FindError::Panicked),
            i if i >= 0 && (i as usize) < members.len() => Ok(i as usize),
            _ => Err(FindError::NoneUsable),
        }
    }
    pub fn reset(&mut self, members: &mut [LbMember]) {
        (self.entries.reset)(self.data, self.state, members.as_mut_ptr(), members.len());
    }
    /// Tells the method how an attempt on `members[member]` went; a method
    /// built before ABI 1.2 is not told.
    pub fn done(
        &mut self,
        members: &mut [LbMember],
        stats: &[LbStats],
        member: usize,
        outcome: &LbOutcome,
    ) {
        let len = members.len();
        if let Some(f) = self.entries.done {
            if stats.len() == len && member < len {
                let (ms, st) = (members.as_mut_ptr(), stats.as_ptr());
                f(self.data, self.state, ms, st, len, member, outcome);
            }
        }
    }
}

impl Drop for LbMethodInstance {
    fn drop(&mut self) {
        (self.entries.drop_state)(self.data, self.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;
    impl LbMethod for Plain {
        type State = ();
        fn new_state(&self, _balancer: &str) {}
        fn find(&self, _: &mut (), members: &mut [LbMember], _: &Request) -> Option<usize> {
            select::by_requests(members)
        }
    }

    fn table(size: usize) -> LbMethodV1 {
        LbMethodV1 {
            size,
            new_state: lb_new_state::<Plain>,
            drop_state: lb_drop_state::<Plain>,
            find: lb_find::<Plain>,
            reset: lb_reset::<Plain>,
            find_with_stats: lb_find_with_stats::<Plain>,
            done: lb_done::<Plain>,
        }
    }

    /// A table whose `size` ends where 1.0's did never has its appended
    /// entries called; today's has both.
    #[test]
    fn appended_entries_are_used_only_when_the_size_has_them() {
        let old = table(std::mem::offset_of!(LbMethodV1, find_with_stats));
        // SAFETY: a whole table; only its `size` says it is shorter.
        let e = unsafe { Entries::read(&old) };
        assert!(e.find_with_stats.is_none() && e.done.is_none());
        let new = table(std::mem::size_of::<LbMethodV1>());
        // SAFETY: as above.
        let e = unsafe { Entries::read(&new) };
        assert!(e.find_with_stats.is_some() && e.done.is_some());
    }

    #[test]
    fn the_core_average_starts_at_the_first_sample_and_moves_an_eighth() {
        let mut s = LbStats::default();
        s.sample(0);
        assert_eq!(s, LbStats::default(), "0 is not measured");
        s.sample(800);
        assert_eq!((s.samples, s.response_avg_us), (1, 800));
        s.sample(1600);
        assert_eq!((s.samples, s.response_avg_us), (2, 900));
        s.sample(100);
        assert_eq!(s.response_avg_us, 800);
    }
}
