//! The HTTP/2 connections of each backend and their streams. A request
//! takes a stream slot on the least busy open connection below
//! `h2_max_streams`; with none free it opens another, up to
//! `h2_connections`, or waits for a stream to end. Each connection's
//! h2 `Connection` future (which reads frames, answers pings and flow
//! control) runs as a task of its own on the host's runtime (`spawn`).
//!
//! A connection is retired, never given new streams again, when its task
//! ends (the backend closed it, or it broke) or when a stream on it met
//! the backend's GOAWAY; streams already on it finish or fail alone.

use crate::config::Limits;
use crate::io::HostIo;
use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use modproxy_api::hash::ConfigMap;
use modproxy_api::sdk::net::Sleep;
use modproxy_api::{log, Level};
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// Timers kept per connection: about the streams at once on it.
const KEPT_TIMERS: usize = 64;

/// One connection to a backend.
pub struct Conn {
    pub send: SendRequest<Bytes>,
    /// No new streams: its task ended, or the backend said GOAWAY.
    retired: AtomicBool,
    /// Host timers of earlier streams, kept for the next ones: making and
    /// dropping one per request costs more than the wait (see stream.rs,
    /// `Idle`, and proxy_http's deadline.rs).
    timers: Mutex<Vec<(Sleep, Instant)>>,
}

