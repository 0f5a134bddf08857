//! The `[[vhost.proxy.balancer]]` section: its TOML shape, and the checks
//! that turn one entry into a balancer's policy and member table.

use crate::health::{HcKeys, Health, PassiveKeys};
use crate::status::parse_status;
use crate::sticky::Sticky;
use crate::table::{MemberMeta, Table};
use modproxy_api::lb::{flags, LbMember};
use modproxy_api::proxy::{worker_flags, StaticText, WorkerParams};
use modproxy_api::sdk::members::{Source, SourceKind};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// One `[[vhost.proxy.balancer]]` entry (Apache's `<Proxy balancer://…>`
/// with its `ProxySet` keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerConfig {
    pub name: String,
    #[serde(default = "byrequests")]
    pub lbmethod: String,
    /// Failover attempts after the first; default: members - 1.
    pub maxattempts: Option<u32>,
    #[serde(default)]
    pub nofailover: bool,
    #[serde(default)]
    pub sticky_session: String,
    #[serde(default)]
    pub failonstatus: Vec<u16>,
    #[serde(default)]
    pub failontimeout: bool,
    #[serde(default = "yes")]
    pub forcerecovery: bool,
    /// Seconds to wait for a usable member; stored, not yet acted on.
    #[serde(default)]
    pub timeout: u64,
    /// Members from the config file; with `discovery`, beside those found.
    #[serde(default)]
    pub members: Vec<MemberConfig>,
    /// Where more members come from (etcd, DNS): kept as written and
    /// handed to proxy_discovery, which owns its keys (`MemberTable`).
    pub discovery: Option<serde_json::Value>,
    /// Where manager changes are shared with the fleet (proxy_discovery).
    pub manager_sync: Option<serde_json::Value>,
    // The balancer's health-check keys: its members' defaults.
    pub hcmethod: Option<String>,
    pub hcuri: Option<String>,
    pub hcinterval: Option<u64>,
    pub hcpasses: Option<u32>,
    pub hcfails: Option<u32>,
    pub hcexpr: Option<String>,
    pub hctimeout: Option<u64>,
    pub hcagent: Option<String>,
    pub hcpassive: Option<PassiveKeys>,
}

/// One member (Apache's `BalancerMember url key=value…`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub url: String,
    #[serde(default = "one")]
    pub loadfactor: u32,
    #[serde(default)]
    pub lbset: u32,
    #[serde(default)]
    pub route: String,
    #[serde(default)]
    pub redirect: String,
    #[serde(default)]
    pub status: String,
    #[serde(default = "sixty")]
    pub retry: u64,
    #[serde(default = "sixty")]
    pub timeout: u64,
    #[serde(default = "sixty")]
    pub connection_timeout: u64,
    #[serde(default = "max_idle")]
    pub max: u32,
    #[serde(default)]
    pub ttl: u64,
    #[serde(default)]
    pub keepalive: bool,
    #[serde(default)]
    pub disable_reuse: bool,
    /// `https://` members: verify the certificate (default) or not.
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// `https://` members: PEM roots to verify against instead of the system's.
    #[serde(default)]
    pub tls_ca_file: String,
    // Health checks (proxy_hcheck): see crate::health::HcKeys.
    pub hcmethod: Option<String>,
    pub hcuri: Option<String>,
    pub hcinterval: Option<u64>,
    pub hcpasses: Option<u32>,
    pub hcfails: Option<u32>,
    pub hcexpr: Option<String>,
    pub hctimeout: Option<u64>,
    pub hcagent: Option<String>,
    pub hcpassive: Option<PassiveKeys>,
}

/// The `hc*` keys of a member or balancer entry (serde's `flatten` does
/// not mix with `deny_unknown_fields`, so both list them).
macro_rules! hc_keys {
    ($c:expr) => {
        HcKeys {
            hcmethod: $c.hcmethod.take(),
            hcuri: $c.hcuri.take(),
            hcinterval: $c.hcinterval,
            hcpasses: $c.hcpasses,
            hcfails: $c.hcfails,
            hcexpr: $c.hcexpr.take(),
            hctimeout: $c.hctimeout,
            hcagent: $c.hcagent.take(),
            hcpassive: $c.hcpassive,
        }
    };
}

