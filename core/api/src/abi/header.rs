//! What a module's entry symbol hands the loader: read before anything
//! else, so that a module built against another ABI is refused unread.

use super::host::HostApi;
use super::values::AbiStr;
use std::ffi::c_void;

/// "modproxy" in ASCII: tells a modproxy module from a random shared object.
pub const MAGIC: u64 = u64::from_be_bytes(*b"modproxy");
/// The one symbol every module exports (type [`ModuleEntryFn`]).
pub const ENTRY_SYMBOL: &[u8] = b"modproxy_module_entry_v1\0";

/// What a module's entry symbol returns. Read in this order: magic,
/// abi_version, layout_hash; only then anything else.
#[repr(C)]
pub struct ModuleHeader {
    pub magic: u64,
    /// [`AbiVersion::encode`]: the major in the low 16 bits, the minor in
    /// the high ones (modules built before minors existed say 1: 1.0).
    pub abi_version: u32,
    pub layout_hash: u64,
    pub name: AbiStr,
    pub version: AbiStr,
    /// Registers hooks, providers and sections. Returns the module's data
    /// pointer, or null after writing the reason to `errors`.
    pub init:
        extern "C" fn(host: *const HostApi, reg: *mut c_void, errors: *mut c_void) -> *const c_void,
}

// SAFETY: the header is immutable static data.
unsafe impl Sync for ModuleHeader {}

pub type ModuleEntryFn = extern "C" fn() -> *const ModuleHeader;
