//! Body chunks across the boundary without copying: a `Bytes` leaves as an
//! [`AbiChunk`] carrying its own drop function and comes back as a `Bytes`
//! whose owner releases it on the side that allocated it.

use crate::abi::AbiChunk;
use bytes::Bytes;
use std::ffi::c_void;

/// Hands `bytes` over; the receiver must eventually call [`into_bytes`] or
/// [`release`] on it.
pub fn from_bytes(bytes: Bytes) -> AbiChunk {
    if bytes.is_empty() {
        return AbiChunk::empty();
    }
    let ptr = bytes.as_ptr();
    let len = bytes.len();
    AbiChunk {
        ptr,
        len,
        owner: Box::into_raw(Box::new(bytes)) as *mut c_void,
        drop_fn: Some(drop_bytes),
    }
}

extern "C" fn drop_bytes(owner: *mut c_void) {
    // SAFETY: `owner` is the Box<Bytes> leaked in `from_bytes`, released once.
    drop(unsafe { Box::from_raw(owner as *mut Bytes) });
}

struct Owner(AbiChunk);

// SAFETY: chunks only carry immutable bytes whose owner may be dropped from
// any thread (both sides' owners are `Bytes`, which is Send + Sync).
unsafe impl Send for Owner {}
// SAFETY: as above.
unsafe impl Sync for Owner {}

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: ptr/len describe bytes kept alive by `owner` until Drop.
        unsafe {
            crate::abi::AbiStr {
                ptr: self.0.ptr,
                len: self.0.len,
            }
            .as_bytes()
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        release(std::mem::replace(&mut self.0, AbiChunk::empty()));
    }
}

/// Takes ownership of a received chunk as `Bytes`, zero-copy.
///
/// # Safety
/// `chunk` must have been made by [`from_bytes`] (on either side) and not
/// used since.
pub unsafe fn into_bytes(chunk: AbiChunk) -> Bytes {
    if chunk.drop_fn.is_none() {
        return Bytes::new();
    }
    Bytes::from_owner(Owner(chunk))
}

/// Frees a chunk that will not be used.
pub fn release(chunk: AbiChunk) {
    if let Some(drop_fn) = chunk.drop_fn {
        drop_fn(chunk.owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_without_copying() {
        let original = Bytes::from(vec![7u8; 4096]);
        let ptr = original.as_ptr();
        // SAFETY: the chunk was just made by from_bytes.
        let back = unsafe { into_bytes(from_bytes(original)) };
        assert_eq!(back.as_ptr(), ptr);
        assert_eq!(back.len(), 4096);
    }
}
