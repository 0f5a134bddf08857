//! One request through the module hooks, in Apache's order:
//! post_read_request → translate_name → access_checker → fixups → handler,
//! then response_headers (when the head goes out) and log_transaction.

use super::body::{HandlerStream, ResponseBody};
use super::finish::Finish;
use super::vhosts::ListenerVhosts;
use crate::loader::host_api::{call_handler, call_request_hook, start_response};
use crate::loader::registry::Registry;
use crate::loader::request::{ConnInfo, CtxHandle, RequestCtx};
use crate::log;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use modproxy_api::abi::{code, HookKind};
use modproxy_api::future::Imported;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

/// What every request on one listener shares.
pub struct Site {
    pub registry: &'static Registry,
    pub vhosts: ListenerVhosts,
    pub limits: RequestLimits,
    /// Set on a TLS listener: connections are handshaken before HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Apache's LimitRequest* directives, checked before any module runs.
pub struct RequestLimits {
    pub request_line: usize,
    pub field_size: usize,
    pub body: u64,
    /// Timeout: the longest wait for the next piece of a request body.
    pub timeout: std::time::Duration,
}

pub async fn serve(
    site: Arc<Site>,
    conn: Arc<ConnInfo>,
    req: http::Request<Incoming>,
) -> Response<ResponseBody> {
    let (head, body) = req.into_parts();
    if let Some(status) = refuse_early(&head, &site.limits) {
        // A refused request's body is unread and may hide another request
        // (smuggling): never read on from this connection.
        let mut page = error_page(status);
        page.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return page;
    }
    let host = head
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(head.uri.host());
    let vhost = site.vhosts.select(host);
    let absolute_authority = match (head.uri.scheme_str(), head.uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => String::new(),
    };
    let ctx = RequestCtx {
        vhost: vhost.index,
        server_name: vhost.server_name.clone(),
        head,
        body: Some(body),
        body_limit: site.limits.body,
        body_read: 0,
        body_timeout: site.limits.timeout,
        body_timer: None,
        conn,
        absolute_authority,
        notes: Default::default(),
        status: StatusCode::OK,
        response_headers: http::HeaderMap::new(),
        head_sent: false,
        pending_chunk: None,
        bytes_sent: 0,
        started: std::time::Instant::now(),
    };
    let finish = Finish::new(CtxHandle::new(ctx), site.registry);
    let registry = site.registry;
    for kind in [
        HookKind::PostReadRequest,
        HookKind::TranslateName,
        HookKind::AccessChecker,
        HookKind::Fixups,
    ] {
        if let Err(status) = run_phase(registry, kind, &finish) {
            return finished_error(finish, status);
        }
    }
    run_handlers(registry, finish).await
}

/// Requests refused before any module sees them.
fn refuse_early(head: &http::request::Parts, limits: &RequestLimits) -> Option<StatusCode> {
    if head.version == http::Version::HTTP_11 && !head.headers.contains_key(header::HOST) {
        return Some(StatusCode::BAD_REQUEST);
    }
    if head.method == http::Method::CONNECT {
        // Tunnelling needs mod_proxy_connect, which does not exist here.
        return Some(StatusCode::METHOD_NOT_ALLOWED);
    }
    // "GET " + target + " HTTP/1.1": LimitRequestLine.
    let target_len = head.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + head.uri.authority().map_or(0, |a| a.as_str().len() + 8);
    if head.method.as_str().len() + target_len + 10 > limits.request_line {
        return Some(StatusCode::URI_TOO_LONG);
    }
    // LimitRequestFieldSize: a header line, name and value.
    if head
        .headers
        .iter()
        .any(|(n, v)| n.as_str().len() + 2 + v.len() > limits.field_size)
    {
        return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    if limits.body > 0 {
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.body) {
            return Some(StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    None
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

async fn run_handlers(registry: &'static Registry, mut finish: Finish) -> Response<ResponseBody> {
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
                    respond(finish, None)
                }
                Some(rc) => {
                    let status = failure_status(registry, hook.module, HookKind::Handler, rc);
                    finished_error(finish, status)
                }
                None => unreachable!("the drive loop returns early only once the head is sent"),
            };
        }
        // The head is out. A handler that already failed is kept: polled
        // again it reports the failure, which aborts the body.
        let future = if done == Some(code::OK) {
            None
        } else {
            Some(future)
        };
        let module = registry.modules[hook.module].name.as_str();
        return respond(finish, Some((future, module)));
    }
    finished_error(finish, StatusCode::NOT_FOUND)
}

/// The response for a handler whose head is out; the body streams from
/// the handler if it is still running or left a chunk behind.
fn respond(
    mut finish: Finish,
    stream: Option<(Option<Imported>, &'static str)>,
) -> Response<ResponseBody> {
    let ctx = finish.ctx();
    let status = ctx.status;
    let headers = std::mem::take(&mut ctx.response_headers);
    let has_more = ctx.pending_chunk.is_some();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return switching(finish, stream, headers);
    }
    let body = match stream {
        Some((future, module)) if future.is_some() || has_more => {
            ResponseBody::Stream(Box::new(HandlerStream {
                future,
                failed: None,
                finish,
                module,
            }))
        }
        _ => ResponseBody::empty(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn finished_error(mut finish: Finish, status: StatusCode) -> Response<ResponseBody> {
    let page = error_page(status);
    let ctx = finish.ctx();
    ctx.status = status;
    if let ResponseBody::Full(Some(body)) = page.body() {
        ctx.bytes_sent = body.len() as u64;
    }
    drop(finish);
    page
}

/// A short HTML error page, as Apache sends.
pub fn error_page(status: StatusCode) -> Response<ResponseBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{reason}</h1>\n<p>modproxy answered {code}.</p></body></html>\n",
        code = status.as_u16()
    );
    let mut response = Response::new(ResponseBody::Full(Some(Bytes::from(html))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A 101: hyper hands the connection over only once this response's
/// (empty) body is done, so the handler, which now runs the tunnel on
/// the taken-over connection, goes on in a task of its own.
fn switching(
    finish: Finish,
    stream: Option<(Option<Imported>, &'static str)>,
    headers: http::HeaderMap,
) -> Response<ResponseBody> {
    if let Some((Some(future), module)) = stream {
        let mut rest = HandlerStream {
            future: Some(future),
            failed: None,
            finish,
            module,
        };
        tokio::spawn(
            async move { while let Some(Ok(_)) = poll_fn(|cx| rest.poll_chunk(cx)).await {} },
        );
    }
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = headers;
    response
}
