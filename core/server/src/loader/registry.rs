//! What the loaded modules registered: hooks per pipeline phase in run
//! order, providers by (group, name), and configuration section claims.
//! Built while modules init, then frozen for the life of the process.

use modproxy_api::abi::{AbiProvider, HookKind, SectionFn};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::OnceLock;

/// One registered hook.
#[derive(Clone, Copy)]
pub struct Hook {
    pub module: usize,
    pub order: i32,
    pub func: *const c_void,
    pub data: *const c_void,
}

// SAFETY: `func` and `data` point at module code and leaked module data that
// live for the whole process and are only read.
unsafe impl Send for Hook {}
// SAFETY: as above.
unsafe impl Sync for Hook {}

pub struct Provider {
    pub module: usize,
    pub raw: AbiProvider,
}

pub struct Claim {
    pub module: usize,
    pub path: String,
    pub func: SectionFn,
    pub data: *const c_void,
}

/// A loaded module as operators see it (`modproxy modules`).
pub struct ModuleInfo {
    pub name: String,
    pub version: String,
    pub abi_version: modproxy_api::abi::AbiVersion,
}

#[derive(Default)]
pub struct Registry {
    pub modules: Vec<ModuleInfo>,
    /// Indexed by `HookKind as usize`: a request looks its hooks up in
    /// every phase, so no hashing.
    hooks: [Vec<Hook>; HookKind::ALL.len()],
    pub providers: HashMap<(String, String), Provider>,
    pub claims: Vec<Claim>,
}

// SAFETY: the raw pointers are module statics and
// leaked module data that live for the whole process and are only read.
unsafe impl Send for Registry {}
// SAFETY: see above.
unsafe impl Sync for Registry {}

static FROZEN: OnceLock<Registry> = OnceLock::new();

impl Registry {
    /// Adds a hook, keeping each phase sorted by order, then load order.
    pub fn add_hook(&mut self, kind: HookKind, hook: Hook) {
        let list = &mut self.hooks[kind as usize];
        let at = list.partition_point(|h| h.order <= hook.order);
        list.insert(at, hook);
    }

    pub fn hooks(&self, kind: HookKind) -> &[Hook] {
        &self.hooks[kind as usize]
    }

    /// Names of the hooks and providers each module registered, for `modproxy modules`.
    pub fn describe(&self, module: usize) -> (Vec<&'static str>, Vec<String>) {
        let hooks = HookKind::ALL
            .iter()
            .filter(|k| self.hooks(**k).iter().any(|h| h.module == module))
            .map(|k| k.name())
            .collect();
        let mut providers: Vec<String> = self
            .providers
            .iter()
            .filter(|(_, p)| p.module == module)
            .map(|((g, n), _)| format!("{g}:{n}"))
            .collect();
        providers.sort();
        (hooks, providers)
    }

    /// Makes the registry visible to provider lookups from modules.
    pub fn freeze(self) -> &'static Registry {
        if FROZEN.set(self).is_err() {
            panic!("the module registry can only be frozen once per process");
        }
        frozen().expect("just set")
    }
}

/// The registry, once modules finished registering.
pub fn frozen() -> Option<&'static Registry> {
    FROZEN.get()
}
