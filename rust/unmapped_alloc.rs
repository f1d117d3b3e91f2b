// SPDX-License-Identifier: GPL-2.0

//! Allocator for memory in a special direct map state.
//!
//! - Unmapped pages, removed from the kernel direct map, for secret memory, guest memory
//!   and memory lent to a hypervisor or firmware: `unmapped_alloc()` / `unmapped_free()`
//!   in C, `kernel::unmapped_alloc::UnmappedPages` in Rust (see `kernel_api.rs`).
//! - Decrypted memory shared with the host of a confidential guest.
//!
//! Memory is converted in large blocks once and carved up, instead of converting (and
//! splitting the direct map, and flushing the TLB) on every allocation.
//!
//! Layout: all `unsafe` code is in [`sys`], the thin layer over the kernel's primitives,
//! and in this file, whose C API functions are `unsafe extern "C"` because `#[export]`
//! checks them against bindgen's declarations of `include/linux/unmapped_alloc.h`. Every
//! other module denies `unsafe` code at compile time.

mod backend;
mod buddy;
mod debugfs;
mod pages;
mod pernode;
mod slab;
mod sorted;
mod stats;
mod sys;
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod tests;
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod testutil;

use debugfs::Globals;
use kernel::{bindings, ffi, prelude::*, sync::Arc};
use pages::{Config, Kind, Ownership, PageAllocator};
use slab::{KmallocDecrypted, ObjCache};
use sys::{Pfn, Published};

module! {
    type: UnmappedAllocModule,
    name: "unmapped_alloc",
    authors: ["unmapped_alloc developers"],
    description: "Allocator for unmapped and decrypted memory",
    license: "GPL",
    params: {
        unmapped_cache_blocks: u32 {
            default: 4,
            description: "Free unmapped blocks kept per node",
        },
        decrypted_cache_blocks: u32 {
            default: 4,
            description: "Free decrypted blocks kept per node",
        },
        decrypted_reserve_low: u32 {
            default: 256,
            description: "Atomic reserve of decrypted pages per node: refill below this",
        },
        decrypted_reserve_high: u32 {
            default: 512,
            description: "Atomic reserve of decrypted pages per node: refill up to this",
        },
        decrypted_model: u32 {
            default: 0,
            description: "Torture kernels only: 1 puts kmalloc-decrypted on the model backend",
        },
    },
}

/// The system-wide unmapped page allocator, set up at boot.
static GLOBAL: Published<Arc<PageAllocator>> = Published::new();

/// The system-wide decrypted page allocator, set up at boot.
static DECRYPTED: Published<Arc<PageAllocator>> = Published::new();

/// The system-wide unmapped instance, once initialised.
fn global() -> Result<&'static Arc<PageAllocator>> {
    GLOBAL.get().ok_or(ENODEV)
}

/// The model backend under [`DECRYPTED`] when booted with `decrypted_model=1`, where the
/// torture test's hostile host finds the shared memory.
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
static MODEL: Published<Arc<backend::ModelBackend>> = Published::new();

/// Shrinker scans, the kernel's reclaim asking the component for memory.
static SHRINKER_SCANS: stats::Counter = stats::Counter::new();

/// The system-wide `kmalloc-decrypted-*` caches, on [`DECRYPTED`].
static KMALLOC: Published<KmallocDecrypted> = Published::new();

/// The system-wide decrypted instance, once initialised.
fn decrypted() -> Result<&'static Arc<PageAllocator>> {
    DECRYPTED.get().ok_or(ENODEV)
}

/// The system-wide kmalloc-decrypted caches, once initialised.
fn kmalloc() -> Result<&'static KmallocDecrypted> {
    KMALLOC.get().ok_or(ENODEV)
}

struct UnmappedAllocModule {
    _debugfs: debugfs::Files,
}

