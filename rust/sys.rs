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
//! - [`IrqSpinLockBackend`] is a `spinlock_t` taken with interrupts disabled,
//!   so the allocators can be called from any context.
//! - [`PerCpu`] holds a value per CPU that only code running on that CPU
//!   ([`ThisCpu`]) uses, one user at a time, or anyone while that CPU is
//!   offline.

use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    ops::{Deref, DerefMut},
    sync::atomic::{
        compiler_fence, AtomicBool, AtomicPtr,
        Ordering::{Acquire, Relaxed, SeqCst},
    },
};
use kernel::{
    bindings,
    error::{to_result, Result},
    prelude::*,
    sync::lock::{Backend, Lock},
};

/// Size of a page in bytes.
pub(crate) const PAGE_SIZE: usize = kernel::page::PAGE_SIZE;

/// `NUMA_NO_NODE`: no preferred node.
pub(crate) const NUMA_NO_NODE: i32 = bindings::NUMA_NO_NODE;

/// A page frame number: any number, not necessarily a frame of memory the kernel
/// manages; every method is safe for any value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Pfn(usize);

impl Pfn {
    /// Frame number `n` (only the tests and the torture test's hostile host make frames
    /// from numbers).
    #[cfg(any(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST, CONFIG_UNMAPPED_ALLOC_TORTURE))]
    pub(crate) const fn new(n: usize) -> Self {
        Self(n)
    }

    /// The frame number.
    pub(crate) const fn number(self) -> usize {
        self.0
    }

    /// How many frames this one is after `base`; `None` if it is before it.
    pub(crate) fn offset_from(self, base: Pfn) -> Option<usize> {
        self.0.checked_sub(base.0)
    }

    /// The `struct page` of this frame.
    pub(crate) fn page(self) -> *mut bindings::page {
        // SAFETY: `pfn_to_page` is pointer arithmetic on the memory map; it does not
        // dereference anything.
        unsafe { bindings::ua_pfn_to_page(self.0) }
    }

    /// The frame of a `struct page` pointer (pointer arithmetic only).
    pub(crate) fn of_page(page: *const bindings::page) -> Self {
        // SAFETY: `page_to_pfn` is pointer arithmetic on the memory map; it does not
        // dereference `page`.
        Self(unsafe { bindings::ua_page_to_pfn(page) })
    }

    /// Kernel virtual address of the frame in the direct map (arithmetic only; only
    /// meaningful for frames that are mapped there).
    pub(crate) fn virt(self) -> usize {
        // SAFETY: `pfn_to_kaddr` is arithmetic on the direct map base.
        unsafe { bindings::ua_pfn_to_virt(self.0) }
    }

