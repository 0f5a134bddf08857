//! One attempt on one connection: the stream opened, the request body
//! sent while the response comes back (both in one future, so a gRPC
//! stream flows both ways at once), the head and body relayed to the
//! client and the backend's trailers set as the response's.
//!
//! Every wait on the backend is bounded by the worker's `timeout`; a wait
//! on the client (its next request chunk, or room for the next response
//! chunk) is not the backend's and does not count.

use crate::body::{UpError, Upload};
use crate::pool::Conn;
use crate::request::Plan;
use h2::{Reason, RecvStream};
use http::Response;
use modproxy_api::proxy::BodyProgress;
use modproxy_api::sdk::net::{sleep, timeout, Sleep};
use modproxy_api::{Headers, IoError, Request};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How an attempt failed.
pub enum Failure {
    /// The backend never processed the request (its GOAWAY named an
    /// earlier last stream, it refused the stream, or the stream could not
    /// be opened): safe to send on another connection.
    Unprocessed(String),
    /// The connection broke before any answer: retried for an idempotent
    /// request, as the keep-alive race is for HTTP/1.1.
    Broken(String),
    /// Final, with the code for the caller.
    Final(Code, String),
}

/// Final outcomes of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Relayed,
    Overridden,
    /// The head went out and then something broke.
    Aborted,
    BadResponse,
    Timeout,
    BodyTimeout,
    ClientError,
    ClientTooLarge,
    ClientTimeout,
}

/// What the attempt needs from the exchange.
pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub io_timeout: Duration,
    pub error_override: bool,
    /// When the exchange began, if the caller wants the time to the head.
    pub started: Option<Instant>,
}

/// What an attempt did, besides its result.
#[derive(Default)]
pub struct Tally {
    pub sent: u64,
    pub received: u64,
    pub status: u16,
    pub head_at: Option<Instant>,
}

pub async fn attempt(
    ctx: &Ctx<'_>,
    head: http::Request<()>,
    conn: &Conn,
    req: &mut Request,
    progress: &mut BodyProgress,
    tally: &mut Tally,
) -> Result<Code, Failure> {
    // The connection going or gone: the request never left, safe to send
    // elsewhere. Anything else is h2 refusing this request's head, which
    // no other connection would take either.
    let unprocessed = |e: h2::Error| {
        if e.is_go_away() || e.is_io() || e.is_remote() {
            conn.retire();
            return Failure::Unprocessed(format!("could not open a stream: {e}"));
        }
        let why = format!("refusing to send the request as HTTP/2: {e}");
        Failure::Final(Code::ClientError, why)
    };
    // Waits while the backend's SETTINGS_MAX_CONCURRENT_STREAMS is reached.
    let ready = timeout(ctx.io_timeout, conn.send.clone().ready()).await;
    let Ok(ready) = ready else {
        let ms = ctx.io_timeout.as_millis();
        let why = format!("the backend let no new stream open within {ms} ms");
        return Err(Failure::Final(Code::Timeout, why));
    };
    let mut send = ready.map_err(unprocessed)?;
    let no_body = ctx.plan.no_body || (progress.ended && progress.consumed == 0);
    let (response, stream) = send.send_request(head, no_body).map_err(unprocessed)?;
    let mut m = Moving {
        up: Upload::new(stream, progress, ctx.plan.length, no_body),
        idle: Idle::new(ctx.io_timeout, conn.take_timer()),
    };
    let result = exchange(ctx, conn, req, progress, tally, &mut m, response).await;
    tally.sent += m.up.sent;
    if let Some(timer) = m.idle.timer.take() {
        conn.keep_timer(timer);
    }
    result
}

/// The two things one attempt moves on at every poll: the upload, and
/// the deadline on the backend.
struct Moving {
    up: Upload,
    idle: Idle,
}

async fn exchange(
    ctx: &Ctx<'_>,
    conn: &Conn,
    req: &mut Request,
    progress: &mut BodyProgress,
    tally: &mut Tally,
    m: &mut Moving,
    response: h2::client::ResponseFuture,
) -> Result<Code, Failure> {
    let head = wait_head(ctx, conn, req, progress, m, response).await?;
    tally.status = head.status().as_u16();
    if ctx.started.is_some() {
        tally.head_at = Some(Instant::now());
    }
    if ctx.error_override && head.status().as_u16() >= 400 {
        return Ok(Code::Overridden);
    }
    relay_head(ctx, req, &head);
    if let Err(e) = req.send_head() {
        return Err(Failure::Final(
            Code::Aborted,
            format!("the client went away before the response head: {e}"),
        ));
    }
    let body = head.into_body();
    relay_body(req, progress, m, body, tally).await?;
    Ok(Code::Relayed)
}

/// Polls the upload and the response together until the response head.
async fn wait_head(
    ctx: &Ctx<'_>,
    conn: &Conn,
    req: &mut Request,
    progress: &mut BodyProgress,
    m: &mut Moving,
    mut response: h2::client::ResponseFuture,
) -> Result<Response<RecvStream>, Failure> {
    let Moving { up, idle } = m;
    poll_fn(|cx| {
        if !up.done {
            match up.poll(cx, req, progress, idle) {
                Poll::Ready(Err(UpError::Backend(_))) => up.done = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(client_failure(e, false))),
                _ => {}
            }
        }
        match Pin::new(&mut response).poll(cx) {
            Poll::Ready(Ok(head)) => return Poll::Ready(Ok(head)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(before_head(conn, e))),
            Poll::Pending => {}
        }
        idle.poll(cx).map(|()| {
            let ms = ctx.io_timeout.as_millis();
            Err(if up.done {
                Failure::Final(Code::Timeout, format!("no response head within {ms} ms"))
            } else {
                let why = format!("the backend did not read the request body within {ms} ms");
                Failure::Final(Code::BodyTimeout, why)
            })
        })
    })
    .await
}

