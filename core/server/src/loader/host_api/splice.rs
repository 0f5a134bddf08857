//! ABI 1.7: bodies spliced between the client and a module's connection
//! in the kernel (`http::splice`), and when the core allows it. Each
//! service waits on the side the bytes come from; the side they go to
//! holds what it did not take yet (see `http::splice`).

use super::*;
use crate::http::client_io::ClientIo;
use crate::http::splice::{poll_op, Pipe};
use crate::metrics;
use std::os::fd::AsFd;
use tokio::io::Interest;

/// Asked when the response head goes out: a Content-Length body to a
/// plain TCP client, through no output filter, may be spliced. (TLS must
/// encrypt the bytes, HTTP/2 frame them, a filter change them.)
pub(super) fn may_splice_response(r: &RequestCtx) -> bool {
    let plain = matches!(&r.wire, Some(w) if matches!(w.io, ClientIo::Tcp(_)));
    let status = r.status.as_u16();
    let method = r.head.method();
    let has_body = !crate::http::response_head::status_has_no_body(status)
        && method != b"HEAD"
        && method != b"CONNECT";
    let length = r.response_headers.get(b"content-length");
    let length = length.and_then(|v| modproxy_http1::parse_decimal(v.trim_ascii()));
    plain && has_body && r.filters.is_empty() && length.is_some_and(|n| n > 0)
}

fn moved(n: *mut usize, count: usize) -> i32 {
    // SAFETY: `n` is writable, owned by the caller (the services' contract).
    unsafe { n.write(count) };
    io::READY
}

fn no_pipe(e: std::io::Error) -> i32 {
    log::write(
        Level::Warn,
        "core",
        &format!("no pipe for a spliced body ({e}): it is copied instead; raise the open-files limit (ulimit -n)"),
    );
    io::ERR_UNSUPPORTED
}

