//! Backend failures answered as Apache answers them, each logged with the
//! worker and the reason: a refused connect is 503 and holds the worker in
//! error for `retry` seconds; no head in time or a malformed head is 502;
//! a request body the backend will not take in time is 504; a backend that
//! dies mid-body aborts the client connection; error_override puts the
//! server's own page in place of the backend's.

use modproxy_tests::{free_port, get, Backend, Conn, Proxied, Scripted};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn proxy_to(backend: &str, keys: &str, extra: &str) -> Proxied {
    Proxied::start(&format!(
        "{extra}\npass = [{{ path = \"/\", url = \"{backend}/\"{keys} }}]"
    ))
}

#[test]
fn a_refused_backend_answers_503_and_the_worker_stays_in_error_for_retry_seconds() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let p = proxy_to(&url, ", retry = 2", "timeout = 1");
    let r = get(p.port, "/", &[]).unwrap();
    assert_eq!(r.status, 503);
    let log = p.log_eventually("in error state");
    assert!(
        log.contains(&format!(
            "proxy: worker {url} in error state for 2s: connect failed"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "proxy_http: {url}: connect to 127.0.0.1:{port} failed"
        )),
        "{log}"
    );

    // The backend comes back, but the worker is held: 503 without trying.
    let failed_at = Instant::now();
    let backend = Backend::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), |_| {
        (200, vec![], b"back".to_vec())
    });
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 503);
    assert!(backend.seen().is_empty(), "a held worker is not tried");
    assert!(
        p.log().contains(&format!("worker {url} is in error state")),
        "{}",
        p.log()
    );

    // Once retry has passed, the next request is the probe and succeeds.
    std::thread::sleep(
        Duration::from_secs(2).saturating_sub(failed_at.elapsed()) + Duration::from_millis(100),
    );
    let r = get(p.port, "/", &[]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "back"), "{}", p.log());
}

#[test]
fn the_default_retry_holds_a_refused_worker_for_60_seconds() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let p = proxy_to(&url, "", "");
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 503);
    let _backend = Backend::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), |_| {
        (200, vec![], vec![])
    });
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 503);
    assert!(
        p.log()
            .contains(&format!("worker {url} in error state for 60s")),
        "{}",
        p.log()
    );
}

#[test]
fn retry_zero_lets_the_very_next_request_reach_a_backend_that_came_back() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let p = proxy_to(&url, ", retry = 0", "");
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 503);
    let _backend = Backend::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), |_| {
        (200, vec![], b"up".to_vec())
    });
    let r = get(p.port, "/", &[]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "up"), "{}", p.log());
}

#[test]
fn no_response_head_within_the_timeout_is_a_502_not_a_504() {
    let backend = Scripted::start(|mut peer| {
        peer.request();
        peer.wait_closed(5);
    });
    let p = proxy_to(&backend.url(), "", "timeout = 1");
    let started = Instant::now();
    let r = get(p.port, "/slow", &[]).unwrap();
    assert_eq!(r.status, 502, "{}", p.log());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let log = p.log_eventually("no response head");
    assert!(
        log.contains(&format!(
            "proxy_http: {}: no response head within 1000 ms",
            backend.url()
        )),
        "{log}"
    );
    assert!(log.contains("answering 502"), "{log}");
}

#[test]
fn a_request_body_the_backend_does_not_read_in_time_is_a_504() {
    let backend = Scripted::start(|mut peer| {
        peer.head();
        // Never reads the body.
        std::thread::sleep(Duration::from_secs(4));
    });
    let p = proxy_to(&backend.url(), "", "timeout = 1");
    let mut c = Conn::open(p.port).unwrap();
    let size = 32 * 1024 * 1024;
    c.send(format!("PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: {size}\r\n\r\n").as_bytes())
        .unwrap();
    let writer = {
        let mut s = c.stream().try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let block = vec![7u8; 64 * 1024];
            for _ in 0..size / block.len() {
                if s.write_all(&block).is_err() {
                    return;
                }
            }
        })
    };
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 504, "{}", p.log());
    let log = p.log_eventually("did not read the request body");
    assert!(
        log.contains(&format!(
            "{}: the backend did not read the request body within 1000 ms",
            backend.url()
        )),
        "{log}"
    );
    drop(c);
    let _ = writer.join();
}

