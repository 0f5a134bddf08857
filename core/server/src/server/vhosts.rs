//! Picks the virtual host for a request: among the vhosts on the listener
//! it arrived on, the one whose server_name or server_alias matches the
//! Host header; otherwise the first one (Apache's default vhost rule).

use modproxy_config::Vhost;
use std::sync::Arc;

pub struct VhostEntry {
    pub index: u32,
    pub server_name: Arc<str>,
    names: Vec<String>,
}

/// The vhosts of one listener, in config order.
pub struct ListenerVhosts {
    pub entries: Vec<VhostEntry>,
}

impl ListenerVhosts {
    pub fn new(vhosts: &[&Vhost], default_server_name: &str) -> ListenerVhosts {
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
                    names,
                }
            })
            .collect();
        ListenerVhosts { entries }
    }

    /// The vhost for a Host header value (port ignored, case-insensitive).
    pub fn select(&self, host: Option<&str>) -> &VhostEntry {
        if let Some(host) = host {
            let name = strip_port(host);
            if let Some(e) = self
                .entries
                .iter()
                .find(|e| e.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            {
                return e;
            }
        }
        &self.entries[0]
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map(|h| &h[1..]).unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn host_headers_lose_their_port() {
        assert_eq!(strip_port("example.com:8000"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8000"), "::1");
    }
}
