//! The host's runtime as futures: TCP connections, timers and spawn. A
//! module must use these, never its own tokio (which has no reactor here).

use super::host::host;
use super::IoError;
use crate::abi::{self, AbiStr};
use std::ffi::c_void;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What [`TcpConn::idle_state`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Open, nothing waiting: safe to reuse.
    Quiet,
    /// Bytes arrived that no request asked for: never reuse.
    Unread,
    /// Closed or reset by the peer: never reuse.
    Closed,
}

/// A TCP connection owned by the host's reactor.
pub struct TcpConn {
    raw: *mut c_void,
}

// SAFETY: the host's connection is a tokio TcpStream, which is Send; the
// handle is used by one owner at a time (`&mut self`).
unsafe impl Send for TcpConn {}
// SAFETY: a shared `&TcpConn` exposes no operation; every use needs `&mut`.
unsafe impl Sync for TcpConn {}

impl TcpConn {
    /// Connects to `addr` (`host:port`, or `unix:/path` for a unix-domain
    /// socket), giving up after `timeout`. A unix socket file that does not
    /// exist is [`IoError::Refused`], as a closed TCP port is.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<TcpConn, IoError> {
        let op = Op((host().connect_new)(
            AbiStr::new(addr.as_bytes()),
            millis(timeout),
        ));
        Self::finish(op).await
    }

    /// Connects to `addr` and completes a TLS handshake with SNI
    /// `server_name` (an `https://` backend), giving up after `timeout`.
    /// Verified against the system's roots, or the PEM roots in `ca_file`
    /// when it is not empty; `verify = false` accepts any certificate.
    pub async fn connect_tls(
        addr: &str,
        server_name: &str,
        verify: bool,
        ca_file: &str,
        timeout: Duration,
    ) -> Result<TcpConn, IoError> {
        let flags = if verify { 0 } else { abi::tls_flags::INSECURE };
        Self::tls(addr, server_name, flags, ca_file, timeout).await
    }

    /// [`TcpConn::connect_tls`] for an `h2://` backend: ALPN offers `h2`
    /// alone, and a server that does not pick it fails the connect with
    /// [`IoError::Tls`] (the host logs which backend and what to do).
    pub async fn connect_tls_h2(
        addr: &str,
        server_name: &str,
        verify: bool,
        ca_file: &str,
        timeout: Duration,
    ) -> Result<TcpConn, IoError> {
        let mut flags = abi::tls_flags::ALPN_H2;
        if !verify {
            flags |= abi::tls_flags::INSECURE;
        }
        Self::tls(addr, server_name, flags, ca_file, timeout).await
    }

    async fn tls(
        addr: &str,
        server_name: &str,
        flags: u32,
        ca_file: &str,
        timeout: Duration,
    ) -> Result<TcpConn, IoError> {
        let op = Op((host().tls_connect_new)(
            AbiStr::new(addr.as_bytes()),
            AbiStr::new(server_name.as_bytes()),
            flags,
            AbiStr::new(ca_file.as_bytes()),
            millis(timeout),
        ));
        Self::finish(op).await
    }

    /// Takes the client's connection over after a `101 Switching
    /// Protocols` head was sent (a WebSocket tunnel): what the client
    /// sends next arrives through this connection, and what is written
    /// goes to it. `req` must stay alive until this resolves.
    pub async fn upgrade(req: &mut crate::sdk::Request) -> Result<TcpConn, IoError> {
        let op = Op((host().upgrade_take)(req.as_raw()));
        Self::finish(op).await
    }

    /// Polls a pending connect, TLS handshake or upgrade to its connection.
    async fn finish(op: Op) -> Result<TcpConn, IoError> {
        poll_fn(|cx| {
            let mut conn = std::ptr::null_mut();
            match crate::waker::lend(cx, |w| (host().connect_poll)(op.raw(), w, &mut conn)) {
                abi::io::PENDING => Poll::Pending,
                abi::io::READY => Poll::Ready(Ok(TcpConn { raw: conn })),
                e => Poll::Ready(Err(IoError::from_code(e))),
            }
        })
        .await
    }

    /// The host's handle, for the services that take a connection.
    pub(crate) fn as_raw(&self) -> *mut c_void {
        self.raw
    }

    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        let mut n = 0;
        let rc = crate::waker::lend(cx, |w| {
            (host().conn_read)(self.raw, buf.as_mut_ptr(), buf.len(), w, &mut n)
        });
        ready_len(rc, n)
    }
    /// Writes what the socket takes of `buf`. An empty `buf` is `Ok(0)`
    /// at once (the host would read a zero-length write as a flush).
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut n = 0;
        let rc = crate::waker::lend(cx, |w| {
            (host().conn_write)(self.raw, buf.as_ptr(), buf.len(), w, &mut n)
        });
        ready_len(rc, n)
    }
    /// Reads up to `max` bytes into the spare capacity of `buf`, without
    /// zero-filling it first; `Ok(0)` is end of stream.
    pub fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut bytes::BytesMut,
        max: usize,
    ) -> Poll<Result<usize, IoError>> {
        make_room(buf, max);
        let spare = buf.spare_capacity_mut();
        let len = spare.len().min(max);
        let mut n = 0;
        let ptr = spare.as_mut_ptr() as *mut u8;
        let rc = crate::waker::lend(cx, |w| (host().conn_read)(self.raw, ptr, len, w, &mut n));
        let polled = ready_len(rc, n.min(len));
        if let Poll::Ready(Ok(read)) = polled {
            // SAFETY: the host wrote exactly `read` (<= len) bytes at the
            // start of the spare capacity (conn_read's contract).
            unsafe { buf.set_len(buf.len() + read) };
        }
        polled
    }
    /// See [`TcpConn::poll_read_buf`].
    pub async fn read_buf(
        &mut self,
        buf: &mut bytes::BytesMut,
        max: usize,
    ) -> Result<usize, IoError> {
        poll_fn(|cx| self.poll_read_buf(cx, buf, max)).await
    }
    /// Reads into `buf`; `Ok(0)` is end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), IoError> {
        while !buf.is_empty() {
            let n = poll_fn(|cx| self.poll_write(cx, buf)).await?;
            if n == 0 {
                return Err(IoError::Reset);
            }
            buf = &buf[n..];
        }
        Ok(())
    }
    /// Turns TCP keepalive probes on or off (ProxyPass `keepalive`), so a
    /// silently dead peer is noticed after `idle` without traffic (`None`:
    /// the system's default).
    pub fn set_keepalive(&mut self, enable: bool, idle: Option<Duration>) -> Result<(), IoError> {
        let secs = idle.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1));
        match (host().conn_set_keepalive)(self.raw, enable, secs) {
            abi::io::READY => Ok(()),
            e => Err(IoError::from_code(e)),
        }
    }
    /// Whether the reactor saw this connection readable (data, EOF or an
    /// error) since the last read, without a system call. An idle pooled
    /// connection that is not readable is still open as far as we know.
    pub fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match crate::waker::lend(cx, |w| (host().conn_poll_readable)(self.raw, w)) {
            abi::io::PENDING => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }
    /// Whether this idle connection can carry a new request: asks the
    /// socket itself (one system call), so bytes the backend sent after
    /// its last response are seen even before the reactor reported them.
    /// Call it right before reusing a pooled connection.
    pub fn idle_state(&mut self) -> IdleState {
        match (host().conn_idle_state)(self.raw) {
            abi::idle_state::QUIET => IdleState::Quiet,
            abi::idle_state::UNREAD => IdleState::Unread,
            _ => IdleState::Closed,
        }
    }
    /// Sends what the connection still holds from earlier writes: a TLS
    /// connection may keep ciphertext the socket did not take yet. Plain
    /// TCP holds nothing, so this is READY at once.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), IoError>> {
        let mut n = 0;
        let rc = crate::waker::lend(cx, |w| {
            // A zero-length write is the host's flush (abi: conn_write).
            (host().conn_write)(self.raw, [].as_ptr(), 0, w, &mut n)
        });
        ready_len(rc, n).map(|r| r.map(|_| ()))
    }

    /// Half-closes the sending side (poll form, for two-way copies).
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), IoError>> {
        match crate::waker::lend(cx, |w| (host().conn_shutdown)(self.raw, w)) {
            abi::io::PENDING => Poll::Pending,
            abi::io::READY => Poll::Ready(Ok(())),
            e => Poll::Ready(Err(IoError::from_code(e))),
        }
    }

    /// Half-closes the sending side.
    pub async fn shutdown(&mut self) -> Result<(), IoError> {
        poll_fn(
            |cx| match crate::waker::lend(cx, |w| (host().conn_shutdown)(self.raw, w)) {
                abi::io::PENDING => Poll::Pending,
                abi::io::READY => Poll::Ready(Ok(())),
                e => Poll::Ready(Err(IoError::from_code(e))),
            },
        )
        .await
    }
}

