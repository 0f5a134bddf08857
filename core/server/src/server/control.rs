//! The local control socket (a unix socket beside the pid file) through
//! which `modproxy restart`, `stop` and `status` talk to the running
//! server: one line in, a reply out.

use crate::loader::registry::Registry;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub struct Control {
    listener: UnixListener,
    path: PathBuf,
}

pub struct Reply(UnixStream);

impl Reply {
    pub async fn send(mut self, text: &str) {
        let _ = self.0.write_all(text.as_bytes()).await;
        let _ = self.0.shutdown().await;
    }
}

pub enum Request {
    Restart(Reply),
    Stop(Reply),
    Status(Reply),
}

impl Control {
    /// Binds the socket, taking the path over from a predecessor.
    pub fn bind(path: &Path) -> anyhow::Result<Control> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|e| {
            anyhow::anyhow!("cannot create the control socket {}: {e}; check `control_socket` and that its directory is writable", path.display())
        })?;
        Ok(Control {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The next well-formed request; bad lines get an error reply.
    pub async fn next(&self) -> Request {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).await.is_err() {
                continue;
            }
            let reply = Reply(reader.into_inner());
            match line.trim() {
                "restart" => return Request::Restart(reply),
                "stop" => return Request::Stop(reply),
                "status" => return Request::Status(reply),
                other => {
                    reply
                        .send(&format!(
                            "error unknown command {other:?}; expected restart, stop or status\n"
                        ))
                        .await
                }
            }
        }
    }

    /// Removes the socket file if it is still ours.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends one command to a running server and returns its reply.
pub async fn ask(path: &Path, command: &str) -> Result<String, String> {
    let mut stream = UnixStream::connect(path).await.map_err(|e| {
        format!(
            "no running modproxy answers on {} ({e}); start it with `modproxy start`",
            path.display()
        )
    })?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?
        > 0
    {
        reply.push_str(&line);
        line.clear();
    }
    Ok(reply)
}

/// `modproxy status`: what the server runs, and its balancers' members.
pub fn status_text(registry: &Registry) -> String {
    let mut out = format!(
        "modproxy {} pid {}\nmodules:\n",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    for (i, m) in registry.modules.iter().enumerate() {
        let (hooks, providers) = registry.describe(i);
        out.push_str(&format!(
            "  {} {} hooks [{}] providers [{}]\n",
            m.name,
            m.version,
            hooks.join(", "),
            providers.join(", ")
        ));
    }
    // The balancers' live state, when proxy_balancer is loaded: the same
    // data as the balancer-manager page, with no manager path mapped.
    if let Some(table) = crate::loader::operate::balancer_status(registry) {
        out.push_str(&table);
    }
    out
}
