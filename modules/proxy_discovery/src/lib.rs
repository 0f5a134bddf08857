//! proxy_discovery: balancer members from a source, and manager changes
//! shared across a fleet. A `[[vhost.proxy.balancer]]` table's
//! `discovery = {…}` names where its members come from, etcd (each key
//! under a prefix is a member, watched) or DNS (SRV, or A/AAAA with a
//! port; looked up again as TTLs run out); `manager_sync = {…}` names the
//! etcd prefix where its balancer-manager changes are shared with every
//! node. proxy_balancer owns the table and keeps both keys as written; it
//! hands them here and takes the results through its `proxy_members`
//! provider (abi/members.rs); it tells this module about local manager
//! changes through ours, `proxy_member_sync`.
//!
//! How it runs, and why: etcd-client (tonic) and hickory-resolver both
//! need a tokio reactor, and a cdylib's own tokio has none while the host
//! polls the module's futures. So the module starts one thread per server
//! process (from child_init, once) with its own current-thread runtime,
//! and all store traffic stays on it (worker.rs); the provider calls it
//! makes into proxy_balancer are thread-safe. hickory-resolver rather than
//! hickory-proto over a UDP socket: it takes a resolver address with a
//! port, keeps answers for their TTL, falls back to TCP for big answers,
//! and reads /etc/resolv.conf when no resolver is named.
//!
//! Not for: health checks (proxy_hcheck) or choosing among members (an
//! lbmethod). Guarantees: a store that is away never empties a balancer
//! (the last set stays, marked stale); a member that leaves is drained.
#![forbid(unsafe_code)]

mod config;
mod dns;
mod etcd;
mod worker;

use config::{Discovery, ManagerSync};
use modproxy_api::sdk::members::{
    register_member_sync, MemberSync, MembersHandle, Settings, SourceKind,
};
use modproxy_api::sdk::order;
use modproxy_api::{log, ConfigError, Level, Module, Registrar};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// How long child_init waits for the first member sets before serving.
const FIRST_LOOK: Duration = Duration::from_secs(3);

pub struct ProxyDiscovery {
    /// What child_init starts (taken once).
    plan: Mutex<Option<(MembersHandle, worker::Plan)>>,
    /// Each balancer with manager_sync: where its local changes go.
    senders: OnceLock<HashMap<String, UnboundedSender<(String, Settings)>>>,
}

impl Module for ProxyDiscovery {
    const NAME: &'static str = "proxy_discovery";

    fn init() -> Result<Self, String> {
        Ok(ProxyDiscovery {
            plan: Mutex::new(None),
            senders: OnceLock::new(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        let module = r.module();
        // Also how proxy_balancer knows its `discovery` keys will be acted on.
        register_member_sync(r, module);
        r.post_config(order::LAST, ProxyDiscovery::wire);
        r.child_init(order::MIDDLE, ProxyDiscovery::start);
    }
}

impl ProxyDiscovery {
    /// Reads every balancer's sources; every mistake is reported at once.
    fn wire(&self) -> Result<(), ConfigError> {
        let Some(members) = MembersHandle::lookup() else {
            return Err("proxy_discovery needs proxy_balancer's member interface (ABI 1.6): run `modproxy enmod proxy_balancer` and rebuild it if it is older".into());
        };
        let mut plan = worker::Plan::default();
        let mut senders = HashMap::new();
        let mut problems = Vec::new();
        for s in members.sources() {
            match s.kind {
                SourceKind::Discovery => match Discovery::parse(&s.at, &s.config) {
                    Ok(d) => plan.feeds.push((s.balancer, d)),
                    Err(e) => problems.push(e),
                },
                SourceKind::ManagerSync => match ManagerSync::parse(&s.at, &s.config) {
                    Ok(m) => {
                        let (tx, rx) = unbounded_channel();
                        senders.insert(s.balancer.clone(), tx);
                        plan.syncs.push((s.balancer, m, rx));
                    }
                    Err(e) => problems.push(e),
                },
            }
        }
        let _ = self.senders.set(senders);
        *self.plan.lock().unwrap_or_else(PoisonError::into_inner) = Some((members, plan));
        ConfigError::result(problems)
    }

    /// Starts the thread (once per process) and waits a moment for the
    /// first member sets, so the server does not serve empty balancers.
    fn start(&'static self) {
        let Some((members, plan)) = self
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        if plan.feeds.is_empty() && plan.syncs.is_empty() {
            return;
        }
        let what: Vec<String> =
            plan.feeds
                .iter()
                .map(|(b, d)| format!("balancer://{b} from {}", d.describe()))
                .chain(plan.syncs.iter().map(|(b, s, _)| {
                    format!("balancer://{b} manager changes via etcd {}", s.prefix)
                }))
                .collect();
        let (feeds, ready) = worker::start(members, plan);
        let deadline = Instant::now() + FIRST_LOOK;
        let mut heard = 0;
        while heard < feeds {
            let left = deadline.saturating_duration_since(Instant::now());
            if ready.recv_timeout(left).is_err() {
                break;
            }
            heard += 1;
        }
        log(
            Level::Info,
            format_args!("proxy_discovery: {}", what.join("; ")),
        );
        if heard < feeds {
            log(Level::Warn, format_args!("proxy_discovery: {} of {feeds} sources had not answered after {}s; serving with what is known", feeds - heard, FIRST_LOOK.as_secs()));
        }
    }
}

impl MemberSync for ProxyDiscovery {
    fn changed(&self, balancer: &str, url: &str, settings: &Settings) {
        let Some(tx) = self.senders.get().and_then(|s| s.get(balancer)) else {
            return;
        };
        let _ = tx.send((url.to_owned(), settings.clone()));
    }
}

modproxy_api::declare_module!(ProxyDiscovery);
