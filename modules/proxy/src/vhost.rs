//! One virtual host's proxy settings as the request hooks read them
//! (compiled in `compile.rs`), and the rule lookup translate_name runs.
//!
//! Order: every `pass` rule in config order, then every `pass_match` rule in
//! config order; the first match wins and a `url = "!"` match stops the
//! search (Apache interleaves ProxyPass and ProxyPassMatch in file order; two
//! lists cannot, so prefixes go first).

use crate::paths::{excluded_by, match_prefix, substitute, target, target_at};
use crate::worker::WorkerState;
use modproxy_api::proxy::WorkerParams;
use regex::bytes::Regex;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub enum Matcher {
    /// A path prefix, matched by segment; canonical, as request paths are.
    Prefix(String),
    /// Matched against the canonical path (percent-encoded where Apache
    /// re-encodes: `%20`, `%C3%A9`, `%5C`).
    Regex(Regex),
}

#[derive(Debug)]
pub enum Backend {
    /// `url = "!"`: not proxied.
    Exclude,
    /// `http://host:port/...`, with the state shared by rules naming the
    /// same backend. `key` is the pool key: `scheme://host:port`, or
    /// `unix:/path|fcgi://host` for a unix socket (`url` is then the part
    /// after the `|`).
    Direct {
        url: String,
        key: String,
        state: Arc<WorkerState>,
    },
    /// `balancer://NAME/...`: proxy_balancer picks members and keeps their state.
    Balancer { url: String, name: String },
}

#[derive(Debug)]
pub struct Rule {
    /// `pass[1]`: in notes and log lines.
    pub name: String,
    /// `file: vhost[0].proxy.pass[1].url`, for post_config errors.
    pub at: String,
    pub matcher: Matcher,
    /// The length of the url's `scheme://authority` (0 for an exclusion):
    /// every target built on the url starts with it.
    pub origin_len: usize,
    pub backend: Backend,
    pub params: WorkerParams,
    pub retry: Duration,
    /// For proxy_fcgi, in the [`crate::notes::FCGI`] note: `fcgi_set_env`
    /// and `enable_reuse`, encoded once here; `None` for most rules.
    pub fcgi: Option<String>,
}

/// A ProxyPassReverse entry: `url` (or each member of a balancer) maps back to `path`.
#[derive(Debug)]
pub struct Reverse {
    pub path: String,
    pub url: String,
    /// The balancer name and the path of its URL, when `url` is `balancer://`.
    pub balancer: Option<(String, String)>,
    pub at: String,
}

#[derive(Debug)]
pub struct VhostProxy {
    pub rules: Vec<Rule>,
    pub reverse: Vec<Reverse>,
    pub cookie_domains: Vec<(String, String)>,
    pub cookie_paths: Vec<(String, String)>,
    /// `exchange_flags` for every exchange of this vhost.
    pub flags: u32,
    pub block_via: bool,
    pub forward: bool,
    /// `file: vhost[0].proxy.forward`, for post_config errors.
    pub forward_at: String,
    /// For forward-proxy requests, which have no rule.
    pub defaults: WorkerParams,
}

impl VhostProxy {
    /// The rule for `path` and the full backend target, or `None` when no
    /// rule matches or the first match is an exclusion.
    pub fn route(&self, path: &str, query: &str) -> Option<(&Rule, String)> {
        for rule in &self.rules {
            let url = match &rule.matcher {
                // An exclusion covers every spelling a backend could read
                // as its prefix; a pass rule matches the path as it is.
                Matcher::Prefix(prefix) if matches!(rule.backend, Backend::Exclude) => {
                    if excluded_by(prefix, path) {
                        return None;
                    }
                    continue;
                }
                Matcher::Prefix(prefix) => {
                    let Some(rest) = match_prefix(prefix, path) else {
                        continue;
                    };
                    rule.base()
                        .map(|base| target_at(base, rule.origin_len, rest, query))
                }
                Matcher::Regex(re) => {
                    let Some(caps) = re.captures(path.as_bytes()) else {
                        continue;
                    };
                    let group = |n: usize| {
                        caps.get(n).map_or(String::new(), |m| {
                            String::from_utf8_lossy(m.as_bytes()).into_owned()
                        })
                    };
                    // No `$N` in the url: Apache appends the whole path.
                    rule.base().map(|base| match substitute(base, group) {
                        Some(url) => target(&url, "", query),
                        None => target_at(base, rule.origin_len, path, query),
                    })
                }
            };
            return url.map(|url| (rule, url));
        }
        None
    }

    /// The position of the rule a translate_name note names.
    pub fn rule_index(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.name == name)
    }
}

impl Rule {
    /// The url requests are mapped onto; `None` for an exclusion.
    fn base(&self) -> Option<&str> {
        match &self.backend {
            Backend::Exclude => None,
            Backend::Direct { url, .. } | Backend::Balancer { url, .. } => Some(url),
        }
    }
}
