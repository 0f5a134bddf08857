//! Who may open a tunnel to where: the `[vhost.proxy_connect]` section
//! (`allow_connect` ports, Apache's AllowCONNECT; `allow` client
//! networks), checked before anything is connected.

use modproxy_api::sdk::networks::{allowed, loopback, Net};
use serde::Deserialize;

/// Apache's AllowCONNECT default: HTTPS and NNTPS.
pub const DEFAULT_PORTS: [u16; 2] = [443, 563];

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectConfig {
    /// Ports a tunnel may go to (default 443 and 563).
    pub allow_connect: Option<Vec<u16>>,
    /// Client networks allowed to tunnel (default: loopback only).
    pub allow: Option<Vec<String>>,
}

/// The section checked: what a request is held against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub ports: Vec<u16>,
    pub allow: Vec<Net>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            ports: DEFAULT_PORTS.to_vec(),
            allow: loopback(),
        }
    }
}

impl Policy {
    /// `at` is `file: vhost[N].proxy_connect`; `Err` has one line per problem.
    pub fn compile(c: ConnectConfig, at: &str) -> Result<Policy, Vec<String>> {
        let mut errors = Vec::new();
        let ports = c.allow_connect.unwrap_or_else(|| DEFAULT_PORTS.to_vec());
        if ports.contains(&0) {
            errors.push(format!("{at}.allow_connect: port 0 is not a port: list the ports tunnels may reach, e.g. [443]"));
        }
        let allow = match c.allow {
            None => loopback(),
            Some(list) => list
                .iter()
                .filter_map(|s| {
                    Net::parse(s)
                        .map_err(|e| errors.push(format!("{at}.allow: {e}")))
                        .ok()
                })
                .collect(),
        };
        if errors.is_empty() {
            Ok(Policy { ports, allow })
        } else {
            Err(errors)
        }
    }

    pub fn client_allowed(&self, client: &str) -> bool {
        allowed(&self.allow, client)
    }

    pub fn port_allowed(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }
}

/// `host:port` of a CONNECT target; `Err` says what is wrong.
pub fn split_authority(authority: &str) -> Result<(&str, u16), String> {
    let bad = || format!("CONNECT target {authority:?} is not host:port");
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() || bare.contains(['/', '@', ' ']) || (bare.contains(':') && bare == host) {
        return Err(bad());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml_text: &str) -> Result<Policy, Vec<String>> {
        Policy::compile(
            toml::from_str(toml_text).unwrap(),
            "s.toml: vhost[0].proxy_connect",
        )
    }

    #[test]
    fn defaults_are_apaches_ports_and_loopback_clients() {
        let p = policy("").unwrap();
        assert!(p.port_allowed(443) && p.port_allowed(563) && !p.port_allowed(22));
        assert!(p.client_allowed("127.0.0.1:4000") && p.client_allowed("[::1]:4000"));
        assert!(!p.client_allowed("192.0.2.1:4000"));
    }

    #[test]
    fn configured_ports_and_networks() {
        let p =
            policy("allow_connect = [8443]\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]").unwrap();
        assert!(p.port_allowed(8443) && !p.port_allowed(443));
        assert!(p.client_allowed("10.1.2.3:1") && p.client_allowed("[2001:db8::5]:1"));
        assert!(!p.client_allowed("127.0.0.1:1"), "loopback only by default");
        let e = policy("allow_connect = [0]\nallow = [\"10.0.0.0/99\", \"nope\"]").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("s.toml: vhost[0].proxy_connect.allow_connect: port 0"));
        assert!(e[1].contains("prefix length must be 0 to 32"));
        assert!(e[2].contains("`nope` is not an address"));
    }

    #[test]
    fn targets_are_host_and_port() {
        assert_eq!(split_authority("example.org:443"), Ok(("example.org", 443)));
        assert_eq!(split_authority("[::1]:8443"), Ok(("[::1]", 8443)));
        for bad in [
            "example.org",
            "example.org:0",
            ":443",
            "a:b",
            "::1:443",
            "u@h:443",
            "h:99999",
        ] {
            assert!(split_authority(bad).is_err(), "{bad}");
        }
    }
}
