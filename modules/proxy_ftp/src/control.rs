//! The FTP control connection: one command, one reply (RFC 959's
//! multi-line replies included), every wait bounded by the worker's
//! timeout; and the passive-mode data connection (EPSV, then PASV).

use bytes::{Buf, BytesMut};
use modproxy_api::sdk::net::{timeout, TcpConn};
use modproxy_api::IoError;
use std::time::Duration;

/// Longest reply line accepted (RFC 959 has no limit; servers keep short).
const MAX_LINE: usize = 8192;

pub struct Control {
    conn: TcpConn,
    buf: BytesMut,
    /// The server's host, for data connections: a PASV address is not
    /// trusted (the FTP bounce), only its port.
    pub host: String,
    pub wait: Duration,
}

/// A reply: its code and its text (the last line's, without the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// Why the conversation stopped.
#[derive(Debug)]
pub enum FtpError {
    Io(&'static str, IoError),
    Protocol(String),
}

impl std::fmt::Display for FtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FtpError::Io(what, e) => write!(f, "{what}: {e}"),
            FtpError::Protocol(why) => f.write_str(why),
        }
    }
}

impl Control {
    pub fn new(conn: TcpConn, host: &str, wait: Duration) -> Control {
        Control {
            conn,
            buf: BytesMut::new(),
            host: host.to_owned(),
            wait,
        }
    }

    /// Sends `line` (CRLF added) and reads the reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, FtpError> {
        let bytes = format!("{line}\r\n");
        match timeout(self.wait, self.conn.write_all(bytes.as_bytes())).await {
            Err(_) => return Err(FtpError::Io("sending a command", IoError::Timeout)),
            Ok(Err(e)) => return Err(FtpError::Io("sending a command", e)),
            Ok(Ok(())) => {}
        }
        self.reply().await
    }

    /// The next reply, multi-line ones read to their last line.
    pub async fn reply(&mut self) -> Result<Reply, FtpError> {
        let first = self.line().await?;
        let code = reply_code(&first)?;
        if first.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply {
                code,
                text: first.get(4..).unwrap_or("").to_owned(),
            });
        }
        loop {
            let line = self.line().await?;
            if line.len() >= 4 && line.as_bytes()[3] == b' ' && reply_code(&line).ok() == Some(code)
            {
                return Ok(Reply {
                    code,
                    text: line[4..].to_owned(),
                });
            }
        }
    }

    async fn line(&mut self) -> Result<String, FtpError> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let raw = self.buf.split_to(i + 1);
                let text = String::from_utf8_lossy(&raw);
                return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            if self.buf.len() > MAX_LINE {
                return Err(FtpError::Protocol(format!(
                    "the FTP server sent a reply line over {MAX_LINE} bytes"
                )));
            }
            match timeout(self.wait, self.conn.read_buf(&mut self.buf, 4096)).await {
                Err(_) => return Err(FtpError::Io("waiting for a reply", IoError::Timeout)),
                Ok(Err(e)) => return Err(FtpError::Io("reading a reply", e)),
                Ok(Ok(0)) => {
                    return Err(FtpError::Protocol(
                        "the FTP server closed the control connection".to_owned(),
                    ))
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// A passive data connection: EPSV, or PASV when the server has none.
    pub async fn passive(&mut self) -> Result<TcpConn, FtpError> {
        let epsv = self.command("EPSV").await?;
        let port = if epsv.code == 229 {
            epsv_port(&epsv.text)
        } else {
            let pasv = self.command("PASV").await?;
            if pasv.code != 227 {
                return Err(FtpError::Protocol(format!(
                    "the FTP server refused passive mode (EPSV: {epsv}; PASV: {pasv})"
                )));
            }
            pasv_port(&pasv.text)
        };
        let port = port.ok_or_else(|| {
            FtpError::Protocol("the FTP server's passive reply names no port".to_owned())
        })?;
        let addr = if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        };
        TcpConn::connect(&addr, self.wait)
            .await
            .map_err(|e| FtpError::Io("opening the data connection", e))
    }

    /// Bytes already read past the last reply (none in a well-behaved
    /// conversation); dropped.
    pub fn clear(&mut self) {
        let n = self.buf.len();
        self.buf.advance(n);
    }
}

fn reply_code(line: &str) -> Result<u16, FtpError> {
    line.get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| FtpError::Protocol(format!("the FTP server sent {line:?}, not a reply")))
}

/// `Entering Extended Passive Mode (|||6446|)` → 6446.
pub fn epsv_port(text: &str) -> Option<u16> {
    let inner = text.split('(').nth(1)?.split(')').next()?;
    let d = inner.chars().next()?;
    inner.split(d).nth(3)?.parse().ok()
}

/// `Entering Passive Mode (127,0,0,1,195,149)` → 50069.
pub fn pasv_port(text: &str) -> Option<u16> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let nums: Vec<u16> = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|s| s.parse().ok())
        .collect::<Option<_>>()?;
    let (&p1, &p2) = (nums.get(4)?, nums.get(5)?);
    (p1 < 256 && p2 < 256).then(|| p1 * 256 + p2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_replies() {
        assert_eq!(
            epsv_port("Entering Extended Passive Mode (|||6446|)"),
            Some(6446)
        );
        assert_eq!(epsv_port("ok (!!!21!)"), Some(21));
        assert_eq!(epsv_port("no port"), None);
        assert_eq!(
            pasv_port("Entering Passive Mode (127,0,0,1,195,149)."),
            Some(50069)
        );
        assert_eq!(pasv_port("=127,0,0,1,4,1"), Some(1025));
        assert_eq!(pasv_port("(1,2,3)"), None);
        assert_eq!(pasv_port("(1,2,3,4,256,1)"), None);
    }
}
