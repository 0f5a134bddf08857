//! What each manager request does: the page, the JSON state, a change
//! (token and origin checked, then persisted), and the metrics text.

use super::persist::{self, Pair, Saved};
use super::state::{BalancerView, Change};
use super::{access, http, page};
use crate::cluster::ChangeError;
use crate::ProxyBalancer;
use modproxy_api::sdk::host::{self, ServerFile};
use modproxy_api::sdk::members::{MemberSyncHandle, Settings, SourceKind};
use modproxy_api::sdk::provider;
use modproxy_api::sdk::purge::PurgeHandle;
use modproxy_api::{log, Headers, Level, Request, Status};
use serde::Serialize;

/// The JSON the API answers with (GET, and after each change).
#[derive(Serialize)]
struct StateDoc<'a> {
    /// The token a POST must carry; readable only by same-origin pages and
    /// by clients the allow list admits.
    token: &'a str,
    /// The lbmethods loaded now: what a balancer may switch to.
    lbmethods: Vec<String>,
    balancers: Vec<BalancerView>,
}

pub async fn serve(m: &'static ProxyBalancer, mut req: Request, what: String) -> Status {
    if !m.allowed(&req) {
        log(
            Level::Info,
            format_args!(
                "balancer-manager: refused {} with 403: the client is not in [vhost.balancer_manager] allow (default: loopback only)",
                req.client_addr()
            ),
        );
        let msg = "this client may not use the balancer manager: add its network to [vhost.balancer_manager] allow";
        return http::error(req, 403, msg).await;
    }
    let method = req.method().to_owned();
    match (what.as_str(), method.as_str()) {
        ("metrics", "GET" | "HEAD") => {
            let text = modproxy_api::metrics::render_all();
            http::reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text).await
        }
        ("page", "GET" | "HEAD") => {
            let html = page::render(&m.api_path(&req), m.manager.token());
            http::reply(req, 200, "text/html; charset=utf-8", html).await
        }
        ("api", "GET" | "HEAD") => {
            let json = m.state_json();
            http::reply(req, 200, "application/json", json).await
        }
        ("api", "POST") => match change(m, &mut req).await {
            Ok(Changed::State) => {
                let json = m.state_json();
                http::reply(req, 200, "application/json", json).await
            }
            Ok(Changed::Purged(n)) => {
                let json = serde_json::json!({ "purged": n }).to_string();
                http::reply(req, 200, "application/json", json).await
            }
            Err((status, msg)) => http::error(req, status, &msg).await,
        },
        _ => {
            let allow: &[u8] = if what == "api" {
                b"GET, HEAD, POST"
            } else {
                b"GET, HEAD"
            };
            req.set_header(Headers::Response, "allow", allow);
            http::error(req, 405, &format!("{method} is not allowed here")).await
        }
    }
}

/// What a POST did.
enum Changed {
    /// A balancer or member changed: the answer is the new state.
    State,
    /// The cache dropped this many URLs.
    Purged(u64),
}

/// A purge of the cache: `{"purge": "http://host/path"}`, or with a
/// trailing `*` every URL under it (module cache).
fn purge(body: &serde_json::Value) -> Option<Result<Changed, (u16, String)>> {
    let target = body.get("purge")?;
    let Some(url) = target.as_str() else {
        return Some(Err((
            400,
            "`purge` is a URL: \"http://host/path\", or \"http://host/prefix*\"".into(),
        )));
    };
    let Some(cache) = PurgeHandle::lookup() else {
        return Some(Err((
            404,
            "no cache to purge: run `modproxy enmod cache`".into(),
        )));
    };
    let (key, exact) = match url.strip_suffix('*') {
        Some(prefix) => (prefix, false),
        None => (url, true),
    };
    Some(Ok(Changed::Purged(cache.purge(key, exact))))
}

/// Checks a POST (origin, token), applies its change and saves the state.
async fn change(m: &ProxyBalancer, req: &mut Request) -> Result<Changed, (u16, String)> {
    let host_header = req.header_str(Headers::Request, "host").unwrap_or("");
    let origin = req.header_str(Headers::Request, "origin");
    let fetch_site = req.header_str(Headers::Request, "sec-fetch-site");
    if !access::same_origin(origin, fetch_site, req.scheme(), host_header) {
        log(Level::Warn, format_args!("balancer-manager: refused a change from {} with 403: it came from another site's page (Origin {:?})", req.client_addr(), origin.unwrap_or("")));
        return Err((
            403,
            "refused: the request came from another site's page".into(),
        ));
    }
    let token = req
        .header_str(Headers::Request, "x-modproxy-token")
        .unwrap_or("");
    if !access::token_matches(m.manager.token(), token) {
        log(Level::Warn, format_args!("balancer-manager: refused a change from {} with 403: missing or wrong X-Modproxy-Token", req.client_addr()));
        return Err((
            403,
            "refused: send the token from GET (field `token`) in an X-Modproxy-Token header".into(),
        ));
    }
    let body = http::read_body(req).await.map_err(|e| (400, e))?;
    if let Some(purged) = serde_json::from_slice(&body).ok().as_ref().and_then(purge) {
        log(
            Level::Info,
            format_args!(
                "balancer-manager: {} purged the cache: {}",
                req.client_addr(),
                String::from_utf8_lossy(&body).trim()
            ),
        );
        return purged;
    }
    let change: Change = serde_json::from_slice(&body).map_err(|e| {
        (400, format!("the body is not a change ({e}): send {{\"balancer\": NAME, \"member\": URL, \"set\": {{\"status\": \"+D\"}}}} or {{\"balancer\": NAME, \"lbmethod\": METHOD}}"))
    })?;
    let cluster = m.cluster(&change.balancer).ok_or_else(|| {
        (
            404,
            format!(
                "no balancer named `{}`: GET the API for the list",
                change.balancer
            ),
        )
    })?;
    let done = match (&change.member, &change.set, &change.lbmethod) {
        (Some(url), Some(set), None) => cluster.change_member(url, set),
        (None, None, Some(name)) => cluster.set_lbmethod(name),
        _ => Err(ChangeError::Invalid(
            "give either `member` with `set`, or `lbmethod`, not both".into(),
        )),
    };
    done.map_err(|e| (e.http_status(), e.to_string()))?;
    if let Some(url) = &change.member {
        share(&cluster, url);
    }
    log(
        Level::Info,
        format_args!(
            "balancer-manager: {} changed balancer://{}: {}",
            req.client_addr(),
            change.balancer,
            String::from_utf8_lossy(&body).trim()
        ),
    );
    m.save();
    Ok(Changed::State)
}

