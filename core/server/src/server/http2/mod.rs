//! HTTP/2 towards the client: h2 over TLS (chosen by ALPN) and h2c in
//! clear text with prior knowledge. The h2 crate owns the framing, HPACK,
//! flow control and the flood defences (its limits are set explicitly in
//! `connection`); this folder turns each stream into the request the
//! pipeline serves for HTTP/1.1, so no module can tell the two apart:
//!
//! - `connection`: one client connection: settings, the accept loop, one
//!   task per stream, GOAWAY when the server stops or hands off;
//! - `downgrade`: an h2 request's head in HTTP/1.1's shape (with the
//!   checks that keep a downgrade from smuggling), a response's fields in
//!   HTTP/2's;
//! - `body`: the request body off the stream, checked against its
//!   Content-Length, then its trailers;
//! - `respond`: the response onto the stream, within its flow-control
//!   window, with a deadline for a client that never opens it.

pub mod body;
pub mod connection;
pub mod downgrade;
pub mod respond;

/// What an h2c client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What `buf` says of a cleartext connection's first bytes: HTTP/2's
/// preface, HTTP/1.x, or too few bytes to tell.
pub fn sniff(buf: &[u8]) -> Option<bool> {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        return Some(false);
    }
    (n == PREFACE.len()).then_some(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_preface_is_told_from_http1_as_soon_as_a_byte_differs() {
        assert_eq!(super::sniff(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(super::sniff(b"PRI * HT"), None);
        assert_eq!(
            super::sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Some(true)
        );
        assert_eq!(super::sniff(b"PRI * HTTP/1.1\r\n"), Some(false));
    }
}