    /// The frame of a direct map address, if `addr` is one.
    pub(crate) fn of_virt(addr: usize) -> Option<Self> {
        // SAFETY: The helper checks `virt_addr_valid()` before translating.
        let pfn = unsafe { bindings::ua_virt_to_pfn(addr) };
        usize::try_from(pfn).ok().map(Self)
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Physical address of the frame.
    pub(crate) fn phys(self) -> u64 {
        (self.0 as u64) << kernel::page::PAGE_SHIFT
    }

    /// The frame `n` pages further.
    pub(crate) fn add(self, n: usize) -> Self {
        Self(self.0 + n)
    }

    /// Whether the frame has a `struct page` (memory the kernel manages).
    pub(crate) fn is_valid(self) -> bool {
        // SAFETY: `pfn_valid()` accepts any number.
        unsafe { bindings::ua_pfn_valid(self.0) }
    }

    /// NUMA node of the frame; `NUMA_NO_NODE` for a frame without a `struct page`.
    pub(crate) fn nid(self) -> i32 {
        if !self.is_valid() {
            return NUMA_NO_NODE;
        }
        // SAFETY: A valid frame has a `struct page`, whose flags hold the node.
        unsafe { bindings::ua_pfn_to_nid(self.0) }
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Whether the page carries a memory cgroup charge (`false` for a frame without a
    /// `struct page`).
    pub(crate) fn memcg_charged(self) -> bool {
        // SAFETY: Reads the memcg data of a frame that has a `struct page`.
        self.is_valid() && unsafe { bindings::ua_memcg_charged(self.0) }
    }

    /// Whether the frame is mapped in the kernel direct map (`false` for a frame
    /// without a `struct page`).
    pub(crate) fn is_present(self) -> bool {
        // SAFETY: Reads the direct map page tables at the address of a frame that has a
        // `struct page`, so a direct map address.
        self.is_valid() && unsafe { bindings::kernel_page_present(self.page()) }
    }
}

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

/// Trace events, see `include/trace/events/unmapped_alloc.h`.
pub(crate) mod trace {
    kernel::declare_trace! {
        unsafe fn unmapped_alloc_block_convert(kind: i32, pfn: usize, order: u32, ret: i32);
        unsafe fn unmapped_alloc_block_release(kind: i32, pfn: usize, order: u32, ret: i32);
        unsafe fn unmapped_alloc_pages(kind: i32, pfn: usize, order: u32, gfp: u32);
        unsafe fn unmapped_free_pages(kind: i32, pfn: usize, order: u32);
        unsafe fn kmalloc_decrypted(ptr: usize, bytes_req: usize, bytes_alloc: usize, gfp: u32);
        unsafe fn kfree_decrypted(ptr: usize);
    }

    /// A block was converted (`ret == 0`) or its conversion failed.
    pub(crate) fn block_convert(kind: i32, pfn: usize, order: u32, ret: i32) {
        // SAFETY: The event takes plain values; it is defined in `trace.c`.
        unsafe { unmapped_alloc_block_convert(kind, pfn, order, ret) }
    }

    /// A block was converted back and released, or leaked (`ret != 0`).
    pub(crate) fn block_release(kind: i32, pfn: usize, order: u32, ret: i32) {
        // SAFETY: As above.
        unsafe { unmapped_alloc_block_release(kind, pfn, order, ret) }
    }

    /// Pages were allocated.
    pub(crate) fn pages(kind: i32, pfn: usize, order: u32, gfp: u32) {
        // SAFETY: As above.
        unsafe { unmapped_alloc_pages(kind, pfn, order, gfp) }
    }

    /// Pages were freed.
    pub(crate) fn free_pages(kind: i32, pfn: usize, order: u32) {
        // SAFETY: As above.
        unsafe { unmapped_free_pages(kind, pfn, order) }
    }

    /// A decrypted object was allocated.
    pub(crate) fn kmalloc(ptr: usize, req: usize, alloc: usize, gfp: u32) {
        // SAFETY: As above.
        unsafe { kmalloc_decrypted(ptr, req, alloc, gfp) }
    }

    /// A decrypted object was freed.
    pub(crate) fn kfree(ptr: usize) {
        // SAFETY: As above.
        unsafe { kfree_decrypted(ptr) }
    }

    /// A probe counting `unmapped_alloc_pages` events, for the tests.
    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    pub(crate) struct PagesProbe;

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    impl PagesProbe {
        /// Registers the probe and resets its count.
        pub(crate) fn new() -> kernel::error::Result<Self> {
            // SAFETY: Registers a C probe defined in `trace.c`; undone on drop.
            kernel::error::to_result(unsafe { kernel::bindings::ua_trace_probe_register() })?;
            Ok(Self)
        }

        /// Events seen since registration.
        pub(crate) fn hits(&self) -> i32 {
            // SAFETY: Reads an atomic counter.
            unsafe { kernel::bindings::ua_trace_probe_hits() }
        }
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    impl Drop for PagesProbe {
        fn drop(&mut self) {
            // SAFETY: The probe was registered by `new`.
            unsafe { kernel::bindings::ua_trace_probe_unregister() };
        }
    }
}

/// Registers the shrinker that returns free blocks under memory pressure.
pub(crate) fn register_shrinker() -> Result {
    // SAFETY: Called once at initialisation; the callbacks are defined in the crate root.
    to_result(unsafe { bindings::ua_register_shrinker() })
}

/// Whether the caller runs in atomic context (a lock held, interrupts off).
pub(crate) fn in_atomic() -> bool {
    // SAFETY: No requirements.
    unsafe { bindings::ua_in_atomic() }
}

/// Registers the reboot notifier that runs `unmapped_alloc_unshare_all()`.
pub(crate) fn register_reboot_notifier() -> Result {
    // SAFETY: Called once at initialisation; the callback is defined in the crate root.
    to_result(unsafe { bindings::ua_register_reboot_notifier() })
}

/// 2^order contiguous pages owned by the component.
///
/// # Invariants
///
/// `pfn` is the first frame of an allocation of order `order` from the buddy allocator
/// that nobody else uses.
#[derive(Debug)]
pub(crate) struct Block {
    pfn: Pfn,
    order: u32,
}

impl Block {
    /// Takes a block from the buddy allocator. `__GFP_ZERO` in `gfp` zeroes it.
    pub(crate) fn alloc(nid: i32, gfp: bindings::gfp_t, order: u32) -> Option<Self> {
        if should_fail(FailSite::Block, PAGE_SIZE << order) {
            return None;
        }
        // SAFETY: Any node id and flags are accepted; the result is checked for NULL.
        let page = unsafe { bindings::ua_alloc_pages_node(nid, gfp, order) };
        if page.is_null() {
            return None;
        }
        // INVARIANT: A fresh allocation of `order` pages.
        Some(Self {
            pfn: Pfn::of_page(page),
            order,
        })
    }

    /// First frame.
    pub(crate) fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// Order of the block.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// Number of pages.
    pub(crate) fn nr_pages(&self) -> usize {
        1 << self.order
    }

    /// Whether `pfn` lies inside the block.
    pub(crate) fn contains(&self, pfn: Pfn) -> bool {
        pfn >= self.pfn && pfn.0 < self.pfn.0 + self.nr_pages()
    }

    /// Refuses ranges outside of the block: the pages there are not ours.
    fn check_range(&self, first: usize, nr: usize) -> Result {
        if nr == 0
            || first
                .checked_add(nr)
                .is_none_or(|end| end > self.nr_pages())
        {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Sets the direct map entries of pages `first..first + nr` invalid (`valid == false`)
    /// or valid again, without flushing the TLB.
    pub(crate) fn set_direct_map(&self, first: usize, nr: usize, valid: bool) -> Result {
        self.check_range(first, nr)?;
        if should_fail(FailSite::DirectMap, nr * PAGE_SIZE) {
            return Err(EIO);
        }
        // SAFETY: The block owns these pages, so nobody else accesses them through the
        // direct map while its entries change.
        to_result(unsafe {
            bindings::set_direct_map_valid_noflush(self.pfn.add(first).page(), nr as u32, valid)
        })
    }

    /// Flushes the TLB for the direct map range of the whole block.
    pub(crate) fn flush_tlb(&self) {
        let start = self.pfn.virt();
        // SAFETY: Flushing a kernel range has no memory safety requirements.
        unsafe { bindings::ua_flush_tlb_kernel_range(start, start + (self.nr_pages() * PAGE_SIZE)) }
    }

    /// A token for all pages of the block.
    pub(crate) fn whole(&self) -> Result<PageRange> {
        self.range(0, self.nr_pages())
    }

    /// A token for pages `first..first + nr` of the block, valid as long as the caller
    /// keeps owning them (the allocators hand such ranges out of their bookkeeping).
    pub(crate) fn range(&self, first: usize, nr: usize) -> Result<PageRange> {
        self.check_range(first, nr)?;
        Ok(PageRange {
            pfn: self.pfn.add(first),
            nr,
        })
    }

    /// Gives the block back to the buddy allocator. The caller must have restored its
    /// direct map and encryption state.
    pub(crate) fn release(self) {
        // SAFETY: By the type invariant this is an owned allocation of `order` pages.
        unsafe { bindings::__free_pages(self.pfn.page(), self.order) };
    }

    /// Keeps the pages away from the page allocator forever (state unknown).
    pub(crate) fn leak(self) {}
}

/// Pages inside a [`Block`], handed out by [`Block::range`] to whoever owns them in the
/// allocator's bookkeeping (a chunk being scrubbed, an allocation in a test).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageRange {
    pfn: Pfn,
    nr: usize,
}

impl PageRange {
    /// First frame.
    pub(crate) fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// Number of pages.
    pub(crate) fn nr_pages(&self) -> usize {
        self.nr
    }

    /// Charges the pages, a fresh allocation of 2^`order` pages, to the memory cgroup of
    /// the current task.
    pub(crate) fn memcg_charge(&self, gfp: bindings::gfp_t, order: u32) -> Result {
        if self.nr != 1 << order {
            return Err(EINVAL);
        }
        // SAFETY: The range owner's pages; charging writes only their memcg data.
        to_result(unsafe { bindings::ua_memcg_charge(self.pfn.0, gfp, order) })
    }

    /// Removes a charge made by [`Self::memcg_charge`], if any. Any context.
    pub(crate) fn memcg_uncharge(&self, order: u32) {
        if self.nr == 1 << order {
            // SAFETY: The range owner's pages; an uncharged page is left alone.
            unsafe { bindings::ua_memcg_uncharge(self.pfn.0, order) }
        }
    }

    /// Marks the pages shared with the host (decrypted).
    pub(crate) fn set_decrypted(&self) -> Result {
        if should_fail(FailSite::Conversion, self.nr * PAGE_SIZE) {
            return Err(EIO);
        }
        // SAFETY: The range owner asks for its pages to become visible to the host.
        to_result(unsafe { bindings::set_memory_decrypted(self.pfn.virt(), self.nr as i32) })
    }

    /// Marks the pages private (encrypted) again.
    pub(crate) fn set_encrypted(&self) -> Result {
        if should_fail(FailSite::Conversion, self.nr * PAGE_SIZE) {
            return Err(EIO);
        }
        // SAFETY: The range owner converts its own pages.
        to_result(unsafe { bindings::set_memory_encrypted(self.pfn.virt(), self.nr as i32) })
    }

    /// Zeroes the pages: through the direct map where they are mapped (decrypted
    /// pages), otherwise through a temporary mapping (unmapped pages), which may sleep.
    pub(crate) fn scrub(&self) -> Result {
        if (0..self.nr).all(|i| self.pfn.add(i).is_present()) {
            // SAFETY: Every page of the range is mapped in the direct map, where
            // `pfn_to_kaddr` points, and the range owner is the caller.
            unsafe {
                core::ptr::write_bytes(
                    bindings::ua_pfn_to_virt(self.pfn.0) as *mut u8,
                    0,
                    self.nr * PAGE_SIZE,
                )
            };
            return Ok(());
        }
        let map = TempMap::new(self.pfn, self.nr)?;
        // SAFETY: `map` maps the `nr` pages of the range, writable, and the range owner
        // is the caller.
        unsafe { core::ptr::write_bytes(map.0.cast::<u8>(), 0, self.nr * PAGE_SIZE) };
        Ok(())
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Reads the byte at `offset` of the range through a temporary mapping (may sleep).
    pub(crate) fn read_byte(&self, offset: usize) -> Result<u8> {
        if offset >= self.nr * PAGE_SIZE {
            return Err(EINVAL);
        }
        let map = TempMap::new(self.pfn.add(offset / PAGE_SIZE), 1)?;
        // SAFETY: `map` maps one page of the range; `offset % PAGE_SIZE` lies inside it.
        Ok(unsafe { map.0.cast::<u8>().add(offset % PAGE_SIZE).read_volatile() })
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Sets every byte of the range to `val` through a temporary mapping (may sleep).
    pub(crate) fn fill(&self, val: u8) -> Result {
        let map = TempMap::new(self.pfn, self.nr)?;
        // SAFETY: `map` maps the `nr` pages of the range, writable, and the range owner
        // is the caller.
        unsafe { core::ptr::write_bytes(map.0.cast::<u8>(), val, self.nr * PAGE_SIZE) };
        Ok(())
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Whether every byte of the range is zero, read through a temporary mapping (may
    /// sleep).
    pub(crate) fn is_zeroed(&self) -> Result<bool> {
        let map = TempMap::new(self.pfn, self.nr)?;
        let words = self.nr * PAGE_SIZE / core::mem::size_of::<u64>();
        // SAFETY: `map` maps the `nr` pages of the range, page-aligned, so `words`
        // aligned `u64`s are readable there while `map` lives.
        let w = unsafe { core::slice::from_raw_parts(map.0.cast::<u64>(), words) };
        Ok(w.iter().all(|&x| x == 0))
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Writes `val` to the byte at `offset` through a temporary mapping (may sleep).
    pub(crate) fn write_byte(&self, offset: usize, val: u8) -> Result {
        if offset >= self.nr * PAGE_SIZE {
            return Err(EINVAL);
        }
        let map = TempMap::new(self.pfn.add(offset / PAGE_SIZE), 1)?;
        // SAFETY: As in `read_byte`.
        unsafe {
            map.0
                .cast::<u8>()
                .add(offset % PAGE_SIZE)
                .write_volatile(val)
        };
        Ok(())
    }
}

/// Zeroes the `nr` frames at `pfn` of a decrypted allocation being handed out, through
/// the direct map. Shared memory can be written by the host while it is free, so
/// zeroing it when freed would promise nothing: it is zeroed on the way out. Returns
/// false, writing nothing, if a frame is not mapped.
pub(crate) fn zero_on_handout(pfn: Pfn, nr: usize) -> bool {
    if !(0..nr).all(|i| pfn.add(i).is_present()) {
        return false;
    }
    // SAFETY: Every frame is mapped in the direct map, where `pfn_to_kaddr` points, and
    // the allocator is handing them to its caller: nobody else uses them.
    unsafe { core::ptr::write_bytes(pfn.virt() as *mut u8, 0, nr * PAGE_SIZE) };
    true
}

/// The hostile host of the torture test: writes pseudo-random bytes (from `seed`) over
/// the `nr` frames at `pfn` that are mapped in the direct map, as the host of a
/// confidential guest may write any shared byte at any time. Returns the pages written.
///
/// Only for the model backend's record of shared ranges, read under its lock: those
/// frames belong to a decrypted block until the model records them private again.
#[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
pub(crate) fn host_scribble(pfn: Pfn, nr: usize, seed: u64) -> usize {
    let mut x = seed | 1;
    let mut written = 0;
    for i in 0..nr {
        let frame = pfn.add(i);
        if !frame.is_present() {
            continue;
        }
        let words = frame.virt() as *mut u64;
        for w in 0..PAGE_SIZE / core::mem::size_of::<u64>() {
            // xorshift64: cheap bytes nobody could mistake for metadata.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // SAFETY: The frame is mapped in the direct map (checked above), page
            // aligned, and shared memory the allocator owns (the caller holds the
            // model's lock, which every conversion back to private takes first).
            // Users race with these writes on purpose, as with a real host.
            unsafe { words.add(w).write_volatile(x) };
        }
        written += 1;
    }
    written
}

impl PageRange {
    /// `len` bytes at `offset` of the range, accessed through the direct map; fails
    /// unless the range is inside and its pages are mapped there (decrypted memory).
    pub(crate) fn mapped(&self, offset: usize, len: usize) -> Result<MappedBytes> {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if len == 0 || end > self.nr * PAGE_SIZE {
            return Err(EINVAL);
        }
        let first = offset / PAGE_SIZE;
        let last = (end - 1) / PAGE_SIZE;
        if !(first..=last).all(|i| self.pfn.add(i).is_present()) {
            return Err(EFAULT);
        }
        Ok(MappedBytes {
            addr: self.pfn.virt() + offset,
            len,
        })
    }
}

/// Bytes of an owned range that are mapped in the direct map, see [`PageRange::mapped`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct MappedBytes {
    addr: usize,
    len: usize,
}

impl MappedBytes {
    /// The address of the first byte.
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self.addr
    }

    /// `len` of the bytes from `offset`, if they are all inside.
    #[inline]
    pub(crate) fn sub(&self, offset: usize, len: usize) -> Option<MappedBytes> {
        let end = offset.checked_add(len)?;
        (len > 0 && end <= self.len).then_some(MappedBytes {
            addr: self.addr + offset,
            len,
        })
    }

    /// Zeroes the bytes.
    pub(crate) fn zero(&self) {
        // SAFETY: By construction the bytes are mapped and owned by the caller.
        unsafe { core::ptr::write_bytes(self.addr as *mut u8, 0, self.len) };
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Reads byte `i` (volatile: the host may write shared memory).
    pub(crate) fn read(&self, i: usize) -> Option<u8> {
        // SAFETY: `i < len`: mapped and owned.
        (i < self.len).then(|| unsafe { (self.addr as *const u8).add(i).read_volatile() })
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Writes byte `i` (volatile).
    pub(crate) fn write(&self, i: usize, v: u8) -> Result {
        if i >= self.len {
            return Err(EINVAL);
        }
        // SAFETY: `i < len`: mapped and owned.
        unsafe { (self.addr as *mut u8).add(i).write_volatile(v) };
        Ok(())
    }
}

/// The bytes of a C string passed by a C caller, `EINVAL` for NULL.
///
/// # Safety
///
/// `name` is NULL or points at a NUL-terminated string that stays valid and unchanged
/// for `'a`.
pub(crate) unsafe fn c_name<'a>(name: *const kernel::ffi::c_char) -> Result<&'a [u8]> {
    if name.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: Not NULL, so a NUL-terminated string valid for `'a` (the caller's contract).
    Ok(unsafe { kernel::str::CStr::from_char_ptr(name) }.to_bytes())
}

/// Stores `value` through a pointer a C caller passed for it (ignored if NULL).
///
/// # Safety
///
/// `dst` is NULL or valid for writing a `T`.
pub(crate) unsafe fn write_out<T>(dst: *mut T, value: T) {
    if !dst.is_null() {
        // SAFETY: Not NULL, so valid for writing a `T` (the caller's contract).
        unsafe { dst.write(value) };
    }
}

/// Makes a C handle (the `struct kmem_cache_decrypted *` of the C API) of `value`.
pub(crate) fn into_handle<T>(value: KBox<T>) -> *mut bindings::kmem_cache_decrypted {
    KBox::into_raw(value).cast()
}

/// Runs `f` on the object behind a handle made by [`into_handle`]; `None` for NULL.
///
/// # Safety
///
/// `handle` is NULL or came from `into_handle::<T>()` and was not given to
/// [`take_cache`] yet, and stays so until this returns.
pub(crate) unsafe fn with_cache<T, R>(
    handle: *mut bindings::kmem_cache_decrypted,
    f: impl FnOnce(&T) -> R,
) -> Option<R> {
    let p = handle.cast::<T>();
    // SAFETY: Not NULL, so a live `T` made by `into_handle()` (the caller's contract).
    (!p.is_null()).then(|| f(unsafe { &*p }))
}

/// Takes back ownership of a handle made by [`into_handle`]; `None` for NULL.
///
/// # Safety
///
/// `handle` is NULL or came from `into_handle::<T>()`, was not taken back yet, and
/// nobody uses it any more.
pub(crate) unsafe fn take_cache<T>(handle: *mut bindings::kmem_cache_decrypted) -> Option<KBox<T>> {
    let p = handle.cast::<T>();
    // SAFETY: Not NULL, so it came from `KBox::into_raw()` in `into_handle()` and is
    // given up here (the caller's contract).
    (!p.is_null()).then(|| unsafe { KBox::from_raw(p) })
}

/// The default unbound workqueue, `system_dfl_wq`, which replaces `system_unbound_wq`
/// (7.2 warns about work queued on the latter; its Rust crate has no wrapper yet).
pub(crate) fn system_dfl() -> &'static kernel::workqueue::Queue {
    // SAFETY: `system_dfl_wq` is a C global workqueue, created at boot before any
    // initcall and never destroyed.
    unsafe { kernel::workqueue::Queue::from_raw(bindings::system_dfl_wq) }
}

/// A temporary kernel mapping of pages, undone on drop.
struct TempMap(*mut core::ffi::c_void);

impl TempMap {
    fn new(pfn: Pfn, nr: usize) -> Result<Self> {
        // SAFETY: `pfn` names owned, valid frames; may sleep, which callers allow.
        let addr = unsafe { bindings::ua_vmap_pfns(pfn.0, nr as u32) };
        if addr.is_null() {
            return Err(ENOMEM);
        }
        Ok(Self(addr))
    }
}

impl Drop for TempMap {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `vmap()`.
        unsafe { bindings::vunmap(self.0) };
    }
}

/// A `spinlock_t` taken with `spin_lock_irqsave()`.
pub(crate) struct IrqSpinLockBackend;

/// A spinlock that disables interrupts, usable from any context.
pub(crate) type IrqSpinLock<T> = Lock<T, IrqSpinLockBackend>;

/// Creates an [`IrqSpinLock`] initialiser with a static lock class.
macro_rules! new_irq_spinlock {
    ($inner:expr, $name:literal) => {
        $crate::sys::IrqSpinLock::new($inner, $name, kernel::static_lock_class!())
    };
}
pub(crate) use new_irq_spinlock;

// SAFETY: `spinlock_t` provides mutual exclusion; the saved flags are restored on unlock by
// the same guard that saved them.
unsafe impl Backend for IrqSpinLockBackend {
    type State = bindings::spinlock_t;
    type GuardState = usize;

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: The caller passes a valid lock slot, name and key.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The caller passes an initialised lock.
        unsafe { bindings::ua_spin_lock_irqsave(ptr) }
    }

    unsafe fn try_lock(_ptr: *mut Self::State) -> Option<Self::GuardState> {
        // Not needed by the component.
        None
    }

    unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
        // SAFETY: The caller holds the lock; `guard_state` are the flags saved by `lock`.
        unsafe { bindings::ua_spin_unlock_irqrestore(ptr, *guard_state) }
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: The caller passes an initialised lock.
        unsafe { bindings::ua_assert_spin_locked(ptr) }
    }
}

/// A value set once and then read without locks for good, like
/// [`kernel::sync::SetOnce`], but read with a plain load: the kernel's atomics are
/// out-of-line C calls unless the tree has `CONFIG_RUST_INLINE_HELPERS`, and every call
/// of the C API reads one of these. The value is never dropped (the component is built
/// in).
pub(crate) struct Published<T>(AtomicPtr<T>);

impl<T> Published<T> {
    /// Nothing published yet.
    pub(crate) const fn new() -> Self {
        Self(AtomicPtr::new(core::ptr::null_mut()))
    }
}

impl<T: Send + Sync> Published<T> {
    /// Publishes `value`; `false` (and `value` dropped) if something was published already.
    pub(crate) fn publish(&self, value: T) -> Result<bool> {
        let p = KBox::into_raw(KBox::new(value, GFP_KERNEL)?);
        if self
            .0
            .compare_exchange(core::ptr::null_mut(), p, SeqCst, Acquire)
            .is_ok()
        {
            return Ok(true);
        }
        // SAFETY: `p` came from `KBox::into_raw` above and was not published.
        drop(unsafe { KBox::from_raw(p) });
        Ok(false)
    }

    /// The published value.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        // SAFETY: A non-null pointer was published by `publish` from a box that is never
        // freed, and only shared from then on (`T: Sync`).
        unsafe { self.0.load(Acquire).as_ref() }
    }
}

/// Proof that the holder runs on CPU `cpu` and stays there: preemption is off (or the CPU
/// is offline and [`PerCpu::each_cpu`] holds the hotplug lock).
///
/// Made only by [`on_this_cpu`] and [`PerCpu::each_cpu`], and never leaves their closure.
pub(crate) struct ThisCpu {
    cpu: usize,
    _not_send: PhantomData<*mut ()>,
}

impl ThisCpu {
    /// The CPU's id.
    #[inline(always)]
    pub(crate) fn id(&self) -> usize {
        self.cpu
    }
}

/// Runs `f` with preemption off on the current CPU, which cannot change meanwhile. `f`
/// must not sleep. Interrupts stay on: they are what makes this cheaper than disabling
/// them, which ends a translation block under QEMU and costs a pipeline flush on real
/// hardware.
#[inline(always)]
pub(crate) fn on_this_cpu<R>(f: impl FnOnce(&ThisCpu) -> R) -> R {
    // SAFETY: Any context may disable preemption; it is enabled again below.
    unsafe { bindings::preempt_disable() };
    // SAFETY: Preemption is off, so the CPU number stays valid until it is enabled again.
    let cpu = unsafe { bindings::raw_smp_processor_id() } as usize;
    let r = f(&ThisCpu {
        cpu,
        _not_send: PhantomData,
    });
    // SAFETY: Preemption was disabled above.
    unsafe { bindings::preempt_enable() };
    r
}

/// The value of one CPU, on its own cache line.
#[repr(align(64))]
struct CpuSlot<L, S> {
    /// A [`CpuLocal`] of the slot exists. Only code on the slot's CPU reads or writes it,
    /// so interrupts are the only concurrency: plain loads and stores with compiler
    /// barriers (`local_trylock()` in C).
    busy: AtomicBool,
    local: UnsafeCell<L>,
    shared: S,
}

/// A value per possible CPU: `L`, which only code on its CPU uses, one at a time (see
/// [`PerCpu::local`]), and `S`, which anyone may read (counters the CPU updates).
pub(crate) struct PerCpu<L, S> {
    slots: KVec<CpuSlot<L, S>>,
}

// SAFETY: `local` of slot `i` is only used through a `CpuLocal`, made by `local()` with a
// `ThisCpu` of CPU `i`, while the slot's `busy` is set. Code on CPU `i` with preemption off
// is one task, and interrupts on CPU `i` (callers are never in NMI context): one that finds
// `busy` clear uses the slot and clears `busy` again before the interrupted code goes on,
// and one that finds it set leaves the slot alone. For an offline CPU `i`, `each_cpu` is
// the only user, serialised by its mutex and the hotplug lock. So `L` is never used
// concurrently, it only moves between CPUs (`L: Send`). `S` is shared as is.
unsafe impl<L: Send, S: Sync> Sync for PerCpu<L, S> {}

// SAFETY: Owning a `PerCpu` owns its `L` and `S` values.
unsafe impl<L: Send, S: Send> Send for PerCpu<L, S> {}

/// Exclusive use of the current CPU's value in a [`PerCpu`]; see [`PerCpu::local`].
pub(crate) struct CpuLocal<'a, L, S> {
    slot: &'a CpuSlot<L, S>,
}

impl<L, S> CpuLocal<'_, L, S> {
    /// The CPU's shared part.
    #[inline]
    pub(crate) fn shared(&self) -> &S {
        &self.slot.shared
    }
}

impl<L, S> Deref for CpuLocal<'_, L, S> {
    type Target = L;

    #[inline]
    fn deref(&self) -> &L {
        // SAFETY: `busy` makes this the only `CpuLocal` of the slot, see `PerCpu`.
        unsafe { &*self.slot.local.get() }
    }
}

impl<L, S> DerefMut for CpuLocal<'_, L, S> {
    #[inline]
    fn deref_mut(&mut self) -> &mut L {
        // SAFETY: As for `deref`, and `self` is borrowed mutably.
        unsafe { &mut *self.slot.local.get() }
    }
}

impl<L, S> Drop for CpuLocal<'_, L, S> {
    #[inline]
    fn drop(&mut self) {
        // All uses of the value come before the slot is free again.
        compiler_fence(SeqCst);
        self.slot.busy.store(false, Relaxed);
    }
}

impl<L, S> PerCpu<L, S> {
    /// One value per possible CPU id, from `make`.
    pub(crate) fn new(mut make: impl FnMut() -> (L, S)) -> Result<Self> {
        let n = kernel::cpu::nr_cpu_ids() as usize;
        let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            let (local, shared) = make();
            slots.push(
                CpuSlot {
                    busy: AtomicBool::new(false),
                    local: UnsafeCell::new(local),
                    shared,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self { slots })
    }

    /// The value of the CPU of `cpu`; `None` if it is in use further up the stack (the
    /// caller interrupted its user, or is its user).
    #[inline(always)]
    pub(crate) fn local<'a>(&'a self, cpu: &'a ThisCpu) -> Option<CpuLocal<'a, L, S>> {
        let slot = self.slots.get(cpu.cpu)?;
        if slot.busy.load(Relaxed) {
            return None;
        }
        slot.busy.store(true, Relaxed);
        // No use of the value before the slot is taken.
        compiler_fence(SeqCst);
        Some(CpuLocal { slot })
    }

    /// The shared part of the CPU of `cpu`, without taking its slot.
    #[inline(always)]
    pub(crate) fn shared_of(&self, cpu: &ThisCpu) -> Option<&S> {
        self.slots.get(cpu.cpu).map(|s| &s.shared)
    }

    /// The shared part of CPU `i`, without taking its slot.
    pub(crate) fn shared_at(&self, i: usize) -> Option<&S> {
        self.slots.get(i).map(|s| &s.shared)
    }

    /// The shared parts of all CPUs.
    pub(crate) fn shared(&self) -> impl Iterator<Item = &S> {
        self.slots.iter().map(|s| &s.shared)
    }

    /// For every possible CPU: `take` something out of its value, then hand it to
    /// `then`. For an online CPU both run on that CPU, `take` with preemption off; for
    /// an offline one, here. Process context; sleeps.
    pub(crate) fn each_cpu<T, F, G>(&self, take: F, then: G)
    where
        F: Fn(&mut CpuLocal<'_, L, S>) -> T + Sync,
        G: Fn(T) + Sync,
    {
        struct Call<'a, L, S, F, G> {
            values: &'a PerCpu<L, S>,
            take: &'a F,
            then: &'a G,
        }

        extern "C" fn one<L, S, T, F, G>(
            info: *mut kernel::ffi::c_void,
            cpu: kernel::ffi::c_uint,
            online: bool,
        ) where
            F: Fn(&mut CpuLocal<'_, L, S>) -> T + Sync,
            G: Fn(T) + Sync,
        {
            // SAFETY: `info` is the `Call` below, alive until `ua_each_cpu()` returns.
            let call = unsafe { &*(info as *const Call<'_, L, S, F, G>) };
            let cpu = cpu as usize;
            let take = |this: &ThisCpu| call.values.local(this).map(|mut v| (call.take)(&mut v));
            let taken = if online {
                // In a kworker bound to `cpu`.
                on_this_cpu(|this| if this.cpu == cpu { take(this) } else { None })
            } else {
                // `cpu` is offline and stays so (`ua_each_cpu()` holds the hotplug lock
                // and its own mutex): nothing else can use its value.
                take(&ThisCpu {
                    cpu,
                    _not_send: PhantomData,
                })
            };
            if let Some(t) = taken {
                (call.then)(t);
            }
        }

        let call = Call {
            values: self,
            take: &take,
            then: &then,
        };
        // SAFETY: `one` matches the callback type; `call` outlives the call, which waits
        // for every CPU. `F` and `G` are `Sync`: they run on other CPUs.
        unsafe {
            bindings::ua_each_cpu(
                Some(one::<L, S, T, F, G>),
                core::ptr::from_ref(&call).cast_mut().cast(),
            )
        };
    }
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

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
#[kernel::macros::kunit_tests(unmapped_alloc_direct_map)]
mod tests {
    use super::*;
    use kernel::bindings::{GFP_KERNEL, __GFP_ZERO};

    fn all_present(b: &Block, want: bool) -> bool {
        (0..b.nr_pages()).all(|i| b.pfn().add(i).is_present() == want)
    }

    #[test]
    fn per_cpu_values_exclusive_and_each_visited_once() -> Result {
        use crate::stats::CpuCounter;
        use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

        let mut next = 0;
        let v = PerCpu::new(|| {
            next += 1;
            (next - 1, CpuCounter::new())
        })?;
        // A second use of the CPU's value while the first lives is refused.
        let (first, second, cpu) = on_this_cpu(|this| {
            let a = v.local(this);
            let b = v.local(this);
            (a.as_deref().copied(), b.is_some(), this.cpu)
        });
        assert_eq!(first, Some(cpu));
        assert!(!second);
        assert!(on_this_cpu(|this| v.local(this).is_some()));
        // Every CPU's value once; online CPUs' values on themselves.
        let on_self = AtomicUsize::new(0);
        v.each_cpu(
            |local| {
                local.shared().inc();
                (**local, on_this_cpu(|this| this.cpu))
            },
            |(slot, ran_on)| {
                if slot == ran_on {
                    on_self.fetch_add(1, Relaxed);
                }
            },
        );
        assert!(v.shared().all(|c| c.get() == 1));
        assert_eq!(v.shared().count(), kernel::cpu::nr_cpu_ids() as usize);
        assert!(on_self.load(Relaxed) >= 1);
        Ok(())
    }

    #[test]
    fn unmap_and_restore_page() -> Result {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL, 0).ok_or(ENOMEM)?;
        assert!(b.pfn().is_present());
        b.set_direct_map(0, 1, false)?;
        b.flush_tlb();
        assert!(!b.pfn().is_present());
        b.set_direct_map(0, 1, true)?;
        b.flush_tlb();
        assert!(b.pfn().is_present());
        b.release();
        Ok(())
    }

    #[test]
    fn unmap_and_restore_pmd_block() -> Result {
        let order = block_order();
        let Some(b) = Block::alloc(NUMA_NO_NODE, GFP_KERNEL, order) else {
            // Memory may be too fragmented for a 2 MiB block: fall back to a smaller one.
            return Err(ENOMEM);
        };
        assert_eq!(b.nr_pages(), 512);
        assert!(all_present(&b, true));
        b.set_direct_map(0, b.nr_pages(), false)?;
        b.flush_tlb();
        assert!(all_present(&b, false));
        b.set_direct_map(0, b.nr_pages(), true)?;
        b.flush_tlb();
        assert!(all_present(&b, true));
        b.release();
        Ok(())
    }

    #[test]
    fn unmapped_page_readable_through_temp_map() -> Result {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL | __GFP_ZERO, 1).ok_or(ENOMEM)?;
        b.set_direct_map(0, 2, false)?;
        b.flush_tlb();
        assert!(!b.pfn().add(1).is_present());
        let r = b.range(0, 2)?;
        r.write_byte(PAGE_SIZE + 7, 0xa5)?;
        assert_eq!(r.read_byte(PAGE_SIZE + 7)?, 0xa5);
        b.range(1, 1)?.scrub()?;
        assert_eq!(r.read_byte(PAGE_SIZE + 7)?, 0);
        assert_eq!(r.read_byte(2 * PAGE_SIZE), Err(EINVAL));
        b.set_direct_map(0, 2, true)?;
        b.flush_tlb();
        b.release();
        Ok(())
    }

    #[test]
    fn decrypt_and_encrypt_range() -> Result {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL, 2).ok_or(ENOMEM)?;
        let r = b.range(0, 4)?;
        assert_eq!(r.set_decrypted(), Ok(()));
        assert_eq!(r.set_encrypted(), Ok(()));
        assert!(all_present(&b, true));
        b.release();
        Ok(())
    }

    #[test]
    fn pfn_round_trip() {
        let b = Block::alloc(NUMA_NO_NODE, GFP_KERNEL, 0).unwrap();
        let pfn = b.pfn();
        assert_eq!(Pfn::of_page(pfn.page()), pfn);
        assert_eq!(pfn.phys() >> kernel::page::PAGE_SHIFT, pfn.0 as u64);
        assert!(node_has_memory(pfn.nid()));
        b.release();
    }
}
