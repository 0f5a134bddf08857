//! The values that cross the boundary in every family: borrowed text,
//! owned byte chunks, wakers and futures, lent header lists.
//!
//! Ownership is noted on each type. The rule behind all of them: what one
//! side allocates, that side frees, through the drop function that travels
//! with it.

use std::ffi::c_void;

/// Borrowed bytes (usually UTF-8 text). OWNERSHIP: borrowed from the caller.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AbiStr {
    pub ptr: *const u8,
    pub len: usize,
}

// SAFETY: an AbiStr is a plain (pointer, length) pair; the data it points to
// is only read, and those placed in statics point to `'static` literals.
unsafe impl Sync for AbiStr {}
// SAFETY: as above; no interior mutability, reading is thread-safe.
unsafe impl Send for AbiStr {}

impl AbiStr {
    pub const EMPTY: AbiStr = AbiStr::from_static("");

    pub const fn from_static(s: &'static str) -> AbiStr {
        AbiStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }
    pub fn new(b: &[u8]) -> AbiStr {
        AbiStr {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }
    /// # Safety
    /// `ptr..ptr+len` must be valid, initialised and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    /// The bytes as text, or "" when they are not UTF-8.
    ///
    /// # Safety
    /// As [`AbiStr::as_bytes`].
    pub unsafe fn as_str<'a>(self) -> &'a str {
        // SAFETY: forwarded to the caller.
        utf8(unsafe { self.as_bytes() }).unwrap_or("")
    }
    /// Lossless when the bytes are UTF-8, replacement characters otherwise.
    /// Foreign bytes become `&str` only here, in [`AbiStr::as_str`] and in
    /// [`utf8`], which validates them first: no shim calls
    /// `from_utf8_unchecked` on bytes it has not checked.
    ///
    /// # Safety
    /// As [`AbiStr::as_bytes`].
    pub unsafe fn to_str_lossy<'a>(self) -> std::borrow::Cow<'a, str> {
        // SAFETY: forwarded to the caller.
        String::from_utf8_lossy(unsafe { self.as_bytes() })
    }
}

/// A byte buffer that moves across the boundary without being copied.
/// OWNERSHIP: the holder owns it; dropping it calls `drop_fn(owner)` on the
/// side that allocated it.
#[repr(C)]
pub struct AbiChunk {
    pub ptr: *const u8,
    pub len: usize,
    pub owner: *mut c_void,
    pub drop_fn: Option<extern "C" fn(*mut c_void)>,
}

impl AbiChunk {
    pub const fn empty() -> AbiChunk {
        AbiChunk {
            ptr: std::ptr::null(),
            len: 0,
            owner: std::ptr::null_mut(),
            drop_fn: None,
        }
    }
}

/// A waker that can cross the boundary: the C twin of `std::task::Waker`.
/// OWNERSHIP: a waker handed to a poll function is borrowed for that call;
/// `clone` returns an owned one that must be released with `wake` or `drop`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AbiWaker {
    pub data: *const c_void,
    pub vtable: *const AbiWakerVTable,
}

#[repr(C)]
pub struct AbiWakerVTable {
    pub clone: extern "C" fn(*const c_void) -> AbiWaker,
    pub wake: extern "C" fn(*const c_void),
    pub wake_by_ref: extern "C" fn(*const c_void),
    pub drop: extern "C" fn(*const c_void),
}

/// What a poll function returns while its future is not done.
pub const POLL_PENDING: i32 = i32::MIN;

/// A future owned by the side that made it; the other side polls it.
/// `poll` returns [`POLL_PENDING`] or the final result code; after a result
/// it is not polled again. `drop_fn` is called exactly once.
#[repr(C)]
pub struct AbiFuture {
    pub data: *mut c_void,
    pub poll: Option<extern "C" fn(*mut c_void, *const AbiWaker) -> i32>,
    pub drop_fn: Option<extern "C" fn(*mut c_void)>,
}

impl AbiFuture {
    /// A future that is already complete with `code` (no allocation): used
    /// when a hook declines synchronously.
    pub const fn ready(code: i32) -> AbiFuture {
        AbiFuture {
            data: code as isize as *mut c_void,
            poll: None,
            drop_fn: None,
        }
    }
}

pub type HeaderVisitor = extern "C" fn(ud: *mut c_void, name: AbiStr, value: AbiStr);

/// One field of an [`AbiFieldList`]: byte offsets into its text, the name
/// from `start` to `name_end`, the value from there to `end`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AbiFieldSpan {
    pub start: u32,
    pub name_end: u32,
    pub end: u32,
}

/// A request's fields lent whole (names in lower case, in order).
/// OWNERSHIP: borrowed; valid until the request changes.
#[repr(C)]
pub struct AbiFieldList {
    pub text: AbiStr,
    pub spans: *const AbiFieldSpan,
    pub count: usize,
}

/// `bytes` as text when they are UTF-8. Nearly every string that crosses
/// the boundary is short ASCII (methods, paths, addresses, names), which
/// a word-at-a-time check settles in a fraction of a full validation.
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}
