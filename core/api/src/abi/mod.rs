//! The C ABI between the modproxy host and its modules: only `repr(C)` data,
//! `extern "C"` function pointers, borrowed byte slices, opaque handles and
//! owned objects that carry their own drop function cross it.
//!
//! Trust and version policy: a module exports [`ENTRY_SYMBOL`], a function
//! returning a [`ModuleHeader`]. The loader checks `magic`, `abi_version`
//! (a major and a minor, see [`version`]) and `layout_hash` before it
//! reads anything else, so a module built against another ABI is refused
//! instead of misread, and one built for an older minor is served. Tables
//! start with their size; fields are only ever appended.
//!
//! Ownership: `AbiStr` is always *borrowed* (valid for the duration of the
//! call that hands it over unless documented otherwise). Anything allocated
//! on one side is freed by that side, through the drop function that
//! travels with it (a host with its own allocator aborted in the prototype
//! when this rule was broken).

use std::ffi::c_void;

/// "modproxy" in ASCII: tells a modproxy module from a random shared object.
pub const MAGIC: u64 = u64::from_be_bytes(*b"modproxy");
mod version;
pub use version::{layout_hash_for, AbiVersion, ABI_VERSION, LAYOUT_HASH};
/// The one symbol every module exports (type [`ModuleEntryFn`]).
pub const ENTRY_SYMBOL: &[u8] = b"modproxy_module_entry_v1\0";

/// Borrowed bytes (usually UTF-8 text). OWNERSHIP: borrowed from the caller.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AbiStr {
    pub ptr: *const u8,
    pub len: usize,
}

// SAFETY: an AbiStr is a plain (pointer, length) pair; the data it points to
// is only read, and those placed in statics point to `'static` literals.
unsafe impl Sync for AbiStr {}
// SAFETY: as above; no interior mutability, reading is thread-safe.
unsafe impl Send for AbiStr {}

impl AbiStr {
    pub const EMPTY: AbiStr = AbiStr::from_static("");

    pub const fn from_static(s: &'static str) -> AbiStr {
        AbiStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }
    pub fn new(b: &[u8]) -> AbiStr {
        AbiStr {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }
    /// # Safety
    /// `ptr..ptr+len` must be valid, initialised and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    /// The bytes as text, or "" when they are not UTF-8.
    ///
    /// # Safety
    /// As [`AbiStr::as_bytes`].
    pub unsafe fn as_str<'a>(self) -> &'a str {
        // SAFETY: forwarded to the caller.
        utf8(unsafe { self.as_bytes() }).unwrap_or("")
    }
    /// Lossless when the bytes are UTF-8, replacement characters otherwise.
    /// Foreign bytes become `&str` only here, in [`AbiStr::as_str`] and in
    /// [`utf8`], which validates them first: no shim calls
    /// `from_utf8_unchecked` on bytes it has not checked.
    ///
    /// # Safety
    /// As [`AbiStr::as_bytes`].
    pub unsafe fn to_str_lossy<'a>(self) -> std::borrow::Cow<'a, str> {
        // SAFETY: forwarded to the caller.
        String::from_utf8_lossy(unsafe { self.as_bytes() })
    }
}

/// A byte buffer that moves across the boundary without being copied.
/// OWNERSHIP: the holder owns it; dropping it calls `drop_fn(owner)` on the
/// side that allocated it.
#[repr(C)]
pub struct AbiChunk {
    pub ptr: *const u8,
    pub len: usize,
    pub owner: *mut c_void,
    pub drop_fn: Option<extern "C" fn(*mut c_void)>,
}

impl AbiChunk {
    pub const fn empty() -> AbiChunk {
        AbiChunk {
            ptr: std::ptr::null(),
            len: 0,
            owner: std::ptr::null_mut(),
            drop_fn: None,
        }
    }
}

/// A waker that can cross the boundary: the C twin of `std::task::Waker`.
/// OWNERSHIP: a waker handed to a poll function is borrowed for that call;
/// `clone` returns an owned one that must be released with `wake` or `drop`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AbiWaker {
    pub data: *const c_void,
    pub vtable: *const AbiWakerVTable,
}

