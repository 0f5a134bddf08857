//! The purge family (ABI 1.5; group `cache`, name `purge`): a cache module
//! drops stored responses when another module asks (the balancer
//! manager's API, for operators).

use super::values::AbiStr;
use std::ffi::c_void;

pub const PURGE_GROUP: &str = "cache";
pub const PURGE_NAME: &str = "purge";

/// The C face of a cache's purge. Fields are only ever appended.
#[repr(C)]
pub struct PurgeV1 {
    pub size: usize,
    /// Drops the stored variants of URL `key` (`exact` = 1), or of every
    /// URL that starts with it (`exact` = 0); returns how many URLs.
    /// OWNERSHIP: `key` is borrowed for the call.
    pub purge: extern "C" fn(data: *const c_void, key: AbiStr, exact: u32) -> u64,
}
