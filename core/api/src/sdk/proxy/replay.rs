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
    /// Of what is kept, the bytes spliced after those chunks, which the
    /// host keeps ([`crate::sdk::Request::splice_to`]).
    spliced: u64,
}

impl Default for BodyProgress {
    fn default() -> Self {
        BodyProgress {
            consumed: 0,
            ended: false,
            replay: Some(Vec::new()),
            spliced: 0,
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
            // A chunk after spliced bytes would be replayed before them.
            Some(kept) if self.consumed <= REPLAY_LIMIT && self.spliced == 0 => {
                kept.push(chunk.clone())
            }
            _ => self.give_up(),
        }
    }

    /// How many spliced bytes the host may keep for a replay: what the
    /// limit leaves after the chunks kept here (0 once given up).
    pub fn splice_keep(&self) -> usize {
        match self.replay {
            Some(_) => {
                let chunks = self.consumed - self.spliced;
                usize::try_from(REPLAY_LIMIT.saturating_sub(chunks)).unwrap_or(0)
            }
            None => 0,
        }
    }

    /// Counts `n` bytes spliced with [`BodyProgress::splice_keep`] as the
    /// host's limit: kept by the host while the body is within the limit.
    pub fn spliced(&mut self, n: usize) {
        self.consumed += n as u64;
        match self.replay {
            Some(_) if self.consumed <= REPLAY_LIMIT => self.spliced += n as u64,
            _ => self.give_up(),
        }
    }

    fn give_up(&mut self) {
        self.replay = None;
        self.spliced = 0;
    }

    /// What a new attempt sends first: the chunks kept (none once the
    /// body outgrew the limit); then [`BodyProgress::host_kept`] bytes.
    pub fn kept(&self) -> Vec<Bytes> {
        self.replay.clone().unwrap_or_default()
    }

    /// Bytes after [`BodyProgress::kept`]'s chunks that the host kept
    /// ([`crate::sdk::Request::splice_replay`] sends them).
    pub fn host_kept(&self) -> u64 {
        self.spliced
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

    #[test]
    fn spliced_bytes_count_against_the_same_limit_and_end_chunk_keeping() {
        let mut p = BodyProgress::default();
        let chunk = Bytes::from(vec![0u8; 1000]);
        p.consumed += 1000;
        p.keep(&chunk);
        assert_eq!(p.splice_keep(), REPLAY_LIMIT as usize - 1000);
        p.spliced(30_000);
        assert!(p.can_replay());
        assert_eq!((p.kept().len(), p.host_kept()), (1, 30_000));
        assert_eq!(p.splice_keep(), REPLAY_LIMIT as usize - 1000);
        let mut later = p.clone();
        later.consumed += 1;
        later.keep(&Bytes::from_static(b"x"));
        assert!(!later.can_replay(), "a chunk after spliced bytes ends it");
        p.spliced(40_000);
        assert!(!p.can_replay(), "past the limit");
        assert_eq!((p.host_kept(), p.splice_keep()), (0, 0));
    }
}
