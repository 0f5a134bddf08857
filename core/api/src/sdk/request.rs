//! Safe access to the request the host is serving: borrowed reads (no
//! header maps rebuilt on this side), changes, notes, and the bodies.

use super::host::host;
use super::IoError;
use crate::abi::{self, AbiChunk, AbiStr};
use bytes::Bytes;
use std::ffi::c_void;
use std::future::poll_fn;
use std::task::{Context, Poll};

/// Which header map to work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    Request = abi::headers::REQUEST as isize,
    Response = abi::headers::RESPONSE as isize,
    /// The request's trailers, once its body has been read to the end.
    RequestTrailers = abi::headers::REQUEST_TRAILERS as isize,
    /// Sent after the response body, to clients that take trailers (HTTP/2).
    ResponseTrailers = abi::headers::RESPONSE_TRAILERS as isize,
}

/// The request being served. Reads borrow from the host until the next
/// change (`&mut self`), so the borrow checker keeps them valid.
pub struct Request {
    raw: *mut c_void,
}

// SAFETY: the host only polls a request's hooks and futures from the task
// that owns the request; the handle may move with that task between threads.
unsafe impl Send for Request {}

impl Request {
    /// Wraps a host request handle.
    ///
    /// # Safety
    /// `raw` must be a request handle the host passed to this module, and the
    /// result must not outlive the hook call or handler future it came with.
    pub unsafe fn from_raw(raw: *mut c_void) -> Request {
        Request { raw }
    }

    pub fn as_raw(&self) -> *mut c_void {
        self.raw
    }

