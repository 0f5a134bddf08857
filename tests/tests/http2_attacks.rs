//! The HTTP/2 attacks a public server meets, each sent raw by a client
//! that means harm while another client, well-behaved, is served beside
//! it: rapid reset (CVE-2023-44487), MadeYouReset (CVE-2025-8671), a
//! CONTINUATION flood (CVE-2024-27316), a SETTINGS flood, a slow reader
//! that never opens its window (and one that never sends its body), and
//! an HPACK bomb. Each is answered
//! without harm to the other client, and the server's memory stays bounded.

#[path = "support/h2raw.rs"]
mod h2raw;

use h2raw::*;
use modproxy_tests::{h2c_proxy, Backend, Server, ServerRoot};
use std::process::Command;
use std::time::{Duration, Instant};

struct Site {
    _server: Server,
    root: ServerRoot,
    port: u16,
    pid: u32,
}

/// An h2c vhost proxying to `backend`; `limits` goes into `[limits]`.
fn site(backend: &Backend, limits: &str) -> Site {
    let (root, server) = h2c_proxy(&["proxy_http"], &backend.url(), limits);
    Site {
        port: server.port,
        pid: server.pid(),
        _server: server,
        root,
    }
}

/// A well-behaved client's request (curl, HTTP/2 with prior knowledge):
/// its status and how long it took.
fn bystander(port: u16) -> (String, Duration) {
    let started = Instant::now();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .arg(format!("http://127.0.0.1:{port}/bystander"))
        .output()
        .expect("curl is installed");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        started.elapsed(),
    )
}

fn assert_bystander_served(port: u16, during: &str) {
    let (answer, took) = bystander(port);
    assert_eq!(answer, "200 2", "a well-behaved client during {during}");
    assert!(
        took < Duration::from_secs(2),
        "{during}: the bystander waited {took:?}"
    );
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS in /proc")
}

/// Runs `attack` on its own thread while a bystander is served.
fn beside<T: Send + 'static>(
    port: u16,
    name: &str,
    attack: impl FnOnce() -> T + Send + 'static,
) -> T {
    let attacker = std::thread::spawn(attack);
    std::thread::sleep(Duration::from_millis(200));
    assert_bystander_served(port, name);
    attacker.join().expect("the attacker thread")
}

#[test]
fn rapid_reset_closes_the_connection_and_spares_the_backend() {
    let backend = Backend::start(|_| {
        std::thread::sleep(Duration::from_millis(50));
        (200, vec![], b"slow".to_vec())
    });
    let s = site(&backend, "");
    let port = s.port;
    let goaway = beside(port, "a rapid-reset flood", move || {
        let mut c = RawH2::connect(port, &[]);
        let mut batch = Vec::new();
        let mut sent = 0;
        for i in 0..20_000u32 {
            let id = 2 * i + 1;
            let block = hpack(&[
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"localhost"),
                (b":path", b"/reset"),
            ]);
            batch.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
            batch.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
            if batch.len() > 32 * 1024 {
                if c.write(&batch).is_err() {
                    break;
                }
                batch.clear();
            }
            sent = i;
        }
        let goaway = c.read_until(Duration::from_secs(10), |f| f.kind == GOAWAY);
        (goaway.and_then(|f| f.error_code()), sent)
    });
    let (code, sent) = goaway;
    assert_eq!(
        code,
        Some(ENHANCE_YOUR_CALM),
        "the flood ends in GOAWAY ENHANCE_YOUR_CALM (sent {sent} streams)"
    );
    let reached = backend
        .seen()
        .iter()
        .filter(|r| r.target == "/reset")
        .count();
    assert!(
        reached < 1000,
        "{reached} of the reset streams reached the backend"
    );
    assert!(
        s.root.log().contains("rapid-reset") || reached < 200,
        "{}",
        s.root.log()
    );
}

