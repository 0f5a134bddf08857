//! A reply onto its HTTP/2 stream: HEADERS, then the body through the
//! same pump as HTTP/1.1's (`server::respond::stream`), then END_STREAM
//! or the trailers a module set. Data goes out only within the window
//! the client opened; a client that keeps it shut past `limits.timeout`
//! has its stream reset (the slow-read defence), and the handler waits
//! meanwhile, so a stalled stream holds at most HIGH_WATER of body.

use super::downgrade::{response_fields, trailer_fields};
use crate::http::request_head::Refusal;
use crate::loader::request::RequestCtx;
use crate::server::pipeline::{error_page, Reply, ReplyBody};
use crate::server::respond::{stream, take_filters, Sink};
use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use http::HeaderMap;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The most capacity one stream asks for at once.
const MAX_RESERVE: usize = 256 * 1024;

pub async fn send(mut reply: Reply, mut respond: SendResponse<Bytes>, timeout: Duration) {
    let Some(mut filters) = take_filters(&mut reply) else {
        respond.send_reset(Reason::INTERNAL_ERROR);
        return;
    };
    let ctx = reply.finish.ctx();
    let status = ctx.status.as_u16();
    if status < 200 {
        // No interim response is final in HTTP/2, and 101 does not exist.
        crate::log::error(&format!(
            "a module answered {status} to an HTTP/2 request; the stream is reset"
        ));
        reply.finish.aborted = true;
        respond.send_reset(Reason::INTERNAL_ERROR);
        return;
    }
    let no_body = ctx.head.method() == b"HEAD" || status == 204 || status == 304;
    let body = std::mem::replace(&mut reply.body, ReplyBody::Full(Bytes::new()));
    let length = match &body {
        ReplyBody::Full(b) if !no_body => Some(b.len() as u64),
        _ => None,
    };
    let end_now = no_body
        || matches!(&body, ReplyBody::Full(b) if b.is_empty() && ctx.response_trailers.is_empty());
    let mut response = http::Response::new(());
    *response.status_mut() = ctx.status;
    *response.headers_mut() = response_fields(&ctx.response_headers, length);
    let declared = ctx
        .response_headers
        .get(b"content-length")
        .and_then(|v| modproxy_http1::parse_decimal(v.trim_ascii()));
    let stream_out = match respond.send_response(response, end_now) {
        Ok(s) => s,
        Err(e) => {
            crate::log::debug(&format!("an HTTP/2 response could not start: {e}"));
            reply.finish.aborted = true;
            return;
        }
    };
    let mut sink = StreamSink::new((!end_now).then_some(stream_out), timeout);
    let ended_well = match body {
        ReplyBody::Full(b) => {
            ctx.bytes_sent = b.len() as u64;
            if !end_now {
                sink.push(b);
                sink.push_end(ctx);
            }
            true
        }
        ReplyBody::Stream(future, module) => {
            let body_left = declared.filter(|_| !no_body);
            stream(
                &mut reply,
                &mut sink,
                body_left,
                future,
                module,
                &mut filters,
            )
            .await
        }
    };
    // Logged now, as its last bytes go out (as for HTTP/1.1).
    drop(reply);
    if !ended_well || poll_fn(|cx| sink.poll_flush(cx)).await.is_err() {
        sink.reset(Reason::INTERNAL_ERROR);
    }
}

/// A stream refused before any module saw it: the error page, as for an
/// HTTP/1.1 request refused the same way.
pub fn refuse(mut respond: SendResponse<Bytes>, refusal: Refusal) {
    let status =
        http::StatusCode::from_u16(refusal.status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let (fields, page) = error_page(status);
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = response_fields(&fields, Some(page.len() as u64));
    if let Ok(mut s) = respond.send_response(response, false) {
        // The page is far smaller than any initial window.
        let _ = s.send_data(page, true);
    }
}

/// The body's way onto the stream; `None` once HEADERS ended it.
struct StreamSink {
    stream: Option<SendStream<Bytes>>,
    queue: VecDeque<Bytes>,
    queued: usize,
    end: End,
    /// Armed while the client's window stays shut.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
}

enum End {
    NotYet,
    Plain,
    Trailers(HeaderMap),
    Sent,
}

impl StreamSink {
    fn new(stream: Option<SendStream<Bytes>>, timeout: Duration) -> StreamSink {
        StreamSink {
            stream,
            queue: VecDeque::new(),
            queued: 0,
            end: End::NotYet,
            stall: None,
            timeout,
        }
    }

    fn reset(&mut self, reason: Reason) {
        if let Some(s) = self.stream.as_mut() {
            s.send_reset(reason);
        }
    }

    /// Hands what is queued to h2 as the window allows, then the end.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        let Some(stream) = self.stream.as_mut() else {
            self.queue.clear();
            self.queued = 0;
            return Poll::Ready(Ok(()));
        };
        loop {
            if let Some(front) = self.queue.front_mut() {
                if stream.capacity() == 0 {
                    stream.reserve_capacity(self.queued.min(MAX_RESERVE));
                    match stream.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(_))) => {
                            self.stall = None;
                            continue;
                        }
                        Poll::Ready(_) => return Poll::Ready(Err(())),
                        Poll::Pending => {
                            let timeout = self.timeout;
                            let stall = self
                                .stall
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                            return match stall.as_mut().poll(cx) {
                                Poll::Pending => Poll::Pending,
                                Poll::Ready(()) => {
                                    crate::log::info(&format!(
                                        "an HTTP/2 client kept its window shut for {}s: stream reset",
                                        timeout.as_secs()
                                    ));
                                    stream.send_reset(Reason::CANCEL);
                                    Poll::Ready(Err(()))
                                }
                            };
                        }
                    }
                }
                let n = stream.capacity().min(front.len());
                let piece = front.split_to(n);
                if front.is_empty() {
                    self.queue.pop_front();
                }
                self.queued -= n;
                let last = self.queue.is_empty() && matches!(self.end, End::Plain);
                if stream.send_data(piece, last).is_err() {
                    return Poll::Ready(Err(()));
                }
                if last {
                    self.end = End::Sent;
                }
                continue;
            }
            let sent = match std::mem::replace(&mut self.end, End::Sent) {
                End::Plain => stream.send_data(Bytes::new(), true),
                End::Trailers(map) => stream.send_trailers(map),
                other => {
                    self.end = other;
                    Ok(())
                }
            };
            return Poll::Ready(sent.map_err(drop));
        }
    }
}

impl Sink for StreamSink {
    fn queued(&self) -> usize {
        self.queued
    }
    fn is_empty(&self) -> bool {
        self.queue.is_empty() && !matches!(self.end, End::Plain | End::Trailers(_))
    }
    fn push(&mut self, chunk: Bytes) {
        if self.stream.is_some() && !chunk.is_empty() {
            self.queued += chunk.len();
            self.queue.push_back(chunk);
        }
    }
    fn push_end(&mut self, ctx: &mut RequestCtx) {
        self.end = if ctx.response_trailers.is_empty() {
            End::Plain
        } else {
            End::Trailers(trailer_fields(&ctx.response_trailers))
        };
    }
    fn poll_write(
        &mut self,
        _ctx: &mut RequestCtx,
        _more: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ()>> {
        self.poll_flush(cx)
    }
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> bool {
        self.stream
            .as_mut()
            .is_some_and(|s| s.poll_reset(cx).is_ready())
    }
}
