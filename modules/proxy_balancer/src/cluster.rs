//! One configured balancer at run time: its policy, and its member table
//! and lbmethod behind one lock (held only for a pick, a report or a
//! manager's change, never across I/O).

use crate::config::Policy;
use crate::health::HcKeys;
use crate::health::Transition;
use crate::manager::state::{apply_set, member_views, restore, BalancerView, MemberSet, Settings};
use crate::pick::{choose, Refusal};
use crate::table::{HcMask, Table};
use modproxy_api::lb::{self, InstanceError, LbMethodInstance, LbOutcome};
use modproxy_api::proxy::{ExchangeStatus, PickError, Picked};
use modproxy_api::sdk::health::{CheckReport, CheckTarget};
use modproxy_api::sdk::members::Source;
use modproxy_api::sdk::provider;
use modproxy_api::{log, Headers, Level, Request};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Why an operator's change (from the balancer manager, or restored from
/// its saved state) was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// The balancer has no member by that URL.
    NoSuchMember(String),
    /// The change is not valid for the member, or names an lbmethod that
    /// is not loaded.
    Invalid(String),
}

impl ChangeError {
    /// The manager API's answer: 404 for a member that is not there, 400
    /// for a change that cannot be made.
    pub fn http_status(&self) -> u16 {
        match self {
            ChangeError::NoSuchMember(_) => 404,
            ChangeError::Invalid(_) => 400,
        }
    }
}

impl std::fmt::Display for ChangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeError::NoSuchMember(why) | ChangeError::Invalid(why) => f.write_str(why),
        }
    }
}

pub struct Cluster {
    pub policy: Policy,
    /// The name, leaked once: health-check targets hand it out as `'static`.
    name_static: &'static str,
    /// Where it was defined (`file: key[i]`), for duplicate-name errors.
    pub defined_at: String,
    /// Its `discovery` and `manager_sync` keys (proxy_discovery's).
    pub sources: Vec<Source>,
    /// The balancer's `hc*` keys, the defaults of discovered members.
    pub hc_defaults: HcKeys,
    /// Whether the members' source is reachable (`discovery` only).
    pub discovery: Mutex<Freshness>,
    state: Mutex<State>,
}

/// When the members' source went unreachable, and why (shown by the
/// manager and `modproxy status`: "discovery stale since …").
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    pub stale_since: Option<u64>,
    pub reason: String,
    /// Specs refused before ("origin\0json"): each is logged once.
    pub refused: std::collections::HashSet<String>,
}

struct State {
    table: Table,
    method: LbMethodInstance,
    /// The lbmethod in use: the configured one until the manager changes it.
    method_name: String,
}

/// `at.lbmethod`: no loaded module provides lbmethod `name`, and what to do.
pub fn lbmethod_missing(at: &str, name: &str) -> String {
    format!("{at}.lbmethod: {}", no_such_lbmethod(name))
}

/// Why lbmethod `name` cannot be had: the module to enable, the nearest
/// loaded name, or the loaded ones.
fn no_such_lbmethod(name: &str) -> String {
    provider::missing(lb::GROUP, "lbmethod", name, str::to_string)
}

impl Cluster {
    /// Attaches the lbmethod the policy names, which must be loaded now
    /// (Apache: an unknown lbmethod is a config error).
    pub fn new(
        policy: Policy,
        mut table: Table,
        at: &str,
        sources: Vec<Source>,
        hc_defaults: HcKeys,
    ) -> Result<Cluster, String> {
        let name = &policy.lbmethod;
        let mut method = LbMethodInstance::new(name, &policy.name).map_err(|e| match e {
            InstanceError::NotLoaded => lbmethod_missing(at, name),
            InstanceError::StateFailed => format!(
                "{at}.lbmethod: lbmethod {name} failed to set up its state for this balancer (see its log line); fix or disable that module"
            ),
        })?;
        // As Apache's child_init: the method sees its members once before
        // the first pick.
        method.reset(&mut table.members);
        let method_name = policy.lbmethod.clone();
        Ok(Cluster {
            name_static: Box::leak(policy.name.clone().into_boxed_str()),
            policy,
            defined_at: at.to_owned(),
            sources,
            hc_defaults,
            discovery: Mutex::default(),
            state: Mutex::new(State {
                table,
                method,
                method_name,
            }),
        })
    }

