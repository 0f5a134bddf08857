//! Worked examples of `[vhost.proxy]` sections: compiled, then routed.

use crate::config::ProxyConfig;
use crate::vhost::{Backend, VhostProxy};
use crate::worker::Workers;
use modproxy_api::proxy::{exchange_flags, worker_flags};

fn compile(toml_text: &str) -> Result<VhostProxy, String> {
    let config: ProxyConfig = toml::from_str(toml_text).map_err(|e| e.message().to_string())?;
    match crate::compile::compile(config, "site.toml: vhost[0].proxy", &Workers::default()) {
        (v, errors) if errors.is_empty() => Ok(v),
        (_, errors) => Err(errors.join("\n")),
    }
}

fn shadowed(toml_text: &str) -> Vec<String> {
    crate::compile::shadowed(&compile(toml_text).unwrap().rules, "s.toml: vhost[0].proxy")
}

#[test]
fn a_rule_under_an_earlier_prefix_is_reported_as_never_reached() {
    let w = shadowed(
        r#"pass = [{ path = "/", url = "http://b/" }, { path = "/x", url = "http://c/" }]"#,
    );
    assert_eq!(w, ["s.toml: vhost[0].proxy.pass[1]: path \"/x\" is never reached: pass[0] (path \"/\") comes first and matches every path under it; put the longer prefix first (move pass[1] above pass[0])"]);
    // Exclusions take paths too, and a trailing slash matches under it.
    let w = shadowed(
        r#"pass = [{ path = "/a", url = "!" }, { path = "/a/b/", url = "http://c/" }, { path = "/ab", url = "http://c/" }]"#,
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("pass[1]: path \"/a/b/\"") && w[0].contains("pass[0] (path \"/a\")"),
        "{w:?}"
    );
    // `/a/` does not match `/a` itself, so `/a` after it is still reached.
    assert!(shadowed(
        r#"pass = [{ path = "/a/", url = "http://b/" }, { path = "/a", url = "http://c/" }]"#
    )
    .is_empty());
    // Longest first, as the docs say, warns of nothing; nor does the worked example.
    assert!(shadowed(
        r#"pass = [{ path = "/x", url = "http://b/" }, { path = "/", url = "http://c/" }]"#
    )
    .is_empty());
    assert!(shadowed(SITE).is_empty());
}

fn route(v: &VhostProxy, path: &str, query: &str) -> Option<(String, String)> {
    v.route(path, query)
        .map(|(rule, url)| (rule.name.clone(), url))
}

const SITE: &str = r#"
pass = [
  { path = "/admin", url = "!" },
  { path = "/a/", url = "http://b/c/" },
  { path = "/api", url = "http://127.0.0.1:8081/v1", timeout = 2, connection_timeout = 1, retry = 0, max = 10, ttl = 30, keepalive = true },
  { path = "/", url = "http://127.0.0.1:8080/" },
]
pass_match = [{ regex = "^/img/(.*)\\.png$", url = "http://127.0.0.1:8082/png/$1" }]
"#;

#[test]
fn exclusion_first_then_prefixes_in_order() {
    let v = compile(SITE).unwrap();
    assert_eq!(route(&v, "/admin/users", ""), None);
    assert_eq!(
        route(&v, "/%61dmin", ""),
        None,
        "an encoded letter does not dodge the exclusion"
    );
    assert_eq!(route(&v, "//admin", ""), None, "nor does a doubled slash");
    let (rule, url) = route(&v, "/administrator", "").unwrap();
    assert_eq!(
        (rule.as_str(), url.as_str()),
        ("pass[3]", "http://127.0.0.1:8080/administrator")
    );
}

#[test]
fn slashes_join_like_apache_and_query_passes_through() {
    let v = compile(SITE).unwrap();
    assert_eq!(
        route(&v, "/a/x", "k=v&x=%2F").unwrap().1,
        "http://b/c/x?k=v&x=%2F"
    );
    assert_eq!(route(&v, "/api", "").unwrap().1, "http://127.0.0.1:8081/v1");
    assert_eq!(
        route(&v, "/api/users/7", "").unwrap().1,
        "http://127.0.0.1:8081/v1/users/7"
    );
    assert_eq!(
        route(&v, "/apix", "").unwrap().0,
        "pass[3]",
        "/api does not match /apix"
    );
}

