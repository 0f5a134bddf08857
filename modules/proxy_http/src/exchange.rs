//! One exchange from start to finish: a connection from the pool or a
//! connect, the request out, the response back, the connection back to the
//! pool; plus the single retry that the keep-alive race deserves.
//!
//! Result codes (see `modproxy_api::proxy::exchange`): a target URL or
//! request head we refuse to build is CLIENT_ERROR, as Apache answers 400
//! for a URL it cannot parse; nothing else here blames the client except
//! its own body breaking off.

use crate::backend::{Answered, Backend, Idle};
use crate::drain;
use crate::pool::{Limits, Pool};
use crate::relay::{self, Got, HeadFail, HeadOpts, RelayError};
use crate::send::{self, BodyError, Plan};
use crate::target::Target;
use modproxy_api::proxy::BodyProgress;
use modproxy_api::proxy::{
    exchange_flags, worker_flags, Exchange, ExchangeOutcome, ExchangeStatus, WorkerParams,
};
use modproxy_api::sdk::net::{timeout, IdleState, TcpConn};
use modproxy_api::{log, IoError, Level, Request};
use modproxy_http1::backend_request::BodyFraming;
use modproxy_http1::backend_response::ResponseHead;
use std::time::{Duration, Instant};

/// How long to hold the body back after `Expect: 100-continue` before
/// sending it anyway (RFC 9110 §10.1.1: a client should not wait forever).
const CONTINUE_WAIT: Duration = Duration::from_secs(1);
/// Used when a worker's timeout is 0: no wait on a backend is unbounded.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// After the backend stopped taking the request body for a whole timeout,
/// how long to look for an answer it may have sent early (a 413, say)
/// before giving up with 504.
const EARLY_ANSWER_WAIT: Duration = Duration::from_millis(200);

/// Everything about the exchange that stays fixed across attempts.
struct Ctx<'a> {
    worker: &'a str,
    plan: Plan,
    io_timeout: Duration,
    /// error_override: a backend 4xx/5xx is not relayed.
    error_override: bool,
    /// When the exchange began, if the caller wants the time to the head
    /// (`Exchange::wants_times`): the clock is read only then.
    started: Option<Instant>,
}

impl Ctx<'_> {
    fn log(&self, level: Level, why: impl std::fmt::Display) {
        log(level, format_args!("proxy_http: {}: {why}", self.worker));
    }

    /// The response of this exchange with `status`, as the log names it.
    fn answered(&self, status: u16) -> Answered {
        Answered {
            status,
            head: self.plan.is_head,
        }
    }
}

/// How one attempt on one connection ended.
enum Step {
    /// Final: this code goes to the caller.
    Done {
        code: ExchangeStatus,
        status: u16,
        reusable: bool,
    },
    /// The connection broke before a valid response head: closed, reset,
    /// or garbage. On a pooled connection that is the keep-alive race (or
    /// stray bytes that came after the peek), retried once on a fresh
    /// connection; otherwise it ends with `code`.
    Broken {
        code: ExchangeStatus,
        why: String,
        /// How loudly to log a retry: the race is routine, garbage is not.
        retry_level: Level,
    },
}