fn byrequests() -> String {
    "byrequests".into()
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn sixty() -> u64 {
    60
}
fn max_idle() -> u32 {
    WorkerParams::default().max_idle
}

/// A balancer's settings once checked.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub name: String,
    pub lbmethod: String,
    pub max_attempts: u32,
    pub nofailover: bool,
    pub sticky: Option<Sticky>,
    pub failonstatus: Vec<u16>,
    pub failontimeout: bool,
    pub forcerecovery: bool,
    /// How long a request may wait for a usable member (Apache's ProxySet
    /// timeout); proxy does the waiting, between picks.
    pub timeout: Duration,
    /// `maxattempts` was not set and members come and go: the failover
    /// attempts follow the member count (members - 1) as it changes.
    pub attempts_follow_members: bool,
}

impl BalancerConfig {
    /// Checks the entry; `at` (`file: key[i]`) starts every error message.
    /// `now` starts the retry clock of members configured `+E`. Returns the
    /// policy and the members that passed, with every problem found (a
    /// balancer with problems is never served; the rest still lets later
    /// checks, such as member schemes, run in the same pass).
    pub fn check(mut self, at: &str, now: Instant) -> Checked {
        let mut problems = Vec::new();
        let hc_defaults = hc_keys!(self);
        let urls = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(j, m)| Some((j, member_url(&m.url).ok()?)))
            .collect();
        let ok_name = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if self.name.is_empty() || !self.name.chars().all(ok_name) {
            problems.push(format!(
                "{at}.name: `{}` cannot follow balancer://: use letters, digits, '-', '_' and '.'",
                self.name
            ));
        }
        let mut sources = Vec::new();
        for (kind, key, value) in [
            (SourceKind::Discovery, "discovery", self.discovery.take()),
            (
                SourceKind::ManagerSync,
                "manager_sync",
                self.manager_sync.take(),
            ),
        ] {
            match value {
                Some(v @ serde_json::Value::Object(_)) => sources.push(Source {
                    balancer: self.name.clone(),
                    kind,
                    config: v.to_string(),
                    at: format!("{at}.{key}"),
                }),
                Some(_) => problems.push(format!(
                    "{at}.{key}: write it as a table, e.g. {key} = {{ etcd = [\"http://127.0.0.1:2379\"], prefix = \"/modproxy/{}/\" }}",
                    self.name
                )),
                None => {}
            }
        }
        let discovered = sources.iter().any(|s| s.kind == SourceKind::Discovery);
        if self.members.is_empty() && !discovered {
            problems.push(format!("{at}.members: balancer `{}` has no members: add at least one {{ url = \"http://host:port\" }}", self.name));
        }
        if let Some(s) = self.failonstatus.iter().find(|s| !(100..=599).contains(*s)) {
            problems.push(format!("{at}.failonstatus: {s} is not an HTTP status: list codes from 100 to 599, e.g. [500, 503]"));
        }
        let sticky = Sticky::parse(&self.sticky_session)
            .map_err(|e| problems.push(format!("{at}.sticky_session: {e}")))
            .unwrap_or_default();
        let mut table = Table::default();
        for (j, m) in self.members.into_iter().enumerate() {
            match m.check(&format!("{at}.members[{j}]"), now, &hc_defaults) {
                Ok((member, meta)) => table.push(member, meta),
                Err(e) => problems.extend(e),
            }
        }
        let failovers = u32::try_from(table.members.len().saturating_sub(1)).unwrap_or(u32::MAX);
        let policy = Policy {
            name: self.name,
            lbmethod: self.lbmethod,
            max_attempts: if self.nofailover {
                0
            } else {
                self.maxattempts.unwrap_or(failovers)
            },
            nofailover: self.nofailover,
            sticky,
            failonstatus: self.failonstatus,
            failontimeout: self.failontimeout,
            forcerecovery: self.forcerecovery,
            timeout: Duration::from_secs(self.timeout),
            attempts_follow_members: discovered && self.maxattempts.is_none(),
        };
        Checked {
            policy,
            table,
            problems,
            urls,
            sources,
            hc_defaults,
        }
    }
}

/// What checking one balancer entry found.
pub struct Checked {
    pub policy: Policy,
    /// The members that passed their checks.
    pub table: Table,
    pub problems: Vec<String>,
    /// Every member URL that parses, whatever else is wrong with its
    /// member, with the member's index in the entry.
    pub urls: Vec<(usize, String)>,
    /// The `discovery` and `manager_sync` keys, for proxy_discovery.
    pub sources: Vec<Source>,
    /// The balancer's `hc*` keys: the defaults of discovered members too.
    pub hc_defaults: HcKeys,
}

