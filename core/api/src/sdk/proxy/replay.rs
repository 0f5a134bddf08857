//! How far a client's request body got towards a backend, kept across
//! attempts so the body is never read twice: a scheme handler sends a
//! body again (a pooled connection closed under it, a backend that did
//! not process the request) only when all of it is still here.

use bytes::Bytes;

/// A request body up to this size is kept while it is sent, so that a
/// retry can send it again (a small PUT is as likely to meet a closed
/// pooled connection as a GET).
pub const REPLAY_LIMIT: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct BodyProgress {
    /// Bytes read from the client so far.
    pub consumed: u64,
    /// The client's body has ended.
    pub ended: bool,
    /// Every chunk read so far, while they total at most [`REPLAY_LIMIT`];
    /// `None` once the body outgrew it.
    replay: Option<Vec<Bytes>>,
}

impl Default for BodyProgress {
    fn default() -> Self {
        BodyProgress {
            consumed: 0,
            ended: false,
            replay: Some(Vec::new()),
        }
    }
}

impl BodyProgress {
    /// Whether a new attempt can send the body from its start.
    #[inline]
    pub fn can_replay(&self) -> bool {
        self.replay.is_some()
    }

    /// Keeps `chunk` for a replay (after `consumed` counted it), or gives
    /// replaying up once the body is past [`REPLAY_LIMIT`].
    #[inline]
    pub fn keep(&mut self, chunk: &Bytes) {
        match &mut self.replay {
            Some(kept) if self.consumed <= REPLAY_LIMIT => kept.push(chunk.clone()),
            _ => self.replay = None,
        }
    }

    /// What a new attempt sends first: the chunks kept (none once the
    /// body outgrew the limit).
    pub fn kept(&self) -> Vec<Bytes> {
        self.replay.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_are_kept_for_a_replay_and_large_ones_are_not() {
        let mut p = BodyProgress::default();
        assert!(p.can_replay(), "nothing read yet");
        for _ in 0..2 {
            let chunk = Bytes::from(vec![0u8; 32 * 1024]);
            p.consumed += chunk.len() as u64;
            p.keep(&chunk);
        }
        assert!(p.can_replay(), "64 KiB is kept");
        assert_eq!(p.kept().len(), 2);
        p.consumed += 1;
        p.keep(&Bytes::from_static(b"x"));
        assert!(!p.can_replay(), "one byte more is not");
        assert!(p.kept().is_empty());
    }
}
