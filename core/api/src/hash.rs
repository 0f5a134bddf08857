//! A fast hasher for the small maps modules consult on every request
//! (connection pools by worker URL, balancers by name, scheme handlers).
//! std's SipHash resists hash flooding, which these maps do not need:
//! their keys come from the configuration, never from clients.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64 bit.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by configuration strings, hashed with [`Fnv`].
pub type ConfigMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

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
