//! Incremental chunked transfer-coding decoder (RFC 9112 §7.1) that hands
//! back body data as ranges of the caller's buffer, plus the encoder's
//! framing bytes.
//!
//! Strict on purpose: a bare LF, junk after a size, or a size that does not
//! fit is an error, because a proxy that reads chunk boundaries differently
//! from its backend is a request-smuggling vector.

use std::fmt;
use std::ops::Range;

/// Ends a chunked body: the zero-size chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// Follows the data of every chunk.
pub const CHUNK_END: &[u8] = b"\r\n";

/// The framing before `len` bytes of chunk data: `{len:x}\r\n`, in the first
/// `n` bytes of the array. `len` must not be 0 (that is [`LAST_CHUNK`]).
pub fn chunk_header(len: u64) -> ([u8; 20], usize) {
    let mut buf = [0u8; 20];
    let digits = (16 - len.leading_zeros() as usize / 4).max(1);
    for (i, slot) in buf[..digits].iter_mut().enumerate() {
        let nibble = (len >> (4 * (digits - 1 - i))) & 0xf;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    buf[digits..digits + 2].copy_from_slice(b"\r\n");
    (buf, digits + 2)
}

/// A chunk-size line (extensions included) longer than this is refused.
const MAX_SIZE_LINE: usize = 8192;
/// Trailers are skipped, but not without bound.
const MAX_TRAILERS: usize = 64 * 1024;
/// 16 hex digits hold any u64; more can only be padding or an attack.
const MAX_HEX_DIGITS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size, before `;` or CR.
    SizeWs {
        size: u64,
    },
    /// Inside chunk extensions (ignored), until CR.
    Ext {
        size: u64,
    },
    /// Saw the CR ending the size line.
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// What one call to [`ChunkedDecoder::decode`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used up (framing and data); resume at `input[consumed..]`.
    pub consumed: usize,
    /// Body data within the input (empty if none), always inside `..consumed`.
    pub data: Range<usize>,
    /// The terminating chunk and trailers have been read; bytes after
    /// `consumed` belong to the next message.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A byte that cannot appear where it was found in a size line.
    BadSize(u8),
    /// More than 16 hex digits, or a size of 2^63 or more.
    SizeTooLarge,
    /// Chunk data, a size line or a trailer not followed by CRLF.
    MissingCrlf,
    /// A control byte inside a chunk extension or trailer.
    BadByte(u8),
    SizeLineTooLong,
    TrailersTooLarge,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::BadSize(b) => write!(f, "invalid byte 0x{b:02x} in chunk size"),
            ChunkError::SizeTooLarge => f.write_str("chunk size too large"),
            ChunkError::MissingCrlf => f.write_str("chunked body: missing CRLF"),
            ChunkError::BadByte(b) => {
                write!(f, "invalid byte 0x{b:02x} in chunk extension or trailer")
            }
            ChunkError::SizeLineTooLong => {
                write!(f, "chunk size line longer than {MAX_SIZE_LINE} bytes")
            }
            ChunkError::TrailersTooLarge => {
                write!(f, "chunked trailers longer than {MAX_TRAILERS} bytes")
            }
        }
    }
}

impl std::error::Error for ChunkError {}

