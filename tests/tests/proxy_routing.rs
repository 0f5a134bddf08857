//! Where requests go: `pass` prefix rules by path segment in order (first
//! match wins, `!` excludes), `pass_match` regexes with `$1`, a canonical
//! path and the query passed byte for byte, and forward proxying refused unless enabled.
//! Then the way back: `pass_reverse` on Location, Content-Location and URI,
//! and cookie domain and path rewriting.

use modproxy_tests::{get, send_raw, Backend, Proxied};

fn echo(name: &'static str) -> Backend {
    Backend::start(move |_| (200, vec![], name.as_bytes().to_vec()))
}

#[test]
fn pass_rules_match_whole_path_segments_in_order_and_the_first_match_wins() {
    let (a, b, c) = (echo("a"), echo("b"), echo("c"));
    let p = Proxied::start(&format!(
        "pass = [\n  {{ path = \"/app/private\", url = \"!\" }},\n  {{ path = \"/app\", url = \"{a}/a/\" }},\n  {{ path = \"/apple\", url = \"{b}/b\" }},\n  {{ path = \"/app/late\", url = \"{b}/never\" }},\n  {{ path = \"/\", url = \"{c}/\" }},\n]",
        a = a.url(),
        b = b.url(),
        c = c.url()
    ));
    let cases = [
        ("/app", "a", "/a/"),
        ("/app/x/y", "a", "/a/x/y"),
        ("/app/late/z", "a", "/a/late/z"),
        ("/apple", "b", "/b"),
        ("/apple/pie", "b", "/b/pie"),
        ("/appx", "c", "/appx"),
        ("/", "c", "/"),
    ];
    for (path, who, target) in cases {
        let r = get(p.port, path, &[]).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, who), "{path}");
        let backend = match who {
            "a" => &a,
            "b" => &b,
            _ => &c,
        };
        assert_eq!(
            backend.seen().last().unwrap().target,
            target,
            "{path} went to {who} as {target}"
        );
    }
    assert_eq!(b.seen().iter().filter(|s| s.target == "/never").count(), 0);
}

#[test]
fn an_exclamation_mark_url_excludes_a_path_that_a_later_rule_would_proxy() {
    let backend = echo("proxied");
    let p = Proxied::start(&format!(
        "pass = [{{ path = \"/static\", url = \"!\" }}, {{ path = \"/\", url = \"{}/\" }}]",
        backend.url()
    ));
    for path in [
        "/static",
        "/static/a.css",
        "/%73tatic/a.css",
        "//static/a.css",
    ] {
        let r = get(p.port, path, &[]).unwrap();
        assert_eq!(r.status, 404, "{path} is excluded, so the core answers");
    }
    let r = get(p.port, "/staticky", &[]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "proxied"));
    assert_eq!(
        backend.seen().len(),
        1,
        "only /staticky reached the backend"
    );
}