#[repr(C)]
pub struct AbiWakerVTable {
    pub clone: extern "C" fn(*const c_void) -> AbiWaker,
    pub wake: extern "C" fn(*const c_void),
    pub wake_by_ref: extern "C" fn(*const c_void),
    pub drop: extern "C" fn(*const c_void),
}

/// What a poll function returns while its future is not done.
pub const POLL_PENDING: i32 = i32::MIN;

/// A future owned by the side that made it; the other side polls it.
/// `poll` returns [`POLL_PENDING`] or the final result code; after a result
/// it is not polled again. `drop_fn` is called exactly once.
#[repr(C)]
pub struct AbiFuture {
    pub data: *mut c_void,
    pub poll: Option<extern "C" fn(*mut c_void, *const AbiWaker) -> i32>,
    pub drop_fn: Option<extern "C" fn(*mut c_void)>,
}

impl AbiFuture {
    /// A future that is already complete with `code` (no allocation): used
    /// when a hook declines synchronously.
    pub const fn ready(code: i32) -> AbiFuture {
        AbiFuture {
            data: code as isize as *mut c_void,
            poll: None,
            drop_fn: None,
        }
    }
}

/// Hook return codes, as Apache's: OK, DECLINED, or an HTTP status >= 100
/// that ends the request with that status.
pub mod code {
    pub const OK: i32 = 0;
    pub const DECLINED: i32 = -1;
    /// The module panicked; the SDK already logged the message.
    pub const PANICKED: i32 = -2;
    /// The hook failed for a reason it logged; the host answers 500.
    pub const ERROR: i32 = -3;
}

/// I/O status codes of the host's non-blocking services.
pub mod io {
    pub const READY: i32 = 0;
    pub const PENDING: i32 = super::POLL_PENDING;
    pub const ERR_REFUSED: i32 = 1;
    pub const ERR_TIMEOUT: i32 = 2;
    pub const ERR_RESET: i32 = 3;
    pub const ERR_OTHER: i32 = 4;
    /// The client went away / the body failed to arrive.
    pub const ERR_ABORTED: i32 = 5;
    /// The request body exceeded the configured limit.
    pub const ERR_TOO_LARGE: i32 = 6;
    /// The TLS handshake failed (certificate not trusted, no common
    /// protocol); the host logged the reason.
    pub const ERR_TLS: i32 = 7;
}

/// The request pipeline, in the order hooks run for each request.
/// `run-all`: every hook runs until one returns an error status.
/// `run-first`: hooks run until one does not decline.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// run-all, once after configuration: validate cross-module wiring.
    PostConfig = 0,
    /// run-all, right after the request head is read.
    PostReadRequest = 1,
    /// run-first: map the URI to a resource (mod_proxy claims requests here).
    TranslateName = 2,
    /// run-all: allow or deny.
    AccessChecker = 3,
    /// run-all: last changes before the handler.
    Fixups = 4,
    /// run-first, async: produce the response.
    Handler = 5,
    /// run-all, just before the response head is sent (ProxyPassReverse).
    ResponseHeaders = 6,
    /// run-all, after the response is finished (or aborted).
    LogTransaction = 7,
}

impl HookKind {
    pub const ALL: [HookKind; 8] = [
        HookKind::PostConfig,
        HookKind::PostReadRequest,
        HookKind::TranslateName,
        HookKind::AccessChecker,
        HookKind::Fixups,
        HookKind::Handler,
        HookKind::ResponseHeaders,
        HookKind::LogTransaction,
    ];
    pub fn from_u32(v: u32) -> Option<HookKind> {
        HookKind::ALL.get(v as usize).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            HookKind::PostConfig => "post_config",
            HookKind::PostReadRequest => "post_read_request",
            HookKind::TranslateName => "translate_name",
            HookKind::AccessChecker => "access_checker",
            HookKind::Fixups => "fixups",
            HookKind::Handler => "handler",
            HookKind::ResponseHeaders => "response_headers",
            HookKind::LogTransaction => "log_transaction",
        }
    }
    pub fn runs_first(self) -> bool {
        matches!(self, HookKind::TranslateName | HookKind::Handler)
    }
}

/// Apache's APR_HOOK_REALLY_FIRST / FIRST / MIDDLE / LAST.
pub mod order {
    /// Before every FIRST hook: for a handler an operator maps to a path
    /// (the balancer manager), which a FIRST `pass "/"` would swallow.
    pub const REALLY_FIRST: i32 = -10;
    pub const FIRST: i32 = 0;
    pub const MIDDLE: i32 = 10;
    pub const LAST: i32 = 20;
}

