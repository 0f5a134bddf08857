//! configtest and the discovery keys: `discovery` and `manager_sync`
//! without module proxy_discovery are refused with the module to enable
//! (as Apache names the module a directive needs); with it, mistakes in
//! their values are named with their key path, every one in one run.

use modproxy_tests::balancer::site;
use modproxy_tests::{free_port, ServerRoot};

fn configtest(modules: &[&str], keys: &str) -> (Option<i32>, String) {
    let root = ServerRoot::new();
    let mut all = vec!["proxy_http", "proxy_balancer", "lbmethod_byrequests"];
    all.extend_from_slice(modules);
    root.enable(&all);
    root.config(&site(free_port(), keys, &[]));
    let out = root.cli(&["configtest"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn discovery_needs_its_module() {
    let (code, err) = configtest(
        &[],
        "discovery = { dns = \"_http._tcp.app.internal\", resolver = \"127.0.0.1:53\" }",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("proxy.balancer[0].discovery: `discovery` needs module proxy_discovery, which is not enabled: run `modproxy enmod proxy_discovery`"),
        "{err}"
    );
}

#[test]
fn mistakes_in_the_sources_are_named_with_their_key() {
    let (code, err) = configtest(
        &["proxy_discovery"],
        "discovery = { dns = \"app.internal\", resolver = \"localhost\" }\nmanager_sync = { etcd = [\"127.0.0.1:2379\"], prefix = \"/m/\" }",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("proxy.balancer[0].discovery.resolver: `localhost` is not ip:port"),
        "{err}"
    );
    assert!(
        err.contains(
            "proxy.balancer[0].manager_sync.etcd: `127.0.0.1:2379` is not an etcd endpoint"
        ),
        "{err}"
    );
    let (code, err) = configtest(&[], "");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("has no members"),
        "without discovery, members are still required: {err}"
    );
}
