//! The host services table handed to every module, and the calls from the
//! host into module hooks. Every function here trusts only what the ABI
//! promises: handles it made itself and borrowed slices valid for the call.

use super::conn::HostConn;
use super::registry::{frozen, Claim, Hook, Provider, Registry};
use super::request::{ctx, RequestCtx};
use crate::log::{self, Level};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use http_body::Body as _;
use modproxy_api::abi::{
    self, code, field, headers as hmap, io, AbiChunk, AbiFuture, AbiProvider, AbiSection, AbiStr,
    AbiWaker, HandlerHookFn, HeaderVisitor, HookKind, HostApi, PostConfigFn, RequestHookFn,
    SectionFn,
};
use modproxy_api::future::Imported;
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The one table every module gets.
pub static HOST_API: HostApi = HostApi {
    size: std::mem::size_of::<HostApi>(),
    log: host_log,
    register_hook,
    register_provider,
    claim_section,
    lookup_provider,
    error_write,
    req_field,
    req_vhost,
    header_get,
    headers_visit,
    header_change,
    note_get,
    note_set,
    status_get,
    status_set,
    response_start,
    body_poll_read,
    body_poll_ready,
    body_send,
    spawn,
    timer_new,
    timer_poll,
    timer_drop,
    connect_new,
    connect_poll,
    connect_drop,
    conn_read,
    conn_write,
    conn_shutdown,
    conn_drop,
    conn_set_keepalive,
    conn_poll_readable,
    server_file: super::operate::server_file,
    providers_visit: super::operate::providers_visit,
    metrics_render: super::operate::metrics_render,
    tls_connect_new,
    upgrade_take,
};

/// Borrowed bytes as `&str` (lossy), for names and messages from modules.
/// Valid UTF-8, the usual case, is borrowed after a plain validity check.
fn text<'a>(s: AbiStr) -> std::borrow::Cow<'a, str> {
    let b = bytes(s);
    match std::str::from_utf8(b) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(b),
    }
}
fn bytes<'a>(s: AbiStr) -> &'a [u8] {
    // SAFETY: as in text().
    unsafe { s.as_bytes() }
}

/// Runs `f` with a std Context for the waker a module lent.
fn with_cx<R>(waker: *const AbiWaker, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
    // SAFETY: poll-style services receive a waker valid for the call.
    unsafe { modproxy_api::waker::with_context(waker, f) }
}

// --- logging and errors -------------------------------------------------------

extern "C" fn host_log(level: u32, module: AbiStr, msg: AbiStr) {
    log::write(Level::from_abi(level), &text(module), &text(msg));
}

/// The host's error collector behind the `errors` pointers given to modules.
pub type ErrorSink = Vec<String>;

extern "C" fn error_write(errors: *mut c_void, msg: AbiStr) {
    if errors.is_null() {
        return;
    }
    // SAFETY: `errors` is an &mut ErrorSink the host passed for this call.
    unsafe { &mut *(errors as *mut ErrorSink) }.push(text(msg).into_owned());
}

// --- registration -------------------------------------------------------------

/// What a module's init registers into.
pub struct RegCtx<'a> {
    pub registry: &'a mut Registry,
    pub module: usize,
}

fn reg<'a>(raw: *mut c_void) -> &'a mut RegCtx<'a> {
    // SAFETY: `raw` is the RegCtx the loader passes to init, alive for it.
    unsafe { &mut *(raw as *mut RegCtx) }
}

extern "C" fn register_hook(
    raw: *mut c_void,
    hook: u32,
    order: i32,
    func: *const c_void,
    data: *const c_void,
) -> i32 {
    let Some(kind) = HookKind::from_u32(hook) else {
        return code::ERROR;
    };
    if func.is_null() {
        return code::ERROR;
    }
    let r = reg(raw);
    r.registry.add_hook(
        kind,
        Hook {
            module: r.module,
            order,
            func,
            data,
        },
    );
    code::OK
}

