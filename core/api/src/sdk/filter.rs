//! Filters, safe side: a module implements [`Filter`] and registers it
//! with [`register_filter`] (on responses, ABI 1.4) or
//! [`register_input_filter`] (on request bodies, ABI 1.5); the host runs
//! it on each response, or request, whose head it accepts. The C face is
//! [`crate::abi::filter`].

pub use crate::abi::filter::MAX_EMIT_PER_CHUNK;

use crate::abi::filter::{filter_code, EmitFn, OutputFilterV1};
use crate::abi::{AbiChunk, HookKind};
use crate::sdk::module::Registrar;
use crate::sdk::shim::shim_fn;
use crate::sdk::{Module, Request};
use bytes::Bytes;
use std::ffi::c_void;

/// What a filter says after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterStep {
    /// Go on with the next chunk.
    Continue,
    /// The body ends here: the rest is dropped, `finish` follows.
    End,
    /// The filter failed (log why first): the response is aborted, or the
    /// request body read fails (400).
    Failed,
    /// An input filter's body grew past its limit: the read fails (413).
    TooLarge,
}

/// Where a filter's output goes (the next filter, or the client).
pub struct Emit {
    emit: EmitFn,
    ud: *mut c_void,
}

impl Emit {
    /// Hands `data` on; empty data is not sent.
    pub fn send(&mut self, data: Bytes) {
        if !data.is_empty() {
            (self.emit)(self.ud, crate::chunk::from_bytes(data));
        }
    }
}

/// A body transformer (Apache's output and input filters). `&self` is
/// shared by every request and thread; per-body data lives in `State`.
/// Never block: it runs on the request's path.
pub trait Filter: Send + Sync + 'static {
    type State: Send + 'static;
    /// An output filter sees the response head before it goes out and may
    /// change its status and fields (`req.set_header(Headers::Response, …)`);
    /// the host drops Content-Length when one takes part. An input filter
    /// sees the request head before the handlers and may change its fields
    /// (`Headers::Request`). `None` stays out of this body.
    fn start(&self, req: &mut Request) -> Option<Self::State>;
    /// One chunk of the body, in order.
    fn body(&self, state: &mut Self::State, chunk: Bytes, out: &mut Emit) -> FilterStep;
    /// The body is complete: emit what was held back.
    fn finish(&self, state: &mut Self::State, out: &mut Emit) -> FilterStep;
}

fn step_code(s: FilterStep) -> i32 {
    match s {
        FilterStep::Continue => filter_code::CONTINUE,
        FilterStep::End => filter_code::END,
        FilterStep::Failed => filter_code::FAILED,
        FilterStep::TooLarge => filter_code::TOO_LARGE,
    }
}

/// The filter and one response's state behind a shim's arguments.
///
/// # Safety
/// `data` is the `&'static F` registered by [`register_filter`], `state`
/// one made by its `filter_start::<F>`, used by one response at a time.
unsafe fn this<'a, F: Filter>(
    data: *const c_void,
    state: *mut c_void,
) -> (&'a F, &'a mut F::State) {
    // SAFETY: guaranteed by the caller.
    unsafe { (&*(data as *const F), &mut *(state as *mut F::State)) }
}

shim_fn! {
    fn filter_start<F: Filter>(data: *const c_void, req: *mut c_void) -> *mut c_void
        = std::ptr::null_mut();
    {
        // SAFETY: `data` is the &'static F registered; the host passes
        // the live request for the call.
        let (f, mut req) = unsafe { (&*(data as *const F), Request::from_raw(req)) };
        match f.start(&mut req) {
            Some(state) => Box::into_raw(Box::new(state)) as *mut c_void,
            None => std::ptr::null_mut(),
        }
    }

    fn filter_body<F: Filter>(
        data: *const c_void,
        state: *mut c_void,
        chunk: AbiChunk,
        emit: EmitFn,
        ud: *mut c_void,
    ) -> i32 = filter_code::FAILED;
    {
        // SAFETY: as in `this`; the host made the chunk with chunk::from_bytes.
        let ((f, state), data) = unsafe { (this::<F>(data, state), crate::chunk::into_bytes(chunk)) };
        step_code(f.body(state, data, &mut Emit { emit, ud }))
    }

    fn filter_finish<F: Filter>(
        data: *const c_void,
        state: *mut c_void,
        emit: EmitFn,
        ud: *mut c_void,
    ) -> i32 = filter_code::FAILED;
    {
        // SAFETY: as in `this`.
        let (f, state) = unsafe { this::<F>(data, state) };
        step_code(f.finish(state, &mut Emit { emit, ud }))
    }

    fn filter_drop<F: Filter>(_data: *const c_void, state: *mut c_void) = ();
    {
        if !state.is_null() {
            // SAFETY: made by filter_start::<F>, freed once.
            drop(unsafe { Box::from_raw(state as *mut F::State) })
        }
    }
}

/// Registers `filter` on responses at `order` (filters run in order: a
/// lower one sees the handler's body first).
pub fn register_filter<M: Module, F: Filter>(r: &mut Registrar<M>, order: i32, filter: &'static F) {
    register_kind(r, HookKind::OutputFilter, order, filter)
}

/// Registers `filter` on request bodies at `order` (a lower one sees the
/// client's bytes first). ABI 1.5.
pub fn register_input_filter<M: Module, F: Filter>(
    r: &mut Registrar<M>,
    order: i32,
    filter: &'static F,
) {
    register_kind(r, HookKind::InputFilter, order, filter)
}

fn register_kind<M: Module, F: Filter>(
    r: &mut Registrar<M>,
    kind: HookKind,
    order: i32,
    filter: &'static F,
) {
    let table: &'static OutputFilterV1 = Box::leak(Box::new(OutputFilterV1 {
        size: std::mem::size_of::<OutputFilterV1>(),
        start: filter_start::<F>,
        body: filter_body::<F>,
        finish: filter_finish::<F>,
        drop_state: filter_drop::<F>,
    }));
    r.hook(
        kind,
        order,
        table as *const OutputFilterV1 as *const c_void,
        filter as *const F as *const c_void,
    );
}

/// The host's view of a code a filter returned.
pub fn step_of(c: i32) -> FilterStep {
    match c {
        filter_code::CONTINUE => FilterStep::Continue,
        filter_code::END => FilterStep::End,
        filter_code::TOO_LARGE => FilterStep::TooLarge,
        _ => FilterStep::Failed,
    }
}
