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

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod tests;
mod text;

pub(crate) use text::{Blocks, Caches, DirectMap, Nodes, Reserve, Stats};

use crate::{pages::PageAllocator, slab::KmallocDecrypted};
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
        if value > TUNABLE_MAX && !crate::mutant::is(crate::mutant::Mutant::TunablesUnchecked) {
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
    if !any || (t.low > t.high && !crate::mutant::is(crate::mutant::Mutant::TunablesUnchecked)) {
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
        a.drain();
    }
}

/// The directory and its files; removed on drop.
pub(crate) struct Files {
    _stats: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _caches: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _nodes: Pin<KBox<debugfs::File<Globals<'static>>>>,
    _blocks: Pin<KBox<debugfs::File<Globals<'static>>>>,
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
    let blocks = KBox::pin_init(
        dir.read_callback_file(c"blocks", g, &|g, f| write!(f, "{}", Blocks(&g.pages()))),
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
        _blocks: blocks,
        _reserve: reserve,
        _shrink: shrink,
        _direct_map: direct_map,
        _dir: dir,
    })
}

/// Renders a view into a buffer, for the tests.
#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
pub(crate) fn render(view: &dyn core::fmt::Display) -> Result<KVec<u8>> {
    use core::fmt;

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
    // Searched by the tests with the C library's memcmp().
    crate::sys::detectors::written(sink.0.as_ptr() as usize, sink.0.len());
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
