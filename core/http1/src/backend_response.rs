//! Parses a backend's response head and decides how its body is delimited,
//! for every module that reads one (proxy_http, proxy_wstunnel's 101).
//!
//! Every error here becomes a 502 for the client (Apache: malformed status
//! line, bad header line, header over `responsefieldsize`), so each variant
//! says what the backend got wrong, in words fit for the error log.

use std::fmt;
use std::mem::MaybeUninit;

use crate::eq_lower_str as eq_lower;
use crate::hop_by_hop::{for_each_connection_token, is_hop_by_hop};

/// Apache's limits, for every module that reads a backend's head: header
/// fields per response, bytes per field line (`responsefieldsize`),
/// interim responses before the final one.
pub const MAX_HEADERS: usize = 100;
pub const MAX_FIELD: usize = 8192;
pub const MAX_INTERIM: u32 = 10;

/// How the response body ends (RFC 9112 §6.3, in that order of precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// HEAD request, 1xx, 204 or 304: no body whatever the headers say.
    NoBody,
    Chunked,
    ContentLength(u64),
    /// Read until the backend closes; the connection cannot be reused.
    CloseDelimited,
}

/// A response's header fields, in arrival order, kept as one copy of their
/// names and one of their values plus offsets: two allocations per head
/// instead of two per field, and names need no UTF-8 check when read.
/// Each field also records whether it stops at the proxy (hop-by-hop),
/// decided once while parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList {
    names: String,
    values: Vec<u8>,
    fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    /// Byte offsets (start, end) into `names` and `values`.
    name: (u32, u32),
    value: (u32, u32),
    /// Hop-by-hop, or named by the response's Connection header.
    hop: bool,
}

// The accessors are inline: modules read every field through them from
// another crate, where each would otherwise be a call.
impl HeaderList {
    /// Room for `fields` fields with `value_bytes` of values.
    fn with_capacity(fields: usize, value_bytes: usize) -> HeaderList {
        HeaderList {
            names: String::with_capacity(fields * 16),
            values: Vec::with_capacity(value_bytes),
            fields: Vec::with_capacity(fields),
        }
    }

    fn push(&mut self, name: &str, value: &[u8], hop: bool) {
        let (n0, v0) = (self.names.len() as u32, self.values.len() as u32);
        self.names.push_str(name);
        self.values.extend_from_slice(value);
        self.fields.push(Field {
            name: (n0, self.names.len() as u32),
            value: (v0, self.values.len() as u32),
            hop,
        });
    }

    #[inline]
    fn field(&self, f: &Field) -> (&str, &[u8]) {
        let (name, value) = (f.name, f.value);
        (
            self.names
                .get(name.0 as usize..name.1 as usize)
                .unwrap_or(""),
            self.values
                .get(value.0 as usize..value.1 as usize)
                .unwrap_or(b""),
        )
    }

    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone + '_ {
        self.fields.iter().map(|f| self.field(f))
    }

    /// The fields that go on to the client: all but the hop-by-hop ones
    /// and those the response's Connection header names.
    #[inline]
    pub fn end_to_end(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone + '_ {
        self.fields.iter().filter(|f| !f.hop).map(|f| self.field(f))
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<(&str, &[u8])> {
        self.fields.get(i).map(|f| self.field(f))
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Marks every field named `name` hop-by-hop.
    fn mark_hop(&mut self, name: &str) {
        for i in 0..self.fields.len() {
            let f = self.fields[i];
            if self.field(&f).0.eq_ignore_ascii_case(name) {
                self.fields[i].hop = true;
            }
        }
    }

    /// Drops every field named `name` (rare: a smuggling-shaped response).
    fn remove(&mut self, name: &str) {
        let mut kept = HeaderList::with_capacity(self.fields.len(), self.values.len());
        for f in &self.fields {
            let (n, v) = self.field(f);
            if !n.eq_ignore_ascii_case(name) {
                kept.push(n, v, f.hop);
            }
        }
        *self = kept;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// In arrival order. `Content-Length` is removed when `Transfer-Encoding`
    /// is present (it is wrong by definition then).
    pub headers: HeaderList,
    pub framing: ResponseFraming,
    /// The backend connection must not be reused after this response.
    pub connection_close: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    MalformedStatusLine,
    BadHeaderLine,
    /// A status or header line longer than the limit (`responsefieldsize`).
    HeaderTooLarge {
        limit: usize,
    },
    TooManyHeaders {
        limit: usize,
    },
    /// Content-Length not a number, or several that disagree.
    BadContentLength,
    /// `chunked` applied more than once.
    BadTransferEncoding,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::MalformedStatusLine => f.write_str("malformed status line from backend"),
            HeadError::BadHeaderLine => f.write_str("malformed header line from backend"),
            HeadError::HeaderTooLarge { limit } => {
                write!(f, "backend sent a header line longer than {limit} bytes")
            }
            HeadError::TooManyHeaders { limit } => {
                write!(f, "backend sent more than {limit} header fields")
            }
            HeadError::BadContentLength => {
                f.write_str("backend sent an invalid or conflicting Content-Length")
            }
            HeadError::BadTransferEncoding => {
                f.write_str("backend applied chunked transfer coding more than once")
            }
        }
    }
}

