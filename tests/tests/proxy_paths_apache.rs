//! modproxy beside a real Apache 2.4 (Debian's apache2) with the same
//! ProxyPass rules: the same raw request targets through both, compared by
//! status and by the request line their backends received. Where modproxy
//! differs on purpose, [`DIFFERENCES`] says what it does instead and why
//! (docs/reliability.md, "Paths against Apache", says it too).

use modproxy_tests::figures::Figure;
use modproxy_tests::{client, free_port, send_raw, Apache, Backend, Server, ServerRoot};

/// A vhost's `allow_encoded_slashes` (Apache's AllowEncodedSlashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slashes {
    Off,
    NoDecode,
    On,
}

const MODES: [Slashes; 3] = [Slashes::Off, Slashes::NoDecode, Slashes::On];

use Slashes::{NoDecode, Off, On};

/// Request lines (without the version), each sent to the vhost of its
/// mode. Rules everywhere: `/static` excluded, `/app/` → `/api/`, `/` → `/`.
const SHAPES: &[(Slashes, &str)] = &[
    // The table.
    (Off, "GET /a/./b"),
    (Off, "GET /app/./z"),
    (Off, "GET /static/../app/q"),
    (Off, "GET /%41pp/q"),
    (Off, "GET /app/%2fetc"),
    (Off, "GET *"),
    // Asterisk-form.
    (Off, "OPTIONS *"),
    (Off, "HEAD *"),
    // Dot segments, plain and encoded, above the root.
    (Off, "GET /.."),
    (Off, "GET /../x"),
    (Off, "GET /a/../../x"),
    (Off, "GET /app/%2e%2e/x"),
    (Off, "GET /app/%2E%2e/x"),
    (Off, "GET /app/.%2e/y"),
    (Off, "GET /app/%2E/x"),
    (Off, "GET /app/x/.."),
    (Off, "GET /app/x/."),
    (Off, "GET /app/.."),
    (Off, "GET /app/..."),
    (Off, "GET /a/b/../../app/x"),
    (Off, "HEAD /app/./x"),
    // Slash runs.
    (Off, "GET //app/x"),
    (Off, "GET /app//x"),
    (Off, "GET ///x"),
    // Queries are never touched; fragments are refused.
    (Off, "GET /app/x?a=/../b"),
    (Off, "GET /app/x?%2e%2e&b=%2F"),
    (Off, "GET /app?x"),
    (Off, "GET /app/x#frag"),
    (Off, "GET /app/x?q#frag"),
    // Escapes: decoded, re-encoded, malformed.
    (Off, "GET /app/%7euser"),
    (Off, "GET /app/caf%c3%a9"),
    (Off, "GET /app/café"),
    (Off, "GET /app/a%20b"),
    (Off, "GET /app/a%25b"),
    (Off, "GET /app/%252e%252e/x"),
    (Off, "GET /app/a%2"),
    (Off, "GET /app/a%zz"),
    (Off, "GET /app/%00"),
    (Off, "GET /app/a[b]c\"d"),
    (Off, "GET /app/$!*'(),&=+:@;"),
    (Off, "GET /app/%24%21%2a%3a%40%3b%2b"),
    (Off, "GET /app/%3f%23%3C%7f"),
    (Off, "GET /app/a;b=c/d"),
    (Off, "GET /app/a\\b"),
    (Off, "GET /app/a%5cb"),
    (Off, "GET /app"),
    (Off, "OPTIONS /app/x"),
    // The exclusion, spelled otherwise.
    (Off, "GET /static/x"),
    (Off, "GET /%73tatic/x"),
    (Off, "GET //static/x"),
    (Off, "GET /./static/x"),
    (Off, "GET /app/../static/x"),
    (Off, "GET /static;x/a.css"),
    (Off, "GET /%5cstatic/x"),
    // Dot segments only some backends see.
    (Off, "GET /app/..;x/y"),
    (Off, "GET /app/..%3bx/y"),
    (Off, "GET /app/.;x"),
    (Off, "GET /app\\..\\static"),
    // Absolute-form.
    (Off, "GET http://proxy.test/a/../b"),
    // allow_encoded_slashes = "nodecode" (AllowEncodedSlashes NoDecode).
    (NoDecode, "GET /app/%2fetc"),
    (NoDecode, "GET /app/a%2fb%2F"),
    (NoDecode, "GET /app/%00"),
    (NoDecode, "GET /app/x/..%2f..%2fy"),
    (NoDecode, "GET /app/..%2fstatic"),
    (NoDecode, "GET /app/%2e%2e%2fx"),
    (NoDecode, "GET /app%2f..%2fstatic/x"),
    (NoDecode, "GET /static%2fx"),
    // allow_encoded_slashes = true (AllowEncodedSlashes On).
    (On, "GET /app/%2fetc"),
    (On, "GET /app/a%2fb%2F"),
    (On, "GET /app/x/..%2f..%2fy"),
    (On, "GET /app/..%2fstatic"),
    (On, "GET /app%2f..%2fstatic/x"),
    (On, "GET /static%2fx"),
    (On, "GET /app/..%2f..%2f..%2fy"),
];