/// Runs the exchange and returns its code with the outcome to report;
/// `head_time` gets the time to the final response head when the caller
/// asked for times. `ex` is taken `&mut` although only read: `Exchange` is
/// `Send` but not `Sync`, and a shared borrow held across an await would
/// make this future not `Send`.
pub async fn run(
    pool: &Pool<Idle>,
    req: &mut Request,
    ex: &mut Exchange,
    head_time: &mut Option<Duration>,
) -> (ExchangeStatus, ExchangeOutcome) {
    let mut outcome = ExchangeOutcome::default();
    let (worker, url, params) = (ex.worker(), ex.target(), ex.params());
    let fail = |why: String| log(Level::Error, format_args!("proxy_http: {worker}: {why}"));
    let target = match Target::parse_cached(url) {
        Ok(t) => t,
        Err(e) => {
            fail(format!("invalid target URL {url:?}: {e}"));
            return (ExchangeStatus::ClientError, outcome);
        }
    };
    let reuse = params.flags & worker_flags::DISABLE_REUSE == 0 && params.max_idle > 0;
    let plan = match send::plan(req, &target, ex.flags(), !reuse) {
        Ok(p) => p,
        Err(why) => {
            fail(why);
            return (ExchangeStatus::ClientError, outcome);
        }
    };
    let limits = Limits {
        ttl: (params.ttl_ms > 0).then(|| Duration::from_millis(params.ttl_ms)),
        max_idle: params.max_idle as usize,
    };
    let ctx = Ctx {
        worker,
        plan,
        io_timeout: millis(params.timeout_ms),
        error_override: ex.flags() & exchange_flags::ERROR_OVERRIDE != 0,
        started: ex.wants_times().then(Instant::now),
    };
    let mut progress = BodyProgress::default();
    let mut pooled = if reuse {
        take_live(pool, &ctx, limits)
    } else {
        None
    };
    loop {
        let (conn, reused) = match pooled.take() {
            Some(conn) => (conn, true),
            None => match open(&target, &params).await {
                Ok(conn) => (conn, false),
                Err(why) => {
                    fail(why);
                    return (ExchangeStatus::ConnectFailed, outcome);
                }
            },
        };
        let mut b = Backend::new(conn, reused, ctx.io_timeout);
        let step = attempt(&ctx, &mut b, req, &mut progress).await;
        outcome.bytes_sent += b.sent;
        outcome.bytes_received += b.received;
        match step {
            Step::Broken {
                why, retry_level, ..
            } if b.reused && ctx.plan.idempotent && progress.can_replay() => {
                // `pooled` is now None: the retry gets a fresh connection, once.
                ctx.log(
                    retry_level,
                    format_args!("pooled connection unusable ({why}); retrying on a new one"),
                );
            }
            Step::Broken { code, why, .. } => {
                ctx.log(Level::Error, why);
                return (code, outcome);
            }
            Step::Done {
                code,
                status,
                reusable,
            } => {
                outcome.status = status;
                if let (Some(t0), Some(head)) = (ctx.started, b.head_at) {
                    *head_time = Some(head.saturating_duration_since(t0));
                }
                if reuse && reusable {
                    let last = ctx.answered(status);
                    pool.put(worker, b.into_idle(last), limits, Instant::now);
                }
                return (code, outcome);
            }
        }
    }
}

/// A new connection to the target, with TCP keepalive when the worker
/// asks for it; `Err` is the log line. The address is only formatted here:
/// an exchange on a pooled connection never needs it.
async fn open(target: &Target<'_>, params: &WorkerParams) -> Result<Idle, String> {
    let addr = target.connect_addr();
    let mut conn = connect(target, &addr, params)
        .await
        .map_err(|e| format!("connect to {addr} failed: {e}"))?;
    if params.flags & worker_flags::TCP_KEEPALIVE != 0 {
        if let Err(e) = conn.set_keepalive(true, None) {
            log(
                Level::Warn,
                format_args!("proxy_http: {addr}: cannot turn on TCP keepalive: {e}"),
            );
        }
    }
    Ok(Idle::new(conn))
}

/// A new connection: TCP, or TCP and TLS for `https://` (SNI and
/// verification by the URL's host).
async fn connect(
    target: &Target<'_>,
    addr: &str,
    params: &WorkerParams,
) -> Result<TcpConn, IoError> {
    let wait = millis(params.connect_timeout_ms);
    if !target.tls {
        return TcpConn::connect(addr, wait).await;
    }
    let verify = params.flags & worker_flags::TLS_INSECURE == 0;
    let ca_file = params.tls_ca_file.as_str();
    TcpConn::connect_tls(addr, target.host, verify, ca_file, wait).await
}