extern "C" fn register_provider(
    raw: *mut c_void,
    group: AbiStr,
    name: AbiStr,
    version: u32,
    vtable: *const c_void,
    data: *const c_void,
) -> i32 {
    let r = reg(raw);
    let key = (text(group).into_owned(), text(name).into_owned());
    if r.registry.providers.contains_key(&key) {
        // Two modules offering the same provider is a configuration mistake.
        return code::ERROR;
    }
    let provider = Provider {
        module: r.module,
        raw: AbiProvider {
            vtable,
            data,
            version,
        },
    };
    r.registry.providers.insert(key, provider);
    code::OK
}

extern "C" fn claim_section(
    raw: *mut c_void,
    path: AbiStr,
    func: SectionFn,
    data: *const c_void,
) -> i32 {
    let r = reg(raw);
    let path = text(path).into_owned();
    if r.registry.claims.iter().any(|c| c.path == path) {
        return code::ERROR;
    }
    r.registry.claims.push(Claim {
        module: r.module,
        path,
        func,
        data,
    });
    code::OK
}

extern "C" fn lookup_provider(group: AbiStr, name: AbiStr, out: *mut AbiProvider) -> bool {
    let Some(registry) = frozen() else {
        return false;
    };
    let key = (text(group).into_owned(), text(name).into_owned());
    match registry.providers.get(&key) {
        Some(p) => {
            // SAFETY: `out` is a writable AbiProvider owned by the caller.
            unsafe {
                out.write(AbiProvider {
                    vtable: p.raw.vtable,
                    data: p.raw.data,
                    version: p.raw.version,
                })
            };
            true
        }
        None => false,
    }
}

// --- calls into modules ---------------------------------------------------------

/// Runs a synchronous request hook.
pub fn call_request_hook(hook: &Hook, req: *mut c_void) -> i32 {
    // SAFETY: registered through register_hook for a sync kind; the SDK
    // generated `func` with exactly this signature.
    let f: RequestHookFn =
        unsafe { std::mem::transmute::<*const c_void, RequestHookFn>(hook.func) };
    f(hook.data, req)
}

/// Starts a handler; the future must be dropped before the request.
pub fn call_handler(hook: &Hook, req: *mut c_void) -> Imported {
    // SAFETY: registered for HookKind::Handler with this signature.
    let f: HandlerHookFn =
        unsafe { std::mem::transmute::<*const c_void, HandlerHookFn>(hook.func) };
    // SAFETY: the SDK made this future with future::export or ready().
    unsafe { Imported::new(f(hook.data, req)) }
}

pub fn call_post_config(hook: &Hook) -> Result<(), Vec<String>> {
    // SAFETY: registered for HookKind::PostConfig with this signature.
    let f: PostConfigFn = unsafe { std::mem::transmute::<*const c_void, PostConfigFn>(hook.func) };
    let mut errors = ErrorSink::new();
    let rc = f(hook.data, &mut errors as *mut ErrorSink as *mut c_void);
    check(rc, errors)
}

/// Hands one configuration section to the module that claimed it.
pub fn call_section(
    claim: &Claim,
    path: &str,
    vhost: Option<usize>,
    file: &str,
    key: &str,
    toml_text: &str,
) -> Result<(), Vec<String>> {
    let section = AbiSection {
        path: AbiStr::new(path.as_bytes()),
        vhost: vhost.map_or(-1, |v| v as i64),
        file: AbiStr::new(file.as_bytes()),
        key: AbiStr::new(key.as_bytes()),
        toml: AbiStr::new(toml_text.as_bytes()),
    };
    let mut errors = ErrorSink::new();
    let rc = (claim.func)(
        claim.data,
        &section,
        &mut errors as *mut ErrorSink as *mut c_void,
    );
    check(rc, errors)
}

fn check(rc: i32, mut errors: ErrorSink) -> Result<(), Vec<String>> {
    match rc {
        code::OK | code::DECLINED => Ok(()),
        code::PANICKED => {
            errors.push("the module panicked (see the log line above)".into());
            Err(errors)
        }
        _ => {
            if errors.is_empty() {
                errors.push(format!(
                    "the module failed with code {rc} and gave no reason"
                ));
            }
            Err(errors)
        }
    }
}

