//! The balancer manager (Apache's `SetHandler balancer-manager`), mapped
//! per virtual host by `[vhost.balancer_manager]`: an HTML page, a JSON API
//! with the same data and changes, and the server's Prometheus metrics.
//! Off unless configured; only loopback clients unless `allow` says more.
//!
//! It lives here, beside the balancers it shows, rather than in the proxy
//! module: only this module can see or change member tables, and keeping
//! it out of `cluster.rs` keeps admin code apart from the request path.
//! Its translate_name runs REALLY_FIRST, before proxy's (FIRST), so a
//! `pass "/"` never swallows the manager's path.

pub mod access;
mod api;
mod http;
pub mod page;
pub mod persist;
pub mod state;

use crate::ProxyBalancer;
use access::Net;
use modproxy_api::{ConfigError, HandlerFuture, Request, Section, Status};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

/// The note translate_name leaves for the handler: what was asked for.
const NOTE: &str = "balancer-manager";

/// `[vhost.balancer_manager]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    /// Where the page is, e.g. "/balancer-manager"; its JSON API is PATH/api.
    pub path: Option<String>,
    /// Where the Prometheus text is, e.g. "/metrics".
    pub metrics: Option<String>,
    /// Clients allowed, as addresses or networks; default loopback only.
    pub allow: Option<Vec<String>>,
}

/// One virtual host's manager, checked.
#[derive(Debug)]
struct Site {
    path: Option<String>,
    metrics: Option<String>,
    allow: Vec<Net>,
}

/// Every virtual host's manager, and the CSRF token of this server process.
#[derive(Default)]
pub struct Manager {
    /// Filled while sections are read...
    building: RwLock<HashMap<usize, Site>>,
    /// ...then frozen after configuration, so the per-request lookup in
    /// translate_name takes no lock.
    sites: OnceLock<HashMap<usize, Site>>,
    token: OnceLock<String>,
}

fn check_path(at: &str, key: &str, p: &str) -> Result<String, String> {
    let p = p.trim_end_matches('/');
    if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
        return Err(format!(
            "{at}.{key}: `{p}` is not a URL path: write it as \"/balancer-manager\""
        ));
    }
    Ok(p.to_owned())
}

impl Manager {
    /// Reads one `[vhost.balancer_manager]` section.
    pub fn configure(&self, section: Section<ManagerConfig>) -> Result<(), ConfigError> {
        let at = format!("{}: {}", section.file, section.key);
        let Some(vhost) = section.vhost else {
            return Err(format!("{at}: balancer_manager belongs inside a [[vhost]]").into());
        };
        let c = section.value;
        let path = c.path.map(|p| check_path(&at, "path", &p)).transpose()?;
        let metrics = c
            .metrics
            .map(|p| check_path(&at, "metrics", &p))
            .transpose()?;
        if path.is_none() && metrics.is_none() {
            return Err(format!("{at}: maps nothing: set path = \"/balancer-manager\" and/or metrics = \"/metrics\"").into());
        }
        let allow = match c.allow {
            None => access::loopback(),
            Some(list) => list
                .iter()
                .map(|s| Net::parse(s).map_err(|e| format!("{at}.allow: {e}")))
                .collect::<Result<_, _>>()?,
        };
        if self.token.get().is_none() {
            let _ = self.token.set(access::new_token()?);
        }
        let site = Site {
            path,
            metrics,
            allow,
        };
        self.building
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(vhost, site);
        Ok(())
    }

    /// Freezes the sites (post_config): no section arrives after it.
    pub fn freeze(&self) {
        let built = std::mem::take(
            &mut *self
                .building
                .write()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let _ = self.sites.set(built);
    }

    fn site(&self, vhost: usize) -> Option<&Site> {
        self.sites.get()?.get(&vhost)
    }

    fn token(&self) -> &str {
        self.token.get().map_or("", String::as_str)
    }
}

/// translate_name (REALLY_FIRST): claims the manager's paths before any `pass` rule.
pub fn translate(m: &ProxyBalancer, req: &mut Request) -> Status {
    let what = {
        let Some(site) = m.manager.site(req.vhost()) else {
            return Status::Declined;
        };
        let path = req.path().trim_end_matches('/');
        if site.metrics.as_deref() == Some(path) {
            "metrics"
        } else if site.path.as_deref() == Some(path) {
            if req.query() == "json" {
                "api"
            } else {
                "page"
            }
        } else if site
            .path
            .as_deref()
            .is_some_and(|p| path.strip_prefix(p) == Some("/api"))
        {
            "api"
        } else {
            return Status::Declined;
        }
    };
    req.set_note(NOTE, what);
    Status::Ok
}

/// handler (REALLY_FIRST): serves what translate_name claimed.
pub fn handler(m: &'static ProxyBalancer, req: Request) -> Option<HandlerFuture> {
    // Most servers map no manager: skip even the note lookup.
    if m.manager.sites.get().is_none_or(HashMap::is_empty) {
        return None;
    }
    let what = req.note(NOTE)?.to_owned();
    Some(Box::pin(api::serve(m, req, what)))
}

impl ProxyBalancer {
    /// The allow list of the request's virtual host (empty: none mapped).
    fn allowed(&self, req: &Request) -> bool {
        self.manager
            .site(req.vhost())
            .is_some_and(|s| access::allowed(&s.allow, req.client_addr()))
    }

    /// Where the page's JSON API is for this virtual host.
    fn api_path(&self, req: &Request) -> String {
        let base = self
            .manager
            .site(req.vhost())
            .and_then(|s| s.path.clone())
            .unwrap_or_default();
        format!("{base}/api")
    }
}
