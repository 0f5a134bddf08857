//! An HTTP/2 request in the shape of an HTTP/1.1 one, and a response's
//! fields back in HTTP/2's. The checks here are what stops a request that
//! is harmless as HTTP/2 from becoming two requests, or a different one,
//! when a module forwards it as HTTP/1.1 (the H2.CL, H2.TE and CRLF
//! injection classes): no connection-specific field, no CR, LF or NUL
//! anywhere, one Content-Length that the DATA must match (`body`), and a
//! Host that agrees with `:authority`.

use crate::http::fields::{valid_value, Fields};
use crate::http::request_head::{self, BodyFraming, Refusal, RequestHead, Version};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;

fn refuse(status: u16, why: &'static str) -> Refusal {
    Refusal { status, why }
}

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2): they describe an HTTP/1.1
/// connection, and forwarded they would reframe the request.
const CONNECTION_SPECIFIC: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The request head modules see for a stream; `end_stream` says its
/// HEADERS frame ended it (no body).
pub fn request_head(
    parts: &Parts,
    end_stream: bool,
    max_fields: usize,
) -> Result<RequestHead, Refusal> {
    if parts.headers.len() > max_fields {
        return Err(refuse(431, "more header fields than limits.request_fields"));
    }
    let method = parts.method.as_str();
    let authority = parts.uri.authority().map(|a| a.as_str());
    let target = if parts.method == http::Method::CONNECT {
        // Extended CONNECT (RFC 8441) is not offered: a plain CONNECT
        // names its tunnel's authority and nothing else.
        authority.ok_or(refuse(400, "CONNECT without :authority"))?
    } else {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| p.starts_with('/') || *p == "*")
            .ok_or(refuse(400, ":path is not a path"))?
    };
    let size: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum::<usize>()
        + authority.map_or(0, |a| a.len() + 4);
    let mut fields = Fields::with_capacity(
        request_head::arena_size(size, target.len()),
        parts.headers.len() + 3,
    );
    let mut length = None;
    let mut host = None;
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in &parts.headers {
        let (name, value) = (name.as_str(), value.as_bytes());
        if !valid_value(value) {
            return Err(refuse(400, "CR, LF or NUL in a header value"));
        }
        if CONNECTION_SPECIFIC.contains(&name) {
            return Err(refuse(
                400,
                "a connection-specific header field in an HTTP/2 request",
            ));
        }
        match name {
            "te" if !value.eq_ignore_ascii_case(b"trailers") => {
                return Err(refuse(
                    400,
                    "TE other than \"trailers\" in an HTTP/2 request",
                ))
            }
            "content-length" => {
                let n = modproxy_http1::parse_decimal(value.trim_ascii())
                    .ok_or(refuse(400, "invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(refuse(400, "differing Content-Length fields"));
                }
                length = Some(n);
            }
            "host" => host = Some(value),
            // Split into crumbs for HPACK's sake; one field again for
            // HTTP/1.1 (RFC 9113 §8.2.3).
            "cookie" => {
                cookies.push(value);
                continue;
            }
            _ => {}
        }
        fields.append(name.as_bytes(), value);
    }
    if !cookies.is_empty() {
        fields.append(b"cookie", &cookies.join(&b"; "[..]));
    }
    match (host, authority) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a.as_bytes()) => {
            return Err(refuse(400, "Host differs from :authority"))
        }
        (None, Some(a)) => fields.append(b"host", a.as_bytes()),
        (None, None) => return Err(refuse(400, "neither :authority nor Host")),
        _ => {}
    }
    let framing = match length {
        Some(n) if end_stream && n > 0 => {
            return Err(refuse(400, "Content-Length on a request without a body"))
        }
        Some(n) => BodyFraming::Length(n),
        None if end_stream => BodyFraming::None,
        // A body of unknown length, as an HTTP/1.1 client says it.
        None => {
            fields.append(b"transfer-encoding", b"chunked");
            BodyFraming::Chunked
        }
    };
    request_head::from_parts(method, target, fields, Version::Http2, framing)
}

/// A response's fields for HEADERS: the connection-specific ones dropped
/// (the core frames HTTP/1.1 bodies itself, and HTTP/2 has no such
/// fields); names lower-case, as HTTP/2 requires. `length` is the body's,
/// when the core knows it.
pub fn response_fields(fields: &Fields, length: Option<u64>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(fields.len() + 2);
    let mut has_date = false;
    for (name, value) in fields.iter() {
        if CONNECTION_SPECIFIC.iter().any(|c| c.as_bytes() == name)
            || (length.is_some() && name == b"content-length")
        {
            continue;
        }
        has_date |= name == b"date";
        // Fields were checked when modules set them; a name that still
        // does not parse is skipped, not sent malformed.
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    if let Some(n) = length {
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if !has_date {
        modproxy_http1::response_head::with_date(|date| {
            if let Ok(v) = HeaderValue::from_bytes(date) {
                map.insert(http::header::DATE, v);
            }
        });
    }
    map
}

/// Trailer fields as HTTP/2 sends them.
pub fn trailer_fields(fields: &Fields) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields.iter() {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

/// A client's trailers, kept for modules (`Headers::RequestTrailers`).
pub fn store_trailers(map: &HeaderMap, out: &mut Fields) {
    for (name, value) in map {
        if valid_value(value.as_bytes()) && !CONNECTION_SPECIFIC.contains(&name.as_str()) {
            out.append(name.as_str().as_bytes(), value.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], uri: &str) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_get_becomes_http11_with_host_from_authority() {
        let head = request_head(
            &parts(
                &[("cookie", "a=1"), ("cookie", "b=2")],
                "https://example.com/p?q=1",
            ),
            true,
            100,
        )
        .unwrap();
        assert_eq!((head.path(), head.query()), (&b"/p"[..], &b"q=1"[..]));
        assert_eq!(head.fields.get(b"host"), Some(&b"example.com"[..]));
        assert_eq!(head.fields.get(b"cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(head.framing, BodyFraming::None);
        assert_eq!(head.version.as_str(), "HTTP/2.0");
    }

    #[test]
    fn a_body_without_length_is_chunked_for_http11() {
        let head = request_head(&parts(&[], "https://a/up"), false, 100).unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert_eq!(head.fields.get(b"transfer-encoding"), Some(&b"chunked"[..]));
        let head = request_head(
            &parts(&[("content-length", "5")], "https://a/up"),
            false,
            100,
        )
        .unwrap();
        assert_eq!(head.framing, BodyFraming::Length(5));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let refused =
            |h: &[(&str, &str)], end: bool| match request_head(&parts(h, "https://a/"), end, 100) {
                Ok(_) => "accepted",
                Err(r) => r.why,
            };
        assert!(refused(&[("transfer-encoding", "chunked")], false).contains("connection-specific"));
        assert!(refused(&[("upgrade", "h2c")], true).contains("connection-specific"));
        assert!(refused(&[("te", "gzip")], true).contains("TE"));
        assert!(
            refused(&[("content-length", "1"), ("content-length", "2")], false)
                .contains("differing")
        );
        assert!(refused(&[("content-length", "3")], true).contains("without a body"));
        assert!(refused(&[("host", "b")], true).contains(":authority"));
        // CR, LF and NUL never reach this far: h2 decodes fields into the
        // http crate's types, which refuse them (tests/tests/http2_*.rs
        // sends them raw).
    }
}
