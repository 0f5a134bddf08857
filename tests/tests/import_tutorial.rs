//! `modproxy import` on the tutorial's two example vhosts, pasted verbatim
//! from the tutorial into tests/fixtures/import/tutorial/: each imports
//! with nothing skipped and passes configtest as it is; then the same
//! vhost, moved to test ports, runs in a real Apache httpd and, imported,
//! in modproxy, in front of the same real backends, and both answer the
//! same requests alike (bodies, statuses, rewritten Location headers, the
//! Host the backend saw, the balancer's alternation).

use modproxy_tests::apache::{self, Apache};
use modproxy_tests::backend::Reply;
use modproxy_tests::{free_port, get, repo_root, Backend, Server, ServerRoot};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture(name: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures/import/tutorial")
        .join(name)
}

/// `modproxy import ARGS` from `root`.
fn import(root: &ServerRoot, args: &[&str]) -> Output {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    root.cli(&all)
}

/// Enables what the import's `modproxy enmod …` line says.
fn enable_as_told(root: &ServerRoot, toml: &str) {
    let line = toml
        .lines()
        .find_map(|l| l.strip_prefix("#   modproxy enmod "))
        .unwrap_or_else(|| panic!("no enmod line in:\n{toml}"));
    root.enable(&line.split_whitespace().collect::<Vec<_>>());
}

/// A backend that says `text` at `/`, redirects `/go` to its own
/// `/landing` (for ProxyPassReverse) and echoes the Host it got at `/host`.
fn backend(text: &'static str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    Backend::on(listener, move |seen| -> Reply {
        match seen.target.as_str() {
            "/go" => (
                302,
                vec![(
                    "Location".into(),
                    format!("http://127.0.0.1:{port}/landing"),
                )],
                Vec::new(),
            ),
            "/host" => (
                200,
                Vec::new(),
                seen.header("host").unwrap_or("").as_bytes().to_vec(),
            ),
            _ => (200, Vec::new(), text.as_bytes().to_vec()),
        }
    })
}

/// The fixture with its ports moved: the vhost to `port`, the tutorial's
/// backends 8080 and 8081 to `backends`.
fn moved(fixture_text: &str, port: u16, backends: &[u16]) -> String {
    let mut t = fixture_text.replace("*:80>", &format!("*:{port}>"));
    for (from, to) in ["127.0.0.1:8080", "127.0.0.1:8081"].iter().zip(backends) {
        t = t.replace(from, &format!("127.0.0.1:{to}"));
    }
    t
}

/// An httpd.conf in `dir` that listens on `port` and includes `vhost`.
fn httpd_conf(dir: &Path, port: u16, vhost: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("site.conf"), vhost).unwrap();
    let modules = [
        "mpm_event",
        "authz_core",
        "proxy",
        "proxy_http",
        "proxy_balancer",
        "slotmem_shm",
        "lbmethod_byrequests",
    ];
    let conf = format!(
        "{}Listen 127.0.0.1:{port}\nInclude {}/site.conf\n",
        apache::preamble(dir, &modules),
        dir.display()
    );
    let path = dir.join("httpd.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "modproxy-import-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ))
}

/// What a response says, ports written as PORT so both servers compare.
fn seen_as(r: &modproxy_tests::Response, ports: &[u16]) -> String {
    let mut s = format!("{} {:?} {}", r.status, r.header("location"), r.text());
    for p in ports {
        s = s.replace(&format!(":{p}"), ":PORT");
    }
    s
}

/// Imports the verbatim fixture (nothing skipped, configtest passes), then
/// runs it moved to test ports in Apache and in modproxy and returns the
/// servers' ports for the caller's requests.
struct Pair {
    _apache: Apache,
    _modproxy: Server,
    root: ServerRoot,
    apache_port: u16,
    modproxy_port: u16,
}