/// Decoder state for one chunked body. Feed it the unread bytes again and
/// again; after an error the body is unusable and so is the connection.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line, or of all trailers so far.
    line: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            line: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads framing from `input` until it reaches data, runs out of input
    /// or finishes. Returns at most one data range, ending the call right
    /// after it, so a caller loops:
    ///
    /// ```text
    /// let d = dec.decode(&buf[pos..])?;
    /// send(&buf[pos..][d.data.clone()]); pos += d.consumed;
    /// ```
    ///
    /// `consumed` is 0 only when `input` is empty or the body is done.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ChunkError> {
        if self.is_done() {
            return Ok(self.out(0, 0..0));
        }
        let mut i = 0;
        while i < input.len() {
            if let State::Data { left } = self.state {
                let avail = input.len() - i;
                let take = usize::try_from(left).map_or(avail, |l| l.min(avail));
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { left }
                };
                return Ok(self.out(i + take, i..i + take));
            }
            self.step(input[i])?;
            i += 1;
            if self.state == State::Done {
                break;
            }
        }
        Ok(self.out(i, i..i))
    }

    fn out(&self, consumed: usize, data: Range<usize>) -> Decoded {
        Decoded {
            consumed,
            data,
            done: self.is_done(),
        }
    }

    /// One framing byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        self.count_line()?;
        self.state = match (self.state, b) {
            (Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                if digits == MAX_HEX_DIGITS {
                    return Err(ChunkError::SizeTooLarge);
                }
                let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                let size = (size << 4) | d;
                if size > i64::MAX as u64 {
                    return Err(ChunkError::SizeTooLarge);
                }
                Size {
                    size,
                    digits: digits + 1,
                }
            }
            // A size line must start with at least one digit.
            (Size { digits: 0, .. }, _) => return Err(ChunkError::BadSize(b)),
            (Size { size, .. } | SizeWs { size }, b' ' | b'\t') => SizeWs { size },
            (Size { size, .. } | SizeWs { size }, b';') => Ext { size },
            (Size { size, .. } | SizeWs { size } | Ext { size }, b'\r') => SizeLf { size },
            (Size { .. } | SizeWs { .. }, _) => return Err(ChunkError::BadSize(b)),
            (Ext { size }, _) if !is_ctl(b) => Ext { size },
            (Ext { .. }, b'\n') => return Err(ChunkError::MissingCrlf),
            (Ext { .. }, _) => return Err(ChunkError::BadByte(b)),
            (SizeLf { size }, b'\n') => {
                self.line = 0;
                if size == 0 {
                    TrailerStart
                } else {
                    Data { left: size }
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size { size: 0, digits: 0 },
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart | TrailerLine, _) if !is_ctl(b) => TrailerLine,
            (TrailerLine, b'\r') => TrailerLf,
            (TrailerLf, b'\n') => TrailerStart,
            (FinalLf, b'\n') => Done,
            (SizeLf { .. } | DataCr | DataLf | TrailerLf | FinalLf, _) => {
                return Err(ChunkError::MissingCrlf)
            }
            (TrailerStart | TrailerLine, b'\n') => return Err(ChunkError::MissingCrlf),
            (TrailerStart | TrailerLine, _) => return Err(ChunkError::BadByte(b)),
            // decode() never steps in these; stay put rather than panic.
            (s @ (Data { .. } | Done), _) => s,
        };
        Ok(())
    }

    /// Bounds the bytes spent on a size line or on the trailer section.
    fn count_line(&mut self) -> Result<(), ChunkError> {
        use State::*;
        match self.state {
            Size { .. } | SizeWs { .. } | Ext { .. } | SizeLf { .. } => {
                self.line += 1;
                if self.line > MAX_SIZE_LINE {
                    return Err(ChunkError::SizeLineTooLong);
                }
            }
            TrailerStart | TrailerLine | TrailerLf | FinalLf => {
                self.line += 1;
                if self.line > MAX_TRAILERS {
                    return Err(ChunkError::TrailersTooLarge);
                }
            }
            Data { .. } | DataCr | DataLf | Done => {}
        }
        Ok(())
    }
}

