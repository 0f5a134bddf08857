//! Reading a request body off the client connection, framed by
//! Content-Length or chunked coding. Data is handed out as slices of the
//! connection's read buffer (no copy), and `100 Continue` goes out only
//! when a module first asks for the body, as RFC 9110 intends.

use super::client_io::Wire;
use super::request_head::BodyFraming;
use bytes::{Buf, Bytes};
use modproxy_http1::ChunkedDecoder;
use std::future::Future;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWrite};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// The most one read asks for. Not 64 KiB: a 64 KiB piece sent on to a
/// backend over loopback (MTU 65536) leaves as a full segment plus a tiny
/// one, and a 1 MiB upload cost 740 µs of CPU instead of 470
/// (docs/performance.md).
const READ_SIZE: usize = 56 * 1024;

pub struct RequestBody {
    state: State,
    /// Bytes of `100 Continue` still to write; `None` if none is owed.
    continue_left: Option<usize>,
}

enum State {
    Done,
    Length(u64),
    Chunked(ChunkedDecoder),
}

#[derive(Debug)]
pub enum BodyError {
    /// The client closed or reset before the body ended.
    Aborted,
    /// Chunked framing that cannot be read.
    Malformed,
}

impl RequestBody {
    pub fn new(framing: BodyFraming, expect_continue: bool) -> RequestBody {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::Chunked(ChunkedDecoder::new()),
        };
        let owed = expect_continue && !matches!(state, State::Done);
        RequestBody {
            state,
            continue_left: owed.then_some(CONTINUE.len()),
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// How much of a `Content-Length` body is still to come, when the rest
    /// may be spliced past the core's buffer: nothing of it is buffered
    /// (`buffered`), and no `100 Continue` is owed or half-written. `None`
    /// for chunked framing, whose sizes the core must read.
    pub fn splice_room(&self, buffered: usize) -> Option<u64> {
        let continue_done = matches!(self.continue_left, None | Some(0));
        match self.state {
            State::Length(left) if buffered == 0 && continue_done => Some(left),
            _ => None,
        }
    }

    /// `n` bytes of the body went past the core (spliced), as if read.
    pub fn spliced(&mut self, n: u64) {
        if let State::Length(left) = &mut self.state {
            *left = left.saturating_sub(n);
            if *left == 0 {
                self.state = State::Done;
            }
        }
    }

    /// The client waits for a `100 Continue` that was never sent: it may
    /// never send the body, so the connection cannot be reused.
    pub fn continue_owed(&self) -> bool {
        self.continue_left == Some(CONTINUE.len())
    }

    /// The next piece of the body; `Ok(None)` at its end. `may_continue`
    /// is false once the final response head went out (no 100 after it).
    pub fn poll_chunk(
        &mut self,
        wire: &mut Wire,
        cx: &mut Context<'_>,
        may_continue: bool,
    ) -> Poll<Result<Option<Bytes>, BodyError>> {
        loop {
            if let Some(chunk) = self.take_buffered(wire)? {
                return Poll::Ready(Ok(Some(chunk)));
            }
            if self.is_done() {
                return Poll::Ready(Ok(None));
            }
            if may_continue && wire.buf.is_empty() {
                if let Some(left) = self.continue_left {
                    if left > 0 {
                        let sent = &CONTINUE[CONTINUE.len() - left..];
                        match std::pin::Pin::new(&mut wire.io).poll_write(cx, sent) {
                            Poll::Ready(Ok(n)) => self.continue_left = Some(left - n),
                            Poll::Ready(Err(_)) => return Poll::Ready(Err(BodyError::Aborted)),
                            Poll::Pending => return Poll::Pending,
                        }
                        continue;
                    }
                }
            }
            match self.poll_fill(wire, cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    return Poll::Ready(Err(BodyError::Aborted))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Body bytes already in the buffer, framing removed.
    fn take_buffered(&mut self, wire: &mut Wire) -> Result<Option<Bytes>, BodyError> {
        match &mut self.state {
            State::Done => Ok(None),
            State::Length(left) => {
                if wire.buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(*left).map_or(wire.buf.len(), |l| l.min(wire.buf.len()));
                *left -= n as u64;
                if *left == 0 {
                    self.state = State::Done;
                }
                Ok(Some(wire.buf.split_to(n).freeze()))
            }
            State::Chunked(decoder) => {
                while !wire.buf.is_empty() {
                    let d = decoder
                        .decode(&wire.buf)
                        .map_err(|_| BodyError::Malformed)?;
                    let done = d.done;
                    let chunk = if d.data.is_empty() {
                        wire.buf.advance(d.consumed);
                        None
                    } else {
                        wire.buf.advance(d.data.start);
                        let chunk = wire.buf.split_to(d.data.len()).freeze();
                        wire.buf.advance(d.consumed - d.data.end);
                        Some(chunk)
                    };
                    if done {
                        self.state = State::Done;
                        return Ok(chunk);
                    }
                    if chunk.is_some() {
                        return Ok(chunk);
                    }
                }
                Ok(None)
            }
        }
    }

    /// One read from the client into the buffer's spare room.
    fn poll_fill(&self, wire: &mut Wire, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let want = match self.state {
            State::Length(left) => usize::try_from(left).map_or(READ_SIZE, |l| l.min(READ_SIZE)),
            _ => READ_SIZE / 4,
        };
        wire.buf.reserve(want);
        let read = wire.io.read_buf(&mut wire.buf);
        std::pin::pin!(read).poll(cx)
    }

    /// Reads and drops the rest of a body a module left unread, so the
    /// connection can carry another request; false when that is not
    /// possible in `limit` bytes (the connection must close).
    pub async fn discard(&mut self, wire: &mut Wire, mut limit: usize) -> bool {
        if self.continue_owed() {
            return false;
        }
        std::future::poll_fn(|cx| loop {
            match self.poll_chunk(wire, cx, false) {
                Poll::Ready(Ok(Some(chunk))) if chunk.len() <= limit => limit -= chunk.len(),
                Poll::Ready(Ok(None)) => return Poll::Ready(true),
                Poll::Ready(_) => return Poll::Ready(false),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }
}
