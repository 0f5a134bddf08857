//! etcd, through etcd-client (gRPC over tonic, on this module's own
//! runtime: worker.rs). Two jobs:
//!
//! - **members**: each key under a balancer's `prefix` is a member, its
//!   value the member's JSON. Read once, then watched from the next
//!   revision: a put or a delete arrives as an event, in milliseconds.
//! - **manager_sync**: each member's operator settings are at
//!   `PREFIX BALANCER/URL`. A change on this node's balancer manager is
//!   put there; every node watches the keys and applies each event in
//!   revision order, so the last writer (by etcd revision) wins on every
//!   node alike, and a node that starts reads the current state first.
//!
//! When the store is away: the last member set stays (the feed marks it
//! stale), manager changes made meanwhile wait and are written once it is
//! back, and the watch starts again from a fresh read.

use crate::config::ManagerSync;
use crate::worker::{Feed, Outcome};
use etcd_client::{Client, ConnectOptions, EventType, GetOptions, WatchOptions};
use modproxy_api::sdk::members::{ApplyError, MembersHandle, Settings, Spec};
use modproxy_api::{log, Level};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// How long one request (not a watch) may take.
const CALL: Duration = Duration::from_secs(2);
/// How often the store's manager settings are put on the members again.
const REAPPLY: Duration = Duration::from_secs(1);
/// Between two tries to reach the store.
const BACKOFF: Duration = Duration::from_millis(500);

async fn within<T, E: std::fmt::Display>(
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL, f).await {
        Ok(r) => r.map_err(|e| format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {}s", CALL.as_secs())),
    }
}

async fn connect(endpoints: &[String]) -> Result<Client, String> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        // A store that hangs (not only one that closes) is noticed too.
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    within("connect", Client::connect(endpoints, Some(opts))).await
}

fn specs(keys: &BTreeMap<String, String>) -> Vec<Spec> {
    keys.iter()
        .map(|(k, v)| Spec {
            origin: format!("etcd key {k}"),
            json: v.clone(),
        })
        .collect()
}

/// Feeds a balancer from the keys under `prefix`, for ever.
pub async fn members(mut feed: Feed, endpoints: Vec<String>, prefix: String) {
    loop {
        let Err(why) = watch_members(&mut feed, &endpoints, &prefix).await;
        feed.outcome(Outcome::Down(format!(
            "etcd {}: {why}",
            endpoints.join(",")
        )));
        tokio::time::sleep(BACKOFF).await;
    }
}

async fn watch_members(
    feed: &mut Feed,
    endpoints: &[String],
    prefix: &str,
) -> Result<std::convert::Infallible, String> {
    let mut client = connect(endpoints).await?;
    let got = within(
        "get",
        client.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = got.header().map_or(0, |h| h.revision());
    let mut keys: BTreeMap<String, String> = got
        .kvs()
        .iter()
        .filter_map(|kv| {
            Some((
                kv.key_str().ok()?.to_owned(),
                kv.value_str().ok()?.to_owned(),
            ))
        })
        .collect();
    feed.outcome(Outcome::Set(specs(&keys)));
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    // The watcher is the request side of the stream: kept for as long as
    // the events are read.
    let (_watcher, mut stream) = within("watch", client.watch(prefix, Some(options))).await?;
    loop {
        let resp = stream
            .message()
            .await
            .map_err(|e| format!("watch: {e}"))?
            .ok_or("the watch ended")?;
        if resp.canceled() {
            return Err(format!("watch canceled: {}", resp.cancel_reason()));
        }
        let mut changed = false;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            match ev.event_type() {
                EventType::Put => {
                    let value = kv.value_str().unwrap_or("").to_owned();
                    keys.insert(key.to_owned(), value);
                }
                EventType::Delete => {
                    keys.remove(key);
                }
            }
            changed = true;
        }
        if changed {
            feed.outcome(Outcome::Set(specs(&keys)));
        }
    }
}

/// A member's settings as stored (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    loadfactor: u32,
    #[serde(default)]
    lbset: u32,
    #[serde(default)]
    route: String,
    #[serde(default)]
    status: String,
}

impl From<&Settings> for Stored {
    fn from(s: &Settings) -> Stored {
        Stored {
            loadfactor: s.loadfactor,
            lbset: s.lbset,
            route: s.route.clone(),
            status: s.status.clone(),
        }
    }
}

impl From<Stored> for Settings {
    fn from(s: Stored) -> Settings {
        Settings {
            loadfactor: s.loadfactor,
            lbset: s.lbset,
            route: s.route,
            status: s.status,
        }
    }
}

