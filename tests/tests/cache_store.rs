//! Module cache (memory store) with a real backend that counts its
//! requests: a fresh response served without the backend, with its Age;
//! 200 concurrent cold requests for one URL make one backend request; one
//! variant per Accept-Encoding with deflate; private, no-store and
//! Set-Cookie answers not stored; a client's no-cache goes to the origin;
//! the memory bound held under 10,000 distinct URLs.

use modproxy_tests::client::{parse, Response};
use modproxy_tests::{free_port, send_raw, Backend, Server, ServerRoot};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// modproxy with proxy_http, cache and `modules`, passing `/` to
/// `backend`; `cache` adds keys to `[vhost.cache]`, `extra` more tables.
fn serve(backend: &Backend, cache: &str, modules: &[&str], extra: &str) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    let mut all = vec!["proxy_http", "cache"];
    all.extend_from_slice(modules);
    root.enable(&all);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"{}/\" }}]\n\n{extra}\n[vhost.cache]\nenable = [{{ path = \"/\" }}]\nheader = true\n{cache}\n",
        backend.url()
    ));
    let server = Server::start(&root, port);
    (root, server)
}

fn get(port: u16, path: &str, extra: &str) -> Response {
    let raw =
        format!("GET {path} HTTP/1.1\r\nHost: cache.test\r\n{extra}Connection: close\r\n\r\n");
    parse(&send_raw(port, raw.as_bytes()).unwrap()).unwrap()
}

/// A backend whose answers carry `fields`, counting what it serves.
fn counting(
    fields: &'static [(&'static str, &'static str)],
    delay: Duration,
) -> (Backend, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let backend = Backend::start(move |seen| {
        let i = c.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(delay);
        let mut f: Vec<(String, String)> = fields
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        f.push(("Content-Type".into(), "text/html".into()));
        (
            200,
            f,
            format!("answer {i} for {} {}", seen.target, "x".repeat(400)).into_bytes(),
        )
    });
    (backend, n)
}

