//! Bodies moved between the client and a backend connection inside the
//! kernel (ABI 1.7): the bytes never enter the module, and the host says
//! where they must pass through it after all (TLS, HTTP/2, a filter), so
//! a module tries a splice and copies when told to.

use super::host::host;
use super::net::TcpConn;
use super::{IoError, Request};
use crate::abi::{self, AbiWaker};
use std::ffi::c_void;
use std::future::poll_fn;
use std::task::Poll;

/// What a splice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    /// This many bytes went across.
    Moved(usize),
    /// Nothing more to move: the connection's end of stream
    /// ([`Request::splice_from`]), or the request body's end
    /// ([`Request::splice_to`]).
    Ended,
    /// Not here: the bytes must pass through the module (read and send
    /// them as usual). For [`Request::splice_to`] this holds for the next
    /// piece only: try again after reading it.
    Unsupported,
}

impl Request {
    /// Moves up to `max` bytes of the response body from `conn` to the
    /// client, counted as [`Request::send_body`] counts them. Call it once
    /// [`Request::poll_body_ready`] is ready: it waits on `conn` alone, so
    /// a deadline around it bounds the backend, not the client.
    pub async fn splice_from(
        &mut self,
        conn: &mut TcpConn,
        max: usize,
    ) -> Result<Spliced, IoError> {
        let service = host().body_splice_from;
        self.spliced(conn, |req, conn, w, n| service(req, conn, max, w, n))
            .await
    }

    /// Moves up to `max` bytes of the request body from the client to
    /// `conn`, as [`Request::read_body`] and a write would: what `conn`'s
    /// socket does not take at once, `conn` holds until its next write or
    /// flush ([`TcpConn::poll_flush`]; flush before reading a response).
    /// Waits on the client alone, under the request body's timeout. The
    /// host keeps what it moves for [`Request::splice_replay`] while all
    /// it kept fits in `keep` bytes (0: keep nothing, drop what was kept).
    pub async fn splice_to(
        &mut self,
        conn: &mut TcpConn,
        max: usize,
        keep: usize,
    ) -> Result<Spliced, IoError> {
        let service = host().body_splice_to;
        self.spliced(conn, |req, conn, w, n| service(req, conn, max, keep, w, n))
            .await
    }

    /// Sends `conn` again what [`Request::splice_to`] kept (a retry's
    /// replay), `conn` holding what its socket does not take at once:
    /// `Moved` with the bytes kept, `Ended` when nothing was kept.
    pub async fn splice_replay(&mut self, conn: &mut TcpConn) -> Result<Spliced, IoError> {
        let service = host().body_splice_replay;
        self.spliced(conn, |req, conn, w, n| service(req, conn, w, n))
            .await
    }

    /// Polls one of the splice services until it is done.
    async fn spliced(
        &mut self,
        conn: &mut TcpConn,
        service: impl Fn(*mut c_void, *mut c_void, *const AbiWaker, *mut usize) -> i32 + Send,
    ) -> Result<Spliced, IoError> {
        // `move`: the future holds the `&mut`s (Send), not shared borrows.
        let (req, conn) = (self, conn);
        poll_fn(move |cx| {
            let mut n = 0;
            let rc = crate::waker::lend(cx, |w| service(req.as_raw(), conn.as_raw(), w, &mut n));
            outcome(rc, n)
        })
        .await
    }
}

fn outcome(rc: i32, n: usize) -> Poll<Result<Spliced, IoError>> {
    Poll::Ready(match rc {
        abi::io::PENDING => return Poll::Pending,
        abi::io::READY if n == 0 => Ok(Spliced::Ended),
        abi::io::READY => Ok(Spliced::Moved(n)),
        abi::io::ERR_UNSUPPORTED => Ok(Spliced::Unsupported),
        e => Err(IoError::from_code(e)),
    })
}