impl kernel::Module for UnmappedAllocModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut unmapped_config = Config::default_global(Kind::Unmapped);
        unmapped_config.cache_blocks = *module_parameters::unmapped_cache_blocks.value() as usize;
        let mut decrypted_config = Config::default_global(Kind::Decrypted(decrypted_backend()?));
        decrypted_config.cache_blocks = *module_parameters::decrypted_cache_blocks.value() as usize;
        let low = *module_parameters::decrypted_reserve_low.value() as usize;
        let high = *module_parameters::decrypted_reserve_high.value() as usize;
        if low <= high {
            decrypted_config.reserve = (low, high);
        } else {
            pr_err!(
                "decrypted_reserve_low {} above decrypted_reserve_high {}: using {:?}\n",
                low,
                high,
                decrypted_config.reserve
            );
        }
        if !GLOBAL.publish(PageAllocator::new(unmapped_config)?)?
            || !DECRYPTED.publish(PageAllocator::new(decrypted_config)?)?
        {
            return Err(EBUSY);
        }
        if !KMALLOC.publish(KmallocDecrypted::new(decrypted()?)?)? {
            return Err(EBUSY);
        }
        let globals = globals()?;
        // Fill the atomic reserve of decrypted memory now; later the background work
        // keeps it between its watermarks.
        let (_, high) = globals.decrypted.watermarks();
        for nid in 0..sys::nr_node_ids() as i32 {
            if sys::node_has_memory(nid) {
                globals.decrypted.refill(nid, high);
            }
        }
        sys::register_shrinker()?;
        sys::register_reboot_notifier()?;
        let files = debugfs::create(globals)?;
        if let Some(why) = globals.unmapped.refused() {
            pr_warn!("unmapped pages disabled: {}\n", why);
        }
        pr_info!("ready, blocks of order {}\n", globals.unmapped.max_order());
        Ok(Self { _debugfs: files })
    }
}

/// The backend of the system-wide decrypted instance: the real one, or with
/// `decrypted_model=1` in a torture kernel the model, whose record of shared pages the
/// hostile host overwrites and whose conversions fail where `fail_unmapped_alloc` says.
fn decrypted_backend() -> Result<backend::Backend> {
    if *module_parameters::decrypted_model.value() == 0 {
        return Ok(backend::Backend::Real);
    }
    #[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
    {
        let model = backend::ModelBackend::new()?;
        model.set_inject(true);
        if !MODEL.publish(model.clone())? {
            return Err(EBUSY);
        }
        pr_warn!("decrypted memory on the model backend (torture)\n");
        Ok(backend::Backend::Model(model))
    }
    #[cfg(not(CONFIG_UNMAPPED_ALLOC_TORTURE))]
    {
        pr_err!("decrypted_model needs CONFIG_UNMAPPED_ALLOC_TORTURE: ignored\n");
        Ok(backend::Backend::Real)
    }
}

/// Torture test: the hostile host overwrites all shared memory; returns the pages
/// written, or -1 without the model backend.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
#[export]
pub unsafe extern "C" fn ua_torture_host_write(seed: u64) -> ffi::c_long {
    MODEL
        .get()
        .map_or(-1, |m| m.host_write(seed) as ffi::c_long)
}

/// Torture test: pages the model backend records as shared, or -1 without it.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
#[export]
pub unsafe extern "C" fn ua_torture_model_shared_pages() -> ffi::c_long {
    MODEL.get().map_or(-1, |m| m.shared_pages() as ffi::c_long)
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

/// All global instances, once initialised.
fn globals() -> Result<Globals<'static>> {
    Ok(Globals {
        unmapped: global()?,
        decrypted: decrypted()?,
        kmalloc: kmalloc()?,
    })
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
    c_alloc(global(), nid, gfp, order, true)
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
    c_alloc(global(), sys::NUMA_NO_NODE, gfp, order, true)
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
    c_alloc(global(), nid, gfp, order, false)
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
    c_alloc(decrypted(), nid, gfp, order, true)
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
    c_alloc(decrypted(), sys::NUMA_NO_NODE, gfp, order, true)
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

/// C API: `kmalloc_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn kmalloc_decrypted(size: usize, gfp: bindings::gfp_t) -> *mut ffi::c_void {
    c_kmalloc(size, gfp, sys::NUMA_NO_NODE)
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
    c_kmalloc(size, gfp, nid)
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
    kmalloc().is_ok()
}

