//! The backend side of HTTP/1.1 for proxy_http: request heads out, response
//! heads and chunked bodies in, all as plain functions over byte buffers.
//!
//! Nothing here does I/O, so every framing rule is tested on raw bytes.

pub mod hop_by_hop;
pub mod request_head;
pub mod response_head;

pub use chunked::{chunk_header, ChunkError, ChunkedDecoder, Decoded, LAST_CHUNK};
pub use hop_by_hop::{eq_lower, is_hop_by_hop, HopFilter};
pub use request_head::{write_request_head, BodyFraming, Forwarded, RequestHead};
pub use response_head::{
    parse_response_head, response_framing, HeadError, ResponseFraming, ResponseHead,
};

pub use modproxy_http1::{chunked, decimal};