/// Signature of a synchronous request hook.
pub type RequestHookFn = extern "C" fn(module: *const c_void, req: *mut c_void) -> i32;
/// Signature of the handler hook: returns a future whose result is a hook code.
pub type HandlerHookFn = extern "C" fn(module: *const c_void, req: *mut c_void) -> AbiFuture;
/// Signature of the post_config hook.
pub type PostConfigFn = extern "C" fn(module: *const c_void, errors: *mut c_void) -> i32;
/// Receives one configuration section the module claimed.
pub type SectionFn =
    extern "C" fn(module: *const c_void, section: *const AbiSection, errors: *mut c_void) -> i32;

/// One claimed configuration section, as TOML text `value = ...`.
#[repr(C)]
pub struct AbiSection {
    /// The claim, e.g. `vhost.proxy`.
    pub path: AbiStr,
    /// The virtual host's index, or -1 for a server-wide section.
    pub vhost: i64,
    /// The file it was read from, for error messages.
    pub file: AbiStr,
    /// Where it sits in the file, e.g. `vhost[0].proxy`, for error messages.
    pub key: AbiStr,
    pub toml: AbiStr,
}

/// A provider found in the registry. OWNERSHIP: the vtable and data live
/// as long as the process (modules are never unloaded).
#[repr(C)]
pub struct AbiProvider {
    pub vtable: *const c_void,
    pub data: *const c_void,
    pub version: u32,
}

/// Which header map an accessor works on.
pub mod headers {
    pub const REQUEST: u32 = 0;
    pub const RESPONSE: u32 = 1;
    pub const SET: u32 = 0;
    pub const ADD: u32 = 1;
    pub const REMOVE: u32 = 2;
}

/// Request fields readable through [`HostApi::req_field`].
pub mod field {
    pub const METHOD: u32 = 0;
    /// Path as received, percent-encoding untouched.
    pub const PATH: u32 = 1;
    /// Query string without `?`; empty if none.
    pub const QUERY: u32 = 2;
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub const VERSION: u32 = 3;
    /// Client address `ip:port`.
    pub const CLIENT_ADDR: u32 = 4;
    /// Listener address `ip:port`.
    pub const LOCAL_ADDR: u32 = 5;
    /// `http` or `https`.
    pub const SCHEME: u32 = 6;
    /// The vhost's server name.
    pub const SERVER_NAME: u32 = 7;
    /// Scheme and authority when the request line held an absolute URI.
    pub const ABSOLUTE_AUTHORITY: u32 = 8;
}

pub type HeaderVisitor = extern "C" fn(ud: *mut c_void, name: AbiStr, value: AbiStr);

/// One field of an [`AbiFieldList`]: byte offsets into its text, the name
/// from `start` to `name_end`, the value from there to `end`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AbiFieldSpan {
    pub start: u32,
    pub name_end: u32,
    pub end: u32,
}

/// A request's fields lent whole (names in lower case, in order).
/// OWNERSHIP: borrowed; valid until the request changes.
#[repr(C)]
pub struct AbiFieldList {
    pub text: AbiStr,
    pub spans: *const AbiFieldSpan,
    pub count: usize,
}

/// Services the host gives modules: the runtime (spawn, timers, TCP), the
/// request accessors and registration. A module never calls tokio itself:
/// its own copy of tokio has no reactor (docs/architecture.md, "Facts the design rests on", 1).
///
/// Poll-style functions take a borrowed [`AbiWaker`] and return
/// [`io::READY`], [`io::PENDING`] (the waker will be woken) or an error code.
#[repr(C)]
pub struct HostApi {
    /// `size_of::<HostApi>()` of the host: fields past it do not exist.
    pub size: usize,
    pub log: extern "C" fn(level: u32, module: AbiStr, msg: AbiStr),

