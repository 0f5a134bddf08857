//! Running and controlling the server: run, start, stop, restart, status,
//! configtest.

use super::Paths;
use crate::server::{self, control, handoff};
use crate::{log, startup};
use std::path::Path;
use std::time::{Duration, Instant};

fn print_errors(errors: &[String]) {
    for e in errors {
        eprintln!("{e}");
    }
}

pub fn configtest(paths: Paths) -> i32 {
    crate::loader::operate::set_server_files(&paths.server_root, &paths.config);
    match startup::load(&paths.server_root, &paths.config) {
        Ok(_) => {
            println!("Syntax OK");
            0
        }
        Err(errors) => {
            print_errors(&errors);
            1
        }
    }
}

pub fn run(paths: Paths) -> i32 {
    crate::loader::host_api::guard::arm_from_env();
    crate::metrics::started();
    crate::loader::operate::set_server_files(&paths.server_root, &paths.config);
    let loaded = match startup::load(&paths.server_root, &paths.config) {
        Ok(l) => l,
        Err(errors) => {
            print_errors(&errors);
            handoff::report_failure(&errors);
            return 1;
        }
    };
    if let Err(e) = log::configure(&loaded.config.server.log) {
        let msg = format!("cannot open the log files: {e}; check [log] in the config");
        eprintln!("{msg}");
        handoff::report_failure(&[msg]);
        return 1;
    }
    let server_paths = server::Paths {
        server_root: paths.server_root,
        config: paths.config,
    };
    match server::run(server_paths, loaded) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("modproxy: {e}");
            1
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime")
}

/// The settings needed to find a running server (no modules loaded).
fn settings(paths: &Paths) -> Result<modproxy_config::ServerSettings, i32> {
    modproxy_config::load(&paths.server_root, &paths.config)
        .map(|c| c.server)
        .map_err(|errors| {
            print_errors(&errors.iter().map(ToString::to_string).collect::<Vec<_>>());
            1
        })
}

fn running_pid(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_alive(pid).then_some(pid)
}

/// Alive and not a zombie: an exited server whose parent has not reaped
/// it yet still answers kill(pid, 0), but it serves nothing.
fn is_alive(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    state != Some('Z')
}

pub fn start(paths: Paths) -> i32 {
    let Ok(settings) = settings(&paths) else {
        return 1;
    };
    if let Some(pid) = running_pid(&settings.pid_file) {
        eprintln!("modproxy is already running (pid {pid}); use `modproxy restart` to load a new configuration");
        return 1;
    }
    let log_path = match &settings.log.error_log {
        modproxy_config::LogTarget::File(p) => p.clone(),
        modproxy_config::LogTarget::Stderr => paths.server_root.join("logs/error.log"),
    };
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let out = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "cannot open {}: {e}; check [log] error_log",
                log_path.display()
            );
            return 1;
        }
    };
    let run_dir = settings
        .control_socket
        .parent()
        .unwrap_or(&paths.server_root)
        .to_path_buf();
    let _ = std::fs::create_dir_all(&run_dir);
    let successor = handoff::Successor {
        server_root: &paths.server_root,
        config: &paths.config,
        run_dir: &run_dir,
    };
    match runtime().block_on(handoff::start(&successor, &[], Some(out))) {
        Ok(pid) => {
            println!("modproxy started (pid {pid}); log: {}", log_path.display());
            0
        }
        Err(why) => {
            eprintln!("modproxy did not start:\n{why}");
            1
        }
    }
}

pub fn stop(paths: Paths) -> i32 {
    let Ok(settings) = settings(&paths) else {
        return 1;
    };
    let Some(pid) = running_pid(&settings.pid_file) else {
        eprintln!(
            "modproxy is not running (no live pid in {})",
            settings.pid_file.display()
        );
        return 1;
    };
    let target = nix::unistd::Pid::from_raw(pid);
    if let Err(e) = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM) {
        eprintln!("cannot signal pid {pid}: {e}");
        return 1;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if !is_alive(pid) {
            println!("modproxy stopped");
            return 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("modproxy (pid {pid}) is still draining after 60s");
    1
}

pub fn restart(paths: Paths) -> i32 {
    let Ok(settings) = settings(&paths) else {
        return 1;
    };
    match runtime().block_on(control::ask(&settings.control_socket, "restart")) {
        Ok(reply) if reply.starts_with("ok") => {
            let pid = reply.trim_start_matches("ok").trim();
            println!("modproxy restarted gracefully (new pid {pid})");
            0
        }
        Ok(reply) => {
            eprintln!(
                "restart refused; the running server keeps its old configuration:\n{}",
                reply.trim_start_matches("error ").trim_end()
            );
            1
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

pub fn status(paths: Paths) -> i32 {
    let Ok(settings) = settings(&paths) else {
        return 1;
    };
    match runtime().block_on(control::ask(&settings.control_socket, "status")) {
        Ok(reply) => {
            print!("{reply}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
