//! Tunnels (WebSocket connections taken over after a 101) outlive the
//! HTTP drain of a graceful restart or stop: the old process keeps them
//! until they close, or until `limits.tunnel_grace` has passed since it
//! stopped accepting, then exits and they close with it. Each tunnel
//! holds a [`Token`]; the drain waits for all tokens to be dropped.

use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Held by one open tunnel.
pub struct Token(#[allow(dead_code)] mpsc::Sender<()>);

struct Tunnels {
    tx: Mutex<Option<mpsc::Sender<()>>>,
    rx: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

fn tunnels() -> &'static Tunnels {
    static T: std::sync::OnceLock<Tunnels> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let (tx, rx) = mpsc::channel(1);
        Tunnels {
            tx: Mutex::new(Some(tx)),
            rx: tokio::sync::Mutex::new(rx),
        }
    })
}

/// A token for a new tunnel; `None` once the wait for tunnels began.
pub fn token() -> Option<Token> {
    tunnels().tx.lock().ok()?.clone().map(Token)
}

/// Waits until every tunnel closed, or `grace` passed. Returns how the
/// wait ended, for the log.
pub async fn wait(grace: Duration) -> bool {
    if let Ok(mut tx) = tunnels().tx.lock() {
        tx.take();
    }
    let mut rx = tunnels().rx.lock().await;
    tokio::time::timeout(grace, rx.recv()).await.is_ok()
}
