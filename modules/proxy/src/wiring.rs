//! post_config: find the providers the configured URLs need (proxy_http
//! for `http://`, proxy_balancer for `balancer://`) and refuse to start,
//! naming the module to enable, when one is missing.

use crate::vhost::Backend;
use crate::Proxy;
use modproxy_api::hash::ConfigMap;
use modproxy_api::proxy::{show_scheme, worker_flags, BalancerHandle, SchemeHandle, SCHEME_GROUP};
use modproxy_api::sdk::provider;
use modproxy_api::ConfigError;

/// The handles found, cached for the request path.
#[derive(Default)]
pub struct Providers {
    /// By lower-case scheme.
    pub schemes: ConfigMap<String, SchemeHandle>,
    pub balancer: Option<BalancerHandle>,
}

pub fn resolve(m: &Proxy) -> Result<(), ConfigError> {
    let mut found = Providers {
        balancer: BalancerHandle::lookup(),
        ..Providers::default()
    };
    // Balancer members, forward requests, WebSocket upgrades and CONNECT
    // use these whether or not a rule names them.
    for scheme in ["http", "https", "ws", "wss", "fcgi", "connect"] {
        if let Some(h) = SchemeHandle::lookup(scheme) {
            found.schemes.insert(scheme.into(), h);
        }
    }
    let mut errors = Vec::new();
    for v in m.all_vhosts() {
        for rule in &v.rules {
            if rule.params.flags & worker_flags::UPGRADE_WEBSOCKET != 0
                && !found.schemes.contains_key("ws")
            {
                errors.push(format!(
                    "{}: upgrade = \"websocket\" needs module proxy_wstunnel, which is not enabled: run `modproxy enmod proxy_wstunnel`",
                    rule.at
                ));
            }
            match &rule.backend {
                Backend::Direct { url, .. } => need_scheme(&mut found, &rule.at, url, &mut errors),
                Backend::Balancer { url, name } => {
                    need_balancer(&found, &rule.at, url, name, &mut errors);
                    // Members of other schemes (ajp://) need their handler too.
                    let members = found.balancer.map(|b| b.member_urls(name));
                    for member in members.unwrap_or_default() {
                        need_scheme(&mut found, &rule.at, &member, &mut errors);
                    }
                }
                Backend::Exclude => {}
            }
        }
        for rev in &v.reverse {
            if let Some((name, _)) = &rev.balancer {
                need_balancer(&found, &rev.at, &rev.url, name, &mut errors);
            }
        }
        if v.forward && !found.schemes.contains_key("http") {
            errors.push(format!(
                "{}: forward proxying needs module proxy_http, which is not enabled: run `modproxy enmod proxy_http` or set forward = false",
                v.forward_at
            ));
        }
    }
    m.freeze(found);
    ConfigError::result(errors)
}

fn need_scheme(found: &mut Providers, at: &str, url: &str, errors: &mut Vec<String>) {
    let scheme = url
        .split_once("://")
        .map_or(url, |(s, _)| s)
        .to_ascii_lowercase();
    if found.schemes.contains_key(&scheme) {
        return;
    }
    match SchemeHandle::lookup(&scheme) {
        Some(h) => {
            found.schemes.insert(scheme, h);
        }
        None => {
            let why = provider::missing(SCHEME_GROUP, "scheme", &scheme, show_scheme);
            errors.push(format!("{at}: url {url}: {why}"));
        }
    }
}

fn need_balancer(found: &Providers, at: &str, url: &str, name: &str, errors: &mut Vec<String>) {
    match &found.balancer {
        None => errors.push(format!(
            "{at}: url {url} needs module proxy_balancer, which is not enabled: run `modproxy enmod proxy_balancer`"
        )),
        Some(b) if !b.exists(name) => errors.push(format!(
            "{at}: url {url}: no balancer named {name}: define it with [[vhost.proxy.balancer]]"
        )),
        Some(_) => {}
    }
}
