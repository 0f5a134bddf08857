//! Keeps a panic inside a host service from aborting the server.
//!
//! A panic that reaches an `extern "C"` boundary aborts the process, and
//! every host service is reached from a module's call. So every service is
//! written through [`host_fn!`], which runs its body under
//! `catch_unwind` and, on a panic, logs it and returns the service's
//! fail-closed value: an error code, no value, a null handle (which the
//! poll and drop services accept), or a timer that has fired. The module
//! sees a failed call and fails its request; the server keeps serving.
//!
//! For the tests, `MODPROXY_TEST_PANIC=SERVICE` makes the first call of
//! that service panic (tests/tests/faulty_modules.rs). Unset, it costs
//! one relaxed atomic load per call.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Defines host services: `fn name(args) -> T = FAIL; { body }`, where
/// `FAIL` is what the caller gets if `body` panics. The SDK's `ffi_fn!`,
/// which writes every module-side shim too, with this side's guard.
macro_rules! host_fn {
    ($($t:tt)*) => {
        modproxy_api::ffi_fn! { guard = $crate::loader::host_api::guard::run; $($t)* }
    };
}

/// Runs `body`; if it panics, logs that and returns `fail()`.
#[inline(always)]
pub fn run<R>(service: &'static str, body: impl FnOnce() -> R, fail: impl FnOnce() -> R) -> R {
    let result = catch_unwind(AssertUnwindSafe(|| {
        if FAULT_ARMED.load(Ordering::Relaxed) {
            inject(service);
        }
        body()
    }));
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        crate::log::error(&format!(
            "host service {service} panicked ({why}); the module's call failed and so does its request, the server keeps serving. This is a bug in modproxy: please report it with this line"
        ));
        fail()
    })
}

/// Set once at startup when `MODPROXY_TEST_PANIC` names a service.
static FAULT_ARMED: AtomicBool = AtomicBool::new(false);
static FAULT_SERVICE: OnceLock<String> = OnceLock::new();

/// Reads `MODPROXY_TEST_PANIC` (tests only; see the file comment).
pub fn arm_from_env() {
    if let Ok(service) = std::env::var("MODPROXY_TEST_PANIC") {
        if FAULT_SERVICE.set(service).is_ok() {
            FAULT_ARMED.store(true, Ordering::Relaxed);
        }
    }
}

fn inject(service: &str) {
    if FAULT_SERVICE.get().is_some_and(|s| s == service) {
        // Once: the calls after it show that the server kept serving.
        FAULT_ARMED.store(false, Ordering::Relaxed);
        panic!("injected by MODPROXY_TEST_PANIC");
    }
}

#[cfg(test)]
mod tests {
    use super::run;

    #[test]
    fn a_panic_becomes_the_fail_value_and_a_normal_call_its_result() {
        assert_eq!(run("t", || 7, || -1), 7);
        assert_eq!(run("t", || -> i32 { panic!("boom") }, || -1), -1);
    }
}
