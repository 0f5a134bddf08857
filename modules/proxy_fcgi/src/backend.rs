//! One connection to a FastCGI server: its read buffer, byte counts, and
//! records read whole, every wait bounded by the worker's `timeout`.

use crate::record::{self, Head, HEADER_LEN};
use bytes::{Buf, Bytes, BytesMut};
use modproxy_api::sdk::net::{timeout, TcpConn};
use modproxy_api::sdk::IoError;
use std::time::Duration;

/// Read this much at a time: a whole record (64 KiB) and its header fit.
const READ: usize = 72 * 1024;

/// A kept-alive connection waiting in the pool.
pub struct Idle {
    pub conn: TcpConn,
}

/// Why no record could be read.
#[derive(Debug)]
pub enum ReadFail {
    /// End of stream; `clean` when it fell between records.
    Closed {
        clean: bool,
    },
    Io(IoError),
    Timeout,
    /// Not FastCGI, or not for our request: the text says what.
    Bad(String),
}

impl std::fmt::Display for ReadFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFail::Closed { clean: true } => f.write_str("the server closed the connection"),
            ReadFail::Closed { clean: false } => {
                f.write_str("the server closed the connection inside a record")
            }
            ReadFail::Io(e) => write!(f, "reading from the server failed: {e}"),
            ReadFail::Timeout => f.write_str("timed out"),
            ReadFail::Bad(why) => f.write_str(why),
        }
    }
}

pub struct Backend {
    conn: TcpConn,
    buf: BytesMut,
    pub received: u64,
    pub sent: u64,
    io_timeout: Duration,
}

impl Backend {
    pub fn new(conn: TcpConn, io_timeout: Duration) -> Backend {
        Backend {
            conn,
            buf: BytesMut::new(),
            received: 0,
            sent: 0,
            io_timeout,
        }
    }

    /// The connection for the pool; only after a whole response was read
    /// and nothing follows it ([`Backend::has_unread`]).
    pub fn into_idle(self) -> Idle {
        Idle { conn: self.conn }
    }

    /// Bytes that arrived after the last record read.
    pub fn has_unread(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes all of `data` within the worker's timeout.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), IoError> {
        match timeout(self.io_timeout, self.conn.write_all(data)).await {
            Ok(r) => r?,
            Err(_) => return Err(IoError::Timeout),
        }
        self.sent += data.len() as u64;
        Ok(())
    }

    /// `data` as STDIN records: small ones in one write with their header,
    /// large ones written in place behind it.
    pub async fn write_stdin(&mut self, data: &[u8], scratch: &mut Vec<u8>) -> Result<(), IoError> {
        for part in data.chunks(record::MAX_CONTENT) {
            let head = record::header(record::STDIN, part.len());
            if part.len() <= 8 * 1024 {
                scratch.clear();
                scratch.extend_from_slice(&head);
                scratch.extend_from_slice(part);
                let out = std::mem::take(scratch);
                let r = self.write(&out).await;
                *scratch = out;
                r?;
            } else {
                self.write(&head).await?;
                self.write(part).await?;
            }
        }
        Ok(())
    }

    /// The next whole record, read within the worker's timeout for each
    /// wait (`wait` for the first, which may be longer: the application's
    /// run time before it answers).
    pub async fn record(&mut self, wait: Duration) -> Result<(Head, Bytes), ReadFail> {
        let mut first = true;
        loop {
            if let Some(r) = self.buffered()? {
                return Ok(r);
            }
            let limit = if first { wait } else { self.io_timeout };
            first = false;
            let read = timeout(limit, self.conn.read_buf(&mut self.buf, READ)).await;
            match read {
                Err(_) => return Err(ReadFail::Timeout),
                Ok(Err(e)) => return Err(ReadFail::Io(e)),
                Ok(Ok(0)) => {
                    return Err(ReadFail::Closed {
                        clean: self.buf.is_empty(),
                    })
                }
                Ok(Ok(n)) => self.received += n as u64,
            }
        }
    }

    /// A whole record already in the buffer, without waiting.
    pub fn buffered(&mut self) -> Result<Option<(Head, Bytes)>, ReadFail> {
        let Some(raw) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(raw);
        let head = record::parse_head(&h).map_err(ReadFail::Bad)?;
        if self.buf.len() < head.total() {
            self.buf.reserve(head.total() - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let content = self.buf.split_to(head.content_len).freeze();
        self.buf.advance(head.padding);
        Ok(Some((head, content)))
    }
}
