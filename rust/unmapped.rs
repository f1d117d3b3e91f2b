// SPDX-License-Identifier: GPL-2.0

//! The unmapped page allocator.
//!
//! Blocks of PMD size (2 MiB on x86_64) are taken from the page allocator on the
//! requested node, zeroed while still mapped, removed from the direct map in one call
//! with one TLB flush, and carved into chunks of order 0..=PMD order by a [`Buddy`].
//!
//! - Freed chunks are scrubbed (zeroed through a temporary mapping) in the background
//!   before they can be handed out again, so a new owner never sees an old owner's
//!   data and `unmapped_free()` works in any context. Callers that initialise the
//!   memory themselves may opt out and take freed chunks unscrubbed.
//! - Allocations that cannot sleep are served only from memory that is already
//!   unmapped and clean: the direct map is never changed in atomic context.
//! - Fully free blocks are kept as a cache up to a limit per node; beyond it, and when
//!   the shrinker asks, they get their direct map back and return to the page
//!   allocator whole, so the architecture can map them large again.

use crate::{
    buddy::{Buddy, FreeError},
    stats::{UnmappedStats, MAX_ORDER},
    sys::{self, new_irq_spinlock, Block, IrqSpinLock, PageRange, Pfn, NUMA_NO_NODE},
};
use core::fmt;
use kernel::{
    bindings,
    pr_err_once, pr_warn_once,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    workqueue::{self, impl_has_work, new_work, Work, WorkItem},
};

/// A block taken from the page allocator and its buddy state.
struct UnmappedBlock {
    block: Block,
    buddy: Buddy,
}

/// The blocks of one node, sorted by first frame.
struct NodePool {
    blocks: KVec<KBox<UnmappedBlock>>,
}

impl NodePool {
    /// Index of the block containing `pfn`.
    fn find(&self, pfn: Pfn) -> Option<usize> {
        let i = match self.blocks.binary_search_by_key(&pfn, |b| b.block.pfn()) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        self.blocks[i].block.contains(pfn).then_some(i)
    }

    /// Inserts a block, keeping the order. May only fail to grow the vector.
    fn insert(&mut self, b: KBox<UnmappedBlock>) -> core::result::Result<(), KBox<UnmappedBlock>> {
        let pfn = b.block.pfn();
        let i = match self.blocks.binary_search_by_key(&pfn, |b| b.block.pfn()) {
            Ok(i) | Err(i) => i,
        };
        if self.blocks.len() == self.blocks.capacity() {
            // Metadata only; the lock is held, so no sleeping allocation.
            if self.blocks.reserve(4, GFP_ATOMIC).is_err() {
                return Err(b);
            }
        }
        let len = self.blocks.len();
        match self.blocks.push_within_capacity(b) {
            Ok(()) => {
                self.blocks[i..=len].rotate_right(1);
                Ok(())
            }
            Err(e) => Err(e.0),
        }
    }

    fn pages(&self) -> PoolPages {
        let mut p = PoolPages::default();
        for b in self.blocks.iter() {
            p.blocks += 1;
            p.held += b.buddy.nr_pages();
            p.free += b.buddy.nr_free();
            p.dirty += b.buddy.nr_dirty();
            p.free_blocks += usize::from(b.buddy.is_empty());
        }
        p
    }
}

/// Page counts of a node pool.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolPages {
    /// Blocks held.
    pub(crate) blocks: usize,
    /// Blocks entirely free.
    pub(crate) free_blocks: usize,
    /// Pages held, unmapped.
    pub(crate) held: usize,
    /// Free, scrubbed pages ready to hand out.
    pub(crate) free: usize,
    /// Freed pages waiting to be scrubbed.
    pub(crate) dirty: usize,
}

impl PoolPages {
    /// Pages handed out to users.
    pub(crate) fn used(&self) -> usize {
        self.held - self.free - self.dirty
    }
}

