//! Moving a body between two sockets inside the kernel (splice(2) through
//! a pipe), so its bytes are never copied into user space and out again:
//! HAProxy's `option splice-response`, for the core's plain TCP sockets
//! (ABI 1.7, `body_splice_from` and `body_splice_to`).
//!
//! A pipe sits between the two sockets. What the receiving socket did not
//! take yet stays in the pipe and belongs to that side until it drains:
//! the client's (the response, drained by `server::respond`) or the
//! backend connection's (the request body, drained by its next write or
//! flush). Filling happens only into an empty pipe: a socket-to-pipe
//! splice answers `EAGAIN` both when the socket has nothing and when the
//! pipe has no free slot, and only the first may clear the reactor's
//! readiness.

use nix::fcntl::{splice, tee, SpliceFFlags};
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::task::{ready, Context, Poll};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Empty pipes kept per thread for the next body: making one costs a
/// `pipe2` and closing it two `close`s.
const POOL_SIZE: usize = 32;
const PIPE_SIZE: i32 = 256 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Ends>> = const { RefCell::new(Vec::new()) };
}

struct Ends {
    read: OwnedFd,
    write: OwnedFd,
}

/// A pipe and how many bytes it holds. Dropped empty, it goes back to
/// its thread's pool; dropped holding bytes (a body cut short), it closes.
pub struct Pipe {
    ends: Option<Ends>,
    held: usize,
}

impl Pipe {
    /// An empty pipe, from the pool when it has one.
    pub fn take() -> io::Result<Pipe> {
        let ends = match POOL.with(|pool| pool.borrow_mut().pop()) {
            Some(ends) => ends,
            None => {
                use nix::fcntl::{fcntl, FcntlArg, OFlag};
                let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
                // Larger than the default 64 KiB: fewer splices per body.
                // Refused above /proc/sys/fs/pipe-max-size: the default
                // size works too.
                let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
                Ends { read, write }
            }
        };
        Ok(Pipe {
            ends: Some(ends),
            held: 0,
        })
    }

    /// Bytes in the pipe that the receiving socket has not taken yet.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Moves up to `max` bytes from the socket `from` into the pipe, which
    /// must be empty; `Ok(0)` is the peer's end of stream.
    pub fn fill(&mut self, from: BorrowedFd<'_>, max: usize) -> io::Result<usize> {
        debug_assert_eq!(self.held, 0, "a pipe is filled only when empty");
        let ends = self.ends()?;
        let n = splice(from, None, &ends.write, None, max, flags())?;
        self.held += n;
        Ok(n)
    }

    /// Moves what the pipe holds into the socket `to`, as much as it takes.
    pub fn drain(&mut self, to: BorrowedFd<'_>) -> io::Result<usize> {
        let ends = self.ends()?;
        let n = splice(&ends.read, None, to, None, self.held, flags())?;
        self.held -= n;
        Ok(n)
    }

    /// Duplicates the first `len` bytes `from` holds into this pipe, by
    /// reference (tee(2)): `from` keeps them. Fewer when this pipe lacks
    /// the room.
    pub fn tee_from(&mut self, from: &Pipe, len: usize) -> io::Result<usize> {
        let n = tee(&from.ends()?.read, &self.ends()?.write, len, flags())?;
        self.held += n;
        Ok(n)
    }

    fn ends(&self) -> io::Result<&Ends> {
        self.ends
            .as_ref()
            .ok_or_else(|| io::Error::other("the pipe was closed"))
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.held != 0 {
            return; // closed with what it holds: nobody will read it
        }
        if let Some(ends) = self.ends.take() {
            // try_with: a pipe dropped while its thread ends just closes.
            let _ = POOL.try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < POOL_SIZE {
                    pool.push(ends);
                }
            });
        }
    }
}

/// Runs `op` on a reactor-registered socket once it is ready for
/// `interest`, until it does not answer `WouldBlock` (which clears the
/// readiness, so the next wait is a real one).
pub fn poll_op<T>(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    interest: Interest,
    mut op: impl FnMut(BorrowedFd<'_>) -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        if interest.is_readable() {
            ready!(stream.poll_read_ready(cx))?;
        } else {
            ready!(stream.poll_write_ready(cx))?;
        }
        match stream.try_io(interest, || op(stream.as_fd())) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            done => return Poll::Ready(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        (a, b)
    }

    #[test]
    fn bytes_cross_from_one_socket_to_another_and_the_pipe_is_reused() {
        let (mut src_peer, src) = pair();
        let (dst, mut dst_peer) = pair();
        src_peer.write_all(b"spliced body").unwrap();
        let mut pipe = Pipe::take().unwrap();
        let mut got = 0;
        while got < 12 {
            got += pipe.fill(src.as_fd(), 12 - got).unwrap();
            while pipe.held() > 0 {
                pipe.drain(dst.as_fd()).unwrap();
            }
        }
        let mut buf = [0u8; 12];
        dst_peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"spliced body");
        drop(pipe);
        assert_eq!(
            POOL.with(|p| p.borrow().len()),
            1,
            "an empty pipe is pooled"
        );
        let again = Pipe::take().unwrap();
        assert_eq!(POOL.with(|p| p.borrow().len()), 0);
        drop(again);
    }

    #[test]
    fn a_tee_keeps_a_copy_that_can_be_sent_again() {
        let (mut src_peer, src) = pair();
        let (dst, mut dst_peer) = pair();
        src_peer.write_all(b"kept").unwrap();
        let mut pipe = Pipe::take().unwrap();
        let mut kept = Pipe::take().unwrap();
        assert_eq!(pipe.fill(src.as_fd(), 4).unwrap(), 4);
        assert_eq!(kept.tee_from(&pipe, 4).unwrap(), 4);
        pipe.drain(dst.as_fd()).unwrap();
        let mut again = Pipe::take().unwrap();
        assert_eq!(again.tee_from(&kept, 4).unwrap(), 4);
        again.drain(dst.as_fd()).unwrap();
        assert_eq!(kept.held(), 4, "the kept copy stays");
        let mut buf = [0u8; 8];
        dst_peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"keptkept");
    }

    #[test]
    fn an_empty_socket_would_block_and_a_closed_one_reads_as_the_end() {
        let (src_peer, src) = pair();
        src.set_nonblocking(true).unwrap();
        let mut pipe = Pipe::take().unwrap();
        let err = pipe.fill(src.as_fd(), 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(src_peer);
        assert_eq!(pipe.fill(src.as_fd(), 100).unwrap(), 0);
    }
}
