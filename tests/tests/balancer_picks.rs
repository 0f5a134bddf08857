//! Which member each request goes to, observed through real requests (each
//! backend answers its own name): the tutorial's Example 2, byrequests
//! weights, lbsets, hot standbys, spares, draining members, bybusyness and
//! bytraffic; and the configtest messages when a module is missing.

use modproxy_tests::balancer::{member, picks, serve, site};
use modproxy_tests::{free_port, get, Backend, ServerRoot};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `n` backends answering `m0`, `m1`, …
fn backends(n: usize) -> Vec<Backend> {
    (0..n).map(|i| Backend::text(&format!("m{i}"))).collect()
}

fn names(seq: &[usize]) -> Vec<String> {
    seq.iter().map(|i| format!("m{i}")).collect()
}

#[test]
fn tutorial_example_2_alternates_hello_and_howdy() {
    let (b1, b2) = (Backend::text("Hello world!"), Backend::text("Howdy world!"));
    let (root, server) = serve(
        &["lbmethod_byrequests"],
        "",
        &[member(&b1.url(), ""), member(&b2.url(), "")],
    );
    let got = picks(server.port, "/", &[], 4);
    assert_eq!(
        got,
        [
            "Hello world!",
            "Howdy world!",
            "Hello world!",
            "Howdy world!"
        ],
        "{}",
        root.log()
    );
}

