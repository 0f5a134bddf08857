//! Serialises the request head a proxy module (proxy_http, proxy_wstunnel)
//! sends to a backend.
//!
//! Order on the wire: request line, `Host`, the client's end-to-end headers,
//! the proxy's X-Forwarded-* and `Via`, then the body framing we chose and
//! the connection's own fields (`close`, or the upgrade a tunnel asks for).
//! Received `Host`, `Content-Length` and hop-by-hop headers never pass: the
//! proxy writes its own Host and framing, so a client cannot smuggle a second
//! length past us. `Expect: 100-continue` passes (it is end to end).

use std::fmt;

use crate::eq_lower_str as eq_lower;
use crate::forwarded::{self, Forwarded};
use crate::hop_by_hop::HopFilter;

/// How the body that follows the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body and no framing header (GET, HEAD, …).
    None,
    ContentLength(u64),
    Chunked,
}

/// Everything the head is built from. `headers` is iterated more than once
/// (Connection tokens first, then the copy), hence `Clone`.
#[derive(Debug, Clone)]
pub struct RequestHead<'a, H> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    /// The Host to send: the backend's, or the client's with ProxyPreserveHost.
    pub host: &'a str,
    /// The client's headers, in arrival order.
    pub headers: H,
    pub framing: BodyFraming,
    pub forwarded: Option<Forwarded<'a>>,
    /// Our Via element, e.g. `1.1 proxy.example (modproxy)`; none: ProxyVia Off.
    pub via: Option<&'a str>,
    /// Send `Connection: close`: the connection will not be reused, so the
    /// backend may free it as soon as it has answered.
    pub close: bool,
    /// Ask to switch to this protocol (`websocket`): `Upgrade` and
    /// `Connection: Upgrade` are written anew, since the client's, being
    /// hop-by-hop, were dropped with every field their Connection named.
    /// Wins over `close`: a tunnel's connection is never reused anyway.
    pub upgrade: Option<&'a str>,
}

/// A field would have broken the head (CR/LF injection, bad token), so
/// nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeadError {
    what: String,
}

impl fmt::Display for RequestHeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refusing to send invalid {} to the backend", self.what)
    }
}

impl std::error::Error for RequestHeadError {}

/// Writes the head into `out` (cleared first, so a buffer can be reused).
/// On error `out` is left empty, never holding half a head.
///
/// A client header the proxy also adds (X-Forwarded-*, Via) is merged into
/// one line, client values first, then ours after `", "`, as Apache's
/// `apr_table_mergen` does; backends must read the rightmost entries they
/// trust. X-Forwarded-Proto (not in Apache) follows the same rule so a TLS
/// terminator in front of us keeps its entry.
pub fn write_request_head<'a, H>(
    head: &RequestHead<'a, H>,
    out: &mut Vec<u8>,
) -> Result<(), RequestHeadError>
where
    H: IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
{
    out.clear();
    let r = write_head(head, out);
    if r.is_err() {
        out.clear();
    }
    r
}

fn write_head<'a, H>(head: &RequestHead<'a, H>, out: &mut Vec<u8>) -> Result<(), RequestHeadError>
where
    H: IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
{
    check_token(head.method, "method")?;
    let target = head.path_and_query.as_bytes();
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(invalid("request target"));
    }
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    put(out, "Host", head.host.as_bytes())?;

    visit_fields(
        head.headers.clone(),
        head.forwarded.as_ref(),
        head.via,
        &mut Http1Fields(out),
    )?;

    match head.framing {
        BodyFraming::None => {}
        BodyFraming::ContentLength(n) => {
            put(out, "Content-Length", crate::decimal(n, &mut [0u8; 20]))?
        }
        BodyFraming::Chunked => put(out, "Transfer-Encoding", b"chunked")?,
    }
    if let Some(protocol) = head.upgrade {
        check_token(protocol, "Upgrade protocol")?;
        put(out, "Upgrade", protocol.as_bytes())?;
        put(out, "Connection", b"Upgrade")?;
    } else if head.close {
        put(out, "Connection", b"close")?;
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Receives the fields of a backend request from [`visit_fields`], in
/// order, each already checked (names are tokens, values hold no CR, LF
/// or NUL): how HTTP/1.1 (`write_request_head`) and HTTP/2 (proxy_http2)
/// share one set of rules.
pub trait FieldSink<'a> {
    /// A field of the client's, passed on as it came.
    fn client(&mut self, name: &'a str, value: &'a [u8]) -> Result<(), RequestHeadError>;
    /// One of ours (X-Forwarded-*, Via): the client's values of the same
    /// name (`earlier`) go first, then `value`, joined by `", "`.
    fn ours(
        &mut self,
        name: &'static str,
        earlier: &mut dyn Iterator<Item = &'a [u8]>,
        value: &'a [u8],
    ) -> Result<(), RequestHeadError>;
}

