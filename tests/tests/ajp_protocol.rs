//! proxy_ajp against scripted AJP13 containers, for what a healthy Tomcat
//! never does: bytes that are not AJP, a packet over the packet size, a
//! broken packet after the head, and a pooled connection that no longer
//! answers CPING. Also that a kept connection is CPINGed before reuse.

use modproxy_tests::client::Conn;
use modproxy_tests::{free_port, get, Server, ServerRoot};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a scripted container does with each packet it reads.
type Script = dyn Fn(&mut TcpStream, u8) -> bool + Send + Sync;
/// (connection number, packet kind) for each packet received.
type Seen = Arc<Mutex<Vec<(usize, u8)>>>;

/// A container on a free port: for each packet from the proxy, the
/// script answers by its first payload byte (2 forward request, 10
/// CPING, body packets as 0xFF); false closes the connection. Returns
/// the port and the log of (connection number, packet kind).
fn container(script: impl Fn(&mut TcpStream, u8) -> bool + Send + Sync + 'static) -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let log = seen.clone();
    std::thread::spawn(move || {
        for (n, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { return };
            let (script, log) = (script.clone(), log.clone());
            std::thread::spawn(move || loop {
                let mut head = [0u8; 4];
                if s.read_exact(&mut head).is_err() {
                    return;
                }
                let len = u16::from_be_bytes([head[2], head[3]]) as usize;
                let mut payload = vec![0u8; len];
                if s.read_exact(&mut payload).is_err() {
                    return;
                }
                // Forward requests and CPINGs start with their kind;
                // these tests send no request bodies.
                let kind = payload.first().copied().unwrap_or(0xFF);
                log.lock().unwrap().push((n, kind));
                if !script(&mut s, kind) {
                    return;
                }
            });
        }
    });
    (port, seen)
}

fn packet(payload: &[u8]) -> Vec<u8> {
    let mut p = b"AB".to_vec();
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// SEND_HEADERS 200 with Content-Length: `len`.
fn head(len: usize) -> Vec<u8> {
    let l = len.to_string();
    let mut p = vec![4, 0, 200, 0, 2, b'O', b'K', 0, 0, 1, 0xA0, 0x03];
    p.extend_from_slice(&(l.len() as u16).to_be_bytes());
    p.extend_from_slice(l.as_bytes());
    p.push(0);
    packet(&p)
}

fn body(data: &[u8]) -> Vec<u8> {
    let mut p = vec![3];
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(data);
    p.push(0);
    packet(&p)
}

const END_REUSE: [u8; 6] = [b'A', b'B', 0, 2, 5, 1];
const CPONG: [u8; 5] = [b'A', b'B', 0, 1, 9];

fn modproxy(container: u16) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    root.enable(&["proxy_ajp"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"ajp://127.0.0.1:{container}/\", timeout = 3 }}]\n"
    ));
    let server = Server::start(&root, port);
    (root, server)
}

fn answer_hello(s: &mut TcpStream, kind: u8) -> bool {
    match kind {
        2 => {
            let mut out = head(5);
            out.extend(body(b"hello"));
            out.extend(END_REUSE);
            s.write_all(&out).is_ok()
        }
        10 => s.write_all(&CPONG).is_ok(),
        _ => true,
    }
}

#[test]
fn a_kept_connection_is_cpinged_before_it_is_reused() {
    let (port, seen) = container(answer_hello);
    let (_root, mp) = modproxy(port);
    for _ in 0..3 {
        let r = get(mp.port, "/x", &[]).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [(0, 2), (0, 10), (0, 2), (0, 10), (0, 2)]
    );
}

#[test]
fn a_connection_that_fails_its_cping_is_dropped_for_a_new_one() {
    // The first connection answers its request, then ignores CPING.
    let (port, seen) = container(|s, kind| match kind {
        10 => false,
        k => answer_hello(s, k),
    });
    let (root, mp) = modproxy(port);
    for _ in 0..2 {
        assert_eq!(get(mp.port, "/x", &[]).unwrap().text(), "hello");
    }
    assert_eq!(*seen.lock().unwrap(), [(0, 2), (0, 10), (1, 2)]);
    assert!(
        root.log().contains("pooled connection dropped"),
        "{}",
        root.log()
    );
}

#[test]
fn what_is_not_ajp13_is_a_502_and_the_connection_is_closed() {
    for (reply, why) in [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "starts with `AB`",
        ),
        (
            vec![b'A', b'B', 0x20, 0x00, 4],
            "over the packet size of 8192",
        ),
        (packet(&[4, 0, 200, 0, 0]), "ends in the middle"),
        (packet(&[8]), "type 8"),
    ] {
        let reply = Arc::new(reply);
        let r2 = reply.clone();
        let (port, seen) = container(move |s, kind| {
            if kind == 2 {
                let _ = s.write_all(&r2);
            }
            true
        });
        let (root, mp) = modproxy(port);
        let r = get(mp.port, "/x", &[]).unwrap();
        assert_eq!(r.status, 502, "{why}");
        assert!(root.log().contains(why), "{why}: {}", root.log());
        // The next request gets a new connection: the broken one is not kept.
        assert_eq!(get(mp.port, "/x", &[]).unwrap().status, 502);
        let conns: Vec<usize> = seen.lock().unwrap().iter().map(|(c, _)| *c).collect();
        assert_eq!(conns, [0, 1], "{why}");
    }
}

#[test]
fn a_broken_packet_after_the_head_aborts_the_response() {
    let (port, _) = container(|s, kind| {
        if kind == 2 {
            let mut out = head(10);
            out.extend(body(b"hello"));
            out.extend([b'X', b'X', 0, 1, 5]);
            let _ = s.write_all(&out);
        }
        true
    });
    let (_root, mp) = modproxy(port);
    let mut c = Conn::open(mp.port).unwrap();
    c.send(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = c.read_head().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some("10"));
    // Five bytes, then the connection closes short of the length.
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn no_answer_within_the_timeout_is_a_502() {
    let (port, _) = container(|_, _| true);
    let (_root, mp) = modproxy(port);
    let t0 = std::time::Instant::now();
    assert_eq!(get(mp.port, "/x", &[]).unwrap().status, 502);
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
}
