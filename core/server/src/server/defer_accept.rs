//! TCP_DEFER_ACCEPT on a listening socket: the kernel completes the
//! handshake but hands the connection to `accept` only once the client's
//! first bytes have arrived, or the timeout has passed.
//!
//! A connection accepted that way has its request waiting: the first read
//! finds it, and a one-request connection is answered and closed without
//! ever waiting in the reactor. Without it, a server with time to spare is
//! woken twice per connection (handshake, then request) and registers the
//! socket with epoll in between. Apache sets it by default on Linux
//! (`AcceptFilter http data`, 30 s); nginx on `listen … deferred`, with 1 s
//! so that its own header timeout still governs silent clients. Ours
//! defaults to nginx's second for the same reason.
//!
//! Neither std (unstable), socket2 nor nix has this option, so it is
//! declared with nix's `setsockopt_impl!`/`getsockopt_impl!`: the FFI call
//! stays inside nix's reviewed code, none is written here.

use std::net::TcpListener;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
struct DeferAccept;

nix::setsockopt_impl!(
    DeferAccept,
    libc::IPPROTO_TCP,
    libc::TCP_DEFER_ACCEPT,
    usize,
    nix::sys::socket::sockopt::SetUsize
);

#[cfg(test)]
nix::getsockopt_impl!(
    DeferAccept,
    libc::IPPROTO_TCP,
    libc::TCP_DEFER_ACCEPT,
    usize,
    nix::sys::socket::sockopt::GetUsize
);

/// Sets the timeout, in whole seconds; zero turns the option off.
pub fn set(listener: &TcpListener, timeout: Duration) -> std::io::Result<()> {
    let seconds = timeout.as_secs().min(i32::MAX as u64) as usize;
    nix::sys::socket::setsockopt(listener, DeferAccept, &seconds).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn deferred(listener: &TcpListener) -> usize {
        nix::sys::socket::getsockopt(listener, DeferAccept).unwrap()
    }

    #[test]
    fn the_option_is_set_and_cleared_on_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        set(&listener, Duration::from_secs(1)).unwrap();
        // The kernel stores the timeout as a count of SYN-ACK
        // retransmits and converts it back: 1 s reads as 1 s.
        assert_eq!(deferred(&listener), 1);
        set(&listener, Duration::ZERO).unwrap();
        assert_eq!(deferred(&listener), 0);
    }

    #[test]
    fn a_connection_is_accepted_with_its_request_already_there() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        set(&listener, Duration::from_secs(30)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let _silent = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        // Only the client that sent something is handed over.
        let (mut accepted, _) = loop {
            match listener.accept() {
                Ok(a) => break a,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
        accepted.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            accepted.read(&mut buf).unwrap(),
            18,
            "the request was waiting"
        );
        assert_eq!(
            listener.accept().map(|_| ()).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "the silent connection is not accepted yet"
        );
    }
}