/// The fields a backend request carries besides Host and its framing:
/// the client's end-to-end ones (`headers`, in arrival order, without
/// hop-by-hop fields, those their `Connection` names, Host and
/// Content-Length), then X-Forwarded-* (`forwarded`) and `via`, each
/// merged with the client's field of the same name. Ours are added only
/// after filtering: Connection cannot name them away (CVE-2022-31813),
/// but a client value dropped by Connection stays dropped.
pub fn visit_fields<'a, H>(
    headers: H,
    forwarded: Option<&Forwarded<'a>>,
    via: Option<&'a str>,
    sink: &mut impl FieldSink<'a>,
) -> Result<(), RequestHeadError>
where
    H: IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
{
    let filter = HopFilter::from_headers(headers.clone());
    let passes = |name: &str| {
        !(filter.should_drop(name) || eq_lower(name, "host") || eq_lower(name, "content-length"))
    };
    let ours = forwarded::added(forwarded, via);
    // Which of ours the client sent too: those fields are merged into
    // ours below rather than passed here.
    let mut client_sent = [false; forwarded::ADDED];
    for (name, value) in headers.clone() {
        if !passes(name) {
            continue;
        }
        let merged = ours
            .iter()
            .position(|(n, v)| v.is_some() && n.eq_ignore_ascii_case(name));
        match merged {
            Some(i) => client_sent[i] = true,
            None => {
                check_token(name, "header name")?;
                check_value(value, name)?;
                sink.client(name, value)?;
            }
        }
    }
    for ((name, value), client_sent) in ours.into_iter().zip(client_sent) {
        let Some(value) = value else { continue };
        check_value(value, name)?;
        // The client's values first, in order (looked for only when it
        // sent some).
        let same = |(n, _): &(&'a str, &'a [u8])| n.eq_ignore_ascii_case(name) && passes(n);
        let earlier = || headers.clone().into_iter().take_while(|_| client_sent);
        for (_, v) in earlier().filter(same) {
            check_value(v, name)?;
        }
        let mut values = earlier().filter(same).map(|(_, v)| v);
        sink.ours(name, &mut values, value)?;
    }
    Ok(())
}

/// The HTTP/1.1 head's lines for [`visit_fields`].
struct Http1Fields<'o>(&'o mut Vec<u8>);

