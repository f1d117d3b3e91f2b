// SPDX-License-Identifier: GPL-2.0

//! Buddy allocation of pages inside one block.
//!
//! A block of 2^B pages is split into chunks of 2^k pages (k <= B) like the page
//! allocator does: a free chunk is found in the lowest order that has one and split
//! down; a freed chunk merges with its free buddy, recursively.
//!
//! Besides the free bitmaps (one per order), every page has a state byte which makes
//! the bookkeeping authoritative: only the first page of a chunk handed out carries
//! [`PageState::Used`] with the chunk's order, so a double free, a free with the wrong
//! order, or a free of an interior page is recognised and refused.
//!
//! Freed chunks do not become free at once: they are [`PageState::Dirty`] until
//! scrubbed (no data of a previous owner reaches a new one), then [`Buddy::scrubbed`]
//! merges them back.

#![deny(unsafe_code)]

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod tests;

use kernel::prelude::*;

/// State of the first page of a chunk; other pages are [`PageState::None`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PageState {
    /// Free, or inside a chunk whose first page carries the state.
    None,
    /// First page of a chunk of the given order handed out to a user.
    Used(u8),
    /// First page of a freed chunk of the given order waiting to be scrubbed.
    Dirty(u8),
    /// First page of a freed chunk of the given order being scrubbed now.
    Scrubbing(u8),
}

impl PageState {
    fn order(self) -> Option<u8> {
        match self {
            PageState::None => None,
            PageState::Used(k) | PageState::Dirty(k) | PageState::Scrubbing(k) => Some(k),
        }
    }
}

/// Whether a chunk may go from state `from` to state `to`.
///
/// The life of a chunk: free (`None`) -> `Used` (allocated) -> `Dirty` (freed) ->
/// `Scrubbing` -> free again; `Dirty` -> `Used` for users that opt out of scrubbing;
/// `Scrubbing` -> `Dirty` when a scrub could not be done. The order never changes
/// while a chunk is out of the free lists.
pub(crate) fn transition_allowed(from: PageState, to: PageState) -> bool {
    use PageState::*;
    if crate::mutant::is(crate::mutant::Mutant::AnyTransition) {
        return true;
    }
    let same_order = match (from.order(), to.order()) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    same_order
        && matches!(
            (from, to),
            (None, Used(_))
                | (Dirty(_), Used(_))
                | (Used(_), Dirty(_))
                | (Dirty(_), Scrubbing(_))
                | (Scrubbing(_), None)
                | (Scrubbing(_), Dirty(_))
        )
}

/// A state change that the state machine does not allow.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct IllegalTransition {
    /// The current state.
    pub(crate) from: PageState,
    /// The refused new state.
    pub(crate) to: PageState,
}

/// Why a free was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FreeError {
    /// The page is not the first page of a chunk in use (double free, interior page).
    NotAllocated,
    /// The chunk was allocated with another order.
    WrongOrder {
        /// Order the chunk was allocated with.
        allocated: u32,
    },
}

/// Buddy state of one block of 2^order pages.
pub(crate) struct Buddy {
    order: u32,
    /// Free bitmaps of all orders, concatenated: order k has 2^(order-k) bits.
    free: KVec<u64>,
    /// Per page state, see [`PageState`].
    state: KVec<PageState>,
    /// Per page tag set by the user of a chunk (the object caches record their id).
    tags: KVec<u16>,
    nr_free: usize,
    nr_dirty: usize,
    /// Free chunks of each order: bit k of [`Buddy::free_orders`] without a bitmap scan.
    free_chunks: [u16; MAX_ORDERS],
    /// Chunks of each order in state [`PageState::Dirty`].
    dirty_chunks: [u16; MAX_ORDERS],
}

/// Orders a block can have chunks of (a block is at most 2^15 pages).
const MAX_ORDERS: usize = 16;

