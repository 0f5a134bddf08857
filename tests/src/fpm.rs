//! A real PHP-FPM (Debian's php-fpm, installed by tests/setup.sh) on a
//! pool config of its own in a temp dir, listening on loopback (and on a
//! unix socket), never the system's service; stopped on drop.

use std::fs;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The PHP pages every test can ask for, under [`PhpFpm::docroot`].
const PAGES: &[(&str, &str)] = &[
    (
        "index.php",
        "<?php header('X-Powered: fpm'); echo 'Hello from PHP ', PHP_MAJOR_VERSION, ' via ', $_SERVER['REQUEST_METHOD'], ' pool ', getenv('POOL');",
    ),
    (
        "echo.php",
        "<?php header('Content-Type: application/octet-stream'); $in = file_get_contents('php://input'); header('X-Received: ' . strlen($in)); echo $in;",
    ),
    ("redirect.php", "<?php header('Location: http://backend.internal/app/next.php?from=redirect');"),
    ("status.php", "<?php http_response_code(404); echo 'no such thing, says PHP';"),
    ("fatal.php", "<?php no_such_function_at_all();"),
    ("warn.php", "<?php error_log('a note from the script'); echo 'warned';"),
    (
        "server.php",
        "<?php header('Content-Type: application/json'); ksort($_SERVER); echo json_encode($_SERVER, JSON_UNESCAPED_SLASHES);",
    ),
    (
        "dump.php",
        "<?php ksort($_SERVER); foreach ($_SERVER as $k => $v) { echo $k, '=', is_string($v) ? addcslashes($v, \"\\n\\\\\") : json_encode($v), \"\\n\"; }",
    ),
    ("slow.php", "<?php usleep(300000); echo 'slept';"),
    ("small.php", "<?php echo 'ok';"),
];

pub struct PhpFpm {
    child: Child,
    dir: PathBuf,
    /// TCP ports of the pools, in the order of `pools`.
    pub ports: Vec<u16>,
}

impl PhpFpm {
    /// The php-fpm binary, or a message saying how to get one.
    pub fn binary() -> PathBuf {
        let found = fs::read_dir("/usr/sbin").ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("php-fpm"))
                })
                .max()
        });
        found.expect("no /usr/sbin/php-fpm*: run tests/setup.sh (it installs Debian's php-fpm)")
    }

    /// One pool on a free port.
    pub fn start() -> PhpFpm {
        PhpFpm::pools(&["www"], 4)
    }

    /// A pool per name, each on its own free port, `children` workers
    /// each (pm = static), plus pool `sock` on a unix socket for the first
    /// name's settings ([`PhpFpm::socket`]).
    pub fn pools(names: &[&str], children: u32) -> PhpFpm {
        let dir = std::env::temp_dir().join(format!(
            "modproxy-fpm-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        let docroot = dir.join("www");
        fs::create_dir_all(&docroot).unwrap();
        for (name, text) in PAGES {
            fs::write(docroot.join(name), text).unwrap();
        }
        // Workers run as nobody when we are root: they must reach the pages.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(&dir)
            .status();
        let ports: Vec<u16> = names.iter().map(|_| crate::free_port()).collect();
        let d = dir.display();
        let mut conf =
            format!("[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n");
        let mut pool = |name: &str, listen: String| {
            conf.push_str(&format!(
                "[{name}]\nlisten = {listen}\nlisten.mode = 0666\npm = static\npm.max_children = {children}\n\
                 catch_workers_output = yes\nclear_env = yes\nenv[POOL] = {name}\n\
                 php_admin_value[display_errors] = off\nphp_admin_flag[log_errors] = on\n\
                 php_admin_value[post_max_size] = 64M\nphp_admin_value[memory_limit] = 256M\n"
            ));
            if is_root() {
                conf.push_str("user = nobody\ngroup = nogroup\n");
            }
        };
        for (name, port) in names.iter().zip(&ports) {
            pool(name, format!("127.0.0.1:{port}"));
        }
        pool("sock", format!("{d}/fpm.sock"));
        fs::write(dir.join("fpm.conf"), conf).unwrap();
        let log = fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(PhpFpm::binary())
            .arg("-n")
            .arg("-F")
            .arg("-y")
            .arg(dir.join("fpm.conf"))
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start php-fpm");
        let mut fpm = PhpFpm { child, dir, ports };
        fpm.wait_ready();
        fpm
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let tcp = self
                .ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if tcp && UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "php-fpm exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "php-fpm did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    /// The directory with the pages: what `fcgi://…/DOCROOT/` names.
    pub fn docroot(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// `fcgi://127.0.0.1:PORT/DOCROOT` of the first pool (no trailing /).
    pub fn url(&self) -> String {
        format!(
            "fcgi://127.0.0.1:{}{}",
            self.port(),
            self.docroot().display()
        )
    }

    /// The unix socket of pool `sock`.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("fpm.sock")
    }

    pub fn log(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("fpm.log"))
    }

    /// Stops it (SIGKILL: the master and, as they lose it, the workers).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-QUIT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
