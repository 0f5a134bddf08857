//! A balancer's member table and how it changes between requests: retry
//! expiry, forced recovery, sticky-route lookup, and what an attempt's
//! outcome does to its member. Plain data, no host: every rule is unit-tested.

use crate::config::Policy;
use crate::health::Health;
use crate::manager::state::Settings;
use modproxy_api::lb::{flags, LbMember, LbOutcome, LbStats};
use modproxy_api::proxy::{ExchangeOutcome, ExchangeStatus, WorkerParams};
use std::fmt;
use std::time::{Duration, Instant};

/// `s` as a string that lives as long as the process, leaked once per
/// distinct text: members found at run time come back with the same URL,
/// and must not leak it again at every change of their source.
pub fn intern(s: String) -> &'static str {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = seen.get(s.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// What a member has besides the lbmethod's view of it.
#[derive(Debug, Clone)]
pub struct MemberMeta {
    /// Leaked at config time: a `MemberPick` hands it out as living forever.
    pub url: &'static str,
    pub route: String,
    /// Where this member's sessions go while it is unusable (Apache `redirect`).
    pub redirect: String,
    /// How long an error keeps the member out.
    pub retry: Duration,
    pub error_since: Option<Instant>,
    pub params: WorkerParams,
    /// The last reason an attempt put this member in error state (with
    /// its Unix time), for the balancer manager; the count is in `LbStats`.
    pub last_error: String,
    /// Its health checks, when it has any (proxy_hcheck).
    pub health: Health,
    /// Its operator settings as the config (or its source) gave them, so
    /// a saved change can tell whether the config moved since; set by
    /// [`Table::push`].
    pub configured: Settings,
    /// Found by proxy_discovery rather than configured.
    pub discovered: Option<Discovered>,
}

/// A member a source (etcd, DNS) gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Where it came from (an etcd key, a DNS record).
    pub origin: String,
    /// Its keys as the source gave them: an unchanged member is left alone.
    pub json: String,
    /// Gone from the source: drained (no new requests, those in flight
    /// finish), its slot kept for a return under the same URL.
    pub gone: bool,
}

/// Member `i` of `members` is described by `meta[i]` and `stats[i]`
/// (the three grow together: [`Table::push`]).
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub members: Vec<LbMember>,
    pub meta: Vec<MemberMeta>,
    /// What lbmethods built for ABI 1.2 read beside `members`.
    pub stats: Vec<LbStats>,
    /// Every member failed its health checks and requests still go to
    /// them; said once in the error log, until one comes back.
    pub all_hc_failed: bool,
}

/// How members that failed their health checks were shown to one pick
/// ([`Table::mask_hc_failed`]); undone by [`Table::unmask`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HcMask {
    /// No member failed its checks: nothing changed.
    None,
    /// These members also carry IN_ERROR for the pick: an lbmethod built
    /// before ABI 1.3 does not know HC_FAILED, but skips members in error.
    Hidden(Vec<usize>),
    /// Every otherwise usable member failed its checks: their HC_FAILED is
    /// lifted for the pick, so that requests still try them (as Apache
    /// does) rather than all get a 503.
    Lifted(Vec<usize>),
}

/// What a sticky route leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Usable(usize),
    /// Members carry the route, but none of them (nor its redirect) can serve.
    Unusable,
    /// No member carries the route (e.g. a cookie from an older config).
    Unknown,
}

/// Why an attempt put its member in error state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    ConnectFailed,
    TimedOut,
    Status(u16),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ConnectFailed => f.write_str("connect failed"),
            Failure::TimedOut => f.write_str("timed out (failontimeout)"),
            Failure::Status(s) => write!(f, "answered {s} (failonstatus)"),
        }
    }
}

impl Table {
    pub fn push(&mut self, member: LbMember, mut meta: MemberMeta) {
        meta.configured = Settings::of(&member, &meta);
        self.members.push(member);
        self.meta.push(meta);
        self.stats.push(LbStats::default());
    }

