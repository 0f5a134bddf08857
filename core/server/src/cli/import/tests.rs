//! The whole import on small configurations: what each becomes, parsed
//! back as TOML, and what is reported.

use super::*;
use toml::Value;

struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "modproxy-import-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(text: &str) -> (Value, Report, String) {
    let d = Dir::new();
    let f = d.file("site.conf", text);
    let (out, report) = import(&f).unwrap();
    let value: Value = toml::from_str(&out).unwrap_or_else(|e| panic!("not TOML: {e}\n{out}"));
    (value, report, out)
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => v.get(k).unwrap_or_else(|| panic!("no {k} in {path}: {v}")),
    })
}

#[test]
fn the_tutorials_example_1() {
    let (v, report, out) = run("<VirtualHost *:80>\n    ProxyPreserveHost On\n\n    ProxyPass / http://127.0.0.1:8080/\n    ProxyPassReverse / http://127.0.0.1:8080/\n</VirtualHost>\n");
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.converted_count(), 4);
    assert_eq!(at(&v, "vhost.0.listen").as_str(), Some("0.0.0.0:80"));
    assert_eq!(at(&v, "vhost.0.proxy.preserve_host").as_bool(), Some(true));
    assert_eq!(
        at(&v, "vhost.0.proxy.pass.0.url").as_str(),
        Some("http://127.0.0.1:8080/")
    );
    assert_eq!(
        at(&v, "vhost.0.proxy.pass_reverse.0.path").as_str(),
        Some("/")
    );
    assert!(out.contains("# site.conf:4: ProxyPass / http://127.0.0.1:8080/\n    { path = \"/\", url = \"http://127.0.0.1:8080/\" },"), "{out}");
    assert!(out.contains("modproxy enmod proxy proxy_http\n"), "{out}");
}

#[test]
fn the_tutorials_example_2() {
    let (v, report, out) = run("<VirtualHost *:80>\n<Proxy balancer://mycluster>\n    BalancerMember http://127.0.0.1:8080\n    BalancerMember http://127.0.0.1:8081\n</Proxy>\n\n    ProxyPreserveHost On\n\n    ProxyPass / balancer://mycluster/\n    ProxyPassReverse / balancer://mycluster/\n</VirtualHost>\n");
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let b = at(&v, "vhost.0.proxy.balancer.0");
    assert_eq!(at(b, "name").as_str(), Some("mycluster"));
    assert_eq!(
        at(b, "members.1.url").as_str(),
        Some("http://127.0.0.1:8081")
    );
    assert!(
        out.contains("modproxy enmod proxy proxy_http proxy_balancer lbmethod_byrequests\n"),
        "{out}"
    );
}

