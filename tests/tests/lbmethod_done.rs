//! `LbMethod::done` (ABI 1.2) through the real server: the balancer tells
//! the member's lbmethod how each pick went, exactly once, with times,
//! bytes, failover flags and the core's per-member stats. The fixture
//! lbmethod `counting` logs one line per call.

use modproxy_tests::balancer::{dead_url, member, picks, site};
use modproxy_tests::{free_port, Backend, Server, ServerRoot};
use std::time::{Duration, Instant};

fn serve_counting(members: &[String], keys: &str) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    root.fixture_module(
        "lbmethod_counting",
        "libfixture_counting_lbmethod.so",
        "depends = [\"proxy_balancer\"]\nprovides = [\"lbmethod:counting\"]\n",
    );
    root.enable(&["proxy_http", "lbmethod_counting"]);
    let port = free_port();
    let keys = format!("lbmethod = \"counting\"\n{keys}");
    root.config(&site(port, &keys, members));
    let server = Server::start(&root, port);
    (root, server)
}

/// The `done` lines logged so far, once `want` of them are there (the
/// report may land just after the client has its answer).
fn done_lines(root: &ServerRoot, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines: Vec<String> = root
            .log()
            .lines()
            .filter(|l| l.contains("counting: done"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= want || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number after `key=` in `line`.
fn field(line: &str, key: &str) -> u64 {
    let at = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("{key} in {line}"));
    let rest = &line[at + key.len() + 2..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

#[test]
fn done_is_called_once_per_request_with_times_bytes_and_stats() {
    let slowish = Backend::start(|_| {
        std::thread::sleep(Duration::from_millis(20));
        (200, vec![], b"b".to_vec())
    });
    let a = Backend::text("a");
    let members = [member(&a.url(), ""), member(&slowish.url(), "")];
    let (root, server) = serve_counting(&members, "");
    let got = picks(server.port, "/", &[], 10);
    assert_eq!(got.iter().filter(|g| *g == "a").count(), 5, "{got:?}");
    let lines = done_lines(&root, 10);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(done_lines(&root, 10).len(), 10, "{}", root.log());
    for l in &lines {
        let (head, total) = (field(l, "head_us"), field(l, "total_us"));
        assert_eq!(field(l, "status"), 200, "{l}");
        assert_eq!((field(l, "code"), field(l, "flags")), (0, 0), "{l}");
        assert!(head > 0 && total >= head, "{l}");
        assert_eq!(field(l, "busy"), 0, "busy already counts the end: {l}");
        if field(l, "member") == 1 {
            assert!(head >= 20_000, "the 20 ms member: {l}");
        }
    }
    // The core's average: member 1's five samples, each about 20 ms.
    let last = lines.iter().rfind(|l| field(l, "member") == 1).unwrap();
    assert_eq!(field(last, "samples"), 5, "{last}");
    assert!(field(last, "avg_us") >= 20_000, "{last}");
}

#[test]
fn a_failed_over_attempt_is_reported_with_its_flag_and_the_retry_with_its_own() {
    let good = Backend::text("good");
    let members = [member(&dead_url(), "retry = 60"), member(&good.url(), "")];
    let (root, server) = serve_counting(&members, "");
    // byrequests starts with member 0, the dead one: it fails over to 1.
    assert_eq!(picks(server.port, "/", &[], 1), ["good"], "{}", root.log());
    let lines = done_lines(&root, 2);
    assert_eq!(lines.len(), 2, "{}", root.log());
    let (dead, retry) = (&lines[0], &lines[1]);
    assert_eq!(field(dead, "member"), 0, "{dead}");
    assert_eq!(field(dead, "flags"), 1, "FAILED_OVER: {dead}");
    assert_eq!(
        (field(dead, "status"), field(dead, "head_us")),
        (0, 0),
        "{dead}"
    );
    assert_eq!(
        field(dead, "errors"),
        1,
        "the core counted its error: {dead}"
    );
    assert_eq!(field(dead, "samples"), 0, "a refused connect is no sample");
    assert_eq!(field(retry, "member"), 1, "{retry}");
    assert_eq!(field(retry, "flags"), 2, "RETRY: {retry}");
}

/// `reset` runs once when the method is attached to its balancer, before
/// the first `find`, as Apache's lbmethods are reset at child init.
#[test]
fn reset_runs_once_when_the_method_is_attached_before_any_find() {
    let a = Backend::text("a");
    let members = [member(&a.url(), "")];
    let (root, server) = serve_counting(&members, "");
    assert_eq!(picks(server.port, "/", &[], 2), ["a", "a"]);
    let log = root.log();
    let calls: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("counting: ").nth(1))
        .filter(|c| c.starts_with("reset") || c.starts_with("find"))
        .collect();
    assert_eq!(calls.first(), Some(&"reset members=1"), "{log}");
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("reset")).count(),
        1,
        "{log}"
    );
}