/// (mode, request line, Apache's outcome, modproxy's, why modproxy
/// differs). An outcome is the status and the request line the backend
/// got (`-` when nothing reached it).
type Difference = (
    Slashes,
    &'static str,
    Outcome<'static>,
    Outcome<'static>,
    &'static str,
);
type Outcome<'a> = (u16, &'a str);

const HIDDEN_DOTS: &str = "a dot segment Apache does not resolve but a backend may (;params dropped, \\ or %2f read as /): it would escape the prefix";
const HIDDEN_EXCLUSION: &str =
    "the excluded prefix, as a backend may read it (;params dropped, \\ or %2f read as /)";

const DIFFERENCES: &[Difference] = &[
    (Off, "GET /app/..;x/y", (200, "GET /api/..;x/y"), (400, "-"), HIDDEN_DOTS),
    (Off, "GET /app/..%3bx/y", (200, "GET /api/..;x/y"), (400, "-"), HIDDEN_DOTS),
    (Off, "GET /app/.;x", (200, "GET /api/.;x"), (400, "-"), HIDDEN_DOTS),
    (Off, "GET /app\\..\\static", (200, "GET /app%5C..%5Cstatic"), (400, "-"), HIDDEN_DOTS),
    (Off, "GET /static;x/a.css", (200, "GET /static;x/a.css"), (404, "-"), HIDDEN_EXCLUSION),
    (Off, "GET /%5cstatic/x", (200, "GET /%5Cstatic/x"), (404, "-"), HIDDEN_EXCLUSION),
    (
        Off,
        "GET http://proxy.test/a/../b",
        (200, "GET /b"),
        (403, "-"),
        "an absolute-form target is a forward-proxy request here, refused while forward = false (Apache serves one naming itself as a local path)",
    ),
    (NoDecode, "GET /app/x/..%2f..%2fy", (200, "GET /api/x/..%2f..%2fy"), (400, "-"), HIDDEN_DOTS),
    (NoDecode, "GET /app/..%2fstatic", (200, "GET /api/..%2fstatic"), (400, "-"), HIDDEN_DOTS),
    (NoDecode, "GET /app/%2e%2e%2fx", (200, "GET /api/..%2fx"), (400, "-"), HIDDEN_DOTS),
    (NoDecode, "GET /app%2f..%2fstatic/x", (200, "GET /app%2f..%2fstatic/x"), (400, "-"), HIDDEN_DOTS),
    (NoDecode, "GET /static%2fx", (200, "GET /static%2fx"), (404, "-"), HIDDEN_EXCLUSION),
    (
        On,
        "GET /app/..%2f..%2f..%2fy",
        (200, "GET /y"),
        (400, "-"),
        "a .. above the root is 400 however it is spelled (Apache clamps it at the root when it came from a decoded %2f)",
    ),
];

/// The same rules for both servers.
fn apache_directives(mode: Slashes, backend: &Backend) -> String {
    let allow = match mode {
        Off => "Off",
        NoDecode => "NoDecode",
        On => "On",
    };
    format!(
        "AllowEncodedSlashes {allow}\nProxyPass /static !\nProxyPass /app/ {u}/api/\nProxyPass / {u}/\n",
        u = backend.url()
    )
}

