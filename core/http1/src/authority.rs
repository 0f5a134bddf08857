//! The `host[:port]` of a backend URL, checked so that the proxy never
//! connects anywhere but the host the URL names (no userinfo tricks, no
//! junk after an IPv6 literal, no port past 65535), and written back for
//! the connect and for Host / `:authority`. proxy_http and proxy_http2
//! parse their URLs' other parts themselves; this part is one rule.

use std::net::Ipv6Addr;

/// `host`, `host:port`, `[v6]` or `[v6]:port` → (host without brackets,
/// is IPv6, port); an empty port (`host:`) means `default_port`, as RFC
/// 3986 allows. `Err` says what is wrong, for the error log.
pub fn split(authority: &str, default_port: u16) -> Result<(&str, bool, u16), &'static str> {
    let (host, ipv6, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (v6, after) = inner.split_once(']').ok_or("unclosed '[' in the host")?;
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
        };
        (v6, true, port)
    } else {
        // A byte scan: `split_once(':')` sets up memchr for a dozen bytes.
        match authority.bytes().position(|b| b == b':') {
            Some(i) => (&authority[..i], false, Some(&authority[i + 1..])),
            None => (authority, false, None),
        }
    };
    if !ipv6 && !valid_reg_name(host) {
        return Err("missing or invalid host name");
    }
    let port = match port {
        None | Some("") => default_port,
        Some(p) => parse_port(p).ok_or("invalid port")?,
    };
    Ok((host, ipv6, port))
}

/// Host names and IPv4 literals: letters, digits, `-`, `.`, `_`.
fn valid_reg_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// 1 to 65535, digits only.
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 {
        return None;
    }
    let n = p.bytes().try_fold(0u32, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })?;
    u16::try_from(n).ok().filter(|&n| n != 0)
}

/// `host:port` for the connect, IPv6 in brackets.
pub fn connect_addr(host: &str, ipv6: bool, port: u16) -> String {
    if ipv6 {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The authority a backend is told (Host, `:authority`): the port only
/// when it is not the scheme's default.
pub fn with_port_unless(host: &str, ipv6: bool, port: u16, default_port: u16) -> String {
    match (ipv6, port == default_port) {
        (true, true) => format!("[{host}]"),
        (false, true) => host.to_owned(),
        _ => connect_addr(host, ipv6, port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ports_and_what_is_refused() {
        assert_eq!(split("b:8080", 80), Ok(("b", false, 8080)));
        assert_eq!(split("b:", 80), Ok(("b", false, 80)));
        assert_eq!(split("[::1]:9", 443), Ok(("::1", true, 9)));
        assert_eq!(split("[::1]x", 80), Err("junk after the IPv6 address"));
        assert_eq!(split("b:65536", 80), Err("invalid port"));
        assert_eq!(split("b:0", 80), Err("invalid port"));
        assert_eq!(split("a b", 80), Err("missing or invalid host name"));
        assert_eq!(with_port_unless("::1", true, 443, 443), "[::1]");
        assert_eq!(with_port_unless("b", false, 81, 80), "b:81");
    }
}