#[test]
fn encoded_paths_are_forwarded_untouched() {
    let v = compile(SITE).unwrap();
    assert_eq!(
        route(&v, "/a/x%20y%2Fz%252e", "").unwrap().1,
        "http://b/c/x%20y%2Fz%252e"
    );
}

#[test]
fn pass_match_substitutes_after_every_pass_rule() {
    let v = compile("pass = [{ path = \"/img/keep\", url = \"http://k/\" }]").unwrap();
    assert_eq!(route(&v, "/img/keep", "").unwrap().0, "pass[0]");
    let v = compile(SITE).unwrap();
    // `/` catches everything first: pass rules run before pass_match.
    assert_eq!(route(&v, "/img/logo.png", "").unwrap().0, "pass[3]");
    let v = compile(
        r#"pass_match = [
      { regex = "^/img/(.*)\\.png$", url = "http://127.0.0.1:8082/png/$1" },
      { regex = "(?i)\\.GIF$", url = "balancer://pics" },
    ]"#,
    )
    .unwrap();
    assert_eq!(
        route(&v, "/img/a/b.png", "v=2").unwrap().1,
        "http://127.0.0.1:8082/png/a/b?v=2"
    );
    // No `$N`: the whole path is appended (Apache's implied $0).
    assert_eq!(
        route(&v, "/x/y.gif", "").unwrap().1,
        "balancer://pics/x/y.gif"
    );
}

#[test]
fn worker_keys_become_params_and_shared_state() {
    let v = compile(SITE).unwrap();
    let api = &v.rules[v.rule_index("pass[2]").unwrap()];
    assert_eq!(
        (api.params.timeout_ms, api.params.connect_timeout_ms),
        (2000, 1000)
    );
    assert_eq!(
        (api.params.max_idle, api.params.ttl_ms, api.params.flags),
        (10, 30_000, worker_flags::TCP_KEEPALIVE)
    );
    assert!(api.retry.is_zero());
    let root = &v.rules[v.rule_index("pass[3]").unwrap()];
    assert_eq!(
        (
            root.params.timeout_ms,
            root.params.connect_timeout_ms,
            root.retry.as_secs()
        ),
        (60_000, 60_000, 60)
    );
    assert!(matches!(&root.backend, Backend::Direct { key, .. } if key == "http://127.0.0.1:8080"));
    assert_eq!(v.flags, exchange_flags::ADD_FORWARDED);
}

#[test]
fn vhost_keys_set_defaults_and_flags() {
    let v = compile("timeout = 5\npreserve_host = true\nadd_headers = false\nvia = \"full\"\npass = [{ path = \"/\", url = \"balancer://c/app/\" }]").unwrap();
    assert_eq!(v.flags, exchange_flags::PRESERVE_HOST | exchange_flags::VIA);
    assert_eq!(v.rules[0].params.timeout_ms, 5000);
    assert!(matches!(&v.rules[0].backend, Backend::Balancer { name, .. } if name == "c"));
    assert_eq!(route(&v, "/x", "q").unwrap().1, "balancer://c/app/x?q");
    assert!(compile("via = \"block\"").unwrap().block_via);
    let v = compile("error_override = true").unwrap();
    assert_eq!(
        v.flags,
        exchange_flags::ADD_FORWARDED | exchange_flags::ERROR_OVERRIDE
    );
}

#[test]
fn errors_name_the_key_and_the_fix() {
    let e = compile("pass = [{ path = \"/\", url = \"http://b/\" }, { path = \"/x\", url = \"http://b/\", tmeout = 3 }]").unwrap_err();
    assert!(e.starts_with("site.toml: vhost[0].proxy.pass[1].tmeout: unknown key: did you mean timeout? (valid keys are path, url, timeout"), "{e}");
    let e = compile("pass = [{ path = \"x\", url = \"b:80\" }]").unwrap_err();
    assert!(
        e.contains("vhost[0].proxy.pass[0].path: \"x\" must start with /"),
        "{e}"
    );
    assert!(
        e.contains(
            "vhost[0].proxy.pass[0].url: \"b:80\" is not a URL: write http://host:port/path"
        ),
        "{e}"
    );
    let e = compile("pass_match = [{ regex = \"(\", url = \"http://b/\" }]").unwrap_err();
    assert!(
        e.starts_with("site.toml: vhost[0].proxy.pass_match[0].regex: "),
        "{e}"
    );
    let e = compile("pass = [{ path = \"/\", url = \"http://b/\", timeout = 0 }]").unwrap_err();
    assert!(e.contains("pass[0].timeout: must be at least 1"), "{e}");
    // Top-level typos are serde's; the SDK prefixes them with the section's key.
    let e = compile("pas = []").unwrap_err();
    assert!(
        e.contains("unknown field `pas`, expected one of `pass`"),
        "{e}"
    );
}