/// Calls a module's init with our table. Returns its data pointer.
pub fn call_init(
    header: &abi::ModuleHeader,
    reg: &mut RegCtx,
) -> Result<*const c_void, Vec<String>> {
    let mut errors = ErrorSink::new();
    let data = (header.init)(
        &HOST_API,
        reg as *mut RegCtx as *mut c_void,
        &mut errors as *mut ErrorSink as *mut c_void,
    );
    if data.is_null() {
        if errors.is_empty() {
            errors.push("its init failed without a reason (did it panic? see the log)".into());
        }
        return Err(errors);
    }
    Ok(data)
}

// --- the request ------------------------------------------------------------------

fn req<'a>(raw: *mut c_void) -> &'a mut RequestCtx {
    // SAFETY: modules only hold handles the host gave them, for as long as
    // the host keeps the request (see CtxHandle).
    unsafe { ctx(raw) }
}

fn lend(s: &str) -> AbiStr {
    AbiStr::new(s.as_bytes())
}

extern "C" fn req_field(raw: *mut c_void, which: u32) -> AbiStr {
    let r = req(raw);
    match which {
        field::METHOD => lend(r.head.method.as_str()),
        field::PATH => lend(r.head.uri.path()),
        field::QUERY => lend(r.head.uri.query().unwrap_or("")),
        field::VERSION => lend(if r.head.version == http::Version::HTTP_10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }),
        field::CLIENT_ADDR => lend(&r.conn.client_text),
        field::LOCAL_ADDR => lend(&r.conn.local_text),
        field::SCHEME => lend(r.conn.scheme),
        field::SERVER_NAME => lend(&r.server_name),
        field::ABSOLUTE_AUTHORITY => lend(&r.absolute_authority),
        _ => AbiStr::EMPTY,
    }
}

extern "C" fn req_vhost(raw: *mut c_void) -> u32 {
    req(raw).vhost
}

fn map(r: &mut RequestCtx, which: u32) -> &mut HeaderMap {
    if which == hmap::RESPONSE {
        &mut r.response_headers
    } else {
        &mut r.head.headers
    }
}

extern "C" fn header_get(raw: *mut c_void, which: u32, name: AbiStr, out: *mut AbiStr) -> bool {
    let headers = map(req(raw), which);
    let Ok(name) = HeaderName::from_bytes(bytes(name)) else {
        return false;
    };
    match headers.get(&name) {
        Some(v) => {
            // SAFETY: `out` is writable, owned by the caller.
            unsafe { out.write(AbiStr::new(v.as_bytes())) };
            true
        }
        None => false,
    }
}

extern "C" fn headers_visit(raw: *mut c_void, which: u32, visitor: HeaderVisitor, ud: *mut c_void) {
    for (name, value) in map(req(raw), which).iter() {
        visitor(ud, lend(name.as_str()), AbiStr::new(value.as_bytes()));
    }
}

extern "C" fn header_change(
    raw: *mut c_void,
    which: u32,
    mode: u32,
    name: AbiStr,
    value: AbiStr,
) -> i32 {
    let headers = map(req(raw), which);
    let Ok(name) = HeaderName::from_bytes(bytes(name)) else {
        return code::ERROR;
    };
    if mode == hmap::REMOVE {
        headers.remove(&name);
        return code::OK;
    }
    let Ok(value) = HeaderValue::from_bytes(bytes(value)) else {
        return code::ERROR;
    };
    if mode == hmap::ADD {
        headers.append(name, value);
    } else {
        headers.insert(name, value);
    }
    code::OK
}

extern "C" fn note_get(raw: *mut c_void, key: AbiStr, out: *mut AbiStr) -> bool {
    match req(raw).note(&text(key)) {
        Some(v) => {
            // SAFETY: `out` is writable, owned by the caller.
            unsafe { out.write(lend(v)) };
            true
        }
        None => false,
    }
}

