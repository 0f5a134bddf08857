//! HTTP/1.1 framing that both sides of the proxy speak: the core reads
//! chunked request bodies from clients and writes chunked responses;
//! proxy_http does the same towards backends. Nothing here does I/O, so
//! every framing rule is tested on raw bytes.

pub mod chunked;

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
