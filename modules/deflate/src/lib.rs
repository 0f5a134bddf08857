//! deflate: compressed responses (Apache's mod_deflate and mod_brotli), as
//! an output filter. Per virtual host, `[vhost.deflate]` names the media
//! types to compress; each response of those types is compressed with the
//! encoding the client prefers among `encodings` (negotiate.rs), streamed
//! through one compressor per response (encoder.rs).
#![forbid(unsafe_code)]

mod encoder;
mod negotiate;

use bytes::Bytes;
use encoder::Encoder;
use modproxy_api::sdk::filter::{register_filter, register_input_filter, Emit, Filter, FilterStep};
use modproxy_api::sdk::order;
use modproxy_api::{log, ConfigError, Headers, Level, Module, Registrar, Request, Section};
use serde::Deserialize;
use std::sync::{PoisonError, RwLock};

/// `[vhost.deflate]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeflateConfig {
    #[serde(default = "default_types")]
    pub types: Vec<String>,
    #[serde(default = "default_min_length")]
    pub min_length: u64,
    #[serde(default = "default_level")]
    pub level: u32,
    #[serde(default = "default_encodings")]
    pub encodings: Vec<String>,
    /// Inflate gzip request bodies for the backend (Apache's
    /// `SetInputFilter DEFLATE`).
    #[serde(default)]
    pub inflate_requests: bool,
    /// The most an inflated request body may grow to, in bytes: past it
    /// the request is answered 413 (a zip bomb); Apache's
    /// DeflateInflateLimitRequestBody.
    #[serde(default = "default_inflate_limit")]
    pub inflate_limit: u64,
}

fn default_inflate_limit() -> u64 {
    10 << 20
}

fn default_types() -> Vec<String> {
    [
        "text/html",
        "text/plain",
        "text/css",
        "text/xml",
        "application/javascript",
        "application/json",
        "image/svg+xml",
    ]
    .map(String::from)
    .to_vec()
}
fn default_min_length() -> u64 {
    256
}
fn default_level() -> u32 {
    6
}
fn default_encodings() -> Vec<String> {
    vec!["br".into(), "gzip".into()]
}

const KNOWN: [&str; 3] = ["br", "gzip", "zstd"];

pub struct Deflate {
    /// By virtual host index.
    vhosts: RwLock<Vec<Option<DeflateConfig>>>,
}

