//! DNS discovery against a real DNS server (dnsmasq on a loopback port):
//! SRV records give a balancer its members (priority → lbset, weight →
//! loadfactor), members that join and leave under wrk load cost no client
//! a single error, an A record with a port works too, and the DNS server
//! going away keeps the last members, marked "discovery stale since …".

use modproxy_tests::balancer::{picks, serve};
use modproxy_tests::discovery::{log_lines, member_state, srv, status, wait_until, Dns};
use modproxy_tests::figures::{wrk, wrk_finish};
use modproxy_tests::member::Member;
use std::time::Duration;

const MODULES: &[&str] = &["lbmethod_byrequests", "proxy_discovery"];

fn keys(dns: &Dns, name: &str) -> String {
    format!(
        "discovery = {{ dns = \"{name}\", resolver = \"{}\", refresh = 1 }}",
        dns.addr()
    )
}

#[test]
fn srv_members_join_and_leave_under_load_without_a_client_error() {
    let (m0, m1, m2) = (
        Member::start("m0"),
        Member::start("m1"),
        Member::start("m2"),
    );
    let mut dns = Dns::start(&[srv(m0.port, 0, 10), srv(m1.port, 0, 30)]);
    let (root, server) = serve(MODULES, &keys(&dns, "_http._tcp.app.internal"), &[]);
    let log = || log_lines(&root.log());
    wait_until(
        "both are listed",
        Duration::from_secs(10),
        || member_state(&status(&root), &m1.url()).is_some(),
        log,
    );
    let got = picks(server.port, "/", &[], 8);
    assert_eq!(
        (
            got.iter().filter(|g| *g == "m0").count(),
            got.iter().filter(|g| *g == "m1").count()
        ),
        (2, 6),
        "weights 10 and 30 are loadfactors 10 and 30: {got:?}\n{}",
        log()
    );
    let s = status(&root);
    assert_eq!(member_state(&s, &m0.url()), Some(("ok".into(), 10)), "{s}");
    assert!(
        s.contains("source DNS _http._tcp.app.internal: fresh"),
        "{s}"
    );

    let load = wrk(
        &format!("http://127.0.0.1:{}/", server.port),
        &["-t2", "-c8", "-d7s", "--timeout", "2s"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    dns.set(&[
        srv(m0.port, 0, 10),
        srv(m1.port, 0, 30),
        srv(m2.port, 0, 20),
    ]);
    let joined = wait_until("m2 serves", Duration::from_secs(5), || m2.served() > 0, log);
    std::thread::sleep(Duration::from_millis(1000));
    dns.set(&[srv(m1.port, 0, 30), srv(m2.port, 0, 20)]);
    let left = wait_until(
        "m0 is removed",
        Duration::from_secs(5),
        || member_state(&status(&root), &m0.url()).is_some_and(|(s, _)| s == "removed"),
        log,
    );
    // Requests in flight on m0 when it left finish; then no new ones.
    std::thread::sleep(Duration::from_millis(300));
    let at_removal = m0.served();
    std::thread::sleep(Duration::from_millis(1500));
    let (report, text) = wrk_finish(load);

    assert_eq!(report.failed(), 0, "clients saw errors:\n{text}\n{}", log());
    assert!(report.requests > 1000, "the load ran: {text}");
    assert_eq!(m0.served(), at_removal, "m0 got requests after it left");
    assert!(m2.served() > 100, "m2 took its share: {}", m2.served());
    eprintln!(
        "figures: SRV record added -> first request on the member {} ms, removed -> drained {} ms (refresh = 1, TTL 1 s); {} requests, 0 errors",
        joined.as_millis(),
        left.as_millis(),
        report.requests
    );
}

#[test]
fn an_a_record_with_a_port_and_an_outage_that_keeps_the_members() {
    let m0 = Member::start("m0");
    let mut dns = Dns::start(&[]);
    let (root, server) = serve(
        MODULES,
        &keys(&dns, &format!("web.app.internal:{}", m0.port)),
        &[],
    );
    let log = || log_lines(&root.log());
    wait_until(
        "m0 is listed",
        Duration::from_secs(10),
        || member_state(&status(&root), &m0.url()).is_some(),
        log,
    );
    assert_eq!(picks(server.port, "/", &[], 2), ["m0", "m0"], "{}", log());

    dns.stop();
    wait_until(
        "the source shows stale",
        Duration::from_secs(10),
        || status(&root).contains("discovery stale since"),
        log,
    );
    assert_eq!(
        picks(server.port, "/", &[], 3),
        ["m0", "m0", "m0"],
        "the last known member still serves"
    );
    std::thread::sleep(Duration::from_secs(2));
    dns.set(&[]);
    wait_until(
        "the source is fresh again",
        Duration::from_secs(10),
        || status(&root).contains(": fresh"),
        log,
    );
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
}