/// An error on the stream before its response head.
fn before_head(conn: &Conn, e: h2::Error) -> Failure {
    if e.is_go_away() && e.is_remote() {
        // Only streams above the GOAWAY's last stream id fail this way:
        // those the backend says it never looked at.
        conn.retire();
        return Failure::Unprocessed(format!("the backend is going away ({e})"));
    }
    if e.is_reset() && e.is_remote() && e.reason() == Some(Reason::REFUSED_STREAM) {
        return Failure::Unprocessed("the backend refused the stream (REFUSED_STREAM)".to_owned());
    }
    if e.is_io() {
        conn.retire();
        return Failure::Broken(format!("the connection broke before a response: {e}"));
    }
    Failure::Final(
        Code::BadResponse,
        format!("the backend ended the stream without a response: {e}"),
    )
}

fn client_failure(e: UpError, head_sent: bool) -> Failure {
    let (code, why) = match e {
        UpError::Client(e) => {
            let code = match e {
                IoError::TooLarge => Code::ClientTooLarge,
                IoError::Timeout => Code::ClientTimeout,
                _ => Code::ClientError,
            };
            (code, format!("reading the client's request body: {e}"))
        }
        UpError::Length { got, want } => (
            Code::ClientError,
            format!("client body of {got} bytes, Content-Length said {want}"),
        ),
        UpError::Backend(e) => (Code::BadResponse, format!("sending the request body: {e}")),
    };
    Failure::Final(if head_sent { Code::Aborted } else { code }, why)
}

/// Status and fields for the client. Content-Length stays when the
/// backend sent one (h2 checks the DATA against it), but not on a 1xx or
/// 204, which must not carry one.
fn relay_head(ctx: &Ctx<'_>, req: &mut Request, head: &Response<RecvStream>) {
    let status = head.status().as_u16();
    req.set_status(status);
    for (name, value) in head.headers() {
        if name == http::header::CONTENT_LENGTH && (status < 200 || status == 204) {
            continue;
        }
        req.add_header(Headers::Response, name.as_str(), value.as_bytes());
    }
    if let Some(via) = &ctx.plan.via {
        req.add_header(Headers::Response, "Via", via.as_bytes());
    }
}

/// The response body to the client, chunk by chunk as it can take them,
/// each DATA frame's window given back once the core has it; then the
/// backend's trailers. The upload goes on meanwhile.
async fn relay_body(
    req: &mut Request,
    progress: &mut BodyProgress,
    m: &mut Moving,
    mut body: RecvStream,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let Moving { up, idle } = m;
    let mut data_done = false;
    poll_fn(|cx| loop {
        if !up.done {
            match up.poll(cx, req, progress, idle) {
                Poll::Ready(Err(UpError::Backend(_))) => up.done = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(client_failure(e, true))),
                _ => {}
            }
        }
        if !data_done {
            match req.poll_body_ready(cx) {
                Poll::Pending => {
                    // The client is slow, not the backend.
                    idle.reset();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(client_gone(e))),
                Poll::Ready(Ok(())) => {}
            }
            match body.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    idle.reset();
                    let n = data.len();
                    tally.received += n as u64;
                    if n > 0 {
                        req.send_body(data).map_err(client_gone)?;
                        // The window opens again only for what the core took.
                        let _ = body.flow_control().release_capacity(n);
                    }
                    continue;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(broken_body(e))),
                Poll::Ready(None) => data_done = true,
                Poll::Pending => {}
            }
        }
        if data_done {
            match body.poll_trailers(cx) {
                Poll::Ready(Ok(trailers)) => {
                    for (name, value) in trailers.iter().flatten() {
                        req.add_header(Headers::ResponseTrailers, name.as_str(), value.as_bytes());
                    }
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(broken_body(e))),
                Poll::Pending => {}
            }
        }
        return idle.poll(cx).map(|()| {
            Err(Failure::Final(
                Code::Aborted,
                "reading the response body: timed out".to_owned(),
            ))
        });
    })
    .await
}

fn client_gone(e: IoError) -> Failure {
    Failure::Final(
        Code::Aborted,
        format!("client went away during the response: {e}"),
    )
}

fn broken_body(e: h2::Error) -> Failure {
    Failure::Final(Code::Aborted, format!("response aborted: {e}"))
}

/// The backend-wait deadline: `wait` from the first wait after the last
/// progress. Progress only clears the start (no clock read); a wait reads
/// the clock once and makes a host timer; one that fires early (progress
/// came meanwhile) is made again for the rest.
pub struct Idle {
    wait: Duration,
    since: Option<Instant>,
    timer: Option<(Sleep, Instant)>,
}

impl Idle {
    /// With a timer an earlier stream left, if any.
    fn new(wait: Duration, timer: Option<(Sleep, Instant)>) -> Idle {
        Idle {
            wait,
            since: None,
            timer,
        }
    }

    pub fn reset(&mut self) {
        self.since = None;
    }

    /// Ready once `wait` has passed since the first poll after a reset.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let since = *self.since.get_or_insert_with(Instant::now);
        let at = since + self.wait;
        loop {
            let (timer, fires) = match &mut self.timer {
                Some((t, fires)) => (t, *fires),
                None => {
                    let now = Instant::now();
                    if now >= at {
                        return Poll::Ready(());
                    }
                    let left = ceil_millis(at - now);
                    let (t, _) = self.timer.insert((sleep(left), now + left));
                    (t, now + left)
                }
            };
            if Pin::new(timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.timer = None;
            if fires >= at {
                return Poll::Ready(());
            }
        }
    }
}

/// `d` rounded up to whole milliseconds, the host timer's resolution.
fn ceil_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}
