// SPDX-License-Identifier: GPL-2.0

//! The C API, see `include/linux/unmapped_alloc.h`: pages of both kinds, page states,
//! counters and tunables, and the callbacks of the shrinker and the shutdown hook.
//! [`objects`] has the decrypted object caches'.
//!
//! The functions are `unsafe extern "C"` because `#[export]` checks them against
//! bindgen's declarations of the header; each says in its `# Safety` section whether
//! its caller carries an obligation.

pub mod objects;

use crate::{
    decrypted, global,
    mutant::{self, Mutant},
    pages::{BadFree, Kind, Ownership, PageAllocator},
    stats, sys, Arc,
};
use kernel::{bindings, ffi, prelude::*};
use sys::Pfn;

/// Shrinker scans, the kernel's reclaim asking the component for memory.
static SHRINKER_SCANS: stats::Counter = stats::Counter::new();

/// Torture test: the hostile host overwrites all shared memory; returns the pages
/// written, or -1 without the model backend.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
#[export]
pub unsafe extern "C" fn ua_torture_host_write(seed: u64) -> ffi::c_long {
    sys::detectors::to_c(|| {
        crate::MODEL
            .get()
            .map_or(-1, |m| m.host_write(seed) as ffi::c_long)
    })
}

/// Torture test: pages the model backend records as shared, or -1 without it.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
#[export]
pub unsafe extern "C" fn ua_torture_model_shared_pages() -> ffi::c_long {
    sys::detectors::to_c(|| {
        crate::MODEL
            .get()
            .map_or(-1, |m| m.shared_pages() as ffi::c_long)
    })
}

/// Page allocation of the C API from `instance`.
fn c_alloc(
    instance: Result<&'static Arc<PageAllocator>>,
    nid: ffi::c_int,
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
    scrub: bool,
) -> *mut bindings::page {
    instance
        .ok()
        .filter(|a| {
            !(matches!(a.kind(), Kind::Unmapped) && mutant::is(Mutant::CUnmappedAllocFails))
        })
        .and_then(|a| a.alloc(nid, gfp, order, scrub))
        .map_or(core::ptr::null_mut(), |pfn| pfn.page())
}

/// Page free of the C API to `instance`; refusals are reported and counted by it.
fn c_free(
    instance: Result<&'static Arc<PageAllocator>>,
    page: *mut bindings::page,
    order: ffi::c_uint,
) {
    if let (false, Ok(a)) = (page.is_null(), instance) {
        let _ = a.free(Pfn::of_page(page), order);
    }
}

/// C API: `unmapped_alloc_node()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_node(
    nid: ffi::c_int,
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
) -> *mut bindings::page {
    sys::detectors::to_c(|| c_alloc(global(), nid, gfp, order, true))
}

/// C API: `unmapped_alloc()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc(
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
) -> *mut bindings::page {
    sys::detectors::to_c(|| c_alloc(global(), sys::NUMA_NO_NODE, gfp, order, true))
}

/// C API: `unmapped_alloc_noscrub()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_noscrub(
    nid: ffi::c_int,
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
) -> *mut bindings::page {
    sys::detectors::to_c(|| c_alloc(global(), nid, gfp, order, false))
}

/// C API: `unmapped_free()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `page` is only compared with the component's own pages,
/// never dereferenced, and anything else is refused.
#[export]
pub unsafe extern "C" fn unmapped_free(page: *mut bindings::page, order: ffi::c_uint) {
    c_free(global(), page, order)
}

/// C API: `unmapped_try_free()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `page` is only compared with the component's own pages,
/// never dereferenced, and anything else is refused.
#[export]
pub unsafe extern "C" fn unmapped_try_free(
    page: *mut bindings::page,
    order: ffi::c_uint,
) -> ffi::c_int {
    sys::detectors::to_c(|| {
        let Ok(a) = global() else {
            return EINVAL.to_errno();
        };
        if page.is_null() {
            return EINVAL.to_errno();
        }
        match a.try_free(Pfn::of_page(page), order) {
            Ok(()) => 0,
            Err(BadFree::Referenced) => EBUSY.to_errno(),
            Err(_) => EINVAL.to_errno(),
        }
    })
}

