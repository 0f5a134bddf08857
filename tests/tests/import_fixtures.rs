//! `modproxy import` on real-world Apache configurations: Debian's own
//! default site and its whole apache2.conf tree (vendored from Debian
//! 12's apache2 2.4 in tests/fixtures/import/debian/), and a production
//! style TLS site with a sticky balancer and the balancer manager
//! (tests/fixtures/import/shop-le-ssl.conf), which then serves HTTPS
//! through real backends. And the round trip: every row of the directive
//! table in docs/configuration.md comes out of the import at its key, and
//! every key modproxy reads is in that table or in its list of keys no
//! directive sets.

use modproxy_tests::{free_port, repo_root, Backend, Server, ServerRoot};
use std::path::{Path, PathBuf};
use std::process::Output;
use toml::Value;

fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures/import").join(rel)
}

struct Imported {
    status: Option<i32>,
    stderr: String,
    toml: String,
    value: Value,
}

fn import(root: &ServerRoot, conf: &Path) -> Imported {
    let out_file = root.dir.join("modproxy.toml");
    let out: Output = root.cli(&[
        "import",
        conf.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    let toml = std::fs::read_to_string(&out_file).unwrap_or_default();
    let value =
        toml::from_str(&toml).unwrap_or_else(|e| panic!("the output is not TOML: {e}\n{toml}"));
    Imported {
        status: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        toml,
        value,
    }
}

/// The `file:line` of every directive listed as not converted.
fn skipped(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(": not converted: "))
        .map(|l| l.split(": not converted: ").next().unwrap().to_string())
        .collect()
}

fn enable_as_told(root: &ServerRoot, toml: &str) {
    let line = toml
        .lines()
        .find_map(|l| l.strip_prefix("#   modproxy enmod "))
        .unwrap_or_else(|| panic!("no enmod line:\n{toml}"));
    root.enable(&line.split_whitespace().collect::<Vec<_>>());
}

fn configtest(root: &ServerRoot) {
    let out = root.cli(&["configtest"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(root.dir.join("modproxy.toml")).unwrap()
    );
}

#[test]
fn debians_000_default_conf() {
    let root = ServerRoot::new();
    let i = import(&root, &fixture("debian/sites-available/000-default.conf"));
    assert_eq!(i.status, Some(2), "{}", i.stderr);
    // ServerAdmin, DocumentRoot, and the vhost's own logs: modproxy has one
    // error log and one access log, set in [log].
    let s = "sites-available/000-default.conf";
    assert_eq!(
        skipped(&i.stderr),
        [
            format!("{s}:11"),
            format!("{s}:12"),
            format!("{s}:20"),
            format!("{s}:21")
        ],
        "{}",
        i.stderr
    );
    assert!(
        i.stderr
            .contains("CustomLog /var/log/apache2/access.log combined"),
        "${{APACHE_LOG_DIR}} from Debian's defaults:\n{}",
        i.stderr
    );
    assert!(i.toml.contains("# Not converted (4):"), "{}", i.toml);
    assert_eq!(i.value["vhost"][0]["listen"].as_str(), Some("0.0.0.0:80"));
    configtest(&root);
}

#[test]
fn debians_whole_apache2_conf_with_the_tutorials_modules() {
    let root = ServerRoot::new();
    let i = import(&root, &fixture("debian/apache2.conf"));
    assert_eq!(i.status, Some(2), "{}", i.stderr);
    // Step 1 of the tutorial (a2enmod proxy proxy_http proxy_balancer
    // lbmethod_byrequests) became the enmod line.
    assert!(
        i.toml
            .contains("#   modproxy enmod proxy proxy_http proxy_balancer lbmethod_byrequests\n"),
        "{}",
        i.toml
    );
    assert!(i.toml.contains("# mods-enabled/proxy_http.load:2: LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so -> modproxy enmod proxy_http"), "{}", i.toml);
    // ${APACHE_LOG_DIR} and the others from the envvars beside it.
    assert_eq!(
        i.value["log"]["error_log"].as_str(),
        Some("/var/log/apache2/error.log")
    );
    assert_eq!(i.value["limits"]["timeout"].as_integer(), Some(300));
    assert_eq!(
        i.value["limits"]["max_connections"].as_integer(),
        Some(150),
        "mpm_event.conf's MaxRequestWorkers"
    );
    // Listen 80 in ports.conf, taken by 000-default's *:80; the <IfModule
    // ssl_module> Listen 443 is false (mod_ssl is not loaded).
    let vhosts = i.value["vhost"].as_array().unwrap();
    assert_eq!(vhosts.len(), 1, "{}", i.toml);
    assert_eq!(vhosts[0]["listen"].as_str(), Some("0.0.0.0:80"));
    assert!(
        i.stderr
            .contains("ports.conf:7: note: <IfModule ssl_module> is false here"),
        "{}",
        i.stderr
    );
    let s = skipped(&i.stderr);
    for at in [
        "apache2.conf:87",
        "mods-enabled/mpm_event.load:2",
        "mods-enabled/slotmem_shm.load:1",
        "sites-enabled/000-default.conf:12",
    ] {
        assert!(s.contains(&at.to_string()), "{at} in {s:?}");
    }
    assert!(i.stderr.contains("apache2.conf:87: not converted: PidFile /var/run/apache2/apache2.pid: this is Apache's pid file"), "{}", i.stderr);
    eprintln!("debian apache2.conf: {}", i.stderr.lines().last().unwrap());
    enable_as_told(&root, &i.toml);
    configtest(&root);
}

#[test]
fn a_tls_site_with_a_sticky_balancer_and_the_manager_imports_and_serves() {
    let root = ServerRoot::new();
    let i = import(&root, &fixture("shop-le-ssl.conf"));
    assert_eq!(i.status, Some(2), "{}", i.stderr);
    let lines: Vec<String> = skipped(&i.stderr)
        .iter()
        .map(|a| a.rsplit(':').next().unwrap().to_string())
        .collect();
    // ServerAdmin, SSLProtocol, SSLHonorCipherOrder, the vhost's two
    // logs, RequestHeader, Header, hcmethod and hcuri, the Require in
    // <Proxy>, Alias and the three Rewrite lines (`Protocols h2 http/1.1`
    // is converted).
    assert_eq!(
        lines,
        ["10", "17", "18", "20", "21", "28", "30", "34", "34", "36", "46", "53", "54", "55"],
        "{}",
        i.stderr
    );
    assert!(
        i.stderr
            .contains("hcmethod=GET: health checks (mod_proxy_hcheck) are not in modproxy yet"),
        "{}",
        i.stderr
    );
    let vh = &i.value["vhost"][0];
    assert_eq!(vh["listen"].as_str(), Some("0.0.0.0:443"));
    let protocols: Vec<_> = vh["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(protocols, ["h2", "http/1.1"]);
    assert_eq!(
        vh["tls_certificate"].as_str(),
        Some("/etc/letsencrypt/live/shop.example.com/fullchain.pem")
    );
    let b = &vh["proxy"]["balancer"][0];
    assert_eq!(
        (
            b["name"].as_str(),
            b["sticky_session"].as_str(),
            b["maxattempts"].as_integer()
        ),
        (Some("shop"), Some("ROUTEID"), Some(2))
    );
    assert_eq!(
        b["failonstatus"],
        Value::Array(vec![502.into(), 503.into()])
    );
    let routes: Vec<&str> = b["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["route"].as_str().unwrap())
        .collect();
    assert_eq!(routes, ["app1", "app2", "app3"]);
    assert_eq!(b["members"][2]["status"].as_str(), Some("+H"));
    assert_eq!(
        vh["balancer_manager"]["allow"],
        Value::Array(vec!["10.0.0.0/8".into(), "192.168.1.0/24".into()])
    );
    let paths: Vec<&str> = vh["proxy"]["pass"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/balancer-manager", "/static", "/ws/", "/"]);

    // Served: the same file with test addresses, a generated certificate
    // and real backends; the sticky route cookie picks the member.
    let (a1, a2) = (Backend::text("app1"), Backend::text("app2"));
    let cert = rcgen::generate_simple_self_signed(vec!["shop.example.com".into()]).unwrap();
    root.write("tls/site.crt", &cert.cert.pem());
    root.write("tls/site.key", &cert.signing_key.serialize_pem());
    let port = free_port();
    let text = std::fs::read_to_string(fixture("shop-le-ssl.conf"))
        .unwrap()
        .replace("*:443", &format!("127.0.0.1:{port}"))
        .replace(
            "/etc/letsencrypt/live/shop.example.com/fullchain.pem",
            &root.dir.join("tls/site.crt").display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/shop.example.com/privkey.pem",
            &root.dir.join("tls/site.key").display().to_string(),
        )
        .replace("10.0.0.11:8080", &format!("127.0.0.1:{}", a1.port))
        .replace("10.0.0.12:8080", &format!("127.0.0.1:{}", a2.port));
    let moved = root.dir.join("shop.conf");
    std::fs::write(&moved, text).unwrap();
    let i = import(&root, &moved);
    assert_eq!(i.status, Some(2));
    enable_as_told(&root, &i.toml);
    configtest(&root);
    let _server = Server::start(&root, port);
    let curl = |cookie: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-sk",
                "--resolve",
                &format!("shop.example.com:{port}:127.0.0.1"),
                "-b",
                cookie,
            ])
            .arg(format!("https://shop.example.com:{port}/"))
            .output()
            .expect("curl (tests/setup.sh installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for _ in 0..3 {
        assert_eq!(curl("ROUTEID=x.app2"), "app2", "{}", root.log());
        assert_eq!(curl("ROUTEID=x.app1"), "app1", "{}", root.log());
    }
}

/// Rows of a markdown table after the line `heading`.
fn table_after(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} not in docs/configuration.md"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let l = l.replace("\\|", "\u{1}");
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').replace('\u{1}', "|"))
                .collect()
        })
        .collect()
}

