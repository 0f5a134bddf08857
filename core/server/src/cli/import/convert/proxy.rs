//! mod_proxy's and mod_proxy_balancer's directives as `[vhost.proxy]`,
//! `[[vhost.proxy.balancer]]` and `[vhost.balancer_manager]` keys:
//! ProxyPass and its parameters, `<Location>` forms, `<Proxy balancer://>`
//! with BalancerMember and ProxySet, and the manager's Location.

use super::model::{Entry, Manager, Origin, Scope};
use super::values::{on_off, seconds, whole};
use super::{origin, Converter, Directive};
use toml::Value;

/// The `<Location>` a directive sits in.
#[derive(Clone)]
pub enum Loc {
    Path(String),
    Regex(String),
}

/// Schemes modproxy's modules proxy to (proxy_http, proxy_wstunnel, proxy_balancer).
const SCHEMES: &[&str] = &["http", "https", "ws", "wss", "balancer"];

/// Handles `d` if it is one of mod_proxy's; false if it is not.
pub fn directive(cv: &mut Converter, scope: &mut Scope, d: &Directive, loc: Option<&Loc>) -> bool {
    let o = origin(d);
    let one = d.args.first().cloned().unwrap_or_default();
    let key = match d.key.as_str() {
        "proxypreservehost" => "preserve_host",
        "proxyaddheaders" => "add_headers",
        "proxyerroroverride" => "error_override",
        "proxyrequests" => "forward",
        "proxyvia" => "via",
        "proxytimeout" => "timeout",
        "proxypass" | "proxypassmatch" => {
            pass(cv, scope, d, loc);
            return true;
        }
        "proxypassreverse" => {
            reverse(cv, scope, d, loc);
            return true;
        }
        "proxypassreversecookiedomain" | "proxypassreversecookiepath" => {
            cookie(cv, scope, d);
            return true;
        }
        "proxyset" => {
            proxy_set(cv, scope, d, None);
            return true;
        }
        "balancermember" => {
            member(cv, scope, d, None);
            return true;
        }
        "proxy" | "proxymatch" if d.block.is_some() => {
            section(cv, scope, d);
            return true;
        }
        "location" | "locationmatch" if d.block.is_some() && loc.is_none() => {
            location(cv, scope, d);
            return true;
        }
        _ => return false,
    };
    if loc.is_some() {
        cv.skip(
            d,
            "modproxy sets this for the whole vhost, not per path: move it out of <Location>",
        );
        return true;
    }
    let value = match key {
        "via" => match one.to_ascii_lowercase().as_str() {
            v @ ("on" | "off" | "full" | "block") => Ok(Value::String(v.into())),
            _ => Err("ProxyVia is On, Off, Full or Block".to_string()),
        },
        "timeout" => seconds(&one).map(|n| Value::Integer(n as i64)),
        _ => on_off(&one).map(Value::Boolean),
    };
    match value {
        Ok(v) => {
            if key == "error_override" {
                for code in &d.args[1..] {
                    cv.skip_part(
                        d,
                        code,
                        "modproxy overrides every 4xx and 5xx status, not a chosen few",
                    );
                }
            }
            scope.proxy.set(key, &o, v);
            cv.done(d);
        }
        Err(why) => cv.skip(d, &why),
    }
    true
}

fn balancer_name(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("balancer://")?;
    Some(rest.split('/').next().unwrap_or(rest))
}

fn scheme(url: &str) -> &str {
    url.split_once("://").map_or("", |(s, _)| s)
}

