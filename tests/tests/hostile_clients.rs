//! Hostile and malformed client input gets the exact refusal, the
//! connection is closed where reading on would be unsafe, and the server
//! stays healthy afterwards.

use modproxy_tests::{free_port, get, send_raw, Server, ServerRoot};

fn server() -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    let port = free_port();
    let text =
        format!("[limits]\nrequest_body = 1000\n\n[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n");
    root.config(&text);
    let server = Server::start(&root, port);
    (root, server)
}

/// The status line's code, or 0 when the server sent nothing.
fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn oversized_and_malformed_requests_get_the_exact_refusal() {
    let (_root, server) = server();
    let port = server.port;
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let long_field = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let many_fields = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..120)
            .map(|i| format!("X-H{i}: 1\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("request line over 8 KiB", long_line.into_bytes(), 414),
        ("header line over 8 KiB", long_field.into_bytes(), 431),
        ("more than 100 headers", many_fields.into_bytes(), 431),
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), 400),
        (
            "HTTP/1.1 without Host",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "control byte in the method",
            b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "control byte in a header name",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01: 1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "body over the limit",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec(),
            413,
        ),
        (
            "CONNECT",
            b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_vec(),
            405,
        ),
    ];
    for (what, bytes, want) in cases {
        let raw = send_raw(port, &bytes).unwrap();
        assert_eq!(
            status_of(&raw),
            want,
            "{what}: {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    assert_eq!(get(port, "/", &[]).unwrap().status, 404, "still healthy");
}

/// RFC 9112 §6.1: with both, Transfer-Encoding wins, Content-Length is
/// dropped (so nothing downstream can frame the body differently) and the
/// connection closes after the response. A request hidden behind the
/// ambiguous one is never answered.
#[test]
fn content_length_with_transfer_encoding_never_smuggles_a_second_request() {
    let (_root, server) = server();
    let smuggle = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let raw = send_raw(server.port, smuggle).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "exactly one response, then close: {text}"
    );
    assert!(!text.contains("smuggled"), "{text}");
}
