//! mod_proxy for modproxy: the dispatcher. It maps requests to backends
//! (ProxyPass, ProxyPassMatch), holds failed direct backends in error,
//! runs Apache's balancer failover loop, and maps backend URLs and cookies
//! in responses back (ProxyPassReverse).
//!
//! Not for: speaking HTTP to backends (proxy_http) or choosing balancer
//! members (proxy_balancer); both are providers it finds at post_config.
//! Guarantees: the request path goes to the backend as received (no
//! decoding); a path with a `.`/`..` segment is refused with 400; forward
//! proxying is off unless a vhost says `forward = true`.
#![forbid(unsafe_code)]

mod compile;
mod config;
mod handler;
pub mod paths;
mod response;
pub mod reverse;
#[cfg(test)]
mod route_tests;
mod translate;
mod vhost;
mod wiring;
mod worker;

use config::ProxyConfig;
use modproxy_api::proxy::{BalancerHandle, SchemeHandle};
use modproxy_api::sdk::{order, HookKind};
use modproxy_api::{log, ConfigError, Level, Module, Registrar, Section};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use vhost::VhostProxy;
use wiring::Providers;
use worker::Workers;

/// Notes this module sets in translate_name and reads later.
pub mod notes {
    /// The full backend URL (`http://…` or `balancer://…`); its presence
    /// marks a request as proxied.
    pub const TARGET: &str = "proxy-target";
    /// The rule that matched (`pass[1]`, `pass_match[0]`) or `forward`.
    pub const RULE: &str = "proxy-rule";
    /// Set only for rules with `fcgi_set_env` or `enable_reuse`, read by
    /// proxy_fcgi: one line per item, `+reuse` for `enable_reuse`,
    /// `NAME=value` to set a parameter and `!NAME` to remove one.
    pub const FCGI: &str = "proxy-fcgi";
}

pub struct Proxy {
    /// Per vhost index, written while the configuration is read.
    vhosts: RwLock<Vec<Option<Arc<VhostProxy>>>>,
    workers: Workers,
    /// What requests read: the vhosts and the providers, fixed at
    /// post_config, so a request takes no lock and clones no Arc for them.
    frozen: OnceLock<Frozen>,
}

struct Frozen {
    vhosts: Vec<Option<Arc<VhostProxy>>>,
    providers: Providers,
}

impl Module for Proxy {
    const NAME: &'static str = "proxy";

    fn init() -> Result<Self, String> {
        Ok(Proxy {
            vhosts: RwLock::default(),
            workers: Workers::default(),
            frozen: OnceLock::new(),
        })
    }

    /// In pipeline order.
    fn register(r: &mut Registrar<Self>) {
        r.section::<ProxyConfig>("vhost.proxy", on_vhost_section);
        // Providers register during init, so all exist by post_config.
        r.post_config(order::MIDDLE, wiring::resolve);
        // FIRST: a proxied path must not be mapped to a file by another module.
        r.request_hook(HookKind::TranslateName, order::FIRST, translate::translate);
        r.handler(order::MIDDLE, handler::handle);
        r.request_hook(HookKind::ResponseHeaders, order::MIDDLE, response::reverse);
    }
}

modproxy_api::declare_module!(Proxy);

fn on_vhost_section(m: &Proxy, s: Section<ProxyConfig>) -> Result<(), ConfigError> {
    let at = format!("{}: {}", s.file, s.key);
    let Some(index) = s.vhost else {
        return Err(format!(
            "{at}: proxy settings belong to a virtual host: move them under [vhost.proxy]"
        )
        .into());
    };
    let (compiled, errors) = compile::compile(s.value, &at, &m.workers);
    for warning in compile::shadowed(&compiled.rules, &at) {
        log(Level::Warn, warning);
    }
    // Kept even with errors (the server will not start): post_config then
    // checks its rules' schemes and balancers in the same pass.
    let mut vhosts = m.vhosts.write().unwrap_or_else(PoisonError::into_inner);
    if vhosts.len() <= index {
        vhosts.resize(index + 1, None);
    }
    vhosts[index] = Some(Arc::new(compiled));
    ConfigError::result(errors)
}

impl Proxy {
    /// The proxy settings of vhost `index`, if it has any (none before
    /// post_config, when no request runs).
    fn vhost(&self, index: usize) -> Option<&VhostProxy> {
        let frozen = self.frozen.get()?;
        frozen.vhosts.get(index)?.as_deref()
    }

    fn all_vhosts(&self) -> Vec<Arc<VhostProxy>> {
        let vhosts = self.vhosts.read().unwrap_or_else(PoisonError::into_inner);
        vhosts.iter().flatten().cloned().collect()
    }

    /// Fixes the configuration read so far and the providers found, for
    /// requests; the first call wins.
    fn freeze(&self, providers: Providers) {
        let vhosts = self.vhosts.read().unwrap_or_else(PoisonError::into_inner);
        let _ = self.frozen.set(Frozen {
            vhosts: vhosts.clone(),
            providers,
        });
    }

    /// The handler for `scheme` (`http`), found at post_config.
    fn scheme(&self, scheme: &str) -> Option<SchemeHandle> {
        self.frozen.get()?.providers.schemes.get(scheme).copied()
    }

    fn balancer(&self) -> Option<BalancerHandle> {
        self.frozen.get()?.providers.balancer
    }
}
