//! One exchange with a container: a pooled connection that answered a
//! CPING, or a new one; the forward request; the request body in chunks
//! as the container asks for them; the response head and body streamed
//! to the client until END_RESPONSE says whether the connection may be
//! kept.
//!
//! Every wait is bounded by the worker's `timeout` (each packet), the
//! CPONG by at most [`CPING_WAIT`]. A packet that breaks the protocol is
//! a 502 before the head went out and an aborted response after, and the
//! connection is never reused.

use crate::config::{authority, Connector};
use crate::forward::{self, BodyKind, Forward};
use crate::packet::{
    body_head, frame_len, parse, FromContainer, Malformed, BODY_OVERHEAD, CPING, END_OF_BODY,
};
use crate::pool::Pool;
use bytes::{Bytes, BytesMut};
use modproxy_api::proxy::{
    exchange_flags, worker_flags, Exchange, ExchangeOutcome, ExchangeStatus,
};
use modproxy_api::sdk::net::{timeout, IdleState, TcpConn};
use modproxy_api::{log, Headers, IoError, Level, Request};
use modproxy_http1::hop_by_hop::HopFilter;
use std::time::{Duration, Instant};

/// The longest wait for a CPONG before a pooled connection is given up.
pub const CPING_WAIT: Duration = Duration::from_secs(10);
/// Used when a worker's timeout is 0: no wait on a backend is unbounded.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How much to ask of the socket per read.
const READ: usize = 64 * 1024;

/// A connection with its read buffer and counters.
pub struct Conn {
    conn: TcpConn,
    buf: BytesMut,
    limit: usize,
    io_timeout: Duration,
    sent: u64,
    received: u64,
}

/// Why no packet was read.
pub enum ReadFail {
    Timeout,
    /// Closed (or reset) by the container.
    Closed(Option<IoError>),
    Malformed(Malformed),
}

impl std::fmt::Display for ReadFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFail::Timeout => f.write_str("timed out waiting for the backend"),
            ReadFail::Closed(None) => f.write_str("the backend closed the connection"),
            ReadFail::Closed(Some(e)) => write!(f, "reading from the backend: {e}"),
            ReadFail::Malformed(m) => write!(f, "malformed AJP13 packet: {m}"),
        }
    }
}

impl Conn {
    pub fn new(conn: TcpConn, limit: usize, io_timeout: Duration) -> Conn {
        Conn {
            conn,
            buf: BytesMut::new(),
            limit,
            io_timeout,
            sent: 0,
            received: 0,
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), IoError> {
        match timeout(self.io_timeout, self.conn.write_all(bytes)).await {
            Err(_) => Err(IoError::Timeout),
            Ok(r) => {
                r?;
                self.sent += bytes.len() as u64;
                Ok(())
            }
        }
    }

    /// The next packet from the container, waiting at most `wait` for it.
    pub async fn read(&mut self, wait: Duration) -> Result<FromContainer, ReadFail> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(n) = frame_len(&self.buf, self.limit).map_err(ReadFail::Malformed)? {
                let packet = self.buf.split_to(n).freeze();
                return parse(packet).map_err(ReadFail::Malformed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.conn.read_buf(&mut self.buf, READ)).await {
                Err(_) => return Err(ReadFail::Timeout),
                Ok(Ok(0)) => return Err(ReadFail::Closed(None)),
                Ok(Err(e)) => return Err(ReadFail::Closed(Some(e))),
                Ok(Ok(n)) => self.received += n as u64,
            }
        }
    }

    /// CPING, and the CPONG within `wait` with nothing after it.
    pub async fn ping(&mut self, wait: Duration) -> Result<(), String> {
        self.write(&CPING)
            .await
            .map_err(|e| format!("sending CPING: {e}"))?;
        match self.read(wait).await {
            Ok(FromContainer::Cpong) if self.buf.is_empty() => Ok(()),
            Ok(other) => Err(format!("answered CPING with {other:?}, not CPONG")),
            Err(e) => Err(format!("no CPONG: {e}")),
        }
    }
}

/// Everything that stays fixed across attempts.
struct Ctx<'a> {
    worker: &'a str,
    packet: Vec<u8>,
    body: BodyKind,
    io_timeout: Duration,
    packet_size: usize,
    error_override: bool,
    is_head: bool,
    started: Option<Instant>,
}

impl Ctx<'_> {
    fn log(&self, level: Level, why: impl std::fmt::Display) {
        log(level, format_args!("proxy_ajp: {}: {why}", self.worker));
    }
}