/// ProxyPass and ProxyPassMatch, also as written inside `<Location>`.
fn pass(cv: &mut Converter, scope: &mut Scope, d: &Directive, loc: Option<&Loc>) {
    let regex = d.key == "proxypassmatch" || matches!(loc, Some(Loc::Regex(_)));
    let (matcher, rest) = match loc {
        Some(Loc::Path(p) | Loc::Regex(p)) => (p.clone(), &d.args[..]),
        None if d.args.len() >= 2 => (d.args[0].clone(), &d.args[1..]),
        None => return cv.skip(d, "ProxyPass needs a path and a URL (or !)"),
    };
    let Some(url) = rest.first() else {
        return cv.skip(d, "ProxyPass inside <Location> needs a URL (or !)");
    };
    let mut entry = Entry::new(origin(d));
    entry.set(if regex { "regex" } else { "path" }, Value::String(matcher));
    entry.set("url", Value::String(url.clone()));
    if url != "!" {
        if url.starts_with("unix:") {
            return cv.skip(
                d,
                "modproxy connects to backends over TCP only, not Unix sockets",
            );
        }
        let s = scheme(url).to_ascii_lowercase();
        if !SCHEMES.contains(&s.as_str()) {
            return cv.skip(d, &format!("modproxy proxies http, https, ws and wss (and balancer://); it has no mod_proxy_{s}"));
        }
        for param in &rest[1..] {
            let Some((k, v)) = param.split_once('=') else {
                cv.skip_part(d, param, "modproxy has no ProxyPass flags (nocanon, interpolate, noquery): it forwards the normalised path with its query");
                continue;
            };
            let k = k.to_ascii_lowercase();
            match balancer_name(url) {
                Some(name) => match balancer_param(&k, v) {
                    Ok((key, value)) => {
                        scope
                            .balancer(name, &origin(d))
                            .settings
                            .set(key, &origin(d), value)
                    }
                    Err(why) => cv.skip_part(d, param, &why),
                },
                None => match worker_param(&k, v, false) {
                    Ok((key, value)) => entry.set(key, value),
                    Err(why) => cv.skip_part(d, param, &why),
                },
            }
        }
    }
    let list = match (regex, loc.is_some()) {
        (false, false) => &mut scope.pass,
        (false, true) => &mut scope.location_pass,
        (true, false) => &mut scope.pass_match,
        (true, true) => &mut scope.location_match,
    };
    list.push(entry);
    cv.done(d);
}

fn reverse(cv: &mut Converter, scope: &mut Scope, d: &Directive, loc: Option<&Loc>) {
    let (path, url) = match (loc, d.args.as_slice()) {
        (Some(Loc::Regex(_)), _) => return cv.skip(d, "ProxyPassReverse in <LocationMatch> has no path to map back to: write ProxyPassReverse PATH URL outside it"),
        (Some(Loc::Path(p)), [url, ..]) => (p.clone(), url.clone()),
        (None, [path, url, ..]) => (path.clone(), url.clone()),
        _ => return cv.skip(d, "ProxyPassReverse needs a path and a URL"),
    };
    let extra = if loc.is_some() { 1 } else { 2 };
    for flag in &d.args[extra..] {
        cv.skip_part(d, flag, "modproxy maps headers back without interpolation");
    }
    let mut e = Entry::new(origin(d));
    e.set("path", Value::String(path));
    e.set("url", Value::String(url));
    scope.pass_reverse.push(e);
    cv.done(d);
}

fn cookie(cv: &mut Converter, scope: &mut Scope, d: &Directive) {
    let [internal, public, rest @ ..] = d.args.as_slice() else {
        return cv.skip(d, "needs the backend's value and the public one");
    };
    for flag in rest {
        cv.skip_part(d, flag, "modproxy maps cookies back without interpolation");
    }
    let mut e = Entry::new(origin(d));
    e.set("internal", Value::String(internal.clone()));
    e.set("public", Value::String(public.clone()));
    if d.key.ends_with("domain") {
        scope.cookie_domain.push(e);
    } else {
        scope.cookie_path.push(e);
    }
    cv.done(d);
}

/// `<Proxy balancer://NAME>`: its members and ProxySet lines.
fn section(cv: &mut Converter, scope: &mut Scope, d: &Directive) {
    let target = d.args.first().cloned().unwrap_or_default();
    let Some(name) = balancer_name(&target).filter(|_| d.key == "proxy") else {
        return cv.skip(d, "modproxy has no per-target settings besides balancers: <Proxy balancer://…> is what it reads (access to proxied targets is open, as httpd's default)");
    };
    let name = name.to_string();
    scope.balancer(&name, &origin(d)).origin = origin(d);
    cv.done(d);
    for inner in d.block.as_deref().unwrap_or_default() {
        match inner.key.as_str() {
            "balancermember" => member(cv, scope, inner, Some(&name)),
            "proxyset" => proxy_set(cv, scope, inner, Some(&name)),
            _ => cv.unsupported(inner),
        }
    }
}

fn proxy_set(cv: &mut Converter, scope: &mut Scope, d: &Directive, within: Option<&str>) {
    let (name, params) = match within {
        Some(n) => (n.to_string(), &d.args[..]),
        None => match d.args.first().and_then(|u| balancer_name(u)) {
            Some(n) => (n.to_string(), &d.args[1..]),
            None => return cv.skip(
                d,
                "ProxySet for a single worker: put its parameters on the ProxyPass line instead",
            ),
        },
    };
    for param in params {
        let result = param
            .split_once('=')
            .ok_or_else(|| "ProxySet takes key=value".to_string())
            .and_then(|(k, v)| balancer_param(&k.to_ascii_lowercase(), v));
        match result {
            Ok((key, value)) => {
                scope
                    .balancer(&name, &origin(d))
                    .settings
                    .set(key, &origin(d), value)
            }
            Err(why) => cv.skip_part(d, param, &why),
        }
    }
    cv.done(d);
}

