// SPDX-License-Identifier: GPL-2.0

//! What the kernel's memory bug detectors see of the component's memory.
//!
//! - **KASAN** (generic mode): free pages of the pools and free object slots are poisoned,
//!   as the page and slab allocators poison theirs; a live object is accessible up to the
//!   size its caller asked for, the rest of its slot (or of a large object's pages) is a
//!   redzone. So a read past `kmalloc_decrypted(300)` is reported as slab-out-of-bounds and
//!   a use after `kfree_decrypted()` as slab-use-after-free, as for kmalloc. The
//!   component's own accesses come after the unpoisoning (zeroing on hand-out) or are
//!   marked (`Quiet`, with the torture test). A report about an object or pages the
//!   component handed out ends with the stacks of their last allocation and free, which
//!   `detectors.c` keeps in a side table (SLUB keeps them in its caches' metadata).
//! - **KMSAN**: rustc does not instrument the component, so its stores (zeroing among them)
//!   leave KMSAN's shadow as it was. Memory handed out is uninitialised to KMSAN unless the
//!   API promises it zeroed: objects asked for with `__GFP_ZERO`, pages always but from
//!   `unmapped_alloc_noscrub()` without it; whatever the component wrote into it does not
//!   count, as with the page and slab allocators. Freed memory becomes uninitialised
//!   again, with the free as its origin. A C user reading what it never wrote is then
//!   reported.
//! - **kmemleak**: objects of the system-wide caches are registered when handed out and
//!   unregistered when freed, so that a lost one is reported with its allocation stack and
//!   kmemleak scans their contents for pointers. Pages are not registered, as alloc_pages()
//!   does not register them.
//!
//! Each function is empty unless its detector is built in. None of them reads or writes
//! the memory it names: they change the detectors' view of it.

use super::{Pfn, PAGE_SIZE};
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
use core::marker::PhantomData;
use kernel::bindings;

/// Whether KASAN's shadow is kept (generic mode only, see `detectors.c`).
const KASAN: bool = cfg!(CONFIG_KASAN_GENERIC);
/// Whether KMSAN's shadow is kept.
const KMSAN: bool = cfg!(CONFIG_KMSAN);
/// Whether kmemleak registers objects.
const KMEMLEAK: bool = cfg!(CONFIG_DEBUG_KMEMLEAK);

fn poison(addr: usize, len: usize, what: u32) {
    if KASAN && !crate::mutant::is(crate::mutant::Mutant::NoKasan) {
        // SAFETY: Only KASAN's shadow of the range changes, never the memory.
        unsafe { bindings::ua_kasan_poison(addr, len, what) }
    }
}

fn unpoison(addr: usize, len: usize) {
    if KASAN && !crate::mutant::is(crate::mutant::Mutant::NoKasan) {
        // SAFETY: Only KASAN's shadow of the range changes, never the memory.
        unsafe { bindings::ua_kasan_unpoison(addr, len) }
    }
}

/// KASAN: the `len` bytes at `addr` were just allocated (`alloc`) or freed by the current
/// task; its stack is printed with a report about them (see `detectors.c`).
fn track(addr: usize, len: usize, alloc: bool) {
    if KASAN {
        // SAFETY: Records the current stack for the range in the component's own side
        // table; the memory is not touched.
        unsafe { bindings::ua_kasan_track(addr, len, alloc) }
    }
}

/// KMSAN: the `len` bytes at `addr` hold nothing their owner may read; the current stack
/// is their origin in a report.
fn uninit(addr: usize, len: usize, gfp: bindings::gfp_t) {
    if KMSAN {
        // SAFETY: Only KMSAN's shadow and origins of the range change, never the memory;
        // `gfp` only limits how the stack depot may allocate.
        unsafe { bindings::ua_kmsan_uninit(addr, len, gfp) }
    }
}

/// KMSAN: the `len` bytes at `addr` hold what the component's Rust wrote into them, and C
/// code may read them: a caller, or a `memcmp()` the compiler emitted for Rust.
pub(crate) fn written(addr: usize, len: usize) {
    if KMSAN {
        // SAFETY: Only KMSAN's shadow of the range changes, never the memory.
        unsafe { bindings::ua_kmsan_init(addr, len) }
    }
}

/// Runs `body`, the body of a function of the C API, and tells KMSAN that the value it
/// returns to its C caller is initialised. The caller takes that value's shadow from
/// KMSAN's per-task context, where uninstrumented Rust leaves none: without this it would
/// find the shadow of whatever the last instrumented C function returned (often a C
/// helper the component called on memory KMSAN never saw it write) and report the
/// component's pointers as uninitialised. Marked after `body`'s temporaries are dropped,
/// so that no C call comes between the mark and the return.
#[inline(always)]
pub(crate) fn to_c<T>(body: impl FnOnce() -> T) -> T {
    let value = body();
    if KMSAN {
        // SAFETY: Only KMSAN's shadow of the current context's return value changes.
        unsafe { bindings::ua_kmsan_returning() }
    }
    value
}

/// KMSAN: the `len` bytes at `addr` go to a new owner, `zeroed` by the API's promise or
/// not (see the module's documentation); `gfp` is the allocation's.
fn fresh(addr: usize, len: usize, zeroed: bool, gfp: bindings::gfp_t) {
    if zeroed {
        written(addr, len);
    } else {
        uninit(addr, len, gfp);
    }
}

/// `nr` pages at `pfn` go back to a pool: any access through the direct map is a
/// use-after-free, and nothing in them is initialised for a next owner.
#[inline]
pub(crate) fn pages_freed(pfn: Pfn, nr: usize) {
    poison(pfn.virt(), nr * PAGE_SIZE, bindings::UA_POISON_FREE_PAGES);
    uninit(pfn.virt(), nr * PAGE_SIZE, bindings::GFP_ATOMIC);
}

