//! proxy_fcgi against scripted FastCGI servers: kept connections counted,
//! and bad backends (not FastCGI, silent, cut short, no head) answered
//! 502 with a log line naming them, never a hang.

use modproxy_tests::{free_port, get, Conn, Server, ServerRoot};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a scripted server saw of one request.
#[derive(Debug, Clone, Default)]
struct Seen {
    keep_conn: bool,
    params: Vec<(String, String)>,
    stdin: Vec<u8>,
}

/// A FastCGI server on a free port; `answer` writes the response records
/// for each request and says whether to keep the connection open.
struct Fcgi {
    port: u16,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let mut r = vec![1, kind, 0, 1];
    r.extend_from_slice(&(content.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0]);
    r.extend_from_slice(content);
    r
}

fn stdout(text: &str) -> Vec<u8> {
    record(6, text.as_bytes())
}

fn end_request() -> Vec<u8> {
    record(3, &[0, 0, 0, 0, 0, 0, 0, 0])
}

fn read_record(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 8];
    s.read_exact(&mut h).ok()?;
    let len = usize::from(u16::from_be_bytes([h[4], h[5]])) + usize::from(h[6]);
    let mut content = vec![0u8; len];
    s.read_exact(&mut content).ok()?;
    content.truncate(usize::from(u16::from_be_bytes([h[4], h[5]])));
    Some((h[1], content))
}

fn pairs(mut b: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let len = |b: &mut &[u8]| -> usize {
        if b[0] < 128 {
            let l = usize::from(b[0]);
            *b = &b[1..];
            l
        } else {
            let l = (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff) as usize;
            *b = &b[4..];
            l
        }
    };
    while !b.is_empty() {
        let (n, v) = (len(&mut b), len(&mut b));
        let name = String::from_utf8_lossy(&b[..n]).into_owned();
        let value = String::from_utf8_lossy(&b[n..n + v]).into_owned();
        b = &b[n + v..];
        out.push((name, value));
    }
    out
}

/// Reads one request (BEGIN_REQUEST to the end of STDIN).
fn read_request(s: &mut TcpStream) -> Option<Seen> {
    let mut seen = Seen::default();
    let mut params = Vec::new();
    loop {
        let (kind, content) = read_record(s)?;
        match kind {
            1 => seen.keep_conn = content[2] & 1 == 1,
            4 => params.extend_from_slice(&content),
            5 if content.is_empty() => break,
            5 => seen.stdin.extend_from_slice(&content),
            _ => {}
        }
    }
    seen.params = pairs(&params);
    Some(seen)
}

impl Fcgi {
    fn start(answer: impl Fn(&Seen, &mut TcpStream) -> bool + Send + Sync + 'static) -> Fcgi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let (c, s) = (connections.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                c.fetch_add(1, Ordering::SeqCst);
                let (answer, s) = (answer.clone(), s.clone());
                std::thread::spawn(move || {
                    while let Some(req) = read_request(&mut stream) {
                        s.lock().unwrap().push(req.clone());
                        if !answer(&req, &mut stream) || !req.keep_conn {
                            return;
                        }
                    }
                });
            }
        });
        Fcgi {
            port,
            connections,
            seen,
        }
    }
}

fn serve(fcgi_port: u16, keys: &str) -> (ServerRoot, Server, u16) {
    let root = ServerRoot::new();
    root.enable(&["proxy_fcgi"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"fcgi://127.0.0.1:{fcgi_port}/srv/\"{keys} }}]\n"
    ));
    let server = Server::start(&root, port);
    (root, server, port)
}

fn hello(_: &Seen, s: &mut TcpStream) -> bool {
    let mut out = stdout("Content-Type: text/plain\r\n\r\nhello");
    out.extend(record(6, b""));
    out.extend(end_request());
    s.write_all(&out).is_ok()
}

#[test]
fn connections_are_kept_only_with_enable_reuse() {
    let plain = Fcgi::start(hello);
    let (_r, _s, port) = serve(plain.port, "");
    for _ in 0..5 {
        assert_eq!(get(port, "/x.php", &[]).unwrap().text(), "hello");
    }
    assert_eq!(plain.connections.load(Ordering::SeqCst), 5);
    assert!(plain.seen.lock().unwrap().iter().all(|s| !s.keep_conn));

    let kept = Fcgi::start(hello);
    let (root, _s, port) = serve(kept.port, ", enable_reuse = true");
    for _ in 0..5 {
        assert_eq!(
            get(port, "/x.php", &[]).unwrap().text(),
            "hello",
            "{}",
            root.log()
        );
    }
    assert_eq!(kept.connections.load(Ordering::SeqCst), 1);
    let seen = kept.seen.lock().unwrap();
    assert!(seen.iter().all(|s| s.keep_conn));
    let script = seen[0].params.iter().find(|(n, _)| n == "SCRIPT_FILENAME");
    assert_eq!(
        script.map(|(_, v)| v.as_str()),
        Some(&*format!("proxy:fcgi://127.0.0.1:{}/srv/x.php", kept.port))
    );
}

