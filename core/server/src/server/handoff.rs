//! Graceful restart, the old server's side: start a successor that
//! inherits the listening sockets, wait until it says it is ready (or why
//! it failed), and only then stop accepting and drain.
//! The successor's side is `report_ready` / `report_failure`.

use super::listen::LISTEN_ADDRS_ENV;
use command_fds::{CommandFdExt, FdMapping};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Where the successor reports: the path of a one-shot unix socket.
pub const READY_SOCKET_ENV: &str = "MODPROXY_READY_SOCKET";

/// How long a successor may take to load its modules and config.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How the successor is started: the same binary, root and config.
pub struct Successor<'a> {
    pub server_root: &'a Path,
    pub config: &'a Path,
    pub run_dir: &'a Path,
}

/// Starts a successor with `listeners` and waits for its verdict.
/// Ok(pid) when it serves; Err(its reasons) otherwise (then it has exited).
/// With `detach_output`, the successor is a daemon: its own process group,
/// its output to that file (`modproxy start`).
pub async fn start(
    s: &Successor<'_>,
    listeners: &[(SocketAddr, TcpListener)],
    detach_output: Option<std::fs::File>,
) -> Result<u32, String> {
    let ready_path = s.run_dir.join(format!("ready-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&ready_path);
    let ready = UnixListener::bind(&ready_path).map_err(|e| {
        format!(
            "cannot create {}: {e}; check that the directory is writable",
            ready_path.display()
        )
    })?;
    let _cleanup = RemoveOnDrop(ready_path.clone());

    let mut mappings = Vec::new();
    for (i, (_, l)) in listeners.iter().enumerate() {
        let fd: OwnedFd = l
            .try_clone()
            .map_err(|e| format!("cannot share a listening socket: {e}"))?
            .into();
        mappings.push(FdMapping {
            parent_fd: fd,
            child_fd: 3 + i as i32,
        });
    }
    let addrs: Vec<String> = listeners.iter().map(|(a, _)| a.to_string()).collect();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("-d")
        .arg(s.server_root)
        .arg("-f")
        .arg(s.config)
        .arg("run")
        .env("LISTEN_FDS", listeners.len().to_string())
        .env_remove("LISTEN_PID")
        .env(LISTEN_ADDRS_ENV, addrs.join(","))
        .env(READY_SOCKET_ENV, &ready_path)
        .stdin(Stdio::null());
    if let Some(out) = detach_output {
        use std::os::unix::process::CommandExt;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot share the log file: {e}"))?;
        cmd.stdout(out).stderr(err).process_group(0);
    }
    cmd.fd_mappings(mappings)
        .map_err(|e| format!("cannot pass the listening sockets: {e}"))?;
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| format!("cannot start the new server: {e}"))?;
    let pid = child.id().unwrap_or(0);

    let verdict = async {
        let (stream, _) = ready
            .accept()
            .await
            .map_err(|e| format!("the new server did not report: {e}"))?;
        let mut line = String::new();
        let mut reader = BufReader::new(stream);
        let mut all = String::new();
        while reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?
            > 0
        {
            all.push_str(&line);
            line.clear();
        }
        Ok::<String, String>(all)
    };
    tokio::pin!(verdict);
    // Biased, report first: a successor that fails writes its reasons and
    // exits at once, and its reasons are what the operator needs to read.
    tokio::select! {
        biased;
        v = &mut verdict => {
            let text = v?;
            if text.starts_with("ready") {
                Ok(pid)
            } else {
                let _ = child.wait().await;
                Err(text.trim_end().to_string())
            }
        }
        status = child.wait() => {
            // Its report may still be in flight: give it a moment.
            match tokio::time::timeout(Duration::from_secs(2), verdict).await {
                Ok(Ok(text)) if !text.trim().is_empty() && !text.starts_with("ready") => {
                    Err(text.trim_end().to_string())
                }
                _ => Err(format!(
                    "the new server exited ({}) before it was ready; see the error log",
                    status.map(|s| s.to_string()).unwrap_or_default()
                )),
            }
        }
        _ = tokio::time::sleep(READY_TIMEOUT) => {
            let _ = child.kill().await;
            Err(format!("the new server was not ready within {}s; it was stopped", READY_TIMEOUT.as_secs()))
        }
    }
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn report(text: &str) {
    let Some(path) = std::env::var_os(READY_SOCKET_ENV) else {
        return;
    };
    if let Ok(mut s) = UnixStream::connect(&path).await {
        let _ = s.write_all(text.as_bytes()).await;
        let _ = s.shutdown().await;
    }
}

/// Tells whoever started us (a restart or `start`) that we serve.
pub async fn report_ready() {
    report(&format!("ready {}\n", std::process::id())).await;
}

/// Tells whoever started us why we could not serve.
pub fn report_failure(errors: &[String]) {
    let text = errors.iter().map(|e| format!("{e}\n")).collect::<String>();
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        rt.block_on(report(&text));
    }
}
