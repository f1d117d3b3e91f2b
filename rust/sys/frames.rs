// SPDX-License-Identifier: GPL-2.0

//! Page frames and blocks: [`Pfn`] names a frame, [`Block`] owns 2^order contiguous
//! pages taken from the buddy allocator, [`PageRange`] and [`MappedBytes`] give access
//! to pages of a block and keep the block alive while they do.

use super::*;
use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::{Arc, UniqueArc},
};

/// A page frame number: any number, not necessarily a frame of memory the kernel
/// manages; every method is safe for any value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Pfn(usize);

impl Pfn {
    /// Frame number `n` (only the tests make frames from numbers).
    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
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
        let pfn = unsafe { bindings::ua_page_to_pfn(page) };
        Self(pfn + usize::from(crate::mutant::is(crate::mutant::Mutant::OfPageOffByOne)))
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
    /// The page's reference count (0 for a frame without a `struct page`).
    pub(crate) fn refs(self) -> i32 {
        if !self.is_valid() {
            return 0;
        }
        // SAFETY: Reads the reference count of a frame that has a `struct page`.
        unsafe { bindings::ua_page_refs(self.0) }
    }

    /// Whether the frame is mapped in the kernel direct map (`false` for a frame
    /// without a `struct page`).
    pub(crate) fn is_present(self) -> bool {
        // SAFETY: Reads the direct map page tables at the address of a frame that has a
        // `struct page`, so a direct map address.
        self.is_valid() && unsafe { bindings::kernel_page_present(self.page()) }
    }
}

/// 2^order contiguous pages owned by the component, always behind an [`Arc`]: the
/// allocator's bookkeeping holds one reference, and every [`PageRange`] or
/// [`MappedBytes`] naming its pages holds another, so none of them can outlive it.
///
/// Only [`Block::release`] gives the pages back, and only through the last reference.
/// Dropping the last reference otherwise leaks the pages: their direct map or
/// encryption state may be anything, and they must not reach the page allocator.
///
/// # Invariants
///
/// `pfn` is the first frame of an allocation of order `order` from the buddy allocator
/// that nobody else uses.
#[derive(Debug)]
pub(crate) struct Block {
    pfn: Pfn,
    order: u32,
    /// The direct map changes and TLB flushes made for the block, counted here where
    /// the C calls are made, for the tests to assert.
    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    calls: BlockCalls,
}

/// Calls into C made for a [`Block`] (tests only).
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
#[derive(Debug, Default)]
struct BlockCalls {
    /// `set_direct_map_valid_noflush()` calls that succeeded...
    direct_map: core::sync::atomic::AtomicUsize,
    /// ... and the pages they covered.
    direct_map_pages: core::sync::atomic::AtomicUsize,
    /// `flush_tlb_kernel_range()` calls.
    tlb_flushes: core::sync::atomic::AtomicUsize,
}

/// What [`PageRange::block_calls`] reports (tests only).
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CallCounts {
    /// Direct map changes made.
    pub(crate) direct_map: usize,
    /// Pages they covered.
    pub(crate) direct_map_pages: usize,
    /// TLB flushes made.
    pub(crate) tlb_flushes: usize,
}

