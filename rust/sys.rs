// SPDX-License-Identifier: GPL-2.0

//! The thin unsafe layer: every call into C made by the component.
//!
//! Everything above this module is safe Rust. The types here carry the
//! invariants that make the calls sound:
//!
//! - [`Pfn`] names a page frame; reading its state is always allowed.
//! - [`Block`] owns 2^order contiguous pages taken from the buddy allocator.
//!   Only the owner of a block changes its direct map or encryption state,
//!   and a block is only given back by [`Block::release`] (or deliberately
//!   leaked), never on drop.
//! - [`PageRange`] and [`MappedBytes`] name pages of a block and hold a
//!   reference to it: [`Block::release`] refuses while any exists, so they
//!   cannot outlive the block.
//! - [`IrqSpinLock`] is a `spinlock_t` taken with interrupts disabled,
//!   so the allocators can be called from any context but NMI.
//! - [`PerCpu`] holds a value per CPU that only code running on that CPU
//!   ([`ThisCpu`]) uses, one user at a time, or anyone while that CPU is
//!   offline.
//!
//! One file per concept (frames and blocks, per-CPU values, the lock, trace events,
//! registration with the kernel, the handles of C callers); this file holds the
//! kernel's state and the calling context that all of them use.

pub(crate) mod detectors;
mod frames;
mod handle;
mod lock;
mod percpu;
mod register;
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) mod testing;
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod tests;
pub(crate) mod trace;

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) use frames::CallCounts;
pub(crate) use frames::{Block, MappedBytes, PageRange, Pfn};
pub(crate) use handle::{c_name, into_handle, take_cache, with_cache};
pub(crate) use lock::{new_irq_spinlock, IrqSpinLock};
pub(crate) use percpu::{on_this_cpu, CpuLocal, PerCpu, PreemptOff, ThisCpu};
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) use register::hibernation_check;
pub(crate) use register::{
    register_pm_notifier, register_shrinker, register_shutdown_hook, system_dfl, write_out,
    Published,
};

use kernel::bindings;

/// Size of a page in bytes.
pub(crate) const PAGE_SIZE: usize = kernel::page::PAGE_SIZE;

/// `NUMA_NO_NODE`: no preferred node.
pub(crate) const NUMA_NO_NODE: i32 = bindings::NUMA_NO_NODE;

/// Where the kernel's fault injection (`fail_unmapped_alloc` in debugfs) can make the
/// real paths fail.
#[derive(Clone, Copy)]
pub(crate) enum FailSite {
    /// `set_memory_decrypted()` / `set_memory_encrypted()`.
    Conversion = bindings::UA_FAIL_CONVERSION as isize,
    /// `set_direct_map_valid_noflush()`.
    DirectMap = bindings::UA_FAIL_DIRECT_MAP as isize,
    /// Taking a block from the page allocator.
    Block = bindings::UA_FAIL_BLOCK as isize,
    /// A block's bookkeeping.
    Metadata = bindings::UA_FAIL_METADATA as isize,
    /// Zeroing decrypted pages on hand-out (tests only: not a default site).
    Handout = bindings::UA_FAIL_HANDOUT as isize,
}

/// Whether fault injection fails this call at `site`, for `bytes` of memory.
pub(crate) fn should_fail(site: FailSite, bytes: usize) -> bool {
    // SAFETY: No requirements.
    unsafe { bindings::ua_should_fail(site as u32, bytes) }
}

/// Tests: fails the next `times` calls at the sites of the `sites` mask (quietly);
/// 0 stops injecting.
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) fn fail_inject(sites: u32, times: i32) {
    // SAFETY: No requirements.
    unsafe { bindings::ua_fail_inject(sites, times) }
}

