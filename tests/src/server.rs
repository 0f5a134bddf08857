//! A server root in a temp directory and the real `modproxy` process on it.

use crate::target_dir;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary SERVER_ROOT with descriptors for every module the workspace
/// builds (pointing at this profile's libraries) and none enabled.
pub struct ServerRoot {
    pub dir: PathBuf,
}

impl ServerRoot {
    pub fn new() -> ServerRoot {
        let dir =
            std::env::temp_dir().join(format!("modproxy-test-{}-{}", std::process::id(), unique()));
        fs::create_dir_all(dir.join("mods-available")).unwrap();
        fs::create_dir_all(dir.join("mods-enabled")).unwrap();
        fs::create_dir_all(dir.join("sites-available")).unwrap();
        fs::create_dir_all(dir.join("sites-enabled")).unwrap();
        let root = ServerRoot { dir };
        let repo_descriptors = crate::repo_root().join("mods-available");
        for entry in fs::read_dir(repo_descriptors).unwrap() {
            let path = entry.unwrap().path();
            let text = fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            root.write(&format!("mods-available/{name}"), &retarget(&text));
        }
        root
    }

    /// Writes a file under the root.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn config(&self, text: &str) {
        self.write("modproxy.toml", text);
    }

    /// Adds a descriptor for a test fixture module built by the workspace.
    pub fn fixture_module(&self, name: &str, library_file: &str, extra: &str) {
        let lib = target_dir().join(library_file);
        self.write(
            &format!("mods-available/{name}.toml"),
            &format!("library = {:?}\n{extra}", lib.display().to_string()),
        );
    }

    /// Runs `modproxy -d ROOT ARGS...` to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(modproxy())
            .arg("-d")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("run modproxy")
    }

    /// `modproxy restart`, asserting success. It returns once the old
    /// server has stopped accepting, so every new connection after it meets
    /// the new configuration.
    pub fn restart(&self) {
        let out = self.cli(&["restart"]);
        assert!(
            out.status.success(),
            "restart failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// `modproxy enmod`, asserting success.
    pub fn enable(&self, modules: &[&str]) {
        let mut args = vec!["enmod"];
        args.extend_from_slice(modules);
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "enmod failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Log lines written so far by servers started with [`Server::start`].
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Default for ServerRoot {
    fn default() -> Self {
        ServerRoot::new()
    }
}

impl Drop for ServerRoot {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Points `library = "../target/release/libX.so"` at this profile's build.
fn retarget(descriptor: &str) -> String {
    descriptor
        .lines()
        .map(|line| match line.strip_prefix("library = ") {
            Some(v) => {
                let file = Path::new(v.trim_matches('"'))
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                format!(
                    "library = {:?}",
                    target_dir().join(file).display().to_string()
                )
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modproxy binary of this build profile.
pub fn modproxy() -> PathBuf {
    target_dir().join("modproxy")
}

/// A `modproxy run` process; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    child: Child,
    root: PathBuf,
    pub port: u16,
}

impl Server {
    /// Starts `modproxy -d ROOT run` and waits until `port` accepts.
    /// Output goes to ROOT/server.log.
    pub fn start(root: &ServerRoot, port: u16) -> Server {
        Server::start_with_env(root, port, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(root: &ServerRoot, port: u16, env: &[(&str, &str)]) -> Server {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.dir.join("server.log"))
            .unwrap();
        let child = Command::new(modproxy())
            .arg("-d")
            .arg(&root.dir)
            .arg("run")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start modproxy");
        let mut server = Server {
            child,
            root: root.dir.clone(),
            port,
        };
        // Ready means both: the port accepts, and the control socket that
        // `restart` and `status` talk to exists (it is bound a moment after
        // the listeners).
        let control_socket = root.dir.join("run/modproxy.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() || !control_socket.exists() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "modproxy exited ({status}) before listening:\n{}",
                    root.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "modproxy did not listen on {port}:\n{}",
                root.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait (at most 20 s) for a graceful exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // After a restart the process serving is a successor we did not
        // start: stop whatever the pid file names too.
        let _ = Command::new(modproxy())
            .arg("-d")
            .arg(&self.root)
            .arg("stop")
            .output();
        if self.stop().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A root with `modules` enabled and one vhost that serves HTTP/1.1 and
/// h2c (prior knowledge) on a free port and proxies every path to
/// `backend_url`; `limits` are `[limits]` lines (none when empty). For
/// the tests of HTTP/2 towards clients.
pub fn h2c_proxy(modules: &[&str], backend_url: &str, limits: &str) -> (ServerRoot, Server) {
    let root = ServerRoot::new();
    root.enable(modules);
    let port = crate::free_port();
    let limits = if limits.is_empty() {
        String::new()
    } else {
        format!("[limits]\n{limits}\n")
    };
    root.config(&format!(
        "{limits}[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nprotocols = [\"h2c\", \"http/1.1\"]\n\
         [vhost.proxy]\npass = [{{ path = \"/\", url = \"{backend_url}/\" }}]\n"
    ));
    let server = Server::start(&root, port);
    (root, server)
}
