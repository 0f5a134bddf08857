//! One FastCGI exchange: a connection (kept or new), the request out
//! (BEGIN_REQUEST, PARAMS, STDIN streamed from the client), the response
//! back (STDOUT as a CGI response, STDERR to the log) up to END_REQUEST.
//!
//! Result codes: connect refused or timed out is CONNECT_FAILED (proxy
//! answers 503 and holds the worker in error); no head in time, a server
//! that is not FastCGI, or one that ends the request without a CGI head is
//! a 502; a server that stops taking the body is a 504; the client's body
//! breaking off is the client's (400, 408, 413).

use crate::backend::{Backend, Idle, ReadFail};
use crate::params::{Inputs, Vars};
use crate::pool::Pool;
use crate::record::{self, EndRequest};
use crate::response::{self, CgiHead};
use crate::target::Target;
use bytes::Bytes;
use modproxy_api::proxy::{
    exchange_flags, worker_flags, Exchange, ExchangeOutcome, ExchangeStatus,
};
use modproxy_api::sdk::net::TcpConn;
use modproxy_api::{log, Headers, IoError, Level, Request};
use std::time::Duration;

/// proxy's note with the rule's `fcgi_set_env` and `enable_reuse`.
const NOTE: &str = "proxy-fcgi";
/// A chunked request body is read whole first, up to this size, so that
/// CONTENT_LENGTH can be sent (PHP reads no body without it).
const SPOOL_LIMIT: u64 = 16 * 1024 * 1024;
/// A worker timeout of 0 (unset) means this.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the client's body reaches the server.
enum Body {
    None,
    /// Streamed from the client as it arrives.
    Stream,
    /// Read whole before the exchange (a chunked body).
    Spooled(Vec<Bytes>),
}

struct Ctx<'a> {
    worker: &'a str,
    io_timeout: Duration,
}

impl Ctx<'_> {
    fn log(&self, level: Level, why: impl std::fmt::Display) {
        log(level, format_args!("proxy_fcgi: {}: {why}", self.worker));
    }
    fn fail(&self, code: ExchangeStatus, why: impl std::fmt::Display) -> ExchangeStatus {
        self.log(Level::Error, why);
        code
    }
}

pub async fn run(
    pool: &Pool,
    req: &mut Request,
    ex: &mut Exchange,
) -> (ExchangeStatus, ExchangeOutcome) {
    let mut outcome = ExchangeOutcome::default();
    let (worker, url, params) = (ex.worker(), ex.target(), ex.params());
    let ctx = Ctx {
        worker,
        io_timeout: millis(params.timeout_ms),
    };
    let target = match Target::parse(url, worker) {
        Ok(t) => t,
        Err(why) => return (ctx.fail(ExchangeStatus::ClientError, why), outcome),
    };
    let body = match body_plan(req).await {
        Ok(b) => b,
        Err((code, why)) => return (ctx.fail(code, why), outcome),
    };
    let note = req.note(NOTE).unwrap_or_default();
    let keep = note.split('\n').any(|l| l == "+reuse")
        && params.flags & worker_flags::DISABLE_REUSE == 0
        && params.max_idle > 0;
    let request = encode_request(req, &target, &body, note, keep);
    let ttl = (params.ttl_ms > 0).then(|| Duration::from_millis(params.ttl_ms));
    let error_override = ex.flags() & exchange_flags::ERROR_OVERRIDE != 0;
    let mut pooled = if keep { pool.take(worker, ttl) } else { None };
    loop {
        let reused = pooled.is_some();
        let idle = match pooled.take() {
            Some(idle) => idle,
            None => match connect(&ctx, &target, params.connect_timeout_ms).await {
                Ok(conn) => Idle::new(conn),
                Err(code) => return (code, outcome),
            },
        };
        let mut b = Backend::new(idle, ctx.io_timeout);
        let step = attempt(&ctx, &mut b, req, &request, &body, error_override).await;
        outcome.bytes_sent += b.sent;
        outcome.bytes_received += b.received;
        match step {
            // A kept connection the server had closed: the keep-alive race.
            // Nothing of the client's was consumed, so try a new one, once.
            Step::Stale(why) if reused && !matches!(body, Body::Stream) => {
                ctx.log(
                    Level::Debug,
                    format_args!("kept connection unusable ({why}); retrying on a new one"),
                );
            }
            Step::Stale(why) => {
                let code = ctx.fail(
                    ExchangeStatus::BadResponse,
                    format_args!("{why} before answering"),
                );
                return (code, outcome);
            }
            Step::Done {
                code,
                status,
                reusable,
            } => {
                outcome.status = status;
                if keep && reusable {
                    pool.put(worker, b.into_idle(), params.max_idle as usize);
                }
                return (code, outcome);
            }
        }
    }
}

