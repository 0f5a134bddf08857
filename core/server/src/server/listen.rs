//! The listening sockets: taken over from the previous server on a
//! graceful restart (LISTEN_FDS, as systemd socket activation), or bound
//! fresh. Inherited sockets never stop accepting, so no connection is
//! refused while the two processes swap.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// Environment variable naming the address of each inherited socket, in fd order.
pub const LISTEN_ADDRS_ENV: &str = "MODPROXY_LISTEN_ADDRS";

/// Sockets for every address in `wanted`: inherited where possible, and
/// set to accept a connection only once its request starts arriving (or
/// `defer_accept` has passed; zero accepts at once).
pub fn open(
    wanted: &[SocketAddr],
    defer_accept: Duration,
) -> Result<Vec<(SocketAddr, TcpListener)>, String> {
    let mut inherited = take_inherited();
    let mut out = Vec::new();
    for addr in wanted {
        let listener = match inherited.remove(addr) {
            Some(l) => l,
            None => bind(*addr)?,
        };
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot make the socket for {addr} non-blocking: {e}"))?;
        // Set even to zero: an inherited socket keeps the previous
        // server's setting otherwise. As with Apache and nginx, failing
        // costs only the optimisation, not the listener.
        if let Err(e) = super::defer_accept::set(&listener, defer_accept) {
            if !defer_accept.is_zero() {
                crate::log::write(
                    crate::log::Level::Warn,
                    "core",
                    &format!(
                        "cannot set TCP_DEFER_ACCEPT on the socket for {addr}: {e}; \
                         connections are accepted as they open \
                         (limits.defer_accept = 0 silences this)"
                    ),
                );
            }
        }
        out.push((*addr, listener));
    }
    Ok(out)
}

/// Apache's ListenBacklog default: std's 128 makes a burst of new
/// connections wait for SYN retransmits.
const BACKLOG: i32 = 511;

fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let socket = || -> std::io::Result<TcpListener> {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(BACKLOG)?;
        Ok(s.into())
    };
    socket().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            "another process (or a running modproxy: use `modproxy restart`) holds it"
        } else {
            "check the address in `listen`"
        };
        format!("cannot listen on {addr}: {e}; {hint}")
    })
}

fn take_inherited() -> HashMap<SocketAddr, TcpListener> {
    let Ok(addrs) = std::env::var(LISTEN_ADDRS_ENV) else {
        return HashMap::new();
    };
    std::env::remove_var(LISTEN_ADDRS_ENV);
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = HashMap::new();
    for (i, addr) in addrs.split(',').enumerate() {
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            continue;
        };
        if let Ok(Some(l)) = fds.take_tcp_listener(i) {
            out.insert(addr, l);
        }
    }
    out
}
