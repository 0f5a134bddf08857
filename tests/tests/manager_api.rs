//! The balancer manager's JSON API through real requests: the state it
//! shows, the changes it makes (seen in where traffic goes), its CSRF
//! protection (a forged POST changes nothing) and its loopback-only default.

use modproxy_tests::balancer::{member, picks, site};
use modproxy_tests::{free_port, get, request, Backend, Server, ServerRoot};

const MANAGER: &str = "\n[vhost.balancer_manager]\npath = \"/balancer-manager\"\n";

/// Two members answering `m0` and `m1` behind `balancer://c`, with the
/// manager mapped by `manager` (TOML appended to the vhost).
fn serve(manager: &str, listen: &str) -> (ServerRoot, Server, [Backend; 2]) {
    let b = [Backend::text("m0"), Backend::text("m1")];
    let root = ServerRoot::new();
    root.enable(&[
        "proxy_http",
        "proxy_balancer",
        "lbmethod_byrequests",
        "lbmethod_bybusyness",
    ]);
    let port = free_port();
    let members = [member(&b[0].url(), ""), member(&b[1].url(), "")];
    let config = site(port, "", &members).replacen(
        &format!("127.0.0.1:{port}"),
        &format!("{listen}:{port}"),
        1,
    );
    root.config(&format!("{config}{manager}"));
    let server = Server::start(&root, port);
    (root, server, b)
}

/// The value of `"key":` in a flat JSON text, from `from` on.
fn field<'a>(json: &'a str, from: usize, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = json[from..]
        .find(&pat)
        .map(|i| from + i + pat.len())
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at..];
    if let Some(s) = rest.strip_prefix('"') {
        &s[..s.find('"').unwrap()]
    } else {
        &rest[..rest.find([',', '}', ']']).unwrap()]
    }
}

/// A member's `key` in the API's state.
fn member_field(json: &str, url: &str, key: &str) -> String {
    let at = json
        .find(&format!("\"url\":\"{url}\""))
        .unwrap_or_else(|| panic!("no member {url} in {json}"));
    field(json, at, key).to_string()
}

