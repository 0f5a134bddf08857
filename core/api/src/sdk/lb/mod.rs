//! The load-balancing method (lbmethod) API, safe side: the [`LbMethod`]
//! trait a method implements, the selection helpers Apache's methods
//! share ([`select`]), and the [`LbMethodInstance`] through which
//! proxy_balancer calls a method. The C face is [`crate::abi::lbmethod`].
//!
//! A balancer hands its lbmethod a slice of [`LbMember`] while it holds the
//! balancer's lock, so a method may read and write every field without
//! further synchronisation; state that outlives one pick lives in
//! `lbstatus` (per member) or in the method's per-balancer state.
//!
//! Since ABI 1.2 a method may also read [`LbStats`] (what the core keeps
//! per member: errors, a response-time average) and hear how each attempt
//! went ([`LbOutcome`], through [`LbMethod::done`]).

pub mod select;

pub use crate::abi::lbmethod::{
    flags, outcome_flags, LbMember, LbOutcome, LbStats, FIND_NONE, FIND_PANICKED, GROUP,
};

use crate::abi::lbmethod::LbMethodV1;
use crate::abi::AbiStr;
use crate::sdk::module::Registrar;
use crate::sdk::provider::table_reaches;
use crate::sdk::proxy::ExchangeStatus;
use crate::sdk::shim::shim_fn;
use crate::sdk::{Module, Request};
use std::ffi::c_void;

impl LbOutcome {
    /// How the exchange ended.
    pub fn exchange_status(&self) -> ExchangeStatus {
        ExchangeStatus::from_code(self.code)
    }
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
    if len == 0 || members.is_null() {
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

/// The method and one balancer's state behind a shim's arguments.
///
/// # Safety
/// `data` is the `&'static L` registered by [`register_lbmethod`], `state`
/// one made by its `lb_new_state::<L>`; the balancer's lock makes the
/// access to `state` exclusive for the call.
unsafe fn this<'a, L: LbMethod>(
    data: *const c_void,
    state: *mut c_void,
) -> (&'a L, &'a mut L::State) {
    // SAFETY: guaranteed by the caller.
    unsafe { (&*(data as *const L), &mut *(state as *mut L::State)) }
}

/// A method's answer as the balancer reads it: an index inside the table,
/// or [`FIND_NONE`].
fn found(choice: Option<usize>, len: usize) -> i64 {
    match choice {
        Some(i) if i < len => i as i64,
        _ => FIND_NONE,
    }
}

shim_fn! {
    fn lb_new_state<L: LbMethod>(data: *const c_void, balancer: AbiStr) -> *mut c_void
        = std::ptr::null_mut();
    {
        // SAFETY: `data` is the &'static L registered in register_lbmethod;
        // the name is valid for the call.
        let (method, name) = unsafe { (&*(data as *const L), balancer.to_str_lossy()) };
        Box::into_raw(Box::new(method.new_state(&name))) as *mut c_void
    }

    fn lb_drop_state<L: LbMethod>(_data: *const c_void, state: *mut c_void) = ();
    {
        if !state.is_null() {
            // SAFETY: made by lb_new_state::<L>, freed once.
            drop(unsafe { Box::from_raw(state as *mut L::State) })
        }
    }

    fn lb_find<L: LbMethod>(
        data: *const c_void,
        state: *mut c_void,
        members: *mut LbMember,
        len: usize,
        req: *mut c_void,
    ) -> i64 = FIND_PANICKED;
    {
        // SAFETY: the balancer calls with its state and the live request.
        let ((method, state), req) = unsafe { (this::<L>(data, state), Request::from_raw(req)) };
        found(method.find(state, members_mut(members, len), &req), len)
    }

    fn lb_find_with_stats<L: LbMethod>(
        data: *const c_void,
        state: *mut c_void,
        members: *mut LbMember,
        stats: *const LbStats,
        len: usize,
        req: *mut c_void,
    ) -> i64 = FIND_PANICKED;
    {
        // SAFETY: as in lb_find.
        let ((method, state), req) = unsafe { (this::<L>(data, state), Request::from_raw(req)) };
        let (members, stats) = (members_mut(members, len), stats_ref(stats, len));
        found(method.find_with_stats(state, members, stats, &req), len)
    }

    fn lb_done<L: LbMethod>(
        data: *const c_void,
        state: *mut c_void,
        members: *mut LbMember,
        stats: *const LbStats,
        len: usize,
        member: usize,
        outcome: *const LbOutcome,
    ) = ();
    {
        if member < len {
            // SAFETY: as in lb_find; `outcome` is valid for the call.
            let ((method, state), outcome) = unsafe { (this::<L>(data, state), &*outcome) };
            let (members, stats) = (members_mut(members, len), stats_ref(stats, len));
            method.done(state, members, stats, member, outcome)
        }
    }

    fn lb_reset<L: LbMethod>(
        data: *const c_void,
        state: *mut c_void,
        members: *mut LbMember,
        len: usize,
    ) = ();
    {
        // SAFETY: as in lb_find.
        let (method, state) = unsafe { this::<L>(data, state) };
        method.reset(state, members_mut(members, len))
    }
}

/// Registers `method` as lbmethod `name` (e.g. "byrequests").
pub fn register_lbmethod<M: Module, L: LbMethod>(
    r: &mut Registrar<M>,
    name: &str,
    method: &'static L,
) {
    let table = LbMethodV1 {
        size: std::mem::size_of::<LbMethodV1>(),
        new_state: lb_new_state::<L>,
        drop_state: lb_drop_state::<L>,
        find: lb_find::<L>,
        reset: lb_reset::<L>,
        find_with_stats: lb_find_with_stats::<L>,
        done: lb_done::<L>,
    };
    r.provider(GROUP, name, table, method);
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
        // SAFETY: `size`, `drop_state`, `find` and `reset` are in every
        // version's table (1.0 on); the appended ones only past the size check.
        unsafe {
            let v12 = table_reaches(vt, std::mem::offset_of!(LbMethodV1, done));
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
