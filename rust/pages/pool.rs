// SPDX-License-Identifier: GPL-2.0

//! The pool of a node: the blocks an instance holds there, sorted by address, with a
//! summary per block of the orders it can serve, and the node's page counts.

#![deny(unsafe_code)]

use crate::{
    buddy::Buddy,
    sorted::{self, Start},
    stats::MAX_ORDER,
    sys::{self, Block, Pfn},
};
use kernel::{prelude::*, sync::Arc};

/// A block taken from the page allocator and its buddy state.
pub(super) struct PoolBlock {
    pub(super) block: Arc<Block>,
    pub(super) buddy: Buddy,
    /// Its state became unknown while in use: it is never released.
    pub(super) leaked: bool,
    /// Unshare-all made it private again in place while in use: it is never converted,
    /// allocated from or released again (a second conversion of the same pages is
    /// fatal on some platforms: SEV-SNP terminates the guest on a double PVALIDATE).
    pub(super) converted_back: bool,
}

impl PoolBlock {
    /// Whether the block is out of service for good: leaked, or converted back in place.
    pub(super) fn retired(&self) -> bool {
        self.leaked || self.converted_back
    }

    /// Whether a shrink may give the block back to the page allocator: entirely free
    /// and still in service.
    pub(super) fn releasable(&self) -> bool {
        self.buddy.is_empty() && !self.retired()
    }
}

/// The blocks of one node, sorted by first frame, with running page counts and, for
/// every order, bitmaps over the blocks' positions. An allocation finds its block with
/// a find-first-bit (one word covers 64 blocks) instead of a walk over all blocks.
///
/// Every change to a block's buddy state goes through [`NodePool::touch`], which keeps
/// the counts and the bitmaps right.
pub(super) struct NodePool {
    pub(super) blocks: KVec<KBox<PoolBlock>>,
    /// Bit `i` of order `k` (word `k * words + i / 64`): `blocks[i]` has a free chunk
    /// of order exactly `k`. Never set for a leaked block.
    avail: KVec<u64>,
    /// The same for chunks of order `k` waiting to be scrubbed.
    dirty: KVec<u64>,
    /// Words per order in `avail` and `dirty`.
    words: usize,
    /// Running totals of the blocks' counts.
    pub(super) pages: PoolPages,
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
            releasable: b.releasable(),
            free_orders: if b.retired() {
                0
            } else {
                b.buddy.free_orders()
            },
            dirty_orders: b.buddy.dirty_orders(),
        }
    }
}

/// Orders the pool keeps bitmaps for (see [`MAX_ORDER`]).
const POOL_ORDERS: usize = MAX_ORDER + 1;

impl Start for KBox<PoolBlock> {
    fn start(&self) -> Pfn {
        self.block.pfn()
    }
}

impl NodePool {
    pub(super) fn new() -> Self {
        Self {
            blocks: KVec::new(),
            avail: KVec::new(),
            dirty: KVec::new(),
            words: 0,
            pages: PoolPages::default(),
        }
    }

    /// Index of the block containing `pfn`.
    pub(super) fn find(&self, pfn: Pfn) -> Option<usize> {
        let i = sorted::floor(&self.blocks, pfn)?;
        self.blocks[i].block.contains(pfn).then_some(i)
    }

    /// Runs `f` on block `i` and brings the counts and bitmaps up to date.
    pub(super) fn touch<R>(&mut self, i: usize, f: impl FnOnce(&mut PoolBlock) -> R) -> R {
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
    pub(super) fn alloc(&mut self, order: u32) -> Option<Pfn> {
        let i = (order as usize..POOL_ORDERS).find_map(|k| self.first(&self.avail, k as u32))?;
        let off = self.touch(i, |b| b.buddy.alloc(order))?;
        self.blocks[i].block.hand_out(off);
        Some(self.blocks[i].block.pfn().add(off))
    }

    /// Takes a chunk of exactly `order` that waits to be scrubbed.
    pub(super) fn alloc_dirty(&mut self, order: u32) -> Option<Pfn> {
        let i = self.first(&self.dirty, order)?;
        let off = self.touch(i, |b| b.buddy.alloc_dirty(order))?;
        self.blocks[i].block.hand_out(off);
        Some(self.blocks[i].block.pfn().add(off))
    }

    /// Claims a chunk waiting to be scrubbed: its block's first frame, the chunk's
    /// offset and order, and its pages.
    pub(super) fn claim_dirty(&mut self) -> Option<(Pfn, usize, u32, Result<sys::PageRange>)> {
        let i = (0..POOL_ORDERS).find_map(|k| self.first(&self.dirty, k as u32))?;
        let (off, k) = self.touch(i, |b| b.buddy.claim_dirty())?;
        let b = &self.blocks[i];
        Some((b.block.pfn(), off, k, Block::range(&b.block, off, 1 << k)))
    }

    /// Inserts a block, keeping the order. May only fail to grow the vectors.
    pub(super) fn insert(
        &mut self,
        b: KBox<PoolBlock>,
    ) -> core::result::Result<(), KBox<PoolBlock>> {
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
    pub(super) fn remove(&mut self, i: usize) -> Option<KBox<PoolBlock>> {
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
    pub(super) fn check(&self) -> Result {
        use crate::testutil::ensure_eq;
        ensure_eq!(self.recount(), self.pages);
        for (i, b) in self.blocks.iter().enumerate() {
            let s = Summary::of(b);
            for k in 0..POOL_ORDERS {
                let bit = |bits: &KVec<u64>| bits[k * self.words + i / 64] >> (i % 64) & 1 != 0;
                ensure_eq!(bit(&self.avail), (s.free_orders & (1 << k) != 0));
                ensure_eq!(bit(&self.dirty), (s.dirty_orders & (1 << k) != 0));
            }
        }
        Ok(())
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