#[test]
fn exclusions_hold_under_every_backend_reading_and_prefixes_are_canonical() {
    let v = compile(SITE).unwrap();
    // What the core hands over is canonical; these are spellings that stay
    // after it and that some backend would still read as /admin.
    for path in [
        "/admin%5Cusers",
        "/%5Cadmin",
        "/admin;jsessionid=1/x",
        "/admin%2Fx",
    ] {
        assert_eq!(route(&v, path, ""), None, "{path}");
    }
    assert_eq!(route(&v, "/admin%5F", "").unwrap().0, "pass[3]");
    let v = compile("pass = [{ path = \"/café/./x\", url = \"http://b/\" }]").unwrap();
    assert_eq!(route(&v, "/caf%C3%A9/x/y", "").unwrap().1, "http://b/y");
    let e = compile("pass = [{ path = \"/../x\", url = \"http://b/\" }]").unwrap_err();
    assert!(
        e.contains("pass[0].path: \"/../x\" has a .. segment above the root: write the path"),
        "{e}"
    );
}

#[test]
fn unix_sockets_as_apache_writes_them_name_the_pool_and_map_onto_the_url() {
    let v = compile(
        r#"pass = [{ path = "/", url = "unix:/run/php/php8.2-fpm.sock|fcgi://localhost/var/www/" }]"#,
    )
    .unwrap();
    let Backend::Direct { key, url, .. } = &v.rules[0].backend else {
        panic!("direct")
    };
    assert_eq!(key, "unix:/run/php/php8.2-fpm.sock|fcgi://localhost");
    assert_eq!(url, "fcgi://localhost/var/www/");
    assert_eq!(
        route(&v, "/index.php", "a=1"),
        Some((
            "pass[0]".into(),
            "fcgi://localhost/var/www/index.php?a=1".into()
        ))
    );
    for (bad, why) in [
        ("unix:/run/x.sock", "no URL after it"),
        ("unix:run/x.sock|fcgi://localhost/", "not absolute"),
        (
            "unix:/run/x.sock|http://localhost/",
            "unix sockets are for fcgi://",
        ),
    ] {
        let e = compile(&format!("pass = [{{ path = \"/\", url = \"{bad}\" }}]")).unwrap_err();
        assert!(e.contains(why) && e.contains("pass[0].url"), "{bad}: {e}");
    }
}

#[test]
fn fcgi_keys_become_one_note_and_belong_to_fcgi_backends() {
    let v = compile(
        r#"pass = [{ path = "/", url = "fcgi://127.0.0.1:9000/srv/", enable_reuse = true, fcgi_set_env = { HTTPS = "on", "!PATH_INFO" = "" } }]"#,
    )
    .unwrap();
    assert_eq!(
        v.rules[0].fcgi.as_deref(),
        Some("+reuse\n!PATH_INFO\nHTTPS=on")
    );
    let plain = compile(r#"pass = [{ path = "/", url = "fcgi://127.0.0.1:9000/srv/" }]"#).unwrap();
    assert_eq!(plain.rules[0].fcgi, None);
    let e =
        compile(r#"pass = [{ path = "/", url = "http://b/", enable_reuse = true }]"#).unwrap_err();
    assert!(
        e.contains("pass[0]: fcgi_set_env and enable_reuse apply to fcgi:// backends only"),
        "{e}"
    );
    for (bad, why) in [
        (r#"{ "A B" = "x" }"#, "not a parameter name"),
        (r#"{ "!A" = "x" }"#, "a removal takes no value"),
        (r#"{ A = "x\ny" }"#, "line break"),
    ] {
        let e = compile(&format!(
            "pass = [{{ path = \"/\", url = \"fcgi://b/\", fcgi_set_env = {bad} }}]"
        ))
        .unwrap_err();
        assert!(
            e.contains(why) && e.contains("pass[0].fcgi_set_env."),
            "{bad}: {e}"
        );
    }
}
