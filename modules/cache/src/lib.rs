//! cache: a shared HTTP cache in memory (Apache's mod_cache with a memory
//! store). A handler that runs before proxy's answers fresh hits
//! (serve.rs); an output filter stores what the backend answered when
//! RFC 9111 allows it (fill.rs, rules.rs); concurrent misses for one URL
//! wait for the first one's answer instead of all asking the backend
//! (the fill lock in store.rs, Apache's CacheLock).
#![forbid(unsafe_code)]

mod disk;
mod fill;
mod rules;
mod serve;
mod store;

use disk::DiskStore;
use modproxy_api::metrics::{register_metrics, MetricsSource};
use modproxy_api::sdk::filter::register_filter;
use modproxy_api::sdk::host::{server_file, ServerFile};
use modproxy_api::sdk::order;
use modproxy_api::sdk::purge::{register_purger, Purger};
use modproxy_api::{log, Level};
use modproxy_api::{ConfigError, Module, Registrar, Request, Section};
use serde::Deserialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;
use store::Store;
use store::Stored;

/// The note that marks a request whose answer may be stored: its key.
const FILL_NOTE: &str = "cache-fill";
/// The note that marks a request sent as a revalidation of a stale copy.
const REVALIDATE_NOTE: &str = "cache-revalidate";

/// `[vhost.cache]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub enable: Vec<EnableRule>,
    /// Bytes the store may hold (default 64 MiB).
    #[serde(default = "default_max_size")]
    pub max_size: u64,
    /// Seconds a response without expiry is kept, with ignore_no_last_mod.
    #[serde(default = "default_expire")]
    pub default_expire: u64,
    /// The longest any response is kept, in seconds.
    #[serde(default = "max_expire")]
    pub max_expire: u64,
    #[serde(default)]
    pub ignore_no_last_mod: bool,
    /// Concurrent misses for one URL wait for the first (CacheLock).
    #[serde(default = "yes")]
    pub lock: bool,
    /// `X-Cache: HIT | MISS` on responses.
    #[serde(default)]
    pub header: bool,
    /// Where the disk store keeps its files, relative to SERVER_ROOT.
    #[serde(default = "default_disk_root")]
    pub disk_root: String,
}

fn default_disk_root() -> String {
    "cache".into()
}

/// Which store a rule uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Disk,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableRule {
    pub path: String,
    #[serde(default = "memory")]
    pub store: String,
}

fn default_max_size() -> u64 {
    64 << 20
}
fn default_expire() -> u64 {
    3600
}
fn max_expire() -> u64 {
    86400
}
fn yes() -> bool {
    true
}
fn memory() -> String {
    "memory".into()
}

/// How long a miss waits for another request filling the same URL, and
/// how long a fill lock lasts if its request never finishes.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// One virtual host's cache: its settings and stores. The memory store
/// also keeps the fill locks and the counters, whichever store answers.
pub struct Site {
    pub config: CacheConfig,
    pub store: Mutex<Store>,
    /// Opened on first use (configtest creates no directory).
    disk: OnceLock<Option<DiskStore>>,
    disk_root: PathBuf,
}

impl Site {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
    /// The store of the first `enable` rule `path` is under.
    fn kind(&self, path: &str) -> Option<Kind> {
        let rule = self
            .config
            .enable
            .iter()
            .find(|r| path.starts_with(&r.path))?;
        Some(if rule.store == "disk" {
            Kind::Disk
        } else {
            Kind::Memory
        })
    }
    fn disk(&self) -> Option<&DiskStore> {
        self.disk
            .get_or_init(|| match DiskStore::open(&self.disk_root, self.config.max_size) {
                Ok(d) => Some(d),
                Err(e) => {
                    log(Level::Error, format_args!("cache: cannot use {} for the disk store ({e}): those paths are not cached; make the directory writable", self.disk_root.display()));
                    None
                }
            })
            .as_ref()
    }
    /// The stored variant for a request, fresh or stale.
    fn get(
        &self,
        kind: Kind,
        key: &str,
        value_of: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Stored> {
        match kind {
            Kind::Memory => self.store().get(key, value_of),
            Kind::Disk => self.disk()?.get(key, value_of),
        }
    }
    fn disk_purge(&self, key: &str, exact: bool) -> usize {
        self.disk().map_or(0, |d| d.purge(key, exact))
    }

    /// Puts back a variant a 304 made fresh again.
    fn refresh(&self, kind: Kind, key: &str, fresh: Stored) {
        match kind {
            Kind::Memory => self.store().refresh(key, &fresh),
            Kind::Disk => {
                if let Some(d) = self.disk() {
                    let _ = d.put(key, &fresh);
                }
            }
        }
    }

    /// Stores a new variant.
    fn put(&self, kind: Kind, key: &str, stored: Stored) {
        match kind {
            Kind::Memory => self.store().put(key, stored),
            Kind::Disk => {
                if let Some(d) = self.disk() {
                    match d.put(key, &stored) {
                        Ok(()) => self.store().stores += 1,
                        Err(e) => log(
                            Level::Warn,
                            format_args!(
                                "cache: cannot write {key} to {}: {e}",
                                self.disk_root.display()
                            ),
                        ),
                    }
                }
            }
        }
    }
}

pub struct Cache {
    vhosts: RwLock<Vec<Option<&'static Site>>>,
}

impl Module for Cache {
    const NAME: &'static str = "cache";