fn member(cv: &mut Converter, scope: &mut Scope, d: &Directive, within: Option<&str>) {
    let (name, url, params) = match (within, d.args.as_slice()) {
        (Some(n), [url, params @ ..]) => (n.to_string(), url.clone(), params),
        (None, [b, url, params @ ..]) if balancer_name(b).is_some() => (
            balancer_name(b).unwrap_or_default().to_string(),
            url.clone(),
            params,
        ),
        _ => return cv.skip(
            d,
            "BalancerMember needs a URL (and, outside <Proxy balancer://…>, the balancer first)",
        ),
    };
    let s = scheme(&url).to_ascii_lowercase();
    if !SCHEMES[..4].contains(&s.as_str()) {
        return cv.skip(
            d,
            &format!("modproxy's members are http, https, ws or wss; it has no mod_proxy_{s}"),
        );
    }
    let mut e = Entry::new(origin(d));
    e.set("url", Value::String(url));
    for param in params {
        let result = param
            .split_once('=')
            .ok_or_else(|| "BalancerMember takes key=value parameters".to_string())
            .and_then(|(k, v)| worker_param(&k.to_ascii_lowercase(), v, true));
        match result {
            Ok((key, value)) => e.set(key, value),
            Err(why) => cv.skip_part(d, param, &why),
        }
    }
    scope.balancer(&name, &origin(d)).members.push(e);
    cv.done(d);
}

/// A worker parameter of ProxyPass (`member` false) or BalancerMember.
fn worker_param(k: &str, v: &str, member: bool) -> Result<(&'static str, Value), String> {
    let secs = |key: &'static str| seconds(v).map(|n| (key, Value::Integer(n as i64)));
    match k {
        "timeout" => secs("timeout"),
        "connectiontimeout" => secs("connection_timeout"),
        "retry" => secs("retry"),
        "ttl" => secs("ttl"),
        "max" => whole(v).map(|n| ("max", Value::Integer(n as i64))),
        "keepalive" => on_off(v).map(|b| ("keepalive", Value::Boolean(b))),
        "disablereuse" => on_off(v).map(|b| ("disable_reuse", Value::Boolean(b))),
        "enablereuse" => on_off(v).map(|b| ("disable_reuse", Value::Boolean(!b))),
        "upgrade" if !member => {
            if v.eq_ignore_ascii_case("websocket") {
                Ok(("upgrade", Value::String("websocket".into())))
            } else {
                Err("modproxy tunnels WebSocket upgrades only (upgrade=websocket)".into())
            }
        }
        "loadfactor" | "lbset" | "route" | "redirect" | "status" if !member => Err(format!(
            "{k} is a balancer member's: on a single ProxyPass worker modproxy has no {k} (put the backend in a <Proxy balancer://…>)"
        )),
        "loadfactor" => match whole(v) {
            Ok(n) if (1..=100).contains(&n) => Ok(("loadfactor", Value::Integer(n as i64))),
            _ => Err("loadfactor is a weight from 1 to 100".into()),
        },
        "lbset" => whole(v).map(|n| ("lbset", Value::Integer(n as i64))),
        "route" => Ok(("route", Value::String(v.into()))),
        "redirect" => Ok(("redirect", Value::String(v.into()))),
        "status" => status(v).map(|s| ("status", Value::String(s))),
        k if k.starts_with("hc") => Err("health checks (mod_proxy_hcheck) are not in modproxy yet".into()),
        "min" | "smax" | "acquire" | "iobuffersize" | "receivebuffersize" | "flushpackets"
        | "flushwait" | "ping" | "responsefieldsize" | "secret" | "mapping" | "addressttl"
        | "upgrade" => Err(format!("modproxy has no worker parameter {k}")),
        _ => Err(format!("{k} is not a worker parameter (httpd refuses it too)")),
    }
}

