//! The running server: loads modules and config, listens, serves HTTP/1.1
//! on one single-threaded tokio runtime per worker thread, and handles
//! stop, restart (socket hand-off) and log reopening.

mod connection;
pub mod control;
mod defer_accept;
mod finish;
mod first_read;
pub mod handoff;
pub mod http2;
mod idle;
mod listen;
pub mod pipeline;
mod respond;
pub mod tls;
pub mod tunnels;
mod vhosts;

use crate::http::client_io::ClientIo;
use crate::http::client_tcp::ClientTcp;
use crate::loader::registry::Registry;
use crate::loader::request::ConnInfo;
use crate::log;
use crate::startup::Loaded;
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
    /// A successor took over the sockets: drain and exit, leave its files
    /// alone. The restart's caller is answered once we stop accepting, so
    /// that after `modproxy restart` returns every new connection meets
    /// the new configuration.
    HandedOff { reply: control::Reply, pid: u32 },
}

/// Runs the server in the foreground until it is stopped or replaced.
///
/// One thread per worker, each with its own single-threaded tokio runtime
/// accepting on every listener (nginx's worker-per-core shape): a request
/// stays on the thread that accepted it, with no work-stealing queues or
/// cross-thread wakeups on the hot path. The main thread is worker 0 and
/// also handles signals and the control socket.
pub fn run(paths: Paths, loaded: Loaded) -> anyhow::Result<()> {
    let addrs = listen_addrs(&loaded);
    let listeners = match listen::open(&addrs, loaded.config.server.limits.defer_accept) {
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
    let shared = Arc::new(Shared::new(&loaded, &listeners, workers)?);
    let mut threads = Vec::new();
    for i in 1..workers {
        let shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("modproxy-worker-{i}"))
            .spawn(move || match runtime() {
                Ok(rt) => rt.block_on(worker(shared)),
                Err(e) => {
                    log::error(&format!("worker {i} could not start its runtime: {e}"));
                    let loops = shared.sites.len();
                    shared.accept_loops_stopped.send_modify(|n| *n += loops);
                }
            })?;
        threads.push(thread);
    }
    let result = runtime()?.block_on(async {
        tokio::spawn(worker(shared.clone()));
        serve(paths, loaded, &shared, listeners, workers).await
    });
    for t in threads {
        let _ = t.join();
    }
    // Every request is over: its buffered access-log lines go out.
    log::flush_access();
    result
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

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// What every worker thread shares.
struct Shared {
    sites: Vec<(Arc<Site>, TcpListener)>,
    permits: Arc<Semaphore>,
    limits: Arc<ConnLimits>,
    stop: watch::Receiver<bool>,
    stop_tx: watch::Sender<bool>,
    /// Each connection and accept loop holds a clone; when all are gone,
    /// every in-flight request is done.
    drain: std::sync::Mutex<Option<mpsc::Sender<()>>>,
    drain_rx: tokio::sync::Mutex<mpsc::Receiver<()>>,
    /// Set once drained, so worker runtimes may end.
    drained: watch::Sender<bool>,
    workers: usize,
    /// How many accept loops have ended.
    accept_loops_stopped: watch::Sender<usize>,
    /// Set before a hand-off stops us: connections then end gently (see
    /// `serve_connection`) rather than at once.
    handing_off: std::sync::atomic::AtomicBool,
    /// `limits.tunnel_grace`.
    tunnel_grace: Duration,
    /// When this server started: a deadline long past, for a timer that
    /// is made before it is first set (making one for "now" reads the clock).
    started: tokio::time::Instant,
}

impl Shared {
    fn new(
        loaded: &Loaded,
        listeners: &[(SocketAddr, TcpListener)],
        workers: usize,
    ) -> anyhow::Result<Shared> {
        let settings = &loaded.config.server;
        let mut sites = Vec::new();
        for (addr, listener) in listeners {
            let vhosts: Vec<_> = loaded
                .config
                .vhosts
                .iter()
                .filter(|v| v.listen.contains(addr))
                .collect();
            let tls = loaded.tls.acceptor(addr);
            let vhosts = vhosts::ListenerVhosts::new(&vhosts, &settings.server_name, tls.is_some());
            let site = Arc::new(Site {
                addr: *addr,
                registry: loaded.registry,
                http2: vhosts.http2(),
                vhosts,
                limits: pipeline::RequestLimits {
                    request_line: settings.limits.request_line,
                    field_size: settings.limits.request_field_size,
                    body: settings.limits.request_body,
                    timeout: settings.limits.timeout,
                },
                tls,
                h2: settings.limits.h2.clone(),
            });
            sites.push((site, listener.try_clone()?));
        }
        let (stop_tx, stop) = watch::channel(false);
        let (drain, drain_rx) = mpsc::channel(1);
        Ok(Shared {
            sites,
            permits: Arc::new(Semaphore::new(settings.limits.max_connections)),
            limits: Arc::new(ConnLimits {
                keepalive: settings.limits.keepalive_timeout,
                max_headers: settings.limits.request_fields,
                max_buf: settings
                    .limits
                    .request_line
                    .max(settings.limits.request_field_size)
                    * 2
                    + 8192,
            }),
            stop,
            stop_tx,
            drain: std::sync::Mutex::new(Some(drain)),
            drain_rx: tokio::sync::Mutex::new(drain_rx),
            drained: watch::channel(false).0,
            workers,
            accept_loops_stopped: watch::channel(0).0,
            handing_off: std::sync::atomic::AtomicBool::new(false),
            tunnel_grace: settings.limits.tunnel_grace,
            started: tokio::time::Instant::now(),
        })
    }

    /// Stopping, not handing off: idle connections close now.
    fn stopping_now(&self) -> bool {
        *self.stop.borrow() && !self.handing_off.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn drain_token(&self) -> Option<mpsc::Sender<()>> {
        self.drain.lock().ok()?.clone()
    }

    /// Tells every accept loop to stop and waits until each has.
    async fn stop_accepting(&self) {
        let _ = self.stop_tx.send(true);
        let loops = self.sites.len() * self.workers;
        let mut stopped = self.accept_loops_stopped.subscribe();
        let _ = stopped.wait_for(|n| *n >= loops).await;
    }

    /// Stops every accept loop and waits until all connections are done.
    async fn stop_and_drain(&self) {
        self.stop_accepting().await;
        if let Ok(mut d) = self.drain.lock() {
            d.take();
        }
        let _ = self.drain_rx.lock().await.recv().await;
        if !tunnels::wait(self.tunnel_grace).await {
            log::info("tunnel_grace is over: closing the tunnels still open");
        }
        let _ = self.drained.send(true);
    }
}

/// One worker: accept loops on its own runtime, alive until all drained.
async fn worker(shared: Arc<Shared>) {
    let mut drained = shared.drained.subscribe();
    tokio::spawn(idle::run(shared.clone()));
    for (site, listener) in &shared.sites {
        let Some(drain) = shared.drain_token() else {
            // Already stopping: this loop never ran.
            shared.accept_loops_stopped.send_modify(|n| *n += 1);
            continue;
        };
        let listener = match Listener::new(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error(&format!("a worker cannot use its listening socket: {e}"));
                shared.accept_loops_stopped.send_modify(|n| *n += 1);
                continue;
            }
        };
        tokio::spawn(accept_loop(listener, site.clone(), shared.clone(), drain));
    }
    let _ = drained.wait_for(|d| *d).await;
}

async fn serve(
    paths: Paths,
    loaded: Loaded,
    shared: &Shared,
    listeners: Vec<(SocketAddr, TcpListener)>,
    workers: usize,
) -> anyhow::Result<()> {
    let settings = loaded.config.server.clone();
    if let Some(every) = log::access_flush_interval(&settings.log) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                log::flush_access();
            }
        });
    }
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
    crate::loader::start_serving(loaded.registry);
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

    // Stop accepting; in-flight requests finish.
    log::info("no longer accepting connections; draining those in flight");
    drop(listeners);
    match exit {
        Exit::Stop => {
            shared.stop_and_drain().await;
            remove_if_ours(&settings.pid_file);
            control.remove();
            log::info("stopped");
        }
        Exit::HandedOff { reply, pid } => {
            shared
                .handing_off
                .store(true, std::sync::atomic::Ordering::SeqCst);
            shared.stop_accepting().await;
            reply.send(&format!("ok {pid}\n")).await;
            shared.stop_and_drain().await;
            log::info("handed over to the new server; drained and exiting");
        }
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
                        Ok(pid) => return Exit::HandedOff { reply, pid },
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

/// A worker's listening socket. Connections are accepted with a plain
/// non-blocking `accept`, so that they start unregistered (`ClientTcp`);
/// the reactor only says when to try again.
///
/// tokio's `TcpListener` cannot be used for that: it has no wait for
/// readiness without accepting, and it registers every socket it
/// accepts. So a second descriptor of the listening socket is registered
/// through a `TcpStream`, used for nothing but its readiness (the safe
/// way to wait on an arbitrary socket; `AsyncFd` needs `unsafe`).
struct Listener {
    readiness: tokio::net::TcpStream,
    accept: mio::net::TcpListener,
}

impl Listener {
    fn new(listener: &TcpListener) -> std::io::Result<Listener> {
        let watched = std::os::fd::OwnedFd::from(listener.try_clone()?);
        Ok(Listener {
            readiness: tokio::net::TcpStream::from_std(std::net::TcpStream::from(watched))?,
            accept: mio::net::TcpListener::from_std(listener.try_clone()?),
        })
    }

    async fn accept(&self) -> std::io::Result<(ClientTcp, SocketAddr)> {
        loop {
            self.readiness.readable().await?;
            // A `WouldBlock` here clears the readiness, as tokio's own
            // accept does, so the next wait is for a new connection.
            match self
                .readiness
                .try_io(tokio::io::Interest::READABLE, || self.accept.accept())
            {
                Ok((stream, client)) => {
                    // tokio's accept counts against the task's budget,
                    // so that a flood of connections cannot starve the
                    // ones accepted; this one does too.
                    tokio::task::consume_budget().await;
                    return Ok((ClientTcp::fresh(stream.into()), client));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Accepts until told to stop, then counts itself out.
async fn accept_loop(
    listener: Listener,
    site: Arc<Site>,
    shared: Arc<Shared>,
    drain: mpsc::Sender<()>,
) {
    accept_until_stopped(listener, site, shared.clone(), drain).await;
    shared.accept_loops_stopped.send_modify(|n| *n += 1);
}

async fn accept_until_stopped(
    listener: Listener,
    site: Arc<Site>,
    shared: Arc<Shared>,
    drain: mpsc::Sender<()>,
) {
    let mut stop = shared.stop.clone();
    // One wait for the stop signal, shared by every turn of the loop.
    let mut stopped = std::pin::pin!(stop.wait_for(|s| *s));
    loop {
        // MaxConnections: wait for a slot before accepting, so excess
        // clients queue in the kernel's backlog instead of being refused.
        let permit = match shared.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = shared.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = &mut stopped => return,
            },
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stopped => return,
        };
        let (stream, client) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                log::error(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = conn_info(&stream, client, &site);
        let (site, shared) = (site.clone(), shared.clone());
        let held = idle::Held {
            slot: Some(permit),
            _drain: drain.clone(),
        };
        match site.tls.clone() {
            // Boxed: the future is moved a few times on its way into the
            // task; a box is one copy, then moves of a pointer.
            None => tokio::spawn(Box::pin(connection::serve(
                ClientIo::Tcp(stream),
                conn,
                site,
                shared,
                held,
            ))),
            Some(acceptor) => tokio::spawn(async move {
                // The handshake runs in the connection's task, bounded by
                // Timeout, so a slow or silent client holds no accept loop.
                let timeout = site.limits.timeout;
                // A handshake is several small writes each way.
                let _ = stream.set_nodelay(true);
                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let io = ClientIo::Tls(Box::new(tls));
                        connection::serve(io, conn, site, shared, held).await;
                    }
                    Ok(Err(e)) => log::debug(&format!("TLS handshake with {client} failed: {e}")),
                    Err(_) => log::debug(&format!("TLS handshake with {client} timed out")),
                }
            }),
        };
    }
}

/// What requests may ask about their connection.
pub(super) fn conn_info(stream: &ClientTcp, client: SocketAddr, site: &Site) -> Arc<ConnInfo> {
    // A listener on one address needs no getsockname per connection.
    let local = if site.addr.ip().is_unspecified() {
        stream.local_addr().unwrap_or(client)
    } else {
        site.addr
    };
    let scheme = if site.tls.is_some() { "https" } else { "http" };
    Arc::new(ConnInfo::new(client, local, scheme))
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