/// MadeYouReset: frames that are stream errors, so the server itself
/// resets stream after stream (and, unbounded, keeps the work each began).
/// Each kind the disclosure lists is sent on stream after stream; the
/// server's resets are bounded: the connection ends in GOAWAY once they
/// pass the limit (ENHANCE_YOUR_CALM), or at the first (PROTOCOL_ERROR,
/// where h2 treats the frame as a connection error).
#[test]
fn made_you_reset_ends_in_goaway() {
    let backend = Backend::text("ok");
    let s = site(&backend, "");
    let port = s.port;
    type Trigger = fn(u32) -> Vec<u8>;
    let triggers: [(&str, Trigger); 3] = [
        ("WINDOW_UPDATE of 0", |id| {
            frame(WINDOW_UPDATE, 0, id, &0u32.to_be_bytes())
        }),
        ("a window past 2^31-1", |id| {
            frame(WINDOW_UPDATE, 0, id, &0x7fff_ffffu32.to_be_bytes())
        }),
        ("DATA after END_STREAM", |id| frame(DATA, 0, id, b"late")),
    ];
    for (name, trigger) in triggers {
        let (code, resets) = beside(port, name, move || {
            let mut c = RawH2::connect(port, &[]);
            let mut batch = Vec::new();
            for i in 0..5_000u32 {
                let id = 2 * i + 1;
                let block = hpack(&[
                    (b":method", b"GET"),
                    (b":scheme", b"http"),
                    (b":authority", b"localhost"),
                    (b":path", b"/made-you-reset"),
                ]);
                batch.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
                batch.extend(trigger(id));
                if batch.len() > 32 * 1024 {
                    if c.write(&batch).is_err() {
                        break;
                    }
                    batch.clear();
                }
            }
            let mut resets = 0;
            let goaway = c.read_until(Duration::from_secs(10), |f| {
                resets += usize::from(f.kind == RST_STREAM);
                f.kind == GOAWAY
            });
            (goaway.and_then(|f| f.error_code()), resets)
        });
        assert!(
            code == Some(ENHANCE_YOUR_CALM) || code == Some(1),
            "{name}: the connection ends in GOAWAY, not {code:?}"
        );
        assert!(
            resets <= 300,
            "{name}: the server reset {resets} streams before GOAWAY"
        );
    }
}

#[test]
fn a_continuation_flood_is_cut_off_early() {
    let backend = Backend::text("ok");
    let s = site(&backend, "");
    let (port, pid) = (s.port, s.pid);
    let before = rss_kib(pid);
    let (written, ended) = beside(port, "a CONTINUATION flood", move || {
        let mut c = RawH2::connect(port, &[]);
        c.stream
            .set_write_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let block = hpack(&[
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"localhost"),
            (b":path", b"/"),
        ]);
        let _ = c.frame(HEADERS, 0, 1, &block);
        // Endless CONTINUATION frames, never END_HEADERS.
        let piece = hpack(&[(b"x-flood", &[b'a'; 16000][..])]);
        let mut written = 0usize;
        while written < 64 << 20 {
            if c.frame(CONTINUATION, 0, 1, &piece).is_err() {
                break;
            }
            written += piece.len();
        }
        let ended = c
            .read_until(Duration::from_secs(5), |f| f.kind == GOAWAY)
            .is_some()
            || c.read_frame(Duration::from_millis(100)).is_none();
        (written, ended)
    });
    assert!(ended, "the connection ended");
    assert!(
        written < 16 << 20,
        "the server read {written} bytes of CONTINUATION before stopping"
    );
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 64 * 1024, "the server grew by {grown} KiB");
}

#[test]
fn a_settings_flood_is_answered_one_frame_at_a_time() {
    let backend = Backend::text("ok");
    let s = site(&backend, "");
    let (port, pid) = (s.port, s.pid);
    let before = rss_kib(pid);
    let written = beside(port, "a SETTINGS flood", move || {
        let mut c = RawH2::connect(port, &[]);
        c.stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        // SETTINGS after SETTINGS, never reading the acknowledgements.
        let batch: Vec<u8> = (0..4096)
            .flat_map(|_| frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]))
            .collect();
        let mut written = 0usize;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            if c.write(&batch).is_err() {
                break;
            }
            written += batch.len();
        }
        written
    });
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "after {written} bytes of SETTINGS the server grew by {grown} KiB"
    );
}

