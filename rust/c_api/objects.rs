// SPDX-License-Identifier: GPL-2.0

//! The C API of the decrypted object caches: `kmalloc_decrypted()` and dedicated
//! caches, see `include/linux/unmapped_alloc.h`.

use crate::{decrypted, kmalloc, slab, slab::ObjCache, sys};
use core::sync::atomic::{
    AtomicU64,
    Ordering::{AcqRel, Relaxed, Release},
};
use kernel::{bindings, ffi, prelude::*};

/// Atomic allocations the caches could not serve, for the counters.
pub(super) fn atomic_failures() -> u64 {
    kmalloc().map_or(0, |k| {
        k.caches()
            .iter()
            .map(|c| c.stats.atomic_failures.get())
            .sum()
    })
}

/// Closes every cache on the decrypted pages, which the caller shut down: the
/// kmalloc-decrypted family and the dedicated caches (see [`ObjCache::close`]). Sleeps.
pub(super) fn close_all() {
    if let Ok(k) = kmalloc() {
        k.close();
    }
    let Ok(d) = decrypted() else { return };
    let dedicated = d.dedicated();
    for &handle in dedicated.iter() {
        // SAFETY: A handle is in the list from its cache's creation until
        // `kmem_cache_destroy_decrypted()` removes it, under the lock held here, before
        // it frees the cache: the cache is alive.
        unsafe {
            sys::with_cache(
                handle as *mut bindings::kmem_cache_decrypted,
                |c: &ObjCache| c.close(),
            )
        };
    }
}

/// Gives the caches' empty slabs back, for a drain.
pub(super) fn shrink() {
    if let Ok(k) = kmalloc() {
        k.shrink();
    }
}

/// C API: `kmalloc_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn kmalloc_decrypted(size: usize, gfp: bindings::gfp_t) -> *mut ffi::c_void {
    sys::detectors::to_c(|| c_kmalloc(size, gfp, sys::NUMA_NO_NODE))
}

/// C API: `kmalloc_decrypted_node()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn kmalloc_decrypted_node(
    size: usize,
    gfp: bindings::gfp_t,
    nid: ffi::c_int,
) -> *mut ffi::c_void {
    sys::detectors::to_c(|| c_kmalloc(size, gfp, nid))
}

/// Object allocation of the C API.
#[inline(always)]
fn c_kmalloc(size: usize, gfp: bindings::gfp_t, nid: ffi::c_int) -> *mut ffi::c_void {
    kmalloc()
        .ok()
        .and_then(|k| k.alloc(size, nid, gfp))
        .map_or(core::ptr::null_mut(), |a| a as *mut ffi::c_void)
}

/// C API: `kfree_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `p` is only dereferenced once it is known to be a live
/// object of the component; anything else is refused.
#[export]
pub unsafe extern "C" fn kfree_decrypted(p: *const ffi::c_void) {
    if p.is_null() {
        return;
    }
    if let Ok(k) = kmalloc() {
        // Refusals are reported and counted.
        let _ = k.free(p as usize);
    }
}

/// C API: `decrypted_alloc_ready()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn decrypted_alloc_ready() -> bool {
    sys::detectors::to_c(|| kmalloc().is_ok())
}

/// C API: `ksize_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `p` is only looked up among the component's objects,
/// never dereferenced.
#[export]
pub unsafe extern "C" fn ksize_decrypted(p: *const ffi::c_void) -> usize {
    sys::detectors::to_c(|| {
        let usable = kmalloc()
            .ok()
            .and_then(|k| k.usable_size(p as usize))
            .unwrap_or(0);
        // Like ksize(): the caller may use all of it, so the bug detectors must allow it.
        if usable != 0 {
            sys::detectors::slot_usable(p as usize, usable);
        }
        usable
    })
}

/// The first tag of a dedicated cache: the kmalloc caches' come before.
const FIRST_DEDICATED_TAG: usize = slab::TAG_FIRST_CACHE as usize + slab::KMALLOC_SIZES.len();

/// Tags in use by dedicated caches, one bit each; a destroyed cache's tag is taken
/// again by the next cache. `core`'s atomics, as for the slabs' bitmaps: a create or
/// destroy takes one word with one atomic operation, and nothing else shares them.
static CACHE_TAGS: [AtomicU64; (u16::MAX as usize + 1) / 64] =
    [const { AtomicU64::new(0) }; (u16::MAX as usize + 1) / 64];

/// Takes a free tag for a dedicated cache, or `ENOSPC` with 65,528 caches alive.
fn take_cache_tag() -> Result<u16> {
    for (w, word) in CACHE_TAGS.iter().enumerate() {
        // The tags of the page API, large objects and the kmalloc caches are not ours.
        let reserved = if w == 0 {
            (1u64 << FIRST_DEDICATED_TAG) - 1
        } else {
            0
        };
        let mut cur = word.load(Relaxed);
        loop {
            let free = !(cur | reserved);
            if free == 0 {
                break;
            }
            let bit = free.trailing_zeros() as usize;
            match word.compare_exchange(cur, cur | (1 << bit), AcqRel, Relaxed) {
                Ok(_) => return u16::try_from(w * 64 + bit).map_err(|_| ENOSPC),
                Err(now) => cur = now,
            }
        }
    }
    Err(ENOSPC)
}

