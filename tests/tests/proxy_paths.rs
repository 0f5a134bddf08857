//! Request paths as Apache handles them, through the real binary: `.` and
//! `..` resolved and unreserved escapes decoded before matching, encoded
//! slashes per `allow_encoded_slashes`, `*` for OPTIONS only, and no
//! spelling of a path that reaches an excluded prefix or escapes a pass
//! prefix. The comparison with Apache itself is proxy_paths_apache.rs.

use modproxy_tests::{client, send_raw, Backend, Proxied, ServerRoot};

const RULES: &str = "pass = [\n  { path = \"/static\", url = \"!\" },\n  { path = \"/app/\", url = \"BACKEND/api/\" },\n  { path = \"/\", url = \"BACKEND/\" },\n]";

fn backend() -> Backend {
    Backend::start(|_| (200, vec![], b"ok".to_vec()))
}

fn proxy(vhost: &str, backend: &Backend) -> Proxied {
    Proxied::on_vhost(vhost, &RULES.replace("BACKEND", &backend.url()))
}

/// The status of `METHOD target`, and the target the backend got (`-`
/// when the request never reached it).
fn send(p: &Proxied, b: &Backend, line: &str) -> (u16, String) {
    let before = b.seen().len();
    let req = format!("{line} HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n");
    let raw = send_raw(p.port, req.as_bytes()).unwrap();
    let status = client::parse(&raw).map_or(0, |r| r.status);
    let seen = b.seen();
    let target = seen.get(before).map_or("-".into(), |s| s.target.clone());
    (status, target)
}

fn check(p: &Proxied, b: &Backend, cases: &[(&str, u16, &str)]) {
    for &(line, status, target) in cases {
        assert_eq!(
            send(p, b, line),
            (status, target.to_string()),
            "{line}\n{}",
            p.log()
        );
    }
}

#[test]
fn dot_segments_are_resolved_before_matching_and_above_the_root_is_400() {
    let b = backend();
    let p = proxy("", &b);
    check(
        &p,
        &b,
        &[
            ("GET /a/./b", 200, "/a/b"),
            ("GET /app/./z", 200, "/api/z"),
            ("GET /static/../app/q", 200, "/api/q"),
            ("GET /app/x/..?q=/../y", 200, "/api/?q=/../y"),
            ("GET //app//x", 200, "/api/x"),
            ("GET /app/%2E%2e/x", 200, "/x"),
            ("GET /..", 400, "-"),
            ("GET /a/../../x", 400, "-"),
            ("GET /app/a%2", 400, "-"),
            ("GET /app/x#f", 400, "-"),
        ],
    );
    assert!(
        p.log().contains("\"GET /static/../app/q HTTP/1.1\" 200"),
        "the access log keeps the path as received:\n{}",
        p.log()
    );
}

#[test]
fn unreserved_escapes_are_decoded_before_matching_and_the_rest_re_encoded() {
    let b = backend();
    let p = proxy("", &b);
    check(
        &p,
        &b,
        &[
            ("GET /%41pp/q", 200, "/App/q"),
            ("GET /%61pp/q", 200, "/api/q"),
            ("GET /app/%7euser", 200, "/api/~user"),
            ("GET /app/a%3ab%2B", 200, "/api/a:b+"),
            ("GET /app/caf%c3%a9", 200, "/api/caf%C3%A9"),
            ("GET /app/a\\b%25", 200, "/api/a%5Cb%25"),
        ],
    );
}

#[test]
fn an_encoded_slash_is_404_unless_the_vhost_allows_it() {
    let b = backend();
    let off = proxy("", &b);
    check(
        &off,
        &b,
        &[("GET /app/%2fetc", 404, "-"), ("GET /app/a%2Fb", 404, "-")],
    );
    assert!(
        off.log()
            .contains("allow_encoded_slashes = true or \"nodecode\" would"),
        "{}",
        off.log()
    );
    let on = proxy("allow_encoded_slashes = true", &b);
    check(
        &on,
        &b,
        &[
            ("GET /app/%2fetc", 200, "/api/etc"),
            ("GET /app/a%2Fb", 200, "/api/a/b"),
            ("GET /app/..%2fstatic", 404, "-"),
        ],
    );
    let nodecode = proxy("allow_encoded_slashes = \"nodecode\"", &b);
    check(
        &nodecode,
        &b,
        &[
            ("GET /app/%2fetc", 200, "/api/%2fetc"),
            ("GET /app/a%2Fb", 200, "/api/a%2Fb"),
            ("GET /app/..%2fstatic", 400, "-"),
            ("GET /static%2Fx", 404, "-"),
        ],
    );
}

#[test]
fn a_bad_allow_encoded_slashes_is_a_config_error_saying_what_to_write() {
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    root.config("[[vhost]]\nlisten = \"127.0.0.1:1\"\nallow_encoded_slashes = \"yes\"\n");
    let out = root.cli(&["configtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("vhost[0].allow_encoded_slashes: \"yes\" is not a setting")
            && err.contains("write allow_encoded_slashes = false")
            && err.contains("\"nodecode\""),
        "{err}"
    );
}

#[test]
fn an_asterisk_target_is_for_options_only() {
    let b = backend();
    let p = proxy("", &b);
    check(
        &p,
        &b,
        &[
            ("OPTIONS *", 200, "-"),
            ("GET *", 400, "-"),
            ("HEAD *", 400, "-"),
        ],
    );
}

#[test]
fn no_spelling_reaches_an_excluded_prefix_or_escapes_a_pass_prefix() {
    let b = backend();
    for vhost in [
        "",
        "allow_encoded_slashes = true",
        "allow_encoded_slashes = \"nodecode\"",
    ] {
        let p = proxy(vhost, &b);
        for line in [
            "GET /%73tatic/x",
            "GET //static/x",
            "GET /./static/x",
            "GET /app/../static/x",
            "GET /app/%2e%2E/static/x",
            "GET /static;x/a.css",
            "GET /%5cstatic/x",
            "GET /\\static/x",
        ] {
            assert_eq!(send(&p, &b, line), (404, "-".into()), "{vhost}: {line}");
        }
        for line in [
            "GET /app/..;x/y",
            "GET /app/..%3Bx/y",
            "GET /app/.;x",
            "GET /app/x\\..\\..\\static",
            "GET /app/x%5c..%5c..%5cstatic",
        ] {
            assert_eq!(send(&p, &b, line), (400, "-".into()), "{vhost}: {line}");
        }
    }
}
