//! etcd discovery against a real etcd (Debian's etcd-server on loopback
//! ports): each key under the prefix is a member, watched, so a put or a
//! delete takes effect within a second, under wrk load with no client
//! error; etcd killed and restarted mid-load keeps the last members in
//! use, says "discovery stale since …" once and again on recovery.

use modproxy_tests::balancer::{picks, serve, site};
use modproxy_tests::discovery::{log_lines, member_state, status, wait_until, Etcd};
use modproxy_tests::figures::{wrk, wrk_finish};
use modproxy_tests::member::Member;
use modproxy_tests::{free_port, get, Server, ServerRoot};
use std::time::{Duration, Instant};

const MODULES: &[&str] = &["lbmethod_byrequests", "proxy_discovery"];

fn keys(etcd: &Etcd) -> String {
    format!(
        "discovery = {{ etcd = [\"{}\"], prefix = \"/modproxy/c/\" }}",
        etcd.endpoint()
    )
}

fn member_json(m: &Member, extra: &str) -> String {
    format!("{{\"url\": \"{}\"{extra}}}", m.url())
}

#[test]
fn puts_and_deletes_take_effect_within_a_second_under_load() {
    let (m0, m1, m2) = (
        Member::start("m0"),
        Member::start("m1"),
        Member::start("m2"),
    );
    let etcd = Etcd::start();
    etcd.put("/modproxy/c/m0", &member_json(&m0, ""));
    etcd.put(
        "/modproxy/c/m1",
        &member_json(&m1, ", \"loadfactor\": 3, \"route\": \"r1\""),
    );
    let (root, server) = serve(MODULES, &keys(&etcd), &[]);
    let log = || log_lines(&root.log());
    wait_until(
        "both members are listed",
        Duration::from_secs(10),
        || member_state(&status(&root), &m1.url()).is_some(),
        log,
    );
    let got = picks(server.port, "/", &[], 8);
    assert_eq!(
        got.iter().filter(|g| *g == "m1").count(),
        6,
        "loadfactor 3 to 1: {got:?}"
    );
    assert!(status(&root).contains("source etcd /modproxy/c/: fresh"));

    let load = wrk(
        &format!("http://127.0.0.1:{}/", server.port),
        &["-t2", "-c8", "-d7s", "--timeout", "2s"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    etcd.put("/modproxy/c/m2", &member_json(&m2, ", \"loadfactor\": 2"));
    wait_until("m2 serves", Duration::from_secs(1), || m2.served() > 0, log);
    let joined = t.elapsed();
    std::thread::sleep(Duration::from_millis(1000));
    let t = Instant::now();
    etcd.del("/modproxy/c/m0");
    wait_until(
        "m0 is removed",
        Duration::from_secs(1),
        || member_state(&status(&root), &m0.url()).is_some_and(|(s, _)| s == "removed"),
        log,
    );
    let left = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let at_removal = m0.served();
    // An update of a member's value (its weight) applies as well.
    etcd.put("/modproxy/c/m1", &member_json(&m1, ", \"loadfactor\": 5"));
    wait_until(
        "m1's new loadfactor",
        Duration::from_secs(1),
        || member_state(&status(&root), &m1.url()) == Some(("ok".into(), 5)),
        log,
    );
    std::thread::sleep(Duration::from_millis(1000));
    let (report, text) = wrk_finish(load);

    assert_eq!(report.failed(), 0, "clients saw errors:\n{text}\n{}", log());
    assert!(report.requests > 1000, "the load ran: {text}");
    assert_eq!(m0.served(), at_removal, "m0 got requests after it left");
    eprintln!(
        "figures: etcd put -> first request on the member {} ms, delete -> drained {} ms (each including one etcdctl run); {} requests, 0 errors",
        joined.as_millis(),
        left.as_millis(),
        report.requests
    );

    // Back under the same URL: its old slot, serving again.
    etcd.put("/modproxy/c/m0", &member_json(&m0, ""));
    wait_until(
        "m0 serves again",
        Duration::from_secs(2),
        || picks(server.port, "/", &[], 4).iter().any(|g| g == "m0"),
        log,
    );
    let s = status(&root);
    assert_eq!(s.matches(&m0.url()).count(), 1, "one slot per URL:\n{s}");
}

#[test]
fn etcd_killed_and_restarted_mid_load_keeps_the_last_members() {
    let (m0, m1, m2) = (
        Member::start("m0"),
        Member::start("m1"),
        Member::start("m2"),
    );
    let mut etcd = Etcd::start();
    etcd.put("/modproxy/c/m0", &member_json(&m0, ""));
    etcd.put("/modproxy/c/m1", &member_json(&m1, ""));
    // With the balancer manager mapped: its JSON shows the stale mark too.
    let root = ServerRoot::new();
    let mut modules = vec!["proxy_http", "proxy_balancer"];
    modules.extend_from_slice(MODULES);
    root.enable(&modules);
    let port = free_port();
    root.config(&format!(
        "{}\n[vhost.balancer_manager]\npath = \"/balancer-manager\"\n",
        site(port, &keys(&etcd), &[])
    ));
    let server = Server::start(&root, port);
    let log = || log_lines(&root.log());
    let manager = || {
        get(port, "/balancer-manager/api", &[])
            .map(|r| r.text())
            .unwrap_or_default()
    };
    wait_until(
        "both members are listed",
        Duration::from_secs(10),
        || member_state(&status(&root), &m1.url()).is_some(),
        log,
    );

    let load = wrk(
        &format!("http://127.0.0.1:{}/", server.port),
        &["-t2", "-c8", "-d8s", "--timeout", "2s"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    etcd.kill();
    let noticed = wait_until(
        "the manager shows the source stale",
        Duration::from_secs(5),
        || status(&root).contains("discovery stale since"),
        log,
    );
    let page = manager();
    assert!(
        page.contains("\"state\":\"discovery stale since "),
        "the manager's JSON shows it: {page}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let served_while_down = (m0.served(), m1.served());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        m0.served() > served_while_down.0 && m1.served() > served_while_down.1,
        "both known members serve while etcd is down"
    );
    etcd.restart();
    let recovered = wait_until(
        "the source is fresh again",
        Duration::from_secs(5),
        || status(&root).contains("source etcd /modproxy/c/: fresh"),
        log,
    );
    assert!(manager().contains("\"state\":\"fresh\""), "{}", manager());
    etcd.put("/modproxy/c/m2", &member_json(&m2, ""));
    wait_until("m2 serves", Duration::from_secs(1), || m2.served() > 0, log);
    let (report, text) = wrk_finish(load);

    assert_eq!(report.failed(), 0, "clients saw errors:\n{text}\n{}", log());
    let lines = log();
    assert_eq!(
        lines.matches("discovery stale since").count(),
        1,
        "said once:\n{lines}"
    );
    assert_eq!(
        lines.matches("discovery recovered").count(),
        1,
        "and once on recovery:\n{lines}"
    );
    eprintln!(
        "figures: etcd killed -> stale shown {} ms; restarted -> fresh {} ms; {} requests, 0 errors",
        noticed.as_millis(),
        recovered.as_millis(),
        report.requests
    );
}

/// The balancer's `hc*` keys are its discovered members' defaults, and
/// proxy_hcheck starts checking a member as it joins.
#[test]
fn discovered_members_are_health_checked() {
    let (m0, mut m1) = (Member::start("m0"), Member::start("m1"));
    let etcd = Etcd::start();
    etcd.put("/modproxy/c/m0", &member_json(&m0, ""));
    let keys = format!("{}\nhcmethod = \"GET\"\nhcinterval = 1", keys(&etcd));
    let (root, _server) = serve(
        &["lbmethod_byrequests", "proxy_discovery", "proxy_hcheck"],
        &keys,
        &[],
    );
    let log = || log_lines(&root.log());
    etcd.put("/modproxy/c/m1", &member_json(&m1, ""));
    wait_until(
        "m1 is checked",
        Duration::from_secs(6),
        || status(&root).matches("check GET passed").count() == 2,
        || format!("{}\n{}", status(&root), log()),
    );
    m1.kill();
    wait_until(
        "m1 fails its check",
        Duration::from_secs(6),
        || member_state(&status(&root), &m1.url()).is_some_and(|(s, _)| s == "hc-failed"),
        || format!("{}\n{}", status(&root), log()),
    );
}
