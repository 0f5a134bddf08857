//! WebSocket for the end-to-end tests (tungstenite, blocking): an echo
//! backend on a loopback port, one thread per connection, and a client.
#![allow(dead_code)] // Each test file uses part of it.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::{Message, WebSocket};

pub type Client = WebSocket<TcpStream>;
/// (path, X-Forwarded-Proto) of each handshake the backend saw.
pub type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;
/// Every field of each handshake request the backend saw, in order.
pub type Heads = Arc<Mutex<Vec<Vec<(String, String)>>>>;
/// Fields the backend sets on its 101 (replacing any of that name; names
/// in lower case).
pub type Extra = &'static [(&'static str, &'static str)];

/// Echoes every text and binary message; answers pings (tungstenite
/// does); records the path and X-Forwarded-Proto of each handshake, and
/// its fields.
pub struct EchoBackend {
    pub port: u16,
    pub seen: Seen,
    pub heads: Heads,
}

impl EchoBackend {
    pub fn start() -> EchoBackend {
        EchoBackend::answering_with(&[])
    }

    /// An echo backend whose 101 carries `extra` too.
    pub fn answering_with(extra: Extra) -> EchoBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen, heads) = (Seen::default(), Heads::default());
        let record = (seen.clone(), heads.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let record = record.clone();
                // Small stacks: the concurrency test runs a thousand of these.
                let _ = std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || echo(tcp, record, extra));
            }
        });
        EchoBackend { port, seen, heads }
    }
}

fn echo(tcp: TcpStream, (record, heads): (Seen, Heads), extra: Extra) {
    #[allow(clippy::result_large_err)] // tungstenite's callback signature.
    let callback = |req: &Request, mut resp: Response| {
        let proto = req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        record.lock().unwrap().push((req.uri().to_string(), proto));
        let fields = req.headers().iter().map(|(n, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_owned(), v)
        });
        heads.lock().unwrap().push(fields.collect());
        for (name, value) in extra {
            resp.headers_mut()
                .insert(*name, tungstenite::http::HeaderValue::from_static(value));
        }
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(tcp, callback) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(m) if m.is_text() || m.is_binary() => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// A WebSocket client through 127.0.0.1:`port` to `path`. A handshake
/// whose read was interrupted by a signal (EINTR, seen once in a full
/// parallel run, on the client's side) is tried again on a new connection.
pub fn connect(port: u16, path: &str) -> Result<Client, tungstenite::Error> {
    let mut tries = 0;
    loop {
        match connect_once(port, path) {
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::Interrupted && tries < 3 =>
            {
                tries += 1
            }
            other => return other,
        }
    }
}

fn connect_once(port: u16, path: &str) -> Result<Client, tungstenite::Error> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(tungstenite::Error::Io)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let url = format!("ws://127.0.0.1:{port}{path}");
    tungstenite::client(url, tcp)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => {
                tungstenite::Error::Io(std::io::ErrorKind::WouldBlock.into())
            }
        })
}

/// Sends `m` and reads the next data message back.
pub fn round_trip(ws: &mut Client, m: Message) -> Message {
    ws.send(m).unwrap();
    loop {
        match ws.read().unwrap() {
            m @ (Message::Text(_) | Message::Binary(_)) => return m,
            _ => continue,
        }
    }
}
