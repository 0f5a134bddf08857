//! configtest names every problem of a config in one run (core settings,
//! every module's sections, the wiring post_config checks), each with its
//! file and key path and what to do; near misses get "did you mean …?";
//! a `pass` rule an earlier one always takes is a warning, not an error.

use modproxy_tests::{free_port, get, Backend, Server, ServerRoot};

/// `configtest`'s exit code and what it printed (warnings and errors go to stderr).
fn configtest(root: &ServerRoot) -> (Option<i32>, String, String) {
    let out = root.cli(&["configtest"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code(),
        stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The one line of `text` that contains every part, or a panic showing all of it.
fn line_with<'a>(text: &'a str, parts: &[&str]) -> &'a str {
    text.lines()
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in:\n{text}"))
}

#[test]
fn every_problem_of_the_file_is_named_in_one_run() {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "lbmethod_byrequests"]);
    root.config(&format!(
        r#"include = ["sites-enabled/*.toml"]
[limits]
max_conections = 5

[[vhost]]
listen = "127.0.0.1:{port}"

[vhost.proxy]
pass = [
  {{ path = "/old", url = "htp://127.0.0.1:9/" }},
  {{ path = "/", url = "balancer://c/", tmeout = 3 }},
]

[[vhost.proxy.balancer]]
name = "c"
lbmethod = "byrequest"
members = [{{ url = "http://127.0.0.1:9", loadfactr = 2 }}, {{ url = "http://127.0.0.1:10", loadfactor = 0 }}]
"#,
        port = free_port()
    ));
    root.write(
        "sites-available/extra.toml",
        &format!(
            "[[vhost]]\nlisten = \"127.0.0.1:{}\"\n[vhost.proxy]\npreserve_hots = true\n",
            free_port()
        ),
    );
    assert!(root.cli(&["ensite", "extra"]).status.success());
    let (code, _, err) = configtest(&root);
    assert_eq!(code, Some(1), "{err}");
    let main = root.dir.join("modproxy.toml").display().to_string();
    let site = "sites-enabled/extra.toml";
    let expected: [&[&str]; 7] = [
        &[&main, "limits.max_conections: unknown setting", "did you mean max_connections?"],
        &[&main, "vhost[0].proxy.pass[1].tmeout: unknown key: did you mean timeout?"],
        &[&main, "vhost[0].proxy.balancer[0].members[0].loadfactr: unknown key: did you mean loadfactor?"],
        &[&main, "vhost[0].proxy.balancer[0].members[1].loadfactor: 0 is out of range: use a weight from 1 to 100"],
        &[&main, "vhost[0].proxy.balancer[0].lbmethod: no enabled module provides lbmethod byrequest (loaded: byrequests): did you mean byrequests?"],
        &[&main, "vhost[0].proxy.pass[0].url: url htp://127.0.0.1:9/", "did you mean http://?"],
        &[site, "vhost[0].proxy.preserve_hots: unknown key: did you mean preserve_host?"],
    ];
    for parts in expected {
        line_with(&err, parts);
    }
    assert!(
        !err.contains("enmod proxy_htp") && !err.contains("enmod lbmethod_byrequest`"),
        "{err}"
    );
    // Nothing follows from an earlier problem: no "no balancer named c".
    assert!(!err.contains("no balancer named"), "{err}");
    assert_eq!(err.lines().count(), expected.len(), "{err}");
}

#[test]
fn a_scheme_or_lbmethod_a_disabled_module_provides_names_that_module() {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "lbmethod_byrequests"]);
    root.config(&format!(
        r#"[[vhost]]
listen = "127.0.0.1:{}"
[vhost.proxy]
pass = [{{ path = "/ws/", url = "ws://127.0.0.1:9/" }}, {{ path = "/", url = "balancer://c/" }}]
[[vhost.proxy.balancer]]
name = "c"
lbmethod = "bybusyness"
members = [{{ url = "wss://127.0.0.1:9" }}, {{ url = "gopher://127.0.0.1:9" }}]
"#,
        free_port()
    ));
    let (code, _, err) = configtest(&root);
    assert_eq!(code, Some(1), "{err}");
    line_with(
        &err,
        &[
            "pass[0].url",
            "ws://",
            "run `modproxy enmod proxy_wstunnel`",
        ],
    );
    line_with(
        &err,
        &[
            "balancer[0].lbmethod",
            "run `modproxy enmod lbmethod_bybusyness`",
        ],
    );
    line_with(
        &err,
        &[
            "balancer[0].members[0].url",
            "wss://",
            "run `modproxy enmod proxy_wstunnel`",
        ],
    );
    line_with(
        &err,
        &[
            "balancer[0].members[1].url",
            "gopher://",
            "use a loaded one",
        ],
    );
}

#[test]
fn a_pass_rule_an_earlier_one_always_takes_is_a_warning_and_the_server_still_starts() {
    let backend = Backend::text("backend");
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let port = free_port();
    root.config(&format!(
        r#"[[vhost]]
listen = "127.0.0.1:{port}"
[vhost.proxy]
pass = [{{ path = "/", url = "http://127.0.0.1:{b}/" }}, {{ path = "/x", url = "!" }}]
"#,
        b = backend.port
    ));
    let (code, out, err) = configtest(&root);
    assert_eq!((code, out.trim()), (Some(0), "Syntax OK"), "{err}");
    let warning = line_with(
        &err,
        &[
            "[warn]",
            "vhost[0].proxy.pass[1]: path \"/x\" is never reached",
        ],
    );
    assert!(
        warning.contains("pass[0] (path \"/\") comes first")
            && warning.contains("put the longer prefix first"),
        "{warning}"
    );
    let _server = Server::start(&root, port);
    line_with(
        &root.log(),
        &["[warn]", "pass[1]: path \"/x\" is never reached"],
    );
    // As configured: `/` wins, so /x is proxied, not excluded.
    assert_eq!(get(port, "/x", &[]).unwrap().status, 200);
}
