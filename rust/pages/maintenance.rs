// SPDX-License-Identifier: GPL-2.0

//! Maintenance: scrubbing freed chunks, returning free blocks (the cache limit, the
//! shrinker), the background work that does both and refills the reserve, and the
//! conversion of everything back before reboot.

#![deny(unsafe_code)]

use super::{Kind, PageAllocator};
use crate::{
    stats,
    sys::{self, Block},
};
use core::sync::atomic::{fence, Ordering::SeqCst};
use kernel::{
    prelude::*,
    sync::{atomic::Relaxed, MutexGuard},
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

/// How long [`PageAllocator::shut_down`] waits for conversions in flight, in ms.
pub(crate) const SHUT_DOWN_WAIT_MS: u32 = 10_000;

/// How many times unshare-all tries to convert a block back before it gives up.
pub(crate) const UNSHARE_TRIES: usize = 3;

impl PageAllocator {
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
                let scrubbed = if crate::mutant::is(crate::mutant::Mutant::ScrubNoZero) {
                    range.is_ok()
                } else {
                    range.and_then(|r| r.scrub()).is_ok()
                };
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

    /// Gives all free memory back to the page allocator: scrubs what is pending and
    /// releases every fully free block, the atomic reserve's too. Sleeps.
    pub(crate) fn drain(&self) {
        self.scrub_pending();
        self.shrink(0);
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

    pub(super) fn shrink_locked(
        &self,
        _maintenance: &MutexGuard<'_, ()>,
        keep: usize,
        floor: usize,
    ) -> usize {
        self.stats.shrink_calls.inc();
        if crate::mutant::is(crate::mutant::Mutant::NoShrink) {
            return 0;
        }
        let mut released = 0;
        for pool in self.nodes.iter() {
            loop {
                let victim = {
                    let mut pool = pool.lock();
                    // The last releasable block: allocations fill the first ones.
                    let last = pool.blocks.iter().rposition(|b| b.releasable());
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

    /// Stops the instance for good: nothing is handed out or converted again. Waits
    /// (up to [`SHUT_DOWN_WAIT_MS`]) for the blocks being taken and converted to be in
    /// a pool or given back. Sleeps. Returns whether none is left in flight.
    pub(crate) fn shut_down(&self) -> bool {
        self.shut_down.store(true, Relaxed);
        // Pairs with the barrier after the count in `in_flight()`: a conversion that
        // did not see the flag is counted below.
        fence(SeqCst);
        for _ in 0..SHUT_DOWN_WAIT_MS {
            if self.converting.load(SeqCst) == 0 {
                return true;
            }
            fsleep(Delta::from_millis(1));
        }
        pr_err!(
            "{}: {} block conversions still in flight after {} ms\n",
            self.kind.prefix(),
            self.converting.load(SeqCst),
            SHUT_DOWN_WAIT_MS
        );
        false
    }

    /// Whether [`Self::shut_down`] was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Relaxed)
    }

    /// Prepares for reboot or kexec: the next kernel must not find memory shared behind
    /// its back, nor free memory missing from its direct map.
    ///
    /// Shuts the instance down ([`Self::shut_down`]), returns every free block to the
    /// page allocator converted back, and converts the blocks still in use back to
    /// private in place (decrypted kind; unmapped blocks in use stay with their users),
    /// then the blocks leaked earlier because converting them back failed (see
    /// `restore_and_release()`). Each conversion is tried up to
    /// [`UNSHARE_TRIES`] times; no block is converted back twice. Sleeps. Returns the
    /// blocks converted back and the failures (those stay leaked).
    pub(crate) fn unshare_all(&self) -> (usize, usize) {
        // Blocks still being converted when the wait ended count as failures.
        let stuck = if self.shut_down() {
            0
        } else {
            self.converting.load(SeqCst)
        };
        self.scrub_pending();
        let released_before = self.stats.blocks_released.get();
        let failures_before = self.stats.conversion_failures.get();
        self.shrink_to(0, 0);
        let mut done = (self.stats.blocks_released.get() - released_before) as usize;
        let mut failed = (self.stats.conversion_failures.get() - failures_before) as usize + stuck;
        let Kind::Decrypted(backend) = &self.kind else {
            return (done, failed);
        };
        let back = |range: &sys::PageRange| {
            (0..UNSHARE_TRIES).any(|_| backend.encrypt(range).is_ok() && !backend.any_shared(range))
        };
        let _maintenance = self.maintenance.lock();
        for pool in self.nodes.iter() {
            let mut i = 0;
            loop {
                // One block at a time: the conversion sleeps, the pool lock does not.
                // A block already converted back, or leaked, is never converted again.
                let range = {
                    let pool = pool.lock();
                    match pool.blocks.get(i) {
                        Some(b) if b.retired() => None,
                        Some(b) => Block::whole(&b.block).ok(),
                        None => break,
                    }
                };
                i += 1;
                let Some(range) = range else { continue };
                if back(&range) {
                    self.count_reversion(range.nr_pages());
                    done += 1;
                    let mut p = pool.lock();
                    if let Some(i) = p.find(range.pfn()) {
                        p.touch(i, |b| b.converted_back = true);
                    }
                } else {
                    self.stats.conversion_failures.inc();
                    {
                        let mut p = pool.lock();
                        if let Some(i) = p.find(range.pfn()) {
                            p.touch(i, |b| b.leaked = true);
                        }
                    }
                    self.count_leak(range.pfn(), range.nr_pages());
                    failed += 1;
                }
            }
        }
        // Blocks leaked earlier because converting them back failed: made private if
        // they can be, but kept out of the page allocator all the same.
        let unknown = core::mem::take(&mut *self.unknown.lock());
        for block in unknown.iter() {
            match Block::whole(block) {
                Ok(range) if back(&range) => {
                    self.count_reversion(range.nr_pages());
                    done += 1;
                }
                _ => {
                    self.stats.conversion_failures.inc();
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

    /// Free pages that a shrink could return.
    pub(crate) fn reclaimable_pages(&self) -> usize {
        self.nodes
            .iter()
            .map(|p| {
                p.lock()
                    .blocks
                    .iter()
                    .filter(|b| b.releasable())
                    .map(|b| b.buddy.nr_pages())
                    .sum::<usize>()
            })
            .sum()
    }
}
