//! Backend connections: a keep-alive pool per worker, the keep-alive race
//! (an idempotent request on a pooled connection the backend closed is
//! retried once on a fresh one, never a spurious 502), and the per-worker
//! keys of a pass entry: timeout, connection_timeout, max, ttl,
//! disable_reuse, keepalive.

use modproxy_tests::{get, request, Backend, Conn, Proxied, Scripted};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn proxy_to(backend: &str, keys: &str) -> Proxied {
    Proxied::start(&format!(
        "timeout = 5\npass = [{{ path = \"/\", url = \"{backend}/\"{keys} }}]"
    ))
}

#[test]
fn requests_from_different_clients_share_one_pooled_backend_connection() {
    let backend = Backend::text("ok");
    let p = proxy_to(&backend.url(), "");
    for _ in 0..5 {
        assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    }
    assert_eq!(backend.connections(), 1, "{}", p.log());
    let seen = backend.seen();
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter().all(|s| s.header("connection").is_none()),
        "kept alive, no Connection: close"
    );
}

#[test]
fn an_idempotent_request_on_a_connection_the_backend_closed_is_retried_on_a_fresh_one() {
    let backend = Scripted::racy();
    let p = proxy_to(&backend.url(), "");
    let answers: Vec<(u16, String)> = (0..3)
        .map(|_| {
            let r = get(p.port, "/", &[]).unwrap();
            (r.status, r.text())
        })
        .collect();
    assert_eq!(
        answers,
        [
            (200, "conn 0".into()),
            (200, "conn 1".into()),
            (200, "conn 2".into())
        ],
        "never a spurious 502: {}",
        p.log()
    );
    assert_eq!(backend.connections(), 3);
    // The same GET reached the backend twice: once lost in the race, once answered.
    assert_eq!(backend.seen().len(), 5);
}

#[test]
fn a_put_with_a_small_body_lost_in_the_keep_alive_race_is_sent_again_whole() {
    let backend = Scripted::racy();
    let p = proxy_to(&backend.url(), "");
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    let body = modproxy_tests::noise(40_000, 7);
    let r = request(p.port, "PUT", "/doc", &[], &body).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "conn 1"),
        "{}",
        p.log()
    );
    backend.assert_sent_twice_whole("PUT", &body);
}

#[test]
fn a_post_lost_in_the_keep_alive_race_is_not_sent_twice() {
    let backend = Scripted::racy();
    let p = proxy_to(&backend.url(), "");
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    let r = request(p.port, "POST", "/order", &[], b"buy").unwrap();
    assert_eq!(
        r.status,
        502,
        "a non-idempotent request may have been acted on: {}",
        p.log()
    );
    let posts = backend.seen().iter().filter(|s| s.method == "POST").count();
    assert_eq!(posts, 1, "sent once only");
    assert!(
        p.log()
            .contains("backend closed the connection without responding"),
        "{}",
        p.log()
    );
}

#[test]
fn a_pooled_connection_the_backend_closed_while_idle_is_not_used() {
    let backend = Scripted::start(|mut peer| {
        if peer.request().is_some() {
            peer.respond(200, &[], b"once");
        }
        // Closes right away: the proxy must notice before reusing it.
    });
    let p = proxy_to(&backend.url(), "");
    for _ in 0..3 {
        let r = get(p.port, "/", &[]).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "once"), "{}", p.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        backend.seen().len(),
        3,
        "no request was lost to a dead connection"
    );
}

/// A backend that sends bytes past its `Content-Length` body (with the
/// body's end, or just after it) leaves a connection that must not be
/// reused: the next request goes to a fresh one and gets its own answer.
#[test]
fn a_connection_with_bytes_past_the_body_is_not_reused() {
    let backend = Scripted::start(|mut peer| {
        while let Some(req) = peer.request() {
            if req.target == "/ok" {
                peer.respond(200, &[], format!("conn {}", peer.index).as_bytes());
                continue;
            }
            // The body in two pieces, so that its end comes in a read of
            // its own; the junk follows in the same write, or after it.
            peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n");
            peer.send(&[b'a'; 10_000]);
            std::thread::sleep(Duration::from_millis(50));
            if req.target == "/junk-with-end" {
                peer.send(&[[b'b'; 10_000].as_slice(), b"HTTP/1.1 200 OK\r\n\r\n"].concat());
            } else {
                peer.send(&[b'b'; 10_000]);
                std::thread::sleep(Duration::from_millis(50));
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\njunk");
            }
        }
    });
    let p = proxy_to(&backend.url(), "");
    for (i, path) in ["/junk-with-end", "/junk-after-end"].iter().enumerate() {
        let r = get(p.port, path, &[]).unwrap();
        assert_eq!(
            (r.status, r.body.len()),
            (200, 20_000),
            "{path}: {}",
            p.log()
        );
        assert!(r.body.ends_with(b"b"), "{path}: the body, without the junk");
        std::thread::sleep(Duration::from_millis(100));
        let next = get(p.port, "/ok", &[]).unwrap();
        assert_eq!(
            (next.status, next.text()),
            (200, format!("conn {}", i + 1)),
            "after {path}: a fresh connection\n{}",
            p.log()
        );
    }
}

