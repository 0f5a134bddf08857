//! DNS discovery: a balancer's members from SRV records (priority →
//! lbset, weight → loadfactor; the targets' A/AAAA records from the
//! answer's additional section, or looked up), or from the A/AAAA records
//! of a name with a port. hickory-resolver asks, on this module's own
//! runtime (worker.rs); its cache keeps each answer for its TTL, and the
//! next look is due when the TTL runs out, but at least every `refresh`.

use crate::worker::{Feed, Outcome};
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use modproxy_api::sdk::members::Spec;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// What one look found: the members, and when to look again.
struct Answer {
    specs: Vec<Spec>,
    valid_until: Instant,
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let builder = match server {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), provider)
        }
        None => Resolver::builder(provider).map_err(|e| format!("system resolver: {e}"))?,
    };
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    // Names are given whole; no search domains.
    opts.ndots = 0;
    builder
        .with_options(opts)
        .build()
        .map_err(|e| format!("resolver: {e}"))
}

fn url(scheme: &str, ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}"),
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}"),
    }
}

fn spec(origin: String, url: String, loadfactor: u32, lbset: u32) -> Spec {
    let json = serde_json::json!({ "url": url, "loadfactor": loadfactor, "lbset": lbset });
    Spec {
        origin,
        json: json.to_string(),
    }
}

async fn look(
    r: &TokioResolver,
    name: &str,
    port: Option<u16>,
    scheme: &str,
) -> Result<Answer, String> {
    let Some(port) = port else {
        return look_srv(r, name, scheme).await;
    };
    let ips = r.lookup_ip(name).await.map_err(|e| e.to_string())?;
    let valid_until = ips.valid_until();
    let mut seen: Vec<IpAddr> = ips.iter().collect();
    seen.sort();
    seen.dedup();
    let specs = seen
        .into_iter()
        .map(|ip| spec(format!("DNS {name} {ip}"), url(scheme, ip, port), 1, 0))
        .collect();
    Ok(Answer { specs, valid_until })
}

async fn look_srv(r: &TokioResolver, name: &str, scheme: &str) -> Result<Answer, String> {
    let lookup = r.srv_lookup(name).await.map_err(|e| e.to_string())?;
    let mut valid_until = lookup.valid_until();
    // The targets' addresses the server sent along, by name.
    let mut glue: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for rec in lookup.additionals() {
        let ip = match &rec.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        glue.entry(rec.name.to_ascii().to_ascii_lowercase())
            .or_default()
            .push(ip);
    }
    let mut specs = Vec::new();
    for rec in lookup.answers() {
        let RData::SRV(srv) = &rec.data else {
            continue;
        };
        let target = srv.target.to_ascii().to_ascii_lowercase();
        let ips = match glue.get(&target) {
            Some(ips) => ips.clone(),
            None => {
                let found = r
                    .lookup_ip(srv.target.clone())
                    .await
                    .map_err(|e| format!("SRV target {target}: {e}"))?;
                valid_until = valid_until.min(found.valid_until());
                found.iter().collect()
            }
        };
        let loadfactor = u32::from(srv.weight).clamp(1, 100);
        let lbset = u32::from(srv.priority);
        for ip in ips {
            let origin = format!("DNS SRV {name} {target}:{}", srv.port);
            specs.push(spec(origin, url(scheme, ip, srv.port), loadfactor, lbset));
        }
    }
    specs.sort_by(|a, b| a.json.cmp(&b.json));
    specs.dedup_by(|a, b| a.json == b.json);
    Ok(Answer { specs, valid_until })
}

/// Looks up `name` again and again, handing each new set to `feed`.
/// An error, or an answer with no member, keeps the last set (and marks
/// it stale): a blip never empties a balancer.
pub async fn run(
    mut feed: Feed,
    name: String,
    port: Option<u16>,
    scheme: &'static str,
    server: Option<SocketAddr>,
    refresh: Duration,
) {
    let r = match resolver(server) {
        Ok(r) => r,
        Err(e) => {
            feed.outcome(Outcome::Down(e));
            return;
        }
    };
    loop {
        let next = match look(&r, &name, port, scheme).await {
            Ok(a) if a.specs.is_empty() => {
                feed.outcome(Outcome::Down(format!("{name} has no records")));
                refresh.min(Duration::from_secs(1))
            }
            Ok(a) => {
                feed.outcome(Outcome::Set(a.specs));
                let ttl = a.valid_until.saturating_duration_since(Instant::now());
                ttl.clamp(Duration::from_secs(1), refresh)
            }
            Err(e) => {
                feed.outcome(Outcome::Down(format!("DNS {name}: {e}")));
                refresh.min(Duration::from_secs(1))
            }
        };
        tokio::time::sleep(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_urls_with_the_address_and_port() {
        assert_eq!(
            url("http", "10.0.0.5".parse().unwrap(), 8080),
            "http://10.0.0.5:8080"
        );
        assert_eq!(
            url("https", "fd00::5".parse().unwrap(), 443),
            "https://[fd00::5]:443"
        );
        let s = spec("DNS SRV x".into(), "http://10.0.0.5:8080".into(), 30, 1);
        assert_eq!(
            s.json,
            r#"{"lbset":1,"loadfactor":30,"url":"http://10.0.0.5:8080"}"#
        );
    }
}
