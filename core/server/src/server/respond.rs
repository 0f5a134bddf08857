//! Writing a reply to the client: the head with the framing the core
//! chooses, then a complete body, or a handler's body streamed as it
//! comes; a 101 (or a 2xx to CONNECT) hands the connection to the module. The request is
//! logged once everything is queued, before its last bytes go out.

use super::pipeline::{Reply, ReplyBody};
use crate::http::client_io::{ClientIo, Upgraded, Wire};
use crate::http::outbox::Outbox;
use crate::http::request_body::RequestBody;
use crate::http::request_head::BodyFraming;
use crate::http::response_head::{self, Framing, HeadFacts};
use crate::loader::filters::{module_name, Chain, Failure};
use crate::loader::request::{RequestCtx, UpgradeSlot};
use bytes::Bytes;
use modproxy_api::abi::code;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::sync::OwnedSemaphorePermit;

/// At most this much response body waits in the outbox before the
/// handler is asked for more (backpressure).
const HIGH_WATER: usize = 128 * 1024;
/// A body a module left unread is read and dropped up to this size, so
/// the connection can carry on; beyond it the connection closes.
const DISCARD_LIMIT: usize = 64 * 1024;
/// The longest a closing connection reads what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// Writes the reply; gives the connection back if it may carry another
/// request. A 101 takes the connection's MaxConnections `slot` with it
/// into the tunnel.
pub async fn send(
    mut reply: Reply,
    out: &mut Outbox,
    closing: bool,
    slot: &mut Option<OwnedSemaphorePermit>,
) -> Option<Wire> {
    let status = reply.finish.ctx().status.as_u16();
    let mut filters = take_filters(&mut reply)?;
    let ctx = reply.finish.ctx();
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
    // A 2xx to CONNECT starts a tunnel, as a 101 starts an upgrade.
    let tunnel = status / 100 == 2 && ctx.head.method() == b"CONNECT";
    let (framing, close) = if tunnel {
        response_head::encode_established(out.head_buffer(), &ctx.response_headers, status);
        (Framing::None, false)
    } else {
        response_head::encode(out.head_buffer(), &ctx.response_headers, &facts)
    };
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
    if status == 101 || tunnel {
        return Box::pin(switch(reply, out, handler, slot.take())).await;
    }
    let ended_well = match handler {
        None => true,
        Some((future, module)) => {
            let body_left = match framing {
                Framing::Length(n) => Some(n),
                _ => None,
            };
            let mut sink = H1Sink { out, framing };
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
    // Everything is queued: the request is over as far as modules go.
    // It is logged and counted now, before its last bytes go out, so a
    // client that has the response finds it in the metrics.
    let ctx = reply.finish.ctx();
    let mut wire = ctx.wire.take()?;
    let mut body = std::mem::replace(&mut ctx.body, RequestBody::new(BodyFraming::None, false));
    let reusable = ended_well && !close && !ctx.close;
    // Nothing of the client's is left unread: no bytes behind this
    // request, and its body read to the end.
    let client_done = wire.buf.is_empty() && body.is_done();
    // A client that asked for the close and has sent everything it
    // will: the connection closes right after this flush, so its last
    // bytes may wait for the FIN and leave with it. (Not when the server
    // chose the close: that client may have sent more, and a close over
    // unread bytes resets the connection, so nothing may be held back.)
    let last = !reusable && !ctx.head.keep_alive && client_done;
    drop(reply);
    let written = if last {
        out.flush_last(&mut wire.io).await
    } else {
        out.flush(&mut wire.io).await
    }
    .is_ok();
    if !written || !reusable {
        if written && !client_done {
            // Boxed: its 4 KiB read buffer would otherwise be part of
            // every connection's task.
            Box::pin(linger(wire)).await;
        }
        return None;
    }
    if !body.is_done() {
        // Boxed, as a rare path: its timer would otherwise be part of
        // every connection's task.
        let drained = Box::pin(tokio::time::timeout(
            Duration::from_secs(1),
            body.discard(&mut wire, DISCARD_LIMIT),
        ))
        .await;
        if drained != Ok(true) {
            return None;
        }
    }
    Some(wire)
}

/// The response's output filters; a complete body has been through them
/// already (its new length is known before the head goes out). `None`
/// when a filter failed on it: logged, the response is aborted.
pub(crate) fn take_filters(reply: &mut Reply) -> Option<Chain> {
    let mut filters = std::mem::take(&mut reply.finish.ctx().filters);
    if !filters.is_empty() {
        if let ReplyBody::Full(body) = &mut reply.body {
            match filter_whole(&mut filters, std::mem::take(body)) {
                Ok(filtered) => *body = filtered,
                Err(failure) => {
                    crate::log::error(&format!(
                        "module {}: its output filter failed; the response is aborted",
                        module_name(failure.module)
                    ));
                    return None;
                }
            }
        }
    }
    Some(filters)
}

/// A complete body through the whole chain, its end included.
fn filter_whole(filters: &mut Chain, body: Bytes) -> Result<Bytes, Failure> {
    let mut out = Vec::new();
    if !body.is_empty() {
        filters.push(body, &mut out)?;
    }
    filters.finish(&mut out)?;
    Ok(match out.len() {
        0 => Bytes::new(),
        1 => out.remove(0),
        _ => Bytes::from(out.concat()),
    })
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

/// Where a streamed response body goes: an HTTP/1.1 connection's outbox
/// (`H1Sink`), or an HTTP/2 stream (`crate::server::http2::respond`).
pub(crate) trait Sink {
    /// Bytes queued and not yet written.
    fn queued(&self) -> usize;
    fn is_empty(&self) -> bool;
    fn push(&mut self, chunk: Bytes);
    /// Queues the body's end (the last chunk, END_STREAM, trailers).
    fn push_end(&mut self, ctx: &mut RequestCtx);
    /// Writes what is queued; `more` says more writes will follow.
    fn poll_write(
        &mut self,
        ctx: &mut RequestCtx,
        more: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ()>>;
    /// The client gave up on this response (an HTTP/2 stream reset)
    /// while the handler waits: the handler is dropped, and with it its
    /// backend exchange. An HTTP/1.1 client's leaving shows in the writes.
    fn poll_gone(&mut self, _cx: &mut Context<'_>) -> bool {
        false
    }
}

/// An HTTP/1.x response body: framed into the connection's outbox.
struct H1Sink<'a> {
    out: &'a mut Outbox,
    framing: Framing,
}

impl Sink for H1Sink<'_> {
    fn queued(&self) -> usize {
        self.out.queued()
    }
    fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
    fn push(&mut self, chunk: Bytes) {
        if self.framing != Framing::None {
            self.out.push_data(chunk, self.framing == Framing::Chunked);
        }
    }
    fn push_end(&mut self, _ctx: &mut RequestCtx) {
        if self.framing == Framing::Chunked {
            self.out.push_last_chunk();
        }
    }
    fn poll_write(
        &mut self,
        ctx: &mut RequestCtx,
        more: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ()>> {
        let Some(wire) = ctx.wire.as_mut() else {
            return Poll::Ready(Err(()));
        };
        if more {
            wire.nodelay();
        }
        self.out.poll_write(&mut wire.io, cx).map_err(drop)
    }
}

/// Counts `n` bytes of the body as sent, against the Content-Length it
/// still owes (`body_left`).
fn count_sent(
    ctx: &mut RequestCtx,
    body_left: &mut Option<u64>,
    n: u64,
    module: &str,
) -> Result<(), String> {
    ctx.bytes_sent += n;
    if let Some(left) = body_left.as_mut() {
        *left = left
            .checked_sub(n)
            .ok_or_else(|| format!("module {module} sent more than its Content-Length"))?;
    }
    Ok(())
}

/// Sends the client what the splice pipe holds. Only an HTTP/1.x plain
/// TCP connection gets a pipe (`loader::host_api::splice`).
fn poll_drain_pipe(ctx: &mut RequestCtx, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
    let (Some(wire), Some(spliced)) = (ctx.wire.as_mut(), ctx.splice_response.as_mut()) else {
        return Poll::Ready(Err(()));
    };
    // A body in more than one write: no waiting on the client's ACKs.
    wire.nodelay();
    let (ClientIo::Tcp(tcp), Some(pipe)) = (&mut wire.io, spliced.pipe.as_mut()) else {
        return Poll::Ready(Err(()));
    };
    while pipe.held() > 0 {
        match ready!(tcp.poll_splice(cx, Interest::WRITABLE, |fd| pipe.drain(fd))) {
            Ok(n) if n > 0 => {}
            _ => return Poll::Ready(Err(())),
        }
    }
    Poll::Ready(Ok(()))
}

/// Streams a handler's body to the client: while the sink takes what is
/// queued, the handler is asked for more, up to HIGH_WATER. True when
/// the body ended as framed (`body_left`: a Content-Length to meet);
/// false when it was cut short (the client then sees the connection
/// close or the stream reset, never a truncated body taken for whole).
/// What is still queued when it returns is the caller's to write: the
/// request is logged first, as its last bytes go out.
pub(crate) async fn stream(
    reply: &mut Reply,
    sink: &mut impl Sink,
    mut body_left: Option<u64>,
    mut future: modproxy_api::future::Imported,
    module: &'static str,
    filters: &mut Chain,
) -> bool {
    // What the filters emitted and the client has not been sent yet.
    let mut filtered: std::collections::VecDeque<Bytes> = Default::default();
    let mut filters_done = filters.is_empty();
    let mut end_owed = true;
    let mut running = true;
    let mut failed = None;
    let result = poll_fn(|cx| loop {
        let mut progress = false;
        let ctx = reply.finish.ctx();
        if let Some(spliced) = ctx.splice_response.as_mut() {
            let n = std::mem::take(&mut spliced.uncounted);
            if let Err(why) = count_sent(ctx, &mut body_left, n, module) {
                failed = Some(why);
                return Poll::Ready(false);
            }
        }
        if ctx.splice_held() > 0 {
            // Spliced bytes go out after what was queued before them, and
            // before the handler is asked for more.
            if sink.is_empty() {
                match poll_drain_pipe(ctx, cx) {
                    Poll::Ready(Ok(())) => progress = true,
                    Poll::Ready(Err(())) => return Poll::Ready(false),
                    Poll::Pending => {}
                }
            }
        } else if sink.queued() < HIGH_WATER {
            let next = if !filtered.is_empty() {
                filtered.pop_front()
            } else if !filters.is_empty() && ctx.pending_chunk.is_some() {
                let chunk = ctx.pending_chunk.take().unwrap_or_default();
                let mut out_chunks = Vec::new();
                if let Err(f) = filters.push(chunk, &mut out_chunks) {
                    failed = Some(format!(
                        "module {}: its output filter failed",
                        module_name(f.module)
                    ));
                    return Poll::Ready(false);
                }
                filtered.extend(out_chunks);
                continue;
            } else {
                ctx.pending_chunk.take()
            };
            if let Some(chunk) = next {
                if let Err(why) = count_sent(ctx, &mut body_left, chunk.len() as u64, module) {
                    failed = Some(why);
                    return Poll::Ready(false);
                }
                sink.push(chunk);
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
                    Poll::Pending => {
                        let ctx = reply.finish.ctx();
                        progress = ctx.pending_chunk.is_some() || ctx.splice_held() > 0;
                        if !progress && sink.poll_gone(cx) {
                            failed = Some("the client reset the stream".to_owned());
                            return Poll::Ready(false);
                        }
                    }
                }
            } else if failed.is_some() {
                // Only once what came before is out: a failed handler's
                // body ends in an abort, never in a clean end.
                if sink.is_empty() {
                    return Poll::Ready(false);
                }
            } else if !filters_done {
                filters_done = true;
                let mut out_chunks = Vec::new();
                if let Err(f) = filters.finish(&mut out_chunks) {
                    failed = Some(format!(
                        "module {}: its output filter failed",
                        module_name(f.module)
                    ));
                    return Poll::Ready(false);
                }
                filtered.extend(out_chunks);
                progress = true;
            } else if body_left.is_some_and(|left| left > 0) {
                failed = Some(format!("module {module} sent less than its Content-Length"));
                return Poll::Ready(false);
            } else if end_owed {
                sink.push_end(reply.finish.ctx());
                end_owed = false;
            }
        }
        if !sink.is_empty() {
            match sink.poll_write(reply.finish.ctx(), running, cx) {
                Poll::Ready(Ok(())) => progress = true,
                Poll::Ready(Err(())) => return Poll::Ready(false),
                Poll::Pending => {}
            }
        }
        if !running
            && !end_owed
            && filters_done
            && filtered.is_empty()
            && reply.finish.ctx().pending_chunk.is_none()
            && reply.finish.ctx().splice_held() == 0
        {
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

/// A 101, or a 2xx to CONNECT: once its head is out, the connection belongs to the module's
/// handler, which runs the tunnel in a task of its own: a tunnel is not
/// an HTTP connection, and a draining server waits for it only up to
/// `limits.tunnel_grace` (see `tunnels`). It is still a client connection,
/// though: it holds the connection's `slot` of `limits.max_connections`
/// until it closes.
async fn switch(
    mut reply: Reply,
    out: &mut Outbox,
    handler: Option<(modproxy_api::future::Imported, &'static str)>,
    slot: Option<OwnedSemaphorePermit>,
) -> Option<Wire> {
    let ctx = reply.finish.ctx();
    let mut wire = ctx.wire.take()?;
    out.flush(&mut wire.io).await.ok()?;
    let (mut future, _) = handler?;
    let ctx = reply.finish.ctx();
    let upgraded = Upgraded::new(wire, slot);
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
