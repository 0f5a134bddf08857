//! Idle keep-alive connections per worker, newest first, with the `max`
//! and `ttl` limits. Generic over the connection so the expiry rules are
//! tested without sockets.
//!
//! Last in, first out: the most recently used connection is the one least
//! likely to have been closed by the backend's own keep-alive timeout, and
//! the old ones age out through `ttl` instead of being kept warm forever.

use modproxy_api::hash::ConfigMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an idle connection may be kept and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Idle time after which a connection is discarded; `None`: no limit.
    pub ttl: Option<Duration>,
    pub max_idle: usize,
}

/// Per worker, oldest first: each connection and when it went idle (no
/// time when there is no `ttl` to check it against).
type IdleLists<C> = ConfigMap<String, Vec<(C, Option<Instant>)>>;

pub struct Pool<C> {
    idle: Mutex<IdleLists<C>>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Pool {
            idle: Mutex::new(ConfigMap::default()),
        }
    }
}

impl<C> Pool<C> {
    /// A poisoned lock only means another request panicked while holding
    /// it; the map itself is still consistent, so keep serving.
    fn lock(&self) -> MutexGuard<'_, IdleLists<C>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection for `worker` that has not outlived `ttl`.
    /// Expired ones are closed on the way (outside the lock). The clock is
    /// read only when there is a `ttl` to check.
    pub fn take(&self, worker: &str, limits: Limits, now: impl FnOnce() -> Instant) -> Option<C> {
        let now = limits.ttl.map(|_| now());
        let (found, expired) = {
            let mut map = self.lock();
            let list = map.get_mut(worker)?;
            let expired = take_expired(list, limits.ttl, now);
            (list.pop().map(|(c, _)| c), expired)
        };
        drop(expired);
        found
    }

    /// Keeps `conn` for reuse, closing the oldest beyond `max_idle`.
    pub fn put(&self, worker: &str, conn: C, limits: Limits, now: impl FnOnce() -> Instant) {
        if limits.max_idle == 0 {
            return;
        }
        let now = limits.ttl.map(|_| now());
        let evicted = {
            let mut map = self.lock();
            // Look up by &str: the key is allocated once per worker.
            let list = match map.get_mut(worker) {
                Some(list) => list,
                None => map.entry(worker.to_owned()).or_default(),
            };
            list.push((conn, now));
            let mut evicted = take_expired(list, limits.ttl, now);
            let over = list.len().saturating_sub(limits.max_idle);
            evicted.extend(list.drain(..over).map(|(c, _)| c));
            evicted
        };
        drop(evicted);
    }

    /// Idle connections kept now, per worker, for the metrics.
    pub fn idle_counts(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = self
            .lock()
            .iter()
            .map(|(w, l)| (w.clone(), l.len()))
            .collect();
        counts.sort();
        counts
    }

    #[cfg(test)]
    fn idle(&self, worker: &str) -> usize {
        self.lock().get(worker).map_or(0, Vec::len)
    }
}

/// Removes the connections idle for longer than `ttl`. The list is ordered
/// oldest first, so they form a prefix. A connection put without a time
/// (there was no `ttl` then) counts as fresh.
fn take_expired<C>(
    list: &mut Vec<(C, Option<Instant>)>,
    ttl: Option<Duration>,
    now: Option<Instant>,
) -> Vec<C> {
    let (Some(ttl), Some(now)) = (ttl, now) else {
        return Vec::new();
    };
    let keep_from = list
        .iter()
        .position(|(_, since)| since.is_none_or(|s| now.saturating_duration_since(s) <= ttl));
    let n = keep_from.unwrap_or(list.len());
    list.drain(..n).map(|(c, _)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits(ttl_ms: u64, max_idle: usize) -> Limits {
        Limits {
            ttl: (ttl_ms > 0).then(|| MS * ttl_ms as u32),
            max_idle,
        }
    }

    #[test]
    fn newest_first_and_per_worker() {
        let pool = Pool::default();
        let t0 = Instant::now();
        pool.put("a", 1, limits(0, 8), || t0);
        pool.put("a", 2, limits(0, 8), || t0);
        pool.put("b", 3, limits(0, 8), || t0);
        assert_eq!(pool.take("a", limits(0, 8), || t0), Some(2));
        assert_eq!(pool.take("a", limits(0, 8), || t0), Some(1));
        assert_eq!(pool.take("a", limits(0, 8), || t0), None);
        assert_eq!(pool.take("c", limits(0, 8), || t0), None);
        assert_eq!(pool.take("b", limits(0, 8), || t0), Some(3));
    }

    #[test]
    fn max_idle_evicts_oldest() {
        let pool = Pool::default();
        let t0 = Instant::now();
        for c in 1..=4 {
            pool.put("a", c, limits(0, 2), || t0);
        }
        assert_eq!(pool.idle("a"), 2);
        assert_eq!(pool.take("a", limits(0, 2), || t0), Some(4));
        assert_eq!(pool.take("a", limits(0, 2), || t0), Some(3));
        pool.put("a", 5, limits(0, 0), || t0);
        assert_eq!(pool.idle("a"), 0);
    }

    #[test]
    fn ttl_discards_only_old_ones() {
        let pool = Pool::default();
        let t0 = Instant::now();
        pool.put("a", 1, limits(100, 8), || t0);
        pool.put("a", 2, limits(100, 8), || t0 + MS * 50);
        // At 120 ms the first is 120 ms idle (gone), the second 70 ms (kept).
        assert_eq!(pool.take("a", limits(100, 8), || t0 + MS * 120), Some(2));
        assert_eq!(pool.idle("a"), 0);
        pool.put("a", 3, limits(100, 8), || t0);
        assert_eq!(pool.take("a", limits(100, 8), || t0 + MS * 101), None);
        // ttl 0 means keep forever.
        pool.put("a", 4, limits(0, 8), || t0);
        assert_eq!(
            pool.take("a", limits(0, 8), || t0 + Duration::from_secs(3600)),
            Some(4)
        );
    }
}