/// C API: `ksize_decrypted()`, see `include/linux/unmapped_alloc.h`.
///
/// # Safety
///
/// Always safe to call: `p` is only looked up among the component's objects,
/// never dereferenced.
#[export]
pub unsafe extern "C" fn ksize_decrypted(p: *const ffi::c_void) -> usize {
    kmalloc()
        .ok()
        .and_then(|k| k.usable_size(p as usize))
        .unwrap_or(0)
}

/// Tags handed to dedicated caches, after those of the kmalloc caches.
static NEXT_CACHE_TAG: kernel::sync::atomic::Atomic<u32> = kernel::sync::atomic::Atomic::new(
    slab::TAG_FIRST_CACHE as u32 + slab::KMALLOC_SIZES.len() as u32,
);

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
    let create = || -> Result<*mut bindings::kmem_cache_decrypted> {
        // SAFETY: `name` is NULL or a string valid for the call (this function's
        // contract); `ObjCache::new` copies it.
        let name = unsafe { sys::c_name(name) }?;
        let tag = NEXT_CACHE_TAG.fetch_add(1, kernel::sync::atomic::Relaxed);
        let tag = u16::try_from(tag).map_err(|_| ENOSPC)?;
        let cache = ObjCache::new(name, size as usize, align as usize, tag, decrypted()?)?;
        Ok(sys::into_handle(KBox::new(cache, GFP_KERNEL)?))
    };
    create().unwrap_or(core::ptr::null_mut())
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
    // SAFETY: `cache` is NULL or a live handle of an `ObjCache` (this function's contract).
    unsafe { sys::with_cache(cache, |c: &ObjCache| c.alloc(sys::NUMA_NO_NODE, gfp)) }
        .flatten()
        .map_or(core::ptr::null_mut(), |a| a as *mut ffi::c_void)
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
    }
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
    let pfn = Pfn::of_page(page);
    let state = |a: Result<&'static Arc<PageAllocator>>| {
        a.map_or(Ownership::NotOwned, |a| a.ownership(pfn))
    };
    match (state(global()), state(decrypted())) {
        (Ownership::Leaked, _) | (_, Ownership::Leaked) => {
            bindings::unmapped_page_state_UNMAPPED_ALLOC_PAGE_LEAKED
        }
        (Ownership::Free, _) => bindings::unmapped_page_state_UNMAPPED_PAGE_FREE,
        (Ownership::Used, _) => bindings::unmapped_page_state_UNMAPPED_PAGE_USED,
        (_, Ownership::Free) => bindings::unmapped_page_state_SHARED_PAGE_FREE,
        (_, Ownership::Used) => bindings::unmapped_page_state_SHARED_PAGE_USED,
        _ => bindings::unmapped_page_state_UNMAPPED_PAGE_NOT_OWNED,
    }
}

/// Reboot notifier: convert everything back before the next kernel takes over.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_unshare_all() {
    for a in instances() {
        let (done, failed) = a.unshare_all();
        pr_info!(
            "unshare-all: {} blocks converted back, {} failed\n",
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
    let Ok(Globals {
        unmapped: u,
        decrypted: d,
        kmalloc: k,
    }) = globals()
    else {
        return;
    };
    let (up, dp) = (u.total_pages(), d.total_pages());
    let atomic = u.stats.atomic_failures.get()
        + d.stats.atomic_failures.get()
        + k.caches()
            .iter()
            .map(|c| c.stats.atomic_failures.get())
            .sum::<u64>();
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
    if let Ok(g) = globals() {
        debugfs::shrink_all(&g);
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
    match decrypted().and_then(|d| d.set_watermarks(low, high)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
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
    backend::SIM_DELAY_US.store(us, kernel::sync::atomic::Relaxed);
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
    instances().map(|a| a.reclaimable_pages()).sum::<usize>() as ffi::c_ulong
}

/// Shrinker callback: give every fully free block back; returns the pages freed.
///
/// # Safety
///
/// Always safe to call: `unsafe` only because `#[export]` matches bindgen's declaration.
#[export]
pub unsafe extern "C" fn unmapped_alloc_shrink(_nr_to_scan: ffi::c_ulong) -> ffi::c_ulong {
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
}
