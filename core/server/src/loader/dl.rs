//! Opens one module's shared object and checks its header before trusting
//! anything in it: magic, ABI version, layout hash, then name and init.
//!
//! Libraries are opened with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE and never
//! closed: unloading a library that touched a thread_local is unreliable
//! (docs/architecture.md, "Facts the design rests on", 7), so a new module set means a graceful restart.

use libloading::os::unix::{Library, Symbol};
use modproxy_api::abi::{
    layout_hash_for, AbiStr, AbiVersion, ModuleEntryFn, ModuleHeader, ENTRY_SYMBOL, MAGIC,
};
use std::path::Path;

/// A module's checked header, from a library that stays loaded forever.
pub struct Opened {
    pub header: &'static ModuleHeader,
    pub name: String,
    pub version: String,
    /// The ABI it was built for: this server's, or an older minor.
    pub abi: AbiVersion,
}

/// Opens `library` for module `module` and validates it. Errors are one
/// line naming the module, what is wrong and what to do.
pub fn open(module: &str, library: &Path) -> Result<Opened, String> {
    if !library.exists() {
        return Err(format!(
            "module {module}: library {} does not exist; build it (cargo build --release) or fix `library` in its descriptor",
            library.display()
        ));
    }
    let flags = libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE;
    // SAFETY: loading runs the library's initialisers. Modules are trusted
    // code chosen by the operator (as with Apache's LoadModule); this is
    // the documented risk of a plug-in system.
    let lib = unsafe { Library::open(Some(library), flags) }
        .map_err(|e| format!("module {module}: cannot load {}: {e}", library.display()))?;
    // SAFETY: the symbol's type is fixed by the ABI; a library lacking it is
    // refused here, before any call.
    let entry: Symbol<ModuleEntryFn> = unsafe { lib.get(ENTRY_SYMBOL) }.map_err(|_| {
        format!(
            "module {module}: {} is not a modproxy module (no `modproxy_module_entry_v1` symbol); rebuild it with modproxy_api::declare_module!",
            library.display()
        )
    })?;
    let header_ptr = entry();
    // Never unloaded (see the file comment): the header and code stay valid.
    std::mem::forget(lib);
    if header_ptr.is_null() {
        return Err(format!(
            "module {module}: its entry function returned no header; the module is broken"
        ));
    }
    // SAFETY: the entry function returns a pointer to a static header. We
    // read only `magic` first, which every version of the ABI places first.
    let magic = unsafe { std::ptr::addr_of!((*header_ptr).magic).read() };
    if magic != MAGIC {
        return Err(format!(
            "module {module}: bad magic number in its header; it was not built with modproxy-api"
        ));
    }
    // SAFETY: the magic matched, and `abi_version` follows it in every version.
    let raw = unsafe { std::ptr::addr_of!((*header_ptr).abi_version).read() };
    let abi = check_version(module, AbiVersion::decode(raw))?;
    // SAFETY: same major, so the header has the layout every minor shares.
    let header: &'static ModuleHeader = unsafe { &*header_ptr };
    check_layout(module, abi, header.layout_hash)?;
    let name = text(header.name);
    if name != module {
        return Err(format!(
            "module {module}: the library declares itself as `{name}`; point the descriptor mods-available/{module}.toml at the right library"
        ));
    }
    Ok(Opened {
        header,
        name,
        version: text(header.version),
        abi,
    })
}

/// The versioning policy of `modproxy_api::abi::version`: the same major,
/// and a minor no newer than ours.
fn check_version(module: &str, abi: AbiVersion) -> Result<AbiVersion, String> {
    let host = AbiVersion::CURRENT;
    if abi.major != host.major {
        return Err(format!(
            "module {module}: built for module ABI {abi}, but this server speaks ABI {host} (another major version, whose layout differs); rebuild the module against this server's modproxy-api"
        ));
    }
    if abi.minor > host.minor {
        return Err(format!(
            "module {module}: needs module ABI {abi}, but this server speaks ABI {host}, which lacks what ABI {abi} added; upgrade modproxy, or rebuild the module against this server's modproxy-api"
        ));
    }
    Ok(abi)
}

/// The module's layout hash must be the one its minor has here: anything
/// else means it was built from a modified modproxy-api.
fn check_layout(module: &str, abi: AbiVersion, found: u64) -> Result<(), String> {
    match layout_hash_for(abi.minor) {
        Some(expected) if expected == found => Ok(()),
        expected => Err(format!(
            "module {module}: ABI layout hash {found:#x} differs from ABI {abi}'s {:#x} (same version, different types: built from a modified modproxy-api?); rebuild the module against this server's modproxy-api",
            expected.unwrap_or_default()
        )),
    }
}

fn text(s: AbiStr) -> String {
    // SAFETY: header strings point at the module's static literals.
    unsafe { s.to_str_lossy() }.into_owned()
}
