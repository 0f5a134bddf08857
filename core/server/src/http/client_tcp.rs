//! A client's TCP socket, registered with the reactor only once it has
//! to wait.
//!
//! On a busy server many one-request connections never wait: the request
//! has arrived by the time the connection is accepted (`first_read`), and
//! the response fits in the socket's send buffer. Such a socket is read,
//! written and closed as a plain non-blocking socket, and never costs the
//! `epoll_ctl` calls (add, then delete before close) or tokio's
//! registration and deregistration. The first read or write that would
//! block registers it and waits there as any tokio socket does.
//! Registering after a `WouldBlock` loses nothing: epoll reports a socket
//! that is already ready when it is added.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

pub enum ClientTcp {
    /// Not yet known to the reactor: every call goes straight to the socket.
    Fresh(std::net::TcpStream),
    Registered(TcpStream),
    /// Registration failed; the socket is closed.
    Lost,
}

impl ClientTcp {
    /// A non-blocking socket, not registered.
    pub fn fresh(stream: std::net::TcpStream) -> ClientTcp {
        ClientTcp::Fresh(stream)
    }

    /// The socket in the reactor, registering it on first use.
    #[inline]
    pub fn registered(&mut self) -> io::Result<&mut TcpStream> {
        if let ClientTcp::Fresh(_) = self {
            self.register()?;
        }
        match self {
            ClientTcp::Registered(stream) => Ok(stream),
            _ => Err(lost()),
        }
    }

    /// Once per connection at most, so kept out of line.
    #[cold]
    fn register(&mut self) -> io::Result<()> {
        if let ClientTcp::Fresh(stream) = std::mem::replace(self, ClientTcp::Lost) {
            *self = ClientTcp::Registered(TcpStream::from_std(stream)?);
        }
        Ok(())
    }

    /// Waits until the socket has something to read (or is closed).
    pub async fn readable(&mut self) -> io::Result<()> {
        self.registered()?.readable().await
    }

    /// The socket as a plain one, leaving the reactor if it was in it.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        match self {
            ClientTcp::Fresh(stream) => Ok(stream),
            ClientTcp::Registered(stream) => stream.into_std(),
            ClientTcp::Lost => Err(lost()),
        }
    }

    /// Reads without waiting: what has arrived, `WouldBlock` if nothing.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientTcp::Fresh(stream) => (&*stream).read(buf),
            ClientTcp::Registered(stream) => stream.try_read(buf),
            ClientTcp::Lost => Err(lost()),
        }
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            ClientTcp::Fresh(stream) => stream.set_nodelay(on),
            ClientTcp::Registered(stream) => stream.set_nodelay(on),
            ClientTcp::Lost => Err(lost()),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            ClientTcp::Fresh(stream) => stream.local_addr(),
            ClientTcp::Registered(stream) => stream.local_addr(),
            ClientTcp::Lost => Err(lost()),
        }
    }

    /// Runs a splice on the socket (`op` is given its descriptor),
    /// waiting through the reactor for `interest` while it would block.
    pub fn poll_splice(
        &mut self,
        cx: &mut Context<'_>,
        interest: tokio::io::Interest,
        op: impl FnMut(std::os::fd::BorrowedFd<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        use std::os::fd::AsFd;
        self.poll_io(
            cx,
            op,
            |stream, op| op(stream.as_fd()),
            |stream, cx, op| super::splice::poll_op(&stream, cx, interest, op),
        )
    }

    /// Writes `bufs` as the connection's last bytes, flagged `MSG_MORE`:
    /// the kernel holds back what does not fill a segment until the
    /// close or shutdown that must follow at once, which sends it with
    /// the FIN, so a short closing response is one packet and one wakeup
    /// of the client instead of two.
    pub fn poll_write_last(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(
            cx,
            bufs,
            |stream, bufs| send_more(stream, bufs),
            |stream, cx, bufs| loop {
                let stream = &*stream;
                std::task::ready!(stream.poll_write_ready(cx))?;
                match stream.try_io(Interest::WRITABLE, || send_more(stream, bufs)) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    done => return Poll::Ready(done),
                }
            },
        )
    }

    /// Runs `op` on the fresh socket; if it would block, registers the
    /// socket and runs `wait` on it instead, which does the same through
    /// the reactor. `arg` goes to whichever runs.
    #[inline]
    fn poll_io<A, T>(
        &mut self,
        cx: &mut Context<'_>,
        arg: A,
        op: impl FnOnce(&std::net::TcpStream, &mut A) -> io::Result<T>,
        wait: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>, A) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut arg = arg;
        if let ClientTcp::Fresh(stream) = self {
            match op(stream, &mut arg) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
        match self.registered() {
            Ok(stream) => wait(Pin::new(stream), cx, arg),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// One send (a vectored one for several pieces) with `MSG_MORE`.
fn send_more(stream: &impl std::os::fd::AsFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let socket = socket2::SockRef::from(stream);
    let flags = libc::MSG_MORE | libc::MSG_NOSIGNAL;
    match bufs {
        [one] => socket.send_with_flags(one, flags),
        _ => socket.send_vectored_with_flags(bufs, flags),
    }
}

fn lost() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the client's socket could not be registered with the reactor and was closed",
    )
}

impl AsyncRead for ClientTcp {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().poll_io(
            cx,
            buf,
            |stream, buf| {
                // Safe code reads into initialised memory only, so the
                // unfilled part is zeroed first. Few reads happen before
                // a socket has to wait and is registered.
                let n = (&*stream).read(buf.initialize_unfilled())?;
                buf.advance(n);
                Ok(())
            },
            |stream, cx, buf| stream.poll_read(cx, buf),
        )
    }
}

impl AsyncWrite for ClientTcp {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(
            cx,
            data,
            |stream, data| (&*stream).write(data),
            |stream, cx, data| stream.poll_write(cx, data),
        )
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(
            cx,
            bufs,
            |stream, bufs| (&*stream).write_vectored(bufs),
            |stream, cx, bufs| stream.poll_write_vectored(cx, bufs),
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientTcp::Fresh(stream) => Poll::Ready(stream.shutdown(Shutdown::Write)),
            ClientTcp::Registered(stream) => Pin::new(stream).poll_shutdown(cx),
            ClientTcp::Lost => Poll::Ready(Err(lost())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn the_last_bytes_wait_for_the_close_and_arrive_with_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut tcp = ClientTcp::fresh(server);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let pieces = [IoSlice::new(b"head "), IoSlice::new(b"body")];
        assert!(matches!(
            tcp.poll_write_last(&mut cx, &pieces),
            Poll::Ready(Ok(9))
        ));
        // Held by the kernel (less than a segment, MSG_MORE)…
        peer.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 16];
        let early = peer.read(&mut buf);
        assert!(
            early
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock),
            "sent before the close: {early:?}"
        );
        // …until the close, which sends them with the FIN.
        drop(tcp);
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"head body");
    }
}
