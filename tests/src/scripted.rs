//! A raw-TCP backend that follows a script per connection, for the
//! misbehaving servers a real one cannot play: a slow or malformed head,
//! a death mid-body, an idle keep-alive connection closed under the proxy,
//! a body sent in timed pieces.

use crate::backend::{read_request, Seen};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One accepted connection as a script sees it.
pub struct Peer {
    /// 0 for the first connection the backend accepted, then 1, 2, ...
    pub index: usize,
    reader: BufReader<TcpStream>,
    out: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Peer {
    /// The next request (recorded in [`Scripted::seen`]); `None` when the
    /// proxy closed the connection (or broke it).
    pub fn request(&mut self) -> Option<Seen> {
        let req = read_request(&mut self.reader, &mut self.out).ok()??;
        self.seen.lock().unwrap().push(req.clone());
        Some(req)
    }

    /// The next request head only (recorded too), leaving its body unread:
    /// for scripts that read the body piece by piece.
    pub fn head(&mut self) -> Option<Seen> {
        use std::io::BufRead;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.trim_end().is_empty() {
                break;
            }
            lines.push(line);
        }
        let mut request_line = lines.first()?.trim_end().splitn(3, ' ');
        let seen = Seen {
            method: request_line.next()?.to_string(),
            target: request_line.next()?.to_string(),
            headers: lines[1..]
                .iter()
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .collect(),
            body: Vec::new(),
        };
        self.seen.lock().unwrap().push(seen.clone());
        Some(seen)
    }

    /// Exactly `n` raw bytes from the connection (`None` if it ended first).
    pub fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).ok()?;
        Some(buf)
    }

    /// Writes raw bytes; errors (the proxy went away) are ignored.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes);
        let _ = self.out.flush();
    }

    /// A complete `HTTP/1.1 status` response with Content-Length.
    pub fn respond(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.send(head.as_bytes());
        self.send(body);
    }

    /// Waits until the proxy closes its side (true) or `secs` pass (false).
    pub fn wait_closed(&mut self, secs: u64) -> bool {
        use std::io::Read;
        let _ = self
            .out
            .set_read_timeout(Some(std::time::Duration::from_secs(secs)));
        let mut buf = [0u8; 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        }
    }

    /// The socket itself, e.g. to shut it down or set options.
    pub fn stream(&self) -> &TcpStream {
        &self.out
    }
}

pub struct Scripted {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// Runs `script` on its own thread for every accepted connection; the
    /// connection closes when the script returns.
    pub fn start(script: impl Fn(Peer) + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a backend");
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let (count, seen2) = (connections.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let index = count.fetch_add(1, Ordering::SeqCst);
                let (script, seen) = (script.clone(), seen2.clone());
                std::thread::spawn(move || {
                    let Ok(reader) = stream.try_clone() else {
                        return;
                    };
                    script(Peer {
                        index,
                        reader: BufReader::new(reader),
                        out: stream,
                        seen,
                    });
                });
            }
        });
        Scripted {
            port,
            connections,
            seen,
        }
    }

    /// Serves one request per connection, then plays the keep-alive
    /// race: it reads the next request and closes without answering, as
    /// a backend whose keep-alive timeout fired just as the request
    /// arrived. Each answer says which connection gave it (`conn N`).
    pub fn racy() -> Scripted {
        Scripted::start(|mut peer| {
            if peer.request().is_some() {
                peer.respond(200, &[], format!("conn {}", peer.index).as_bytes());
            }
            peer.request();
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request a script read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Asserts that `method` reached the backend twice (lost once in the
    /// race, then answered), both times with the whole `body`.
    pub fn assert_sent_twice_whole(&self, method: &str, body: &[u8]) {
        let sent: Vec<_> = self
            .seen()
            .into_iter()
            .filter(|s| s.method == method)
            .collect();
        assert_eq!(sent.len(), 2, "lost once, then answered");
        assert!(
            sent.iter().all(|s| s.body == body),
            "both times the whole body"
        );
    }
}
