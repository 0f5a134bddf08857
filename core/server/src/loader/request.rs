//! The host's side of one request: the state modules reach through their
//! `Request` handle, and the raw handle's lifetime. Everything a module
//! can read or change lives here, so accessors can lend borrowed slices.

use crate::http::client_io::{Upgraded, Wire};
use crate::http::fields::{Fields, Span};
use crate::http::request_body::RequestBody;
use crate::http::request_head::RequestHead;
use bytes::Bytes;
use http::StatusCode;
use std::net::SocketAddr;
use std::ptr::NonNull;
use std::sync::Arc;

/// Facts about the connection a request arrived on.
pub struct ConnInfo {
    pub client: SocketAddr,
    /// `ip:port`, which proxy_http puts in X-Forwarded-For on every request
    /// (bytes: modules get it as bytes anyway).
    pub client_text: Vec<u8>,
    local: SocketAddr,
    /// Made when a module first asks: few do.
    local_text: std::sync::OnceLock<Vec<u8>>,
    pub scheme: &'static str,
}

impl ConnInfo {
    pub fn new(client: SocketAddr, local: SocketAddr, scheme: &'static str) -> ConnInfo {
        ConnInfo {
            client,
            client_text: addr_text(client),
            local,
            local_text: std::sync::OnceLock::new(),
            scheme,
        }
    }

    pub fn local_text(&self) -> &[u8] {
        self.local_text.get_or_init(|| addr_text(self.local))
    }
}

/// `ip:port`. An IPv4 address is written digit by digit into bytes:
/// `Display` goes through the formatting machinery, about 1.5 k
/// instructions per address, on every new connection.
fn addr_text(addr: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string().into_bytes();
    };
    let mut text = Vec::with_capacity(21);
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push(b'.');
        }
        if octet >= 100 {
            text.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            text.push(b'0' + octet / 10 % 10);
        }
        text.push(b'0' + octet % 10);
    }
    text.push(b':');
    let mut digits = [0u8; 20];
    text.extend_from_slice(modproxy_http1::decimal(u64::from(v4.port()), &mut digits));
    text
}

/// One request, as modules see it.
pub struct RequestCtx {
    pub head: RequestHead,
    /// The client connection, lent to the request while it is served:
    /// modules read the body from it and the core writes the response.
    /// Gone once a 101 handed it to a module.
    pub wire: Option<Wire>,
    pub body: RequestBody,
    /// An HTTP/2 request's body, read off its stream (`wire` is `None`).
    pub stream_body: Option<Box<crate::server::http2::body::StreamBody>>,
    pub body_limit: u64,
    pub body_read: u64,
    /// Timeout (Apache's): how long a body read may wait for the client.
    pub body_timeout: std::time::Duration,
    /// Armed while a body read waits; reset by every piece that arrives.
    pub body_timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    pub conn: Arc<ConnInfo>,
    pub vhost: u32,
    pub server_name: Arc<str>,
    pub notes: Notes,
    pub status: StatusCode,
    pub response_headers: Fields,
    /// Trailer fields (ABI 1.6): the client's, once its body ended, and
    /// those a module set for after the response body. Both stay empty,
    /// and allocate nothing, on HTTP/1.x.
    pub request_trailers: Fields,
    pub response_trailers: Fields,
    /// Set by `response_start`: the head is out and the body may follow.
    pub head_sent: bool,
    /// The body chunk a module handed over, waiting to be written.
    pub pending_chunk: Option<Bytes>,
    pub bytes_sent: u64,
    pub started: std::time::Instant,
    /// The connection cannot carry another request after this one.
    pub close: bool,
    pub upgrade: UpgradeSlot,
    /// The output filters taking part in the response (ABI 1.4), set when
    /// its head goes out; empty for most responses.
    pub filters: super::filters::Chain,
    /// The input filters on the request body (ABI 1.5), set before the
    /// handlers run; empty for most requests.
    pub input: InputBody,
    /// The response body may be spliced to the client (ABI 1.7): set by
    /// the core for a Content-Length body going to a plain TCP client
    /// through no output filter.
    pub splice_response: Option<SplicedResponse>,
    /// What `body_splice_to` kept of the request body for a retry's
    /// replay (ABI 1.7), in the kernel.
    pub body_replay: Option<crate::http::splice::Pipe>,
}

/// A response body spliced from a module's connection to the client.
#[derive(Default)]
pub struct SplicedResponse {
    /// The pipe, from the first splice on; what it holds goes out before
    /// the handler is asked for more.
    pub pipe: Option<crate::http::splice::Pipe>,
    /// Spliced into the pipe and not yet counted against the body's
    /// length by `server::respond`.
    pub uncounted: u64,
}

