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
//! Layout: [`sys`] is the only module with `unsafe` code; everything else is safe Rust.

mod buddy;
mod stats;
mod sys;
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod testutil;
mod unmapped;

use kernel::{bindings, debugfs, ffi, prelude::*, sync::Arc, sync::SetOnce};
use sys::Pfn;
use unmapped::{Config, UnmappedAllocator};

module! {
    type: UnmappedAllocModule,
    name: "unmapped_alloc",
    authors: ["unmapped_alloc developers"],
    description: "Allocator for unmapped and decrypted memory",
    license: "GPL",
}

/// The system-wide unmapped page allocator, set up at boot.
static GLOBAL: SetOnce<Arc<UnmappedAllocator>> = SetOnce::new();

/// The system-wide instance, once initialised.
fn global() -> Result<&'static Arc<UnmappedAllocator>> {
    GLOBAL.as_ref().ok_or(ENODEV)
}

struct UnmappedAllocModule {
    _stats: Pin<KBox<debugfs::File<&'static UnmappedAllocator>>>,
    _dir: debugfs::Dir,
}

impl kernel::Module for UnmappedAllocModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        if !GLOBAL.populate(UnmappedAllocator::new(Config::default_global())?) {
            return Err(EBUSY);
        }
        let alloc: &'static UnmappedAllocator = global()?;
        sys::register_shrinker()?;
        let dir = debugfs::Dir::new(c"unmapped_alloc");
        let stats = KBox::pin_init(
            dir.read_callback_file(c"stats", alloc, &|a, f| a.write_stats(f)),
            GFP_KERNEL,
        )?;
        pr_info!("ready, blocks of order {}\n", alloc.max_order());
        Ok(Self {
            _stats: stats,
            _dir: dir,
        })
    }
}

fn c_alloc(
    nid: ffi::c_int,
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
    scrub: bool,
) -> *mut bindings::page {
    match global() {
        Ok(a) => a
            .alloc(nid, gfp, order, scrub)
            .map_or(core::ptr::null_mut(), |pfn| pfn.page()),
        Err(_) => core::ptr::null_mut(),
    }
}

/// C API: `unmapped_alloc_node()`, see `include/linux/unmapped_alloc.h`.
#[no_mangle]
pub extern "C" fn unmapped_alloc_node(
    nid: ffi::c_int,
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
) -> *mut bindings::page {
    c_alloc(nid, gfp, order, true)
}

/// C API: `unmapped_alloc()`, see `include/linux/unmapped_alloc.h`.
#[no_mangle]
pub extern "C" fn unmapped_alloc(gfp: bindings::gfp_t, order: ffi::c_uint) -> *mut bindings::page {
    c_alloc(sys::NUMA_NO_NODE, gfp, order, true)
}

/// C API: `unmapped_alloc_noscrub()`, see `include/linux/unmapped_alloc.h`.
#[no_mangle]
pub extern "C" fn unmapped_alloc_noscrub(
    nid: ffi::c_int,
    gfp: bindings::gfp_t,
    order: ffi::c_uint,
) -> *mut bindings::page {
    c_alloc(nid, gfp, order, false)
}

/// C API: `unmapped_free()`, see `include/linux/unmapped_alloc.h`.
#[no_mangle]
pub extern "C" fn unmapped_free(page: *mut bindings::page, order: ffi::c_uint) {
    if page.is_null() {
        return;
    }
    if let Ok(a) = global() {
        // Refusals are reported and counted by the allocator.
        let _ = a.free(Pfn::of_page(page), order);
    }
}

/// Shrinker callback: pages a shrink would give back.
#[no_mangle]
pub extern "C" fn unmapped_alloc_reclaimable() -> ffi::c_ulong {
    global().map_or(0, |a| a.reclaimable_pages() as ffi::c_ulong)
}

/// Shrinker callback: give every fully free block back; returns the pages freed.
#[no_mangle]
pub extern "C" fn unmapped_alloc_shrink(_nr_to_scan: ffi::c_ulong) -> ffi::c_ulong {
    global().map_or(0, |a| {
        let before = a.total_pages().held;
        a.shrink(0);
        before.saturating_sub(a.total_pages().held) as ffi::c_ulong
    })
}
