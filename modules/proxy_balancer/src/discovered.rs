//! Members that come and go at run time (proxy_discovery's side of the
//! `proxy_members` provider): a balancer's discovered set replaced as a
//! whole, members that left drained and kept, members that joined levelled
//! with the others so no lbmethod floods them, the source's stale mark,
//! and manager changes other nodes made (manager_sync).
//!
//! Member URLs stay valid for the process (the crate's guarantee): a member
//! that leaves keeps its slot, disabled, and gets it back when it returns.

use crate::cluster::{ChangeError, Cluster};
use crate::config::MemberConfig;
use crate::manager::state::Settings as ManagerSettings;
use crate::table::{Discovered, Table};
use crate::ProxyBalancer;
use modproxy_api::lb::{flags, LbMember};
use modproxy_api::proxy::{show_scheme, SCHEME_GROUP};
use modproxy_api::sdk::members::{ApplyError, MemberTable, Settings, Source, SourceKind, Spec};
use modproxy_api::sdk::provider;
use modproxy_api::{log, Level};
use serde::Serialize;
use std::time::Instant;

/// Flags a member's source may not take away: the balancer's own verdicts.
const RUNTIME_FLAGS: u32 = flags::IN_ERROR | flags::HC_FAILED;

/// What the manager and `modproxy status` show of a balancer's source.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DiscoveryView {
    /// The source, e.g. `DNS _http._tcp.app.internal` or `etcd /modproxy/c/`.
    pub source: String,
    /// Unix time since which the source is unreachable; absent when fresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<u64>,
    /// "fresh", or "discovery stale since 2026-12-07T01:02:03Z (why)".
    pub state: String,
}