/// Reports a refused free as SLUB reports bad frees: the message, then the caller's
/// stack, rate limited rather than once per boot so that every broken caller shows up.
/// The caller has already refused the free; nothing else changes.
#[cold]
pub(crate) fn report_bad_free(msg: core::fmt::Arguments<'_>) {
    // SAFETY: No requirements.
    if unsafe { bindings::ua_bad_free_ratelimit() } {
        kernel::pr_warn!("{}", msg);
        // SAFETY: No requirements; prints the current task's stack.
        unsafe { bindings::dump_stack() };
    }
}

/// While it lives, the calling task allocates as the caller's `gfp` allows: in a
/// NOIO or NOFS memalloc scope if `gfp` lacks `__GFP_IO` or `__GFP_FS`, so that the
/// component's own `GFP_KERNEL` allocations done for that caller (blocks, metadata,
/// temporary mappings) cannot recurse into I/O or filesystem reclaim.
pub(crate) struct ReclaimScope(u32, core::marker::PhantomData<*mut ()>);

impl ReclaimScope {
    /// Enters the scope `gfp` asks for.
    pub(crate) fn enter(gfp: bindings::gfp_t) -> Self {
        // SAFETY: No requirements; the returned flags are restored on drop.
        let old = unsafe { bindings::ua_reclaim_scope_enter(gfp) };
        Self(old, core::marker::PhantomData)
    }
}

impl Drop for ReclaimScope {
    fn drop(&mut self) {
        // SAFETY: Restores what `enter()` saved, on the same task: the scope is not
        // `Send`.
        unsafe { bindings::ua_reclaim_scope_exit(self.0) };
    }
}

/// The calling task's NOFS/NOIO memalloc scope flags.
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) fn reclaim_scope_current() -> u32 {
    // SAFETY: No requirements.
    unsafe { bindings::ua_reclaim_scope_current() }
}

/// Node of the calling CPU.
pub(crate) fn local_node() -> i32 {
    // SAFETY: No requirements.
    unsafe { bindings::ua_numa_node_id() }
}

/// CPUs online now.
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) fn num_online_cpus() -> u32 {
    // SAFETY: No requirements.
    unsafe { bindings::ua_num_online_cpus() }
}

/// Largest node id plus one.
pub(crate) fn nr_node_ids() -> usize {
    // SAFETY: `nr_node_ids` is set up during early boot and read-only afterwards.
    unsafe { bindings::nr_node_ids as usize }
}

/// Whether `nid` is a node with memory.
pub(crate) fn node_has_memory(nid: i32) -> bool {
    // SAFETY: The helper checks the range of `nid` before reading the node mask.
    unsafe { bindings::ua_node_has_memory(nid) }
}

/// Order of the blocks: 2 MiB, a PMD with 4 KiB pages (9) and a contiguous-PTE range
/// with 16 KiB or 64 KiB pages, where a PMD would be 32 MiB or 512 MiB.
pub(crate) fn block_order() -> u32 {
    // SAFETY: No requirements.
    unsafe { bindings::ua_block_order() }
}

/// Whether `set_direct_map_*()` really changes the direct map (on arm64 it does nothing
/// unless the linear map is page-granular).
pub(crate) fn can_set_direct_map() -> bool {
    // SAFETY: No requirements.
    unsafe { bindings::ua_can_set_direct_map() }
}

/// Whether an allocation with `gfp` may sleep.
pub(crate) fn gfp_allows_blocking(gfp: bindings::gfp_t) -> bool {
    // SAFETY: No requirements.
    unsafe { bindings::ua_gfp_allows_blocking(gfp) }
}

/// Whether the caller runs in atomic context (a lock held, interrupts off).
pub(crate) fn in_atomic() -> bool {
    // SAFETY: No requirements.
    unsafe { bindings::ua_in_atomic() }
}

/// Marks the running KUnit test as skipped (it still passes its assertions so far).
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) fn kunit_skip() {
    // SAFETY: `kunit_get_current_test()` returns the test run by this thread or NULL; the
    // test structure outlives the test function that calls us.
    unsafe {
        let test = bindings::kunit_get_current_test();
        if !test.is_null() {
            (*test).status = bindings::kunit_status_KUNIT_SKIPPED;
        }
    }
}