extern "C" fn note_set(raw: *mut c_void, key: AbiStr, value: AbiStr) {
    req(raw).set_note(&text(key), &text(value));
}

extern "C" fn status_get(raw: *mut c_void) -> u16 {
    req(raw).status.as_u16()
}

extern "C" fn status_set(raw: *mut c_void, status: u16) {
    if let Ok(s) = http::StatusCode::from_u16(status) {
        req(raw).status = s;
    }
}

extern "C" fn response_start(raw: *mut c_void) -> i32 {
    if req(raw).head_sent {
        return io::ERR_OTHER;
    }
    // ProxyPassReverse and friends get their last look at the head here.
    if let Some(registry) = frozen() {
        for hook in registry.hooks(HookKind::ResponseHeaders) {
            let rc = call_request_hook(hook, raw);
            if rc != code::OK && rc != code::DECLINED {
                let name = &registry.modules[hook.module].name;
                log::write(
                    Level::Error,
                    "core",
                    &format!("module {name} failed in response_headers (code {rc})"),
                );
            }
        }
    }
    req(raw).head_sent = true;
    io::READY
}

extern "C" fn body_poll_read(raw: *mut c_void, waker: *const AbiWaker, out: *mut AbiChunk) -> i32 {
    let r = req(raw);
    let Some(body) = r.body.as_mut() else {
        return io::READY;
    };
    loop {
        let polled = with_cx(waker, |cx| Pin::new(&mut *body).poll_frame(cx));
        match polled {
            Poll::Pending => return body_wait(r, waker),
            Poll::Ready(None) => {
                r.body = None;
                return io::READY;
            }
            Poll::Ready(Some(Err(_))) => return io::ERR_ABORTED,
            Poll::Ready(Some(Ok(frame))) => {
                r.body_timer = None;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                r.body_read += data.len() as u64;
                if r.body_limit != 0 && r.body_read > r.body_limit {
                    return io::ERR_TOO_LARGE;
                }
                // SAFETY: `out` is writable, owned by the caller.
                unsafe { out.write(modproxy_api::chunk::from_bytes(data)) };
                return io::READY;
            }
        }
    }
}

/// Timeout for a client that stops sending its body: the wait is armed
/// on the first Pending, reset by each piece, and ends in ERR_TIMEOUT.
fn body_wait(r: &mut RequestCtx, waker: *const AbiWaker) -> i32 {
    if r.body_timeout.is_zero() {
        return io::PENDING;
    }
    let timeout = r.body_timeout;
    let timer = r
        .body_timer
        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    match with_cx(waker, |cx| timer.as_mut().poll(cx)) {
        Poll::Pending => io::PENDING,
        Poll::Ready(()) => {
            r.body_timer = None;
            io::ERR_TIMEOUT
        }
    }
}

extern "C" fn body_poll_ready(raw: *mut c_void, waker: *const AbiWaker) -> i32 {
    let r = req(raw);
    if !r.head_sent {
        return io::ERR_OTHER;
    }
    if r.pending_chunk.is_none() {
        return io::READY;
    }
    // The response body drains the slot before it polls the handler again.
    with_cx(waker, |cx| cx.waker().wake_by_ref());
    io::PENDING
}

extern "C" fn body_send(raw: *mut c_void, chunk: AbiChunk) -> i32 {
    // SAFETY: modules make chunks with chunk::from_bytes.
    let data: Bytes = unsafe { modproxy_api::chunk::into_bytes(chunk) };
    let r = req(raw);
    if !r.head_sent || r.pending_chunk.is_some() {
        return io::ERR_OTHER;
    }
    if !data.is_empty() {
        r.pending_chunk = Some(data);
    }
    io::READY
}

// --- the runtime ----------------------------------------------------------------------

extern "C" fn spawn(fut: AbiFuture) {
    // SAFETY: modules make futures with future::export.
    let imported = unsafe { Imported::new(fut) };
    tokio::spawn(async move {
        imported.await;
    });
}