#[test]
fn disable_reuse_opens_a_connection_per_request_and_asks_the_backend_to_close_it() {
    let backend = Backend::text("ok");
    let p = proxy_to(&backend.url(), ", disable_reuse = true");
    for _ in 0..3 {
        assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    }
    assert_eq!(backend.connections(), 3);
    assert!(backend
        .seen()
        .iter()
        .all(|s| s.header("connection") == Some("close")));
}

#[test]
fn max_bounds_the_idle_connections_kept_per_worker() {
    // Each answer waits for the other request, so two connections are open at once.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let b2 = barrier.clone();
    let backend = Scripted::start(move |mut peer| {
        let mut first = true;
        while peer.request().is_some() {
            if first {
                b2.wait();
                first = false;
            }
            peer.respond(200, &[], b"ok");
        }
    });
    let p = proxy_to(&backend.url(), ", max = 1");
    let port = p.port;
    let t = std::thread::spawn(move || get(port, "/a", &[]).unwrap().status);
    assert_eq!(get(p.port, "/b", &[]).unwrap().status, 200);
    assert_eq!(t.join().unwrap(), 200);
    assert_eq!(backend.connections(), 2);
    drop(barrier);
    // Only one of the two was kept: later requests all use it.
    for _ in 0..3 {
        assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    }
    assert_eq!(backend.connections(), 2, "{}", p.log());
}

#[test]
fn ttl_retires_connections_idle_longer_than_it() {
    let backend = Backend::text("ok");
    let p = proxy_to(&backend.url(), ", ttl = 1");
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    assert_eq!(backend.connections(), 1, "reused within the ttl");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    assert_eq!(backend.connections(), 2, "a new connection after the ttl");
}

#[test]
fn a_pass_entrys_timeout_overrides_the_vhost_timeout() {
    let backend = Scripted::start(|mut peer| {
        peer.request();
        std::thread::sleep(Duration::from_secs(3));
        peer.respond(200, &[], b"late");
    });
    let p = Proxied::start(&format!(
        "timeout = 10\npass = [{{ path = \"/\", url = \"{}/\", timeout = 1 }}]",
        backend.url()
    ));
    let started = Instant::now();
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 502);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

/// A listener whose accept queue is full: further connects hang in SYN,
/// as with a backend host that drops packets.
fn black_hole() -> (TcpListener, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..4096 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => return (listener, held),
        }
    }
    panic!("the accept queue never filled");
}

#[test]
fn connection_timeout_bounds_the_connect_separately_from_timeout() {
    let (hole, _held) = black_hole();
    let url = format!("http://{}", hole.local_addr().unwrap());
    let p = Proxied::start(&format!(
        "timeout = 10\npass = [{{ path = \"/\", url = \"{url}/\", connection_timeout = 1 }}]"
    ));
    let started = Instant::now();
    let r = get(p.port, "/", &[]).unwrap();
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{}", p.log());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3000),
        "{took:?}"
    );
    let log = p.log_eventually("timed out");
    assert!(
        log.contains(&format!("proxy_http: {url}: connect to")) && log.contains("timed out"),
        "{log}"
    );
}

/// The timer column of the proxy's socket to `backend_port` in
/// /proc/net/tcp: 2 while a keepalive timer runs on an idle connection.
fn keepalive_timer_on(backend_port: u16) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want = format!(":{backend_port:04X}");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(2)?.ends_with(&want) && cols.get(3)? == &"01")
            .then(|| cols.get(5).is_some_and(|t| t.starts_with("02:")))
    })
}

#[test]
fn keepalive_turns_on_tcp_keepalive_probes_on_backend_connections() {
    let backend = Backend::text("ok");
    let p = proxy_to(&backend.url(), ", keepalive = true");
    assert_eq!(get(p.port, "/", &[]).unwrap().status, 200);
    assert_eq!(keepalive_timer_on(backend.port), Some(true), "{}", p.log());
    let plain = Backend::text("ok");
    let q = proxy_to(&plain.url(), "");
    let mut c = Conn::open(q.port).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    c.read_response(false).unwrap();
    assert_eq!(keepalive_timer_on(plain.port), Some(false));
}
