//! The core on its own and with modules coming and going: 404 with no
//! modules, enmod/dismod, configtest, the module listing, and graceful
//! restarts that drop nothing.

use modproxy_tests::{free_port, get, Backend, Conn, Server, ServerRoot};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn vhost(port: u16) -> String {
    format!("[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n")
}

fn example1(port: u16, backend: &str) -> String {
    format!(
        "{}\n[vhost.proxy]\npreserve_host = true\npass = [{{ path = \"/\", url = \"{backend}/\" }}]\npass_reverse = [{{ path = \"/\", url = \"{backend}/\" }}]\n",
        vhost(port)
    )
}

#[test]
fn with_no_module_enabled_the_core_answers_404() {
    let root = ServerRoot::new();
    let port = free_port();
    root.config(&vhost(port));
    let _server = Server::start(&root, port);
    let r = get(port, "/anything", &[]).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("404"), "an error page: {}", r.text());
}

#[test]
fn configtest_says_syntax_ok_or_names_each_problem() {
    let root = ServerRoot::new();
    root.config(&vhost(free_port()));
    let ok = root.cli(&["configtest"]);
    assert!(ok.status.success());
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "Syntax OK");

    // [vhost.proxy] with proxy disabled names the module to enable.
    root.config(&example1(free_port(), "http://127.0.0.1:9"));
    let bad = root.cli(&["configtest"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("modproxy.toml"), "names the file: {err}");
    assert!(err.contains("vhost[0].proxy"), "names the key path: {err}");
    assert!(
        err.contains("modproxy enmod proxy"),
        "says what to do: {err}"
    );

    // A syntax error names the line.
    root.config("[[vhost]\nlisten = 1\n");
    let err = String::from_utf8_lossy(&root.cli(&["configtest"]).stderr).into_owned();
    assert!(err.contains("line 1"), "{err}");
}

