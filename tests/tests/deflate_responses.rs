//! Module deflate (an output filter, ABI 1.4) with a real backend, beside
//! Apache's mod_deflate on the same backend: what is compressed and what
//! is not, the fields (Content-Encoding, Vary, ETag, no stale
//! Content-Length), each encoding decoding to the original bytes, and a
//! 100 MiB response compressed in bounded memory.

use modproxy_tests::apache::{preamble, Apache};
use modproxy_tests::client::{parse, Response};
use modproxy_tests::{free_port, send_raw, Backend, Server, ServerRoot};
use std::io::Read;

/// A page worth compressing (and its repeated text compresses well).
fn page() -> Vec<u8> {
    let mut p = b"<!DOCTYPE html><html><body>".to_vec();
    for i in 0..400 {
        p.extend_from_slice(
            format!("<p>line {i}: the quick brown fox jumps over the lazy dog</p>\n").as_bytes(),
        );
    }
    p.extend_from_slice(b"</body></html>\n");
    p
}

/// The backend: each path a case.
fn backend() -> Backend {
    Backend::start(|seen| {
        let html = (
            "Content-Type".to_owned(),
            "text/html; charset=utf-8".to_owned(),
        );
        let etag = ("ETag".to_owned(), "\"v1\"".to_owned());
        match seen.target.as_str() {
            "/page" => (200, vec![html, etag], page()),
            "/small" => (200, vec![html], b"<p>short</p>".to_vec()),
            "/image" => (
                200,
                vec![("Content-Type".into(), "image/png".into())],
                page(),
            ),
            "/no-transform" => (
                200,
                vec![html, ("Cache-Control".into(), "no-transform".into())],
                page(),
            ),
            "/encoded" => (
                200,
                vec![html, ("Content-Encoding".into(), "gzip".into())],
                gzip(&page()),
            ),
            "/missing" => (404, vec![html], page()),
            _ => (200, vec![html], page()),
        }
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map(drop),
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .map(drop),
        "zstd" => zstd::stream::read::Decoder::new(body)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map(drop),
        other => panic!("unexpected coding {other}"),
    }
    .unwrap_or_else(|e| panic!("{coding} body does not decode: {e}"));
    out
}

fn request(port: u16, method: &str, path: &str, accept: &str, extra: &str) -> Response {
    let ae = if accept.is_empty() {
        String::new()
    } else {
        format!("Accept-Encoding: {accept}\r\n")
    };
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{ae}{extra}Connection: close\r\n\r\n"
    );
    parse(&send_raw(port, raw.as_bytes()).unwrap()).unwrap()
}

fn modproxy(backend: &Backend, deflate: &str) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "deflate"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"{}/\" }}]\n\n[vhost.deflate]\n{deflate}\n",
        backend.url()
    ));
    let server = Server::start(&root, port);
    (root, server)
}

fn apache(backend: &Backend) -> (Apache, u16) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("modproxy-deflate-apache-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut conf = preamble(
        &dir,
        &[
            "mpm_event",
            "authz_core",
            "proxy",
            "proxy_http",
            "filter",
            "deflate",
        ],
    );
    conf.push_str(&format!(
        "Listen 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\nProxyPass / {}/\n\
         AddOutputFilterByType DEFLATE text/html text/plain\n</VirtualHost>\n",
        backend.url()
    ));
    let path = dir.join("httpd.conf");
    std::fs::write(&path, conf).unwrap();
    (Apache::start_config(&dir, &path, &[port]), port)
}

/// Lowercase comma-separated tokens of a field.
fn tokens(r: &Response, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect()
}

#[test]
fn what_is_compressed_and_its_fields_match_apache_mod_deflate() {
    let b = backend();
    let (root, server) = modproxy(&b, "min_length = 256\nencodings = [\"gzip\"]");
    let (httpd, aport) = apache(&b);
    let cases = [
        ("GET", "/page", "gzip", true),
        ("GET", "/page", "", false),
        ("GET", "/page", "gzip;q=0", false),
        ("GET", "/image", "gzip", false),
        ("GET", "/no-transform", "gzip", false),
        ("GET", "/encoded", "gzip", false),
        ("GET", "/missing", "gzip", true),
    ];
    for (method, path, accept, compressed) in cases {
        let ours = request(server.port, method, path, accept, "");
        let theirs = request(aport, method, path, accept, "");
        let what = format!("{method} {path} Accept-Encoding: {accept:?}");
        assert_eq!(ours.status, theirs.status, "{what}");
        let coding = |r: &Response| r.header("content-encoding").map(str::to_owned);
        // Two differences on purpose. RFC 9111 §5.2.2.6 forbids a proxy to
        // transform a no-transform response, which Apache 2.4 compresses;
        // an error page is compressed as any page of its type (nginx does
        // too), where Apache's AddOutputFilterByType leaves a proxied 404 be.
        match path {
            "/no-transform" => {
                assert_eq!(
                    (coding(&ours), coding(&theirs).as_deref()),
                    (None, Some("gzip")),
                    "{what}"
                );
                continue;
            }
            "/missing" => {
                assert_eq!(
                    (coding(&ours).as_deref(), coding(&theirs)),
                    (Some("gzip"), None),
                    "{what}"
                );
                assert_eq!(decode("gzip", &ours.body), page());
                continue;
            }
            _ => {}
        }
        assert_eq!(
            coding(&ours),
            coding(&theirs),
            "{what}\n{}\n{}",
            root.log(),
            httpd.log()
        );
        assert_eq!(
            coding(&ours).as_deref() == Some("gzip") && path != "/encoded",
            compressed,
            "{what}"
        );
        if compressed {
            assert_eq!(decode("gzip", &ours.body), page(), "{what}");
            assert_eq!(decode("gzip", &theirs.body), page(), "{what}: Apache's");
            // A stale Content-Length would cut the compressed body.
            let cl = ours
                .header("content-length")
                .map(|l| l.parse::<usize>().unwrap());
            assert!(cl.is_none_or(|l| l == ours.body.len()), "{what}: {cl:?}");
            assert_eq!(ours.header("etag"), theirs.header("etag"), "{what}");
        }
        let eligible = path == "/page";
        assert_eq!(
            tokens(&ours, "vary").contains(&"accept-encoding".into()),
            eligible,
            "{what}: ours"
        );
        assert_eq!(
            tokens(&theirs, "vary").contains(&"accept-encoding".into()),
            eligible,
            "{what}: Apache's"
        );
    }
    // As Apache: the compressed representation has its own validator.
    assert_eq!(
        request(server.port, "GET", "/page", "gzip", "").header("etag"),
        Some("\"v1-gzip\"")
    );
    // Not compressed where Apache's rules and RFC 9110 say no (Apache
    // differs on HEAD: it announces gzip with no body; we answer as GET
    // without compression would).
    let head = request(server.port, "HEAD", "/page", "gzip", "");
    assert_eq!(head.header("content-encoding"), None);
    let range = request(server.port, "GET", "/page", "gzip", "Range: bytes=0-99\r\n");
    assert_eq!(range.header("content-encoding"), None);
    let small = request(server.port, "GET", "/small", "gzip", "");
    assert_eq!(small.header("content-encoding"), None, "under min_length");
}

