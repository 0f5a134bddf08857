//! Futures across the boundary: [`export`] turns a Rust future into an
//! [`AbiFuture`] that the other side polls; [`Imported`] turns an
//! AbiFuture back into a Rust future. Panics inside an exported future are
//! caught on its own side (a panic crossing `extern "C"` aborts the process).

use crate::abi::{code, AbiFuture, AbiWaker, POLL_PENDING};
use std::any::Any;
use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Called with the payload of a panic caught while polling an exported future.
pub type PanicReporter = fn(&(dyn Any + Send));

struct Exported<F> {
    future: F,
    report: PanicReporter,
}

/// What an exported future resolves to, turned into the code the other
/// side reads. Converting at the boundary, instead of wrapping the future
/// in an `async` block that maps its output, saves a move of the whole
/// future state on its first poll.
pub trait IntoCode {
    fn into_code(self) -> i32;
}

impl IntoCode for i32 {
    fn into_code(self) -> i32 {
        self
    }
}

/// A detached task's `()`: [`code::OK`].
impl IntoCode for () {
    fn into_code(self) -> i32 {
        code::OK
    }
}

/// Boxes `future` so that the other side can poll it: the only allocation.
/// Its result must not be [`POLL_PENDING`]; a panic becomes [`code::PANICKED`].
pub fn export<F>(future: F, report: PanicReporter) -> AbiFuture
where
    F: Future + Send + 'static,
    F::Output: IntoCode,
{
    let boxed = Box::new(Exported { future, report });
    AbiFuture {
        data: Box::into_raw(boxed) as *mut c_void,
        poll: Some(poll_exported::<F>),
        drop_fn: Some(drop_exported::<F>),
    }
}

extern "C" fn poll_exported<F>(data: *mut c_void, waker: *const AbiWaker) -> i32
where
    F: Future,
    F::Output: IntoCode,
{
    // SAFETY: `data` came from Box::into_raw in `export` and stays put until
    // drop_exported, so the future is pinned in place.
    let exported = unsafe { &mut *(data as *mut Exported<F>) };
    let report = exported.report;
    // SAFETY: see above: the box never moves.
    let future = unsafe { Pin::new_unchecked(&mut exported.future) };
    // SAFETY: the caller lends a valid waker for this call.
    let result = unsafe {
        crate::waker::with_context(waker, |cx| {
            catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
        })
    };
    match result {
        Ok(Poll::Ready(v)) => v.into_code(),
        Ok(Poll::Pending) => POLL_PENDING,
        Err(payload) => {
            report(&*payload);
            code::PANICKED
        }
    }
}

extern "C" fn drop_exported<F>(data: *mut c_void) {
    // A panic in the future's destructor must not cross the boundary either.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: releases the box made in `export`, once.
        drop(unsafe { Box::from_raw(data as *mut Exported<F>) })
    }));
}

/// An [`AbiFuture`] made by the other side, polled as a Rust future.
pub struct Imported {
    raw: AbiFuture,
    done: bool,
}

// SAFETY: `export` only accepts `Send` futures, so the state behind an
// AbiFuture may move between threads.
unsafe impl Send for Imported {}

impl Imported {
    /// # Safety
    /// `raw` must come from [`export`] (on either side) or be
    /// [`AbiFuture::ready`], and be polled by no one else.
    pub unsafe fn new(raw: AbiFuture) -> Imported {
        Imported { raw, done: false }
    }
}

impl Future for Imported {
    type Output = i32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<i32> {
        let Some(poll) = self.raw.poll else {
            // AbiFuture::ready: the code travels in the data pointer.
            return Poll::Ready(self.raw.data as isize as i32);
        };
        if self.done {
            return Poll::Ready(code::ERROR);
        }
        let data = self.raw.data;
        let v = crate::waker::lend(cx, |w| poll(data, w));
        if v == POLL_PENDING {
            Poll::Pending
        } else {
            self.done = true;
            Poll::Ready(v)
        }
    }
}

impl Drop for Imported {
    fn drop(&mut self) {
        if let Some(drop_fn) = self.raw.drop_fn {
            drop_fn(self.raw.data);
        }
    }
}

/// The text of a panic payload, for the log.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}
