//! The host's connection as tokio's `AsyncRead`/`AsyncWrite`, which is
//! all the h2 crate asks of its transport. Every read and write is a host
//! service call with the task's waker: nothing here touches a reactor (the
//! module's own tokio copy has none, and would panic if asked).

use modproxy_api::sdk::net::TcpConn;
use modproxy_api::IoError;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct HostIo(pub TcpConn);

fn io_error(e: IoError) -> std::io::Error {
    use std::io::ErrorKind;
    let kind = match e {
        IoError::Refused => ErrorKind::ConnectionRefused,
        IoError::Timeout => ErrorKind::TimedOut,
        IoError::Reset | IoError::Aborted => ErrorKind::ConnectionReset,
        _ => ErrorKind::Other,
    };
    std::io::Error::new(kind, format!("{e}"))
}

impl AsyncRead for HostIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // The h2 codec reads into spare capacity; `initialize_unfilled`
        // zeroes it only the first time (ReadBuf tracks what was).
        let dst = buf.initialize_unfilled();
        let n = ready!(self.get_mut().0.poll_read(cx, dst)).map_err(io_error)?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HostIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().0.poll_write(cx, data).map_err(io_error)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Matters for h2:// (TLS): ciphertext may wait in the host's TLS
        // stream until flushed.
        self.get_mut().0.poll_flush(cx).map_err(io_error)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().0.poll_shutdown(cx).map_err(io_error)
    }
}
