//! ProxyPassReverse and its cookie cousins as pure string functions: map a
//! backend URL in `Location` back to the proxy's own, and rewrite the
//! `domain=` and `path=` attributes of `Set-Cookie`.

use crate::paths::{join, split_origin};

/// The rest of `value` after the backend `url`, if `value` starts with it.
/// Scheme and host compare case-insensitively, the path exactly; the match
/// must end at a path boundary (`http://b:80` does not match `http://b:8080`).
/// An HTTP/2 backend (`h2c://b`, `h2://b`) writes its own URLs as
/// `http://b` and `https://b`: those are what match it.
fn strip_url<'v>(value: &'v str, url: &str) -> Option<&'v str> {
    let (origin, path) = split_origin(url)?;
    let (scheme, authority) = http_spelling(origin);
    let n = scheme.len() + authority.len();
    let head = value.get(..n)?;
    let rest = value.get(n..)?.strip_prefix(path)?;
    let boundary = url.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#']);
    // As bytes: the scheme's end need not fall on a character boundary
    // of `value` (found by the fuzz harness).
    let (head_scheme, head_authority) = head.as_bytes().split_at(scheme.len());
    let same = head_scheme.eq_ignore_ascii_case(scheme.as_bytes())
        && head_authority.eq_ignore_ascii_case(authority.as_bytes());
    (same && boundary).then_some(rest)
}