impl Conn {
    /// A timer an earlier stream left, with when it fires.
    pub fn take_timer(&self) -> Option<(Sleep, Instant)> {
        self.timers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Keeps `timer` for a later stream (a few at most).
    pub fn keep_timer(&self, timer: (Sleep, Instant)) {
        let mut timers = self.timers.lock().unwrap_or_else(PoisonError::into_inner);
        if timers.len() < KEPT_TIMERS {
            timers.push(timer);
        }
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

struct Entry {
    conn: Arc<Conn>,
    active: u32,
    /// Since when no stream used it, for the worker's `ttl`.
    idle_since: Option<Instant>,
}

#[derive(Default)]
struct State {
    conns: Vec<Entry>,
    /// Connects under way, counted against `h2_connections`.
    connecting: u32,
    /// Requests waiting for a stream slot.
    waiters: Vec<Waker>,
}

/// One backend's connections.
#[derive(Default)]
pub struct Worker {
    state: Mutex<State>,
}

impl Worker {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut self.lock().waiters);
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// A stream slot on a connection: ends (and lets a waiting request in)
/// when dropped.
pub struct Slot {
    worker: Arc<Worker>,
    pub conn: Arc<Conn>,
    /// A connection of its own (`disable_reuse`): not in the list.
    private: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.private {
            return;
        }
        {
            let mut st = self.worker.lock();
            if let Some(e) = st
                .conns
                .iter_mut()
                .find(|e| Arc::ptr_eq(&e.conn, &self.conn))
            {
                e.active = e.active.saturating_sub(1);
                if e.active == 0 {
                    e.idle_since = Some(Instant::now());
                }
            }
        }
        self.worker.wake_all();
    }
}

/// Why no slot was had.
pub enum NoSlot {
    /// Connecting failed; the text is for the log.
    Connect(String),
    /// Every connection stayed full for the whole wait.
    Timeout,
}

/// A new connection's two halves, from [`h2::client::handshake`].
pub type Connected = (SendRequest<Bytes>, Connection<HostIo, Bytes>);

/// What [`Pool::slot`] needs to know about the worker.
pub struct Want {
    pub limits: Limits,
    /// Idle connections older than this are closed (`ttl`).
    pub ttl: Option<Duration>,
    /// `disable_reuse`: a connection for this request alone.
    pub private: bool,
    /// How long to wait for a slot when every connection is full.
    pub wait: Duration,
}

#[derive(Default)]
pub struct Pool {
    workers: Mutex<ConfigMap<String, Arc<Worker>>>,
    next_id: AtomicU64,
}

enum Pick {
    Got(Arc<Conn>),
    Connect,
}

impl Pool {
    fn worker(&self, key: &str) -> Arc<Worker> {
        let mut map = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(key) {
            Some(w) => w.clone(),
            None => map.entry(key.to_owned()).or_default().clone(),
        }
    }

    /// A stream slot on one of `key`'s connections, connecting with
    /// `connect` when a new one is needed and allowed.
    pub async fn slot<F, Fut>(&self, key: &str, want: &Want, connect: F) -> Result<Slot, NoSlot>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Connected, String>>,
    {
        let worker = self.worker(key);
        if want.private {
            let conn = self.start(&worker, key, connect().await.map_err(NoSlot::Connect)?);
            return Ok(Slot {
                worker,
                conn,
                private: true,
            });
        }
        let pick = modproxy_api::sdk::net::timeout(
            want.wait,
            poll_fn(|cx| {
                let mut st = worker.lock();
                match pick(&mut st, want) {
                    Some(p) => Poll::Ready(p),
                    None => {
                        st.waiters.push(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }),
        )
        .await
        .map_err(|_| NoSlot::Timeout)?;
        let conn = match pick {
            Pick::Got(conn) => conn,
            Pick::Connect => {
                let counted = Connecting(&worker);
                let connected = connect().await;
                drop(counted);
                let conn = self.start(&worker, key, connected.map_err(NoSlot::Connect)?);
                worker.lock().conns.push(Entry {
                    conn: conn.clone(),
                    active: 1,
                    idle_since: None,
                });
                // Others may fit on the new connection too.
                worker.wake_all();
                conn
            }
        };
        Ok(Slot {
            worker,
            conn,
            private: false,
        })
    }

    /// Spawns the connection's task on the host's runtime.
    fn start(&self, worker: &Arc<Worker>, key: &str, (send, connection): Connected) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Arc::new(Conn {
            send,
            retired: AtomicBool::new(false),
            timers: Mutex::default(),
        });
        let (mine, worker, key) = (conn.clone(), worker.clone(), key.to_owned());
        modproxy_api::sdk::net::spawn(async move {
            if let Err(e) = connection.await {
                log(
                    Level::Info,
                    format_args!("proxy_http2: {key}: connection {id} ended: {e}"),
                );
            }
            mine.retire();
            worker.wake_all();
        });
        conn
    }
}

impl Pool {
    /// Per backend: connections taking new streams, and streams open.
    pub fn counts(&self) -> Vec<(String, usize, u32)> {
        let map = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = map
            .iter()
            .map(|(key, w)| {
                let st = w.lock();
                let open = st.conns.iter().filter(|e| !e.conn.is_retired()).count();
                (key.clone(), open, st.conns.iter().map(|e| e.active).sum())
            })
            .collect();
        out.sort();
        out
    }
}

/// Counts a connect under way against `h2_connections` until dropped,
/// also when the request that connects goes away in the middle.
struct Connecting<'a>(&'a Worker);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.connecting = st.connecting.saturating_sub(1);
    }
}

/// The least busy open connection with a free stream, or leave to open
/// one (counted as connecting), or `None`: wait.
fn pick(st: &mut State, want: &Want) -> Option<Pick> {
    let now = want.ttl.map(|_| Instant::now());
    st.conns.retain(|e| {
        let expired = match (e.idle_since, want.ttl, now) {
            (Some(since), Some(ttl), Some(now)) => {
                e.active == 0 && now.saturating_duration_since(since) > ttl
            }
            _ => false,
        };
        !(expired || (e.conn.is_retired() && e.active == 0))
    });
    let free = st
        .conns
        .iter_mut()
        .filter(|e| !e.conn.is_retired() && e.active < want.limits.max_streams)
        .min_by_key(|e| e.active);
    if let Some(e) = free {
        e.active += 1;
        e.idle_since = None;
        return Some(Pick::Got(e.conn.clone()));
    }
    let open = st.conns.iter().filter(|e| !e.conn.is_retired()).count() as u32;
    if open + st.connecting < want.limits.connections {
        st.connecting += 1;
        return Some(Pick::Connect);
    }
    None
}
