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
        let header = |name: &[u8]| {
            r.head
                .fields
                .get(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or("")
        };
        // Logged as received, as Apache's %r does.
        let path = String::from_utf8_lossy(r.head.received_path());
        let uri = match r.head.query() {
            b"" => path,
            q => format!("{path}?{}", String::from_utf8_lossy(q)).into(),
        };
        let method = String::from_utf8_lossy(r.head.method());
        let client_ip = r.conn.client.ip().to_string();
        log::access(&log::AccessRecord {
            client_ip: &client_ip,
            method: &method,
            uri: &uri,
            version: r.head.version.as_str(),
            status: r.status.as_u16(),
            bytes: r.bytes_sent,
            referer: header(b"referer"),
            user_agent: header(b"user-agent"),
            micros: r.started.elapsed().as_micros(),
        });
    }
}