/// Connects; `Err` is CONNECT_FAILED, logged with what to check.
async fn connect(
    ctx: &Ctx<'_>,
    target: &Target<'_>,
    timeout_ms: u64,
) -> Result<TcpConn, ExchangeStatus> {
    let addr = &target.connect;
    TcpConn::connect(addr, millis(timeout_ms)).await.map_err(|e| {
        ctx.fail(
            ExchangeStatus::ConnectFailed,
            format_args!("connect to {addr} failed: {e}; is the FastCGI server (PHP-FPM) running and listening there?"),
        )
    })
}

/// The body's plan from the client's framing; a chunked body is read here.
async fn body_plan(req: &mut Request) -> Result<Body, (ExchangeStatus, String)> {
    if req.header(Headers::Request, "transfer-encoding").is_none() {
        let length = req.header(Headers::Request, "content-length");
        return Ok(match length.map(|v| v.trim_ascii()) {
            None | Some(b"0") => Body::None,
            Some(_) => Body::Stream,
        });
    }
    let mut kept = Vec::new();
    let mut total = 0u64;
    loop {
        match req.read_body().await {
            Ok(None) => return Ok(Body::Spooled(kept)),
            Ok(Some(chunk)) => {
                total += chunk.len() as u64;
                if total > SPOOL_LIMIT {
                    let why = format!("chunked request body over {} MiB: FastCGI needs its length first, so it is read whole; send a Content-Length instead", SPOOL_LIMIT >> 20);
                    return Err((ExchangeStatus::ClientTooLarge, why));
                }
                kept.push(chunk);
            }
            Err(e) => {
                return Err((
                    client_code(e),
                    format!("reading the client's request body: {e}"),
                ))
            }
        }
    }
}

fn client_code(e: IoError) -> ExchangeStatus {
    match e {
        IoError::TooLarge => ExchangeStatus::ClientTooLarge,
        IoError::Timeout => ExchangeStatus::ClientTimeout,
        _ => ExchangeStatus::ClientError,
    }
}

/// BEGIN_REQUEST and the PARAMS stream, ended; for a request without a
/// body (or a spooled one) the whole STDIN stream too: one write in all.
fn encode_request(
    req: &Request,
    target: &Target<'_>,
    body: &Body,
    note: &str,
    keep: bool,
) -> Vec<u8> {
    let spooled_len = match body {
        Body::Spooled(chunks) => Some(chunks.iter().map(|c| c.len() as u64).sum()),
        _ => None,
    };
    let inputs = Inputs {
        method: req.method(),
        path: req.path(),
        query: req.query(),
        version: req.version(),
        client: req.client_addr(),
        local: req.local_addr(),
        scheme: req.scheme(),
        server_name: req.server_name(),
        headers: req.headers(Headers::Request).iter().collect(),
        spooled_len,
    };
    let mut vars = Vars::build(&inputs, target);
    if !note.is_empty() {
        vars.apply(note);
    }
    let mut pairs = Vec::with_capacity(2048);
    vars.encode(&mut pairs);
    let mut out = Vec::with_capacity(pairs.len() + 64);
    record::begin_request(keep, &mut out);
    record::stream(record::PARAMS, &pairs, &mut out);
    record::end_of_stream(record::PARAMS, &mut out);
    match body {
        Body::None => record::end_of_stream(record::STDIN, &mut out),
        Body::Spooled(chunks) => {
            let whole: Vec<u8> = chunks.concat();
            record::stream(record::STDIN, &whole, &mut out);
            record::end_of_stream(record::STDIN, &mut out);
        }
        Body::Stream => {}
    }
    out
}

enum Step {
    /// The connection failed before the server sent a byte.
    Stale(String),
    Done {
        code: ExchangeStatus,
        status: u16,
        reusable: bool,
    },
}

fn done(code: ExchangeStatus) -> Step {
    Step::Done {
        code,
        status: 0,
        reusable: false,
    }
}