impl Block {
    /// Takes a block from the buddy allocator. `__GFP_ZERO` in `gfp` zeroes it.
    pub(crate) fn alloc(nid: i32, gfp: bindings::gfp_t, order: u32) -> Option<Arc<Self>> {
        if should_fail(FailSite::Block, PAGE_SIZE << order) {
            return None;
        }
        let flags = if gfp_allows_blocking(gfp) {
            GFP_KERNEL
        } else {
            GFP_ATOMIC
        };
        // The reference count first: once the pages are taken, nothing may fail.
        let slot = UniqueArc::new_uninit(flags).ok()?;
        // SAFETY: Any node id and flags are accepted; the result is checked for NULL.
        let page = unsafe { bindings::ua_alloc_pages_node(nid, gfp, order) };
        if page.is_null() {
            return None;
        }
        // While the component owns them, all pages of a block have no reference, as
        // free pages in the buddy allocator: a stray get_page_unless_zero() fails.
        // SAFETY: A fresh allocation of ours, its head page holding the one reference.
        unsafe { bindings::ua_page_set_refs(Pfn::of_page(page).0, 0) };
        // INVARIANT: A fresh allocation of `order` pages.
        Some(
            slot.write(Self {
                pfn: Pfn::of_page(page),
                order,
                #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
                calls: BlockCalls::default(),
            })
            .into(),
        )
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
        if !valid && crate::mutant::is(crate::mutant::Mutant::UnmapIgnored) {
            return Ok(());
        }
        // SAFETY: The block owns these pages, so nobody else accesses them through the
        // direct map while its entries change.
        to_result(unsafe {
            bindings::set_direct_map_valid_noflush(self.pfn.add(first).page(), nr as u32, valid)
        })?;
        #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
        {
            self.calls
                .direct_map
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            self.calls
                .direct_map_pages
                .fetch_add(nr, core::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Hands out the allocation starting at page `first`: its first page gets the one
    /// reference that alloc_pages() gives, so that a consumer's get_page()/put_page()
    /// pair leaves it with the component.
    pub(crate) fn hand_out(&self, first: usize) {
        if self.check_range(first, 1).is_ok() {
            // SAFETY: A page of the block, handed out by its owner right now: nobody
            // else holds a reference to it.
            unsafe { bindings::ua_page_set_refs(self.pfn.add(first).0, 1) }
        }
    }

    /// Whether pages `first..first + nr` hold exactly the references a block's page
    /// has: `head` on the first page (1 while handed out, 0 while the component's),
    /// none on the others, and no user space mapping.
    fn refs_are(&self, first: usize, nr: usize, head: i32) -> bool {
        (0..nr).all(|i| {
            let pfn = self.pfn.add(first + i).0;
            let want = if i == 0 { head } else { 0 };
            // SAFETY: Reading a reference and map count of a page of the block.
            unsafe { bindings::ua_page_refs(pfn) == want && !bindings::ua_page_mapped(pfn) }
        })
    }

    /// Takes the allocation of `nr` pages at `first` back from its user. Fails with
    /// `EBUSY`, changing nothing, while someone still holds a reference beyond the one
    /// handed out or the pages are mapped into user space: they must not be reused.
    pub(crate) fn take_back(&self, first: usize, nr: usize) -> Result {
        self.check_range(first, nr)?;
        if !self.refs_are(first, nr, 1) {
            return Err(EBUSY);
        }
        // The first page's reference is dropped in one step that fails if it is no
        // longer the only one: a page cache lookup may take one at any time.
        // SAFETY: A page of the block; its count goes from 1 to 0 only if it is 1.
        if !unsafe { bindings::ua_page_ref_freeze(self.pfn.add(first).0, 1) } {
            return Err(EBUSY);
        }
        Ok(())
    }

    /// Flushes the TLB for the direct map range of the whole block.
    pub(crate) fn flush_tlb(&self) {
        let start = self.pfn.virt();
        // SAFETY: Flushing a kernel range has no memory safety requirements.
        unsafe {
            bindings::ua_flush_tlb_kernel_range(start, start + (self.nr_pages() * PAGE_SIZE))
        };
        #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
        self.calls
            .tlb_flushes
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// All pages of the block.
    pub(crate) fn whole(this: &Arc<Self>) -> Result<PageRange> {
        Self::range(this, 0, this.nr_pages())
    }

    /// Pages `first..first + nr` of the block, for whoever owns them in the allocator's
    /// bookkeeping (a chunk being scrubbed, a live allocation); the range keeps the block
    /// alive.
    pub(crate) fn range(this: &Arc<Self>, first: usize, nr: usize) -> Result<PageRange> {
        this.check_range(first, nr)?;
        Ok(PageRange {
            pfn: this.pfn.add(first),
            nr,
            _block: this.clone(),
        })
    }

    /// Removes the memory cgroup charge of pages `first..` of 2^`order`, made by
    /// [`PageRange::memcg_charge`], if any. Any context.
    pub(crate) fn memcg_uncharge(&self, first: usize, order: u32) {
        if self.check_range(first, 1 << order).is_ok() {
            // SAFETY: The block's pages; an uncharged page is left alone.
            unsafe { bindings::ua_memcg_uncharge(self.pfn.add(first).0, order) }
        }
    }

    /// Gives the block back to the buddy allocator through its last reference. The
    /// caller must have restored its direct map and encryption state. Fails with
    /// `EBUSY`, giving nothing back, while a [`PageRange`] or [`MappedBytes`] still names
    /// its pages: the pages are then leaked with the last of them.
    pub(crate) fn release(this: Arc<Self>) -> Result {
        let Some(block) = Arc::into_unique_or_drop(this) else {
            return if crate::mutant::is(crate::mutant::Mutant::ReleaseWhileUsed) {
                Ok(())
            } else {
                Err(EBUSY)
            };
        };
        // A page with a reference is still someone's: dropping the block leaks it.
        if !block.refs_are(0, block.nr_pages(), 0) {
            return Err(EBUSY);
        }
        detectors::block_released(block.pfn, block.nr_pages());
        // SAFETY: By the type invariant this is an owned allocation of `order` pages,
        // and this is its only reference, dropped right after: nothing names the pages
        // any more, and none of them has a reference. The head page gets back the one
        // that `__free_pages()` drops.
        unsafe {
            bindings::ua_page_set_refs(block.pfn.0, 1);
            bindings::__free_pages(block.pfn.page(), block.order)
        };
        Ok(())
    }
}

/// Pages inside a [`Block`], handed out by [`Block::range`] to whoever owns them in the
/// allocator's bookkeeping (a chunk being scrubbed, an allocation being charged). Holds
/// a reference to the block, so the pages stay the component's while it exists.
#[derive(Clone, Debug)]
pub(crate) struct PageRange {
    pfn: Pfn,
    nr: usize,
    _block: Arc<Block>,
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

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// A consumer's `get_page()` on the first page, as an sg list or a bio takes.
    pub(crate) fn get_page(&self) {
        // SAFETY: The range owner's first page, holding the reference handed out; an
        // extra one is what any consumer of an allocation may take.
        unsafe { bindings::ua_get_page(self.pfn.0) }
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// A consumer's `put_page()` on the first page, refused unless it drops an extra
    /// reference: the last one is given back by a free, never by `put_page()`.
    pub(crate) fn put_page(&self) -> Result {
        // SAFETY: Reads the reference count of the range owner's first page.
        if unsafe { bindings::ua_page_refs(self.pfn.0) } < 2 {
            return Err(EINVAL);
        }
        // SAFETY: An extra reference taken by `get_page()`: the page is not freed.
        unsafe { bindings::ua_put_page(self.pfn.0) };
        Ok(())
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
        let ret = unsafe { bindings::set_memory_encrypted(self.pfn.virt(), self.nr as i32) };
        let r = to_result(ret);
        if r.is_ok() && crate::mutant::is(crate::mutant::Mutant::EncryptReportsFailure) {
            return Err(EIO);
        }
        r
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
    /// The direct map changes and TLB flushes made so far for the range's block.
    pub(crate) fn block_calls(&self) -> CallCounts {
        let c = &self._block.calls;
        let get =
            |a: &core::sync::atomic::AtomicUsize| a.load(core::sync::atomic::Ordering::Relaxed);
        CallCounts {
            direct_map: get(&c.direct_map),
            direct_map_pages: get(&c.direct_map_pages),
            tlb_flushes: get(&c.tlb_flushes),
        }
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Reads the byte at `offset` of the range through a temporary mapping (may sleep).
    pub(crate) fn read_byte(&self, offset: usize) -> Result<u8> {
        if offset >= self.nr * PAGE_SIZE {
            return Err(EINVAL);
        }
        if crate::mutant::is(crate::mutant::Mutant::ReadViaDirectMap) {
            let at = self.pfn.add(offset / PAGE_SIZE).virt() + offset % PAGE_SIZE;
            // SAFETY: None: the page may be absent from the direct map, and this read
            // then faults. The mutant is that bug, in test kernels only.
            return Ok(unsafe { (at as *const u8).read_volatile() });
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

impl PageRange {
    /// The hostile host of the torture test: writes pseudo-random bytes (from `seed`)
    /// over the pages of the range that are mapped in the direct map, as the host of a
    /// confidential guest may write any shared byte at any time. Returns the pages
    /// written.
    ///
    /// Only for the model backend's record of shared ranges, under its lock: those
    /// pages are shared until the model records them private again, and the range keeps
    /// their block.
    #[cfg(CONFIG_UNMAPPED_ALLOC_TORTURE)]
    pub(crate) fn host_scribble(&self, seed: u64) -> usize {
        // The host's writes, not a user's: not for KASAN to report.
        let _quiet = detectors::Quiet::new();
        let mut x = seed | 1;
        let mut written = 0;
        for i in 0..self.nr {
            let frame = self.pfn.add(i);
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
                // aligned, and one of the range's, whose block lives as long as `self`.
                // Users race with these writes on purpose, as with a real host.
                unsafe { words.add(w).write_volatile(x) };
            }
            written += 1;
        }
        written
    }

    /// Zeroes the pages of a decrypted allocation being handed out, through the direct
    /// map. Shared memory can be written by the host while it is free, so zeroing it
    /// when freed would promise nothing: it is zeroed on the way out. Returns false,
    /// writing nothing, if a page is not mapped.
    pub(crate) fn zero_on_handout(&self) -> bool {
        if should_fail(FailSite::Handout, self.nr * PAGE_SIZE)
            || !(0..self.nr).all(|i| self.pfn.add(i).is_present())
        {
            return false;
        }
        // SAFETY: Every page is mapped in the direct map, where `pfn_to_kaddr` points;
        // they are the range owner's, handing them to its caller, and the block lives
        // as long as `self`.
        unsafe { core::ptr::write_bytes(self.pfn.virt() as *mut u8, 0, self.nr * PAGE_SIZE) };
        true
    }

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
            inverted: !(self.pfn.virt() + offset),
            len,
            _block: self._block.clone(),
        })
    }
}

/// Bytes of an owned range that are mapped in the direct map, see [`PageRange::mapped`].
/// Holds a reference to their block, like the range.
#[derive(Clone, Debug)]
pub(crate) struct MappedBytes {
    /// The address of the first byte, inverted: kmemleak takes any word that points
    /// into an object it tracks for a reference to that object, and would see this
    /// record (a slab's, for instance) as one to the object at its start.
    inverted: usize,
    len: usize,
    _block: Arc<Block>,
}

impl MappedBytes {
    /// The address of the first byte.
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        !self.inverted
    }

    /// The address of the `len` bytes at `offset`, if they are all inside.
    #[inline]
    pub(crate) fn sub(&self, offset: usize, len: usize) -> Option<usize> {
        let end = offset.checked_add(len)?;
        (len > 0 && end <= self.len).then_some(self.addr() + offset)
    }

    /// Zeroes the `len` bytes at `offset`; false, writing nothing, unless they are all
    /// inside.
    #[inline]
    pub(crate) fn zero(&self, offset: usize, len: usize) -> bool {
        let Some(addr) = self.sub(offset, len) else {
            return false;
        };
        // SAFETY: Inside the bytes, which are mapped and owned by the caller, and whose
        // block lives as long as `self`.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, len) };
        true
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Reads byte `i` (volatile: the host may write shared memory).
    pub(crate) fn read(&self, i: usize) -> Option<u8> {
        // SAFETY: `i < len`: mapped and owned.
        (i < self.len).then(|| unsafe { (self.addr() as *const u8).add(i).read_volatile() })
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// Writes byte `i` (volatile).
    pub(crate) fn write(&self, i: usize, v: u8) -> Result {
        if i >= self.len {
            return Err(EINVAL);
        }
        // SAFETY: `i < len`: mapped and owned.
        unsafe { (self.addr() as *mut u8).add(i).write_volatile(v) };
        Ok(())
    }
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
