// SPDX-License-Identifier: GPL-2.0

//! The page allocator for memory in a special direct map state.
//!
//! One implementation serves two kinds of memory, see [`Kind`]: pages removed from the
//! direct map, and pages shared with the host of a confidential guest (decrypted).
//! The description below is for unmapped pages; decrypted blocks are converted with
//! the [`Backend`] instead, zeroed after the conversion, and converted back with it
//! before they return to the page allocator; their freed chunks are free at once, as
//! the host may write them while free anyway: they are zeroed when handed out.
//!
//! Blocks of 2 MiB (a PMD with 4 KiB pages) are taken from the page allocator on the
//! requested node, zeroed while still mapped, removed from the direct map in one call
//! with one TLB flush, and carved into chunks of order 0..=block order by a [`Buddy`].
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

#![deny(unsafe_code)]

use crate::{
    backend::Backend,
    buddy::{Buddy, FreeError, PageState},
    pernode::{new_per_node, PerNode},
    sorted::{self, Start},
    stats::{self, PageStats, MAX_ORDER},
    sys::{self, new_irq_spinlock, trace, Block, IrqSpinLock, MappedBytes, Pfn, NUMA_NO_NODE},
};
use core::fmt;
use kernel::{
    bindings, pr_err_once, pr_warn_once,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        new_mutex, Arc, Mutex, MutexGuard,
    },
    time::{Instant, Monotonic},
    workqueue::{impl_has_work, new_work, Work, WorkItem},
};

/// A block taken from the page allocator and its buddy state.
struct PoolBlock {
    block: Block,
    buddy: Buddy,
    /// Its state became unknown while in use: it is never released.
    leaked: bool,
}

/// The blocks of one node, sorted by first frame, with running page counts and, for
/// every order, bitmaps over the blocks' positions. An allocation finds its block with
/// a find-first-bit (one word covers 64 blocks) instead of a walk over all blocks.
///
/// Every change to a block's buddy state goes through [`NodePool::touch`], which keeps
/// the counts and the bitmaps right.
struct NodePool {
    blocks: KVec<KBox<PoolBlock>>,
    /// Bit `i` of order `k` (word `k * words + i / 64`): `blocks[i]` has a free chunk
    /// of order exactly `k`. Never set for a leaked block.
    avail: KVec<u64>,
    /// The same for chunks of order `k` waiting to be scrubbed.
    dirty: KVec<u64>,
    /// Words per order in `avail` and `dirty`.
    words: usize,
    /// Running totals of the blocks' counts.
    pages: PoolPages,
}

/// What the pool's indexes need to know of one block.
#[derive(Clone, Copy, Default)]
struct Summary {
    free: usize,
    dirty: usize,
    releasable: bool,
    free_orders: u32,
    dirty_orders: u32,
}

impl Summary {
    fn of(b: &PoolBlock) -> Self {
        Self {
            free: b.buddy.nr_free(),
            dirty: b.buddy.nr_dirty(),
            releasable: b.buddy.is_empty() && !b.leaked,
            free_orders: if b.leaked { 0 } else { b.buddy.free_orders() },
            dirty_orders: b.buddy.dirty_orders(),
        }
    }
}

/// Orders the pool keeps bitmaps for (see [`stats::MAX_ORDER`]).
const POOL_ORDERS: usize = MAX_ORDER + 1;

impl Start for KBox<PoolBlock> {
    fn start(&self) -> Pfn {
        self.block.pfn()
    }
}

impl NodePool {
    fn new() -> Self {
        Self {
            blocks: KVec::new(),
            avail: KVec::new(),
            dirty: KVec::new(),
            words: 0,
            pages: PoolPages::default(),
        }
    }

    /// Index of the block containing `pfn`.
    fn find(&self, pfn: Pfn) -> Option<usize> {
        let i = sorted::floor(&self.blocks, pfn)?;
        self.blocks[i].block.contains(pfn).then_some(i)
    }

    /// Runs `f` on block `i` and brings the counts and bitmaps up to date.
    fn touch<R>(&mut self, i: usize, f: impl FnOnce(&mut PoolBlock) -> R) -> R {
        let before = Summary::of(&self.blocks[i]);
        let r = f(&mut self.blocks[i]);
        let after = Summary::of(&self.blocks[i]);
        let p = &mut self.pages;
        p.free = p.free - before.free + after.free;
        p.dirty = p.dirty - before.dirty + after.dirty;
        p.free_blocks =
            p.free_blocks - usize::from(before.releasable) + usize::from(after.releasable);
        Self::toggle(
            &mut self.avail,
            self.words,
            i,
            before.free_orders ^ after.free_orders,
        );
        Self::toggle(
            &mut self.dirty,
            self.words,
            i,
            before.dirty_orders ^ after.dirty_orders,
        );
        r
    }

    /// Flips bit `i` of every order in `orders`.
    fn toggle(bits: &mut [u64], words: usize, i: usize, mut orders: u32) {
        while orders != 0 {
            let k = orders.trailing_zeros() as usize;
            orders &= orders - 1;
            bits[k * words + i / 64] ^= 1 << (i % 64);
        }
    }

    /// The first block with bit `k` set in `bits`.
    fn first(&self, bits: &[u64], k: u32) -> Option<usize> {
        let row = bits.get(k as usize * self.words..(k as usize + 1) * self.words)?;
        let (w, word) = row.iter().enumerate().find(|(_, &w)| w != 0)?;
        Some(w * 64 + word.trailing_zeros() as usize)
    }

    /// Allocates a chunk of `order` from the block with the smallest free chunk that
    /// fits (the lowest such block), like the page allocator's free areas.
    fn alloc(&mut self, order: u32) -> Option<Pfn> {
        let i = (order as usize..POOL_ORDERS).find_map(|k| self.first(&self.avail, k as u32))?;
        let off = self.touch(i, |b| b.buddy.alloc(order))?;
        Some(self.blocks[i].block.pfn().add(off))
    }

    /// Takes a chunk of exactly `order` that waits to be scrubbed.
    fn alloc_dirty(&mut self, order: u32) -> Option<Pfn> {
        let i = self.first(&self.dirty, order)?;
        let off = self.touch(i, |b| b.buddy.alloc_dirty(order))?;
        Some(self.blocks[i].block.pfn().add(off))
    }

    /// Claims a chunk waiting to be scrubbed: its block's first frame, the chunk's
    /// offset and order, and its pages.
    fn claim_dirty(&mut self) -> Option<(Pfn, usize, u32, Result<sys::PageRange>)> {
        let i = (0..POOL_ORDERS).find_map(|k| self.first(&self.dirty, k as u32))?;
        let (off, k) = self.touch(i, |b| b.buddy.claim_dirty())?;
        let b = &self.blocks[i];
        Some((b.block.pfn(), off, k, b.block.range(off, 1 << k)))
    }

    /// Inserts a block, keeping the order. May only fail to grow the vectors.
    fn insert(&mut self, b: KBox<PoolBlock>) -> core::result::Result<(), KBox<PoolBlock>> {
        let words = (self.blocks.len() + 1).div_ceil(64);
        for bits in [&mut self.avail, &mut self.dirty] {
            if bits.len() < words * POOL_ORDERS
                && bits.resize(words * POOL_ORDERS, 0, GFP_ATOMIC).is_err()
            {
                return Err(b);
            }
        }
        sorted::insert(&mut self.blocks, b)?;
        self.rebuild();
        Ok(())
    }

    /// Takes block `i` out of the pool.
    fn remove(&mut self, i: usize) -> Option<KBox<PoolBlock>> {
        let b = self.blocks.remove(i).ok()?;
        self.rebuild();
        Some(b)
    }

    /// Recomputes the counts and bitmaps after the positions changed. The bitmaps
    /// already have room for every block.
    fn rebuild(&mut self) {
        self.words = self.blocks.len().div_ceil(64);
        self.avail.truncate(self.words * POOL_ORDERS);
        self.dirty.truncate(self.words * POOL_ORDERS);
        self.avail.iter_mut().for_each(|w| *w = 0);
        self.dirty.iter_mut().for_each(|w| *w = 0);
        for i in 0..self.blocks.len() {
            let s = Summary::of(&self.blocks[i]);
            Self::toggle(&mut self.avail, self.words, i, s.free_orders);
            Self::toggle(&mut self.dirty, self.words, i, s.dirty_orders);
        }
        self.pages = self.recount();
    }

    /// The page counts, summed over every block.
    fn recount(&self) -> PoolPages {
        let mut p = PoolPages::default();
        for b in self.blocks.iter() {
            let s = Summary::of(b);
            p.blocks += 1;
            p.held += b.buddy.nr_pages();
            p.free += s.free;
            p.dirty += s.dirty;
            p.free_blocks += usize::from(s.releasable);
        }
        p
    }

    /// Checks the running counts and the bitmaps against a recount of every block.
    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    fn check(&self) {
        assert_eq!(self.recount(), self.pages);
        for (i, b) in self.blocks.iter().enumerate() {
            let s = Summary::of(b);
            for k in 0..POOL_ORDERS {
                let bit = |bits: &KVec<u64>| bits[k * self.words + i / 64] >> (i % 64) & 1 != 0;
                assert_eq!(bit(&self.avail), (s.free_orders & (1 << k) != 0));
                assert_eq!(bit(&self.dirty), (s.dirty_orders & (1 << k) != 0));
            }
        }
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

/// What an allocator instance knows of a page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ownership {
    /// Not in any block of the instance.
    NotOwned,
    /// In a block, free (cached, or freed and waiting to be scrubbed).
    Free,
    /// Handed out to a user.
    Used,
    /// In a block whose state became unknown; never to be used again.
    Leaked,
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

/// The direct map state of the memory an allocator serves.
pub(crate) enum Kind {
    /// Removed from the kernel direct map.
    Unmapped,
    /// Shared with the host (decrypted) through the given backend; still mapped.
    Decrypted(Backend),
}

impl Kind {
    /// The kind's number in trace events.
    fn trace_id(&self) -> i32 {
        match self {
            Kind::Unmapped => 0,
            Kind::Decrypted(_) => 1,
        }
    }

    fn prefix(&self) -> &'static str {
        match self {
            Kind::Unmapped => "unmapped",
            Kind::Decrypted(_) => "decrypted",
        }
    }
}

/// One run of the atomic reserve refill.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct RefillEvent {
    /// Time of the run, in nanoseconds since the instance was created.
    pub(crate) time_ns: i64,
    /// Node refilled.
    pub(crate) nid: i32,
    /// Free pages before and after.
    pub(crate) before: usize,
    pub(crate) after: usize,
    /// Blocks converted.
    pub(crate) blocks: usize,
}

