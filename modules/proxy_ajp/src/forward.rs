//! The forward request: the client's request as one AJP13 packet, with
//! the attributes Apache's mod_proxy_ajp sends (query string, the client's
//! port and our local address as request attributes, the TLS flag, the
//! connector's `secret`).
//!
//! The request line's path goes as written (percent-encoding untouched,
//! Tomcat decodes it); the client's Host goes as it came, as Apache does:
//! Tomcat builds its URLs from it. Hop-by-hop fields stop here: AJP has
//! its own connection handling.

use crate::packet::{code, Encoder, Overflow};
use modproxy_api::{Headers, Request};
use modproxy_http1::hop_by_hop::HopFilter;

/// The methods AJP13 has codes for, in code order from 1.
const METHODS: [&str; 27] = [
    "OPTIONS",
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "ACL",
    "REPORT",
    "VERSION-CONTROL",
    "CHECKIN",
    "CHECKOUT",
    "UNCHECKOUT",
    "SEARCH",
    "MKWORKSPACE",
    "UPDATE",
    "LABEL",
    "MERGE",
    "BASELINE-CONTROL",
    "MKACTIVITY",
];
/// The method byte of a method sent by name (in the stored_method attribute).
const STORED_METHOD: u8 = 0xFF;

/// Request field names with codes (`0xA001`...), lower case as the host lends them.
const REQUEST_NAMES: [&str; 14] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "connection",
    "content-type",
    "content-length",
    "cookie",
    "cookie2",
    "host",
    "pragma",
    "referer",
    "user-agent",
];

/// Attribute codes.
mod attr {
    pub const QUERY_STRING: u8 = 0x05;
    pub const REQ_ATTRIBUTE: u8 = 0x0A;
    pub const SECRET: u8 = 0x0C;
    pub const STORED_METHOD: u8 = 0x0D;
    pub const ARE_DONE: u8 = 0xFF;
}

/// What the forward request needs besides the client's request.
pub struct Forward<'a> {
    /// The target's path (from its first `/`) without the query.
    pub path: &'a str,
    /// The target's query, without `?` (empty: none).
    pub query: &'a str,
    pub secret: Option<&'a str>,
    pub packet_size: usize,
}

/// How the request body reaches the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: every GET_BODY_CHUNK gets the empty packet.
    None,
    /// Content-Length bytes: the first chunk goes right after the forward
    /// request, unasked (Tomcat expects it there).
    Length(u64),
    /// Chunked from the client, length unknown: sent only when asked.
    Unknown,
}

/// The body's kind as the client framed it (the core has checked that
/// framing already).
pub fn body_kind(req: &Request) -> BodyKind {
    if req.header(Headers::Request, "transfer-encoding").is_some() {
        return BodyKind::Unknown;
    }
    let length = req
        .header(Headers::Request, "content-length")
        .and_then(modproxy_http1::parse_decimal);
    match length {
        Some(0) | None => BodyKind::None,
        Some(n) => BodyKind::Length(n),
    }
}

/// The forward request packet; `Overflow` when it does not fit one packet.
pub fn encode(req: &Request, f: &Forward<'_>) -> Result<Vec<u8>, Overflow> {
    let mut e = Encoder::new(f.packet_size);
    let method = req.method();
    let method_code = METHODS
        .iter()
        .position(|m| *m == method)
        .map_or(STORED_METHOD, |i| i as u8 + 1);
    let (client_ip, client_port) = split_addr(req.client_addr());
    let (local_ip, local_port) = split_addr(req.local_addr());
    let host = req.header_str(Headers::Request, "host");
    let server_name = host.map_or(req.server_name(), host_name);
    e.byte(code::FORWARD_REQUEST)?;
    e.byte(method_code)?;
    e.string(Some(req.version().as_bytes()))?;
    e.string(Some(f.path.as_bytes()))?;
    e.string(Some(client_ip.as_bytes()))?;
    // remote_host: no reverse lookups (Apache's HostnameLookups Off).
    e.string(None)?;
    e.string(Some(server_name.as_bytes()))?;
    e.int(local_port.parse().unwrap_or(0))?;
    e.bool(req.scheme() == "https")?;
    headers(&mut e, req)?;
    if !f.query.is_empty() {
        e.byte(attr::QUERY_STRING)?;
        e.string(Some(f.query.as_bytes()))?;
    }
    if let Some(secret) = f.secret {
        e.byte(attr::SECRET)?;
        e.string(Some(secret.as_bytes()))?;
    }
    if method_code == STORED_METHOD {
        e.byte(attr::STORED_METHOD)?;
        e.string(Some(method.as_bytes()))?;
    }
    for (name, value) in [
        ("AJP_REMOTE_PORT", client_port),
        ("AJP_LOCAL_ADDR", local_ip),
    ] {
        if !value.is_empty() {
            e.byte(attr::REQ_ATTRIBUTE)?;
            e.string(Some(name.as_bytes()))?;
            e.string(Some(value.as_bytes()))?;
        }
    }
    e.byte(attr::ARE_DONE)?;
    Ok(e.finish())
}

/// The end-to-end fields, counted first (the count precedes them).
fn headers(e: &mut Encoder, req: &Request) -> Result<(), Overflow> {
    let fields = req.headers(Headers::Request);
    let hop = HopFilter::from_headers(fields.iter());
    let keep = || fields.iter().filter(|(n, _)| !hop.should_drop(n));
    let count = u16::try_from(keep().count()).map_err(|_| Overflow)?;
    e.int(count)?;
    for (name, value) in keep() {
        match REQUEST_NAMES.iter().position(|n| *n == name) {
            Some(i) => e.int(0xA001 + i as u16)?,
            None => e.string(Some(name.as_bytes()))?,
        }
        e.string(Some(value))?;
    }
    Ok(())
}

/// `ip:port` or `[v6]:port` into its parts (empty when absent).
fn split_addr(addr: &str) -> (&str, &str) {
    match addr.rsplit_once(':') {
        Some((ip, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            (ip.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (addr, ""),
    }
}

/// The host of a Host value, without its port.
fn host_name(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_codes_follow_the_reference() {
        assert_eq!(METHODS[1], "GET");
        assert_eq!(METHODS[3], "POST");
        assert_eq!(METHODS[26], "MKACTIVITY");
        assert_eq!(REQUEST_NAMES[10], "host");
        assert_eq!(REQUEST_NAMES[13], "user-agent");
    }

    #[test]
    fn addresses_and_hosts_split() {
        assert_eq!(split_addr("127.0.0.1:4242"), ("127.0.0.1", "4242"));
        assert_eq!(split_addr("[::1]:80"), ("::1", "80"));
        assert_eq!(split_addr("weird"), ("weird", ""));
        assert_eq!(host_name("example.com:8000"), "example.com");
        assert_eq!(host_name("[::1]:8000"), "::1");
        assert_eq!(host_name("example.com"), "example.com");
    }
}
