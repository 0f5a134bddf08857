//! The response body hyper sends: empty, a fixed error page, or a stream
//! that a module's handler produces. For a stream, polling the body polls
//! the handler's future, which hands over one chunk at a time; there is no
//! channel and no task in between, and a slow client holds the handler back.

use super::finish::Finish;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use modproxy_api::abi::code;
use modproxy_api::future::Imported;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A body that was cut short: hyper then closes the connection, so the
/// client never takes a truncated body for a complete one.
#[derive(Debug)]
pub struct Aborted(pub String);

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "response aborted: {}", self.0)
    }
}
impl std::error::Error for Aborted {}

pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(Box<HandlerStream>),
}

/// A handler still producing the body. Field order matters: the handler's
/// future holds the request handle and must be dropped before `finish`
/// frees the request.
pub struct HandlerStream {
    pub future: Option<Imported>,
    /// The handler failed after its head went out; abort once drained.
    pub failed: Option<String>,
    pub finish: Finish,
    pub module: &'static str,
}

impl ResponseBody {
    pub fn empty() -> ResponseBody {
        ResponseBody::Full(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match self.get_mut() {
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Stream(s) => s.poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

impl HandlerStream {
    pub fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        loop {
            if let Some(chunk) = self.finish.ctx().pending_chunk.take() {
                self.finish.ctx().bytes_sent += chunk.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if let Some(why) = self.failed.take() {
                // Only after the last chunk went out: a failed handler's
                // body must end in an abort, never in a clean end.
                self.finish.aborted = true;
                return Poll::Ready(Some(Err(Aborted(why))));
            }
            let Some(future) = self.future.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(future).poll(cx) {
                Poll::Pending if self.finish.ctx().pending_chunk.is_some() => continue,
                Poll::Pending => return Poll::Pending,
                Poll::Ready(rc) => {
                    self.future = None;
                    if rc != code::OK {
                        self.failed = Some(format!(
                            "module {} ended the response with code {rc}",
                            self.module
                        ));
                    }
                }
            }
        }
    }
}
