//! The `discovery` and `manager_sync` keys of a `[[vhost.proxy.balancer]]`
//! table. proxy_balancer keeps them as written and hands them over
//! (`MemberTable::sources`); their shape and checks are this module's.

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// `discovery = { etcd = [...], prefix = "..." }` or
/// `discovery = { dns = "...", resolver = "ip:port", refresh = 5 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoveryKeys {
    etcd: Option<Vec<String>>,
    prefix: Option<String>,
    dns: Option<String>,
    resolver: Option<String>,
    refresh: Option<u64>,
}

/// `manager_sync = { etcd = [...], prefix = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncKeys {
    etcd: Vec<String>,
    prefix: String,
}

/// Where a balancer's members come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// Each key under `prefix` is a member, its value the member's JSON.
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
    },
    /// SRV records of `name` (`_http._tcp.app.internal`), or the A/AAAA
    /// records of `name` with `port`.
    Dns {
        name: String,
        port: Option<u16>,
        /// `https` for `_https._tcp.` names, else `http`.
        scheme: &'static str,
        /// `None`: the system's resolvers (/etc/resolv.conf).
        resolver: Option<SocketAddr>,
        refresh: Duration,
    },
}

/// Where a balancer's manager changes are shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerSync {
    pub endpoints: Vec<String>,
    /// Each member's settings are at `PREFIX BALANCER/URL`.
    pub prefix: String,
}

const DISCOVERY_HELP: &str = "write discovery = { etcd = [\"http://127.0.0.1:2379\"], prefix = \"/modproxy/NAME/\" } or discovery = { dns = \"_http._tcp.app.internal\", resolver = \"127.0.0.1:53\", refresh = 5 }";

fn endpoints(at: &str, list: Vec<String>) -> Result<Vec<String>, String> {
    if list.is_empty() {
        return Err(format!(
            "{at}.etcd: list at least one endpoint, e.g. [\"http://127.0.0.1:2379\"]"
        ));
    }
    for e in &list {
        if !e.starts_with("http://") {
            return Err(format!("{at}.etcd: `{e}` is not an etcd endpoint: write it as http://host:port (TLS to etcd is not supported yet)"));
        }
    }
    Ok(list)
}

fn prefix(at: &str, p: String) -> Result<String, String> {
    if p.is_empty() || !p.ends_with('/') {
        return Err(format!(
            "{at}.prefix: `{p}` must end with `/`, e.g. \"/modproxy/mycluster/\""
        ));
    }
    Ok(p)
}

impl Discovery {
    /// Reads a `discovery` value (JSON, as proxy_balancer handed it).
    pub fn parse(at: &str, json: &str) -> Result<Discovery, String> {
        let k: DiscoveryKeys =
            serde_json::from_str(json).map_err(|e| format!("{at}: {e}: {DISCOVERY_HELP}"))?;
        match (k.etcd, k.dns) {
            (Some(etcd), None) => {
                if k.resolver.is_some() || k.refresh.is_some() {
                    return Err(format!(
                        "{at}: `resolver` and `refresh` are DNS keys; etcd is watched, not polled"
                    ));
                }
                let Some(p) = k.prefix else {
                    return Err(format!(
                        "{at}.prefix: etcd discovery needs the prefix its member keys are under"
                    ));
                };
                Ok(Discovery::Etcd {
                    endpoints: endpoints(at, etcd)?,
                    prefix: prefix(at, p)?,
                })
            }
            (None, Some(dns)) => {
                if k.prefix.is_some() {
                    return Err(format!(
                        "{at}.prefix: is an etcd key; DNS discovery reads the records of `dns`"
                    ));
                }
                let resolver = k
                    .resolver
                    .map(|r| {
                        r.parse::<SocketAddr>().map_err(|_| {
                            format!("{at}.resolver: `{r}` is not ip:port, e.g. \"127.0.0.1:53\"")
                        })
                    })
                    .transpose()?;
                let refresh = Duration::from_secs(k.refresh.unwrap_or(5));
                if refresh.is_zero() {
                    return Err(format!("{at}.refresh: use 1 second or more"));
                }
                let (name, port) = dns_name(at, &dns)?;
                let scheme = if name.starts_with("_https.") {
                    "https"
                } else {
                    "http"
                };
                Ok(Discovery::Dns {
                    name,
                    port,
                    scheme,
                    resolver,
                    refresh,
                })
            }
            _ => Err(format!(
                "{at}: name one source, `etcd` or `dns`: {DISCOVERY_HELP}"
            )),
        }
    }