/// Whether `path` (`vhost.proxy.pass.timeout`: arrays are searched) is in `v`.
fn has(v: &Value, path: &[&str]) -> bool {
    match (v, path.split_first()) {
        (_, None) => true,
        (Value::Array(items), _) => items.iter().any(|i| has(i, path)),
        (Value::Table(t), Some((k, rest))) => t.get(*k).is_some_and(|v| has(v, rest)),
        _ => false,
    }
}

#[test]
fn round_trip_every_directive_in_the_table_comes_out_at_its_key() {
    let doc = std::fs::read_to_string(repo_root().join("docs/configuration.md")).unwrap();
    let rows = table_after(&doc, "## Apache directives → keys");
    assert!(rows.len() > 50, "{rows:?}");
    // Section rows (`<Proxy balancer://b>`) are the sections written here.
    // A directive listed for two keys is written once.
    let part = |w: &str| {
        let mut lines: Vec<String> = Vec::new();
        for r in rows.iter().filter(|r| r[0] == w && !r[1].starts_with('<')) {
            let line = format!("    {}\n", r[1]);
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        lines.concat()
    };
    let conf = format!(
        "{}<VirtualHost *:8080>\n{}  <Location /loc>\n{}  </Location>\n  <Proxy balancer://b>\n{}  </Proxy>\n  <Location /balancer-manager>\n{}  </Location>\n</VirtualHost>\n",
        part("main"),
        part("vhost"),
        part("location"),
        part("proxy"),
        part("manager"),
    );
    let root = ServerRoot::new();
    root.write("every-directive.conf", &conf);
    let i = import(&root, &root.dir.join("every-directive.conf"));
    assert_eq!(
        i.status,
        Some(0),
        "every row converts:\n{}\n{conf}",
        i.stderr
    );
    for r in &rows {
        let path: Vec<&str> = r[2].split('.').collect();
        assert!(
            has(&i.value, &path),
            "{} ({}) did not come out at {}:\n{}",
            r[1],
            r[0],
            r[2],
            i.toml
        );
    }

    // Every key modproxy reads (the config structs of core/config, proxy
    // and proxy_balancer) is in one of the two tables.
    let none = table_after(&doc, "Keys no Apache directive sets");
    let listed: Vec<&str> = rows
        .iter()
        .map(|r| r[2].as_str())
        .chain(none.iter().map(|r| r[0].as_str()))
        .collect();
    let worker = [
        "timeout",
        "connection_timeout",
        "retry",
        "max",
        "ttl",
        "keepalive",
        "disable_reuse",
        "tls_verify",
        "tls_ca_file",
    ];
    let mut keys: Vec<String> = [
        "server_name",
        "workers",
        "pid_file",
        "control_socket",
        "include",
        "limits.request_line",
        "limits.request_field_size",
        "limits.request_fields",
        "limits.request_body",
        "limits.timeout",
        "limits.keepalive_timeout",
        "limits.max_connections",
        "limits.tunnel_grace",
        "limits.defer_accept",
        "log.error_log",
        "log.level",
        "log.access_log",
        "log.access_format",
        "vhost.listen",
        "vhost.server_name",
        "vhost.server_alias",
        "vhost.tls_certificate",
        "vhost.tls_key",
        "vhost.allow_encoded_slashes",
        "vhost.proxy.preserve_host",
        "vhost.proxy.add_headers",
        "vhost.proxy.via",
        "vhost.proxy.timeout",
        "vhost.proxy.error_override",
        "vhost.proxy.forward",
        "vhost.proxy.pass.path",
        "vhost.proxy.pass.url",
        "vhost.proxy.pass.upgrade",
        "vhost.proxy.pass_match.regex",
        "vhost.proxy.pass_reverse.url",
        "vhost.proxy.pass_reverse_cookie_domain.public",
        "vhost.proxy.pass_reverse_cookie_path.internal",
        "vhost.proxy.balancer.name",
        "vhost.proxy.balancer.lbmethod",
        "vhost.proxy.balancer.maxattempts",
        "vhost.proxy.balancer.nofailover",
        "vhost.proxy.balancer.sticky_session",
        "vhost.proxy.balancer.failonstatus",
        "vhost.proxy.balancer.failontimeout",
        "vhost.proxy.balancer.forcerecovery",
        "vhost.proxy.balancer.timeout",
        "vhost.proxy.balancer.members.url",
        "vhost.proxy.balancer.members.loadfactor",
        "vhost.proxy.balancer.members.lbset",
        "vhost.proxy.balancer.members.route",
        "vhost.proxy.balancer.members.redirect",
        "vhost.proxy.balancer.members.status",
        "vhost.balancer_manager.path",
        "vhost.balancer_manager.metrics",
        "vhost.balancer_manager.allow",
    ]
    .map(String::from)
    .to_vec();
    keys.extend(worker.iter().map(|k| format!("vhost.proxy.pass.{k}")));
    for k in &keys {
        assert!(
            listed.contains(&k.as_str()),
            "{k} is in neither table of docs/configuration.md"
        );
    }
    // The member's worker keys came out too (one row sets them all).
    for k in &worker[..7] {
        assert!(
            has(&i.value, &["vhost", "proxy", "balancer", "members", k]),
            "members.{k}"
        );
    }
}
