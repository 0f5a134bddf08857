//! The request head as the client sent it, parsed once (httparse) into a
//! [`Fields`] arena, with the framing of its body decided by RFC 9112's
//! rules. Anything ambiguous is refused, because a proxy that frames a
//! request differently from its backend can be made to smuggle another.

use crate::fields::{Fields, Span};
use std::mem::MaybeUninit;

/// Room left in a head's arena for text its user stores after parsing
/// (the server keeps a request's notes there), so that needs no second
/// allocation.
const ARENA_SPARE: usize = 256;

/// At most this many fields are parsed on the stack; a configured limit
/// above it costs a heap array per head.
const STACK_FIELDS: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    Http10,
    Http11,
    /// A stream of an HTTP/2 connection, brought to this shape by the
    /// server (its pseudo-fields as the request line, `:authority` as Host).
    Http2,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            // What Apache's %r and SERVER_PROTOCOL say.
            Version::Http2 => "HTTP/2.0",
        }
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

pub struct RequestHead {
    pub fields: Fields,
    method: Span,
    /// The path modules see: the one received until the server replaces
    /// it with its canonical form ([`RequestHead::set_path`]).
    path: Span,
    /// The path as received, for the access log.
    received_path: Span,
    query: Span,
    /// `scheme://authority` of an absolute-form target, else empty.
    absolute_authority: Span,
    authority: Span,
    pub version: Version,
    pub framing: BodyFraming,
    /// The client allows another request on this connection.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// Why a head was refused: the status to answer (the connection closes).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: &'static str,
}

fn refuse(status: u16, why: &'static str) -> Refusal {
    Refusal { status, why }
}

/// The request line's pieces are bytes that were checked to be UTF-8
/// when the head was parsed; modules get them as such, so they are not
/// checked again on every access.
impl RequestHead {
    pub fn method(&self) -> &[u8] {
        self.fields.text(&self.method)
    }
    pub fn path(&self) -> &[u8] {
        self.fields.text(&self.path)
    }
    /// The path as the client sent it, whatever [`RequestHead::set_path`] did.
    pub fn received_path(&self) -> &[u8] {
        self.fields.text(&self.received_path)
    }
    /// Replaces the path modules see (with its normalised form).
    pub fn set_path(&mut self, path: &[u8]) {
        self.path = self.fields.store(path);
    }
    pub fn query(&self) -> &[u8] {
        self.fields.text(&self.query)
    }
    pub fn absolute_authority(&self) -> &[u8] {
        self.fields.text(&self.absolute_authority)
    }
    /// The host the request is for: its `Host` field, or the authority of
    /// an absolute-form target.
    pub fn host(&self) -> Option<&[u8]> {
        self.fields
            .get(b"host")
            .or_else(|| (!self.authority.is_empty()).then(|| self.fields.text(&self.authority)))
    }
    /// The target's length as sent: what LimitRequestLine counts.
    pub fn target_len(&self) -> usize {
        let query = if self.query.is_empty() {
            0
        } else {
            self.query.len() + 1
        };
        self.absolute_authority.len() + self.path.len() + query
    }
}

