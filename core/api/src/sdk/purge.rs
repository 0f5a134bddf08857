//! The purge family, safe side (ABI 1.5): a cache implements [`Purger`]
//! and registers it; the balancer manager reaches it through
//! [`PurgeHandle`]. The C face is [`crate::abi::purge`].

pub use crate::abi::purge::{PURGE_GROUP, PURGE_NAME};

use crate::abi::purge::PurgeV1;
use crate::abi::AbiStr;
use crate::sdk::module::Registrar;
use crate::sdk::provider;
use crate::sdk::shim::shim_fn;
use crate::sdk::Module;
use std::ffi::c_void;

/// Implemented by a cache.
pub trait Purger: Send + Sync + 'static {
    /// Drops URL `key`'s stored variants (`exact`), or those of every URL
    /// starting with `key`; how many URLs.
    fn purge(&self, key: &str, exact: bool) -> u64;
}

shim_fn! {
    fn purge_shim<P: Purger>(data: *const c_void, key: AbiStr, exact: u32) -> u64 = 0;
    {
        // SAFETY: `data` is the &'static P registered in register_purger;
        // the key is valid for the call.
        let (p, key) = unsafe { (&*(data as *const P), key.to_str_lossy()) };
        p.purge(&key, exact != 0)
    }
}

/// Registers the module's purge.
pub fn register_purger<M: Module, P: Purger>(r: &mut Registrar<M>, purger: &'static P) {
    let table = PurgeV1 {
        size: std::mem::size_of::<PurgeV1>(),
        purge: purge_shim::<P>,
    };
    r.provider(PURGE_GROUP, PURGE_NAME, table, purger);
}

type PurgeFn = extern "C" fn(*const c_void, AbiStr, u32) -> u64;

/// A cache's purge, as another module sees it.
#[derive(Clone, Copy)]
pub struct PurgeHandle {
    data: *const c_void,
    purge: PurgeFn,
}
// SAFETY: providers are Send + Sync by their traits and live forever.
unsafe impl Send for PurgeHandle {}
// SAFETY: as above.
unsafe impl Sync for PurgeHandle {}

impl PurgeHandle {
    pub fn lookup() -> Option<PurgeHandle> {
        let p = provider::lookup(PURGE_GROUP, PURGE_NAME)?;
        // SAFETY: registered by register_purger; `purge` has been in the
        // table since it first appeared (1.5).
        let purge = unsafe { (*(p.vtable as *const PurgeV1)).purge };
        Some(PurgeHandle {
            data: p.data,
            purge,
        })
    }
    pub fn purge(&self, key: &str, exact: bool) -> u64 {
        (self.purge)(self.data, AbiStr::new(key.as_bytes()), u32::from(exact))
    }
}
