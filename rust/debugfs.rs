// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/unmapped_alloc/`: counters, tables, tunables, shrinking.
//!
//! Files (root only, as the Rust debugfs API creates them 0400/0600/0200):
//!
//! - `stats`: every counter, one `name value` per line;
//! - `caches`: a slabinfo-like table of the decrypted object caches;
//! - `nodes`: per node and kind, blocks and pages held, free, used, leaked;
//! - `reserve`: the atomic reserve per node, its watermarks, the cache limits and the
//!   recent refills; writing `key=value` pairs sets watermarks and cache limits;
//! - `shrink`: writing anything returns all free cached memory to the page allocator;
//! - `direct_map`: whether this system can take pages out of the direct map (and if not,
//!   why unmapped pages are refused), the block size and the architecture.

#![deny(unsafe_code)]

use crate::{pages::PageAllocator, slab::KmallocDecrypted};
use core::fmt;
use kernel::{debugfs, prelude::*, sync::Arc, uaccess::UserSliceReader};

/// The global instances the files show.
#[derive(Clone, Copy)]
pub(crate) struct Globals<'a> {
    pub(crate) unmapped: &'a PageAllocator,
    pub(crate) decrypted: &'a Arc<PageAllocator>,
    pub(crate) kmalloc: &'a KmallocDecrypted,
}

impl<'a> Globals<'a> {
    fn pages(&self) -> [&'a PageAllocator; 2] {
        [self.unmapped, &**self.decrypted]
    }
}

/// The `stats` file.
pub(crate) struct Stats<'a>(pub(crate) &'a Globals<'a>);

impl fmt::Display for Stats<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.unmapped.write_stats(f)?;
        self.0.decrypted.write_stats(f)?;
        self.0.kmalloc.write_stats(f)
    }
}

/// The `caches` file.
pub(crate) struct Caches<'a>(pub(crate) &'a KmallocDecrypted);

impl fmt::Display for Caches<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write_caches(f)
    }
}

/// The `direct_map` file, for the unmapped instance.
pub(crate) struct DirectMap<'a>(pub(crate) &'a PageAllocator);

impl fmt::Display for DirectMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arch = if cfg!(CONFIG_X86_64) {
            "x86_64"
        } else if cfg!(CONFIG_ARM64) {
            "arm64"
        } else {
            "other"
        };
        writeln!(f, "arch {arch}")?;
        let yes_no = |b| if b { "yes" } else { "no" };
        writeln!(
            f,
            "can_set_direct_map {}",
            yes_no(crate::sys::can_set_direct_map())
        )?;
        match self.0.refused() {
            Some(why) => writeln!(f, "unmapped refused: {why}")?,
            None => writeln!(f, "unmapped enabled")?,
        }
        let order = self.0.max_order();
        writeln!(f, "page_size {}", crate::sys::PAGE_SIZE)?;
        writeln!(f, "block_order {order}")?;
        writeln!(f, "block_bytes {}", crate::sys::PAGE_SIZE << order)
    }
}

/// The `nodes` file.
pub(crate) struct Nodes<'a>(pub(crate) &'a [&'a PageAllocator]);

impl fmt::Display for Nodes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# kind      node   blocks  free_blocks   held    used    free   dirty  leaked"
        )?;
        for a in self.0 {
            for nid in 0..a.nr_nodes() {
                let p = a.pool_pages(nid);
                writeln!(
                    f,
                    "{:<10} {:>5} {:>8} {:>12} {:>6} {:>7} {:>7} {:>7} {:>7}",
                    a.kind_name(),
                    nid,
                    p.blocks,
                    p.free_blocks,
                    p.held,
                    p.used(),
                    p.free,
                    p.dirty,
                    a.leaked_pages_on(nid)
                )?;
            }
        }
        Ok(())
    }
}

/// The `reserve` file.
pub(crate) struct Reserve<'a> {
    pub(crate) unmapped: &'a PageAllocator,
    pub(crate) decrypted: &'a Arc<PageAllocator>,
}

impl fmt::Display for Reserve<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.decrypted;
        let (low, high) = d.watermarks();
        writeln!(f, "low {low}")?;
        writeln!(f, "high {high}")?;
        writeln!(f, "unmapped_cache_blocks {}", self.unmapped.cache_blocks())?;
        writeln!(f, "decrypted_cache_blocks {}", d.cache_blocks())?;
        for nid in 0..d.nr_nodes() {
            writeln!(f, "node{nid}_level {}", d.pool_pages(nid).free)?;
        }
        writeln!(f, "refills {}", d.stats.refills.get())?;
        writeln!(f, "refill_blocks {}", d.stats.refill_blocks.get())?;
        writeln!(f, "# recent refills: time_ns node before after blocks")?;
        d.for_each_refill(|e| {
            writeln!(
                f,
                "refill {} {} {} {} {}",
                e.time_ns, e.nid, e.before, e.after, e.blocks
            )
        })
    }
}

/// The values `reserve` accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Tunables {
    /// Low watermark of the decrypted reserve, pages per node.
    pub(crate) low: usize,
    /// High watermark of the decrypted reserve, pages per node.
    pub(crate) high: usize,
    /// Free unmapped blocks kept per node.
    pub(crate) unmapped_cache_blocks: usize,
    /// Free decrypted blocks kept per node.
    pub(crate) decrypted_cache_blocks: usize,
}

