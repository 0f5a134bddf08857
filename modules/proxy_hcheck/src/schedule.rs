//! When each member is checked: one loop per member, started once per
//! server process (child_init), so the number of worker threads never
//! multiplies the checks. A loop runs one check at a time: a check that
//! outlasts `hcinterval` delays the next instead of piling a second one
//! on it (Apache PR 63010).

use crate::expr::Expr;
use crate::probe;
use crate::ProxyHcheck;
use modproxy_api::sdk::health::{CheckReport, CheckTarget, HealthHandle};
use modproxy_api::sdk::net::sleep;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most the first checks are spread over, so that members are not all
/// checked at the same instant, yet a dead one is found soon after start.
const SPREAD: Duration = Duration::from_secs(5);

/// Checks `target` every `hcinterval` for as long as the process serves.
pub async fn watch(
    m: &'static ProxyHcheck,
    health: HealthHandle,
    target: CheckTarget,
    expr: Arc<Expr>,
) {
    sleep(offset(&target)).await;
    loop {
        let started = Instant::now();
        let report = check_once(&target, &expr).await;
        m.counts[usize::from(!report.passed)].fetch_add(1, Ordering::Relaxed);
        health.report(target.balancer, target.member, &report);
        let next = started + target.interval;
        sleep(next.saturating_duration_since(Instant::now())).await;
    }
}

/// One check: the active one, then the agent, when the member has one.
pub async fn check_once(target: &CheckTarget, expr: &Expr) -> CheckReport {
    let started = Instant::now();
    let result = probe::active(target, expr).await;
    let agent = if target.agent.is_empty() {
        None
    } else {
        Some(probe::ask_agent(target.agent, target.timeout).await)
    };
    CheckReport {
        passed: result.is_ok(),
        duration: started.elapsed(),
        reason: result.err().unwrap_or_default(),
        agent,
    }
}

/// Where in the first [`SPREAD`] (or interval, if shorter) this member's
/// checks fall: fixed per member, different between members.
fn offset(t: &CheckTarget) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (t.balancer, t.member, t.url).hash(&mut h);
    let window = SPREAD.min(t.interval);
    window.mul_f64((h.finish() % 1000) as f64 / 1000.0)
}