async fn attempt(
    ctx: &Ctx<'_>,
    b: &mut Backend,
    req: &mut Request,
    request: &[u8],
    body: &Body,
    error_override: bool,
) -> Step {
    if let Err(e) = b.write(request).await {
        return Step::Stale(format!("sending the request failed: {e}"));
    }
    if let Body::Stream = body {
        if let Err(step) = stream_body(ctx, b, req).await {
            return step;
        }
    }
    let mut stderr = Stderr::default();
    let (head, rest) = match read_head(ctx, b, &mut stderr).await {
        Ok(h) => h,
        Err(step) => return step,
    };
    let status = head.status;
    if error_override && status >= 400 {
        ctx.log(Level::Info, format_args!("error_override: the application answered {status}; the server's own page replaces it"));
        let reusable = matches!(drain(b, &mut stderr, ctx).await, Ok(true));
        return Step::Done {
            code: ExchangeStatus::Overridden,
            status,
            reusable,
        };
    }
    match relay(ctx, b, req, head, rest, &mut stderr).await {
        Ok(()) => Step::Done {
            code: ExchangeStatus::Relayed,
            status,
            reusable: !b.has_unread(),
        },
        Err(why) => {
            ctx.log(Level::Error, format_args!("response aborted: {why}"));
            Step::Done {
                code: ExchangeStatus::Aborted,
                status,
                reusable: false,
            }
        }
    }
}

/// The client's body as STDIN records, then the empty one.
async fn stream_body(ctx: &Ctx<'_>, b: &mut Backend, req: &mut Request) -> Result<(), Step> {
    let mut scratch = Vec::new();
    loop {
        let chunk = match req.read_body().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                let code = ctx.fail(
                    client_code(e),
                    format_args!("reading the client's request body: {e}"),
                );
                return Err(done(code));
            }
        };
        if let Err(e) = b.write_stdin(&chunk, &mut scratch).await {
            return Err(done(body_write_failed(ctx, e)));
        }
    }
    let mut end = Vec::with_capacity(record::HEADER_LEN);
    record::end_of_stream(record::STDIN, &mut end);
    b.write(&end)
        .await
        .map_err(|e| done(body_write_failed(ctx, e)))
}

fn body_write_failed(ctx: &Ctx<'_>, e: IoError) -> ExchangeStatus {
    if e == IoError::Timeout {
        let ms = ctx.io_timeout.as_millis();
        return ctx.fail(
            ExchangeStatus::BodyTimeout,
            format_args!("the server did not read the request body within {ms} ms"),
        );
    }
    ctx.fail(
        ExchangeStatus::BadResponse,
        format_args!("sending the request body failed: {e}"),
    )
}

/// STDOUT up to the end of the CGI head: the head, and what came after it.
async fn read_head(
    ctx: &Ctx<'_>,
    b: &mut Backend,
    stderr: &mut Stderr,
) -> Result<(CgiHead, Vec<Bytes>), Step> {
    let mut got = Vec::new();
    let mut any = false;
    loop {
        let (h, content) = match b.record(ctx.io_timeout).await {
            Ok(r) => r,
            Err(ReadFail::Closed { clean: true }) | Err(ReadFail::Io(IoError::Reset)) if !any => {
                return Err(Step::Stale("the server closed the connection".to_owned()))
            }
            Err(ReadFail::Timeout) => {
                let ms = ctx.io_timeout.as_millis();
                return Err(done(ctx.fail(
                    ExchangeStatus::Timeout,
                    format_args!("no response head within {ms} ms"),
                )));
            }
            Err(e) => {
                return Err(done(ctx.fail(
                    ExchangeStatus::BadResponse,
                    format_args!("{e} before the response head"),
                )))
            }
        };
        any = true;
        match h.kind {
            record::STDOUT => {
                got.extend_from_slice(&content);
                if let Some(end) = response::head_end(&got) {
                    let head = response::parse(&got[..end])
                        .map_err(|why| done(ctx.fail(ExchangeStatus::BadResponse, why)))?;
                    let rest = got.split_off(end);
                    let rest = if rest.is_empty() {
                        Vec::new()
                    } else {
                        vec![Bytes::from(rest)]
                    };
                    return Ok((head, rest));
                }
                if got.len() > response::MAX_HEAD || content.is_empty() {
                    let why = if content.is_empty() {
                        format!("the application's output ended inside its header lines ({} bytes, no empty line)", got.len())
                    } else {
                        format!(
                            "the application's header lines run past {} KiB",
                            response::MAX_HEAD >> 10
                        )
                    };
                    return Err(done(ctx.fail(ExchangeStatus::BadResponse, why)));
                }
            }
            record::STDERR => stderr.log(ctx, &content),
            record::END_REQUEST => {
                stderr.flush(ctx);
                let why = match EndRequest::parse(&content) {
                    Ok(end) => match end.refusal() {
                        Some(refusal) => format!("the server refused the request: {refusal}"),
                        None => format!("the application ended (exit status {}) without a response head; see its log (PHP-FPM: the pool's error log)", end.app_status),
                    },
                    Err(why) => why,
                };
                return Err(done(ctx.fail(ExchangeStatus::BadResponse, why)));
            }
            other => ctx.log(
                Level::Debug,
                format_args!("ignored a record of type {other}"),
            ),
        }
    }
}

