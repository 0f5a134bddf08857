//! HTTP/2 backends for proxy_http2's tests, each a real server process on
//! a free loopback port, killed on drop: Debian's nghttpd (nghttp2-server)
//! in h2c or TLS mode, h2_backend.py (the `h2` library, with GOAWAY and
//! REFUSED_STREAM on demand) and grpc_backend.py (grpcio). tests/setup.sh
//! installs them.
#![allow(dead_code)] // Each test file uses part of it.

use modproxy_tests::{free_port, Server, ServerRoot};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A backend process and its port.
pub struct Backend {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

impl Backend {
    fn spawn(mut cmd: Command, port: u16, what: &str) -> Backend {
        let log = std::env::temp_dir().join(format!(
            "modproxy-h2-backend-{}-{port}.log",
            std::process::id()
        ));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({e}): run tests/setup.sh"));
        let mut b = Backend { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = b.child.try_wait() {
                panic!("{what} exited ({status}) before listening:\n{}", b.log());
            }
            assert!(Instant::now() < deadline, "{what} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    /// h2_backend.py named `name` (its answers say it), with `args`
    /// (`--goaway-after N`, `--refuse-every N`).
    pub fn python(name: &str, args: &[&str]) -> Backend {
        Backend::python_on(free_port(), name, args)
    }

    pub fn python_on(port: u16, name: &str, args: &[&str]) -> Backend {
        let mut cmd = Command::new("python3");
        cmd.arg(support("h2_backend.py"))
            .arg(port.to_string())
            .arg(name)
            .args(args);
        Backend::spawn(cmd, port, "h2_backend.py (python3 with the h2 package)")
    }

    /// h2_backend.py over TLS (ALPN h2) with `cert` and `key` (PEM files).
    pub fn python_tls(name: &str, cert: &Path, key: &Path) -> Backend {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.arg(support("h2_backend.py"))
            .arg(port.to_string())
            .arg(name)
            .arg("--tls")
            .arg(cert)
            .arg(key);
        Backend::spawn(cmd, port, "h2_backend.py (python3 with the h2 package)")
    }

    /// nghttpd serving `docroot`: cleartext with prior knowledge, or TLS
    /// (ALPN h2) with `cert` (key and certificate PEM files).
    pub fn nghttpd(docroot: &Path, tls: Option<(&Path, &Path)>) -> Backend {
        let port = free_port();
        let mut cmd = Command::new("nghttpd");
        cmd.arg("-d").arg(docroot).arg(port.to_string());
        match tls {
            Some((key, cert)) => cmd.arg(key).arg(cert),
            None => cmd.arg("--no-tls"),
        };
        Backend::spawn(cmd, port, "nghttpd (Debian's nghttp2-server)")
    }

    /// grpc_backend.py (grpcio).
    pub fn grpc() -> Backend {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.arg(support("grpc_backend.py")).arg(port.to_string());
        Backend::spawn(cmd, port, "grpc_backend.py (python3 with grpcio)")
    }

    pub fn h2c_url(&self) -> String {
        format!("h2c://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it at once (SIGKILL): no GOAWAY, the connection just breaks.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A modproxy with proxy_http2 (and `modules`) and one vhost whose
/// `[vhost.proxy]` section is `proxy` (TOML lines, tables after it too).
pub fn serve(modules: &[&str], proxy: &str) -> (ServerRoot, Server) {
    serve_on_vhost(modules, "", proxy)
}

/// The same with `vhost` (core keys of `[[vhost]]`, such as `protocols`).
pub fn serve_on_vhost(modules: &[&str], vhost: &str, proxy: &str) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    let mut all = vec!["proxy_http2"];
    all.extend_from_slice(modules);
    root.enable(&all);
    let port = free_port();
    root.config(&format!(
        "[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"proxy.test\"\n{vhost}\n\n[vhost.proxy]\n{proxy}\n"
    ));
    let server = Server::start(&root, port);
    (root, server)
}

/// Runs `f` on `threads` threads, `per_thread` times each; every result.
pub fn load<T: Send + 'static>(
    threads: usize,
    per_thread: usize,
    f: impl Fn() -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = std::sync::Arc::new(f);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let f = f.clone();
            std::thread::spawn(move || (0..per_thread).map(|_| f()).collect::<Vec<T>>())
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("a load thread"))
        .collect()
}