fn pair(name: &str, backends: &[u16]) -> Pair {
    let root = ServerRoot::new();
    // As pasted from the tutorial: imported whole, and configtest passes.
    let out_file = root.dir.join("modproxy.toml");
    let out = import(
        &root,
        &[
            fixture(name).to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 not converted"), "{stderr}");
    let toml = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        toml.contains(&format!("# {name}:1: <VirtualHost *:80>\n[[vhost]]\n")),
        "{toml}"
    );
    enable_as_told(&root, &toml);
    let test = root.cli(&["configtest"]);
    assert!(
        test.status.success(),
        "{}\n{toml}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&test.stdout).trim(), "Syntax OK");

    // The same vhost on test ports: Apache runs it, modproxy runs its import.
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let (apache_port, modproxy_port) = (free_port(), free_port());
    let adir = temp_dir("apache");
    let aconf = httpd_conf(&adir, apache_port, &moved(&text, apache_port, backends));
    let apache = Apache::start_config(&adir, &aconf, &[apache_port]);
    let mdir = root.dir.join("from-apache");
    let mconf = httpd_conf(&mdir, modproxy_port, &moved(&text, modproxy_port, backends));
    let out = import(
        &root,
        &[mconf.to_str().unwrap(), "-o", out_file.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The httpd.conf around the vhost has what modproxy does not (User,
    // PidFile, the MPM, …): exit 2, each listed; the vhost itself converts.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("site.conf:"),
        "the vhost converts whole:\n{stderr}"
    );
    for skipped in [
        "httpd.conf:2: not converted: DefaultRuntimeDir",
        "httpd.conf:7: not converted: Group nogroup",
        "not converted: LoadModule mpm_event_module",
    ] {
        assert!(stderr.contains(skipped), "{skipped} in:\n{stderr}");
    }
    let test = root.cli(&["configtest"]);
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let modproxy = Server::start(&root, modproxy_port);
    Pair {
        _apache: apache,
        _modproxy: modproxy,
        root,
        apache_port,
        modproxy_port,
    }
}

#[test]
fn example_1_one_backend_behaves_as_in_apache() {
    let b1 = backend("Hello world!");
    let p = pair("example1.conf", &[b1.port]);
    let ports = [p.apache_port, p.modproxy_port, b1.port];
    for path in ["/", "/go", "/host", "/some/path?q=1"] {
        let a = get(p.apache_port, path, &[]).unwrap();
        let m = get(p.modproxy_port, path, &[]).unwrap();
        assert_eq!(
            seen_as(&m, &ports),
            seen_as(&a, &ports),
            "{path}\n{}",
            p.root.log()
        );
    }
    // What the comparison covered, spelled out.
    let m = get(p.modproxy_port, "/go", &[]).unwrap();
    assert_eq!(
        m.header("location"),
        Some(format!("http://127.0.0.1:{}/landing", p.modproxy_port).as_str()),
        "ProxyPassReverse"
    );
    let m = get(p.modproxy_port, "/host", &[]).unwrap();
    assert_eq!(
        m.text(),
        format!("127.0.0.1:{}", p.modproxy_port),
        "ProxyPreserveHost On"
    );
    assert_eq!(
        get(p.modproxy_port, "/", &[]).unwrap().text(),
        "Hello world!"
    );
}

#[test]
fn example_2_the_balancer_alternates_as_in_apache() {
    let (b1, b2) = (backend("Hello world!"), backend("Howdy world!"));
    let p = pair("example2.conf", &[b1.port, b2.port]);
    let answers = |port: u16| -> Vec<String> {
        (0..6)
            .map(|_| get(port, "/", &[]).unwrap().text())
            .collect()
    };
    let apache = answers(p.apache_port);
    let ours = answers(p.modproxy_port);
    let alternating = |a: &[String]| {
        a.windows(2).all(|w| w[0] != w[1])
            && a.iter().all(|s| s == "Hello world!" || s == "Howdy world!")
    };
    assert!(alternating(&apache), "Apache: {apache:?}");
    assert!(alternating(&ours), "modproxy: {ours:?}\n{}", p.root.log());
    assert_eq!(
        ours, apache,
        "both start with the first member and alternate"
    );
    let ports = [p.apache_port, p.modproxy_port, b1.port, b2.port];
    for path in ["/go", "/host"] {
        let a = get(p.apache_port, path, &[]).unwrap();
        let m = get(p.modproxy_port, path, &[]).unwrap();
        assert_eq!(seen_as(&m, &ports), seen_as(&a, &ports), "{path}");
    }
}
