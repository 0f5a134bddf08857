//! The handler: relays a request translate_name claimed through the scheme
//! handler, either to a direct backend (held in error after a failed
//! connect) or to balancer members with Apache's failover loop.

use crate::notes::{RULE, TARGET};
use crate::paths::{self, member_target, origin, split_origin};
use crate::vhost::{Backend, VhostProxy};
use crate::worker::WorkerState;
use crate::Proxy;
use modproxy_api::lb::{outcome_flags, LbOutcome};
use modproxy_api::proxy::{
    exchange_flags, micros, worker_flags, BalancerHandle, ExchangeOutcome, ExchangeStatus,
    PickError, TimedOutcome, WorkerParams,
};
use modproxy_api::sdk::net::sleep;
use modproxy_api::{log, Headers, Level, Request, Status};
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Declines requests without the `proxy-target` note; otherwise the
/// exchange, resolving to OK (relayed) or the error status to answer.
pub fn handle(
    m: &'static Proxy,
    mut req: Request,
) -> Option<impl Future<Output = Status> + Send + 'static> {
    let url = req.note(TARGET)?.to_string();
    let v = m.vhost(req.vhost())?;
    let rule = RuleRef::find(v, req.note(RULE).unwrap_or_default());
    Some(async move { run(m, v, rule, &url, &mut req).await })
}

/// The rule translate_name noted, found before the exchange so that the
/// future holds an index, not a copy of the note.
enum RuleRef {
    Forward,
    Index(usize),
    /// No such rule: a 500, naming this.
    Unknown(String),
}

impl RuleRef {
    fn find(v: &VhostProxy, name: &str) -> RuleRef {
        if name == "forward" {
            return RuleRef::Forward;
        }
        match v.rule_index(name) {
            Some(i) => RuleRef::Index(i),
            None => RuleRef::Unknown(name.to_owned()),
        }
    }
}

/// One try against one backend.
struct Attempt<'a> {
    target: &'a str,
    /// The connection pool: `scheme://host:port`.
    worker: &'a str,
    params: WorkerParams,
    flags: u32,
}

async fn run(m: &Proxy, v: &VhostProxy, rule: RuleRef, url: &str, req: &mut Request) -> Status {
    if v.block_via {
        req.remove_header(Headers::Request, "Via");
    }
    let r = match rule {
        RuleRef::Forward => {
            let worker = origin(url);
            // Forward targets are not configured workers: nothing holds them in error.
            let a = Attempt {
                target: url,
                worker: &worker,
                params: v.defaults,
                flags: v.flags,
            };
            return direct(m, req, &a, None).await;
        }
        RuleRef::Index(i) => &v.rules[i],
        RuleRef::Unknown(rule) => {
            log(
                Level::Error,
                format_args!("proxy: no rule {rule:?} for target {url}; answering 500"),
            );
            return Status::Http(500);
        }
    };
    match &r.backend {
        Backend::Direct { key, state, .. } => {
            let a = Attempt {
                target: url,
                worker: key,
                params: r.params,
                flags: v.flags,
            };
            direct(m, req, &a, Some((state, r.retry))).await
        }
        Backend::Balancer { name, .. } => balanced(m, req, url, name, v.flags).await,
        Backend::Exclude => Status::Declined,
    }
}

async fn exchange(m: &Proxy, req: &mut Request, a: &Attempt<'_>) -> (ExchangeStatus, TimedOutcome) {
    let mut scheme = paths::scheme(a.target);
    if wants_websocket(req) && (scheme == "http" || scheme == "https") {
        if a.params.flags & worker_flags::UPGRADE_WEBSOCKET == 0 {
            // Refused rather than forwarded without its Upgrade: the
            // client learns at once that no tunnel will come.
            log(
                Level::Info,
                format_args!(
                    "proxy: {}: WebSocket upgrade refused (400): the worker has no upgrade = \"websocket\"",
                    a.worker
                ),
            );
            return (ExchangeStatus::ClientError, TimedOutcome::default());
        }
        // proxy_wstunnel tunnels the same URL: ws:// for http://, wss:// for https://.
        scheme = Cow::Borrowed(if scheme == "http" { "ws" } else { "wss" });
    }
    let Some(handler) = m.scheme(&scheme) else {
        log(
            Level::Error,
            format_args!("proxy: {}: no module handles {scheme}:// URLs", a.target),
        );
        return (ExchangeStatus::Declined, TimedOutcome::default());
    };
    handler
        .exchange_timed(req, a.target, a.worker, a.params, a.flags)
        .await
}

/// `Upgrade: websocket` (any case, possibly among other protocols).
fn wants_websocket(req: &Request) -> bool {
    req.header(Headers::Request, "upgrade").is_some_and(|v| {
        v.split(|b| *b == b',')
            .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    })
}

