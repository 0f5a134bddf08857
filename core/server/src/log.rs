//! The error log (levels, module tags) and the access log (one line per
//! request), to stderr or files; files are reopened on SIGUSR1 for logrotate.

use modproxy_config::{AccessFormat, LogLevel, LogSettings, LogTarget};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock, RwLock};

/// The module API's levels, so a module's line and the core's compare alike.
pub use modproxy_api::Level;

enum Sink {
    Stderr,
    File(std::path::PathBuf, Mutex<File>),
}

impl Sink {
    fn open(target: &LogTarget) -> std::io::Result<Sink> {
        match target {
            LogTarget::Stderr => Ok(Sink::Stderr),
            LogTarget::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let f = OpenOptions::new().create(true).append(true).open(path)?;
                Ok(Sink::File(path.clone(), Mutex::new(f)))
            }
        }
    }
    /// One line, ending in its newline, in one write.
    fn write_line(&self, line: &[u8]) {
        match self {
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line);
            }
            Sink::File(_, f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line);
                }
            }
        }
    }
    fn reopen(&self) {
        if let Sink::File(path, f) = self {
            if let Ok(new) = OpenOptions::new().create(true).append(true).open(path) {
                if let Ok(mut f) = f.lock() {
                    *f = new;
                }
            }
        }
    }
}

struct Logs {
    level: Level,
    error: Sink,
    access: Option<AccessLog>,
}

struct AccessLog {
    sink: Sink,
    format: AccessFormat,
    /// Lines not written yet, when `access_log_buffer` asks for a
    /// buffer: written together once it is full, by the periodic flush
    /// (`access_log_flush`), before a reopen and at exit. A crash loses
    /// them, as it loses nginx's.
    buffer: Option<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl AccessLog {
    fn write_line(&self, line: &[u8]) {
        let Some(buffer) = &self.buffer else {
            return self.sink.write_line(line);
        };
        let Ok(mut buffer) = buffer.lock() else {
            return;
        };
        if buffer.len() + line.len() > self.capacity && !buffer.is_empty() {
            self.sink.write_line(&buffer);
            buffer.clear();
        }
        buffer.extend_from_slice(line);
    }

    fn flush(&self) {
        if let Some(Ok(mut buffer)) = self.buffer.as_ref().map(|b| b.lock()) {
            if !buffer.is_empty() {
                self.sink.write_line(&buffer);
                buffer.clear();
            }
        }
    }
}

static LOGS: OnceLock<RwLock<Logs>> = OnceLock::new();

fn logs() -> &'static RwLock<Logs> {
    LOGS.get_or_init(|| {
        RwLock::new(Logs {
            level: Level::Info,
            error: Sink::Stderr,
            access: None,
        })
    })
}

/// Points the logs where the configuration says.
pub fn configure(settings: &LogSettings) -> std::io::Result<()> {
    let level = match settings.level {
        LogLevel::Error => Level::Error,
        LogLevel::Warn => Level::Warn,
        LogLevel::Info => Level::Info,
        LogLevel::Debug => Level::Debug,
    };
    let error = Sink::open(&settings.error_log)?;
    let access = match &settings.access_log {
        Some(t) => Some(AccessLog {
            sink: Sink::open(t)?,
            format: settings.access_format,
            buffer: (settings.access_buffer > 0)
                .then(|| Mutex::new(Vec::with_capacity(settings.access_buffer))),
            capacity: settings.access_buffer,
        }),
        None => None,
    };
    flush_access();
    if let Ok(mut l) = logs().write() {
        *l = Logs {
            level,
            error,
            access,
        };
    }
    Ok(())
}

/// Reopens log files (SIGUSR1), so logrotate can move them away.
pub fn reopen() {
    if let Ok(l) = logs().read() {
        l.error.reopen();
        if let Some(access) = &l.access {
            access.flush();
            access.sink.reopen();
        }
    }
}

/// Writes the access log's buffered lines (`access_log_buffer`): every
/// `access_log_flush` and at exit.
pub fn flush_access() {
    if let Ok(l) = logs().read() {
        if let Some(access) = &l.access {
            access.flush();
        }
    }
}

/// How often [`flush_access`] should run; `None` when nothing is buffered.
pub fn access_flush_interval(settings: &LogSettings) -> Option<std::time::Duration> {
    (settings.access_log.is_some() && settings.access_buffer > 0).then_some(settings.access_flush)
}

/// One error-log line: `[time] [level] [module] message`.
pub fn write(level: Level, module: &str, msg: &str) {
    let Ok(l) = logs().read() else { return };
    if level > l.level {
        return;
    }
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    l.error.write_line(
        format!(
            "[{now}] [{}] [{module}] [pid {}] {msg}\n",
            level.name(),
            std::process::id()
        )
        .as_bytes(),
    );
}

pub fn error(msg: &str) {
    write(Level::Error, "core", msg);
}
pub fn info(msg: &str) {
    write(Level::Info, "core", msg);
}
pub fn debug(msg: &str) {
    write(Level::Debug, "core", msg);
}