impl<'a> FieldSink<'a> for Http1Fields<'_> {
    fn client(&mut self, name: &'a str, value: &'a [u8]) -> Result<(), RequestHeadError> {
        line(self.0, name, value);
        Ok(())
    }
    fn ours(
        &mut self,
        name: &'static str,
        earlier: &mut dyn Iterator<Item = &'a [u8]>,
        value: &'a [u8],
    ) -> Result<(), RequestHeadError> {
        let out = &mut *self.0;
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        for v in earlier {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn put(out: &mut Vec<u8>, name: &str, value: &[u8]) -> Result<(), RequestHeadError> {
    check_value(value, name)?;
    line(out, name, value);
    Ok(())
}

impl RequestHeadError {
    /// An invalid `what` (a [`FieldSink`] refusing a field).
    pub fn new(what: &str) -> RequestHeadError {
        invalid(what)
    }
}

fn invalid(what: &str) -> RequestHeadError {
    RequestHeadError {
        what: what.to_owned(),
    }
}

/// RFC 9110 token: the only bytes allowed in a method or header name
/// (the core's byte table: one load per byte).
fn check_token(s: &str, what: &str) -> Result<(), RequestHeadError> {
    if !crate::fields::valid_name(s.as_bytes()) {
        return Err(invalid(what));
    }
    Ok(())
}

/// CR, LF or NUL in a value would end the line early: header injection.
/// The same rule as for every field the core accepts (no control bytes
/// but tab), checked a word at a time.
fn check_value(v: &[u8], name: &str) -> Result<(), RequestHeadError> {
    if !crate::fields::valid_value(v) {
        return Err(invalid(&format!("value of {name}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Headers<'a> = &'a [(&'a str, &'a [u8])];

    /// A GET of `/` from host `b` with these headers, nothing added.
    fn plain(headers: Headers<'_>) -> RequestHead<'_, impl Iterator<Item = (&str, &[u8])> + Clone> {
        RequestHead {
            method: "GET",
            path_and_query: "/",
            host: "b",
            headers: headers.iter().copied(),
            framing: BodyFraming::None,
            forwarded: None,
            via: None,
            close: false,
            upgrade: None,
        }
    }

    fn build(headers: Headers<'_>, framing: BodyFraming, fwd: bool) -> String {
        let head = RequestHead {
            method: "POST",
            path_and_query: "/app/x?y=1",
            host: "backend:8080",
            headers: headers.iter().copied(),
            framing,
            forwarded: fwd.then_some(Forwarded {
                for_addr: "192.0.2.7",
                host: Some(b"www.example.com"),
                server: "proxy.example",
                proto: "https",
            }),
            via: fwd.then_some("1.1 proxy.example"),
            close: !fwd,
            upgrade: None,
        };
        let mut out = b"stale".to_vec();
        write_request_head(&head, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strips_hop_by_hop_by_list_and_by_connection() {
        let headers: Headers = &[
            ("Host", b"www.example.com"),
            ("User-Agent", b"t/1"),
            ("Connection", b"keep-alive, X-Secret"),
            ("Keep-Alive", b"timeout=5"),
            ("TE", b"trailers"),
            ("X-Secret", b"s"),
            ("Proxy-Authorization", b"Basic x"),
            ("Content-Length", b"5"),
            ("Transfer-Encoding", b"chunked"),
            ("Expect", b"100-continue"),
            ("x-forwarded-for", b"10.0.0.1"),
            ("Upgrade", b"websocket"),
        ];
        assert_eq!(
            build(headers, BodyFraming::ContentLength(5), true),
            "POST /app/x?y=1 HTTP/1.1\r\n\
             Host: backend:8080\r\n\
             User-Agent: t/1\r\n\
             Expect: 100-continue\r\n\
             X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n\
             X-Forwarded-Host: www.example.com\r\n\
             X-Forwarded-Server: proxy.example\r\n\
             X-Forwarded-Proto: https\r\n\
             Via: 1.1 proxy.example\r\n\
             Content-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn connection_cannot_remove_our_forwarded_headers() {
        let headers: Headers = &[
            ("Connection", b"X-Forwarded-For, Via"),
            ("X-Forwarded-For", b"6.6.6.6"),
            ("Via", b"1.0 spoof"),
        ];
        let got = build(headers, BodyFraming::Chunked, true);
        assert!(got.contains("\r\nX-Forwarded-For: 192.0.2.7\r\n"), "{got}");
        assert!(got.contains("\r\nVia: 1.1 proxy.example\r\n"), "{got}");
        assert!(!got.contains("6.6.6.6") && !got.contains("spoof"), "{got}");
        assert!(got.ends_with("Transfer-Encoding: chunked\r\n\r\n"), "{got}");
    }

    #[test]
    fn without_add_headers_client_values_pass_untouched() {
        let headers: Headers = &[
            ("X-Forwarded-For", b"10.0.0.1"),
            ("X-Forwarded-For", b"10.0.0.2"),
            ("Via", b"1.0 a"),
        ];
        assert_eq!(
            build(headers, BodyFraming::None, false),
            "POST /app/x?y=1 HTTP/1.1\r\nHost: backend:8080\r\n\
             X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nVia: 1.0 a\r\n\
             Connection: close\r\n\r\n"
        );
        // With them on, several client lines merge into one before ours.
        let got = build(headers, BodyFraming::None, true);
        assert!(got.contains("X-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n"));
        assert!(got.contains("Via: 1.0 a, 1.1 proxy.example\r\n"));
    }

    #[test]
    fn injection_is_refused_and_buffer_left_empty() {
        let mut out = Vec::new();
        let mut head = plain(&[]);
        head.host = "b\r\nX-Evil: 1";
        let err = write_request_head(&head, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing to send invalid value of Host to the backend"
        );
        assert!(out.is_empty());
        head.host = "b";
        head.path_and_query = "/a b";
        assert!(write_request_head(&head, &mut out).is_err());
        head.path_and_query = "/";
        head.method = "GE T";
        assert!(write_request_head(&head, &mut out).is_err());
        let bad: Headers = &[("X-A", b"1\n2")];
        let head = plain(bad);
        assert!(write_request_head(&head, &mut out).is_err());
    }

    #[test]
    fn an_upgrade_is_asked_for_anew_and_connection_named_fields_stay_behind() {
        let headers: Headers = &[
            ("Host", b"www.example.com"),
            ("Connection", b"Upgrade, X-Secret"),
            ("Upgrade", b"websocket"),
            ("X-Secret", b"s"),
            ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let head = RequestHead {
            path_and_query: "/chat",
            host: "backend:8080",
            close: true,
            upgrade: Some("websocket"),
            ..plain(headers)
        };
        let mut out = Vec::new();
        write_request_head(&head, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /chat HTTP/1.1\r\nHost: backend:8080\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        );
    }
}
