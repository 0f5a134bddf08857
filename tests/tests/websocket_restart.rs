//! Tunnels across a graceful restart: the old process keeps an open
//! WebSocket tunnel working until it closes (then exits), or until
//! `limits.tunnel_grace` is over.

#[path = "support/ws.rs"]
mod ws;

use modproxy_tests::{free_port, Server, ServerRoot};
use std::time::{Duration, Instant};
use tungstenite::Message;
use ws::EchoBackend;

fn start(top: &str, echo: &EchoBackend) -> (ServerRoot, Server, u16) {
    let root = ServerRoot::new();
    root.enable(&["proxy_http", "proxy_wstunnel"]);
    let port = free_port();
    root.config(&format!(
        "{top}\n[[vhost]]\nlisten = \"127.0.0.1:{port}\"\n[vhost.proxy]\npass = [{{ path = \"/\", url = \"ws://127.0.0.1:{}/\" }}]\n",
        echo.port
    ));
    let server = Server::start(&root, port);
    (root, server, port)
}

fn exits_within(server: &mut Server, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if !server.is_running() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_tunnel_outlives_a_restart_until_it_closes() {
    let echo = EchoBackend::start();
    let (root, mut old, port) = start("", &echo);
    let mut tunnel = ws::connect(port, "/before").unwrap();
    assert_eq!(
        ws::round_trip(&mut tunnel, Message::text("one")),
        Message::text("one")
    );

    root.restart();
    // The old process still carries the tunnel...
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ws::round_trip(&mut tunnel, Message::text("two")),
        Message::text("two")
    );
    assert!(old.is_running(), "the old server waits for its tunnel");
    // ...while the new one takes new tunnels.
    let mut fresh = ws::connect(port, "/after").unwrap();
    assert_eq!(
        ws::round_trip(&mut fresh, Message::text("new")),
        Message::text("new")
    );

    tunnel.close(None).unwrap();
    while tunnel.read().is_ok() {}
    // The backend closed its side; the client closes its own (half-close
    // keeps a tunnel open as long as either side still sends).
    drop(tunnel);
    assert!(
        exits_within(&mut old, Duration::from_secs(10)),
        "the old server exits once its last tunnel closed\n{}",
        root.log()
    );
    // The new server is untouched.
    assert_eq!(
        ws::round_trip(&mut fresh, Message::text("still")),
        Message::text("still")
    );
}

#[test]
fn tunnel_grace_ends_the_wait_for_open_tunnels() {
    let echo = EchoBackend::start();
    let (root, mut old, port) = start("[limits]\ntunnel_grace = 1", &echo);
    let mut tunnel = ws::connect(port, "/").unwrap();
    assert_eq!(
        ws::round_trip(&mut tunnel, Message::text("hi")),
        Message::text("hi")
    );
    root.restart();
    assert!(
        exits_within(&mut old, Duration::from_secs(10)),
        "the old server gives up on the tunnel after tunnel_grace\n{}",
        root.log()
    );
    assert!(
        root.log().contains("tunnel_grace is over"),
        "{}",
        root.log()
    );
    // The tunnel went with it.
    let mut ended = false;
    for _ in 0..10 {
        if tunnel.send(Message::text("anyone?")).is_err() || tunnel.read().is_err() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the tunnel is closed once the old server exits");
}