/// One change to a member set, for the log once the lock is released.
enum Note {
    Joined(&'static str, String),
    Updated(&'static str),
    Returned(&'static str),
    Left(&'static str),
    Refused(String),
}

impl Cluster {
    /// Replaces the discovered members by `specs`; how many were refused.
    pub fn set_discovered(&self, specs: &[Spec]) -> u32 {
        let name = &self.policy.name;
        let now = Instant::now();
        let mut notes = Vec::new();
        let mut wanted = Vec::new();
        for s in specs {
            match self.parse_spec(s, now) {
                Ok(m) => wanted.push((s, m)),
                Err(why) => notes.push(Note::Refused(why)),
            }
        }
        notes.extend(self.with_table(|table, _| merge(table, wanted, specs)));
        let mut refused = 0;
        let mut fresh = self
            .discovery
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for n in notes {
            match n {
                Note::Joined(url, origin) => log(Level::Info, format_args!("balancer://{name}: member {url} joined ({origin}); its counters start level with the others'")),
                Note::Updated(url) => log(Level::Info, format_args!("balancer://{name}: member {url} updated by its source")),
                Note::Returned(url) => log(Level::Info, format_args!("balancer://{name}: member {url} is back in its source; it serves again")),
                Note::Left(url) => log(Level::Info, format_args!("balancer://{name}: member {url} left its source; drained (requests in flight finish, no new ones)")),
                Note::Refused(why) => {
                    refused += 1;
                    if fresh.refused.insert(why.clone()) {
                        log(Level::Error, format_args!("balancer://{name}: discovered member refused: {why}"));
                    }
                }
            }
        }
        refused
    }

    /// A spec checked as a config member is (same keys, same messages).
    fn parse_spec(
        &self,
        spec: &Spec,
        now: Instant,
    ) -> Result<(LbMember, crate::table::MemberMeta), String> {
        let at = format!(
            "balancer://{} member from {}",
            self.policy.name, spec.origin
        );
        let config: MemberConfig = serde_json::from_str(&spec.json)
            .map_err(|e| format!("{at}: {e} (in {})", spec.json))?;
        let (member, meta) = config
            .check(&at, now, &self.hc_defaults)
            .map_err(|e| e.join("; "))?;
        let scheme = meta.url.split("://").next().unwrap_or("");
        if !provider::exists(SCHEME_GROUP, scheme) {
            let why = provider::missing(SCHEME_GROUP, "scheme", scheme, show_scheme);
            return Err(format!("{at}: {}: {why}", meta.url));
        }
        Ok((member, meta))
    }

    /// Marks the source unreachable (since `stale`) or reachable again,
    /// and says so once in the error log each way.
    pub fn set_stale(&self, stale: Option<(u64, &str)>) {
        let name = &self.policy.name;
        let present = self.present_count();
        let mut fresh = self
            .discovery
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (fresh.stale_since, stale) {
            (None, Some((since, why))) => {
                fresh.stale_since = Some(since);
                fresh.reason = why.to_owned();
                log(Level::Error, format_args!("balancer://{name}: discovery stale since {} ({why}); the last known {present} members stay in use", utc(since)));
            }
            (Some(_), Some((_, why))) => fresh.reason = why.to_owned(),
            (Some(since), None) => {
                fresh.stale_since = None;
                fresh.reason.clear();
                log(Level::Error, format_args!("balancer://{name}: discovery recovered (stale since {}); members follow the source again", utc(since)));
            }
            (None, None) => {}
        }
    }

    fn present_count(&self) -> usize {
        self.with_table(|t, _| {
            t.meta
                .iter()
                .filter(|m| !m.discovered.as_ref().is_some_and(|d| d.gone))
                .count()
        })
    }

    /// The source as the manager shows it; `None` without one.
    pub fn discovery_view(&self) -> Option<DiscoveryView> {
        let source = self
            .sources
            .iter()
            .find(|s| s.kind == SourceKind::Discovery)
            .map(|s| describe(&s.config))?;
        let fresh = self
            .discovery
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = match fresh.stale_since {
            None => "fresh".to_owned(),
            Some(t) => format!("discovery stale since {} ({})", utc(t), fresh.reason),
        };
        Some(DiscoveryView {
            source,
            stale_since: fresh.stale_since,
            state,
        })
    }
}

/// `etcd /modproxy/c/` or `DNS _http._tcp.app`, from the key as written.
fn describe(config: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    match (text("prefix"), text("dns")) {
        (Some(p), _) => format!("etcd {p}"),
        (None, Some(d)) => format!("DNS {d}"),
        _ => config.to_owned(),
    }
}

/// Puts the parsed members `wanted` into `table`: new URLs join
/// (levelled), known ones whose keys changed are updated, members that
/// left are drained, members that return get their slot back. Members of
/// the config file are never touched. What happened, for the log.
fn merge(
    table: &mut Table,
    wanted: Vec<(&Spec, (LbMember, crate::table::MemberMeta))>,
    specs: &[Spec],
) -> Vec<Note> {
    let mut notes = Vec::new();
    for (spec, (member, meta)) in wanted {
        let known = table.meta.iter().position(|m| m.url == meta.url);
        match known {
            None => {
                table.push(member, meta);
                let i = table.members.len() - 1;
                table.meta[i].discovered = Some(Discovered {
                    origin: spec.origin.clone(),
                    json: spec.json.clone(),
                    gone: false,
                });
                level(table, i);
                notes.push(Note::Joined(table.meta[i].url, spec.origin.clone()));
            }
            Some(i) if table.meta[i].discovered.is_none() => notes.push(Note::Refused(format!(
                "{}: member {} is in the config file already; the config's settings stay",
                spec.origin, meta.url
            ))),
            Some(i) => {
                let d = table.meta[i]
                    .discovered
                    .clone()
                    .unwrap_or_else(|| Discovered {
                        origin: String::new(),
                        json: String::new(),
                        gone: false,
                    });
                if !d.gone && d.json == spec.json {
                    continue;
                }
                let old = table.members[i];
                let runtime = if d.gone { 0 } else { old.flags & RUNTIME_FLAGS };
                table.members[i] = LbMember {
                    lbfactor: member.lbfactor,
                    lbset: member.lbset,
                    flags: member.flags | runtime,
                    ..old
                };
                let stats_errors = table.stats[i].errors;
                let last_error = std::mem::take(&mut table.meta[i].last_error);
                let mut meta = meta;
                meta.configured = ManagerSettings::of(&table.members[i], &meta);
                meta.last_error = last_error;
                meta.discovered = Some(Discovered {
                    origin: spec.origin.clone(),
                    json: spec.json.clone(),
                    gone: false,
                });
                table.meta[i] = meta;
                table.stats[i].errors = stats_errors;
                if d.gone {
                    level(table, i);
                    notes.push(Note::Returned(table.meta[i].url));
                } else {
                    notes.push(Note::Updated(table.meta[i].url));
                }
            }
        }
    }
    for i in 0..table.members.len() {
        let present = specs
            .iter()
            .any(|s| spec_url(s).as_deref() == Some(table.meta[i].url));
        if let Some(d) = table.meta[i].discovered.as_mut() {
            if !d.gone && !present {
                d.gone = true;
                // Not usable: no new requests; those in flight finish.
                table.members[i].flags |= flags::DISABLED;
                notes.push(Note::Left(table.meta[i].url));
            }
        }
    }

    notes
}

/// The URL a spec names, as the table writes it, for the "left" check.
fn spec_url(spec: &Spec) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Url {
        url: String,
    }
    let u: Url = serde_json::from_str(&spec.json).ok()?;
    let t = u.url.trim_end_matches('/');
    let (scheme, rest) = t.split_once("://")?;
    Some(format!("{}://{rest}", scheme.to_ascii_lowercase()))
}

/// Sets member `i`'s lbmethod counters level with the usable others', so
/// that a member that joins (or returns) gets its share, not a burst: its
/// byrequests score is their average (Apache's byrequests keeps the sum of
/// scores at zero, so an average newcomer waits its turn), and its traffic
/// per unit of weight (bytraffic) is raised to the least of theirs.
/// bybusyness counts requests in flight, which cannot be levelled: a new
/// member there is simply the idlest, as in Apache.
pub fn level(table: &mut Table, i: usize) {
    let others: Vec<usize> = (0..table.members.len())
        .filter(|&j| j != i && table.members[j].is_usable())
        .collect();
    if others.is_empty() {
        table.members[i].lbstatus = 0;
        return;
    }
    let n = i64::try_from(others.len()).unwrap_or(i64::MAX);
    let sum: i64 = others.iter().map(|&j| table.members[j].lbstatus).sum();
    let per_factor = |m: &LbMember| {
        let f = u64::try_from(m.lbfactor).unwrap_or(1).max(1);
        (m.bytes_written / f).saturating_add(m.bytes_read / f)
    };
    let least = others
        .iter()
        .map(|&j| per_factor(&table.members[j]))
        .min()
        .unwrap_or(0);
    let m = &mut table.members[i];
    m.lbstatus = sum / n;
    let own = per_factor(m);
    if own < least {
        let f = u64::try_from(m.lbfactor).unwrap_or(1).max(1);
        m.bytes_written = m
            .bytes_written
            .saturating_add((least - own).saturating_mul(f));
    }
}

/// `2026-12-07T01:02:03Z` for a Unix time (UTC; the civil-from-days
/// algorithm of Howard Hinnant's date library).
pub fn utc(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

impl MemberTable for ProxyBalancer {
    fn sources(&self) -> Vec<Source> {
        self.clusters_sorted()
            .iter()
            .flat_map(|c| c.sources.clone())
            .collect()
    }

    fn set_members(&self, balancer: &str, specs: &[Spec]) -> u32 {
        match self.cluster(balancer) {
            Some(c) => c.set_discovered(specs),
            None => u32::try_from(specs.len()).unwrap_or(u32::MAX),
        }
    }

    fn set_stale(&self, balancer: &str, stale: Option<(u64, &str)>) {
        if let Some(c) = self.cluster(balancer) {
            c.set_stale(stale);
        }
    }

    fn apply_settings(
        &self,
        balancer: &str,
        url: &str,
        settings: &Settings,
    ) -> Result<(), ApplyError> {
        let c = self.cluster(balancer).ok_or(ApplyError::NoSuchMember)?;
        let s = ManagerSettings {
            loadfactor: settings.loadfactor,
            lbset: settings.lbset,
            route: settings.route.clone(),
            status: settings.status.clone(),
        };
        match c.sync_member(url, &s) {
            Ok(()) => Ok(()),
            Err(ChangeError::NoSuchMember(_)) => Err(ApplyError::NoSuchMember),
            Err(ChangeError::Invalid(why)) => {
                log(
                    Level::Warn,
                    format_args!("manager_sync: a change from the store was not applied: {why}"),
                );
                Err(ApplyError::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::table;
    use modproxy_api::lb::select::by_requests;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_796_605_323), "2026-12-07T01:02:03Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    /// Two members have shared 1000 requests; a third joins. Levelled, it
    /// gets its third of the next requests, not a run of them.
    #[test]
    fn a_joining_member_gets_no_burst_from_byrequests() {
        let mut t = table(&[("a", 0), ("b", 0)]);
        for _ in 0..1001 {
            by_requests(&mut t.members).unwrap();
        }
        let mut joined = t.clone();
        joined.push(t.members[0], t.meta[0].clone());
        joined.members[2] = LbMember {
            lbfactor: 100,
            ..LbMember::default()
        };
        level(&mut joined, 2);
        let picks: Vec<usize> = (0..9)
            .map(|_| by_requests(&mut joined.members).unwrap())
            .collect();
        let newcomer = picks.iter().filter(|&&p| p == 2).count();
        assert_eq!(newcomer, 3, "{picks:?}");
        let mut run = 0;
        let mut longest = 0;
        for p in &picks {
            run = if *p == 2 { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        assert!(longest <= 1, "{picks:?}");
    }

    /// A discovered member as the source would give it.
    fn found(url: &'static str, loadfactor: i64) -> (Spec, (LbMember, crate::table::MemberMeta)) {
        let t = table(&[("", 0)]);
        let mut meta = t.meta[0].clone();
        meta.url = url;
        let member = LbMember {
            lbfactor: loadfactor * 100,
            ..LbMember::default()
        };
        let spec = Spec {
            origin: format!("etcd key /c/{url}"),
            json: format!("{{\"url\":\"{url}\",\"loadfactor\":{loadfactor}}}"),
        };
        (spec, (member, meta))
    }

    fn apply(t: &mut Table, set: &[(Spec, (LbMember, crate::table::MemberMeta))]) -> Vec<Note> {
        let specs: Vec<Spec> = set.iter().map(|(s, _)| s.clone()).collect();
        let wanted = set.iter().map(|(s, m)| (s, m.clone())).collect();
        merge(t, wanted, &specs)
    }

    #[test]
    fn members_join_leave_drained_and_return_to_their_slot() {
        // One member from the config file, at http://127.0.0.1:1.
        let mut t = table(&[("cfg", 0)]);
        let (a, b) = (found("http://a:1", 1), found("http://b:1", 2));
        apply(&mut t, &[a.clone(), b.clone()]);
        assert_eq!(t.members.len(), 3);
        assert!(t.members.iter().all(|m| m.is_usable()));
        // b leaves: drained, not dropped; the config member is untouched.
        let notes = apply(&mut t, std::slice::from_ref(&a));
        assert!(matches!(notes[..], [Note::Left("http://b:1")]));
        assert!(!t.members[2].is_usable() && t.meta[2].discovered.as_ref().unwrap().gone);
        assert!(t.members[0].is_usable() && t.meta[0].discovered.is_none());
        // Nothing changed: nothing happens.
        assert!(apply(&mut t, std::slice::from_ref(&a)).is_empty());
        // b returns, with a new weight: its old slot, usable again.
        let b3 = found("http://b:1", 3);
        let notes = apply(&mut t, &[a.clone(), b3]);
        assert!(matches!(notes[..], [Note::Returned("http://b:1")]));
        assert_eq!(t.members.len(), 3, "one slot per URL");
        assert!(t.members[2].is_usable());
        assert_eq!(t.members[2].lbfactor, 300);
        assert_eq!(t.meta[2].configured.loadfactor, 3);
    }

    #[test]
    fn the_config_file_wins_over_a_source_and_errors_survive_updates() {
        let mut t = table(&[("cfg", 0)]);
        let same_as_config = found("http://127.0.0.1:1", 5);
        let notes = apply(&mut t, &[same_as_config]);
        assert!(matches!(notes[..], [Note::Refused(_)]));
        assert_eq!(t.members[0].lbfactor, 100);
        let a = found("http://a:1", 1);
        apply(&mut t, &[a]);
        t.members[1].flags |= flags::IN_ERROR;
        apply(&mut t, &[found("http://a:1", 2)]);
        assert_eq!(
            t.members[1].flags & flags::IN_ERROR,
            flags::IN_ERROR,
            "the balancer's verdict stays"
        );
        assert_eq!(t.members[1].lbfactor, 200);
    }

    #[test]
    fn a_joining_member_starts_at_the_least_traffic_per_weight() {
        let mut t = table(&[("a", 0), ("b", 0), ("new", 0)]);
        t.members[0].bytes_written = 10_000;
        t.members[1].bytes_written = 4_000;
        level(&mut t, 2);
        assert_eq!(t.members[2].bytes_written, 4_000);
    }
}
