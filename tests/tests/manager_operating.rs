//! Operating a running server: manager changes that survive `modproxy
//! restart` (unless the config changed that setting since), Prometheus
//! counters that match the requests sent, one access-log line per
//! request, and `modproxy status`'s member table without a manager path.

use modproxy_tests::balancer::{member, picks, site};
use modproxy_tests::{free_port, get, request, Backend, Server, ServerRoot};
use std::time::{Duration, Instant};

const MANAGER: &str =
    "\n[vhost.balancer_manager]\npath = \"/balancer-manager\"\nmetrics = \"/metrics\"\n";

fn root_with_modules() -> ServerRoot {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_balancer", "lbmethod_byrequests"]);
    root
}

/// The site: `balancer://c` over `b` with per-member `extra` keys, then `tail`.
fn config(port: u16, b: &[Backend], extra: &[&str], tail: &str) -> String {
    let members: Vec<String> = b
        .iter()
        .zip(extra)
        .map(|(b, e)| member(&b.url(), e))
        .collect();
    format!("{}{tail}", site(port, "", &members))
}

fn token(port: u16) -> String {
    let s = get(port, "/balancer-manager/api", &[]).unwrap().text();
    let at = s.find("\"token\":\"").expect("a token") + 9;
    s[at..at + 32].to_string()
}

fn change(port: u16, body: &str) -> String {
    let t = token(port);
    let h = [("X-Modproxy-Token", t.as_str()), ("Connection", "close")];
    let r = request(port, "POST", "/balancer-manager/api", &h, body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{body}: {}", r.text());
    r.text()
}

/// Waits until `f` holds (at most 10 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn manager_changes_survive_restart_unless_the_config_changed_them() {
    let b = [Backend::text("m0"), Backend::text("m1")];
    let root = root_with_modules();
    let port = free_port();
    root.config(&config(port, &b, &["", ""], MANAGER));
    let _server = Server::start(&root, port);
    let u1 = b[1].url();
    change(
        port,
        &format!(r#"{{"balancer":"c","member":"{u1}","set":{{"status":"+D","loadfactor":4}}}}"#),
    );
    let saved = std::fs::read_to_string(root.dir.join("balancer-state.json")).unwrap();
    assert!(saved.contains(&u1) && saved.contains("+D"), "{saved}");

    root.restart();
    assert_eq!(
        picks(port, "/", &[], 3),
        ["m0"; 3],
        "still disabled after restart:\n{}",
        root.log()
    );
    let s = get(port, "/balancer-manager/api", &[]).unwrap().text();
    assert!(s.contains("\"loadfactor\":4"), "{s}");
    assert!(
        root.log().contains("manager changes restored"),
        "{}",
        root.log()
    );

    // The config file now sets the loadfactor itself: the config wins for
    // that setting, and the disable (untouched by the config) stays.
    root.config(&config(port, &b, &["", "loadfactor = 7"], MANAGER));
    root.restart();
    let s = get(port, "/balancer-manager/api", &[]).unwrap().text();
    assert!(s.contains("\"loadfactor\":7"), "{s}");
    assert_eq!(picks(port, "/", &[], 2), ["m0"; 2], "{}", root.log());
    let log = root.log();
    assert!(
        log.contains(
            "config changed loadfactor from 1 to 7 since the manager set it to 4; the config wins"
        ),
        "{log}"
    );
}

/// The value of the sample line `name` (exact labels) in Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

#[test]
fn metrics_count_the_requests_sent() {
    let b = [
        Backend::start(|seen| {
            let status = if seen.target == "/missing" { 404 } else { 200 };
            (status, vec![], b"hello".to_vec())
        }),
        Backend::text("m1"),
    ];
    let root = root_with_modules();
    let port = free_port();
    root.config(&config(port, &b, &["", "status = \"+D\""], MANAGER));
    let _server = Server::start(&root, port);
    for _ in 0..5 {
        assert_eq!(get(port, "/", &[]).unwrap().status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(port, "/missing", &[]).unwrap().status, 404);
    }
    let r = get(port, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let m = r.text();
    assert_eq!(sample(&m, "modproxy_requests_total"), 7.0);
    assert_eq!(sample(&m, "modproxy_responses_total{class=\"2xx\"}"), 5.0);
    assert_eq!(sample(&m, "modproxy_responses_total{class=\"4xx\"}"), 2.0);
    assert_eq!(sample(&m, "modproxy_request_duration_seconds_count"), 7.0);
    assert_eq!(
        sample(&m, "modproxy_request_duration_seconds_bucket{le=\"+Inf\"}"),
        7.0
    );
    assert_eq!(sample(&m, "modproxy_response_bytes_total"), 35.0);
    let (u0, u1) = (b[0].url(), b[1].url());
    let label = |u: &str| format!("{{balancer=\"c\",member=\"{u}\"}}");
    assert_eq!(
        sample(
            &m,
            &format!("modproxy_balancer_member_elected_total{}", label(&u0))
        ),
        7.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("modproxy_balancer_member_elected_total{}", label(&u1))
        ),
        0.0
    );
    assert_eq!(
        sample(&m, &format!("modproxy_balancer_member_busy{}", label(&u0))),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("modproxy_balancer_member_errors_total{}", label(&u0))
        ),
        0.0
    );
    let state = format!(
        "modproxy_balancer_member_state{{balancer=\"c\",member=\"{u1}\",state=\"disabled\"}}"
    );
    assert_eq!(sample(&m, &state), 1.0);
    assert!(
        m.contains("modproxy_module_info{module=\"proxy_balancer\""),
        "{m}"
    );
    let pool = format!("modproxy_backend_pool_idle_connections{{worker=\"{u0}\"}}");
    let idle = sample(&m, &pool);
    assert!(
        (0.0..=1.0).contains(&idle),
        "sequential requests share one connection: {m}"
    );
    // The scrape itself is counted once it is done.
    let again = get(port, "/metrics", &[]).unwrap().text();
    assert_eq!(sample(&again, "modproxy_requests_total"), 8.0);
}

