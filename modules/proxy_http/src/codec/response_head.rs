//! Parses a backend's response head and decides how its body is delimited.
//!
//! Every error here becomes a 502 for the client (Apache: malformed status
//! line, bad header line, header over `responsefieldsize`), so each variant
//! says what the backend got wrong, in words fit for the error log.

use std::fmt;

use super::hop_by_hop::HopFilter;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList {
    names: String,
    values: Vec<u8>,
    /// (name end, value end); each starts where the previous one ended.
    ends: Vec<(u32, u32)>,
}

impl HeaderList {
    fn push(&mut self, name: &str, value: &[u8]) {
        self.names.push_str(name);
        self.values.extend_from_slice(value);
        self.ends
            .push((self.names.len() as u32, self.values.len() as u32));
    }

    fn field(&self, i: usize) -> (&str, &[u8]) {
        let (name_start, value_start) = match i {
            0 => (0, 0),
            _ => self.ends[i - 1],
        };
        let (name_end, value_end) = self.ends[i];
        (
            &self.names[name_start as usize..name_end as usize],
            &self.values[value_start as usize..value_end as usize],
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone + '_ {
        (0..self.ends.len()).map(|i| self.field(i))
    }

    pub fn get(&self, i: usize) -> Option<(&str, &[u8])> {
        (i < self.ends.len()).then(|| self.field(i))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Drops every field named `name` (rare: a smuggling-shaped response).
    fn remove(&mut self, name: &str) {
        let mut kept = HeaderList::default();
        for (n, v) in self.iter().filter(|(n, _)| !n.eq_ignore_ascii_case(name)) {
            kept.push(n, v);
        }
        *self = kept;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
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
    // On the stack: this runs for every response.
    let mut slots = [httparse::EMPTY_HEADER; MAX_SLOTS];
    let mut resp = httparse::Response::new(&mut slots[..max_headers.min(MAX_SLOTS)]);
    let consumed = match resp.parse(buf) {
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
    let reason = resp.reason.unwrap_or_default().to_owned();
    // "HTTP/1.1 " + 3 digits + " " + reason.
    if 13 + reason.len() > max_field_size {
        return Err(HeadError::HeaderTooLarge {
            limit: max_field_size,
        });
    }
    let mut headers = HeaderList::default();
    headers.names.reserve(resp.headers.len() * 16);
    headers.values.reserve(consumed);
    headers.ends.reserve(resp.headers.len());
    for h in resp.headers.iter() {
        if h.name.len() + 2 + h.value.len() > max_field_size {
            return Err(HeadError::HeaderTooLarge {
                limit: max_field_size,
            });
        }
        headers.push(h.name, h.value);
    }

    let framing = response_framing(request_method_is_head, status, headers.iter())?;
    let has_te = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    if has_te {
        // RFC 9112 §6.1: Transfer-Encoding overrides Content-Length and an
        // intermediary must remove the latter before forwarding. Such a
        // message smells of smuggling, so the connection is not reused.
        headers.remove("content-length");
    }
    let conn = HopFilter::from_headers(headers.iter());
    let connection_close = conn.has_token("close")
        || (version_minor == 0 && !conn.has_token("keep-alive"))
        || framing == ResponseFraming::CloseDelimited
        || has_te;
    let head = ResponseHead {
        status,
        reason,
        version_minor,
        headers,
        framing,
        connection_close,
    };
    Ok(Some((head, consumed)))
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
    if request_method_is_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(ResponseFraming::NoBody);
    }
    let codings: Vec<&[u8]> = headers
        .clone()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .collect();
    if !codings.is_empty() {
        let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
        return match codings.iter().filter(|c| chunked(c)).count() {
            0 => Ok(ResponseFraming::CloseDelimited),
            1 if codings.last().is_some_and(|c| chunked(c)) => Ok(ResponseFraming::Chunked),
            1 => Ok(ResponseFraming::CloseDelimited),
            _ => Err(HeadError::BadTransferEncoding),
        };
    }
    let mut length = None;
    let mut seen_field = false;
    for (n, v) in headers {
        if !n.eq_ignore_ascii_case("content-length") {
            continue;
        }
        seen_field = true;
        for part in v.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            let n = parse_length(part).ok_or(HeadError::BadContentLength)?;
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

/// Digits only: no sign, no spaces inside, no overflow.
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
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
        assert_eq!(
            (head.status, head.reason.as_str(), head.version_minor),
            (200, "OK", 1)
        );
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
