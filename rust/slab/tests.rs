// SPDX-License-Identifier: GPL-2.0

//! KUnit suite of the decrypted object caches (with the model backend).

#![deny(unsafe_code)]

#[kernel::macros::kunit_tests(unmapped_alloc_decrypted_objects)]
mod objects {
    use crate::slab::*;
    use crate::{
        backend::{Backend, ModelBackend},
        pages::{BadFree, Config, Kind, Ownership},
        sys::new_irq_spinlock,
        testutil::{ensure_eq, run_concurrently, LiveRanges, Rng},
    };
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use kernel::{
        bindings::{GFP_ATOMIC, GFP_KERNEL as K, __GFP_ZERO},
        new_spinlock,
        sync::atomic::Relaxed,
        time::{delay::fsleep, Delta, Instant, Monotonic},
    };

    fn instance(
        model: &Arc<ModelBackend>,
        reserve: (usize, usize),
        background: bool,
    ) -> Result<KmallocDecrypted> {
        let pages = PageAllocator::new(Config {
            kind: Kind::Decrypted(Backend::Model(model.clone())),
            block_order: sys::block_order(),
            cache_blocks: 0,
            reserve,
            background,
            refused: None,
            kmemleak: false,
        })?;
        KmallocDecrypted::new(&pages)
    }

    fn all_shared(model: &ModelBackend, addr: usize, len: usize) -> bool {
        let first = Pfn::of_virt(addr).map_or(0, |p| p.number());
        let last = Pfn::of_virt(addr + len - 1).map_or(0, |p| p.number());
        first != 0 && (first..=last).all(|pfn| model.is_shared(pfn))
    }

    /// Frees nothing itself: shrinks and checks that all memory went back private.
    fn check_all_returned(k: &KmallocDecrypted, model: &ModelBackend) -> Result {
        k.pages().set_watermarks(0, 0).unwrap_or(());
        k.shrink();
        let p = k.pages();
        ensure_eq!(p.total_pages().held, 0);
        ensure_eq!(
            p.stats.blocks_released.get() + p.stats.leaked_blocks.get(),
            p.stats.blocks_taken.get()
        );
        ensure_eq!(model.shared_pages(), p.stats.leaked_pages.get() as usize);
        for c in k.caches() {
            ensure_eq!(c.usage(), (0, 0, 0));
        }
        Ok(())
    }