/// Control bytes other than HTAB; obs-text (0x80..) is allowed in extensions.
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes (carrying unconsumed bytes
    /// over, as a reader would) and returns the body and leftover bytes.
    fn decode_in(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
        let mut dec = ChunkedDecoder::new();
        let (mut body, mut buf) = (Vec::new(), Vec::new());
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            let mut pos = 0;
            loop {
                let d = dec.decode(&buf[pos..])?;
                body.extend_from_slice(&buf[pos..][d.data.clone()]);
                pos += d.consumed;
                if d.done {
                    return Ok((body, buf[pos..].to_vec()));
                }
                if d.consumed == 0 {
                    break;
                }
            }
            buf.drain(..pos);
        }
        Ok((body, Vec::new()))
    }

    const BODY: &[u8] = b"5\r\nhello\r\n7;name=\"v\" ; x\r\n, world\r\n\
                          A  \r\n0123456789\r\n000\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT";

    #[test]
    fn byte_at_a_time_equals_one_piece() {
        let whole = decode_in(BODY, BODY.len()).unwrap();
        assert_eq!(whole.0, b"hello, world0123456789");
        assert_eq!(whole.1, b"NEXT", "bytes after the body are not consumed");
        for step in [1, 2, 3, 7] {
            assert_eq!(decode_in(BODY, step).unwrap().0, whole.0, "step {step}");
        }
    }

    #[test]
    fn data_ranges_point_into_input() {
        let mut dec = ChunkedDecoder::new();
        let d = dec.decode(b"3\r\nabc\r\n0\r\n\r\n").unwrap();
        assert_eq!((d.consumed, d.data, d.done), (6, 3..6, false));
        let d = dec.decode(b"\r\n0\r\n\r\n").unwrap();
        assert_eq!((d.consumed, d.data.is_empty(), d.done), (7, true, true));
        assert_eq!(dec.decode(b"more").unwrap().consumed, 0);
    }

    #[test]
    fn bad_sizes() {
        let err = |s: &[u8]| decode_in(s, s.len()).unwrap_err();
        assert_eq!(err(b"\r\n"), ChunkError::BadSize(b'\r'));
        assert_eq!(err(b"-5\r\n"), ChunkError::BadSize(b'-'));
        assert_eq!(err(b"5x\r\n"), ChunkError::BadSize(b'x'));
        assert_eq!(err(b"5 5\r\n"), ChunkError::BadSize(b'5'));
        assert_eq!(err(b"; ext\r\n"), ChunkError::BadSize(b';'));
        assert_eq!(err(b"00000000000000001\r\n"), ChunkError::SizeTooLarge);
        assert_eq!(err(b"8000000000000000\r\n"), ChunkError::SizeTooLarge);
        let max = decode_in(b"7fffffffffffffff\r\nab", 64).unwrap();
        assert_eq!(max.0, b"ab");
        assert_eq!(
            err(&[b'1', b';', b'a'].repeat(3000)),
            ChunkError::SizeLineTooLong
        );
    }

    #[test]
    fn missing_crlf() {
        let err = |s: &[u8]| decode_in(s, 1).unwrap_err();
        assert_eq!(err(b"3\r\nabcX\r\n"), ChunkError::MissingCrlf);
        assert_eq!(err(b"3\r\nabc\rX"), ChunkError::MissingCrlf);
        assert_eq!(err(b"3\nabc\r\n"), ChunkError::BadSize(b'\n'));
        assert_eq!(err(b"3;x\nabc"), ChunkError::MissingCrlf);
        assert_eq!(err(b"0\r\nX: 1\n\r\n"), ChunkError::MissingCrlf);
        assert_eq!(err(b"0\r\n\rX"), ChunkError::MissingCrlf);
        assert_eq!(err(b"1;a\x00\r\n"), ChunkError::BadByte(0));
    }

    #[test]
    fn trailers_skipped_and_bounded() {
        let (body, rest) = decode_in(b"0\r\nA: 1\r\nB: 2\r\n\r\n", 1).unwrap();
        assert!(body.is_empty() && rest.is_empty());
        let huge = [b"0\r\n".as_slice(), &b"T: x\r\n".repeat(20_000)].concat();
        assert_eq!(
            decode_in(&huge, 4096).unwrap_err(),
            ChunkError::TrailersTooLarge
        );
    }

    #[test]
    fn encoder_round_trips() {
        for len in [1u64, 9, 10, 255, 4096, u64::MAX] {
            let (buf, n) = chunk_header(len);
            assert_eq!(&buf[..n], format!("{len:x}\r\n").as_bytes());
        }
        let mut wire = Vec::new();
        for part in [b"ab".as_slice(), &[7u8; 300]] {
            let (h, n) = chunk_header(part.len() as u64);
            wire.extend_from_slice(&h[..n]);
            wire.extend_from_slice(part);
            wire.extend_from_slice(CHUNK_END);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let (body, _) = decode_in(&wire, 5).unwrap();
        assert_eq!(body, [b"ab".as_slice(), &[7u8; 300]].concat());
    }
}
