//! Converts wakers between `std::task::Waker` and the C [`AbiWaker`] so a
//! future can be polled across the boundary without allocating.
//!
//! The common path costs nothing: the host lends its waker as an AbiWaker
//! pointing at its own `Waker`; the module turns that into a std `Waker`
//! whose data is the AbiWaker pointer; when the module calls back into a
//! host service, the host recognises its own vtable and uses its `Waker`
//! directly. Only a module that *clones* the waker pays one allocation.
//!
//! Each side has its own copy of these statics (each binary links its own
//! modproxy-api), which is exactly what makes "is this mine?" a pointer
//! comparison.

use crate::abi::{AbiWaker, AbiWakerVTable};
use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

// --- std Waker exposed as AbiWaker (data: *const Waker) -------------------

static LENT_STD: AbiWakerVTable = AbiWakerVTable {
    clone: lent_std_clone,
    wake: lent_std_wake_by_ref,
    wake_by_ref: lent_std_wake_by_ref,
    drop: noop,
};
static OWNED_STD: AbiWakerVTable = AbiWakerVTable {
    clone: lent_std_clone,
    wake: owned_std_wake,
    wake_by_ref: lent_std_wake_by_ref,
    drop: owned_std_drop,
};

extern "C" fn noop(_: *const c_void) {}

extern "C" fn lent_std_clone(data: *const c_void) -> AbiWaker {
    // SAFETY: `data` is a `*const Waker` per LENT_STD/OWNED_STD's contract,
    // valid for the call.
    let waker = unsafe { &*(data as *const Waker) };
    let boxed = Box::into_raw(Box::new(waker.clone()));
    AbiWaker {
        data: boxed as *const c_void,
        vtable: &OWNED_STD,
    }
}
extern "C" fn lent_std_wake_by_ref(data: *const c_void) {
    // SAFETY: as in lent_std_clone.
    unsafe { &*(data as *const Waker) }.wake_by_ref();
}
extern "C" fn owned_std_wake(data: *const c_void) {
    // SAFETY: OWNED_STD data was made by Box::into_raw in lent_std_clone and
    // is released exactly once (wake or drop).
    unsafe { Box::from_raw(data as *mut Waker) }.wake();
}
extern "C" fn owned_std_drop(data: *const c_void) {
    // SAFETY: as in owned_std_wake.
    drop(unsafe { Box::from_raw(data as *mut Waker) });
}

// --- AbiWaker exposed as std Waker ------------------------------------------

/// data: a lent `*const AbiWaker` (valid only during the poll that lent it).
static FROM_LENT_ABI: RawWakerVTable = RawWakerVTable::new(
    lent_abi_clone,
    lent_abi_wake_by_ref,
    lent_abi_wake_by_ref,
    |_| {},
);
/// data: a `Box<AbiWaker>` owned by this side.
static FROM_OWNED_ABI: RawWakerVTable = RawWakerVTable::new(
    lent_abi_clone,
    owned_abi_wake,
    lent_abi_wake_by_ref,
    owned_abi_drop,
);

unsafe fn lent_abi_clone(data: *const ()) -> RawWaker {
    // SAFETY: data is a valid AbiWaker (lent or boxed) per both vtables.
    let abi = unsafe { &*(data as *const AbiWaker) };
    // SAFETY: the AbiWaker's vtable is valid for its lifetime.
    let owned = (unsafe { &*abi.vtable }.clone)(abi.data);
    RawWaker::new(Box::into_raw(Box::new(owned)) as *const (), &FROM_OWNED_ABI)
}
unsafe fn lent_abi_wake_by_ref(data: *const ()) {
    // SAFETY: as in lent_abi_clone.
    let abi = unsafe { &*(data as *const AbiWaker) };
    // SAFETY: as in lent_abi_clone.
    (unsafe { &*abi.vtable }.wake_by_ref)(abi.data);
}
unsafe fn owned_abi_wake(data: *const ()) {
    // SAFETY: FROM_OWNED_ABI data is a Box<AbiWaker> released exactly once.
    let abi = unsafe { Box::from_raw(data as *mut AbiWaker) };
    // SAFETY: an owned AbiWaker's vtable is valid until wake/drop.
    (unsafe { &*abi.vtable }.wake)(abi.data);
}
unsafe fn owned_abi_drop(data: *const ()) {
    // SAFETY: as in owned_abi_wake.
    let abi = unsafe { Box::from_raw(data as *mut AbiWaker) };
    // SAFETY: as in owned_abi_wake.
    (unsafe { &*abi.vtable }.drop)(abi.data);
}

