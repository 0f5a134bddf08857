//! Under load (wrk, 8 connections, two members) one member is killed: no
//! client sees an error, because the failed connect is retried on the other
//! member; brought back on the same port, it takes traffic again once its
//! `retry` (1 s) has passed.

use modproxy_tests::balancer::{member, serve};
use modproxy_tests::member::Member;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn killing_a_member_under_load_costs_no_request_and_it_rejoins_after_retry() {
    if Command::new("wrk").arg("--version").output().is_err() {
        panic!("wrk is not installed: apt-get install -y wrk (.ci/run does)");
    }
    let mut m0 = Member::start("m0");
    let m1 = Member::start("m1");
    let members = [
        member(&m0.url(), "retry = 1"),
        member(&m1.url(), "retry = 1"),
    ];
    let (root, server) = serve(&["lbmethod_byrequests"], "", &members);

    let wrk = Command::new("wrk")
        .args(["-t2", "-c8", "-d6s", "--timeout", "2s"])
        .arg(format!("http://127.0.0.1:{}/", server.port))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk");

    std::thread::sleep(Duration::from_millis(1500));
    let before_kill = m0.served();
    m0.kill();
    std::thread::sleep(Duration::from_millis(1500));
    m0.revive();
    let at_revival = m0.served();
    let out = wrk.wait_with_output().expect("wrk finishes");
    let report = String::from_utf8_lossy(&out.stdout);

    assert!(
        out.status.success(),
        "wrk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(before_kill > 0, "m0 served before it was killed\n{report}");
    assert!(
        !report.contains("Non-2xx") && !report.contains("Socket errors"),
        "clients saw errors:\n{report}\n{}",
        tail(&root.log())
    );
    let requests = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(requests > 1000, "the load ran: {report}");
    assert!(
        m0.served() > at_revival,
        "m0 took no traffic after it came back ({} before the kill, {} at revival, {} at the end)\n{}",
        before_kill,
        at_revival,
        m0.served(),
        tail(&root.log())
    );
    assert!(
        root.log().contains("in error state"),
        "the kill was noticed"
    );
}

/// The last lines of a log (the access log makes it long).
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[error]") || l.contains("[warn]"))
        .collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