impl std::error::Error for HeadError {}

/// The most header fields a response may carry, whatever the caller asks.
const MAX_SLOTS: usize = 128;

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete, read more
/// and call again with the longer buffer. `Ok(Some((head, n)))`: the body
/// (or the next interim response) starts at `buf[n..]`. 1xx heads come back
/// like any other; the caller loops over them.
pub fn parse_response_head(
    buf: &[u8],
    max_headers: usize,
    max_field_size: usize,
    request_method_is_head: bool,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    // On the stack, and left uninitialised: this runs for every response,
    // and writing 128 empty headers first cost more than parsing five.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_SLOTS];
    let slots = &mut slots[..max_headers.min(MAX_SLOTS)];
    let mut resp = httparse::Response::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, slots);
    let consumed = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // Refuse an over-long line before it completes, or a backend
            // could make us buffer without bound.
            let tail = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if buf.len() - tail > max_field_size {
                return Err(HeadError::HeaderTooLarge {
                    limit: max_field_size,
                });
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyHeaders { limit: max_headers })
        }
        Err(httparse::Error::Status | httparse::Error::Version | httparse::Error::Token) => {
            return Err(HeadError::MalformedStatusLine)
        }
        Err(_) => return Err(HeadError::BadHeaderLine),
    };
    let (Some(status), Some(version_minor)) = (resp.code, resp.version) else {
        return Err(HeadError::MalformedStatusLine);
    };
    let reason = resp.reason.unwrap_or_default();
    // "HTTP/1.1 " + 3 digits + " " + reason.
    if 13 + reason.len() > max_field_size {
        return Err(HeadError::HeaderTooLarge {
            limit: max_field_size,
        });
    }
    let mut headers = HeaderList::with_capacity(resp.headers.len(), consumed);
    // Which framing fields are present, found while copying: the passes
    // below run only over what is there.
    let (mut has_te, mut has_connection) = (false, false);
    for h in resp.headers.iter() {
        if h.name.len() + 2 + h.value.len() > max_field_size {
            return Err(HeadError::HeaderTooLarge {
                limit: max_field_size,
            });
        }
        let hop = is_hop_by_hop(h.name);
        if hop {
            has_te |= eq_lower(h.name, "transfer-encoding");
            has_connection |= eq_lower(h.name, "connection");
        }
        headers.push(h.name, h.value, hop);
    }
    let fields = resp.headers.iter().map(|h| (h.name, h.value));
    let framing = if has_te {
        response_framing(request_method_is_head, status, fields.clone())?
    } else {
        length_framing(request_method_is_head, status, fields.clone())?
    };
    let conn = if has_connection {
        connection_header(&mut headers, fields.clone())
    } else {
        ConnectionTokens::default()
    };
    if has_te {
        // RFC 9112 §6.1: Transfer-Encoding overrides Content-Length and an
        // intermediary must remove the latter before forwarding. Such a
        // message smells of smuggling, so the connection is not reused.
        headers.remove("content-length");
    }
    let connection_close = conn.close
        || (version_minor == 0 && !conn.keep_alive)
        || framing == ResponseFraming::CloseDelimited
        || has_te;
    let head = ResponseHead {
        status,
        version_minor,
        headers,
        framing,
        connection_close,
    };
    Ok(Some((head, consumed)))
}

