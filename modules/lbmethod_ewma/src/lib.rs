//! mod_lbmethod_ewma: the `ewma` load-balancing method, peak EWMA (as
//! Finagle's and Envoy's): the member whose recent response time, times
//! its requests in flight, is lowest.
//!
//! Not for: anything but choosing a member. Retry, error state and sticky
//! sessions belong to proxy_balancer, which calls `find` and `done` with
//! its lock held; this method only learns from `done` how each attempt went.
#![forbid(unsafe_code)]

use modproxy_api::lb::{register_lbmethod, select, LbMember, LbMethod, LbOutcome, LbStats};
use modproxy_api::proxy::ExchangeStatus;
use modproxy_api::{Module, Registrar, Request};
use std::time::{Duration, Instant};

/// How fast old samples fade: a sample `dt` older weighs `e^(-dt/DECAY)`
/// as much (Finagle's default decay time).
pub const DECAY: Duration = Duration::from_secs(10);
/// A member with no sample for this long, and idle, is probed: it counts
/// as the cheapest once, and the probe's sample replaces its stale average.
pub const PROBE_AFTER: Duration = Duration::from_secs(1);
/// The cost of a member that is busy before its first sample came back:
/// try every other member first (Finagle's penalty), in microseconds.
pub const PENALTY_US: f64 = 60e6;

/// Each member's cost is `ewma × (busy + 1) / loadfactor`, the lowest wins.
/// `ewma` is the response time (to the response head, in µs), averaged
/// over time: a sample `dt` after the last one moves it by `1 - e^(-dt/10s)`
/// of the way, and a sample above it (a peak) replaces it at once, so a
/// member that slows down is avoided at its first slow answer and trusted
/// again only gradually. A fast member `f` (1 ms) and one `s` answering
/// after 200 ms, loadfactor 1, costs in ms:
///
/// ```text
///               f: ewma busy cost   s: ewma busy cost    pick
/// start            -     0   0         -     0   0        f (tie: fewer picks)
/// f busy           -     1   PEN       -     0   0        s (probe)
/// f answers 1      1     0   1         -     1   PEN      f
/// 8 in flight      1     7   8         -     1   PEN      f
/// s answers 200    1     7   8         200   0   200      f
/// ...              1     7   8         200   0   200      f: s waits for its probe
/// 1 s without s    1     7   8         200   0   0        s (probe)
/// s answers 2 ms   1     7   8         2     0   2        f, s by cost
/// ```
///
/// A member without a sample for [`PROBE_AFTER`] and nothing in flight is
/// probed, and the probe's answer replaces its average (an average that
/// old says nothing): so the slow member gets about one request a second
/// until it is fast again, then its share at once. Attempts that got no
/// response head are not samples (the balancer's error state handles
/// refused connects), except a timeout, whose wait is one.
/// Lower `lbset`s, spares and hot standbys follow [`select::get_best`].
pub struct Ewma;

/// What the method keeps of one member.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Average {
    /// The peak EWMA response time, in microseconds.
    pub ewma_us: f64,
    /// When the last sample came; `None` before the first.
    pub last: Option<Instant>,
}

impl Average {
    /// Adds a response time of `us` microseconds seen at `now`.
    pub fn observe(&mut self, us: f64, now: Instant) {
        self.ewma_us = match self.last {
            Some(t) if now.saturating_duration_since(t) < PROBE_AFTER && us <= self.ewma_us => {
                let dt = now.saturating_duration_since(t).as_secs_f64();
                let w = (-dt / DECAY.as_secs_f64()).exp();
                self.ewma_us * w + us * (1.0 - w)
            }
            // A peak, a first sample, or one after a long silence: as is.
            _ => us,
        };
        self.last = Some(now);
    }

    /// The member's cost at `now` with `busy` requests in flight and
    /// weight `lbfactor` (100 = loadfactor 1): 0 for a probe.
    pub fn cost(&self, busy: u64, lbfactor: i64, now: Instant) -> f64 {
        let stale = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_AFTER);
        let base = match self.last {
            _ if stale && busy == 0 => return 0.0,
            None => PENALTY_US,
            Some(_) => self.ewma_us,
        };
        base * (busy as f64 + 1.0) * 100.0 / lbfactor.max(1) as f64
    }
}

/// The per-balancer state: one average per member, in config order.
#[derive(Debug, Default)]
pub struct State {
    pub members: Vec<Average>,
}

impl State {
    fn fit(&mut self, len: usize) -> &mut [Average] {
        self.members.resize(len, Average::default());
        &mut self.members
    }
}

/// The cheapest usable member at `now` (ties: the one picked less often).
/// The cost, in whole µs, is left in `lbstatus` for the balancer manager.
pub fn pick(state: &mut State, members: &mut [LbMember], now: Instant) -> Option<usize> {
    let averages = state.fit(members.len());
    for (m, a) in members.iter_mut().zip(averages.iter()) {
        m.lbstatus = a.cost(m.busy, m.lbfactor, now).min(i64::MAX as f64) as i64;
    }
    let best = select::get_best(members, |cur, prev| {
        prev.is_none_or(|p| (cur.lbstatus, cur.elected) < (p.lbstatus, p.elected))
    })?;
    members[best].elected += 1;
    Some(best)
}

/// The response time `outcome` is a sample of, if it is one.
pub fn sample_us(outcome: &LbOutcome) -> Option<f64> {
    let us = if outcome.status != 0 {
        outcome.response_us()
    } else if outcome.exchange_status() == ExchangeStatus::Timeout {
        outcome.total_us
    } else {
        0
    };
    (us != 0).then_some(us as f64)
}

impl LbMethod for Ewma {
    type State = State;

