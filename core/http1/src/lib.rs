//! HTTP/1.1 on the wire as plain functions over bytes: request heads
//! parsed (with their body framing decided), response heads written,
//! header fields kept in one arena, chunked framing both ways. The core
//! uses all of it towards clients, proxy_http the chunked framing towards
//! backends. Nothing here does I/O, so every rule is tested on raw bytes
//! and fuzzed (fuzz/).

pub mod chunked;
pub mod fields;
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