/// The newest pooled connection that is open and quiet, if any. Each is
/// asked right here, of its socket, not of cached readiness: bytes that
/// reached us after the last response (a backend splitting its answer)
/// must never be read as the next client's.
fn take_live(pool: &Pool<Idle>, ctx: &Ctx<'_>, limits: Limits) -> Option<Idle> {
    loop {
        let mut idle = pool.take(ctx.worker, limits, Instant::now)?;
        match idle.conn.idle_state() {
            IdleState::Quiet => return Some(idle),
            IdleState::Unread => ctx.log(Level::Warn, stray_bytes(idle.last, None)),
            IdleState::Closed => {}
        }
    }
}

/// The log line for bytes a backend sent after a complete response
/// (`count`, when known): the connection is closed, never reused.
fn stray_bytes(after: Answered, count: Option<usize>) -> String {
    let what = count.map_or("bytes".to_owned(), |n| format!("{n} bytes"));
    format!(
        "backend sent {what} after {after} that no request asked for (a bug in the \
         application, or response splitting); closed the connection instead of reusing it"
    )
}

/// One try on one connection: head, body, response.
async fn attempt(
    ctx: &Ctx<'_>,
    b: &mut Backend,
    req: &mut Request,
    progress: &mut BodyProgress,
) -> Step {
    let plan = &ctx.plan;
    if let Err(e) = b.write(&plan.head).await {
        // A backend never acts on half a head: safe to try another member.
        return Step::Broken {
            code: ExchangeStatus::ConnectFailed,
            why: format!("sending the request head failed: {e}"),
            retry_level: Level::Debug,
        };
    }
    let mut interim = 0;
    let mut opts = HeadOpts {
        is_head: plan.is_head,
        upgrade_requested: plan.upgrade_requested,
        stop_at_continue: true,
    };
    let mut early = None;
    let mut body_sent = plan.framing == BodyFraming::None;
    let mut body_timed_out = false;
    if !body_sent {
        if plan.expect_continue {
            // Hold the body back until the backend says 100 (or nothing for
            // a while); a final answer instead means the body is not wanted.
            match timeout(
                CONTINUE_WAIT.min(ctx.io_timeout),
                relay::read_head(b, &opts, &mut interim),
            )
            .await
            {
                Err(_) | Ok(Ok(Got::Continue)) => {}
                Ok(Ok(Got::Final(head))) => early = Some(head),
                Ok(Err(fail)) => return head_failed(ctx, b, fail),
            }
        }
        if early.is_none() {
            match send::send_body(req, b, plan.framing, progress).await {
                Ok(()) => body_sent = true,
                Err(BodyError::Client(e)) => {
                    let rc = match e {
                        IoError::TooLarge => ExchangeStatus::ClientTooLarge,
                        IoError::Timeout => ExchangeStatus::ClientTimeout,
                        _ => ExchangeStatus::ClientError,
                    };
                    return done(ctx, rc, format!("reading the client's request body: {e}"));
                }
                Err(BodyError::Length { got, want }) => {
                    return done(
                        ctx,
                        ExchangeStatus::ClientError,
                        format!("client body of {got} bytes, Content-Length said {want}"),
                    )
                }
                // The backend may have answered early (413, 401) and
                // stopped reading: its response is still worth relaying.
                Err(BodyError::Backend(e)) => {
                    ctx.log(
                        Level::Info,
                        format_args!("sending the request body failed ({e}); reading the response"),
                    );
                    body_timed_out = e == IoError::Timeout;
                }
            }
        }
    }
    opts.stop_at_continue = false;
    let head = match early {
        Some(head) => head,
        None => {
            let wait = if body_timed_out {
                EARLY_ANSWER_WAIT
            } else {
                ctx.io_timeout
            };
            match read_final(ctx, b, &opts, &mut interim, wait).await {
                Ok(Some(head)) => head,
                Ok(None) if body_timed_out => {
                    let ms = ctx.io_timeout.as_millis();
                    let why = format!("the backend did not read the request body within {ms} ms");
                    return done(ctx, ExchangeStatus::BodyTimeout, why);
                }
                Ok(None) => {
                    let why = format!("no response head within {} ms", ctx.io_timeout.as_millis());
                    return done(ctx, ExchangeStatus::Timeout, why);
                }
                Err(step) => return step,
            }
        }
    };
    if ctx.started.is_some() {
        b.head_at = Some(Instant::now());
    }
    let status = head.status;
    let keep = !head.connection_close && body_sent;
    if ctx.error_override && status >= 400 {
        // The core answers with its own page: the backend's is discarded,
        // read to its end when small so the connection can be pooled.
        let reusable = keep && drain::drain(b, head.framing).await;
        log_surplus(ctx, b, status);
        ctx.log(
            Level::Info,
            format_args!(
                "error_override: backend answered {status}; the server's own page replaces it"
            ),
        );
        return Step::Done {
            code: ExchangeStatus::Overridden,
            status,
            reusable,
        };
    }
    match relay::relay(req, b, head, plan.via.as_deref()).await {
        Ok(clean) => {
            log_surplus(ctx, b, status);
            Step::Done {
                code: ExchangeStatus::Relayed,
                status,
                reusable: keep && clean,
            }
        }
        Err(RelayError::Client(e)) => {
            ctx.log(
                Level::Info,
                format_args!("client went away during the response: {e}"),
            );
            Step::Done {
                code: ExchangeStatus::Aborted,
                status,
                reusable: false,
            }
        }
        Err(RelayError::Backend(why)) => {
            ctx.log(Level::Error, format_args!("response aborted: {why}"));
            Step::Done {
                code: ExchangeStatus::Aborted,
                status,
                reusable: false,
            }
        }
    }
}

