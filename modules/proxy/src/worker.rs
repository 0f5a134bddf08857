//! Error state of direct (non-balancer) backends, shared by every rule and
//! request that uses the same `scheme://host:port`: Apache's `in_error`
//! with its `retry` hold. Balancer members keep theirs in proxy_balancer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One backend's state.
#[derive(Debug, Default)]
pub struct WorkerState {
    /// When the last connect failed; `None` while the worker is usable.
    error_since: Mutex<Option<Instant>>,
}

impl WorkerState {
    /// Whether the worker is still held in error at `now`. Once `retry` has
    /// passed the next request is the probe (Apache clears `in_error` then);
    /// `retry` zero never holds.
    pub fn held(&self, now: Instant, retry: Duration) -> bool {
        let since = *self
            .error_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        since.is_some_and(|t| !retry.is_zero() && now < t + retry)
    }

    /// Records a failed connect at `now`.
    pub fn fail(&self, now: Instant) {
        *self
            .error_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(now);
    }

    /// The backend answered: usable again.
    pub fn recover(&self) {
        *self
            .error_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// All direct workers by key, filled at configuration time.
#[derive(Debug, Default)]
pub struct Workers {
    by_key: Mutex<HashMap<String, Arc<WorkerState>>>,
}

impl Workers {
    /// The state for `key`, made on first use so that rules naming the same
    /// backend share it.
    pub fn get(&self, key: &str) -> Arc<WorkerState> {
        let mut map = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(key.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_for_retry_then_probed() {
        let w = WorkerState::default();
        let t0 = Instant::now();
        let retry = Duration::from_secs(60);
        assert!(!w.held(t0, retry));
        w.fail(t0);
        assert!(w.held(t0 + Duration::from_secs(59), retry));
        assert!(!w.held(t0 + Duration::from_secs(60), retry));
        assert!(!w.held(t0, Duration::ZERO), "retry = 0 never holds");
        w.recover();
        assert!(!w.held(t0, retry));
    }

    #[test]
    fn same_key_same_state() {
        let ws = Workers::default();
        ws.get("http://a:1").fail(Instant::now());
        assert!(ws
            .get("http://a:1")
            .held(Instant::now(), Duration::from_secs(5)));
        assert!(!ws
            .get("http://a:2")
            .held(Instant::now(), Duration::from_secs(5)));
    }
}
