//! One client's stray bytes never reach another client (issue 14, part 1).
//!
//! A buggy backend answers and then, in a separate write a moment later,
//! sends bytes that look like a whole second response (response
//! splitting). If the proxy pooled that connection, the next, unrelated
//! client would get `EVIL` as its answer. Each case is played at several
//! delays, and the next client always arrives after the stray bytes did.

use modproxy_tests::{get, request, Proxied, Scripted};
use std::time::Duration;

/// What a splitting backend sends after its answer.
const SPLIT: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL";

/// The first answer of each case, as the backend writes it.
fn answer(case: &str) -> &'static [u8] {
    match case {
        "/204" => b"HTTP/1.1 204 No Content\r\n\r\n",
        "/304" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\n",
        "/length" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
        // Python's http.server: a body with a 204.
        "/204-body" => b"HTTP/1.1 204 No Content\r\n\r\nsurplus",
        _ => b"HTTP/1.1 500 Unknown case\r\nContent-Length: 0\r\n\r\n",
    }
}

/// `/ok` answers `conn N`; any other path answers its case, then waits
/// `delay_ms` (from the query string) and sends [`SPLIT`] unless the case
/// already carries its own surplus.
fn splitting_backend() -> Scripted {
    Scripted::start(|mut peer| {
        // No Nagle: the stray write goes out when written, not held for
        // the proxy's delayed ACK (40 ms), so it is there before the reuse.
        let _ = peer.stream().set_nodelay(true);
        while let Some(req) = peer.request() {
            let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
            if path == "/ok" {
                peer.respond(200, &[], format!("conn {}", peer.index).as_bytes());
                continue;
            }
            peer.send(answer(path));
            if path == "/204-body" {
                continue;
            }
            let delay: u64 = query
                .strip_prefix("delay=")
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            peer.send(SPLIT);
        }
    })
}

fn proxy_to(backend: &Scripted) -> Proxied {
    Proxied::start(&format!(
        "timeout = 5\npass = [{{ path = \"/\", url = \"{}/\" }}]",
        backend.url()
    ))
}

/// Plays `case` at `delay_ms`, then a fresh client 30 ms later: it must
/// get its own answer (never `EVIL`, never a 502).
fn next_client_gets_its_own_answer(p: &Proxied, case: &str, method: &str, delay_ms: u64) {
    let target = format!("{case}?delay={delay_ms}");
    let first = request(p.port, method, &target, &[], b"").unwrap();
    let expected = match case {
        "/204" | "/204-body" => 204,
        "/304" => 304,
        _ => 200,
    };
    assert_eq!(
        first.status,
        expected,
        "{case} at {delay_ms} ms\n{}",
        p.log()
    );
    assert!(
        !first.text().contains("EVIL"),
        "{case} at {delay_ms} ms: the answer itself carries the stray bytes"
    );
    std::thread::sleep(Duration::from_millis(delay_ms + 30));
    let next = get(p.port, "/ok", &[]).unwrap();
    assert_eq!(
        next.status,
        200,
        "after {case} at {delay_ms} ms\n{}",
        p.log()
    );
    assert!(
        next.text().starts_with("conn "),
        "after {case} at {delay_ms} ms the next client got {:?}\n{}",
        next.text(),
        p.log()
    );
}

#[test]
fn stray_bytes_after_a_204_never_reach_the_next_client() {
    let backend = splitting_backend();
    let p = proxy_to(&backend);
    for delay in [0, 1, 10] {
        next_client_gets_its_own_answer(&p, "/204", "GET", delay);
    }
}

#[test]
fn stray_bytes_after_a_304_with_a_content_length_never_reach_the_next_client() {
    let backend = splitting_backend();
    let p = proxy_to(&backend);
    for delay in [0, 1, 10] {
        next_client_gets_its_own_answer(&p, "/304", "GET", delay);
    }
}

#[test]
fn stray_bytes_past_a_content_length_body_never_reach_the_next_client() {
    let backend = splitting_backend();
    let p = proxy_to(&backend);
    for delay in [0, 1, 10] {
        next_client_gets_its_own_answer(&p, "/length", "GET", delay);
    }
}

#[test]
fn stray_bytes_after_a_head_response_never_reach_the_next_client() {
    let backend = splitting_backend();
    let p = proxy_to(&backend);
    for delay in [0, 1, 10] {
        next_client_gets_its_own_answer(&p, "/head", "HEAD", delay);
    }
}

#[test]
fn a_204_with_a_body_does_not_cost_the_next_client_a_502() {
    let backend = splitting_backend();
    let p = proxy_to(&backend);
    next_client_gets_its_own_answer(&p, "/204-body", "GET", 0);
}

