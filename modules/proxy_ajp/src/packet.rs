//! AJP13 packets, both ways, without I/O (Tomcat's "AJPv13" reference and
//! Apache's ajp_msg.c describe the same wire format):
//!
//! - to the container: `0x12 0x34`, a 2-byte payload length, the payload;
//! - from it: `A B`, a 2-byte payload length, the payload, whose first
//!   byte says what it is (headers, a body chunk, the end, a request for
//!   more of the request body, or the CPONG).
//!
//! Integers are big-endian 16 bits; a string is its 16-bit length, its
//! bytes and a NUL (length 0xFFFF is the null string, with nothing after).
//! A whole packet never exceeds the connection's packet size (8 KiB by
//! default, 64 KiB at most, Tomcat's `packetSize`): a packet that would is
//! [`Overflow`] when we write it and [`Malformed`] when we read it.

use bytes::Bytes;

pub const DEFAULT_PACKET_SIZE: usize = 8192;
pub const MAX_PACKET_SIZE: usize = 65536;
/// Magic + length.
pub const HEADER: usize = 4;
/// Header + the data length of a body packet.
pub const BODY_OVERHEAD: usize = 6;

/// Prefix codes (the payload's first byte).
pub mod code {
    pub const FORWARD_REQUEST: u8 = 2;
    pub const SEND_BODY_CHUNK: u8 = 3;
    pub const SEND_HEADERS: u8 = 4;
    pub const END_RESPONSE: u8 = 5;
    pub const GET_BODY_CHUNK: u8 = 6;
    pub const CPONG_REPLY: u8 = 9;
    pub const CPING: u8 = 10;
}

/// The CPING packet: "are you there and in step?".
pub const CPING: [u8; 5] = [0x12, 0x34, 0x00, 0x01, code::CPING];
/// The empty body packet: "the request body has ended".
pub const END_OF_BODY: [u8; 4] = [0x12, 0x34, 0x00, 0x00];

/// A packet to the container would be larger than the packet size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// A packet from the container that breaks the protocol; the text says how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn malformed(why: impl Into<String>) -> Malformed {
    Malformed(why.into())
}

/// Writes one packet to the container, refusing to grow past `limit` bytes.
pub struct Encoder {
    buf: Vec<u8>,
    limit: usize,
}