/// Largest value accepted for any tunable.
const TUNABLE_MAX: usize = 1 << 24;

/// Applies `key=value` pairs separated by white space to `cur`. Unknown keys, values
/// that are not decimal numbers or too large, and `low > high` are refused as a whole.
pub(crate) fn parse_tunables(input: &[u8], cur: Tunables) -> Result<Tunables> {
    let text = core::str::from_utf8(input).map_err(|_| EINVAL)?;
    let mut t = cur;
    let mut any = false;
    for pair in text.split_ascii_whitespace() {
        let (key, value) = pair.split_once('=').ok_or(EINVAL)?;
        let value: usize = value.parse().map_err(|_| EINVAL)?;
        if value > TUNABLE_MAX {
            return Err(EINVAL);
        }
        let slot = match key {
            "low" => &mut t.low,
            "high" => &mut t.high,
            "unmapped_cache_blocks" => &mut t.unmapped_cache_blocks,
            "decrypted_cache_blocks" => &mut t.decrypted_cache_blocks,
            _ => return Err(EINVAL),
        };
        *slot = value;
        any = true;
    }
    if !any || t.low > t.high {
        return Err(EINVAL);
    }
    Ok(t)
}

fn current(g: &Globals<'_>) -> Tunables {
    let (low, high) = g.decrypted.watermarks();
    Tunables {
        low,
        high,
        unmapped_cache_blocks: g.unmapped.cache_blocks(),
        decrypted_cache_blocks: g.decrypted.cache_blocks(),
    }
}

fn apply(g: &Globals<'_>, t: Tunables) -> Result {
    g.decrypted.set_watermarks(t.low, t.high)?;
    g.unmapped.set_cache_blocks(t.unmapped_cache_blocks);
    g.decrypted.set_cache_blocks(t.decrypted_cache_blocks);
    Ok(())
}

fn write_reserve(g: &Globals<'static>, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 256];
    let len = reader.len();
    if len == 0 || len > buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..len])?;
    apply(g, parse_tunables(&buf[..len], current(g))?)
}

/// Gives all free cached memory back: empty slabs, free blocks, the reserve too.
pub(crate) fn shrink_all(g: &Globals<'_>) {
    g.kmalloc.shrink();
    for a in g.pages() {
        a.scrub_pending();
        a.shrink(0);
    }
}

/// The directory and its files; removed on drop.
pub(crate) struct Files {
    _stats: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _caches: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _nodes: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _reserve: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _shrink: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _direct_map: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _dir: debugfs::Dir,
}

/// Creates `/sys/kernel/debug/unmapped_alloc/`.
pub(crate) fn create(g: Globals<'static>) -> Result<Files> {
    let dir = debugfs::Dir::new(c"unmapped_alloc");
    let stats = KBox::pin_init(
        dir.read_callback_file(c"stats", g, &|g, f| write!(f, "{}", Stats(g))),
        GFP_KERNEL,
    )?;
    let caches = KBox::pin_init(
        dir.read_callback_file(c"caches", g, &|g, f| write!(f, "{}", Caches(g.kmalloc))),
        GFP_KERNEL,
    )?;
    let nodes = KBox::pin_init(
        dir.read_callback_file(c"nodes", g, &|g, f| write!(f, "{}", Nodes(&g.pages()))),
        GFP_KERNEL,
    )?;
    let reserve = KBox::pin_init(
        dir.read_write_callback_file(
            c"reserve",
            g,
            &|g, f| {
                write!(
                    f,
                    "{}",
                    Reserve {
                        unmapped: g.unmapped,
                        decrypted: g.decrypted,
                    }
                )
            },
            &write_reserve,
        ),
        GFP_KERNEL,
    )?;
    let direct_map = KBox::pin_init(
        dir.read_callback_file(c"direct_map", g, &|g, f| {
            write!(f, "{}", DirectMap(g.unmapped))
        }),
        GFP_KERNEL,
    )?;
    let shrink = KBox::pin_init(
        dir.write_callback_file(c"shrink", g, &|g, _r| {
            shrink_all(g);
            Ok(())
        }),
        GFP_KERNEL,
    )?;
    Ok(Files {
        _stats: stats,
        _caches: caches,
        _nodes: nodes,
        _reserve: reserve,
        _shrink: shrink,
        _direct_map: direct_map,
        _dir: dir,
    })
}

/// Renders a view into a buffer, for the tests.
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) fn render(view: &dyn fmt::Display) -> Result<KVec<u8>> {
    struct Sink(KVec<u8>);
    impl fmt::Write for Sink {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0
                .extend_from_slice(s.as_bytes(), GFP_KERNEL)
                .map_err(|_| fmt::Error)
        }
    }
    let mut sink = Sink(KVec::new());
    fmt::write(&mut sink, format_args!("{view}")).map_err(|_| ENOMEM)?;
    Ok(sink.0)
}

/// The value of `name` in `name value` lines.
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) fn value_of(text: &[u8], name: &str) -> Option<u64> {
    core::str::from_utf8(text).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
#[kernel::macros::kunit_tests(unmapped_alloc_debugfs)]
mod tests {
    use super::*;
    use crate::{
        backend::{Backend, ModelBackend},
        pages::{Config, Kind},
        sys::{self, NUMA_NO_NODE},
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
        // name objsize align active total slabs pages
        assert_eq!(&cols[1..5], &["512", "512", "6", "32"]);

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
