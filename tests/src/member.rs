//! A balancer member that can be killed and brought back on the same port:
//! it answers every request with its own name, counts what it served, and
//! on [`Member::kill`] closes its listener and every open connection at
//! once, as a crashed backend would. [`Member::stall`] makes it a hung
//! backend instead: it still accepts and reads, but never answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Member {
    pub port: u16,
    name: String,
    served: Arc<AtomicUsize>,
    stalled: Arc<AtomicBool>,
    live: Option<Live>,
}

struct Live {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: JoinHandle<()>,
}

impl Member {
    /// Starts a member answering `name` on a kernel-chosen port.
    pub fn start(name: &str) -> Member {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a member");
        let port = listener.local_addr().unwrap().port();
        let mut m = Member {
            port,
            name: name.to_string(),
            served: Arc::default(),
            stalled: Arc::default(),
            live: None,
        };
        m.listen(listener);
        m
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests answered so far, across restarts.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Closes the listener and resets every connection: new connects are
    /// refused, pooled connections die.
    pub fn kill(&mut self) {
        let Some(live) = self.live.take() else { return };
        live.stop.store(true, Ordering::SeqCst);
        let _ = live.acceptor.join();
        for c in live.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// From now on requests are read but never answered (until
    /// [`Member::unstall`]); the connections they came on are then closed.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    pub fn unstall(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// Listens again on the same port (std sets SO_REUSEADDR, so sockets
    /// of the killed incarnation in TIME_WAIT do not block the bind).
    pub fn revive(&mut self) {
        assert!(
            self.live.is_none(),
            "member {} is already running",
            self.name
        );
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("rebind member port {}: {e}", self.port));
        self.listen(listener);
    }

    fn listen(&mut self, listener: TcpListener) {
        // Non-blocking so the acceptor can notice `stop` and drop the listener.
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let (name, served, stalled) =
            (self.name.clone(), self.served.clone(), self.stalled.clone());
        let acceptor = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        if let Ok(c) = s.try_clone() {
                            conns2.lock().unwrap().push(c);
                        }
                        let (name, served, stalled) =
                            (name.clone(), served.clone(), stalled.clone());
                        std::thread::spawn(move || serve(s, &name, &served, &stalled));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        self.live = Some(Live {
            stop,
            conns,
            acceptor,
        });
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keep-alive loop: read a head (and a Content-Length body), answer the name.
fn serve(stream: TcpStream, name: &str, served: &AtomicUsize, stalled: &AtomicBool) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                if n.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if stalled.load(Ordering::SeqCst) {
            // Hung: hold the request unanswered (bounded, so no thread outlives a test for long).
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while stalled.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{name}",
            name.len()
        );
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
        served.fetch_add(1, Ordering::SeqCst);
    }
}
