//! `[[vhost.proxy.h2]]`: how many connections an HTTP/2 backend gets and
//! how many streams each carries, keyed by the backend's address. The
//! per-worker settings that cross the module boundary (`WorkerParams`)
//! are a frozen ABI layout, so, as proxy_ajp's connector settings, these
//! belong to the backend they describe: every `h2://`/`h2c://` rule and
//! balancer member to that address uses them.
//!
//! ```toml
//! [[vhost.proxy.h2]]
//! url = "h2c://127.0.0.1:50051"   # the backend (port 80, or 443 for h2://)
//! h2_max_streams = 100            # streams at once on one connection
//! h2_connections = 2              # connections at most
//! ```

use crate::target::Target;
use serde::Deserialize;

/// Streams at once on one connection unless configured: the value most
/// servers announce as their SETTINGS_MAX_CONCURRENT_STREAMS.
pub const DEFAULT_MAX_STREAMS: u32 = 100;
/// Connections per backend unless configured.
pub const DEFAULT_CONNECTIONS: u32 = 2;
const MAX_STREAMS_LIMIT: u32 = 10_000;
const CONNECTIONS_LIMIT: u32 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct H2Config {
    pub url: String,
    pub h2_max_streams: Option<u32>,
    pub h2_connections: Option<u32>,
}

/// The settings of one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams at once on one connection (the backend's own
    /// SETTINGS_MAX_CONCURRENT_STREAMS may allow fewer).
    pub max_streams: u32,
    /// Connections at most; a request that finds them all full waits for
    /// a stream to end, up to the worker's `timeout`.
    pub connections: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: DEFAULT_MAX_STREAMS,
            connections: DEFAULT_CONNECTIONS,
        }
    }
}

impl H2Config {
    /// The backend's key ([`Target::settings_key`]) and settings, or the
    /// problems, each starting with `at`.
    pub fn compile(self, at: &str) -> Result<(String, Limits), Vec<String>> {
        let mut problems = Vec::new();
        let key = match Target::parse(&self.url) {
            Ok(t) => Some(t.settings_key()),
            Err(e) => {
                problems.push(format!(
                    "{at}.url: `{}`: {e}: write h2c://HOST:PORT (cleartext) or h2://HOST:PORT (TLS)",
                    self.url
                ));
                None
            }
        };
        let mut limit = |key: &str, v: Option<u32>, default: u32, max: u32| match v {
            None => default,
            Some(n) if (1..=max).contains(&n) => n,
            Some(n) => {
                problems.push(format!("{at}.{key}: {n} is out of range: write 1 to {max}"));
                default
            }
        };
        let limits = Limits {
            max_streams: limit(
                "h2_max_streams",
                self.h2_max_streams,
                DEFAULT_MAX_STREAMS,
                MAX_STREAMS_LIMIT,
            ),
            connections: limit(
                "h2_connections",
                self.h2_connections,
                DEFAULT_CONNECTIONS,
                CONNECTIONS_LIMIT,
            ),
        };
        match key {
            Some(key) if problems.is_empty() => Ok((key, limits)),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<(String, Limits), Vec<String>> {
        let c: H2Config = toml::from_str(text).unwrap();
        c.compile("t: vhost[0].proxy.h2[0]")
    }

    #[test]
    fn settings_and_their_problems() {
        let (key, l) = compile("url = \"h2c://Grpc:50051\"\nh2_max_streams = 8").unwrap();
        assert_eq!(key, "h2c://grpc:50051");
        assert_eq!((l.max_streams, l.connections), (8, DEFAULT_CONNECTIONS));
        let (key, _) = compile("url = \"h2://b\"").unwrap();
        assert_eq!(key, "h2://b:443");
        let e =
            compile("url = \"http://b\"\nh2_max_streams = 0\nh2_connections = 5000").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with("t: vhost[0].proxy.h2[0].url: `http://b`"),
            "{e:?}"
        );
        assert!(e[1].contains("h2_max_streams: 0 is out of range: write 1 to 10000"));
        assert!(e[2].contains("h2_connections: 5000 is out of range"));
    }
}
