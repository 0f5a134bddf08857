//! Calls from the host into modules: hooks, handlers, configuration
//! sections, post_config and init, each through the SDK-generated shim.

use super::*;

/// Runs a synchronous request hook.
pub fn call_request_hook(hook: &Hook, req: *mut c_void) -> i32 {
    // SAFETY: registered through register_hook for a sync kind; the SDK
    // generated `func` with exactly this signature.
    let f: RequestHookFn =
        unsafe { std::mem::transmute::<*const c_void, RequestHookFn>(hook.func) };
    f(hook.data, req)
}

/// Starts a handler; the future must be dropped before the request.
pub fn call_handler(hook: &Hook, req: *mut c_void) -> Imported {
    // SAFETY: registered for HookKind::Handler with this signature.
    let f: HandlerHookFn =
        unsafe { std::mem::transmute::<*const c_void, HandlerHookFn>(hook.func) };
    // SAFETY: the SDK made this future with future::export or ready().
    unsafe { Imported::new(f(hook.data, req)) }
}

/// Runs a child_init hook (ABI 1.3); the module logged any panic.
pub fn call_child_init(hook: &Hook) {
    // SAFETY: registered for HookKind::ChildInit with this signature.
    let f: ChildInitFn = unsafe { std::mem::transmute::<*const c_void, ChildInitFn>(hook.func) };
    f(hook.data);
}

pub fn call_post_config(hook: &Hook) -> Result<(), Vec<String>> {
    // SAFETY: registered for HookKind::PostConfig with this signature.
    let f: PostConfigFn = unsafe { std::mem::transmute::<*const c_void, PostConfigFn>(hook.func) };
    let mut errors = ErrorSink::new();
    let rc = f(hook.data, &mut errors as *mut ErrorSink as *mut c_void);
    check(rc, errors)
}

/// Hands one configuration section to the module that claimed it.
pub fn call_section(
    claim: &Claim,
    path: &str,
    vhost: Option<usize>,
    file: &str,
    key: &str,
    toml_text: &str,
) -> Result<(), Vec<String>> {
    let section = AbiSection {
        path: AbiStr::new(path.as_bytes()),
        vhost: vhost.map_or(-1, |v| v as i64),
        file: AbiStr::new(file.as_bytes()),
        key: AbiStr::new(key.as_bytes()),
        toml: AbiStr::new(toml_text.as_bytes()),
    };
    let mut errors = ErrorSink::new();
    let rc = (claim.func)(
        claim.data,
        &section,
        &mut errors as *mut ErrorSink as *mut c_void,
    );
    check(rc, errors)
}

fn check(rc: i32, mut errors: ErrorSink) -> Result<(), Vec<String>> {
    match rc {
        code::OK | code::DECLINED => Ok(()),
        code::PANICKED => {
            errors.push("the module panicked (see the log line above)".into());
            Err(errors)
        }
        _ => {
            if errors.is_empty() {
                errors.push(format!(
                    "the module failed with code {rc} and gave no reason"
                ));
            }
            Err(errors)
        }
    }
}

/// Calls a module's init with our table. Returns its data pointer.
pub fn call_init(
    header: &abi::ModuleHeader,
    reg: &mut RegCtx,
) -> Result<*const c_void, Vec<String>> {
    let mut errors = ErrorSink::new();
    let data = (header.init)(
        &HOST_API,
        reg as *mut RegCtx as *mut c_void,
        &mut errors as *mut ErrorSink as *mut c_void,
    );
    if data.is_null() {
        if errors.is_empty() {
            errors.push("its init failed without a reason (did it panic? see the log)".into());
        }
        return Err(errors);
    }
    Ok(data)
}
