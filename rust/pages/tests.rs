// SPDX-License-Identifier: GPL-2.0

//! KUnit suites of the page allocator: unmapped pages, and decrypted pages with the
//! model backend.

#![deny(unsafe_code)]

#[kernel::macros::kunit_tests(unmapped_alloc_pages)]
mod unmapped {
    use crate::pages::*;
    use crate::sys::Block;
    use crate::{
        buddy::FreeError,
        testutil::{ensure_eq, run_concurrently, LiveRanges, Rng},
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
            kmemleak: false,
        })
    }

    fn alloc(a: &Arc<PageAllocator>, order: u32) -> Result<UnmappedPages> {
        UnmappedPages::new_in(a, NUMA_NO_NODE, K, order, true)
    }

    fn absent_from_direct_map(p: &UnmappedPages) -> bool {
        (0..p.nr_pages()).all(|i| !p.first().add(i).is_present())
    }

    /// Scrubs, shrinks to nothing, and checks that every block went back mapped.
    fn drain_and_check(a: &PageAllocator) -> Result {
        a.check_pools()?;
        a.scrub_pending();
        a.check_pools()?;
        a.shrink(0);
        ensure_eq!(a.total_pages(), PoolPages::default());
        ensure_eq!(a.stats.blocks_released.get(), a.stats.blocks_taken.get());
        ensure_eq!(a.stats.reversions.get(), a.stats.blocks_taken.get());
        // Release verifies that every page is present again before freeing it.
        ensure_eq!(a.stats.leaked_blocks.get(), 0);
        Ok(())
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
        // One unmap call over the whole block and one TLB flush per block, not per
        // page: counted by the sys layer where it calls C.
        let blocks = a.stats.blocks_taken.get();
        assert!(blocks <= 3);
        for (order, p) in live.iter().enumerate() {
            let r = a.range_of(p.first(), order as u32).ok_or(EINVAL)?;
            assert_eq!(
                r.block_calls(),
                sys::CallCounts {
                    direct_map: 1,
                    direct_map_pages: 1 << a.max_order(),
                    tlb_flushes: 1,
                }
            );
        }
        assert_eq!(a.stats.conversions.get(), blocks);
        assert_eq!(a.stats.tlb_flushes.get(), blocks);
        drop(live);
        for order in 0..=a.max_order() {
            assert_eq!(a.stats.allocs.at(order).get(), 1);
            assert_eq!(a.stats.frees.at(order).get(), 1);
        }
        drain_and_check(&a)?;
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
            kmemleak: false,
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
        drain_and_check(&b)?;
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
        drain_and_check(&a)?;
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
        drain_and_check(&a)?;
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
        a.check_pools()?;
        let again = get(0)?;
        assert_eq!(again.first(), hole);
        // Two pages only fit in the second block.
        let pair = get(1)?;
        assert_eq!(
            pair.first().number() >> a.max_order(),
            second.first().number() >> a.max_order()
        );
        a.check_pools()?;
        drop((first, second, buddy, again, pair));
        drain_and_check(&a)?;
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
        drain_and_check(&a)?;
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
        drain_and_check(&a)?;
        Ok(())
    }

    #[test]
    fn slow_path_with_nothing_to_scrub_skips_maintenance() -> Result {
        let a = private(0)?;
        // Maintenance elsewhere (a refill, a shrink) holds its lock: a slow path with
        // nothing to scrub grows without waiting for it. (Without the check, this
        // thread waits for the lock it holds: lockdep reports it and the test hangs.)
        let held = a.maintenance.lock();
        let p = alloc(&a, 0);
        drop(held);
        let p = p?;
        assert!(absent_from_direct_map(&p));
        assert_eq!(a.total_pages().blocks, 1);
        drop(p);
        drain_and_check(&a)?;
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
        drain_and_check(&a)?;
        Ok(())
    }

    #[test]
    fn injected_failures_undone_or_counted() -> Result {
        // The kernel's fault injection (fail_unmapped_alloc) is in the test config.
        if !cfg!(CONFIG_FAULT_INJECTION) {
            sys::kunit_skip();
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
        drain_and_check(&a)?;
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
        Block::release(foreign)?;
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
        drain_and_check(&a)?;
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
        drain_and_check(&a)?;
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
            kmemleak: false,
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
        drain_and_check(&a)?;
        Ok(())
    }

    #[test]
    fn handed_out_pages_hold_one_reference() -> Result {
        // The refused free below is reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let a = private(0)?;
        for order in 0..=3u32 {
            let pfn = a.alloc(NUMA_NO_NODE, K, order, true).ok_or(ENOMEM)?;
            // As alloc_pages() without __GFP_COMP gives: one on the first page only.
            assert_eq!(pfn.refs(), 1);
            assert!((1..1usize << order).all(|i| pfn.add(i).refs() == 0));
            // A consumer's get_page()/put_page() pair leaves the pages ours, unmapped.
            let range = a.range_of(pfn, order).ok_or(EINVAL)?;
            range.get_page();
            assert_eq!(pfn.refs(), 2);
            // Freed while referenced: refused, still allocated, never handed out again.
            let bad = a.stats.bad_frees.get();
            assert_eq!(a.free(pfn, order), Err(BadFree::Referenced));
            assert_eq!(a.stats.bad_frees.get(), bad + 1);
            assert_eq!(a.ownership(pfn), Ownership::Used);
            assert!(a.alloc(NUMA_NO_NODE, K, order, true).is_some_and(|p| {
                let fresh = p != pfn;
                let _ = a.free(p, order);
                fresh
            }));
            range.put_page()?;
            drop(range);
            assert_eq!(pfn.refs(), 1);
            assert!(!pfn.is_present());
            assert_eq!(a.ownership(pfn), Ownership::Used);
            assert_eq!(a.free(pfn, order), Ok(()));
            // The component's own again: no reference, as a free page has.
            assert_eq!(pfn.refs(), 0);
        }
        drain_and_check(&a)?;
        Ok(())
    }

    #[test]
    fn try_free_waits_for_other_references_quietly() -> Result {
        let a = private(0)?;
        let pfn = a.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        let range = a.range_of(pfn, 0).ok_or(EINVAL)?;
        // A page cache lookup's reference: refused without a report, nothing changed.
        range.get_page();
        let (bad, frees) = (a.stats.bad_frees.get(), a.stats.frees.at(0).get());
        assert_eq!(a.try_free(pfn, 0), Err(BadFree::Referenced));
        assert_eq!(a.stats.bad_frees.get(), bad);
        assert_eq!(a.stats.frees.at(0).get(), frees);
        assert_eq!(pfn.refs(), 2);
        assert_eq!(a.ownership(pfn), Ownership::Used);
        // Once it is dropped the same call frees, and the reference count is 0.
        range.put_page()?;
        drop(range);
        assert_eq!(a.try_free(pfn, 0), Ok(()));
        assert_eq!(a.stats.frees.at(0).get(), frees + 1);
        assert_eq!(pfn.refs(), 0);
        // Any other refusal is reported as by free(): here a double free.
        let _splats = crate::testutil::ExpectSplats::new();
        assert!(matches!(a.try_free(pfn, 0), Err(BadFree::Block(_))));
        assert_eq!(a.stats.bad_frees.get(), bad + 1);
        drain_and_check(&a)?;
        Ok(())
    }

    #[test]
    fn free_if_owned_leaves_foreign_pages_quietly() -> Result {
        let a = private(0)?;
        let pfn = a.alloc(NUMA_NO_NODE, K, 1, true).ok_or(ENOMEM)?;
        let bad = a.stats.bad_frees.get();
        // Pages from the page allocator: not ours, nothing reported or changed.
        let foreign = Block::alloc(NUMA_NO_NODE, K, 0).ok_or(ENOMEM)?;
        assert_eq!(a.free_if_owned(foreign.pfn(), 0), Err(BadFree::NotOwned));
        Block::release(foreign)?;
        assert_eq!(a.stats.bad_frees.get(), bad);
        assert_eq!(a.ownership(pfn), Ownership::Used);
        // Ours: freed as by free().
        assert_eq!(a.free_if_owned(pfn, 1), Ok(()));
        assert_eq!(a.ownership(pfn), Ownership::Free);
        // Any other refusal is reported as by free(): here a double free.
        let _splats = crate::testutil::ExpectSplats::new();
        assert!(matches!(a.free_if_owned(pfn, 1), Err(BadFree::Block(_))));
        assert_eq!(a.stats.bad_frees.get(), bad + 1);
        drain_and_check(&a)?;
        Ok(())
    }

    #[test]
    fn gfp_flags_honoured_or_refused() -> Result {
        let a = private(0)?;
        for flag in [
            bindings::__GFP_DMA,
            bindings::__GFP_DMA32,
            bindings::__GFP_COMP,
            bindings::__GFP_NOFAIL,
        ] {
            let refused = a.stats.bad_requests.get();
            assert!(a.alloc(NUMA_NO_NODE, K | flag, 0, true).is_none());
            assert_eq!(a.stats.bad_requests.get(), refused + 1);
        }
        assert_eq!(a.stats.blocks_taken.get(), 0);
        // Hints that cannot be wrong for lowmem, unmovable pages are accepted.
        for flag in [bindings::__GFP_HIGHMEM, bindings::__GFP_NOWARN] {
            let p = UnmappedPages::new_in(&a, NUMA_NO_NODE, K | flag, 0, true)?;
            assert!(!p.first().is_present());
        }
        drain_and_check(&a)?;
        Ok(())
    }
}