/// Shares balancer `balancer`'s manager changes through the store, for ever.
pub async fn sync(
    members: MembersHandle,
    balancer: String,
    s: ManagerSync,
    mut local: UnboundedReceiver<(String, Settings)>,
) {
    let base = format!("{}{balancer}/", s.prefix);
    let mut pending: BTreeMap<String, Settings> = BTreeMap::new();
    let mut down = false;
    loop {
        let Err(why) = sync_once(
            &members,
            &balancer,
            &base,
            &s.endpoints,
            &mut pending,
            &mut local,
            &mut down,
        )
        .await;
        if !down {
            down = true;
            log(Level::Error, format_args!("balancer://{balancer}: manager_sync: etcd {} unreachable ({why}); changes made here wait until it is back", s.endpoints.join(",")));
        }
        tokio::time::sleep(BACKOFF).await;
    }
}

fn apply(members: &MembersHandle, balancer: &str, base: &str, key: &str, value: &str) {
    let Some(url) = key.strip_prefix(base) else {
        return;
    };
    let stored: Stored = match serde_json::from_str(value) {
        Ok(s) => s,
        Err(e) => {
            return log(
                Level::Warn,
                format_args!("balancer://{balancer}: manager_sync: etcd key {key} is not a member's settings ({e}); ignored"),
            )
        }
    };
    // A member this node does not have (yet) has nothing to change; an
    // invalid change was logged by the balancer.
    let _: Result<(), ApplyError> = members.apply_settings(balancer, url, &stored.into());
}

/// Writes `settings` at `key`; the value written.
async fn put(client: &mut Client, key: &str, settings: &Settings) -> Result<String, String> {
    let value = serde_json::to_string(&Stored::from(settings)).map_err(|e| e.to_string())?;
    within("put", client.put(key, value.clone(), None)).await?;
    Ok(value)
}

#[allow(clippy::too_many_arguments)]
async fn sync_once(
    members: &MembersHandle,
    balancer: &str,
    base: &str,
    endpoints: &[String],
    pending: &mut BTreeMap<String, Settings>,
    local: &mut UnboundedReceiver<(String, Settings)>,
    down: &mut bool,
) -> Result<std::convert::Infallible, String> {
    let mut client = connect(endpoints).await?;
    while let Ok((url, settings)) = local.try_recv() {
        pending.insert(url, settings);
    }
    // Changes made here while the store was away go first: they are the
    // latest writes, and win as any later write does.
    while let Some((url, settings)) = pending.pop_first() {
        if let Err(e) = put(&mut client, &format!("{base}{url}"), &settings).await {
            pending.insert(url, settings);
            return Err(e);
        }
    }
    let got = within(
        "get",
        client.get(base, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = got.header().map_or(0, |h| h.revision());
    // The store's values, put again now and then: a member that joins
    // later (discovery), or whose source rewrote its settings, ends as
    // the store has it too.
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    for kv in got.kvs() {
        if let (Ok(k), Ok(v)) = (kv.key_str(), kv.value_str()) {
            apply(members, balancer, base, k, v);
            known.insert(k.to_owned(), v.to_owned());
        }
    }
    let mut again = tokio::time::interval(REAPPLY);
    again.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let (_watcher, mut stream) = within("watch", client.watch(base, Some(options))).await?;
    if std::mem::take(down) {
        log(Level::Error, format_args!("balancer://{balancer}: manager_sync: etcd reachable again; this node follows the store"));
    }
    loop {
        tokio::select! {
            // This node's changes first: the store hears them before the
            // next re-apply could undo them here.
            biased;
            change = local.recv() => {
                let Some((url, settings)) = change else {
                    return Err("this node's change queue closed".into());
                };
                let key = format!("{base}{url}");
                match put(&mut client, &key, &settings).await {
                    // What the store has now (a later writer's event
                    // follows, if any), so a re-apply does not undo it.
                    Ok(value) => drop(known.insert(key, value)),
                    Err(e) => {
                        pending.insert(url, settings);
                        return Err(e);
                    }
                }
            }
            msg = stream.message() => {
                let resp = msg.map_err(|e| format!("watch: {e}"))?.ok_or("the watch ended")?;
                if resp.canceled() {
                    return Err(format!("watch canceled: {}", resp.cancel_reason()));
                }
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let Ok(k) = kv.key_str() else { continue };
                    if ev.event_type() == EventType::Put {
                        let v = kv.value_str().unwrap_or("");
                        apply(members, balancer, base, k, v);
                        known.insert(k.to_owned(), v.to_owned());
                    } else {
                        known.remove(k);
                    }
                }
            }
            _ = again.tick() => {
                for (k, v) in &known {
                    apply(members, balancer, base, k, v);
                }
            }
        }
    }
}