#[test]
fn a_malformed_or_oversized_response_head_is_a_502_naming_the_problem() {
    let long_header = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(9000)
    );
    let many_headers = format!(
        "HTTP/1.1 200 OK\r\n{}Content-Length: 0\r\n\r\n",
        (0..120)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "garbage",
            "SPDY/9 OK\r\n\r\n".into(),
            "malformed status line",
        ),
        (
            "bad header line",
            "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n".into(),
            "malformed header line",
        ),
        (
            "header over 8 KiB",
            long_header,
            "header line longer than 8192",
        ),
        (
            "too many headers",
            many_headers,
            "more than 100 header fields",
        ),
        (
            "bad length",
            "HTTP/1.1 200 OK\r\nContent-Length: 12, 13\r\n\r\n".into(),
            "invalid or conflicting Content-Length",
        ),
        (
            "half a head",
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n".into(),
            "before a complete response head",
        ),
    ];
    for (what, head, why) in cases {
        let head2 = head.clone();
        let backend = Scripted::start(move |mut peer| {
            peer.request();
            peer.send(head2.as_bytes());
        });
        let p = proxy_to(&backend.url(), "", "timeout = 2");
        let r = get(p.port, "/", &[]).unwrap();
        assert_eq!(r.status, 502, "{what}: {}", p.log());
        let log = p.log_eventually(why);
        assert!(
            log.contains(&format!("proxy_http: {}: ", backend.url())) && log.contains(why),
            "{what}: {log}"
        );
    }
}

#[test]
fn a_backend_dying_mid_body_aborts_the_client_connection_for_both_framings() {
    let backend = Scripted::start(|mut peer| {
        if let Some(req) = peer.request() {
            if req.target == "/length" {
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
                peer.send(&[b'x'; 300_000]);
            } else {
                peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                peer.send(b"10000\r\n");
                peer.send(&[b'y'; 0x10000]);
                peer.send(b"\r\n");
            }
            // Then the backend dies.
        }
    });
    let p = proxy_to(&backend.url(), "", "timeout = 2");
    for path in ["/length", "/chunked"] {
        let mut c = Conn::open(p.port).unwrap();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .unwrap();
        let r = c.read_response(false);
        assert_eq!(
            r.as_ref()
                .map_err(|e| e.kind())
                .map(|r| r.body.len())
                .unwrap_err(),
            std::io::ErrorKind::UnexpectedEof,
            "{path}: a truncated body must never look complete: {:?}",
            r.map(|r| (r.status, r.body.len()))
        );
    }
    let log = p.log_eventually("inside a chunked body");
    assert!(log.contains(&format!("proxy_http: {}: response aborted: backend closed the connection with 700000 bytes of the body missing", backend.url())), "{log}");
    assert!(
        log.contains("response aborted: backend closed the connection inside a chunked body"),
        "{log}"
    );
}

#[test]
fn error_override_answers_backend_errors_with_the_servers_own_page() {
    let backend = Backend::start(|s| match s.target.as_str() {
        "/missing" => (
            404,
            vec![("X-Backend".into(), "1".into())],
            b"backend's own 404 page".to_vec(),
        ),
        "/broken" => (500, vec![], b"stack trace!".to_vec()),
        _ => (200, vec![], b"fine".to_vec()),
    });
    let p = proxy_to(&backend.url(), "", "error_override = true");
    let mut c = Conn::open(p.port).unwrap();
    for (path, status) in [("/missing", 404), ("/broken", 500)] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, status, "{}", p.log());
        assert!(
            r.text().contains(&format!("modproxy answered {status}")),
            "{path}: {}",
            r.text()
        );
        assert!(
            !r.text().contains("backend") && !r.text().contains("stack"),
            "{}",
            r.text()
        );
        assert_eq!(r.header("x-backend"), None);
    }
    c.send(b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "fine"));
    assert_eq!(
        backend.connections(),
        1,
        "drained error bodies leave the connection pooled"
    );

    let plain = proxy_to(&backend.url(), "", "");
    let r = get(plain.port, "/missing", &[]).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "backend's own 404 page"),
        "off: relayed as is"
    );
}