    /// Adds an attempt's response time to member `i`'s average, when a
    /// response head arrived (a refused connect is fast, not a sample).
    pub fn time(&mut self, i: usize, outcome: &LbOutcome) {
        if let Some(s) = self.stats.get_mut(i).filter(|_| outcome.status != 0) {
            s.sample(outcome.response_us());
        }
    }

    /// Clears `IN_ERROR` on members whose `retry` has passed: the next
    /// request is the probe (Apache's `ap_proxy_retry_worker`).
    pub fn expire_retries(&mut self, now: impl FnOnce() -> Instant) {
        // The clock is read only when some member is in error: most picks
        // have nothing to expire.
        if self.members.iter().all(|m| m.flags & flags::IN_ERROR == 0) {
            return;
        }
        let now = now();
        for (m, meta) in self.members.iter_mut().zip(&mut self.meta) {
            // No time (configured `+E` without a start): due now, as in Apache.
            let expired = meta.error_since.is_none_or(|t| {
                now.checked_duration_since(t)
                    .is_some_and(|d| d >= meta.retry)
            });
            if m.flags & flags::IN_ERROR != 0 && expired {
                m.flags &= !flags::IN_ERROR;
                meta.error_since = None;
            }
        }
    }

    /// When every member is in error, clears them all (`forcerecovery`):
    /// better to try a backend that may be back than to answer 503 until
    /// the first retry passes. Returns whether it did.
    pub fn force_recovery(&mut self) -> bool {
        let all =
            !self.members.is_empty() && self.members.iter().all(|m| m.flags & flags::IN_ERROR != 0);
        if all {
            for (m, meta) in self.members.iter_mut().zip(&mut self.meta) {
                m.flags &= !flags::IN_ERROR;
                meta.error_since = None;
            }
        }
        all
    }

