//! Active health checks (proxy_hcheck) with real backends: a member whose
//! `/health` fails is taken out within `hcinterval × hcfails` plus one
//! interval while wrk loads the balancer, with no client error, and comes
//! back after `hcpasses`; the four methods; a condition on the body; one
//! check per interval per member with two worker threads; a hanging check
//! cut at `hctimeout`; an agent that drains a member; and the verdicts in
//! `modproxy status`, the metrics and across a restart.

use modproxy_tests::balancer::{member, picks, site};
use modproxy_tests::figures::{wrk, wrk_finish};
use modproxy_tests::{free_port, get, Backend, Server, ServerRoot};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A member that answers its name, and `/health` with 200 or, once
/// `sick` is set, 503; `checks` counts the health requests by method.
struct Member {
    backend: Backend,
    sick: Arc<AtomicBool>,
    checks: Arc<AtomicUsize>,
}

impl Member {
    fn start(name: &'static str) -> Member {
        let (sick, checks) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s, c) = (sick.clone(), checks.clone());
        let backend = Backend::start(move |seen| {
            if seen.target == "/health" {
                c.fetch_add(1, Ordering::SeqCst);
                let status = if s.load(Ordering::SeqCst) { 503 } else { 200 };
                return (
                    status,
                    vec![],
                    format!("{name} status={status}").into_bytes(),
                );
            }
            (200, vec![], name.as_bytes().to_vec())
        });
        Member {
            backend,
            sick,
            checks,
        }
    }
    /// Requests other than checks that reached this member.
    fn served(&self) -> usize {
        self.backend
            .seen()
            .iter()
            .filter(|s| s.target != "/health")
            .count()
    }
}

/// What every test here enables.
const MODULES: [&str; 4] = [
    "proxy_http",
    "proxy_balancer",
    "proxy_hcheck",
    "lbmethod_byrequests",
];

fn serve(keys: &str, members: &[String], extra: &str) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    root.enable(&MODULES);
    let port = free_port();
    root.config(&format!("{}{extra}", site(port, keys, members)));
    let server = Server::start(&root, port);
    (root, server)
}

fn wait_until(limit: Duration, what: &str, log: impl Fn() -> String, ok: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < limit,
            "{what} did not happen within {limit:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_member_failing_its_checks_leaves_under_load_without_client_errors_and_comes_back() {
    let (a, b) = (Member::start("a"), Member::start("b"));
    let hc = "hcmethod = \"GET\", hcuri = \"/health\", hcinterval = 1, hcfails = 2, hcpasses = 2";
    let members = [member(&a.backend.url(), hc), member(&b.backend.url(), hc)];
    let (root, server) = serve("", &members, "");
    let url = format!("http://127.0.0.1:{}/", server.port);
    let load = wrk(&url, &["-t1", "-c8", "-d9s"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(a.served() > 0, "a takes traffic while healthy");
    a.sick.store(true, Ordering::SeqCst);
    let sick_at = Instant::now();
    // Out within hcinterval × hcfails, plus an interval for the check in
    // flight and the spread of the first checks.
    wait_until(
        Duration::from_secs(4),
        "a going out",
        || root.log(),
        || root.log().contains("failed its health check (status 503)"),
    );
    let out_after = sick_at.elapsed();
    let served_when_out = a.served();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        a.served(),
        served_when_out,
        "no request reached a while it was out"
    );
    let status = root.cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("hc-failed") && text.contains("check GET failed"),
        "{text}"
    );
    a.sick.store(false, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(4),
        "a coming back",
        || root.log(),
        || {
            root.log()
                .contains("passed its health checks; it serves again")
        },
    );
    let (report, raw) = wrk_finish(load);
    assert!(report.requests > 1000, "{raw}");
    assert_eq!(
        (
            report.non_2xx,
            report.connect_errors,
            report.read_errors,
            report.timeouts
        ),
        (0, 0, 0, 0),
        "{raw}"
    );
    let back: Vec<String> = picks(server.port, "/", &[], 4);
    assert!(back.contains(&"a".to_owned()), "{back:?}");
    let log = root.log();
    assert_eq!(
        log.matches("failed its health check").count(),
        1,
        "logged once: {log}"
    );
    eprintln!(
        "out after {out_after:?}; {} requests, none failed",
        report.requests
    );
}

