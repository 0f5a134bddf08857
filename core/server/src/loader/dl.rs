//! Opens one module's shared object and checks its header before trusting
//! anything in it: magic, ABI version, layout hash, then name and init.
//!
//! Libraries are opened with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE and never
//! closed: unloading a library that touched a thread_local is unreliable
//! (DESIGN.md, fact 7), so a new module set means a graceful restart.

use libloading::os::unix::{Library, Symbol};
use modproxy_api::abi::{
    AbiStr, ModuleEntryFn, ModuleHeader, ABI_VERSION, ENTRY_SYMBOL, LAYOUT_HASH, MAGIC,
};
use std::path::Path;

/// A module's checked header, from a library that stays loaded forever.
pub struct Opened {
    pub header: &'static ModuleHeader,
    pub name: String,
    pub version: String,
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
    let abi_version = unsafe { std::ptr::addr_of!((*header_ptr).abi_version).read() };
    if abi_version != ABI_VERSION {
        return Err(format!(
            "module {module}: built for module ABI version {abi_version}, but this server speaks version {ABI_VERSION}; rebuild the module against this modproxy-api"
        ));
    }
    // SAFETY: same ABI version, so the whole header has our layout.
    let header: &'static ModuleHeader = unsafe { &*header_ptr };
    if header.layout_hash != LAYOUT_HASH {
        return Err(format!(
            "module {module}: ABI layout hash {:#x} differs from the server's {LAYOUT_HASH:#x} (same version, different types); rebuild the module against this modproxy-api",
            header.layout_hash
        ));
    }
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
    })
}

fn text(s: AbiStr) -> String {
    // SAFETY: header strings point at the module's static literals.
    unsafe { s.to_str_lossy() }.into_owned()
}
