//! Looking up providers registered by other modules.

use super::host::host;
use crate::abi::{AbiProvider, AbiStr};

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
