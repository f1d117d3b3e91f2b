// SPDX-License-Identifier: GPL-2.0

//! The atomic reserve: free pages kept converted per node for callers that cannot
//! sleep, refilled by the background work between two watermarks, and the record of
//! recent refills shown in debugfs.

#![deny(unsafe_code)]

use super::PageAllocator;
use core::fmt;
use kernel::{
    bindings,
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

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
    pub(super) fn record(&mut self, e: RefillEvent) {
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

/// The largest reserve target, in pages per node: 64 MiB. A reserve is converted
/// memory kept free for atomic callers; more than this per node would be a setting
/// error that takes the node's memory away.
pub(crate) const MAX_RESERVE_PAGES: usize = (64 << 20) / kernel::page::PAGE_SIZE;

impl PageAllocator {
    /// Converts blocks until node `nid` has `high` free pages or no block can be had.
    /// Sleeps. Returns the number of blocks added.
    pub(crate) fn refill(&self, nid: i32, high: usize) -> usize {
        if crate::mutant::is(crate::mutant::Mutant::NoRefill) {
            return 0;
        }
        let before = self.pool_pages(nid).free;
        let mut added = 0;
        while self.pool_pages(nid).free < high {
            let in_flight = self.in_flight();
            let Some(ub) = self.new_block(nid, bindings::__GFP_THISNODE, 0) else {
                break;
            };
            let added_one = self.add_block(ub);
            drop(in_flight);
            if !added_one {
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
        if low > high || high > MAX_RESERVE_PAGES {
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
    pub(super) fn reserve_low_on(&self, nid: i32) -> bool {
        let low = self.reserve_low.load(Relaxed);
        low > 0 && self.pool_pages(nid).free < low
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
}