fn bitmap_base(block_order: u32, k: u32) -> usize {
    // Orders 0..k take 2^B + 2^(B-1) + ... + 2^(B-k+1) bits = 2^(B+1) - 2^(B-k+1).
    (1usize << (block_order + 1)) - (1usize << (block_order + 1 - k))
}

impl Buddy {
    /// A block of 2^`order` pages, all free.
    pub(crate) fn new(order: u32, flags: kernel::alloc::Flags) -> Result<Self> {
        if order as usize >= MAX_ORDERS {
            return Err(EINVAL);
        }
        let pages = 1usize << order;
        let bits = bitmap_base(order, order + 1);
        let mut free = KVec::new();
        free.resize(bits.div_ceil(64), 0u64, flags)?;
        let mut state = KVec::new();
        state.resize(pages, PageState::None, flags)?;
        let mut tags = KVec::new();
        tags.resize(pages, 0u16, flags)?;
        let mut b = Self {
            order,
            free,
            state,
            tags,
            nr_free: pages,
            nr_dirty: 0,
            free_chunks: [0; MAX_ORDERS],
            dirty_chunks: [0; MAX_ORDERS],
        };
        b.set_free(order, 0, true);
        Ok(b)
    }

    /// Pages in the block.
    pub(crate) fn nr_pages(&self) -> usize {
        1 << self.order
    }

    /// Free (clean, allocatable) pages.
    pub(crate) fn nr_free(&self) -> usize {
        self.nr_free
    }

    /// Pages freed and not scrubbed yet.
    pub(crate) fn nr_dirty(&self) -> usize {
        self.nr_dirty
    }

    /// Whether the whole block is free and clean.
    pub(crate) fn is_empty(&self) -> bool {
        self.nr_free == self.nr_pages()
    }

    fn bit(&self, k: u32, i: usize) -> (usize, u64) {
        let n = bitmap_base(self.order, k) + i;
        (n / 64, 1u64 << (n % 64))
    }

    fn is_free(&self, k: u32, i: usize) -> bool {
        let (w, m) = self.bit(k, i);
        self.free[w] & m != 0
    }

    fn set_free(&mut self, k: u32, i: usize, free: bool) {
        let (w, m) = self.bit(k, i);
        let was = self.free[w] & m != 0;
        if free {
            self.free[w] |= m;
        } else {
            self.free[w] &= !m;
        }
        match (was, free) {
            (false, true) => self.free_chunks[k as usize] += 1,
            (true, false) => self.free_chunks[k as usize] -= 1,
            _ => {}
        }
    }

    /// Bit k set when the block has a free chunk of order exactly k.
    pub(crate) fn free_orders(&self) -> u32 {
        Self::mask(&self.free_chunks)
    }

    /// Bit k set when the block has a chunk of order k waiting to be scrubbed (and not
    /// claimed for scrubbing yet).
    pub(crate) fn dirty_orders(&self) -> u32 {
        Self::mask(&self.dirty_chunks)
    }

    fn mask(counts: &[u16; MAX_ORDERS]) -> u32 {
        counts
            .iter()
            .enumerate()
            .fold(0, |m, (k, &n)| m | (u32::from(n != 0) << k))
    }

    /// Index of the first free chunk of order `k`.
    fn find_free(&self, k: u32) -> Option<usize> {
        let base = bitmap_base(self.order, k);
        let n = 1usize << (self.order - k);
        let mut i = 0;
        while i < n {
            let bit = base + i;
            let word = self.free[bit / 64] >> (bit % 64);
            if word == 0 {
                // Skip the rest of this word.
                i += 64 - bit % 64;
                continue;
            }
            i += word.trailing_zeros() as usize;
            return (i < n).then_some(i);
        }
        None
    }

    /// Whether a chunk of order `k` can be allocated.
    pub(crate) fn can_alloc(&self, k: u32) -> bool {
        k <= self.order && self.free_orders() >> k != 0
    }

