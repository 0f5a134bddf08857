//! WebSocket tunnels through proxy_wstunnel to a real echo backend: text,
//! binary, ping/pong, close and 1 MiB messages over `ws://` targets and
//! `upgrade = "websocket"` on an http:// pass; upgrades refused (400)
//! where not configured; 1,000 tunnels open at once; open tunnels hold
//! their `limits.max_connections` slots until they close; fields a
//! Connection names stop at the proxy both ways, and X-Forwarded-* are
//! proxy_http's.

#[path = "support/ws.rs"]
mod ws;

use modproxy_tests::{free_port, get, Backend, Conn, Server, ServerRoot};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::http::HeaderValue;
use tungstenite::Message;
use ws::EchoBackend;

/// proxy, proxy_http and proxy_wstunnel, with `pass` as given.
fn proxy(pass: &str, top: &str) -> (ServerRoot, Server, u16) {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_wstunnel"]);
    let port = free_port();
    root.config(&format!(
        "{top}\n[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"proxy.test\"\n[vhost.proxy]\npass = [{pass}]\n"
    ));
    let server = Server::start(&root, port);
    (root, server, port)
}

fn exercise(ws: &mut ws::Client) {
    assert_eq!(
        ws::round_trip(ws, Message::text("héllo")),
        Message::text("héllo")
    );
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(
        ws::round_trip(ws, Message::binary(bytes.clone())),
        Message::binary(bytes)
    );
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        ws::round_trip(ws, Message::binary(big.clone())),
        Message::binary(big),
        "a 1 MiB message comes back intact"
    );
    let text = "x".repeat(1024 * 1024);
    assert_eq!(
        ws::round_trip(ws, Message::text(text.clone())),
        Message::text(text)
    );
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("closing: {e}"),
        }
    }
}

#[test]
fn text_binary_ping_close_and_big_messages_through_ws_and_upgrade_targets() {
    let echo = EchoBackend::start();
    let (root, _server, port) = proxy(
        &format!(
            "{{ path = \"/ws/\", url = \"ws://127.0.0.1:{p}/echo/\" }}, \
             {{ path = \"/app/\", url = \"http://127.0.0.1:{p}/app/\", upgrade = \"websocket\" }}",
            p = echo.port
        ),
        "",
    );
    let mut a = ws::connect(port, "/ws/room").unwrap_or_else(|e| panic!("{e}\n{}", root.log()));
    exercise(&mut a);
    let mut b = ws::connect(port, "/app/x").unwrap();
    exercise(&mut b);
    let seen = echo.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        ("/echo/room".to_string(), Some("http".to_string()))
    );
    assert_eq!(seen[1].0, "/app/x");
}

#[test]
fn upgrades_are_refused_where_not_configured_and_plain_requests_still_work() {
    let echo = EchoBackend::start();
    let (_root, _server, port) = proxy(
        &format!(
            "{{ path = \"/\", url = \"http://127.0.0.1:{}/\" }}",
            echo.port
        ),
        "",
    );
    match ws::connect(port, "/chat") {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected a 400, got {:?}", other.map(|_| ())),
    }
    // The echo backend is no HTTP server, but the refusal never reached it.
    assert!(echo.seen.lock().unwrap().is_empty());
    // A plain request on the same pass is proxied as usual.
    let plain = get(port, "/", &[]).unwrap();
    assert_ne!(plain.status, 400, "only the upgrade was refused");
}

#[test]
fn a_thousand_tunnels_at_once() {
    let echo = EchoBackend::start();
    let (root, _server, port) = proxy(
        &format!(
            "{{ path = \"/\", url = \"ws://127.0.0.1:{}/\" }}",
            echo.port
        ),
        "",
    );
    let started = Instant::now();
    let mut sockets = Vec::new();
    for i in 0..1000 {
        let ws = ws::connect(port, &format!("/s{i}"))
            .unwrap_or_else(|e| panic!("socket {i}: {e}\n{}", root.log()));
        sockets.push(ws);
    }
    // All open at once: each echoes its own message.
    for (i, ws) in sockets.iter_mut().enumerate() {
        ws.send(Message::text(format!("m{i}"))).unwrap();
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        loop {
            match ws.read().unwrap() {
                Message::Text(t) => {
                    assert_eq!(t.as_str(), format!("m{i}"));
                    break;
                }
                _ => continue,
            }
        }
    }
    for ws in &mut sockets {
        ws.close(None).unwrap();
        let _ = ws.flush();
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn open_tunnels_count_against_max_connections_until_they_close() {
    let echo = EchoBackend::start();
    let (root, _server, port) = proxy(
        &format!(
            "{{ path = \"/ws/\", url = \"ws://127.0.0.1:{}/\" }}",
            echo.port
        ),
        "[limits]\nmax_connections = 2\n",
    );
    let mut a = ws::connect(port, "/ws/a").unwrap_or_else(|e| panic!("{e}\n{}", root.log()));
    let mut b = ws::connect(port, "/ws/b").unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(ws::round_trip(ws, Message::text("up")), Message::text("up"));
    }
    // Both slots are the tunnels': a third client waits in the backlog, as
    // at the limit with any connections (reliability_clients.rs, 3d).
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    third
        .write_all(b"GET /plain HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let waited = third.read(&mut [0u8; 1]);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "served while both tunnels held their slots: {waited:?}"
    );
    // A tunnel that closes gives its slot back: the third is answered.
    let closed = Instant::now();
    drop(a);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 404"),
        "{answer}\n{}",
        root.log()
    );
    assert!(
        closed.elapsed() < Duration::from_secs(5),
        "{:?}",
        closed.elapsed()
    );
    // The other tunnel still works.
    assert_eq!(
        ws::round_trip(&mut b, Message::text("still")),
        Message::text("still")
    );
}