#[test]
fn a_fresh_response_is_served_without_the_backend_with_its_age() {
    let (b, n) = counting(&[("Cache-Control", "max-age=60")], Duration::ZERO);
    let (root, server) = serve(&b, "", &[], "");
    let first = get(server.port, "/page", "");
    assert_eq!(first.header("x-cache"), Some("MISS"), "{}", root.log());
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..3 {
        let again = get(server.port, "/page", "");
        assert_eq!(again.header("x-cache"), Some("HIT"));
        assert_eq!(again.body, first.body);
        assert!(
            again
                .header("age")
                .is_some_and(|a| a.parse::<u64>().unwrap() >= 1),
            "{:?}",
            again.headers
        );
    }
    assert_eq!(n.load(Ordering::SeqCst), 1, "the backend answered once");
    let other = get(server.port, "/other", "");
    assert_eq!(other.header("x-cache"), Some("MISS"));
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

#[test]
fn two_hundred_concurrent_cold_requests_make_one_backend_request() {
    let (b, n) = counting(
        &[("Cache-Control", "max-age=60")],
        Duration::from_millis(300),
    );
    let (root, server) = serve(&b, "", &[], "");
    let port = server.port;
    let clients: Vec<_> = (0..200)
        .map(|_| std::thread::spawn(move || get(port, "/cold", "")))
        .collect();
    let answers: Vec<Response> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(
        answers
            .iter()
            .all(|r| r.status == 200 && r.body == answers[0].body),
        "{}",
        root.log()
    );
    assert_eq!(n.load(Ordering::SeqCst), 1, "{}", root.log());
    let hits = answers
        .iter()
        .filter(|r| r.header("x-cache") == Some("HIT"))
        .count();
    assert_eq!(hits, 199);
}

#[test]
fn one_variant_per_encoding_with_deflate() {
    let (b, n) = counting(&[("Cache-Control", "max-age=60")], Duration::ZERO);
    let deflate = "[vhost.deflate]\nencodings = [\"gzip\"]\nmin_length = 0\n";
    let (root, server) = serve(&b, "", &["deflate"], deflate);
    let gz = get(server.port, "/v", "Accept-Encoding: gzip\r\n");
    let plain = get(server.port, "/v", "");
    assert_eq!(
        gz.header("content-encoding"),
        Some("gzip"),
        "{}",
        root.log()
    );
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(
        n.load(Ordering::SeqCst),
        2,
        "one backend request per variant"
    );
    let gz2 = get(server.port, "/v", "Accept-Encoding: gzip\r\n");
    let plain2 = get(server.port, "/v", "");
    assert_eq!(
        (gz2.header("x-cache"), plain2.header("x-cache")),
        (Some("HIT"), Some("HIT"))
    );
    assert_eq!(gz2.header("content-encoding"), Some("gzip"));
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz2.body[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert!(
        unzipped.starts_with(b"answer 0"),
        "the gzip variant is the first answer"
    );
    assert!(plain2.body.starts_with(b"answer 1"));
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

#[test]
fn private_no_store_and_cookies_are_not_stored_and_no_cache_goes_to_the_origin() {
    for fields in [
        &[("Cache-Control", "private, max-age=60")][..],
        &[("Cache-Control", "no-store")][..],
        &[("Cache-Control", "max-age=60"), ("Set-Cookie", "s=1")][..],
        &[][..],
    ] {
        let (b, n) = counting(fields, Duration::ZERO);
        let (root, server) = serve(&b, "", &[], "");
        get(server.port, "/p", "");
        get(server.port, "/p", "");
        assert_eq!(
            n.load(Ordering::SeqCst),
            2,
            "{fields:?} was stored\n{}",
            root.log()
        );
    }
    let (b, n) = counting(&[("Cache-Control", "max-age=60")], Duration::ZERO);
    let (_root, server) = serve(&b, "", &[], "");
    get(server.port, "/p", "");
    let fresh = get(server.port, "/p", "Cache-Control: no-cache\r\n");
    assert_eq!(fresh.header("x-cache"), Some("MISS"));
    assert_eq!(n.load(Ordering::SeqCst), 2, "no-cache went to the origin");
    let after = get(server.port, "/p", "");
    assert!(
        after.body.starts_with(b"answer 1"),
        "and refreshed the copy"
    );
}

#[test]
fn the_memory_bound_holds_under_ten_thousand_urls() {
    let (b, n) = counting(&[("Cache-Control", "max-age=600")], Duration::ZERO);
    let manager = "[vhost.balancer_manager]\nmetrics = \"/metrics\"\n";
    let (_root, server) = serve(&b, "max_size = 1048576", &["proxy_balancer"], manager);
    for i in 0..10_000 {
        let r = get(server.port, &format!("/u/{i}"), "");
        assert_eq!(r.status, 200);
    }
    assert_eq!(n.load(Ordering::SeqCst), 10_000);
    // The newest are still there, the oldest were evicted.
    assert_eq!(
        get(server.port, "/u/9999", "").header("x-cache"),
        Some("HIT")
    );
    assert_eq!(get(server.port, "/u/0", "").header("x-cache"), Some("MISS"));
    let text = String::from_utf8_lossy(&get(server.port, "/metrics", "").body).into_owned();
    let size: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("modproxy_cache_size_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in {text}"));
    assert!(size <= 1_048_576 && size > 512 * 1024, "{size} bytes held");
}

/// A backend with a validator: 304 to a matching If-None-Match, else the
/// page; `Cache-Control` as given. Counts full answers and 304s apart.
fn validating(cc: &'static str) -> (Backend, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (full, not_modified) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (f, nm) = (full.clone(), not_modified.clone());
    let backend = Backend::start(move |seen| {
        let fields = vec![
            ("Cache-Control".to_owned(), cc.to_owned()),
            ("ETag".to_owned(), "\"v1\"".to_owned()),
            ("Content-Type".to_owned(), "text/plain".to_owned()),
        ];
        if seen.header("if-none-match") == Some("\"v1\"") {
            nm.fetch_add(1, Ordering::SeqCst);
            return (304, fields, Vec::new());
        }
        f.fetch_add(1, Ordering::SeqCst);
        (200, fields, b"the page".to_vec())
    });
    (backend, full, not_modified)
}

#[test]
fn a_stale_copy_is_revalidated_with_its_etag_and_a_clients_own_validator_gets_304() {
    let (b, full, nm) = validating("max-age=1");
    let (root, server) = serve(&b, "", &[], "");
    assert_eq!(get(server.port, "/r", "").body, b"the page");
    std::thread::sleep(Duration::from_millis(1200));
    let again = get(server.port, "/r", "");
    assert_eq!(
        (again.status, again.header("x-cache")),
        (200, Some("REVALIDATED")),
        "{}",
        root.log()
    );
    assert_eq!(again.body, b"the page");
    assert_eq!(
        (full.load(Ordering::SeqCst), nm.load(Ordering::SeqCst)),
        (1, 1)
    );
    // Fresh again: a hit, and the client's own If-None-Match is answered 304.
    assert_eq!(get(server.port, "/r", "").header("x-cache"), Some("HIT"));
    let cond = get(server.port, "/r", "If-None-Match: \"v1\"\r\n");
    assert_eq!((cond.status, cond.body.len()), (304, 0));
    assert_eq!(
        (full.load(Ordering::SeqCst), nm.load(Ordering::SeqCst)),
        (1, 1)
    );
}

/// A backend that answers one request, with `cc`, then is gone: its
/// port refuses every later connect.
fn one_shot(cc: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let body = "the page";
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nCache-Control: {cc}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    url
}

fn serve_url(url: &str) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "cache"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"{url}/\" }}]\n\n[vhost.cache]\nenable = [{{ path = \"/\" }}]\nheader = true\n"
    ));
    let server = Server::start(&root, port);
    (root, server)
}