#[kernel::macros::kunit_tests(unmapped_alloc_decrypted_pages)]
mod decrypted {
    use crate::backend::ModelBackend;
    use crate::pages::*;
    use crate::sys::Block;
    use crate::testutil::ensure_eq;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use kernel::bindings::{GFP_ATOMIC, GFP_KERNEL as K};
    use kernel::time::{delay::fsleep, Delta};

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
            kmemleak: false,
        })
    }

    fn shared(model: &ModelBackend, pfn: Pfn, order: u32) -> bool {
        (0..1usize << order).all(|i| model.is_shared(pfn.add(i).number()))
    }

    /// Frees all, shrinks, and checks that every page went back private.
    fn drain_and_check(a: &PageAllocator, model: &ModelBackend) -> Result {
        a.check_pools()?;
        a.scrub_pending();
        a.shrink(0);
        ensure_eq!(a.total_pages(), PoolPages::default());
        let leaked = a.stats.leaked_pages.get() as usize;
        // Only leaked blocks may still be shared; everything released is private.
        ensure_eq!(model.shared_pages(), leaked);
        ensure_eq!(
            a.stats.blocks_released.get() + a.stats.leaked_blocks.get(),
            a.stats.blocks_taken.get()
        );
        Ok(())
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
        drain_and_check(&a, &model)?;
        assert_eq!(model.shared_pages(), 0);
        assert_eq!(a.stats.leaked_blocks.get(), 0);
        Ok(())
    }

    #[test]
    fn injected_conversion_failure_leaks_block() -> Result {
        if !cfg!(CONFIG_FAULT_INJECTION) {
            sys::kunit_skip();
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
            drain_and_check(&a, &model)?;
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
                Block::whole(&b)?.fill(0xa5)?;
                dirtied.push(b.pfn(), GFP_KERNEL)?;
                Block::release(b)?;
            }
            let model = ModelBackend::new()?;
            let a = private(&model, 0)?;
            let pfn = a.alloc(nid, K, 0, true).ok_or(ENOMEM)?;
            let base = Pfn::new(pfn.number() & !((1usize << sys::block_order()) - 1));
            assert_eq!(model.decrypt_calls.load(Relaxed), 1);
            assert_eq!(model.dirty_shares.load(Relaxed), 0);
            assert_eq!(a.free(pfn, 0), Ok(()));
            drain_and_check(&a, &model)?;
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
        drain_and_check(&a, &model)?;
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
        drain_and_check(&a, &model)?;
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
        drain_and_check(&a, &model)?;
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
        drain_and_check(&a, &model)?;
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
            kmemleak: false,
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
        let encrypts = model.encrypt_calls.load(Relaxed);
        assert_eq!(d.free(used, 9), Ok(()));
        assert_eq!(u.free(kept, 9), Ok(()));
        d.scrub_pending();
        u.scrub_pending();
        d.shrink(0);
        u.shrink(0);
        // The decrypted block converted back in place is never converted again: a
        // second encryption (a double PVALIDATE on SEV-SNP) would end the guest.
        assert_eq!(d.unshare_all(), (0, 0));
        assert_eq!(model.encrypt_calls.load(Relaxed), encrypts);
        assert_eq!(model.double_conversions.load(Relaxed), 0);
        assert_eq!(d.total_pages().held, 512);
        assert_eq!(d.stats.leaked_blocks.get(), 0);
        assert_eq!(u.total_pages().held, 0);
        assert_eq!(model.shared_pages(), 0);
        Ok(())
    }

    #[test]
    fn model_refuses_double_conversions() -> Result {
        let model = ModelBackend::new()?;
        let d = private(&model, 4)?;
        let pfn = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        let range = d.range_of(pfn, 9).ok_or(EINVAL)?;
        let backend = Backend::Model(model.clone());
        // Shared already: a second decrypt is refused, and so is encrypting twice.
        assert_eq!(backend.decrypt(&range), Err(EINVAL));
        assert_eq!(backend.encrypt(&range), Ok(()));
        assert_eq!(backend.encrypt(&range), Err(EINVAL));
        assert_eq!(model.double_conversions.load(Relaxed), 2);
        assert_eq!(backend.decrypt(&range), Ok(()));
        drop(range);
        assert_eq!(d.free(pfn, 9), Ok(()));
        drain_and_check(&d, &model)?;
        assert_eq!(model.double_conversions.load(Relaxed), 2);
        Ok(())
    }

    #[test]
    fn unshare_all_failure_is_leaked() -> Result {
        let model = ModelBackend::new()?;
        let d = private(&model, 4)?;
        let a = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        let b = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        // Every try of the first block fails.
        model.fail_calls(1, maintenance::UNSHARE_TRIES as u64);
        assert_eq!(d.unshare_all(), (1, 1));
        assert_eq!(model.shared_pages(), 512);
        let leaked = if model.is_shared(a.number()) { a } else { b };
        assert_eq!(d.ownership(leaked), Ownership::Leaked);
        assert_eq!(d.stats.leaked_blocks.get(), 1);
        assert_eq!(d.free(a, 9), Ok(()));
        assert_eq!(d.free(b, 9), Ok(()));
        // Both blocks are out of service for good, free or not: nothing for the
        // shrinker to count, as nothing a shrink would release.
        assert_eq!(d.reclaimable_pages(), 0);
        assert_eq!(d.shrink(0), 0);
        Ok(())
    }

    #[test]
    fn unshare_all_retries_and_takes_leaked_blocks_back() -> Result {
        let model = ModelBackend::new()?;
        let d = private(&model, 4)?;
        // A block leaked at run time: converting it back failed, its state is unknown
        // (shared, as far as the model knows).
        let gone = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        assert_eq!(d.free(gone, 9), Ok(()));
        d.scrub_pending();
        model.fail_nth(1);
        assert_eq!(d.shrink(0), 1);
        assert_eq!(d.stats.leaked_blocks.get(), 1);
        assert_eq!(model.shared_pages(), 512);
        // Two blocks in use; the first conversion back fails once.
        let a = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        let b = d.alloc(NUMA_NO_NODE, K, 9, true).ok_or(ENOMEM)?;
        assert_eq!(model.shared_pages(), 3 * 512);
        model.fail_nth(1);
        // All three private: the two in use (one at its second try) and the leaked one.
        assert_eq!(d.unshare_all(), (3, 0));
        assert_eq!(model.shared_pages(), 0);
        assert_eq!(model.double_conversions.load(Relaxed), 0);
        assert_eq!(d.stats.leaked_blocks.get(), 1);
        // The leaked block stays out of the page allocator; nothing is retried twice.
        assert_eq!(d.ownership(gone), Ownership::Leaked);
        let encrypts = model.encrypt_calls.load(Relaxed);
        assert_eq!(d.unshare_all(), (0, 0));
        assert_eq!(model.encrypt_calls.load(Relaxed), encrypts);
        assert_eq!(d.free(a, 9), Ok(()));
        assert_eq!(d.free(b, 9), Ok(()));
        Ok(())
    }

    /// What two CPUs see of a shut-down beside a block conversion.
    struct InFlightRace {
        d: Arc<PageAllocator>,
        model: Arc<ModelBackend>,
        /// The allocation of the first CPU succeeded.
        got: AtomicBool,
        /// Conversions in progress, and pages shared, when `unshare_all()` returned.
        busy_after: AtomicU64,
        shared_after: AtomicU64,
        /// Whether the second CPU saw the conversion start.
        saw_start: AtomicBool,
    }

    fn in_flight_race(s: &InFlightRace, cpu: u32) {
        if cpu == 0 {
            // A new block: its conversion takes the model's delay.
            if let Some(pfn) = s.d.alloc(NUMA_NO_NODE, K, 0, true) {
                s.got.store(true, SeqCst);
                let _ = s.d.free(pfn, 0);
            }
            return;
        }
        // Unshare-all while the block is being converted.
        for _ in 0..5000 {
            if s.model.entered.load(Relaxed) > 0 {
                s.saw_start.store(true, SeqCst);
                break;
            }
            fsleep(Delta::from_millis(1));
        }
        s.d.unshare_all();
        let (entered, finished) = (
            s.model.entered.load(Relaxed),
            s.model.finished.load(Relaxed),
        );
        s.busy_after.store(entered.wrapping_sub(finished), SeqCst);
        s.shared_after.store(s.model.shared_pages() as u64, SeqCst);
    }

    #[test]
    fn unshare_all_waits_for_conversions_in_flight() -> Result {
        let model = ModelBackend::new()?;
        // Long enough for the other CPU to see the conversion start and shut down
        // while it runs, even on a loaded TCG host.
        model.set_delay_ms(1000);
        let s = InFlightRace {
            d: private(&model, 4)?,
            model: model.clone(),
            got: AtomicBool::new(false),
            busy_after: AtomicU64::new(u64::MAX),
            shared_after: AtomicU64::new(u64::MAX),
            saw_start: AtomicBool::new(false),
        };
        let r = sys::testing::on_cpus(&s, 2, in_flight_race);
        if r == Err(ENODEV) {
            // One CPU: nothing runs at the same time.
            sys::kunit_skip();
            return Ok(());
        }
        r?;
        model.set_delay_ms(0);
        assert!(s.saw_start.load(SeqCst));
        // When unshare-all returned, the block taken meanwhile was given back,
        // converted back, and no conversion was still running.
        assert_eq!(s.busy_after.load(SeqCst), 0);
        assert_eq!(s.shared_after.load(SeqCst), 0);
        assert!(!s.got.load(SeqCst));
        assert_eq!(s.d.stats.blocks_taken.get(), 1);
        assert_eq!(s.d.stats.blocks_released.get(), 1);
        assert_eq!(s.d.total_pages().held, 0);
        assert_eq!(model.double_conversions.load(Relaxed), 0);
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
            kmemleak: false,
        })?;
        let dp = d.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        let up = u.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        assert_eq!(d.free(up, 0), Err(BadFree::NotOwned));
        assert_eq!(u.free(dp, 0), Err(BadFree::NotOwned));
        assert!(shared(&model, dp, 0));
        assert!(!up.is_present());
        assert_eq!(d.free(dp, 0), Ok(()));
        assert_eq!(u.free(up, 0), Ok(()));
        drain_and_check(&d, &model)?;
        u.scrub_pending();
        u.shrink(0);
        assert_eq!(u.stats.leaked_blocks.get(), 0);
        Ok(())
    }

    #[test]
    fn zeroing_failure_fails_closed() -> Result {
        if !cfg!(CONFIG_FAULT_INJECTION) {
            sys::kunit_skip();
            return Ok(());
        }
        let model = ModelBackend::new()?;
        let a = private(&model, 0)?;
        let warm = a.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        sys::fail_inject(bindings::UA_FAIL_HANDOUT, 1);
        let failed = a.alloc(NUMA_NO_NODE, K, 1, true);
        sys::fail_inject(0, 0);
        // Memory the host may have written is never handed out unzeroed.
        assert!(failed.is_none());
        assert_eq!(a.stats.leaked_pages.get(), 2);
        // Nor reused: the two pages stay allocated to nobody.
        assert_eq!(a.total_pages().used(), 3);
        // Their state says so, and a free naming them is refused.
        // Blocks are naturally aligned: the failed chunk is in the block of `warm`.
        let nr = 1usize << sys::block_order();
        let block = Pfn::new(warm.number() & !(nr - 1));
        let mut leaked = KVec::new();
        for p in (0..nr).map(|i| block.add(i)) {
            if a.ownership(p) == Ownership::Leaked {
                leaked.push(p, GFP_KERNEL)?;
            }
        }
        assert_eq!(leaked.len(), 2);
        assert_eq!(leaked[1], leaked[0].add(1));
        {
            // The refused free is reported with a stack.
            let _splats = crate::testutil::ExpectSplats::new();
            assert_eq!(a.free(leaked[0], 1), Err(BadFree::Leaked));
        }
        assert_eq!(a.ownership(leaked[0]), Ownership::Leaked);
        assert_eq!(a.total_pages().used(), 3);
        let next = a.alloc(NUMA_NO_NODE, K, 1, true).ok_or(ENOMEM)?;
        assert_eq!(a.total_pages().used(), 5);
        assert_eq!(a.free(next, 1), Ok(()));
        assert_eq!(a.free(warm, 0), Ok(()));
        a.shrink(0);
        // Its block stays, shared, never returned to the page allocator.
        assert_eq!(a.stats.blocks_released.get(), 0);
        assert_eq!(a.total_pages().used(), 2);
        Ok(())
    }
}
