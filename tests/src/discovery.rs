//! The stores proxy_discovery reads, run for real on loopback ports: an
//! etcd (Debian's etcd-server, driven with its etcdctl) and a DNS server
//! (Debian's dnsmasq, serving SRV and A records given on its command
//! line; a change of records restarts it on the same port, as dnsmasq
//! rereads only some files on SIGHUP).

use crate::{free_port, ServerRoot};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tool(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: apt-get install -y {package} (tests/setup.sh does)");
}

/// An etcd member of its own one-node cluster, in a temp data directory.
pub struct Etcd {
    child: Option<Child>,
    pub port: u16,
    peer: u16,
    dir: PathBuf,
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = std::env::temp_dir().join(format!(
            "modproxy-etcd-{}-{}",
            std::process::id(),
            free_port()
        ));
        let mut e = Etcd {
            child: None,
            port: free_port(),
            peer: free_port(),
            dir,
        };
        e.spawn();
        e
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::env::temp_dir().join(format!("modproxy-etcd-{}.log", self.port)))
            .unwrap();
        let child = Command::new(tool("etcd", "etcd-server"))
            .args(["--name", "n1", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("n1={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ctl(&["endpoint", "health"]).0 {
            assert!(
                Instant::now() < deadline,
                "etcd did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs etcdctl against this etcd: (success, stdout).
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(tool("etcdctl", "etcd-client"))
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint(), "--dial-timeout", "1s"])
            .args(args)
            .output()
            .expect("run etcdctl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    pub fn put(&self, key: &str, value: &str) {
        let (ok, out) = self.ctl(&["put", key, value]);
        assert!(ok, "etcdctl put {key}: {out}");
    }

    pub fn del(&self, key: &str) {
        let (ok, out) = self.ctl(&["del", key]);
        assert!(ok, "etcdctl del {key}: {out}");
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        let (_, out) = self.ctl(&["get", "--print-value-only", key]);
        let v = out.trim();
        (!v.is_empty()).then(|| v.to_owned())
    }

    /// SIGKILL, as a crash: the data directory stays for [`Etcd::restart`].
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An SRV record of `_http._tcp.app.internal` for a member on 127.0.0.1
/// (through the target `a.app.internal`), as a dnsmasq argument.
pub fn srv(port: u16, priority: u16, weight: u16) -> String {
    format!("--srv-host=_http._tcp.app.internal,a.app.internal,{port},{priority},{weight}")
}

/// dnsmasq answering for the records given, with a TTL of 1 s.
pub struct Dns {
    child: Option<Child>,
    pub port: u16,
}

impl Dns {
    pub fn start(records: &[String]) -> Dns {
        let mut d = Dns {
            child: None,
            port: free_port(),
        };
        d.set(records);
        d
    }

    /// `127.0.0.1:PORT`, for `resolver =`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Serves `records` from now on (dnsmasq restarted on the same port).
    pub fn set(&mut self, records: &[String]) {
        self.stop();
        let child = Command::new(tool("dnsmasq", "dnsmasq-base"))
            .args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--local-ttl=1",
                "--host-record=a.app.internal,127.0.0.1",
                "--host-record=web.app.internal,127.0.0.1",
            ])
            .arg(format!("--port={}", self.port))
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // dnsmasq listens on TCP too: ready once that accepts.
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `modproxy status` of the server on `root`.
pub fn status(root: &ServerRoot) -> String {
    String::from_utf8_lossy(&root.cli(&["status"]).stdout).into_owned()
}

/// The state word `modproxy status` shows for member `url` (`ok`,
/// `removed`, `disabled`…), and its factor; `None` when not listed.
pub fn member_state(status: &str, url: &str) -> Option<(String, u32)> {
    let line = status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(url))?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    Some((cols.get(1)?.to_string(), cols.get(5)?.parse().ok()?))
}

/// Polls `f` every 20 ms until it holds; how long that took. Panics
/// with `what` and `context()` after `limit`.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> bool,
    context: impl Fn() -> String,
) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// The lines of a server log that are not access-log lines.
pub fn log_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.starts_with('['))
        .collect::<Vec<_>>()
        .join("\n")
}
