//! One request through the module hooks, in Apache's order:
//! post_read_request → translate_name → access_checker → fixups → handler,
//! then response_headers (when the head goes out) and log_transaction.

use super::finish::Finish;
use super::vhosts::ListenerVhosts;
use crate::http::client_io::Wire;
use crate::http::fields::Fields;
use crate::http::path::{self, EncodedSlashes};
use crate::http::request_body::RequestBody;
use crate::http::request_head::{RequestHead, Version};
use crate::loader::host_api::{call_handler, call_request_hook, start_response};
use crate::loader::registry::Registry;
use crate::loader::request::{ConnInfo, CtxHandle, RequestCtx};
use crate::log;
use bytes::Bytes;
use http::StatusCode;
use modproxy_api::abi::{code, HookKind};
use modproxy_api::future::Imported;
use std::borrow::Cow;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

/// What every request on one listener shares.
pub struct Site {
    /// The address listened on.
    pub addr: std::net::SocketAddr,
    pub registry: &'static Registry,
    pub vhosts: ListenerVhosts,
    pub limits: RequestLimits,
    /// Set on a TLS listener: connections are handshaken before HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// A vhost here serves HTTP/2 (h2 by ALPN with TLS, h2c without).
    pub http2: bool,
    pub h2: modproxy_config::H2Limits,
}

/// Apache's LimitRequest* directives, checked before any module runs.
pub struct RequestLimits {
    pub request_line: usize,
    pub field_size: usize,
    pub body: u64,
    /// Timeout: the longest wait for the next piece of a request body.
    pub timeout: std::time::Duration,
}

/// A request whose hooks have run: its status and fields are in the
/// context, and the body is ready, or still being produced.
pub struct Reply {
    /// Field order matters: the handler's future holds the request
    /// handle and must be dropped before `finish` frees the request.
    pub body: ReplyBody,
    pub finish: Finish,
}

