// SPDX-License-Identifier: GPL-2.0

//! Event counters, read lock-free by debugfs and the tests.

#![deny(unsafe_code)]

use kernel::{
    sync::atomic::{Atomic, Relaxed},
    time::{Instant, Monotonic},
};

/// A monotonically increasing event counter.
pub(crate) struct Counter(Atomic<u64>);

impl Counter {
    /// A counter at zero.
    pub(crate) const fn new() -> Self {
        Self(Atomic::new(0))
    }

    /// Counts one event.
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    /// Counts `n` events.
    pub(crate) fn add(&self, n: u64) {
        self.0.add(n, Relaxed);
    }

    /// The current count.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// An event counter of one CPU: only the user of that CPU's value of a
/// [`crate::sys::PerCpu`] adds to it, anyone reads it.
///
/// Adding is a plain load and store. This is `core`'s atomic rather than the kernel's
/// [`Atomic`], whose every access is an out-of-line C call unless the tree is built with
/// `CONFIG_RUST_INLINE_HELPERS` (it needs rustc and clang on the same LLVM): too much for
/// the lock-free allocation path. Relaxed accesses of a value no C code sees are the same
/// plain moves either way.
pub(crate) struct CpuCounter(core::sync::atomic::AtomicU64);

impl CpuCounter {
    /// A counter at zero.
    pub(crate) const fn new() -> Self {
        Self(core::sync::atomic::AtomicU64::new(0))
    }

    /// Counts one event. Only the counter's CPU may call this.
    #[inline]
    pub(crate) fn inc(&self) {
        use core::sync::atomic::Ordering::Relaxed;
        self.0.store(self.0.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// The current count.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(core::sync::atomic::Ordering::Relaxed)
    }
}

/// Largest order a per-order counter table covers.
pub(crate) const MAX_ORDER: usize = 15;

/// One counter per allocation order.
pub(crate) struct PerOrder([Counter; MAX_ORDER + 1]);

impl PerOrder {
    /// All counters at zero.
    pub(crate) const fn new() -> Self {
        Self([const { Counter::new() }; MAX_ORDER + 1])
    }

    /// The counter of `order`.
    pub(crate) fn at(&self, order: u32) -> &Counter {
        &self.0[(order as usize).min(MAX_ORDER)]
    }
}

/// Counters of a page allocator instance.
pub(crate) struct PageStats {
    /// Successful allocations per order.
    pub(crate) allocs: PerOrder,
    /// Frees per order.
    pub(crate) frees: PerOrder,
    /// Allocations that failed (memory could not be had).
    pub(crate) alloc_failures: Counter,
    /// Allocations in atomic context with no unmapped free memory at hand.
    pub(crate) atomic_failures: Counter,
    /// Allocations that took a freed chunk without scrubbing it (opt-out).
    pub(crate) noscrub_allocs: Counter,
    /// `__GFP_ACCOUNT` allocations refused by the memory cgroup.
    pub(crate) memcg_failures: Counter,
    /// Blocks taken from the page allocator.
    pub(crate) blocks_taken: Counter,
    /// Blocks given back to the page allocator.
    pub(crate) blocks_released: Counter,
    /// Blocks smaller than the block order taken because a full-sized one could not be had.
    pub(crate) fallback_blocks: Counter,
    /// Blocks whose direct map state is unknown after a failure: leaked for good.
    pub(crate) leaked_blocks: Counter,
    /// Pages in leaked blocks.
    pub(crate) leaked_pages: Counter,
    /// Blocks converted: removed from the direct map, or made shared.
    pub(crate) conversions: Counter,
    /// Blocks converted back: direct map restored, or made private.
    pub(crate) reversions: Counter,
    /// Pages of the blocks converted (with pKVM, one MEM_SHARE hypercall each).
    pub(crate) converted_pages: Counter,
    /// Pages of the blocks converted back.
    pub(crate) reverted_pages: Counter,
    /// Conversions in either direction that failed.
    pub(crate) conversion_failures: Counter,
    /// TLB flushes issued.
    pub(crate) tlb_flushes: Counter,
    /// Pages zeroed through a temporary mapping after being freed.
    pub(crate) scrubbed_pages: Counter,
    /// Time spent taking, zeroing and unmapping new blocks, in nanoseconds.
    pub(crate) grow_ns: Counter,
    /// Time spent scrubbing freed pages, in nanoseconds.
    pub(crate) scrub_ns: Counter,
    /// Frees refused: not ours, wrong order, double free.
    pub(crate) bad_frees: Counter,
    /// Requests refused for an impossible order or node.
    pub(crate) bad_requests: Counter,
    /// Requests refused because the instance cannot serve its kind at all.
    pub(crate) refused_allocs: Counter,
    /// Background runs that refilled the atomic reserve.
    pub(crate) refills: Counter,
    /// Blocks converted by those runs.
    pub(crate) refill_blocks: Counter,
    /// Shrinker and explicit shrink calls.
    pub(crate) shrink_calls: Counter,
}

impl PageStats {
    /// All counters at zero.
    pub(crate) const fn new() -> Self {
        Self {
            allocs: PerOrder::new(),
            frees: PerOrder::new(),
            alloc_failures: Counter::new(),
            atomic_failures: Counter::new(),
            noscrub_allocs: Counter::new(),
            memcg_failures: Counter::new(),
            blocks_taken: Counter::new(),
            blocks_released: Counter::new(),
            fallback_blocks: Counter::new(),
            leaked_blocks: Counter::new(),
            leaked_pages: Counter::new(),
            conversions: Counter::new(),
            reversions: Counter::new(),
            converted_pages: Counter::new(),
            reverted_pages: Counter::new(),
            conversion_failures: Counter::new(),
            tlb_flushes: Counter::new(),
            scrubbed_pages: Counter::new(),
            grow_ns: Counter::new(),
            scrub_ns: Counter::new(),
            bad_frees: Counter::new(),
            bad_requests: Counter::new(),
            refused_allocs: Counter::new(),
            refills: Counter::new(),
            refill_blocks: Counter::new(),
            shrink_calls: Counter::new(),
        }
    }
}

/// Adds the time since `start` to `counter`, in nanoseconds.
pub(crate) fn add_elapsed(counter: &Counter, start: Instant<Monotonic>) {
    counter.add(start.elapsed().as_nanos().max(0) as u64);
}
