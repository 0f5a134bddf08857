//! proxy_hcheck: active health checks of balancer members (Apache's
//! mod_proxy_hcheck). proxy_balancer reads the `hc*` keys of each member
//! and keeps the verdicts; this module runs the checks (schedule.rs, one
//! loop per member), speaks to the members (probe.rs) and judges their
//! answers by the `[[vhost.proxy.hcheck_expr]]` conditions (expr.rs).
#![forbid(unsafe_code)]

mod expr;
mod probe;
mod schedule;

use expr::{Expr, ExprConfig};
use modproxy_api::hash::ConfigMap;
use modproxy_api::metrics::{register_metrics, MetricsSource};
use modproxy_api::sdk::health::{CheckMethod, CheckTarget, HealthHandle};
use modproxy_api::sdk::members::{MembersHandle, SourceKind};
use modproxy_api::sdk::net::{sleep, spawn};
use modproxy_api::sdk::order;
use modproxy_api::{log, ConfigError, Level, Module, Registrar, Section};
use std::collections::HashSet;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// How often the members are looked at again for ones a source added.
const FOLLOW: Duration = Duration::from_secs(2);

/// Each member to check, with the condition its answers must meet.
type Watches = Vec<(CheckTarget, Arc<Expr>)>;

pub struct ProxyHcheck {
    /// The conditions, by name (names are server-wide, as balancers').
    exprs: Mutex<ConfigMap<String, (String, Arc<Expr>)>>,
    /// What child_init starts: each member to check with its condition.
    watches: OnceLock<(HealthHandle, Watches)>,
    /// Checks run since start: passed, failed.
    pub counts: [AtomicU64; 2],
}

impl Module for ProxyHcheck {
    const NAME: &'static str = "proxy_hcheck";

    fn init() -> Result<Self, String> {
        Ok(ProxyHcheck {
            exprs: Mutex::default(),
            watches: OnceLock::new(),
            counts: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    fn register(r: &mut Registrar<Self>) {
        r.section::<Vec<ExprConfig>>("vhost.proxy.hcheck_expr", ProxyHcheck::configure);
        r.post_config(order::LAST, ProxyHcheck::wire);
        r.child_init(order::MIDDLE, ProxyHcheck::start);
        // Also how proxy_balancer knows that its hc* keys will be acted on.
        let module = r.module();
        register_metrics(r, "proxy_hcheck", module);
    }
}

impl ProxyHcheck {
    fn configure(&self, section: Section<Vec<ExprConfig>>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut exprs = self.exprs.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, c) in section.value.into_iter().enumerate() {
            let at = format!("{}: {}[{i}]", section.file, section.key);
            match Expr::compile(c, &at) {
                Ok((name, _)) if exprs.contains_key(&name) => {
                    let first = &exprs[&name].0;
                    problems.push(format!(
                        "{at}.name: `{name}` is already defined at {first}: rename one"
                    ));
                }
                Ok((name, e)) => drop(exprs.insert(name, (at, Arc::new(e)))),
                Err(e) => problems.extend(e),
            }
        }
        ConfigError::result(problems)
    }

    /// Pairs each member to check with its condition; a name no
    /// `hcheck_expr` defines is an error here, not a check that always fails.
    fn wire(&self) -> Result<(), ConfigError> {
        let Some(health) = HealthHandle::lookup() else {
            return Err("proxy_hcheck needs proxy_balancer's health interface (ABI 1.3): run `modproxy enmod proxy_balancer` and rebuild it if it is older".into());
        };
        let exprs = self.exprs.lock().unwrap_or_else(PoisonError::into_inner);
        let mut problems = Vec::new();
        let mut watches = Vec::new();
        for t in health.targets() {
            let expr = if t.expr.is_empty() {
                Arc::new(Expr::default())
            } else if let Some((_, e)) = exprs.get(t.expr) {
                if e.wants_body() && t.method != CheckMethod::Get {
                    log(Level::Warn, format_args!("{}.hcexpr: `{}` looks at the body, which only hcmethod = \"GET\" reads", t.at, t.expr));
                }
                e.clone()
            } else {
                let known: Vec<&str> = exprs.keys().map(String::as_str).collect();
                problems.push(format!(
                    "{}.hcexpr: no [[vhost.proxy.hcheck_expr]] is named `{}` (defined: {}): define it or fix the name",
                    t.at,
                    t.expr,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ));
                continue;
            };
            watches.push((t, expr));
        }
        let _ = self.watches.set((health, watches));
        ConfigError::result(problems)
    }

    /// Starts one loop per member, on the runtime of the serving process.
    fn start(&'static self) {
        let Some((health, watches)) = self.watches.get() else {
            return;
        };
        for (target, expr) in watches {
            spawn(schedule::watch(self, *health, target.clone(), expr.clone()));
        }
        if !watches.is_empty() {
            log(
                Level::Info,
                format_args!("proxy_hcheck: checking {} members", watches.len()),
            );
        }
        // Members that a source (proxy_discovery) adds later get their
        // loops as they appear.
        let discovered = MembersHandle::lookup()
            .is_some_and(|m| m.sources().iter().any(|s| s.kind == SourceKind::Discovery));
        if discovered {
            let known = watches
                .iter()
                .map(|(t, _)| (t.balancer, t.member))
                .collect();
            spawn(self.follow(*health, known));
        }
    }

    /// Every few seconds, starts a loop for each member to check that was
    /// not there before (members are only ever appended, never moved).
    async fn follow(&'static self, health: HealthHandle, mut known: HashSet<(&'static str, u32)>) {
        loop {
            sleep(FOLLOW).await;
            for t in health.targets() {
                if !known.insert((t.balancer, t.member)) {
                    continue;
                }
                let expr = if t.expr.is_empty() {
                    Some(Arc::new(Expr::default()))
                } else {
                    let exprs = self.exprs.lock().unwrap_or_else(PoisonError::into_inner);
                    exprs.get(t.expr).map(|(_, e)| e.clone())
                };
                match expr {
                    Some(e) => spawn(schedule::watch(self, health, t, e)),
                    None => log(Level::Error, format_args!("{}.hcexpr: no [[vhost.proxy.hcheck_expr]] is named `{}`; member {} is not checked", t.at, t.expr, t.url)),
                }
            }
        }
    }
}

impl MetricsSource for ProxyHcheck {
    fn render(&self, out: &mut String) {
        let name = "modproxy_hcheck_checks_total";
        let _ = writeln!(out, "# HELP {name} Health checks run since the server started, by result.\n# TYPE {name} counter");
        for (result, n) in ["passed", "failed"].iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}{{result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

modproxy_api::declare_module!(ProxyHcheck);