/// `nr` pages at `pfn` are handed out (or about to be zeroed for it) to a caller that
/// asked with `gfp`; `zeroed` if they are zero by the API's promise (every page API
/// but `unmapped_alloc_noscrub()` without `__GFP_ZERO`).
#[inline]
pub(crate) fn pages_allocated(pfn: Pfn, nr: usize, zeroed: bool, gfp: bindings::gfp_t) {
    unpoison(pfn.virt(), nr * PAGE_SIZE);
    fresh(pfn.virt(), nr * PAGE_SIZE, zeroed, gfp);
    track(pfn.virt(), nr * PAGE_SIZE, true);
}

/// `nr` pages at `pfn`, handed out before, are freed by their user: as
/// [`pages_freed`], and the free's stack is kept for reports.
#[inline]
pub(crate) fn pages_returned(pfn: Pfn, nr: usize) {
    pages_freed(pfn, nr);
    track(pfn.virt(), nr * PAGE_SIZE, false);
}

/// The `nr` pages at `pfn` go back to the page allocator: their stacks are forgotten.
#[inline]
pub(crate) fn block_released(pfn: Pfn, nr: usize) {
    if KASAN {
        // SAFETY: Drops the range from the component's own side table.
        unsafe { bindings::ua_kasan_forget(pfn.virt(), nr * PAGE_SIZE) }
    }
}

/// A new slab of `len` bytes at `addr`: every slot free.
#[inline]
pub(crate) fn slab_created(addr: usize, len: usize) {
    poison(addr, len, bindings::UA_POISON_FREE_OBJECT);
}

/// The whole slot of `len` bytes of the live object at `addr` may be accessed: by the
/// component zeroing it for its new owner, or by the owner once `ksize_decrypted()`
/// gave it the slot's size.
#[inline]
pub(crate) fn slot_usable(addr: usize, len: usize) {
    unpoison(addr, len);
}

/// What follows a live allocation in the bytes that are its own.
pub(crate) enum Redzone {
    /// The rest of an object's slot in a slab.
    Slot,
    /// The rest of a large object's pages.
    Pages,
}

/// An object of `size` bytes at `addr`, in `len` bytes that are its own (its slot, or a
/// large object's pages), is handed out to a caller that asked with `gfp`: the `size`
/// bytes are accessible, the rest is a `redzone`. Registered with kmemleak with
/// `register`.
#[inline]
pub(crate) fn handed_out(
    addr: usize,
    size: usize,
    len: usize,
    redzone: Redzone,
    gfp: bindings::gfp_t,
    register: bool,
) {
    let what = match redzone {
        Redzone::Slot => bindings::UA_POISON_OBJECT_REDZONE,
        Redzone::Pages => bindings::UA_POISON_PAGE_REDZONE,
    };
    poison(addr, len, what);
    unpoison(addr, size);
    fresh(addr, len, gfp & bindings::__GFP_ZERO != 0, gfp);
    track(addr, len, true);
    self::register(addr, size, gfp, register);
}

/// Registers the object of `size` bytes at `addr` with kmemleak, with `register`.
fn register(addr: usize, size: usize, gfp: bindings::gfp_t, register: bool) {
    if KMEMLEAK && register && !crate::mutant::is(crate::mutant::Mutant::NoKmemleak) {
        // SAFETY: Registers the range with kmemleak, which reads it while scanning: the
        // object is mapped (decrypted memory) until it is freed, which unregisters it.
        unsafe { bindings::ua_kmemleak_alloc(addr, size, gfp) }
    }
}

/// Unregisters the object at `addr` from kmemleak, with `registered`.
fn unregister(addr: usize, registered: bool) {
    if KMEMLEAK && registered {
        // SAFETY: Unregisters the object at `addr`; kmemleak warns about an address
        // it does not know and changes nothing then.
        unsafe { bindings::ua_kmemleak_free(addr) }
    }
}

/// The object at `addr`, whose slot is `slot` bytes, is freed (its free was checked):
/// unregistered with `registered`, and any access becomes a use-after-free.
#[inline]
pub(crate) fn object_freed(addr: usize, slot: usize, registered: bool) {
    unregister(addr, registered);
    poison(addr, slot, bindings::UA_POISON_FREE_OBJECT);
    uninit(addr, slot, bindings::GFP_ATOMIC);
    track(addr, slot, false);
}

/// The large object at `addr` is being freed: unregistered with `registered` (its pages
/// are poisoned when they reach the pool).
#[inline]
pub(crate) fn large_object_freed(addr: usize, registered: bool) {
    unregister(addr, registered);
}

/// The free of the large object of `len` bytes at `addr` was refused after
/// [`large_object_freed`]: its user keeps it, registered again with `registered`.
pub(crate) fn large_object_kept(addr: usize, len: usize, registered: bool) {
    register(addr, len, bindings::GFP_ATOMIC, registered);
}

/// KASAN reports off for the current task while it lives: for accesses that are not a
/// user's, such as the torture test's host writing free shared memory. Not `Send`: the
/// count is the task's.
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
pub(crate) struct Quiet(PhantomData<*mut ()>);

#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
impl Quiet {
    /// Turns the current task's KASAN reports off until the guard is dropped.
    pub(crate) fn new() -> Self {
        // SAFETY: Counted per task; `drop` undoes it.
        unsafe { bindings::ua_kasan_quiet_begin() };
        Self(PhantomData)
    }
}

#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
impl Drop for Quiet {
    fn drop(&mut self) {
        // SAFETY: Undoes `new`.
        unsafe { bindings::ua_kasan_quiet_end() };
    }
}
