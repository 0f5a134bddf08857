//! The disk store: one file per variant under `disk_root`, and one small
//! file per URL naming the fields its `Vary` lists, so a lookup knows
//! which variant file to open. Files are written to a temporary name and
//! renamed, so two server processes sharing the directory during a
//! restart never see half a file; a file that does not check out (cut
//! short, another key's, unreadable) is a miss and is removed. What it
//! holds survives `modproxy restart`: times are kept as Unix time.

use crate::store::Stored;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8] = b"modproxy-cache 1\n";

/// Everything of a stored variant but its body, as written.
#[derive(Serialize, Deserialize)]
struct Meta {
    key: String,
    status: u16,
    fields: Vec<(String, Vec<u8>)>,
    stored_unix: u64,
    lifetime: u64,
    age_at_store: u64,
    vary: Vec<(String, Option<String>)>,
    stale_while_revalidate: u64,
    stale_if_error: u64,
    body_len: u64,
}

pub struct DiskStore {
    root: PathBuf,
    max_size: u64,
    /// Bytes in the directory, counted at start and kept up to date.
    used: AtomicU64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hash(parts: &[&str]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl DiskStore {
    /// Opens (and creates) the directory, counting what it holds and
    /// removing temporary files a crash left.
    pub fn open(root: &Path, max_size: u64) -> std::io::Result<DiskStore> {
        std::fs::create_dir_all(root)?;
        let mut used = 0;
        for e in std::fs::read_dir(root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp-") {
                let _ = std::fs::remove_file(e.path());
            } else if let Ok(m) = e.metadata() {
                used += m.len();
            }
        }
        Ok(DiskStore {
            root: root.to_path_buf(),
            max_size,
            used: AtomicU64::new(used),
        })
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn vary_path(&self, key: &str) -> PathBuf {
        self.root.join(format!("{}.vary", hash(&[key])))
    }

    fn variant_path(&self, key: &str, values: &[(String, Option<String>)]) -> PathBuf {
        let mut parts = vec![key.to_owned()];
        for (n, v) in values {
            parts.push(format!("{n}={}", v.as_deref().unwrap_or("\u{0}")));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.root.join(format!("{}.entry", hash(&refs)))
    }

    /// The stored variant of `key` for a request whose fields `value_of`
    /// gives, fresh or stale.
    pub fn get(&self, key: &str, value_of: &dyn Fn(&str) -> Option<String>) -> Option<Stored> {
        let names = std::fs::read_to_string(self.vary_path(key)).ok()?;
        let values: Vec<(String, Option<String>)> = names
            .lines()
            .filter(|l| !l.is_empty())
            .map(|n| (n.to_owned(), value_of(n)))
            .collect();
        let path = self.variant_path(key, &values);
        let data = std::fs::read(&path).ok()?;
        match decode(&data, key) {
            Some(s) if s.vary == values => Some(s),
            _ => {
                // Cut short, or not what its name says: never served.
                self.remove(&path);
                None
            }
        }
    }

    /// Writes a variant (and its URL's Vary names), then makes room.
    pub fn put(&self, key: &str, stored: &Stored) -> std::io::Result<()> {
        let names: String = stored.vary.iter().map(|(n, _)| format!("{n}\n")).collect();
        self.write(&self.vary_path(key), names.as_bytes())?;
        let path = self.variant_path(key, &stored.vary);
        self.write(&path, &encode(key, stored))?;
        self.make_room();
        Ok(())
    }

    /// Drops the variants of `key` (`exact`) or of every key starting
    /// with it; how many.
    pub fn purge(&self, key: &str, exact: bool) -> usize {
        let mut n = 0;
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "entry") {
                let stored_key = std::fs::read(&path)
                    .ok()
                    .and_then(|d| meta(&d).map(|(m, _)| m.key));
                let hit = |k: String| if exact { k == key } else { k.starts_with(key) };
                if stored_key.is_some_and(hit) {
                    self.remove(&path);
                    n += 1;
                }
            }
        }
        n
    }

    fn write(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let old = std::fs::metadata(path).map_or(0, |m| m.len());
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        drop(f);
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        self.used.fetch_add(data.len() as u64, Ordering::Relaxed);
        self.used.fetch_sub(old.min(self.used()), Ordering::Relaxed);
        Ok(())
    }

    fn remove(&self, path: &Path) {
        if let Ok(m) = std::fs::metadata(path) {
            if std::fs::remove_file(path).is_ok() {
                self.used
                    .fetch_sub(m.len().min(self.used()), Ordering::Relaxed);
            }
        }
    }

    /// Over `max_size`: the least recently written variants go first.
    fn make_room(&self) {
        if self.used() <= self.max_size {
            return;
        }
        let mut files: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "entry"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        for (_, path) in files {
            if self.used() <= self.max_size * 9 / 10 {
                break;
            }
            self.remove(&path);
        }
    }
}

fn encode(key: &str, s: &Stored) -> Vec<u8> {
    let now = Instant::now();
    let held = now.saturating_duration_since(s.stored_at).as_secs();
    let meta = Meta {
        key: key.to_owned(),
        status: s.status,
        fields: s.fields.clone(),
        stored_unix: unix_now().saturating_sub(held),
        lifetime: s.lifetime.as_secs(),
        age_at_store: s.age_at_store,
        vary: s.vary.clone(),
        stale_while_revalidate: s.stale_while_revalidate.as_secs(),
        stale_if_error: s.stale_if_error.as_secs(),
        body_len: s.body.len() as u64,
    };
    let mut out = MAGIC.to_vec();
    out.extend(serde_json::to_vec(&meta).unwrap_or_default());
    out.push(b'\n');
    out.extend_from_slice(&s.body);
    out
}

/// The header of a file, and where its body starts.
fn meta(data: &[u8]) -> Option<(Meta, usize)> {
    let rest = data.strip_prefix(MAGIC)?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    let meta: Meta = serde_json::from_slice(&rest[..end]).ok()?;
    Some((meta, MAGIC.len() + end + 1))
}

fn decode(data: &[u8], key: &str) -> Option<Stored> {
    let (m, start) = meta(data)?;
    let body = data.get(start..)?;
    if m.key != key || body.len() as u64 != m.body_len {
        return None;
    }
    let held = unix_now().saturating_sub(m.stored_unix);
    let stored_at = Instant::now()
        .checked_sub(Duration::from_secs(held))
        .unwrap_or_else(Instant::now);
    Some(Stored {
        status: m.status,
        fields: m.fields,
        body: Bytes::copy_from_slice(body),
        stored_at,
        lifetime: Duration::from_secs(m.lifetime),
        age_at_store: m.age_at_store,
        vary: m.vary,
        stale_while_revalidate: Duration::from_secs(m.stale_while_revalidate),
        stale_if_error: Duration::from_secs(m.stale_if_error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Stored {
        Stored {
            status: 200,
            fields: vec![("content-type".into(), b"text/plain".to_vec())],
            body: Bytes::from_static(b"body bytes"),
            stored_at: Instant::now(),
            lifetime: Duration::from_secs(60),
            age_at_store: 0,
            vary: vec![("accept-encoding".into(), Some("gzip".into()))],
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::from_secs(9),
        }
    }

    #[test]
    fn a_variant_survives_reopening_and_a_cut_file_is_a_miss() {
        let dir = std::env::temp_dir().join(format!("modproxy-disk-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = DiskStore::open(&dir, 1 << 20).unwrap();
        d.put("http://x/a", &stored()).unwrap();
        let gzip = |_: &str| Some("gzip".to_owned());
        let again = DiskStore::open(&dir, 1 << 20).unwrap();
        let got = again.get("http://x/a", &gzip).unwrap();
        assert_eq!(
            (got.body.as_ref(), got.stale_if_error.as_secs()),
            (&b"body bytes"[..], 9)
        );
        assert!(
            again.get("http://x/a", &|_| None).is_none(),
            "another variant"
        );
        let path = again.variant_path("http://x/a", &got.vary);
        let data = std::fs::read(&path).unwrap();
        std::fs::write(&path, &data[..data.len() - 3]).unwrap();
        assert!(again.get("http://x/a", &gzip).is_none());
        assert!(!path.exists(), "the cut file was removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