#[test]
fn configtest_names_the_missing_balancer_or_lbmethod_module() {
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let members = [member("http://127.0.0.1:9", "")];
    root.config(&site(free_port(), "", &members));
    let out = root.cli(&["configtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("modproxy enmod proxy_balancer"), "{err}");

    root.enable(&["lbmethod_byrequests"]);
    root.config(&site(free_port(), "lbmethod = \"bytraffic\"", &members));
    let out = root.cli(&["configtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("modproxy enmod lbmethod_bytraffic"), "{err}");

    root.enable(&["lbmethod_bytraffic"]);
    let ok = root.cli(&["configtest"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn byrequests_weights_1_2_3_4_give_apaches_schedule() {
    let b = backends(4);
    let members: Vec<_> = (0..4)
        .map(|i| member(&b[i].url(), &format!("loadfactor = {}", i + 1)))
        .collect();
    let (root, server) = serve(&["lbmethod_byrequests"], "", &members);
    let got = picks(server.port, "/", &[], 10);
    assert_eq!(
        got,
        names(&[3, 2, 1, 3, 0, 2, 3, 1, 2, 3]),
        "{}",
        root.log()
    );
}

#[test]
fn lower_lbset_first_and_the_next_only_when_it_has_nothing() {
    let b = backends(3);
    let members = [
        member(&b[0].url(), "lbset = 1"),
        member(&b[1].url(), "lbset = 0"),
        member(&b[2].url(), "lbset = 0"),
    ];
    let (_root, server) = serve(&["lbmethod_byrequests"], "", &members);
    assert_eq!(picks(server.port, "/", &[], 4), names(&[1, 2, 1, 2]));

    let members = [
        member(&b[0].url(), "lbset = 0, status = \"+D\""),
        member(&b[1].url(), "lbset = 1"),
        member(&b[2].url(), "lbset = 1"),
    ];
    let (_root, server) = serve(&["lbmethod_byrequests"], "", &members);
    assert_eq!(picks(server.port, "/", &[], 4), names(&[1, 2, 1, 2]));
}

#[test]
fn hot_standby_serves_only_when_no_ordinary_member_can() {
    let b = backends(3);
    let members = [
        member(&b[0].url(), "status = \"+H\""),
        member(&b[1].url(), ""),
        member(&b[2].url(), ""),
    ];
    let (_root, server) = serve(&["lbmethod_byrequests"], "", &members);
    assert_eq!(picks(server.port, "/", &[], 4), names(&[1, 2, 1, 2]));

    let members = [
        member(&b[0].url(), "status = \"+H\""),
        member(&b[1].url(), "status = \"+D\""),
        member(&b[2].url(), "status = \"+S\""),
    ];
    let (_root, server) = serve(&["lbmethod_byrequests"], "", &members);
    assert_eq!(picks(server.port, "/", &[], 3), names(&[0, 0, 0]));
}

#[test]
fn a_spare_replaces_one_unusable_member_and_a_second_spare_idles() {
    let b = backends(4);
    let members = [
        member(&b[0].url(), ""),
        member(&b[1].url(), "status = \"+D\""),
        member(&b[2].url(), "status = \"+R\""),
        member(&b[3].url(), "status = \"+R\""),
    ];
    let (_root, server) = serve(&["lbmethod_byrequests"], "", &members);
    assert_eq!(picks(server.port, "/", &[], 4), names(&[0, 2, 0, 2]));
    assert!(b[3].seen().is_empty() && b[1].seen().is_empty());
}

#[test]
fn a_draining_member_takes_no_new_sessions_but_keeps_its_own() {
    let b = backends(3);
    let members = [
        member(
            &b[0].url(),
            "loadfactor = 4, status = \"+N\", route = \"n0\"",
        ),
        member(&b[1].url(), "route = \"n1\""),
        member(&b[2].url(), "status = \"+R\", route = \"n2\""),
    ];
    let (_root, server) = serve(
        &["lbmethod_byrequests"],
        "sticky_session = \"SID\"",
        &members,
    );
    // Draining counts as unusable, so the spare steps in beside member 1.
    assert_eq!(picks(server.port, "/", &[], 4), names(&[1, 2, 1, 2]));
    let cookie = [("Cookie", "SID=abc.n0")];
    assert_eq!(picks(server.port, "/", &cookie, 2), names(&[0, 0]));
}

#[test]
fn bybusyness_sends_new_requests_past_a_member_that_is_still_busy() {
    // Set when the slow request arrives (Backend records it only once answered).
    let arrived = Arc::new(AtomicBool::new(false));
    let flag = arrived.clone();
    let slow = Backend::start(move |seen| {
        if seen.target == "/slow" {
            flag.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
        }
        (200, vec![], b"m0".to_vec())
    });
    let quick = Backend::text("m1");
    let members = [member(&slow.url(), ""), member(&quick.url(), "")];
    let (root, server) = serve(
        &["lbmethod_bybusyness"],
        "lbmethod = \"bybusyness\"",
        &members,
    );
    let port = server.port;
    // All idle: the first request goes to m0 and stays there a while.
    let held = std::thread::spawn(move || get(port, "/slow", &[]).map(|r| r.text()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !arrived.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "{}", root.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    // byrequests would alternate; bybusyness avoids the busy member.
    assert_eq!(
        picks(port, "/", &[], 3),
        names(&[1, 1, 1]),
        "{}",
        root.log()
    );
    assert_eq!(held.join().unwrap().unwrap(), "m0");
}

#[test]
fn bytraffic_sends_requests_to_the_member_that_moved_fewer_bytes() {
    let heavy = Backend::start(|_| (200, vec![], vec![b'x'; 20_000]));
    let light = Backend::text("m1");
    let members = [member(&heavy.url(), ""), member(&light.url(), "")];
    let (root, server) = serve(
        &["lbmethod_bytraffic"],
        "lbmethod = \"bytraffic\"",
        &members,
    );
    let got: Vec<usize> = picks(server.port, "/", &[], 5)
        .iter()
        .map(|body| if body == "m1" { 1 } else { 0 })
        .collect();
    // m0's first answer outweighs many of m1's, so m1 takes the next ones.
    assert_eq!(got, [0, 1, 1, 1, 1], "{}", root.log());
}

#[test]
fn proxy_pass_reverse_maps_every_members_url_back() {
    let port = free_port();
    let b: Vec<Backend> = (0..2)
        .map(|_| {
            Backend::start(|seen| {
                let host = seen.header("host").unwrap_or("").to_string();
                (
                    302,
                    vec![("Location".into(), format!("http://{host}/moved"))],
                    vec![],
                )
            })
        })
        .collect();
    let members = [member(&b[0].url(), ""), member(&b[1].url(), "")];
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_balancer", "lbmethod_byrequests"]);
    root.config(&site(port, "", &members));
    let _server = modproxy_tests::Server::start(&root, port);
    for _ in 0..2 {
        let r = get(port, "/x", &[]).unwrap();
        assert_eq!(r.status, 302, "{}", root.log());
        let location = r.header("location").unwrap_or("");
        assert_eq!(
            location,
            format!("http://127.0.0.1:{port}/moved"),
            "{}",
            root.log()
        );
    }
    assert_eq!((b[0].seen().len(), b[1].seen().len()), (1, 1));
}
