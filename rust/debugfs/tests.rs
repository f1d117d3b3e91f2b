// SPDX-License-Identifier: GPL-2.0

//! KUnit suite of the debugfs interface: its text against the counters, the tunables.

#![deny(unsafe_code)]

#[kernel::macros::kunit_tests(unmapped_alloc_debugfs)]
mod debugfs {
    use crate::debugfs::*;
    use crate::{
        backend::{Backend, ModelBackend},
        pages::{Config, Kind},
        sys::{self, NUMA_NO_NODE},
        testutil::ensure_eq,
    };
    use kernel::bindings::GFP_KERNEL as K;

    fn pair(model: &Arc<ModelBackend>) -> Result<(Arc<PageAllocator>, Arc<PageAllocator>)> {
        let config = |kind| Config {
            kind,
            block_order: sys::block_order(),
            cache_blocks: 2,
            reserve: (0, 0),
            background: false,
            refused: None,
            kmemleak: false,
        };
        Ok((
            PageAllocator::new(config(Kind::Unmapped))?,
            PageAllocator::new(config(Kind::Decrypted(Backend::Model(model.clone()))))?,
        ))
    }

    #[test]
    fn stats_and_tables_match_counters() -> Result {
        // Refused frees below are reported with a stack.
        let _splats = crate::testutil::ExpectSplats::new();
        let model = ModelBackend::new()?;
        let (u, d) = pair(&model)?;
        let k = KmallocDecrypted::new(&d)?;
        // A known workload: 5 unmapped order-1 allocations, 3 freed; 10 objects of
        // 300 bytes, 4 freed; one double free.
        let mut pages = KVec::new();
        for _ in 0..5 {
            pages.push(u.alloc(NUMA_NO_NODE, K, 1, true).ok_or(ENOMEM)?, GFP_KERNEL)?;
        }
        for &p in pages.iter().take(3) {
            assert!(u.free(p, 1).is_ok());
        }
        let mut objs = KVec::new();
        for _ in 0..10 {
            objs.push(k.alloc(300, NUMA_NO_NODE, K).ok_or(ENOMEM)?, GFP_KERNEL)?;
        }
        for &o in objs.iter().take(4) {
            assert!(k.free(o).is_ok());
        }
        assert!(k.free(objs[0]).is_err());

        let g = Globals {
            unmapped: &u,
            decrypted: &d,
            kmalloc: &k,
        };
        let stats = render(&Stats(&g))?;
        assert_eq!(value_of(&stats, "unmapped_alloc_order1"), Some(5));
        assert_eq!(value_of(&stats, "unmapped_free_order1"), Some(3));
        assert_eq!(
            value_of(&stats, "unmapped_blocks_taken"),
            Some(u.stats.blocks_taken.get())
        );
        assert_eq!(
            value_of(&stats, "kmalloc-decrypted-512_active_objs"),
            Some(6)
        );
        assert_eq!(value_of(&stats, "kmalloc-decrypted-512_allocs"), Some(10));
        assert_eq!(value_of(&stats, "kmalloc-decrypted-512_frees"), Some(4));
        assert_eq!(value_of(&stats, "kmalloc_decrypted_bad_frees"), Some(1));
        assert_eq!(
            value_of(&stats, "decrypted_conversions_to_shared"),
            Some(model.decrypt_calls.load(kernel::sync::atomic::Relaxed))
        );

        let caches = render(&Caches(&k))?;
        let text = core::str::from_utf8(&caches).map_err(|_| EINVAL)?;
        assert!(text.starts_with("# name"));
        let row = text
            .lines()
            .find(|l| l.starts_with("kmalloc-decrypted-512 "))
            .ok_or(EINVAL)?;
        let cols: KVec<&str> = {
            let mut v = KVec::new();
            for c in row.split_ascii_whitespace() {
                v.push(c, GFP_KERNEL)?;
            }
            v
        };
        // name objsize align active total slabs pages. The objects came from the
        // current slab of whichever CPU the test ran on when it allocated: one slab, or
        // more if it moved between CPUs meanwhile.
        assert_eq!(&cols[1..4], &["512", "512", "6"]);
        let num = |i: usize| cols[i].parse::<usize>().map_err(|_| EINVAL);
        let (slabs, slab_pages) = (num(5)?, k.caches()[1].slab_pages());
        assert!(slabs >= 1);
        assert_eq!(num(4)?, slabs * slab_pages * kernel::page::PAGE_SIZE / 512);
        assert_eq!(num(6)?, slabs * slab_pages);

        let nodes = render(&Nodes(&[&*u, &*d]))?;
        let text = core::str::from_utf8(&nodes).map_err(|_| EINVAL)?;
        let used: usize = text
            .lines()
            .filter(|l| l.starts_with("unmapped "))
            .filter_map(|l| l.split_ascii_whitespace().nth(5)?.parse::<usize>().ok())
            .sum();
        assert_eq!(used, 2 * 2);

        for &p in pages.iter().skip(3) {
            assert!(u.free(p, 1).is_ok());
        }
        for &o in objs.iter().skip(4) {
            assert!(k.free(o).is_ok());
        }
        shrink_all(&g);
        assert_eq!(u.total_pages().held, 0);
        assert_eq!(d.total_pages().held, 0);
        assert_eq!(model.shared_pages(), 0);
        Ok(())
    }

