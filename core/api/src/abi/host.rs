//! The services the host gives every module ([`HostApi`], append-only) and
//! the codes and selectors they take.

use super::hooks::SectionFn;
use super::values::{AbiChunk, AbiFieldList, AbiFuture, AbiStr, AbiWaker, HeaderVisitor};
use std::ffi::c_void;

/// I/O status codes of the host's non-blocking services.
pub mod io {
    pub const READY: i32 = 0;
    pub const PENDING: i32 = crate::abi::values::POLL_PENDING;
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
    /// ABI 1.7. The service cannot do this here, and the module should do
    /// it the ordinary way: a splice (`body_splice_from`, `body_splice_to`)
    /// where the bytes must pass through user space.
    pub const ERR_UNSUPPORTED: i32 = 8;
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
    /// ABI 1.6. The request's trailer fields: empty until its body has
    /// been read to the end (HTTP/2's trailing HEADERS, as gRPC sends).
    pub const REQUEST_TRAILERS: u32 = 2;
    /// ABI 1.6. Fields sent after the response body (HTTP/2 trailers,
    /// gRPC's `grpc-status`); set them before the body ends. A client
    /// that cannot take trailers (HTTP/1.x) does not get them.
    pub const RESPONSE_TRAILERS: u32 = 3;
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
    /// Writes up to `len` bytes. A write of zero bytes flushes instead:
    /// what a TLS connection still holds after earlier writes (ciphertext
    /// the socket did not take yet) goes out, READY once it has, PENDING
    /// while the socket is full. A plain TCP connection holds nothing.
    /// (A host before 1.6 answers READY with n = 0 at once.)
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
    /// http/1.1, or h2 with [`tls_flags::ALPN_H2`]), verified against the system's roots or the PEM roots in
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
    /// After a `101 Switching Protocols` head was sent, or a 2xx head to a
    /// CONNECT request (a tunnel; the host writes it as `200 Connection
    /// Established`, with no body framing): takes the client's connection
    /// over from HTTP. Polled and dropped with `connect_poll` /
    /// `connect_drop`; yields a connection for the `conn_*` services
    /// (`conn_set_keepalive` does not apply). ERR_OTHER when the head sent
    /// was neither. Accepting CONNECT came after 1.2 without a new minor:
    /// the signature is unchanged, and a host before it answers ERR_OTHER.
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

    // --- ABI 1.7: bodies moved in the kernel (splice) ---
    /// Moves up to `max` bytes of the response body from `conn` to the
    /// client without copying them through user space, as if they had
    /// been read from `conn` and handed to `body_send`: they count as
    /// sent, against the response's Content-Length. Call it only after
    /// `body_poll_ready` answered READY; it waits on `conn` alone (the
    /// client's side is the core's, as for `body_send`). READY with `n`
    /// bytes moved, `n` = 0 when `conn` reached its end of stream; an
    /// error code from `conn`; or [`io::ERR_UNSUPPORTED`] when the bytes
    /// must pass through user space (TLS on either side, HTTP/2, an
    /// output filter, a response without Content-Length): read and
    /// `body_send` them instead.
    pub body_splice_from: extern "C" fn(
        req: *mut c_void,
        conn: *mut c_void,
        max: usize,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32,
    /// Moves up to `max` bytes of the request body from the client to
    /// `conn` without copying them through user space, as if they had
    /// been read with `body_poll_read` and written with `conn_write`: what
    /// `conn`'s socket does not take at once, `conn` holds and sends
    /// before anything written after it, or on a flush (a zero-length
    /// `conn_write`), as a TLS connection holds ciphertext. Waits on the
    /// client alone, under the request body's timeout (ERR_TIMEOUT), when
    /// `conn` holds nothing; flush it first. READY with `n` bytes moved,
    /// `n` = 0 when the body is complete; ERR_ABORTED or ERR_TOO_LARGE as
    /// `body_poll_read` answers them; a code from `conn` if it broke; or
    /// [`io::ERR_UNSUPPORTED`] when this piece must be read with
    /// `body_poll_read` (TLS on either side, HTTP/2, an input filter, a
    /// chunked body, bytes the core already read, a `100 Continue` still
    /// owed): then try again for the next.
    ///
    /// With `keep` > 0, the host also keeps what it moved (in the kernel,
    /// not copied) for `body_splice_replay`, as long as all it kept for
    /// this request stays within `keep` bytes: past that, and with `keep`
    /// = 0, it keeps nothing more and drops what it had.
    pub body_splice_to: extern "C" fn(
        req: *mut c_void,
        conn: *mut c_void,
        max: usize,
        keep: usize,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32,
    /// Sends `conn` again what `body_splice_to` kept of the request body
    /// (a retry on a new connection after the first one broke), `conn`
    /// holding what its socket does not take at once. READY with `n` the
    /// bytes kept (0 when none are: then nothing can be replayed); PENDING
    /// while `conn` still holds earlier bytes; ERR_UNSUPPORTED for a
    /// connection that cannot take a splice (TLS).
    pub body_splice_replay: extern "C" fn(
        req: *mut c_void,
        conn: *mut c_void,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32,
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
    /// ABI 1.6: offer ALPN `h2` alone instead of `http/1.1`, and fail the
    /// connect (ERR_TLS, with a log line naming the backend) when the
    /// server does not pick it: an `h2://` backend (proxy_http2).
    pub const ALPN_H2: u32 = 1 << 1;
}

/// Paths readable through [`HostApi::server_file`].
pub mod server_file {
    /// SERVER_ROOT (`-d`).
    pub const SERVER_ROOT: u32 = 0;
    /// The main configuration file (`-f`).
    pub const CONFIG: u32 = 1;
}
