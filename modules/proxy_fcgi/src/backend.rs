//! One connection to a FastCGI server: its read buffer, byte counts, and
//! records read whole, every wait bounded by the worker's `timeout`.

use crate::record::{self, Head, HEADER_LEN};
use bytes::{Buf, Bytes, BytesMut};
use modproxy_api::sdk::net::{timeout, TcpConn};
use modproxy_api::sdk::IoError;
use std::time::Duration;

/// The least one read asks for: a small response and its records fit.
const READ: usize = 16 * 1024;
/// A buffer that grew past this for a large record is not kept while idle.
const KEEP_BUF: usize = 2 * READ;

/// A kept-alive connection waiting in the pool, with its read buffer:
/// the next exchange reads into the same memory.
pub struct Idle {
    pub conn: TcpConn,
    buf: BytesMut,
}

impl Idle {
    pub fn new(conn: TcpConn) -> Idle {
        Idle {
            conn,
            buf: BytesMut::new(),
        }
    }
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
    pub fn new(idle: Idle, io_timeout: Duration) -> Backend {
        Backend {
            conn: idle.conn,
            buf: idle.buf,
            received: 0,
            sent: 0,
            io_timeout,
        }
    }

    /// The connection for the pool; only after a whole response was read
    /// and nothing follows it ([`Backend::has_unread`]).
    pub fn into_idle(self) -> Idle {
        let mut buf = self.buf;
        buf.clear();
        if buf.capacity() > KEEP_BUF {
            buf = BytesMut::new();
        }
        Idle {
            conn: self.conn,
            buf,
        }
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
            // At least what the record in hand still needs, so it arrives
            // in as few reads as the socket allows.
            let want = self.needed().max(READ);
            let read = timeout(limit, self.conn.read_buf(&mut self.buf, want)).await;
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

    /// Bytes still missing for the record at the buffer's start.
    fn needed(&self) -> usize {
        let Some(raw) = self.buf.get(..HEADER_LEN) else {
            return HEADER_LEN - self.buf.len();
        };
        let content = usize::from(u16::from_be_bytes([raw[4], raw[5]]));
        (HEADER_LEN + content + usize::from(raw[6])).saturating_sub(self.buf.len())
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
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let content = self.buf.split_to(head.content_len).freeze();
        self.buf.advance(head.padding);
        Ok(Some((head, content)))
    }
}