    /// The balancer and its members as the manager shows them.
    pub fn view(&self) -> BalancerView {
        let p = &self.policy;
        let guard = self.lock();
        let t = &guard.table;
        BalancerView {
            name: p.name.clone(),
            lbmethod: guard.method_name.clone(),
            sticky_session: p.sticky.as_ref().map(|s| s.describe()).unwrap_or_default(),
            nofailover: p.nofailover,
            maxattempts: p.max_attempts,
            failonstatus: p.failonstatus.clone(),
            failontimeout: p.failontimeout,
            forcerecovery: p.forcerecovery,
            timeout: p.timeout.as_secs(),
            members: member_views(t),
            discovery: self.discovery_view(),
        }
    }

    /// Member URLs, in the order they joined (config first).
    pub fn urls(&self) -> Vec<&'static str> {
        self.lock().table.meta.iter().map(|m| m.url).collect()
    }

    /// Each member's URL, configured settings, settings now and whether
    /// it came from the config file.
    pub fn settings_by_url(&self) -> Vec<(&'static str, Settings, Settings, bool)> {
        let guard = self.lock();
        let t = &guard.table;
        t.members
            .iter()
            .zip(&t.meta)
            .map(|(m, meta)| {
                let configured = meta.configured.clone();
                (
                    meta.url,
                    configured,
                    Settings::of(m, meta),
                    meta.discovered.is_none(),
                )
            })
            .collect()
    }

    /// Failover attempts after the first: as configured, or with
    /// members that come and go, one fewer than the members present.
    pub fn max_attempts(&self) -> u32 {
        if !self.policy.attempts_follow_members {
            return self.policy.max_attempts;
        }
        let guard = self.lock();
        let present = guard
            .table
            .meta
            .iter()
            .filter(|m| !m.discovered.as_ref().is_some_and(|d| d.gone))
            .count();
        u32::try_from(present.saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The lock on the member table, for the discovery side (discovered.rs).
    pub(crate) fn with_table<R>(
        &self,
        f: impl FnOnce(&mut Table, &mut LbMethodInstance) -> R,
    ) -> R {
        let mut guard = self.lock();
        let State { table, method, .. } = &mut *guard;
        f(table, method)
    }

    /// Member `url`'s operator settings now.
    pub fn member_settings(&self, url: &str) -> Option<Settings> {
        let wanted = url.trim_end_matches('/');
        let guard = self.lock();
        let t = &guard.table;
        let i = t.meta.iter().position(|m| m.url == wanted)?;
        Some(Settings::of(&t.members[i], &t.meta[i]))
    }

    pub fn lbmethod(&self) -> String {
        self.lock().method_name.clone()
    }

    fn member_index(&self, table: &Table, url: &str) -> Result<usize, ChangeError> {
        let wanted = url.trim_end_matches('/');
        let urls: Vec<&str> = table.meta.iter().map(|m| m.url).collect();
        let i = urls.iter().position(|u| *u == wanted).ok_or_else(|| {
            ChangeError::NoSuchMember(format!(
                "balancer://{} has no member {url}: members are {}",
                self.policy.name,
                urls.join(", ")
            ))
        })?;
        if table.meta[i].discovered.as_ref().is_some_and(|d| d.gone) {
            return Err(ChangeError::Invalid(format!(
                "balancer://{} member {url} left its source (discovery) and is drained: it cannot be changed until it returns",
                self.policy.name
            )));
        }
        Ok(i)
    }

    /// An operator's change to one member (all or nothing).
    pub fn change_member(&self, url: &str, set: &MemberSet) -> Result<(), ChangeError> {
        let mut guard = self.lock();
        let i = self.member_index(&guard.table, url)?;
        apply_set(&mut guard.table, i, set).map_err(|e| {
            ChangeError::Invalid(format!("balancer://{} member {url}: {e}", self.policy.name))
        })
    }

    /// Sets member `url`'s operator settings as another node's manager
    /// did (manager_sync).
    /// A member that left its source is not there for this: the store's
    /// settings wait for its return.
    pub fn sync_member(&self, url: &str, settings: &Settings) -> Result<(), ChangeError> {
        let mut guard = self.lock();
        let wanted = url.trim_end_matches('/');
        let gone = |m: &crate::table::MemberMeta| m.discovered.as_ref().is_some_and(|d| d.gone);
        if guard.table.meta.iter().any(|m| m.url == wanted && gone(m)) {
            return Err(ChangeError::NoSuchMember(format!("{url} left its source")));
        }
        let i = self.member_index(&guard.table, url)?;
        if Settings::of(&guard.table.members[i], &guard.table.meta[i]) == *settings {
            return Ok(());
        }
        restore(&mut guard.table, i, settings).map_err(|e| {
            ChangeError::Invalid(format!("balancer://{} member {url}: {e}", self.policy.name))
        })
    }

    /// Puts persisted settings back on member `i`.
    pub fn restore_member(&self, i: usize, settings: &Settings) -> Result<(), ChangeError> {
        restore(&mut self.lock().table, i, settings).map_err(ChangeError::Invalid)
    }

    /// Switches to lbmethod `name`, which must be loaded; the new method
    /// starts from its own fresh state, as after a restart.
    pub fn set_lbmethod(&self, name: &str) -> Result<(), ChangeError> {
        let balancer = &self.policy.name;
        let method = LbMethodInstance::new(name, balancer).map_err(|e| ChangeError::Invalid(match e {
            InstanceError::NotLoaded => {
                let why = no_such_lbmethod(name);
                // A switch at run time finds only the loaded methods.
                if why.contains("enmod") {
                    format!("{why}, and `modproxy restart`")
                } else {
                    why
                }
            }
            InstanceError::StateFailed => format!("lbmethod {name} failed to set up its state for balancer://{balancer} (see its log line)"),
        }))?;
        let mut guard = self.lock();
        let State {
            table,
            method: current,
            method_name,
        } = &mut *guard;
        *current = method;
        *method_name = name.to_owned();
        for m in &mut table.members {
            m.lbstatus = 0;
        }
        // As Apache's balancer-manager does on a change of method.
        current.reset(&mut table.members);
        Ok(())
    }

    /// A poisoned lock only means a pick panicked half-way; the counters
    /// it may have left are still better than refusing every request.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn pick(&self, req: &mut Request) -> Result<Picked, PickError> {
        let route = self.route(req);
        let name = &self.policy.name;
        let mut guard = self.lock();
        let State {
            table,
            method,
            method_name,
        } = &mut *guard;
        table.expire_retries(Instant::now);
        if self.policy.forcerecovery && table.force_recovery() {
            log(
                Level::Warn,
                format_args!("balancer://{name}: every member is in error state; forcing recovery"),
            );
        }
        let mask = table.mask_hc_failed();
        if matches!(mask, HcMask::Lifted(_)) && !table.all_hc_failed {
            table.all_hc_failed = true;
            log(Level::Error, format_args!("balancer://{name}: every member failed its health checks; requests still go to them until one passes"));
        }
        let chosen = choose(
            table,
            self.policy.nofailover,
            route.as_deref(),
            |ms, stats| method.find(ms, stats, req),
        );
        table.unmask(mask);
        let i = chosen.map_err(|r| {
            match r {
                Refusal::NoneUsable => log(Level::Error, format_args!("balancer://{name}: all members are in error state")),
                Refusal::RouteDown => log(
                    Level::Error,
                    format_args!("balancer://{name}: the member for route {} is unusable and nofailover is set", route.as_deref().unwrap_or("")),
                ),
                Refusal::Panicked => log(Level::Error, format_args!("lbmethod {method_name} panicked; answering 503")),
            }
            PickError::NoneUsable
        })?;
        let meta = &table.meta[i];
        let member = u32::try_from(i).map_err(|_| PickError::NoneUsable)?;
        Ok(Picked {
            member,
            url: meta.url,
            params: meta.params,
        })
    }

    /// The session's route: URL first, then every Cookie header.
    fn route(&self, req: &Request) -> Option<String> {
        let sticky = self.policy.sticky.as_ref()?;
        if let Some(r) = sticky.url_route(req.path(), req.query()) {
            return Some(r.to_owned());
        }
        let mut route = None;
        req.for_each_header(Headers::Request, |name, value| {
            if route.is_none() && name == "cookie" {
                let value = std::str::from_utf8(value).unwrap_or("");
                route = sticky.cookie_route(value).map(str::to_owned);
            }
        });
        route
    }

    /// Books an attempt on `member` and tells the lbmethod how it went,
    /// under one lock: once per pick. True when the member's health
    /// changed (its passive check took it out).
    pub fn report(&self, member: u32, outcome: &LbOutcome) -> bool {
        let i = usize::try_from(member).unwrap_or(usize::MAX);
        let mut guard = self.lock();
        let State { table, method, .. } = &mut *guard;
        let (status, ex) = (outcome.exchange_status(), outcome.exchange());
        let failure = table.report(&self.policy, i, status, &ex, Instant::now);
        table.time(i, outcome);
        method.done(&mut table.members, &table.stats, i, outcome);
        // What the passive check counts: no answer, or a 5xx.
        let failed = failure.is_some()
            || status.is_backend_timeout()
            || status == ExchangeStatus::ConnectFailed
            || outcome.status >= 500;
        if let (Some(m), Some(meta)) = (table.members.get_mut(i), table.meta.get_mut(i)) {
            if let Some(t) = meta
                .health
                .book_traffic(&mut m.flags, failed, Instant::now())
            {
                let url = meta.url;
                drop(guard);
                self.log_transition(url, &t);
                return true;
            }
        }
        let Some(failure) = failure else {
            return false;
        };
        let (retry, url) = (table.meta[i].retry.as_secs(), table.meta[i].url);
        drop(guard);
        let name = &self.policy.name;
        log(
            Level::Error,
            format_args!("balancer://{name}: member {url} in error state for {retry}s: {failure}"),
        );
        false
    }

    /// Books one health check of member `member` (proxy_hcheck's report).
    /// True when the member's health changed.
    pub fn book_check(&self, member: u32, report: &CheckReport) -> bool {
        let i = usize::try_from(member).unwrap_or(usize::MAX);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut guard = self.lock();
        let table = &mut guard.table;
        let (Some(m), Some(meta)) = (table.members.get_mut(i), table.meta.get_mut(i)) else {
            return false;
        };
        let transition = meta.health.book(&mut m.flags, report, unix);
        if let Some(pct) = meta.health.agent_weight {
            m.lbfactor = (i64::from(meta.configured.loadfactor) * i64::from(pct)).max(1);
        }
        let url = meta.url;
        drop(guard);
        if let Some(t) = &transition {
            self.log_transition(url, t);
        }
        transition.is_some()
    }

    /// Every member with a check configured, for proxy_hcheck.
    pub fn check_targets(&self) -> Vec<CheckTarget> {
        let guard = self.lock();
        let meta = guard.table.meta.iter().enumerate();
        let target = |(j, m): (usize, &crate::table::MemberMeta)| {
            let s = m.health.settings.as_ref()?;
            Some(CheckTarget {
                balancer: self.name_static,
                member: u32::try_from(j).ok()?,
                method: s.method,
                url: m.url,
                uri: s.uri,
                expr: s.expr,
                agent: s.agent,
                at: s.at,
                interval: s.interval,
                timeout: s.timeout,
                params: m.params,
            })
        };
        meta.filter_map(target).collect()
    }

    /// Which members failed their health checks, by URL (kept across a restart).
    pub fn hc_failed_urls(&self) -> Vec<&'static str> {
        let guard = self.lock();
        let t = &guard.table;
        let failed = |(m, meta): (&modproxy_api::lb::LbMember, &crate::table::MemberMeta)| {
            (m.flags & modproxy_api::lb::flags::HC_FAILED != 0).then_some(meta.url)
        };
        t.members.iter().zip(&t.meta).filter_map(failed).collect()
    }

    /// Puts a member known bad before a restart back out, until it passes.
    pub fn restore_hc_failed(&self, url: &str) -> bool {
        let mut guard = self.lock();
        let table = &mut guard.table;
        let Some(i) = table.meta.iter().position(|m| m.url == url) else {
            return false;
        };
        let checked = table.meta[i].health.settings.is_some();
        if checked {
            table.members[i].flags |= modproxy_api::lb::flags::HC_FAILED;
            table.meta[i].health.down_reason = "failed its checks before the restart".into();
        }
        checked
    }

    fn log_transition(&self, url: &str, t: &Transition) {
        let name = &self.policy.name;
        match t {
            Transition::Out(why) => log(
                Level::Error,
                format_args!("balancer://{name}: member {url} failed its health check ({why}); no requests go to it until it passes"),
            ),
            Transition::Back => log(
                Level::Info,
                format_args!("balancer://{name}: member {url} passed its health checks; it serves again"),
            ),
        }
    }
}
