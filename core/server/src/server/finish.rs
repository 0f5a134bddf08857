//! The end of a request: the log_transaction hooks, the metrics and the
//! access log run once, when the response is finished or abandoned, then
//! the request's memory is freed.

use crate::loader::host_api::call_request_hook;
use crate::loader::registry::Registry;
use crate::loader::request::{CtxHandle, RequestCtx};
use crate::log;
use modproxy_api::abi::HookKind;

pub struct Finish {
    handle: CtxHandle,
    registry: &'static Registry,
    pub aborted: bool,
}

impl Finish {
    pub fn new(handle: CtxHandle, registry: &'static Registry) -> Finish {
        Finish {
            handle,
            registry,
            aborted: false,
        }
    }
    pub fn raw(&self) -> *mut std::ffi::c_void {
        self.handle.raw()
    }
    pub fn ctx(&mut self) -> &mut RequestCtx {
        self.handle.get()
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        for hook in self.registry.hooks(HookKind::LogTransaction) {
            call_request_hook(hook, self.handle.raw());
        }
        {
            let r = self.handle.get();
            let micros = u64::try_from(r.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            crate::metrics::record(
                r.status.as_u16(),
                micros,
                r.bytes_sent,
                r.body_read,
                r.head.version,
            );
        }
        if !log::access_enabled() {
            return;
        }
        let r = self.handle.get();
        let header = |name: &[u8]| r.head.fields.get(name).unwrap_or_default();
        log::access(&log::AccessRecord {
            client_ip: client_ip(&r.conn.client_text),
            method: r.head.method(),
            // Logged as received, as Apache's %r does.
            path: r.head.received_path(),
            query: r.head.query(),
            version: r.head.version.as_str(),
            status: r.status.as_u16(),
            bytes: r.bytes_sent,
            referer: header(b"referer"),
            user_agent: header(b"user-agent"),
            micros: r.started.elapsed().as_micros(),
        });
    }
}

/// The address part of `ip:port` (`[v6]:port` loses its brackets too),
/// as Apache's `%h` logs it.
fn client_ip(text: &[u8]) -> &[u8] {
    let host = match text.iter().rposition(|&b| b == b':') {
        Some(colon) => &text[..colon],
        None => text,
    };
    host.strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_logged_address_has_no_port() {
        assert_eq!(super::client_ip(b"127.0.0.1:5000"), b"127.0.0.1");
        assert_eq!(super::client_ip(b"[::1]:443"), b"::1");
    }
}
