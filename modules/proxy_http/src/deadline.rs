//! Deadlines on one host timer per backend connection. A host timer cannot
//! be moved once made, and making and dropping one per exchange cost more
//! than the rest of the wait: so a connection keeps its timer from wait to
//! wait (and in the pool). A timer that would fire after the deadline at
//! hand is replaced; one that fires before it is made again for the rest.
//! With the same timeout on every exchange, the timer made for an earlier
//! wait always fires first, so waits in a row make a new timer only when
//! the old one fired: once per timeout, not once per exchange.

use modproxy_api::sdk::net::{sleep, Sleep};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Deadline {
    /// The host timer and the instant it fires, not before.
    timer: Option<(Sleep, Instant)>,
}

impl Deadline {
    /// Runs `fut` for at most `wait`, counted from its first wait (as
    /// `sdk::net::timeout` does); `None` when the time ran out first.
    pub async fn run<F: Future>(&mut self, wait: Duration, fut: F) -> Option<F::Output> {
        let mut fut = pin!(fut);
        let mut at = None;
        poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            let at = *at.get_or_insert_with(|| Instant::now() + wait);
            self.poll_until(cx, at).map(|()| None)
        })
        .await
    }

    /// Ready once `at` has passed.
    fn poll_until(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<()> {
        loop {
            if !matches!(&self.timer, Some((_, fires)) if *fires <= at) {
                let now = Instant::now();
                if now >= at {
                    return Poll::Ready(());
                }
                let left = ceil_millis(at - now);
                self.timer = Some((sleep(left), now + left));
            }
            let Some((timer, _)) = self.timer.as_mut() else {
                return Poll::Ready(());
            };
            if Pin::new(timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Spent: the next wait needs a new one. Made for an earlier
            // deadline, it may have fired before this one.
            self.timer = None;
            if Instant::now() >= at {
                return Poll::Ready(());
            }
        }
    }
}

/// `d` rounded up to whole milliseconds, the host timer's resolution, so
/// that the timer never fires before the deadline.
fn ceil_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::ceil_millis;
    use std::time::Duration;

    #[test]
    fn waits_round_up_to_the_timer_resolution() {
        let ms = Duration::from_millis;
        assert_eq!(ceil_millis(ms(5)), ms(5));
        assert_eq!(ceil_millis(ms(5) + Duration::from_nanos(1)), ms(6));
        assert_eq!(ceil_millis(Duration::from_micros(1)), ms(1));
        assert_eq!(ceil_millis(Duration::ZERO), Duration::ZERO);
    }
}
