//! proxy_connect: `curl -p -x` through a CONNECT tunnel to an HTTPS
//! backend on loopback; refusals (405 without forwarding or the module,
//! 403 for a port or a client not allowed, 503 for a port nobody listens
//! on); the tunnel's half-close, idle timeout, max_connections slot and
//! life across a restart; 500 tunnels at once.

#[path = "support/tls.rs"]
mod tls;

use modproxy_tests::{free_port, send_raw, Server, ServerRoot};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use tls::{Cert, TlsBackend};

/// modproxy with proxy_http and proxy_connect, one forwarding vhost;
/// `connect` is the body of `[vhost.proxy_connect]`, `top` core tables.
fn serve(proxy: &str, connect: &str, top: &str) -> (ServerRoot, Server, u16) {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_connect"]);
    let port = free_port();
    root.config(&format!(
        "{top}\n[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"proxy.test\"\n[vhost.proxy]\n{proxy}\n[vhost.proxy_connect]\n{connect}\n"
    ));
    let server = Server::start(&root, port);
    (root, server, port)
}

/// A TCP backend that echoes what it reads and, at the client's
/// half-close, writes `bye` and closes its side.
fn echo_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            let _ = s.write_all(b"bye");
                            let _ = s.shutdown(Shutdown::Write);
                            return;
                        }
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    });
    port
}

/// Opens a tunnel to 127.0.0.1:`to`; the client stream after the 200.
fn open(port: u16, to: u16) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("CONNECT 127.0.0.1:{to} HTTP/1.1\r\nHost: 127.0.0.1:{to}\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => {
                return Err(format!(
                    "{other:?} after {:?}",
                    String::from_utf8_lossy(&head)
                ))
            }
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 200 Connection Established\r\n") {
        return Err(head);
    }
    assert!(
        !head.to_ascii_lowercase().contains("content-length")
            && !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    Ok(s)
}

fn round_trip(s: &mut TcpStream, text: &str) -> String {
    s.write_all(text.as_bytes()).unwrap();
    let mut got = vec![0u8; text.len()];
    s.read_exact(&mut got).unwrap();
    String::from_utf8(got).unwrap()
}

fn connect_status(port: u16, target: &str) -> String {
    let raw = send_raw(
        port,
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn curl_reaches_an_https_backend_through_the_tunnel() {
    let cert = Cert::new(&["localhost"]);
    let backend = TlsBackend::start(&cert, "secret over tls");
    let (root, _server, port) = serve(
        "forward = true",
        &format!("allow_connect = [{}]", backend.port),
        "",
    );
    let dir = root.dir.join("ca.pem");
    std::fs::write(&dir, &cert.pem).unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-p",
            "-x",
            &format!("http://127.0.0.1:{port}"),
            "--cacert",
        ])
        .arg(&dir)
        .arg(format!("https://localhost:{}/hello", backend.port))
        .output()
        .expect("run curl (tests/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        root.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "secret over tls");
    // The TLS session was the client's own, end to end: its SNI reached the backend.
    assert_eq!(
        backend
            .sni
            .lock()
            .unwrap()
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some("localhost")
    );
}

#[test]
fn refusals_say_why() {
    let echo = echo_backend();
    let dead = free_port();
    let (root, _server, port) = serve(
        "forward = true",
        &format!("allow_connect = [{echo}, {dead}]"),
        "",
    );
    assert_eq!(
        connect_status(port, "127.0.0.1:22"),
        "HTTP/1.1 403 Forbidden"
    );
    assert!(
        root.log()
            .contains("port 22 is not in [vhost.proxy_connect] allow_connect"),
        "{}",
        root.log()
    );
    assert_eq!(
        connect_status(port, &format!("127.0.0.1:{dead}")),
        "HTTP/1.1 503 Service Unavailable"
    );
    assert!(
        root.log()
            .contains(&format!("CONNECT 127.0.0.1:{dead}: connect failed")),
        "{}",
        root.log()
    );
    assert_eq!(
        connect_status(port, "no-port-here"),
        "HTTP/1.1 400 Bad Request"
    );
    // Forwarding off: 405, as without the module.
    let (root, _s, port) = serve("forward = false", "", "");
    assert_eq!(
        connect_status(port, &format!("127.0.0.1:{echo}")),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert!(
        root.log().contains("forward proxying is off"),
        "{}",
        root.log()
    );
    let plain = ServerRoot::new();
    plain.enable(&["proxy_http"]);
    let p = free_port();
    plain.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{p}\"\n[vhost.proxy]\nforward = true\n"
    ));
    let _s = Server::start(&plain, p);
    assert_eq!(
        connect_status(p, &format!("127.0.0.1:{echo}")),
        "HTTP/1.1 405 Method Not Allowed"
    );
}

