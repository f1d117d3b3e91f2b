// SPDX-License-Identifier: GPL-2.0

//! KUnit suite of the buddy allocator of a block.

#![deny(unsafe_code)]

#[kernel::macros::kunit_tests(unmapped_alloc_buddy)]
mod buddy {
    use crate::buddy::*;
    use crate::testutil::{ensure_eq, Rng};

    /// Frees and scrubs a chunk, as the allocator does.
    fn release(b: &mut Buddy, off: usize, k: u32) -> Result {
        ensure_eq!(b.free(off, k), Ok(()));
        ensure_eq!(b.claim_dirty(), Some((off, k)));
        b.scrubbed(off, k);
        Ok(())
    }

    #[test]
    fn exhaust_and_merge_shuffled() -> Result {
        let mut b = Buddy::new(9, GFP_KERNEL)?;
        let mut offs = KVec::new();
        while let Some(off) = b.alloc(0) {
            offs.push(off, GFP_KERNEL)?;
        }
        assert_eq!(offs.len(), 512);
        assert_eq!(b.nr_free(), 0);
        // Every page handed out exactly once.
        let mut seen = KVec::from_elem(false, 512, GFP_KERNEL)?;
        for &off in offs.iter() {
            assert!(!seen[off]);
            seen[off] = true;
        }
        Rng::new(42).shuffle(&mut offs);
        for &off in offs.iter() {
            release(&mut b, off, 0)?;
        }
        assert!(b.is_empty());
        assert_eq!(b.count_free_chunks(9)?, 1);
        for k in 0..9 {
            assert_eq!(b.count_free_chunks(k)?, 0);
        }
        Ok(())
    }

    #[test]
    fn every_order() -> Result {
        let mut b = Buddy::new(9, GFP_KERNEL)?;
        for k in 0..=9u32 {
            let off = b.alloc(k).ok_or(ENOMEM)?;
            assert_eq!(off % (1 << k), 0);
            assert_eq!(b.nr_free(), 512 - (1 << k));
            release(&mut b, off, k)?;
            assert!(b.is_empty());
        }
        assert_eq!(b.alloc(10), None);
        Ok(())
    }

    #[test]
    fn mixed_orders_never_overlap() -> Result {
        let mut b = Buddy::new(9, GFP_KERNEL)?;
        let mut rng = Rng::new(7);
        let mut owner = KVec::from_elem(false, 512, GFP_KERNEL)?;
        let mut live: KVec<(usize, u32)> = KVec::new();
        for _ in 0..2000 {
            if live.is_empty() || rng.below(3) != 0 {
                let k = rng.below(5);
                if let Some(off) = b.alloc(k) {
                    for p in off..off + (1 << k) {
                        assert!(!owner[p]);
                        owner[p] = true;
                    }
                    live.push((off, k), GFP_KERNEL)?;
                }
            } else {
                let (off, k) = live.remove(rng.below(live.len() as u32) as usize)?;
                for p in off..off + (1 << k) {
                    owner[p] = false;
                }
                release(&mut b, off, k)?;
            }
            // The running counts behind the O(1) checks agree with the bitmaps.
            for k in 0..=9 {
                let n = b.count_free_chunks(k)?;
                assert_eq!((b.free_orders() & (1 << k) != 0), (n > 0));
            }
        }
        while let Some((off, k)) = live.pop() {
            release(&mut b, off, k)?;
        }
        assert!(b.is_empty());
        assert_eq!(b.count_free_chunks(9)?, 1);
        Ok(())
    }

    #[test]
    fn bad_frees_refused() -> Result {
        let mut b = Buddy::new(9, GFP_KERNEL)?;
        let off = b.alloc(2).ok_or(ENOMEM)?;
        assert_eq!(b.free(off, 1), Err(FreeError::WrongOrder { allocated: 2 }));
        assert_eq!(b.free(off + 1, 0), Err(FreeError::NotAllocated));
        assert_eq!(b.free(off, 2), Ok(()));
        // Double free, before and after scrubbing.
        assert_eq!(b.free(off, 2), Err(FreeError::NotAllocated));
        assert_eq!(b.claim_dirty(), Some((off, 2)));
        assert_eq!(b.free(off, 2), Err(FreeError::NotAllocated));
        b.scrubbed(off, 2);
        assert_eq!(b.free(off, 2), Err(FreeError::NotAllocated));
        assert!(b.is_empty());
        Ok(())
    }

    #[test]
    fn illegal_transitions_refused() -> Result {
        use PageState::*;
        let mut b = Buddy::new(9, GFP_KERNEL)?;
        let off = b.alloc(3).ok_or(ENOMEM)?;
        // Straight back to free without scrubbing, another order, a misaligned head,
        // scrubbing a chunk in use: all refused, nothing changes.
        for (at, to) in [
            (off, None),
            (off, Dirty(2)),
            (off, Scrubbing(3)),
            (off + 1, Used(0)),
            (off + 8, Dirty(3)),
            (off + 4, Used(3)),
        ] {
            let from = b.state[at];
            assert_eq!(b.set_state(at, to), Err(IllegalTransition { from, to }));
            assert_eq!(b.state[at], from);
        }
        assert_eq!(b.chunk_state(off + 5), Some((off, Used(3))));
        // The legal path is accepted.
        assert_eq!(b.set_state(off, Dirty(3)), Ok(()));
        assert_eq!(b.set_state(off, Scrubbing(3)), Ok(()));
        assert_eq!(b.set_state(off, None), Ok(()));
        assert!(transition_allowed(None, Used(9)));
        assert!(!transition_allowed(Used(1), Used(1)));
        assert!(!transition_allowed(Dirty(1), None));
        Ok(())
    }

    #[test]
    fn free_now_merges_at_once() -> Result {
        let mut b = Buddy::new(9, GFP_KERNEL)?;
        let a = b.alloc(0).ok_or(ENOMEM)?;
        let c = b.alloc(3).ok_or(ENOMEM)?;
        assert_eq!(b.free_now(a, 0), Ok(()));
        assert_eq!(b.nr_dirty(), 0);
        assert_eq!(b.free_now(a, 0), Err(FreeError::NotAllocated));
        assert_eq!(
            b.free_now(c, 2),
            Err(FreeError::WrongOrder { allocated: 3 })
        );
        assert_eq!(b.free_now(c, 3), Ok(()));
        assert!(b.is_empty());
        assert_eq!(b.count_free_chunks(9)?, 1);
        Ok(())
    }

    #[test]
    fn dirty_chunks_not_allocatable_until_scrubbed() -> Result {
        let mut b = Buddy::new(1, GFP_KERNEL)?;
        let a0 = b.alloc(0).ok_or(ENOMEM)?;
        let a1 = b.alloc(0).ok_or(ENOMEM)?;
        assert_eq!(b.free(a0, 0), Ok(()));
        assert_eq!(b.alloc(0), None);
        assert_eq!(b.nr_dirty(), 1);
        // A user that initialises memory itself may take the dirty chunk.
        assert_eq!(b.alloc_dirty(0), Some(a0));
        assert_eq!(b.nr_dirty(), 0);
        release(&mut b, a0, 0)?;
        release(&mut b, a1, 0)?;
        assert!(b.is_empty());
        Ok(())
    }
}
