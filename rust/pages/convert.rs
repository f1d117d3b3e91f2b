// SPDX-License-Identifier: GPL-2.0

//! Conversion of blocks: taking a block from the page allocator and converting it
//! (out of the direct map, or shared with the host), converting it back and giving it
//! back, and leaking a block whose state is unknown.

#![deny(unsafe_code)]

use super::{Kind, PageAllocator, PoolBlock};
use crate::{
    buddy::Buddy,
    mutant::{self, Mutant},
    stats,
    sys::{self, Block, Pfn},
};
use core::sync::atomic::{fence, Ordering::SeqCst};
use kernel::{
    bindings, pr_err_once,
    prelude::*,
    sync::{
        atomic::{Acquire, Relaxed},
        Arc,
    },
    time::{Instant, Monotonic},
};

/// A block being taken and converted, from before [`PageAllocator::new_block`] looks
/// at the shut-down flag until the block is in a pool or given back: a shut-down
/// waits until there is none (see [`PageAllocator::shut_down`]).
pub(super) struct InFlight<'a>(&'a PageAllocator);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.converting.fetch_sub(1, SeqCst);
    }
}

impl PageAllocator {
    /// Counts a block conversion in flight until the guard is dropped. Take it before
    /// [`Self::new_block`] and drop it after [`Self::add_block`].
    pub(super) fn in_flight(&self) -> InFlight<'_> {
        self.converting.fetch_add(1, SeqCst);
        fence(SeqCst);
        InFlight(self)
    }

    /// Takes a new block of at least 2^`order` pages, converts it and sets up its
    /// metadata. Sleeps. The caller holds an [`InFlight`] guard.
    pub(super) fn new_block(
        &self,
        nid: i32,
        gfp: bindings::gfp_t,
        order: u32,
    ) -> Option<KBox<PoolBlock>> {
        // After the caller's count of conversions in flight (a full barrier): either
        // a shut-down sees the count and waits, or this sees its flag.
        if self.shut_down.load(Acquire) {
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
                self.free_block(block);
                return None;
            }
        };
        let converted = match &self.kind {
            Kind::Unmapped if mutant::is(Mutant::KeepMapped) => Ok(()),
            Kind::Unmapped => block.set_direct_map(0, block.nr_pages(), false),
            Kind::Decrypted(_) if mutant::is(Mutant::SkipDecrypt) => Ok(()),
            Kind::Decrypted(backend) => Block::whole(&block).and_then(|r| backend.decrypt(&r)),
        };
        sys::trace::block_convert(
            self.kind.trace_id(),
            block.pfn().number(),
            block.order(),
            converted.err().map_or(0, |e| e.to_errno()),
        );
        if converted.is_err() {
            self.stats.conversion_failures.inc();
            match &self.kind {
                // Nothing was unmapped, or it can be mapped back and checked.
                Kind::Unmapped => self.restore_and_release(block),
                Kind::Decrypted(_) if mutant::is(Mutant::ReleaseUnknown) => self.free_block(block),
                // The state of the pages is unknown: they must never be reused.
                Kind::Decrypted(_) => self.leak(block),
            }
            return None;
        }
        self.stats.conversions.inc();
        self.stats.converted_pages.add(block.nr_pages() as u64);
        match &self.kind {
            Kind::Unmapped => {
                if !mutant::is(Mutant::SkipFlush) {
                    block.flush_tlb();
                }
                self.stats.tlb_flushes.inc();
            }
            Kind::Decrypted(_) => {
                // Zero them again through the (now shared) direct mapping: where a
                // conversion scrambles the contents (AMD SEV), the guest's view of the
                // zeros the page allocator wrote is no longer zeros.
                if Block::whole(&block).and_then(|r| r.scrub()).is_err() {
                    self.restore_and_release(block);
                    return None;
                }
            }
        }
        stats::add_elapsed(&self.stats.grow_ns, start);
        // Every page of the new block is free.
        sys::detectors::pages_freed(block.pfn(), block.nr_pages());

        Some(KBox::write(
            slot,
            PoolBlock {
                block,
                buddy,
                leaked: false,
                converted_back: false,
            },
        ))
    }

    /// Puts a new block into the pool of its node; gives it back if that fails or the
    /// instance was shut down meanwhile.
    pub(super) fn add_block(&self, ub: KBox<PoolBlock>) -> bool {
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
    pub(super) fn grow(&self, nid: i32, gfp: bindings::gfp_t, order: u32) -> Option<Pfn> {
        let _in_flight = self.in_flight();
        let mut ub = self.new_block(nid, gfp, order)?;
        // A fresh block of at least `order` always has room.
        let Some(off) = ub.buddy.alloc(order) else {
            self.add_block(ub);
            return None;
        };
        let pfn = ub.block.pfn().add(off);
        self.add_block(ub).then_some(())?;
        // Its reference only once the block is in the pool: a block that could not be
        // added goes back with none.
        self.with_block(pfn, |b, off| b.block.hand_out(off))?;
        Some(pfn)
    }

    /// Converts a block back to normal memory and frees it to the page allocator. When
    /// its state cannot be restored and verified, the block is leaked and counted.
    pub(super) fn restore_and_release(&self, block: Arc<Block>) {
        let ok = match &self.kind {
            Kind::Unmapped => {
                block.set_direct_map(0, block.nr_pages(), true).is_ok()
                    && (0..block.nr_pages()).all(|i| block.pfn().add(i).is_present())
            }
            Kind::Decrypted(_) if mutant::is(Mutant::SkipReencrypt) => true,
            Kind::Decrypted(backend) => Block::whole(&block)
                .is_ok_and(|r| backend.encrypt(&r).is_ok() && !backend.any_shared(&r)),
        };
        sys::trace::block_release(
            self.kind.trace_id(),
            block.pfn().number(),
            block.order(),
            if ok { 0 } else { EIO.to_errno() },
        );
        if !ok {
            self.stats.conversion_failures.inc();
            if let Kind::Decrypted(_) = self.kind {
                // Shared before the failed call: unshare-all tries again. (A block
                // whose conversion to shared failed may be private still, and is not
                // retried: encrypting private memory twice is a double PVALIDATE on
                // SEV-SNP, which ends the guest.) Best effort: if the list cannot
                // grow, the block is only not retried.
                let _ = self.unknown.lock().push(block.clone(), GFP_ATOMIC);
            }
            self.leak(block);
            return;
        }
        self.count_reversion(block.nr_pages());
        self.free_block(block);
    }

    /// Gives a block whose state is restored back to the page allocator. Were its pages
    /// still named by a range (the bookkeeping never lets that happen), they stay with
    /// it: leaked and counted.
    fn free_block(&self, block: Arc<Block>) {
        let (pfn, nr) = (block.pfn(), block.nr_pages());
        match Block::release(block) {
            Ok(()) => self.stats.blocks_released.inc(),
            Err(_) => {
                pr_err_once!(
                    "{}: pfn {:#x} still in use when released\n",
                    self.kind.prefix(),
                    pfn.number()
                );
                self.count_leak(pfn, nr);
            }
        }
    }

    /// Keeps a block whose state is unknown away from the page allocator for good.
    pub(super) fn leak(&self, block: Arc<Block>) {
        pr_err_once!(
            "{}: state of pfn {:#x} unknown, block leaked\n",
            self.kind.prefix(),
            block.pfn().number()
        );
        self.count_leak(block.pfn(), block.nr_pages());
        // Dropping a block's reference never frees its pages.
        drop(block);
    }

    /// Counts a block of `nr` pages converted back (remapped or made private).
    pub(super) fn count_reversion(&self, nr: usize) {
        self.stats.reversions.inc();
        self.stats.reverted_pages.add(nr as u64);
    }

    /// Counts and records a leaked block.
    pub(super) fn count_leak(&self, pfn: Pfn, nr: usize) {
        self.stats.leaked_blocks.inc();
        self.record_leak(pfn, nr);
    }

    /// Counts and records `nr` leaked pages at `pfn`: their state reads leaked from
    /// then on.
    pub(super) fn record_leak(&self, pfn: Pfn, nr: usize) {
        self.stats.leaked_pages.add(nr as u64);
        // Best effort: the counter above stays right if the record cannot grow.
        let _ = self.leaked.lock().push((pfn, nr), GFP_ATOMIC);
    }
}