#[test]
fn a_reader_that_never_opens_its_window_is_reset_after_the_timeout() {
    let big = vec![b'x'; 4 << 20];
    let backend = Backend::start(move |_| (200, vec![], big.clone()));
    let s = site(&backend, "timeout = 2");
    let port = s.port;
    let (reset, took) = beside(port, "a slow reader", move || {
        // A stream window of 0: the server may send HEADERS, no DATA.
        let mut c = RawH2::connect(port, &[(INITIAL_WINDOW_SIZE, 0)]);
        let started = Instant::now();
        c.request(1, "GET", "/big", &[], true).unwrap();
        let reset = c.read_until(Duration::from_secs(10), |f| {
            f.kind == RST_STREAM && f.stream == 1
        });
        (reset.and_then(|f| f.error_code()), started.elapsed())
    });
    assert_eq!(reset, Some(8), "the stream is reset with CANCEL");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "after {took:?}"
    );
    assert!(
        s.root.log().contains("kept its window shut"),
        "{}",
        s.root.log()
    );
}

#[test]
fn an_hpack_bomb_is_refused_before_it_grows() {
    let backend = Backend::text("ok");
    let s = site(&backend, "");
    let (port, pid) = (s.port, s.pid);
    let before = rss_kib(pid);
    let answer = beside(port, "an HPACK bomb", move || {
        let mut c = RawH2::connect(port, &[]);
        // One 4000-byte field into the dynamic table, then referenced by
        // its one-byte index 4000 times: 16 MB decoded from 8 KB sent.
        let mut block = hpack(&[
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"localhost"),
            (b":path", b"/bomb"),
        ]);
        hpack_indexed_literal(&mut block, b"x-bomb", &[b'b'; 4000]);
        for _ in 0..4000 {
            hpack_index(&mut block, 62);
        }
        for (i, piece) in block.chunks(16000).enumerate() {
            let last = (i + 1) * 16000 >= block.len();
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            let flags = if last { END_HEADERS | END_STREAM } else { 0 };
            if c.frame(kind, flags, 1, piece).is_err() {
                break;
            }
        }
        c.read_until(Duration::from_secs(5), |f| {
            (f.kind == HEADERS || f.kind == RST_STREAM) && f.stream == 1 || f.kind == GOAWAY
        })
        .map(|f| (f.kind, f.payload))
    });
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 64 * 1024, "the server grew by {grown} KiB");
    let (kind, payload) = answer.expect("the server answers the bomb");
    // Refused: a 431 in HEADERS, or a reset of the stream or connection.
    let refused = kind != HEADERS || payload.windows(3).any(|w| w == b"431");
    assert!(refused, "answered with frame {kind}: {payload:?}");
    assert!(
        backend.seen().iter().all(|r| r.target != "/bomb"),
        "the bomb reached the backend"
    );
}

/// The other half of `limits.timeout` per stream: a client that opens a
/// request body and never sends it does not hold its stream, nor the
/// backend exchange, past the timeout.
#[test]
fn a_body_that_never_comes_ends_its_stream_after_the_timeout() {
    let backend = Backend::text("ok");
    let s = site(&backend, "timeout = 2");
    let port = s.port;
    let (answer, took) = beside(port, "a silent uploader", move || {
        let mut c = RawH2::connect(port, &[]);
        let started = Instant::now();
        c.request(1, "POST", "/upload", &[("content-length", "10")], false)
            .unwrap();
        let answer = c.read_until(Duration::from_secs(10), |f| {
            f.stream == 1 && matches!(f.kind, HEADERS | RST_STREAM)
        });
        (answer.map(|f| (f.kind, f.payload)), started.elapsed())
    });
    let (kind, payload) = answer.expect("the stream is answered or reset");
    assert!(
        kind == RST_STREAM || payload.first() != Some(&0x88),
        "not a 200: frame {kind} {payload:?}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "after {took:?}"
    );
    assert!(
        backend.seen().iter().all(|r| r.target != "/upload"),
        "no complete request reached the backend"
    );
}
