//! The memory store: entries by URL, each with its variants (one per set
//! of values of the fields its `Vary` names), bounded by size with the
//! least recently used entries evicted first; and the fill locks that
//! make N concurrent misses for one key one backend request.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A stored response.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: u16,
    /// End-to-end fields as the backend sent them (Age and X-Cache are the cache's).
    pub fields: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
    pub stored_at: Instant,
    pub lifetime: Duration,
    /// The Age the response arrived with, in seconds.
    pub age_at_store: u64,
    /// The request's values of the fields `Vary` names (lower-case names).
    pub vary: Vec<(String, Option<String>)>,
    /// RFC 5861's windows past the lifetime: a stale copy may answer while
    /// one request revalidates it, or when the backend fails.
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

impl Stored {
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .fields
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>()
            + 128
    }
    pub fn age(&self, now: Instant) -> u64 {
        self.age_at_store + now.saturating_duration_since(self.stored_at).as_secs()
    }
    /// How long it has been held (its age as a duration).
    fn held(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at) + Duration::from_secs(self.age_at_store)
    }
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.held(now) < self.lifetime
    }
    pub fn may_serve_while_revalidating(&self, now: Instant) -> bool {
        self.held(now) < self.lifetime + self.stale_while_revalidate
    }
    pub fn may_serve_on_error(&self, now: Instant) -> bool {
        self.held(now) < self.lifetime + self.stale_if_error
    }
    /// One of its fields as text (validators for a conditional request).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
    /// Whether this variant answers a request whose field values `value_of` gives.
    pub fn matches(&self, value_of: &dyn Fn(&str) -> Option<String>) -> bool {
        self.vary.iter().all(|(name, v)| value_of(name) == *v)
    }
}

struct Entry {
    variants: Vec<Stored>,
    last_used: u64,
    size: usize,
}

/// The store of one server process.
pub struct Store {
    max_size: usize,
    entries: HashMap<String, Entry>,
    /// last_used → key, for eviction in LRU order.
    lru: BTreeMap<u64, String>,
    tick: u64,
    size: usize,
    /// Keys a request is fetching from the backend right now, with when it began.
    filling: HashMap<String, Instant>,
    pub hits: u64,
    pub misses: u64,
    pub stores: u64,
}

impl Store {
    pub fn new(max_size: usize) -> Store {
        Store {
            max_size,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            size: 0,
            filling: HashMap::new(),
            hits: 0,
            misses: 0,
            stores: 0,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn touch(&mut self, key: &str) {
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(key) {
            self.lru.remove(&e.last_used);
            e.last_used = self.tick;
            self.lru.insert(self.tick, key.to_owned());
        }
    }

    /// The variant of `key` for this request, fresh or stale, if one is stored.
    pub fn get(&mut self, key: &str, value_of: &dyn Fn(&str) -> Option<String>) -> Option<Stored> {
        let found = self
            .entries
            .get(key)?
            .variants
            .iter()
            .find(|v| v.matches(value_of))
            .cloned();
        if found.is_some() {
            self.touch(key);
        }
        found
    }

    /// A revalidated variant (the backend answered 304): fresh again from
    /// `now` for `lifetime`, with the fields the 304 updated.
    pub fn refresh(&mut self, key: &str, updated: &Stored) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        if let Some(v) = e.variants.iter_mut().find(|v| v.vary == updated.vary) {
            let before = v.size();
            *v = updated.clone();
            let after = v.size();
            // Each total includes `before`: no underflow.
            e.size = e.size - before + after;
            self.size = self.size - before + after;
        }
    }

    /// Stores a variant (replacing the one for the same Vary values),
    /// then evicts until the store fits.
    pub fn put(&mut self, key: &str, stored: Stored) {
        let size = stored.size();
        if size > self.max_size / 4 {
            return; // one response may not push out most of the store
        }
        let entry = self.entries.entry(key.to_owned()).or_insert(Entry {
            variants: Vec::new(),
            last_used: 0,
            size: 0,
        });
        if let Some(i) = entry.variants.iter().position(|v| v.vary == stored.vary) {
            let old = entry.variants.remove(i);
            entry.size -= old.size();
            self.size -= old.size();
        }
        entry.variants.push(stored);
        entry.size += size;
        self.size += size;
        self.stores += 1;
        self.touch(key);
        while self.size > self.max_size {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.size -= e.size;
            }
        }
    }

    /// Drops the entry `key` (`exact`) or every entry whose key starts
    /// with it; how many.
    pub fn purge_matching(&mut self, key: &str, exact: bool) -> usize {
        let keys: Vec<String> = self
            .entries
            .keys()
            .filter(|k| if exact { *k == key } else { k.starts_with(key) })
            .cloned()
            .collect();
        for k in &keys {
            if let Some(e) = self.entries.remove(k) {
                self.size -= e.size;
                self.lru.remove(&e.last_used);
            }
        }
        keys.len()
    }

    /// Takes the fill lock of `key` unless another request holds it (and
    /// has held it for less than `stale_after`, so a request that never
    /// finished cannot block the key for good).
    pub fn try_fill(&mut self, key: &str, now: Instant, stale_after: Duration) -> bool {
        match self.filling.get(key) {
            Some(since) if now.saturating_duration_since(*since) < stale_after => false,
            _ => {
                self.filling.insert(key.to_owned(), now);
                true
            }
        }
    }
    pub fn is_filling(&self, key: &str) -> bool {
        self.filling.contains_key(key)
    }
    pub fn end_fill(&mut self, key: &str) {
        self.filling.remove(key);
    }

    /// Keys currently held, for tests of the bound.
    #[cfg(test)]
    fn keys(&self) -> std::collections::HashSet<String> {
        self.entries.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: usize) -> Stored {
        Stored {
            status: 200,
            fields: vec![],
            body: Bytes::from(vec![b'x'; body]),
            stored_at: Instant::now(),
            lifetime: Duration::from_secs(60),
            age_at_store: 0,
            vary: vec![],
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        }
    }

    #[test]
    fn the_bound_holds_and_the_least_recently_used_goes_first() {
        let mut s = Store::new(10_000);
        for k in ["a", "b", "c"] {
            s.put(k, stored(2000));
        }
        let none = |_: &str| None;
        assert!(s.get("a", &none).is_some()); // a is now the newest
        s.put("d", stored(2000));
        s.put("e", stored(2000));
        assert!(s.size() <= 10_000);
        assert!(
            !s.keys().contains("b"),
            "b was the least recently used: {:?}",
            s.keys()
        );
        assert!(s.keys().contains("a"));
    }

    #[test]
    fn variants_by_vary_values_and_fill_locks() {
        let mut s = Store::new(1 << 20);
        let mut gz = stored(10);
        gz.vary = vec![("accept-encoding".into(), Some("gzip".into()))];
        s.put("k", gz);
        let gzip = |_: &str| Some("gzip".to_owned());
        let plain = |_: &str| None;
        assert!(s.get("k", &gzip).is_some());
        assert!(s.get("k", &plain).is_none());
        let t0 = Instant::now();
        assert!(s.try_fill("k", t0, Duration::from_secs(5)));
        assert!(!s.try_fill("k", t0, Duration::from_secs(5)));
        assert!(
            s.try_fill("k", t0 + Duration::from_secs(6), Duration::from_secs(5)),
            "a stuck fill expires"
        );
        s.end_fill("k");
        assert!(!s.is_filling("k"));
        assert_eq!(s.purge_matching("k", true), 1);
    }
}
