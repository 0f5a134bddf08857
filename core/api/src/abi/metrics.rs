//! The metrics family (group `metrics`, one name per module): a module's
//! lines in the server's Prometheus text.

use super::values::HeaderVisitor;
use std::ffi::c_void;

pub const GROUP: &str = "metrics";

/// The C face of a metrics source. Fields are only ever appended.
#[repr(C)]
pub struct MetricsV1 {
    pub size: usize,
    /// Writes Prometheus text lines (each ending in `\n`) through
    /// `visitor(ud, text, "")`, in as many pieces as it likes.
    pub render: extern "C" fn(data: *const c_void, visitor: HeaderVisitor, ud: *mut c_void),
}