fn state(port: u16) -> String {
    let r = get(port, "/balancer-manager/api", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.text()
}

fn post(port: u16, headers: &[(&str, &str)], body: &str) -> modproxy_tests::Response {
    let mut h = vec![
        ("Content-Type", "application/json"),
        ("Connection", "close"),
    ];
    h.extend_from_slice(headers);
    request(port, "POST", "/balancer-manager/api", &h, body.as_bytes()).unwrap()
}

fn change(port: u16, token: &str, body: &str) -> modproxy_tests::Response {
    post(port, &[("X-Modproxy-Token", token)], body)
}

#[test]
fn json_api_shows_the_members_and_its_changes_steer_traffic() {
    let (root, server, b) = serve(MANAGER, "127.0.0.1");
    let port = server.port;
    let (u0, u1) = (b[0].url(), b[1].url());
    assert_eq!(picks(port, "/", &[], 2), ["m0", "m1"], "{}", root.log());
    let s = state(port);
    assert_eq!(field(&s, 0, "lbmethod"), "byrequests", "{s}");
    assert!(
        s.contains("\"lbmethods\":[\"bybusyness\",\"byrequests\"]"),
        "{s}"
    );
    for key in [
        "route",
        "loadfactor",
        "lbset",
        "status",
        "elected",
        "busy",
        "lbstatus",
        "bytes_to",
        "bytes_from",
        "last_error",
        "health",
        "sticky_session",
        "nofailover",
    ] {
        assert!(s.contains(&format!("\"{key}\":")), "{key} missing: {s}");
    }
    assert_eq!(member_field(&s, &u0, "elected"), "1");
    assert_eq!(member_field(&s, &u1, "state"), "ok");
    assert_eq!(
        get(port, "/balancer-manager?json", &[]).unwrap().status,
        200
    );
    let token = field(&s, 0, "token").to_string();
    assert_eq!(token.len(), 32);

    let r = change(
        port,
        &token,
        &format!(r#"{{"balancer":"c","member":"{u0}","set":{{"status":"+D"}}}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(member_field(&r.text(), &u0, "state"), "disabled");
    assert_eq!(
        picks(port, "/", &[], 4),
        ["m1"; 4],
        "disabled member gets nothing"
    );
    let r = change(
        port,
        &token,
        &format!(r#"{{"balancer":"c","member":"{u0}","set":{{"status":"-D"}}}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut got = picks(port, "/", &[], 4);
    got.sort();
    assert_eq!(got, ["m0", "m0", "m1", "m1"]);

    let r = change(
        port,
        &token,
        &format!(
            r#"{{"balancer":"c","member":"{u1}","set":{{"loadfactor":3,"lbset":1,"route":"r1"}}}}"#
        ),
    );
    let s = r.text();
    assert_eq!(
        (
            member_field(&s, &u1, "loadfactor"),
            member_field(&s, &u1, "lbset"),
            member_field(&s, &u1, "route")
        ),
        ("3".into(), "1".into(), "r1".into()),
        "{s}"
    );
    assert_eq!(
        picks(port, "/", &[], 3),
        ["m0"; 3],
        "lbset 1 only when set 0 cannot serve"
    );
    let r = change(port, &token, r#"{"balancer":"c","lbmethod":"bybusyness"}"#);
    assert_eq!(
        field(&r.text(), 0, "lbmethod"),
        "bybusyness",
        "{}",
        r.text()
    );

    for (body, status, says) in [
        (
            r#"{"balancer":"c","lbmethod":"bytraffic"}"#.to_string(),
            400,
            "run `modproxy enmod lbmethod_bytraffic`, and `modproxy restart`",
        ),
        (
            r#"{"balancer":"nope","lbmethod":"byrequests"}"#.to_string(),
            404,
            "no balancer named",
        ),
        (
            format!(r#"{{"balancer":"c","member":"{u0}","set":{{"loadfactor":0}}}}"#),
            400,
            "1 to 100",
        ),
        (
            format!(r#"{{"balancer":"c","member":"{u0}","set":{{"status":"+E"}}}}"#),
            400,
            "cannot be changed",
        ),
        ("not json".to_string(), 400, "not a change"),
    ] {
        let r = change(port, &token, &body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
    let page = get(port, "/balancer-manager", &[]).unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains(&format!("content=\"{token}\"")),
        "the page carries the token"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
}

#[test]
fn a_forged_post_changes_nothing() {
    let (root, server, b) = serve(MANAGER, "127.0.0.1");
    let port = server.port;
    let s = state(port);
    let token = field(&s, 0, "token").to_string();
    let disable = format!(
        r#"{{"balancer":"c","member":"{}","set":{{"status":"+D"}}}}"#,
        b[0].url()
    );
    let forgeries: [&[(&str, &str)]; 5] = [
        &[],
        &[("X-Modproxy-Token", "00000000000000000000000000000000")],
        &[("X-Modproxy-Token", &token[..31])],
        &[
            ("X-Modproxy-Token", &token),
            ("Origin", "http://evil.example"),
        ],
        &[
            ("X-Modproxy-Token", &token),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    ];
    for headers in forgeries {
        let r = post(port, headers, &disable);
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
    }
    // A form post from another site's page: no custom header is possible.
    let r = request(
        port,
        "POST",
        "/balancer-manager/api",
        &[("Content-Type", "text/plain"), ("Connection", "close")],
        disable.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        member_field(&state(port), &b[0].url(), "state"),
        "ok",
        "{}",
        root.log()
    );
    let mut got = picks(port, "/", &[], 2);
    got.sort();
    assert_eq!(got, ["m0", "m1"], "both members still serve");
    assert!(
        !root.dir.join("balancer-state.json").exists(),
        "nothing was saved"
    );
    // The same request with the token and this site's Origin is accepted.
    let origin = format!("http://127.0.0.1:{port}");
    let r = post(
        port,
        &[("X-Modproxy-Token", &token), ("Origin", &origin)],
        &disable,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// An address of this machine that is not loopback, if it has one.
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Sends `bytes` to `ip:port` and returns the response's text.
fn send_raw_to(ip: std::net::IpAddr, port: u16, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((ip, port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn manager_is_off_unless_mapped_and_loopback_only_unless_allowed() {
    // Not mapped: the path is proxied like any other.
    let (_root, server, _b) = serve("", "127.0.0.1");
    assert_eq!(
        get(server.port, "/balancer-manager", &[]).unwrap().text(),
        "m0"
    );
    drop(server);

    // allow names another network: loopback is refused, the site still serves.
    let only_ten = "\n[vhost.balancer_manager]\npath = \"/balancer-manager\"\nmetrics = \"/metrics\"\nallow = [\"10.0.0.0/8\"]\n";
    let (root, server, _b) = serve(only_ten, "127.0.0.1");
    for path in ["/balancer-manager", "/balancer-manager/api", "/metrics"] {
        let r = get(server.port, path, &[]).unwrap();
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    assert!(
        root.log().contains("not in [vhost.balancer_manager] allow"),
        "{}",
        root.log()
    );
    assert_eq!(picks(server.port, "/", &[], 1), ["m0"]);
    drop(server);

    // The default admits loopback only: a client on this machine's own
    // non-loopback address is refused.
    let (_root, server, _b) = serve(MANAGER, "0.0.0.0");
    assert_eq!(
        get(server.port, "/balancer-manager/api", &[])
            .unwrap()
            .status,
        200
    );
    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback address on this machine; the remote-client half is skipped");
        return;
    };
    let r = send_raw_to(
        ip,
        server.port,
        b"GET /balancer-manager/api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{ip}: {r}");
    let r = send_raw_to(
        ip,
        server.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{ip}: {r}");
}
