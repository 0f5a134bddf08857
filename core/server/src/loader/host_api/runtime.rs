//! The host's runtime as services: spawn, timers, TCP and TLS connects,
//! non-blocking I/O on host-owned connections, upgrades.

use super::*;

host_fn! {
    pub(super) fn spawn(fut: AbiFuture) = ();
    {
        // SAFETY: modules make futures with future::export.
        let imported = unsafe { Imported::new(fut) };
        tokio::spawn(async move {
            imported.await;
        });
    }
}

host_fn! {
    /// A timer is one heap allocation: the raw pointer from `Box::into_raw`
    /// is the handle, and the Sleep never moves until timer_drop frees it.
    pub(super) fn timer_new(millis: u64) -> *mut c_void = std::ptr::null_mut();
    {
        let sleep = Box::new(tokio::time::sleep(Duration::from_millis(millis)));
        Box::into_raw(sleep) as *mut c_void
    }
}

fn timer<'a>(raw: *mut c_void) -> Pin<&'a mut tokio::time::Sleep> {
    // SAFETY: made by timer_new and used by its one owner until timer_drop;
    // the boxed Sleep is never moved, so pinning it in place is sound.
    unsafe { Pin::new_unchecked(&mut *(raw as *mut tokio::time::Sleep)) }
}

host_fn! {
    pub(super) fn timer_poll(raw: *mut c_void, waker: *const AbiWaker) -> i32 = io::READY;
    {
        if raw.is_null() {
            // timer_new failed (see guard.rs): a timer that has fired.
            return io::READY;
        }
        match with_cx(waker, |cx| timer(raw).poll(cx)) {
            Poll::Ready(()) => io::READY,
            Poll::Pending => io::PENDING,
        }
    }
}

host_fn! {
    pub(super) fn timer_drop(raw: *mut c_void) = ();
    {
        if raw.is_null() {
            return;
        }
        // SAFETY: made by timer_new, dropped once.
        drop(unsafe { Box::from_raw(raw as *mut tokio::time::Sleep) });
    }
}

/// A pending connect, TLS connect or upgrade: all end in a [`HostConn`].
type Connecting = Pin<Box<dyn Future<Output = Result<HostConn, i32>> + Send>>;

host_fn! {
    /// `addr` is `host:port`, or `unix:/path` for a unix-domain socket (a
    /// PHP-FPM pool's `listen = /run/php/php8.2-fpm.sock`).
    pub(super) fn connect_new(addr: AbiStr, timeout_millis: u64) -> *mut c_void = std::ptr::null_mut();
    {
        let addr = text(addr).into_owned();
        let wait = Duration::from_millis(timeout_millis);
        let fut: Connecting = match addr.strip_prefix("unix:") {
            Some(path) => Box::pin(unix_connect(path.to_owned(), wait)),
            None => Box::pin(async move {
                match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
                    Err(_) => Err(io::ERR_TIMEOUT),
                    Ok(Err(e)) => Err(io_code(&e)),
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        Ok(HostConn::Tcp(stream, None))
                    }
                }
            }),
        };
        Box::into_raw(Box::new(fut)) as *mut c_void
    }
}

/// A unix-domain connect. A socket file that is missing, or that nothing
/// listens on, reads as refused (ECONNREFUSED, ENOENT): the backend is
/// down, as a refused TCP port is.
async fn unix_connect(path: String, wait: Duration) -> Result<HostConn, i32> {
    match tokio::time::timeout(wait, tokio::net::UnixStream::connect(&path)).await {
        Err(_) => Err(io::ERR_TIMEOUT),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(io::ERR_REFUSED),
        Ok(Err(e)) => Err(io_code(&e)),
        Ok(Ok(stream)) => Ok(HostConn::Unix(stream)),
    }
}

pub(crate) fn io_code(e: &std::io::Error) -> i32 {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => io::ERR_REFUSED,
        TimedOut => io::ERR_TIMEOUT,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => io::ERR_RESET,
        _ => io::ERR_OTHER,
    }
}

