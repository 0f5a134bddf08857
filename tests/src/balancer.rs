//! Balancer test helpers: a server root with the balancer modules enabled
//! and a `balancer://c` over given members, and pick sequences read through
//! real requests (each member answers its own name).

use crate::{free_port, get, Server, ServerRoot};

/// `[[vhost]]` on `port` passing everything to `balancer://c`, whose
/// settings are `keys` (TOML lines) and members `members` (inline tables).
pub fn site(port: u16, keys: &str, members: &[String]) -> String {
    format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n\n[vhost.proxy]\n\
         pass = [{{ path = \"/\", url = \"balancer://c/\" }}]\n\
         pass_reverse = [{{ path = \"/\", url = \"balancer://c/\" }}]\n\n\
         [[vhost.proxy.balancer]]\nname = \"c\"\n{keys}\nmembers = [\n  {}\n]\n",
        members.join(",\n  ")
    )
}

/// One member as an inline table: `{ url = "URL", EXTRA }`.
pub fn member(url: &str, extra: &str) -> String {
    if extra.is_empty() {
        format!("{{ url = \"{url}\" }}")
    } else {
        format!("{{ url = \"{url}\", {extra} }}")
    }
}

/// A URL nothing listens on: connects are refused.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// A running modproxy with proxy_http, proxy_balancer, `modules` and the
/// site above. Keep the root: dropping it deletes the server root.
pub fn serve(modules: &[&str], keys: &str, members: &[String]) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    let mut all = vec!["proxy_http", "proxy_balancer"];
    all.extend_from_slice(modules);
    root.enable(&all);
    let port = free_port();
    root.config(&site(port, keys, members));
    let server = Server::start(&root, port);
    (root, server)
}

/// Bodies of `n` sequential GETs of `path` with `headers`; a non-200 shows
/// as `<STATUS>`.
/// Asserts that each of a few clients (by `X-Client-Id`) always gets the
/// same member, as a client-affinity lbmethod such as the example's does.
pub fn assert_each_client_sticks(port: u16, log: impl Fn() -> String) {
    for id in ["alice", "bob", "carol"] {
        let got = picks(port, "/", &[("X-Client-Id", id)], 4);
        assert!(
            got.iter().all(|g| *g == got[0] && g.starts_with('m')),
            "{id}: {got:?}\n{}",
            log()
        );
    }
}

pub fn picks(port: u16, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match get(port, path, headers) {
            Ok(r) if r.status == 200 => r.text(),
            Ok(r) => format!("<{}>", r.status),
            Err(e) => format!("<{e}>"),
        })
        .collect()
}