/// C API: `alloc_decrypted_pages_node()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn alloc_decrypted_pages_node(
    nid: ffi::c_int,
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
) -> *mut bindings::page {
    sys::detectors::to_c(|| c_alloc(decrypted(), nid, gfp, order, true))
}

/// C API: `alloc_decrypted_pages()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn alloc_decrypted_pages(
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
) -> *mut bindings::page {
    sys::detectors::to_c(|| c_alloc(decrypted(), sys::NUMA_NO_NODE, gfp, order, true))
}

/// C API: `free_decrypted_pages()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `page` is only compared with the component's own pages,
/// never dereferenced, and anything else is refused.
#[export]
pub unsafe extern "C" fn free_decrypted_pages(page: *mut bindings::page, order: ffi::c_uint) {
    c_free(decrypted(), page, order)
}

/// C API: `try_free_decrypted_pages()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `page` is only compared with the component's own pages,
/// never dereferenced, and anything else is left alone.
#[export]
pub unsafe extern "C" fn try_free_decrypted_pages(
    page: *mut bindings::page,
    order: ffi::c_uint,
) -> bool {
    sys::detectors::to_c(|| match decrypted() {
        Ok(d) if !page.is_null() => !matches!(
            d.free_if_owned(Pfn::of_page(page), order),
            Err(BadFree::NotOwned)
        ),
        _ => false,
    })
}

/// C API: `unmapped_alloc_page_state()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `page` is only compared with the component's own pages,
/// never dereferenced.
#[export]
pub unsafe extern "C" fn unmapped_alloc_page_state(
    page: *const bindings::page,
) -> bindings::unmapped_page_state {
    sys::detectors::to_c(|| {
        let pfn = Pfn::of_page(page);
        let state = |a: Result<&'static Arc<PageAllocator>>| match a {
            _ if mutant::is(Mutant::StateUnknown) => Ownership::NotOwned,
            a => a.map_or(Ownership::NotOwned, |a| a.ownership(pfn)),
        };
        match (state(global()), state(decrypted())) {
            (Ownership::Leaked, _) | (_, Ownership::Leaked) => {
                bindings::unmapped_page_state_UNMAPPED_ALLOC_PAGE_LEAKED
            }
            (Ownership::Free, _) => bindings::unmapped_page_state_UNMAPPED_PAGE_FREE,
            (Ownership::Used, _) => bindings::unmapped_page_state_UNMAPPED_PAGE_USED,
            (_, Ownership::Free) => bindings::unmapped_page_state_SHARED_PAGE_FREE,
            (_, Ownership::Used) => bindings::unmapped_page_state_SHARED_PAGE_USED,
            (_, Ownership::Objects) => bindings::unmapped_page_state_SHARED_PAGE_OBJECTS,
            _ => bindings::unmapped_page_state_UNMAPPED_PAGE_NOT_OWNED,
        }
    })
}

/// Shutdown hook: convert everything back before the next kernel takes over.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_unshare_all() {
    // The caches first: shut the decrypted pages down (waiting for conversions in
    // flight), then take the CPUs' slabs away from every cache on them, so that no
    // object is handed out of a block converted back below.
    if let Ok(d) = decrypted() {
        d.shut_down();
        objects::close_all();
    }
    for a in instances() {
        let (done, failed) = a.unshare_all();
        pr_info!(
            "unshare-all: {}: {} blocks converted back, {} failed\n",
            a.kind_name(),
            done,
            failed
        );
    }
}

