//! Which fields stop at a proxy: the fixed hop-by-hop list plus every
//! field a message's `Connection` names (RFC 9110 §7.6.1), for proxy_http
//! and proxy_wstunnel alike, both ways.
//!
//! CVE-2022-31813: a client could send `Connection: X-Forwarded-For` so the
//! proxy dropped the client IP it had just added, and the backend trusted
//! whatever came instead. The rule here is that filtering applies only to
//! headers *received*; callers add their own X-Forwarded-* (and Via) after
//! filtering, so a Connection token can never remove them.

use crate::eq_lower_str as eq_lower;

/// Headers that describe one connection, never the message (case-insensitive).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// True for the fixed hop-by-hop headers; see [`HopFilter`] for the ones a
/// `Connection` header adds. Inline: proxy_http asks for every field of
/// every request and response, from another crate.
#[inline]
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| eq_lower(name, h))
}

/// The comma-separated tokens of one `Connection` value, trimmed, empties skipped.
fn connection_tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Calls `f` with every token of the `Connection` fields among `fields`.
/// A value that is just `close` or `keep-alive`, the usual ones, is that
/// token without tokenising; a value that is not UTF-8 cannot name a
/// valid header, so it adds nothing.
pub fn for_each_connection_token<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    mut f: impl FnMut(&'a str),
) {
    for (_, value) in fields
        .into_iter()
        .filter(|(n, _)| eq_lower(n, "connection"))
    {
        if crate::eq_lower(value, b"keep-alive") {
            f("keep-alive");
        } else if crate::eq_lower(value, b"close") {
            f("close");
        } else if let Ok(value) = std::str::from_utf8(value) {
            connection_tokens(value).for_each(&mut f);
        }
    }
}

/// Decides, for one message, whether a received header must be dropped.
#[derive(Debug, Default, Clone)]
pub struct HopFilter<'a> {
    /// The tokens that name a header not on the fixed list: rare, so the
    /// usual `Connection: close` or `keep-alive` allocates nothing.
    named: Vec<&'a str>,
    /// `close` was among the tokens (a field named Close is reserved by
    /// RFC 9110 §7.6.1 for this reason).
    close: bool,
}

impl<'a> HopFilter<'a> {
    /// Collects the tokens of every `Connection` header among `headers`.
    pub fn from_headers<I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut filter = HopFilter::default();
        for_each_connection_token(headers, |token| {
            if eq_lower(token, "close") {
                filter.close = true;
            } else if !is_hop_by_hop(token) {
                filter.named.push(token);
            }
        });
        filter
    }

    /// True if `name` is hop-by-hop or named in this message's `Connection`.
    /// Inline for the same reason as [`is_hop_by_hop`].
    #[inline]
    pub fn should_drop(&self, name: &str) -> bool {
        is_hop_by_hop(name)
            || (self.close && eq_lower(name, "close"))
            || self.named.iter().any(|t| t.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_list_is_case_insensitive() {
        for n in [
            "Connection",
            "KEEP-ALIVE",
            "te",
            "Proxy-Authorization",
            "Upgrade",
        ] {
            assert!(is_hop_by_hop(n), "{n}");
        }
        for n in [
            "Host",
            "Content-Length",
            "X-Forwarded-For",
            "Expect",
            "Trailers",
        ] {
            assert!(!is_hop_by_hop(n), "{n}");
        }
    }

    #[test]
    fn tokens_trimmed_and_empties_skipped() {
        let got: Vec<_> = connection_tokens(" close ,, X-Foo,\tkeep-alive ").collect();
        assert_eq!(got, ["close", "X-Foo", "keep-alive"]);
    }

    #[test]
    fn a_lone_close_or_keep_alive_is_read_as_its_token() {
        let headers: [(&str, &[u8]); 3] = [
            ("Connection", b"Close"),
            ("Close", b"x"),
            ("Connection", b"KEEP-ALIVE"),
        ];
        let f = HopFilter::from_headers(headers);
        assert!(f.should_drop("close") && f.should_drop("Keep-Alive"));
        assert!(!f.should_drop("X-A"));
        let f = HopFilter::from_headers([("Connection", &b"keep-alive"[..])]);
        assert!(
            !f.should_drop("close"),
            "no close token, no Close field dropped"
        );
    }

    #[test]
    fn filter_uses_every_connection_header() {
        let headers: [(&str, &[u8]); 4] = [
            ("connection", b"X-A"),
            ("Host", b"h"),
            ("CONNECTION", b"x-b, close"),
            ("Connection", b"\xff"),
        ];
        let f = HopFilter::from_headers(headers);
        assert!(f.should_drop("x-a") && f.should_drop("X-B") && f.should_drop("TE"));
        assert!(!f.should_drop("Host") && !f.should_drop("X-C"));
        // `close` names a field too (reserved for that reason); `keep-alive`
        // is on the fixed list anyway.
        assert!(f.should_drop("Close") && f.should_drop("Keep-Alive"));
    }
}
