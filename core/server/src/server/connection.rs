//! One client connection: read a request head, run the request through
//! the pipeline, have `respond` write the response, and go round again
//! while keep-alive allows. Between requests a plain connection waits in
//! its next read, and after `idle::PARK_AFTER` it leaves its task (and
//! its buffers) for the idle lot.
//!
//! A head that has started but is not complete when KeepAliveTimeout
//! ends is answered 408, as Apache does; an idle connection closes
//! silently.

use super::first_read::{self, HEAD_READ};
use super::idle::{self, Held, Parked};
use super::pipeline::{self, Site};
use super::respond::send;
use super::Shared;
use crate::http::client_io::{ClientIo, Wire};
use crate::http::outbox::Outbox;
use crate::http::request_head::{self, Refusal, RequestHead};
use crate::http::response_head::{self, HeadFacts};
use crate::loader::request::ConnInfo;
use bytes::{Buf, BytesMut};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How often an idle connection that cannot park (TLS) looks whether
/// the server is stopping.
const STOP_CHECK: Duration = Duration::from_secs(1);

const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 29\r\nConnection: close\r\n\r\nrequest not received in time\n";

pub async fn serve(
    io: ClientIo,
    conn: Arc<ConnInfo>,
    site: Arc<Site>,
    shared: Arc<Shared>,
    mut held: Held,
) {
    let mut wire = Wire::new(io);
    if let ClientIo::Tcp(tcp) = &wire.io {
        first_read::read_arrived(tcp, &mut wire.buf);
    }
    // h2c is told by its preface, h2 by what ALPN chose.
    let mut sniff_h2c = site.http2 && matches!(wire.io, ClientIo::Tcp(_));
    if site.http2 && wire.io.alpn_h2() {
        return Box::pin(crate::server::http2::connection::serve(
            wire, conn, site, shared, held,
        ))
        .await;
    }
    let mut out = Outbox::default();
    // One timer for the connection's life, moved for each wait rather
    // than made anew. It is set when a wait begins (`arm`); until then
    // it holds a deadline long past, which costs no clock read.
    let mut timer = pin!(tokio::time::sleep_until(shared.started));
    loop {
        let head = match next_head(&mut wire, &mut out, timer.as_mut(), &shared, sniff_h2c).await {
            Next::Head(head) => head,
            Next::Http2 => {
                return Box::pin(crate::server::http2::connection::serve(
                    wire, conn, site, shared, held,
                ))
                .await
            }
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
        // Not boxed: the task's future is boxed once per connection, and
        // a connection idle for long leaves its task for the idle lot, so
        // the request's state costs no memory while a client thinks.
        sniff_h2c = false;
        let reply = pipeline::serve(&site, &conn, head, pipeline::Client::Wire(wire)).await;
        let closing = *shared.stop.borrow();
        match send(reply, &mut out, closing, &mut held.slot).await {
            Some(w) => wire = w,
            None => return,
        }
        wire.nodelay();
    }
}

enum Next {
    Head(RequestHead),
    /// HTTP/2's preface, on a listener that serves h2c.
    Http2,
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
    sniff_h2c: bool,
) -> Next {
    let limits = &shared.limits;
    let parkable = matches!(wire.io, ClientIo::Tcp(_)) && idle::available();
    // Set when the first wait begins: a head already in the buffer (a
    // pipelined request, or one read on accept) needs no timer at all.
    let mut deadline = None;
    loop {
        let sniffed = if sniff_h2c && !wire.buf.is_empty() {
            crate::server::http2::sniff(&wire.buf)
        } else {
            Some(false)
        };
        if sniffed == Some(true) {
            return Next::Http2;
        }
        if !wire.buf.is_empty() && sniffed.is_some() {
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
        let deadline =
            *deadline.get_or_insert_with(|| arm(timer.as_mut(), limits.keepalive, parkable));
        let idle = wire.buf.is_empty();
        if idle {
            // Nothing has arrived yet, so a read now would most likely
            // find nothing: a socket not yet in the reactor joins it
            // before it waits (epoll reports what arrived meanwhile).
            if let Some(tcp) = wire.io.plain() {
                if tcp.registered().is_err() {
                    return Next::Closed;
                }
            }
        }
        // A connection that will park after PARK_AFTER keeps its buffers
        // until then (parking drops them): a busy keep-alive connection
        // reuses them and waits in the read itself. One that cannot park
        // may wait the whole keep-alive timeout, holding no buffer.
        if idle && !parkable {
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

/// Starts the wait for a head; returns its deadline. One timer, and no
/// watch on the stop signal per connection: the timer fires at
/// checkpoints (after PARK_AFTER for a connection that may park, every
/// STOP_CHECK otherwise), where an idle connection parks or, if the
/// server is stopping, closes; last at the deadline.
fn arm(timer: Pin<&mut tokio::time::Sleep>, keepalive: Duration, parkable: bool) -> Instant {
    let now = Instant::now();
    let deadline = now + keepalive;
    let first = if parkable {
        idle::PARK_AFTER
    } else {
        STOP_CHECK
    };
    timer.reset((now + first).min(deadline));
    deadline
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
    let (fields, page) = pipeline::error_page(status);
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
