//! A streaming compressor for one response: bytes in, compressed bytes
//! out as they come, memory bounded by the compressor's window (the
//! output buffer is drained after every write).

use std::io::Write;

pub enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// An encoder for `name` (`gzip`, `br`, `zstd`) at `level` (1 to 9,
    /// mapped onto each coding's own scale).
    pub fn new(name: &str, level: u32) -> Option<Encoder> {
        let level = level.clamp(1, 9);
        Some(match name {
            "gzip" => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            // Brotli's quality runs 0..=11; 4 (level 5) is its usual speed for dynamic content.
            "br" => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                level.saturating_sub(1),
                22,
            ))),
            // zstd's runs 1..=19; level 5 → 3, its default.
            "zstd" => Encoder::Zstd(
                zstd::stream::write::Encoder::new(Vec::new(), (level as i32 * 3 / 5).max(1))
                    .ok()?,
            ),
            _ => return None,
        })
    }

    /// Compresses `data`; returns what the compressor let out so far.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    /// Ends the stream; returns the rest.
    pub fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => {
                e.try_finish()?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Brotli(e) => {
                e.flush()?;
                // The writer ends the stream when dropped; swap it for an
                // empty one to get the last bytes out now.
                let done = std::mem::replace(
                    e,
                    Box::new(brotli::CompressorWriter::new(Vec::new(), 0, 0, 10)),
                );
                Ok(done.into_inner())
            }
            Encoder::Zstd(e) => {
                e.do_finish()?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }
}