/// Apache's member status: modproxy's letters D S I H R N E, each `+`.
fn status(v: &str) -> Result<String, String> {
    let mut out = String::new();
    for c in v.chars() {
        match c.to_ascii_uppercase() {
            '+' => {}
            '-' => {
                return Err(
                    "a status starts clear in a config file: list only the flags to set".into(),
                )
            }
            c @ ('D' | 'S' | 'I' | 'H' | 'R' | 'N' | 'E') => {
                out.push('+');
                out.push(c);
            }
            c => {
                return Err(format!(
                    "modproxy has no member status {c} (it has D, S, I, H, R, N and E)"
                ))
            }
        }
    }
    Ok(out)
}

/// A balancer parameter (ProxySet, or ProxyPass to balancer://).
fn balancer_param(k: &str, v: &str) -> Result<(&'static str, Value), String> {
    match k {
        "lbmethod" => match v.to_ascii_lowercase().as_str() {
            m @ ("byrequests" | "bybusyness" | "bytraffic") => {
                Ok(("lbmethod", Value::String(m.into())))
            }
            m => Err(format!(
                "modproxy has no lbmethod {m} (it has byrequests, bybusyness, bytraffic and ewma)"
            )),
        },
        "maxattempts" => whole(v).map(|n| ("maxattempts", Value::Integer(n as i64))),
        "nofailover" => on_off(v).map(|b| ("nofailover", Value::Boolean(b))),
        "stickysession" => Ok(("sticky_session", Value::String(v.into()))),
        "failontimeout" => on_off(v).map(|b| ("failontimeout", Value::Boolean(b))),
        "forcerecovery" => on_off(v).map(|b| ("forcerecovery", Value::Boolean(b))),
        "timeout" => seconds(v).map(|n| ("timeout", Value::Integer(n as i64))),
        "failonstatus" => v
            .split(',')
            .map(|s| whole(s.trim()).map(|n| Value::Integer(n as i64)))
            .collect::<Result<Vec<_>, _>>()
            .map(|codes| ("failonstatus", Value::Array(codes))),
        "stickysessionsep" | "scolonpathdelim" | "growth" | "nonce" => {
            Err(format!("modproxy has no balancer parameter {k}"))
        }
        _ => Err(format!(
            "{k} is not a balancer parameter (httpd refuses it too)"
        )),
    }
}

/// `<Location>` / `<LocationMatch>`: ProxyPass and ProxyPassReverse for
/// its path, and the balancer manager.
fn location(cv: &mut Converter, scope: &mut Scope, d: &Directive) {
    let loc = match (d.key.as_str(), d.args.as_slice()) {
        ("locationmatch", [re]) => Loc::Regex(re.clone()),
        ("location", [tilde, re]) if tilde == "~" => Loc::Regex(re.clone()),
        ("location", [p]) if !p.contains(['*', '?', '[']) => Loc::Path(p.clone()),
        _ => {
            return cv.skip(
                d,
                "modproxy reads <Location PATH> and <LocationMatch REGEX> (no wildcards)",
            )
        }
    };
    let inner = d.block.as_deref().unwrap_or_default();
    let manager = inner.iter().find(|i| {
        i.key == "sethandler"
            && i.args
                .first()
                .is_some_and(|h| h.eq_ignore_ascii_case("balancer-manager"))
    });
    let mut allow: Vec<String> = Vec::new();
    let mut allow_origin: Option<Origin> = None;
    cv.done(d);
    for i in inner {
        match i.key.as_str() {
            "sethandler" if manager.is_some() => match &loc {
                Loc::Path(_) => cv.done(i),
                Loc::Regex(_) => cv.skip(
                    i,
                    "the balancer manager answers at one path: use <Location /balancer-manager>",
                ),
            },
            "require" if manager.is_some() => match require(&i.args) {
                Ok(nets) => {
                    allow.extend(nets);
                    allow_origin.get_or_insert_with(|| origin(i));
                    cv.done(i);
                }
                Err(why) => cv.skip(i, &why),
            },
            _ => {
                if !directive(cv, scope, i, Some(&loc)) {
                    cv.unsupported(i);
                }
            }
        }
    }
    if let (Some(_), Loc::Path(path)) = (manager, &loc) {
        let loopback_only = allow.iter().all(|n| n == "127.0.0.0/8" || n == "::1");
        scope.manager = Some(Manager {
            origin: origin(d),
            path: path.clone(),
            allow: allow_origin
                .filter(|_| !loopback_only)
                .map(|o| super::model::Item {
                    origin: o,
                    value: Value::Array(allow.into_iter().map(Value::String).collect()),
                }),
        });
    }
}

