//! Picks the virtual host for a request: among the vhosts on the listener
//! it arrived on, the one whose server_name or server_alias matches the
//! Host header; otherwise the first one (Apache's default vhost rule).

use crate::http::path::EncodedSlashes;
use modproxy_config::Vhost;
use std::sync::Arc;

pub struct VhostEntry {
    pub index: u32,
    pub server_name: Arc<str>,
    /// `allow_encoded_slashes`, applied when the path is normalised.
    pub encoded_slashes: EncodedSlashes,
    /// Serves HTTP/2 on this listener (`protocols`: h2 with TLS, h2c without).
    pub http2: bool,
    names: Vec<String>,
}

/// The vhosts of one listener, in config order.
pub struct ListenerVhosts {
    pub entries: Vec<VhostEntry>,
}

impl ListenerVhosts {
    pub fn new(vhosts: &[&Vhost], default_server_name: &str, tls: bool) -> ListenerVhosts {
        let entries = vhosts
            .iter()
            .map(|v| {
                let server_name: Arc<str> = v
                    .server_name
                    .as_deref()
                    .unwrap_or(default_server_name)
                    .into();
                let mut names: Vec<String> = v
                    .server_alias
                    .iter()
                    .map(|a| a.to_ascii_lowercase())
                    .collect();
                names.extend(v.server_name.iter().map(|n| n.to_ascii_lowercase()));
                VhostEntry {
                    index: v.index as u32,
                    server_name,
                    encoded_slashes: encoded_slashes(v.encoded_slashes),
                    http2: if tls { v.protocols.h2 } else { v.protocols.h2c },
                    names,
                }
            })
            .collect();
        ListenerVhosts { entries }
    }

    /// Whether any vhost here serves HTTP/2: the listener then offers it.
    pub fn http2(&self) -> bool {
        self.entries.iter().any(|e| e.http2)
    }

    /// The vhost for a Host header value (port ignored, case-insensitive),
    /// looked up only when the listener has more than one.
    pub fn select<'a>(&self, host: impl FnOnce() -> Option<&'a [u8]>) -> &VhostEntry {
        if self.entries.len() < 2 {
            return &self.entries[0];
        }
        if let Some(host) = host() {
            let name = strip_port(host);
            if let Some(e) = self.entries.iter().find(|e| {
                e.names
                    .iter()
                    .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
            }) {
                return e;
            }
        }
        &self.entries[0]
    }
}

/// The config's setting as the path normaliser takes it.
fn encoded_slashes(setting: modproxy_config::EncodedSlashes) -> EncodedSlashes {
    use modproxy_config::EncodedSlashes as Setting;
    match setting {
        Setting::Off => EncodedSlashes::Off,
        Setting::On => EncodedSlashes::On,
        Setting::NoDecode => EncodedSlashes::NoDecode,
    }
}

fn strip_port(host: &[u8]) -> &[u8] {
    if let Some(bracketed) = host.strip_prefix(b"[") {
        return bracketed.split(|&b| b == b']').next().unwrap_or(host);
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn host_headers_lose_their_port() {
        assert_eq!(strip_port(b"example.com:8000"), b"example.com");
        assert_eq!(strip_port(b"example.com"), b"example.com");
        assert_eq!(strip_port(b"[::1]:8000"), b"::1");
    }
}