/// C API: `unmapped_alloc_read_counters()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// `c` must be null or valid for writing a `struct unmapped_alloc_counters`.
#[export]
pub unsafe extern "C" fn unmapped_alloc_read_counters(c: *mut bindings::unmapped_alloc_counters) {
    let (Ok(u), Ok(d)) = (global(), decrypted()) else {
        return;
    };
    let (up, dp) = (u.total_pages(), d.total_pages());
    let atomic =
        u.stats.atomic_failures.get() + d.stats.atomic_failures.get() + objects::atomic_failures();
    let counters = bindings::unmapped_alloc_counters {
        unmapped_conversions: u.stats.conversions.get(),
        unmapped_reversions: u.stats.reversions.get(),
        unmapped_tlb_flushes: u.stats.tlb_flushes.get(),
        unmapped_held_pages: up.held as u64,
        unmapped_used_pages: up.used() as u64,
        decrypted_conversions: d.stats.conversions.get(),
        decrypted_reversions: d.stats.reversions.get(),
        decrypted_pages_shared: d.stats.converted_pages.get(),
        decrypted_pages_unshared: d.stats.reverted_pages.get(),
        decrypted_held_pages: dp.held as u64,
        decrypted_used_pages: dp.used() as u64,
        unmapped_leaked_pages: u.stats.leaked_pages.get(),
        decrypted_leaked_pages: d.stats.leaked_pages.get(),
        atomic_failures: atomic,
        shrinker_scans: SHRINKER_SCANS.get(),
    };
    // SAFETY: `c` is NULL or valid for writing the counters (this function's contract).
    unsafe { sys::write_out(c, counters) };
}

/// C API: `unmapped_alloc_drain()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_drain() {
    objects::shrink();
    for a in instances() {
        a.drain();
    }
}

/// C API: `unmapped_alloc_set_reserve()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_set_reserve(
    low: ffi::c_ulong,
    high: ffi::c_ulong,
) -> ffi::c_int {
    sys::detectors::to_c(
        || match decrypted().and_then(|d| d.set_watermarks(low, high)) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        },
    )
}

/// C API: `unmapped_alloc_get_reserve()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// `low` and `high` must each be null or valid for writing an `unsigned long`.
#[export]
pub unsafe extern "C" fn unmapped_alloc_get_reserve(
    low: *mut ffi::c_ulong,
    high: *mut ffi::c_ulong,
) {
    let (l, h) = decrypted().map(|d| d.watermarks()).unwrap_or((0, 0));
    // SAFETY: Each is NULL or valid for writing (this function's contract).
    unsafe {
        sys::write_out(low, l as ffi::c_ulong);
        sys::write_out(high, h as ffi::c_ulong);
    }
}

/// C API: `unmapped_alloc_set_sim_delay()` (benchmarks only).
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[cfg(any(CONFIG_UNMAPPED_ALLOC_BENCH = "y", CONFIG_UNMAPPED_ALLOC_BENCH = "m"))]
#[export]
pub unsafe extern "C" fn unmapped_alloc_set_sim_delay(us: ffi::c_uint) {
    crate::backend::SIM_DELAY_US.store(us, kernel::sync::atomic::Relaxed);
}

fn instances() -> impl Iterator<Item = &'static Arc<PageAllocator>> {
    [global(), decrypted()].into_iter().flatten()
}

/// Shrinker callback: pages a shrink would give back.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_reclaimable() -> ffi::c_ulong {
    sys::detectors::to_c(|| {
        instances().map(|a| a.reclaimable_pages()).sum::<usize>() as ffi::c_ulong
    })
}

/// Shrinker callback: give every fully free block back; returns the pages freed.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_shrink(_nr_to_scan: ffi::c_ulong) -> ffi::c_ulong {
    sys::detectors::to_c(|| {
        SHRINKER_SCANS.inc();
        instances()
            .map(|a| {
                let before = a.total_pages().held;
                // Memory pressure may take the cache, not the atomic reserve's low part.
                // Only try: this may run in reclaim entered by the component's own
                // maintenance work, which holds the lock.
                a.try_shrink_to(0, a.watermarks().0);
                before.saturating_sub(a.total_pages().held)
            })
            .sum::<usize>() as ffi::c_ulong
    })
}