/// How far the request body has come.
#[derive(Default)]
struct Body {
    /// Read from the client, not yet sent.
    pending: Bytes,
    /// The client's body has ended.
    done: bool,
    /// Some of it was read: a retry could not send it again.
    consumed: bool,
}

enum Step {
    Done {
        code: ExchangeStatus,
        status: u16,
        reusable: bool,
        head_at: Option<Instant>,
    },
    /// Nothing came back on a connection that may have been closed while
    /// idle: worth one more try on a new connection, if the body allows.
    Broken { code: ExchangeStatus, why: String },
}

fn done(ctx: &Ctx<'_>, code: ExchangeStatus, why: impl std::fmt::Display) -> Step {
    ctx.log(Level::Error, why);
    Step::Done {
        code,
        status: 0,
        reusable: false,
        head_at: None,
    }
}

/// Runs the exchange; `head_time` gets the time to the response head when
/// the caller asked for times.
pub async fn run(
    pool: &Pool,
    connector: impl Fn(&str) -> Connector,
    req: &mut Request,
    ex: &mut Exchange,
    head_time: &mut Option<Duration>,
) -> (ExchangeStatus, ExchangeOutcome) {
    let mut outcome = ExchangeOutcome::default();
    let (worker, target, params) = (ex.worker(), ex.target(), ex.params());
    let fail = |why: String| log(Level::Error, format_args!("proxy_ajp: {worker}: {why}"));
    let addr = match authority(target) {
        Ok(a) => a,
        Err(e) => {
            fail(format!("invalid target URL: {e}"));
            return (ExchangeStatus::ClientError, outcome);
        }
    };
    let settings = connector(&addr);
    let after_scheme = &target[6..];
    let path_and_query = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let fwd = Forward {
        path,
        query,
        secret: settings.secret.as_deref(),
        packet_size: settings.packet_size,
    };
    let Ok(packet) = forward::encode(req, &fwd) else {
        fail(format!(
            "the request head does not fit one AJP13 packet of {} bytes: raise ajp_packet_size (and the connector's packetSize), or send smaller headers",
            settings.packet_size
        ));
        return (ExchangeStatus::ClientError, outcome);
    };
    let ctx = Ctx {
        worker,
        packet,
        body: forward::body_kind(req),
        io_timeout: millis(params.timeout_ms),
        packet_size: settings.packet_size,
        error_override: ex.flags() & exchange_flags::ERROR_OVERRIDE != 0,
        is_head: req.method() == "HEAD",
        started: ex.wants_times().then(Instant::now),
    };
    let reuse = params.flags & worker_flags::DISABLE_REUSE == 0 && params.max_idle > 0;
    let ttl = (params.ttl_ms > 0).then(|| Duration::from_millis(params.ttl_ms));
    let mut body = Body::default();
    let mut pooled_allowed = reuse;
    loop {
        let pooled = match pooled_allowed {
            true => take_pinged(pool, &ctx, ttl, &settings).await,
            false => None,
        };
        let (mut c, reused) = match pooled {
            Some(c) => (c, true),
            None => {
                let wait = millis(params.connect_timeout_ms);
                match TcpConn::connect(&addr, wait).await {
                    Ok(conn) => (Conn::new(conn, settings.packet_size, ctx.io_timeout), false),
                    Err(e) => {
                        fail(format!("connect to {addr} failed: {e}"));
                        return (ExchangeStatus::ConnectFailed, outcome);
                    }
                }
            }
        };
        if !reused && params.flags & worker_flags::TCP_KEEPALIVE != 0 {
            let _ = c.conn.set_keepalive(true, None);
        }
        let step = attempt(&ctx, &mut c, req, &mut body).await;
        outcome.bytes_sent += c.sent;
        outcome.bytes_received += c.received;
        match step {
            Step::Broken { why, .. } if reused && !body.consumed => {
                ctx.log(
                    Level::Info,
                    format_args!(
                        "pooled connection failed after its CPONG ({why}); retrying on a new one"
                    ),
                );
                pooled_allowed = false;
            }
            Step::Broken { code, why } => {
                ctx.log(Level::Error, why);
                return (code, outcome);
            }
            Step::Done {
                code,
                status,
                reusable,
                head_at,
            } => {
                outcome.status = status;
                if let (Some(t0), Some(at)) = (ctx.started, head_at) {
                    *head_time = Some(at.saturating_duration_since(t0));
                }
                if reuse && reusable {
                    pool.put(worker, c.conn, params.max_idle as usize);
                }
                return (code, outcome);
            }
        }
    }
}

