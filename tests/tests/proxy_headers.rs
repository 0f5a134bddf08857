//! The headers that cross the proxy: Host (preserve_host), X-Forwarded-*
//! (add_headers), Via, hop-by-hop fields stripped both ways (with those a
//! Connection header names, but never our own X-Forwarded-*), HEAD, and
//! HTTP/1.0 clients.

use modproxy_tests::{get, send_raw, Backend, Conn, Proxied, Scripted};

fn proxy_to(backend: &str, extra: &str) -> Proxied {
    Proxied::start(&format!(
        "pass = [{{ path = \"/\", url = \"{backend}/\" }}]\n{extra}"
    ))
}

#[test]
fn without_preserve_host_the_backend_sees_its_own_host_and_with_it_the_clients() {
    let backend = Backend::text("ok");
    let off = proxy_to(&backend.url(), "");
    get(off.port, "/", &[]).unwrap();
    assert_eq!(
        backend.seen()[0].header("host").unwrap(),
        format!("127.0.0.1:{}", backend.port)
    );
    let on = proxy_to(&backend.url(), "preserve_host = true");
    let mut c = Conn::open(on.port).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 200);
    assert_eq!(backend.seen()[1].header("host").unwrap(), "www.example.com");
}

#[test]
fn add_headers_appends_x_forwarded_for_and_sets_host_server_and_proto() {
    let backend = Backend::text("ok");
    let p = proxy_to(&backend.url(), "");
    let mut c = Conn::open(p.port).unwrap();
    c.send(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 200);
    let seen = &backend.seen()[0];
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-host"), Some("www.example.com"));
    assert_eq!(seen.header("x-forwarded-server"), Some("proxy.test"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));

    let off = proxy_to(&backend.url(), "add_headers = false");
    get(off.port, "/", &[]).unwrap();
    let seen = &backend.seen()[1];
    for h in [
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-server",
        "x-forwarded-proto",
    ] {
        assert_eq!(seen.header(h), None, "{h} with add_headers = false");
    }
}

#[test]
fn via_is_added_both_ways_when_on_and_stripped_from_requests_when_blocked() {
    let backend = Backend::start(|_| {
        (
            200,
            vec![("Via".into(), "1.1 origin".into())],
            b"ok".to_vec(),
        )
    });
    let on = proxy_to(&backend.url(), "via = \"on\"");
    let r = get(on.port, "/", &[("Via", "1.0 upstream")]).unwrap();
    assert_eq!(
        backend.seen()[0].header("via"),
        Some("1.0 upstream, 1.1 proxy.test (modproxy)")
    );
    let vias: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("via"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(vias, ["1.1 origin", "1.1 proxy.test (modproxy)"]);

    let block = proxy_to(&backend.url(), "via = \"block\"");
    get(block.port, "/", &[("Via", "1.0 upstream")]).unwrap();
    assert_eq!(backend.seen()[1].header("via"), None);

    let off = proxy_to(&backend.url(), "");
    get(off.port, "/", &[("Via", "1.0 upstream")]).unwrap();
    assert_eq!(
        backend.seen()[2].header("via"),
        Some("1.0 upstream"),
        "off: passed untouched"
    );
}

#[test]
fn hop_by_hop_request_headers_and_those_connection_names_never_reach_the_backend() {
    let backend = Backend::text("ok");
    let p = proxy_to(&backend.url(), "");
    let mut c = Conn::open(p.port).unwrap();
    c.send(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret, X-Forwarded-For, X-Forwarded-Host\r\n\
          Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Secret: s\r\nProxy-Authorization: Basic eA==\r\n\
          Proxy-Connection: keep-alive\r\nTrailer: X-T\r\nX-Forwarded-For: 6.6.6.6\r\nX-Kept: yes\r\n\r\n",
    )
    .unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 200);
    let seen = &backend.seen()[0];
    for h in [
        "keep-alive",
        "te",
        "x-secret",
        "proxy-authorization",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        assert_eq!(seen.header(h), None, "{h} reached the backend");
    }
    assert_ne!(
        seen.header("connection"),
        Some("keep-alive, X-Secret, X-Forwarded-For, X-Forwarded-Host")
    );
    assert_eq!(seen.header("x-kept"), Some("yes"));
    // CVE-2022-31813: Connection cannot name away what the proxy adds.
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-host"), Some("h"));
    assert_eq!(seen.header("x-forwarded-server"), Some("proxy.test"));
}

#[test]
fn hop_by_hop_response_headers_and_those_connection_names_never_reach_the_client() {
    let backend = Scripted::start(|mut peer| {
        while peer.request().is_some() {
            peer.send(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Internal\r\nKeep-Alive: timeout=99\r\n\
                  X-Internal: secret\r\nProxy-Authenticate: Basic\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Public: yes\r\n\r\nok",
            );
        }
    });
    let p = proxy_to(&backend.url(), "");
    let r = get(p.port, "/", &[]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{}", p.log());
    for h in [
        "x-internal",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    ] {
        assert_eq!(r.header(h), None, "{h} reached the client");
    }
    assert_eq!(r.header("x-public"), Some("yes"));
    assert_ne!(r.header("connection"), Some("X-Internal"));
}

#[test]
fn head_is_forwarded_as_head_and_keeps_the_backends_content_length() {
    let backend = Backend::start(|_| {
        (
            200,
            vec![("Content-Type".into(), "text/plain".into())],
            vec![b'x'; 12345],
        )
    });
    let p = proxy_to(&backend.url(), "");
    let mut c = Conn::open(p.port).unwrap();
    c.send(b"HEAD /doc HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let r = c.read_response(true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("12345"));
    assert_eq!(backend.seen()[0].method, "HEAD");
    // No body followed: the next response on the connection parses cleanly.
    c.send(b"GET /doc HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!((r.status, r.body.len()), (200, 12345));
}

#[test]
fn http_1_0_clients_get_an_http_1_0_compatible_answer_and_the_connection_closed() {
    let backend = Scripted::start(|mut peer| {
        while peer.request().is_some() {
            // Chunked from the backend; a 1.0 client cannot read chunks.
            peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        }
    });
    let p = proxy_to(&backend.url(), "");
    let raw = send_raw(p.port, b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let r = modproxy_tests::client::parse(&raw).unwrap();
    assert_eq!(r.status, 200, "{text}");
    assert!(text.starts_with("HTTP/1."), "{text}");
    assert_eq!(r.header("transfer-encoding"), None, "{text}");
    assert_eq!(r.text(), "hello world", "{text}");
    let seen = &backend.seen()[0];
    assert_eq!(seen.target, "/old");
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", backend.port).as_str()),
        "a Host is always sent"
    );
}