/// `Require local`, `Require ip …`, `Require all granted` as allow networks.
fn require(args: &[String]) -> Result<Vec<String>, String> {
    let kind = args
        .first()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    match kind.as_str() {
        "local" => Ok(vec!["127.0.0.0/8".into(), "::1".into()]),
        "all" if args.get(1).is_some_and(|a| a.eq_ignore_ascii_case("granted")) => {
            Ok(vec!["0.0.0.0/0".into(), "::/0".into()])
        }
        "ip" => args[1..].iter().map(|a| network(a)).collect(),
        _ => Err("the balancer manager's allow takes addresses and networks: modproxy converts Require local, Require ip and Require all granted".into()),
    }
}

/// Apache's `10.1`, `10.0.0.0/255.0.0.0`, `10.0.0.0/8`, `::1` as a network.
fn network(a: &str) -> Result<String, String> {
    let bad = || format!("{a} is not an IP address or network");
    if a.contains(':') {
        return Ok(a.to_string());
    }
    let (addr, mask) = match a.split_once('/') {
        Some((addr, mask)) => (addr, Some(mask)),
        None => (a, None),
    };
    let parts: Vec<&str> = addr.trim_end_matches('.').split('.').collect();
    if parts.len() > 4 || parts.iter().any(|p| p.parse::<u8>().is_err()) {
        return Err(bad());
    }
    let mut full = parts.clone();
    full.resize(4, "0");
    let prefix = match mask {
        Some(m) if m.contains('.') => {
            let ip: std::net::Ipv4Addr = m.parse().map_err(|_| bad())?;
            u32::from(ip).count_ones()
        }
        Some(m) => m.parse().map_err(|_| bad())?,
        None => 8 * parts.len() as u32,
    };
    Ok(if prefix == 32 {
        full.join(".")
    } else {
        format!("{}/{prefix}", full.join("."))
    })
}

/// Names of the balancers `s`'s rules send to.
pub fn balancers_used(s: &Scope) -> Vec<String> {
    [
        &s.pass,
        &s.location_pass,
        &s.pass_match,
        &s.location_match,
        &s.pass_reverse,
    ]
    .iter()
    .flat_map(|l| l.iter())
    .filter_map(|e| balancer_name(e.url()).map(str::to_string))
    .collect()
}

/// Per vhost, once inheritance is done: SSLProxy* settings onto every
/// https:// and wss:// worker.
pub fn finish(scope: &mut Scope) {
    let tls = scope.backend_tls.clone();
    let secure = |url: &str| url.starts_with("https://") || url.starts_with("wss://");
    let entries = scope
        .pass
        .iter_mut()
        .chain(scope.location_pass.iter_mut())
        .chain(scope.pass_match.iter_mut())
        .chain(scope.location_match.iter_mut())
        .chain(
            scope
                .balancers
                .iter_mut()
                .flat_map(|b| b.members.iter_mut()),
        );
    for e in entries {
        if secure(e.url()) {
            for (k, item) in &tls.0 {
                e.set(k, item.value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_map_to_modproxy_keys_or_say_why_not() {
        assert_eq!(
            worker_param("connectiontimeout", "2", false).unwrap().0,
            "connection_timeout"
        );
        assert_eq!(
            worker_param("enablereuse", "off", false).unwrap(),
            ("disable_reuse", Value::Boolean(true))
        );
        assert!(worker_param("route", "a", false)
            .unwrap_err()
            .contains("balancer member"));
        assert_eq!(worker_param("route", "a", true).unwrap().0, "route");
        assert!(worker_param("hcmethod", "GET", true)
            .unwrap_err()
            .contains("health checks"));
        assert_eq!(
            status("+H-").unwrap_err(),
            "a status starts clear in a config file: list only the flags to set"
        );
        assert_eq!(status("DH").unwrap(), "+D+H");
        assert!(status("+C").is_err());
        assert_eq!(
            balancer_param("failonstatus", "500,503").unwrap().1,
            Value::Array(vec![Value::Integer(500), Value::Integer(503)])
        );
        assert!(balancer_param("lbmethod", "heartbeat").is_err());
    }

    #[test]
    fn require_becomes_allow() {
        assert_eq!(network("10.1").unwrap(), "10.1.0.0/16");
        assert_eq!(network("10.0.0.0/255.0.0.0").unwrap(), "10.0.0.0/8");
        assert_eq!(network("192.0.2.7").unwrap(), "192.0.2.7");
        assert!(network("example.com").is_err());
        assert!(require(&["host".into(), "example.com".into()]).is_err());
    }
}