host_fn! {
    pub(super) fn connect_poll(
        op: *mut c_void,
        waker: *const AbiWaker,
        out: *mut *mut c_void,
    ) -> i32 = io::ERR_OTHER;
    {
        if op.is_null() {
            // connect_new (or its TLS or upgrade twin) failed: see guard.rs.
            return io::ERR_OTHER;
        }
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
}

host_fn! {
    pub(super) fn connect_drop(op: *mut c_void) = ();
    {
        if op.is_null() {
            return;
        }
        // SAFETY: made by connect_new, dropped once.
        drop(unsafe { Box::from_raw(op as *mut Connecting) });
    }
}

pub(super) fn stream<'a>(raw: *mut c_void) -> Pin<&'a mut HostConn> {
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

host_fn! {
    pub(super) fn conn_read(
        raw: *mut c_void,
        buf: *mut u8,
        len: usize,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32 = io::ERR_OTHER;
    {
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
}

host_fn! {
    pub(super) fn conn_write(
        raw: *mut c_void,
        buf: *const u8,
        len: usize,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32 = io::ERR_OTHER;
    {
        if len == 0 {
            // A flush: what a TLS stream still holds goes out (abi: conn_write).
            // SAFETY: `n` is valid for writing (conn_write's contract).
            unsafe { *n = 0 };
            return match with_cx(waker, |cx| stream(raw).poll_flush(cx)) {
                Poll::Pending => io::PENDING,
                Poll::Ready(Ok(())) => io::READY,
                Poll::Ready(Err(e)) => io_code(&e),
            };
        }
        let data = bytes(AbiStr { ptr: buf, len });
        io_result(with_cx(waker, |cx| stream(raw).poll_write(cx, data)), n)
    }
}

host_fn! {
    pub(super) fn conn_shutdown(raw: *mut c_void, waker: *const AbiWaker) -> i32 = io::ERR_OTHER;
    {
        match with_cx(waker, |cx| stream(raw).poll_shutdown(cx)) {
            Poll::Pending => io::PENDING,
            Poll::Ready(Ok(())) => io::READY,
            Poll::Ready(Err(e)) => io_code(&e),
        }
    }
}

host_fn! {
    pub(super) fn conn_drop(raw: *mut c_void) = ();
    {
        // SAFETY: made by connect_poll, dropped once.
        drop(unsafe { Box::from_raw(raw as *mut HostConn) });
    }
}

host_fn! {
    pub(super) fn conn_set_keepalive(raw: *mut c_void, enable: bool, idle_secs: u32) -> i32 = io::ERR_OTHER;
    {
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
}

host_fn! {
    pub(super) fn conn_poll_readable(raw: *mut c_void, waker: *const AbiWaker) -> i32 = io::ERR_OTHER;
    {
        let polled = match &*stream(raw) {
            HostConn::Tcp(tcp, _) => with_cx(waker, |cx| tcp.poll_read_ready(cx)),
            HostConn::Unix(unix) => with_cx(waker, |cx| unix.poll_read_ready(cx)),
            // TLS may hold decrypted bytes the socket no longer shows:
            // say "maybe", and let the caller's read find out.
            _ => return io::READY,
        };
        match polled {
            Poll::Pending => io::PENDING,
            Poll::Ready(_) => io::READY,
        }
    }
}

host_fn! {
    /// One non-blocking `MSG_PEEK` on the TCP socket underneath, so bytes the
    /// kernel holds count even before the reactor has reported them. For TLS
    /// the socket shows every record the backend sent after its response; any
    /// plaintext rustls had already decrypted was read into the module's
    /// buffer with the response, where the module sees it.
    pub(super) fn conn_idle_state(raw: *mut c_void) -> i32 = abi::idle_state::CLOSED;
    {
        let conn = stream(raw);
        let socket = match (conn.tcp(), &*conn) {
            (Some(tcp), _) => socket2::SockRef::from(tcp),
            (None, HostConn::Unix(unix)) => socket2::SockRef::from(unix),
            _ => return abi::idle_state::CLOSED,
        };
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket.peek(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => abi::idle_state::QUIET,
            Ok(n) if n > 0 => abi::idle_state::UNREAD,
            // 0 is the peer's FIN; an error (a reset) breaks it as surely.
            _ => abi::idle_state::CLOSED,
        }
    }
}

host_fn! {
    pub(super) fn tls_connect_new(
        addr: AbiStr,
        server_name: AbiStr,
        flags: u32,
        ca_file: AbiStr,
        timeout_millis: u64,
    ) -> *mut c_void = std::ptr::null_mut();
    {
        let fut: Connecting = Box::pin(crate::loader::conn::tls_connect(
            text(addr).into_owned(),
            text(server_name).into_owned(),
            flags & abi::tls_flags::INSECURE != 0,
            flags & abi::tls_flags::ALPN_H2 != 0,
            text(ca_file).into_owned(),
            Duration::from_millis(timeout_millis),
        ));
        Box::into_raw(Box::new(fut)) as *mut c_void
    }
}

host_fn! {
    pub(super) fn upgrade_take(raw: *mut c_void) -> *mut c_void = std::ptr::null_mut();
    {
        let r = req(raw);
        // The connection is handed over only after a 101 head, or a 2xx to
        // CONNECT, and only once the core has written it (see server::respond).
        let connect = r.head.method() == b"CONNECT" && r.status.is_success();
        let switching =
            r.head_sent && (r.status == http::StatusCode::SWITCHING_PROTOCOLS || connect);
        let ready = match std::mem::take(&mut r.upgrade) {
            UpgradeSlot::Ready(upgraded) => Ok(upgraded),
            _ if !switching => Err(None),
            _ => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                r.upgrade = UpgradeSlot::Waiting(tx);
                Err(Some(rx))
            }
        };
        let fut: Connecting = Box::pin(async move {
            let upgraded = match ready {
                Ok(upgraded) => upgraded,
                Err(Some(rx)) => rx.await.map_err(|_| io::ERR_RESET)?,
                Err(None) => return Err(io::ERR_OTHER),
            };
            Ok(HostConn::Upgraded(
                Box::new(upgraded),
                crate::server::tunnels::token(),
            ))
        });
        Box::into_raw(Box::new(fut)) as *mut c_void
    }
}
