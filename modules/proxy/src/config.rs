//! The `[vhost.proxy]` table as written by the operator (serde shapes only;
//! `compile.rs` checks and compiles it).
//!
//! ```toml
//! [vhost.proxy]
//! timeout = 30                 # ProxyTimeout, seconds (default 60)
//! preserve_host = false        # ProxyPreserveHost
//! add_headers = true           # ProxyAddHeaders (X-Forwarded-*)
//! via = "off"                  # ProxyVia: off | on | full | block
//! forward = false              # ProxyRequests: never an open proxy by default
//! error_override = false       # ProxyErrorOverride: the core's page for backend 4xx/5xx
//! pass = [
//!   { path = "/admin", url = "!" },
//!   { path = "/", url = "http://127.0.0.1:8080/", retry = 0 },
//! ]
//! # fcgi:// (proxy_fcgi), over TCP or a unix socket as Apache writes it
//! # pass = [{ path = "/app/", url = "unix:/run/php/php8.2-fpm.sock|fcgi://localhost/var/www/",
//! #          fcgi_set_env = { HTTPS = "on" }, enable_reuse = true }]
//! pass_match = [{ regex = "^/img/(.*)\\.png$", url = "http://127.0.0.1:8080/png/$1" }]
//! pass_reverse = [{ path = "/", url = "http://127.0.0.1:8080/" }]
//! pass_reverse_cookie_domain = [{ internal = "backend.local", public = "example.com" }]
//! pass_reverse_cookie_path = [{ internal = "/app/", public = "/" }]
//! ```

use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    #[serde(default)]
    pub pass: Vec<PassEntry>,
    #[serde(default)]
    pub pass_match: Vec<MatchEntry>,
    #[serde(default)]
    pub pass_reverse: Vec<ReverseEntry>,
    #[serde(default)]
    pub pass_reverse_cookie_domain: Vec<CookieEntry>,
    #[serde(default)]
    pub pass_reverse_cookie_path: Vec<CookieEntry>,
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default = "yes")]
    pub add_headers: bool,
    #[serde(default)]
    pub via: Via,
    /// Seconds; the default for every rule's `timeout`.
    pub timeout: Option<u64>,
    #[serde(default)]
    pub error_override: bool,
    #[serde(default)]
    pub forward: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    #[default]
    Off,
    On,
    Full,
    /// Strip `Via` from requests before they leave.
    Block,
}

/// ProxyPass worker keys, shared by `pass` and `pass_match` entries.
#[derive(Debug, Default, Deserialize)]
pub struct WorkerKeys {
    /// Seconds to wait for the response head and each read.
    pub timeout: Option<u64>,
    /// Seconds to wait for the TCP connect; defaults to `timeout`.
    pub connection_timeout: Option<u64>,
    /// Seconds a failed backend is held in error (default 60; 0 = never).
    pub retry: Option<u64>,
    /// Most idle pooled connections.
    pub max: Option<u32>,
    /// Seconds an idle pooled connection lives.
    pub ttl: Option<u64>,
    #[serde(default)]
    pub keepalive: bool,
    #[serde(default)]
    pub disable_reuse: bool,
    /// `https://` backends: verify the certificate (default true).
    pub tls_verify: Option<bool>,
    /// `https://` backends: PEM roots instead of the system's (relative to SERVER_ROOT).
    pub tls_ca_file: Option<String>,
    /// `"websocket"`: WebSocket upgrade requests are tunnelled (proxy_wstunnel).
    pub upgrade: Option<String>,
    /// `fcgi://` backends (proxy_fcgi): FastCGI parameters set after the
    /// CGI variables, `NAME = "value"` to add or override one, `"!NAME" =
    /// ""` to remove one (ProxyFCGISetEnvIf without a condition).
    #[serde(default)]
    pub fcgi_set_env: BTreeMap<String, String>,
    /// `fcgi://` backends: keep connections open between requests
    /// (FCGI_KEEP_CONN). Off by default, as Apache's `enablereuse`: an idle
    /// kept connection holds one of the FastCGI server's workers.
    #[serde(default)]
    pub enable_reuse: bool,
}

pub const WORKER_KEYS: &[&str] = &[
    "timeout",
    "connection_timeout",
    "retry",
    "max",
    "ttl",
    "keepalive",
    "disable_reuse",
    "tls_verify",
    "tls_ca_file",
    "upgrade",
    "fcgi_set_env",
    "enable_reuse",
];

/// Unknown keys in an entry are collected rather than refused by serde, so
/// the error can name the entry (`pass[1].tmeout`), which serde cannot.
pub type Unknown = BTreeMap<String, IgnoredAny>;

#[derive(Debug, Deserialize)]
pub struct PassEntry {
    pub path: String,
    pub url: String,
    #[serde(flatten)]
    pub worker: WorkerKeys,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
pub struct MatchEntry {
    pub regex: String,
    pub url: String,
    #[serde(flatten)]
    pub worker: WorkerKeys,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseEntry {
    pub path: String,
    pub url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieEntry {
    pub internal: String,
    pub public: String,
}
