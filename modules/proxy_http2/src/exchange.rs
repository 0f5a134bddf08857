//! One exchange from start to finish: a stream slot on one of the
//! backend's connections (or a new connection), the attempt, and the
//! retries an HTTP/2 backend allows: a request it never processed
//! (GOAWAY above its last stream, REFUSED_STREAM) goes to another
//! connection, a few times; one whose connection broke before any answer
//! goes once more if it is idempotent, as proxy_http's keep-alive race.
//!
//! Result codes (see `modproxy_api::proxy::exchange`): a target or head
//! we refuse to build is CLIENT_ERROR; a failed connect is CONNECT_FAILED
//! while nothing of the client's body was read, so that proxy may try
//! another balancer member.

use crate::config::Limits;
use crate::io::HostIo;
use crate::pool::{Connected, NoSlot, Pool, Want};
use crate::request;
use crate::stream::{self, Code, Ctx, Failure, Tally};
use crate::target::Target;
use modproxy_api::proxy::BodyProgress;
use modproxy_api::proxy::{
    exchange_flags, worker_flags, Exchange, ExchangeOutcome, ExchangeStatus, WorkerParams,
};
use modproxy_api::sdk::net::{timeout, TcpConn};
use modproxy_api::{log, Level, Request};
use std::time::{Duration, Instant};

/// Used when a worker's timeout is 0: no wait on a backend is unbounded.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(60_000);
/// Attempts for a request the backend did not process, each on another
/// connection after a GOAWAY (the GOAWAY'd one is retired). Nothing was
/// processed, so a try costs the backend nothing; the bound is for a
/// backend that refuses every stream.
const UNPROCESSED_ATTEMPTS: u32 = 8;
/// The stream window we open per stream and for the connection: how much
/// response body the backend may send ahead of the client.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;
/// The largest response head we take (HPACK-decoded).
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Runs the exchange; returns its code with the outcome to report, and
/// the time to the response head when the caller asked for times.
pub async fn run(
    pool: &Pool,
    limits: impl Fn(&str) -> Limits,
    req: &mut Request,
    ex: &mut Exchange,
) -> (ExchangeStatus, ExchangeOutcome, Option<Duration>) {
    let mut outcome = ExchangeOutcome::default();
    let (worker, url, params) = (ex.worker(), ex.target(), ex.params());
    let fail = |why: &dyn std::fmt::Display| {
        log(Level::Error, format_args!("proxy_http2: {worker}: {why}"))
    };
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(e) => {
            fail(&format_args!("invalid target URL {url:?}: {e}"));
            return (ExchangeStatus::ClientError, outcome, None);
        }
    };
    let mut plan = match request::plan(req, &target, ex.flags()) {
        Ok(p) => p,
        Err(why) => {
            fail(&why);
            return (ExchangeStatus::ClientError, outcome, None);
        }
    };
    let io_timeout = millis(params.timeout_ms);
    let mut head = Some(plan.take_request());
    let ctx = Ctx {
        plan: &plan,
        io_timeout,
        error_override: ex.flags() & exchange_flags::ERROR_OVERRIDE != 0,
        started: ex.wants_times().then(Instant::now),
    };
    let key = target.settings_key();
    let want = Want {
        limits: limits(&key),
        ttl: (params.ttl_ms > 0).then(|| Duration::from_millis(params.ttl_ms)),
        private: params.flags & worker_flags::DISABLE_REUSE != 0,
        wait: io_timeout,
    };
    let mut progress = BodyProgress::default();
    let mut unprocessed = 0;
    let mut broken_retried = false;
    loop {
        let slot = pool
            .slot(&key, &want, || connect(&target, &params, worker))
            .await;
        let slot = match slot {
            Ok(s) => s,
            Err(NoSlot::Connect(why)) => {
                fail(&why);
                let code = if progress.consumed == 0 {
                    ExchangeStatus::ConnectFailed
                } else {
                    ExchangeStatus::BadResponse
                };
                return (code, outcome, None);
            }
            Err(NoSlot::Timeout) => {
                let (n, s) = (want.limits.connections, want.limits.max_streams);
                fail(&format_args!(
                    "no free stream within {} ms: all {n} connections carry {s} streams; \
                     raise h2_max_streams or h2_connections in [[vhost.proxy.h2]]",
                    io_timeout.as_millis()
                ));
                return (ExchangeStatus::Timeout, outcome, None);
            }
        };
        // A retry builds the head again: the request has not changed.
        let this_head = match head.take() {
            Some(h) => h,
            None => match request::plan(req, &target, ex.flags()) {
                Ok(mut p) => p.take_request(),
                Err(why) => {
                    fail(&why);
                    return (ExchangeStatus::ClientError, outcome, None);
                }
            },
        };
        let mut tally = Tally::default();
        let attempt = stream::attempt(&ctx, this_head, &slot.conn, req, &mut progress, &mut tally);
        let result = attempt.await;
        drop(slot);
        outcome.bytes_sent += tally.sent;
        outcome.bytes_received += tally.received;
        outcome.status = tally.status;
        let head_time = match (ctx.started, tally.head_at) {
            (Some(t0), Some(at)) => Some(at.saturating_duration_since(t0)),
            _ => None,
        };
        let retry = |what: &str, why: &str| {
            log(
                Level::Info,
                format_args!("proxy_http2: {worker}: {why}; sending the request again ({what})"),
            )
        };
        match result {
            Ok(code) => return (status(code), outcome, head_time),
            Err(Failure::Unprocessed(why))
                if unprocessed + 1 < UNPROCESSED_ATTEMPTS && progress.can_replay() =>
            {
                unprocessed += 1;
                retry("unprocessed by the backend", &why);
            }
            Err(Failure::Broken(why))
                if !broken_retried && plan.idempotent && progress.can_replay() =>
            {
                broken_retried = true;
                retry("idempotent", &why);
            }
            Err(Failure::Unprocessed(why) | Failure::Broken(why)) => {
                let tries = unprocessed + u32::from(broken_retried) + 1;
                let body = if progress.can_replay() {
                    ""
                } else {
                    " (a request body over 64 KiB cannot be sent again)"
                };
                fail(&format_args!("{why}; gave up after {tries} attempts{body}"));
                return (ExchangeStatus::BadResponse, outcome, head_time);
            }
            Err(Failure::Final(code, why)) => {
                let level = match code {
                    Code::Aborted | Code::ClientError | Code::ClientTimeout => Level::Info,
                    _ => Level::Error,
                };
                log(level, format_args!("proxy_http2: {worker}: {why}"));
                return (status(code), outcome, head_time);
            }
        }
    }
}