    // --- registration, valid only inside the module's init ---
    pub register_hook: extern "C" fn(
        reg: *mut c_void,
        hook: u32,
        order: i32,
        func: *const c_void,
        module: *const c_void,
    ) -> i32,
    pub register_provider: extern "C" fn(
        reg: *mut c_void,
        group: AbiStr,
        name: AbiStr,
        version: u32,
        vtable: *const c_void,
        data: *const c_void,
    ) -> i32,
    pub claim_section: extern "C" fn(
        reg: *mut c_void,
        path: AbiStr,
        func: SectionFn,
        module: *const c_void,
    ) -> i32,
    pub lookup_provider: extern "C" fn(group: AbiStr, name: AbiStr, out: *mut AbiProvider) -> bool,
    pub error_write: extern "C" fn(errors: *mut c_void, msg: AbiStr),

    // --- the request; strings returned are valid until the request changes ---
    pub req_field: extern "C" fn(req: *mut c_void, field: u32) -> AbiStr,
    pub req_vhost: extern "C" fn(req: *mut c_void) -> u32,
    pub header_get:
        extern "C" fn(req: *mut c_void, map: u32, name: AbiStr, out: *mut AbiStr) -> bool,
    /// Lends a header map whole: its text and every field's offsets.
    pub headers_lend: extern "C" fn(req: *mut c_void, map: u32, out: *mut AbiFieldList),
    pub header_change:
        extern "C" fn(req: *mut c_void, map: u32, mode: u32, name: AbiStr, value: AbiStr) -> i32,
    pub note_get: extern "C" fn(req: *mut c_void, key: AbiStr, out: *mut AbiStr) -> bool,
    pub note_set: extern "C" fn(req: *mut c_void, key: AbiStr, value: AbiStr),
    pub status_get: extern "C" fn(req: *mut c_void) -> u16,
    pub status_set: extern "C" fn(req: *mut c_void, status: u16),
    /// Sends the response head (after the response_headers hooks ran).
    pub response_start: extern "C" fn(req: *mut c_void) -> i32,
    /// Next request body chunk; READY with an empty chunk (len 0, no owner) is the end.
    pub body_poll_read:
        extern "C" fn(req: *mut c_void, waker: *const AbiWaker, out: *mut AbiChunk) -> i32,
    pub body_poll_ready: extern "C" fn(req: *mut c_void, waker: *const AbiWaker) -> i32,
    /// Takes ownership of `chunk`; only after body_poll_ready returned READY.
    pub body_send: extern "C" fn(req: *mut c_void, chunk: AbiChunk) -> i32,

