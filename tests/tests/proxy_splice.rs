//! Content-Length bodies spliced between the client and the backend in
//! the kernel (ABI 1.7): byte-exact both ways and counted as copied ones
//! are (access log, metrics); copied instead where they must pass through
//! user space (TLS, a filter); and every way a splice can break (the
//! client leaving, the backend dying, an upload cut short or stalled)
//! ends as the copy path's does.

#[path = "support/tls.rs"]
mod tls;

use modproxy_tests::{
    checksum, free_port, get, noise, Backend, Conn, Scripted, Server, ServerRoot,
};
use std::io::{Read, Write};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// One plain vhost with the metrics path, one TLS vhost and one with
/// deflate, all proxying to `backend`.
struct Site {
    root: ServerRoot,
    _server: Server,
    plain: u16,
    tls: u16,
    deflated: u16,
    cert: tls::Cert,
}

impl Site {
    fn start(backend: &str, top: &str) -> Site {
        let root = ServerRoot::new();
        root.enable(&["proxy_http", "proxy_balancer", "deflate"]);
        let cert = tls::Cert::new(&["splice.test"]);
        root.write("tls/s.crt", &cert.pem);
        root.write("tls/s.key", &cert.key_pem);
        let (plain, tls, deflated) = (free_port(), free_port(), free_port());
        let pass = format!(
            "[vhost.proxy]\ntimeout = 5\npass = [{{ path = \"/\", url = \"{backend}/\" }}]\n"
        );
        root.config(&format!(
            "{top}\n[log]\naccess_log = \"logs/access.log\"\n\n\
             [[vhost]]\nlisten = \"127.0.0.1:{plain}\"\n{pass}\
             [vhost.balancer_manager]\npath = \"/balancer-manager\"\nmetrics = \"/metrics\"\n\n\
             [[vhost]]\nlisten = \"127.0.0.1:{tls}\"\nserver_name = \"splice.test\"\n\
             tls_certificate = \"tls/s.crt\"\ntls_key = \"tls/s.key\"\n{pass}\n\
             [[vhost]]\nlisten = \"127.0.0.1:{deflated}\"\n{pass}[vhost.deflate]\n"
        ));
        let server = Server::start(&root, plain);
        Site {
            root,
            _server: server,
            plain,
            tls,
            deflated,
            cert,
        }
    }

    /// modproxy_spliced_bytes_total for the response and request bodies.
    fn spliced(&self) -> (u64, u64) {
        let text = get(self.plain, "/metrics", &[]).unwrap().text();
        let figure = |body: &str| {
            let key = format!("modproxy_spliced_bytes_total{{body=\"{body}\"}} ");
            let line = text.lines().find_map(|l| l.strip_prefix(key.as_str()));
            line.and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {text}"))
        };
        (figure("response"), figure("request"))
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.root.dir.join("logs/access.log")).unwrap_or_default()
    }
}

/// Echoes the request body back with Content-Length, as text/html (so
/// deflate would compress it).
fn echo() -> Backend {
    Backend::start(|s| {
        let html = ("Content-Type".to_owned(), "text/html".to_owned());
        (200, vec![html], s.body.clone())
    })
}

/// Waits (at most 5 s) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn content_length_bodies_are_spliced_both_ways_byte_exact_and_logged_with_their_size() {
    let backend = echo();
    let site = Site::start(&backend.url(), "");
    let body = noise(3 * MIB, 21);
    let (response_before, request_before) = site.spliced();
    let r = modproxy_tests::request(site.plain, "POST", "/up", &[], &body).unwrap();
    assert_eq!(r.status, 200, "{}", site.root.log());
    let seen = &backend.seen()[0];
    assert_eq!(
        checksum(&seen.body),
        checksum(&body),
        "backend got the exact bytes"
    );
    assert_eq!(r.body.len(), body.len());
    assert_eq!(
        checksum(&r.body),
        checksum(&body),
        "client got the exact bytes"
    );
    let (response, request) = site.spliced();
    // All but what came with the heads, and the first 64 KiB of the
    // upload (kept for a retry's replay), went through the kernel alone.
    assert!(
        response - response_before > 3 * MIB as u64 - 64 * 1024,
        "{response}"
    );
    assert!(
        request - request_before > 3 * MIB as u64 - 192 * 1024,
        "{request}"
    );
    eventually("the access log line", || {
        site.access_log().contains("\"POST /up")
    });
    let log = site.access_log();
    let line = log.lines().find(|l| l.contains("\"POST /up")).unwrap();
    assert!(line.contains(&format!(" 200 {} ", 3 * MIB)), "{line}");
    // The kept-alive backend connection carries the next request cleanly.
    let again = modproxy_tests::request(site.plain, "POST", "/again", &[], b"small").unwrap();
    assert_eq!(again.text(), "small");
}