#[test]
fn parameters_balancers_locations_and_the_manager() {
    let conf = r#"Listen 127.0.0.1:8443
<VirtualHost *:8443>
  ServerName https://shop.example.com:8443
  ServerAlias www.shop.example.com *.shop.example.com
  SSLEngine on
  SSLCertificateFile tls/shop.crt
  SSLCertificateKeyFile /etc/ssl/shop.key
  SSLProtocol all -SSLv3
  ProxyTimeout 30
  ProxyVia Full
  ProxyPass /static !
  ProxyPass /api http://127.0.0.1:9000/api timeout=5 connectiontimeout=2000ms retry=0 keepalive=On disablereuse=Off max=8 ttl=30 smax=4 nocanon
  ProxyPass / balancer://shop/ stickysession=ROUTEID|routeid nofailover=On growth=2
  ProxyPassMatch "^/img/(.*)\.png$" http://127.0.0.1:9001/png/$1
  <Proxy balancer://shop>
    BalancerMember http://10.0.0.1:8080 route=a loadfactor=2 lbset=1 status=+H hcmethod=GET
    BalancerMember http://10.0.0.2:8080 route=b redirect=a
    ProxySet lbmethod=bybusyness maxattempts=2 failonstatus=500,503 timeout=3
    Require all granted
  </Proxy>
  <Location /ws>
    ProxyPass ws://127.0.0.1:9002/ws
    ProxyPassReverse ws://127.0.0.1:9002/ws
    Header set X-Y z
  </Location>
  <Location /balancer-manager>
    SetHandler balancer-manager
    Require ip 10.1 192.0.2.0/24
  </Location>
  RewriteEngine On
</VirtualHost>
"#;
    let (v, report, out) = run(conf);
    let vh = at(&v, "vhost.0");
    assert_eq!(at(vh, "listen").as_str(), Some("127.0.0.1:8443"));
    assert_eq!(at(vh, "server_name").as_str(), Some("shop.example.com"));
    assert_eq!(at(vh, "server_alias").as_array().unwrap().len(), 1);
    assert!(at(vh, "tls_certificate")
        .as_str()
        .unwrap()
        .ends_with("/tls/shop.crt"));
    let pass = at(vh, "proxy.pass").as_array().unwrap();
    let paths: Vec<&str> = pass.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/ws", "/static", "/api", "/"],
        "Location rules first, as httpd tries them"
    );
    let api = &pass[2];
    assert_eq!(
        (
            api["timeout"].as_integer(),
            api["connection_timeout"].as_integer(),
            api["retry"].as_integer()
        ),
        (Some(5), Some(2), Some(0))
    );
    assert_eq!(
        (
            api["keepalive"].as_bool(),
            api["disable_reuse"].as_bool(),
            api["max"].as_integer(),
            api["ttl"].as_integer()
        ),
        (Some(true), Some(false), Some(8), Some(30))
    );
    assert_eq!(
        at(vh, "proxy.pass_match.0.regex").as_str(),
        Some(r"^/img/(.*)\.png$")
    );
    let b = at(vh, "proxy.balancer.0");
    assert_eq!(
        (
            at(b, "sticky_session").as_str(),
            at(b, "nofailover").as_bool(),
            at(b, "lbmethod").as_str()
        ),
        (Some("ROUTEID|routeid"), Some(true), Some("bybusyness"))
    );
    assert_eq!(
        (
            at(b, "maxattempts").as_integer(),
            at(b, "timeout").as_integer()
        ),
        (Some(2), Some(3))
    );
    let m0 = at(b, "members.0");
    assert_eq!(
        (
            at(m0, "route").as_str(),
            at(m0, "loadfactor").as_integer(),
            at(m0, "lbset").as_integer(),
            at(m0, "status").as_str()
        ),
        (Some("a"), Some(2), Some(1), Some("+H"))
    );
    assert_eq!(at(b, "members.1.redirect").as_str(), Some("a"));
    assert_eq!(
        at(vh, "balancer_manager.path").as_str(),
        Some("/balancer-manager")
    );
    assert_eq!(
        at(vh, "balancer_manager.allow"),
        &Value::Array(vec!["10.1.0.0/16".into(), "192.0.2.0/24".into()])
    );
    let skipped: Vec<String> = report
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.at.line, s.text))
        .collect();
    assert_eq!(
        skipped,
        [
            "4: ServerAlias www.shop.example.com *.shop.example.com: *.shop.example.com",
            "8: SSLProtocol all -SSLv3",
            "12: ProxyPass /api http://127.0.0.1:9000/api timeout=5 connectiontimeout=2000ms retry=0 keepalive=On disablereuse=Off max=8 ttl=30 smax=4 nocanon: smax=4",
            "12: ProxyPass /api http://127.0.0.1:9000/api timeout=5 connectiontimeout=2000ms retry=0 keepalive=On disablereuse=Off max=8 ttl=30 smax=4 nocanon: nocanon",
            "13: ProxyPass / balancer://shop/ stickysession=ROUTEID|routeid nofailover=On growth=2: growth=2",
            "16: BalancerMember http://10.0.0.1:8080 route=a loadfactor=2 lbset=1 status=+H hcmethod=GET: hcmethod=GET",
            "19: Require all granted",
            "24: Header set X-Y z",
            "30: RewriteEngine On",
        ]
    );
    assert!(out.contains("# Not converted (9):"), "{out}");
    assert!(out.contains("proxy_wstunnel"), "{out}");
}