    #[test]
    fn reserve_shows_refills() -> Result {
        let model = ModelBackend::new()?;
        let (u, d) = pair(&model)?;
        d.set_watermarks(100, 300)?;
        let nid = sys::local_node();
        assert_eq!(d.refill(nid, 300), 1);
        let text = render(&Reserve {
            unmapped: &u,
            decrypted: &d,
        })?;
        assert_eq!(value_of(&text, "low"), Some(100));
        assert_eq!(value_of(&text, "high"), Some(300));
        assert_eq!(value_of(&text, "refills"), Some(1));
        assert_eq!(value_of(&text, "refill_blocks"), Some(1));
        // "refill <time_ns> <node> <before> <after> <blocks>"
        let line = core::str::from_utf8(&text)
            .map_err(|_| EINVAL)?
            .lines()
            .find(|l| l.starts_with("refill "))
            .ok_or(EINVAL)?;
        let mut fields = line.split_ascii_whitespace().skip(2);
        let mut next = || fields.next().and_then(|v| v.parse::<usize>().ok());
        assert_eq!(next(), Some(nid as usize));
        assert_eq!(next(), Some(0));
        assert_eq!(next(), Some(512));
        assert_eq!(next(), Some(1));
        d.set_watermarks(0, 0)?;
        d.shrink(0);
        assert_eq!(model.shared_pages(), 0);
        Ok(())
    }

    /// One row of the `blocks` file: kind, node, first and last byte, order, used,
    /// free, dirty, state.
    struct Row<'a> {
        kind: &'a str,
        start: u64,
        end: u64,
        used: usize,
        free: usize,
        state: &'a str,
    }

    fn rows(text: &str) -> Result<KVec<Row<'_>>> {
        let hex = |v: &str| u64::from_str_radix(v.strip_prefix("0x")?, 16).ok();
        let mut v = KVec::new();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let c: KVec<&str> = {
                let mut c = KVec::new();
                for w in l.split_ascii_whitespace() {
                    c.push(w, GFP_KERNEL)?;
                }
                c
            };
            ensure_eq!(c.len(), 9);
            let num = |i: usize| c[i].parse::<usize>().map_err(|_| EINVAL);
            v.push(
                Row {
                    kind: c[0],
                    start: hex(c[2]).ok_or(EINVAL)?,
                    end: hex(c[3]).ok_or(EINVAL)?,
                    used: num(5)?,
                    free: num(6)?,
                    state: c[8],
                },
                GFP_KERNEL,
            )?;
        }
        Ok(v)
    }

    #[test]
    fn blocks_show_the_memory_handed_out() -> Result {
        let model = ModelBackend::new()?;
        let (u, d) = pair(&model)?;
        let k = KmallocDecrypted::new(&d)?;
        let g = Globals {
            unmapped: &u,
            decrypted: &d,
            kmalloc: &k,
        };
        let up = u.alloc(NUMA_NO_NODE, K, 2, true).ok_or(ENOMEM)?;
        let dp = d.alloc(NUMA_NO_NODE, K, 0, true).ok_or(ENOMEM)?;
        let text = render(&Blocks(&g.pages()))?;
        let text = core::str::from_utf8(&text).map_err(|_| EINVAL)?;
        assert!(text.starts_with("# kind"));
        let listed = rows(text)?;
        // One block each, holding what was handed out, the whole block in the range.
        assert_eq!(listed.len(), 2);
        let block = (sys::PAGE_SIZE as u64) << sys::block_order();
        for (r, kind, p, used) in [
            (&listed[0], "unmapped", up, 4),
            (&listed[1], "decrypted", dp, 1),
        ] {
            assert_eq!(r.kind, kind);
            assert!(r.start <= p.phys() && p.phys() <= r.end);
            assert_eq!(r.end - r.start + 1, block);
            assert_eq!(r.start % block, 0);
            assert_eq!((r.used, r.free), (used, (1 << sys::block_order()) - used));
            assert_eq!(r.state, "in_service");
        }
        // The decrypted block is shared from its first page to its last, in the model.
        let pfn = |phys: u64| (phys >> kernel::page::PAGE_SHIFT) as usize;
        assert!(model.is_shared(pfn(listed[1].start)) && model.is_shared(pfn(listed[1].end)));
        assert_eq!(model.shared_pages() as u64, block / sys::PAGE_SIZE as u64);

        assert!(u.free(up, 2).is_ok());
        assert!(d.free(dp, 0).is_ok());
        shrink_all(&g);
        let text = render(&Blocks(&g.pages()))?;
        assert_eq!(
            rows(core::str::from_utf8(&text).map_err(|_| EINVAL)?)?.len(),
            0
        );
        assert_eq!(model.shared_pages(), 0);
        Ok(())
    }

    #[test]
    fn tunables_validated() {
        let cur = Tunables {
            low: 256,
            high: 512,
            unmapped_cache_blocks: 4,
            decrypted_cache_blocks: 4,
        };
        assert_eq!(
            parse_tunables(b"low=100 high=200\n", cur),
            Ok(Tunables {
                low: 100,
                high: 200,
                ..cur
            })
        );
        assert_eq!(
            parse_tunables(b"decrypted_cache_blocks=0", cur),
            Ok(Tunables {
                decrypted_cache_blocks: 0,
                ..cur
            })
        );
        // Refused as a whole: low above high, unknown key, not a number, no value,
        // too large, empty.
        for bad in [
            &b"low=600"[..],
            b"high=100",
            b"low=1 bogus=2",
            b"low=abc",
            b"low",
            b"high=99999999999",
            b"",
            b"  \n",
        ] {
            assert_eq!(parse_tunables(bad, cur), Err(EINVAL));
        }
    }
}
