//! The fields a proxy adds about the client and itself: X-Forwarded-*
//! (`ProxyAddHeaders On`) and Via (`ProxyVia On`), the same from every
//! module that talks to a backend.
//!
//! They are added only after the client's fields were filtered, so a
//! `Connection` token cannot name them away (CVE-2022-31813); a client
//! value of the same name is merged in front of ours (see
//! [`crate::backend_request::write_request_head`]).

/// The values for `ProxyAddHeaders On`.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded<'a> {
    /// The client's IP address, for X-Forwarded-For.
    pub for_addr: &'a str,
    /// The client's original Host, for X-Forwarded-Host (none: header not added).
    pub host: Option<&'a [u8]>,
    /// Our ServerName, for X-Forwarded-Server.
    pub server: &'a str,
    /// `http` or `https` as the client spoke it, for X-Forwarded-Proto.
    pub proto: &'a str,
}

impl<'a> Forwarded<'a> {
    /// For a client at `client_addr` (`ip:port`) that sent `host`, talking
    /// to us as `server` over `proto`.
    pub fn new(
        client_addr: &'a str,
        host: Option<&'a [u8]>,
        server: &'a str,
        proto: &'a str,
    ) -> Forwarded<'a> {
        Forwarded {
            for_addr: client_ip(client_addr),
            host,
            server,
            proto,
        }
    }
}

/// How many fields [`added`] lists.
pub const ADDED: usize = 5;

/// The fields we add, in the order they are written; `None`: not added.
/// An array on the stack, as it is built for every request.
#[inline]
pub fn added<'a>(
    fwd: Option<&Forwarded<'a>>,
    via: Option<&'a str>,
) -> [(&'static str, Option<&'a [u8]>); ADDED] {
    [
        ("X-Forwarded-For", fwd.map(|f| f.for_addr.as_bytes())),
        ("X-Forwarded-Host", fwd.and_then(|f| f.host)),
        ("X-Forwarded-Server", fwd.map(|f| f.server.as_bytes())),
        ("X-Forwarded-Proto", fwd.map(|f| f.proto.as_bytes())),
        ("Via", via.map(str::as_bytes)),
    ]
}

/// The IP of `ip:port`, `[v6]:port` or a bare address, without the port:
/// what X-Forwarded-For carries.
pub fn client_ip(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match addr.split_once(':') {
        Some((ip, port)) if !port.contains(':') => ip,
        _ => addr,
    }
}

/// `1.1 proxy.example (modproxy)` from `HTTP/1.1` and our ServerName: our
/// Via element.
pub fn via_value(version: &str, server: &str) -> String {
    let v = version.strip_prefix("HTTP/").unwrap_or(version);
    let v = if v.is_empty() { "1.1" } else { v };
    format!("{v} {server} (modproxy)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_strips_port() {
        assert_eq!(client_ip("192.0.2.7:51234"), "192.0.2.7");
        assert_eq!(client_ip("[::1]:51234"), "::1");
        assert_eq!(client_ip("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(client_ip("2001:db8::1"), "2001:db8::1");
        assert_eq!(client_ip("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn via_from_version() {
        assert_eq!(
            via_value("HTTP/1.1", "p.example"),
            "1.1 p.example (modproxy)"
        );
        assert_eq!(via_value("HTTP/1.0", "p"), "1.0 p (modproxy)");
        assert_eq!(via_value("", "p"), "1.1 p (modproxy)");
    }

    #[test]
    fn nothing_is_added_when_both_are_off() {
        assert!(added(None, None).iter().all(|(_, v)| v.is_none()));
        let fwd = Forwarded {
            for_addr: "192.0.2.7",
            host: None,
            server: "p",
            proto: "http",
        };
        let names: Vec<_> = added(Some(&fwd), Some("1.1 p"))
            .into_iter()
            .filter_map(|(n, v)| v.map(|_| n))
            .collect();
        assert_eq!(
            names,
            [
                "X-Forwarded-For",
                "X-Forwarded-Server",
                "X-Forwarded-Proto",
                "Via"
            ]
        );
    }
}
