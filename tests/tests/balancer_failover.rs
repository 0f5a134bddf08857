//! When members fail: failover with the request body resent byte for byte,
//! error state and recovery after `retry`, 503 when every member is down,
//! `nofailover`, sticky sessions by cookie and URL, and a panicking
//! third-party lbmethod that costs one request, not the server.

use modproxy_tests::balancer::{dead_url, member, picks, serve};
use modproxy_tests::client::parse;
use modproxy_tests::{free_port, get, send_raw, Backend, ServerRoot};
use std::net::TcpListener;
use std::time::{Duration, Instant};

#[test]
fn a_refused_member_fails_over_and_the_post_body_arrives_byte_exact() {
    let good = Backend::start(|seen| (200, vec![], seen.body.clone()));
    let members = [member(&dead_url(), ""), member(&good.url(), "")];
    let (root, server) = serve(&["lbmethod_byrequests"], "", &members);
    // Every byte value, in a body big enough to span many reads.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = parse(&send_raw(server.port, &req).unwrap()).unwrap();
    assert_eq!(r.status, 200, "{}", root.log());
    assert!(
        r.body == body,
        "echoed body differs ({} bytes)",
        r.body.len()
    );
    let seen = good.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].body == body,
        "the member got {} bytes",
        seen[0].body.len()
    );
    assert_eq!(seen[0].target, "/upload");
    assert!(root.log().contains("failover"), "{}", root.log());
}

#[test]
fn a_member_in_error_rests_for_retry_then_takes_traffic_again() {
    let port = free_port();
    let good = Backend::text("up");
    let members = [
        member(&format!("http://127.0.0.1:{port}"), "retry = 1"),
        member(&good.url(), ""),
    ];
    let (root, server) = serve(&["lbmethod_byrequests"], "", &members);
    // The first request finds the member down and fails over; while it
    // rests, every request goes to the other.
    assert_eq!(picks(server.port, "/", &[], 4), ["up"; 4], "{}", root.log());
    let back = Backend::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), |_| {
        (200, vec![], b"back".to_vec())
    });
    std::thread::sleep(Duration::from_millis(1100));
    let got = picks(server.port, "/", &[], 4);
    assert!(
        got.iter().filter(|b| *b == "back").count() >= 1,
        "{got:?}\n{}",
        root.log()
    );
    assert!(got.iter().all(|b| b == "back" || b == "up"), "{got:?}");
    assert!(!back.seen().is_empty());
}

#[test]
fn every_member_down_is_a_503_and_the_server_keeps_answering() {
    let members = [member(&dead_url(), ""), member(&dead_url(), "")];
    let (root, server) = serve(&["lbmethod_byrequests"], "", &members);
    for _ in 0..3 {
        let r = get(server.port, "/", &[]).unwrap();
        assert_eq!(r.status, 503, "{}", root.log());
    }
    let (_root, server) = serve(
        &["lbmethod_byrequests"],
        "forcerecovery = false",
        &[member(&dead_url(), "")],
    );
    assert_eq!(picks(server.port, "/", &[], 2), ["<503>", "<503>"]);
}

#[test]
fn nofailover_answers_503_instead_of_trying_another_member() {
    let good = Backend::text("up");
    let members = [
        member(&dead_url(), "route = \"a\""),
        member(&good.url(), "route = \"b\""),
    ];
    let keys = "nofailover = true\nsticky_session = \"SID\"";
    let (root, server) = serve(&["lbmethod_byrequests"], keys, &members);
    // The pick lands on the dead member: no second attempt.
    assert_eq!(picks(server.port, "/", &[], 1), ["<503>"], "{}", root.log());
    assert!(good.seen().is_empty());
    // A session bound to the dead member is refused, not moved.
    let cookie = [("Cookie", "SID=s1.a")];
    assert_eq!(picks(server.port, "/", &cookie, 2), ["<503>", "<503>"]);
    // Sessions without a route go to the member still up.
    assert_eq!(picks(server.port, "/", &[], 2), ["up", "up"]);
}

#[test]
fn sticky_sessions_follow_the_route_in_the_cookie_or_the_url() {
    let b: Vec<Backend> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| Backend::text(n))
        .collect();
    let members: Vec<String> = b
        .iter()
        .enumerate()
        .map(|(i, m)| member(&m.url(), &format!("route = \"n{}\"", i + 1)))
        .collect();
    let keys = "sticky_session = \"JSESSIONID|jsessionid\"";
    let (root, server) = serve(&["lbmethod_byrequests"], keys, &members);
    let p = server.port;
    let cookie = [("Cookie", "lang=en; JSESSIONID=abc.n2")];
    assert_eq!(picks(p, "/", &cookie, 4), ["n2"; 4], "{}", root.log());
    assert_eq!(picks(p, "/?x=1&jsessionid=abc.n3", &[], 3), ["n3"; 3]);
    assert_eq!(picks(p, "/app;jsessionid=abc.n1", &[], 3), ["n1"; 3]);
    // The URL wins over a stale cookie; the route is after the first dot.
    assert_eq!(picks(p, "/?jsessionid=x.n1", &cookie, 1), ["n1"]);
    // No route: the lbmethod decides, so all three serve.
    let mut free = picks(p, "/", &[], 3);
    free.sort();
    assert_eq!(free, ["n1", "n2", "n3"]);
}