/// Lends the waker of `cx` as an [`AbiWaker`] for one call across the boundary.
pub fn lend<R>(cx: &Context<'_>, f: impl FnOnce(*const AbiWaker) -> R) -> R {
    let waker = cx.waker();
    let vtable = waker.vtable();
    if std::ptr::eq(vtable, &FROM_LENT_ABI) || std::ptr::eq(vtable, &FROM_OWNED_ABI) {
        // Already a wrapped AbiWaker: hand the original back, unwrapped.
        return f(waker.data() as *const AbiWaker);
    }
    let lent = AbiWaker {
        data: waker as *const Waker as *const c_void,
        vtable: &LENT_STD,
    };
    f(&lent)
}

/// Runs `f` with a `Context` whose waker is the lent `abi` waker.
///
/// # Safety
/// `abi` must point to a valid AbiWaker for the duration of the call.
pub unsafe fn with_context<R>(abi: *const AbiWaker, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
    // SAFETY: the caller guarantees `abi` is valid now.
    let abi_ref = unsafe { &*abi };
    if std::ptr::eq(abi_ref.vtable, &LENT_STD) || std::ptr::eq(abi_ref.vtable, &OWNED_STD) {
        // Our own waker came back: use it as is.
        // SAFETY: LENT_STD/OWNED_STD data is a `*const Waker` alive for the call.
        let waker = unsafe { &*(abi_ref.data as *const Waker) };
        return f(&mut Context::from_waker(waker));
    }
    // SAFETY: FROM_LENT_ABI's functions uphold the RawWaker contract for a
    // lent AbiWaker; ManuallyDrop keeps us from "dropping" what we borrowed.
    let waker = ManuallyDrop::new(unsafe {
        Waker::from_raw(RawWaker::new(abi as *const (), &FROM_LENT_ABI))
    });
    f(&mut Context::from_waker(&waker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // A "foreign" waker, as another binary would lend it: counts wakes.
    static WAKES: AtomicUsize = AtomicUsize::new(0);
    static CLONES: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn f_clone(data: *const c_void) -> AbiWaker {
        CLONES.fetch_add(1, Ordering::SeqCst);
        AbiWaker {
            data,
            vtable: &FOREIGN,
        }
    }
    extern "C" fn f_wake(_: *const c_void) {
        WAKES.fetch_add(1, Ordering::SeqCst);
    }
    static FOREIGN: AbiWakerVTable = AbiWakerVTable {
        clone: f_clone,
        wake: f_wake,
        wake_by_ref: f_wake,
        drop: noop,
    };

    #[test]
    fn a_foreign_waker_is_lent_back_unwrapped_and_clones_once() {
        let foreign = AbiWaker {
            data: std::ptr::null(),
            vtable: &FOREIGN,
        };
        // SAFETY: `foreign` lives for the whole call.
        let cloned = unsafe {
            with_context(&foreign, |cx| {
                cx.waker().wake_by_ref();
                // Calling back across the boundary hands the original back.
                lend(cx, |again| assert!(std::ptr::eq(again, &foreign)));
                cx.waker().clone()
            })
        };
        assert_eq!(CLONES.load(Ordering::SeqCst), 1);
        cloned.wake();
        assert_eq!(WAKES.load(Ordering::SeqCst), 2);
    }
}
