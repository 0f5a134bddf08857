//! The read a new connection gets at accept, before it waits for anything.
//!
//! With `TCP_DEFER_ACCEPT` (`limits.defer_accept`), or on a busy server, a
//! connection's request has arrived by the time it is accepted: reading it
//! at once saves the wait for readability, and a connection that then
//! answers without waiting is never registered with the reactor at all
//! (`ClientTcp`). Without the option, on a server with time to spare, the
//! accept comes first, woken by the client's handshake, and the request a
//! few microseconds later: the read finds nothing, and is a system call
//! wasted on every connection.
//!
//! So each worker thread remembers what its recent first reads found, and
//! tries one only while some of them found a request. Every
//! `PROBE_EVERY`th connection tries anyway, to notice when load returns.

use crate::http::client_tcp::ClientTcp;
use bytes::BytesMut;
use std::cell::Cell;

/// The first read asks for this much (nginx's client_header_buffer_size).
pub const HEAD_READ: usize = 1024;

const PROBE_EVERY: u8 = 16;

thread_local! {
    /// One bit per recent first read, newest lowest: 1 if it found data.
    static FOUND: Cell<u8> = const { Cell::new(u8::MAX) };
    /// Connections since the last first read.
    static SKIPPED: Cell<u8> = const { Cell::new(0) };
}

/// Reads into `buf` what the client has sent so far, when recent
/// connections suggest it will be there. Nothing, or an error: the wait
/// that follows finds out.
pub fn read_arrived(tcp: &ClientTcp, buf: &mut BytesMut) {
    let skipped = SKIPPED.get();
    if FOUND.get() == 0 && skipped + 1 < PROBE_EVERY {
        SKIPPED.set(skipped + 1);
        return;
    }
    SKIPPED.set(0);
    buf.resize(HEAD_READ, 0);
    let read = tcp.try_read(buf).unwrap_or(0);
    buf.truncate(read);
    FOUND.set(FOUND.get() << 1 | u8::from(read > 0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    /// A connection as the accept loop has it, its client's request
    /// already arrived if `request` is set.
    fn accepted(listener: &TcpListener, request: bool) -> (TcpStream, ClientTcp) {
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        if request {
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            while server.peek(&mut [0u8; 1]).unwrap() == 0 {}
        }
        server.set_nonblocking(true).unwrap();
        (client, ClientTcp::fresh(server))
    }

    fn first_read_finds_data(listener: &TcpListener) -> bool {
        let (_client, server) = accepted(listener, true);
        let mut buf = BytesMut::new();
        read_arrived(&server, &mut buf);
        !buf.is_empty()
    }

    #[test]
    fn after_eight_empty_first_reads_only_every_sixteenth_connection_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        for _ in 0..8 {
            let (_client, server) = accepted(&listener, false);
            let mut buf = BytesMut::new();
            read_arrived(&server, &mut buf);
            assert!(buf.is_empty());
        }
        let found: Vec<bool> = (0..PROBE_EVERY)
            .map(|_| first_read_finds_data(&listener))
            .collect();
        let last = usize::from(PROBE_EVERY) - 1;
        assert!(found[..last].iter().all(|f| !f), "{found:?}");
        assert!(found[last], "the probe reads what has arrived");
        // The probe found a request: every connection reads again.
        assert!((0..4).all(|_| first_read_finds_data(&listener)));
    }
}
