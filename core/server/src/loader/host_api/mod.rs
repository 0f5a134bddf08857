//! The host services table handed to every module (here, with the logging
//! services and the helpers every service uses), and its parts by job:
//! `registration`, `request`, `runtime`, and `calls` from the host into
//! modules. Every function trusts only what the ABI promises: handles the
//! host made itself and borrowed slices valid for the call. The parts share
//! this file's imports (`use super::*`).

#[macro_use]
pub(crate) mod guard;
mod calls;
mod registration;
mod request;
mod runtime;
mod splice;

pub use calls::*;
pub use registration::RegCtx;
use registration::*;
use request::*;
pub use request::{start_filters, start_input_filters, start_response};
pub(crate) use runtime::io_code;
use runtime::*;
use splice::*;

use super::conn::HostConn;
use super::registry::{frozen, Claim, Hook, Provider, Registry};
use super::request::{ctx, RequestCtx, UpgradeSlot};
use crate::http::fields::{valid_name, valid_value, Fields};
use crate::log::{self, Level};
use bytes::Bytes;
use modproxy_api::abi::{
    self, code, field, headers as hmap, io, AbiChunk, AbiFieldList, AbiFieldSpan, AbiFuture,
    AbiProvider, AbiSection, AbiStr, AbiWaker, ChildInitFn, HandlerHookFn, HookKind, HostApi,
    PostConfigFn, RequestHookFn, SectionFn,
};
use modproxy_api::future::Imported;
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The one table every module gets.
pub static HOST_API: HostApi = HostApi {
    size: std::mem::size_of::<HostApi>(),
    log: host_log,
    register_hook,
    register_provider,
    claim_section,
    lookup_provider,
    error_write,
    req_field,
    req_vhost,
    header_get,
    headers_lend,
    header_change,
    note_get,
    note_set,
    status_get,
    status_set,
    response_start,
    body_poll_read,
    body_poll_ready,
    body_send,
    spawn,
    timer_new,
    timer_poll,
    timer_drop,
    connect_new,
    connect_poll,
    connect_drop,
    conn_read,
    conn_write,
    conn_shutdown,
    conn_drop,
    conn_set_keepalive,
    conn_poll_readable,
    server_file: super::operate::server_file,
    providers_visit: super::operate::providers_visit,
    metrics_render: super::operate::metrics_render,
    tls_connect_new,
    upgrade_take,
    conn_idle_state,
    provider_module: super::operate::provider_module,
    body_splice_from,
    body_splice_to,
    body_splice_replay,
};

/// Borrowed bytes as `&str` (lossy), for names and messages from modules.
/// Valid UTF-8, the usual case, is borrowed after a plain validity check.
fn text<'a>(s: AbiStr) -> std::borrow::Cow<'a, str> {
    let b = bytes(s);
    match modproxy_api::abi::utf8(b) {
        Some(t) => std::borrow::Cow::Borrowed(t),
        None => String::from_utf8_lossy(b),
    }
}
fn bytes<'a>(s: AbiStr) -> &'a [u8] {
    // SAFETY: as in text().
    unsafe { s.as_bytes() }
}

/// Runs `f` with a std Context for the waker a module lent.
fn with_cx<R>(waker: *const AbiWaker, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
    // SAFETY: poll-style services receive a waker valid for the call.
    unsafe { modproxy_api::waker::with_context(waker, f) }
}

// --- logging and errors -------------------------------------------------------

host_fn! {
    pub(super) fn host_log(level: u32, module: AbiStr, msg: AbiStr) = ();
    {
        log::write(Level::from_abi(level), &text(module), &text(msg));
    }
}

/// The host's error collector behind the `errors` pointers given to modules.
pub type ErrorSink = Vec<String>;

host_fn! {
    pub(super) fn error_write(errors: *mut c_void, msg: AbiStr) = ();
    {
        if errors.is_null() {
            return;
        }
        // SAFETY: `errors` is an &mut ErrorSink the host passed for this call.
        unsafe { &mut *(errors as *mut ErrorSink) }.push(text(msg).into_owned());
    }
}