/// Gives back the tag of a dedicated cache whose memory all went back.
fn put_cache_tag(tag: u16) {
    let tag = tag as usize;
    if tag >= FIRST_DEDICATED_TAG {
        CACHE_TAGS[tag / 64].fetch_and(!(1u64 << (tag % 64)), Release);
    }
}

/// C API: `kmem_cache_create_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// `name` must be null or point at a NUL-terminated string that stays valid for
/// the duration of the call.
#[export]
pub unsafe extern "C" fn kmem_cache_create_decrypted(
    name: *const ffi::c_char,
    size: ffi::c_uint,
    align: ffi::c_uint,
) -> *mut bindings::kmem_cache_decrypted {
    sys::detectors::to_c(|| {
        let create = || -> Result<*mut bindings::kmem_cache_decrypted> {
            // SAFETY: `name` is NULL or a string valid for the call (this function's
            // contract); `ObjCache::new` copies it.
            let name = unsafe { sys::c_name(name) }?;
            let d = decrypted()?;
            let tag = take_cache_tag()?;
            let cache = ObjCache::new(name, size as usize, align as usize, tag, d)
                .and_then(|cache| KBox::new(cache, GFP_KERNEL).map_err(Error::from));
            match cache {
                Ok(cache) => {
                    let handle = sys::into_handle(cache);
                    // Listed for a shut-down to close; on failure nobody saw the handle.
                    if let Err(e) = d.dedicated().push(handle as usize, GFP_KERNEL) {
                        // SAFETY: `handle` was just made and given to nobody.
                        drop(unsafe { sys::take_cache::<ObjCache>(handle) });
                        put_cache_tag(tag);
                        return Err(e.into());
                    }
                    Ok(handle)
                }
                Err(e) => {
                    // Nothing was allocated with the tag.
                    put_cache_tag(tag);
                    Err(e)
                }
            }
        };
        create().unwrap_or(core::ptr::null_mut())
    })
}

/// C API: `kmem_cache_alloc_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// `cache` must be null or a cache returned by `kmem_cache_create_decrypted()`
/// and not destroyed yet.
#[export]
pub unsafe extern "C" fn kmem_cache_alloc_decrypted(
    cache: *mut bindings::kmem_cache_decrypted,
    gfp: bindings::gfp_t,
) -> *mut ffi::c_void {
    sys::detectors::to_c(|| {
        // SAFETY: `cache` is NULL or a live handle of an `ObjCache` (this function's contract).
        unsafe { sys::with_cache(cache, |c: &ObjCache| c.alloc(sys::NUMA_NO_NODE, gfp)) }
            .flatten()
            .map_or(core::ptr::null_mut(), |a| a as *mut ffi::c_void)
    })
}

/// C API: `kmem_cache_free_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// `cache` must be null or a cache returned by `kmem_cache_create_decrypted()`
/// and not destroyed yet. `obj` may be anything: only a live object of the cache is
/// freed.
#[export]
pub unsafe extern "C" fn kmem_cache_free_decrypted(
    cache: *mut bindings::kmem_cache_decrypted,
    p: *const ffi::c_void,
) {
    if !p.is_null() {
        // Refusals are reported and counted by the cache.
        // SAFETY: `cache` is NULL or a live handle of an `ObjCache` (this function's
        // contract).
        unsafe {
            sys::with_cache(cache, |c: &ObjCache| {
                let _ = c.free(p as usize);
            })
        };
    }
}

/// C API: `kmem_cache_destroy_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// `cache` must be null or a cache returned by `kmem_cache_create_decrypted()`
/// and not destroyed yet; nobody uses it during or after the call.
#[export]
pub unsafe extern "C" fn kmem_cache_destroy_decrypted(cache: *mut bindings::kmem_cache_decrypted) {
    if let Ok(d) = decrypted() {
        d.dedicated().retain(|h| *h != cache as usize);
    }
    // SAFETY: `cache` is NULL or a live handle of an `ObjCache` that nobody uses any
    // more (this function's contract).
    let Some(c) = (unsafe { sys::take_cache::<ObjCache>(cache) }) else {
        return;
    };
    c.shrink();
    let (active, _, slabs) = c.usage();
    if active > 0 || slabs > 0 {
        // Objects are still in use: keep the cache (and its memory) rather than free
        // memory someone uses.
        pr_err!(
            "kmem_cache_destroy_decrypted: {} objects still in use, cache leaked\n",
            active
        );
        KBox::leak(c);
        return;
    }
    // All its slabs went back: no page carries its tag any more.
    put_cache_tag(c.tag());
}
