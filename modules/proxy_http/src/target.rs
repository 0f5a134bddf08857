//! Splits the exchange's target (`http[s]://host:port/path?query`) into what
//! the connect and the request line need, refusing anything that would make
//! us connect somewhere other than the host the URL names.

use modproxy_http1::authority;
use modproxy_http1::eq_lower_str as eq_lower;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::ops::Range;

const DEFAULT_PORT: u16 = 80;
const DEFAULT_TLS_PORT: u16 = 443;

/// A parsed `http://` or `https://` target, borrowing from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The host without IPv6 brackets.
    pub host: &'a str,
    pub port: u16,
    /// Origin form for the request line; never empty, never with a fragment.
    pub path_and_query: Cow<'a, str>,
    ipv6: bool,
    /// `https://`: the connection is TLS, the default port 443.
    pub tls: bool,
    /// Where the host starts in the URL, and where the origin
    /// (`scheme://authority`) ends.
    host_at: usize,
    origin_len: usize,
}

/// Why a target URL was refused; the text goes to the error log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTarget(&'static str);

impl fmt::Display for BadTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'a> Target<'a> {
    /// Parses `url`. The scheme is matched case-insensitively; an empty port
    /// (`host:`) means 80, as RFC 3986 allows.
    pub fn parse(url: &'a str) -> Result<Target<'a>, BadTarget> {
        let (rest, tls) = match (url.get(..7), url.get(..8)) {
            (Some(s), _) if eq_lower(s, "http://") => (&url[7..], false),
            (_, Some(s)) if eq_lower(s, "https://") => (&url[8..], true),
            _ => return Err(BadTarget("not an http:// or https:// URL")),
        };
        // Byte scans: a char-set `find` costs more than these short strings.
        let end = rest
            .bytes()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        // Userinfo is never forwarded and `a@b` hides which host we reach.
        if authority.bytes().any(|b| b == b'@') {
            return Err(BadTarget("user information in the URL is not supported"));
        }
        let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
        let (host, ipv6, port) = authority::split(authority, default_port).map_err(BadTarget)?;
        let scheme_len = url.len() - rest.len();
        Ok(Target {
            host,
            port,
            path_and_query: origin_form(tail),
            ipv6,
            tls,
            host_at: scheme_len + usize::from(ipv6),
            origin_len: scheme_len + authority.len(),
        })
    }

    /// [`Target::parse`], remembering the last origins this thread
    /// parsed: requests go to the same few backends (a balancer's
    /// members), and an origin's checks (scheme, host characters, port
    /// digits) need not run again for it.
    pub fn parse_cached(url: &'a str) -> Result<Target<'a>, BadTarget> {
        let known = RECENT_ORIGINS.with_borrow(|recent| recent.iter().find_map(|o| o.target(url)));
        if let Some(target) = known {
            return Ok(target);
        }
        let target = Target::parse(url)?;
        RECENT_ORIGINS.with_borrow_mut(|recent| {
            if recent.len() == RECENT_MAX {
                recent.remove(0);
            }
            recent.push(Origin::of(url, &target));
        });
        Ok(target)
    }

    /// `host:port` for the connect, IPv6 in brackets.
    pub fn connect_addr(&self) -> String {
        authority::connect_addr(self.host, self.ipv6, self.port)
    }

    /// The Host header for the backend: the port only when it is not the
    /// scheme's default.
    pub fn host_header(&self) -> String {
        let default = if self.tls {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        };
        authority::with_port_unless(self.host, self.ipv6, self.port, default)
    }
}

/// How many origins [`Target::parse_cached`] remembers per thread.
const RECENT_MAX: usize = 8;

thread_local! {
    static RECENT_ORIGINS: RefCell<Vec<Origin>> = const { RefCell::new(Vec::new()) };
}

/// An origin that parsed, as its text and the parts taken from it.
struct Origin {
    text: String,
    host: Range<usize>,
    port: u16,
    ipv6: bool,
    tls: bool,
}

impl Origin {
    fn of(url: &str, t: &Target<'_>) -> Origin {
        Origin {
            text: url[..t.origin_len].to_owned(),
            host: t.host_at..t.host_at + t.host.len(),
            port: t.port,
            ipv6: t.ipv6,
            tls: t.tls,
        }
    }

    /// `url` parsed, if it starts with exactly this origin.
    fn target<'a>(&self, url: &'a str) -> Option<Target<'a>> {
        let tail = url.strip_prefix(self.text.as_str())?;
        // `http://b:80` is not the origin of `http://b:8080/`.
        if !(tail.is_empty() || tail.starts_with(['/', '?', '#'])) {
            return None;
        }
        Some(Target {
            host: &url[self.host.clone()],
            port: self.port,
            path_and_query: origin_form(tail),
            ipv6: self.ipv6,
            tls: self.tls,
            host_at: self.host.start,
            origin_len: self.text.len(),
        })
    }
}

