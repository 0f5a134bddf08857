//! The core's own settings (`server_name`, `workers`, `[limits]`, `[log]`, …), typed, with Apache-like defaults.
use super::fields::Reader;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Table;

/// Top-level keys the core owns; every other top-level key belongs to a module.
pub(crate) const CORE_KEYS: &[&str] = &[
    "server_name",
    "workers",
    "pid_file",
    "control_socket",
    "include",
    "limits",
    "log",
    "vhost",
];

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// ServerName for vhosts that set none.
    pub server_name: String,
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    pub pid_file: PathBuf,
    pub control_socket: PathBuf,
    /// Glob patterns relative to SERVER_ROOT, as written.
    pub include: Vec<String>,
    pub limits: Limits,
    pub log: LogSettings,
}

/// Apache's Limit* directives, Timeout and KeepAliveTimeout, with Apache's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub request_line: usize,
    pub request_field_size: usize,
    pub request_fields: usize,
    /// 0 means unlimited.
    pub request_body: u64,
    pub timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
    /// How long a stopping or replaced server keeps open tunnels
    /// (WebSockets) after its HTTP connections drained.
    pub tunnel_grace: Duration,
    /// TCP_DEFER_ACCEPT on the listening sockets (Apache's `AcceptFilter
    /// http data`, nginx's `listen … deferred`): a connection is accepted
    /// once its first bytes arrive, or after this long. Zero turns it off.
    pub defer_accept: Duration,
    pub h2: H2Limits,
}

/// HTTP/2 limits (`[limits]` keys `h2_*`, after Apache's H2MaxSessionStreams,
/// LimitRequestFieldSize and H2WindowSize).
#[derive(Debug, Clone, PartialEq)]
pub struct H2Limits {
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_streams: u32,
    /// The largest header list a request may carry, as HPACK decodes it
    /// (SETTINGS_MAX_HEADER_LIST_SIZE): bounds HPACK bombs and CONTINUATION floods.
    pub max_header_list_size: u32,
    /// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE).
    pub window_size: u32,
    /// The connection's receive window.
    pub connection_window_size: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    pub error_log: LogTarget,
    pub level: LogLevel,
    /// None when `access_log = "off"`.
    pub access_log: Option<LogTarget>,
    pub access_format: AccessFormat,
    /// `access_log_buffer`: lines are gathered up to this many bytes and
    /// written together (nginx's `buffer=`); 0 writes each line at once.
    pub access_buffer: usize,
    /// `access_log_flush`: buffered lines wait at most this long (nginx's
    /// `flush=`).
    pub access_flush: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    Combined,
    Common,
    Json,
}

impl ServerSettings {
    /// Every default, as if the main file set nothing.
    pub fn defaults(server_root: &Path) -> Self {
        parse(
            &Table::new(),
            server_root,
            &mut Reader::new(Path::new(""), "", &mut Vec::new()),
        )
    }
}

pub(crate) fn parse(table: &Table, root: &Path, r: &mut Reader) -> ServerSettings {
    let limits_table = r.table(table, "limits");
    let log_table = r.table(table, "log");
    ServerSettings {
        server_name: r.string(table, "server_name", "localhost"),
        workers: r.uint(table, "workers", 0, 0) as usize,
        pid_file: root.join(r.string(table, "pid_file", "run/modproxy.pid")),
        control_socket: root.join(r.string(table, "control_socket", "run/modproxy.sock")),
        include: r.strings(table, "include"),
        limits: limits(&limits_table, &mut Reader::new(r.file, "limits.", r.errors)),
        log: log(&log_table, root, &mut Reader::new(r.file, "log.", r.errors)),
    }
}

fn limits(t: &Table, r: &mut Reader) -> Limits {
    r.no_other_keys(
        t,
        &[
            "request_line",
            "request_field_size",
            "request_fields",
            "request_body",
            "timeout",
            "keepalive_timeout",
            "max_connections",
            "tunnel_grace",
            "defer_accept",
            "h2_max_streams",
            "h2_max_header_list_size",
            "h2_window_size",
            "h2_connection_window_size",
        ],
    );
    Limits {
        request_line: r.uint(t, "request_line", 8190, 1) as usize,
        request_field_size: r.uint(t, "request_field_size", 8190, 1) as usize,
        request_fields: r.uint(t, "request_fields", 100, 1) as usize,
        request_body: r.uint(t, "request_body", 0, 0),
        timeout: Duration::from_secs(r.uint(t, "timeout", 60, 1)),
        keepalive_timeout: Duration::from_secs(r.uint(t, "keepalive_timeout", 5, 0)),
        max_connections: r.uint(t, "max_connections", 10000, 1) as usize,
        tunnel_grace: Duration::from_secs(r.uint(t, "tunnel_grace", 300, 0)),
        defer_accept: Duration::from_secs(r.uint(t, "defer_accept", 1, 0)),
        h2: H2Limits {
            max_streams: r.uint(t, "h2_max_streams", 100, 1).min(u32::MAX.into()) as u32,
            max_header_list_size: r
                .uint(t, "h2_max_header_list_size", 65536, 1024)
                .min(u32::MAX.into()) as u32,
            window_size: window(r, t, "h2_window_size", 65535),
            connection_window_size: window(r, t, "h2_connection_window_size", 1 << 20),
        },
    }
}