    #[test]
    fn closed_caches_refuse_then_nothing_stays_shared() -> Result {
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        // A CPU slab of kmalloc-decrypted-256 with objects left in its private set.
        let a = k.alloc(256, NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        let b = k.alloc(256, NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        assert!(k.pages().shut_down());
        k.close();
        // Neither a CPU's slab, nor the lists, nor a new slab or pages serve now.
        for size in [256usize, 512, 8192, 65536] {
            assert!(k.alloc(size, NUMA_NO_NODE, K).is_none());
        }
        // Frees still work, and a freed object is not handed out again.
        assert_eq!(k.free(b), Ok(()));
        assert!(k.alloc(256, NUMA_NO_NODE, K).is_none());
        // The block under the live object goes private in place, once.
        assert_eq!(k.pages().unshare_all(), (1, 0));
        assert_eq!(model.shared_pages(), 0);
        assert_eq!(k.free(a), Ok(()));
        k.shrink();
        assert_eq!(model.double_conversions.load(Relaxed), 0);
        assert_eq!(model.shared_pages(), 0);
        Ok(())
    }

    #[test]
    fn closed_dedicated_cache_refuses_with_objects_freed_here() -> Result {
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        let c = ObjCache::new(b"closed-test", 768, 256, TAG_FIRST_CACHE + 100, k.pages())?;
        // Freed on this CPU: back in its slab's private set, the fast path's.
        let kept = c.alloc(NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        let freed = c.alloc(NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        assert_eq!(c.free(freed), Ok(()));
        assert!(k.pages().shut_down());
        c.close();
        assert!(c.alloc(NUMA_NO_NODE, K).is_none());
        assert!(c.alloc(NUMA_NO_NODE, K | __GFP_ZERO).is_none());
        assert_eq!(c.free(kept), Ok(()));
        assert!(c.alloc(NUMA_NO_NODE, K).is_none());
        assert_eq!(k.pages().unshare_all(), (1, 0));
        assert_eq!(model.shared_pages(), 0);
        c.shrink();
        assert_eq!(model.double_conversions.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn classes_aligned_sized_and_shared() -> Result {
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        let sizes = [
            1usize, 100, 256, 257, 512, 1000, 1024, 1500, 2048, 3000, 4096, 8192,
        ];
        let mut live = KVec::new();
        for &size in sizes.iter() {
            let addr = k.alloc(size, NUMA_NO_NODE, K | __GFP_ZERO).ok_or(ENOMEM)?;
            let class = size.next_power_of_two().max(MIN_SIZE);
            assert_eq!(k.usable_size(addr), Some(class));
            assert_eq!(addr % class.min(PAGE_SIZE), 0);
            assert_eq!(addr % MIN_SIZE, 0);
            assert!(all_shared(&model, addr, class));
            live.push(addr, GFP_KERNEL)?;
        }
        // Page-sized requests are decrypted pages.
        for &size in [8193usize, 16384, 65536].iter() {
            let addr = k.alloc(size, NUMA_NO_NODE, K).ok_or(ENOMEM)?;
            let usable = k.usable_size(addr).ok_or(EINVAL)?;
            assert_eq!(usable, size.next_power_of_two());
            assert_eq!(addr % PAGE_SIZE, 0);
            assert!(all_shared(&model, addr, usable));
            live.push(addr, GFP_KERNEL)?;
        }
        assert_eq!(k.large_allocs.get(), 3);
        for &addr in live.iter() {
            assert_eq!(k.free(addr), Ok(()));
        }
        check_all_returned(&k, &model)?;
        Ok(())
    }

    /// An instance whose smallest cache has a free slab on its node's list, for the
    /// atomic allocations of a test (which never take a new slab).
    fn warm_instance(model: &Arc<ModelBackend>) -> Result<KmallocDecrypted> {
        let k = instance(model, (0, 0), false)?;
        let c = &k.caches()[0];
        let warm = c.alloc(NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        ensure_eq!(c.free(warm), Ok(()));
        Ok(k)
    }

    #[test]
    fn cpu_slab_serves_and_refuses_without_the_lists() -> Result {
        // Refused frees below are reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let model = ModelBackend::new()?;
        let k = warm_instance(&model)?;
        let c = &k.caches()[0];
        // Preemption off: all on one CPU, which takes the slab as its current one.
        let (a, b, before, after, frees) = sys::on_this_cpu(|_| {
            let a = c.alloc(NUMA_NO_NODE, GFP_ATOMIC)?;
            let before = (c.stats.slow_allocs.get(), c.stats.slow_frees.get());
            let b = c.alloc(NUMA_NO_NODE, GFP_ATOMIC)?;
            let frees = [c.free(b), c.free(b), c.free(a + 128), c.free(a)];
            let after = (c.stats.slow_allocs.get(), c.stats.slow_frees.get());
            Some((a, b, before, after, frees))
        })
        .ok_or(ENOMEM)?;
        assert_eq!(b, a + 256);
        // Neither the list nor the page allocator was asked.
        assert_eq!(before, after);
        assert_eq!(
            frees,
            [
                Ok(()),
                Err(BadObjFree::DoubleFree),
                Err(BadObjFree::Interior),
                Ok(())
            ]
        );
        assert_eq!(c.stats.bad_frees.get(), 2);
        assert_eq!((c.allocs(), c.frees()), (3, 3));
        // Empty but some CPU's current slab: kept until shrink takes it from the CPU.
        assert_eq!(c.usage(), (0, 64, 1));
        assert_eq!(c.shrink(), 1);
        check_all_returned(&k, &model)?;
        Ok(())
    }

    #[test]
    fn private_set_refuses_double_frees_from_elsewhere() -> Result {
        // The refused frees below are reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let model = ModelBackend::new()?;
        let k = warm_instance(&model)?;
        let c = &k.caches()[0];
        let (a, b, frees, live) = sys::on_this_cpu(|_| {
            let a = c.alloc(NUMA_NO_NODE, GFP_ATOMIC)?;
            let b = c.alloc(NUMA_NO_NODE, GFP_ATOMIC)?;
            let (head, _, _) = c.pages.chunk_of(Pfn::of_virt(a)?)?;
            // `a` goes to this CPU's private set. The slow path, as on another CPU,
            // finds it there; `b` is still live.
            let frees = [c.free(a), c.free_in_slab(a, head)];
            let live = [c.is_live_in_slab(a, head), c.is_live_in_slab(b, head)];
            Some((a, b, frees, live))
        })
        .ok_or(ENOMEM)?;
        assert_eq!(frees, [Ok(()), Err(BadObjFree::DoubleFree)]);
        assert_eq!(live, [false, true]);
        assert_eq!(c.usage().0, 1);
        // Two frees at the same moment, neither seeing the other: `b` in the private
        // set and in the slab's `free`. The slab leaving the CPU finds and reports it,
        // and the object is free once.
        let (head, _, _) = c
            .pages
            .chunk_of(Pfn::of_virt(b).ok_or(EINVAL)?)
            .ok_or(EINVAL)?;
        let bad0 = c.stats.bad_frees.get();
        let freed = sys::on_this_cpu(|_| {
            let r = c.free(b);
            let node = c.node(head.nid())?.lock();
            let slab = &node.slabs[node.find(head, c.slab_pages())?];
            let i = c.index(b - slab.bytes.addr()).ok()?;
            slab.free
                .fetch_or(1u64 << i, core::sync::atomic::Ordering::Relaxed);
            Some(r)
        })
        .ok_or(EINVAL)?;
        assert_eq!(freed, Ok(()));
        c.drain_cpus();
        assert_eq!(c.stats.bad_frees.get(), bad0 + 1);
        assert_eq!(c.usage(), (0, 64, 1));
        assert!(a != b);
        assert_eq!(c.shrink(), 1);
        check_all_returned(&k, &model)?;
        Ok(())
    }

    #[test]
    fn remote_slab_frees_without_the_lists() -> Result {
        // The refused frees below are reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        let c = &k.caches()[0];
        // A full slab and a second one, then no CPU has either as its current slab:
        // their objects are what another CPU frees after a completion.
        let mut objs = KVec::new();
        for _ in 0..c.objs_per_slab + 2 {
            objs.push(c.alloc(NUMA_NO_NODE, K).ok_or(ENOMEM)?, GFP_KERNEL)?;
        }
        c.drain_cpus();
        // Three objects of one slab (slabs are aligned to their size).
        objs.sort_unstable();
        let slab_of = |a: usize| a & !(c.slab_bytes - 1);
        let i = (0..objs.len() - 2)
            .find(|&i| slab_of(objs[i]) == slab_of(objs[i + 2]))
            .ok_or(EINVAL)?;
        let [a, b, d] = [objs[i], objs[i + 1], objs[i + 2]];
        let (slow, frees) = sys::on_this_cpu(|_| {
            let slow0 = c.stats.slow_frees.get();
            // The first goes through the lists and pins the slab as the remote one; the
            // rest of the run, and the bad frees, are decided on that slab alone.
            let frees = [c.free(a), c.free(b), c.free(b), c.free(d + 128), c.free(d)];
            (c.stats.slow_frees.get() - slow0, frees)
        });
        assert_eq!(slow, 1);
        assert_eq!(
            frees,
            [
                Ok(()),
                Ok(()),
                Err(BadObjFree::DoubleFree),
                Err(BadObjFree::Interior),
                Ok(())
            ]
        );
        assert_eq!(c.stats.bad_frees.get(), 2);
        c.check_nodes()?;
        for &o in objs.iter().filter(|&&o| o != a && o != b && o != d) {
            assert_eq!(c.free(o), Ok(()));
        }
        c.check_nodes()?;
        assert_eq!(c.frees(), c.allocs());
        // The remote pin keeps the slab until shrink takes it from the CPU.
        assert_eq!(c.usage().0, 0);
        assert!(c.shrink() >= 1);
        check_all_returned(&k, &model)?;
        Ok(())
    }

    #[test]
    fn zeroed_objects() -> Result {
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        let c = &k.caches()[1];
        // Dirty an object, free it, get it back zeroed.
        let a = c.alloc(NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        let (head, order, _) = k
            .pages()
            .chunk_of(Pfn::of_virt(a).ok_or(EINVAL)?)
            .ok_or(EINVAL)?;
        let obj = k
            .pages()
            .mapped(head, order, a - head.virt(), c.size())
            .ok_or(EFAULT)?;
        obj.write(7, 0xee)?;
        assert_eq!(c.free(a), Ok(()));
        let b = c.alloc(NUMA_NO_NODE, K | __GFP_ZERO).ok_or(ENOMEM)?;
        assert_eq!(b, a);
        assert_eq!(obj.read(7), Some(0));
        assert_eq!(c.free(b), Ok(()));
        // The view keeps its block: drop it, or the block could not go back.
        drop(obj);
        check_all_returned(&k, &model)?;
        Ok(())
    }

    #[test]
    fn conversions_bounded_by_blocks() -> Result {
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        let mut rng = Rng::new(2024);
        let mut live = KVec::with_capacity(4000, GFP_KERNEL)?;
        for _ in 0..4000 {
            let size = 256 + rng.below(8192 - 256 + 1) as usize;
            live.push(k.alloc(size, NUMA_NO_NODE, K).ok_or(ENOMEM)?, GFP_KERNEL)?;
        }
        let p = k.pages();
        let held = p.total_pages().held;
        let calls = model.decrypt_calls.load(Relaxed);
        // One conversion per 2 MiB block, and only as many blocks as the slabs need.
        assert_eq!(calls, p.stats.blocks_taken.get());
        assert_eq!(p.stats.fallback_blocks.get(), 0);
        assert_eq!(held as u64, calls * 512);
        assert!(calls as usize <= p.total_pages().used().div_ceil(512) + 2);
        rng.shuffle(&mut live);
        for &addr in live.iter() {
            assert_eq!(k.free(addr), Ok(()));
        }
        check_all_returned(&k, &model)?;
        assert_eq!(model.encrypt_calls.load(Relaxed), calls);
        Ok(())
    }

    #[test]
    fn failed_conversions_leak_and_fail_cleanly() -> Result {
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        model.fail_nth(1);
        assert_eq!(k.alloc(300, NUMA_NO_NODE, K), None);
        assert_eq!(k.pages().stats.leaked_blocks.get(), 1);
        assert_eq!(k.caches()[1].stats.failures.get(), 1);
        let a = k.alloc(300, NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        assert!(all_shared(&model, a, 512));
        assert_eq!(k.free(a), Ok(()));
        // The re-encryption at shrink time fails too: leaked, never released.
        model.fail_nth(1);
        k.shrink();
        assert_eq!(k.pages().stats.leaked_blocks.get(), 2);
        assert_eq!(k.pages().stats.blocks_released.get(), 0);
        check_all_returned(&k, &model)?;
        assert_eq!(model.shared_pages(), 1024);
        Ok(())
    }

    #[test]
    fn atomic_from_reserve_then_refilled() -> Result {
        let model = ModelBackend::new()?;
        let (low, high) = (256, 512);
        let k = instance(&model, (low, high), true)?;
        let nid = sys::local_node();
        k.pages().refill(nid, high);
        let calls = model.decrypt_calls.load(Relaxed);
        assert!(k.pages().pool_pages(nid).free >= high);

        let spin = KBox::pin_init(new_spinlock!(()), GFP_KERNEL)?;
        let irq = KBox::pin_init(new_irq_spinlock!((), c"ua_test_irq_lock"), GFP_KERNEL)?;
        let mut objs = KVec::with_capacity(64, GFP_KERNEL)?;
        let mut pages = KVec::with_capacity(320, GFP_KERNEL)?;
        {
            let _spin = spin.lock();
            let _irqs_off = irq.lock();
            // Bounce buffers of a virtio-like device.
            for _ in 0..64 {
                let a = k.alloc(1536, nid, GFP_ATOMIC).ok_or(ENOMEM)?;
                objs.push_within_capacity(a).map_err(|_| ENOMEM)?;
            }
            // Drain the reserve below its low watermark.
            while k.pages().pool_pages(nid).free >= low {
                let pfn = k.pages().alloc(nid, GFP_ATOMIC, 0, true).ok_or(ENOMEM)?;
                pages.push_within_capacity(pfn).map_err(|_| ENOMEM)?;
            }
        }
        // The background refill may already run on another CPU; the atomic
        // allocations themselves never converted anything.
        assert_eq!(model.atomic_calls.load(Relaxed), 0);
        for c in k.caches() {
            assert_eq!(c.stats.atomic_failures.get(), 0);
        }
        // The background work brings the reserve back to the high watermark.
        let mut waited = 0;
        while k.pages().pool_pages(nid).free < high && waited < 500 {
            fsleep(Delta::from_millis(10));
            waited += 1;
        }
        assert!(k.pages().pool_pages(nid).free >= high);
        assert!(model.decrypt_calls.load(Relaxed) > calls);
        assert!(k.pages().stats.refills.get() >= 1);
        for &a in objs.iter() {
            assert_eq!(k.free(a), Ok(()));
        }
        for &pfn in pages.iter() {
            assert_eq!(k.pages().free(pfn, 0), Ok(()));
        }
        check_all_returned(&k, &model)?;
        Ok(())
    }

    #[test]
    fn bad_frees_detected_without_change() -> Result {
        // Refused frees below are reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        let a = k.alloc(512, NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        let big = k.alloc(16384, NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        let other = KBox::new([0u8; 512], GFP_KERNEL)?;
        let other_addr = core::ptr::from_ref::<[u8; 512]>(&*other) as usize;
        assert_eq!(k.free(other_addr), Err(BadObjFree::NotOurs));
        assert_eq!(k.free(a + 256), Err(BadObjFree::Interior));
        assert_eq!(k.free(big + PAGE_SIZE), Err(BadObjFree::Interior));
        assert_eq!(k.free(0x10), Err(BadObjFree::NotOurs));
        assert_eq!(k.caches()[1].usage().0, 1);
        // ksize_decrypted()'s contract: the size of a live object, 0 for anything else.
        assert_eq!(k.usable_size(a), Some(512));
        assert_eq!(k.usable_size(a + 256), None);
        assert_eq!(k.usable_size(big + PAGE_SIZE), None);
        assert_eq!(k.usable_size(other_addr), None);
        assert_eq!(k.free(a), Ok(()));
        assert_eq!(k.usable_size(a), None);
        assert_eq!(k.free(a), Err(BadObjFree::DoubleFree));
        assert_eq!(k.free(big), Ok(()));
        assert_eq!(k.usable_size(big), None);
        assert_eq!(k.free(big), Err(BadObjFree::NotOurs));
        assert_eq!(k.bad_frees.get(), 6);
        // A dedicated cache refuses objects of another cache.
        let itt = ObjCache::new(b"its-itt", 768, 256, 100, k.pages())?;
        assert_eq!(itt.size(), 1024);
        let o = itt.alloc(NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        assert_eq!(o % 1024, 0);
        let x = k.alloc(1000, NUMA_NO_NODE, K).ok_or(ENOMEM)?;
        assert_eq!(itt.free(x), Err(BadObjFree::NotOurs));
        assert_eq!(k.free(o), Err(BadObjFree::NotOurs));
        assert_eq!(itt.free(o), Ok(()));
        assert_eq!(k.free(x), Ok(()));
        itt.shrink();
        check_all_returned(&k, &model)?;
        Ok(())
    }

    /// Shared state of the concurrency test.
    struct Stress {
        k: KmallocDecrypted,
        live: Arc<LiveRanges>,
    }

    /// One worker: mixed sizes allocated and freed, every object recorded.
    fn stress(s: &Stress, seed: u64) {
        let mut rng = Rng::new(seed * 7);
        let mut mine: KVec<usize> = KVec::new();
        for _ in 0..600 {
            if mine.len() < 32 && (mine.is_empty() || rng.below(2) == 0) {
                let size = KMALLOC_SIZES[rng.below(6) as usize] - rng.below(200) as usize;
                let Some(a) = s.k.alloc(size, NUMA_NO_NODE, K) else {
                    s.live.fail();
                    continue;
                };
                s.live.insert(a, a + size);
                if mine.push(a, GFP_KERNEL).is_err() {
                    s.live.fail();
                }
            } else if let Ok(a) = mine.remove(rng.below(mine.len() as u32) as usize) {
                s.live.remove(a);
                if s.k.free(a).is_err() {
                    s.live.fail();
                }
            }
        }
        for a in mine.drain_all() {
            s.live.remove(a);
            if s.k.free(a).is_err() {
                s.live.fail();
            }
        }
    }

    /// Objects of a round of [`double_frees_from_cpus_and_irqs_free_once`], half of them
    /// allocated on each CPU.
    const DF_OBJS: usize = 128;
    /// Objects each CPU allocates after the frees: its half and more, so that it
    /// empties its private set and takes its slab's `free` too.
    const DF_AGAIN: usize = DF_OBJS / 2 + 64;

    /// Shared state of the double-free test: thread 0 and thread 1 on two CPUs, and a
    /// timer interrupt on thread 1's CPU.
    struct DoubleFrees {
        k: KmallocDecrypted,
        /// The round's objects, each freed three times at once.
        objs: KVec<AtomicUsize>,
        /// What each thread allocated after the frees (thread `i` from `i * DF_AGAIN`).
        again: KVec<AtomicUsize>,
        /// Lock step: thread 0 has let go of object `go - 1`, thread 1 has freed `done`
        /// objects.
        go: AtomicUsize,
        done: AtomicUsize,
        /// Arrivals at the barriers between the phases of a round.
        arrived: AtomicUsize,
        failures: AtomicUsize,
        seed: AtomicUsize,
        /// Set when a wait timed out: every wait of the round then gives up at once.
        aborted: AtomicBool,
    }

    /// How long a thread of a two-CPU test waits for the other (or its timer) before
    /// the test fails: a lost wake-up, say from a broken free, must fail the test, not
    /// hang the kernel.
    const WAIT_SECS: i64 = 10;

    /// Spins until `cond` holds. False if it did not within [`WAIT_SECS`] (then sets
    /// `aborted` and counts a failure) or once the other thread set `aborted`.
    fn wait_for(aborted: &AtomicBool, failures: &AtomicUsize, cond: impl Fn() -> bool) -> bool {
        let start = Instant::<Monotonic>::now();
        while !cond() {
            if aborted.load(SeqCst) {
                return false;
            }
            if start.elapsed() > Delta::from_secs(WAIT_SECS) {
                aborted.store(true, SeqCst);
                failures.fetch_add(1, SeqCst);
                return false;
            }
            kernel::processor::cpu_relax();
        }
        true
    }

    impl DoubleFrees {
        fn wait(&self, cond: impl Fn() -> bool) -> bool {
            wait_for(&self.aborted, &self.failures, cond)
        }

        fn cache(&self) -> &ObjCache {
            &self.k.caches()[0]
        }

        /// Waits until both threads have arrived at barrier `n` (from 1) of the round.
        fn barrier(&self, n: usize) {
            self.arrived.fetch_add(1, SeqCst);
            self.wait(|| self.arrived.load(SeqCst) >= 2 * n);
        }

        /// Frees object `i`; a refused free is counted by the cache.
        fn free_obj(&self, i: usize) {
            let _ = self.cache().free(self.objs[i].load(SeqCst));
        }
    }

    /// In interrupt context on thread 1's CPU: frees the object thread 0 let go of.
    fn double_free_irq(s: &DoubleFrees) {
        s.free_obj(s.go.load(SeqCst) - 1);
    }

    /// One round of [`double_frees_from_cpus_and_irqs_free_once`] on thread `t`'s CPU.
    fn double_free_round(s: &DoubleFrees, t: u32) {
        let t = t as usize;
        let c = s.cache();
        // Each CPU allocates half of the objects, from its own current slab.
        for j in 0..DF_OBJS / 2 {
            let a = c.alloc(NUMA_NO_NODE, K).unwrap_or(0);
            if a == 0 {
                s.failures.fetch_add(1, SeqCst);
            }
            s.objs[2 * j + t].store(a, SeqCst);
        }
        s.barrier(1);
        // Every object freed by both threads and by an interrupt on thread 1's CPU, all
        // let go at the same moment: to the private set of the object's CPU, to its
        // slab's `free` from the other CPU, and from a timer interrupt that lands
        // before, inside or after thread 1's free.
        if t == 0 {
            for j in 0..DF_OBJS {
                if !s.wait(|| s.done.load(SeqCst) == j) {
                    break;
                }
                s.go.store(j + 1, SeqCst);
                s.free_obj(j);
            }
        } else {
            let mut rng = Rng::new(s.seed.load(SeqCst) as u64);
            let r = sys::testing::with_timer(s, double_free_irq, |timer| {
                for j in 0..DF_OBJS {
                    if !s.wait(|| s.go.load(SeqCst) == j + 1) {
                        break;
                    }
                    timer.start(u64::from(rng.below(4000)));
                    for _ in 0..rng.below(64) {
                        kernel::processor::cpu_relax();
                    }
                    s.free_obj(j);
                    if !s.wait(|| timer.fired() == j + 1) {
                        break;
                    }
                    s.done.store(j + 1, SeqCst);
                }
            });
            if r.is_err() {
                s.failures.fetch_add(1, SeqCst);
                // Let thread 0 finish its frees.
                s.done.store(DF_OBJS, SeqCst);
            }
        }
        s.barrier(2);
        // All of them allocated again, and more: each CPU empties its private set and
        // its slab's `free`, where an object freed twice at once would be twice.
        for j in 0..DF_AGAIN {
            let a = c.alloc(NUMA_NO_NODE, K).unwrap_or(0);
            if a == 0 {
                s.failures.fetch_add(1, SeqCst);
            }
            s.again[t * DF_AGAIN + j].store(a, SeqCst);
        }
    }

    #[test]
    fn double_frees_from_cpus_and_irqs_free_once() -> Result {
        // Two of every three frees are refused, and reported with a stack (rate limited).
        let _splats = crate::testutil::ExpectSplats::new();
        let model = ModelBackend::new()?;
        let mut objs = KVec::with_capacity(DF_OBJS, GFP_KERNEL)?;
        let mut again = KVec::with_capacity(2 * DF_AGAIN, GFP_KERNEL)?;
        for _ in 0..DF_OBJS {
            objs.push(AtomicUsize::new(0), GFP_KERNEL)?;
        }
        for _ in 0..2 * DF_AGAIN {
            again.push(AtomicUsize::new(0), GFP_KERNEL)?;
        }
        let s = DoubleFrees {
            k: instance(&model, (0, 0), false)?,
            objs,
            again,
            go: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            arrived: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            seed: AtomicUsize::new(0),
            aborted: AtomicBool::new(false),
        };
        let c = s.cache();
        let bad0 = c.stats.bad_frees.get();
        let rounds = 60;
        let mut live = KVec::with_capacity(2 * DF_AGAIN, GFP_KERNEL)?;
        for round in 0..rounds {
            s.go.store(0, SeqCst);
            s.done.store(0, SeqCst);
            s.arrived.store(0, SeqCst);
            s.seed.store(round + 1, SeqCst);
            let r = sys::testing::on_cpus(&s, 2, double_free_round);
            if r == Err(ENODEV) {
                // One CPU: nothing runs at the same time.
                sys::kunit_skip();
                return Ok(());
            }
            r?;
            assert_eq!(s.failures.load(SeqCst), 0);
            // No object was handed out twice.
            live.clear();
            for a in s.again.iter() {
                live.push(a.load(SeqCst), GFP_KERNEL)?;
            }
            live.sort_unstable();
            let twice = live.windows(2).filter(|w| w[0] == w[1]).count();
            assert_eq!(twice, 0);
            for &a in live.iter() {
                assert_eq!(c.free(a), Ok(()));
            }
            c.check_nodes()?;
        }
        c.drain_cpus();
        // Of the three frees of each object, one was taken and two refused: at once,
        // or when the object was found both in a private set and in `free`.
        assert_eq!(
            c.stats.bad_frees.get() - bad0,
            (2 * DF_OBJS * rounds) as u64
        );
        assert_eq!(c.usage().0, 0);
        c.check_nodes()?;
        check_all_returned(&s.k, &model)?;
        Ok(())
    }

    /// Objects [`remote_frees_during_refills_lose_nothing`] passes from CPU to CPU.
    const HANDOFFS: usize = 20000;
    /// Slots between the two CPUs: thread 0 fills them, thread 1 empties them.
    const HANDOFF_SLOTS: usize = 32;

    /// Shared state of [`remote_frees_during_refills_lose_nothing`].
    struct Handoff {
        k: KmallocDecrypted,
        slots: KVec<AtomicUsize>,
        failures: AtomicUsize,
        aborted: AtomicBool,
    }

    impl Handoff {
        fn wait(&self, cond: impl Fn() -> bool) -> bool {
            wait_for(&self.aborted, &self.failures, cond)
        }
    }

    /// Thread 0 allocates without pause from its current slab and hands each object
    /// to thread 1 on the other CPU, which frees it there: to the slab's `free`, with
    /// a compare-and-swap, while thread 0 takes that `free` into its private set
    /// whenever the set runs dry.
    fn handoff(s: &Handoff, t: u32) {
        let c = &s.k.caches()[0];
        for i in 0..HANDOFFS {
            let slot = &s.slots[i % HANDOFF_SLOTS];
            if t == 0 {
                let a = c.alloc(NUMA_NO_NODE, K).unwrap_or(0);
                if a == 0 {
                    s.failures.fetch_add(1, SeqCst);
                    return;
                }
                if !s.wait(|| slot.load(SeqCst) == 0) {
                    let _ = c.free(a);
                    return;
                }
                slot.store(a, SeqCst);
            } else {
                if !s.wait(|| slot.load(SeqCst) != 0) {
                    return;
                }
                if c.free(slot.swap(0, SeqCst)).is_err() {
                    s.failures.fetch_add(1, SeqCst);
                }
            }
        }
    }

    #[test]
    fn remote_frees_during_refills_lose_nothing() -> Result {
        let model = ModelBackend::new()?;
        let mut slots = KVec::with_capacity(HANDOFF_SLOTS, GFP_KERNEL)?;
        for _ in 0..HANDOFF_SLOTS {
            slots.push(AtomicUsize::new(0), GFP_KERNEL)?;
        }
        let s = Handoff {
            k: instance(&model, (0, 0), false)?,
            slots,
            failures: AtomicUsize::new(0),
            aborted: AtomicBool::new(false),
        };
        let r = sys::testing::on_cpus(&s, 2, handoff);
        if r == Err(ENODEV) {
            sys::kunit_skip();
            return Ok(());
        }
        r?;
        let c = &s.k.caches()[0];
        // Whatever an aborted run left in the slots.
        for slot in s.slots.iter() {
            let a = slot.swap(0, SeqCst);
            if a != 0 {
                let _ = c.free(a);
            }
        }
        assert_eq!(s.failures.load(SeqCst), 0);
        assert_eq!(c.allocs(), HANDOFFS as u64);
        assert_eq!(c.frees(), HANDOFFS as u64);
        // Every object freed on the other CPU is free again: none was lost between a
        // remote free and the owner's refill.
        c.drain_cpus();
        assert_eq!(c.usage().0, 0);
        c.check_nodes()?;
        check_all_returned(&s.k, &model)?;
        Ok(())
    }

    #[test]
    fn concurrent_mixed_sizes_no_object_twice() -> Result {
        let model = ModelBackend::new()?;
        let shared = Arc::new(
            Stress {
                k: instance(&model, (0, 0), true)?,
                live: LiveRanges::new()?,
            },
            GFP_KERNEL,
        )?;
        run_concurrently(&shared, 2 * kernel::cpu::nr_cpu_ids(), stress)?;
        assert_eq!(shared.live.overlaps(), 0);
        assert_eq!(shared.live.failures(), 0);
        let allocs: u64 = shared.k.caches().iter().map(|c| c.allocs()).sum();
        let frees: u64 = shared.k.caches().iter().map(|c| c.frees()).sum();
        assert_eq!(allocs, frees);
        assert!(allocs > 1000);
        for c in shared.k.caches() {
            c.check_nodes()?;
        }
        check_all_returned(&shared.k, &model)?;
        Ok(())
    }

    #[test]
    fn every_size_is_null_or_a_valid_object() -> Result {
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        let largest = PAGE_SIZE << k.pages().max_order();
        let mut sizes = KVec::new();
        for size in [0usize, 1, usize::MAX, usize::MAX - 1, usize::MAX / 2 + 2] {
            sizes.push(size, GFP_KERNEL)?;
        }
        for shift in 0..usize::BITS {
            let p = 1usize << shift;
            for size in [p - 1, p, p.wrapping_add(1)] {
                sizes.push(size, GFP_KERNEL)?;
            }
        }
        for &size in sizes.iter() {
            match k.alloc(size, NUMA_NO_NODE, K) {
                Some(addr) => {
                    assert!(size > 0 && size <= largest);
                    assert!(k.usable_size(addr).is_some_and(|u| u >= size));
                    assert_eq!(addr % MIN_SIZE, 0);
                    assert_eq!(k.free(addr), Ok(()));
                }
                // Impossible sizes, and only those, are refused.
                None => assert!(size == 0 || size > largest),
            }
        }
        assert!(k.bad_requests.get() > 0);
        // Caches of impossible geometry are refused too.
        assert!(geometry(usize::MAX, 0).is_none());
        assert!(geometry(usize::MAX - PAGE_SIZE, 1 << 20).is_none());
        check_all_returned(&k, &model)?;
        Ok(())
    }

    #[test]
    fn object_gfp_flags_honoured_or_refused() -> Result {
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        for size in [300usize, 3 * PAGE_SIZE] {
            for flag in [
                bindings::__GFP_DMA,
                bindings::__GFP_DMA32,
                bindings::__GFP_NOFAIL,
                bindings::__GFP_ACCOUNT,
            ] {
                assert!(k.alloc(size, NUMA_NO_NODE, K | flag).is_none());
            }
            // kmalloc() ignores __GFP_COMP, so do objects.
            let addr = k
                .alloc(size, NUMA_NO_NODE, K | bindings::__GFP_COMP)
                .ok_or(ENOMEM)?;
            assert_eq!(k.free(addr), Ok(()));
        }
        assert_eq!(k.bad_requests(), 8);
        // None of the refused requests took memory or charged anything.
        assert_eq!(k.pages().stats.bad_requests.get(), 0);
        check_all_returned(&k, &model)?;
        Ok(())
    }

    #[test]
    fn page_api_refuses_object_memory() -> Result {
        // The refused frees below are reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let model = ModelBackend::new()?;
        let k = instance(&model, (0, 0), false)?;
        for size in [300usize, 3 * PAGE_SIZE] {
            let addr = k.alloc(size, NUMA_NO_NODE, K | __GFP_ZERO).ok_or(ENOMEM)?;
            let pfn = Pfn::of_virt(addr).ok_or(EINVAL)?;
            let (head, order, tag) = k.pages().chunk_of(pfn).ok_or(EINVAL)?;
            assert_ne!(tag, 0);
            assert_eq!(k.pages().ownership(pfn), Ownership::Objects);
            // The page API's free of a slab or a large object is refused, changing nothing.
            assert_eq!(k.pages().free(head, order), Err(BadFree::WrongKind { tag }));
            assert_eq!(k.pages().chunk_of(pfn), Some((head, order, tag)));
            assert!(k.usable_size(addr).is_some_and(|u| u >= size));
            assert!(all_shared(&model, addr, size));
            assert_eq!(k.free(addr), Ok(()));
        }
        check_all_returned(&k, &model)?;
        Ok(())
    }
}