#[test]
fn a_sticky_session_moves_when_its_member_is_down() {
    let good = Backend::text("b");
    let members = [
        member(&dead_url(), "route = \"a\""),
        member(&good.url(), "route = \"b\""),
    ];
    let (root, server) = serve(
        &["lbmethod_byrequests"],
        "sticky_session = \"SID\"",
        &members,
    );
    let cookie = [("Cookie", "SID=s.a")];
    assert_eq!(
        picks(server.port, "/", &cookie, 3),
        ["b"; 3],
        "{}",
        root.log()
    );
}

#[test]
fn a_panicking_third_party_lbmethod_costs_a_503_and_the_server_keeps_serving() {
    let root = ServerRoot::new();
    root.fixture_module(
        "lbmethod_panicky",
        "libfixture_panicky_lbmethod.so",
        "depends = [\"proxy_balancer\"]\nprovides = [\"lbmethod:panicky\"]\n",
    );
    root.enable(&["proxy_http", "lbmethod_panicky"]);
    let good = Backend::text("fine");
    let port = free_port();
    let members = [member(&good.url(), "")];
    root.config(&modproxy_tests::balancer::site(
        port,
        "lbmethod = \"panicky\"",
        &members,
    ));
    let _server = modproxy_tests::Server::start(&root, port);
    for _ in 0..3 {
        let r = get(port, "/panic", &[]).unwrap();
        assert_eq!(r.status, 503, "{}", root.log());
        assert_eq!(picks(port, "/ok", &[], 1), ["fine"], "{}", root.log());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !root.log().contains("panicked") {
        assert!(Instant::now() < deadline, "no log line: {}", root.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(root.log().contains("lbmethod_panicky") || root.log().contains("lbmethod panicky"));
}

#[test]
fn failonstatus_puts_a_member_in_error_after_relaying_its_answer() {
    let sick = Backend::start(|_| (503, vec![], b"sick".to_vec()));
    let good = Backend::text("good");
    let members = [member(&sick.url(), ""), member(&good.url(), "")];
    let (root, server) = serve(&["lbmethod_byrequests"], "failonstatus = [503]", &members);
    // The 503 itself goes to the client (Apache's post_request marks the
    // member afterwards); then the member rests and the other serves.
    assert_eq!(
        picks(server.port, "/", &[], 4),
        ["<503>", "good", "good", "good"],
        "{}",
        root.log()
    );
    assert_eq!(sick.seen().len(), 1);
}

/// The balancer's `timeout` (Apache's ProxySet timeout): with no usable
/// member, a request waits that long for one instead of a 503 at once.
#[test]
fn a_balancer_timeout_waits_for_a_member_to_come_back() {
    let mut m = modproxy_tests::member::Member::start("back");
    let members = [member(&m.url(), "retry = 1")];
    let keys = "forcerecovery = false\ntimeout = 3";
    let (root, server) = serve(&["lbmethod_byrequests"], keys, &members);
    // Killed only now: a port freed before the proxy chose its own could
    // be chosen, and the balancer would then forward to itself.
    m.kill();
    // The member refuses: it is put in error for `retry` (1 s).
    assert_eq!(picks(server.port, "/", &[], 1), ["<503>"], "{}", root.log());
    m.revive();
    // In error, no other member: the request waits until the retry has
    // passed and the member takes it, instead of an immediate 503.
    let started = Instant::now();
    assert_eq!(picks(server.port, "/", &[], 1), ["back"], "{}", root.log());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "it waited: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "not the whole timeout: {waited:?}"
    );
}

#[test]
fn without_a_balancer_timeout_no_usable_member_is_an_immediate_503() {
    let members = [member(&dead_url(), "retry = 5")];
    let (_root, server) = serve(&["lbmethod_byrequests"], "forcerecovery = false", &members);
    assert_eq!(picks(server.port, "/", &[], 1), ["<503>"]);
    let started = Instant::now();
    assert_eq!(picks(server.port, "/", &[], 1), ["<503>"]);
    assert!(started.elapsed() < Duration::from_millis(500));
}
