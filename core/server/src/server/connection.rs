//! One client connection: read a request head, run the request through
//! the pipeline, write the response, and go round again while keep-alive
//! allows. Between requests an idle plain connection holds no buffer: it
//! waits for readability with nothing allocated, as nginx does.
//!
//! A head that has started but is not complete when KeepAliveTimeout
//! ends is answered 408, as Apache does; an idle connection closes
//! silently.

use super::idle::{self, Held, Parked};
use super::pipeline::{self, Reply, ReplyBody, Site};
use super::Shared;
use crate::http::client_io::{ClientIo, Upgraded, Wire};
use crate::http::outbox::Outbox;
use crate::http::request_body::RequestBody;
use crate::http::request_head::{self, BodyFraming, Refusal, RequestHead};
use crate::http::response_head::{self, Framing, HeadFacts};
use crate::loader::request::{ConnInfo, UpgradeSlot};
use bytes::{Buf, Bytes, BytesMut};
use modproxy_api::abi::code;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The first read for a request head asks for this much (nginx's
/// client_header_buffer_size); a longer head grows the buffer. Small
/// enough for the allocator's per-thread cache.
const HEAD_READ: usize = 1024;
/// At most this much response body waits in the outbox before the
/// handler is asked for more (backpressure).
const HIGH_WATER: usize = 128 * 1024;
/// A body a module left unread is read and dropped up to this size, so
/// the connection can carry on; beyond it the connection closes.
const DISCARD_LIMIT: usize = 64 * 1024;

/// The longest a closing connection reads what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// How often an idle connection that cannot park (TLS) looks whether
/// the server is stopping.
const STOP_CHECK: Duration = Duration::from_secs(1);

const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 29\r\nConnection: close\r\n\r\nrequest not received in time\n";

pub async fn serve(
    io: ClientIo,
    conn: Arc<ConnInfo>,
    site: Arc<Site>,
    shared: Arc<Shared>,
    held: Held,
) {
    let mut wire = Wire::new(io);
    let mut out = Outbox::default();
    // One timer for the connection's life, moved for each wait rather
    // than made anew.
    let mut timer = pin!(tokio::time::sleep(Duration::ZERO));
    loop {
        let head = match next_head(&mut wire, &mut out, timer.as_mut(), &shared).await {
            Next::Head(head) => head,
            Next::Closed => return,
            Next::Park(deadline) => {
                if let ClientIo::Tcp(tcp) = wire.io {
                    if let Ok(stream) = tcp.into_std() {
                        idle::park(Parked {
                            stream,
                            site,
                            held,
                            deadline,
                        });
                    }
                }
                return;
            }
            Next::TimedOut => return Box::pin(answer_and_close(wire, TIMED_OUT)).await,
            // Boxed, as rare paths: their state would otherwise be part
            // of every connection's task.
            Next::Refused(refusal) => return Box::pin(refuse(wire, refusal)).await,
        };
        // Boxed: a request's state is large, and a connection's task
        // should not carry that space while it waits for the next one.
        let exchange = Box::pin(async {
            let reply = pipeline::serve(&site, &conn, head, wire).await;
            let closing = *shared.stop.borrow();
            send(reply, &mut out, closing).await
        });
        match exchange.await {
            Some(w) => wire = w,
            None => return,
        }
        wire.nodelay();
    }
}

enum Next {
    Head(RequestHead),
    /// The client closed, or stayed idle past the timeout, or the server
    /// is stopping and the connection was idle.
    Closed,
    /// Idle for `idle::PARK_AFTER`: to the lot, until this deadline.
    Park(Instant),
    /// A head was started and not finished in time.
    TimedOut,
    Refused(Refusal),
}

async fn next_head(
    wire: &mut Wire,
    out: &mut Outbox,
    mut timer: Pin<&mut tokio::time::Sleep>,
    shared: &Shared,
) -> Next {
    let limits = &shared.limits;
    let now = Instant::now();
    let deadline = now + limits.keepalive;
    let parkable = wire.io.plain().is_some() && idle::available();
    // One timer, and no watch on the stop signal per connection: the
    // timer fires at checkpoints (after PARK_AFTER for a connection that
    // may park, every STOP_CHECK otherwise), where an idle connection
    // parks or, if the server is stopping, closes; last at the deadline.
    let first = if parkable {
        idle::PARK_AFTER
    } else {
        STOP_CHECK
    };
    timer.as_mut().reset((now + first).min(deadline));
    loop {
        if !wire.buf.is_empty() {
            match request_head::parse(&wire.buf, limits.max_headers) {
                Ok(Some((head, len))) => {
                    wire.buf.advance(len);
                    return Next::Head(head);
                }
                Ok(None) if wire.buf.len() >= limits.max_buf => {
                    return Next::Refused(too_long(&wire.buf))
                }
                Ok(None) => {}
                Err(refusal) => return Next::Refused(refusal),
            }
        }
        let idle = wire.buf.is_empty();
        if idle {
            // Nothing of a request yet: hold no buffer while waiting.
            wire.buf = BytesMut::new();
            out.release();
            if let Some(tcp) = wire.io.plain() {
                let fired = tokio::select! {
                    biased;
                    ready = tcp.readable() => {
                        if ready.is_err() {
                            return Next::Closed;
                        }
                        false
                    }
                    _ = &mut timer => true,
                };
                if fired {
                    match checkpoint(timer.as_mut(), deadline, idle, parkable, shared) {
                        Some(next) => return next,
                        None => continue,
                    }
                }
            }
        }
        wire.buf.reserve(HEAD_READ.max(wire.buf.len()));
        let read = tokio::select! {
            biased;
            read = wire.io.read_buf(&mut wire.buf) => read,
            _ = &mut timer => match checkpoint(timer.as_mut(), deadline, idle, parkable, shared) {
                Some(next) => return next,
                None => continue,
            },
        };
        match read {
            Ok(0) | Err(_) => return Next::Closed,
            Ok(_) => {}
        }
    }
}

/// The head timer fired: at the keep-alive deadline the wait is over
/// (408 for a head under way); at a checkpoint an idle connection parks,
/// or closes if the server is stopping. On a hand-off an idle connection
/// is not closed under a request the client may be sending right now (it
/// would see a reset): its next answer says `Connection: close`, or the
/// timeout ends it.
fn checkpoint(
    timer: Pin<&mut tokio::time::Sleep>,
    deadline: Instant,
    idle: bool,
    parkable: bool,
    shared: &Shared,
) -> Option<Next> {
    if timer.deadline() >= deadline {
        return Some(if idle { Next::Closed } else { Next::TimedOut });
    }
    if idle && shared.stopping_now() {
        return Some(Next::Closed);
    }
    if idle && parkable {
        return Some(Next::Park(deadline));
    }
    timer.reset((Instant::now() + STOP_CHECK).min(deadline));
    None
}

/// A head that outgrew the buffer: its request line, or its fields.
fn too_long(buf: &[u8]) -> Refusal {
    if buf.contains(&b'\n') {
        Refusal {
            status: 431,
            why: "request header fields too large",
        }
    } else {
        Refusal {
            status: 414,
            why: "request line too long",
        }
    }
}

/// A head that cannot be served: an error page, then close (its body, if
/// any, cannot be told from the next request).
async fn refuse(wire: Wire, refusal: Refusal) {
    crate::log::debug(&format!(
        "refused a request: {} ({})",
        refusal.why, refusal.status
    ));
    let status =
        http::StatusCode::from_u16(refusal.status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let page = pipeline::error_page(status);
    let mut fields = crate::http::fields::Fields::default();
    fields.append(b"content-type", b"text/html; charset=utf-8");
    let mut head = Vec::new();
    response_head::encode(
        &mut head,
        &fields,
        &HeadFacts {
            status: refusal.status,
            version: request_head::Version::Http11,
            head_request: false,
            known_length: Some(page.len() as u64),
            close: true,
        },
    );
    head.extend_from_slice(&page);
    answer_and_close(wire, &head).await;
}

/// Best effort, bounded: the client may be slow by definition.
async fn answer_and_close(mut wire: Wire, answer: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        wire.io.write_all(answer).await?;
        wire.io.shutdown().await
    })
    .await;
}

