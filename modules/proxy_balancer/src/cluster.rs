//! One configured balancer at run time: its policy, and its member table
//! and lbmethod behind one lock (held only for the pick or the report,
//! never across I/O).

use crate::config::Policy;
use crate::pick::{choose, Refusal};
use crate::table::Table;
use modproxy_api::lb::{InstanceError, LbMethodInstance};
use modproxy_api::proxy::{pick, ExchangeOutcome, Picked};
use modproxy_api::{log, Headers, Level, Request};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

pub struct Cluster {
    pub policy: Policy,
    /// Where it was defined (`file: key[i]`), for duplicate-name errors.
    pub defined_at: String,
    /// Member URLs in config order; fixed after config, so kept out of the lock.
    pub urls: Vec<&'static str>,
    state: Mutex<State>,
}

struct State {
    table: Table,
    method: LbMethodInstance,
}

impl Cluster {
    /// Attaches the lbmethod the policy names, which must be loaded now
    /// (Apache: an unknown lbmethod is a config error).
    pub fn new(policy: Policy, table: Table, at: &str) -> Result<Cluster, String> {
        let name = &policy.lbmethod;
        let method = LbMethodInstance::new(name, &policy.name).map_err(|e| match e {
            InstanceError::NotLoaded => {
                format!("{at}.lbmethod: lbmethod {name} is not loaded: run `modproxy enmod lbmethod_{name}`")
            }
            InstanceError::StateFailed => format!(
                "{at}.lbmethod: lbmethod {name} failed to set up its state for this balancer (see its log line); fix or disable that module"
            ),
        })?;
        let urls = table.meta.iter().map(|m| m.url).collect();
        Ok(Cluster {
            policy,
            defined_at: at.to_owned(),
            urls,
            state: Mutex::new(State { table, method }),
        })
    }

    /// A poisoned lock only means a pick panicked half-way; the counters
    /// it may have left are still better than refusing every request.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn pick(&self, req: &mut Request) -> Result<Picked, i32> {
        let route = self.route(req);
        let name = &self.policy.name;
        let mut guard = self.lock();
        let State { table, method } = &mut *guard;
        table.expire_retries(Instant::now());
        if self.policy.forcerecovery && table.force_recovery() {
            log(
                Level::Warn,
                format_args!("balancer://{name}: every member is in error state; forcing recovery"),
            );
        }
        let i = choose(table, self.policy.nofailover, route.as_deref(), |ms| method.find(ms, req)).map_err(|r| {
            match r {
                Refusal::NoneUsable => log(Level::Error, format_args!("balancer://{name}: all members are in error state")),
                Refusal::RouteDown => log(
                    Level::Error,
                    format_args!("balancer://{name}: the member for route {} is unusable and nofailover is set", route.as_deref().unwrap_or("")),
                ),
                Refusal::Panicked => log(Level::Error, format_args!("lbmethod {} panicked; answering 503", self.policy.lbmethod)),
            }
            pick::NONE_USABLE
        })?;
        let meta = &table.meta[i];
        let member = u32::try_from(i).map_err(|_| pick::NONE_USABLE)?;
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

    pub fn report(&self, member: u32, code: i32, outcome: &ExchangeOutcome) {
        let i = usize::try_from(member).unwrap_or(usize::MAX);
        let mut guard = self.lock();
        let Some(failure) = guard
            .table
            .report(&self.policy, i, code, outcome, Instant::now())
        else {
            return;
        };
        let retry = guard.table.meta[i].retry.as_secs();
        drop(guard);
        let (name, url) = (&self.policy.name, self.urls[i]);
        log(
            Level::Error,
            format_args!("balancer://{name}: member {url} in error state for {retry}s: {failure}"),
        );
    }
}