/// `/path?query` from what follows the authority: the fragment is dropped
/// (it never goes on the wire) and an empty path becomes `/`.
fn origin_form(tail: &str) -> Cow<'_, str> {
    let end = tail.bytes().position(|b| b == b'#').unwrap_or(tail.len());
    let tail = &tail[..end];
    if tail.starts_with('/') {
        Cow::Borrowed(tail)
    } else {
        Cow::Owned(format!("/{tail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, u16, String, String, String) {
        let t = Target::parse(url).unwrap();
        (
            t.host.to_owned(),
            t.port,
            t.path_and_query.to_string(),
            t.connect_addr(),
            t.host_header(),
        )
    }

    #[test]
    fn the_cached_parse_is_the_parse() {
        let urls = [
            "http://b:80/x",
            "http://b:80/y?q#f",
            "http://b:8080/y",
            "http://b:80",
            "http://b:80?q",
            "http://b:80@evil/",
            "https://b:80/",
            "http://[::1]:8080/a",
            "http://[::1]:8080/b",
            "http://[::1]:80801/",
            "HTTP://B/x",
            "http://b:80/z",
        ];
        // More origins than are remembered, twice: the oldest give way.
        let many: Vec<String> = (0..2 * RECENT_MAX)
            .map(|i| format!("http://b{}:80/x", i % (RECENT_MAX + 2)))
            .collect();
        let urls = urls.iter().copied().chain(many.iter().map(String::as_str));
        for url in urls {
            assert_eq!(Target::parse_cached(url), Target::parse(url), "{url}");
        }
    }

    #[test]
    fn default_port_and_path() {
        assert_eq!(
            ok("http://b"),
            ("b".into(), 80, "/".into(), "b:80".into(), "b".into())
        );
        assert_eq!(
            ok("HTTP://b:80/x"),
            ("b".into(), 80, "/x".into(), "b:80".into(), "b".into())
        );
        assert_eq!(ok("http://b:/x").1, 80);
    }

    #[test]
    fn explicit_port_kept_in_host_header() {
        let (_, port, path, addr, host) = ok("http://127.0.0.1:8080/app/a%20b?q=1&r");
        assert_eq!((port, path.as_str()), (8080, "/app/a%20b?q=1&r"));
        assert_eq!(
            (addr.as_str(), host.as_str()),
            ("127.0.0.1:8080", "127.0.0.1:8080")
        );
    }

    #[test]
    fn query_without_path_and_fragment() {
        assert_eq!(ok("http://b?x=1").2, "/?x=1");
        assert_eq!(ok("http://b/p?x#frag").2, "/p?x");
        assert_eq!(ok("http://b#frag").2, "/");
    }

    #[test]
    fn ipv6() {
        let (host, port, _, addr, hh) = ok("http://[::1]:8080/x");
        assert_eq!(
            (host.as_str(), port, addr.as_str(), hh.as_str()),
            ("::1", 8080, "[::1]:8080", "[::1]:8080")
        );
        let (_, port, path, addr, hh) = ok("http://[2001:db8::2]");
        assert_eq!(
            (port, path.as_str(), addr.as_str(), hh.as_str()),
            (80, "/", "[2001:db8::2]:80", "[2001:db8::2]")
        );
    }

    #[test]
    fn https_defaults_to_443() {
        let t = Target::parse("https://b/x").unwrap();
        assert_eq!((t.port, t.tls, t.host_header()), (443, true, "b".into()));
        let t = Target::parse("HTTPS://b:8443").unwrap();
        assert_eq!(t.host_header(), "b:8443");
    }

    #[test]
    fn refused() {
        for bad in [
            "ws://b/",
            "ftp://b/",
            "http://",
            "http:///x",
            "http://u:p@b/",
            "http://b:0/",
            "http://b:65536/",
            "http://b:+80/",
            "http://b:8o/",
            "http://[::1/",
            "http://[zz]/",
            "http://[::1]x/",
            "http://b c/",
            "http://a:1:2/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