/// Writes the reply; gives the connection back if it may carry another
/// request.
async fn send(mut reply: Reply, out: &mut Outbox, closing: bool) -> Option<Wire> {
    let ctx = reply.finish.ctx();
    let status = ctx.status.as_u16();
    let facts = HeadFacts {
        status,
        version: ctx.head.version,
        head_request: ctx.head.method() == b"HEAD",
        known_length: match &reply.body {
            ReplyBody::Full(body) => Some(body.len() as u64),
            ReplyBody::Stream(..) => None,
        },
        close: closing || ctx.close || !ctx.head.keep_alive,
    };
    let (framing, close) = response_head::encode(out.head_buffer(), &ctx.response_headers, &facts);
    out.push_head();
    let body = std::mem::replace(&mut reply.body, ReplyBody::Full(Bytes::new()));
    let handler = match body {
        ReplyBody::Full(body) => {
            ctx.bytes_sent = body.len() as u64;
            if framing != Framing::None {
                out.push_data(body, false);
            }
            None
        }
        ReplyBody::Stream(future, module) => Some((future, module)),
    };
    if status == 101 {
        return switch(reply, out, handler).await;
    }
    let ended_well = match handler {
        None => true,
        Some((future, module)) => stream(&mut reply, out, framing, future, module).await,
    };
    // Everything is queued: the request is over as far as modules go.
    // It is logged and counted now, before its last bytes go out, so a
    // client that has the response finds it in the metrics.
    let ctx = reply.finish.ctx();
    let mut wire = ctx.wire.take()?;
    let mut body = std::mem::replace(&mut ctx.body, RequestBody::new(BodyFraming::None, false));
    let reusable = ended_well && !close && !ctx.close;
    drop(reply);
    let written = poll_fn(|cx| out.poll_write(&mut wire.io, cx)).await.is_ok();
    if !written || !reusable {
        if written && (!wire.buf.is_empty() || !body.is_done()) {
            linger(wire).await;
        }
        return None;
    }
    if !body.is_done() {
        let drained = tokio::time::timeout(
            Duration::from_secs(1),
            body.discard(&mut wire, DISCARD_LIMIT),
        )
        .await;
        if drained != Ok(true) {
            return None;
        }
    }
    Some(wire)
}

