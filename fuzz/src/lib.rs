//! Fuzz harnesses shared by the libFuzzer targets (fuzz_targets/) and the
//! stable runner (tests/run.rs). Each takes arbitrary bytes, must never
//! panic, and checks the property that matters for its input:
//!
//! - `config`: `modproxy_config::load` on any text: errors, never a panic.
//! - `paths`: a path that passes the dot-segment check and matches a pass
//!   prefix maps to a backend path that stays under the backend prefix
//!   (once decoded and normalised, as a backend would); reverse mapping
//!   only ever yields URLs on the proxy's own base.
//! - `codec`: the backend response head parser and chunked decoder never
//!   read past their input and always make progress.
//! - `boundary`: bytes cross the ABI as an `AbiChunk`/`AbiStr` and back
//!   with length and contents intact.
//! - `request`: the core's client request head parser never reads past
//!   its input, accepts only heads with one unambiguous body framing, lends
//!   UTF-8 request-line pieces and lower-case token names; a response head
//!   written from the parsed fields parses back with the same fields (no
//!   field can smuggle a line break into the head).
//!
//! proxy's path functions are private to its crate; they are compiled in
//! here from their files (pure functions, no crate dependencies).

#[path = "../../modules/proxy/src/paths.rs"]
#[allow(dead_code)]
mod paths;
#[path = "../../modules/proxy/src/reverse.rs"]
#[allow(dead_code)]
mod reverse;

use mod_proxy_http::codec::chunked::ChunkedDecoder;
use mod_proxy_http::codec::response_head::parse_response_head;

/// Splits fuzz input into up to `n` text fields at 0xFF bytes.
fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |&b| b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // `include` globs resolve against the filesystem; a fuzzer that finds
    // `include = ["/**"]` would walk the machine, not test the parser.
    if text.contains("include") {
        return;
    }
    thread_local! {
        static DIR: std::path::PathBuf = {
            let d = std::env::temp_dir().join(format!(
                "modproxy-fuzz-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::create_dir_all(d.join("mods-enabled"));
            d
        };
    }
    DIR.with(|dir| {
        let file = dir.join("fuzz.toml");
        if std::fs::write(&file, text.as_bytes()).is_ok() {
            let _ = modproxy_config::load(dir, std::path::Path::new("fuzz.toml"));
        }
    });
}

pub fn paths(data: &[u8]) {
    let f = fields(data, 4);
    // A request path as hyper hands it over: no query, no fragment.
    let path = format!("/{}", f[0].split(['?', '#']).next().unwrap_or(""));
    let _ = paths::substitute(&f[1], |i| format!("g{i}"));
    let _ = paths::split_origin(&f[2]);
    if paths::dot_segment(&path).is_none() {
        if let Some(rest) = paths::match_prefix("/app/", &path) {
            let target = paths::join("/private/app/", rest);
            assert!(
                stays_under(&target, "/private/app"),
                "{path:?} escaped the prefix as {target:?}"
            );
        }
    }
    let base = "http://proxy.example";
    if let Some(mapped) = reverse::map_url(&f[3], "http://backend:8080/b/", "/app", base) {
        assert!(mapped.starts_with(base), "{:?} mapped to {mapped:?}", f[3]);
    }
    let _ = reverse::rewrite_cookie(
        &f[3],
        &[("backend".into(), "proxy.example".into())],
        &[("/b/".into(), "/app/".into())],
    );
}

/// What a backend that decodes `%2e`, `%2f`, `%5c` and `\` once and then
/// resolves dot segments would see: still under `prefix`?
fn stays_under(target: &str, prefix: &str) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let decoded = path
        .to_ascii_lowercase()
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "/")
        .replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return false;
                }
            }
            _ => out.push(seg),
        }
    }
    format!("/{}/", out.join("/")).starts_with(&format!("{prefix}/"))
}

pub fn codec(data: &[u8]) {
    let (&flag, rest) = data.split_first().unwrap_or((&0, &[]));
    if let Ok(Some((_, n))) = parse_response_head(rest, 100, 8192, flag & 1 == 1) {
        assert!(n <= rest.len(), "head length {n} past input {}", rest.len());
    }
    // Feed the decoder in pieces whose sizes come from the first byte.
    let step = usize::from(flag).max(1);
    let mut dec = ChunkedDecoder::new();
    let mut at = 0;
    while at < rest.len() {
        let end = (at + step).min(rest.len());
        let mut piece = &rest[at..end];
        while !piece.is_empty() {
            match dec.decode(piece) {
                Ok(d) => {
                    assert!(d.consumed <= piece.len());
                    assert!(d.data.end <= piece.len() && d.data.start <= d.data.end);
                    if d.consumed == 0 {
                        assert!(dec.is_done(), "no progress on {piece:?}");
                        return;
                    }
                    piece = &piece[d.consumed..];
                }
                Err(_) => return,
            }
        }
        at = end;
    }
}

pub fn boundary(data: &[u8]) {
    let s = modproxy_api::abi::AbiStr::new(data);
    assert_eq!(s.len, data.len());
    let chunk = modproxy_api::chunk::from_bytes(bytes::Bytes::copy_from_slice(data));
    assert_eq!(chunk.len, data.len());
    modproxy_api::chunk::release(chunk);
}

pub fn request(data: &[u8]) {
    use modproxy_http1::request_head::{parse, BodyFraming, Version};
    use modproxy_http1::response_head::{encode, HeadFacts};
    let Ok(Some((head, n))) = parse(data, 100) else {
        return;
    };
    assert!(n <= data.len(), "head length {n} past input {}", data.len());
    for piece in [
        head.method(),
        head.path(),
        head.query(),
        head.absolute_authority(),
    ] {
        assert!(std::str::from_utf8(piece).is_ok(), "{piece:?}");
    }
    let (has_length, has_coding) = (
        head.fields.contains(b"content-length"),
        head.fields.contains(b"transfer-encoding"),
    );
    assert!(!(has_length && has_coding), "both framings accepted");
    match head.framing {
        BodyFraming::Chunked => assert!(has_coding && head.version == Version::Http11),
        BodyFraming::Length(_) => assert!(has_length),
        BodyFraming::None => assert!(!has_coding),
    }
    for (name, value) in head.fields.iter() {
        assert!(modproxy_http1::fields::valid_name(name), "{name:?}");
        assert!(!name.iter().any(u8::is_ascii_uppercase), "{name:?}");
        assert!(modproxy_http1::fields::valid_value(value), "{value:?}");
    }
    let mut out = Vec::new();
    let facts = HeadFacts {
        status: 200,
        version: head.version,
        head_request: false,
        known_length: Some(0),
        close: false,
    };
    encode(&mut out, &head.fields, &facts);
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut back = httparse::Response::new(&mut slots);
    let parsed = back.parse(&out);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(len)) if len == out.len()),
        "written head does not parse back: {parsed:?} {:?}",
        String::from_utf8_lossy(&out)
    );
}