impl MemberConfig {
    /// The member, or every problem with it.
    pub fn check(
        mut self,
        at: &str,
        now: Instant,
        hc_defaults: &HcKeys,
    ) -> Result<(LbMember, MemberMeta), Vec<String>> {
        let mut problems = Vec::new();
        let hc = hc_keys!(self)
            .or(hc_defaults)
            .check(at, Duration::from_secs(self.timeout))
            .map_err(|e| problems.extend(e));
        if !(1..=100).contains(&self.loadfactor) {
            problems.push(format!(
                "{at}.loadfactor: {} is out of range: use a weight from 1 to 100",
                self.loadfactor
            ));
        }
        let status =
            parse_status(&self.status).map_err(|e| problems.push(format!("{at}.status: {e}")));
        let url = member_url(&self.url).map_err(|e| problems.push(format!("{at}.url: {e}")));
        let (Ok(status), Ok(url), Ok(hc), true) = (status, url, hc, problems.is_empty()) else {
            return Err(problems);
        };
        let mut worker = 0;
        if self.keepalive {
            worker |= worker_flags::TCP_KEEPALIVE;
        }
        if self.disable_reuse {
            worker |= worker_flags::DISABLE_REUSE;
        }
        if !self.tls_verify {
            worker |= worker_flags::TLS_INSECURE;
        }
        let secs = |s: u64| s.saturating_mul(1000);
        let member = LbMember {
            lbfactor: i64::from(self.loadfactor) * 100,
            lbset: self.lbset,
            flags: status,
            ..LbMember::default()
        };
        let meta = MemberMeta {
            // Leaked once per member at startup: pick() hands it to the
            // proxy as a `&'static str`.
            url: crate::table::intern(url),
            route: self.route,
            redirect: self.redirect,
            retry: Duration::from_secs(self.retry),
            // A member configured in error waits one retry period from startup.
            error_since: (status & flags::IN_ERROR != 0).then_some(now),
            params: WorkerParams {
                timeout_ms: secs(self.timeout),
                connect_timeout_ms: secs(self.connection_timeout),
                ttl_ms: secs(self.ttl),
                max_idle: self.max,
                flags: worker,
                // Leaked once per member at startup, as the URL.
                tls_ca_file: StaticText::new(crate::table::intern(self.tls_ca_file)),
            },
            last_error: String::new(),
            health: Health {
                settings: hc,
                ..Health::default()
            },
            configured: Default::default(),
            discovered: None,
        };
        Ok((member, meta))
    }
}