    /// Shows members that failed their health checks to one pick as
    /// [`HcMask`] says; costs one scan when none has.
    pub fn mask_hc_failed(&mut self) -> HcMask {
        let failed: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].flags & flags::HC_FAILED != 0)
            .collect();
        if failed.is_empty() {
            self.all_hc_failed = false;
            return HcMask::None;
        }
        if self.members.iter().any(|m| m.is_usable()) {
            self.all_hc_failed = false;
            let hide: Vec<usize> = failed
                .into_iter()
                .filter(|&i| self.members[i].flags & flags::IN_ERROR == 0)
                .collect();
            hide.iter()
                .for_each(|&i| self.members[i].flags |= flags::IN_ERROR);
            return HcMask::Hidden(hide);
        }
        failed
            .iter()
            .for_each(|&i| self.members[i].flags &= !flags::HC_FAILED);
        HcMask::Lifted(failed)
    }

    pub fn unmask(&mut self, mask: HcMask) {
        match mask {
            HcMask::None => {}
            HcMask::Hidden(v) => v
                .iter()
                .for_each(|&i| self.members[i].flags &= !flags::IN_ERROR),
            HcMask::Lifted(v) => v
                .iter()
                .for_each(|&i| self.members[i].flags |= flags::HC_FAILED),
        }
    }

    /// The member that serves sessions of `route`: ordinary members before
    /// hot standbys (as Apache); draining members still take their sessions.
    pub fn find_route(&self, route: &str) -> Route {
        if let Some(i) = self.usable_with_route(route) {
            return Route::Usable(i);
        }
        let mut carriers = self
            .meta
            .iter()
            .filter(|m| !route.is_empty() && m.route == route)
            .peekable();
        if carriers.peek().is_none() {
            return Route::Unknown;
        }
        let redirect = carriers
            .map(|m| m.redirect.as_str())
            .find(|r| !r.is_empty() && *r != route);
        match redirect.and_then(|r| self.usable_with_route(r)) {
            Some(i) => Route::Usable(i),
            None => Route::Unusable,
        }
    }

    fn usable_with_route(&self, route: &str) -> Option<usize> {
        let carries = |i: &usize| {
            !route.is_empty() && self.meta[*i].route == route && self.members[*i].is_usable()
        };
        let (standby, ordinary): (Vec<usize>, Vec<usize>) = (0..self.members.len())
            .filter(carries)
            .partition(|&i| self.members[i].is_standby());
        ordinary.first().or(standby.first()).copied()
    }

    /// Books an attempt on member `i` and puts it in error state when the
    /// outcome says so. Returns the reason it went into error, if it did.
    pub fn report(
        &mut self,
        policy: &Policy,
        i: usize,
        status: ExchangeStatus,
        outcome: &ExchangeOutcome,
        now: impl FnOnce() -> Instant,
    ) -> Option<Failure> {
        let m = self.members.get_mut(i)?;
        let (meta, stats) = (self.meta.get_mut(i)?, self.stats.get_mut(i)?);
        m.busy = m.busy.saturating_sub(1);
        m.bytes_written = m.bytes_written.saturating_add(outcome.bytes_sent);
        m.bytes_read = m.bytes_read.saturating_add(outcome.bytes_received);
        let failure = if status == ExchangeStatus::ConnectFailed {
            Failure::ConnectFailed
        } else if status.is_backend_timeout() && policy.failontimeout {
            Failure::TimedOut
        } else if outcome.status != 0 && policy.failonstatus.contains(&outcome.status) {
            Failure::Status(outcome.status)
        } else {
            return None;
        };
        if m.flags & flags::IGNORE_ERRORS != 0 {
            return None;
        }
        m.flags |= flags::IN_ERROR;
        meta.error_since = Some(now());
        stats.errors = stats.errors.saturating_add(1);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        meta.last_error = format!("{failure} (at {unix})");
        Some(failure)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use modproxy_api::lb::flags::*;

    pub fn table(routes: &[(&str, u32)]) -> Table {
        let mut t = Table::default();
        for &(route, flags) in routes {
            let member = LbMember {
                lbfactor: 100,
                flags,
                ..LbMember::default()
            };
            t.push(
                member,
                MemberMeta {
                    url: "http://127.0.0.1:1",
                    route: route.into(),
                    redirect: String::new(),
                    retry: Duration::from_secs(60),
                    error_since: None,
                    params: WorkerParams::default(),
                    last_error: String::new(),
                    health: Health::default(),
                    configured: Settings::default(),
                    discovered: None,
                },
            );
        }
        t
    }

    fn policy() -> Policy {
        Policy {
            failonstatus: vec![500, 503],
            ..Policy::default()
        }
    }

    #[test]
    fn retry_expires_after_its_time_and_zero_means_next_request() {
        let t0 = Instant::now();
        let mut t = table(&[("a", 0), ("b", 0)]);
        t.meta[1].retry = Duration::ZERO;
        let failed = ExchangeOutcome::default();
        assert_eq!(
            t.report(&policy(), 0, ExchangeStatus::ConnectFailed, &failed, || t0),
            Some(Failure::ConnectFailed)
        );
        t.report(&policy(), 1, ExchangeStatus::ConnectFailed, &failed, || t0);
        t.expire_retries(|| t0 + Duration::from_secs(59));
        assert_eq!((t.members[0].flags, t.members[1].flags), (IN_ERROR, 0));
        t.expire_retries(|| t0 + Duration::from_secs(60));
        assert_eq!(t.members[0].flags, 0);
        assert_eq!(t.meta[0].error_since, None);
    }

    #[test]
    fn configured_in_error_without_a_time_is_probed_at_once() {
        let mut t = table(&[("a", IN_ERROR | STANDBY)]);
        t.expire_retries(Instant::now);
        assert_eq!(t.members[0].flags, STANDBY);
    }

    #[test]
    fn forcerecovery_only_when_every_member_is_in_error() {
        let mut t = table(&[("a", IN_ERROR), ("b", DISABLED)]);
        assert!(!t.force_recovery());
        assert_eq!(t.members[0].flags, IN_ERROR);
        let mut t = table(&[("a", IN_ERROR), ("b", IN_ERROR | STANDBY)]);
        assert!(t.force_recovery());
        assert_eq!((t.members[0].flags, t.members[1].flags), (0, STANDBY));
        assert!(!Table::default().force_recovery());
    }

    #[test]
    fn failonstatus_and_failontimeout_mark_errors_and_ignore_errors_wins() {
        let now = Instant::now();
        let mut t = table(&[("a", 0), ("b", IGNORE_ERRORS)]);
        let answered = |status| ExchangeOutcome {
            bytes_sent: 10,
            bytes_received: 20,
            status,
        };
        assert_eq!(
            t.report(
                &policy(),
                0,
                ExchangeStatus::Relayed,
                &answered(404),
                || now
            ),
            None
        );
        assert_eq!(
            t.report(
                &policy(),
                0,
                ExchangeStatus::Relayed,
                &answered(503),
                || now
            ),
            Some(Failure::Status(503))
        );
        assert_eq!(t.members[0].flags, IN_ERROR);
        assert_eq!(
            (t.members[0].bytes_written, t.members[0].bytes_read),
            (20, 40)
        );
        assert_eq!(
            t.report(
                &policy(),
                1,
                ExchangeStatus::ConnectFailed,
                &answered(0),
                || now
            ),
            None
        );
        assert_eq!(t.members[1].flags, IGNORE_ERRORS);
        assert_eq!(
            t.report(&policy(), 1, ExchangeStatus::Timeout, &answered(0), || now),
            None,
            "failontimeout is off"
        );
        let strict = Policy {
            failontimeout: true,
            ..policy()
        };
        let mut t = table(&[("a", 0)]);
        assert_eq!(
            t.report(&strict, 0, ExchangeStatus::Timeout, &answered(0), || now),
            Some(Failure::TimedOut)
        );
        assert_eq!(
            t.report(&strict, 7, ExchangeStatus::Relayed, &answered(200), || now),
            None,
            "unknown member"
        );
    }

    #[test]
    fn errors_and_response_times_go_to_the_members_stats() {
        let mut t = table(&[("a", 0), ("b", 0)]);
        let refused = ExchangeOutcome::default();
        t.report(
            &policy(),
            0,
            ExchangeStatus::ConnectFailed,
            &refused,
            Instant::now,
        );
        assert_eq!(t.stats[0].errors, 1);
        let answered = LbOutcome {
            head_us: 700,
            total_us: 900,
            status: 200,
            ..LbOutcome::default()
        };
        t.time(1, &answered);
        let fast_fail = LbOutcome {
            total_us: 5,
            ..LbOutcome::default()
        };
        t.time(1, &fast_fail);
        t.time(9, &answered);
        assert_eq!((t.stats[1].samples, t.stats[1].response_avg_us), (1, 700));
    }

    #[test]
    fn busy_never_goes_below_zero() {
        let mut t = table(&[("a", 0)]);
        t.members[0].busy = 1;
        t.report(
            &policy(),
            0,
            ExchangeStatus::Relayed,
            &ExchangeOutcome::default(),
            Instant::now,
        );
        t.report(
            &policy(),
            0,
            ExchangeStatus::Relayed,
            &ExchangeOutcome::default(),
            Instant::now,
        );
        assert_eq!(t.members[0].busy, 0);
    }

    #[test]
    fn route_lookup_prefers_ordinary_then_standby_then_redirect() {
        let t = table(&[("n1", STANDBY), ("n1", 0), ("n2", DRAINING)]);
        assert_eq!(t.find_route("n1"), Route::Usable(1));
        assert_eq!(
            t.find_route("n2"),
            Route::Usable(2),
            "draining keeps its sessions"
        );
        assert_eq!(t.find_route("n9"), Route::Unknown);
        assert_eq!(t.find_route(""), Route::Unknown);
        let mut t = table(&[("n1", IN_ERROR), ("n2", 0)]);
        assert_eq!(t.find_route("n1"), Route::Unusable);
        t.meta[0].redirect = "n2".into();
        assert_eq!(t.find_route("n1"), Route::Usable(1));
    }
}
