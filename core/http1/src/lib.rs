//! HTTP/1.1 on the wire as plain functions over bytes: request heads
//! parsed (with their body framing decided), response heads written,
//! header fields kept in one arena, chunked framing both ways. The core
//! uses these towards clients. Towards backends, the pieces every proxy
//! module needs live here once, so proxy_http and proxy_wstunnel filter
//! and add the same fields: hop-by-hop filtering, X-Forwarded-* and Via,
//! the request head for a backend, a backend's response head parsed.
//! Nothing here does I/O, so every rule is tested on raw bytes and
//! fuzzed (fuzz/).

pub mod authority;
pub mod backend_request;
pub mod backend_response;
pub mod chunked;
pub mod fields;
pub mod forwarded;
pub mod hop_by_hop;
pub mod path;
pub mod request_head;
pub mod response_head;

pub use chunked::{chunk_header, ChunkError, ChunkedDecoder, Decoded, CHUNK_END, LAST_CHUNK};

/// `n` in decimal, written into `buf` (no allocation on the response path).
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// A decimal number of digits only: no sign, no spaces, no overflow
/// (Content-Length's grammar, read straight from the bytes).
pub fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// `s` equals `lower` ignoring ASCII case, for a `lower` in lower case
/// (stored field names, the names and tokens looked for).
/// `eq_ignore_ascii_case` folds both sides byte by byte; here only the
/// letters of `lower` accept a second spelling, one OR per byte, and with
/// no early exit the loop vectorises. Exact: `c | 0x20 == l` holds for a
/// letter `l` only when `c` is `l` in either case.
#[inline]
pub fn eq_lower(s: &[u8], lower: &[u8]) -> bool {
    debug_assert!(!lower.iter().any(u8::is_ascii_uppercase), "{lower:?}");
    s.len() == lower.len()
        && s.iter().zip(lower).fold(0u8, |diff, (&c, &l)| {
            let fold = if l.is_ascii_lowercase() { 0x20 } else { 0 };
            diff | ((c | fold) ^ l)
        }) == 0
}

/// [`eq_lower`] on text: field names and tokens as modules hold them.
#[inline]
pub fn eq_lower_str(s: &str, lower: &str) -> bool {
    eq_lower(s.as_bytes(), lower.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::eq_lower;

    #[test]
    fn eq_lower_is_exact_ignoring_case() {
        assert!(eq_lower(b"Content-Length", b"content-length"));
        assert!(eq_lower(b"KEEP-ALIVE", b"keep-alive"));
        assert!(!eq_lower(b"keep\ralive", b"keep-alive"), "CR is not '-'");
        assert!(!eq_lower(b"content-lengths", b"content-length"));
        assert!(!eq_lower(b"Host", b"hose"));
        for c in 0..=255u8 {
            let want = c.eq_ignore_ascii_case(&b'k');
            assert_eq!(eq_lower(&[c], b"k"), want, "{c}");
        }
    }
}