/// Hands a member change to the fleet (`manager_sync`, through
/// proxy_discovery), which applies it on every node.
fn share(cluster: &crate::cluster::Cluster, url: &str) {
    let synced = cluster
        .sources
        .iter()
        .any(|s| s.kind == SourceKind::ManagerSync);
    let (Some(sync), Some(now)) = (
        synced.then(MemberSyncHandle::lookup).flatten(),
        cluster.member_settings(url),
    ) else {
        return;
    };
    let settings = Settings {
        loadfactor: now.loadfactor,
        lbset: now.lbset,
        route: now.route,
        status: now.status,
    };
    sync.changed(&cluster.policy.name, url.trim_end_matches('/'), &settings);
}

impl ProxyBalancer {
    /// Every balancer, by name.
    fn views(&self) -> Vec<BalancerView> {
        let mut views: Vec<BalancerView> =
            self.clusters_sorted().iter().map(|c| c.view()).collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    pub fn state_json(&self) -> String {
        let doc = StateDoc {
            token: self.manager.token(),
            lbmethods: provider::names(modproxy_api::lb::GROUP),
            balancers: self.views(),
        };
        serde_json::to_string(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// `modproxy status`'s table.
    pub fn status_text(&self) -> String {
        super::state::status_table(&self.views())
    }

    fn state_path() -> Option<std::path::PathBuf> {
        host::server_file(ServerFile::Config).map(|c| persist::path_for(&c))
    }

    /// Writes every setting the manager changed, beside the config.
    fn save(&self) {
        let Some(path) = Self::state_path() else {
            return;
        };
        let mut saved = Saved::default();
        for c in self.clusters_sorted() {
            let mut entry = persist::SavedBalancer::default();
            let lbmethod = c.lbmethod();
            if lbmethod != c.policy.lbmethod {
                entry.lbmethod = Some(Pair {
                    configured: c.policy.lbmethod.clone(),
                    value: lbmethod,
                });
            }
            // Discovered members are the source's to keep (and
            // manager_sync's to share), not this file's.
            for (url, configured, now, from_config) in c.settings_by_url() {
                if from_config && configured != now {
                    entry.members.insert(
                        url.to_string(),
                        Pair {
                            configured: configured.clone(),
                            value: now,
                        },
                    );
                }
            }
            if entry != persist::SavedBalancer::default() {
                saved.balancers.insert(c.policy.name.clone(), entry);
            }
        }
        if let Err(e) = persist::write(&path, &saved) {
            log(Level::Error, e);
        }
    }

    /// Puts back what the manager changed before the restart, setting by
    /// setting, unless the config file changed that setting since.
    pub fn restore(&self) {
        let Some(path) = Self::state_path() else {
            return;
        };
        let saved = match persist::read(&path) {
            Ok(s) => s,
            Err(e) => return log(Level::Warn, e),
        };
        let file = path.display();
        for (name, entry) in &saved.balancers {
            let Some(c) = self.cluster(name) else {
                log(Level::Info, format_args!("{file}: balancer://{name} is no longer configured; its saved changes are dropped"));
                continue;
            };
            if let Some(lb) = &entry.lbmethod {
                let (use_it, note) = persist::merge_lbmethod(&c.policy.lbmethod, lb);
                if let Some(n) = note {
                    log(Level::Warn, format_args!("balancer://{name}: {n} ({file})"));
                } else if use_it != c.policy.lbmethod {
                    match c.set_lbmethod(&use_it) {
                        Ok(()) => log(
                            Level::Info,
                            format_args!(
                                "balancer://{name}: lbmethod {use_it} restored from {file}"
                            ),
                        ),
                        Err(e) => log(
                            Level::Warn,
                            format_args!("balancer://{name}: not restored from {file}: {e}"),
                        ),
                    }
                }
            }
            let members = c.settings_by_url();
            for (url, pair) in &entry.members {
                let Some(i) = members.iter().position(|m| m.0 == url) else {
                    log(Level::Info, format_args!("{file}: balancer://{name} has no member {url} any more; its saved changes are dropped"));
                    continue;
                };
                let configured = &members[i].1;
                let (merged, notes) = persist::merge(configured, pair);
                for n in notes {
                    log(
                        Level::Warn,
                        format_args!("balancer://{name} member {url}: {n} ({file})"),
                    );
                }
                match c.restore_member(i, &merged) {
                    Ok(()) if merged != *configured => log(
                        Level::Info,
                        format_args!(
                            "balancer://{name} member {url}: manager changes restored from {file}"
                        ),
                    ),
                    Ok(()) => {}
                    Err(e) => log(
                        Level::Warn,
                        format_args!(
                            "balancer://{name} member {url}: not restored from {file}: {e}"
                        ),
                    ),
                }
            }
        }
    }
}
