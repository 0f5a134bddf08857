//! Checks a `[vhost.proxy]` section and compiles it into a [`VhostProxy`].
//! Every problem is reported, each starting with its key path and ending
//! with what to do.

use crate::config::{CookieEntry, ProxyConfig, Unknown, Via, WorkerKeys, WORKER_KEYS};
use crate::paths::{match_prefix, split_origin};
use crate::vhost::{Backend, Matcher, Reverse, Rule, VhostProxy};
use crate::worker::Workers;
use modproxy_api::proxy::{exchange_flags, worker_flags, StaticText, WorkerParams};
use modproxy_api::suggest::did_you_mean;
use modproxy_http1::path::{normalize, EncodedSlashes};
use regex::bytes::RegexBuilder;
use std::time::Duration;

const DEFAULT_TIMEOUT_S: u64 = 60;
const DEFAULT_RETRY_S: u64 = 60;

/// What compiling one section needs, and the problems found so far.
struct Compiler<'a> {
    /// `file: vhost[N].proxy`.
    at: &'a str,
    defaults: WorkerParams,
    workers: &'a Workers,
    errors: Vec<String>,
}

/// Compiles `c`; `at` is `file: vhost[N].proxy`. Rule states come from
/// `workers`, so rules naming the same backend share one. Returns what
/// compiled and every problem; with problems the server does not start,
/// but post_config still checks the rules' schemes and balancers, so their
/// problems are reported in the same pass.
pub fn compile(c: ProxyConfig, at: &str, workers: &Workers) -> (VhostProxy, Vec<String>) {
    let timeout_ms = c.timeout.unwrap_or(DEFAULT_TIMEOUT_S).saturating_mul(1000);
    let defaults = WorkerParams {
        timeout_ms,
        connect_timeout_ms: timeout_ms,
        ..WorkerParams::default()
    };
    let mut k = Compiler {
        at,
        defaults,
        workers,
        errors: Vec::new(),
    };
    if c.timeout == Some(0) {
        k.errors.push(format!("{at}.timeout: must be at least 1 (seconds): raise it or remove it for the default of 60"));
    }
    let mut rules = Vec::new();
    for (i, e) in c.pass.into_iter().enumerate() {
        let name = format!("pass[{i}]");
        k.unknown(&name, &e.unknown, &["path", "url"]);
        let prefix = k.prefix(&name, e.path);
        rules.push(k.rule(name, Matcher::Prefix(prefix), &e.url, &e.worker));
    }
    for (i, e) in c.pass_match.into_iter().enumerate() {
        let name = format!("pass_match[{i}]");
        k.unknown(&name, &e.unknown, &["regex", "url"]);
        // Unicode off: `\d`, `\w` and `(?i)` stay ASCII, which is what a percent-encoded path holds.
        match RegexBuilder::new(&e.regex).unicode(false).build() {
            Ok(re) => rules.push(k.rule(name, Matcher::Regex(re), &e.url, &e.worker)),
            Err(err) => k.errors.push(format!(
                "{at}.{name}.regex: {err}: fix the regular expression"
            )),
        }
    }
    let reverse = c
        .pass_reverse
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| k.reverse(i, e.path, e.url))
        .collect();
    let cookie_domains = k.cookies("pass_reverse_cookie_domain", c.pass_reverse_cookie_domain);
    let cookie_paths = k.cookies("pass_reverse_cookie_path", c.pass_reverse_cookie_path);
    let flag = |on: bool, f: u32| if on { f } else { 0 };
    let vhost = VhostProxy {
        rules,
        reverse,
        cookie_domains,
        cookie_paths,
        flags: flag(c.preserve_host, exchange_flags::PRESERVE_HOST)
            | flag(c.add_headers, exchange_flags::ADD_FORWARDED)
            | flag(matches!(c.via, Via::On | Via::Full), exchange_flags::VIA)
            | flag(c.error_override, exchange_flags::ERROR_OVERRIDE),
        block_via: c.via == Via::Block,
        forward: c.forward,
        forward_at: format!("{at}.forward"),
        defaults,
    };
    (vhost, k.errors)
}

/// Warnings for `pass` rules an earlier rule always takes first: the
/// later prefix lies under the earlier one (`/x` after `/`), so no path
/// can reach it. Apache warns of overlapping ProxyPass order the same way.
/// Exclusions (`url = "!"`) count: they take paths too.
pub fn shadowed(rules: &[Rule], at: &str) -> Vec<String> {
    let prefixes: Vec<(&str, &str)> = rules
        .iter()
        .filter_map(|r| match &r.matcher {
            Matcher::Prefix(p) => Some((r.name.as_str(), p.as_str())),
            Matcher::Regex(_) => None,
        })
        .collect();
    let mut warnings = Vec::new();
    for (j, (later, path)) in prefixes.iter().enumerate() {
        // A prefix read as a path: if the earlier one matches it, it
        // matches every path under it too.
        let first = prefixes[..j]
            .iter()
            .find(|(_, earlier)| match_prefix(earlier, path).is_some());
        if let Some((earlier, earlier_path)) = first {
            warnings.push(format!(
                "{at}.{later}: path {path:?} is never reached: {earlier} (path {earlier_path:?}) comes first and matches every path under it; put the longer prefix first (move {later} above {earlier})"
            ));
        }
    }
    warnings
}