/// The newest pooled connection that is quiet and answers a CPING.
async fn take_pinged(
    pool: &Pool,
    ctx: &Ctx<'_>,
    ttl: Option<Duration>,
    settings: &Connector,
) -> Option<Conn> {
    loop {
        let mut conn = pool.take(ctx.worker, ttl)?;
        if !matches!(conn.idle_state(), IdleState::Quiet) {
            continue;
        }
        let mut c = Conn::new(conn, settings.packet_size, ctx.io_timeout);
        match c.ping(CPING_WAIT.min(ctx.io_timeout)).await {
            Ok(()) => return Some(c),
            Err(why) => ctx.log(
                Level::Info,
                format_args!("pooled connection dropped: {why}"),
            ),
        }
    }
}

/// The response as far as it has come.
#[derive(Default)]
struct Response {
    status: u16,
    /// The head went to the client.
    sent: bool,
    /// error_override took it: the body is read and dropped.
    overridden: bool,
    length: Option<u64>,
    relayed: u64,
    head_at: Option<Instant>,
}

/// One try on one connection.
async fn attempt(ctx: &Ctx<'_>, c: &mut Conn, req: &mut Request, body: &mut Body) -> Step {
    if let Err(e) = c.write(&ctx.packet).await {
        return Step::Broken {
            code: ExchangeStatus::ConnectFailed,
            why: format!("sending the forward request failed: {e}"),
        };
    }
    let max_data = ctx.packet_size - BODY_OVERHEAD;
    if let BodyKind::Length(_) = ctx.body {
        // Tomcat reads the first chunk of a body of known length unasked.
        if let Err(step) = send_chunk(ctx, c, req, body, max_data).await {
            return step;
        }
    }
    let mut resp = Response::default();
    loop {
        let msg = match c.read(ctx.io_timeout).await {
            Ok(msg) => msg,
            Err(fail) => return read_failed(ctx, c, &resp, fail),
        };
        match msg {
            FromContainer::GetBody(n) => {
                if let Err(step) = send_chunk(ctx, c, req, body, n.clamp(1, max_data)).await {
                    return step;
                }
            }
            FromContainer::Headers { status, fields } if resp.status == 0 => {
                resp.status = status;
                resp.head_at = ctx.started.map(|_| Instant::now());
                if ctx.error_override && status >= 400 {
                    resp.overridden = true;
                    continue;
                }
                if let Err(e) = send_head(ctx, req, &mut resp, &fields) {
                    ctx.log(Level::Info, format_args!("client went away: {e}"));
                    return finished(ExchangeStatus::Aborted, &resp, false);
                }
            }
            FromContainer::Body(data) if resp.status != 0 => {
                resp.relayed += data.len() as u64;
                if resp.overridden || data.is_empty() {
                    continue;
                }
                if resp.length.is_some_and(|l| resp.relayed > l) {
                    let why = "the backend sent more body than its Content-Length";
                    return aborted(ctx, &resp, why);
                }
                if let Err(e) = req.write_body(data).await {
                    ctx.log(
                        Level::Info,
                        format_args!("client went away during the response: {e}"),
                    );
                    return finished(ExchangeStatus::Aborted, &resp, false);
                }
            }
            FromContainer::End { reuse } if resp.status != 0 => {
                let reusable = reuse && c.buf.is_empty();
                if resp.overridden {
                    let why = format!(
                        "error_override: backend answered {}; the server's own page replaces it",
                        resp.status
                    );
                    ctx.log(Level::Info, why);
                    return finished(ExchangeStatus::Overridden, &resp, reusable);
                }
                let short = resp.length.is_some_and(|l| l != resp.relayed);
                if short && !ctx.is_head {
                    let why = format!(
                        "the backend ended a body of {} bytes after {}",
                        resp.length.unwrap_or(0),
                        resp.relayed
                    );
                    return aborted(ctx, &resp, why);
                }
                return finished(ExchangeStatus::Relayed, &resp, reusable);
            }
            other => {
                let fail = ReadFail::Malformed(Malformed(format!(
                    "unexpected {} {}",
                    describe(&other),
                    if resp.status == 0 {
                        "before the response head"
                    } else {
                        "after the response head"
                    }
                )));
                return read_failed(ctx, c, &resp, fail);
            }
        }
    }
}

