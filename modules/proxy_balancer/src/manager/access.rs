//! Who may use the manager: clients in the `allow` list (loopback unless
//! configured), and for changes a request that carries the page's random
//! token and does not come from another site's page (CSRF).

pub use modproxy_api::sdk::networks::{allowed, loopback, Net};

/// A fresh random token (128 bits, hex). std has no RNG: read the kernel's.
pub fn new_token() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for the manager's token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without stopping at the first difference, so response timing
/// tells nothing about how much of a guess was right.
pub fn token_matches(expected: &str, got: &str) -> bool {
    expected.len() == got.len()
        && expected
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A change must not come from another site's page: an `Origin` header, if
/// present, must name this server (`scheme://host`), and the browser's
/// `Sec-Fetch-Site` must not say `cross-site`.
pub fn same_origin(
    origin: Option<&str>,
    fetch_site: Option<&str>,
    scheme: &str,
    host: &str,
) -> bool {
    if fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return false;
    }
    match origin {
        None => true,
        Some(o) => o.eq_ignore_ascii_case(&format!("{scheme}://{host}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let lo = loopback();
        assert!(allowed(&lo, "127.0.0.1:5000"));
        assert!(allowed(&lo, "127.9.9.9:1"));
        assert!(allowed(&lo, "[::1]:80"));
        assert!(
            allowed(&lo, "[::ffff:127.0.0.1]:80"),
            "IPv4-mapped loopback"
        );
        assert!(!allowed(&lo, "10.0.0.1:5000"));
        assert!(!allowed(&lo, "[2001:db8::1]:80"));
        assert!(!allowed(&lo, "garbage"));
        let ten = [Net::parse("10.1.0.0/16").unwrap()];
        assert!(allowed(&ten, "10.1.200.3:1"));
        assert!(!allowed(&ten, "10.2.0.1:1"));
        let any = [Net::parse("0.0.0.0/0").unwrap()];
        assert!(allowed(&any, "192.0.2.1:1"));
        let host = [Net::parse("192.0.2.7").unwrap()];
        assert!(allowed(&host, "192.0.2.7:1") && !allowed(&host, "192.0.2.6:1"));
        let v6 = [Net::parse("2001:db8::/32").unwrap()];
        assert!(allowed(&v6, "[2001:db8:1::1]:1") && !allowed(&v6, "[2001:db9::1]:1"));
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("example.com").is_err());
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(token_matches(&a, &a.clone()));
        assert!(!token_matches(&a, &b));
        assert!(!token_matches(&a, &a[..31]));
    }

    #[test]
    fn other_sites_are_refused() {
        assert!(same_origin(None, None, "http", "127.0.0.1:8000"));
        assert!(same_origin(
            Some("http://127.0.0.1:8000"),
            Some("same-origin"),
            "http",
            "127.0.0.1:8000"
        ));
        assert!(!same_origin(
            Some("http://evil.example"),
            None,
            "http",
            "127.0.0.1:8000"
        ));
        assert!(!same_origin(
            None,
            Some("cross-site"),
            "http",
            "127.0.0.1:8000"
        ));
    }
}