#[test]
fn a_whole_configuration_inherits_and_the_main_server_takes_unclaimed_listens() {
    let d = Dir::new();
    d.file("sites-enabled/a.conf", "<VirtualHost *:80>\nServerName a.example\nProxyPass /a http://127.0.0.1:1/\n</VirtualHost>\n");
    let main = d.file(
        "apache2.conf",
        "LoadModule proxy_module modules/mod_proxy.so\nLoadModule rewrite_module modules/mod_rewrite.so\nListen 80\nListen 127.0.0.1:8080\nServerName main.example\nTimeout 30\nLogLevel info ssl:warn\nErrorLog logs/error.log\nCustomLog logs/access.log combined\nBufferedLogs On\nProxyPreserveHost On\nProxyPass /shared http://127.0.0.1:2/\n<Proxy balancer://unused>\nBalancerMember http://127.0.0.1:3\n</Proxy>\nIncludeOptional sites-enabled/*.conf\nPidFile /run/apache2.pid\n",
    );
    let (out, report) = import(&main).unwrap();
    let v: Value = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(at(&v, "server_name").as_str(), Some("main.example"));
    assert_eq!(at(&v, "limits.timeout").as_integer(), Some(30));
    assert_eq!(at(&v, "log.level").as_str(), Some("info"));
    assert!(at(&v, "log.error_log")
        .as_str()
        .unwrap()
        .ends_with("/logs/error.log"));
    assert_eq!(at(&v, "log.access_format").as_str(), Some("combined"));
    assert_eq!(at(&v, "log.access_log_buffer").as_integer(), Some(65536));
    let vhosts = at(&v, "vhost").as_array().unwrap();
    assert_eq!(vhosts.len(), 2, "{out}");
    assert_eq!(
        vhosts[0]["listen"].as_str(),
        Some("127.0.0.1:8080"),
        "the main server, on the Listen no vhost takes"
    );
    assert_eq!(vhosts[1]["listen"].as_str(), Some("0.0.0.0:80"));
    let paths: Vec<&str> = vhosts[1]["proxy"]["pass"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/shared", "/a"],
        "the main server's rules come first, as httpd merges them"
    );
    assert_eq!(vhosts[1]["proxy"]["preserve_host"].as_bool(), Some(true));
    assert!(
        vhosts[1].get("balancer").is_none() && vhosts[1]["proxy"].get("balancer").is_none(),
        "an unused balancer is not copied"
    );
    assert!(out.contains("# apache2.conf:1: LoadModule proxy_module modules/mod_proxy.so -> modproxy enmod proxy"), "{out}");
    let skipped: Vec<(usize, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.at.line, s.why.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0], (2, "modproxy has no mod_rewrite"));
    assert!(skipped[1].1.contains("one level for the whole server"));
    assert!(skipped[2].1.contains("Apache's pid file"));
}

#[test]
fn every_key_written_is_one_modproxy_reads() {
    // The keys the config structs of the core and the modules accept;
    // anything else in the output would be refused by configtest.
    let (v, _, _) = run("Listen 8000\nAllowEncodedSlashes NoDecode\nProxyRequests Off\nProxyAddHeaders Off\nProxyErrorOverride On\nProxyPassReverseCookieDomain a b\nProxyPassReverseCookiePath /a /b\nProxyPass /x ws://127.0.0.1:1/ upgrade=websocket\n");
    let vh = at(&v, "vhost.0");
    for k in vh.as_table().unwrap().keys() {
        assert!(
            ["listen", "allow_encoded_slashes", "proxy"].contains(&k.as_str()),
            "{k}"
        );
    }
    for k in at(vh, "proxy").as_table().unwrap().keys() {
        assert!(
            [
                "forward",
                "add_headers",
                "error_override",
                "pass",
                "pass_reverse_cookie_domain",
                "pass_reverse_cookie_path"
            ]
            .contains(&k.as_str()),
            "{k}"
        );
    }
}

#[test]
fn syntax_errors_stop_the_import_with_the_place() {
    let d = Dir::new();
    let f = d.file("bad.conf", "<VirtualHost *:80>\nProxyPass / http://a/\n");
    let e = import(&f).unwrap_err();
    assert!(
        e.contains("bad.conf:1: <VirtualHost> is never closed"),
        "{e}"
    );
    assert!(import(&d.0.join("missing.conf"))
        .unwrap_err()
        .contains("cannot read"));
}

#[test]
fn protocols_become_the_vhosts_list_and_tls_without_them_stays_http11() {
    let tls = "SSLEngine on\n  SSLCertificateFile a.crt\n  SSLCertificateKeyFile a.key";
    let list = |v: &Value, i: usize| -> Vec<String> {
        v["vhost"][i]["protocols"]
            .as_array()
            .map(|a| a.iter().map(|p| p.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let conf = format!(
        "Listen 443\nListen 80\nListen 8443\n<VirtualHost *:443>\n  {tls}\n</VirtualHost>\n\
         <VirtualHost *:80>\n  Protocols h2c http/1.1\n</VirtualHost>\n\
         <VirtualHost *:8443>\n  {tls}\n  Protocols h2 acme-tls/1\n</VirtualHost>\n"
    );
    let (v, report, out) = run(&conf);
    assert_eq!(
        list(&v, 0),
        ["http/1.1"],
        "httpd serves HTTP/1.1 only without Protocols:\n{out}"
    );
    assert_eq!(list(&v, 1), ["h2c", "http/1.1"], "{out}");
    assert_eq!(list(&v, 2), ["h2", "http/1.1"], "{out}");
    let text = format!("{:?}", report.skipped);
    assert!(text.contains("acme-tls/1 is not offered"), "{text}");
}