impl RequestCtx {
    /// Bytes of a spliced response body the client has not taken yet.
    pub fn splice_held(&self) -> usize {
        let pipe = self.splice_response.as_ref().and_then(|s| s.pipe.as_ref());
        pipe.map_or(0, |p| p.held())
    }
}

/// A request body on its way through input filters.
#[derive(Default)]
pub struct InputBody {
    pub chain: super::filters::Chain,
    /// What the filters emitted that the handler has not read yet.
    pub ready: std::collections::VecDeque<Bytes>,
    /// The client's body ended and the filters finished.
    pub ended: bool,
}

/// The client connection after a 101, on its way to the module.
#[derive(Default)]
pub enum UpgradeSlot {
    #[default]
    Empty,
    /// The module asked before the 101 went out.
    Waiting(tokio::sync::oneshot::Sender<Upgraded>),
    /// The 101 went out before the module asked.
    Ready(Upgraded),
}

/// Per-request notes (Apache's `r->notes`). Their bytes go into the
/// request head's arena, which is made with room for them, so a request
/// with a few notes allocates nothing for them. A changed note is
/// appended again; the newest entry wins. Notes are bytes to the host:
/// modules that read them as text check them themselves.
#[derive(Default)]
pub struct Notes {
    /// Oldest first; past INLINE_NOTES, the rest in `more`.
    inline: [NoteEntry; INLINE_NOTES],
    count: usize,
    more: Vec<NoteEntry>,
}

/// A request sets a few notes (proxy sets two): room for them costs no
/// allocation.
const INLINE_NOTES: usize = 6;

/// A key and its value, as spans of the request head's arena.
#[derive(Default)]
struct NoteEntry {
    key: Span,
    value: Span,
}

impl Notes {
    pub fn get<'a>(&self, arena: &'a Fields, key: &[u8]) -> Option<&'a [u8]> {
        let inline = &self.inline[..self.count];
        inline
            .iter()
            .chain(&self.more)
            .rev()
            .find(|e| arena.text(&e.key) == key)
            .map(|e| arena.text(&e.value))
    }
    pub fn set(&mut self, arena: &mut Fields, key: &[u8], value: &[u8]) {
        let entry = NoteEntry {
            key: arena.store(key),
            value: arena.store(value),
        };
        match self.inline.get_mut(self.count) {
            Some(slot) => {
                *slot = entry;
                self.count += 1;
            }
            None => self.more.push(entry),
        }
    }
}

/// Owns a [`RequestCtx`] at a fixed address, which is what modules hold
/// (as `*mut c_void`) while their hooks and futures run. Only one task
/// touches it at a time, and never through two `&mut` at once: host code
/// borrows it only between calls into modules.
pub struct CtxHandle(NonNull<RequestCtx>);

// SAFETY: the context is owned by the one task serving the request; the
// handle moves with that task.
unsafe impl Send for CtxHandle {}

impl CtxHandle {
    pub fn new(ctx: RequestCtx) -> CtxHandle {
        CtxHandle(NonNull::from(Box::leak(Box::new(ctx))))
    }
    pub fn raw(&self) -> *mut std::ffi::c_void {
        self.0.as_ptr() as *mut std::ffi::c_void
    }
    pub fn get(&mut self) -> &mut RequestCtx {
        // SAFETY: the box lives until Drop; no module call is in progress
        // while host code holds this borrow (see the type's comment).
        unsafe { self.0.as_mut() }
    }
}

impl Drop for CtxHandle {
    fn drop(&mut self) {
        // SAFETY: made from Box::leak in `new`, freed once; every module
        // future that held the raw pointer was dropped before the handle
        // (the handler future is a field declared before it).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// The context behind a raw handle a module passed back.
///
/// # Safety
/// `raw` must come from a live [`CtxHandle`] and no other borrow of the
/// context may be active.
pub unsafe fn ctx<'a>(raw: *mut std::ffi::c_void) -> &'a mut RequestCtx {
    // SAFETY: forwarded to the caller.
    unsafe { &mut *(raw as *mut RequestCtx) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_read_as_display_writes_them() {
        for addr in [
            "127.0.0.1:9000",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.100.7:8080",
            "[::1]:443",
        ] {
            let parsed: std::net::SocketAddr = addr.parse().unwrap();
            assert_eq!(super::addr_text(parsed), addr.as_bytes());
        }
    }
}