#[test]
fn pass_match_substitutes_captures_and_keeps_the_query() {
    let backend = echo("img");
    let p = Proxied::start(&format!(
        "pass_match = [{{ regex = '^/img/([a-z]+)/(.*)\\.png$', url = \"{u}/png/$2?kind=$1\" }}, {{ regex = '\\.gif$', url = \"{u}\" }}]",
        u = backend.url()
    ));
    let r = get(p.port, "/img/cats/tabby%20one.png", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", p.log());
    assert_eq!(backend.seen()[0].target, "/png/tabby%20one?kind=cats");
    // No $N in the url: the whole path is appended, as Apache does.
    get(p.port, "/x/y.gif?v=2", &[]).unwrap();
    assert_eq!(backend.seen()[1].target, "/x/y.gif?v=2");
    assert_eq!(get(p.port, "/img/cats/a.jpg", &[]).unwrap().status, 404);
}

#[test]
fn query_strings_and_canonical_paths_reach_the_backend_byte_for_byte() {
    let backend = echo("ok");
    let p = Proxied::start(&format!(
        "pass = [{{ path = \"/api\", url = \"{}/v1\" }}]",
        backend.url()
    ));
    // Paths already in the canonical form the core gives them (see
    // proxy_paths.rs for the others), and queries as they come.
    let cases = [
        ("/api/a%20b/c%5Cd", "/v1/a%20b/c%5Cd"),
        ("/api/%2541/%25", "/v1/%2541/%25"),
        (
            "/api/caf%C3%A9?q=%2F%3F%26&x=a+b&&=",
            "/v1/caf%C3%A9?q=%2F%3F%26&x=a+b&&=",
        ),
        ("/api?only=query", "/v1?only=query"),
        ("/api/x;p=1/y", "/v1/x;p=1/y"),
    ];
    for (sent, want) in cases {
        let r = get(p.port, sent, &[]).unwrap();
        assert_eq!(r.status, 200, "{sent}: {}", p.log());
        assert_eq!(backend.seen().last().unwrap().target, want, "{sent}");
    }
}

#[test]
fn forward_proxy_requests_are_refused_unless_forwarding_is_enabled() {
    let backend = echo("origin");
    let p = Proxied::start(&format!(
        "pass = [{{ path = \"/\", url = \"{}/\" }}]",
        backend.url()
    ));
    let req = format!(
        "GET {}/secret HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        backend.url(),
        backend.port
    );
    let raw = send_raw(p.port, req.as_bytes()).unwrap();
    let r = modproxy_tests::client::parse(&raw).unwrap();
    assert_eq!(r.status, 403, "never an open proxy: {}", r.text());
    assert!(backend.seen().is_empty(), "nothing reached the origin");
    assert!(p.log().contains("forward proxying is off"), "{}", p.log());

    let open = Proxied::start("forward = true");
    let raw = send_raw(open.port, req.as_bytes()).unwrap();
    let r = modproxy_tests::client::parse(&raw).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "origin"),
        "{}",
        open.log()
    );
    assert_eq!(backend.seen()[0].target, "/secret");
}

#[test]
fn pass_reverse_rewrites_location_content_location_and_uri() {
    let backend = Backend::start(|s| {
        let b = format!("http://127.0.0.1:{}", s.header("x-port").unwrap_or("0"));
        (
            302,
            vec![
                ("Location".into(), format!("{b}/app/login?next=%2F")),
                ("Content-Location".into(), format!("{b}/app/doc")),
                ("URI".into(), format!("{b}/app/")),
                ("Link".into(), format!("<{b}/app/x>")),
            ],
            vec![],
        )
    });
    let p = Proxied::start(&format!(
        "pass = [{{ path = \"/pub\", url = \"{u}/app\" }}]\npass_reverse = [{{ path = \"/pub\", url = \"{u}/app\" }}]",
        u = backend.url()
    ));
    let port = backend.port.to_string();
    let r = get(p.port, "/pub/x", &[("X-Port", &port)]).unwrap();
    assert_eq!(r.status, 302);
    let me = format!("http://127.0.0.1:{}", p.port);
    assert_eq!(
        r.header("location").unwrap(),
        format!("{me}/pub/login?next=%2F")
    );
    assert_eq!(
        r.header("content-location").unwrap(),
        format!("{me}/pub/doc")
    );
    assert_eq!(r.header("uri").unwrap(), format!("{me}/pub/"));
    assert_eq!(
        r.header("link").unwrap(),
        format!("<{}/app/x>", backend.url()),
        "other headers are left alone"
    );
}

#[test]
fn cookie_domains_and_paths_are_rewritten_for_the_client() {
    let backend = Backend::start(|_| {
        (
            200,
            vec![
                (
                    "Set-Cookie".into(),
                    "sid=1; Domain=backend.local; Path=/app/x; HttpOnly".into(),
                ),
                ("Set-Cookie".into(), "pref=2; path=/app".into()),
                (
                    "Set-Cookie".into(),
                    "other=3; Domain=elsewhere.org; Path=/z".into(),
                ),
            ],
            b"ok".to_vec(),
        )
    });
    let p = Proxied::start(&format!(
        "pass = [{{ path = \"/\", url = \"{}/app/\" }}]\npass_reverse_cookie_domain = [{{ internal = \"backend.local\", public = \"example.com\" }}]\npass_reverse_cookie_path = [{{ internal = \"/app/\", public = \"/\" }}]",
        backend.url()
    ));
    let r = get(p.port, "/", &[]).unwrap();
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        cookies,
        [
            "sid=1; Domain=example.com; Path=/x; HttpOnly",
            "pref=2; path=/",
            "other=3; Domain=elsewhere.org; Path=/z"
        ]
    );
}
