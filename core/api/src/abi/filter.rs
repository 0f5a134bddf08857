//! Output filters (ABI 1.4): a module transforms responses on their way
//! out (Apache's output filters, Pingora's `response_body_filter`). A
//! filter registers as a hook of kind `OutputFilter` whose `func` is its
//! [`OutputFilterV1`] table. For each response it sees the head first and
//! decides whether to take part; then each body chunk in order, and the
//! end.
//!
//! OWNERSHIP: a chunk handed to `body` belongs to the filter; one it hands
//! to `emit` belongs to the host. The per-response state is the filter's,
//! made by `start`, freed by `drop_state`. Flow control: everything a
//! filter emits for one chunk is queued before the next chunk comes, and
//! the next comes only once the client took the queue down, so a filter
//! that holds data back holds its own; one that emits more than
//! [`MAX_EMIT_PER_CHUNK`] for one chunk has its response aborted.
//!
//! Input filters (ABI 1.5) use the same table under the hook kind
//! `InputFilter`: `start` sees the request head after the fixups hooks,
//! before any handler (it may change the request's fields, e.g. drop
//! Content-Encoding and Content-Length and frame the body chunked); `body`
//! sees each chunk of the request body as a handler reads it.

use super::values::AbiChunk;
use std::ffi::c_void;

/// Hands one output chunk on (to the next filter, or the client).
pub type EmitFn = extern "C" fn(ud: *mut c_void, chunk: AbiChunk);

/// The most a filter may emit for one chunk (or at the end).
pub const MAX_EMIT_PER_CHUNK: usize = 4 * 1024 * 1024;

/// What `body` and `finish` return.
pub mod filter_code {
    /// Go on.
    pub const CONTINUE: i32 = 0;
    /// The body ends here: the rest is dropped, `finish` follows.
    pub const END: i32 = 1;
    /// The filter failed (it logged why): the response is aborted, or the
    /// request body read fails (400).
    pub const FAILED: i32 = 2;
    /// ABI 1.5. The body grew past a limit the filter enforces (an
    /// inflated request body): the read fails as too large (413).
    pub const TOO_LARGE: i32 = 3;
}

/// The C face of an output filter. Fields are only ever appended.
#[repr(C)]
pub struct OutputFilterV1 {
    pub size: usize,
    /// At the response head, after the response_headers hooks, before it
    /// goes out: may change the status and fields through `req`. Returns
    /// the filter's state for this response, or null to stay out of it.
    /// The host drops Content-Length when any filter takes part, and
    /// frames the body itself.
    pub start: extern "C" fn(data: *const c_void, req: *mut c_void) -> *mut c_void,
    /// One chunk of the body, in order; output through `emit(ud, …)`.
    pub body: extern "C" fn(
        data: *const c_void,
        state: *mut c_void,
        chunk: AbiChunk,
        emit: EmitFn,
        ud: *mut c_void,
    ) -> i32,
    /// The body is complete: what the filter held back, through `emit`.
    pub finish: extern "C" fn(
        data: *const c_void,
        state: *mut c_void,
        emit: EmitFn,
        ud: *mut c_void,
    ) -> i32,
    /// Frees the state: after `finish`, or when the response is abandoned.
    pub drop_state: extern "C" fn(data: *const c_void, state: *mut c_void),
}