impl Encoder {
    pub fn new(limit: usize) -> Encoder {
        let mut buf = Vec::with_capacity(limit.min(1024));
        buf.extend_from_slice(&[0x12, 0x34, 0, 0]);
        Encoder { buf, limit }
    }
    fn room(&self, n: usize) -> Result<(), Overflow> {
        if self.buf.len() + n > self.limit {
            return Err(Overflow);
        }
        Ok(())
    }
    pub fn byte(&mut self, b: u8) -> Result<(), Overflow> {
        self.room(1)?;
        self.buf.push(b);
        Ok(())
    }
    pub fn int(&mut self, n: u16) -> Result<(), Overflow> {
        self.room(2)?;
        self.buf.extend_from_slice(&n.to_be_bytes());
        Ok(())
    }
    pub fn bool(&mut self, b: bool) -> Result<(), Overflow> {
        self.byte(u8::from(b))
    }
    /// A string; `None` is AJP's null string.
    pub fn string(&mut self, s: Option<&[u8]>) -> Result<(), Overflow> {
        let Some(s) = s else {
            return self.int(0xFFFF);
        };
        let len = u16::try_from(s.len())
            .ok()
            .filter(|l| *l < 0xFFFF)
            .ok_or(Overflow)?;
        self.room(2 + s.len() + 1)?;
        self.int(len)?;
        self.buf.extend_from_slice(s);
        self.buf.push(0);
        Ok(())
    }
    /// The packet, its length filled in.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - HEADER) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// The head of a body packet carrying `len` bytes of request body (the
/// data follows it on the wire, so it is never copied into a packet).
pub fn body_head(len: usize) -> [u8; BODY_OVERHEAD] {
    let data = len as u16;
    let payload = data.wrapping_add(2);
    let [p0, p1] = payload.to_be_bytes();
    let [d0, d1] = data.to_be_bytes();
    [0x12, 0x34, p0, p1, d0, d1]
}

/// Where a packet from the container ends in `buf`: `Ok(None)` while the
/// whole packet has not arrived. Checks the magic and the length against
/// `limit` before anything is read past the header.
pub fn frame_len(buf: &[u8], limit: usize) -> Result<Option<usize>, Malformed> {
    if buf.len() >= 2 && &buf[..2] != b"AB" {
        return Err(malformed(format!(
            "the backend sent {:02x} {:02x} where an AJP13 packet starts with `AB` (is it an AJP connector?)",
            buf[0], buf[1]
        )));
    }
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if len == 0 {
        return Err(malformed("the backend sent an empty AJP13 packet"));
    }
    if len + HEADER > limit {
        return Err(malformed(format!(
            "the backend sent an AJP13 packet of {} bytes, over the packet size of {limit}: set ajp_packet_size to Tomcat's packetSize",
            len + HEADER
        )));
    }
    Ok((buf.len() >= len + HEADER).then_some(len + HEADER))
}

/// One message from the container.
#[derive(Debug, PartialEq, Eq)]
pub enum FromContainer {
    /// The response head: status and fields (names as Tomcat spelt them).
    Headers {
        status: u16,
        fields: Vec<(String, Bytes)>,
    },
    /// A piece of the response body.
    Body(Bytes),
    /// The response is complete; `reuse`: the container keeps the connection.
    End {
        reuse: bool,
    },
    /// Send up to this many more bytes of the request body.
    GetBody(usize),
    Cpong,
}

/// The response header names Tomcat sends as codes `0xA001`...
const RESPONSE_NAMES: [&str; 11] = [
    "Content-Type",
    "Content-Language",
    "Content-Length",
    "Date",
    "Last-Modified",
    "Location",
    "Set-Cookie",
    "Set-Cookie2",
    "Servlet-Engine",
    "Status",
    "WWW-Authenticate",
];

/// Reads the payload of one packet (`packet` is the whole packet as
/// [`frame_len`] delimited it; body chunks are slices of it, not copies).
pub fn parse(packet: Bytes) -> Result<FromContainer, Malformed> {
    let mut r = Reader {
        data: packet,
        at: HEADER,
    };
    let kind = r.byte()?;
    let msg = match kind {
        code::SEND_HEADERS => {
            let status = r.int()?;
            if !(100..=999).contains(&status) {
                return Err(malformed(format!(
                    "the backend sent status {status}, not a 3-digit HTTP status"
                )));
            }
            let _reason = r.string()?;
            let count = r.int()?;
            let mut fields = Vec::with_capacity(usize::from(count).min(64));
            for _ in 0..count {
                let name = r.header_name()?;
                let value = r.string()?.unwrap_or_default();
                if value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    return Err(malformed(format!(
                        "the backend's {name} field holds a CR, LF or NUL (response splitting?)"
                    )));
                }
                fields.push((name, value));
            }
            FromContainer::Headers { status, fields }
        }
        code::SEND_BODY_CHUNK => {
            let len = usize::from(r.int()?);
            // Tomcat ends the chunk with a NUL it does not count; not required.
            FromContainer::Body(r.take(len)?)
        }
        code::END_RESPONSE => FromContainer::End {
            reuse: r.byte()? == 1,
        },
        code::GET_BODY_CHUNK => FromContainer::GetBody(usize::from(r.int()?)),
        code::CPONG_REPLY => FromContainer::Cpong,
        other => {
            return Err(malformed(format!(
                "the backend sent an AJP13 message of type {other}, which a container never sends"
            )))
        }
    };
    Ok(msg)
}

