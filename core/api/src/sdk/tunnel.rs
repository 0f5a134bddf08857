//! A tunnel: bytes both ways between the client's taken-over connection
//! ([`TcpConn::upgrade`]) and the backend's, each direction through its
//! own bounded buffer. An end of stream on one side is passed on as a
//! half-close to the other; the tunnel ends when both directions have,
//! when either side fails, or when nothing moved either way for the idle
//! timeout. proxy_wstunnel (after a 101) and proxy_connect (after a 200
//! to CONNECT) both run theirs here.

use crate::sdk::net::{sleep, Sleep, TcpConn};
use crate::sdk::IoError;
use bytes::Bytes;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Per direction: what one read may take, and so what the tunnel holds.
const BUF: usize = 64 * 1024;

/// Bytes moved, and why the tunnel ended when it was not a clean close.
pub struct Moved {
    /// Client to backend.
    pub up: u64,
    /// Backend to client.
    pub down: u64,
    pub ended: Option<String>,
}

/// One direction of the copy.
struct Dir {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    done: bool,
    moved: u64,
}

impl Dir {
    fn new(first: &[u8]) -> Dir {
        let mut buf = vec![0u8; BUF.max(first.len())].into_boxed_slice();
        buf[..first.len()].copy_from_slice(first);
        Dir {
            buf,
            start: 0,
            end: first.len(),
            eof: false,
            done: false,
            moved: 0,
        }
    }

    /// Ready(Ok(true)) once this direction is finished (EOF read, all
    /// written, half-close passed on); `active` is set when bytes moved.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut TcpConn,
        to: &mut TcpConn,
        active: &mut bool,
    ) -> Poll<Result<(), IoError>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.start < self.end {
                let n = match to.poll_write(cx, &self.buf[self.start..self.end]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(IoError::Reset)),
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                };
                self.start += n;
                self.moved += n as u64;
                *active = true;
                continue;
            }
            if self.eof {
                return match to.poll_shutdown(cx) {
                    Poll::Pending => Poll::Pending,
                    // The peer may already be gone: the direction is over either way.
                    Poll::Ready(_) => {
                        self.done = true;
                        Poll::Ready(Ok(()))
                    }
                };
            }
            match from.poll_read(cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(n)) => {
                    (self.start, self.end) = (0, n);
                    *active = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Runs the tunnel to its end. `early` are bytes the backend sent right
/// after its 101 head, already read with it (empty for CONNECT).
pub async fn run(mut client: TcpConn, mut backend: TcpConn, early: Bytes, idle: Duration) -> Moved {
    let mut up = Dir::new(&[]);
    let mut down = Dir::new(&early);
    let mut last = Instant::now();
    let mut timer: Sleep = sleep(idle);
    let ended = poll_fn(|cx| {
        let mut active = false;
        let u = up.poll(cx, &mut client, &mut backend, &mut active);
        let d = down.poll(cx, &mut backend, &mut client, &mut active);
        match (u, d) {
            (Poll::Ready(Err(e)), _) => return Poll::Ready(Some(format!("client side: {e}"))),
            (_, Poll::Ready(Err(e))) => return Poll::Ready(Some(format!("backend side: {e}"))),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => return Poll::Ready(None),
            _ => {}
        }
        if active {
            // A timer per chunk would cost an allocation each: only the
            // time of the last movement is kept, checked when it fires.
            last = Instant::now();
        }
        while Pin::new(&mut timer).poll(cx).is_ready() {
            let quiet = last.elapsed();
            if quiet >= idle {
                return Poll::Ready(Some(format!("idle for {} s (the timeout)", idle.as_secs())));
            }
            timer = sleep(idle - quiet);
        }
        Poll::Pending
    })
    .await;
    Moved {
        up: up.moved,
        down: down.moved - early.len() as u64,
        ended,
    }
}
