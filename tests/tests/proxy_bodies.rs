//! Bodies through the proxy: multi-MiB bodies byte-exact both ways with
//! Content-Length and chunked framing, streamed rather than buffered (the
//! other side sees the first part before the last is sent), slow bodies,
//! and `Expect: 100-continue` end to end.

use modproxy_tests::{checksum, noise, Backend, Conn, Proxied, Scripted};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

fn proxy_to(backend: &str) -> Proxied {
    Proxied::start(&format!(
        "timeout = 5\npass = [{{ path = \"/\", url = \"{backend}/\" }}]"
    ))
}

/// Echoes the request body back with Content-Length.
fn echo() -> Backend {
    Backend::start(|s| (200, vec![], s.body.clone()))
}

#[test]
fn an_8_mib_content_length_body_goes_up_and_comes_back_byte_exact() {
    let backend = echo();
    let p = proxy_to(&backend.url());
    let body = noise(8 * MIB, 1);
    let r = modproxy_tests::request(p.port, "POST", "/up", &[], &body).unwrap();
    assert_eq!(r.status, 200, "{}", p.log());
    let seen = &backend.seen()[0];
    assert_eq!(seen.header("content-length"), Some("8388608"));
    assert_eq!(
        checksum(&seen.body),
        checksum(&body),
        "backend got the exact bytes"
    );
    assert_eq!(r.header("content-length"), Some("8388608"));
    assert_eq!(
        checksum(&r.body),
        checksum(&body),
        "client got the exact bytes"
    );
}

#[test]
fn an_8_mib_chunked_upload_is_streamed_chunked_and_a_chunked_response_comes_back_exact() {
    let down = noise(8 * MIB + 7, 3);
    let backend = {
        let down = down.clone();
        Scripted::start(move |mut peer| {
            while peer.request().is_some() {
                peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                for piece in down.chunks(100_000) {
                    peer.send(format!("{:x}\r\n", piece.len()).as_bytes());
                    peer.send(piece);
                    peer.send(b"\r\n");
                }
                peer.send(b"0\r\n\r\n");
            }
        })
    };
    let p = proxy_to(&backend.url());
    let up = noise(8 * MIB + 3, 2);
    let mut c = Conn::open(p.port).unwrap();
    c.send(b"PUT /file HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for piece in up.chunks(65_521) {
        c.send(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
        c.send(piece).unwrap();
        c.send(b"\r\n").unwrap();
    }
    c.send(b"0\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", p.log());
    let seen = &backend.seen()[0];
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.header("content-length"), None);
    assert_eq!(
        checksum(&seen.body),
        checksum(&up),
        "backend got {} bytes",
        seen.body.len()
    );
    assert_eq!(r.body.len(), down.len());
    assert_eq!(checksum(&r.body), checksum(&down));
    // The connection stays usable after a chunked exchange.
    c.send(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(c.read_response(false).unwrap().body.len(), down.len());
}

#[test]
fn a_response_body_streams_to_the_client_before_the_backend_has_sent_all_of_it() {
    let (got_first, first_seen) = mpsc::channel::<()>();
    let first_seen = Arc::new(Mutex::new(first_seen));
    let backend = Scripted::start(move |mut peer| {
        peer.request();
        let total = 4 * MIB;
        peer.send(format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n").as_bytes());
        peer.send(&noise(MIB, 9));
        // The rest only once the client has the first MiB: a proxy that
        // buffered the whole body would never deliver it.
        let told = first_seen
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        assert!(told.is_ok(), "the client never saw the first MiB");
        peer.send(&noise(3 * MIB, 10));
    });
    let p = proxy_to(&backend.url());
    let mut c = Conn::open(p.port).unwrap();
    c.send(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let head = c.read_head().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(c.read_bytes(MIB).unwrap(), noise(MIB, 9));
    got_first.send(()).unwrap();
    assert_eq!(c.read_bytes(3 * MIB).unwrap(), noise(3 * MIB, 10));
}

#[test]
fn a_request_body_streams_to_the_backend_before_the_client_has_sent_all_of_it() {
    let (backend_got_first, first_arrived) = mpsc::channel::<()>();
    let tell = Mutex::new(backend_got_first);
    let backend = Scripted::start(move |mut peer| {
        let Some(_) = peer.head() else { return };
        let first = peer.read_exact(MIB).unwrap();
        assert_eq!(first, noise(MIB, 4));
        tell.lock().unwrap().send(()).unwrap();
        let rest = peer.read_exact(2 * MIB).unwrap();
        let ok = rest == noise(2 * MIB, 5);
        peer.respond(200, &[], if ok { b"exact" } else { b"wrong" });
    });
    let p = proxy_to(&backend.url());
    let mut c = Conn::open(p.port).unwrap();
    c.send(
        format!(
            "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            3 * MIB
        )
        .as_bytes(),
    )
    .unwrap();
    c.send(&noise(MIB, 4)).unwrap();
    first_arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the backend saw the first MiB while the client held the rest back");
    c.send(&noise(2 * MIB, 5)).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "exact"), "{}", p.log());
}

#[test]
fn slow_bodies_trickling_both_ways_arrive_whole() {
    let backend = Scripted::start(|mut peer| {
        while let Some(req) = peer.request() {
            peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for piece in req.body.chunks(3) {
                std::thread::sleep(Duration::from_millis(60));
                peer.send(format!("{:x}\r\n", piece.len()).as_bytes());
                peer.send(piece);
                peer.send(b"\r\n");
            }
            peer.send(b"0\r\n\r\n");
        }
    });
    // Each pause is shorter than the timeout; the whole is longer.
    let p = Proxied::start(&format!(
        "timeout = 1\npass = [{{ path = \"/\", url = \"{}/\" }}]",
        backend.url()
    ));
    let mut c = Conn::open(p.port).unwrap();
    c.send(b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n")
        .unwrap();
    for piece in b"abcdefghijklmnopqrst".chunks(4) {
        std::thread::sleep(Duration::from_millis(300));
        c.send(piece).unwrap();
    }
    let r = c.read_response(false).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "abcdefghijklmnopqrst"),
        "{}",
        p.log()
    );
    assert_eq!(backend.seen()[0].body, b"abcdefghijklmnopqrst");
}

