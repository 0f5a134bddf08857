//! The load-balancing method (lbmethod) API: the member table a method reads
//! and changes, and the selection helpers Apache's methods share.
//!
//! A balancer hands its lbmethod a slice of [`LbMember`] while it holds the
//! balancer's lock, so a method may read and write every field without
//! further synchronisation; state that outlives one pick lives in
//! `lbstatus` (per member) or in the method's per-balancer state.

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
/// lbmethod modules; fields may only be appended (the ABI layout hash
/// covers it).
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
    fn reset(&self, _state: &mut Self::State, _members: &mut [LbMember]) {}
}

fn members_mut<'a>(members: *mut LbMember, len: usize) -> &'a mut [LbMember] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: the balancer passes its member table, exclusively borrowed for the call.
    unsafe { std::slice::from_raw_parts_mut(members, len) }
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
    }));
    r.provider_raw(
        GROUP,
        name,
        1,
        vtable as *const _ as *const c_void,
        method as *const L as *const c_void,
    );
}

/// An lbmethod found in the registry, with one balancer's state.
pub struct LbMethodInstance {
    vtable: &'static LbMethodV1,
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
        // SAFETY: providers in GROUP are registered by register_lbmethod.
        let vtable = unsafe { &*(p.vtable as *const LbMethodV1) };
        let state = (vtable.new_state)(p.data, AbiStr::new(balancer.as_bytes()));
        if state.is_null() {
            // Its new_state panicked (already logged by its module); a null
            // state must never reach find.
            return Err(InstanceError::StateFailed);
        }
        Ok(LbMethodInstance {
            vtable,
            data: p.data,
            state,
        })
    }
    pub fn find(&mut self, members: &mut [LbMember], req: &Request) -> Result<usize, FindError> {
        match (self.vtable.find)(
            self.data,
            self.state,
            members.as_mut_ptr(),
            members.len(),
            req.as_raw(),
        ) {
            FIND_PANICKED => Err(FindError::Panicked),
            i if i >= 0 && (i as usize) < members.len() => Ok(i as usize),
            _ => Err(FindError::NoneUsable),
        }
    }
    pub fn reset(&mut self, members: &mut [LbMember]) {
        (self.vtable.reset)(self.data, self.state, members.as_mut_ptr(), members.len());
    }
}

impl Drop for LbMethodInstance {
    fn drop(&mut self) {
        (self.vtable.drop_state)(self.data, self.state);
    }
}