/// A direct backend; `hold` is its error state and `retry`.
async fn direct(
    m: &Proxy,
    req: &mut Request,
    a: &Attempt<'_>,
    hold: Option<(&Arc<WorkerState>, Duration)>,
) -> Status {
    if let Some((state, retry)) = hold {
        if state.held(Instant::now(), retry) {
            log(
                Level::Warn,
                format_args!(
                    "proxy: worker {} is in error state; answering 503 without trying",
                    a.worker
                ),
            );
            return Status::Http(503);
        }
    }
    let (code, TimedOutcome { outcome, .. }) = exchange(m, req, a).await;
    match (code, hold) {
        (ExchangeStatus::ConnectFailed, Some((state, retry))) if !retry.is_zero() => {
            state.fail(Instant::now());
            let secs = retry.as_secs();
            log(
                Level::Error,
                format_args!(
                    "proxy: worker {} in error state for {secs}s: connect failed",
                    a.worker
                ),
            );
        }
        (ExchangeStatus::ConnectFailed, _) => {
            log(
                Level::Error,
                format_args!(
                    "proxy: worker {}: connect failed (not held in error)",
                    a.worker
                ),
            );
        }
        // It connected: whatever went wrong after, the backend is reachable.
        (_, Some((state, _))) if code != ExchangeStatus::Declined => state.recover(),
        _ => {}
    }
    status_for(code, &outcome, a.target)
}

/// How often a request waiting for a usable member asks again.
const MEMBER_POLL: Duration = Duration::from_millis(100);

/// Apache's failover loop: pick, try, report; a failed connect moves on to
/// another member while attempts remain.
async fn balanced(m: &Proxy, req: &mut Request, url: &str, name: &str, flags: u32) -> Status {
    let Some(b) = m.balancer() else {
        log(
            Level::Error,
            format_args!("proxy: {url}: module proxy_balancer is not loaded; answering 500"),
        );
        return Status::Http(500);
    };
    // Everything after `balancer://NAME` goes after the member's URL.
    let rest = after_balancer(url, name);
    let mut attempts = 0;
    // The balancer's `timeout` and `max_attempts` are asked for only when
    // needed: most requests get a member at once and never fail over.
    let started = Instant::now();
    let mut give_up = None;
    loop {
        let picked = match b.pick(name, req) {
            Ok(p) => p,
            Err(PickError::NoneUsable) => {
                // How long a request may wait for a usable member, from its start.
                let until = *give_up.get_or_insert_with(|| started + b.wait(name));
                let now = Instant::now();
                if now < until {
                    sleep((until - now).min(MEMBER_POLL)).await;
                    continue;
                }
                log(
                    Level::Error,
                    format_args!("proxy: balancer://{name}: All workers are in error state"),
                );
                return Status::Http(503);
            }
            Err(why) => {
                log(
                    Level::Error,
                    format_args!(
                        "proxy: balancer://{name}: no member picked ({why:?}); answering 500"
                    ),
                );
                return Status::Http(500);
            }
        };
        let (member_target, worker) = member_target(picked.url, rest);
        let a = Attempt {
            target: &member_target,
            worker: &worker,
            params: picked.params,
            flags: flags | exchange_flags::TIMED,
        };
        // The request's start is the first attempt's, unless it waited.
        let first = attempts == 0 && give_up.is_none();
        let report = PendingReport {
            balancer: b,
            name,
            member: picked.member,
            started: if first { started } else { Instant::now() },
            retry: attempts > 0,
            done: false,
        };
        let (code, timed) = exchange(m, req, &a).await;
        let outcome = timed.outcome;
        let Some(what) = failover_reason(code, req) else {
            report.finish(code, &timed, false);
            return status_for(code, &outcome, &member_target);
        };
        let max = b.max_attempts(name);
        report.finish(code, &timed, attempts < max);
        if attempts >= max {
            log(Level::Error, format_args!("proxy: balancer://{name}: member {worker} {what}; no failover attempts left ({max} allowed)"));
            return status_for(code, &outcome, &member_target);
        }
        attempts += 1;
        log(Level::Warn, format_args!("proxy: balancer://{name}: member {worker} {what}; failover attempt {attempts} of {max}"));
    }
}

/// Why another member may be tried after `code`, if it may. Apache fails
/// over only when nothing reached the member. A member that accepted but
/// never answered may be tried again elsewhere too when repeating the
/// request is harmless (a bodiless safe method): a stalled member then
/// costs no client an error.
fn failover_reason(code: ExchangeStatus, req: &Request) -> Option<&'static str> {
    match code {
        ExchangeStatus::ConnectFailed => Some("connect failed"),
        ExchangeStatus::Timeout if repeatable(req) => Some("timed out before answering"),
        _ => None,
    }
}

