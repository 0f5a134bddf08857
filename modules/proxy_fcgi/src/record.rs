//! FastCGI records on the wire (the FastCGI 1.0 specification, section
//! 3 and 8): the 8-byte record header, BEGIN_REQUEST, name-value pairs for
//! PARAMS, stream records and END_REQUEST. Pure byte work, no I/O, so
//! every encoding is unit-tested here.

pub const VERSION_1: u8 = 1;

pub const BEGIN_REQUEST: u8 = 1;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;

/// The only role a proxy asks for: the application answers the request.
const RESPONDER: u16 = 1;
/// BEGIN_REQUEST flag: keep the connection open after END_REQUEST.
const KEEP_CONN: u8 = 1;

/// One request per connection at a time (no multiplexing, as Apache and
/// nginx): its id is always 1.
pub const REQUEST_ID: u16 = 1;

/// The largest content one record carries.
pub const MAX_CONTENT: usize = 0xffff;

pub const HEADER_LEN: usize = 8;

/// The header of a record carrying `len` bytes of content (no padding).
pub fn header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(len <= MAX_CONTENT);
    let [id_hi, id_lo] = REQUEST_ID.to_be_bytes();
    let [len_hi, len_lo] = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    [VERSION_1, kind, id_hi, id_lo, len_hi, len_lo, 0, 0]
}

/// BEGIN_REQUEST for a responder, with FCGI_KEEP_CONN when `keep`.
pub fn begin_request(keep: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(&header(BEGIN_REQUEST, 8));
    let [role_hi, role_lo] = RESPONDER.to_be_bytes();
    let flags = if keep { KEEP_CONN } else { 0 };
    out.extend_from_slice(&[role_hi, role_lo, flags, 0, 0, 0, 0, 0]);
}

/// Appends one name-value pair: each length in one byte below 128, else
/// in four with the top bit set.
pub fn push_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    push_len(out, name.len());
    push_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 128 {
        out.push(len as u8);
    } else {
        let len = u32::try_from(len).unwrap_or(u32::MAX >> 1) | 0x8000_0000;
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// `data` as records of `kind`, each at most [`MAX_CONTENT`] long, without
/// the empty record that ends a stream.
pub fn stream(kind: u8, data: &[u8], out: &mut Vec<u8>) {
    for part in data.chunks(MAX_CONTENT) {
        out.extend_from_slice(&header(kind, part.len()));
        out.extend_from_slice(part);
    }
}

/// The empty record that ends a PARAMS or STDIN stream.
pub fn end_of_stream(kind: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&header(kind, 0));
}

/// A record header as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub kind: u8,
    pub request_id: u16,
    pub content_len: usize,
    pub padding: usize,
}

impl Head {
    /// The whole record's length on the wire.
    pub fn total(&self) -> usize {
        HEADER_LEN + self.content_len + self.padding
    }
}

/// Parses a record header; `Err` says what is wrong with it.
pub fn parse_head(b: &[u8; HEADER_LEN]) -> Result<Head, String> {
    if b[0] != VERSION_1 {
        return Err(format!(
            "record of FastCGI version {} (expected 1): is this port a FastCGI server?",
            b[0]
        ));
    }
    let head = Head {
        kind: b[1],
        request_id: u16::from_be_bytes([b[2], b[3]]),
        content_len: usize::from(u16::from_be_bytes([b[4], b[5]])),
        padding: usize::from(b[6]),
    };
    if head.request_id != REQUEST_ID {
        return Err(format!(
            "record for request id {} (expected {REQUEST_ID})",
            head.request_id
        ));
    }
    Ok(head)
}

/// END_REQUEST's body: the application's exit status and whether the
/// server completed the request (0) or refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    pub app_status: u32,
    pub protocol_status: u8,
}

impl EndRequest {
    pub fn parse(content: &[u8]) -> Result<EndRequest, String> {
        match content {
            [a, b, c, d, p, ..] => Ok(EndRequest {
                app_status: u32::from_be_bytes([*a, *b, *c, *d]),
                protocol_status: *p,
            }),
            _ => Err(format!(
                "END_REQUEST of {} bytes (expected 8)",
                content.len()
            )),
        }
    }

    /// Why the server did not complete the request, if it did not.
    pub fn refusal(&self) -> Option<&'static str> {
        match self.protocol_status {
            0 => None,
            1 => Some("it cannot multiplex connections (FCGI_CANT_MPX_CONN)"),
            2 => Some("it is overloaded (FCGI_OVERLOADED)"),
            3 => Some("it does not play the responder role (FCGI_UNKNOWN_ROLE)"),
            _ => Some("of an unknown protocol status"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_request_is_a_responder_with_or_without_keep_conn() {
        let mut out = Vec::new();
        begin_request(true, &mut out);
        assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        out.clear();
        begin_request(false, &mut out);
        assert_eq!(out[10], 0);
    }

    #[test]
    fn pairs_use_short_and_long_lengths() {
        let mut out = Vec::new();
        push_pair(&mut out, b"A", b"xy");
        assert_eq!(out, b"\x01\x02Axy");
        out.clear();
        let long = vec![b'v'; 300];
        push_pair(&mut out, b"NAME", &long);
        assert_eq!(&out[..5], &[4, 0x80, 0, 1, 44]);
        assert_eq!(&out[5..9], b"NAME");
        assert_eq!(out.len(), 5 + 4 + 300);
        // 127 is the longest one-byte length.
        out.clear();
        push_pair(&mut out, &[b'n'; 127], b"");
        assert_eq!(&out[..2], &[127, 0]);
    }

    #[test]
    fn streams_split_at_the_record_limit() {
        let mut out = Vec::new();
        stream(STDIN, &vec![7u8; MAX_CONTENT + 10], &mut out);
        assert_eq!(&out[..8], &[1, STDIN, 0, 1, 0xff, 0xff, 0, 0]);
        let second = HEADER_LEN + MAX_CONTENT;
        assert_eq!(&out[second..second + 8], &[1, STDIN, 0, 1, 0, 10, 0, 0]);
        assert_eq!(out.len(), 2 * HEADER_LEN + MAX_CONTENT + 10);
        out.clear();
        stream(STDIN, b"", &mut out);
        assert!(out.is_empty(), "no record for no data");
        end_of_stream(STDIN, &mut out);
        assert_eq!(out, [1, STDIN, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn heads_parse_and_refuse_other_versions_and_ids() {
        let h = parse_head(&[1, STDOUT, 0, 1, 0x01, 0x02, 6, 0]).unwrap();
        assert_eq!(
            h,
            Head {
                kind: STDOUT,
                request_id: 1,
                content_len: 258,
                padding: 6
            }
        );
        assert_eq!(h.total(), 8 + 258 + 6);
        assert!(parse_head(b"HTTP/1.1").unwrap_err().contains("version 72"));
        assert!(parse_head(&[1, STDOUT, 0, 2, 0, 0, 0, 0])
            .unwrap_err()
            .contains("request id 2"));
    }

    #[test]
    fn end_request_reads_statuses() {
        let e = EndRequest::parse(&[0, 0, 0, 255, 0, 0, 0, 0]).unwrap();
        assert_eq!((e.app_status, e.refusal()), (255, None));
        let e = EndRequest::parse(&[0, 0, 0, 0, 2, 0, 0, 0]).unwrap();
        assert!(e.refusal().unwrap().contains("overloaded"));
        assert!(EndRequest::parse(&[0, 0]).is_err());
    }
}