fn modproxy_vhost(mode: Slashes, port: u16, backend: &Backend) -> String {
    let allow = match mode {
        Off => "false",
        NoDecode => "\"nodecode\"",
        On => "true",
    };
    format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"proxy.test\"\nallow_encoded_slashes = {allow}\n\n[vhost.proxy]\npass = [\n  {{ path = \"/static\", url = \"!\" }},\n  {{ path = \"/app/\", url = \"{u}/api/\" }},\n  {{ path = \"/\", url = \"{u}/\" }},\n]\n\n",
        u = backend.url()
    )
}

/// One server under test: its port per mode and the backend it forwards to.
struct Side {
    ports: Vec<(Slashes, u16)>,
    backend: Backend,
}

impl Side {
    fn new() -> Side {
        let ports = MODES.iter().map(|&m| (m, free_port())).collect();
        Side {
            ports,
            backend: Backend::start(|_| (200, vec![], b"ok".to_vec())),
        }
    }

    fn port(&self, mode: Slashes) -> u16 {
        self.ports.iter().find(|(m, _)| *m == mode).unwrap().1
    }

    /// The status for `line`, and the request line the backend got.
    fn outcome(&self, mode: Slashes, line: &str) -> (u16, String) {
        let before = self.backend.seen().len();
        let req = format!("{line} HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n");
        let raw = send_raw(self.port(mode), req.as_bytes()).expect("an answer");
        let status = client::parse(&raw).map_or(0, |r| r.status);
        let seen = self.backend.seen();
        let got = match seen.get(before..) {
            Some([s]) => format!("{} {}", s.method, s.target),
            Some([]) | None => "-".to_string(),
            Some(more) => format!("{} requests", more.len()),
        };
        (status, got)
    }
}

#[test]
fn request_paths_reach_the_backend_as_apache_sends_them_or_the_difference_is_listed() {
    let (apache_side, ours) = (Side::new(), Side::new());
    let vhosts: Vec<(u16, String)> = MODES
        .iter()
        .map(|&m| {
            (
                apache_side.port(m),
                apache_directives(m, &apache_side.backend),
            )
        })
        .collect();
    let apache = Apache::start(&vhosts);
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let config: String = MODES
        .iter()
        .map(|&m| modproxy_vhost(m, ours.port(m), &ours.backend))
        .collect();
    root.config(&config);
    let _server = Server::start(&root, ours.port(Off));

    let (mut equal, mut listed, mut wrong) = (0, Vec::new(), Vec::new());
    for &(mode, line) in SHAPES {
        let theirs = apache_side.outcome(mode, line);
        let mine = ours.outcome(mode, line);
        let difference = DIFFERENCES.iter().find(|d| d.0 == mode && d.1 == line);
        let as_owned = |o: Outcome| (o.0, o.1.to_string());
        match difference {
            None if theirs == mine => equal += 1,
            Some(d) if theirs == as_owned(d.2) && mine == as_owned(d.3) => listed.push(line),
            _ => wrong.push(format!(
                "{mode:?} {line:?}: Apache {theirs:?}, modproxy {mine:?}{}",
                difference.map_or(String::new(), |d| format!(
                    " (listed: {:?} vs {:?})",
                    d.2, d.3
                ))
            )),
        }
    }
    for d in DIFFERENCES {
        assert!(
            SHAPES.contains(&(d.0, d.1)),
            "{:?} is listed as a difference but never sent",
            d.1
        );
    }
    Figure {
        id: "3e",
        scenario: "Request paths against Apache 2.4".into(),
        test: "proxy_paths_apache.rs::request_paths_reach_the_backend_as_apache_sends_them_or_the_difference_is_listed",
        tried: format!(
            "{} raw request targets through Apache and modproxy, same rules (`/static` excluded, `/app/` → `/api/`, `/` → `/`), AllowEncodedSlashes Off, NoDecode and On",
            SHAPES.len()
        ),
        outcome: format!(
            "{equal} equal (status and backend request line); {} differ as listed: {}",
            listed.len(),
            listed.join(", ")
        ),
        sent: SHAPES.len() as u64,
        failed: wrong.len() as u64,
        lost: 0,
        recovery_ms: None,
    }
    .record();
    assert!(
        wrong.is_empty(),
        "{} of {} shapes neither equal nor as listed:\n{}\nApache's log:\n{}\nmodproxy's log:\n{}",
        wrong.len(),
        SHAPES.len(),
        wrong.join("\n"),
        apache.log(),
        root.log()
    );
    assert!(SHAPES.len() >= 40 && equal + listed.len() == SHAPES.len());
}