/// The input filter: gzip request bodies inflated for the backend.
pub struct Inflate(&'static Deflate);

impl Module for Deflate {
    const NAME: &'static str = "deflate";

    fn init() -> Result<Self, String> {
        Ok(Deflate {
            vhosts: RwLock::default(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        r.section::<DeflateConfig>("vhost.deflate", Deflate::configure);
        let me = r.module();
        // Late: a filter that changes the body (a cache storing it, say)
        // registers earlier and sees it uncompressed.
        register_filter(r, order::LAST, me);
        // Leaked once, as the module is: it lives as long as the process.
        let inflate: &'static Inflate = Box::leak(Box::new(Inflate(me)));
        register_input_filter(r, order::MIDDLE, inflate);
    }
}

impl Deflate {
    fn configure(&self, s: Section<DeflateConfig>) -> Result<(), ConfigError> {
        let at = format!("{}: {}", s.file, s.key);
        let Some(vhost) = s.vhost else {
            return Err(format!(
                "{at}: deflate settings belong to a virtual host: move them under [vhost.deflate]"
            )
            .into());
        };
        let mut c = s.value;
        let mut problems = Vec::new();
        for e in &mut c.encodings {
            *e = e.to_ascii_lowercase();
            if !KNOWN.contains(&e.as_str()) {
                problems.push(format!("{at}.encodings: `{e}` is not an encoding modproxy makes: use \"br\", \"gzip\" or \"zstd\""));
            }
        }
        if !(1..=9).contains(&c.level) {
            problems.push(format!(
                "{at}.level: {} is out of range: use 1 (fastest) to 9 (smallest), default 6",
                c.level
            ));
        }
        for t in &mut c.types {
            *t = t.trim().to_ascii_lowercase();
        }
        let mut vhosts = self.vhosts.write().unwrap_or_else(PoisonError::into_inner);
        if vhosts.len() <= vhost {
            vhosts.resize_with(vhost + 1, || None);
        }
        vhosts[vhost] = Some(c);
        ConfigError::result(problems)
    }
}

/// One response being compressed.
pub struct Compressing {
    encoder: Encoder,
    coding: &'static str,
}

impl Compressing {
    /// Sends on what the compressor let out, or says why it failed.
    fn pass(&self, result: std::io::Result<Vec<u8>>, out: &mut Emit, when: &str) -> FilterStep {
        match result {
            Ok(data) => {
                out.send(Bytes::from(data));
                FilterStep::Continue
            }
            Err(e) => {
                log(
                    Level::Error,
                    format_args!("deflate: {} failed{when}: {e}", self.coding),
                );
                FilterStep::Failed
            }
        }
    }
}

impl Filter for Deflate {
    type State = Compressing;

    fn start(&self, req: &mut Request) -> Option<Compressing> {
        let vhosts = self.vhosts.read().unwrap_or_else(PoisonError::into_inner);
        let c = vhosts.get(req.vhost())?.as_ref()?;
        if !eligible(req, &c.types) {
            return None;
        }
        // Whether or not this client gets it compressed, the answer
        // depends on Accept-Encoding: caches must know.
        add_vary(req);
        let short = req
            .header_str(Headers::Response, "content-length")
            .and_then(|l| l.trim().parse::<u64>().ok())
            .is_some_and(|n| n < c.min_length);
        if short {
            return None;
        }
        let accept = req
            .header_str(Headers::Request, "accept-encoding")
            .unwrap_or("");
        let coding = negotiate::choose(accept, &c.encodings)?;
        let coding: &'static str = KNOWN.iter().find(|k| **k == coding)?;
        let encoder = Encoder::new(coding, c.level)?;
        req.set_header(Headers::Response, "content-encoding", coding.as_bytes());
        if let Some(tag) = req.header_str(Headers::Response, "etag").map(str::to_owned) {
            // As Apache's DeflateAlterETag AddSuffix: the compressed
            // representation is another one, with another validator.
            req.set_header(Headers::Response, "etag", suffixed(&tag, coding).as_bytes());
        }
        Some(Compressing { encoder, coding })
    }

    fn body(&self, state: &mut Compressing, chunk: Bytes, out: &mut Emit) -> FilterStep {
        let written = state.encoder.write(&chunk);
        state.pass(written, out, "")
    }

    fn finish(&self, state: &mut Compressing, out: &mut Emit) -> FilterStep {
        let ended = state.encoder.finish();
        state.pass(ended, out, " at the end")
    }
}

/// One request body being inflated.
pub struct Inflating {
    decoder: flate2::write::GzDecoder<Vec<u8>>,
    out: u64,
    limit: u64,
}

impl Inflating {
    fn step(&mut self, result: std::io::Result<()>, out: &mut Emit) -> FilterStep {
        if let Err(e) = result {
            log(
                Level::Info,
                format_args!(
                    "deflate: the client's gzip request body is corrupt ({e}); answering 400"
                ),
            );
            return FilterStep::Failed;
        }
        let data = std::mem::take(self.decoder.get_mut());
        self.out += data.len() as u64;
        if self.out > self.limit {
            log(Level::Warn, format_args!("deflate: a gzip request body inflates past inflate_limit ({} bytes); answering 413", self.limit));
            return FilterStep::TooLarge;
        }
        out.send(Bytes::from(data));
        FilterStep::Continue
    }
}

impl Filter for Inflate {
    type State = Inflating;

    fn start(&self, req: &mut Request) -> Option<Inflating> {
        let vhosts = self.0.vhosts.read().unwrap_or_else(PoisonError::into_inner);
        let c = vhosts.get(req.vhost())?.as_ref()?;
        let gzip = req
            .header_str(Headers::Request, "content-encoding")
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
        if !c.inflate_requests || !gzip {
            return None;
        }
        let limit = c.inflate_limit;
        drop(vhosts);
        // The backend gets the inflated body, of a length not known yet.
        req.remove_header(Headers::Request, "content-encoding");
        req.remove_header(Headers::Request, "content-length");
        req.set_header(Headers::Request, "transfer-encoding", b"chunked");
        Some(Inflating {
            decoder: flate2::write::GzDecoder::new(Vec::new()),
            out: 0,
            limit,
        })
    }

    fn body(&self, state: &mut Inflating, chunk: Bytes, out: &mut Emit) -> FilterStep {
        use std::io::Write;
        let wrote = state.decoder.write_all(&chunk);
        state.step(wrote, out)
    }

    fn finish(&self, state: &mut Inflating, out: &mut Emit) -> FilterStep {
        let done = state.decoder.try_finish();
        state.step(done, out)
    }
}

/// A response that may be compressed: a compressible type, not HEAD, a
/// status with a body that is not partial, not encoded already, not
/// `no-transform`, not an answer to a Range request.
fn eligible(req: &Request, types: &[String]) -> bool {
    let status = req.status();
    if req.method() == "HEAD" || status < 200 || matches!(status, 204 | 206 | 304) {
        return false;
    }
    if req.header(Headers::Request, "range").is_some() {
        return false;
    }
    let encoded = req
        .header_str(Headers::Response, "content-encoding")
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
    let no_transform = req
        .header_str(Headers::Response, "cache-control")
        .is_some_and(|c| c.to_ascii_lowercase().contains("no-transform"));
    if encoded || no_transform {
        return false;
    }
    let media = req.header_str(Headers::Response, "content-type").map(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    media.is_some_and(|m| types.contains(&m))
}

fn add_vary(req: &mut Request) {
    let vary = req.header_str(Headers::Response, "vary").unwrap_or("");
    let has = vary
        .split(',')
        .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding") || v.trim() == "*");
    if !has {
        req.add_header(Headers::Response, "vary", b"Accept-Encoding");
    }
}

/// `"abc"` → `"abc-gzip"`, `W/"abc"` → `W/"abc-gzip"`.
fn suffixed(tag: &str, coding: &str) -> String {
    match tag.strip_suffix('"') {
        Some(open) => format!("{open}-{coding}\""),
        None => format!("{tag}-{coding}"),
    }
}

modproxy_api::declare_module!(Deflate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_get_the_coding_inside_their_quotes() {
        assert_eq!(suffixed("\"abc\"", "gzip"), "\"abc-gzip\"");
        assert_eq!(suffixed("W/\"abc\"", "br"), "W/\"abc-br\"");
    }

    #[test]
    fn each_encoder_streams_and_ends() {
        let text = "hello world ".repeat(2000);
        for coding in KNOWN {
            let mut e = Encoder::new(coding, 6).unwrap();
            let mut out = Vec::new();
            for part in text.as_bytes().chunks(1000) {
                out.extend(e.write(part).unwrap());
            }
            out.extend(e.finish().unwrap());
            assert!(out.len() < text.len() / 10, "{coding}: {} bytes", out.len());
        }
    }
}