    fn field(&self, field: u32) -> &str {
        let s = (host().req_field)(self.raw, field);
        // SAFETY: the host keeps request fields alive and valid UTF-8 (it
        // validates the request line) until the request changes.
        unsafe { s.as_str() }
    }
    pub fn method(&self) -> &str {
        self.field(abi::field::METHOD)
    }
    /// The path as received, percent-encoding untouched.
    pub fn path(&self) -> &str {
        self.field(abi::field::PATH)
    }
    /// The query string without `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.field(abi::field::QUERY)
    }
    pub fn version(&self) -> &str {
        self.field(abi::field::VERSION)
    }
    pub fn client_addr(&self) -> &str {
        self.field(abi::field::CLIENT_ADDR)
    }
    pub fn local_addr(&self) -> &str {
        self.field(abi::field::LOCAL_ADDR)
    }
    pub fn scheme(&self) -> &str {
        self.field(abi::field::SCHEME)
    }
    pub fn server_name(&self) -> &str {
        self.field(abi::field::SERVER_NAME)
    }
    /// `scheme://authority` when the request line held an absolute URI
    /// (a forward-proxy request); empty otherwise.
    pub fn absolute_authority(&self) -> &str {
        self.field(abi::field::ABSOLUTE_AUTHORITY)
    }
    /// Index of the virtual host that received the request.
    pub fn vhost(&self) -> usize {
        (host().req_vhost)(self.raw) as usize
    }

    /// The first value of a header.
    pub fn header(&self, map: Headers, name: &str) -> Option<&[u8]> {
        let mut out = AbiStr::EMPTY;
        let found =
            (host().header_get)(self.raw, map as u32, AbiStr::new(name.as_bytes()), &mut out);
        // SAFETY: valid until the request changes, which needs `&mut self`.
        found.then(|| unsafe { out.as_bytes() })
    }
    pub fn header_str(&self, map: Headers, name: &str) -> Option<&str> {
        self.header(map, name).and_then(crate::abi::utf8)
    }
    /// Every header (name lower-case, value) in order, lent whole: no
    /// callback per field. Valid until the request changes, which needs
    /// `&mut self`.
    pub fn headers(&self, map: Headers) -> FieldList<'_> {
        let mut out = abi::AbiFieldList {
            text: AbiStr::EMPTY,
            spans: std::ptr::null(),
            count: 0,
        };
        (host().headers_lend)(self.raw, map as u32, &mut out);
        // SAFETY: the host lends the map's text and its spans until the
        // request changes, which needs `&mut self`.
        let text = unsafe { out.text.as_bytes() };
        let spans = if out.spans.is_null() || out.count == 0 {
            &[][..]
        } else {
            // SAFETY: as above; `count` spans start at `spans`.
            unsafe { std::slice::from_raw_parts(out.spans, out.count) }
        };
        FieldList { text, spans }
    }
    /// Calls `f` with every header (name lower-case, value) in order: a
    /// walk over [`Request::headers`].
    pub fn for_each_header(&self, map: Headers, mut f: impl FnMut(&str, &[u8])) {
        for (name, value) in self.headers(map).iter() {
            f(name, value);
        }
    }
    pub fn set_header(&mut self, map: Headers, name: &str, value: &[u8]) {
        self.change(map, abi::headers::SET, name, value);
    }
    pub fn add_header(&mut self, map: Headers, name: &str, value: &[u8]) {
        self.change(map, abi::headers::ADD, name, value);
    }
    pub fn remove_header(&mut self, map: Headers, name: &str) {
        self.change(map, abi::headers::REMOVE, name, b"");
    }
    fn change(&mut self, map: Headers, mode: u32, name: &str, value: &[u8]) {
        let rc = (host().header_change)(
            self.raw,
            map as u32,
            mode,
            AbiStr::new(name.as_bytes()),
            AbiStr::new(value),
        );
        if rc != 0 {
            super::log(
                super::Level::Warn,
                format_args!("header {name:?} not set: invalid name or value"),
            );
        }
    }

    /// A per-request note, the way modules pass facts to each other.
    pub fn note(&self, key: &str) -> Option<&str> {
        let mut out = AbiStr::EMPTY;
        let found = (host().note_get)(self.raw, AbiStr::new(key.as_bytes()), &mut out);
        // SAFETY: notes are stored as UTF-8 by note_set and live until changed.
        found.then(|| unsafe { out.as_str() })
    }
    pub fn set_note(&mut self, key: &str, value: &str) {
        (host().note_set)(
            self.raw,
            AbiStr::new(key.as_bytes()),
            AbiStr::new(value.as_bytes()),
        );
    }

    pub fn status(&self) -> u16 {
        (host().status_get)(self.raw)
    }
    pub fn set_status(&mut self, status: u16) {
        (host().status_set)(self.raw, status);
    }

    /// Sends the response head: status and response headers as set now,
    /// after the response_headers hooks ran. Fails if already sent.
    pub fn send_head(&mut self) -> Result<(), IoError> {
        match (host().response_start)(self.raw) {
            0 => Ok(()),
            e => Err(IoError::from_code(e)),
        }
    }

    /// The next chunk of the request body; `None` at its end.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>, IoError> {
        poll_fn(|cx| self.poll_read_body(cx)).await
    }

    /// [`Request::read_body`] as a poll, for a handler that moves both
    /// bodies in one future (an HTTP/2 stream whose request body keeps
    /// flowing while the response comes back, as gRPC streams do).
    pub fn poll_read_body(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, IoError>> {
        let mut chunk = AbiChunk::empty();
        let rc = crate::waker::lend(cx, |w| (host().body_poll_read)(self.raw, w, &mut chunk));
        match rc {
            abi::io::PENDING => Poll::Pending,
            abi::io::READY if chunk.drop_fn.is_none() => Poll::Ready(Ok(None)),
            // SAFETY: the host made this chunk with chunk::from_bytes.
            abi::io::READY => Poll::Ready(Ok(Some(unsafe { crate::chunk::into_bytes(chunk) }))),
            e => Poll::Ready(Err(IoError::from_code(e))),
        }
    }

    /// Sends a chunk of the response body, waiting while the client is slow.
    pub async fn write_body(&mut self, data: Bytes) -> Result<(), IoError> {
        poll_fn(|cx| self.poll_body_ready(cx)).await?;
        self.send_body(data)
    }

    /// Ready when the client can take another chunk of the response body
    /// ([`Request::send_body`]): the poll half of [`Request::write_body`].
    pub fn poll_body_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), IoError>> {
        match crate::waker::lend(cx, |w| (host().body_poll_ready)(self.raw, w)) {
            abi::io::PENDING => Poll::Pending,
            abi::io::READY => Poll::Ready(Ok(())),
            e => Poll::Ready(Err(IoError::from_code(e))),
        }
    }

    /// Queues a chunk of the response body without waiting: call it after
    /// [`Request::poll_body_ready`] answered ready.
    pub fn send_body(&mut self, data: Bytes) -> Result<(), IoError> {
        match (host().body_send)(self.raw, crate::chunk::from_bytes(data)) {
            0 => Ok(()),
            e => Err(IoError::from_code(e)),
        }
    }
}

/// A header map lent by the host ([`Request::headers`]).
#[derive(Clone, Copy)]
pub struct FieldList<'a> {
    text: &'a [u8],
    spans: &'a [abi::AbiFieldSpan],
}

impl<'a> FieldList<'a> {
    /// (name, value) in order. Offsets out of range (never from this
    /// host) give empty strings rather than a panic.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + Clone + 'a {
        let text = self.text;
        self.spans.iter().map(move |s| {
            let (start, name_end, end) = (s.start as usize, s.name_end as usize, s.end as usize);
            let name = text.get(start..name_end).and_then(crate::abi::utf8);
            (name.unwrap_or(""), text.get(name_end..end).unwrap_or(b""))
        })
    }
}