host_fn! {
    pub(super) fn body_splice_from(
        raw: *mut c_void,
        conn: *mut c_void,
        max: usize,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32 = io::ERR_OTHER;
    {
        let r = req(raw);
        if r.pending_chunk.is_some() || r.splice_held() > 0 || max == 0 {
            return io::ERR_OTHER; // body_poll_ready first
        }
        let Some(spliced) = r.splice_response.as_mut() else {
            return io::ERR_UNSUPPORTED;
        };
        let HostConn::Tcp(socket, None) = Pin::get_mut(stream(conn)) else {
            return io::ERR_UNSUPPORTED;
        };
        let pipe = match spliced.pipe.as_mut() {
            Some(pipe) => pipe,
            None => match Pipe::take() {
                Ok(pipe) => spliced.pipe.insert(pipe),
                Err(e) => return no_pipe(e),
            },
        };
        let polled = with_cx(waker, |cx| {
            poll_op(socket, cx, Interest::READABLE, |fd| pipe.fill(fd, max))
        });
        match polled {
            Poll::Pending => io::PENDING,
            Poll::Ready(Err(e)) => io_code(&e),
            Poll::Ready(Ok(count)) => {
                spliced.uncounted += count as u64;
                metrics::spliced(metrics::Spliced::Response, count);
                moved(n, count)
            }
        }
    }
}

host_fn! {
    pub(super) fn body_splice_to(
        raw: *mut c_void,
        conn: *mut c_void,
        max: usize,
        keep: usize,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32 = io::ERR_OTHER;
    {
        let r = req(raw);
        if max == 0 {
            return io::ERR_OTHER; // a zero-length splice would read as the client's end
        }
        let conn = Pin::get_mut(stream(conn));
        if !r.input.chain.is_empty() || !matches!(conn, HostConn::Tcp(..)) {
            return io::ERR_UNSUPPORTED;
        }
        let Some(wire) = r.wire.as_mut() else {
            return io::ERR_UNSUPPORTED; // HTTP/2
        };
        if r.body.is_done() {
            return moved(n, 0);
        }
        let (ClientIo::Tcp(client), Some(left)) = (&mut wire.io, r.body.splice_room(wire.buf.len()))
        else {
            return io::ERR_UNSUPPORTED;
        };
        // Only an empty pipe is filled: what the connection holds goes first.
        let (socket, held) = match released(conn, waker) {
            Ok(parts) => parts,
            Err(rc) => return rc,
        };
        let mut want = usize::try_from(left).map_or(max, |l| l.min(max));
        if r.body_limit != 0 {
            // One byte past the limit is enough to refuse the body.
            let room = r.body_limit.saturating_sub(r.body_read).saturating_add(1);
            want = usize::try_from(room).map_or(want, |room| room.min(want));
        }
        let mut pipe = match Pipe::take() {
            Ok(pipe) => pipe,
            Err(e) => return no_pipe(e),
        };
        let polled = with_cx(waker, |cx| {
            client.poll_splice(cx, Interest::READABLE, |fd| pipe.fill(fd, want))
        });
        let count = match polled {
            Poll::Pending => return body_wait(r, waker),
            Poll::Ready(Ok(count)) if count > 0 => count,
            Poll::Ready(_) => {
                // Closed or broken before the body ended: as body_poll_read.
                r.close = true;
                return io::ERR_ABORTED;
            }
        };
        r.body_timer = None;
        r.body.spliced(count as u64);
        metrics::spliced(metrics::Spliced::Request, count);
        r.body_read += count as u64;
        if r.body_limit != 0 && r.body_read > r.body_limit {
            r.close = true;
            return io::ERR_TOO_LARGE;
        }
        keep_for_replay(r, &pipe, count, keep);
        hand_over(socket, held, pipe);
        moved(n, count)
    }
}

/// Keeps a copy of what a splice moved (by reference) for a replay, while
/// all that is kept fits in `keep`; drops it all otherwise. A copy that
/// fails leaves less kept than the module counts on, and the replay then
/// says so (`body_splice_replay` answers how much it sent).
fn keep_for_replay(r: &mut RequestCtx, moved: &Pipe, count: usize, keep: usize) {
    let kept = r.body_replay.as_ref().map_or(0, Pipe::held);
    if keep == 0 || kept + count > keep {
        r.body_replay = None;
        return;
    }
    let replay = match r.body_replay.as_mut() {
        Some(replay) => replay,
        None => match Pipe::take() {
            Ok(pipe) => r.body_replay.insert(pipe),
            Err(_) => return,
        },
    };
    if !matches!(replay.tee_from(moved, count), Ok(teed) if teed == count) {
        r.body_replay = None;
    }
}

/// The socket of a plain TCP connection and its pipe slot, once what it
/// held went out; `Err` is the code to answer (PENDING while it cannot).
fn released(
    conn: &mut HostConn,
    waker: *const AbiWaker,
) -> Result<(&tokio::net::TcpStream, &mut Option<Pipe>), i32> {
    match with_cx(waker, |cx| conn.poll_release(cx)) {
        Poll::Pending => return Err(io::PENDING),
        Poll::Ready(Err(e)) => return Err(io_code(&e)),
        Poll::Ready(Ok(())) => {}
    }
    match conn {
        HostConn::Tcp(socket, held) => Ok((socket, held)),
        _ => Err(io::ERR_UNSUPPORTED),
    }
}

/// As much of `pipe` as `socket` takes now. What it does not take stays
/// in the pipe, which the connection then holds (`held`); so does an
/// error, for the connection's next write or flush to report: the
/// module's side, under its own deadline.
fn hand_over(socket: &tokio::net::TcpStream, held: &mut Option<Pipe>, mut pipe: Pipe) {
    while pipe.held() > 0 {
        match socket.try_io(Interest::WRITABLE, || pipe.drain(socket.as_fd())) {
            Ok(sent) if sent > 0 => {}
            _ => break,
        }
    }
    if pipe.held() > 0 {
        *held = Some(pipe);
    }
}

host_fn! {
    pub(super) fn body_splice_replay(
        raw: *mut c_void,
        conn: *mut c_void,
        waker: *const AbiWaker,
        n: *mut usize,
    ) -> i32 = io::ERR_OTHER;
    {
        let r = req(raw);
        let Some(replay) = r.body_replay.as_ref() else {
            return moved(n, 0);
        };
        let (socket, held) = match released(Pin::get_mut(stream(conn)), waker) {
            Ok(parts) => parts,
            Err(rc) => return rc,
        };
        let mut copy = match Pipe::take() {
            Ok(pipe) => pipe,
            Err(e) => return no_pipe(e),
        };
        let kept = replay.held();
        if !matches!(copy.tee_from(replay, kept), Ok(teed) if teed == kept) {
            return moved(n, 0); // less than was kept: nothing to replay
        }
        hand_over(socket, held, copy);
        moved(n, kept)
    }
}
