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
    fn write_line(&self, line: &str) {
        match self {
            Sink::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Sink::File(_, f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = writeln!(f, "{line}");
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
    access: Option<(Sink, AccessFormat)>,
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
        Some(t) => Some((Sink::open(t)?, settings.access_format)),
        None => None,
    };
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
        if let Some((s, _)) = &l.access {
            s.reopen();
        }
    }
}

/// One error-log line: `[time] [level] [module] message`.
pub fn write(level: Level, module: &str, msg: &str) {
    let Ok(l) = logs().read() else { return };
    if level > l.level {
        return;
    }
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    l.error.write_line(&format!(
        "[{now}] [{}] [{module}] [pid {}] {msg}",
        level.name(),
        std::process::id()
    ));
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

/// What the access log records about one request.
pub struct AccessRecord<'a> {
    pub client_ip: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub referer: &'a str,
    pub user_agent: &'a str,
    pub micros: u128,
}

pub fn access_enabled() -> bool {
    logs().read().map(|l| l.access.is_some()).unwrap_or(false)
}

/// One access-log line in the configured format.
pub fn access(r: &AccessRecord) {
    let Ok(l) = logs().read() else { return };
    let Some((sink, format)) = &l.access else {
        return;
    };
    let time = clf_time();
    let bytes = if r.bytes == 0 {
        "-".to_string()
    } else {
        r.bytes.to_string()
    };
    let line = match format {
        AccessFormat::Common => format!(
            "{} - - [{time}] \"{} {} {}\" {} {bytes}",
            r.client_ip, r.method, r.uri, r.version, r.status
        ),
        AccessFormat::Combined => format!(
            "{} - - [{time}] \"{} {} {}\" {} {bytes} \"{}\" \"{}\"",
            r.client_ip,
            r.method,
            r.uri,
            r.version,
            r.status,
            escape(r.referer),
            escape(r.user_agent)
        ),
        AccessFormat::Json => format!(
            "{{\"time\":\"{time}\",\"client\":\"{}\",\"method\":\"{}\",\"uri\":\"{}\",\"protocol\":\"{}\",\"status\":{},\"bytes\":{},\"referer\":\"{}\",\"user_agent\":\"{}\",\"duration_us\":{}}}",
            json(r.client_ip),
            json(r.method),
            json(r.uri),
            r.version,
            r.status,
            r.bytes,
            json(r.referer),
            json(r.user_agent),
            r.micros
        ),
    };
    sink.write_line(&line);
}

fn escape(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Apache's `%t` time, in UTC: `10/Oct/2000:13:55:36 +0000`.
fn clf_time() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
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
    fn dates_are_computed_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
    }
}
