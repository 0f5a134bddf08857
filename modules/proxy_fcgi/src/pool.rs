//! Kept-alive FastCGI connections per worker (with `enable_reuse`),
//! newest first, within the worker's `max` and `ttl`.

use crate::backend::Idle;
use modproxy_api::sdk::net::IdleState;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<(Idle, Instant)>>>,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<(Idle, Instant)>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection of `worker` younger than `ttl` that is
    /// open and quiet (asked of its socket, not of cached readiness).
    pub fn take(&self, worker: &str, ttl: Option<Duration>) -> Option<Idle> {
        loop {
            let (idle, since) = self.lock().get_mut(worker)?.pop()?;
            if ttl.is_some_and(|ttl| since.elapsed() > ttl) {
                continue;
            }
            let mut idle = idle;
            if idle.conn.idle_state() == IdleState::Quiet {
                return Some(idle);
            }
        }
    }

    /// Keeps `conn`, closing the oldest beyond `max`.
    pub fn put(&self, worker: &str, conn: Idle, max: usize) {
        if max == 0 {
            return;
        }
        let evicted: Vec<(Idle, Instant)> = {
            let mut map = self.lock();
            let list = match map.get_mut(worker) {
                Some(list) => list,
                None => map.entry(worker.to_owned()).or_default(),
            };
            list.push((conn, Instant::now()));
            let over = list.len().saturating_sub(max);
            list.drain(..over).collect()
        };
        drop(evicted);
    }
}