/// Bytes already read past a complete response: they keep the connection
/// out of the pool (see `relay`), and are logged once, here.
fn log_surplus(ctx: &Ctx<'_>, b: &Backend, status: u16) {
    if !b.buf.is_empty() {
        let after = ctx.answered(status);
        ctx.log(Level::Warn, stray_bytes(after, Some(b.buf.len())));
    }
}

/// The final head within `wait`; `Ok(None)` when none came in time.
async fn read_final(
    ctx: &Ctx<'_>,
    b: &mut Backend,
    opts: &HeadOpts,
    interim: &mut u32,
    wait: Duration,
) -> Result<Option<ResponseHead>, Step> {
    // Out of `b` while read_head borrows it, and back after.
    let mut deadline = std::mem::take(&mut b.deadline);
    let got = deadline.run(wait, relay::read_head(b, opts, interim)).await;
    b.deadline = deadline;
    match got {
        Some(Ok(Got::Final(head))) => Ok(Some(head)),
        // Cannot happen with stop_at_continue off; refuse rather than panic.
        Some(Ok(Got::Continue)) => Err(head_failed(
            ctx,
            b,
            HeadFail::Bad("unexpected 100 Continue".to_owned()),
        )),
        Some(Err(fail)) => Err(head_failed(ctx, b, fail)),
        None => Ok(None),
    }
}

/// A silent close may be the keep-alive race. A bad head on a pooled
/// connection may be stray bytes of an earlier response that arrived after
/// the peek: both are worth one more try on a fresh connection. A bad head
/// on a fresh connection is the backend's, and final.
fn head_failed(ctx: &Ctx<'_>, b: &Backend, fail: HeadFail) -> Step {
    match fail {
        HeadFail::ClosedEarly => Step::Broken {
            code: ExchangeStatus::BadResponse,
            why: "backend closed the connection without responding".to_owned(),
            retry_level: Level::Debug,
        },
        HeadFail::Bad(why) if b.reused => Step::Broken {
            code: ExchangeStatus::BadResponse,
            why: format!("no valid response head on a reused connection: {why}"),
            retry_level: Level::Warn,
        },
        HeadFail::Bad(why) => done(ctx, ExchangeStatus::BadResponse, why),
    }
}

fn done(ctx: &Ctx<'_>, code: ExchangeStatus, why: String) -> Step {
    ctx.log(Level::Error, why);
    Step::Done {
        code,
        status: 0,
        reusable: false,
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
