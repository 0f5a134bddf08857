//! A real Apache httpd (Debian's apache2, installed by tests/setup.sh) in
//! one process (`-X`) on a generated config in a temp dir, for tests that
//! compare modproxy with the server it rebuilds.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

/// The running Apache; stopped on drop.
pub struct Apache {
    child: Child,
    dir: PathBuf,
}

impl Apache {
    /// Starts Apache with one `<VirtualHost>` per `(port, directives)`,
    /// each listening on 127.0.0.1:port, and waits until all accept.
    pub fn start(vhosts: &[(u16, String)]) -> Apache {
        Apache::start_with(&[], vhosts)
    }

    /// [`Apache::start`] with more of Debian's modules loaded (`proxy_fcgi`
    /// loads `mod_proxy_fcgi.so`).
    pub fn start_with(modules: &[&str], vhosts: &[(u16, String)]) -> Apache {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: run tests/setup.sh (it installs Debian's apache2)"
        );
        let dir = std::env::temp_dir().join(format!(
            "modproxy-apache-{}-{}",
            std::process::id(),
            vhosts.first().map_or(0, |v| v.0)
        ));
        fs::create_dir_all(dir.join("docroot")).unwrap();
        let conf = dir.join("httpd.conf");
        fs::write(&conf, config(&dir, modules, vhosts)).unwrap();
        let log = fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(BINARY)
            .arg("-X")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start apache2");
        let mut apache = Apache { child, dir };
        for (port, _) in vhosts {
            apache.wait_for(*port);
        }
        apache
    }

    /// Starts Apache on a whole configuration the test wrote, `conf` in
    /// `dir` (see [`preamble`]), and waits until every port in `ports`
    /// accepts. `dir` is removed on drop.
    pub fn start_config(dir: &Path, conf: &Path, ports: &[u16]) -> Apache {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: run tests/setup.sh (it installs Debian's apache2)"
        );
        let log = fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(BINARY)
            .arg("-X")
            .arg("-f")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start apache2");
        let mut apache = Apache {
            child,
            dir: dir.to_path_buf(),
        };
        for port in ports {
            apache.wait_for(*port);
        }
        apache
    }

    fn wait_for(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "apache2 exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "apache2 did not listen on {port}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What Apache wrote to stderr and its error log.
    pub fn log(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The start of an httpd.conf that keeps everything under `dir` and
/// loads `modules` (names as in `mod_NAME.so`) from Debian's apache2.
pub fn preamble(dir: &Path, modules: &[&str]) -> String {
    let d = dir.display();
    let mut c = format!(
        "ServerRoot {d}\nDefaultRuntimeDir {d}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\nLogLevel info\n\
         User nobody\nGroup nogroup\nServerName proxy.test\n"
    );
    for m in modules {
        c.push_str(&format!("LoadModule {m}_module {MODULES}/mod_{m}.so\n"));
    }
    c
}

/// A minimal httpd.conf: the event MPM, authz_core (for the default
/// access rules), proxy and proxy_http, everything under `dir`. As root
/// Apache must switch to a user: Debian's `nobody`/`nogroup`.
fn config(dir: &Path, extra: &[&str], vhosts: &[(u16, String)]) -> String {
    let d = dir.display();
    let mut c = format!(
        "ServerRoot {d}\nDefaultRuntimeDir {d}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\nLogLevel info\n\
         User nobody\nGroup nogroup\nServerName proxy.test\nDocumentRoot {d}/docroot\n"
    );
    let base = ["mpm_event", "authz_core", "proxy", "proxy_http"];
    for m in base.iter().chain(extra) {
        c.push_str(&format!("LoadModule {m}_module {MODULES}/mod_{m}.so\n"));
    }
    for (port, _) in vhosts {
        c.push_str(&format!("Listen 127.0.0.1:{port}\n"));
    }
    for (port, directives) in vhosts {
        c.push_str(&format!(
            "<VirtualHost 127.0.0.1:{port}>\n{directives}\n</VirtualHost>\n"
        ));
    }
    c
}
