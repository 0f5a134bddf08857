//! A request body off an HTTP/2 stream: DATA as it arrives (each frame's
//! window given back once it is handed on, so a client sends no more than
//! a window ahead of the module reading it), checked against the
//! request's Content-Length, then the trailers.

use crate::http::fields::Fields;
use crate::http::request_body::BodyError;
use bytes::Bytes;
use h2::RecvStream;
use std::task::{Context, Poll};

pub struct StreamBody {
    recv: RecvStream,
    /// The Content-Length the request declared.
    declared: Option<u64>,
    received: u64,
    state: State,
}

#[derive(PartialEq)]
enum State {
    Data,
    Trailers,
    Done,
}

impl StreamBody {
    pub fn new(recv: RecvStream, declared: Option<u64>) -> StreamBody {
        let state = if recv.is_end_stream() {
            State::Done
        } else {
            State::Data
        };
        StreamBody {
            recv,
            declared,
            received: 0,
            state,
        }
    }

    /// The next piece of the body; `Ok(None)` at its end, once the
    /// trailers (if any) are in `trailers`.
    pub fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
        trailers: &mut Fields,
    ) -> Poll<Result<Option<Bytes>, BodyError>> {
        loop {
            match self.state {
                State::Done => return Poll::Ready(Ok(None)),
                State::Data => match self.recv.poll_data(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(data))) => {
                        let _ = self.recv.flow_control().release_capacity(data.len());
                        self.received += data.len() as u64;
                        if self.declared.is_some_and(|d| self.received > d) {
                            return Poll::Ready(Err(BodyError::Malformed));
                        }
                        // An empty DATA frame is no chunk: an empty chunk
                        // means the end to modules.
                        if !data.is_empty() {
                            return Poll::Ready(Ok(Some(data)));
                        }
                    }
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(BodyError::Aborted)),
                    Poll::Ready(None) => {
                        if self.declared.is_some_and(|d| self.received != d) {
                            return Poll::Ready(Err(BodyError::Malformed));
                        }
                        self.state = State::Trailers;
                    }
                },
                State::Trailers => match self.recv.poll_trailers(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(map)) => {
                        if let Some(map) = map {
                            super::downgrade::store_trailers(&map, trailers);
                        }
                        self.state = State::Done;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(BodyError::Aborted)),
                },
            }
        }
    }
}