#[test]
fn one_access_log_line_per_request() {
    let b = [Backend::text("m0")];
    let root = root_with_modules();
    let port = free_port();
    // [log] is a top-level table: it must come before the first [[vhost]].
    let text = config(port, &b, &[""], "");
    root.config(&format!(
        "[log]\naccess_log = \"logs/access.log\"\n\n{text}{MANAGER}"
    ));
    let _server = Server::start(&root, port);
    let paths = ["/", "/a?x=1", "/balancer-manager", "/nope", "/metrics"];
    for p in paths {
        get(
            port,
            p,
            &[
                ("User-Agent", "manager-test"),
                ("Referer", "http://r.example/"),
            ],
        )
        .unwrap();
    }
    let log_path = root.dir.join("logs/access.log");
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    eventually("five access-log lines", || {
        read().lines().count() >= paths.len()
    });
    std::thread::sleep(Duration::from_millis(200));
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), paths.len(), "{text}");
    for (line, p) in lines.iter().zip(paths) {
        // Apache's combined format: host ident user [time] "request" status bytes "referer" "agent"
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(
            line.contains(&format!("\"GET {p} HTTP/1.1\" 200 ")),
            "{line}"
        );
        assert!(
            line.ends_with("\"http://r.example/\" \"manager-test\""),
            "{line}"
        );
    }
}

/// `access_log_buffer` (nginx's `buffer=`): lines wait in memory until
/// the buffer would overflow, until a reopen (SIGUSR1) and at exit; the
/// flush interval is set long here so that only those write.
#[test]
fn a_buffered_access_log_writes_when_full_on_reopen_and_at_exit() {
    let b = [Backend::text("m0")];
    let root = root_with_modules();
    let port = free_port();
    let text = config(port, &b, &[""], "");
    root.config(&format!(
        "[log]\naccess_log = \"logs/access.log\"\naccess_log_buffer = 1024\naccess_log_flush = 3600\n\n{text}"
    ));
    let mut server = Server::start(&root, port);
    let log_path = root.dir.join("logs/access.log");
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let count = |text: &str| text.lines().filter(|l| l.contains("\"GET /n")).count();
    let mut sent = 0;
    let get_next = |sent: &mut usize| {
        *sent += 1;
        let r = get(port, &format!("/n{sent}"), &[]).unwrap();
        assert_eq!(r.status, 200);
        *sent
    };
    for _ in 0..3 {
        get_next(&mut sent);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&read()), 0, "three short lines stay in the buffer");
    // About 90 bytes a line: the twelfth overflows 1024 bytes, and what
    // was buffered before it is written whole.
    while count(&read()) == 0 {
        assert!(
            get_next(&mut sent) < 20,
            "the buffer never overflowed: {}",
            read()
        );
    }
    let written = read();
    assert!(
        written.ends_with('\n') && written.len() <= 1024,
        "{written}"
    );
    get_next(&mut sent);
    let _ = std::process::Command::new("kill")
        .args(["-USR1", &server.pid().to_string()])
        .status();
    eventually("the reopen flushes", || count(&read()) == sent);
    get_next(&mut sent);
    assert_eq!(count(&read()), sent - 1);
    assert!(server.stop().is_some_and(|s| s.success()));
    let text = read();
    assert_eq!(count(&text), sent, "every line is written at exit: {text}");
    for (i, line) in text.lines().enumerate() {
        assert!(
            line.contains(&format!("\"GET /n{} HTTP/1.1\" 200 ", i + 1)),
            "{line}"
        );
    }
}

#[test]
fn status_prints_balancers_and_members_without_a_manager_path() {
    let b = [Backend::text("m0"), Backend::text("m1")];
    let root = root_with_modules();
    let port = free_port();
    root.config(&config(port, &b, &["", "status = \"+D\""], ""));
    let _server = Server::start(&root, port);
    assert_eq!(picks(port, "/", &[], 3), ["m0"; 3]);
    let out = root.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("balancer://c lbmethod byrequests"), "{text}");
    assert!(
        text.contains("member")
            && text.contains("elected")
            && text.contains("busy")
            && text.contains("errors"),
        "{text}"
    );
    let row = |u: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(u))
            .unwrap_or_else(|| panic!("no row for {u}:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let (r0, r1) = (row(&b[0].url()), row(&b[1].url()));
    assert_eq!(&r0[1..5], ["ok", "3", "0", "0"], "{text}");
    assert_eq!(&r1[1..5], ["disabled", "0", "0", "0"], "{text}");
}