    fn new_state(&self, _balancer: &str) -> State {
        State::default()
    }

    fn find(&self, state: &mut State, members: &mut [LbMember], _req: &Request) -> Option<usize> {
        pick(state, members, Instant::now())
    }

    fn done(
        &self,
        state: &mut State,
        members: &mut [LbMember],
        _stats: &[LbStats],
        member: usize,
        outcome: &LbOutcome,
    ) {
        if let Some(us) = sample_us(outcome) {
            state.fit(members.len())[member].observe(us, Instant::now());
        }
    }

    /// Forgets every average: each member is probed again.
    fn reset(&self, state: &mut State, _members: &mut [LbMember]) {
        state.members.clear();
    }
}

impl Module for Ewma {
    const NAME: &'static str = "lbmethod_ewma";

    fn init() -> Result<Self, String> {
        Ok(Ewma)
    }

    fn register(r: &mut Registrar<Self>) {
        let method = r.module();
        register_lbmethod(r, "ewma", method);
    }
}

modproxy_api::declare_module!(Ewma);

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1000.0;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn members(n: usize) -> Vec<LbMember> {
        let m = LbMember {
            lbfactor: 100,
            ..LbMember::default()
        };
        vec![m; n]
    }

    #[test]
    fn a_sample_moves_the_average_by_its_age_and_a_peak_replaces_it() {
        let t0 = Instant::now();
        let mut a = Average::default();
        a.observe(10.0 * MS, t0);
        assert_eq!(a.ewma_us, 10.0 * MS, "the first sample is the average");
        // 100 ms later a 0 sample: weight 1 - e^(-0.01), about 1 %.
        a.observe(0.0, t0 + ms(100));
        let want = 10.0 * MS * (-0.01f64).exp();
        assert!((a.ewma_us - want).abs() < 1e-6, "{}", a.ewma_us);
        a.observe(50.0 * MS, t0 + ms(200));
        assert_eq!(a.ewma_us, 50.0 * MS, "a peak replaces the average");
        // Many fast samples close together decay it over about DECAY.
        let mut t = t0 + ms(200);
        for _ in 0..10_000 {
            t += ms(1);
            a.observe(MS, t);
        }
        let want = MS + 49.0 * MS * (-1.0f64).exp(); // 10 s of samples
        assert!((a.ewma_us - want).abs() < 1.0, "{} vs {want}", a.ewma_us);
    }

    #[test]
    fn a_stale_average_is_replaced_by_the_next_sample() {
        let t0 = Instant::now();
        let mut a = Average::default();
        a.observe(200.0 * MS, t0);
        a.observe(2.0 * MS, t0 + PROBE_AFTER);
        assert_eq!(a.ewma_us, 2.0 * MS);
    }

    #[test]
    fn cost_is_ewma_times_busy_plus_one_over_weight_with_probe_and_penalty() {
        let t0 = Instant::now();
        let fresh = Average::default();
        assert_eq!(fresh.cost(0, 100, t0), 0.0, "never sampled, idle: probe");
        assert_eq!(fresh.cost(2, 100, t0), PENALTY_US * 3.0);
        let mut a = Average::default();
        a.observe(4.0 * MS, t0);
        assert_eq!(a.cost(1, 100, t0 + ms(10)), 8.0 * MS);
        assert_eq!(a.cost(1, 200, t0 + ms(10)), 4.0 * MS, "loadfactor 2");
        assert_eq!(a.cost(0, 100, t0 + PROBE_AFTER), 0.0, "stale, idle: probe");
        assert_eq!(a.cost(1, 100, t0 + PROBE_AFTER), 8.0 * MS, "stale, busy");
    }

    #[test]
    fn worked_example_from_the_doc_comment() {
        let t0 = Instant::now();
        let (mut s, mut ms_) = (State::default(), members(2));
        assert_eq!(pick(&mut s, &mut ms_, t0), Some(0));
        ms_[0].busy = 1;
        assert_eq!(pick(&mut s, &mut ms_, t0), Some(1), "the probe");
        ms_[1].busy = 1;
        ms_[0].busy = 0;
        s.members[0].observe(MS, t0 + ms(1));
        ms_[0].busy = 7;
        assert_eq!(pick(&mut s, &mut ms_, t0 + ms(2)), Some(0));
        ms_[1].busy = 0;
        s.members[1].observe(200.0 * MS, t0 + ms(200));
        let slow = (0..100).filter(|_| pick(&mut s, &mut ms_, t0 + ms(300)) == Some(1));
        assert_eq!(slow.count(), 0);
        s.members[0].observe(MS, t0 + ms(1300));
        let later = t0 + ms(1200) + PROBE_AFTER;
        assert_eq!(pick(&mut s, &mut ms_, later), Some(1), "probed after 1 s");
        s.members[1].observe(2.0 * MS, later + ms(2));
        ms_[0].busy = 0;
        assert_eq!(s.members[1].ewma_us, 2.0 * MS, "the probe replaced 200 ms");
    }

    #[test]
    fn samples_are_heads_and_timeouts_not_refused_connects() {
        let head = LbOutcome {
            head_us: 300,
            total_us: 900,
            status: 200,
            ..LbOutcome::default()
        };
        assert_eq!(sample_us(&head), Some(300.0));
        let refused = LbOutcome {
            total_us: 5,
            code: ExchangeStatus::ConnectFailed.code(),
            ..LbOutcome::default()
        };
        assert_eq!(sample_us(&refused), None);
        let timeout = LbOutcome {
            total_us: 60_000,
            code: ExchangeStatus::Timeout.code(),
            ..LbOutcome::default()
        };
        assert_eq!(sample_us(&timeout), Some(60_000.0));
    }
}
