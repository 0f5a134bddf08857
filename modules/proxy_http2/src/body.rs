//! The client's request body on its way to the backend: read from the
//! core one chunk at a time and sent as DATA only as far as the stream's
//! flow-control window allows (`reserve_capacity`/`poll_capacity`), so no
//! more than one chunk is ever held here. The first 64 KiB are kept, so
//! that a request the backend refused unprocessed (GOAWAY, REFUSED_STREAM)
//! can be sent again on another connection.

use crate::stream::Idle;
use bytes::Bytes;
use h2::SendStream;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use modproxy_api::proxy::BodyProgress;
use modproxy_api::{Headers, IoError, Request};
use std::task::{ready, Context, Poll};

/// At most this much flow-control capacity is asked for at once.
const MAX_RESERVE: usize = 256 * 1024;

/// Why the upload stopped short.
pub enum UpError {
    /// Reading the client's body failed.
    Client(IoError),
    /// The client's body did not match its Content-Length.
    Length { got: u64, want: u64 },
    /// The backend's stream will not take more (it reset the stream or
    /// answered already): stop sending, read its answer.
    Backend(h2::Error),
}

/// One attempt's upload.
pub struct Upload {
    send: SendStream<Bytes>,
    /// Kept chunks of an earlier attempt still to send again.
    resend: std::vec::IntoIter<Bytes>,
    chunk: Option<Bytes>,
    length: Option<u64>,
    pub done: bool,
    /// The last poll stopped because the client had nothing yet.
    waiting_on_client: bool,
    /// Body bytes sent on this attempt.
    pub sent: u64,
}

impl Upload {
    /// `done` when the HEADERS frame already ended the stream.
    pub fn new(
        send: SendStream<Bytes>,
        progress: &BodyProgress,
        length: Option<u64>,
        done: bool,
    ) -> Upload {
        let resend = progress.kept().into_iter();
        Upload {
            send,
            resend,
            chunk: None,
            length,
            done,
            waiting_on_client: false,
            sent: 0,
        }
    }

    /// Moves the body on as far as the client and the window allow;
    /// `Ready(Ok)` once it has all gone (its end, with the client's
    /// trailers if it sent any).
    /// Every step forward, and every wait on the client (not the
    /// backend's: a gRPC stream may idle while the client thinks), resets
    /// `idle`, the backend-wait deadline.
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        req: &mut Request,
        progress: &mut BodyProgress,
        idle: &mut Idle,
    ) -> Poll<Result<(), UpError>> {
        let sent = self.sent;
        let polled = self.poll_on(cx, req, progress);
        if self.sent != sent || self.waiting_on_client {
            idle.reset();
        }
        polled
    }

    fn poll_on(
        &mut self,
        cx: &mut Context<'_>,
        req: &mut Request,
        progress: &mut BodyProgress,
    ) -> Poll<Result<(), UpError>> {
        self.waiting_on_client = false;
        while !self.done {
            let Some(chunk) = self.chunk.as_mut() else {
                self.chunk = match self.resend.next() {
                    Some(kept) => Some(kept),
                    None => self.next_chunk(cx, req, progress)?,
                };
                if self.chunk.is_none() && !self.done {
                    self.waiting_on_client = true;
                    return Poll::Pending;
                }
                continue;
            };
            if chunk.is_empty() {
                self.chunk = None;
                continue;
            }
            self.send.reserve_capacity(chunk.len().min(MAX_RESERVE));
            let cap = match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(cap)) => cap,
                Some(Err(e)) => return Poll::Ready(Err(UpError::Backend(e))),
                // The stream is gone: its error, if any, comes with the response.
                None => {
                    self.done = true;
                    return Poll::Ready(Ok(()));
                }
            };
            if cap == 0 {
                continue;
            }
            let part = chunk.split_to(cap.min(chunk.len()));
            if chunk.is_empty() {
                self.chunk = None;
            }
            self.sent += part.len() as u64;
            self.send.send_data(part, false).map_err(UpError::Backend)?;
        }
        Poll::Ready(Ok(()))
    }

    /// The next chunk from the client; `Ready(Ok(None))` with `done` set
    /// at the body's end (the stream ended here), `Pending` while it has
    /// none yet (as `Ready(Ok(None))` with `done` unset, for the loop).
    fn next_chunk(
        &mut self,
        cx: &mut Context<'_>,
        req: &mut Request,
        progress: &mut BodyProgress,
    ) -> Result<Option<Bytes>, UpError> {
        if progress.ended {
            return self.finish(req, progress).map(|()| None);
        }
        match req.poll_read_body(cx) {
            Poll::Pending => Ok(None),
            Poll::Ready(Err(e)) => Err(UpError::Client(e)),
            Poll::Ready(Ok(None)) => {
                progress.ended = true;
                self.finish(req, progress).map(|()| None)
            }
            Poll::Ready(Ok(Some(chunk))) => {
                progress.consumed += chunk.len() as u64;
                if let Some(want) = self.length.filter(|&w| progress.consumed > w) {
                    let got = progress.consumed;
                    return Err(UpError::Length { got, want });
                }
                progress.keep(&chunk);
                // An empty one is skipped by the loop.
                Ok(Some(chunk))
            }
        }
    }

    /// Ends the stream: with the client's trailers (gRPC's, from an
    /// HTTP/2 client) when it sent any, else with an empty DATA frame.
    fn finish(&mut self, req: &mut Request, progress: &BodyProgress) -> Result<(), UpError> {
        if let Some(want) = self.length.filter(|&w| progress.consumed != w) {
            let got = progress.consumed;
            return Err(UpError::Length { got, want });
        }
        self.done = true;
        let trailers = trailer_map(req);
        match trailers {
            Some(map) => self.send.send_trailers(map),
            None => self.send.send_data(Bytes::new(), true),
        }
        .map_err(UpError::Backend)
    }
}

/// The client's trailers as an h2 header map; `None` when it sent none.
fn trailer_map(req: &Request) -> Option<HeaderMap> {
    let list = req.headers(Headers::RequestTrailers);
    let mut map = HeaderMap::new();
    for (name, value) in list.iter() {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        map.append(n, v);
    }
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_are_kept_for_a_retry_and_large_ones_are_not() {
        let mut p = BodyProgress::default();
        assert!(p.can_replay());
        for _ in 0..2 {
            let chunk = Bytes::from(vec![0u8; 32 * 1024]);
            p.consumed += chunk.len() as u64;
            p.keep(&chunk);
        }
        assert!(p.can_replay(), "64 KiB is kept");
        p.consumed += 1;
        p.keep(&Bytes::from_static(b"x"));
        assert!(!p.can_replay(), "one byte more is not");
    }
}
