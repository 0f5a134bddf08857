//! An HTTP/2 request forwarded to an HTTP/1.1 backend must not become
//! another request there (the H2.CL, H2.TE and CRLF-injection smuggling
//! classes): DATA that does not match Content-Length, CR or LF in a
//! field, connection-specific fields are all refused before a backend
//! sees a complete request, and the connection's other streams carry on.
//! And an HTTP/1.1 client's `Upgrade: h2c` is never forwarded (h2c
//! smuggling past the proxy's rules); only WebSocket upgrades are.

#[path = "support/h2raw.rs"]
mod h2raw;

use h2raw::*;
use modproxy_tests::{h2c_proxy, send_raw, Backend, Server, ServerRoot};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn h2c_site(backend: &Backend, modules: &[&str]) -> (ServerRoot, Server, u16) {
    let (root, server) = h2c_proxy(modules, &backend.url(), "");
    let port = server.port;
    (root, server, port)
}

/// `:status 200` as h2 encodes it (static table index 8).
fn is_ok_headers(f: &Frame) -> bool {
    f.kind == HEADERS && f.payload.first() == Some(&0x88)
}

/// Sends `send` on stream 1, then a plain GET on stream 3: stream 1 is
/// refused (reset, or an error status), stream 3 is answered. Where h2
/// ends the whole connection instead (GOAWAY PROTOCOL_ERROR: it treats a
/// field value the http crate cannot hold as a connection error), the
/// GET goes on a new connection.
fn refused_then_served(port: u16, what: &str, send: impl FnOnce(&mut RawH2)) {
    let mut c = RawH2::connect(port, &[]);
    send(&mut c);
    let first = c
        .read_until(WAIT, |f| {
            f.stream == 1 && matches!(f.kind, HEADERS | RST_STREAM) || f.kind == GOAWAY
        })
        .expect("an answer on stream 1");
    assert!(
        matches!(first.kind, RST_STREAM | GOAWAY) || !is_ok_headers(&first),
        "{what}: stream 1 was refused, not answered with frame {} {:?}",
        first.kind,
        first.payload
    );
    let id = if first.kind == GOAWAY {
        assert_eq!(first.error_code(), Some(1), "{what}: PROTOCOL_ERROR");
        c = RawH2::connect(port, &[]);
        1
    } else {
        3
    };
    c.request(id, "GET", "/after", &[], true).unwrap();
    let next = c.read_until(WAIT, |f| {
        f.stream == id && matches!(f.kind, HEADERS | RST_STREAM)
    });
    assert!(
        next.as_ref().is_some_and(is_ok_headers),
        "{what}: the next stream is served (stream 1 got frame {} {:?})",
        first.kind,
        first.error_code()
    );
}

#[test]
fn data_that_does_not_match_content_length_never_reaches_the_backend() {
    let backend = Backend::start(|seen| (200, vec![], seen.body.clone()));
    let (_root, _server, port) = h2c_site(&backend, &["proxy_http"]);
    // More DATA than declared: the H2.CL request-splitting shape.
    refused_then_served(port, "more DATA", |c| {
        c.request(1, "POST", "/longer", &[("content-length", "5")], false)
            .unwrap();
        c.frame(
            DATA,
            END_STREAM,
            1,
            b"01234GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
    });
    // Less DATA than declared.
    refused_then_served(port, "less DATA", |c| {
        c.request(1, "POST", "/shorter", &[("content-length", "20")], false)
            .unwrap();
        c.frame(DATA, END_STREAM, 1, b"short").unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    let seen = backend.seen();
    assert!(seen.iter().all(|r| r.target != "/smuggled"), "{seen:?}");
    assert!(
        seen.iter()
            .all(|r| r.target != "/longer" && r.target != "/shorter"),
        "no complete request: {seen:?}"
    );
}

#[test]
fn cr_lf_nul_and_connection_specific_fields_are_refused() {
    let backend = Backend::text("ok");
    let (_root, _server, port) = h2c_site(&backend, &["proxy_http"]);
    let bad: [(&str, &str, &str); 7] = [
        ("/crlf", "x-a", "v\r\nx-injected: 1"),
        ("/lf", "x-a", "v\nx-injected: 1"),
        ("/nul", "x-a", "v\0w"),
        ("/te", "transfer-encoding", "chunked"),
        ("/conn", "connection", "keep-alive"),
        ("/te-gzip", "te", "gzip"),
        ("/upgrade", "upgrade", "h2c"),
    ];
    for (path, name, value) in bad {
        refused_then_served(port, path, |c| {
            c.request(1, "GET", path, &[(name, value)], true).unwrap()
        });
    }
    // A name in upper case is malformed in HTTP/2.
    refused_then_served(port, "/upper", |c| {
        c.request(1, "GET", "/upper", &[("X-Upper", "1")], true)
            .unwrap()
    });
    let seen = backend.seen();
    assert!(
        seen.iter().all(|r| r.target == "/after"),
        "only the well-formed streams arrived: {seen:?}"
    );
    assert!(seen.iter().all(|r| r.header("x-injected").is_none()));
}

#[test]
fn an_http11_upgrade_to_h2c_is_not_forwarded() {
    let backend = Backend::text("plain");
    let (_root, _server, port) = h2c_site(&backend, &["proxy_http", "proxy_wstunnel"]);
    let answer = send_raw(
        port,
        b"GET /inside HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "no 101: {answer}");
    let seen = backend.seen();
    let got = &seen[0];
    assert_eq!(got.header("upgrade"), None, "{got:?}");
    assert_eq!(got.header("http2-settings"), None, "{got:?}");
    assert!(
        !got.header("connection")
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("upgrade"),
        "{got:?}"
    );
}