/// A flow-control window: RFC 9113 caps it at 2^31-1.
fn window(r: &mut Reader, t: &Table, key: &str, default: u64) -> u32 {
    let n = r.uint(t, key, default, 65535);
    if n > (1 << 31) - 1 {
        r.error(
            key,
            format!("{n} is above HTTP/2's largest window (2147483647)"),
            format!("write {key} = {default}, or up to 2147483647"),
        );
        return default as u32;
    }
    n as u32
}

fn log(t: &Table, root: &Path, r: &mut Reader) -> LogSettings {
    r.no_other_keys(
        t,
        &[
            "error_log",
            "level",
            "access_log",
            "access_format",
            "access_log_buffer",
            "access_log_flush",
        ],
    );
    let target = |s: String| {
        if s == "stderr" {
            LogTarget::Stderr
        } else {
            LogTarget::File(root.join(s))
        }
    };
    let access = r.string(t, "access_log", "stderr");
    let levels = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
    ];
    let formats = [
        ("combined", AccessFormat::Combined),
        ("common", AccessFormat::Common),
        ("json", AccessFormat::Json),
    ];
    LogSettings {
        error_log: target(r.string(t, "error_log", "stderr")),
        level: r.choice(t, "level", LogLevel::Info, &levels),
        access_log: (access != "off").then(|| target(access)),
        access_format: r.choice(t, "access_format", AccessFormat::Combined, &formats),
        access_buffer: access_buffer(t, r),
        access_flush: Duration::from_secs(r.uint(t, "access_log_flush", 1, 1)),
    }
}

/// Bounded so that a typo cannot hold a gigabyte of lines in memory
/// (and lose them all in a crash).
const MAX_ACCESS_BUFFER: u64 = 1 << 20;

fn access_buffer(t: &Table, r: &mut Reader) -> usize {
    let n = r.uint(t, "access_log_buffer", 0, 0);
    if n > MAX_ACCESS_BUFFER {
        r.error(
            "access_log_buffer",
            format!("{n} bytes is more than the {MAX_ACCESS_BUFFER} allowed"),
            format!("write a size in bytes up to {MAX_ACCESS_BUFFER}, e.g. access_log_buffer = 65536 (nginx's buffer=64k)"),
        );
        return MAX_ACCESS_BUFFER as usize;
    }
    n as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(src: &str) -> (ServerSettings, Vec<String>) {
        let mut errors = Vec::new();
        let table: Table = src.parse().unwrap();
        let s = parse(
            &table,
            Path::new("/srv"),
            &mut Reader::new(Path::new("m.toml"), "", &mut errors),
        );
        (s, errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn the_access_log_buffer_is_off_unless_asked_and_bounded() {
        let (s, errors) = parse_str("");
        assert!(errors.is_empty());
        assert_eq!(
            (s.log.access_buffer, s.log.access_flush),
            (0, Duration::from_secs(1))
        );
        let (s, errors) = parse_str("[log]\naccess_log_buffer = 65536\naccess_log_flush = 5\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (s.log.access_buffer, s.log.access_flush),
            (65536, Duration::from_secs(5))
        );
        let (_, errors) = parse_str("[log]\naccess_log_buffer = 2000000000\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("log.access_log_buffer"), "{errors:?}");
        assert!(errors[0].contains("1048576"), "{errors:?}");
    }

    #[test]
    fn defaults_are_apache_like() {
        let s = ServerSettings::defaults(Path::new("/srv"));
        assert_eq!(
            (s.limits.request_line, s.limits.request_fields),
            (8190, 100)
        );
        assert_eq!(s.limits.timeout, Duration::from_secs(60));
        assert_eq!(s.pid_file, Path::new("/srv/run/modproxy.pid"));
        assert_eq!(
            (s.log.level, s.log.access_log),
            (LogLevel::Info, Some(LogTarget::Stderr))
        );
    }

    #[test]
    fn every_bad_value_is_reported_with_its_fix() {
        let src = "workers = -1\n[limits]\ntimeout = 0\ntimout = 3\nmaxconns = 1\n[log]\nlevel = \"loud\"\naccess_log = \"off\"\naccess_format = 1\n";
        let (s, errors) = parse_str(src);
        assert_eq!(s.log.access_log, None);
        let expected = [
            "m.toml: workers: -1 is too small (use a whole number of at least 0)",
            "m.toml: limits.maxconns: unknown setting (check the spelling; known settings are request_line, request_field_size, request_fields, request_body, timeout, keepalive_timeout, max_connections, tunnel_grace, defer_accept, h2_max_streams, h2_max_header_list_size, h2_window_size, h2_connection_window_size)",
            "m.toml: limits.timout: unknown setting (did you mean timeout? Known settings are request_line, request_field_size, request_fields, request_body, timeout, keepalive_timeout, max_connections, tunnel_grace, defer_accept, h2_max_streams, h2_max_header_list_size, h2_window_size, h2_connection_window_size)",
            "m.toml: limits.timeout: 0 is too small (use a whole number of at least 1)",
            "m.toml: log.level: unknown value \"loud\" (use one of error, warn, info, debug)",
            "m.toml: log.access_format: expected a string, found integer (write access_format as a string)",
        ];
        assert_eq!(errors, expected);
    }
}