/// enmod only makes a link, so it succeeds for a module not built yet;
/// it warns, so the restart after it is not the first to say so.
#[test]
fn enmod_warns_when_the_module_library_is_not_built_yet() {
    let root = ServerRoot::new();
    root.write(
        "mods-available/unbuilt.toml",
        "library = \"target/release/libunbuilt.so\"\n",
    );
    let out = root.cli(&["enmod", "unbuilt"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("module unbuilt's library") && err.contains("has not been built yet"),
        "{err}"
    );
    let built = root.cli(&["enmod", "proxy"]);
    assert!(
        !String::from_utf8_lossy(&built.stderr).contains("Warning: module proxy's"),
        "no warning for a built module"
    );
}

#[test]
fn enmod_pulls_in_dependencies_and_dismod_protects_dependants() {
    let root = ServerRoot::new();
    let out = root.cli(&["enmod", "proxy_http"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("proxy"), "{text}");
    assert!(
        text.contains("To activate the new configuration, run: modproxy restart"),
        "{text}"
    );
    assert!(root.dir.join("mods-enabled/proxy.toml").exists());
    assert!(root.dir.join("mods-enabled/proxy_http.toml").exists());

    // Idempotent.
    let again = root.cli(&["enmod", "proxy_http"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already enabled"));

    // proxy is needed by proxy_http: refused without -f.
    let refused = root.cli(&["dismod", "proxy"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("proxy_http"));
    assert!(root.dir.join("mods-enabled/proxy.toml").exists());

    let forced = root.cli(&["dismod", "-f", "proxy"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(!root.dir.join("mods-enabled/proxy.toml").exists());
    assert!(!root.dir.join("mods-enabled/proxy_http.toml").exists());

    // Unknown module: lists what is available.
    let unknown = root.cli(&["enmod", "proxy_gopher"]);
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("proxy_gopher") && err.contains("lbmethod_byrequests"),
        "{err}"
    );
}

#[test]
fn modules_lists_what_each_enabled_module_registered() {
    let root = ServerRoot::new();
    root.enable(&["lbmethod_byrequests", "proxy_http"]);
    let out = root.cli(&["modules"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in:\n{text}"))
            .to_string()
    };
    assert!(
        line("proxy").contains("translate_name") && line("proxy").contains("handler"),
        "{text}"
    );
    assert!(line("proxy_http").contains("proxy_scheme:http"), "{text}");
    assert!(
        line("lbmethod_byrequests").contains("lbmethod:byrequests"),
        "{text}"
    );
    assert!(line("proxy_balancer").contains("yes"), "{text}");
    // Built with this server: the ABI `modproxy version` names.
    let version = String::from_utf8_lossy(&root.cli(&["version"]).stdout).into_owned();
    let abi = version
        .split("module ABI ")
        .nth(1)
        .and_then(|v| v.split(')').next())
        .unwrap_or_else(|| panic!("no ABI in {version}"));
    assert!(
        line("lbmethod_byrequests").contains(&format!(" {abi} ")),
        "ABI version column ({abi}): {text}"
    );
}

#[test]
fn modules_columns_align_whatever_the_lengths_and_descriptions_have_their_own() {
    let root = ServerRoot::new();
    root.enable(&["lbmethod_byrequests", "proxy_http"]);
    let long = "a_third_party_module_with_a_rather_long_name";
    root.write(
        &format!("mods-available/{long}.toml"),
        "description = \"Says hello\"\nlibrary = \"nowhere.so\"\n",
    );
    let out = root.cli(&["modules"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap();
    let columns = [
        "ENABLED",
        "VERSION",
        "ABI",
        "HOOKS",
        "PROVIDERS",
        "DESCRIPTION",
    ];
    let starts: Vec<usize> = columns.iter().map(|c| header.find(c).unwrap()).collect();
    for line in text.lines().skip(1) {
        for (column, at) in columns.iter().zip(&starts) {
            let (before, cell) = line.split_at(*at);
            assert!(
                before.ends_with("  ") && !cell.starts_with(' '),
                "{column} does not start at {at} in {line:?}:\n{text}"
            );
        }
    }
    let disabled = text.lines().find(|l| l.starts_with(long)).unwrap();
    assert_eq!(&disabled[starts[5]..], "Says hello", "{text}");
    assert!(
        disabled[starts[4]..].starts_with("- "),
        "no provider: {text}"
    );
}

/// Requests in a loop until stopped; counts successes and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(port: u16, clients: usize, accept: fn(&modproxy_tests::Response) -> bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let mut errors = Vec::new();
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                    while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                        match get(port, "/", &[]) {
                            Ok(r) if accept(&r) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            other => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                errors.push(format!("{other:?}"));
                            }
                        }
                    }
                    errors
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let errors = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            errors,
        )
    }
}

#[test]
fn enabling_modules_and_restarting_changes_behaviour_without_dropping_a_request() {
    let backend = Backend::text("Hello world!");
    let root = ServerRoot::new();
    let port = free_port();
    root.config(&vhost(port));
    let server = Server::start(&root, port);

    // Before: 404. During the switch, either answer is fine; a failure is not.
    let load = Load::start(port, 4, |r| {
        r.status == 404 || (r.status == 200 && r.body == b"Hello world!")
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    root.enable(&["proxy_http"]);
    root.config(&example1(port, &backend.url()));
    root.restart();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (ok, failed, errors) = load.finish();
    assert_eq!(
        failed,
        0,
        "failed requests across the restart: {errors:?}\n{}",
        root.log()
    );
    assert!(ok > 20, "the load ran ({ok} requests)");

    let r = get(port, "/", &[]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "Hello world!"));
    drop(server);
}

#[test]
fn a_restart_onto_a_broken_config_keeps_the_old_server_serving() {
    let root = ServerRoot::new();
    let port = free_port();
    root.config(&vhost(port));
    let _server = Server::start(&root, port);
    root.config(&format!("{}\n[vhost.nonsense]\nx = 1\n", vhost(port)));
    let out = root.cli(&["restart"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vhost[0].nonsense"), "says why: {err}");
    assert!(
        err.contains("old configuration"),
        "says the old server still serves: {err}"
    );
    assert_eq!(get(port, "/", &[]).unwrap().status, 404, "still serving");
}

#[test]
fn start_and_stop_manage_a_daemon_through_the_pid_file() {
    let root = ServerRoot::new();
    let port = free_port();
    root.config(&vhost(port));
    let out = root.cli(&["start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("started"));
    assert_eq!(get(port, "/", &[]).unwrap().status, 404);
    let again = root.cli(&["start"]);
    assert_eq!(again.status.code(), Some(1), "a second start is refused");
    let status = root.cli(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("modproxy"));
    let stop = root.cli(&["stop"]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(get(port, "/", &[]).is_err(), "stopped");
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let backend = Backend::start(|seen| (200, vec![], seen.target.clone().into_bytes()));
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let port = free_port();
    root.config(&example1(port, &backend.url()));
    let _server = Server::start(&root, port);
    let mut pipeline = String::new();
    for i in 0..5 {
        let close = if i == 4 { "Connection: close\r\n" } else { "" };
        pipeline.push_str(&format!("GET /req{i} HTTP/1.1\r\nHost: x\r\n{close}\r\n"));
    }
    let raw = modproxy_tests::send_raw(port, pipeline.as_bytes()).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let order: Vec<usize> = (0..5)
        .map(|i| text.find(&format!("/req{i}")).expect("every answer"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {text}");
    assert_eq!(text.matches("HTTP/1.1 200").count(), 5, "{text}");
}

/// Keep-alive connections idle past the parking time (100 ms) leave
/// their tasks for the idle lot; each must still answer its next request,
/// and a stop must close them at once rather than at their timeout.
#[test]
fn parked_keep_alive_connections_answer_again_and_close_on_stop() {
    let backend = Backend::text("hi");
    let root = ServerRoot::new();
    root.enable(&["proxy_http"]);
    let port = free_port();
    root.config(&format!(
        "[limits]\nkeepalive_timeout = 30\n\n{}",
        example1(port, &backend.url())
    ));
    let mut server = Server::start(&root, port);
    let ask = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut conns: Vec<Conn> = (0..20).map(|_| Conn::open(port).unwrap()).collect();
    for round in 0..3 {
        for c in &mut conns {
            c.send(ask).unwrap();
            let r = c.read_response(false).unwrap();
            assert_eq!(
                (r.status, r.text()),
                (200, "hi".to_string()),
                "round {round}"
            );
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    let t = Instant::now();
    assert!(server.stop().is_some_and(|s| s.success()), "{}", root.log());
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stopped in {:?}, not at the 30 s keep-alive timeout",
        t.elapsed()
    );
    for c in &mut conns {
        assert!(c.closed_within(Duration::from_secs(1)));
    }
}

#[test]
fn ensite_includes_a_site_file_and_dissite_removes_it() {
    let root = ServerRoot::new();
    let port = free_port();
    root.config("include = [\"sites-enabled/*.toml\"]\n");
    root.write("sites-available/example.toml", &vhost(port));
    let none = root.cli(&["configtest"]);
    assert_eq!(none.status.code(), Some(1), "no vhost yet");
    let out = root.cli(&["ensite", "example"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.cli(&["configtest"]).status.success());
    let _server = Server::start(&root, port);
    assert_eq!(get(port, "/", &[]).unwrap().status, 404);
    let out = root.cli(&["dissite", "example"]);
    assert!(out.status.success());
    assert!(!root.dir.join("sites-enabled/example.toml").exists());
}

/// `run`, then `restart`: the successor has a pid of its own, which the
/// pid file follows, and `modproxy stop` stops it.
#[test]
fn stop_works_after_run_then_restart() {
    let root = ServerRoot::new();
    let port = free_port();
    root.config(&format!("[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut first = Server::start(&root, port);
    let pid_file = root.dir.join("run/modproxy.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        first.pid().to_string()
    );
    root.restart();
    let successor = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(successor, first.pid().to_string(), "a new process");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while first.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !first.is_running(),
        "the first process handed over and left"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let out = root.cli(&["stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Gone, or a zombie nobody reaped (its parent, the first process, left).
    let stat = std::fs::read_to_string(format!("/proc/{successor}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    assert!(
        matches!(state, None | Some('Z')),
        "the successor stopped: {stat}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