/// `scheme://host[:port][/path]`, trailing `/` dropped so that the proxy
/// can append the request path. Which schemes work is up to the scheme
/// handlers loaded (checked after configuration).
fn member_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim_end_matches('/');
    let help = "write it as http://host:port";
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Err(format!("`{url}` is not a URL: {help}"));
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(format!("`{url}` has no valid scheme: {help}"));
    }
    if rest.split('/').next().unwrap_or("").is_empty() {
        return Err(format!("`{url}` has no host: {help}"));
    }
    if rest.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return Err(format!("`{url}` holds a space, query or fragment: {help}"));
    }
    Ok(format!("{}://{rest}", scheme.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<(Policy, Table), String> {
        #[derive(Deserialize)]
        struct Wrap {
            balancer: Vec<BalancerConfig>,
        }
        let mut w: Wrap = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let checked = w
            .balancer
            .remove(0)
            .check("site.toml: vhost[0].proxy.balancer[0]", Instant::now());
        match checked.problems.is_empty() {
            true => Ok((checked.policy, checked.table)),
            false => Err(checked.problems.join("\n")),
        }
    }

    #[test]
    fn every_problem_of_a_balancer_is_reported_at_once() {
        let e = parse(
            r#"[[balancer]]
            name = "a b"
            failonstatus = [5000]
            members = [{ url = "http://a:1", loadfactor = 0, status = "+Q" }, { url = "a:1" }, { url = "http://b:2" }]"#,
        )
        .unwrap_err();
        let at = "site.toml: vhost[0].proxy.balancer[0]";
        let expected = [
            format!("{at}.name: `a b` cannot follow balancer://: use letters, digits, '-', '_' and '.'"),
            format!("{at}.failonstatus: 5000 is not an HTTP status: list codes from 100 to 599, e.g. [500, 503]"),
            format!("{at}.members[0].loadfactor: 0 is out of range: use a weight from 1 to 100"),
        ];
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines[..3], expected, "{e}");
        assert!(
            lines[3].starts_with(&format!("{at}.members[0].status: `+Q`")),
            "{e}"
        );
        assert!(
            lines[4].starts_with(&format!("{at}.members[1].url: `a:1` is not a URL")),
            "{e}"
        );
        assert_eq!(lines.len(), 5, "{e}");
    }

    #[test]
    fn defaults_follow_apache() {
        let (p, t) = parse("[[balancer]]\nname = \"c\"\nmembers = [{ url = \"http://a:1/\" }, { url = \"HTTP://b:2\" }]").unwrap();
        assert_eq!(
            (
                p.lbmethod.as_str(),
                p.max_attempts,
                p.forcerecovery,
                p.sticky
            ),
            ("byrequests", 1, true, None)
        );
        assert_eq!((t.meta[0].url, t.meta[1].url), ("http://a:1", "http://b:2"));
        assert_eq!(
            (t.members[0].lbfactor, t.meta[0].retry),
            (100, Duration::from_secs(60))
        );
        assert_eq!(t.meta[0].params, WorkerParams::default());
    }

    #[test]
    fn every_key_is_read() {
        let (p, t) = parse(
            r#"[[balancer]]
            name = "mycluster"
            lbmethod = "bybusyness"
            maxattempts = 3
            sticky_session = "JSESSIONID|jsessionid"
            failonstatus = [500, 503]
            failontimeout = true
            forcerecovery = false
            timeout = 5
            members = [{ url = "http://127.0.0.1:8080", loadfactor = 4, lbset = 1, route = "a", redirect = "b",
                         status = "+H+E", retry = 0, timeout = 2, connection_timeout = 3, max = 8, ttl = 9,
                         keepalive = true, disable_reuse = true }]"#,
        )
        .unwrap();
        assert_eq!(
            (
                p.max_attempts,
                p.failonstatus,
                p.failontimeout,
                p.forcerecovery
            ),
            (3, vec![500, 503], true, false)
        );
        assert_eq!(
            (p.timeout, p.sticky.is_some()),
            (Duration::from_secs(5), true)
        );
        let (m, meta) = (t.members[0], &t.meta[0]);
        assert_eq!(
            (m.lbfactor, m.lbset, m.flags),
            (400, 1, flags::STANDBY | flags::IN_ERROR)
        );
        assert_eq!(
            (meta.route.as_str(), meta.redirect.as_str(), meta.retry),
            ("a", "b", Duration::ZERO)
        );
        assert!(meta.error_since.is_some());
        let params = WorkerParams {
            timeout_ms: 2000,
            connect_timeout_ms: 3000,
            ttl_ms: 9000,
            max_idle: 8,
            flags: 3,
            tls_ca_file: StaticText::EMPTY,
        };
        assert_eq!(meta.params, params);
    }

    #[test]
    fn nofailover_means_no_failover_attempts() {
        let (p, _) = parse("[[balancer]]\nname = \"c\"\nnofailover = true\nmaxattempts = 4\nmembers = [{ url = \"http://a:1\" }]").unwrap();
        assert_eq!(p.max_attempts, 0);
    }

    #[test]
    fn errors_name_the_place_and_the_fix() {
        let bad = |members: &str| {
            parse(&format!(
                "[[balancer]]\nname = \"c\"\nmembers = [{members}]"
            ))
            .unwrap_err()
        };
        let e = bad("{ url = \"http://a:1\", loadfactor = 0 }");
        assert!(
            e.starts_with("site.toml: vhost[0].proxy.balancer[0].members[0].loadfactor: "),
            "{e}"
        );
        assert!(e.contains("from 1 to 100"), "{e}");
        assert!(bad("{ url = \"http://a:1\" }, { url = \"a:1\" }")
            .contains(".members[1].url: `a:1` is not a URL"));
        assert!(bad("{ url = \"http:///x\" }").contains("has no host"));
        assert!(bad("{ url = \"http://a:1\", status = \"+Q\" }")
            .contains(".status: `+Q`: unknown flag"));
        assert!(bad("").contains(".members: balancer `c` has no members"));
        assert!(bad("{ url = \"http://a:1\", weight = 2 }").contains("unknown field `weight`"));
        let e = parse("[[balancer]]\nname = \"a b\"\nmembers = [{ url = \"http://a:1\" }]")
            .unwrap_err();
        assert!(
            e.contains("balancer[0].name: `a b` cannot follow balancer://"),
            "{e}"
        );
        let e = parse("[[balancer]]\nname = \"c\"\nfailonstatus = [5000]\nmembers = [{ url = \"http://a:1\" }]").unwrap_err();
        assert!(
            e.contains(".failonstatus: 5000 is not an HTTP status"),
            "{e}"
        );
    }
}
