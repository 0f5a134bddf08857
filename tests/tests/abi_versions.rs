//! The ABI only grows: a module built for an older minor keeps loading
//! and working after host services were appended. The fixture is the
//! example lbmethod as released with ABI 1.0, built against modproxy-api
//! as of that release (tests/fixtures/abi_1_0), the way its author built
//! it then. (Newer minors and other majors are refused:
//! faulty_modules.rs.)

use modproxy_tests::balancer::{assert_each_client_sticks, member, site};
use modproxy_tests::third_party::{build_into, with_library};
use modproxy_tests::{free_port, repo_root, Backend, Server, ServerRoot};

#[test]
fn an_lbmethod_built_for_abi_1_0_loads_and_balances_on_todays_server() {
    let fixture = repo_root().join("tests/fixtures/abi_1_0/lbmethod_clienthash");
    let lib = build_into(
        &fixture,
        "lbmethod_clienthash",
        &repo_root().join("target/abi_1_0"),
    );
    let b: Vec<Backend> = (0..3).map(|i| Backend::text(&format!("m{i}"))).collect();
    let members: Vec<String> = b.iter().map(|m| member(&m.url(), "")).collect();
    let root = ServerRoot::new();
    let descriptor = std::fs::read_to_string(fixture.join("lbmethod_clienthash.toml")).unwrap();
    root.write(
        "mods-available/lbmethod_clienthash.toml",
        &with_library(&descriptor, &lib),
    );
    root.enable(&["proxy_http", "lbmethod_clienthash"]);
    let port = free_port();
    root.config(&site(port, "lbmethod = \"clienthash\"", &members));
    let _server = Server::start(&root, port);

    // Its own behaviour, through today's proxy_balancer: one client, one member.
    assert_each_client_sticks(port, || root.log());
    // `modproxy modules` shows which ABI it was built for.
    let listing = root.cli(&["modules"]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    let line = listing
        .lines()
        .find(|l| l.contains("lbmethod_clienthash"))
        .unwrap_or_default();
    assert!(line.contains("1.0"), "{listing}");
}

/// A flag bit added after a module was built (1.3's HC_FAILED, "failed
/// its health checks") must not make that module pick such a member: the
/// balancer shows it as in error too, which a 1.0 lbmethod understands.
#[test]
fn an_lbmethod_built_for_abi_1_0_skips_a_member_that_failed_its_health_checks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let fixture = repo_root().join("tests/fixtures/abi_1_0/lbmethod_clienthash");
    let lib = build_into(
        &fixture,
        "lbmethod_clienthash",
        &repo_root().join("target/abi_1_0"),
    );
    let sick: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let b: Vec<Backend> = (0..3)
        .map(|i| {
            let s = sick[i].clone();
            Backend::start(move |seen| {
                let ill = seen.target == "/health" && s.load(Ordering::SeqCst);
                (
                    if ill { 503 } else { 200 },
                    vec![],
                    format!("m{i}").into_bytes(),
                )
            })
        })
        .collect();
    let hc = "hcmethod = \"GET\", hcuri = \"/health\", hcinterval = 1";
    let members: Vec<String> = b.iter().map(|m| member(&m.url(), hc)).collect();
    let root = ServerRoot::new();
    let descriptor = std::fs::read_to_string(fixture.join("lbmethod_clienthash.toml")).unwrap();
    root.write(
        "mods-available/lbmethod_clienthash.toml",
        &with_library(&descriptor, &lib),
    );
    root.enable(&["proxy_http", "proxy_hcheck", "lbmethod_clienthash"]);
    let port = free_port();
    root.config(&site(port, "lbmethod = \"clienthash\"", &members));
    let _server = Server::start(&root, port);
    let alice = [("X-Client-Id", "alice")];
    let first = modproxy_tests::balancer::picks(port, "/", &alice, 1).remove(0);
    let i: usize = first
        .trim_start_matches('m')
        .parse()
        .expect("a member's name");
    sick[i].store(true, Ordering::SeqCst);
    let t0 = std::time::Instant::now();
    while !root.log().contains("failed its health check") {
        assert!(t0.elapsed().as_secs() < 5, "{}", root.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let after = modproxy_tests::balancer::picks(port, "/", &alice, 4);
    assert!(
        after.iter().all(|g| *g != first && g.starts_with('m')),
        "{first} then {after:?}\n{}",
        root.log()
    );
}
