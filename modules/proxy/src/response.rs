//! response_headers: ProxyPassReverse on proxied responses, just before the
//! head goes out (the pure mapping is in `reverse.rs`).

use crate::notes::TARGET;
use crate::paths::join;
use crate::reverse::{map_url, rewrite_cookie};
use crate::vhost::VhostProxy;
use crate::Proxy;
use modproxy_api::{Headers, Request, Status};

/// Headers that carry a URL the client will follow.
const URL_HEADERS: [&str; 3] = ["Location", "Content-Location", "URI"];

/// Declined for requests this module did not proxy, or when the vhost has
/// nothing to rewrite; otherwise OK after rewriting.
pub fn reverse(m: &Proxy, req: &mut Request) -> Status {
    let Some(v) = m.vhost(req.vhost()) else {
        return Status::Declined;
    };
    let map_cookies = !v.cookie_domains.is_empty() || !v.cookie_paths.is_empty();
    // Checked before the note: most vhosts map nothing back, and then
    // whether this request was proxied does not matter.
    if v.reverse.is_empty() && !map_cookies {
        return Status::Declined;
    }
    if req.note(TARGET).is_none() {
        return Status::Declined;
    }
    if !v.reverse.is_empty() {
        map_urls(m, v, req);
    }
    if map_cookies {
        rewrite_cookies(v, req);
    }
    Status::Ok
}

/// The backend URL prefixes each pass_reverse entry maps from, with its public path.
fn prefixes(m: &Proxy, v: &VhostProxy) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in &v.reverse {
        match (&r.balancer, m.balancer()) {
            (Some((name, path)), Some(b)) => {
                out.extend(
                    b.member_urls(name)
                        .into_iter()
                        .map(|member| (join(&member, path), r.path.clone())),
                );
            }
            (Some(_), None) => {} // refused at post_config
            (None, _) => out.push((r.url.clone(), r.path.clone())),
        }
    }
    out
}

fn map_urls(m: &Proxy, v: &VhostProxy, req: &mut Request) {
    // Worked out once, and only for a response with a URL to map: most
    // have none, and then cost no allocation.
    let mut rules: Option<(Vec<(String, String)>, String)> = None;
    for name in URL_HEADERS {
        let Some(value) = req.header_str(Headers::Response, name) else {
            continue;
        };
        let (prefixes, base) =
            rules.get_or_insert_with(|| (self::prefixes(m, v), public_base(req)));
        let mapped = prefixes
            .iter()
            .find_map(|(url, path)| map_url(value, url, path, base));
        if let Some(new) = mapped {
            req.set_header(Headers::Response, name, new.as_bytes());
        }
    }
}

/// `scheme://host` as the client addressed this server (UseCanonicalName
/// Off: the Host it asked for, else our name).
fn public_base(req: &Request) -> String {
    let host = req
        .header_str(Headers::Request, "Host")
        .filter(|h| !h.is_empty())
        .unwrap_or(req.server_name());
    format!("{}://{host}", req.scheme())
}

/// Rewrites every `Set-Cookie`; when one changes, all are removed and added
/// back in their order.
fn rewrite_cookies(v: &VhostProxy, req: &mut Request) {
    let mut cookies: Vec<Vec<u8>> = Vec::new();
    req.for_each_header(Headers::Response, |name, value| {
        if name == "set-cookie" {
            cookies.push(value.to_vec());
        }
    });
    let mut changed = false;
    for cookie in &mut cookies {
        let Ok(text) = std::str::from_utf8(cookie) else {
            continue;
        };
        if let Some(new) = rewrite_cookie(text, &v.cookie_domains, &v.cookie_paths) {
            *cookie = new.into_bytes();
            changed = true;
        }
    }
    if changed {
        req.remove_header(Headers::Response, "Set-Cookie");
        for cookie in &cookies {
            req.add_header(Headers::Response, "Set-Cookie", cookie);
        }
    }
}