#[test]
fn tcp_options_head_and_get_checks_each_probe_the_member() {
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let ok = Member::start("ok");
    let methods = ["TCP", "OPTIONS", "HEAD", "GET"];
    let mut members: Vec<String> = methods
        .iter()
        .map(|m| {
            member(
                &ok.backend.url(),
                &format!("hcmethod = \"{m}\", hcuri = \"/health\", hcinterval = 1"),
            )
        })
        .collect();
    members.push(member(&dead_url, "hcmethod = \"TCP\", hcinterval = 1"));
    let (root, _server) = serve("", &members, "");
    wait_until(
        Duration::from_secs(5),
        "the dead member going out",
        || root.log(),
        || {
            root.log().contains(&format!(
                "member {dead_url} failed its health check (connect to"
            ))
        },
    );
    std::thread::sleep(Duration::from_millis(1200));
    let seen: Vec<String> = ok.backend.seen().iter().map(|s| s.method.clone()).collect();
    for m in ["OPTIONS", "HEAD", "GET"] {
        assert!(seen.iter().any(|s| s == m), "no {m} check in {seen:?}");
    }
    assert!(
        ok.backend.connections() > seen.len(),
        "the TCP check connects without a request"
    );
    let metrics = root.cli(&["status"]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert_eq!(text.matches("check TCP passed").count(), 1, "{text}");
}

#[test]
fn a_condition_on_the_body_decides_and_a_missing_one_is_a_config_error() {
    let flaky = Backend::start(|seen| {
        let body = if seen.target == "/ready" {
            "state: warming"
        } else {
            "m"
        };
        (200, vec![], body.as_bytes().to_vec())
    });
    let expr = "\n[[vhost.proxy.hcheck_expr]]\nname = \"ready\"\nbody = \"state: up\"\n";
    let members = [member(
        &flaky.url(),
        "hcmethod = \"GET\", hcuri = \"/ready\", hcexpr = \"ready\", hcinterval = 1",
    )];
    let (root, server) = serve("", &members, expr);
    wait_until(
        Duration::from_secs(4),
        "the body condition failing",
        || root.log(),
        || root.log().contains("body lacks \"state: up\""),
    );
    // Its only member failed: requests still try it (as Apache), said once.
    assert_eq!(
        picks(server.port, "/", &[], 2),
        ["m", "m"],
        "{}",
        root.log()
    );
    assert!(
        root.log().contains("every member failed its health checks"),
        "{}",
        root.log()
    );

    let typo = [member(
        &flaky.url(),
        "hcmethod = \"GET\", hcexpr = \"redy\"",
    )];
    let bad = ServerRoot::new();
    bad.enable(&[
        "proxy_http",
        "proxy_balancer",
        "proxy_hcheck",
        "lbmethod_byrequests",
    ]);
    bad.config(&format!("{}{expr}", site(free_port(), "", &typo)));
    let out = bad.cli(&["configtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "members[0].hcexpr: no [[vhost.proxy.hcheck_expr]] is named `redy` (defined: ready)"
        ),
        "{err}"
    );

    let unenabled = ServerRoot::new();
    unenabled.enable(&["proxy_http", "proxy_balancer", "lbmethod_byrequests"]);
    unenabled.config(&site(
        free_port(),
        "",
        &[member(&flaky.url(), "hcmethod = \"GET\"")],
    ));
    let out = unenabled.cli(&["configtest"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run `modproxy enmod proxy_hcheck`"), "{err}");
    drop(server);
}

#[test]
fn two_worker_threads_still_make_one_check_per_interval_per_member() {
    let m = Member::start("m");
    let members = [member(
        &m.backend.url(),
        "hcmethod = \"GET\", hcuri = \"/health\", hcinterval = 1",
    )];
    let root = ServerRoot::new();
    root.enable(&MODULES);
    let port = free_port();
    root.config(&format!("workers = 2\n{}", site(port, "", &members)));
    let _server = Server::start(&root, port);
    std::thread::sleep(Duration::from_millis(1000));
    let before = m.checks.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(5));
    let during = m.checks.load(Ordering::SeqCst) - before;
    assert!(
        (4..=6).contains(&during),
        "{during} checks in 5 s at hcinterval = 1\n{}",
        root.log()
    );
}

#[test]
fn a_hanging_check_is_cut_at_hctimeout_and_never_piles_up() {
    // Accepts, reads, never answers; counts connections.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hang.local_addr().unwrap());
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    std::thread::spawn(move || {
        for s in hang.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 1024];
                while s.read(&mut buf).is_ok_and(|n| n > 0) {}
            });
        }
    });
    // hctimeout 1 s, shorter than the worker's 60 s timeout; hcinterval
    // 1 s, shorter than a check could last.
    let members = [member(
        &url,
        "hcmethod = \"GET\", hcinterval = 1, hctimeout = 1",
    )];
    let (root, _server) = serve("", &members, "");
    wait_until(
        Duration::from_secs(4),
        "the hanging check cut",
        || root.log(),
        || root.log().contains("no answer within 1000 ms (hctimeout)"),
    );
    std::thread::sleep(Duration::from_secs(3));
    let n = conns.load(Ordering::SeqCst);
    assert!(
        n <= 5,
        "{n} check connections in about 5 s: checks piled up\n{}",
        root.log()
    );
}