impl Compiler<'_> {
    /// A `pass` path in the canonical form the core gives request paths
    /// (`/café` is `/caf%C3%A9`, `/a/./b` is `/a/b`), so the two compare.
    fn prefix(&mut self, name: &str, path: String) -> String {
        let at = self.at;
        if !path.starts_with('/') {
            self.errors.push(format!(
                "{at}.{name}.path: {path:?} must start with /: write the URL path to proxy"
            ));
            return path;
        }
        match normalize(&path, EncodedSlashes::NoDecode) {
            Ok(canonical) => canonical.into_owned(),
            Err(e) => {
                self.errors.push(format!(
                    "{at}.{name}.path: {path:?} has {}: write the path as a client would request it",
                    e.why()
                ));
                path
            }
        }
    }

    fn rule(&mut self, name: String, matcher: Matcher, url: &str, keys: &WorkerKeys) -> Rule {
        let at = format!("{}.{name}.url", self.at);
        let params = self.params(&name, keys);
        let fcgi = self.fcgi(&name, keys);
        // `unix:/path|fcgi://host/path`: the socket names the pool, the
        // rest is the URL requests are mapped onto.
        let (socket, url) = match unix_socket(url) {
            Ok(Some((socket, rest))) => (Some(socket), rest),
            Ok(None) => (None, url),
            Err(why) => {
                self.errors.push(format!("{at}: {url:?} {why}"));
                (None, "!")
            }
        };
        let is_fcgi = url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("fcgi://"));
        if fcgi.is_some() && !is_fcgi && !url.starts_with("balancer://") && url != "!" {
            let at = self.at;
            self.errors.push(format!(
                "{at}.{name}: fcgi_set_env and enable_reuse apply to fcgi:// backends only (module proxy_fcgi): remove them, or point url at fcgi://host:port/path"
            ));
        }
        let backend = match split_origin(url) {
            _ if url == "!" => Backend::Exclude,
            Some(_) if url.contains('#') => {
                self.errors.push(format!(
                    "{at}: {url:?} has a fragment (#...): remove it, backends never see fragments"
                ));
                Backend::Exclude
            }
            Some((origin, _)) => match origin.strip_prefix("balancer://") {
                Some(name) => Backend::Balancer {
                    url: url.to_string(),
                    name: name.to_string(),
                },
                None => {
                    let origin = origin.to_ascii_lowercase();
                    let key = match socket {
                        Some(path) => format!("unix:{path}|{origin}"),
                        None => origin,
                    };
                    Backend::Direct {
                        url: url.to_string(),
                        state: self.workers.get(&key),
                        key,
                    }
                }
            },
            None => {
                self.errors.push(format!(
                    "{at}: {url:?} is not a URL: write http://host:port/path, balancer://NAME/path, or \"!\" to exclude the path"
                ));
                Backend::Exclude
            }
        };
        let retry = Duration::from_secs(keys.retry.unwrap_or(DEFAULT_RETRY_S));
        Rule {
            name,
            at,
            matcher,
            origin_len: split_origin(url).map_or(0, |(origin, _)| origin.len()),
            backend,
            params,
            retry,
            fcgi,
        }
    }

    /// The [`crate::notes::FCGI`] note for an entry's `fcgi_set_env` and
    /// `enable_reuse`, or `None` when it has neither.
    fn fcgi(&mut self, name: &str, k: &WorkerKeys) -> Option<String> {
        let mut lines = Vec::new();
        if k.enable_reuse {
            lines.push("+reuse".to_owned());
        }
        for (var, value) in &k.fcgi_set_env {
            let at = format!("{}.{name}.fcgi_set_env.{var}", self.at);
            let (unset, bare) = match var.strip_prefix('!') {
                Some(bare) => (true, bare),
                None => (false, var.as_str()),
            };
            if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                self.errors.push(format!(
                    "{at}: not a parameter name: write letters, digits and _ (SCRIPT_FILENAME), or !NAME to remove one"
                ));
            } else if unset && !value.is_empty() {
                self.errors.push(format!(
                    "{at}: a removal takes no value: write \"{var}\" = \"\", or drop the ! to set {bare}"
                ));
            } else if value.contains(['\n', '\r', '\0']) {
                self.errors.push(format!(
                    "{at}: the value holds a line break or NUL, which no FastCGI server reads back: remove it"
                ));
            } else if unset {
                lines.push(var.clone());
            } else {
                lines.push(format!("{var}={value}"));
            }
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// The entry's worker keys over the vhost's defaults; times are seconds.
    fn params(&mut self, name: &str, k: &WorkerKeys) -> WorkerParams {
        for (key, v) in [
            ("timeout", k.timeout),
            ("connection_timeout", k.connection_timeout),
        ] {
            if v == Some(0) {
                let at = self.at;
                self.errors.push(format!("{at}.{name}.{key}: must be at least 1 (seconds): raise it or remove it for the default"));
            }
        }
        let ms = |s: u64| s.saturating_mul(1000);
        let timeout_ms = k.timeout.map_or(self.defaults.timeout_ms, ms);
        let flags = if k.keepalive {
            worker_flags::TCP_KEEPALIVE
        } else {
            0
        } | if k.disable_reuse {
            worker_flags::DISABLE_REUSE
        } else {
            0
        } | if k.tls_verify == Some(false) {
            worker_flags::TLS_INSECURE
        } else {
            0
        };
        let flags = match k.upgrade.as_deref() {
            None => flags,
            Some(u) if u.eq_ignore_ascii_case("websocket") => {
                flags | worker_flags::UPGRADE_WEBSOCKET
            }
            Some(other) => {
                let at = self.at;
                self.errors.push(format!(
                    "{at}.{name}.upgrade: {other:?} is not supported: write upgrade = \"websocket\" (and enable proxy_wstunnel), or remove it"
                ));
                flags
            }
        };
        // Leaked once per rule at startup: workers keep it for the process.
        let tls_ca_file = k.tls_ca_file.clone().map_or(StaticText::EMPTY, |f| {
            StaticText::new(Box::leak(f.into_boxed_str()))
        });
        WorkerParams {
            timeout_ms,
            connect_timeout_ms: k.connection_timeout.map_or(timeout_ms, ms),
            ttl_ms: k.ttl.map_or(self.defaults.ttl_ms, ms),
            max_idle: k.max.unwrap_or(self.defaults.max_idle),
            flags,
            tls_ca_file,
        }
    }

    fn reverse(&mut self, i: usize, path: String, url: String) -> Option<Reverse> {
        let at = format!("{}.pass_reverse[{i}]", self.at);
        if !path.starts_with('/') {
            self.errors.push(format!(
                "{at}.path: {path:?} must start with /: write the public path the URL maps back to"
            ));
        }
        let Some((origin, url_path)) = split_origin(&url) else {
            self.errors.push(format!(
                "{at}.url: {url:?} is not a URL: write the backend's scheme://host:port/path"
            ));
            return None;
        };
        let balancer = origin
            .strip_prefix("balancer://")
            .map(|n| (n.to_string(), url_path.to_string()));
        Some(Reverse {
            path,
            balancer,
            url,
            at: format!("{at}.url"),
        })
    }

    fn cookies(&mut self, key: &str, entries: Vec<CookieEntry>) -> Vec<(String, String)> {
        for (i, e) in entries.iter().enumerate() {
            if e.internal.is_empty() {
                let at = self.at;
                self.errors.push(format!(
                    "{at}.{key}[{i}].internal: is empty: write the value the backend sends"
                ));
            }
        }
        entries
            .into_iter()
            .map(|e| (e.internal, e.public))
            .collect()
    }

    fn unknown(&mut self, name: &str, unknown: &Unknown, own: &[&str]) {
        let valid: Vec<&str> = own.iter().chain(WORKER_KEYS).copied().collect();
        for key in unknown.keys() {
            let at = self.at;
            let list = valid.join(", ");
            self.errors
                .push(match did_you_mean(key, valid.iter().copied()) {
                    Some(hint) => {
                        format!("{at}.{name}.{key}: unknown key: {hint} (valid keys are {list})")
                    }
                    None => format!("{at}.{name}.{key}: unknown key: valid keys are {list}"),
                });
        }
    }
}

/// Splits Apache's `unix:/path/to.sock|fcgi://host/path` into the socket
/// path and the URL after the `|`; `None` for any other URL.
fn unix_socket(url: &str) -> Result<Option<(&str, &str)>, String> {
    if !url
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("unix:"))
    {
        return Ok(None);
    }
    let help = "write unix:/path/to.sock|fcgi://localhost/path (Apache's form)";
    let Some((socket, rest)) = url[5..].split_once('|') else {
        return Err(format!("names a unix socket but no URL after it: {help}"));
    };
    if !socket.starts_with('/') {
        return Err(format!("has a socket path that is not absolute: {help}"));
    }
    if !rest
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("fcgi://"))
    {
        return Err(format!(
            "puts a unix socket before a URL that is not fcgi://: unix sockets are for fcgi:// backends (module proxy_fcgi); {help}"
        ));
    }
    Ok(Some((socket, rest)))
}
