//! The host services table as the module sees it: set once at init, then
//! read by every SDK call. Each module binary has its own copy.

use crate::abi::{AbiStr, HostApi};
use std::fmt::Display;
use std::sync::OnceLock;

static HOST: OnceLock<&'static HostApi> = OnceLock::new();
static MODULE_NAME: OnceLock<&'static str> = OnceLock::new();

pub(crate) fn install(host: &'static HostApi, module_name: &'static str) {
    let _ = HOST.set(host);
    let _ = MODULE_NAME.set(module_name);
}

/// The host table. Panics only if called before the module's init, which
/// the host never does.
pub(crate) fn host() -> &'static HostApi {
    HOST.get()
        .expect("modproxy host table used before module init")
}

/// The name this module was declared with.
pub fn module_name() -> &'static str {
    MODULE_NAME.get().copied().unwrap_or("?")
}

/// Log levels, as Apache's LogLevel.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    /// The level a `log` call carries across the ABI (unknown: debug).
    pub fn from_abi(v: u32) -> Level {
        match v {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            _ => Level::Debug,
        }
    }
    /// As in Apache's error log: `error`, `warn`, `info`, `debug`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Writes one line to the server's error log, tagged with this module's name.
pub fn log(level: Level, msg: impl Display) {
    let Some(host) = HOST.get() else { return };
    let text = msg.to_string();
    (host.log)(
        level as u32,
        AbiStr::from_static(module_name()),
        AbiStr::new(text.as_bytes()),
    );
}

/// Which path of the running server [`server_file`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFile {
    /// SERVER_ROOT (`-d`).
    Root,
    /// The main configuration file (`-f`).
    Config,
}

/// A path of the running server; `None` when the host does not know it.
pub fn server_file(which: ServerFile) -> Option<std::path::PathBuf> {
    let host = HOST.get()?;
    let which = match which {
        ServerFile::Root => crate::abi::server_file::SERVER_ROOT,
        ServerFile::Config => crate::abi::server_file::CONFIG,
    };
    let s = (host.server_file)(which);
    // SAFETY: the host keeps server paths alive for the process.
    let text = unsafe { s.to_str_lossy() };
    (!text.is_empty()).then(|| std::path::PathBuf::from(text.into_owned()))
}