/// Closes a connection whose client may still be sending (a body left
/// unread, a request behind the last): closing at once would answer that
/// data with a reset, which can destroy the response still in flight.
/// So: our side shut, then the client's bytes read and dropped until it
/// closes too, for a bounded time (nginx's lingering close).
async fn linger(mut wire: Wire) {
    let _ = tokio::time::timeout(LINGER, async {
        wire.io.shutdown().await?;
        let mut sink = [0u8; 4096];
        while wire.io.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Streams a handler's body to the client: while the socket takes what
/// is queued, the handler is asked for more, up to HIGH_WATER. True when
/// the body ended as framed; false when it was cut short (the client
/// then sees the connection close, never a truncated body taken for
/// whole).
async fn stream(
    reply: &mut Reply,
    out: &mut Outbox,
    framing: Framing,
    mut future: modproxy_api::future::Imported,
    module: &'static str,
) -> bool {
    let chunked = framing == Framing::Chunked;
    let mut last_chunk_owed = chunked;
    let mut running = true;
    let mut failed = None;
    let mut body_left = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let result = poll_fn(|cx| loop {
        let mut progress = false;
        if out.queued() < HIGH_WATER {
            let ctx = reply.finish.ctx();
            if let Some(chunk) = ctx.pending_chunk.take() {
                ctx.bytes_sent += chunk.len() as u64;
                if let Some(left) = body_left.as_mut() {
                    let Some(rest) = left.checked_sub(chunk.len() as u64) else {
                        failed = Some(format!("module {module} sent more than its Content-Length"));
                        return Poll::Ready(false);
                    };
                    *left = rest;
                }
                if framing != Framing::None {
                    out.push_data(chunk, chunked);
                }
                progress = true;
            } else if running {
                match Pin::new(&mut future).poll(cx) {
                    Poll::Ready(rc) => {
                        running = false;
                        if rc != code::OK {
                            failed =
                                Some(format!("module {module} ended the response with code {rc}"));
                        }
                        progress = true;
                    }
                    Poll::Pending => progress = reply.finish.ctx().pending_chunk.is_some(),
                }
            } else if failed.is_some() {
                // Only once what came before is out: a failed handler's
                // body ends in an abort, never in a clean end.
                if out.is_empty() {
                    return Poll::Ready(false);
                }
            } else if body_left.is_some_and(|left| left > 0) {
                failed = Some(format!("module {module} sent less than its Content-Length"));
                return Poll::Ready(false);
            } else if last_chunk_owed {
                out.push_last_chunk();
                last_chunk_owed = false;
            }
        }
        if !out.is_empty() {
            let Some(wire) = reply.finish.ctx().wire.as_mut() else {
                return Poll::Ready(false);
            };
            if running {
                // More writes will follow this one.
                wire.nodelay();
            }
            match out.poll_write(&mut wire.io, cx) {
                Poll::Ready(Ok(())) => progress = true,
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Pending => {}
            }
        }
        if !running && !last_chunk_owed && reply.finish.ctx().pending_chunk.is_none() {
            return Poll::Ready(failed.is_none());
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await;
    if let Some(why) = failed {
        crate::log::error(&format!("response aborted: {why}"));
        reply.finish.aborted = true;
    }
    result
}

/// A 101: once its head is out, the connection belongs to the module's
/// handler, which runs the tunnel in a task of its own: a tunnel is not
/// an HTTP connection, and a draining server waits for it only up to
/// `limits.tunnel_grace` (see `tunnels`).
async fn switch(
    mut reply: Reply,
    out: &mut Outbox,
    handler: Option<(modproxy_api::future::Imported, &'static str)>,
) -> Option<Wire> {
    let ctx = reply.finish.ctx();
    let mut wire = ctx.wire.take()?;
    if poll_fn(|cx| out.poll_write(&mut wire.io, cx))
        .await
        .is_err()
    {
        return None;
    }
    let (mut future, _) = handler?;
    let ctx = reply.finish.ctx();
    let upgraded = Upgraded::new(wire);
    match std::mem::take(&mut ctx.upgrade) {
        UpgradeSlot::Waiting(tx) => {
            let _ = tx.send(upgraded);
        }
        _ => ctx.upgrade = UpgradeSlot::Ready(upgraded),
    }
    tokio::spawn(async move {
        let _ = poll_fn(|cx| Pin::new(&mut future).poll(cx)).await;
        drop(future);
        drop(reply);
    });
    None
}
