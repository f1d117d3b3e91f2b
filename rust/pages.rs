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
//! with one TLB flush, and carved into chunks of order 0..=block order by a
//! [`crate::buddy::Buddy`].
//!
//! - Freed chunks are scrubbed (zeroed through a temporary mapping) in the background
//!   before they can be handed out again, so a new owner never sees an old owner's
//!   data and `unmapped_free()` works in any context but NMI. Callers that initialise the
//!   memory themselves may opt out and take freed chunks unscrubbed.
//! - Allocations that cannot sleep are served only from memory that is already
//!   unmapped and clean: the direct map is never changed in atomic context.
//! - Fully free blocks are kept as a cache up to a limit per node; beyond it, and when
//!   the shrinker asks, they get their direct map back and return to the page
//!   allocator whole, so the architecture can map them large again.

#![deny(unsafe_code)]

mod convert;
mod maintenance;
mod pool;
mod reserve;
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod tests;

pub(crate) use pool::PoolPages;
use pool::{NodePool, PoolBlock};
use reserve::RefillHistory;
pub(crate) use reserve::MAX_RESERVE_PAGES;

use crate::{
    backend::Backend,
    buddy::{FreeError, PageState},
    mutant::{self, Mutant},
    pernode::{new_per_node, PerNode},
    stats::{PageStats, MAX_ORDER},
    sys::{self, new_irq_spinlock, Block, IrqSpinLock, MappedBytes, Pfn, NUMA_NO_NODE},
};
use core::sync::atomic::AtomicUsize;
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

/// What an allocator instance knows of a page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ownership {
    /// Not in any block of the instance.
    NotOwned,
    /// In a block, free (cached, or freed and waiting to be scrubbed).
    Free,
    /// Handed out to a user of the page API.
    Used,
    /// Handed out to the object caches: a slab, or a large object.
    Objects,
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
    /// The pages belong to another user of the allocator (a slab of objects, a large
    /// object): given to the page API, they are not its to free.
    WrongKind {
        /// The tag of the allocation's pages, see [`PageAllocator::set_tag`].
        tag: u16,
    },
    /// Someone still holds a reference beyond the one handed out, or the pages are
    /// still mapped into user space: they are left allocated, never reused.
    Referenced,
    /// The pages were leaked by the allocator itself (zeroing them failed), never
    /// handed out: nobody can own them.
    Leaked,
}

/// The one refusal of a free that its caller expects, and that is therefore neither
/// reported nor counted as a bad free.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quiet {
    /// Every refusal is reported.
    Nothing,
    /// [`BadFree::Referenced`]: see [`PageAllocator::try_free`].
    Referenced,
    /// [`BadFree::NotOwned`]: see [`PageAllocator::free_if_owned`].
    NotOwned,
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
    /// Whether objects carved from the instance's memory are registered with kmemleak:
    /// the system-wide instances. Tests' own instances are not, since they may be
    /// dropped with objects still out.
    pub(crate) kmemleak: bool,
}

