//! Fuzz harnesses shared by the libFuzzer targets (fuzz_targets/) and the
//! stable runner (tests/run.rs). Each takes arbitrary bytes, must never
//! panic, and checks the property that matters for its input:
//!
//! - `config`: `modproxy_config::load` on any text: errors, never a panic.
//! - `paths`: the core's path normaliser, in each `allow_encoded_slashes`
//!   mode, gives a path that normalises to itself; routed by proxy's rules
//!   (dot-segment refusal, exclusions, pass prefixes), a path given to a
//!   pass rule is under its prefix, its target under the backend path, and
//!   under no earlier exclusion, however a backend reads it (`%XX` decoded,
//!   `\` as `/`, `;params` dropped, `//` merged: all 16 combinations);
//!   reverse mapping only ever yields URLs on the proxy's own base.
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

use modproxy_http1::backend_response::parse_response_head;
use modproxy_http1::chunked::ChunkedDecoder;
use modproxy_http1::path::{normalize, EncodedSlashes};

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
    // A request path as the core's parser hands it over: no query, no
    // fragment.
    let raw = format!("/{}", f[0].split(['?', '#']).next().unwrap_or(""));
    let _ = paths::substitute(&f[1], |i| format!("g{i}"));
    let _ = paths::split_origin(&f[2]);
    // The router holds on the core's canonical path, in each mode; on the
    // raw path too, but for the prefix itself (`//app/x` matches `/app/`
    // and is not under it for a backend keeping `//`: the core merges it).
    route_is_safe(&raw, false);
    for mode in [
        EncodedSlashes::Off,
        EncodedSlashes::On,
        EncodedSlashes::NoDecode,
    ] {
        if let Ok(path) = normalize(&raw, mode) {
            let again = normalize(&path, mode);
            assert_eq!(
                again.as_deref(),
                Ok(&*path),
                "{raw:?} ({mode:?}) is not stable"
            );
            route_is_safe(&path, true);
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

/// The rules the harness routes with, in order: `None` excludes, `Some`
/// is the backend path a prefix maps to.
const RULES: &[(&str, Option<&str>)] = &[
    ("/static", None),
    ("/app/private", None),
    ("/app/", Some("/private/app/")),
    ("/", Some("/pub/")),
];

/// Routes `path` as proxy's translate_name and `VhostProxy::route` do
/// (dot-segment refusal, then prefix rules in order, an exclusion by
/// `excluded_by`), and checks the pick under every reading a backend may
/// give the path: under the rule's prefix (checked for a `canonical` path),
/// its target under the backend path, and not under any exclusion before
/// the rule.
fn route_is_safe(path: &str, canonical: bool) {
    if paths::dot_segment(path).is_some() {
        return; // 400
    }
    for (i, &(prefix, backend)) in RULES.iter().enumerate() {
        let Some(base) = backend else {
            if paths::excluded_by(prefix, path) {
                return; // declined: the core answers 404
            }
            continue;
        };
        let Some(rest) = paths::match_prefix(prefix, path) else {
            continue;
        };
        let target = paths::join(base, rest);
        for reading in 0..16 {
            let seen = backend_reads(path, reading);
            let under = |p: &str| seen.as_ref().is_some_and(|s| starts_with(s, p, reading));
            assert!(
                !canonical || under(prefix),
                "{path:?} read as {seen:?} ({reading:#06b}) left {prefix}"
            );
            let sent = backend_reads(&target, reading);
            assert!(
                sent.is_some_and(|s| starts_with(&s, base, reading)),
                "{path:?} reached the backend as {target:?}, outside {base} ({reading:#06b})"
            );
            for &(excluded, _) in RULES[..i].iter().filter(|r| r.1.is_none()) {
                assert!(
                    !under(excluded),
                    "{path:?} read as {seen:?} ({reading:#06b}) reached the excluded {excluded}"
                );
            }
        }
        return;
    }
}

/// Bits of a reading: which liberties a backend takes with a path.
const DECODE: u8 = 1;
const BACKSLASH: u8 = 2;
const PARAMS: u8 = 4;
const COLLAPSE: u8 = 8;

/// The segments a backend taking `reading`'s liberties resolves `path`
/// to: `%XX` decoded once (any case of hex), `\` as `/`, `;params`
/// dropped, empty segments dropped; then `.` and `..` resolved. `None`
/// when a `..` climbs above the root.
fn backend_reads(path: &str, reading: u8) -> Option<Vec<Vec<u8>>> {
    let bytes = if reading & DECODE != 0 {
        percent_decode(path.as_bytes())
    } else {
        path.as_bytes().to_vec()
    };
    let separator = |c: &u8| *c == b'/' || (reading & BACKSLASH != 0 && *c == b'\\');
    let mut out: Vec<Vec<u8>> = Vec::new();
    for segment in bytes.split(separator).skip(1) {
        let segment = match reading & PARAMS {
            0 => segment,
            _ => segment.split(|&c| c == b';').next().unwrap_or_default(),
        };
        match segment {
            b"" if reading & COLLAPSE != 0 => {}
            b"." => {}
            b".." => {
                out.pop()?;
            }
            s => out.push(s.to_vec()),
        }
    }
    Some(out)
}

fn percent_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(h * 16 + l);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Whether `segments` begin with `prefix`'s (read the same way; a
/// trailing slash of the prefix adds no segment to match).
fn starts_with(segments: &[Vec<u8>], prefix: &str, reading: u8) -> bool {
    let Some(mut want) = backend_reads(prefix, reading) else {
        return false;
    };
    while want.last().is_some_and(|s| s.is_empty()) {
        want.pop();
    }
    segments.starts_with(&want)
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