/// A timer is one heap allocation: the raw pointer from `Box::into_raw`
/// is the handle, and the Sleep never moves until timer_drop frees it.
extern "C" fn timer_new(millis: u64) -> *mut c_void {
    let sleep = Box::new(tokio::time::sleep(Duration::from_millis(millis)));
    Box::into_raw(sleep) as *mut c_void
}

fn timer<'a>(raw: *mut c_void) -> Pin<&'a mut tokio::time::Sleep> {
    // SAFETY: made by timer_new and used by its one owner until timer_drop;
    // the boxed Sleep is never moved, so pinning it in place is sound.
    unsafe { Pin::new_unchecked(&mut *(raw as *mut tokio::time::Sleep)) }
}

extern "C" fn timer_poll(raw: *mut c_void, waker: *const AbiWaker) -> i32 {
    match with_cx(waker, |cx| timer(raw).poll(cx)) {
        Poll::Ready(()) => io::READY,
        Poll::Pending => io::PENDING,
    }
}

extern "C" fn timer_drop(raw: *mut c_void) {
    // SAFETY: made by timer_new, dropped once.
    drop(unsafe { Box::from_raw(raw as *mut tokio::time::Sleep) });
}

/// A pending connect, TLS connect or upgrade: all end in a [`HostConn`].
type Connecting = Pin<Box<dyn Future<Output = Result<HostConn, i32>> + Send>>;

extern "C" fn connect_new(addr: AbiStr, timeout_millis: u64) -> *mut c_void {
    let addr = text(addr).into_owned();
    let fut: Connecting = Box::pin(async move {
        let connect = TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(timeout_millis), connect).await {
            Err(_) => Err(io::ERR_TIMEOUT),
            Ok(Err(e)) => Err(io_code(&e)),
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(HostConn::Tcp(stream))
            }
        }
    });
    Box::into_raw(Box::new(fut)) as *mut c_void
}

pub(super) fn io_code(e: &std::io::Error) -> i32 {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => io::ERR_REFUSED,
        TimedOut => io::ERR_TIMEOUT,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => io::ERR_RESET,
        _ => io::ERR_OTHER,
    }
}

extern "C" fn connect_poll(op: *mut c_void, waker: *const AbiWaker, out: *mut *mut c_void) -> i32 {
    // SAFETY: made by connect_new, polled by its one owner until connect_drop.
    let fut = unsafe { &mut *(op as *mut Connecting) };
    match with_cx(waker, |cx| fut.as_mut().poll(cx)) {
        Poll::Pending => io::PENDING,
        Poll::Ready(Err(code)) => code,
        Poll::Ready(Ok(stream)) => {
            // SAFETY: `out` is writable, owned by the caller.
            unsafe { out.write(Box::into_raw(Box::new(stream)) as *mut c_void) };
            io::READY
        }
    }
}

extern "C" fn connect_drop(op: *mut c_void) {
    // SAFETY: made by connect_new, dropped once.
    drop(unsafe { Box::from_raw(op as *mut Connecting) });
}

fn stream<'a>(raw: *mut c_void) -> Pin<&'a mut HostConn> {
    // SAFETY: made by connect_poll, used by its one owner until conn_drop.
    Pin::new(unsafe { &mut *(raw as *mut HostConn) })
}

fn io_result(polled: Poll<std::io::Result<usize>>, n: *mut usize) -> i32 {
    match polled {
        Poll::Pending => io::PENDING,
        Poll::Ready(Err(e)) => io_code(&e),
        Poll::Ready(Ok(done)) => {
            // SAFETY: `n` is writable, owned by the caller.
            unsafe { n.write(done) };
            io::READY
        }
    }
}

extern "C" fn conn_read(
    raw: *mut c_void,
    buf: *mut u8,
    len: usize,
    waker: *const AbiWaker,
    n: *mut usize,
) -> i32 {
    if len == 0 {
        return io_result(Poll::Ready(Ok(0)), n);
    }
    // SAFETY: the module lends `buf..buf+len` for writing during the call;
    // it may be uninitialised (the SDK's read_buf), which ReadBuf::uninit
    // allows: only bytes the socket wrote are reported back.
    let slice =
        unsafe { std::slice::from_raw_parts_mut(buf as *mut std::mem::MaybeUninit<u8>, len) };
    let mut read_buf = ReadBuf::uninit(slice);
    let polled = with_cx(waker, |cx| stream(raw).poll_read(cx, &mut read_buf));
    io_result(polled.map_ok(|()| read_buf.filled().len()), n)
}