/// `origin` split as (scheme with `://`, authority), the HTTP/2 schemes
/// spelled as the backend spells its URLs: `h2c://b:1` → (`http://`, `b:1`).
fn http_spelling(origin: &str) -> (&str, &str) {
    let starts = |p: &str| {
        origin
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    if starts("h2c://") {
        ("http://", &origin[6..])
    } else if starts("h2://") {
        ("https://", &origin[5..])
    } else {
        origin.split_at(origin.find("://").map_or(0, |i| i + 3))
    }
}

/// Maps `value` (a `Location`, `Content-Location` or `URI`) from the
/// backend `url` back to `base` + `path`, where `base` is the proxy's own
/// `scheme://host[:port]` as the client addressed it.
///
/// `path = "/app"`, `url = "http://127.0.0.1:8080/"`, `base = "http://example.com"`:
/// `http://127.0.0.1:8080/x?y` becomes `http://example.com/app/x?y`.
pub fn map_url(value: &str, url: &str, path: &str, base: &str) -> Option<String> {
    let rest = strip_url(value, url)?;
    let local = if rest.starts_with(['?', '#']) {
        format!("{path}{rest}")
    } else {
        join(path, rest)
    };
    Some(format!("{base}{local}"))
}

/// `value` with its cookie attributes rewritten, or `None` if nothing changed.
/// `domains` map exactly (case-insensitive, ignoring a leading dot);
/// `paths` map a prefix ending at a segment boundary. The cookie's own
/// `name=value` is never touched, even when named `path`.
pub fn rewrite_cookie(
    value: &str,
    domains: &[(String, String)],
    paths: &[(String, String)],
) -> Option<String> {
    let mut changed = false;
    let parts: Vec<String> = value
        .split(';')
        .enumerate()
        .map(|(i, part)| {
            let new = (i > 0)
                .then(|| rewrite_attribute(part, domains, paths))
                .flatten();
            changed |= new.is_some();
            new.unwrap_or_else(|| part.to_string())
        })
        .collect();
    changed.then(|| parts.join(";"))
}

fn rewrite_attribute(
    part: &str,
    domains: &[(String, String)],
    paths: &[(String, String)],
) -> Option<String> {
    let (name, val) = part.split_once('=')?;
    let new = match name.trim().to_ascii_lowercase().as_str() {
        "domain" => map_domain(val.trim(), domains)?,
        "path" => map_path(val.trim(), paths)?,
        _ => return None,
    };
    Some(format!("{name}={new}"))
}

fn map_domain(val: &str, domains: &[(String, String)]) -> Option<String> {
    let bare = val.strip_prefix('.').unwrap_or(val);
    let (_, public) = domains.iter().find(|(internal, _)| {
        internal
            .strip_prefix('.')
            .unwrap_or(internal)
            .eq_ignore_ascii_case(bare)
    })?;
    Some(public.clone())
}

fn map_path(val: &str, paths: &[(String, String)]) -> Option<String> {
    paths.iter().find_map(|(internal, public)| {
        // `/app` is the directory `/app/` names, so map it too.
        if internal.ends_with('/') && val == internal.trim_end_matches('/') {
            return Some(public.clone());
        }
        let rest = val.strip_prefix(internal.as_str())?;
        let boundary = internal.ends_with('/') || rest.is_empty() || rest.starts_with('/');
        boundary.then(|| {
            if rest.is_empty() {
                public.clone()
            } else {
                join(public, rest)
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn location_maps_back_to_the_client_facing_base() {
        let url = "http://127.0.0.1:8080/";
        let base = "http://127.0.0.1:8000";
        assert_eq!(
            map_url("http://127.0.0.1:8080/x", url, "/", base).as_deref(),
            Some("http://127.0.0.1:8000/x")
        );
        assert_eq!(
            map_url("HTTP://127.0.0.1:8080/", url, "/", base).as_deref(),
            Some("http://127.0.0.1:8000/")
        );
        // Without a port on either side.
        let m = map_url(
            "http://backend/a/b?c",
            "http://backend/a/",
            "/pub/",
            "https://example.com",
        );
        assert_eq!(m.as_deref(), Some("https://example.com/pub/b?c"));
        assert_eq!(map_url("http://other:8080/x", url, "/", base), None);
        assert_eq!(map_url("/relative", url, "/", base), None);
        // Multi-byte text where the scheme would end (a fuzz finding).
        assert_eq!(
            map_url("http:\u{fffd}/bacend8080", "http://b:1/", "/", base),
            None
        );
        assert_eq!(map_url("ht\u{e9}://b:1/", "h2c://b:1/", "/", base), None);
    }

    #[test]
    fn an_http2_backend_is_matched_by_the_urls_it_writes() {
        let base = "https://example.com";
        assert_eq!(
            map_url("http://b:8080/x", "h2c://b:8080/", "/app/", base).as_deref(),
            Some("https://example.com/app/x")
        );
        assert_eq!(
            map_url("HTTPS://B/x", "h2://b/", "/", base).as_deref(),
            Some("https://example.com/x")
        );
        assert_eq!(
            map_url("https://b:8080/x", "h2c://b:8080/", "/", base),
            None
        );
        assert_eq!(map_url("h2c://b:8080/x", "h2c://b:8080/", "/", base), None);
    }

    #[test]
    fn location_match_stops_at_a_boundary() {
        assert_eq!(
            map_url("http://b:80801/x", "http://b:8080", "/", "http://p"),
            None
        );
        assert_eq!(
            map_url("http://b:8080/appx", "http://b:8080/app", "/", "http://p"),
            None
        );
        assert_eq!(
            map_url("http://b:8080/app/x", "http://b:8080/app", "/a", "http://p").as_deref(),
            Some("http://p/a/x")
        );
        assert_eq!(
            map_url("http://b:8080/app?q", "http://b:8080/app", "/a", "http://p").as_deref(),
            Some("http://p/a?q")
        );
    }

    #[test]
    fn balancer_members_map_with_the_balancer_path() {
        // pass_reverse { path = "/", url = "balancer://c/app/" } with members m1, m2.
        let members = ["http://10.0.0.1:8080", "http://10.0.0.2:8080/"];
        let value = "http://10.0.0.2:8080/app/login";
        let mapped = members
            .iter()
            .find_map(|m| map_url(value, &join(m, "/app/"), "/", "http://site"));
        assert_eq!(mapped.as_deref(), Some("http://site/login"));
    }

    #[test]
    fn cookie_domain_and_path_rewrite() {
        let d = pairs(&[("backend.local", "example.com")]);
        let p = pairs(&[("/app/", "/")]);
        let v = "sid=1; Domain=.Backend.Local; Path=/app/x; HttpOnly";
        assert_eq!(
            rewrite_cookie(v, &d, &p).as_deref(),
            Some("sid=1; Domain=example.com; Path=/x; HttpOnly")
        );
        assert_eq!(
            rewrite_cookie("a=b; path=/app", &d, &p).as_deref(),
            Some("a=b; path=/")
        );
        assert_eq!(rewrite_cookie("a=b; path=/application", &d, &p), None);
        assert_eq!(
            rewrite_cookie("path=/app/; secure", &d, &p),
            None,
            "the cookie's own name=value stays"
        );
        assert_eq!(rewrite_cookie("a=b; domain=other.local", &d, &p), None);
    }
}