struct Reader {
    data: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, Malformed> {
        if self.at + n > self.data.len() {
            return Err(malformed(
                "an AJP13 packet from the backend ends in the middle of a value",
            ));
        }
        let out = self.data.slice(self.at..self.at + n);
        self.at += n;
        Ok(out)
    }
    fn byte(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn int(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// `None` for the null string.
    fn string(&mut self) -> Result<Option<Bytes>, Malformed> {
        let len = self.int()?;
        if len == 0xFFFF {
            return Ok(None);
        }
        let s = self.take(usize::from(len))?;
        if self.byte()? != 0 {
            return Err(malformed(
                "a string in an AJP13 packet from the backend is not NUL-terminated",
            ));
        }
        Ok(Some(s))
    }
    fn header_name(&mut self) -> Result<String, Malformed> {
        let peek = self.data.get(self.at..self.at + 2).ok_or_else(|| {
            malformed("an AJP13 packet from the backend ends in the middle of a value")
        })?;
        if peek[0] == 0xA0 {
            let code = usize::from(peek[1]);
            self.at += 2;
            return RESPONSE_NAMES
                .get(code.wrapping_sub(1))
                .map(|n| (*n).to_owned())
                .ok_or_else(|| {
                    malformed(format!(
                        "the backend sent unknown header code 0xA0{code:02X}"
                    ))
                });
        }
        let name = self.string()?.unwrap_or_default();
        let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
        match std::str::from_utf8(&name) {
            Ok(n) if !n.is_empty() && name.iter().all(token) => Ok(n.to_owned()),
            _ => Err(malformed(format!(
                "the backend sent header name {:?}, which is not an HTTP token",
                String::from_utf8_lossy(&name)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_container(payload: &[u8]) -> Bytes {
        let mut p = b"AB".to_vec();
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(payload);
        Bytes::from(p)
    }

    #[test]
    fn strings_ints_and_the_length_are_written_as_ajp13_says() {
        let mut e = Encoder::new(64);
        e.byte(code::FORWARD_REQUEST).unwrap();
        e.int(8009).unwrap();
        e.string(Some(b"GET")).unwrap();
        e.string(None).unwrap();
        e.bool(true).unwrap();
        let p = e.finish();
        assert_eq!(
            p,
            [0x12, 0x34, 0, 12, 2, 0x1F, 0x49, 0, 3, b'G', b'E', b'T', 0, 0xFF, 0xFF, 1]
        );
    }

    #[test]
    fn a_packet_never_grows_past_its_limit() {
        let mut e = Encoder::new(17);
        assert_eq!(e.string(Some(&[b'x'; 8])), Ok(()));
        assert_eq!(e.string(Some(&[b'x'; 2])), Err(Overflow));
        assert_eq!(e.int(1), Ok(()));
        assert_eq!(e.finish().len(), 4 + 11 + 2);
    }

    #[test]
    fn body_heads_count_the_data_and_its_length() {
        assert_eq!(body_head(8186), [0x12, 0x34, 0x1F, 0xFC, 0x1F, 0xFA]);
        assert_eq!(body_head(0), [0x12, 0x34, 0, 2, 0, 0]);
    }

    #[test]
    fn frames_are_checked_before_they_are_read() {
        assert_eq!(frame_len(b"A", 8192), Ok(None));
        assert_eq!(frame_len(b"AB\x00\x03\x05\x01", 8192), Ok(None));
        assert_eq!(frame_len(b"AB\x00\x02\x05\x01", 8192), Ok(Some(6)));
        assert!(frame_len(b"HTTP/1.1 200", 8192)
            .unwrap_err()
            .0
            .contains("AB"));
        assert!(frame_len(b"AB\x00\x00", 8192).is_err());
        let over = frame_len(b"AB\x1f\xfd", 8192).unwrap_err();
        assert!(over.0.contains("8193 bytes") && over.0.contains("ajp_packet_size"));
        assert_eq!(frame_len(b"AB\x1f\xfc", 8192), Ok(None));
    }

    #[test]
    fn headers_with_codes_and_names() {
        let mut p = vec![code::SEND_HEADERS, 0, 200, 0, 2, b'O', b'K', 0, 0, 3];
        p.extend_from_slice(&[0xA0, 0x07, 0, 3, b'a', b'=', b'b', 0]);
        p.extend_from_slice(&[0xA0, 0x01, 0, 1, b't', 0]);
        p.extend_from_slice(&[0, 5, b'X', b'-', b'R', b'u', b'n', 0, 0, 1, b'1', 0]);
        let got = parse(from_container(&p)).unwrap();
        let FromContainer::Headers { status, fields } = got else {
            panic!("{got:?}")
        };
        assert_eq!(status, 200);
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Set-Cookie", "Content-Type", "X-Run"]);
        assert_eq!(&fields[2].1[..], b"1");
    }

    #[test]
    fn body_end_and_requests_for_more() {
        let body = parse(from_container(&[3, 0, 2, b'h', b'i', 0])).unwrap();
        assert_eq!(body, FromContainer::Body(Bytes::from_static(b"hi")));
        assert_eq!(
            parse(from_container(&[5, 1])).unwrap(),
            FromContainer::End { reuse: true }
        );
        assert_eq!(
            parse(from_container(&[5, 0])).unwrap(),
            FromContainer::End { reuse: false }
        );
        assert_eq!(
            parse(from_container(&[6, 0x1F, 0xFA])).unwrap(),
            FromContainer::GetBody(8186)
        );
        assert_eq!(parse(from_container(&[9])).unwrap(), FromContainer::Cpong);
    }

    #[test]
    fn broken_messages_are_refused() {
        for (payload, why) in [
            (&[3, 0, 9, b'h'][..], "middle of a value"),
            (&[4, 0, 200, 0, 0, 1, 0, 1][..], "NUL-terminated"),
            (&[7][..], "type 7"),
            (&[4, 0, 20, 0xFF, 0xFF, 0, 0][..], "status 20"),
            (
                &[4, 0, 200, 0xFF, 0xFF, 0, 1, 0xA0, 0x20, 0, 0, 0][..],
                "0xA020",
            ),
            (
                &[4, 0, 200, 0xFF, 0xFF, 0, 1, 0, 1, b' ', 0, 0, 0, 0][..],
                "not an HTTP token",
            ),
            (
                &[4, 0, 200, 0xFF, 0xFF, 0, 1, 0xA0, 6, 0, 2, b'\r', b'\n', 0][..],
                "CR, LF",
            ),
        ] {
            let e = parse(from_container(payload)).unwrap_err();
            assert!(e.0.contains(why), "{payload:?}: {e}");
        }
    }
}