fn ready_len(rc: i32, n: usize) -> Poll<Result<usize, IoError>> {
    match rc {
        abi::io::PENDING => Poll::Pending,
        abi::io::READY => Poll::Ready(Ok(n)),
        e => Poll::Ready(Err(IoError::from_code(e))),
    }
}

impl Drop for TcpConn {
    fn drop(&mut self) {
        (host().conn_drop)(self.raw);
    }
}

struct Op(*mut c_void);
// SAFETY: a pending connect is a host future that is Send.
unsafe impl Send for Op {}
// SAFETY: only used through `&` for polling by one task at a time.
unsafe impl Sync for Op {}
impl Op {
    // A method, so closures capture the Send + Sync `Op`, not its raw field.
    fn raw(&self) -> *mut c_void {
        self.0
    }
}
impl Drop for Op {
    fn drop(&mut self) {
        (host().connect_drop)(self.0);
    }
}

/// A host timer.
pub struct Sleep {
    raw: *mut c_void,
}
// SAFETY: the host timer is a tokio Sleep, which is Send.
unsafe impl Send for Sleep {}
// SAFETY: a shared `&Sleep` exposes no operation; polling needs `Pin<&mut>`.
unsafe impl Sync for Sleep {}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let raw = self.raw;
        match crate::waker::lend(cx, |w| (host().timer_poll)(raw, w)) {
            abi::io::PENDING => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }
}
impl Drop for Sleep {
    fn drop(&mut self) {
        (host().timer_drop)(self.raw);
    }
}