/// What follows `balancer://NAME` in `url`. translate_name built `url`
/// from the rule naming `name`, so it starts that way: a comparison then
/// replaces scanning for the origin's end (the scan stays for a target
/// another module may have noted).
fn after_balancer<'u>(url: &'u str, name: &str) -> &'u str {
    let fast = url
        .strip_prefix("balancer://")
        .and_then(|r| r.strip_prefix(name));
    match fast {
        Some(rest)
            if !name.is_empty()
                && matches!(rest.bytes().next(), None | Some(b'/' | b'?' | b'#')) =>
        {
            rest
        }
        _ => split_origin(url).map_or("", |(_, rest)| rest),
    }
}

/// A request that may be sent again after a member timed out: a safe
/// method (RFC 9110 §9.2.1) with no body to resend.
fn repeatable(req: &Request) -> bool {
    let safe = matches!(req.method(), "GET" | "HEAD" | "OPTIONS" | "TRACE");
    let no_body = req.header(Headers::Request, "transfer-encoding").is_none()
        && req
            .header(Headers::Request, "content-length")
            .is_none_or(|v| v == b"0");
    safe && no_body
}

/// The answer for how an exchange ended.
fn status_for(code: ExchangeStatus, outcome: &ExchangeOutcome, target: &str) -> Status {
    let (status, why) = match code {
        ExchangeStatus::Relayed => return Status::Ok,
        // error_override: the core's own page for the backend's status.
        ExchangeStatus::Overridden if (400..=599).contains(&outcome.status) => {
            return Status::Http(outcome.status)
        }
        ExchangeStatus::Overridden => (500, "error override without an error status"),
        ExchangeStatus::BodyTimeout => (504, "the backend did not take the request body in time"),
        ExchangeStatus::ConnectFailed => return Status::Http(503),
        // The head is already out: 502 makes the host abort the connection,
        // so the response can never look complete.
        ExchangeStatus::Aborted => return Status::Http(502),
        // The client's fault; proxy_http names it.
        ExchangeStatus::ClientError => return Status::Http(400),
        ExchangeStatus::ClientTooLarge => return Status::Http(413),
        ExchangeStatus::ClientTimeout => return Status::Http(408),
        // Apache answers 502, not 504, when no head arrives in time.
        ExchangeStatus::Timeout => (502, "no response head in time"),
        ExchangeStatus::BadResponse => (502, "malformed response head"),
        ExchangeStatus::Declined => (500, "no scheme handler took the exchange"),
        ExchangeStatus::Failed => (500, "the scheme handler failed"),
    };
    log(
        Level::Error,
        format_args!("proxy: {target}: {why}; answering {status}"),
    );
    Status::Http(status)
}

/// Reports an attempt to the balancer exactly once, also when the client
/// goes away and this future is dropped mid-exchange: the member's `busy`
/// count must come down either way (bybusyness relies on it), and its
/// lbmethod hears of every pick (`LbMethod::done`).
struct PendingReport<'a> {
    balancer: BalancerHandle,
    name: &'a str,
    member: u32,
    /// When the attempt began: its times count from here.
    started: Instant,
    /// An earlier member of this request failed first.
    retry: bool,
    done: bool,
}

impl PendingReport<'_> {
    /// `failed_over`: the request goes on to another member.
    fn finish(mut self, code: ExchangeStatus, timed: &TimedOutcome, failed_over: bool) {
        self.done = true;
        let over = if failed_over {
            outcome_flags::FAILED_OVER
        } else {
            0
        };
        self.send(code, timed, over);
    }

    fn send(&self, code: ExchangeStatus, timed: &TimedOutcome, flags: u32) {
        let retry = if self.retry { outcome_flags::RETRY } else { 0 };
        let o = &timed.outcome;
        let outcome = LbOutcome {
            head_us: timed.head_us,
            total_us: micros(self.started.elapsed()),
            bytes_sent: o.bytes_sent,
            bytes_received: o.bytes_received,
            code: code.code(),
            flags: flags | retry,
            status: o.status,
        };
        self.balancer.report_done(self.name, self.member, &outcome);
    }
}

impl Drop for PendingReport<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.send(ExchangeStatus::Aborted, &TimedOutcome::default(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_balancer_is_the_rest_after_the_origin() {
        let urls = [
            "balancer://c/x/y?q",
            "balancer://c",
            "balancer://c?q",
            "balancer://c#f",
            "balancer://cd/x",
            "balancer://c:1/x",
            "BALANCER://c/x",
            "http://c/x",
            "balancer:///x",
            "nope",
        ];
        for url in urls {
            for name in ["c", "", "cd"] {
                let want = split_origin(url).map_or("", |(_, rest)| rest);
                assert_eq!(after_balancer(url, name), want, "{url} {name}");
            }
        }
    }
}
