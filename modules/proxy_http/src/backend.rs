//! One backend connection with its read buffer and byte counters. Every
//! wait on the backend is bounded, on the connection's [`Deadline`]:
//! writes and body reads by the worker's `timeout`, head reads by the
//! caller's wait.

use crate::deadline::Deadline;
use bytes::BytesMut;
use modproxy_api::sdk::net::TcpConn;
use modproxy_api::sdk::{IoError, Request, Spliced};
use std::future::poll_fn;
use std::time::{Duration, Instant};

/// Reads while waiting for a head: most heads (and small bodies) fit.
pub const HEAD_READ: usize = 8 * 1024;
/// Reads while streaming a body: the bound on what we hold per exchange.
pub const BODY_READ: usize = 64 * 1024;

/// A body with at least this much left to come is spliced: below it, the
/// pipe's system calls cost more than the copy they save.
pub const SPLICE_MIN: u64 = 16 * 1024;

/// How much to ask for while `left` bytes of a `Content-Length` body are
/// still to come: one byte more, up to [`BODY_READ`]. A byte past the body
/// that arrived with its end is then caught for free: it stays in the
/// buffer, and a connection with a non-empty buffer is not reused. (What
/// arrives later is caught by the peek before reuse, in `exchange`.)
pub fn body_want(left: u64) -> usize {
    usize::try_from(left.saturating_add(1)).map_or(BODY_READ, |l| l.min(BODY_READ))
}

/// A keep-alive connection waiting in the pool, with the read buffer it
/// had: the next exchange on it reads into the same memory instead of
/// allocating a new buffer.
pub struct Idle {
    pub conn: TcpConn,
    /// The response it last carried, for the log if the backend sends
    /// anything after it.
    pub last: Answered,
    buf: BytesMut,
    /// Its host timer, kept for the next exchange as well.
    deadline: Deadline,
}

impl Idle {
    /// A new connection, with no buffer yet.
    pub fn new(conn: TcpConn) -> Idle {
        Idle {
            conn,
            last: Answered::default(),
            buf: BytesMut::new(),
            deadline: Deadline::default(),
        }
    }
}

/// A response as the log names it when the backend sends bytes after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answered {
    pub status: u16,
    /// The request was HEAD, so the response had no body whatever it said.
    pub head: bool,
}

impl std::fmt::Display for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.status, self.head) {
            (0, _) => f.write_str("its response"),
            (status, true) => write!(f, "its {status} response to a HEAD request"),
            (status, false) => write!(f, "its {status} response"),
        }
    }
}

/// A buffer that grew for a large body is not worth keeping while idle.
const KEEP_BUF: usize = 2 * HEAD_READ;

pub struct Backend {
    conn: TcpConn,
    /// Read but not yet used: the rest of a head, or body bytes.
    pub buf: BytesMut,
    /// Totals for the exchange outcome.
    pub received: u64,
    pub sent: u64,
    /// Taken from the pool: the keep-alive race applies to it.
    pub reused: bool,
    io_timeout: Duration,
    /// Bounds every wait on this connection.
    pub deadline: Deadline,
    /// When the final response head arrived, if the caller wants times.
    pub head_at: Option<Instant>,
}

impl Backend {
    pub fn new(idle: Idle, reused: bool, io_timeout: Duration) -> Backend {
        Backend {
            conn: idle.conn,
            buf: idle.buf,
            deadline: idle.deadline,
            received: 0,
            sent: 0,
            reused,
            io_timeout,
            head_at: None,
        }
    }

    /// The connection for the pool, once its response (`last`) was read
    /// exactly to its end (so the buffer holds nothing of it).
    pub fn into_idle(self, last: Answered) -> Idle {
        let mut buf = self.buf;
        buf.clear();
        if buf.capacity() > KEEP_BUF {
            buf = BytesMut::new();
        }
        Idle {
            conn: self.conn,
            last,
            buf,
            deadline: self.deadline,
        }
    }

    /// Writes all of `data` within the worker's timeout.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), IoError> {
        let Backend {
            conn,
            deadline,
            io_timeout,
            ..
        } = self;
        within(deadline, *io_timeout, conn.write_all(data)).await?;
        self.sent += data.len() as u64;
        Ok(())
    }

    /// Appends up to `want` bytes to `buf` (into its spare capacity, not
    /// zero-filled first); `Ok(0)` is end of stream. No deadline of its
    /// own: see [`Backend::fill_timed`].
    pub async fn fill(&mut self, want: usize) -> Result<usize, IoError> {
        let n = self.conn.read_buf(&mut self.buf, want).await?;
        self.received += n as u64;
        Ok(n)
    }

    /// Up to `max` bytes of the response body spliced from the backend
    /// to the client (call once the client can take more), within the
    /// worker's timeout.
    pub async fn splice_to_client(
        &mut self,
        req: &mut Request,
        max: usize,
    ) -> Result<Spliced, IoError> {
        let Backend {
            conn,
            deadline,
            io_timeout,
            ..
        } = self;
        let spliced = within(deadline, *io_timeout, req.splice_from(conn, max)).await?;
        if let Spliced::Moved(n) = spliced {
            self.received += n as u64;
        }
        Ok(spliced)
    }

    /// Up to `max` bytes of the request body spliced from the client to
    /// the backend, keeping up to `keep` for a replay. It waits on the
    /// client alone (the core's body timeout), so an error is the
    /// client's; flush first, so the connection holds nothing.
    pub async fn splice_from_client(
        &mut self,
        req: &mut Request,
        max: usize,
        keep: usize,
    ) -> Result<Spliced, IoError> {
        let spliced = req.splice_to(&mut self.conn, max, keep).await?;
        if let Spliced::Moved(n) = spliced {
            self.sent += n as u64;
        }
        Ok(spliced)
    }

    /// Sends again the `kept` bytes the host kept of a spliced request
    /// body (a retry); anything else is an error, as the body would then
    /// reach the backend with a gap.
    pub async fn replay_spliced(&mut self, req: &mut Request, kept: u64) -> Result<(), IoError> {
        self.flush().await?;
        match req.splice_replay(&mut self.conn).await? {
            Spliced::Moved(n) if n as u64 == kept => {
                self.sent += kept;
                Ok(())
            }
            _ => Err(IoError::Other),
        }
    }

    /// Sends what the connection still holds (a spliced body's tail),
    /// within the worker's timeout.
    pub async fn flush(&mut self) -> Result<(), IoError> {
        let Backend {
            conn,
            deadline,
            io_timeout,
            ..
        } = self;
        within(deadline, *io_timeout, poll_fn(|cx| conn.poll_flush(cx))).await
    }

    /// [`Backend::fill`] within the worker's timeout (one body read).
    pub async fn fill_timed(&mut self, want: usize) -> Result<usize, IoError> {
        let Backend {
            conn,
            buf,
            deadline,
            io_timeout,
            ..
        } = self;
        let n = within(deadline, *io_timeout, conn.read_buf(buf, want)).await?;
        self.received += n as u64;
        Ok(n)
    }
}

/// `io` within `wait` on the connection's deadline: running out is
/// [`IoError::Timeout`], as the operation's own timeout would be.
async fn within<T>(
    deadline: &mut Deadline,
    wait: Duration,
    io: impl std::future::Future<Output = Result<T, IoError>>,
) -> Result<T, IoError> {
    deadline
        .run(wait, io)
        .await
        .unwrap_or(Err(IoError::Timeout))
}