/// Sends the head and the body to the client. A body that ended with the
/// head's read gets its Content-Length; a longer one streams as it comes.
async fn relay(
    ctx: &Ctx<'_>,
    b: &mut Backend,
    req: &mut Request,
    head: CgiHead,
    mut pending: Vec<Bytes>,
    stderr: &mut Stderr,
) -> Result<(), String> {
    let mut ended = false;
    while !ended {
        match b.buffered() {
            Ok(Some((h, content))) => ended = handle(ctx, h.kind, content, &mut pending, stderr)?,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    req.set_status(head.status);
    for (name, value) in &head.fields {
        req.add_header(Headers::Response, name, value);
    }
    let bodiless = req.method().eq_ignore_ascii_case("HEAD") || matches!(head.status, 204 | 304);
    if ended && !bodiless {
        let len: usize = pending.iter().map(Bytes::len).sum();
        req.set_header(
            Headers::Response,
            "Content-Length",
            len.to_string().as_bytes(),
        );
    }
    req.send_head()
        .map_err(|e| format!("the client went away: {e}"))?;
    for chunk in pending.drain(..) {
        req.write_body(chunk)
            .await
            .map_err(|e| format!("the client went away: {e}"))?;
    }
    while !ended {
        let (h, content) = b
            .record(ctx.io_timeout)
            .await
            .map_err(|e| format!("{e} inside the response body"))?;
        ended = handle(ctx, h.kind, content, &mut pending, stderr)?;
        for chunk in pending.drain(..) {
            req.write_body(chunk)
                .await
                .map_err(|e| format!("the client went away: {e}"))?;
        }
    }
    Ok(())
}

/// One record after the head; `Ok(true)` at END_REQUEST.
fn handle(
    ctx: &Ctx<'_>,
    kind: u8,
    content: Bytes,
    body: &mut Vec<Bytes>,
    stderr: &mut Stderr,
) -> Result<bool, String> {
    match kind {
        record::STDOUT if !content.is_empty() => body.push(content),
        record::STDERR => stderr.log(ctx, &content),
        record::END_REQUEST => {
            stderr.flush(ctx);
            let end = EndRequest::parse(&content)?;
            if let Some(refusal) = end.refusal() {
                return Err(format!("the server refused the request: {refusal}"));
            }
            return Ok(true);
        }
        _ => {}
    }
    Ok(false)
}

/// Reads to END_REQUEST, discarding STDOUT (error_override); `Ok(true)`
/// when the connection can be kept.
async fn drain(b: &mut Backend, stderr: &mut Stderr, ctx: &Ctx<'_>) -> Result<bool, String> {
    let mut discard = Vec::new();
    loop {
        let (h, content) = b.record(ctx.io_timeout).await.map_err(|e| e.to_string())?;
        if handle(ctx, h.kind, content, &mut discard, stderr)? {
            return Ok(!b.has_unread());
        }
        discard.clear();
    }
}

/// FCGI_STDERR, logged a line at a time with the worker's name (Apache's
/// AH01071 "Got error"); a line split across records is joined first.
#[derive(Default)]
struct Stderr {
    partial: Vec<u8>,
}

impl Stderr {
    fn log(&mut self, ctx: &Ctx<'_>, content: &[u8]) {
        self.partial.extend_from_slice(content);
        while let Some(nl) = self.partial.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            Self::line(ctx, &line);
        }
        if self.partial.len() > 8192 {
            self.flush(ctx);
        }
    }
    fn flush(&mut self, ctx: &Ctx<'_>) {
        let line = std::mem::take(&mut self.partial);
        Self::line(ctx, &line);
    }
    fn line(ctx: &Ctx<'_>, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if !text.is_empty() {
            ctx.log(Level::Error, format_args!("FastCGI stderr: {text}"));
        }
    }
}

fn millis(ms: u64) -> Duration {
    if ms == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_millis(ms)
    }
}
