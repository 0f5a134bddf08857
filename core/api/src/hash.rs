//! A fast hasher for the small maps modules consult on every request
//! (connection pools by worker URL, balancers by name, scheme handlers).
//! std's SipHash resists hash flooding, which these maps do not need:
//! their keys come from the configuration, never from clients.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Eight bytes per step (rustc's Fx scheme): a worker URL hashes in three
/// steps instead of FNV's twenty-odd, and these keys are hashed on every
/// request.
#[derive(Clone, Copy, Default)]
pub struct WordHasher(u64);

impl WordHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in words.by_ref() {
            self.add(u64::from_le_bytes(word.try_into().unwrap_or_default()));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut last = [0u8; 8];
            last[..tail.len()].copy_from_slice(tail);
            self.add(u64::from_le_bytes(last));
        }
    }
    /// `str`'s terminator: one step, not the tail path.
    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by configuration strings, hashed with [`WordHasher`].
pub type ConfigMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

#[cfg(test)]
mod tests {
    use super::ConfigMap;

    #[test]
    fn a_config_map_finds_what_was_put_in() {
        let mut m: ConfigMap<String, u32> = ConfigMap::default();
        m.insert("http://127.0.0.1:8080".into(), 1);
        m.insert("http://127.0.0.1:8081".into(), 2);
        assert_eq!(m.get("http://127.0.0.1:8081"), Some(&2));
        assert_eq!(m.get("http://127.0.0.1:8082"), None);
    }
}