/// Completes after `d`.
pub fn sleep(d: Duration) -> Sleep {
    Sleep {
        raw: (host().timer_new)(millis(d)),
    }
}

/// The deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `fut` for at most `d`. The host timer is made only when `fut` first
/// has to wait, so the deadline counts from then: a future that completes
/// on its first poll (a write the socket takes at once) costs no timer.
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let mut timer: Option<Sleep> = None;
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let timer = timer.get_or_insert_with(|| sleep(d));
        Pin::new(timer).poll(cx).map(|_| Err(Elapsed))
    })
    .await
}

/// Runs `fut` on the host's runtime, detached.
pub fn spawn<F: Future<Output = ()> + Send + 'static>(fut: F) {
    (host().spawn)(crate::future::export(fut, super::shim::report_panic));
}

/// Room for `max` more bytes in `buf`. An emptied buffer whose memory
/// cannot take `max` more as it is becomes a new one: `reserve` would
/// grow the old allocation, and growing it copies every byte that came
/// before, bytes already handed on (a body read after its head copied the
/// head's 8 KiB each time). A buffer that still holds bytes grows by
/// `reserve`, which doubles, so a head read in pieces is not copied over
/// and over.
fn make_room(buf: &mut bytes::BytesMut, max: usize) {
    if buf.is_empty() && !buf.try_reclaim(max) {
        *buf = bytes::BytesMut::with_capacity(max);
    }
    buf.reserve(max);
}

#[cfg(test)]
mod tests {
    use super::make_room;
    use bytes::BytesMut;

    #[test]
    fn an_emptied_buffer_is_reused_when_it_can_be_and_replaced_when_not() {
        // Everything read was handed on and dropped: the same memory.
        let mut buf = BytesMut::with_capacity(8192);
        buf.extend_from_slice(&[7; 100]);
        let start = buf.as_ptr();
        drop(buf.split());
        make_room(&mut buf, 8192);
        assert_eq!(buf.as_ptr(), start);
        assert!(buf.is_empty() && buf.capacity() >= 8192);

        // Handed on, but the memory is too small for the read asked for,
        // or still lent out: an empty buffer with the room asked.
        buf.extend_from_slice(&[7; 8192]);
        drop(buf.split());
        make_room(&mut buf, 65536);
        assert!(buf.is_empty() && buf.capacity() >= 65536);
        buf.extend_from_slice(&[8; 100]);
        let lent = buf.split().freeze();
        make_room(&mut buf, 65536);
        assert!(buf.is_empty() && buf.capacity() >= 65536);
        assert_eq!(&lent[..], &[8; 100][..]);

        // Bytes not yet taken stay, in order.
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(b"head");
        make_room(&mut buf, 65536);
        assert_eq!(&buf[..], b"head");
        assert!(buf.capacity() >= 65536 + 4);
    }
}
