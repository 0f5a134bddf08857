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