/// The `close` and `keep-alive` tokens of the Connection fields.
#[derive(Debug, Default)]
struct ConnectionTokens {
    close: bool,
    keep_alive: bool,
}

/// Reads the Connection fields: their tokens decide whether the connection
/// may be reused, and a header they name stops at the proxy like the fixed
/// hop-by-hop ones (marked in `headers`). A value that is not UTF-8 cannot
/// name a valid header, so it adds nothing.
fn connection_header<'a>(
    headers: &mut HeaderList,
    fields: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> ConnectionTokens {
    let mut tokens = ConnectionTokens::default();
    for_each_connection_token(fields, |token| {
        tokens.close |= eq_lower(token, "close");
        tokens.keep_alive |= eq_lower(token, "keep-alive");
        if !is_hop_by_hop(token) {
            headers.mark_hop(token);
        }
    });
    tokens
}

/// How the body of a response with these headers is delimited.
/// Transfer-Encoding wins over Content-Length (RFC 9112 §6.3); one whose
/// last coding is not chunked runs until close. Content-Length values
/// (several fields or a comma list) must all be the same number.
pub fn response_framing<'a>(
    request_method_is_head: bool,
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Result<ResponseFraming, HeadError> {
    if no_body(request_method_is_head, status) {
        return Ok(ResponseFraming::NoBody);
    }
    // Counted, not collected: no allocation for the common response.
    let (mut codings, mut chunked, mut last_chunked) = (0, 0, false);
    let all = headers
        .clone()
        .filter(|(n, _)| eq_lower(n, "transfer-encoding"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty());
    for coding in all {
        last_chunked = coding.eq_ignore_ascii_case(b"chunked");
        codings += 1;
        chunked += usize::from(last_chunked);
    }
    if codings > 0 {
        return match chunked {
            0 => Ok(ResponseFraming::CloseDelimited),
            1 if last_chunked => Ok(ResponseFraming::Chunked),
            1 => Ok(ResponseFraming::CloseDelimited),
            _ => Err(HeadError::BadTransferEncoding),
        };
    }
    length_framing(request_method_is_head, status, headers)
}

fn no_body(request_method_is_head: bool, status: u16) -> bool {
    request_method_is_head || (100..200).contains(&status) || status == 204 || status == 304
}

/// [`response_framing`] for a head without Transfer-Encoding: the body is
/// as long as Content-Length says, or runs until close.
fn length_framing<'a>(
    request_method_is_head: bool,
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<ResponseFraming, HeadError> {
    if no_body(request_method_is_head, status) {
        return Ok(ResponseFraming::NoBody);
    }
    let mut length = None;
    let mut seen_field = false;
    for (n, v) in headers {
        if !eq_lower(n, "content-length") {
            continue;
        }
        seen_field = true;
        for part in v.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            let n = crate::parse_decimal(part).ok_or(HeadError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::BadContentLength);
            }
            length = Some(n);
        }
    }
    match length {
        Some(n) => Ok(ResponseFraming::ContentLength(n)),
        None if seen_field => Err(HeadError::BadContentLength),
        None => Ok(ResponseFraming::CloseDelimited),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, HeadError> {
        parse_response_head(buf, 100, 8192, false)
    }

    fn framing_of(raw: &str) -> Result<ResponseFraming, HeadError> {
        parse(raw.as_bytes()).map(|r| r.unwrap().0.framing)
    }

    #[test]
    fn parses_head_and_reports_body_start() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc";
        let (head, n) = parse(raw).unwrap().unwrap();
        assert_eq!((head.status, head.version_minor), (200, 1));
        assert_eq!(head.headers.get(1), Some(("X-A", &b"b"[..])));
        assert_eq!(head.framing, ResponseFraming::ContentLength(3));
        assert!(!head.connection_close);
        assert_eq!(&raw[n..], b"abc");
    }

    #[test]
    fn partial_input_is_none_at_every_cut() {
        let raw = b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse(&raw[..cut]), Ok(None), "cut {cut}");
        }
        assert!(parse(raw).unwrap().is_some());
    }

    #[test]
    fn no_body_cases() {
        for raw in [
            "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\n",
        ] {
            assert_eq!(framing_of(raw), Ok(ResponseFraming::NoBody), "{raw}");
        }
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let (head, _) = parse_response_head(raw, 100, 8192, true).unwrap().unwrap();
        assert_eq!(head.framing, ResponseFraming::NoBody);
        assert_eq!(head.headers.len(), 1, "HEAD keeps its Content-Length");
    }

    #[test]
    fn switching_protocols_parses() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81";
        let (head, n) = parse(raw).unwrap().unwrap();
        assert_eq!((head.status, head.framing), (101, ResponseFraming::NoBody));
        assert_eq!(&raw[n..], b"\x81");
    }

    #[test]
    fn a_switch_keeps_none_of_the_fields_its_connection_names() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade, X-Internal\r\nX-Internal: 1\r\n\
                    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let (head, _) = parse(raw).unwrap().unwrap();
        let passed: Vec<_> = head.headers.end_to_end().map(|(n, _)| n).collect();
        assert_eq!(passed, ["Sec-WebSocket-Accept"]);
    }

    #[test]
    fn framing_rules() {
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n";
        let (head, _) = parse(chunked.as_bytes()).unwrap().unwrap();
        assert_eq!(head.framing, ResponseFraming::Chunked);
        assert!(head.connection_close, "TE + CL: do not reuse");
        assert!(!head.headers.iter().any(|(n, _)| n == "Content-Length"));
        let close = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(framing_of(close), Ok(ResponseFraming::CloseDelimited));
        let twice =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(framing_of(twice), Err(HeadError::BadTransferEncoding));
        let same = "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(framing_of(same), Ok(ResponseFraming::ContentLength(5)));
        for bad in ["5, 6", "-1", "+5", "0x5", "", "99999999999999999999", "5 5"] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(
                framing_of(&raw),
                Err(HeadError::BadContentLength),
                "{bad:?}"
            );
        }
        let raw = "HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(framing_of(raw), Ok(ResponseFraming::CloseDelimited));
    }

    #[test]
    fn connection_close_rules() {
        let close = |raw: &str| parse(raw.as_bytes()).unwrap().unwrap().0.connection_close;
        assert!(close(
            "HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(close("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!close(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ));
        // A value that is the token alone, in any case, is read the same way.
        assert!(close(
            "HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!close(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
        let raw = b"HTTP/1.1 200 OK\r\nClose: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let (head, _) = parse(raw).unwrap().unwrap();
        let passed: Vec<_> = head.headers.end_to_end().map(|(n, _)| n).collect();
        assert_eq!(
            passed,
            ["Content-Length"],
            "a field named Close stops here too"
        );
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_stop_here() {
        let raw = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\nconnection: x-b\r\n\
                    X-B: 2\r\nConnection: keep-alive, X-A\r\nContent-Length: 0\r\nX-C: 3\r\n\r\n";
        let (head, _) = parse(raw).unwrap().unwrap();
        let passed: Vec<_> = head.headers.end_to_end().map(|(n, _)| n).collect();
        assert_eq!(passed, ["Content-Length", "X-C"]);
        assert_eq!(head.headers.len(), 7, "iter() still has every field");
        assert!(!head.connection_close);
    }

    #[test]
    fn errors() {
        for bad in [
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTX/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 OK\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad.as_bytes()),
                Err(HeadError::MalformedStatusLine),
                "{bad:?}"
            );
        }
        let bad = b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n";
        assert_eq!(parse(bad), Err(HeadError::BadHeaderLine));
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "A: b\r\n".repeat(101));
        let err = parse(many.as_bytes()).unwrap_err();
        assert_eq!(err, HeadError::TooManyHeaders { limit: 100 });
        assert_eq!(err.to_string(), "backend sent more than 100 header fields");
        let long = format!("HTTP/1.1 200 OK\r\nA: {}\r\n\r\n", "x".repeat(8200));
        assert_eq!(
            parse(long.as_bytes()),
            Err(HeadError::HeaderTooLarge { limit: 8192 })
        );
        // The same line, still arriving, is refused before it ends.
        let partial = &long.as_bytes()[..8215];
        assert_eq!(
            parse(partial),
            Err(HeadError::HeaderTooLarge { limit: 8192 })
        );
    }
}
