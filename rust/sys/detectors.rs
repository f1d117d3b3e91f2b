// SPDX-License-Identifier: GPL-2.0

//! What the kernel's memory bug detectors see of the component's memory.
//!
//! - **KASAN** (generic mode): free pages of the pools and free object slots are poisoned,
//!   as the page and slab allocators poison theirs; a live object is accessible up to the
//!   size its caller asked for, the rest of its slot (or of a large object's pages) is a
//!   redzone. So a read past `kmalloc_decrypted(300)` is reported as slab-out-of-bounds and
//!   a use after `kfree_decrypted()` as slab-use-after-free, as for kmalloc. The
//!   component's own accesses come after the unpoisoning (zeroing on hand-out) or are
//!   marked (`Quiet`, with the torture test). Reports carry no allocation or free stack:
//!   KASAN keeps those in the metadata of slab caches, which the component's slabs are
//!   not.
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
/// Whether kmemleak registers objects.
const KMEMLEAK: bool = cfg!(CONFIG_DEBUG_KMEMLEAK);

fn poison(addr: usize, len: usize, what: u32) {
    if KASAN {
        // SAFETY: Only KASAN's shadow of the range changes, never the memory.
        unsafe { bindings::ua_kasan_poison(addr, len, what) }
    }
}

fn unpoison(addr: usize, len: usize) {
    if KASAN {
        // SAFETY: Only KASAN's shadow of the range changes, never the memory.
        unsafe { bindings::ua_kasan_unpoison(addr, len) }
    }
}

/// `nr` pages at `pfn` go back to a pool: any access through the direct map is a
/// use-after-free.
#[inline]
pub(crate) fn pages_freed(pfn: Pfn, nr: usize) {
    poison(pfn.virt(), nr * PAGE_SIZE, bindings::UA_POISON_FREE_PAGES);
}

/// `nr` pages at `pfn` are handed out (or about to be zeroed for it).
#[inline]
pub(crate) fn pages_allocated(pfn: Pfn, nr: usize) {
    unpoison(pfn.virt(), nr * PAGE_SIZE);
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
/// large object's pages), is handed out: the `size` bytes are accessible, the rest is a
/// `redzone`. Registered with kmemleak with `register`.
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
    if KMEMLEAK && register {
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
}

/// The large object at `addr` is being freed: unregistered with `registered` (its pages
/// are poisoned when they reach the pool).
#[inline]
pub(crate) fn large_object_freed(addr: usize, registered: bool) {
    unregister(addr, registered);
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
