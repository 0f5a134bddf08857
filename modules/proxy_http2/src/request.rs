//! The request for the backend, built once per exchange (so a retry sends
//! the same head): `:method`, `:scheme`, `:authority` (the backend's, or
//! the client's Host with `preserve_host`), `:path`, and the client's
//! end-to-end fields with X-Forwarded-* and Via, by the same rules as
//! HTTP/1.1 backends (`modproxy_http1::backend_request::visit_fields`).
//! HTTP/2 forbids connection-specific fields, and those rules drop them
//! (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade,
//! TE); `te: trailers` is then written anew when the client sent it, as
//! gRPC needs.

use crate::target::Target;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request as HttpRequest, Uri};
use modproxy_api::proxy::exchange_flags;
use modproxy_api::{Headers, Request};
use modproxy_http1::backend_request::{visit_fields, FieldSink, RequestHeadError};
use modproxy_http1::forwarded::{via_value, Forwarded};
use modproxy_http1::{eq_lower_str as eq_lower, parse_decimal};

/// What the exchange needs to know about the request, decided up front.
pub struct Plan {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// The client sends no body: the HEADERS frame ends the stream.
    pub no_body: bool,
    /// The client's Content-Length, if it gave one.
    pub length: Option<u64>,
    /// Safe to send twice (RFC 9110 §9.2.2): a retry after the connection
    /// broke before any answer.
    pub idempotent: bool,
    /// Our Via element when ProxyVia is on, also added to the response.
    pub via: Option<String>,
}

impl Plan {
    /// The request for the first attempt, moved out of the plan: a clone
    /// would copy every field (a rare retry builds the plan again).
    pub fn take_request(&mut self) -> HttpRequest<()> {
        let mut r = HttpRequest::new(());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = std::mem::take(&mut self.uri);
        *r.version_mut() = http::Version::HTTP_2;
        *r.headers_mut() = std::mem::take(&mut self.headers);
        r
    }
}

/// Builds the plan; `Err` is a log line (the client's request is at fault).
pub fn plan(req: &Request, target: &Target<'_>, flags: u32) -> Result<Plan, String> {
    let fields = req.headers(Headers::Request);
    let mut client_host = None;
    let mut length = None;
    let mut chunked = false;
    let mut te_trailers = false;
    for (name, value) in fields.iter() {
        if eq_lower(name, "host") {
            client_host.get_or_insert(value);
        } else if eq_lower(name, "content-length") {
            let n = parse_decimal(value.trim_ascii())
                .ok_or_else(|| "client sent an invalid Content-Length".to_owned())?;
            length = Some(n);
        } else if eq_lower(name, "transfer-encoding") {
            chunked = true;
        } else if eq_lower(name, "te") {
            te_trailers |= value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
        }
    }
    let method = Method::from_bytes(req.method().as_bytes())
        .map_err(|_| format!("refusing to send method {:?} to the backend", req.method()))?;
    let authority = match client_host.and_then(modproxy_api::sdk::utf8) {
        Some(h) if flags & exchange_flags::PRESERVE_HOST != 0 => h.to_owned(),
        _ => target.authority(),
    };
    let uri = Uri::builder()
        .scheme(target.scheme())
        .authority(authority.as_str())
        .path_and_query(target.path_and_query.as_str())
        .build()
        .map_err(|e| format!("refusing to send an invalid request target to the backend: {e}"))?;
    let (addr, server) = (req.client_addr(), req.server_name());
    let via = (flags & exchange_flags::VIA != 0).then(|| via_value(req.version(), server));
    let forwarded = (flags & exchange_flags::ADD_FORWARDED != 0)
        .then(|| Forwarded::new(addr, client_host, server, req.scheme()));
    let mut sink = H2Fields {
        map: HeaderMap::with_capacity(fields.iter().count() + 6),
        scratch: Vec::new(),
    };
    visit_fields(fields.iter(), forwarded.as_ref(), via.as_deref(), &mut sink)
        .map_err(|e| e.to_string())?;
    let mut headers = sink.map;
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    // We answer a client's 100-continue ourselves (by reading its body).
    headers.remove(http::header::EXPECT);
    if let Some(n) = length {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let m = req.method();
    // An HTTP/2 client's body has no framing field to tell of it: only
    // HTTP/1.x says "no body" by leaving both out.
    let h1 = req.version().starts_with("HTTP/1");
    Ok(Plan {
        no_body: length == Some(0) || (h1 && length.is_none() && !chunked),
        length,
        idempotent: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"].contains(&m),
        method,
        uri,
        headers,
        via,
    })
}

/// The fields as an h2 header map.
struct H2Fields {
    map: HeaderMap,
    scratch: Vec<u8>,
}

impl H2Fields {
    fn put(&mut self, name: &str, value: &[u8]) -> Result<(), RequestHeadError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| RequestHeadError::new("header name"))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| RequestHeadError::new(&format!("value of {name}")))?;
        self.map.append(name, value);
        Ok(())
    }
}

impl<'a> FieldSink<'a> for H2Fields {
    fn client(&mut self, name: &'a str, value: &'a [u8]) -> Result<(), RequestHeadError> {
        self.put(name, value)
    }
    fn ours(
        &mut self,
        name: &'static str,
        earlier: &mut dyn Iterator<Item = &'a [u8]>,
        value: &'a [u8],
    ) -> Result<(), RequestHeadError> {
        let mut joined = std::mem::take(&mut self.scratch);
        joined.clear();
        for v in earlier {
            joined.extend_from_slice(v);
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(value);
        let r = self.put(name, &joined);
        self.scratch = joined;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modproxy_http1::forwarded::Forwarded;

    fn fields(headers: &[(&'static str, &'static [u8])], fwd: bool) -> HeaderMap {
        let mut sink = H2Fields {
            map: HeaderMap::new(),
            scratch: Vec::new(),
        };
        let forwarded = fwd.then_some(Forwarded {
            for_addr: "192.0.2.7",
            host: Some(b"www.example.com"),
            server: "proxy.example",
            proto: "https",
        });
        visit_fields(headers.iter().copied(), forwarded.as_ref(), None, &mut sink).unwrap();
        sink.map
    }

    #[test]
    fn connection_specific_fields_stay_behind_and_ours_are_merged() {
        let map = fields(
            &[
                ("host", b"www.example.com"),
                ("connection", b"keep-alive, x-secret"),
                ("keep-alive", b"timeout=5"),
                ("proxy-connection", b"keep-alive"),
                ("transfer-encoding", b"chunked"),
                ("upgrade", b"h2c"),
                ("te", b"trailers"),
                ("x-secret", b"s"),
                ("content-length", b"5"),
                ("user-agent", b"t/1"),
                ("set-me", b"1"),
                ("set-me", b"2"),
                ("x-forwarded-for", b"10.0.0.1"),
            ],
            true,
        );
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "user-agent",
                "set-me",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-server",
                "x-forwarded-proto"
            ]
        );
        assert_eq!(map.get_all("set-me").iter().count(), 2);
        assert_eq!(map["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
    }

    #[test]
    fn a_bad_value_is_refused() {
        let mut sink = H2Fields {
            map: HeaderMap::new(),
            scratch: Vec::new(),
        };
        let bad: &[(&str, &[u8])] = &[("x-a", b"1\n2")];
        assert!(visit_fields(bad.iter().copied(), None, None, &mut sink).is_err());
    }
}
