//! The response head for the client: the status line, the fields the
//! modules set, and the framing the core decides (RFC 9112 §6): a known
//! length goes out as Content-Length, a streamed body as chunked (or up
//! to the close, for an HTTP/1.0 client). Fields that would contradict
//! the core's framing are not copied.

use crate::fields::Fields;
use crate::request_head::Version;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// How the response body is delimited on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Framing {
    /// No body may follow (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes.
    UntilClose,
}

/// What the core knows of the request and the body it is about to send.
pub struct HeadFacts {
    pub status: u16,
    pub version: Version,
    pub head_request: bool,
    /// The length of a body already complete (an error page, an empty
    /// body); `None` for one a handler is still producing.
    pub known_length: Option<u64>,
    /// Whether this response is the connection's last.
    pub close: bool,
}

/// 1xx, 204 and 304 never carry a body, whatever their fields say
/// (RFC 9112 §6.3).
pub fn status_has_no_body(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

/// Writes the head into `out`; returns its framing and whether the
/// connection must close after it.
pub fn encode(out: &mut Vec<u8>, fields: &Fields, facts: &HeadFacts) -> (Framing, bool) {
    let status = facts.status;
    status_line(out, status);
    // One pass over the fields: those the core frames itself are noted,
    // not copied (a 101's Connection and Upgrade are the switch itself).
    let switching = status == 101;
    let mut declared = None;
    let mut seen_length = false;
    let mut close = facts.close;
    let mut has_date = false;
    for (name, value) in fields.iter() {
        let keep = match name {
            b"content-length" => {
                if !seen_length {
                    seen_length = true;
                    declared = crate::parse_decimal(value.trim_ascii());
                }
                false
            }
            b"connection" => {
                close |= value.eq_ignore_ascii_case(b"close");
                switching
            }
            b"transfer-encoding" | b"keep-alive" => switching,
            b"date" => {
                has_date = true;
                true
            }
            _ => true,
        };
        if keep {
            field(out, name, value);
        }
    }
    let (framing, length_field) = if status_has_no_body(status) {
        // A 304 may give the length of the body it stands for, as HEAD
        // does; 1xx and 204 must not carry one.
        (Framing::None, declared.filter(|_| status == 304))
    } else if facts.head_request {
        (Framing::None, declared.or(facts.known_length))
    } else if let Some(n) = facts.known_length.or(declared) {
        (Framing::Length(n), Some(n))
    } else if facts.version == Version::Http11 {
        (Framing::Chunked, None)
    } else {
        close = true;
        (Framing::UntilClose, None)
    };
    if !switching {
        if let Some(n) = length_field {
            let mut digits = [0u8; 20];
            field(out, b"content-length", crate::decimal(n, &mut digits));
        }
        if framing == Framing::Chunked {
            field(out, b"transfer-encoding", b"chunked");
        }
        if close {
            field(out, b"connection", b"close");
        } else if facts.version == Version::Http10 {
            field(out, b"connection", b"keep-alive");
        }
    }
    if !has_date {
        with_date(|date| field(out, b"date", date));
    }
    out.extend_from_slice(b"\r\n");
    (framing, close && !switching)
}

/// The head of a 2xx answer to CONNECT (RFC 9110 §9.3.6): the tunnel
/// starts right after it, so it has no body and no framing. The status
/// line says `Connection Established`, as Apache's mod_proxy_connect
/// writes it; fields about the connection or a body are not copied.
pub fn encode_established(out: &mut Vec<u8>, fields: &Fields, status: u16) {
    if status == 200 {
        out.extend_from_slice(b"HTTP/1.1 200 Connection Established\r\n");
    } else {
        status_line(out, status);
    }
    let mut has_date = false;
    for (name, value) in fields.iter() {
        match name {
            b"content-length" | b"transfer-encoding" | b"connection" | b"keep-alive" => {}
            _ => {
                has_date |= name == b"date";
                field(out, name, value);
            }
        }
    }
    if !has_date {
        with_date(|date| field(out, b"date", date));
    }
    out.extend_from_slice(b"\r\n");
}

fn status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut digits = [0u8; 20];
    out.extend_from_slice(crate::decimal(u64::from(status), &mut digits));
    out.push(b' ');
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The `Date` value, formatted once per second per thread.
pub fn with_date(f: impl FnOnce(&[u8])) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|date| {
        let mut date = date.borrow_mut();
        if date.0 != secs {
            *date = (secs, httpdate::fmt_http_date(now));
        }
        f(date.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &Fields, facts: HeadFacts) -> (String, Framing, bool) {
        let mut out = Vec::new();
        let (framing, close) = encode(&mut out, fields, &facts);
        (String::from_utf8(out).unwrap(), framing, close)
    }

    fn facts(status: u16, known_length: Option<u64>) -> HeadFacts {
        HeadFacts {
            status,
            version: Version::Http11,
            head_request: false,
            known_length,
            close: false,
        }
    }

    #[test]
    fn a_streamed_body_is_chunked_and_module_framing_is_dropped() {
        let mut f = Fields::default();
        f.append(b"Content-Type", b"text/plain");
        f.append(b"Transfer-Encoding", b"gzip");
        f.append(b"Connection", b"keep-alive");
        let (text, framing, close) = head(&f, facts(200, None));
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\ndate: "), "{text}");
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
        assert_eq!((framing, close), (Framing::Chunked, false));
    }

    #[test]
    fn a_declared_length_frames_the_body() {
        let mut f = Fields::default();
        f.append(b"Content-Length", b"12");
        let (text, framing, _) = head(&f, facts(200, None));
        assert!(text.contains("content-length: 12\r\n"), "{text}");
        assert_eq!(framing, Framing::Length(12));
    }

    #[test]
    fn http10_streams_until_close_and_204_has_no_body() {
        let f = Fields::default();
        let mut old = facts(200, None);
        old.version = Version::Http10;
        let (text, framing, close) = head(&f, old);
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert_eq!((framing, close), (Framing::UntilClose, true));
        let (text, framing, _) = head(&f, facts(204, Some(0)));
        assert!(!text.contains("content-length"), "{text}");
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn a_304_keeps_its_length_and_a_204_loses_it() {
        let mut f = Fields::default();
        f.append(b"Content-Length", b"512");
        let (text, framing, _) = head(&f, facts(304, None));
        assert!(text.contains("content-length: 512\r\n"), "{text}");
        assert_eq!(framing, Framing::None);
        let (text, _, _) = head(&f, facts(204, None));
        assert!(!text.contains("content-length"), "{text}");
    }

    #[test]
    fn switching_protocols_keeps_its_connection_fields() {
        let mut f = Fields::default();
        f.append(b"Connection", b"Upgrade");
        f.append(b"Upgrade", b"websocket");
        let (text, framing, close) = head(&f, facts(101, None));
        assert!(
            text.starts_with(
                "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
            ),
            "{text}"
        );
        assert_eq!((framing, close), (Framing::None, false));
    }

    #[test]
    fn a_connect_answer_has_no_framing() {
        let mut f = Fields::default();
        f.append(b"Content-Length", b"5");
        f.append(b"Transfer-Encoding", b"chunked");
        f.append(b"Connection", b"close");
        f.append(b"Proxy-Agent", b"modproxy");
        let mut out = Vec::new();
        encode_established(&mut out, &f, 200);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 200 Connection Established\r\nproxy-agent: modproxy\r\ndate: "
            ),
            "{text}"
        );
        assert!(
            text.ends_with("\r\n\r\n") && !text.contains("length") && !text.contains("chunked")
        );
    }
}
