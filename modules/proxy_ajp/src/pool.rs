//! Idle AJP connections per connector, newest first, within the worker's
//! `max` and `ttl`. Each is CPINGed before it is used again (exchange.rs).

use modproxy_api::hash::ConfigMap;
use modproxy_api::sdk::net::TcpConn;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A connection and when it went idle.
pub struct Idle {
    pub conn: TcpConn,
    pub since: Instant,
}

#[derive(Default)]
pub struct Pool {
    idle: Mutex<ConfigMap<String, Vec<Idle>>>,
}

impl Pool {
    /// The newest connection of `worker` idle for at most `ttl`.
    pub fn take(&self, worker: &str, ttl: Option<Duration>) -> Option<TcpConn> {
        let now = Instant::now();
        let mut map = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = map.get_mut(worker)?;
        if let Some(ttl) = ttl {
            list.retain(|c| now.saturating_duration_since(c.since) <= ttl);
        }
        list.pop().map(|c| c.conn)
    }

    /// Keeps `conn`, dropping the oldest beyond `max`.
    pub fn put(&self, worker: &str, conn: TcpConn, max: usize) {
        if max == 0 {
            return;
        }
        let mut map = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = match map.get_mut(worker) {
            Some(list) => list,
            None => map.entry(worker.to_owned()).or_default(),
        };
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
        let over = list.len().saturating_sub(max);
        list.drain(..over);
    }
}