    fn init() -> Result<Self, String> {
        Ok(Cache {
            vhosts: RwLock::default(),
        })
    }

    fn register(r: &mut Registrar<Self>) {
        r.section::<CacheConfig>("vhost.cache", Cache::configure);
        // Before proxy's handler (MIDDLE): a hit never reaches the backend.
        r.handler(order::FIRST, serve::handle);
        let me = r.module();
        // After deflate (LAST): what is stored is what the client got, one
        // variant per encoding (deflate adds Vary: Accept-Encoding).
        register_filter(r, order::LAST + 10, me);
        register_metrics(r, "cache", me);
        // The balancer manager's API purges through it.
        register_purger(r, me);
    }
}

impl Cache {
    fn configure(&self, s: Section<CacheConfig>) -> Result<(), ConfigError> {
        let at = format!("{}: {}", s.file, s.key);
        let Some(vhost) = s.vhost else {
            return Err(format!(
                "{at}: cache settings belong to a virtual host: move them under [vhost.cache]"
            )
            .into());
        };
        let c = s.value;
        let mut problems = Vec::new();
        for (i, rule) in c.enable.iter().enumerate() {
            if !rule.path.starts_with('/') {
                problems.push(format!(
                    "{at}.enable[{i}].path: `{}` is not a path: start it with '/'",
                    rule.path
                ));
            }
            if rule.store != "memory" && rule.store != "disk" {
                problems.push(format!(
                    "{at}.enable[{i}].store: `{}` is not a store: use \"memory\" or \"disk\"",
                    rule.store
                ));
            }
        }
        if c.max_expire < c.default_expire {
            problems.push(format!(
                "{at}.max_expire: {} is below default_expire ({}): raise it",
                c.max_expire, c.default_expire
            ));
        }
        let store = Store::new(usize::try_from(c.max_size).unwrap_or(usize::MAX));
        let root = server_file(ServerFile::Root).unwrap_or_default();
        let site: &'static Site = Box::leak(Box::new(Site {
            disk_root: root.join(&c.disk_root),
            config: c,
            store: Mutex::new(store),
            disk: OnceLock::new(),
        }));
        let mut vhosts = self.vhosts.write().unwrap_or_else(PoisonError::into_inner);
        if vhosts.len() <= vhost {
            vhosts.resize(vhost + 1, None);
        }
        vhosts[vhost] = Some(site);
        ConfigError::result(problems)
    }

    fn site(&self, req: &Request) -> Option<&'static Site> {
        let vhosts = self.vhosts.read().unwrap_or_else(PoisonError::into_inner);
        vhosts.get(req.vhost()).copied().flatten()
    }
}

/// The store key of a request: scheme, host and target.
fn key(req: &Request) -> String {
    let host = req
        .header_str(modproxy_api::Headers::Request, "host")
        .unwrap_or("");
    let q = req.query();
    format!(
        "{}://{}{}{}{}",
        req.scheme(),
        host.to_ascii_lowercase(),
        req.path(),
        if q.is_empty() { "" } else { "?" },
        q
    )
}

impl Purger for Cache {
    fn purge(&self, key: &str, exact: bool) -> u64 {
        let vhosts = self.vhosts.read().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        for site in vhosts.iter().flatten() {
            n += site.store().purge_matching(key, exact);
            n += site.disk_purge(key, exact);
        }
        n as u64
    }
}

impl MetricsSource for Cache {
    fn render(&self, out: &mut String) {
        let vhosts = self.vhosts.read().unwrap_or_else(PoisonError::into_inner);
        let (mut hits, mut misses, mut stores, mut size, mut entries) = (0, 0, 0, 0, 0);
        for site in vhosts.iter().flatten() {
            let on_disk = site
                .disk
                .get()
                .and_then(|d| d.as_ref())
                .map_or(0, DiskStore::used);
            let s = site.store();
            (hits, misses, stores) = (hits + s.hits, misses + s.misses, stores + s.stores);
            (size, entries) = (size + s.size() as u64 + on_disk, entries + s.len());
        }
        for (name, kind, help, v) in [
            (
                "modproxy_cache_hits_total",
                "counter",
                "Requests answered from the cache.",
                hits,
            ),
            (
                "modproxy_cache_misses_total",
                "counter",
                "Cacheable requests that went to the backend.",
                misses,
            ),
            (
                "modproxy_cache_stores_total",
                "counter",
                "Responses stored.",
                stores,
            ),
            (
                "modproxy_cache_size_bytes",
                "gauge",
                "Bytes the stores hold, memory and disk.",
                size,
            ),
            (
                "modproxy_cache_entries",
                "gauge",
                "URLs the store holds.",
                entries as u64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

modproxy_api::declare_module!(Cache);