#[test]
fn tls_clients_and_filtered_responses_are_copied_whole_not_spliced() {
    let backend = echo();
    let site = Site::start(&backend.url(), "");
    let body = noise(2 * MIB, 22);
    let before = site.spliced();
    // TLS: the bytes must be encrypted on their way out.
    let config = tls::client_config(&[&site.cert]);
    let mut s = tls::connect(config, site.tls, "splice.test").unwrap();
    let head = format!(
        "POST /tls HTTP/1.1\r\nHost: splice.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let r = modproxy_tests::client::parse(&raw).expect("a response over TLS");
    assert_eq!(r.status, 200);
    assert_eq!(
        checksum(&r.body),
        checksum(&body),
        "TLS client got the exact bytes"
    );
    // deflate: the filter must see (and change) the bytes.
    let mut c = Conn::open(site.deflated).unwrap();
    let head = format!(
        "POST /deflated HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes()).unwrap();
    c.send(&body).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let (response, _) = site.spliced();
    assert_eq!(response, before.0, "no response byte was spliced");
    // Without Accept-Encoding the filter stays out, and the body is spliced.
    c.send(head.replace("Accept-Encoding: gzip\r\n", "").as_bytes())
        .unwrap();
    c.send(&body).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(checksum(&r.body), checksum(&body));
    assert!(site.spliced().0 > response, "an unfiltered body is spliced");
}

#[test]
fn a_client_leaving_mid_body_costs_the_next_client_nothing() {
    let big = noise(8 * MIB, 23);
    let backend = {
        let big = big.clone();
        Backend::start(move |_| (200, vec![], big.clone()))
    };
    let site = Site::start(&backend.url(), "");
    for _ in 0..3 {
        let mut c = Conn::open(site.plain).unwrap();
        c.send(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(c.read_head().unwrap().status, 200);
        assert_eq!(c.read_bytes(100_000).unwrap(), big[..100_000]);
        drop(c); // gone with most of the body still to come
    }
    let r = get(site.plain, "/whole", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(checksum(&r.body), checksum(&big), "{}", site.root.log());
    eventually("a log line for each client that left", || {
        site.access_log().matches("\"GET /big").count() == 3
    });
}

#[test]
fn a_backend_dying_mid_body_ends_the_client_connection_without_a_clean_end() {
    let backend = Scripted::start(|mut peer| {
        peer.request();
        peer.send(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 4 * MIB).as_bytes());
        peer.send(&noise(MIB, 24));
        // Dropped here: the backend closes with 3 MiB missing.
    });
    let site = Site::start(&backend.url(), "");
    let mut c = Conn::open(site.plain).unwrap();
    c.send(b"GET /cut HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert_eq!(c.read_head().unwrap().status, 200);
    assert_eq!(c.read_bytes(MIB).unwrap(), noise(MIB, 24));
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "the client must see the connection close, not wait for the rest"
    );
    let log = site.root.log();
    assert!(log.contains("bytes of the body missing"), "{log}");
}

#[test]
fn an_upload_cut_short_mid_body_never_reaches_the_backend_whole() {
    let backend = echo();
    let site = Site::start(&backend.url(), "");
    let mut c = Conn::open(site.plain).unwrap();
    c.send(
        format!(
            "PUT /cut HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            4 * MIB
        )
        .as_bytes(),
    )
    .unwrap();
    c.send(&noise(MIB, 25)).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // well into the spliced part
    drop(c);
    eventually("the client's fault in the log", || {
        site.root
            .log()
            .contains("reading the client's request body")
    });
    assert!(
        backend.seen().is_empty(),
        "the backend never saw a complete request"
    );
    // The backend and the proxy carry on.
    let r = modproxy_tests::request(site.plain, "PUT", "/next", &[], &noise(MIB, 26)).unwrap();
    assert_eq!(checksum(&r.body), checksum(&noise(MIB, 26)));
}

#[test]
fn an_upload_that_stalls_mid_body_is_a_408_at_the_timeout() {
    let backend = echo();
    let site = Site::start(&backend.url(), "[limits]\ntimeout = 1\n");
    let mut c = Conn::open(site.plain).unwrap();
    c.send(
        format!(
            "PUT /stall HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            4 * MIB
        )
        .as_bytes(),
    )
    .unwrap();
    c.send(&noise(MIB, 27)).unwrap();
    // Nothing more: the body timeout (1 s) runs out in the spliced part.
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 408, "{}", site.root.log());
    assert!(backend.seen().is_empty());
}

#[test]
fn a_spliced_upload_lost_in_the_keep_alive_race_is_replayed_whole_from_the_kernels_copy() {
    let backend = Scripted::racy();
    let site = Site::start(&backend.url(), "");
    assert_eq!(get(site.plain, "/", &[]).unwrap().status, 200);
    let body = noise(60_000, 28);
    let (_, request_before) = site.spliced();
    let mut c = Conn::open(site.plain).unwrap();
    c.send(
        format!(
            "PUT /doc HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // The body after the head, so that none of it is read with the head
    // and all of it is spliced.
    std::thread::sleep(Duration::from_millis(200));
    c.send(&body).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "conn 1"),
        "{}",
        site.root.log()
    );
    backend.assert_sent_twice_whole("PUT", &body);
    let (_, request) = site.spliced();
    assert_eq!(
        request - request_before,
        body.len() as u64,
        "spliced, not copied"
    );
}
