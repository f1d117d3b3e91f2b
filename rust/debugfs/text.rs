// SPDX-License-Identifier: GPL-2.0

//! The text of the debugfs files: every view of the allocators' state that is shown to
//! users is formatted here.

#![deny(unsafe_code)]

use super::Globals;
use crate::{
    pages::{Kind, PageAllocator},
    slab::KmallocDecrypted,
};
use core::fmt;
use kernel::sync::Arc;

/// The `stats` file.
pub(crate) struct Stats<'a>(pub(crate) &'a Globals<'a>);

impl fmt::Display for Stats<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        page_counters(f, self.0.unmapped)?;
        page_counters(f, self.0.decrypted)?;
        object_counters(f, self.0.kmalloc)
    }
}

/// The `caches` file.
pub(crate) struct Caches<'a>(pub(crate) &'a KmallocDecrypted);

impl fmt::Display for Caches<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<24} {:>8} {:>6} {:>8} {:>8} {:>6} {:>6}",
            "# name", "objsize", "align", "active", "total", "slabs", "pages"
        )?;
        for c in self.0.caches() {
            let (active, total, slabs) = c.usage();
            writeln!(
                f,
                "{:<24} {:>8} {:>6} {:>8} {:>8} {:>6} {:>6}",
                c.name(),
                c.size(),
                c.align(),
                active,
                total,
                slabs,
                slabs * c.slab_pages()
            )?;
        }
        Ok(())
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

/// The `blocks` file: every block of both instances, with its physical range.
pub(crate) struct Blocks<'a>(pub(crate) &'a [&'a PageAllocator]);

impl fmt::Display for Blocks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<10} {:>5}  {:<18}  {:<18}  {:>5} {:>7} {:>7} {:>7}  state",
            "# kind", "node", "phys_start", "phys_end", "order", "used", "free", "dirty"
        )?;
        for a in self.0 {
            for b in a.blocks().map_err(|_| fmt::Error)?.iter() {
                let bytes = (crate::sys::PAGE_SIZE as u64) << b.order;
                writeln!(
                    f,
                    "{:<10} {:>5}  {:#018x}  {:#018x}  {:>5} {:>7} {:>7} {:>7}  {}",
                    a.kind_name(),
                    b.nid,
                    b.pfn.phys(),
                    b.pfn.phys() + bytes - 1,
                    b.order,
                    b.used,
                    b.free,
                    b.dirty,
                    b.state.name()
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

/// Writes the counters of a page allocator, one `name value` per line, prefixed with
/// its kind.
fn page_counters(f: &mut fmt::Formatter<'_>, a: &PageAllocator) -> fmt::Result {
    let k = a.kind_name();
    let s = &a.stats;
    for o in 0..=a.max_order() {
        writeln!(f, "{k}_alloc_order{o} {}", s.allocs.at(o).get())?;
    }
    for o in 0..=a.max_order() {
        writeln!(f, "{k}_free_order{o} {}", s.frees.at(o).get())?;
    }
    let (conversions, reversions, converted, reverted) = match a.kind() {
        Kind::Unmapped => (
            "direct_map_unmaps",
            "direct_map_restores",
            "pages_unmapped",
            "pages_restored",
        ),
        Kind::Decrypted(_) => (
            "conversions_to_shared",
            "conversions_to_private",
            "pages_made_shared",
            "pages_made_private",
        ),
    };
    let counters = [
        ("alloc_failures", &s.alloc_failures),
        ("atomic_failures", &s.atomic_failures),
        ("noscrub_allocs", &s.noscrub_allocs),
        ("memcg_failures", &s.memcg_failures),
        ("blocks_taken", &s.blocks_taken),
        ("blocks_released", &s.blocks_released),
        ("fallback_blocks", &s.fallback_blocks),
        ("leaked_blocks", &s.leaked_blocks),
        ("leaked_pages", &s.leaked_pages),
        (conversions, &s.conversions),
        (reversions, &s.reversions),
        (converted, &s.converted_pages),
        (reverted, &s.reverted_pages),
        ("conversion_failures", &s.conversion_failures),
        ("tlb_flushes", &s.tlb_flushes),
        ("scrubbed_pages", &s.scrubbed_pages),
        ("grow_ns", &s.grow_ns),
        ("scrub_ns", &s.scrub_ns),
        ("bad_frees", &s.bad_frees),
        ("bad_requests", &s.bad_requests),
        ("refused_allocs", &s.refused_allocs),
        ("shrink_calls", &s.shrink_calls),
        ("reserve_refills", &s.refills),
        ("reserve_refill_blocks", &s.refill_blocks),
    ];
    for (name, c) in counters {
        writeln!(f, "{k}_{name} {}", c.get())?;
    }
    writeln!(f, "{k}_cache_blocks_limit {}", a.cache_blocks())?;
    let (low, high) = a.watermarks();
    writeln!(f, "{k}_reserve_low_pages {low}")?;
    writeln!(f, "{k}_reserve_high_pages {high}")?;
    for nid in 0..a.nr_nodes() {
        let p = a.pool_pages(nid);
        writeln!(f, "{k}_node{nid}_blocks {}", p.blocks)?;
        writeln!(f, "{k}_node{nid}_used_pages {}", p.used())?;
        writeln!(f, "{k}_node{nid}_cached_pages {}", p.free)?;
        writeln!(f, "{k}_node{nid}_dirty_pages {}", p.dirty)?;
    }
    Ok(())
}

/// Writes the counters of the `kmalloc-decrypted-*` caches, one `name value` per line.
fn object_counters(f: &mut fmt::Formatter<'_>, k: &KmallocDecrypted) -> fmt::Result {
    for c in k.caches() {
        let n = c.name();
        let (active, total, slabs) = c.usage();
        writeln!(f, "{n}_active_objs {active}")?;
        writeln!(f, "{n}_total_objs {total}")?;
        writeln!(f, "{n}_slabs {slabs}")?;
        writeln!(f, "{n}_allocs {}", c.allocs())?;
        writeln!(f, "{n}_frees {}", c.frees())?;
        writeln!(f, "{n}_atomic_failures {}", c.stats.atomic_failures.get())?;
    }
    writeln!(f, "kmalloc_decrypted_large_allocs {}", k.large_allocs.get())?;
    writeln!(f, "kmalloc_decrypted_large_frees {}", k.large_frees.get())?;
    writeln!(f, "kmalloc_decrypted_bad_frees {}", k.bad_frees.get())?;
    writeln!(f, "kmalloc_decrypted_bad_requests {}", k.bad_requests())
}