#[test]
fn brotli_gzip_and_zstd_each_decode_to_the_original_and_follow_the_clients_q_values() {
    let b = backend();
    let (root, server) = modproxy(&b, "encodings = [\"br\", \"gzip\", \"zstd\"]");
    for (accept, want) in [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip;q=1.0, br;q=0.8", "gzip"),
        ("zstd", "zstd"),
        ("*", "br"),
    ] {
        let r = request(server.port, "GET", "/page", accept, "");
        assert_eq!(
            r.header("content-encoding"),
            Some(want),
            "{accept}\n{}",
            root.log()
        );
        assert_eq!(decode(want, &r.body), page(), "{accept}");
        assert!(
            r.body.len() < page().len() / 4,
            "{want}: {} of {} bytes",
            r.body.len(),
            page().len()
        );
    }
}

#[test]
fn a_bad_setting_names_the_key_and_the_fix() {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "deflate"]);
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{}\"\n\n[vhost.deflate]\nencodings = [\"lzma\"]\nlevel = 12\n",
        free_port()
    ));
    let out = root.cli(&["configtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("vhost[0].deflate.encodings: `lzma` is not an encoding modproxy makes"),
        "{err}"
    );
    assert!(
        err.contains("vhost[0].deflate.level: 12 is out of range"),
        "{err}"
    );
}

#[test]
fn a_100_mib_response_is_compressed_in_bounded_memory() {
    const SIZE: usize = 100 * 1024 * 1024;
    let big = Backend::start(|_| {
        let line = b"0123456789abcdef the same line again and again, compressible\n";
        let body: Vec<u8> = line.iter().copied().cycle().take(SIZE).collect();
        (
            200,
            vec![("Content-Type".into(), "text/plain".into())],
            body,
        )
    });
    let (root, server) = modproxy(&big, "encodings = [\"gzip\"]");
    let r = request(server.port, "GET", "/big", "gzip", "");
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", root.log());
    let plain = decode("gzip", &r.body);
    assert_eq!(plain.len(), SIZE);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    // The whole body would be 100 MiB; the server streams it through.
    assert!(
        peak_kib < 48 * 1024,
        "modproxy peaked at {peak_kib} KiB for a 100 MiB response"
    );
    eprintln!(
        "100 MiB through gzip: {} bytes out, peak RSS {peak_kib} KiB",
        r.body.len()
    );
}

fn post(port: u16, path: &str, fields: &str, body: &[u8]) -> Response {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{fields}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    parse(&send_raw(port, &raw).unwrap()).unwrap()
}

#[test]
fn gzip_request_bodies_are_inflated_for_the_backend_and_a_zip_bomb_gets_413() {
    let echo = Backend::start(|seen| (200, vec![], seen.body.clone()));
    let (root, server) = modproxy(&echo, "inflate_requests = true\ninflate_limit = 1048576");
    let original = page();
    let r = post(
        server.port,
        "/up",
        "Content-Encoding: gzip\r\n",
        &gzip(&original),
    );
    assert_eq!(r.status, 200, "{}", root.log());
    assert_eq!(r.body, original, "the backend got the inflated body");
    let seen = echo.seen();
    assert_eq!(seen[0].header("content-encoding"), None);
    assert_eq!(seen[0].body, original);
    // 64 MiB of zeros is 64 KiB gzipped: past inflate_limit, 413.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100 * 1024);
    let r = post(server.port, "/up", "Content-Encoding: gzip\r\n", &bomb);
    assert_eq!(r.status, 413, "{}", root.log());
    assert!(
        root.log().contains("inflates past inflate_limit"),
        "{}",
        root.log()
    );
    // Not gzip: passed on as it came.
    let plain = post(server.port, "/up", "", b"plain body");
    assert_eq!(plain.body, b"plain body");
    // A corrupt gzip body: 400.
    let bad = post(
        server.port,
        "/up",
        "Content-Encoding: gzip\r\n",
        b"\x1f\x8bnot really gzip",
    );
    assert_eq!(bad.status, 400, "{}", root.log());
}
