//! One HTTP/2 client connection. The h2 crate reads and writes frames;
//! this loop accepts streams and serves them side by side in the
//! connection's own task: a stream that waits holds up no other, a
//! response written wakes no second task, and every stream that can move
//! does before h2 writes, so answers ready together leave in one write
//! (−25 % CPU per request at 100 streams a connection, docs/performance.md).
//! It closes an idle connection after KeepAliveTimeout, and says GOAWAY
//! when the server stops or hands off: streams already open finish, new
//! ones go to the new server.
//!
//! The flood defences are h2's, with their limits set here rather than
//! left to its defaults: the streams a client may reset before the server
//! accepts them (rapid reset, CVE-2023-44487), the resets the server may
//! be made to send (MadeYouReset, CVE-2025-8671), the header list size
//! (HPACK bombs; CONTINUATION frames are counted against it,
//! CVE-2024-27316). A SETTINGS or PING flood is answered one frame at a
//! time: h2 reads no further until each acknowledgement is written.

use super::body::StreamBody;
use super::{downgrade, respond};
use crate::http::client_io::Wire;
use crate::http::request_head::BodyFraming;
use crate::loader::request::ConnInfo;
use crate::server::idle::Held;
use crate::server::pipeline::{self, Client, Site};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::RecvStream;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

/// Streams a client may reset before they are accepted; past it, the
/// connection ends with ENHANCE_YOUR_CALM.
const PENDING_ACCEPT_RESETS: usize = 20;
/// Resets a client's errors may cause the server to send; past it,
/// GOAWAY with ENHANCE_YOUR_CALM.
const LOCAL_ERROR_RESETS: usize = 256;
/// Streams a client may reset after they were accepted and before their
/// answers, beyond which a connection whose streams are mostly reset is
/// closed: h2 bounds the resets of streams not yet accepted, but the
/// server accepts at once, so this is the rapid-reset limit that applies.
const RESETS_ALLOWED: u64 = 100;
/// Each stream's send buffer inside h2 (a stream's body waits in the
/// core, within its window, not in h2).
const SEND_BUFFER: usize = 128 * 1024;

pub(in crate::server) async fn serve(
    mut wire: Wire,
    conn: Arc<ConnInfo>,
    site: Arc<Site>,
    shared: Arc<crate::server::Shared>,
    held: Held,
) {
    // HTTP/2 writes small frames that must not wait for an ACK.
    wire.nodelay();
    let limits = &site.h2;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(limits.max_header_list_size)
        .initial_window_size(limits.window_size)
        .initial_connection_window_size(limits.connection_window_size)
        .max_send_buffer_size(SEND_BUFFER)
        .max_pending_accept_reset_streams(PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS));
    let client = conn.client;
    let handshake = tokio::time::timeout(site.limits.timeout, builder.handshake::<_, Bytes>(wire));
    let mut connection = match handshake.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return crate::log::debug(&format!("HTTP/2 handshake with {client} failed: {e}"))
        }
        Err(_) => return crate::log::debug(&format!("HTTP/2 handshake with {client} timed out")),
    };
    let keepalive = shared.limits.keepalive;
    let max_fields = shared.limits.max_headers;
    let mut streams = FuturesUnordered::new();
    let mut stop = shared.stop.clone();
    let mut stopping = pin!(stop.wait_for(|s| *s));
    let mut idle = pin!(tokio::time::sleep(keepalive));
    let mut going_away = false;
    let (mut served, mut resets) = (0u64, 0u64);
    poll_fn(|cx| loop {
        // Every stream that can move does before h2 is polled again, so
        // the frames of all the answers ready now go out in one write.
        while let Poll::Ready(Some(ended)) = streams.poll_next_unpin(cx) {
            if ended == Ended::ResetByClient {
                resets += 1;
                if resets > RESETS_ALLOWED && resets * 2 > served && !going_away {
                    crate::log::info(&format!(
                        "HTTP/2 client {client} reset {resets} of its {served} streams before their answers: \
                         closing the connection (a rapid-reset flood)"
                    ));
                    connection.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                    going_away = true;
                }
            }
            if streams.is_empty() {
                idle.as_mut().reset(tokio::time::Instant::now() + keepalive);
            }
        }
        // GOAWAY when the server stops, or after KeepAliveTimeout with no
        // stream open. (The stop signal is polled only until it fires.)
        if !going_away
            && (stopping.as_mut().poll(cx).is_ready()
                || (streams.is_empty() && idle.as_mut().poll(cx).is_ready()))
        {
            connection.graceful_shutdown();
            going_away = true;
        }
        match connection.poll_accept(cx) {
            Poll::Ready(Some(Ok((request, respond)))) => {
                served += 1;
                streams.push(serve_stream(request, respond, conn.clone(), site.clone(), max_fields));
            }
            Poll::Ready(Some(Err(e))) => {
                crate::log::debug(&format!("HTTP/2 connection with {client} ended: {e}"));
                return Poll::Ready(());
            }
            Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    // The connection is gone: its streams' responses have nowhere to go.
    drop(streams);
    drop(held);
}

async fn serve_stream(
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    conn: Arc<ConnInfo>,
    site: Arc<Site>,
    max_fields: usize,
) -> Ended {
    let (parts, recv) = request.into_parts();
    let head = match downgrade::request_head(&parts, recv.is_end_stream(), max_fields) {
        Ok(head) => head,
        Err(refusal) => {
            crate::log::debug(&format!(
                "refused an HTTP/2 request: {} ({})",
                refusal.why, refusal.status
            ));
            respond::refuse(respond, refusal);
            return Ended::Refused;
        }
    };
    let declared = match head.framing {
        BodyFraming::Length(n) => Some(n),
        _ => None,
    };
    let body = Box::new(StreamBody::new(recv, declared));
    let mut respond = respond;
    // A client that resets the stream before its answer is ready takes
    // the request with it: the handler, and its backend exchange, are
    // dropped rather than finished for nobody (rapid reset's cost).
    let reply = tokio::select! {
        reply = pipeline::serve(&site, &conn, head, Client::Stream(body)) => reply,
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return Ended::ResetByClient,
    };
    respond::send(reply, respond, site.limits.timeout).await;
    Ended::Answered
}

/// How a stream's task ended, for the connection's reset count.
#[derive(PartialEq)]
enum Ended {
    Answered,
    Refused,
    ResetByClient,
}
