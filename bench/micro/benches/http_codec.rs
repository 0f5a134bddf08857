//! The pure functions of mod_proxy_http on every exchange (core/http1's
//! backend side): building the backend request head, parsing the
//! backend's response head.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use modproxy_http1::backend_request::{write_request_head, BodyFraming, RequestHead};
use modproxy_http1::backend_response::parse_response_head;
use modproxy_http1::forwarded::Forwarded;

fn request_head(c: &mut Criterion) {
    let headers: Vec<(&str, &[u8])> = vec![
        ("host", b"example.com"),
        ("user-agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
        ("accept", b"text/html,application/xhtml+xml"),
        ("accept-encoding", b"gzip, deflate, br"),
        ("cookie", b"SID=abc123.node1; theme=dark"),
        ("connection", b"keep-alive"),
    ];
    let mut out = Vec::with_capacity(512);
    c.bench_function("write the backend request head (6 client headers)", |b| {
        b.iter(|| {
            let head = RequestHead {
                method: "GET",
                path_and_query: "/static/logo.png?v=1",
                host: "example.com",
                headers: headers.iter().copied(),
                framing: BodyFraming::None,
                forwarded: Some(Forwarded {
                    for_addr: "192.0.2.7",
                    host: Some(b"example.com"),
                    server: "proxy.example",
                    proto: "https",
                }),
                via: None,
                close: false,
                upgrade: None,
            };
            write_request_head(black_box(&head), &mut out)
        })
    });
}

fn response_head(c: &mut Criterion) {
    let raw = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Fri, 27 Nov 2026 05:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 12\r\nConnection: keep-alive\r\nSet-Cookie: SID=abc123.node1; Path=/\r\n\r\nHello world!";
    c.bench_function("parse a 6-header response head", |b| {
        b.iter(|| parse_response_head(black_box(raw), 100, 8192, false))
    });
}

criterion_group!(hot, request_head, response_head);
criterion_main!(hot);
