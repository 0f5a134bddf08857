//! Splits an `h2://` or `h2c://` target into what the connect and the
//! request's pseudo-header fields need, refusing anything that would make
//! us connect somewhere other than the host the URL names.

use modproxy_http1::authority;
use std::fmt;

/// A parsed `h2://` (TLS, ALPN h2) or `h2c://` (cleartext, prior
/// knowledge) target, borrowing from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The host without IPv6 brackets.
    pub host: &'a str,
    pub port: u16,
    ipv6: bool,
    /// `h2://`: TLS, port 443 by default; `h2c://`: port 80.
    pub tls: bool,
    /// `/path?query` for `:path`; never empty, never with a fragment.
    pub path_and_query: String,
}

/// Why a target URL was refused; the text goes to the error log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTarget(pub &'static str);

impl fmt::Display for BadTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'a> Target<'a> {
    pub fn parse(url: &'a str) -> Result<Target<'a>, BadTarget> {
        let (rest, tls) = match url.find("://") {
            Some(i) if url[..i].eq_ignore_ascii_case("h2") => (&url[i + 3..], true),
            Some(i) if url[..i].eq_ignore_ascii_case("h2c") => (&url[i + 3..], false),
            _ => return Err(BadTarget("not an h2:// or h2c:// URL")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(BadTarget("user information in the URL is not supported"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, ipv6, port) = authority::split(authority, default_port).map_err(BadTarget)?;
        let tail = tail.split('#').next().unwrap_or("");
        let path_and_query = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Ok(Target {
            host,
            port,
            ipv6,
            tls,
            path_and_query,
        })
    }

    /// `host:port` for the connect, IPv6 in brackets.
    pub fn connect_addr(&self) -> String {
        authority::connect_addr(self.host, self.ipv6, self.port)
    }

    /// `:authority` when the client's Host is not preserved: the port only
    /// when it is not the scheme's default.
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        authority::with_port_unless(self.host, self.ipv6, self.port, default)
    }

    /// `h2c://host:port` in lower case, the default port written out: the
    /// key of the `[[vhost.proxy.h2]]` settings for this backend.
    pub fn settings_key(&self) -> String {
        let scheme = if self.tls { "h2" } else { "h2c" };
        format!("{scheme}://{}", self.connect_addr().to_ascii_lowercase())
    }

    /// `:scheme`: what the backend is told the request came as.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_ports_and_paths() {
        let t = Target::parse("h2c://127.0.0.1:8080/app/x?y=1#f").unwrap();
        assert_eq!((t.host, t.port, t.tls), ("127.0.0.1", 8080, false));
        assert_eq!(t.path_and_query, "/app/x?y=1");
        assert_eq!(
            (t.scheme(), t.authority()),
            ("http", "127.0.0.1:8080".into())
        );
        assert_eq!(t.settings_key(), "h2c://127.0.0.1:8080");
        let t = Target::parse("H2://Backend").unwrap();
        assert_eq!((t.port, t.tls, t.scheme()), (443, true, "https"));
        assert_eq!(
            (t.authority(), t.path_and_query.as_str()),
            ("Backend".into(), "/")
        );
        assert_eq!(t.settings_key(), "h2://backend:443");
        let t = Target::parse("h2c://[::1]?q").unwrap();
        assert_eq!(
            (t.connect_addr(), t.authority()),
            ("[::1]:80".into(), "[::1]".into())
        );
        assert_eq!(t.path_and_query, "/?q");
    }

    #[test]
    fn refused() {
        for bad in [
            "http://b/",
            "h2c://",
            "h2c://u@b/",
            "h2c://b:0/",
            "h2c://b:65536/",
            "h2c://b:+1/",
            "h2://[::1/",
            "h2://[zz]/",
            "h2://b c/",
            "h2://a:1:2/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
