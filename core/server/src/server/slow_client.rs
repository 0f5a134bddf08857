//! Slow clients: a request head that has started but is not complete when
//! hyper's header timeout (KeepAliveTimeout) fires is answered 408 before
//! the connection closes, as Apache does; hyper alone would close without
//! a word. An idle keep-alive connection still closes silently.
//!
//! The connection's stream is wrapped to notice bytes arriving between
//! one response and the next request head; hyper hands the stream back
//! (`into_parts`) once the connection has ended, and the 408 goes on it.

use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

const ANSWER: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 29\r\nConnection: close\r\n\r\nrequest not received in time\n";

/// Whether bytes of a request head are waiting: set by a read, cleared
/// when a request is dispatched or a response byte is written.
#[derive(Clone, Default)]
pub struct HeadWatch(Arc<AtomicBool>);

impl HeadWatch {
    /// A request head was parsed and handed to the pipeline.
    pub fn dispatched(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    fn partial(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The client's stream as hyper sees it, reporting to a [`HeadWatch`].
pub struct Watched<S> {
    inner: S,
    watch: HeadWatch,
}

pub fn watch<S>(inner: S) -> (TokioIo<Watched<S>>, HeadWatch) {
    let watch = HeadWatch::default();
    let io = Watched {
        inner,
        watch: watch.clone(),
    };
    (TokioIo::new(io), watch)
}

/// Once hyper has ended the connection: a 408 if a head was cut short by
/// the timeout. `io` is what hyper gave back.
pub async fn after<S: AsyncWrite + Unpin>(
    result: &Result<(), hyper::Error>,
    watch: &HeadWatch,
    io: TokioIo<Watched<S>>,
) {
    let timed_out = matches!(result, Err(e) if e.is_timeout());
    if !timed_out || !watch.partial() {
        return;
    }
    let mut stream = io.into_inner().inner;
    // Best effort, bounded: the client is slow by definition.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(ANSWER).await?;
        stream.shutdown().await
    })
    .await;
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.0.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.watch.dispatched();
        Pin::new(&mut this.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.watch.dispatched();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