/// Why a free was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BadFree {
    /// The page is not in any block of this allocator.
    NotOwned,
    /// The order is larger than any allocation can have.
    BadOrder,
    /// Refused by the block's bookkeeping.
    Block(FreeError),
}

/// Tunables of an allocator instance.
#[derive(Clone, Copy)]
pub(crate) struct Config {
    /// Order of the blocks taken from the page allocator.
    pub(crate) block_order: u32,
    /// Fully free blocks kept per node before returning them.
    pub(crate) cache_blocks: usize,
    /// Whether frees schedule background scrubbing and trimming. Tests turn it off to
    /// observe dirty state and drive the work themselves.
    pub(crate) background: bool,
}

impl Config {
    /// Defaults for the global instance.
    pub(crate) fn default_global() -> Self {
        Self {
            block_order: sys::pmd_order(),
            cache_blocks: 4,
            background: true,
        }
    }
}

/// An instance of the unmapped page allocator.
#[pin_data(PinnedDrop)]
pub(crate) struct UnmappedAllocator {
    nodes: KVec<Pin<KBox<IrqSpinLock<NodePool>>>>,
    block_order: u32,
    cache_blocks: Atomic<usize>,
    background: bool,
    /// Event counters.
    pub(crate) stats: UnmappedStats,
    #[pin]
    work: Work<UnmappedAllocator>,
}

impl_has_work! {
    impl HasWork<Self> for UnmappedAllocator { self.work }
}

impl WorkItem for UnmappedAllocator {
    type Pointer = Arc<UnmappedAllocator>;

    fn run(this: Arc<UnmappedAllocator>) {
        this.trim();
    }
}

