//! What is queued for the client: the response head and body pieces,
//! sent with as few vectored writes as the socket allows. Body data is
//! never copied: chunks go out as the `Bytes` the module handed over.

use super::client_io::ClientIo;
use bytes::Bytes;
use modproxy_http1::{chunk_header, CHUNK_END, LAST_CHUNK};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// At most this many pieces per write call.
const MAX_SLICES: usize = 16;

#[derive(Default)]
pub struct Outbox {
    /// The head being built and sent; `Piece::Head` refers to it.
    head: Vec<u8>,
    pieces: VecDeque<Piece>,
    /// Bytes of the front piece already written.
    written: usize,
    queued: usize,
}

enum Piece {
    Head,
    Data(Bytes),
    Frame([u8; 20], u8),
    Static(&'static [u8]),
}

/// A typical response head fits: one allocation, no regrowth.
const HEAD_CAPACITY: usize = 512;
/// A body up to this size is copied behind its head rather than sent as
/// a piece of its own.
const MERGE_LIMIT: usize = 2048;

impl Outbox {
    /// Room for the next head, to be built in `self.head`.
    pub fn head_buffer(&mut self) -> &mut Vec<u8> {
        if self.head.capacity() == 0 {
            self.head.reserve(HEAD_CAPACITY);
            self.pieces.reserve(8);
        }
        &mut self.head
    }

    /// Frees the buffers of an idle connection.
    pub fn release(&mut self) {
        *self = Outbox::default();
    }

    /// Queues the head built in `self.head`.
    pub fn push_head(&mut self) {
        self.queued += self.head.len();
        self.pieces.push_back(Piece::Head);
    }

    /// Queues body data, in chunked framing if `chunked`.
    pub fn push_data(&mut self, data: Bytes, chunked: bool) {
        if data.is_empty() {
            return;
        }
        self.queued += data.len();
        if !chunked && data.len() <= MERGE_LIMIT && self.only_head_queued() {
            // A small body behind a head not yet sent joins it: one plain
            // send instead of a two-piece writev.
            self.head.extend_from_slice(&data);
            return;
        }
        if chunked {
            let (frame, n) = chunk_header(data.len() as u64);
            self.pieces.push_back(Piece::Frame(frame, n as u8));
            self.pieces.push_back(Piece::Data(data));
            self.pieces.push_back(Piece::Static(CHUNK_END));
        } else {
            self.pieces.push_back(Piece::Data(data));
        }
    }

    fn only_head_queued(&self) -> bool {
        self.written == 0 && self.pieces.len() == 1 && matches!(self.pieces[0], Piece::Head)
    }

    /// Queues the end of a chunked body.
    pub fn push_last_chunk(&mut self) {
        self.pieces.push_back(Piece::Static(LAST_CHUNK));
    }

    /// Bytes waiting to be written (framing aside).
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self, io: &mut ClientIo) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write(io, cx)).await
    }

    /// Writes everything queued as the connection's last bytes: the
    /// caller closes it (or shuts it down) as soon as this returns.
    pub async fn flush_last(&mut self, io: &mut ClientIo) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_some(io, cx, true)).await
    }

    /// Writes until everything queued is out or the socket is full.
    pub fn poll_write(
        &mut self,
        io: &mut ClientIo,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.poll_write_some(io, cx, false)
    }

    fn poll_write_some(
        &mut self,
        io: &mut ClientIo,
        cx: &mut Context<'_>,
        last: bool,
    ) -> Poll<std::io::Result<()>> {
        while !self.pieces.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            for piece in self.pieces.iter().take(MAX_SLICES) {
                let bytes = self.bytes(piece);
                slices[n] = IoSlice::new(if n == 0 {
                    &bytes[self.written..]
                } else {
                    bytes
                });
                n += 1;
            }
            // The last bytes go flagged to leave with the FIN; otherwise
            // one piece is a plain send, which the kernel takes for less.
            let written = if last {
                io.poll_write_last(cx, &slices[..n])
            } else if n == 1 {
                Pin::new(&mut *io).poll_write(cx, &slices[0])
            } else {
                Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n])
            };
            let wrote = match written {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(w)) => w,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.advance(wrote);
        }
        self.head.clear();
        Poll::Ready(Ok(()))
    }

    fn bytes<'a>(&'a self, piece: &'a Piece) -> &'a [u8] {
        match piece {
            Piece::Head => &self.head,
            Piece::Data(b) => b,
            Piece::Frame(f, n) => &f[..*n as usize],
            Piece::Static(s) => s,
        }
    }

    fn advance(&mut self, mut wrote: usize) {
        while let Some(front) = self.pieces.front() {
            let left = self.bytes(front).len() - self.written;
            if wrote < left {
                self.written += wrote;
                return;
            }
            wrote -= left;
            let counted = !matches!(front, Piece::Frame(..) | Piece::Static(_));
            if counted {
                self.queued -= self.bytes(front).len();
            }
            self.written = 0;
            self.pieces.pop_front();
        }
    }
}