/// GFP flags the page API refuses, with a one-time warning and `NULL`: the blocks come
/// from the normal zones (`__GFP_DMA`, `__GFP_DMA32`), chunks are never compound pages
/// (`__GFP_COMP`), and a new block cannot be promised (`__GFP_NOFAIL`). Every other flag
/// is honoured or has no meaning here (`__GFP_HIGHMEM`, `__GFP_MOVABLE`: the pages are
/// lowmem and unmovable, as a caller that asks for either must accept).
pub(crate) const REFUSED_GFP: bindings::gfp_t =
    bindings::__GFP_DMA | bindings::__GFP_DMA32 | bindings::__GFP_COMP | bindings::__GFP_NOFAIL;

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
            kmemleak: true,
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
    /// Set by [`PageAllocator::shut_down`]: nothing is handed out or converted again.
    shut_down: Atomic<bool>,
    /// Blocks being taken and converted that are not in a pool yet (see
    /// [`PageAllocator::in_flight`]): a shut-down waits for them.
    converting: AtomicUsize,
    /// Why every allocation is refused, if it is (see [`Config::refused`]).
    refused: Option<&'static str>,
    background: bool,
    /// See [`Config::kmemleak`].
    kmemleak: bool,
    /// When the instance was created, the origin of [`reserve::RefillEvent::time_ns`].
    created: Instant<Monotonic>,
    /// Recent refills of the atomic reserve.
    #[pin]
    history: IrqSpinLock<RefillHistory>,
    /// Leaked blocks, `(first frame, pages)`, so that their pages can still be told.
    #[pin]
    leaked: IrqSpinLock<KVec<(Pfn, usize)>>,
    /// Decrypted blocks leaked because their conversion back to private failed:
    /// kept, so that unshare-all can try once more.
    #[pin]
    unknown: IrqSpinLock<KVec<Arc<Block>>>,
    /// Serialises scrubbing and shrinking (background work, allocations that sleep,
    /// the shrinker), so that a caller that drains sees all chunks settled.
    #[pin]
    maintenance: Mutex<()>,
    /// The handles of the C API's dedicated caches on this instance, so that a
    /// shut-down can close them (see `c_api::objects`).
    #[pin]
    dedicated: Mutex<KVec<usize>>,
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
                converting: AtomicUsize::new(0),
                refused: config.refused,
                background: config.background,
                kmemleak: config.kmemleak,
                created: Instant::<Monotonic>::now(),
                history <- new_irq_spinlock!(RefillHistory::default(), c"unmapped_alloc_history"),
                leaked <- new_irq_spinlock!(KVec::new(), c"unmapped_alloc_leaked"),
                unknown <- new_irq_spinlock!(KVec::new(), c"unmapped_alloc_unknown"),
                maintenance <- new_mutex!(()),
                dedicated <- new_mutex!(KVec::new()),
                stats: PageStats::new(),
                work <- new_work!("PageAllocator::work"),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// The handles of the dedicated caches on this instance, locked: a handle is added
    /// when its cache is made and removed before the cache is destroyed.
    pub(crate) fn dedicated(&self) -> MutexGuard<'_, KVec<usize>> {
        self.dedicated.lock()
    }

    /// Why every allocation is refused, if it is.
    pub(crate) fn refused(&self) -> Option<&'static str> {
        self.refused
    }

    /// Whether objects carved from this instance's memory are registered with kmemleak.
    #[inline]
    pub(crate) fn registers_objects(&self) -> bool {
        self.kmemleak
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
    fn check_pools(&self) -> Result {
        for pool in self.nodes.iter() {
            pool.lock().check()?;
        }
        Ok(())
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
        let nid = if mutant::is(Mutant::IgnoreNode) {
            sys::NUMA_NO_NODE
        } else {
            nid
        };
        if let Some(why) = self.refused {
            self.stats.refused_allocs.inc();
            pr_warn_once!("{} pages refused: {}\n", self.kind.prefix(), why);
            return None;
        }
        if self.shut_down.load(Relaxed) {
            self.stats.alloc_failures.inc();
            return None;
        }
        if gfp & REFUSED_GFP != 0 {
            self.stats.bad_requests.inc();
            pr_warn_once!(
                "{} pages: GFP flags {:#x} refused (__GFP_DMA, __GFP_DMA32, __GFP_COMP and \
                 __GFP_NOFAIL are not supported)\n",
                self.kind.prefix(),
                gfp & REFUSED_GFP
            );
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
        let pfn = pfn
            .inspect(|&pfn| sys::detectors::pages_allocated(pfn, 1 << order, !take_dirty, gfp))
            .and_then(|pfn| self.zero_decrypted(pfn, gfp, order, scrub))
            .and_then(|pfn| self.charge(pfn, gfp, order));
        if reserve_low {
            self.kick();
        }
        match pfn {
            Some(pfn) => {
                self.stats.allocs.at(order).inc();
                if !crate::mutant::is(crate::mutant::Mutant::NoTracepoint) {
                    sys::trace::pages(self.kind.trace_id(), pfn.number(), order, gfp);
                }
            }
            None => self.stats.alloc_failures.inc(),
        }
        pfn
    }

    /// Zeroes a fresh decrypted allocation that must be zero: the host may have written
    /// it while it was free. Fails closed: pages that cannot be zeroed (not in the
    /// direct map, so in no state the allocator knows) are never handed out, nor freed;
    /// they stay allocated to nobody, counted as leaked.
    fn zero_decrypted(
        &self,
        pfn: Pfn,
        gfp: bindings::gfp_t,
        order: u32,
        scrub: bool,
    ) -> Option<Pfn> {
        if !matches!(self.kind, Kind::Decrypted(_)) || !scrub && gfp & bindings::__GFP_ZERO == 0 {
            return Some(pfn);
        }
        if self
            .range_of(pfn, order)
            .is_some_and(|r| mutant::is(Mutant::SkipPageZero) || r.zero_on_handout())
        {
            return Some(pfn);
        }
        pr_err_once!(
            "decrypted pfn {:#x} cannot be zeroed: leaked, not handed out\n",
            pfn.number()
        );
        // Recorded, so that the page state says leaked and a free naming the pages is
        // refused: the block stays in service, the chunk never comes back to it.
        self.record_leak(pfn, 1 << order);
        None
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
        let _ = self.free_inner(pfn, order, 0);
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
            // Under the lock unshare-all takes before it converts a block in use: an
            // allocation either comes before that or sees the flag.
            if self.shut_down.load(Relaxed) {
                return (None, false);
            }
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
        // Scrubbing waits for the maintenance lock, which a refill or a shrink holds
        // across block allocations and conversions: only with pages to scrub is the
        // wait worth it (never for decrypted memory, which is not scrubbed).
        if self.total_pages().dirty > 0 && self.scrub_pending() > 0 {
            if let (Some(pfn), _) = self.alloc_from_pools(nid, order, thisnode, dirty) {
                return Some(pfn);
            }
        }
        self.grow(nid, gfp, order)
    }

    /// Frees 2^`order` pages at `pfn` from [`Self::alloc`], untagged. Any context.
    pub(crate) fn free(
        self: &Arc<Self>,
        pfn: Pfn,
        order: u32,
    ) -> core::result::Result<(), BadFree> {
        self.free_tagged(pfn, order, 0)
    }

    /// Frees 2^`order` pages at `pfn` whose pages were tagged `tag` (see
    /// [`Self::set_tag`]). Any context.
    pub(crate) fn free_tagged(
        self: &Arc<Self>,
        pfn: Pfn,
        order: u32,
        tag: u16,
    ) -> core::result::Result<(), BadFree> {
        self.free_checked(pfn, order, tag, Quiet::Nothing)
    }

    /// [`Self::free`] for a user whose pages may still hold references it does not
    /// control, such as speculative page cache lookups: while they do, fails with
    /// [`BadFree::Referenced`], changing nothing and reporting nothing, to be tried
    /// again. Every other refusal is reported as by [`Self::free`].
    pub(crate) fn try_free(
        self: &Arc<Self>,
        pfn: Pfn,
        order: u32,
    ) -> core::result::Result<(), BadFree> {
        self.free_checked(pfn, order, 0, Quiet::Referenced)
    }

    /// [`Self::free`] for a user that does not know whether the pages are this
    /// allocator's: if they are not, fails with [`BadFree::NotOwned`], changing nothing
    /// and reporting nothing. Every other refusal is reported as by [`Self::free`].
    pub(crate) fn free_if_owned(
        self: &Arc<Self>,
        pfn: Pfn,
        order: u32,
    ) -> core::result::Result<(), BadFree> {
        self.free_checked(pfn, order, 0, Quiet::NotOwned)
    }

    fn free_checked(
        self: &Arc<Self>,
        pfn: Pfn,
        order: u32,
        tag: u16,
        quiet: Quiet,
    ) -> core::result::Result<(), BadFree> {
        let r = self.free_inner(pfn, order, tag);
        match r {
            Ok(maintenance) => {
                self.stats.frees.at(order).inc();
                sys::trace::free_pages(self.kind.trace_id(), pfn.number(), order);
                if maintenance {
                    self.kick();
                }
            }
            Err(BadFree::Referenced) if quiet == Quiet::Referenced => {}
            Err(BadFree::NotOwned) if quiet == Quiet::NotOwned => {}
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
        r.map(|_| ())
    }

    /// Frees a chunk: checks it, takes its references back and returns it to its block.
    /// `Ok(true)` if the free left work for the background: chunks to scrub, or a block
    /// entirely free that may be beyond the cache limit. A decrypted chunk freed in a
    /// block still in use leaves none, and waking a worker for it would cost more than
    /// the free itself (an IPI, a trap to the hypervisor in a confidential guest).
    fn free_inner(&self, pfn: Pfn, order: u32, tag: u16) -> core::result::Result<bool, BadFree> {
        if order > self.block_order {
            return Err(BadFree::BadOrder);
        }
        // Nothing is leaked almost always: the record's lock is not taken then.
        let leaked = self.stats.leaked_pages.get() != 0 && self.is_leaked(pfn);
        // Decrypted memory is the host's to write while free, so it is zeroed when
        // handed out (see `alloc`), not scrubbed when freed.
        let scrub = matches!(self.kind, Kind::Unmapped);
        // Found by address in our own pools: the page itself is not trusted.
        self.with_block(pfn, |b, off| {
            // A chunk leaked on its own, in a block still in service, was never handed
            // out. (The pages of a retired block are their users' to free.)
            if leaked && !b.retired() {
                return Err(BadFree::Leaked);
            }
            b.buddy.check_used(off, order).map_err(BadFree::Block)?;
            match b.buddy.tag(off) {
                Some(t)
                    if t != tag && !crate::mutant::is(crate::mutant::Mutant::WrongKindAccepted) =>
                {
                    return Err(BadFree::WrongKind { tag: t })
                }
                _ => {}
            }
            // The last reference comes back with the free; an extra one keeps the
            // chunk allocated, so it is never handed out twice.
            b.block
                .take_back(off, 1 << order)
                .map_err(|_| BadFree::Referenced)?;
            // Uncharge before the chunk can be scrubbed and handed to someone else.
            b.block.memcg_uncharge(off, order);
            sys::detectors::pages_returned(pfn, 1 << order);
            if scrub {
                b.buddy.free(off, order).map_err(BadFree::Block)?;
            } else {
                b.buddy.free_now(off, order).map_err(BadFree::Block)?;
            }
            Ok(scrub || b.releasable())
        })
        .unwrap_or(Err(BadFree::NotOwned))
    }

    /// The pages of a live allocation: the token for charging them, and for reading and
    /// writing them in tests.
    pub(crate) fn range_of(&self, pfn: Pfn, order: u32) -> Option<sys::PageRange> {
        self.peek_block(pfn, |b, off| {
            b.buddy.check_used(off, order).ok()?;
            Block::range(&b.block, off, 1 << order).ok()
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
            Block::range(&b.block, off, 1 << order)
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
        if self.is_leaked(pfn) {
            return Ownership::Leaked;
        }
        self.peek_block(pfn, |b, off| match b.buddy.chunk_state(off) {
            Some((_, PageState::Used(_))) if b.buddy.tag(off).is_some_and(|t| t != 0) => {
                Ownership::Objects
            }
            Some((_, PageState::Used(_))) => Ownership::Used,
            _ => Ownership::Free,
        })
        .unwrap_or(Ownership::NotOwned)
    }

    /// Whether `pfn` lies in pages recorded as leaked.
    fn is_leaked(&self, pfn: Pfn) -> bool {
        self.leaked
            .lock()
            .iter()
            .any(|&(first, n)| pfn.offset_from(first).is_some_and(|o| o < n))
    }

    /// Number of node ids the instance has pools for.
    pub(crate) fn nr_nodes(&self) -> i32 {
        self.nodes.len() as i32
    }

    /// The kind of memory served.
    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
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

    /// Every block the instance holds, node by node in address order: each node's list
    /// copied under its lock, in memory allocated before the lock is taken (so that the
    /// caller may sleep or allocate while it looks at them).
    pub(crate) fn blocks(&self) -> Result<KVec<BlockInfo>> {
        let mut out = KVec::new();
        for (nid, pool) in self.nodes.iter().enumerate() {
            loop {
                // Room for the list as it is now, and a few blocks taken meanwhile.
                let n = pool.lock().blocks.len();
                out.reserve(n + 4, GFP_KERNEL)?;
                let pool = pool.lock();
                if out.capacity() - out.len() < pool.blocks.len() {
                    continue;
                }
                for b in pool.blocks.iter() {
                    let buddy = &b.buddy;
                    let info = BlockInfo {
                        nid: nid as i32,
                        pfn: b.block.pfn(),
                        order: b.block.order(),
                        used: buddy.nr_pages() - buddy.nr_free() - buddy.nr_dirty(),
                        free: buddy.nr_free(),
                        dirty: buddy.nr_dirty(),
                        state: if b.leaked {
                            BlockState::Leaked
                        } else if b.converted_back {
                            BlockState::ConvertedBack
                        } else {
                            BlockState::InService
                        },
                    };
                    // Cannot fail: the room was checked under the lock.
                    out.push_within_capacity(info).map_err(|_| ENOMEM)?;
                }
                break;
            }
        }
        Ok(out)
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
}

/// What [`PageAllocator::blocks`] shows of a block.
pub(crate) struct BlockInfo {
    /// The node whose pool holds it.
    pub(crate) nid: i32,
    /// Its first frame.
    pub(crate) pfn: Pfn,
    /// It is 2^`order` pages.
    pub(crate) order: u32,
    /// Pages handed out.
    pub(crate) used: usize,
    /// Pages free and clean.
    pub(crate) free: usize,
    /// Pages freed and waiting to be scrubbed.
    pub(crate) dirty: usize,
    /// Whether it is still in service.
    pub(crate) state: BlockState,
}

/// The service state of a block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BlockState {
    /// Allocated from, released when free.
    InService,
    /// Its state became unknown while in use: never released.
    Leaked,
    /// Made private again in place while in use: never used or released again.
    ConvertedBack,
}

impl BlockState {
    /// The word the `blocks` file shows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::InService => "in_service",
            Self::Leaked => "leaked",
            Self::ConvertedBack => "converted_back",
        }
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
        self.drain();
        for pool in self.nodes.iter() {
            let mut pool = pool.lock();
            while let Some(ub) = pool
                .blocks
                .len()
                .checked_sub(1)
                .and_then(|i| pool.remove(i))
            {
                let ub = KBox::into_inner(ub);
                if ub.retired() {
                    // Counted when it was leaked, or private again and in use: dropping
                    // the reference keeps the pages.
                    drop(ub.block);
                } else {
                    self.leak(ub.block);
                }
            }
        }
    }
}
