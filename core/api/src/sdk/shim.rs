//! The one way an `extern "C"` function is written, on both sides of the
//! boundary: [`ffi_fn!`](crate::ffi_fn) wraps its body in `catch_unwind`
//! and returns a fail-closed value on a panic, since a panic that reaches
//! `extern "C"` aborts the whole server. The module side's shims (this
//! SDK's) pass [`guarded`], which logs the panic under the module's name;
//! the host's services pass their own guard (core/server's `host_fn!`).
//!
//! A shim only turns raw pointers into references and calls safe code;
//! what it decides lives in an ordinary function that unit tests call.

use super::host::{log, module_name, Level};
use crate::future::panic_message;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Defines `extern "C"` functions whose body cannot unwind:
///
/// ```ignore
/// ffi_fn! {
///     guard = path::to::guard;
///     /// docs
///     fn name<T: Bound>(a: A, b: B) -> R = FAIL;
///     { body }
/// }
/// ```
///
/// `guard(name, body, fail)` runs the body and, if it panics, reports it
/// and returns `fail`'s value (`FAIL` is evaluated only then).
#[macro_export]
#[doc(hidden)]
macro_rules! ffi_fn {
    (guard = $guard:path; $(
        $(#[$meta:meta])*
        $vis:vis fn $name:ident $(<$($gen:ident: $bound:path),+>)?
            ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $fail:expr;
        $body:block
    )*) => {$(
        $(#[$meta])*
        $vis extern "C" fn $name $(<$($gen: $bound),+>)? ($($arg: $ty),*) $(-> $ret)? {
            $guard(stringify!($name), || $body, || $fail)
        }
    )*};
}

/// [`ffi_fn!`](crate::ffi_fn) for the SDK's shims: `ffi_fn!` with this
/// module's guard.
macro_rules! shim_fn {
    ($($t:tt)*) => { $crate::ffi_fn! { guard = $crate::sdk::shim::guarded; $($t)* } };
}
pub(crate) use shim_fn;

/// The module side's guard: runs `body`; on a panic logs it, naming the
/// module (an operator knows the module; the shim's name would tell them
/// nothing), and returns `fail()`.
pub fn guarded<R>(_shim: &'static str, body: impl FnOnce() -> R, fail: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            report_panic(&*payload);
            fail()
        }
    }
}

/// Logs a panic caught on this side, naming the module.
pub(crate) fn report_panic(payload: &(dyn Any + Send)) {
    log(
        Level::Error,
        format_args!(
            "panic in module {}: {}",
            module_name(),
            panic_message(payload)
        ),
    );
}
