//! The same PHP-FPM pool behind Apache's mod_proxy_fcgi and behind
//! modproxy's proxy_fcgi: the variables PHP sees in `$_SERVER` are the
//! same, but for the ones listed here (docs/proxy_fcgi.md, "Beside
//! Apache").

use modproxy_tests::{free_port, send_raw, Apache, PhpFpm, Server, ServerRoot};
use std::collections::BTreeMap;

/// Differ by nature: ports, times, the server's own name and files.
const VARYING: &[&str] = &[
    "HTTP_HOST",
    "SERVER_PORT",
    "REMOTE_PORT",
    "REQUEST_TIME",
    "REQUEST_TIME_FLOAT",
    "SERVER_SOFTWARE",
];
/// Apache's configuration, which modproxy does not have: DocumentRoot
/// (and with it CONTEXT_DOCUMENT_ROOT) and ServerAdmin.
const APACHE_ONLY_VALUES: &[&str] = &["DOCUMENT_ROOT", "CONTEXT_DOCUMENT_ROOT", "SERVER_ADMIN"];

fn dump(port: u16, target: &str) -> BTreeMap<String, String> {
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: compare/1\r\nAccept: */*\r\n\
         X-Custom-Thing: a\r\nX-Custom-Thing: b\r\nCookie: c=1\r\nProxy: http://evil.example:3128\r\n\
         Authorization: Basic dTpw\r\nConnection: close\r\n\r\n"
    );
    let raw = send_raw(port, req.as_bytes()).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    body.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn php_sees_the_same_variables_behind_apache_and_modproxy() {
    let fpm = PhpFpm::start();
    let backend = format!("{}/", fpm.url());
    let apache_port = free_port();
    let apache = Apache::start_with(
        &["proxy_fcgi"],
        &[(apache_port, format!("ProxyPass \"/app/\" \"{backend}\""))],
    );
    let root = ServerRoot::new();
    root.enable(&["proxy_fcgi"]);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"proxy.test\"\n[vhost.proxy]\npass = [{{ path = \"/app/\", url = \"{backend}\" }}]\n"
    ));
    let _server = Server::start(&root, port);
    for target in [
        "/app/dump.php",
        "/app/dump.php?x=1&y=%20z",
        "/app/dump.php/extra/path?q",
        "/app/dump.php?a=%2F",
    ] {
        let a = dump(apache_port, target);
        let m = dump(port, target);
        assert!(
            a.contains_key("SCRIPT_FILENAME") && m.contains_key("SCRIPT_FILENAME"),
            "{target}: apache {a:?}\nmodproxy {m:?}\n{}\n{}",
            apache.log(),
            root.log()
        );
        for (k, av) in &a {
            if VARYING.contains(&k.as_str()) {
                continue;
            }
            let mv = m.get(k);
            if k == "PATH_TRANSLATED" {
                // PHP-FPM puts DOCUMENT_ROOT in front of PATH_INFO.
                let root = a.get("DOCUMENT_ROOT").map_or("", String::as_str);
                let want = av.strip_prefix(root).unwrap_or(av);
                assert_eq!(mv.map(String::as_str), Some(want), "{target}: {k}");
                continue;
            }
            if APACHE_ONLY_VALUES.contains(&k.as_str()) {
                assert!(mv.is_none_or(|v| v.is_empty()), "{target}: {k} = {mv:?}");
                continue;
            }
            assert_eq!(mv, Some(av), "{target}: {k} differs (apache {av:?})");
        }
        for k in m.keys() {
            assert!(a.contains_key(k), "{target}: only modproxy sends {k}");
        }
        // Both keep the client's Proxy field from the application (httpoxy)
        // and its credentials.
        for (name, vars) in [("apache", &a), ("modproxy", &m)] {
            assert!(!vars.contains_key("HTTP_PROXY"), "{name}");
            assert!(!vars.contains_key("HTTP_AUTHORIZATION"), "{name}");
        }
    }
}