fn describe(msg: &FromContainer) -> &'static str {
    match msg {
        FromContainer::Headers { .. } => "second response head",
        FromContainer::Body(_) => "body chunk",
        FromContainer::End { .. } => "end of response",
        FromContainer::GetBody(_) => "request for body",
        FromContainer::Cpong => "CPONG",
    }
}

fn finished(code: ExchangeStatus, resp: &Response, reusable: bool) -> Step {
    Step::Done {
        code,
        status: resp.status,
        reusable,
        head_at: resp.head_at,
    }
}

fn aborted(ctx: &Ctx<'_>, resp: &Response, why: impl std::fmt::Display) -> Step {
    ctx.log(Level::Error, format_args!("response aborted: {why}"));
    finished(ExchangeStatus::Aborted, resp, false)
}

/// A read that failed: after the head, the response is cut short; before
/// it, a 502 (a timeout too, as Apache answers), or a retry when a pooled
/// connection closed without a word.
fn read_failed(ctx: &Ctx<'_>, c: &Conn, resp: &Response, fail: ReadFail) -> Step {
    if resp.sent {
        return aborted(ctx, resp, fail);
    }
    match fail {
        ReadFail::Timeout => {
            let ms = ctx.io_timeout.as_millis();
            done(
                ctx,
                ExchangeStatus::Timeout,
                format!("no response within {ms} ms"),
            )
        }
        ReadFail::Closed(_) if c.received == 0 => Step::Broken {
            code: ExchangeStatus::BadResponse,
            why: format!("{fail} without responding"),
        },
        fail => done(
            ctx,
            ExchangeStatus::BadResponse,
            format!("{fail}; answering 502 and closing the connection"),
        ),
    }
}

/// Status and fields to the client, hop-by-hop ones left out; the
/// container's Content-Length is kept, and checked against the body.
fn send_head(
    ctx: &Ctx<'_>,
    req: &mut Request,
    resp: &mut Response,
    fields: &[(String, Bytes)],
) -> Result<(), IoError> {
    let hop = HopFilter::from_headers(fields.iter().map(|(n, v)| (n.as_str(), &v[..])));
    req.set_status(resp.status);
    for (name, value) in fields {
        if hop.should_drop(name) {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let Some(n) = modproxy_http1::parse_decimal(value) else {
                ctx.log(
                    Level::Warn,
                    "the backend's Content-Length is not a number; ignored",
                );
                continue;
            };
            if resp.status == 204 || resp.status == 304 || resp.status < 200 {
                continue;
            }
            resp.length = Some(n);
        }
        req.add_header(Headers::Response, name, value);
    }
    req.send_head()?;
    resp.sent = true;
    Ok(())
}

/// Sends up to `max` bytes of the request body, or the empty packet once
/// it has ended. `Err` is how the exchange ends: the client's body broke.
async fn send_chunk(
    ctx: &Ctx<'_>,
    c: &mut Conn,
    req: &mut Request,
    body: &mut Body,
    max: usize,
) -> Result<(), Step> {
    while body.pending.is_empty() && !body.done && ctx.body != BodyKind::None {
        match req.read_body().await {
            Ok(Some(chunk)) => {
                body.consumed = true;
                body.pending = chunk;
            }
            Ok(None) => body.done = true,
            Err(e) => {
                let code = match e {
                    IoError::TooLarge => ExchangeStatus::ClientTooLarge,
                    IoError::Timeout => ExchangeStatus::ClientTimeout,
                    _ => ExchangeStatus::ClientError,
                };
                return Err(done(
                    ctx,
                    code,
                    format!("reading the client's request body: {e}"),
                ));
            }
        }
    }
    let sent = if body.pending.is_empty() {
        c.write(&END_OF_BODY).await
    } else {
        let data = body.pending.split_to(max.min(body.pending.len()));
        match c.write(&body_head(data.len())).await {
            Ok(()) => c.write(&data).await,
            Err(e) => Err(e),
        }
    };
    sent.map_err(|e| {
        done(
            ctx,
            if e == IoError::Timeout {
                ExchangeStatus::BodyTimeout
            } else {
                ExchangeStatus::BadResponse
            },
            format!("sending the request body: {e}"),
        )
    })
}

/// A worker timeout in milliseconds; 0 (unset) falls back to 60 s.
fn millis(ms: u64) -> Duration {
    if ms == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_millis(ms)
    }
}