fn status(code: Code) -> ExchangeStatus {
    match code {
        Code::Relayed => ExchangeStatus::Relayed,
        Code::Overridden => ExchangeStatus::Overridden,
        Code::Aborted => ExchangeStatus::Aborted,
        Code::BadResponse => ExchangeStatus::BadResponse,
        Code::Timeout => ExchangeStatus::Timeout,
        Code::BodyTimeout => ExchangeStatus::BodyTimeout,
        Code::ClientError => ExchangeStatus::ClientError,
        Code::ClientTooLarge => ExchangeStatus::ClientTooLarge,
        Code::ClientTimeout => ExchangeStatus::ClientTimeout,
    }
}

/// A new connection: TCP (h2c, prior knowledge) or TLS with ALPN h2,
/// then the HTTP/2 preface and SETTINGS. `Err` is the log line.
async fn connect(
    target: &Target<'_>,
    params: &WorkerParams,
    worker: &str,
) -> Result<Connected, String> {
    let addr = target.connect_addr();
    let wait = millis(params.connect_timeout_ms);
    let conn = if target.tls {
        let verify = params.flags & worker_flags::TLS_INSECURE == 0;
        let ca = params.tls_ca_file.as_str();
        TcpConn::connect_tls_h2(&addr, target.host, verify, ca, wait).await
    } else {
        TcpConn::connect(&addr, wait).await
    };
    let mut conn = conn.map_err(|e| format!("connect to {addr} failed: {e}"))?;
    if params.flags & worker_flags::TCP_KEEPALIVE != 0 {
        if let Err(e) = conn.set_keepalive(true, None) {
            log(
                Level::Warn,
                format_args!("proxy_http2: {worker}: cannot turn on TCP keepalive: {e}"),
            );
        }
    }
    let handshake = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .enable_push(false)
        .handshake(HostIo(conn));
    match timeout(wait, handshake).await {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(e)) => Err(format!("HTTP/2 handshake with {addr} failed: {e}")),
        Err(_) => Err(format!(
            "HTTP/2 handshake with {addr} took longer than {} ms",
            wait.as_millis()
        )),
    }
}

/// A worker timeout in milliseconds; 0 (unset) falls back to 60 s.
fn millis(ms: u64) -> Duration {
    if ms == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_millis(ms)
    }
}
