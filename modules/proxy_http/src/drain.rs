//! Reading a response body only to throw it away: what error_override does
//! with the backend's error page, so that the connection can go back to the
//! pool instead of being closed.

use crate::backend::{body_want, Backend, BODY_READ};
use bytes::Buf;
use modproxy_http1::backend_response::ResponseFraming;
use modproxy_http1::ChunkedDecoder;

/// Past this, closing the connection is cheaper than reading on.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Discards the body; true when it was read exactly to its end with
/// nothing left over, so the connection may be reused.
pub async fn drain(b: &mut Backend, framing: ResponseFraming) -> bool {
    let done = match framing {
        ResponseFraming::NoBody => true,
        ResponseFraming::ContentLength(n) if n > DRAIN_LIMIT => false,
        ResponseFraming::ContentLength(n) => length(b, n).await,
        ResponseFraming::Chunked => chunked(b).await,
        // Ends only when the backend closes: never reusable.
        ResponseFraming::CloseDelimited => false,
    };
    done && b.buf.is_empty()
}

async fn length(b: &mut Backend, mut left: u64) -> bool {
    loop {
        let have = usize::try_from(left).map_or(b.buf.len(), |l| l.min(b.buf.len()));
        b.buf.advance(have);
        left -= have as u64;
        if left == 0 {
            return true;
        }
        let want = body_want(left);
        if !matches!(b.fill_timed(want).await, Ok(n) if n > 0) {
            return false;
        }
    }
}

async fn chunked(b: &mut Backend) -> bool {
    let mut dec = ChunkedDecoder::new();
    let mut total = 0u64;
    loop {
        while !b.buf.is_empty() {
            let Ok(d) = dec.decode(&b.buf) else {
                return false;
            };
            if d.consumed > b.buf.len() {
                return false;
            }
            b.buf.advance(d.consumed);
            total += d.consumed as u64;
            if d.done {
                return true;
            }
            if d.consumed == 0 {
                break;
            }
        }
        if total > DRAIN_LIMIT || !matches!(b.fill_timed(BODY_READ).await, Ok(n) if n > 0) {
            return false;
        }
    }
}