/// Refill runs remembered for debugfs.
pub(crate) const REFILL_HISTORY: usize = 8;

/// The last [`REFILL_HISTORY`] refill runs, oldest first once full.
#[derive(Default)]
pub(crate) struct RefillHistory {
    events: [RefillEvent; REFILL_HISTORY],
    next: usize,
    count: usize,
}

impl RefillHistory {
    fn record(&mut self, e: RefillEvent) {
        self.events[self.next] = e;
        self.next = (self.next + 1) % REFILL_HISTORY;
        self.count = (self.count + 1).min(REFILL_HISTORY);
    }

    /// The remembered runs, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &RefillEvent> {
        let start = (self.next + REFILL_HISTORY - self.count) % REFILL_HISTORY;
        (0..self.count).map(move |i| &self.events[(start + i) % REFILL_HISTORY])
    }
}

/// Tunables of an allocator instance.
pub(crate) struct Config {
    /// What the memory is converted to.
    pub(crate) kind: Kind,
    /// Order of the blocks taken from the page allocator.
    pub(crate) block_order: u32,
    /// Fully free blocks kept per node before returning them.
    pub(crate) cache_blocks: usize,
    /// Atomic reserve watermarks `(low, high)` in free pages per node; `(0, 0)` for none.
    pub(crate) reserve: (usize, usize),
    /// Whether frees schedule background scrubbing and trimming. Tests turn it off to
    /// observe dirty state and drive the work themselves.
    pub(crate) background: bool,
    /// Why the instance must refuse every allocation, if it must: unmapped pages where
    /// `set_direct_map_*()` does not change the direct map would still be mapped.
    pub(crate) refused: Option<&'static str>,
}

/// Why unmapped pages are refused where `set_direct_map_*()` is a no-op.
pub(crate) const NO_DIRECT_MAP_CHANGES: &str = "set_direct_map_*() cannot change the direct map \
     on this system (arm64 needs rodata=on, debug_pagealloc, KFENCE or a realm)";

impl Config {
    /// Defaults for a global instance of `kind`.
    pub(crate) fn default_global(kind: Kind) -> Self {
        Self {
            block_order: sys::block_order(),
            cache_blocks: 4,
            reserve: match kind {
                Kind::Unmapped => (0, 0),
                Kind::Decrypted(_) => (256, 512),
            },
            background: true,
            refused: match kind {
                Kind::Unmapped if !sys::can_set_direct_map() => Some(NO_DIRECT_MAP_CHANGES),
                _ => None,
            },
            kind,
        }
    }
}

/// An instance of the page allocator.
#[pin_data(PinnedDrop)]
pub(crate) struct PageAllocator {
    kind: Kind,
    nodes: PerNode<NodePool>,
    block_order: u32,
    cache_blocks: Atomic<usize>,
    reserve_low: Atomic<usize>,
    reserve_high: Atomic<usize>,
    /// Set by [`PageAllocator::unshare_all`]: nothing is handed out or converted again.
    shut_down: Atomic<bool>,
    /// Why every allocation is refused, if it is (see [`Config::refused`]).
    refused: Option<&'static str>,
    background: bool,
    /// When the instance was created, the origin of [`RefillEvent::time_ns`].
    created: Instant<Monotonic>,
    /// Recent refills of the atomic reserve.
    #[pin]
    history: IrqSpinLock<RefillHistory>,
    /// Leaked blocks, `(first frame, pages)`, so that their pages can still be told.
    #[pin]
    leaked: IrqSpinLock<KVec<(Pfn, usize)>>,
    /// Serialises scrubbing and shrinking (background work, allocations that sleep,
    /// the shrinker), so that a caller that drains sees all chunks settled.
    #[pin]
    maintenance: Mutex<()>,
    /// Event counters.
    pub(crate) stats: PageStats,
    #[pin]
    work: Work<PageAllocator>,
}

impl_has_work! {
    impl HasWork<Self> for PageAllocator { self.work }
}

impl WorkItem for PageAllocator {
    type Pointer = Arc<PageAllocator>;

    fn run(this: Arc<PageAllocator>) {
        this.trim();
    }
}