#[test]
fn expect_100_continue_goes_end_to_end_and_the_body_follows_the_backends_100() {
    let backend = echo();
    let p = proxy_to(&backend.url());
    let mut c = Conn::open(p.port).unwrap();
    c.send(b"POST /form HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n")
        .unwrap();
    let interim = c.read_head().unwrap();
    assert_eq!(
        interim.status, 100,
        "the client is told to go on before sending the body"
    );
    c.send(b"hello world").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello world"),
        "{}",
        p.log()
    );
    assert_eq!(backend.seen()[0].header("expect"), Some("100-continue"));
}

#[test]
fn expect_100_continue_refused_by_the_backend_answers_without_the_body_being_sent() {
    let backend = Scripted::start(|mut peer| {
        if let Some(req) = peer.head() {
            assert_eq!(req.header("expect"), Some("100-continue"));
            peer.respond(
                401,
                &[("WWW-Authenticate", "Basic realm=x")],
                b"who are you",
            );
        }
    });
    let p = proxy_to(&backend.url());
    let mut c = Conn::open(p.port).unwrap();
    c.send(b"POST /form HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    // The body is never sent: the answer must come without it.
    let r = c.read_response(false).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, "who are you"),
        "{}",
        p.log()
    );
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=x"));
}

#[test]
fn a_close_delimited_body_from_an_http_1_0_backend_is_relayed_whole() {
    let body = noise(3 * MIB, 11);
    let backend = {
        let body = body.clone();
        Scripted::start(move |mut peer| {
            if peer.request().is_some() {
                peer.send(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
                peer.send(&body);
            }
        })
    };
    let p = proxy_to(&backend.url());
    let mut c = Conn::open(p.port).unwrap();
    for _ in 0..2 {
        c.send(b"GET /old HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{}", p.log());
        assert_eq!(checksum(&r.body), checksum(&body), "{} bytes", r.body.len());
    }
    assert_eq!(
        backend.connections(),
        2,
        "a close-delimited connection is never pooled"
    );
}

#[test]
fn interim_103_responses_are_dropped_and_the_final_response_relayed() {
    let backend = Scripted::start(|mut peer| {
        while peer.request().is_some() {
            peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
            peer.respond(200, &[], b"final");
        }
    });
    let p = proxy_to(&backend.url());
    let mut c = Conn::open(p.port).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let r = c.read_head().unwrap();
    assert_eq!(r.status, 200, "{}", p.log());
    assert_eq!(c.read_bytes(5).unwrap(), b"final");
}

#[test]
fn the_last_response_of_a_closing_connection_arrives_whole_and_the_connection_ends() {
    // Its last bytes wait for the close and leave with the FIN (MSG_MORE):
    // nothing may be lost or kept waiting, one segment or many.
    let small = b"closing".to_vec();
    let large = noise(3 * MIB, 12);
    let backend = {
        let large = large.clone();
        Backend::start(move |s| {
            let body = if s.target.ends_with("large") {
                large.clone()
            } else {
                b"closing".to_vec()
            };
            (200, vec![], body)
        })
    };
    let p = proxy_to(&backend.url());
    for (path, want) in [("/small", &small), ("/large", &large)] {
        for version in ["HTTP/1.1\r\nConnection: close", "HTTP/1.0"] {
            let req = format!("GET {path} {version}\r\nHost: h\r\n\r\n");
            let started = std::time::Instant::now();
            let raw = modproxy_tests::send_raw(p.port, req.as_bytes()).unwrap();
            let r = modproxy_tests::client::parse(&raw).expect("a response");
            assert_eq!(r.status, 200, "{version} {path}: {}", p.log());
            assert_eq!(
                checksum(&r.body),
                checksum(want),
                "{version} {path}: {} bytes",
                r.body.len()
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{version} {path}: the server closed only after {:?}",
                started.elapsed()
            );
        }
    }
}