extern "C" fn conn_write(
    raw: *mut c_void,
    buf: *const u8,
    len: usize,
    waker: *const AbiWaker,
    n: *mut usize,
) -> i32 {
    let data = bytes(AbiStr { ptr: buf, len });
    io_result(with_cx(waker, |cx| stream(raw).poll_write(cx, data)), n)
}

extern "C" fn conn_shutdown(raw: *mut c_void, waker: *const AbiWaker) -> i32 {
    match with_cx(waker, |cx| stream(raw).poll_shutdown(cx)) {
        Poll::Pending => io::PENDING,
        Poll::Ready(Ok(())) => io::READY,
        Poll::Ready(Err(e)) => io_code(&e),
    }
}

extern "C" fn conn_drop(raw: *mut c_void) {
    // SAFETY: made by connect_poll, dropped once.
    drop(unsafe { Box::from_raw(raw as *mut HostConn) });
}

/// Sends the response head on a module's behalf (a handler that returned
/// OK without sending it).
pub fn start_response(raw: *mut c_void) {
    response_start(raw);
}

extern "C" fn conn_set_keepalive(raw: *mut c_void, enable: bool, idle_secs: u32) -> i32 {
    let conn = stream(raw);
    let Some(tcp) = conn.tcp() else {
        // A tunnel's client side: the core owns that socket's settings.
        return io::ERR_OTHER;
    };
    let socket = socket2::SockRef::from(tcp);
    let result = if enable && idle_secs > 0 {
        let params =
            socket2::TcpKeepalive::new().with_time(Duration::from_secs(u64::from(idle_secs)));
        socket.set_tcp_keepalive(&params)
    } else {
        // 0: the system's default idle time, as Apache's keepalive=On.
        socket.set_keepalive(enable)
    };
    match result {
        Ok(()) => io::READY,
        Err(e) => io_code(&e),
    }
}

extern "C" fn conn_poll_readable(raw: *mut c_void, waker: *const AbiWaker) -> i32 {
    let HostConn::Tcp(tcp) = &*stream(raw) else {
        // TLS may hold decrypted bytes the socket no longer shows:
        // say "maybe", and let the caller's read find out.
        return io::READY;
    };
    match with_cx(waker, |cx| tcp.poll_read_ready(cx)) {
        Poll::Pending => io::PENDING,
        Poll::Ready(_) => io::READY,
    }
}

extern "C" fn tls_connect_new(
    addr: AbiStr,
    server_name: AbiStr,
    flags: u32,
    ca_file: AbiStr,
    timeout_millis: u64,
) -> *mut c_void {
    let fut: Connecting = Box::pin(super::conn::tls_connect(
        text(addr).into_owned(),
        text(server_name).into_owned(),
        flags & abi::tls_flags::INSECURE != 0,
        text(ca_file).into_owned(),
        Duration::from_millis(timeout_millis),
    ));
    Box::into_raw(Box::new(fut)) as *mut c_void
}

extern "C" fn upgrade_take(raw: *mut c_void) -> *mut c_void {
    let r = req(raw);
    // hyper hands the connection over only after a 101 head went out on
    // a request that asked for an upgrade.
    let pending = if r.head_sent && r.status == http::StatusCode::SWITCHING_PROTOCOLS {
        r.head.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let fut: Connecting = Box::pin(async move {
        let upgraded = pending
            .ok_or(io::ERR_OTHER)?
            .await
            .map_err(|_| io::ERR_RESET)?;
        let io = hyper_util::rt::TokioIo::new(upgraded);
        Ok(HostConn::Upgraded(io, crate::server::tunnels::token()))
    });
    Box::into_raw(Box::new(fut)) as *mut c_void
}
