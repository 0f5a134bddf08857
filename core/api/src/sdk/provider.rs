//! Providers: registering one ([`Registrar::provider`]) and looking up
//! those other modules registered. Every family's table (`abi::proxy`,
//! `abi::balancer`, `abi::lbmethod`, `abi::metrics`) goes through these.

use super::host::host;
use super::module::{Module, Registrar};
use crate::abi::{AbiProvider, AbiStr};
use std::ffi::c_void;

impl<M: Module> Registrar<M> {
    /// Registers provider `group:name`: `table` is its C face (a
    /// size-prefixed table of the family in `abi/`, leaked: modules live
    /// as long as the process), `data` what its entries get first.
    pub(crate) fn provider<T: 'static, D: Sync + 'static>(
        &mut self,
        group: &'static str,
        name: &str,
        table: T,
        data: &'static D,
    ) {
        let table: &'static T = Box::leak(Box::new(table));
        let (table, data) = (
            table as *const T as *const c_void,
            data as *const D as *const c_void,
        );
        self.provider_raw(group, name, 1, table, data);
    }
}

/// Whether a provider's table reaches the entry at `offset` (a function
/// pointer): a module built for an older minor has a shorter table, whose
/// first field says how long it is.
///
/// # Safety
/// `table` points to a table of the family `T`, which starts with its size.
pub(crate) unsafe fn table_reaches<T>(table: *const T, offset: usize) -> bool {
    // SAFETY: guaranteed by the caller: every family's table starts with `size: usize`.
    let size = unsafe { *(table as *const usize) };
    size >= offset + std::mem::size_of::<usize>()
}

/// A (group, name) provider, untyped; the typed handles in `proxy` and
/// `lb` wrap it.
pub(crate) fn lookup(group: &str, name: &str) -> Option<AbiProvider> {
    let mut out = AbiProvider {
        vtable: std::ptr::null(),
        data: std::ptr::null(),
        version: 0,
    };
    let found = (host().lookup_provider)(
        AbiStr::new(group.as_bytes()),
        AbiStr::new(name.as_bytes()),
        &mut out,
    );
    found.then_some(out)
}

/// Whether any module registered `(group, name)`.
pub fn exists(group: &str, name: &str) -> bool {
    lookup(group, name).is_some()
}

/// The names registered in `group` (e.g. every loaded lbmethod), sorted.
pub fn names(group: &str) -> Vec<String> {
    extern "C" fn collect(ud: *mut std::ffi::c_void, name: AbiStr, _: AbiStr) {
        // SAFETY: `ud` is the Vec below, alive for the call; `name` is
        // valid for this call.
        let (names, name) = unsafe { (&mut *(ud as *mut Vec<String>), name.to_str_lossy()) };
        names.push(name.into_owned());
    }
    let mut names: Vec<String> = Vec::new();
    (host().providers_visit)(
        AbiStr::new(group.as_bytes()),
        collect,
        &mut names as *mut Vec<String> as *mut std::ffi::c_void,
    );
    names.sort();
    names
}

/// The module (enabled or not) whose descriptor says it provides
/// `(group, name)`, for messages such as "run `modproxy enmod …`".
pub fn offered_by(group: &str, name: &str) -> Option<String> {
    let module =
        (host().provider_module)(AbiStr::new(group.as_bytes()), AbiStr::new(name.as_bytes()));
    // SAFETY: the host keeps the names it returns alive for the process.
    let module = unsafe { module.to_str_lossy() };
    (!module.is_empty()).then(|| module.into_owned())
}

/// [`crate::suggest::missing_provider`] for `(group, name)`, with the names
/// loaded in `group` and the module that offers it.
pub fn missing(group: &str, what: &str, name: &str, show: fn(&str) -> String) -> String {
    let module = offered_by(group, name);
    crate::suggest::missing_provider(what, name, &names(group), module.as_deref(), show)
}