    /// Allocates a chunk of order `k` from the smallest free chunk that fits; returns
    /// the offset of its first page.
    pub(crate) fn alloc(&mut self, k: u32) -> Option<usize> {
        if !self.can_alloc(k) {
            return None;
        }
        let mut j = k + (self.free_orders() >> k).trailing_zeros();
        let mut i = self.find_free(j)?;
        self.set_free(j, i, false);
        // Split down to order k, freeing the upper halves.
        while j > k {
            j -= 1;
            i *= 2;
            self.set_free(j, i + 1, true);
            if j == k && crate::mutant::is(crate::mutant::Mutant::SplitOverlap) {
                self.set_free(j, i, true);
            }
        }
        let off = i << k;
        // Free chunk heads are `None`: allowed by construction.
        let _ = self.set_state(off, PageState::Used(k as u8));
        self.nr_free -= 1 << k;
        Some(off)
    }

    /// Takes a dirty chunk of exactly order `k` for a user that does not need it scrubbed.
    pub(crate) fn alloc_dirty(&mut self, k: u32) -> Option<usize> {
        if self.dirty_orders() & (1 << k) == 0 {
            return None;
        }
        let off = (0..self.nr_pages())
            .step_by(1 << k)
            .find(|&off| self.state[off] == PageState::Dirty(k as u8))?;
        self.set_state(off, PageState::Used(k as u8)).ok()?;
        self.nr_dirty -= 1 << k;
        Some(off)
    }

    /// Checks that `off` is the first page of a chunk in use of order `k`.
    pub(crate) fn check_used(&self, off: usize, k: u32) -> core::result::Result<(), FreeError> {
        match self.state.get(off) {
            Some(PageState::Used(o)) if u32::from(*o) == k => Ok(()),
            Some(PageState::Used(o)) => Err(FreeError::WrongOrder {
                allocated: u32::from(*o),
            }),
            _ => Err(FreeError::NotAllocated),
        }
    }

    /// The chunk in use that contains page `page`: its offset and order.
    pub(crate) fn used_chunk(&self, page: usize) -> Option<(usize, u32)> {
        match self.chunk_state(page)? {
            (off, PageState::Used(k)) => Some((off, u32::from(k))),
            _ => None,
        }
    }

    /// Tags every page of the chunk in use at `off` of order `k`.
    pub(crate) fn set_tag(&mut self, off: usize, k: u32, tag: u16) {
        if self.check_used(off, k).is_ok() {
            self.tags[off..off + (1 << k)].fill(tag);
        }
    }

    /// The tag of page `page` if it lies in a chunk in use.
    pub(crate) fn tag(&self, page: usize) -> Option<u16> {
        self.used_chunk(page).map(|_| self.tags[page])
    }

    /// Frees the chunk at `off` of order `k`: it becomes dirty, waiting to be scrubbed.
    pub(crate) fn free(&mut self, off: usize, k: u32) -> core::result::Result<(), FreeError> {
        let unchecked = crate::mutant::is(crate::mutant::Mutant::BuddyUncheckedFree);
        if !unchecked {
            self.check_used(off, k)?;
        }
        self.tags[off..off + (1 << k)].fill(0);
        if crate::mutant::is(crate::mutant::Mutant::FreeSkipsDirty) {
            // Used -> Scrubbing -> free: skips the dirty state and the scrub.
            self.state[off] = PageState::Scrubbing(k as u8);
            self.nr_dirty += 1 << k;
            self.scrubbed(off, k);
            return Ok(());
        }
        let r = self.set_state(off, PageState::Dirty(k as u8));
        if !unchecked {
            r.map_err(|_| FreeError::NotAllocated)?;
        }
        self.nr_dirty += 1 << k;
        Ok(())
    }

    /// Frees the chunk at `off` of order `k` straight back to the free lists, without
    /// the dirty state: for memory that is zeroed when handed out instead.
    pub(crate) fn free_now(&mut self, off: usize, k: u32) -> core::result::Result<(), FreeError> {
        self.free(off, k)?;
        // Used -> Dirty -> Scrubbing -> free: the legal path, taken at once.
        if self.set_state(off, PageState::Scrubbing(k as u8)).is_ok() {
            self.scrubbed(off, k);
        }
        Ok(())
    }

