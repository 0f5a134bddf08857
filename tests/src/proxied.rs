//! A modproxy with proxy and proxy_http enabled and one vhost whose
//! `[vhost.proxy]` section a test writes, started on a free port.

use crate::{free_port, Server, ServerRoot};

/// The server, its root (for the log) and its port.
pub struct Proxied {
    pub root: ServerRoot,
    pub server: Server,
    pub port: u16,
}

impl Proxied {
    /// `proxy` is the body of `[vhost.proxy]` (TOML lines).
    pub fn start(proxy: &str) -> Proxied {
        Proxied::with(proxy, "")
    }

    /// The same, with `top` (core tables such as `[limits]`) before the vhost.
    pub fn with(proxy: &str, top: &str) -> Proxied {
        Proxied::build(top, "", proxy)
    }

    /// The same, with `vhost` (core keys of `[[vhost]]`, such as
    /// `allow_encoded_slashes`) in the vhost.
    pub fn on_vhost(vhost: &str, proxy: &str) -> Proxied {
        Proxied::build("", vhost, proxy)
    }

    fn build(top: &str, vhost: &str, proxy: &str) -> Proxied {
        let root = ServerRoot::new();
        root.enable(&["proxy_http"]);
        let port = free_port();
        root.config(&format!(
            "{top}\n[[vhost]]\nlisten = \"127.0.0.1:{port}\"\nserver_name = \"proxy.test\"\n{vhost}\n\n[vhost.proxy]\n{proxy}\n"
        ));
        let server = Server::start(&root, port);
        Proxied { root, server, port }
    }

    pub fn log(&self) -> String {
        self.root.log()
    }

    /// Waits (at most 5 s) until the log contains `needle`; returns the log.
    pub fn log_eventually(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let log = self.log();
            if log.contains(needle) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
