//! `[[vhost.proxy.ajp]]`: what a Tomcat AJP connector needs besides its
//! address, keyed by that address. ProxyPass takes these as worker keys
//! (`secret=`, and the packet size from ProxyIOBufferSize); here they
//! belong to the connector they must match, because the per-worker
//! settings that cross the module boundary (`WorkerParams`) are a frozen
//! ABI layout. Every `ajp://` rule and balancer member to that address
//! uses them.
//!
//! ```toml
//! [[vhost.proxy.ajp]]
//! url = "ajp://127.0.0.1:8009"   # the connector (port 8009 if left out)
//! secret = "…"                    # Tomcat's secret (secretRequired)
//! ajp_packet_size = 8192          # Tomcat's packetSize: 8192 to 65536
//! ```

use crate::packet::{DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AjpConfig {
    pub url: String,
    pub secret: Option<String>,
    pub ajp_packet_size: Option<usize>,
}

/// The settings of one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub secret: Option<String>,
    pub packet_size: usize,
}

impl Default for Connector {
    fn default() -> Self {
        Connector {
            secret: None,
            packet_size: DEFAULT_PACKET_SIZE,
        }
    }
}

/// `host:port` of an `ajp://` URL, lower case, port 8009 when absent.
pub fn authority(url: &str) -> Result<String, String> {
    let help = "write ajp://HOST:PORT";
    let rest = url
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("ajp://"))
        .map(|_| &url[6..])
        .ok_or_else(|| format!("`{url}` is not an ajp:// URL: {help}"))?;
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    if auth.is_empty() || auth.contains('@') {
        return Err(format!("`{url}` has no host: {help}"));
    }
    let has_port = match auth.rsplit_once(':') {
        Some((h, p)) => !h.ends_with(':') && !p.contains(']'),
        None => false,
    };
    let auth = auth.to_ascii_lowercase();
    Ok(if has_port {
        auth
    } else {
        format!("{auth}:8009")
    })
}

impl AjpConfig {
    /// The connector's address and settings, or the problems, each
    /// starting with `at`.
    pub fn compile(self, at: &str) -> Result<(String, Connector), Vec<String>> {
        let mut problems = Vec::new();
        let auth = authority(&self.url).map_err(|e| problems.push(format!("{at}.url: {e}")));
        let size = self.ajp_packet_size.unwrap_or(DEFAULT_PACKET_SIZE);
        if !(DEFAULT_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&size) {
            problems.push(format!(
                "{at}.ajp_packet_size: {size} is out of range: write {DEFAULT_PACKET_SIZE} to {MAX_PACKET_SIZE}, the same as the connector's packetSize"
            ));
        }
        if self.secret.as_deref() == Some("") {
            problems.push(format!(
                "{at}.secret: an empty secret is no secret: write the connector's secret, or leave the key out"
            ));
        }
        match auth {
            Ok(auth) if problems.is_empty() => Ok((
                auth,
                Connector {
                    secret: self.secret,
                    packet_size: size,
                },
            )),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<(String, Connector), Vec<String>> {
        let c: AjpConfig = toml::from_str(text).unwrap();
        c.compile("t: vhost[0].proxy.ajp[0]")
    }

    #[test]
    fn addresses_get_the_default_port() {
        assert_eq!(authority("ajp://Tomcat").unwrap(), "tomcat:8009");
        assert_eq!(authority("AJP://h:9009/app").unwrap(), "h:9009");
        assert_eq!(authority("ajp://[::1]").unwrap(), "[::1]:8009");
        assert_eq!(authority("ajp://[::1]:1").unwrap(), "[::1]:1");
        assert!(authority("http://h:1").is_err());
        assert!(authority("ajp:///x").is_err());
    }

    #[test]
    fn settings_and_their_problems() {
        let (auth, c) =
            compile("url = \"ajp://127.0.0.1:8010\"\nsecret = \"s\"\najp_packet_size = 65536")
                .unwrap();
        assert_eq!(auth, "127.0.0.1:8010");
        assert_eq!(c.secret.as_deref(), Some("s"));
        assert_eq!(c.packet_size, 65536);
        let e = compile("url = \"tomcat\"\najp_packet_size = 100000\nsecret = \"\"").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("t: vhost[0].proxy.ajp[0].url: `tomcat` is not an ajp:// URL"));
        assert!(e[1].contains("write 8192 to 65536"));
        assert!(e[2].contains("empty secret"));
    }
}
