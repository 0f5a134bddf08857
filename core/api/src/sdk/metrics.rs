//! The `metrics` provider group, safe side: a module that keeps counters
//! registers a [`MetricsSource`] (group `metrics`, its own name) and the
//! host appends its Prometheus text lines after the core's own when
//! `/metrics` is served. [`render_all`] asks the host for the whole text.
//! The C face is [`crate::abi::metrics`].

pub use crate::abi::metrics::GROUP;

use crate::abi::metrics::MetricsV1;
use crate::abi::{AbiStr, HeaderVisitor};
use crate::sdk::host::host;
use crate::sdk::module::Registrar;
use crate::sdk::shim::shim_fn;
use crate::sdk::Module;
use std::ffi::c_void;

/// A module's counters in Prometheus text format.
pub trait MetricsSource: Send + Sync + 'static {
    /// Appends `# HELP`/`# TYPE` lines and samples to `out`. Runs on the
    /// request path of a `/metrics` scrape: read counters, never block.
    fn render(&self, out: &mut String);
}

shim_fn! {
    fn render_shim<S: MetricsSource>(data: *const c_void, visitor: HeaderVisitor, ud: *mut c_void) = ();
    {
        // SAFETY: `data` is the &'static S registered in register_metrics.
        let source = unsafe { &*(data as *const S) };
        let mut out = String::new();
        source.render(&mut out);
        visitor(ud, AbiStr::new(out.as_bytes()), AbiStr::EMPTY);
    }
}

/// Registers `source` as metrics provider `name` (usually the module's name).
pub fn register_metrics<M: Module, S: MetricsSource>(
    r: &mut Registrar<M>,
    name: &str,
    source: &'static S,
) {
    let table = MetricsV1 {
        size: std::mem::size_of::<MetricsV1>(),
        render: render_shim::<S>,
    };
    r.provider(GROUP, name, table, source);
}

extern "C" fn append(ud: *mut c_void, text: AbiStr, _: AbiStr) {
    // SAFETY: `ud` is the String in render_all, alive for the call; `text`
    // is valid for this call.
    let (out, text) = unsafe { (&mut *(ud as *mut String), text.to_str_lossy()) };
    out.push_str(&text);
}

/// The server's whole Prometheus text: the core's metrics, then every
/// registered source's.
pub fn render_all() -> String {
    let mut out = String::new();
    (host().metrics_render)(append, &mut out as *mut String as *mut c_void);
    out
}

/// Calls a source the host found in the registry (the host's side of
/// [`crate::abi::HostApi::metrics_render`]).
///
/// # Safety
/// `vtable` and `data` must come from a provider registered in [`GROUP`]
/// (by [`register_metrics`]).
pub unsafe fn call_source(
    vtable: *const c_void,
    data: *const c_void,
    visitor: HeaderVisitor,
    ud: *mut c_void,
) {
    // SAFETY: guaranteed by the caller; `render` is in every version's table.
    let render = unsafe { (*(vtable as *const MetricsV1)).render };
    render(data, visitor, ud);
}