#[test]
fn a_client_outside_allow_is_refused() {
    let echo = echo_backend();
    let (root, _server, port) = serve(
        "forward = true",
        &format!("allow_connect = [{echo}]\nallow = [\"10.0.0.0/8\"]"),
        "",
    );
    assert_eq!(
        connect_status(port, &format!("127.0.0.1:{echo}")),
        "HTTP/1.1 403 Forbidden"
    );
    assert!(root.log().contains("client 127.0.0.1:"), "{}", root.log());
    assert!(
        root.log().contains("is not in [vhost.proxy_connect] allow"),
        "{}",
        root.log()
    );
}

#[test]
fn a_half_close_is_passed_on_both_ways() {
    let echo = echo_backend();
    let (root, _server, port) = serve("forward = true", &format!("allow_connect = [{echo}]"), "");
    let mut s = open(port, echo).unwrap_or_else(|e| panic!("{e}\n{}", root.log()));
    assert_eq!(round_trip(&mut s, "ping"), "ping");
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest, "bye",
        "the backend saw our EOF, answered, and its EOF came back"
    );
}

#[test]
fn an_idle_tunnel_closes_after_the_timeout() {
    let echo = echo_backend();
    let (_root, _server, port) = serve(
        "forward = true\ntimeout = 1",
        &format!("allow_connect = [{echo}]"),
        "",
    );
    let mut s = open(port, echo).unwrap();
    assert_eq!(round_trip(&mut s, "x"), "x");
    let started = Instant::now();
    let mut buf = [0u8; 8];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed, not data");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[test]
fn open_tunnels_hold_max_connections_slots() {
    let echo = echo_backend();
    let (root, _server, port) = serve(
        "forward = true",
        &format!("allow_connect = [{echo}]"),
        "[limits]\nmax_connections = 2\n",
    );
    let mut a = open(port, echo).unwrap_or_else(|e| panic!("{e}\n{}", root.log()));
    let mut b = open(port, echo).unwrap();
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let waited = third.read(&mut [0u8; 1]);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{waited:?}"
    );
    drop(a.shutdown(Shutdown::Both));
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(round_trip(&mut b, "still"), "still");
    let _ = a.flush();
}

#[test]
fn a_tunnel_outlives_a_restart() {
    let echo = echo_backend();
    let (root, mut old, port) = serve("forward = true", &format!("allow_connect = [{echo}]"), "");
    let mut s = open(port, echo).unwrap();
    assert_eq!(round_trip(&mut s, "before"), "before");
    root.restart();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(round_trip(&mut s, "during"), "during");
    assert!(old.is_running(), "the old server waits for its tunnel");
    let mut fresh = open(port, echo).unwrap();
    assert_eq!(round_trip(&mut fresh, "new"), "new");
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "bye");
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !old.is_running(),
        "the old server exits once its last tunnel closed"
    );
    assert_eq!(round_trip(&mut fresh, "after"), "after");
}

#[test]
fn five_hundred_tunnels_at_once() {
    let echo = echo_backend();
    let (root, _server, port) = serve("forward = true", &format!("allow_connect = [{echo}]"), "");
    let started = Instant::now();
    let handles: Vec<_> = (0..500)
        .map(|i| {
            std::thread::spawn(move || -> Result<TcpStream, String> {
                let mut s = open(port, echo)?;
                let text = format!("tunnel {i}");
                if round_trip(&mut s, &text) != text {
                    return Err(format!("tunnel {i} echoed wrong"));
                }
                Ok(s)
            })
        })
        .collect();
    let mut open_now: Vec<TcpStream> = Vec::new();
    for h in handles {
        open_now.push(
            h.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}\n{}", root.log())),
        );
    }
    // All 500 at once, then each still carries its own bytes.
    for (i, s) in open_now.iter_mut().enumerate() {
        let text = format!("again {i}");
        assert_eq!(round_trip(s, &text), text);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