    /// For messages: `etcd /modproxy/c/`, `DNS SRV _http._tcp.app`.
    pub fn describe(&self) -> String {
        match self {
            Discovery::Etcd { prefix, .. } => format!("etcd {prefix}"),
            Discovery::Dns {
                name, port: None, ..
            } => format!("DNS SRV {name}"),
            Discovery::Dns {
                name,
                port: Some(p),
                ..
            } => format!("DNS {name}:{p}"),
        }
    }
}

/// `_http._tcp.app.internal` (SRV: the records carry the ports), or
/// `app.internal:8080` (A/AAAA records, this port).
fn dns_name(at: &str, dns: &str) -> Result<(String, Option<u16>), String> {
    let help = "write an SRV name such as \"_http._tcp.app.internal\", or a host name with a port such as \"app.internal:8080\"";
    if dns.starts_with('_') {
        if dns.contains(':') {
            return Err(format!(
                "{at}.dns: `{dns}`: an SRV record carries its ports: drop the `:PORT`"
            ));
        }
        return Ok((dns.to_owned(), None));
    }
    let Some((host, port)) = dns.rsplit_once(':') else {
        return Err(format!("{at}.dns: `{dns}` has no port: {help}"));
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{at}.dns: `{dns}`: the port is not a number from 1 to 65535"))?;
    if host.is_empty() {
        return Err(format!("{at}.dns: `{dns}` has no host name: {help}"));
    }
    Ok((host.to_owned(), Some(port)))
}

impl ManagerSync {
    pub fn parse(at: &str, json: &str) -> Result<ManagerSync, String> {
        let k: SyncKeys = serde_json::from_str(json).map_err(|e| {
            format!("{at}: {e}: write manager_sync = {{ etcd = [\"http://127.0.0.1:2379\"], prefix = \"/modproxy/manager/\" }}")
        })?;
        Ok(ManagerSync {
            endpoints: endpoints(at, k.etcd)?,
            prefix: prefix(at, k.prefix)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sources_parse() {
        let d = Discovery::parse(
            "f: k",
            r#"{"etcd":["http://127.0.0.1:2379"],"prefix":"/modproxy/c/"}"#,
        )
        .unwrap();
        assert_eq!(d.describe(), "etcd /modproxy/c/");
        let d = Discovery::parse(
            "f: k",
            r#"{"dns":"_http._tcp.app.internal","resolver":"127.0.0.1:5353","refresh":2}"#,
        )
        .unwrap();
        assert!(matches!(
            d,
            Discovery::Dns { port: None, scheme: "http", refresh, .. } if refresh == Duration::from_secs(2)
        ));
        let d = Discovery::parse("f: k", r#"{"dns":"app.internal:8080"}"#).unwrap();
        assert_eq!(d.describe(), "DNS app.internal:8080");
    }

    #[test]
    fn mistakes_name_the_key_and_the_fix() {
        let e = |j: &str| {
            Discovery::parse("site.toml: vhost[0].proxy.balancer[0].discovery", j).unwrap_err()
        };
        assert!(e(r#"{"etcd":["http://a:1"]}"#).contains("discovery.prefix: etcd discovery needs"));
        assert!(e(r#"{"etcd":["http://a:1"],"prefix":"/x"}"#).contains("must end with `/`"));
        assert!(e(r#"{"dns":"app.internal"}"#).contains("has no port"));
        assert!(e(r#"{"dns":"_http._tcp.a","resolver":"localhost"}"#).contains("is not ip:port"));
        assert!(e(r#"{"dns":"a:1","etcd":["http://a:1"]}"#).contains("name one source"));
        assert!(e(r#"{"dsn":"a:1"}"#).contains("unknown field `dsn`"));
        assert!(ManagerSync::parse("f: k", r#"{"etcd":[],"prefix":"/m/"}"#)
            .unwrap_err()
            .contains("at least one endpoint"));
    }
}