    /// Finds a dirty chunk and marks it as being scrubbed; returns its offset and order.
    pub(crate) fn claim_dirty(&mut self) -> Option<(usize, u32)> {
        if self.dirty_orders() == 0 {
            return None;
        }
        let (off, k) = self.state.iter().enumerate().find_map(|(off, s)| match s {
            PageState::Dirty(k) => Some((off, u32::from(*k))),
            _ => None,
        })?;
        self.set_state(off, PageState::Scrubbing(k as u8)).ok()?;
        Some((off, k))
    }

    /// Puts a scrubbed chunk (claimed by [`Buddy::claim_dirty`]) back, merging buddies.
    pub(crate) fn scrubbed(&mut self, off: usize, k: u32) {
        if self.state.get(off) != Some(&PageState::Scrubbing(k as u8))
            || self.set_state(off, PageState::None).is_err()
        {
            return;
        }
        self.nr_dirty -= 1 << k;
        self.nr_free += 1 << k;
        let (mut k, mut i) = (k, off >> k);
        let merge = !crate::mutant::is(crate::mutant::Mutant::BuddyNoMerge);
        while merge && k < self.order && self.is_free(k, i ^ 1) {
            self.set_free(k, i ^ 1, false);
            i >>= 1;
            k += 1;
        }
        self.set_free(k, i, true);
    }

    /// Returns a claimed chunk to the dirty state (its scrub could not be done).
    pub(crate) fn unclaim(&mut self, off: usize, k: u32) {
        if self.state.get(off) == Some(&PageState::Scrubbing(k as u8)) {
            let _ = self.set_state(off, PageState::Dirty(k as u8));
        }
    }

    /// Changes the state of the chunk whose first page is `off`, if the state machine
    /// allows it (see [`transition_allowed`]); otherwise nothing changes.
    pub(crate) fn set_state(
        &mut self,
        off: usize,
        to: PageState,
    ) -> core::result::Result<(), IllegalTransition> {
        let from = *self.state.get(off).ok_or(IllegalTransition {
            from: PageState::None,
            to,
        })?;
        let aligned = to.order().is_none_or(|k| off % (1usize << k) == 0);
        // A page inside another chunk that is not free has no state of its own.
        let inside_other = self.chunk_state(off).is_some_and(|(head, _)| head != off);
        if !aligned || inside_other || !transition_allowed(from, to) {
            return Err(IllegalTransition { from, to });
        }
        if let PageState::Dirty(k) = from {
            self.dirty_chunks[usize::from(k)] -= 1;
        }
        if let PageState::Dirty(k) = to {
            self.dirty_chunks[usize::from(k)] += 1;
        }
        self.state[off] = to;
        Ok(())
    }

    /// The chunk that is not free (used, dirty or being scrubbed) containing page
    /// `page`: its first page and state.
    pub(crate) fn chunk_state(&self, page: usize) -> Option<(usize, PageState)> {
        (0..=self.order).find_map(|k| {
            let off = page & !((1usize << k) - 1);
            let s = *self.state.get(off)?;
            (s.order() == Some(k as u8)).then_some((off, s))
        })
    }

    /// Number of free chunks of order `k`, counted in the bitmap; checks that the
    /// running counts agree with the bitmaps and the page states.
    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    pub(crate) fn count_free_chunks(&self, k: u32) -> Result<usize> {
        use crate::testutil::ensure_eq;
        let n = (0..1usize << (self.order - k))
            .filter(|&i| self.is_free(k, i))
            .count();
        ensure_eq!(n, usize::from(self.free_chunks[k as usize]));
        let dirty = self
            .state
            .iter()
            .filter(|&&s| s == PageState::Dirty(k as u8))
            .count();
        ensure_eq!(dirty, usize::from(self.dirty_chunks[k as usize]));
        Ok(n)
    }
}