/// A pooled connection that answers the next request with garbage (here:
/// bytes left over from an earlier response that came after the check)
/// is retried once on a fresh connection: the client sees its answer, not
/// a 502. On a fresh connection the same garbage is the backend's own,
/// and a 502.
#[test]
fn garbage_on_a_reused_connection_is_retried_on_a_fresh_one() {
    let backend = Scripted::start(|mut peer| {
        let _ = peer.stream().set_nodelay(true);
        let mut served = 0;
        while let Some(req) = peer.request() {
            served += 1;
            if served == 2 || req.target == "/garbage" {
                peer.send(b"surplus of an earlier answer\r\n\r\n");
                return;
            }
            peer.respond(200, &[], format!("conn {}", peer.index).as_bytes());
        }
    });
    let p = proxy_to(&backend);
    let first = get(p.port, "/ok", &[]).unwrap();
    assert_eq!(first.text(), "conn 0");
    let second = get(p.port, "/ok", &[]).unwrap();
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "conn 1"),
        "{}",
        p.log()
    );
    assert!(
        p.log_eventually("no valid response head on a reused connection")
            .contains("retrying on a new one"),
        "{}",
        p.log()
    );
    let fresh = get(p.port, "/garbage", &[]).unwrap();
    assert_eq!(fresh.status, 502, "{}", p.log());
}

/// The stray bytes are logged once, with the worker's name.
#[test]
fn stray_bytes_are_logged_once_with_the_backend() {
    let backend = splitting_backend();
    let p = proxy_to(&backend);
    next_client_gets_its_own_answer(&p, "/204", "GET", 1);
    let log = p.log_eventually("that no request asked for");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("that no request asked for"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains(&format!("{}: ", backend.url()))
            && lines[0].contains("after its 204 response"),
        "{log}"
    );
}

/// wrk counts, per thread, every answer that is not the one its request
/// asked for (the backend echoes the path); `done` prints the total.
const CHECK_ANSWERS: &str = r#"
bad = 0
local n = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function request()
    n = n + 1
    return wrk.format("GET", "/id/" .. n)
end
function response(status, headers, body)
    if status ~= 200 or string.sub(body, 1, 4) ~= "/id/" then bad = bad + 1 end
end
function done(summary, latency, requests)
    local total = 0
    for _, t in ipairs(threads) do total = total + t:get("bad") end
    io.write("bad answers: " .. total .. "\n")
end
"#;

/// Under load, a backend sends stray bytes after one answer in five: a
/// whole second response in the same write as the answer, or garbage in
/// a write right after it. Every client gets the answer its own request
/// asked for, and none a 502.
#[test]
fn under_load_a_splitting_backend_never_crosses_answers() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    let backend = Scripted::start(move |mut peer| {
        let _ = peer.stream().set_nodelay(true);
        while let Some(req) = peer.request() {
            let k = counter.fetch_add(1, Ordering::Relaxed);
            let body = req.target.as_bytes();
            let answer = [
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
                body,
            ]
            .concat();
            match k % 10 {
                3 => peer.send(&[answer.as_slice(), SPLIT].concat()),
                7 => {
                    peer.send(&answer);
                    peer.send(b"EVIL: not a response\r\n\r\n");
                }
                _ => peer.send(&answer),
            }
        }
    });
    let p = proxy_to(&backend);
    let script = p.root.dir.join("check.lua");
    std::fs::write(&script, CHECK_ANSWERS).unwrap();
    let url = format!("http://127.0.0.1:{}/", p.port);
    let load = modproxy_tests::figures::wrk(
        &url,
        &[
            "-t2",
            "-c64",
            "-d5s",
            "--timeout",
            "3s",
            "-s",
            script.to_str().unwrap(),
        ],
    );
    // Beside wrk, clients that check the answer is their very own.
    let mine: Vec<_> = (0..4)
        .map(|t| {
            let port = p.port;
            std::thread::spawn(move || {
                let mut conn = modproxy_tests::Conn::open(port).unwrap();
                let mut wrong = Vec::new();
                for i in 0..2000 {
                    let path = format!("/mine/{t}/{i}");
                    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                    conn.send(req.as_bytes()).unwrap();
                    let r = conn.read_response(false).unwrap();
                    if r.status != 200 || r.body != path.as_bytes() {
                        wrong.push(format!("{path} got {} {:?}", r.status, r.text()));
                    }
                }
                wrong
            })
        })
        .collect();
    let (report, text) = modproxy_tests::figures::wrk_finish(load);
    let wrong: Vec<String> = mine.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let bad: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("bad answers: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the script's total");
    let stray = answered.load(Ordering::Relaxed) / 5;
    modproxy_tests::figures::Figure {
        id: "4b",
        scenario: "A splitting backend under load".into(),
        test: "reliability_desync.rs::under_load_a_splitting_backend_never_crosses_answers",
        tried: "wrk -t2 -c64 -d5s (and 4 clients checking 2,000 answers each are their own); the backend sends stray bytes after 1 answer in 5: a whole response in the same write, or garbage in a write right after".into(),
        outcome: format!(
            "{bad} wrong answers, {} non-2xx, {} socket errors; {} of 8000 checked answers not the client's own; about {stray} answers were followed by stray bytes",
            report.non_2xx,
            report.failed() - report.non_2xx,
            wrong.len()
        ),
        sent: report.requests + 8000,
        failed: bad + report.failed() + wrong.len() as u64,
        lost: 0,
        recovery_ms: None,
    }
    .record();
    assert!(report.requests > 1000, "{text}");
    assert_eq!((bad, report.failed()), (0, 0), "{text}\n{}", p.log());
    assert!(wrong.is_empty(), "{wrong:?}");
}