/// What the access log records about one request, as the request holds it.
pub struct AccessRecord<'a> {
    pub client_ip: &'a [u8],
    pub method: &'a [u8],
    /// The path as received, and the query without `?` (empty for none).
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub version: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
    pub micros: u128,
}

pub fn access_enabled() -> bool {
    logs().read().map(|l| l.access.is_some()).unwrap_or(false)
}

/// One access-log line in the configured format, written with one
/// system call. The line is built in a buffer each thread keeps, and the
/// time is formatted once a second: the log costs a request no
/// allocation (docs/performance.md, "The access log").
pub fn access(r: &AccessRecord) {
    let Ok(l) = logs().read() else { return };
    let Some(access) = &l.access else {
        return;
    };
    thread_local! {
        static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        access_line(&mut line, r, access.format);
        access.write_line(&line);
    });
}

fn access_line(out: &mut Vec<u8>, r: &AccessRecord, format: AccessFormat) {
    let mut digits = [0u8; 20];
    let mut number = |out: &mut Vec<u8>, n: u64| {
        out.extend_from_slice(modproxy_http1::decimal(n, &mut digits));
    };
    if format == AccessFormat::Json {
        out.extend_from_slice(b"{\"time\":\"");
        with_clf_time(|t| out.extend_from_slice(t));
        for (key, value) in [("client", r.client_ip), ("method", r.method)] {
            out.extend_from_slice(format!("\",\"{key}\":\"").as_bytes());
            json(out, value);
        }
        out.extend_from_slice(b"\",\"uri\":\"");
        json(out, r.path);
        if !r.query.is_empty() {
            out.push(b'?');
            json(out, r.query);
        }
        out.extend_from_slice(b"\",\"protocol\":\"");
        out.extend_from_slice(r.version.as_bytes());
        out.extend_from_slice(b"\",\"status\":");
        number(out, u64::from(r.status));
        out.extend_from_slice(b",\"bytes\":");
        number(out, r.bytes);
        out.extend_from_slice(b",\"referer\":\"");
        json(out, r.referer);
        out.extend_from_slice(b"\",\"user_agent\":\"");
        json(out, r.user_agent);
        out.extend_from_slice(b"\",\"duration_us\":");
        number(out, u64::try_from(r.micros).unwrap_or(u64::MAX));
        out.extend_from_slice(b"}\n");
        return;
    }
    out.extend_from_slice(r.client_ip);
    out.extend_from_slice(b" - - [");
    with_clf_time(|t| out.extend_from_slice(t));
    out.extend_from_slice(b"] \"");
    out.extend_from_slice(r.method);
    out.push(b' ');
    out.extend_from_slice(r.path);
    if !r.query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(r.query);
    }
    out.push(b' ');
    out.extend_from_slice(r.version.as_bytes());
    out.extend_from_slice(b"\" ");
    number(out, u64::from(r.status));
    out.push(b' ');
    match r.bytes {
        0 => out.push(b'-'),
        n => number(out, n),
    }
    if format == AccessFormat::Combined {
        for value in [r.referer, r.user_agent] {
            out.extend_from_slice(b" \"");
            escape(out, value);
            out.push(b'"');
        }
    }
    out.push(b'\n');
}

/// A quoted field of the common formats: `-` when empty; `\` and `"`
/// escaped, and bytes that are not printable ASCII written `\xhh`, as
/// Apache writes `%{Referer}i`.
fn escape(out: &mut Vec<u8>, s: &[u8]) {
    if s.is_empty() {
        out.push(b'-');
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in s {
        match b {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
        }
    }
}

/// A JSON string's contents (bytes that are not UTF-8 as U+FFFD).
fn json(out: &mut Vec<u8>, s: &[u8]) {
    for &b in String::from_utf8_lossy(s).as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b if b < 0x20 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            b => out.push(b),
        }
    }
}

/// Apache's `%t` time, in UTC: `10/Oct/2000:13:55:36 +0000`, formatted
/// once a second per thread.
fn with_clf_time(f: impl FnOnce(&[u8])) {
    thread_local! {
        static CLF: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CLF.with(|clf| {
        let mut clf = clf.borrow_mut();
        if clf.0 != secs {
            *clf = (secs, clf_time(secs));
        }
        f(clf.1.as_bytes());
    });
}

fn clf_time(secs: u64) -> String {
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn quoted_fields_escape_as_apache_does() {
        let mut out = Vec::new();
        super::escape(&mut out, b"a \"b\" \\ \x01\xc3\xa9");
        assert_eq!(out, b"a \\\"b\\\" \\\\ \\x01\\xc3\\xa9");
        let mut out = Vec::new();
        super::json(&mut out, b"q\"\n\xff");
        assert_eq!(String::from_utf8(out).unwrap(), "q\\\"\\u000a\u{fffd}");
    }

    #[test]
    fn dates_are_computed_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
    }
}