    // --- the runtime ---
    pub spawn: extern "C" fn(fut: AbiFuture),
    pub timer_new: extern "C" fn(millis: u64) -> *mut c_void,
    pub timer_poll: extern "C" fn(timer: *mut c_void, waker: *const AbiWaker) -> i32,
    pub timer_drop: extern "C" fn(timer: *mut c_void),
    pub connect_new: extern "C" fn(addr: AbiStr, timeout_millis: u64) -> *mut c_void,
    pub connect_poll:
        extern "C" fn(op: *mut c_void, waker: *const AbiWaker, conn: *mut *mut c_void) -> i32,
    pub connect_drop: extern "C" fn(op: *mut c_void),
    pub conn_read: extern "C" fn(
        conn: *mut c_void,
        buf: *mut u8,
        len: usize,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32,
    pub conn_write: extern "C" fn(
        conn: *mut c_void,
        buf: *const u8,
        len: usize,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32,
    pub conn_shutdown: extern "C" fn(conn: *mut c_void, waker: *const AbiWaker) -> i32,
    pub conn_drop: extern "C" fn(conn: *mut c_void),
    /// Turns TCP keepalive probes on (after `idle_secs` of silence; 0 = the
    /// system default) or off.
    pub conn_set_keepalive: extern "C" fn(conn: *mut c_void, enable: bool, idle_secs: u32) -> i32,
    /// READY when the reactor saw the connection readable (data, EOF or an
    /// error) since the last read; PENDING otherwise. Makes no system call.
    pub conn_poll_readable: extern "C" fn(conn: *mut c_void, waker: *const AbiWaker) -> i32,

    // --- operating the server (the balancer manager, metrics, status) ---
    /// A path of the running server ([`server_file`]); empty when unknown.
    /// OWNERSHIP: lives as long as the process.
    pub server_file: extern "C" fn(which: u32) -> AbiStr,
    /// Calls `visitor(ud, name, "")` for every provider registered in `group`.
    pub providers_visit: extern "C" fn(group: AbiStr, visitor: HeaderVisitor, ud: *mut c_void),
    /// Writes the server's Prometheus text: the core's own metrics, then
    /// each `metrics` provider's, in pieces through `visitor(ud, text, "")`.
    pub metrics_render: extern "C" fn(visitor: HeaderVisitor, ud: *mut c_void),

    // --- TLS to backends and protocol upgrades ---
    /// Like `connect_new`, then a TLS handshake (SNI `server_name`, ALPN
    /// http/1.1), verified against the system's roots or the PEM roots in
    /// `ca_file` (relative to SERVER_ROOT), or not at all with
    /// [`tls_flags::INSECURE`]. Polled and dropped with `connect_poll` /
    /// `connect_drop`; the connection works with every `conn_*` service.
    pub tls_connect_new: extern "C" fn(
        addr: AbiStr,
        server_name: AbiStr,
        flags: u32,
        ca_file: AbiStr,
        timeout_millis: u64,
    ) -> *mut c_void,
    /// After a `101 Switching Protocols` head was sent: takes the client's
    /// connection over from HTTP. Polled and dropped with `connect_poll` /
    /// `connect_drop`; yields a connection for the `conn_*` services
    /// (`conn_set_keepalive` does not apply). ERR_OTHER when the request
    /// did not ask for an upgrade or the head sent was not a 101.
    pub upgrade_take: extern "C" fn(req: *mut c_void) -> *mut c_void,

    // --- ABI 1.1 ---
    /// Whether an idle connection can carry a new request, asked of the
    /// socket itself with a non-blocking peek (one system call), never of
    /// the reactor's cached readiness, which can lag behind what the
    /// kernel already holds. One of [`idle_state`]'s values.
    pub conn_idle_state: extern "C" fn(conn: *mut c_void) -> i32,
    /// The module in `mods-available/`, enabled or not, whose descriptor
    /// lists `group:name` in `provides`; empty when none does. Lets a
    /// module name the module to enable rather than guess its name.
    /// OWNERSHIP: lives as long as the process.
    pub provider_module: extern "C" fn(group: AbiStr, name: AbiStr) -> AbiStr,
}

/// What [`HostApi::conn_idle_state`] found on an idle connection.
pub mod idle_state {
    /// Open, and nothing waiting to be read: safe to reuse.
    pub const QUIET: i32 = 0;
    /// Bytes arrived that no request asked for: never reuse.
    pub const UNREAD: i32 = 1;
    /// Closed or broken by the peer, or not a connection the host can
    /// look into (a tunnel's client side): never reuse.
    pub const CLOSED: i32 = 2;
}

/// Flags of [`HostApi::tls_connect_new`].
pub mod tls_flags {
    /// Accept any certificate (self-signed test backends).
    pub const INSECURE: u32 = 1 << 0;
}

/// Paths readable through [`HostApi::server_file`].
pub mod server_file {
    /// SERVER_ROOT (`-d`).
    pub const SERVER_ROOT: u32 = 0;
    /// The main configuration file (`-f`).
    pub const CONFIG: u32 = 1;
}

/// What a module's entry symbol returns. Read in this order: magic,
/// abi_version, layout_hash; only then anything else.
#[repr(C)]
pub struct ModuleHeader {
    pub magic: u64,
    /// [`AbiVersion::encode`]: the major in the low 16 bits, the minor in
    /// the high ones (modules built before minors existed say 1: 1.0).
    pub abi_version: u32,
    pub layout_hash: u64,
    pub name: AbiStr,
    pub version: AbiStr,
    /// Registers hooks, providers and sections. Returns the module's data
    /// pointer, or null after writing the reason to `errors`.
    pub init:
        extern "C" fn(host: *const HostApi, reg: *mut c_void, errors: *mut c_void) -> *const c_void,
}

// SAFETY: the header is immutable static data.
unsafe impl Sync for ModuleHeader {}

pub type ModuleEntryFn = extern "C" fn() -> *const ModuleHeader;

/// `bytes` as text when they are UTF-8. Nearly every string that crosses
/// the boundary is short ASCII (methods, paths, addresses, names), which
/// a word-at-a-time check settles in a fraction of a full validation.
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}
