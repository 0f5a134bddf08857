//! The one background thread of a server process: it runs this module's
//! own current-thread tokio runtime, on which the etcd watches
//! (etcd-client, over tonic) and the DNS lookups (hickory-resolver) run.
//!
//! Why a thread: a cdylib's own tokio has no reactor while the host polls
//! the module's futures (DESIGN.md, fact 1), and both clients need tokio's
//! reactor and timers. On a thread of our own, our tokio copy has its own
//! reactor; what crosses to the host is only proxy_balancer's provider
//! calls (thread-safe: its state is behind its locks) and log lines.

use crate::config::{Discovery, ManagerSync};
use crate::{dns, etcd};
use modproxy_api::sdk::members::{MembersHandle, Settings, Spec};
use modproxy_api::{log, Level};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedReceiver;

/// What a source found on one look (or why it could not look).
pub enum Outcome {
    /// The whole member set, as the source has it now.
    Set(Vec<Spec>),
    /// The source could not be read, or had nothing: keep the last set.
    Down(String),
}

/// One balancer's member feed: hands each new set to proxy_balancer and
/// keeps the stale mark; says "ready" once it has handed over a first set.
pub struct Feed {
    members: MembersHandle,
    balancer: String,
    last: Option<Vec<Spec>>,
    stale_since: Option<u64>,
    ready: Option<mpsc::Sender<()>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}

impl Feed {
    pub fn outcome(&mut self, o: Outcome) {
        match o {
            Outcome::Set(specs) if specs.is_empty() => {
                self.outcome(Outcome::Down("the source lists no member".into()))
            }
            Outcome::Set(specs) => {
                if self.last.as_ref() != Some(&specs) {
                    self.members.set_members(&self.balancer, &specs);
                    self.last = Some(specs);
                }
                if self.stale_since.take().is_some() {
                    self.members.set_stale(&self.balancer, None);
                }
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(());
                }
            }
            Outcome::Down(why) => {
                let since = *self.stale_since.get_or_insert_with(unix_now);
                self.members.set_stale(&self.balancer, Some((since, &why)));
            }
        }
    }
}

/// This node's manager changes of one balancer: (member URL, settings).
pub type LocalChanges = UnboundedReceiver<(String, Settings)>;

/// Everything the thread runs.
#[derive(Default)]
pub struct Plan {
    pub feeds: Vec<(String, Discovery)>,
    pub syncs: Vec<(String, ManagerSync, LocalChanges)>,
}

/// Starts the thread; returns a receiver that gets one `()` per feed once
/// it has handed over its first member set (child_init waits a moment for them, so the
/// server does not start serving with an empty balancer).
pub fn start(members: MembersHandle, plan: Plan) -> (usize, mpsc::Receiver<()>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let n = plan.feeds.len();
    let spawned = std::thread::Builder::new()
        .name("proxy_discovery".into())
        .spawn(move || run(members, plan, ready_tx));
    if let Err(e) = spawned {
        log(
            Level::Error,
            format_args!(
                "proxy_discovery: cannot start its thread: {e}; members stay as configured"
            ),
        );
    }
    (n, ready_rx)
}

fn run(members: MembersHandle, plan: Plan, ready: mpsc::Sender<()>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return log(
                Level::Error,
                format_args!("proxy_discovery: cannot build its runtime: {e}"),
            )
        }
    };
    rt.block_on(async move {
        for (balancer, d) in plan.feeds {
            let feed = Feed {
                members,
                balancer,
                last: None,
                stale_since: None,
                ready: Some(ready.clone()),
            };
            match d {
                Discovery::Etcd { endpoints, prefix } => {
                    tokio::spawn(etcd::members(feed, endpoints, prefix));
                }
                Discovery::Dns {
                    name,
                    port,
                    scheme,
                    resolver,
                    refresh,
                } => {
                    tokio::spawn(dns::run(feed, name, port, scheme, resolver, refresh));
                }
            }
        }
        for (balancer, s, rx) in plan.syncs {
            tokio::spawn(etcd::sync(members, balancer, s, rx));
        }
        drop(ready);
        // The tasks run for the life of the process.
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}
