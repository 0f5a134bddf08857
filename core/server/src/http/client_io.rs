//! The client's connection: plain TCP or TLS, one type so that a request
//! (which owns the connection while it is served) needs no generics, and
//! what a module gets after a `101 Switching Protocols`.

use super::client_tcp::ClientTcp;
use bytes::{Buf, BytesMut};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

pub enum ClientIo {
    Tcp(ClientTcp),
    Tls(Box<tokio_rustls::server::TlsStream<ClientTcp>>),
}

impl ClientIo {
    /// The plain socket, where waiting for readability says a request
    /// may be there (TLS may hold decrypted bytes the socket no longer
    /// shows, so it has none).
    pub fn plain(&mut self) -> Option<&mut ClientTcp> {
        match self {
            ClientIo::Tcp(s) => Some(s),
            ClientIo::Tls(_) => None,
        }
    }

    /// Writes `bufs` as the connection's last bytes: on plain TCP they
    /// leave with the FIN of the close that must follow at once
    /// (`ClientTcp::poll_write_last`); TLS writes as usual.
    pub fn poll_write_last(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self {
            ClientIo::Tcp(tcp) => tcp.poll_write_last(cx, bufs),
            ClientIo::Tls(tls) => Pin::new(tls).poll_write_vectored(cx, bufs),
        }
    }

    /// TLS whose ALPN chose HTTP/2.
    pub fn alpn_h2(&self) -> bool {
        match self {
            ClientIo::Tls(tls) => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
            ClientIo::Tcp(_) => false,
        }
    }
}

/// The connection plus what was read and not used: the bytes a client
/// sent after its request head belong to the new protocol.
pub struct Wire {
    pub io: ClientIo,
    pub buf: BytesMut,
    /// TCP_NODELAY is set: only once a connection sends a response in
    /// more than one write, or carries a second request (nginx's rule),
    /// so a one-request connection makes no setsockopt call.
    nodelay: bool,
}

impl Wire {
    pub fn new(io: ClientIo) -> Wire {
        let nodelay = matches!(io, ClientIo::Tls(_));
        Wire {
            io,
            buf: BytesMut::new(),
            nodelay,
        }
    }

    /// Small writes go out at once from here on, not held back by Nagle
    /// for the client's acknowledgement.
    pub fn nodelay(&mut self) {
        if !self.nodelay {
            self.nodelay = true;
            if let ClientIo::Tcp(s) = &self.io {
                let _ = s.set_nodelay(true);
            }
        }
    }
}

/// A client connection taken over after a 101: the unread bytes first,
/// then the socket. It keeps the connection's MaxConnections slot until
/// it is dropped, when the tunnel closes.
pub struct Upgraded {
    wire: Wire,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Upgraded {
    pub fn new(wire: Wire, slot: Option<OwnedSemaphorePermit>) -> Upgraded {
        Upgraded { wire, _slot: slot }
    }
}

macro_rules! each_io {
    ($io:expr, $s:ident => $e:expr) => {
        match $io {
            ClientIo::Tcp($s) => $e,
            ClientIo::Tls($s) => $e,
        }
    };
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        each_io!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        each_io!(self.get_mut(), s => Pin::new(s).poll_write(cx, data))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        each_io!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each_io!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each_io!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().wire).poll_read(cx, out)
    }
}

/// The bytes read and not used come first: what a client sent after its
/// request head (a tunnel's), or the HTTP/2 preface the server looked at.
impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let wire = self.get_mut();
        if !wire.buf.is_empty() {
            let n = wire.buf.len().min(out.remaining());
            out.put_slice(&wire.buf[..n]);
            wire.buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut wire.io).poll_read(cx, out)
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().wire.io).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().wire.io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().wire.io).poll_shutdown(cx)
    }
}