#[test]
fn a_dead_backend_is_answered_from_a_stale_copy_within_stale_if_error() {
    let (root, server) = serve_url(&one_shot("max-age=1, stale-if-error=60"));
    assert_eq!(get(server.port, "/s", "").body, b"the page");
    std::thread::sleep(Duration::from_millis(1200));
    let stale = get(server.port, "/s", "");
    assert_eq!(
        (stale.status, stale.header("x-cache")),
        (200, Some("STALE")),
        "{}",
        root.log()
    );
    assert_eq!(stale.body, b"the page");
    assert!(root
        .log()
        .contains("answering with the stale copy (stale-if-error)"));
    // Without the window, the error goes through.
    let (_root2, server2) = serve_url(&one_shot("max-age=1"));
    get(server2.port, "/s", "");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(get(server2.port, "/s", "").status, 503);
}

#[test]
fn while_one_request_revalidates_the_others_get_the_stale_copy() {
    // The revalidation takes 500 ms; stale-while-revalidate lets the
    // requests meanwhile have the stale copy at once.
    let slow = Arc::new(AtomicUsize::new(0));
    let s = slow.clone();
    let b = Backend::start(move |_| {
        if s.fetch_add(1, Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        let fields = vec![
            (
                "Cache-Control".to_owned(),
                "max-age=1, stale-while-revalidate=30".to_owned(),
            ),
            ("Content-Type".to_owned(), "text/plain".to_owned()),
        ];
        (200, fields, b"page".to_vec())
    });
    let (root, server) = serve(&b, "", &[], "");
    get(server.port, "/w", "");
    std::thread::sleep(Duration::from_millis(1200));
    let port = server.port;
    let first = std::thread::spawn(move || get(port, "/w", ""));
    std::thread::sleep(Duration::from_millis(100));
    let t0 = std::time::Instant::now();
    let other = get(server.port, "/w", "");
    assert_eq!(other.header("x-cache"), Some("STALE"), "{}", root.log());
    assert!(
        t0.elapsed() < Duration::from_millis(300),
        "it did not wait for the revalidation"
    );
    assert_eq!(first.join().unwrap().header("x-cache"), Some("MISS"));
    assert_eq!(slow.load(Ordering::SeqCst), 2);
}

#[test]
fn the_disk_store_survives_a_restart_and_recovers_from_a_cut_file() {
    let (b, n) = counting(&[("Cache-Control", "max-age=600")], Duration::ZERO);
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "cache"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"{}/\" }}]\n\n[vhost.cache]\nenable = [{{ path = \"/\", store = \"disk\" }}]\nheader = true\n",
        b.url()
    ));
    let server = Server::start(&root, port);
    let first = get(port, "/d", "");
    get(port, "/e", "");
    assert_eq!(get(port, "/d", "").header("x-cache"), Some("HIT"));
    root.restart();
    let after = get(port, "/d", "");
    assert_eq!(after.header("x-cache"), Some("HIT"), "{}", root.log());
    assert_eq!(after.body, first.body);
    assert_eq!(
        n.load(Ordering::SeqCst),
        2,
        "the new process answered from the files"
    );
    // Every entry file cut short: each is a miss, and is stored again.
    let dir = root.dir.join("cache");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "entry") {
            let data = std::fs::read(e.path()).unwrap();
            std::fs::write(e.path(), &data[..data.len() / 2]).unwrap();
        }
    }
    assert_eq!(get(port, "/d", "").header("x-cache"), Some("MISS"));
    assert_eq!(get(port, "/d", "").header("x-cache"), Some("HIT"));
    // PURGE from loopback: one URL, then a prefix.
    let purged = parse(
        &send_raw(
            port,
            b"PURGE /d HTTP/1.1\r\nHost: cache.test\r\nConnection: close\r\n\r\n",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (purged.status, purged.body.as_slice()),
        (200, &b"{\"purged\": 1}\n"[..])
    );
    assert_eq!(get(port, "/d", "").header("x-cache"), Some("MISS"));
    let all = parse(
        &send_raw(
            port,
            b"PURGE /* HTTP/1.1\r\nHost: cache.test\r\nConnection: close\r\n\r\n",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(all.status, 200, "{}", root.log());
    assert_eq!(get(port, "/e", "").header("x-cache"), Some("MISS"));
    drop(server);
}

/// The balancer manager's API purges the cache: one URL, then a prefix.
#[test]
fn the_managers_api_purges_by_url_and_prefix() {
    let (b, _) = counting(&[("Cache-Control", "max-age=600")], Duration::ZERO);
    let manager = "[vhost.balancer_manager]\npath = \"/balancer-manager\"\n";
    let (root, server) = serve(&b, "", &["proxy_balancer"], manager);
    let port = server.port;
    for p in ["/a/1", "/a/2", "/b"] {
        get(port, p, "");
        assert_eq!(get(port, p, "").header("x-cache"), Some("HIT"));
    }
    let state = String::from_utf8(get(port, "/balancer-manager/api", "").body).unwrap();
    let at = state.find("\"token\":\"").expect("a token") + 9;
    let token = &state[at..at + 32];
    let purge = |what: &str| {
        let body = format!("{{\"purge\": \"{what}\"}}");
        let raw = format!(
            "POST /balancer-manager/api HTTP/1.1\r\nHost: cache.test\r\nX-Modproxy-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        parse(&send_raw(port, raw.as_bytes()).unwrap()).unwrap()
    };
    let one = purge("http://cache.test/b");
    assert_eq!(
        (one.status, one.body.as_slice()),
        (200, &b"{\"purged\":1}"[..]),
        "{}",
        root.log()
    );
    assert_eq!(get(port, "/b", "").header("x-cache"), Some("MISS"));
    let two = purge("http://cache.test/a/*");
    assert_eq!(two.body, b"{\"purged\":2}");
    assert_eq!(get(port, "/a/1", "").header("x-cache"), Some("MISS"));
    assert!(root.log().contains("purged the cache"), "{}", root.log());
}
