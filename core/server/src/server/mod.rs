//! The running server: loads modules and config, listens, serves HTTP/1.1
//! with hyper on a multi-threaded tokio runtime, and handles stop, restart
//! (socket hand-off) and log reopening.

mod body;
pub mod control;
mod finish;
pub mod handoff;
mod listen;
pub mod pipeline;
mod vhosts;

use crate::loader::registry::Registry;
use crate::loader::request::ConnInfo;
use crate::log;
use crate::startup::Loaded;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use pipeline::Site;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// Where the server's files are.
pub struct Paths {
    pub server_root: PathBuf,
    pub config: PathBuf,
}

/// What ends `serve`.
enum Exit {
    /// SIGTERM/SIGINT or `modproxy stop`: drain and exit.
    Stop,
    /// A successor took over the sockets: drain and exit, leave its files alone.
    HandedOff,
}

/// Runs the server in the foreground until it is stopped or replaced.
pub fn run(paths: Paths, loaded: Loaded) -> anyhow::Result<()> {
    let addrs = listen_addrs(&loaded);
    let listeners = match listen::open(&addrs) {
        Ok(l) => l,
        Err(e) => {
            handoff::report_failure(std::slice::from_ref(&e));
            anyhow::bail!(e);
        }
    };
    let workers = match loaded.config.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("modproxy-worker")
        .enable_all()
        .build()?;
    runtime.block_on(serve(paths, loaded, listeners, workers))
}

fn listen_addrs(loaded: &Loaded) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for v in &loaded.config.vhosts {
        for a in &v.listen {
            if !addrs.contains(a) {
                addrs.push(*a);
            }
        }
    }
    addrs
}

async fn serve(
    paths: Paths,
    loaded: Loaded,
    listeners: Vec<(SocketAddr, TcpListener)>,
    workers: usize,
) -> anyhow::Result<()> {
    let settings = loaded.config.server.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(settings.limits.max_connections));
    let mut accept_tasks = Vec::new();
    for (addr, listener) in &listeners {
        let vhosts: Vec<_> = loaded
            .config
            .vhosts
            .iter()
            .filter(|v| v.listen.contains(addr))
            .collect();
        let site = Arc::new(Site {
            registry: loaded.registry,
            vhosts: vhosts::ListenerVhosts::new(&vhosts, &settings.server_name),
            limits: pipeline::RequestLimits {
                request_line: settings.limits.request_line,
                field_size: settings.limits.request_field_size,
                body: settings.limits.request_body,
            },
        });
        let listener = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
        let limits = ConnLimits {
            keepalive: settings.limits.keepalive_timeout,
            max_headers: settings.limits.request_fields,
            max_buf: settings
                .limits
                .request_line
                .max(settings.limits.request_field_size)
                * 2
                + 8192,
        };
        accept_tasks.push(tokio::spawn(accept_loop(
            listener,
            site,
            permits.clone(),
            stop_rx.clone(),
            drain_tx.clone(),
            limits,
        )));
    }
    drop(drain_tx);

    write_pid_file(&settings.pid_file);
    let control = control::Control::bind(&settings.control_socket)?;
    log::info(&format!(
        "modproxy {} serving on {} with {workers} worker threads and {} modules",
        env!("CARGO_PKG_VERSION"),
        listeners
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        loaded.registry.modules.len()
    ));
    handoff::report_ready().await;

    let successor = handoff::Successor {
        server_root: &paths.server_root,
        config: &paths.config,
        run_dir: settings
            .control_socket
            .parent()
            .unwrap_or(&paths.server_root),
    };
    let exit = wait_for_exit(&control, &successor, &listeners, loaded.registry).await;

    // Stop accepting; in-flight requests finish (hyper's graceful shutdown).
    log::info("no longer accepting connections; draining those in flight");
    for t in &accept_tasks {
        t.abort();
    }
    drop(listeners);
    let _ = stop_tx.send(true);
    let _ = drain_rx.recv().await;
    match exit {
        Exit::Stop => {
            remove_if_ours(&settings.pid_file);
            control.remove();
            log::info("stopped");
        }
        Exit::HandedOff => log::info("handed over to the new server; drained and exiting"),
    }
    Ok(())
}

async fn wait_for_exit(
    control: &control::Control,
    successor: &handoff::Successor<'_>,
    listeners: &[(SocketAddr, TcpListener)],
    registry: &'static Registry,
) -> Exit {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        log::error("cannot install signal handlers; stopping");
        return Exit::Stop;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return Exit::Stop,
            _ = int.recv() => return Exit::Stop,
            _ = usr1.recv() => { log::reopen(); log::info("log files reopened"); }
            request = control.next() => match request {
                control::Request::Stop(reply) => { reply.send("stopping\n").await; return Exit::Stop; }
                control::Request::Restart(reply) => {
                    log::info("graceful restart: starting the new server");
                    match handoff::start(successor, listeners, None).await {
                        Ok(pid) => {
                            reply.send(&format!("ok {pid}\n")).await;
                            return Exit::HandedOff;
                        }
                        Err(why) => {
                            log::error(&format!("graceful restart failed, still serving with the old configuration: {why}"));
                            reply.send(&format!("error {why}\n")).await;
                        }
                    }
                }
                control::Request::Status(reply) => {
                    reply.send(&control::status_text(registry)).await;
                }
            }
        }
    }
}

struct ConnLimits {
    keepalive: Duration,
    max_headers: usize,
    max_buf: usize,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    site: Arc<Site>,
    permits: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    drain: mpsc::Sender<()>,
    limits: ConnLimits,
) {
    let limits = Arc::new(limits);
    loop {
        // MaxConnections: wait for a slot before accepting, so excess
        // clients queue in the kernel's backlog instead of being refused.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, client) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::error(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(client);
        let conn = Arc::new(ConnInfo {
            client,
            client_text: client.to_string(),
            local_text: local.to_string(),
            scheme: "http",
        });
        let site = site.clone();
        let mut stop = stop.clone();
        let drain = drain.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _drain = drain;
            let service = service_fn(move |req| {
                let (site, conn) = (site.clone(), conn.clone());
                async move { Ok::<_, std::convert::Infallible>(pipeline::serve(site, conn, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.keepalive)
                .max_headers(limits.max_headers)
                .max_buf_size(limits.max_buf);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

fn write_pid_file(path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        log::error(&format!(
            "cannot write pid file {}: {e}; `modproxy stop` will not find this server",
            path.display()
        ));
    }
}

/// Removes the pid file unless a successor already wrote its own pid.
fn remove_if_ours(path: &std::path::Path) {
    let ours = std::fs::read_to_string(path)
        .map(|s| s.trim() == std::process::id().to_string())
        .unwrap_or(false);
    if ours {
        let _ = std::fs::remove_file(path);
    }
}