/// Parses a complete head at the start of `buf`: `Ok(None)` while more
/// bytes are needed, else the head and its length in bytes.
pub fn parse(buf: &[u8], max_fields: usize) -> Result<Option<(RequestHead, usize)>, Refusal> {
    // Left uninitialised: writing 128 empty fields first cost more than
    // parsing a typical head.
    let mut on_stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_FIELDS];
    let mut on_heap;
    let slots: &mut [MaybeUninit<httparse::Header>] = if max_fields <= STACK_FIELDS {
        &mut on_stack[..max_fields]
    } else {
        on_heap = Vec::with_capacity(max_fields);
        on_heap.resize_with(max_fields, MaybeUninit::uninit);
        &mut on_heap
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(431, "more header fields than limits.request_fields"))
        }
        Err(httparse::Error::Version) => {
            return Err(refuse(505, "only HTTP/1.0 and HTTP/1.1 are served"))
        }
        Err(_) => return Err(refuse(400, "malformed request head")),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(refuse(400, "malformed request line"));
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let size: usize = req
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum();
    let mut fields = Fields::with_capacity(arena_size(size, target.len()), req.headers.len() + 4);
    for h in req.headers.iter() {
        if !crate::fields::valid_value(h.value) {
            return Err(refuse(400, "control byte in a header value"));
        }
        fields.append(h.name.as_bytes(), h.value);
    }
    let method_span = fields.store(method.as_bytes());
    let target = split_target(method, target, &mut fields)?;
    let framing = framing(&fields, version)?;
    let connection = |token: &str| {
        fields
            .get_all(b"connection")
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    let keep_alive = match version {
        Version::Http11 | Version::Http2 => !connection("close"),
        Version::Http10 => connection("keep-alive"),
    };
    let expect_continue = version == Version::Http11
        && fields
            .get(b"expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    let head = RequestHead::assemble(method_span, target, fields, version, framing);
    Ok(Some((
        RequestHead {
            keep_alive,
            expect_continue,
            ..head
        },
        len,
    )))
}

impl RequestHead {
    /// A head from its parts, kept alive and expecting no `100 Continue`
    /// until the caller says otherwise.
    fn assemble(
        method: Span,
        target: Target,
        fields: Fields,
        version: Version,
        framing: BodyFraming,
    ) -> RequestHead {
        RequestHead {
            method,
            received_path: target.path.clone(),
            path: target.path,
            query: target.query,
            absolute_authority: target.absolute_authority,
            authority: target.authority,
            fields,
            version,
            framing,
            keep_alive: true,
            expect_continue: false,
        }
    }
}

/// A head built from a request that arrived in another shape (an HTTP/2
/// stream): `fields` were checked by the caller, which also chose the
/// body's framing. The target is read as a request line's would be.
pub fn from_parts(
    method: &str,
    target: &str,
    mut fields: Fields,
    version: Version,
    framing: BodyFraming,
) -> Result<RequestHead, Refusal> {
    let method_span = fields.store(method.as_bytes());
    let target = split_target(method, target, &mut fields)?;
    Ok(RequestHead::assemble(
        method_span,
        target,
        fields,
        version,
        framing,
    ))
}

/// Room to ask for in a [`Fields`] arena that [`from_parts`] will fill:
/// the fields' own bytes plus the target's and the notes' spare.
pub fn arena_size(fields_bytes: usize, target_len: usize) -> usize {
    fields_bytes + target_len + 16 + ARENA_SPARE
}

struct Target {
    path: Span,
    query: Span,
    absolute_authority: Span,
    authority: Span,
}

/// Origin-form (`/p?q`), asterisk-form (`*`), absolute-form
/// (`http://host/p?q`) or, for CONNECT, authority-form.
fn split_target(method: &str, target: &str, fields: &mut Fields) -> Result<Target, Refusal> {
    let empty = || 0..0;
    if target.contains('#') {
        // Clients never send a fragment (RFC 9112 §3.2); Apache answers 400.
        return Err(refuse(400, "fragment (#) in the request target"));
    }
    let (absolute, rest, authority) = if target.starts_with('/') || target == "*" {
        ("", target, "")
    } else if let Some(at) = scheme_end(target) {
        let after = &target[at + 3..];
        let end = after.find(['/', '?']).unwrap_or(after.len());
        if end == 0 {
            return Err(refuse(400, "absolute request target without a host"));
        }
        (&target[..at + 3 + end], &after[end..], &after[..end])
    } else if method == "CONNECT" {
        // Authority-form (`host:port`): it is the path modules read too,
        // and the authority the vhost is chosen by without a Host field.
        let stored = fields.store(target.as_bytes());
        return Ok(Target {
            path: stored.clone(),
            query: empty(),
            absolute_authority: empty(),
            authority: stored,
        });
    } else {
        return Err(refuse(
            400,
            "request target is not a path or an absolute URI",
        ));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let absolute_authority = fields.store(absolute.as_bytes());
    let authority = if authority.is_empty() {
        empty()
    } else {
        let start = absolute_authority.end - authority.len() as u32;
        start..absolute_authority.end
    };
    let path = if path.is_empty() && !absolute.is_empty() {
        fields.store(b"/")
    } else {
        fields.store(path.as_bytes())
    };
    Ok(Target {
        path,
        query: fields.store(query.as_bytes()),
        absolute_authority,
        authority,
    })
}

/// The index of `://` after a URI scheme, if `target` starts with one.
fn scheme_end(target: &str) -> Option<usize> {
    let at = target.find("://")?;
    let scheme = &target.as_bytes()[..at];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    valid.then_some(at)
}

/// RFC 9112 §6.3, strictly: Transfer-Encoding must end in `chunked`,
/// Content-Length must be one plain number, and never both.
fn framing(fields: &Fields, version: Version) -> Result<BodyFraming, Refusal> {
    let mut codings = fields
        .get_all(b"transfer-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .peekable();
    let mut length = None;
    for value in fields.get_all(b"content-length") {
        let n = crate::parse_decimal(value).ok_or(refuse(400, "invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(refuse(400, "differing Content-Length fields"));
        }
        length = Some(n);
    }
    if codings.peek().is_none() {
        return Ok(length.map_or(BodyFraming::None, BodyFraming::Length));
    }
    if length.is_some() {
        return Err(refuse(400, "both Transfer-Encoding and Content-Length"));
    }
    if version == Version::Http10 {
        return Err(refuse(400, "Transfer-Encoding in an HTTP/1.0 request"));
    }
    let mut last_is_chunked = false;
    for coding in codings {
        if last_is_chunked {
            return Err(refuse(400, "Transfer-Encoding applied after chunked"));
        }
        last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
    }
    if !last_is_chunked {
        return Err(refuse(400, "Transfer-Encoding does not end in chunked"));
    }
    Ok(BodyFraming::Chunked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<RequestHead, Refusal> {
        parse(raw.as_bytes(), 100).map(|h| h.expect("complete").0)
    }

    #[test]
    fn origin_form_splits_path_and_query() {
        let h = head("GET /a/b?x=1&y HTTP/1.1\r\nHost: Example\r\nX-A: 1\r\n\r\n").unwrap();
        assert_eq!(
            (h.method(), h.path(), h.query()),
            (&b"GET"[..], &b"/a/b"[..], &b"x=1&y"[..])
        );
        assert_eq!(h.host(), Some(&b"Example"[..]));
        assert_eq!(h.target_len(), "/a/b?x=1&y".len());
        assert!(h.keep_alive);
        assert_eq!(h.framing, BodyFraming::None);
    }

    #[test]
    fn absolute_form_gives_its_authority() {
        let h = head("GET http://evil.example:81 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(h.absolute_authority(), b"http://evil.example:81");
        assert_eq!(
            (h.path(), h.host()),
            (&b"/"[..], Some(&b"evil.example:81"[..]))
        );
    }

    #[test]
    fn a_partial_head_asks_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost:", 100).unwrap().is_none());
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(head(raw).err().map(|r| r.status), Some(400), "{raw}");
        }
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
    }

    #[test]
    fn versions_and_connection_tokens_decide_keep_alive() {
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !head("GET / HTTP/1.1\r\nConnection: x, close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert_eq!(
            head("GET / HTTP/2.0\r\n\r\n").err().map(|r| r.status),
            Some(505)
        );
    }

    #[test]
    fn a_fragment_is_refused_and_a_replaced_path_keeps_the_received_one() {
        for raw in ["GET /a#f HTTP/1.1\r\n\r\n", "GET /a?q#f HTTP/1.1\r\n\r\n"] {
            assert_eq!(head(raw).err().map(|r| r.status), Some(400), "{raw}");
        }
        let mut h = head("GET /a/./b?q HTTP/1.1\r\n\r\n").unwrap();
        h.set_path(b"/a/b");
        assert_eq!(
            (h.path(), h.received_path(), h.query()),
            (&b"/a/b"[..], &b"/a/./b"[..], &b"q"[..])
        );
    }

    #[test]
    fn too_many_fields_is_431() {
        let raw = format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1\r\n".repeat(101));
        assert_eq!(head(&raw).err().map(|r| r.status), Some(431));
    }

    #[test]
    fn connect_takes_the_authority_form_as_its_path() {
        let h = head("CONNECT example.org:443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(h.method(), b"CONNECT");
        assert_eq!(h.path(), b"example.org:443");
        assert_eq!(h.host(), Some(&b"example.org:443"[..]));
        assert!(h.absolute_authority().is_empty());
        let h = head("CONNECT example.org:443 HTTP/1.1\r\nHost: other:1\r\n\r\n").unwrap();
        assert_eq!(h.host(), Some(&b"other:1"[..]));
    }
}