pub enum ReplyBody {
    /// Complete: an error page, or what a handler left behind.
    Full(Bytes),
    /// A handler still running; its module's name for the log.
    Stream(Imported, &'static str),
}

/// Where a request's body comes from, and its response goes.
pub enum Client {
    /// An HTTP/1.x connection, lent to the request while it is served.
    Wire(Wire),
    /// An HTTP/2 stream's body; its response goes out through `http2::respond`.
    Stream(Box<crate::server::http2::body::StreamBody>),
}

pub async fn serve(
    site: &Site,
    conn: &Arc<ConnInfo>,
    mut head: RequestHead,
    client: Client,
) -> Reply {
    let vhost = site.vhosts.select(|| head.host());
    let refusal = refuse_early(&head, &site.limits, site.registry)
        .or_else(|| {
            // An HTTP/2 request for a vhost that does not serve HTTP/2
            // (its listener does, for another vhost).
            (head.version == Version::Http2 && !vhost.http2)
                .then_some(StatusCode::MISDIRECTED_REQUEST)
        })
        .or_else(|| normalize_path(&mut head, vhost.encoded_slashes));
    let (wire, stream_body) = match client {
        Client::Wire(wire) => (Some(wire), None),
        Client::Stream(body) => (None, Some(body)),
    };
    let asterisk = head.path() == b"*";
    let ctx = RequestCtx {
        vhost: vhost.index,
        server_name: vhost.server_name.clone(),
        body: RequestBody::new(head.framing, head.expect_continue),
        head,
        wire,
        stream_body,
        body_limit: site.limits.body,
        body_read: 0,
        body_timeout: site.limits.timeout,
        body_timer: None,
        conn: conn.clone(),
        notes: Default::default(),
        status: StatusCode::OK,
        response_headers: Fields::with_capacity(512, 12),
        request_trailers: Fields::default(),
        response_trailers: Fields::default(),
        head_sent: false,
        pending_chunk: None,
        filters: Default::default(),
        input: Default::default(),
        splice_response: None,
        body_replay: None,
        bytes_sent: 0,
        started: std::time::Instant::now(),
        close: false,
        upgrade: Default::default(),
    };
    let mut finish = Finish::new(CtxHandle::new(ctx), site.registry);
    if let Some(status) = refusal {
        // A refused request's body is unread and may hide another request
        // (smuggling): never read on from this connection.
        finish.ctx().close = true;
        return error_reply(finish, status);
    }
    if asterisk {
        // `OPTIONS *` asks about the server itself, not a resource: the
        // core answers, as Apache's does (200, no body).
        return Reply {
            body: ReplyBody::Full(Bytes::new()),
            finish,
        };
    }
    let registry = site.registry;
    for kind in [
        HookKind::PostReadRequest,
        HookKind::TranslateName,
        HookKind::AccessChecker,
        HookKind::Fixups,
    ] {
        if let Err(status) = run_phase(registry, kind, &finish) {
            return error_reply(finish, status);
        }
    }
    crate::loader::host_api::start_input_filters(finish.raw());
    run_handlers(registry, finish).await
}

/// Requests refused before any module sees them.
fn refuse_early(
    head: &RequestHead,
    limits: &RequestLimits,
    registry: &Registry,
) -> Option<StatusCode> {
    if head.version != Version::Http10 && !head.fields.contains(b"host") {
        return Some(StatusCode::BAD_REQUEST);
    }
    if head.method() == b"CONNECT" && head.version == Version::Http2 {
        // A tunnel needs the connection itself; a stream is not one
        // (RFC 8441's extended CONNECT is not offered).
        return Some(StatusCode::NOT_IMPLEMENTED);
    }
    if head.method() == b"CONNECT" && !tunnels_connect(registry) {
        // Tunnelling is module proxy_connect's; without it, no module
        // would know the request.
        return Some(StatusCode::METHOD_NOT_ALLOWED);
    }
    // "GET " + target + " HTTP/1.1": LimitRequestLine.
    if head.method().len() + head.target_len() + 10 > limits.request_line {
        return Some(StatusCode::URI_TOO_LONG);
    }
    // LimitRequestFieldSize: a header line, name and value.
    if head
        .fields
        .iter()
        .any(|(n, v)| n.len() + 2 + v.len() > limits.field_size)
    {
        return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    if let (l @ 1.., crate::http::request_head::BodyFraming::Length(n)) =
        (limits.body, head.framing)
    {
        if n > l {
            return Some(StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    None
}

/// Whether a module handles CONNECT (the `proxy_scheme:connect` provider).
fn tunnels_connect(registry: &Registry) -> bool {
    registry
        .providers
        .contains_key(&("proxy_scheme".to_owned(), "connect".to_owned()))
}

/// Replaces the path with its canonical form before any module sees it, as
/// Apache's core does (`crate::http::path`); the status that refuses it.
/// `*` is for OPTIONS only. An absolute-form target asks for forward
/// proxying: its path is the origin's to interpret, so it is kept as sent
/// (Apache leaves proxy requests' paths alone too).
fn normalize_path(head: &mut RequestHead, slashes: EncodedSlashes) -> Option<StatusCode> {
    if head.path() == b"*" {
        return (head.method() != b"OPTIONS").then_some(StatusCode::BAD_REQUEST);
    }
    if !head.absolute_authority().is_empty() {
        return None;
    }
    if head.path().first() != Some(&b'/') && head.method() == b"CONNECT" {
        // Authority-form (`host:port`): not a path at all.
        return None;
    }
    // The request line was checked to be UTF-8 when it was parsed.
    let path = std::str::from_utf8(head.path()).unwrap_or_default();
    match path::normalize(path, slashes) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(canonical)) => {
            head.set_path(canonical.as_bytes());
            None
        }
        Err(e) => {
            log::info(&format!(
                "request path {path:?} has {}: answering {}",
                e.why(),
                e.status()
            ));
            StatusCode::from_u16(e.status()).ok()
        }
    }
}

/// Runs one synchronous phase; `Err` is the status that ends the request.
fn run_phase(registry: &Registry, kind: HookKind, finish: &Finish) -> Result<(), StatusCode> {
    for hook in registry.hooks(kind) {
        let rc = call_request_hook(hook, finish.raw());
        match rc {
            code::DECLINED => continue,
            code::OK if kind.runs_first() => return Ok(()),
            code::OK => continue,
            _ => return Err(failure_status(registry, hook.module, kind, rc)),
        }
    }
    Ok(())
}

/// Turns a hook's failure code into a status, logging module failures.
fn failure_status(registry: &Registry, module: usize, kind: HookKind, rc: i32) -> StatusCode {
    if (100..=599).contains(&rc) {
        return StatusCode::from_u16(rc as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let name = &registry.modules[module].name;
    let why = if rc == code::PANICKED {
        "panicked"
    } else {
        "failed"
    };
    log::error(&format!(
        "module {name} {why} in hook {}; answering 500",
        kind.name()
    ));
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn run_handlers(registry: &'static Registry, mut finish: Finish) -> Reply {
    for hook in registry.hooks(HookKind::Handler) {
        let mut future = call_handler(hook, finish.raw());
        // Drive the handler until its response head is out or it is done.
        let done = poll_fn(|cx| match Pin::new(&mut future).poll(cx) {
            Poll::Ready(rc) => Poll::Ready(Some(rc)),
            Poll::Pending if finish.ctx().head_sent => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await;
        if !finish.ctx().head_sent {
            drop(future);
            return match done {
                Some(code::DECLINED) => continue,
                Some(code::OK) => {
                    // The handler set status and headers but never sent them.
                    start_response(finish.raw());
                    full(finish)
                }
                Some(rc) => {
                    let status = failure_status(registry, hook.module, HookKind::Handler, rc);
                    error_reply(finish, status)
                }
                None => unreachable!("the drive loop returns early only once the head is sent"),
            };
        }
        // The head is out. A handler that already failed is kept: polled
        // again it reports the failure, which aborts the body.
        if done == Some(code::OK) {
            return full(finish);
        }
        let module = registry.modules[hook.module].name.as_str();
        return Reply {
            body: ReplyBody::Stream(future, module),
            finish,
        };
    }
    error_reply(finish, StatusCode::NOT_FOUND)
}

/// A handler that is done: what it left in the chunk slot is the body.
fn full(mut finish: Finish) -> Reply {
    let body = finish.ctx().pending_chunk.take().unwrap_or_default();
    Reply {
        body: ReplyBody::Full(body),
        finish,
    }
}

/// An error page in place of whatever fields a module had set; output
/// filters see it as any response.
fn error_reply(mut finish: Finish, status: StatusCode) -> Reply {
    let (fields, page) = error_page(status);
    let ctx = finish.ctx();
    ctx.status = status;
    ctx.response_headers = fields;
    crate::loader::host_api::start_filters(finish.raw());
    Reply {
        body: ReplyBody::Full(page),
        finish,
    }
}

/// A short HTML error page, as Apache sends: its fields and its body.
pub fn error_page(status: StatusCode) -> (Fields, Bytes) {
    let mut fields = Fields::default();
    fields.append(b"content-type", b"text/html; charset=utf-8");
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{reason}</h1>\n<p>modproxy answered {code}.</p></body></html>\n",
        code = status.as_u16()
    );
    (fields, Bytes::from(page))
}