/// A WebSocket handshake whose Connection names a field of the client's,
/// with an X-Forwarded-For from a proxy before us; the socket and the 101
/// as the client got it.
fn connect_naming_x_secret(port: u16, path: &str) -> (ws::Client, Response) {
    let url = format!("ws://127.0.0.1:{port}{path}");
    let mut request = url.into_client_request().unwrap();
    let fields = request.headers_mut();
    for (name, value) in [
        ("connection", "Upgrade, X-Secret"),
        ("x-secret", "s"),
        ("x-forwarded-for", "203.0.113.9"),
    ] {
        fields.insert(name, HeaderValue::from_static(value));
    }
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tungstenite::client(request, tcp).unwrap_or_else(|e| panic!("handshake: {e}"))
}

/// The values of field `name` among `fields`.
fn values<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let named = fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
    named.map(|(_, v)| v.as_str()).collect()
}

#[test]
fn fields_a_connection_names_stop_at_the_proxy_both_ways_and_x_forwarded_are_proxy_https() {
    let echo = EchoBackend::answering_with(&[
        ("connection", "Upgrade, X-Internal"),
        ("x-internal", "secret"),
        ("x-public", "yes"),
    ]);
    let http = Backend::text("ok");
    let (root, _server, port) = proxy(
        &format!(
            "{{ path = \"/ws/\", url = \"ws://127.0.0.1:{}/\" }}, \
             {{ path = \"/plain/\", url = \"{}/\" }}",
            echo.port,
            http.url()
        ),
        "",
    );
    let (mut ws, answer) = connect_naming_x_secret(port, "/ws/room");
    let heads = echo.heads.lock().unwrap().clone();
    let upgrade = &heads[0];
    assert_eq!(values(upgrade, "x-secret"), [] as [&str; 0], "{upgrade:?}");
    // What the tunnel needs still goes, asked for anew.
    assert_eq!(values(upgrade, "connection"), ["Upgrade"], "{upgrade:?}");
    assert_eq!(values(upgrade, "upgrade"), ["websocket"], "{upgrade:?}");
    assert_eq!(
        values(upgrade, "x-forwarded-for"),
        ["203.0.113.9, 127.0.0.1"]
    );

    // The same fields on a plain request, through proxy_http.
    let mut c = Conn::open(port).unwrap();
    c.send(
        format!(
            "GET /plain/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: X-Secret\r\n\
             X-Secret: s\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        c.read_response(false).unwrap().status,
        200,
        "{}",
        root.log()
    );
    let plain = &http.seen()[0];
    assert_eq!(plain.header("x-secret"), None);
    for name in ["x-forwarded-for", "x-forwarded-host", "x-forwarded-server"] {
        let want = plain.header(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(values(upgrade, name), [want], "{name}");
    }
    assert_eq!(values(upgrade, "x-forwarded-server"), ["proxy.test"]);

    // The 101 back: what its Connection names stays behind, the switch
    // itself comes through.
    assert_eq!(answer.status(), 101);
    let fields = answer.headers();
    assert_eq!(fields.get("x-internal"), None, "{fields:?}");
    assert_eq!(fields.get("x-public").unwrap(), "yes");
    assert_eq!(fields.get("connection").unwrap(), "Upgrade");
    assert_eq!(fields.get("upgrade").unwrap(), "websocket");
    assert_eq!(
        ws::round_trip(&mut ws, Message::text("still a tunnel")),
        Message::text("still a tunnel")
    );
}