#[test]
fn an_agent_drains_its_member_and_a_verdict_survives_a_restart() {
    let (a, b) = (Member::start("a"), Member::start("b"));
    // The agent answers one line per connection.
    let agent = TcpListener::bind("127.0.0.1:0").unwrap();
    let agent_addr = agent.local_addr().unwrap().to_string();
    let word = Arc::new(std::sync::Mutex::new("up 100%\n".to_owned()));
    let w = word.clone();
    std::thread::spawn(move || {
        for mut s in agent.incoming().flatten() {
            let line = w.lock().unwrap().clone();
            let _ = s.write_all(line.as_bytes());
        }
    });
    let members = [
        member(
            &a.backend.url(),
            &format!("hcagent = \"{agent_addr}\", hcinterval = 1"),
        ),
        member(
            &b.backend.url(),
            "hcmethod = \"GET\", hcuri = \"/health\", hcinterval = 1",
        ),
    ];
    let (root, server) = serve("", &members, "");
    std::thread::sleep(Duration::from_millis(1500));
    *word.lock().unwrap() = "drain\n".into();
    wait_until(
        Duration::from_secs(4),
        "a draining",
        || root.log(),
        || String::from_utf8_lossy(&root.cli(&["status"]).stdout).contains("draining"),
    );
    assert_eq!(picks(server.port, "/", &[], 4), ["b"; 4], "{}", root.log());
    *word.lock().unwrap() = "up\n".into();

    // b fails its check; the new process keeps it out until it passes.
    b.sick.store(true, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(4),
        "b going out",
        || root.log(),
        || {
            root.log().contains(&format!(
                "member {} failed its health check",
                b.backend.url()
            ))
        },
    );
    root.restart();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        root.log().contains("it stays out until it passes"),
        "{}",
        root.log()
    );
    let got = picks(server.port, "/", &[], 4);
    assert!(got.iter().all(|g| g == "a"), "{got:?}\n{}", root.log());
    let m = get(server.port, "/", &[]).unwrap();
    assert_eq!(m.status, 200);
}

/// AJP13's CPING against scripted containers: one answers CPONG, one
/// answers garbage; the second goes out, the first stays.
#[test]
fn cping_checks_an_ajp_member() {
    fn container(answer: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ajp://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 5];
                    while s.read_exact(&mut buf).is_ok() {
                        assert_eq!(buf, [0x12, 0x34, 0x00, 0x01, 0x0a], "a CPING");
                        if s.write_all(answer).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        url
    }
    let good = container(&[b'A', b'B', 0x00, 0x01, 0x09]);
    let bad = container(b"HTTP/");
    let hc = "hcmethod = \"CPING\", hcinterval = 1";
    let root = ServerRoot::new();
    root.enable(&[
        "proxy_http",
        "proxy_ajp",
        "proxy_balancer",
        "proxy_hcheck",
        "lbmethod_byrequests",
    ]);
    let port = free_port();
    root.config(&site(port, "", &[member(&good, hc), member(&bad, hc)]));
    let _server = Server::start(&root, port);
    wait_until(
        Duration::from_secs(4),
        "the garbage answer going out",
        || root.log(),
        || {
            root.log()
                .contains(&format!("member {bad} failed its health check (answered"))
        },
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        !root.log().contains(&format!("member {good} failed")),
        "{}",
        root.log()
    );
}