impl UnmappedAllocator {
    /// Creates an instance with one pool per possible node.
    pub(crate) fn new(config: Config) -> Result<Arc<Self>> {
        if config.block_order as usize > MAX_ORDER {
            return Err(EINVAL);
        }
        let mut nodes = KVec::new();
        for _ in 0..sys::nr_node_ids() {
            nodes.push(
                KBox::pin_init(
                    new_irq_spinlock!(
                        NodePool {
                            blocks: KVec::new()
                        },
                        c"unmapped_alloc_node"
                    ),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        Arc::pin_init(
            try_pin_init!(Self {
                nodes,
                block_order: config.block_order,
                cache_blocks: Atomic::new(config.cache_blocks),
                background: config.background,
                stats: UnmappedStats::new(),
                work <- new_work!("UnmappedAllocator::work"),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// Largest order served.
    pub(crate) fn max_order(&self) -> u32 {
        self.block_order
    }

    /// Fully free blocks kept per node.
    pub(crate) fn cache_blocks(&self) -> usize {
        self.cache_blocks.load(Relaxed)
    }

    /// Sets the number of fully free blocks kept per node.
    pub(crate) fn set_cache_blocks(&self, n: usize) {
        self.cache_blocks.store(n, Relaxed);
    }

    fn pool(&self, nid: i32) -> Option<&IrqSpinLock<NodePool>> {
        usize::try_from(nid)
            .ok()
            .and_then(|n| self.nodes.get(n))
            .map(|p| &**p)
    }

    /// Page counts of node `nid`'s pool.
    pub(crate) fn pool_pages(&self, nid: i32) -> PoolPages {
        self.pool(nid).map(|p| p.lock().pages()).unwrap_or_default()
    }

    /// Page counts of all pools together.
    pub(crate) fn total_pages(&self) -> PoolPages {
        let mut t = PoolPages::default();
        for nid in 0..self.nodes.len() as i32 {
            let p = self.pool_pages(nid);
            t.blocks += p.blocks;
            t.free_blocks += p.free_blocks;
            t.held += p.held;
            t.free += p.free;
            t.dirty += p.dirty;
        }
        t
    }

    /// Allocates 2^`order` unmapped pages, preferably on node `nid`.
    ///
    /// With `scrub == false` the caller promises to initialise the memory itself and may
    /// get a freed chunk that was not scrubbed yet (unless `gfp` has `__GFP_ZERO`).
    pub(crate) fn alloc(
        self: &Arc<Self>,
        nid: i32,
        gfp: bindings::gfp_t,
        order: u32,
        scrub: bool,
    ) -> Option<Pfn> {
        if order > self.block_order {
            self.stats.bad_requests.inc();
            pr_warn_once!(
                "order {} above the block order {}\n",
                order,
                self.block_order
            );
            return None;
        }
        let nid = if nid == NUMA_NO_NODE {
            sys::local_node()
        } else {
            nid
        };
        if !sys::node_has_memory(nid) || self.pool(nid).is_none() {
            self.stats.bad_requests.inc();
            pr_warn_once!("no memory on node {}\n", nid);
            return None;
        }
        let thisnode = gfp & bindings::__GFP_THISNODE != 0;
        let take_dirty = !scrub && gfp & bindings::__GFP_ZERO == 0;

        let pfn = self.alloc_from_pools(nid, order, thisnode, take_dirty).or_else(|| {
            if !sys::gfp_allows_blocking(gfp) {
                // Changing the direct map or scrubbing may sleep: fail fast.
                self.stats.atomic_failures.inc();
                self.kick();
                return None;
            }
            if self.scrub_pending() > 0 {
                if let Some(pfn) = self.alloc_from_pools(nid, order, thisnode, take_dirty) {
                    return Some(pfn);
                }
            }
            self.grow(nid, gfp, order)
        });
        match pfn {
            Some(_) => self.stats.allocs.at(order).inc(),
            None => self.stats.alloc_failures.inc(),
        }
        pfn
    }

    /// Serves from memory that is already unmapped: node `nid` first, then the others.
    fn alloc_from_pools(&self, nid: i32, order: u32, thisnode: bool, dirty: bool) -> Option<Pfn> {
        let others = (0..self.nodes.len() as i32).filter(|&n| n != nid && !thisnode);
        for n in Iterator::chain(core::iter::once(nid), others) {
            let Some(pool) = self.pool(n) else { continue };
            let mut pool = pool.lock();
            if dirty {
                for b in pool.blocks.iter_mut() {
                    if let Some(off) = b.buddy.alloc_dirty(order) {
                        self.stats.noscrub_allocs.inc();
                        return Some(b.block.pfn().add(off));
                    }
                }
            }
            // Prefer the fullest block that fits, to let the others empty out.
            let best = pool
                .blocks
                .iter()
                .enumerate()
                .filter(|(_, b)| b.buddy.can_alloc(order))
                .min_by_key(|(_, b)| b.buddy.nr_free())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let b = &mut pool.blocks[i];
                let off = b.buddy.alloc(order)?;
                return Some(b.block.pfn().add(off));
            }
        }
        None
    }

    /// Takes a new block, unmaps it, and allocates from it. Sleeps.
    fn grow(&self, nid: i32, gfp: bindings::gfp_t, order: u32) -> Option<Pfn> {
        let base = bindings::GFP_KERNEL
            | bindings::__GFP_ZERO
            | bindings::__GFP_NOWARN
            | (gfp & bindings::__GFP_ACCOUNT);
        let thisnode = gfp & bindings::__GFP_THISNODE != 0;
        // A PMD-sized block without heavy reclaim first, then smaller ones down to the
        // requested order. The preferred node is tried strictly before falling back.
        let mut block = None;
        'search: for o in (order..=self.block_order).rev() {
            let retry = if o == self.block_order {
                bindings::__GFP_NORETRY
            } else {
                0
            };
            for strict in [true, false] {
                if !strict && thisnode {
                    continue;
                }
                let node_flag = if strict { bindings::__GFP_THISNODE } else { 0 };
                if let Some(b) = Block::alloc(nid, base | retry | node_flag, o) {
                    block = Some(b);
                    break 'search;
                }
            }
        }
        let block = block?;
        if block.order() < self.block_order {
            self.stats.fallback_blocks.inc();
        }
        self.stats.blocks_taken.inc();

        if block.set_direct_map(0, block.nr_pages(), false).is_err() {
            self.restore_and_release(block);
            return None;
        }
        self.stats.direct_map_unmaps.inc();
        block.flush_tlb();
        self.stats.tlb_flushes.inc();

        let buddy = match Buddy::new(block.order(), GFP_KERNEL) {
            Ok(b) => b,
            Err(_) => {
                self.restore_and_release(block);
                return None;
            }
        };
        let mut ub = match KBox::new(UnmappedBlock { block, buddy }, GFP_KERNEL) {
            Ok(ub) => ub,
            Err(_) => return None,
        };
        let off = ub.buddy.alloc(order)?;
        let pfn = ub.block.pfn().add(off);
        let home = ub.block.pfn().nid();
        let Some(pool) = self.pool(home) else {
            return None;
        };
        let result = pool.lock().insert(ub);
        match result {
            Ok(()) => Some(pfn),
            Err(ub) => {
                // Nobody else saw the block: give it back.
                self.restore_and_release(KBox::into_inner(ub).block);
                None
            }
        }
    }

    /// Restores the direct map of a block and frees it to the page allocator. When the
    /// state cannot be restored and verified, the block is leaked and counted instead.
    fn restore_and_release(&self, block: Block) {
        let ok = block.set_direct_map(0, block.nr_pages(), true).is_ok()
            && (0..block.nr_pages()).all(|i| block.pfn().add(i).is_present());
        if !ok {
            self.stats.leaked_blocks.inc();
            self.stats.leaked_pages.add(block.nr_pages() as u64);
            pr_err_once!(
                "direct map of pfn {:#x} not restored, block leaked\n",
                block.pfn().0
            );
            block.leak();
            return;
        }
        self.stats.direct_map_restores.inc();
        self.stats.blocks_released.inc();
        block.release();
    }

    /// Frees 2^`order` pages at `pfn`. Any context.
    pub(crate) fn free(self: &Arc<Self>, pfn: Pfn, order: u32) -> core::result::Result<(), BadFree> {
        let r = self.free_inner(pfn, order);
        match r {
            Ok(()) => {
                self.stats.frees.at(order).inc();
                self.kick();
            }
            Err(e) => {
                self.stats.bad_frees.inc();
                pr_warn_once!(
                    "refused to free pfn {:#x} order {}: {:?}\n",
                    pfn.0,
                    order,
                    e
                );
            }
        }
        r
    }

    fn free_inner(&self, pfn: Pfn, order: u32) -> core::result::Result<(), BadFree> {
        if order > self.block_order {
            return Err(BadFree::BadOrder);
        }
        // Our blocks live in the pool of their own node; look there without trusting the
        // page otherwise.
        for pool in self.nodes.iter() {
            let mut pool = pool.lock();
            if let Some(i) = pool.find(pfn) {
                let b = &mut pool.blocks[i];
                let off = pfn.0 - b.block.pfn().0;
                return b.buddy.free(off, order).map_err(BadFree::Block);
            }
        }
        Err(BadFree::NotOwned)
    }

    /// The pages of a live allocation, for reading and writing them in tests.
    pub(crate) fn range_of(&self, pfn: Pfn, order: u32) -> Option<PageRange> {
        for pool in self.nodes.iter() {
            let pool = pool.lock();
            if let Some(i) = pool.find(pfn) {
                let b = &pool.blocks[i];
                let off = pfn.0 - b.block.pfn().0;
                b.buddy.check_used(off, order).ok()?;
                return b.block.range(off, 1 << order).ok();
            }
        }
        None
    }

    /// Schedules background scrubbing and trimming.
    fn kick(self: &Arc<Self>) {
        if self.background {
            // Already queued is fine: the queued run sees this free too.
            let _ = workqueue::system_unbound().enqueue(self.clone());
        }
    }

    /// Scrubs every freed chunk and makes it allocatable again. Sleeps. Returns the
    /// number of pages scrubbed.
    pub(crate) fn scrub_pending(&self) -> usize {
        let mut done = 0;
        for pool in self.nodes.iter() {
            loop {
                let claimed = {
                    let mut pool = pool.lock();
                    pool.blocks.iter_mut().find_map(|b| {
                        let (off, k) = b.buddy.claim_dirty()?;
                        Some((b.block.pfn(), off, k, b.block.range(off, 1 << k)))
                    })
                };
                let Some((base, off, k, range)) = claimed else { break };
                // The chunk is ours alone while claimed, and its block cannot go away
                // since it is not empty.
                let scrubbed = range.and_then(|r| r.scrub()).is_ok();
                let mut pool = pool.lock();
                if let Some(i) = pool.find(base) {
                    if scrubbed {
                        pool.blocks[i].buddy.scrubbed(off, k);
                    } else {
                        // Out of vmalloc space: leave it dirty for the next run.
                        pool.blocks[i].buddy.unclaim(off, k);
                        break;
                    }
                }
                done += 1 << k;
            }
        }
        self.stats.scrubbed_pages.add(done as u64);
        done
    }

    /// Returns fully free blocks beyond `keep` per node to the page allocator. Sleeps.
    /// Returns the number of blocks released.
    pub(crate) fn shrink(&self, keep: usize) -> usize {
        self.stats.shrink_calls.inc();
        let mut released = 0;
        for pool in self.nodes.iter() {
            loop {
                let victim = {
                    let mut pool = pool.lock();
                    let empty = pool.blocks.iter().filter(|b| b.buddy.is_empty()).count();
                    if empty <= keep {
                        None
                    } else {
                        pool.blocks
                            .iter()
                            .rposition(|b| b.buddy.is_empty())
                            .and_then(|i| pool.blocks.remove(i).ok())
                    }
                };
                let Some(ub) = victim else { break };
                self.restore_and_release(KBox::into_inner(ub).block);
                released += 1;
            }
        }
        released
    }

    /// Background work: scrub freed chunks, then trim the cache to its limit.
    pub(crate) fn trim(&self) {
        self.scrub_pending();
        self.shrink(self.cache_blocks());
    }

    /// Free pages that a shrink could return.
    pub(crate) fn reclaimable_pages(&self) -> usize {
        self.nodes
            .iter()
            .map(|p| {
                p.lock()
                    .blocks
                    .iter()
                    .filter(|b| b.buddy.is_empty())
                    .map(|b| b.buddy.nr_pages())
                    .sum::<usize>()
            })
            .sum()
    }

    /// Writes the counters, one `name value` per line.
    pub(crate) fn write_stats(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        for o in 0..=self.block_order {
            writeln!(f, "unmapped_alloc_order{o} {}", s.allocs.at(o).get())?;
        }
        for o in 0..=self.block_order {
            writeln!(f, "unmapped_free_order{o} {}", s.frees.at(o).get())?;
        }
        let counters = [
            ("unmapped_alloc_failures", &s.alloc_failures),
            ("unmapped_atomic_failures", &s.atomic_failures),
            ("unmapped_noscrub_allocs", &s.noscrub_allocs),
            ("unmapped_blocks_taken", &s.blocks_taken),
            ("unmapped_blocks_released", &s.blocks_released),
            ("unmapped_fallback_blocks", &s.fallback_blocks),
            ("unmapped_leaked_blocks", &s.leaked_blocks),
            ("unmapped_leaked_pages", &s.leaked_pages),
            ("unmapped_direct_map_unmaps", &s.direct_map_unmaps),
            ("unmapped_direct_map_restores", &s.direct_map_restores),
            ("unmapped_tlb_flushes", &s.tlb_flushes),
            ("unmapped_scrubbed_pages", &s.scrubbed_pages),
            ("unmapped_bad_frees", &s.bad_frees),
            ("unmapped_bad_requests", &s.bad_requests),
            ("unmapped_shrink_calls", &s.shrink_calls),
        ];
        for (name, c) in counters {
            writeln!(f, "{name} {}", c.get())?;
        }
        writeln!(f, "unmapped_cache_blocks_limit {}", self.cache_blocks())?;
        for nid in 0..self.nodes.len() as i32 {
            let p = self.pool_pages(nid);
            writeln!(f, "unmapped_node{nid}_blocks {}", p.blocks)?;
            writeln!(f, "unmapped_node{nid}_used_pages {}", p.used())?;
            writeln!(f, "unmapped_node{nid}_cached_pages {}", p.free)?;
            writeln!(f, "unmapped_node{nid}_dirty_pages {}", p.dirty)?;
        }
        Ok(())
    }
}

#[pinned_drop]
impl PinnedDrop for UnmappedAllocator {
    fn drop(self: Pin<&mut Self>) {
        // Only private instances (tests) are ever dropped. Blocks still in use cannot be
        // returned: leak them, with their direct map state as it is.
        self.scrub_pending();
        self.shrink(0);
        for pool in self.nodes.iter() {
            let mut pool = pool.lock();
            while let Some(ub) = pool.blocks.pop() {
                self.stats.leaked_blocks.inc();
                self.stats.leaked_pages.add(ub.block.nr_pages() as u64);
                KBox::into_inner(ub).block.leak();
            }
        }
    }
}

/// Pages removed from the kernel direct map, freed on drop.
///
/// There is no kernel virtual address: use [`UnmappedPages::pfn`] or
/// [`UnmappedPages::phys_addr`] to map the pages elsewhere or hand them to another
/// entity.
pub struct UnmappedPages {
    alloc: Arc<UnmappedAllocator>,
    pfn: Pfn,
    order: u32,
}

impl UnmappedPages {
    pub(crate) fn new_in(
        alloc: &Arc<UnmappedAllocator>,
        nid: i32,
        gfp: bindings::gfp_t,
        order: u32,
        scrub: bool,
    ) -> Result<Self> {
        let pfn = alloc.alloc(nid, gfp, order, scrub).ok_or(ENOMEM)?;
        Ok(Self {
            alloc: alloc.clone(),
            pfn,
            order,
        })
    }

    /// Allocates 2^`order` zeroed unmapped pages on node `nid` (or `NUMA_NO_NODE`).
    pub fn alloc_node(nid: i32, gfp: kernel::alloc::Flags, order: u32) -> Result<Self> {
        Self::new_in(crate::global()?, nid, sys::gfp_raw(gfp), order, true)
    }

    /// Allocates 2^`order` zeroed unmapped pages on the local node.
    pub fn alloc(gfp: kernel::alloc::Flags, order: u32) -> Result<Self> {
        Self::alloc_node(NUMA_NO_NODE, gfp, order)
    }

    /// Page frame number of the first page.
    pub fn pfn(&self) -> usize {
        self.pfn.0
    }

    /// Physical address of the first page.
    pub fn phys_addr(&self) -> u64 {
        self.pfn.phys()
    }

    /// Order of the allocation.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// Number of pages.
    pub fn nr_pages(&self) -> usize {
        1 << self.order
    }

    /// NUMA node of the pages.
    pub fn nid(&self) -> i32 {
        self.pfn.nid()
    }

    pub(crate) fn first(&self) -> Pfn {
        self.pfn
    }
}

impl Drop for UnmappedPages {
    fn drop(&mut self) {
        // Cannot fail for pages we allocated.
        let _ = self.alloc.free(self.pfn, self.order);
    }
}
