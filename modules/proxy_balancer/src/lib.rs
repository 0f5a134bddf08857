//! mod_proxy_balancer: `balancer://NAME` targets for mod_proxy. Reads the
//! `[[vhost.proxy.balancer]]` sections, then for each attempt picks a member
//! (sticky route, else the balancer's lbmethod) and books how it went:
//! busy counts, traffic, error state with retry, forced recovery. Also
//! serves the balancer manager (page, JSON API, metrics; `manager/`) and
//! `modproxy status`'s member table.
//!
//! Not for: choosing among members by weight (that is an lbmethod module's
//! job, e.g. lbmethod_byrequests) or talking to backends (proxy_http).
//! Guarantees: no request waits on the lock for longer than one pick, and a
//! member URL handed out stays valid for the life of the process.
#![forbid(unsafe_code)]

mod cluster;
mod config;
mod discovered;
mod health;
mod health_state;
mod manager;
mod metrics;
mod pick;
mod status;
mod sticky;
mod table;

use cluster::Cluster;
use config::BalancerConfig;
use manager::{Manager, ManagerConfig};
use modproxy_api::hash::ConfigMap;
use modproxy_api::lb::{self, LbOutcome};
use modproxy_api::metrics::register_metrics;
use modproxy_api::proxy::{
    register_balancer, show_scheme, Balancer, ExchangeOutcome, ExchangeStatus, PickError, Picked,
    SCHEME_GROUP,
};
use modproxy_api::sdk::health::register_health;
use modproxy_api::sdk::members::{register_members, SourceKind, SYNC_GROUP, SYNC_NAME};
use modproxy_api::sdk::provider;
use modproxy_api::sdk::{order, HookKind};
use modproxy_api::{ConfigError, Module, Registrar, Request, Section};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The module: every balancer of every virtual host, by name (names are
/// server-wide, as `balancer://NAME` in any ProxyPass may name them).
pub struct ProxyBalancer {
    clusters: RwLock<ConfigMap<String, Arc<Cluster>>>,
    /// Balancers whose config had problems (the server will not start).
    unbuilt: RwLock<ConfigMap<String, Unbuilt>>,
    manager: Manager,
}

impl Module for ProxyBalancer {
    const NAME: &'static str = "proxy_balancer";

    fn init() -> Result<Self, String> {
        Ok(ProxyBalancer {
            clusters: RwLock::default(),
            unbuilt: RwLock::default(),
            manager: Manager::default(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        r.section::<Vec<BalancerConfig>>("vhost.proxy.balancer", ProxyBalancer::configure);
        r.section::<ManagerConfig>("vhost.balancer_manager", |m, s| m.manager.configure(s));
        let module = r.module();
        register_balancer(r, module);
        register_metrics(r, "proxy_balancer", module);
        register_health(r, module);
        register_members(r, module);
        r.post_config(order::MIDDLE, ProxyBalancer::check_schemes);
        r.post_config(order::MIDDLE, ProxyBalancer::check_discovery);
        r.post_config(order::MIDDLE, ProxyBalancer::check_hcheck);
        r.post_config(order::LAST, |m| {
            m.manager.freeze();
            m.restore();
            m.restore_health();
            Ok(())
        });
        // Before proxy's `pass` rules (FIRST), which may match every path.
        r.request_hook(
            HookKind::TranslateName,
            order::REALLY_FIRST,
            manager::translate,
        );
        r.handler(order::REALLY_FIRST, manager::handler);
    }
}

impl ProxyBalancer {
    fn cluster(&self, name: &str) -> Option<Arc<Cluster>> {
        self.clusters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Every balancer, in name order.
    fn clusters_sorted(&self) -> Vec<Arc<Cluster>> {
        let clusters = self.clusters.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<Arc<Cluster>> = clusters.values().cloned().collect();
        all.sort_by(|a, b| a.policy.name.cmp(&b.policy.name));
        all
    }

    /// Builds each balancer of one virtual host's section; reports every
    /// problem of every entry, not only the first. A balancer with problems
    /// is remembered as unbuilt, so that `pass` rules naming it and its
    /// member schemes are still checked in the same pass.
    fn configure(&self, section: Section<Vec<BalancerConfig>>) -> Result<(), ConfigError> {
        let now = Instant::now();
        let mut errors = Vec::new();
        for (i, entry) in section.value.into_iter().enumerate() {
            let at = format!("{}: {}[{i}]", section.file, section.key);
            let checked = entry.check(&at, now);
            let name = checked.policy.name.clone();
            if let Some(first) = self.defined_at(&name) {
                errors.push(format!(
                    "{at}.name: balancer `{name}` is already defined at {first}: names are server-wide, rename one"
                ));
                continue;
            }
            let mut problems = checked.problems;
            if problems.is_empty() {
                match Cluster::new(
                    checked.policy,
                    checked.table,
                    &at,
                    checked.sources,
                    checked.hc_defaults,
                ) {
                    Ok(c) => {
                        self.write_clusters().insert(name, Arc::new(c));
                        continue;
                    }
                    Err(e) => problems.push(e),
                }
            } else if !provider::exists(lb::GROUP, &checked.policy.lbmethod) {
                problems.push(cluster::lbmethod_missing(&at, &checked.policy.lbmethod));
            }
            errors.extend(problems);
            let unbuilt = Unbuilt {
                defined_at: at,
                urls: checked.urls,
            };
            self.unbuilt
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name, unbuilt);
        }
        ConfigError::result(errors)
    }

    fn write_clusters(&self) -> std::sync::RwLockWriteGuard<'_, ConfigMap<String, Arc<Cluster>>> {
        self.clusters
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Where balancer `name` was defined, built or not.
    fn defined_at(&self, name: &str) -> Option<String> {
        if let Some(c) = self.cluster(name) {
            return Some(c.defined_at.clone());
        }
        let unbuilt = self.unbuilt.read().unwrap_or_else(PoisonError::into_inner);
        unbuilt.get(name).map(|u| u.defined_at.clone())
    }

    /// Members with `hc*` keys need proxy_hcheck, which runs the checks
    /// (it registers the metrics source `proxy_hcheck`): without it the
    /// keys would be read and silently never acted on.
    fn check_hcheck(&self) -> Result<(), ConfigError> {
        if provider::exists(modproxy_api::metrics::GROUP, "proxy_hcheck") {
            return Ok(());
        }
        let first = self
            .clusters_sorted()
            .iter()
            .find_map(|c| c.check_targets().into_iter().next());
        match first {
            Some(t) => Err(format!("{}: health-check keys (hcmethod, hcagent…) need module proxy_hcheck, which is not enabled: run `modproxy enmod proxy_hcheck`", t.at).into()),
            None => Ok(()),
        }
    }

    /// `discovery` and `manager_sync` are proxy_discovery's keys: without
    /// it they would be read and never acted on (Apache: "Invalid command,
    /// perhaps … defined by a module not included").
    fn check_discovery(&self) -> Result<(), ConfigError> {
        if provider::exists(SYNC_GROUP, SYNC_NAME) {
            return Ok(());
        }
        let first = self
            .clusters_sorted()
            .iter()
            .find_map(|c| c.sources.first().cloned());
        match first {
            Some(s) => {
                let key = match s.kind {
                    SourceKind::Discovery => "discovery",
                    SourceKind::ManagerSync => "manager_sync",
                };
                Err(format!("{}: `{key}` needs module proxy_discovery, which is not enabled: run `modproxy enmod proxy_discovery`", s.at).into())
            }
            None => Ok(()),
        }
    }

    /// Every member's scheme needs a loaded scheme handler, or each request
    /// to it would fail at run time instead of now. Unbuilt balancers are
    /// checked too, so their scheme typos show up with their other problems.
    fn check_schemes(&self) -> Result<(), ConfigError> {
        let clusters = self.clusters.read().unwrap_or_else(PoisonError::into_inner);
        let unbuilt = self.unbuilt.read().unwrap_or_else(PoisonError::into_inner);
        let built = clusters.values().map(|c| {
            let urls = c.urls().iter().map(|u| u.to_string()).enumerate().collect();
            (&c.policy.name, &c.defined_at, urls)
        });
        let all = built.chain(
            unbuilt
                .iter()
                .map(|(n, u)| (n, &u.defined_at, u.urls.clone())),
        );
        let mut errors: Vec<String> = Vec::new();
        for (name, at, urls) in all {
            for (j, url) in &urls {
                let scheme = url.split("://").next().unwrap_or("");
                if !provider::exists(SCHEME_GROUP, scheme) {
                    let why = provider::missing(SCHEME_GROUP, "scheme", scheme, show_scheme);
                    errors.push(format!(
                        "{at}.members[{j}].url: balancer://{name} member {url}: {why}"
                    ));
                }
            }
        }
        errors.sort();
        ConfigError::result(errors)
    }
}

/// A balancer whose entry had problems: never served, but known by name
/// (so `pass` rules naming it are not reported as naming nothing) and by
/// its member URLs (so their schemes are checked in the same pass).
struct Unbuilt {
    defined_at: String,
    /// Member index and URL, for the members whose URL parsed.
    urls: Vec<(usize, String)>,
}

impl Balancer for ProxyBalancer {
    fn exists(&self, name: &str) -> bool {
        self.defined_at(name).is_some()
    }

    fn max_attempts(&self, name: &str) -> u32 {
        self.cluster(name).map_or(0, |c| c.max_attempts())
    }

    fn pick(&self, name: &str, req: &mut Request) -> Result<Picked, PickError> {
        self.cluster(name)
            .ok_or(PickError::NoSuchBalancer)?
            .pick(req)
    }

    /// From a proxy built before ABI 1.2: no times, no failover flags.
    fn report(&self, name: &str, member: u32, status: ExchangeStatus, outcome: &ExchangeOutcome) {
        let outcome = LbOutcome {
            bytes_sent: outcome.bytes_sent,
            bytes_received: outcome.bytes_received,
            code: status.code(),
            status: outcome.status,
            ..LbOutcome::default()
        };
        self.report_done(name, member, &outcome);
    }

    fn report_done(&self, name: &str, member: u32, outcome: &LbOutcome) {
        if self
            .cluster(name)
            .is_some_and(|c| c.report(member, outcome))
        {
            self.save_health();
        }
    }

    fn member_urls(&self, name: &str) -> Vec<String> {
        self.cluster(name)
            .map(|c| c.urls().iter().map(|u| u.to_string()).collect())
            .unwrap_or_default()
    }

    fn status_table(&self) -> String {
        self.status_text()
    }

    fn wait(&self, name: &str) -> Duration {
        self.cluster(name)
            .map_or(Duration::ZERO, |c| c.policy.timeout)
    }
}

modproxy_api::declare_module!(ProxyBalancer);