impl PageAllocator {
    /// Creates an instance with one pool per possible node.
    pub(crate) fn new(config: Config) -> Result<Arc<Self>> {
        if config.block_order as usize > MAX_ORDER {
            return Err(EINVAL);
        }
        let nodes = new_per_node!(NodePool::new, c"unmapped_alloc_pool")?;
        Arc::pin_init(
            try_pin_init!(Self {
                kind: config.kind,
                nodes,
                block_order: config.block_order,
                cache_blocks: Atomic::new(config.cache_blocks),
                reserve_low: Atomic::new(config.reserve.0),
                reserve_high: Atomic::new(config.reserve.1),
                shut_down: Atomic::new(false),
                refused: config.refused,
                background: config.background,
                created: Instant::<Monotonic>::now(),
                history <- new_irq_spinlock!(RefillHistory::default(), c"unmapped_alloc_history"),
                leaked <- new_irq_spinlock!(KVec::new(), c"unmapped_alloc_leaked"),
                maintenance <- new_mutex!(()),
                stats: PageStats::new(),
                work <- new_work!("PageAllocator::work"),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// Why every allocation is refused, if it is.
    pub(crate) fn refused(&self) -> Option<&'static str> {
        self.refused
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
        self.nodes.get(nid)
    }

    /// Page counts of node `nid`'s pool.
    pub(crate) fn pool_pages(&self, nid: i32) -> PoolPages {
        self.pool(nid).map(|p| p.lock().pages).unwrap_or_default()
    }

    /// Checks every pool's running counts and bitmaps against a recount.
    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    fn check_pools(&self) {
        for pool in self.nodes.iter() {
            pool.lock().check();
        }
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
        if let Some(why) = self.refused {
            self.stats.refused_allocs.inc();
            pr_warn_once!("{} pages refused: {}\n", self.kind.prefix(), why);
            return None;
        }
        if self.shut_down.load(Relaxed) {
            self.stats.alloc_failures.inc();
            return None;
        }
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

        let (mut pfn, mut reserve_low) = self.alloc_from_pools(nid, order, thisnode, take_dirty);
        if pfn.is_none() {
            pfn = self.alloc_slow(nid, gfp, order, thisnode, take_dirty);
            reserve_low = self.reserve_low_on(nid);
        }
        let pfn = pfn.and_then(|pfn| self.charge(pfn, gfp, order));
        // Decrypted pages: the host may have written them while they were free.
        if let (Some(pfn), Kind::Decrypted(_)) = (pfn, &self.kind) {
            if (scrub || gfp & bindings::__GFP_ZERO != 0) && !sys::zero_on_handout(pfn, 1 << order)
            {
                pr_err_once!("decrypted pfn {:#x} not in the direct map\n", pfn.number());
            }
        }
        if reserve_low {
            self.kick();
        }
        match pfn {
            Some(pfn) => {
                self.stats.allocs.at(order).inc();
                trace::pages(self.kind.trace_id(), pfn.number(), order, gfp);
            }
            None => self.stats.alloc_failures.inc(),
        }
        pfn
    }

    /// Charges a fresh allocation to the caller's memory cgroup for `__GFP_ACCOUNT`;
    /// over the limit, the chunk goes back and the allocation fails.
    fn charge(self: &Arc<Self>, pfn: Pfn, gfp: bindings::gfp_t, order: u32) -> Option<Pfn> {
        if gfp & bindings::__GFP_ACCOUNT == 0
            || self
                .range_of(pfn, order)
                .is_some_and(|r| r.memcg_charge(gfp, order).is_ok())
        {
            return Some(pfn);
        }
        self.stats.memcg_failures.inc();
        // Ours since a moment ago: cannot be refused.
        let _ = self.free_inner(pfn, order);
        self.kick();
        None
    }

    /// Serves from memory that is already unmapped: node `nid` first, then the others.
    /// Also tells whether node `nid` is below its low watermark, read under the same
    /// lock hold as the allocation.
    fn alloc_from_pools(
        &self,
        nid: i32,
        order: u32,
        thisnode: bool,
        dirty: bool,
    ) -> (Option<Pfn>, bool) {
        let low = self.reserve_low.load(Relaxed);
        let mut reserve_low = false;
        let others = (0..self.nodes.len() as i32).filter(|&n| n != nid && !thisnode);
        for n in Iterator::chain(core::iter::once(nid), others) {
            let Some(pool) = self.pool(n) else { continue };
            let mut pool = pool.lock();
            let mut pfn = None;
            if dirty {
                pfn = pool.alloc_dirty(order);
                if pfn.is_some() {
                    self.stats.noscrub_allocs.inc();
                }
            }
            let pfn = pfn.or_else(|| pool.alloc(order));
            if n == nid {
                reserve_low = low > 0 && pool.pages.free < low;
            }
            if pfn.is_some() {
                return (pfn, reserve_low);
            }
        }
        (None, reserve_low)
    }

    /// The pools had nothing: scrub what was freed, else take a new block. Sleeps; in
    /// atomic context it fails at once.
    fn alloc_slow(
        self: &Arc<Self>,
        nid: i32,
        gfp: bindings::gfp_t,
        order: u32,
        thisnode: bool,
        dirty: bool,
    ) -> Option<Pfn> {
        if !sys::gfp_allows_blocking(gfp) {
            // Changing the direct map or scrubbing may sleep: fail fast.
            self.stats.atomic_failures.inc();
            self.kick();
            return None;
        }
        // What is allocated for this caller below respects its NOFS/NOIO.
        let _scope = sys::ReclaimScope::enter(gfp);
        if self.scrub_pending() > 0 {
            if let (Some(pfn), _) = self.alloc_from_pools(nid, order, thisnode, dirty) {
                return Some(pfn);
            }
        }
        self.grow(nid, gfp, order)
    }

    /// Takes a new block of at least 2^`order` pages, converts it and sets up its
    /// metadata. Sleeps.
    fn new_block(&self, nid: i32, gfp: bindings::gfp_t, order: u32) -> Option<KBox<PoolBlock>> {
        if self.shut_down.load(Relaxed) {
            return None;
        }
        // Blocks are zeroed while still mapped and private: hosts that keep a page's
        // contents across a share (pKVM, Arm CCA) would otherwise be shown whatever
        // the page allocator's last user left there.
        let base = bindings::GFP_KERNEL | bindings::__GFP_ZERO | bindings::__GFP_NOWARN;
        let thisnode = gfp & bindings::__GFP_THISNODE != 0;
        let start = Instant::<Monotonic>::now();
        // A full-sized block without heavy reclaim first, then smaller ones down to the
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

        // Metadata first, while the block is still mapped and can simply go back.
        let injected = sys::should_fail(sys::FailSite::Metadata, 0);
        let (buddy, slot) = match (
            Buddy::new(block.order(), GFP_KERNEL),
            KBox::<PoolBlock>::new_uninit(GFP_KERNEL),
        ) {
            (Ok(buddy), Ok(slot)) if !injected => (buddy, slot),
            _ => {
                block.release();
                return None;
            }
        };
        let converted = match &self.kind {
            Kind::Unmapped => block.set_direct_map(0, block.nr_pages(), false),
            Kind::Decrypted(backend) => block.whole().and_then(|r| backend.decrypt(&r)),
        };
        trace::block_convert(
            self.kind.trace_id(),
            block.pfn().number(),
            block.order(),
            converted.err().map_or(0, |e| e.to_errno()),
        );
        match &self.kind {
            Kind::Unmapped => {
                if converted.is_err() {
                    self.stats.conversion_failures.inc();
                    self.restore_and_release(block);
                    return None;
                }
                self.stats.conversions.inc();
                self.stats.converted_pages.add(block.nr_pages() as u64);
                block.flush_tlb();
                self.stats.tlb_flushes.inc();
            }
            Kind::Decrypted(_) => {
                if converted.is_err() {
                    // The state of the pages is unknown: they must never be reused.
                    self.stats.conversion_failures.inc();
                    self.leak(block);
                    return None;
                }
                self.stats.conversions.inc();
                self.stats.converted_pages.add(block.nr_pages() as u64);
                // Zero them again through the (now shared) direct mapping: where a
                // conversion scrambles the contents (AMD SEV), the guest's view of the
                // zeros the page allocator wrote is no longer zeros.
                if block
                    .range(0, block.nr_pages())
                    .and_then(|r| r.scrub())
                    .is_err()
                {
                    self.restore_and_release(block);
                    return None;
                }
            }
        }
        stats::add_elapsed(&self.stats.grow_ns, start);

        Some(KBox::write(
            slot,
            PoolBlock {
                block,
                buddy,
                leaked: false,
            },
        ))
    }

    /// Puts a new block into the pool of its node; gives it back if that fails or the
    /// instance was shut down meanwhile.
    fn add_block(&self, ub: KBox<PoolBlock>) -> bool {
        let inserted = match self.pool(ub.block.pfn().nid()) {
            Some(pool) => {
                let mut pool = pool.lock();
                if self.shut_down.load(Relaxed) {
                    Err(ub)
                } else {
                    pool.insert(ub)
                }
            }
            None => Err(ub),
        };
        match inserted {
            Ok(()) => true,
            Err(ub) => {
                // Nobody else saw the block: give it back.
                self.restore_and_release(KBox::into_inner(ub).block);
                false
            }
        }
    }

    /// Takes a new block and allocates 2^`order` pages from it. Sleeps.
    fn grow(&self, nid: i32, gfp: bindings::gfp_t, order: u32) -> Option<Pfn> {
        let mut ub = self.new_block(nid, gfp, order)?;
        // A fresh block of at least `order` always has room.
        let off = ub.buddy.alloc(order);
        let base = ub.block.pfn();
        self.add_block(ub).then_some(())?;
        off.map(|off| base.add(off))
    }

    /// Converts blocks until node `nid` has `high` free pages or no block can be had.
    /// Sleeps. Returns the number of blocks added.
    pub(crate) fn refill(&self, nid: i32, high: usize) -> usize {
        let before = self.pool_pages(nid).free;
        let mut added = 0;
        while self.pool_pages(nid).free < high {
            let Some(ub) = self.new_block(nid, bindings::__GFP_THISNODE, 0) else {
                break;
            };
            if !self.add_block(ub) {
                break;
            }
            added += 1;
        }
        if added > 0 {
            self.stats.refills.inc();
            self.stats.refill_blocks.add(added as u64);
            self.history.lock().record(RefillEvent {
                time_ns: self.created.elapsed().as_nanos(),
                nid,
                before,
                after: self.pool_pages(nid).free,
                blocks: added,
            });
        }
        added
    }

    /// Converts a block back to normal memory and frees it to the page allocator. When
    /// its state cannot be restored and verified, the block is leaked and counted.
    fn restore_and_release(&self, block: Block) {
        let ok = match &self.kind {
            Kind::Unmapped => {
                block.set_direct_map(0, block.nr_pages(), true).is_ok()
                    && (0..block.nr_pages()).all(|i| block.pfn().add(i).is_present())
            }
            Kind::Decrypted(backend) => block
                .whole()
                .is_ok_and(|r| backend.encrypt(&r).is_ok() && !backend.any_shared(&r)),
        };
        trace::block_release(
            self.kind.trace_id(),
            block.pfn().number(),
            block.order(),
            if ok { 0 } else { EIO.to_errno() },
        );
        if !ok {
            self.stats.conversion_failures.inc();
            self.leak(block);
            return;
        }
        self.stats.reversions.inc();
        self.stats.reverted_pages.add(block.nr_pages() as u64);
        self.stats.blocks_released.inc();
        block.release();
    }

    /// Keeps a block whose state is unknown away from the page allocator for good.
    fn leak(&self, block: Block) {
        self.stats.leaked_blocks.inc();
        self.stats.leaked_pages.add(block.nr_pages() as u64);
        pr_err_once!(
            "{}: state of pfn {:#x} unknown, block leaked\n",
            self.kind.prefix(),
            block.pfn().number()
        );
        // Best effort: the counters above stay right if the record cannot grow.
        let _ = self
            .leaked
            .lock()
            .push((block.pfn(), block.nr_pages()), GFP_ATOMIC);
        block.leak();
    }

    /// Frees 2^`order` pages at `pfn`. Any context.
    pub(crate) fn free(
        self: &Arc<Self>,
        pfn: Pfn,
        order: u32,
    ) -> core::result::Result<(), BadFree> {
        let r = self.free_inner(pfn, order);
        match r {
            Ok(()) => {
                self.stats.frees.at(order).inc();
                trace::free_pages(self.kind.trace_id(), pfn.number(), order);
                self.kick();
            }
            Err(e) => {
                self.stats.bad_frees.inc();
                sys::report_bad_free(format_args!(
                    "{} pages: refused to free pfn {:#x} order {}: {:?}\n",
                    self.kind.prefix(),
                    pfn.number(),
                    order,
                    e
                ));
            }
        }
        r
    }

    fn free_inner(&self, pfn: Pfn, order: u32) -> core::result::Result<(), BadFree> {
        if order > self.block_order {
            return Err(BadFree::BadOrder);
        }
        // Decrypted memory is the host's to write while free, so it is zeroed when
        // handed out (see `alloc`), not scrubbed when freed.
        let scrub = matches!(self.kind, Kind::Unmapped);
        // Found by address in our own pools: the page itself is not trusted.
        self.with_block(pfn, |b, off| {
            b.buddy.check_used(off, order).map_err(BadFree::Block)?;
            // Uncharge before the chunk can be scrubbed and handed to someone else.
            if let Ok(r) = b.block.range(off, 1 << order) {
                r.memcg_uncharge(order);
            }
            if scrub {
                b.buddy.free(off, order).map_err(BadFree::Block)
            } else {
                b.buddy.free_now(off, order).map_err(BadFree::Block)
            }
        })
        .unwrap_or(Err(BadFree::NotOwned))
    }

    /// The pages of a live allocation: the token for charging them, and for reading and
    /// writing them in tests.
    pub(crate) fn range_of(&self, pfn: Pfn, order: u32) -> Option<sys::PageRange> {
        self.peek_block(pfn, |b, off| {
            b.buddy.check_used(off, order).ok()?;
            b.block.range(off, 1 << order).ok()
        })
        .flatten()
    }

    /// `len` bytes at `offset` of the live allocation at `pfn` of `order`, if its pages
    /// are mapped (decrypted memory).
    pub(crate) fn mapped(
        &self,
        pfn: Pfn,
        order: u32,
        offset: usize,
        len: usize,
    ) -> Option<MappedBytes> {
        self.peek_block(pfn, |b, off| {
            b.buddy.check_used(off, order).ok()?;
            b.block
                .range(off, 1 << order)
                .ok()?
                .mapped(offset, len)
                .ok()
        })
        .flatten()
    }

    /// Tags the pages of the live allocation at `pfn` of `order` (see [`Self::chunk_of`]).
    pub(crate) fn set_tag(&self, pfn: Pfn, order: u32, tag: u16) {
        self.with_block(pfn, |b, off| b.buddy.set_tag(off, order, tag));
    }

    /// The state of page `pfn` in this instance.
    pub(crate) fn ownership(&self, pfn: Pfn) -> Ownership {
        let leaked = self
            .leaked
            .lock()
            .iter()
            .any(|&(first, n)| pfn.offset_from(first).is_some_and(|o| o < n));
        if leaked {
            return Ownership::Leaked;
        }
        self.peek_block(pfn, |b, off| match b.buddy.chunk_state(off) {
            Some((_, PageState::Used(_))) => Ownership::Used,
            _ => Ownership::Free,
        })
        .unwrap_or(Ownership::NotOwned)
    }

    /// Calls `f` on each remembered refill run, oldest first.
    pub(crate) fn for_each_refill(
        &self,
        mut f: impl FnMut(&RefillEvent) -> fmt::Result,
    ) -> fmt::Result {
        let history = self.history.lock();
        let r = history.iter().try_for_each(&mut f);
        r
    }

    /// Number of node ids the instance has pools for.
    pub(crate) fn nr_nodes(&self) -> i32 {
        self.nodes.len() as i32
    }

    /// The prefix of the kind in counter names (`unmapped` or `decrypted`).
    pub(crate) fn kind_name(&self) -> &'static str {
        self.kind.prefix()
    }

    /// Pages in leaked blocks of node `nid`.
    pub(crate) fn leaked_pages_on(&self, nid: i32) -> usize {
        self.leaked
            .lock()
            .iter()
            .filter(|(first, _)| first.is_valid() && first.nid() == nid)
            .map(|&(_, n)| n)
            .sum()
    }

    /// The live allocation containing page `pfn`: its first page, order and tag.
    pub(crate) fn chunk_of(&self, pfn: Pfn) -> Option<(Pfn, u32, u16)> {
        self.peek_block(pfn, |b, off| {
            let (head, k) = b.buddy.used_chunk(off)?;
            Some((b.block.pfn().add(head), k, b.buddy.tag(off)?))
        })
        .flatten()
    }

    /// Runs `f` on the block holding `pfn` and the page's offset in it, under the lock.
    ///
    /// A block never spans nodes and lives in the pool of its node, so only that pool is
    /// searched; frames without a `struct page` are nobody's.
    fn with_block<R>(&self, pfn: Pfn, f: impl FnOnce(&mut PoolBlock, usize) -> R) -> Option<R> {
        if !pfn.is_valid() {
            return None;
        }
        let mut pool = self.pool(pfn.nid())?.lock();
        let i = pool.find(pfn)?;
        let off = pfn.offset_from(pool.blocks[i].block.pfn())?;
        Some(pool.touch(i, |b| f(b, off)))
    }

    /// [`Self::with_block`] for lookups that change nothing.
    fn peek_block<R>(&self, pfn: Pfn, f: impl FnOnce(&PoolBlock, usize) -> R) -> Option<R> {
        if !pfn.is_valid() {
            return None;
        }
        let pool = self.pool(pfn.nid())?.lock();
        let i = pool.find(pfn)?;
        let b = &pool.blocks[i];
        Some(f(b, pfn.offset_from(b.block.pfn())?))
    }

    /// Schedules background scrubbing and trimming.
    fn kick(self: &Arc<Self>) {
        if self.background {
            // Already queued is fine: the queued run sees this free too.
            let _ = crate::sys::system_dfl().enqueue(self.clone());
        }
    }

    /// Scrubs every freed chunk and makes it allocatable again. Sleeps. Returns the
    /// number of pages scrubbed.
    pub(crate) fn scrub_pending(&self) -> usize {
        let _maintenance = self.maintenance.lock();
        let mut done = 0;
        for pool in self.nodes.iter() {
            loop {
                let claimed = pool.lock().claim_dirty();
                let Some((base, off, k, range)) = claimed else {
                    break;
                };
                // The chunk is ours alone while claimed, and its block cannot go away
                // since it is not empty.
                let start = Instant::<Monotonic>::now();
                let scrubbed = range.and_then(|r| r.scrub()).is_ok();
                stats::add_elapsed(&self.stats.scrub_ns, start);
                let mut pool = pool.lock();
                if let Some(i) = pool.find(base) {
                    if scrubbed {
                        pool.touch(i, |b| b.buddy.scrubbed(off, k));
                    } else {
                        // Out of vmalloc space: leave it dirty for the next run.
                        pool.touch(i, |b| b.buddy.unclaim(off, k));
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
        self.shrink_to(keep, 0)
    }

    /// Like [`Self::shrink`], but keeps at least `floor` free pages per node (the atomic
    /// reserve).
    pub(crate) fn shrink_to(&self, keep: usize, floor: usize) -> usize {
        let maintenance = self.maintenance.lock();
        self.shrink_locked(&maintenance, keep, floor)
    }

    /// [`Self::shrink_to`] for the shrinker: `None` at once if maintenance work holds
    /// the lock. That work may allocate with `GFP_KERNEL` (temporary mappings, page
    /// tables of a conversion) and so enter reclaim, which calls the shrinker: waiting
    /// here would deadlock.
    pub(crate) fn try_shrink_to(&self, keep: usize, floor: usize) -> Option<usize> {
        let maintenance = self.maintenance.try_lock()?;
        Some(self.shrink_locked(&maintenance, keep, floor))
    }

    fn shrink_locked(&self, _maintenance: &MutexGuard<'_, ()>, keep: usize, floor: usize) -> usize {
        self.stats.shrink_calls.inc();
        let mut released = 0;
        for pool in self.nodes.iter() {
            loop {
                let victim = {
                    let mut pool = pool.lock();
                    // The last releasable block: allocations fill the first ones.
                    let last = pool
                        .blocks
                        .iter()
                        .rposition(|b| b.buddy.is_empty() && !b.leaked);
                    let above_floor = last.is_some_and(|i| {
                        pool.pages.free >= floor + pool.blocks[i].buddy.nr_pages()
                    });
                    if pool.pages.free_blocks <= keep || !above_floor {
                        None
                    } else {
                        last.and_then(|i| pool.remove(i))
                    }
                };
                let Some(ub) = victim else { break };
                self.restore_and_release(KBox::into_inner(ub).block);
                released += 1;
            }
        }
        released
    }

    /// Prepares for reboot or kexec: the next kernel must not find memory shared behind
    /// its back, nor free memory missing from its direct map.
    ///
    /// Stops all allocation, returns every free block to the page allocator converted
    /// back, and converts the blocks still in use back to private in place (decrypted
    /// kind; unmapped blocks in use stay with their users). Sleeps. Returns the blocks
    /// converted back and the failures (those blocks are recorded as leaked).
    pub(crate) fn unshare_all(&self) -> (usize, usize) {
        self.shut_down.store(true, Relaxed);
        self.scrub_pending();
        let released_before = self.stats.blocks_released.get();
        let failures_before = self.stats.conversion_failures.get();
        self.shrink_to(0, 0);
        let mut done = (self.stats.blocks_released.get() - released_before) as usize;
        let mut failed = (self.stats.conversion_failures.get() - failures_before) as usize;
        let Kind::Decrypted(backend) = &self.kind else {
            return (done, failed);
        };
        let _maintenance = self.maintenance.lock();
        for pool in self.nodes.iter() {
            let mut i = 0;
            loop {
                // One block at a time: the conversion sleeps, the pool lock does not.
                let range = {
                    let pool = pool.lock();
                    match pool.blocks.get(i) {
                        Some(b) => b.block.whole().ok(),
                        None => break,
                    }
                };
                i += 1;
                let Some(range) = range else { continue };
                if backend.encrypt(&range).is_ok() && !backend.any_shared(&range) {
                    self.stats.reversions.inc();
                    self.stats.reverted_pages.add(range.nr_pages() as u64);
                    done += 1;
                } else {
                    self.stats.conversion_failures.inc();
                    self.stats.leaked_blocks.inc();
                    self.stats.leaked_pages.add(range.nr_pages() as u64);
                    {
                        let mut p = pool.lock();
                        if let Some(i) = p.find(range.pfn()) {
                            p.touch(i, |b| b.leaked = true);
                        }
                    }
                    let _ = self
                        .leaked
                        .lock()
                        .push((range.pfn(), range.nr_pages()), GFP_ATOMIC);
                    failed += 1;
                }
            }
        }
        (done, failed)
    }

    /// Background work: scrub freed chunks, refill the atomic reserve of every node
    /// below its low watermark up to the high one, and trim the cache to its limit
    /// without going below the reserve.
    pub(crate) fn trim(&self) {
        self.scrub_pending();
        if self.watermarks().1 > 0 {
            // Under the maintenance lock, so that a shrink never runs beside a refill
            // that has taken a block but not added it yet; the shrinker only
            // try-locks, so the block allocations may enter reclaim.
            let _maintenance = self.maintenance.lock();
            let (low, high) = self.watermarks();
            for nid in 0..self.nodes.len() as i32 {
                if sys::node_has_memory(nid) && self.pool_pages(nid).free < low.max(1) {
                    self.refill(nid, high);
                }
            }
        }
        self.shrink_to(self.cache_blocks(), self.watermarks().1);
    }

    /// The atomic reserve's watermarks in free pages per node: `(low, high)`.
    pub(crate) fn watermarks(&self) -> (usize, usize) {
        (
            self.reserve_low.load(Relaxed),
            self.reserve_high.load(Relaxed),
        )
    }

    /// Sets the watermarks; `low <= high` is required. A node below the new low
    /// watermark is refilled by the background work right away, not at the next
    /// allocation that notices: the reserve is for callers that cannot wait.
    pub(crate) fn set_watermarks(self: &Arc<Self>, low: usize, high: usize) -> Result {
        if low > high {
            return Err(EINVAL);
        }
        self.reserve_high.store(high, Relaxed);
        self.reserve_low.store(low, Relaxed);
        if (0..self.nodes.len() as i32).any(|nid| self.reserve_low_on(nid)) {
            self.kick();
        }
        Ok(())
    }

    /// Whether node `nid` is below its low watermark.
    fn reserve_low_on(&self, nid: i32) -> bool {
        let low = self.reserve_low.load(Relaxed);
        low > 0 && self.pool_pages(nid).free < low
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

    /// Writes the counters, one `name value` per line, prefixed with the kind.
    pub(crate) fn write_stats(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.kind.prefix();
        let s = &self.stats;
        for o in 0..=self.block_order {
            writeln!(f, "{k}_alloc_order{o} {}", s.allocs.at(o).get())?;
        }
        for o in 0..=self.block_order {
            writeln!(f, "{k}_free_order{o} {}", s.frees.at(o).get())?;
        }
        let (conversions, reversions, converted, reverted) = match self.kind {
            Kind::Unmapped => (
                "direct_map_unmaps",
                "direct_map_restores",
                "pages_unmapped",
                "pages_restored",
            ),
            Kind::Decrypted(_) => (
                "conversions_to_shared",
                "conversions_to_private",
                "pages_made_shared",
                "pages_made_private",
            ),
        };
        let counters = [
            ("alloc_failures", &s.alloc_failures),
            ("atomic_failures", &s.atomic_failures),
            ("noscrub_allocs", &s.noscrub_allocs),
            ("memcg_failures", &s.memcg_failures),
            ("blocks_taken", &s.blocks_taken),
            ("blocks_released", &s.blocks_released),
            ("fallback_blocks", &s.fallback_blocks),
            ("leaked_blocks", &s.leaked_blocks),
            ("leaked_pages", &s.leaked_pages),
            (conversions, &s.conversions),
            (reversions, &s.reversions),
            (converted, &s.converted_pages),
            (reverted, &s.reverted_pages),
            ("conversion_failures", &s.conversion_failures),
            ("tlb_flushes", &s.tlb_flushes),
            ("scrubbed_pages", &s.scrubbed_pages),
            ("grow_ns", &s.grow_ns),
            ("scrub_ns", &s.scrub_ns),
            ("bad_frees", &s.bad_frees),
            ("bad_requests", &s.bad_requests),
            ("refused_allocs", &s.refused_allocs),
            ("shrink_calls", &s.shrink_calls),
            ("reserve_refills", &s.refills),
            ("reserve_refill_blocks", &s.refill_blocks),
        ];
        for (name, c) in counters {
            writeln!(f, "{k}_{name} {}", c.get())?;
        }
        writeln!(f, "{k}_cache_blocks_limit {}", self.cache_blocks())?;
        let (low, high) = self.watermarks();
        writeln!(f, "{k}_reserve_low_pages {low}")?;
        writeln!(f, "{k}_reserve_high_pages {high}")?;
        for nid in 0..self.nodes.len() as i32 {
            let p = self.pool_pages(nid);
            writeln!(f, "{k}_node{nid}_blocks {}", p.blocks)?;
            writeln!(f, "{k}_node{nid}_used_pages {}", p.used())?;
            writeln!(f, "{k}_node{nid}_cached_pages {}", p.free)?;
            writeln!(f, "{k}_node{nid}_dirty_pages {}", p.dirty)?;
        }
        Ok(())
    }
}

// `#[pinned_drop]` turns this into the `unsafe impl` that pin-init's drop guard needs;
// the code below is safe.
#[allow(unsafe_code)]
#[pinned_drop]
impl PinnedDrop for PageAllocator {
    fn drop(self: Pin<&mut Self>) {
        // Only private instances (tests) are ever dropped. Blocks still in use cannot be
        // returned: leak them, with their direct map state as it is.
        self.scrub_pending();
        self.shrink(0);
        for pool in self.nodes.iter() {
            let mut pool = pool.lock();
            while let Some(ub) = pool
                .blocks
                .len()
                .checked_sub(1)
                .and_then(|i| pool.remove(i))
            {
                let ub = KBox::into_inner(ub);
                if ub.leaked {
                    // Counted when it was leaked.
                    ub.block.leak();
                } else {
                    self.leak(ub.block);
                }
            }
        }
    }
}

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
#[kernel::macros::kunit_tests(unmapped_alloc_pages)]
mod tests {
    use super::*;
    use crate::{
        buddy::FreeError,
        testutil::{run_concurrently, LiveRanges, Rng},
    };
    use kernel::{
        bindings::{GFP_ATOMIC, GFP_KERNEL as K},
        new_spinlock,
    };

    /// An allocation from a private instance, freed on drop: the test-side counterpart
    /// of `kernel::unmapped_alloc::UnmappedPages`.
    struct UnmappedPages {
        alloc: Arc<PageAllocator>,
        pfn: Pfn,
        order: u32,
    }

    impl UnmappedPages {
        fn new_in(
            alloc: &Arc<PageAllocator>,
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

        fn first(&self) -> Pfn {
            self.pfn
        }

        fn pfn(&self) -> usize {
            self.pfn.number()
        }

        fn nr_pages(&self) -> usize {
            1 << self.order
        }

        fn nid(&self) -> i32 {
            self.pfn.nid()
        }
    }

    impl Drop for UnmappedPages {
        fn drop(&mut self) {
            let _ = self.alloc.free(self.pfn, self.order);
        }
    }

    fn private(cache_blocks: usize) -> Result<Arc<PageAllocator>> {
        PageAllocator::new(Config {
            kind: Kind::Unmapped,
            block_order: sys::block_order(),
            cache_blocks,
            reserve: (0, 0),
            background: false,
            refused: None,
        })
    }

    fn alloc(a: &Arc<PageAllocator>, order: u32) -> Result<UnmappedPages> {
        UnmappedPages::new_in(a, NUMA_NO_NODE, K, order, true)
    }

    fn absent_from_direct_map(p: &UnmappedPages) -> bool {
        (0..p.nr_pages()).all(|i| !p.first().add(i).is_present())
    }

    /// Scrubs, shrinks to nothing, and checks that every block went back mapped.
    fn drain_and_check(a: &PageAllocator) {
        a.check_pools();
        a.scrub_pending();
        a.check_pools();
        a.shrink(0);
        assert_eq!(a.total_pages(), PoolPages::default());
        assert_eq!(a.stats.blocks_released.get(), a.stats.blocks_taken.get());
        assert_eq!(a.stats.reversions.get(), a.stats.blocks_taken.get());
        // Release verifies that every page is present again before freeing it.
        assert_eq!(a.stats.leaked_blocks.get(), 0);
    }

    #[test]
    fn every_order_unmapped_then_returned() -> Result {
        let a = private(0)?;
        let mut live = KVec::new();
        for order in 0..=a.max_order() {
            let p = alloc(&a, order)?;
            assert_eq!(p.pfn() % (1 << order), 0);
            assert!(absent_from_direct_map(&p));
            live.push(p, GFP_KERNEL)?;
        }
        // One unmap call and one TLB flush per block, not per page.
        let blocks = a.stats.blocks_taken.get();
        assert_eq!(a.stats.conversions.get(), blocks);
        assert_eq!(a.stats.tlb_flushes.get(), blocks);
        assert!(blocks <= 3);
        drop(live);
        for order in 0..=a.max_order() {
            assert_eq!(a.stats.allocs.at(order).get(), 1);
            assert_eq!(a.stats.frees.at(order).get(), 1);
        }
        drain_and_check(&a);
        Ok(())
    }

    /// Where `set_direct_map_*()` cannot change the direct map (arm64 without a
    /// page-granular linear map), an instance refuses every order without taking a
    /// block; the same configuration allowed hands out pages that are really unmapped.
    #[test]
    fn refused_without_direct_map_changes() -> Result {
        let config = |refused| Config {
            kind: Kind::Unmapped,
            block_order: sys::block_order(),
            cache_blocks: 0,
            reserve: (0, 0),
            background: false,
            refused,
        };
        let a = PageAllocator::new(config(Some(NO_DIRECT_MAP_CHANGES)))?;
        assert_eq!(a.refused(), Some(NO_DIRECT_MAP_CHANGES));
        for order in 0..=a.max_order() {
            assert!(UnmappedPages::new_in(&a, NUMA_NO_NODE, K, order, true).is_err());
            assert!(UnmappedPages::new_in(&a, NUMA_NO_NODE, GFP_ATOMIC, order, false).is_err());
        }
        assert_eq!(
            a.stats.refused_allocs.get(),
            2 * (u64::from(a.max_order()) + 1)
        );
        assert_eq!(a.stats.blocks_taken.get(), 0);
        assert_eq!(a.stats.conversions.get(), 0);
        let text = crate::debugfs::render(&crate::debugfs::DirectMap(&a))?;
        let text = core::str::from_utf8(&text).map_err(|_| EINVAL)?;
        assert!(text.contains("unmapped refused: set_direct_map_*()"));

        let b = PageAllocator::new(config(None))?;
        let p = alloc(&b, 0)?;
        assert!(absent_from_direct_map(&p));
        drop(p);
        drain_and_check(&b);
        Ok(())
    }

    #[test]
    fn allocation_tracepoint_fires() -> Result {
        let a = private(0)?;
        let probe = sys::trace::PagesProbe::new()?;
        let pages = [alloc(&a, 0)?, alloc(&a, 2)?, alloc(&a, 5)?];
        assert!(probe.hits() >= 3);
        drop(probe);
        drop(pages);
        drain_and_check(&a);
        Ok(())
    }

    #[test]
    fn block_exhausted_then_merged() -> Result {
        let a = private(1)?;
        let n = 1usize << a.max_order();
        let mut pages = KVec::new();
        for _ in 0..n {
            pages.push(alloc(&a, 0)?, GFP_KERNEL)?;
        }
        assert_eq!(a.stats.fallback_blocks.get(), 0);
        assert_eq!(a.stats.blocks_taken.get(), 1);
        assert_eq!(a.total_pages().used(), n);
        assert_eq!(a.total_pages().free, 0);
        Rng::new(3).shuffle(&mut pages);
        while let Some(p) = pages.pop() {
            drop(p);
        }
        assert_eq!(a.total_pages().dirty, n);
        assert_eq!(a.scrub_pending(), n);
        let t = a.total_pages();
        assert_eq!((t.blocks, t.free_blocks, t.free), (1, 1, n));
        // Merged back into one chunk: a whole-block allocation needs no new block.
        let big = alloc(&a, a.max_order())?;
        assert_eq!(a.stats.blocks_taken.get(), 1);
        drop(big);
        drain_and_check(&a);
        Ok(())
    }

    #[test]
    fn smallest_free_chunk_first() -> Result {
        let a = private(2)?;
        let nid = sys::local_node();
        let n = 1usize << a.max_order();
        let get = |order| UnmappedPages::new_in(&a, nid, K | bindings::__GFP_THISNODE, order, true);
        let mut first = KVec::new();
        for _ in 0..n {
            first.push(get(0)?, GFP_KERNEL)?;
        }
        // A second block, split down for one page; the next page is that page's buddy.
        let second = get(0)?;
        let buddy = get(0)?;
        assert_eq!(a.stats.blocks_taken.get(), 2);
        assert_ne!(
            second.first().number() >> a.max_order(),
            first[0].first().number() >> a.max_order()
        );
        assert_eq!(buddy.first().number(), second.first().number() ^ 1);
        // One page of the full block comes back: the next page is that one, not a split
        // of the second block's chunks of order 1 and up.
        let hole = first.remove(n / 2)?.first();
        assert_eq!(a.scrub_pending(), 1);
        a.check_pools();
        let again = get(0)?;
        assert_eq!(again.first(), hole);
        // Two pages only fit in the second block.
        let pair = get(1)?;
        assert_eq!(
            pair.first().number() >> a.max_order(),
            second.first().number() >> a.max_order()
        );
        a.check_pools();
        drop((first, second, buddy, again, pair));
        drain_and_check(&a);
        Ok(())
    }

    #[test]
    fn node_placement() -> Result {
        let a = private(0)?;
        let nodes = (0..sys::nr_node_ids() as i32).filter(|&n| sys::node_has_memory(n));
        let mut seen = 0;
        for nid in nodes {
            seen += 1;
            let strict = UnmappedPages::new_in(&a, nid, K | bindings::__GFP_THISNODE, 0, true)?;
            assert_eq!(strict.nid(), nid);
            let preferred = UnmappedPages::new_in(&a, nid, K, 3, true)?;
            assert_eq!(preferred.nid(), nid);
        }
        drain_and_check(&a);
        if seen < 2 {
            // Placement was checked on the one node there is; nothing to tell apart.
            sys::kunit_skip();
        }
        Ok(())
    }

    #[test]
    fn freed_pages_scrubbed_before_reuse() -> Result {
        let a = private(1)?;
        let n = 1usize << a.max_order();
        let mut pages = KVec::new();
        for _ in 0..n {
            let p = alloc(&a, 0)?;
            let r = a.range_of(p.first(), 0).ok_or(EINVAL)?;
            // Fresh pages are zero.
            assert_eq!(r.read_byte(100)?, 0);
            r.write_byte(100, 0x5a)?;
            assert_eq!(r.read_byte(100)?, 0x5a);
            pages.push(p, GFP_KERNEL)?;
        }
        drop(pages);
        assert_eq!(a.total_pages().dirty, n);

        // __GFP_ZERO wins over the opt-out: no dirty chunk is taken.
        assert!(a
            .alloc(NUMA_NO_NODE, K | bindings::__GFP_ZERO, 0, false)
            .is_some_and(|pfn| a.free(pfn, 0).is_ok()));
        assert_eq!(a.stats.noscrub_allocs.get(), 0);
        a.scrub_pending();
        a.shrink(0);

        // The opt-out hands out a freed page as it is, without scrubbing it.
        let p = alloc(&a, 0)?;
        a.range_of(p.first(), 0)
            .ok_or(EINVAL)?
            .write_byte(100, 0x77)?;
        let pfn = p.first();
        drop(p);
        let q = UnmappedPages::new_in(&a, NUMA_NO_NODE, K, 0, false)?;
        assert_eq!(q.first(), pfn);
        assert_eq!(a.stats.noscrub_allocs.get(), 1);
        assert_eq!(
            a.range_of(q.first(), 0).ok_or(EINVAL)?.read_byte(100)?,
            0x77
        );
        drop(q);

        // Everything else is scrubbed before reuse.
        a.scrub_pending();
        let mut pages = KVec::new();
        for _ in 0..n {
            let p = alloc(&a, 0)?;
            assert_eq!(a.range_of(p.first(), 0).ok_or(EINVAL)?.read_byte(100)?, 0);
            pages.push(p, GFP_KERNEL)?;
        }
        drop(pages);
        drain_and_check(&a);
        Ok(())
    }

    #[test]
    fn accounted_pages_uncharged_on_free() -> Result {
        let a = private(0)?;
        let p = UnmappedPages::new_in(&a, NUMA_NO_NODE, bindings::GFP_KERNEL_ACCOUNT, 2, true)?;
        // KUnit runs in a kernel thread of the root cgroup, which is never charged; the
        // 'make run' guest checks charging from a child cgroup.
        assert!(!p.first().memcg_charged());
        let pfn = p.first();
        drop(p);
        assert!(!pfn.memcg_charged());
        assert_eq!(a.stats.memcg_failures.get(), 0);
        drain_and_check(&a);
        Ok(())
    }

    #[test]
    fn shrink_returns_free_blocks() -> Result {
        let a = private(8)?;
        // All on one node: the cache limit is per node, and this task may move to a
        // CPU of another node between allocations.
        let nid = sys::local_node();
        let on_node = || UnmappedPages::new_in(&a, nid, K | bindings::__GFP_THISNODE, 9, true);
        let blocks = [on_node()?, on_node()?, on_node()?];
        drop(blocks);
        a.trim();
        // Within the cache limit: kept, unmapped.
        let t = a.total_pages();
        assert_eq!((t.blocks, t.free_blocks), (3, 3));
        assert_eq!(a.reclaimable_pages(), 3 * 512);
        assert_eq!(a.stats.blocks_released.get(), 0);
        // Above the limit: trimmed to it.
        a.set_cache_blocks(1);
        a.trim();
        assert_eq!(a.total_pages().blocks, 1);
        assert_eq!(a.stats.blocks_released.get(), 2);
        // The shrinker's request returns the rest.
        assert_eq!(a.shrink(0), 1);
        assert_eq!(a.reclaimable_pages(), 0);
        drain_and_check(&a);
        Ok(())
    }

    #[test]
    fn injected_failures_undone_or_counted() -> Result {
        // The kernel's fault injection (fail_unmapped_alloc) is in the test config.
        if !cfg!(CONFIG_FAULT_INJECTION) {
            return Ok(());
        }
        let a = private(0)?;
        // A failed direct map removal is undone: the block goes back, mapped.
        sys::fail_inject(bindings::UA_FAIL_DIRECT_MAP, 1);
        let r = a.alloc(NUMA_NO_NODE, K, 0, true);
        sys::fail_inject(0, 0);
        assert_eq!(a.stats.conversion_failures.get(), 1);
        assert_eq!(a.stats.leaked_blocks.get(), 0);
        // Block and metadata failures: the allocation falls back or fails cleanly.
        let mut live = KVec::new();
        live.push(r, GFP_KERNEL)?;
        for site in [bindings::UA_FAIL_BLOCK, bindings::UA_FAIL_METADATA] {
            sys::fail_inject(site, 1);
            live.push(a.alloc(NUMA_NO_NODE, K, 0, true), GFP_KERNEL)?;
            sys::fail_inject(0, 0);
        }
        // Whatever was served is really unmapped, and serving works again.
        live.push(a.alloc(NUMA_NO_NODE, K, 0, true), GFP_KERNEL)?;
        assert!(live.last().is_some_and(|p| p.is_some()));
        for pfn in live.iter().flatten() {
            assert!(!pfn.is_present());
            assert_eq!(a.free(*pfn, 0), Ok(()));
        }
        drain_and_check(&a);
        Ok(())
    }

    #[test]
    fn shrinker_never_waits_for_maintenance() -> Result {
        let a = private(0)?;
        drop(alloc(&a, 0)?);
        a.scrub_pending();
        assert_eq!(a.total_pages().held, 1 << a.max_order());
        {
            // As if maintenance work had entered reclaim: the shrinker must not wait.
            let _maintenance = a.maintenance.lock();
            assert_eq!(a.try_shrink_to(0, 0), None);
        }
        assert_eq!(a.try_shrink_to(0, 0), Some(1));
        assert_eq!(a.total_pages().held, 0);
        Ok(())
    }

    #[test]
    fn bad_input_detected_without_change() -> Result {
        // Refused frees below are reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let a = private(0)?;
        assert!(a.alloc(NUMA_NO_NODE, K, a.max_order() + 1, true).is_none());
        assert!(a.alloc(4096, K, 0, true).is_none());
        assert_eq!(a.stats.bad_requests.get(), 2);

        let p = alloc(&a, 1)?;
        let foreign = Block::alloc(NUMA_NO_NODE, K, 0).ok_or(ENOMEM)?;
        assert_eq!(a.free(foreign.pfn(), 0), Err(BadFree::NotOwned));
        foreign.release();
        assert_eq!(
            a.free(p.first(), 0),
            Err(BadFree::Block(FreeError::WrongOrder { allocated: 1 }))
        );
        assert_eq!(
            a.free(p.first().add(1), 0),
            Err(BadFree::Block(FreeError::NotAllocated))
        );
        assert_eq!(a.free(p.first(), 99), Err(BadFree::BadOrder));
        assert_eq!(a.total_pages().used(), 2);
        let pfn = p.first();
        drop(p);
        // Double free, before and after scrubbing.
        assert_eq!(a.free(pfn, 1), Err(BadFree::Block(FreeError::NotAllocated)));
        a.scrub_pending();
        assert_eq!(a.free(pfn, 1), Err(BadFree::Block(FreeError::NotAllocated)));
        assert_eq!(a.stats.bad_frees.get(), 6);
        assert_eq!(a.stats.frees.at(1).get(), 1);
        drain_and_check(&a);
        Ok(())
    }

    #[test]
    fn atomic_never_changes_direct_map() -> Result {
        let a = private(4)?;
        // Nothing unmapped yet: fail fast and count it.
        assert!(a.alloc(NUMA_NO_NODE, GFP_ATOMIC, 0, true).is_none());
        assert_eq!(a.stats.atomic_failures.get(), 1);
        assert_eq!(a.stats.blocks_taken.get(), 0);
        // Warm the pool in process context.
        drop(alloc(&a, 0)?);
        a.scrub_pending();
        let unmaps = a.stats.conversions.get();

        let lock = KBox::pin_init(new_spinlock!(()), GFP_KERNEL)?;
        let irq_lock = KBox::pin_init(new_irq_spinlock!((), c"ua_test_irq_lock"), GFP_KERNEL)?;
        let mut got = KVec::with_capacity(16, GFP_KERNEL)?;
        {
            let _spin = lock.lock();
            let _irqs_off = irq_lock.lock();
            for _ in 0..16 {
                let p = UnmappedPages::new_in(&a, NUMA_NO_NODE, GFP_ATOMIC, 0, true)?;
                assert!(!p.first().is_present());
                got.push_within_capacity(p).map_err(|_| ENOMEM)?;
            }
        }
        assert_eq!(a.stats.conversions.get(), unmaps);
        assert_eq!(a.stats.atomic_failures.get(), 1);
        drop(got);
        drain_and_check(&a);
        Ok(())
    }

    /// Shared state of the concurrency test.
    struct Stress {
        alloc: Arc<PageAllocator>,
        live: Arc<LiveRanges>,
    }

    /// One worker: random orders allocated and freed, every range recorded.
    fn stress(s: &Stress, seed: u64) {
        let mut rng = Rng::new(seed);
        let mut mine: KVec<UnmappedPages> = KVec::new();
        for _ in 0..400 {
            if mine.len() < 16 && (mine.is_empty() || rng.below(2) == 0) {
                let order = rng.below(4);
                let Ok(p) = UnmappedPages::new_in(&s.alloc, NUMA_NO_NODE, K, order, true) else {
                    s.live.fail();
                    continue;
                };
                s.live.insert(p.pfn(), p.pfn() + p.nr_pages());
                if mine.push(p, GFP_KERNEL).is_err() {
                    s.live.fail();
                }
            } else if let Ok(p) = mine.remove(rng.below(mine.len() as u32) as usize) {
                s.live.remove(p.pfn());
            }
        }
        for p in mine.drain_all() {
            s.live.remove(p.pfn());
        }
    }

    #[test]
    fn concurrent_alloc_free_no_page_twice() -> Result {
        let a = PageAllocator::new(Config {
            kind: Kind::Unmapped,
            block_order: sys::block_order(),
            cache_blocks: 2,
            reserve: (0, 0),
            background: true,
            refused: None,
        })?;
        let shared = Arc::new(
            Stress {
                alloc: a.clone(),
                live: LiveRanges::new()?,
            },
            GFP_KERNEL,
        )?;
        run_concurrently(&shared, 2 * kernel::cpu::nr_cpu_ids(), stress)?;
        assert_eq!(shared.live.overlaps(), 0);
        assert_eq!(shared.live.failures(), 0);
        let allocs: u64 = (0..4).map(|o| a.stats.allocs.at(o).get()).sum();
        let frees: u64 = (0..4).map(|o| a.stats.frees.at(o).get()).sum();
        assert_eq!(allocs, frees);
        assert!(allocs > 0);
        // Maintenance is serialised, so this also waits for a background run in flight.
        drain_and_check(&a);
        Ok(())
    }
}

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
#[kernel::macros::kunit_tests(unmapped_alloc_decrypted_pages)]
mod decrypted_tests {
    use super::*;
    use crate::backend::ModelBackend;
    use kernel::bindings::{GFP_ATOMIC, GFP_KERNEL as K};

    fn private(model: &Arc<ModelBackend>, cache_blocks: usize) -> Result<Arc<PageAllocator>> {
        private_with(Backend::Model(model.clone()), cache_blocks)
    }

    /// A test instance of decrypted pages converting through `backend`.
    fn private_with(backend: Backend, cache_blocks: usize) -> Result<Arc<PageAllocator>> {
        PageAllocator::new(Config {
            kind: Kind::Decrypted(backend),
            block_order: sys::block_order(),
            cache_blocks,
            reserve: (0, 0),
            background: false,
            refused: None,
        })
    }

    fn shared(model: &ModelBackend, pfn: Pfn, order: u32) -> bool {
        (0..1usize << order).all(|i| model.is_shared(pfn.add(i).number()))
    }

    /// Frees all, shrinks, and checks that every page went back private.
    fn drain_and_check(a: &PageAllocator, model: &ModelBackend) {
        a.check_pools();
        a.scrub_pending();
        a.shrink(0);
        assert_eq!(a.total_pages(), PoolPages::default());
        let leaked = a.stats.leaked_pages.get() as usize;
        // Only leaked blocks may still be shared; everything released is private.
        assert_eq!(model.shared_pages(), leaked);
        assert_eq!(
            a.stats.blocks_released.get() + a.stats.leaked_blocks.get(),
            a.stats.blocks_taken.get()
        );
    }

    #[test]
    fn pages_shared_zeroed_and_returned_private() -> Result {
        let model = ModelBackend::new()?;
        let a = private(&model, 0)?;
        let mut live = KVec::new();
        for order in 0..=a.max_order() {
            let pfn = a.alloc(NUMA_NO_NODE, K, order, true).ok_or(ENOMEM)?;
            assert!(shared(&model, pfn, order));
            // Still in the direct map: decrypted, not unmapped.
            assert!(pfn.is_present());
            let r = a.range_of(pfn, order).ok_or(EINVAL)?;
            assert_eq!(r.read_byte(0)?, 0);
            assert_eq!(r.read_byte((sys::PAGE_SIZE << order) - 1)?, 0);
            live.push((pfn, order), GFP_KERNEL)?;
        }
        for &(pfn, order) in live.iter() {
            assert_eq!(a.free(pfn, order), Ok(()));
        }
        drain_and_check(&a, &model);
        assert_eq!(model.shared_pages(), 0);
        assert_eq!(a.stats.leaked_blocks.get(), 0);
        Ok(())
    }

    #[test]
    fn injected_conversion_failure_leaks_block() -> Result {
        if !cfg!(CONFIG_FAULT_INJECTION) {
            return Ok(());
        }
        // The real backend: fault injection fails its set_memory_decrypted() call.
        let a = private_with(Backend::Real, 0)?;
        sys::fail_inject(bindings::UA_FAIL_CONVERSION, 1);
        let first = a.alloc(NUMA_NO_NODE, K, 0, true);
        sys::fail_inject(0, 0);
        // The block's state is unknown: leaked and counted, never used or freed.
        assert_eq!(a.stats.conversion_failures.get(), 1);
        assert_eq!(a.stats.leaked_blocks.get(), 1);
        let pfn = match first {
            Some(pfn) => pfn,
            None => a.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?,
        };
        // A failed conversion back leaks that block too, instead of returning it.
        assert_eq!(a.free(pfn, 0), Ok(()));
        a.scrub_pending();
        sys::fail_inject(bindings::UA_FAIL_CONVERSION, 1);
        a.shrink(0);
        sys::fail_inject(0, 0);
        assert_eq!(a.stats.leaked_blocks.get(), 2);
        assert_eq!(a.stats.blocks_released.get(), 0);
        assert_eq!(a.stats.blocks_taken.get(), 2);
        Ok(())
    }

    #[test]
    fn caller_nofs_noio_respected() -> Result {
        let model = ModelBackend::new()?;
        let a = private(&model, 0)?;
        // Each allocation takes a new block; its conversion sees the caller's scope.
        for (gfp, scope) in [
            (bindings::GFP_NOFS, bindings::PF_MEMALLOC_NOFS),
            (bindings::GFP_NOIO, bindings::PF_MEMALLOC_NOIO),
            (K, 0),
        ] {
            let pfn = a.alloc(NUMA_NO_NODE, gfp, 0, true).ok_or(ENOMEM)?;
            assert_eq!(model.last_scope.load(Relaxed), scope);
            assert_eq!(sys::reclaim_scope_current(), 0);
            assert_eq!(a.free(pfn, 0), Ok(()));
            drain_and_check(&a, &model);
        }
        assert_eq!(model.decrypt_calls.load(Relaxed), 3);
        Ok(())
    }

    #[test]
    fn blocks_zeroed_before_sharing() -> Result {
        // Free memory of this node, block-sized, dirtied and given back: the
        // allocator's next block is usually one of these (the buddy allocator hands
        // out what this CPU freed last). It may not be, if the task moved to another
        // CPU in between or a released block merged with its buddy: then the round
        // proves nothing and is repeated, but no round may share dirty memory.
        let nid = sys::local_node();
        for _ in 0..16 {
            let mut dirtied = KVec::new();
            for _ in 0..4 {
                let b = Block::alloc(nid, K | bindings::__GFP_THISNODE, sys::block_order())
                    .ok_or(ENOMEM)?;
                b.whole()?.fill(0xa5)?;
                dirtied.push(b.pfn(), GFP_KERNEL)?;
                b.release();
            }
            let model = ModelBackend::new()?;
            let a = private(&model, 0)?;
            let pfn = a.alloc(nid, K, 0, true).ok_or(ENOMEM)?;
            let base = Pfn::new(pfn.number() & !((1usize << sys::block_order()) - 1));
            assert_eq!(model.decrypt_calls.load(Relaxed), 1);
            assert_eq!(model.dirty_shares.load(Relaxed), 0);
            assert_eq!(a.free(pfn, 0), Ok(()));
            drain_and_check(&a, &model);
            if dirtied.contains(&base) {
                return Ok(());
            }
        }
        // Never given a dirtied block: the test proved nothing.
        Err(EAGAIN)
    }

    #[test]
    fn one_conversion_per_block() -> Result {
        let model = ModelBackend::new()?;
        let a = private(&model, 0)?;
        let n = 4usize << a.max_order();
        let mut live = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            live.push(a.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?, GFP_KERNEL)?;
        }
        let blocks = a.stats.blocks_taken.get();
        // 2048 pages from 2 MiB blocks: 4 conversions, not 2048.
        assert_eq!(a.stats.fallback_blocks.get(), 0);
        assert_eq!(blocks, 4);
        assert_eq!(model.decrypt_calls.load(Relaxed), blocks);
        assert_eq!(a.stats.conversions.get(), blocks);
        for &pfn in live.iter() {
            assert_eq!(a.free(pfn, 0), Ok(()));
        }
        drain_and_check(&a, &model);
        assert_eq!(model.encrypt_calls.load(Relaxed), blocks);
        Ok(())
    }

    #[test]
    fn failed_decrypt_leaks_block() -> Result {
        let model = ModelBackend::new()?;
        let a = private(&model, 0)?;
        model.fail_nth(1);
        assert!(a.alloc(NUMA_NO_NODE, K, 0, true).is_none());
        assert_eq!(a.stats.conversion_failures.get(), 1);
        assert_eq!(a.stats.leaked_blocks.get(), 1);
        assert_eq!(a.stats.alloc_failures.get(), 1);
        // The next attempt converts a new block and works.
        let pfn = a.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        assert!(shared(&model, pfn, 0));
        assert_eq!(a.ownership(pfn), Ownership::Used);
        assert_eq!(a.ownership(pfn.add(1)), Ownership::Free);
        assert_eq!(a.free(pfn, 0), Ok(()));
        assert_eq!(a.ownership(pfn), Ownership::Free);
        drain_and_check(&a, &model);
        assert_eq!(a.ownership(pfn), Ownership::NotOwned);
        let total_leaked: usize = (0..sys::nr_node_ids() as i32)
            .map(|n| a.leaked_pages_on(n))
            .sum();
        assert_eq!(total_leaked, 512);
        let first = a.leaked.lock()[0].0;
        assert_eq!(a.ownership(first), Ownership::Leaked);
        assert_eq!(a.ownership(first.add(511)), Ownership::Leaked);
        // The leaked block stays shared in the model and was never released.
        assert_eq!(model.shared_pages(), 512);
        assert_eq!(a.stats.blocks_released.get(), 1);
        Ok(())
    }

    #[test]
    fn failed_encrypt_leaks_block() -> Result {
        let model = ModelBackend::new()?;
        let a = private(&model, 0)?;
        let p1 = a.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        let p2 = a.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        assert_eq!(a.free(p1, 9), Ok(()));
        assert_eq!(a.free(p2, 9), Ok(()));
        a.scrub_pending();
        // The first of the two re-encryptions fails: that block is leaked, still shared.
        model.fail_nth(1);
        assert_eq!(a.shrink(0), 2);
        assert_eq!(a.stats.leaked_blocks.get(), 1);
        assert_eq!(a.stats.blocks_released.get(), 1);
        assert_eq!(a.stats.conversion_failures.get(), 1);
        drain_and_check(&a, &model);
        assert_eq!(model.shared_pages(), 512);
        Ok(())
    }

    #[test]
    fn atomic_never_converts() -> Result {
        let model = ModelBackend::new()?;
        let a = private(&model, 4)?;
        assert!(a.alloc(NUMA_NO_NODE, GFP_ATOMIC, 0, true).is_none());
        assert_eq!(model.decrypt_calls.load(Relaxed), 0);
        assert_eq!(model.atomic_calls.load(Relaxed), 0);
        assert_eq!(a.stats.atomic_failures.get(), 1);
        let warm = a.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        let calls = model.decrypt_calls.load(Relaxed);
        let lock = KBox::pin_init(new_irq_spinlock!((), c"ua_test_irq_lock"), GFP_KERNEL)?;
        let mut got = KVec::with_capacity(32, GFP_KERNEL)?;
        {
            let _irqs_off = lock.lock();
            for _ in 0..32 {
                let pfn = a.alloc(NUMA_NO_NODE, GFP_ATOMIC, 0, true).ok_or(ENOMEM)?;
                got.push_within_capacity(pfn).map_err(|_| ENOMEM)?;
            }
        }
        assert_eq!(model.decrypt_calls.load(Relaxed), calls);
        for &pfn in got.iter() {
            assert!(shared(&model, pfn, 0));
            assert_eq!(a.free(pfn, 0), Ok(()));
        }
        assert_eq!(a.free(warm, 0), Ok(()));
        drain_and_check(&a, &model);
        Ok(())
    }

    #[test]
    fn unshare_all_leaves_nothing_shared() -> Result {
        let model = ModelBackend::new()?;
        let d = private(&model, 4)?;
        let u = PageAllocator::new(Config {
            kind: Kind::Unmapped,
            block_order: sys::block_order(),
            cache_blocks: 4,
            reserve: (0, 0),
            background: false,
            refused: None,
        })?;
        // Decrypted: three blocks, one in use, two free (cached).
        let used = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        let small = d.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        let spare = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        assert_eq!(d.free(spare, 9), Ok(()));
        assert_eq!(d.free(small, 0), Ok(()));
        d.scrub_pending();
        assert_eq!(model.shared_pages(), 3 * 512);
        // Unmapped: one block in use, one free.
        let kept = u.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        let gone = u.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        assert_eq!(u.free(gone, 9), Ok(()));

        assert_eq!(d.unshare_all(), (3, 0));
        assert_eq!(model.shared_pages(), 0);
        assert_eq!(u.unshare_all(), (1, 0));
        // The free block went back mapped (the release verifies every page is present
        // before freeing it; afterwards DEBUG_PAGEALLOC may unmap free pages again).
        assert_eq!(u.ownership(gone), Ownership::NotOwned);
        assert_eq!(u.stats.blocks_released.get(), 1);
        assert_eq!(u.stats.leaked_blocks.get(), 0);
        assert!(!kept.is_present());

        // Shut down: nothing is handed out any more; frees still work.
        assert!(d.alloc(NUMA_NO_NODE, K, 0, true).is_none());
        assert!(u.alloc(NUMA_NO_NODE, K, 0, true).is_none());
        assert_eq!(d.refill(sys::local_node(), 512), 0);
        assert_eq!(d.free(used, 9), Ok(()));
        assert_eq!(u.free(kept, 9), Ok(()));
        d.scrub_pending();
        u.scrub_pending();
        d.shrink(0);
        u.shrink(0);
        assert_eq!(d.total_pages().held, 0);
        assert_eq!(u.total_pages().held, 0);
        assert_eq!(model.shared_pages(), 0);
        Ok(())
    }

    #[test]
    fn unshare_all_failure_is_leaked() -> Result {
        let model = ModelBackend::new()?;
        let d = private(&model, 4)?;
        let a = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        let b = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        model.fail_nth(1);
        assert_eq!(d.unshare_all(), (1, 1));
        assert_eq!(model.shared_pages(), 512);
        let leaked = if model.is_shared(a.number()) { a } else { b };
        assert_eq!(d.ownership(leaked), Ownership::Leaked);
        assert_eq!(d.stats.leaked_blocks.get(), 1);
        assert_eq!(d.free(a, 9), Ok(()));
        assert_eq!(d.free(b, 9), Ok(()));
        Ok(())
    }

    #[test]
    fn wrong_kind_free_refused() -> Result {
        // Refused frees below are reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let model = ModelBackend::new()?;
        let d = private(&model, 0)?;
        let u = PageAllocator::new(Config {
            kind: Kind::Unmapped,
            block_order: sys::block_order(),
            cache_blocks: 0,
            reserve: (0, 0),
            background: false,
            refused: None,
        })?;
        let dp = d.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        let up = u.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        assert_eq!(d.free(up, 0), Err(BadFree::NotOwned));
        assert_eq!(u.free(dp, 0), Err(BadFree::NotOwned));
        assert!(shared(&model, dp, 0));
        assert!(!up.is_present());
        assert_eq!(d.free(dp, 0), Ok(()));
        assert_eq!(u.free(up, 0), Ok(()));
        drain_and_check(&d, &model);
        u.scrub_pending();
        u.shrink(0);
        assert_eq!(u.stats.leaked_blocks.get(), 0);
        Ok(())
    }
}