#[test]
fn a_server_that_closes_a_kept_connection_costs_the_client_nothing() {
    // Answers, then closes although asked to keep the connection.
    let fcgi = Fcgi::start(|s, out| {
        hello(s, out);
        false
    });
    let (root, _s, port) = serve(fcgi.port, ", enable_reuse = true");
    for i in 0..5 {
        let r = get(port, "/x.php", &[]).unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hello"),
            "{i}: {}",
            root.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_server_that_is_not_fastcgi_is_a_502_saying_so() {
    let fcgi = Fcgi::start(|_, s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
        false
    });
    let (root, _s, port) = serve(fcgi.port, "");
    assert_eq!(get(port, "/x.php", &[]).unwrap().status, 502);
    let log = root.log();
    assert!(log.contains("is this port a FastCGI server?"), "{log}");
    assert!(
        log.contains(&format!("fcgi://127.0.0.1:{}", fcgi.port)),
        "{log}"
    );
}

#[test]
fn a_silent_server_is_a_502_after_the_timeout() {
    let fcgi = Fcgi::start(|_, _| {
        std::thread::sleep(Duration::from_secs(5));
        false
    });
    let (root, _s, port) = serve(fcgi.port, ", timeout = 1");
    let started = Instant::now();
    assert_eq!(get(port, "/x.php", &[]).unwrap().status, 502);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        root.log().contains("no response head within 1000 ms"),
        "{}",
        root.log()
    );
}

#[test]
fn a_request_ended_without_a_head_is_a_502() {
    let fcgi = Fcgi::start(|_, s| {
        let mut out = record(7, b"PHP message: gave up\n");
        out.extend(end_request());
        let _ = s.write_all(&out);
        false
    });
    let (root, _s, port) = serve(fcgi.port, "");
    assert_eq!(get(port, "/x.php", &[]).unwrap().status, 502);
    let log = root.log();
    assert!(
        log.contains("FastCGI stderr: PHP message: gave up"),
        "{log}"
    );
    assert!(log.contains("without a response head"), "{log}");
}

#[test]
fn a_body_cut_short_aborts_the_client_connection() {
    let fcgi = Fcgi::start(|_, s| {
        let _ = s.write_all(&stdout("Content-Type: text/plain\r\n\r\nfirst part"));
        std::thread::sleep(Duration::from_millis(200));
        false // closes with no END_REQUEST
    });
    let (root, _s, port) = serve(fcgi.port, "");
    let mut c = Conn::open(port).unwrap();
    c.send(b"GET /x.php HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = c.read_head().unwrap();
    assert_eq!(head.status, 200);
    assert!(head.header("content-length").is_none());
    // Chunked, and never its last chunk: the connection closes instead.
    assert!(c.read_response(false).is_err() || c.closed_within(Duration::from_secs(3)));
    assert!(root.log().contains("response aborted"), "{}", root.log());
}

#[test]
fn the_request_body_arrives_whole_in_stdin_records() {
    let fcgi = Fcgi::start(|req, s| {
        let mut out = stdout(&format!(
            "Status: 201 Created\r\nX-Got: {}\r\n\r\n",
            req.stdin.len()
        ));
        out.extend(end_request());
        s.write_all(&out).is_ok()
    });
    let (_r, _s, port) = serve(fcgi.port, "");
    let body = modproxy_tests::noise(200_001, 9);
    let r = modproxy_tests::request(port, "PUT", "/up.php", &[], &body).unwrap();
    assert_eq!((r.status, r.header("x-got")), (201, Some("200001")));
    let seen = fcgi.seen.lock().unwrap();
    assert_eq!(seen[0].stdin, body);
    let p = |n: &str| {
        seen[0]
            .params
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(p("CONTENT_LENGTH").as_deref(), Some("200001"));
    assert_eq!(p("REQUEST_METHOD").as_deref(), Some("PUT"));
}
