// SPDX-License-Identifier: GPL-2.0

//! Object caches on decrypted memory: `kmalloc-decrypted-*` and dedicated caches.
//!
//! A slab is a chunk of 2^order decrypted pages from the decrypted [`PageAllocator`],
//! tagged there with the id of its cache so that a bare pointer leads back to its cache,
//! and carved into objects of the cache's size. Objects are aligned to their size up
//! to a page, and to at least 256 bytes (the GICv3 ITS needs 256 B aligned ITTs).
//!
//! Each CPU has a current slab per cache, where it allocates and frees with preemption
//! off, from and to a private set of the slab's free objects, without locks, lookups or
//! locked instructions (an interrupt that finds its CPU's slab in use takes the slow
//! path). The other slabs are on per-node lists, each under its own lock, so CPUs of
//! different nodes never contend. A free that is not to the CPU's current slab finds
//! the slab through the page allocator's tag and the node list. Empty slabs beyond one
//! per node go back to the page allocator, whose blocks are re-encrypted and returned
//! when free. Atomic allocations never convert memory: new slabs then come from the
//! page allocator's decrypted reserve.

#![deny(unsafe_code)]

#[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
mod tests;

use crate::{
    pages::{BadFree, PageAllocator},
    pernode::{new_per_node, PerNode},
    sorted::{self, Start},
    stats::{Counter, CpuCounter},
    sys::{
        self, detectors::Redzone, CpuLocal, IrqSpinLock, MappedBytes, PerCpu, Pfn, ThisCpu,
        NUMA_NO_NODE, PAGE_SIZE,
    },
};
use core::sync::atomic::{
    fence, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use kernel::{bindings, pr_warn_once, prelude::*, sync::Arc};

/// Smallest object size and alignment.
pub(crate) const MIN_SIZE: usize = 256;

/// Object sizes of the `kmalloc-decrypted-*` caches.
pub(crate) const KMALLOC_SIZES: [usize; 6] = [256, 512, 1024, 2048, 4096, 8192];

const _: () = {
    let mut i = 1;
    while i < KMALLOC_SIZES.len() {
        assert!(KMALLOC_SIZES[i] == KMALLOC_SIZES[0] << i);
        i += 1;
    }
};

/// Page allocator tag of allocations made directly for large `kmalloc_decrypted()`.
pub(crate) const TAG_LARGE: u16 = 1;

/// First tag given to caches.
pub(crate) const TAG_FIRST_CACHE: u16 = 2;

/// Most objects a slab holds (one bit each in a `u64`).
const MAX_OBJS: usize = 64;

/// One slab.
///
/// A free object is in one of two places: in `free`, which any CPU changes with atomic
/// operations, or, when the slab is a CPU's current slab, in that CPU's private set
/// ([`CpuShared::own`]), which only that CPU changes, with plain loads and stores. The
/// CPU allocates from its set, refilled by taking all of `free` at once, and frees its
/// own objects to it: a fast path without a locked instruction. Frees on other CPUs go
/// to `free`; they check the owner's set too, so that a double free is refused
/// wherever the first free went (see [`ObjCache::put`]). Two frees of one object that
/// race, one to each place, may not see each other, and neither may a free that races
/// the owner's refill (the objects it took are in neither place until it stores its new
/// set): the object is then in the set and in `free`. The owner looks for such objects
/// in `free` before every hand-out from its set (one load of a line the allocation reads
/// anyway, in the test for an empty set), and when the set goes back to `free`: they
/// stay free once, in `free`, and are reported as refused frees. A free that is not
/// visible yet when the object is handed out lands after the hand-out, and is then a
/// free of the new owner's object, as with any allocator.
struct Slab {
    base: Pfn,
    nid: i32,
    /// The slab's memory, mapped in the direct map.
    bytes: MappedBytes,
    /// Bit `i` set: object `i` is free and not in the owner's private set. Changed
    /// with `cmpxchg`, `swap` and `fetch_or`, so that no free is ever counted twice.
    ///
    /// `core`'s atomic, not the kernel's [`Atomic`]: that one is an out-of-line C call
    /// per access unless the tree has `CONFIG_RUST_INLINE_HELPERS` (rustc and clang on
    /// one LLVM), which would double the cost of the allocation fast path. Only this
    /// Rust code touches the bitmap; the node lock orders the slow paths as usual.
    free: AtomicU64,
    /// CPUs that have this as their current or remote slab (see [`CpuSlabs`]). Changed
    /// under the node lock; a slab with pins is never given back, and only CPUs with a
    /// pin touch it unlocked.
    pins: AtomicU32,
    /// The CPU (id + 1) that has this as its current slab, 0 if none. Set and cleared
    /// by that CPU; read by frees on other CPUs to find the owner's private set.
    owner: AtomicU32,
}

impl Slab {
    /// Claims a free object and returns its index.
    #[inline(always)]
    fn claim(&self) -> Option<usize> {
        let mut old = self.free.load(Relaxed);
        loop {
            if old == 0 {
                return None;
            }
            let new = old & (old - 1);
            match self.free.compare_exchange(old, new, Acquire, Relaxed) {
                Ok(_) => return Some((old ^ new).trailing_zeros() as usize),
                Err(now) => old = now,
            }
        }
    }

    fn pinned(&self) -> bool {
        self.pins.load(Relaxed) != 0
    }

    /// Adds `n` (1 or -1) pins. The caller holds the node lock.
    fn pin(&self, n: i32) {
        let pins = self.pins.load(Relaxed);
        self.pins.store(pins.wrapping_add_signed(n), Relaxed);
    }
}

/// The slabs of a cache on one node, sorted by first frame, with two bitmaps over
/// their positions so that neither an allocation nor a free walks the list.
///
/// A slab no CPU pins changes only under the node lock (the lock-free paths touch
/// pinned slabs only), so for unpinned slabs the bits are exact; pinned slabs have no
/// bits: their CPUs use them, and they are looked at again when unpinned.
struct CacheNode {
    slabs: KVec<Arc<Slab>>,
    /// Bit `i`: `slabs[i]` is unpinned and has a free object.
    avail: KVec<u64>,
    /// Bit `i`: `slabs[i]` is unpinned and empty.
    empty: KVec<u64>,
    /// The free bits of an empty slab.
    all_free: u64,
}

impl Start for Arc<Slab> {
    fn start(&self) -> Pfn {
        self.base
    }
}

impl CacheNode {
    fn new(all_free: u64) -> Self {
        Self {
            slabs: KVec::new(),
            avail: KVec::new(),
            empty: KVec::new(),
            all_free,
        }
    }

    fn find(&self, pfn: Pfn, slab_pages: usize) -> Option<usize> {
        let i = sorted::floor(&self.slabs, pfn)?;
        (pfn.offset_from(self.slabs[i].base)? < slab_pages).then_some(i)
    }

    /// Brings the bits of slab `i` up to date after a change under the lock.
    fn refresh(&mut self, i: usize) {
        let s = &self.slabs[i];
        let unpinned = !s.pinned();
        let free = s.free.load(Relaxed);
        let (w, m) = (i / 64, 1u64 << (i % 64));
        for (bits, on) in [
            (&mut self.avail, unpinned && free != 0),
            (&mut self.empty, unpinned && free == self.all_free),
        ] {
            if on {
                bits[w] |= m;
            } else {
                bits[w] &= !m;
            }
        }
    }

    /// Recomputes all bits after the positions changed; the bitmaps have room.
    fn rebuild(&mut self) {
        let words = self.slabs.len().div_ceil(64);
        for bits in [&mut self.avail, &mut self.empty] {
            bits.truncate(words);
            bits.iter_mut().for_each(|w| *w = 0);
        }
        for i in 0..self.slabs.len() {
            self.refresh(i);
        }
    }

    /// Inserts a slab in order; fails only if the vectors cannot grow. The caller holds
    /// the node's spinlock, so they grow with `GFP_ATOMIC`.
    fn insert(&mut self, slab: Arc<Slab>) -> Option<usize> {
        let words = (self.slabs.len() + 1).div_ceil(64);
        for bits in [&mut self.avail, &mut self.empty] {
            if bits.len() < words {
                bits.resize(words, 0, GFP_ATOMIC).ok()?;
            }
        }
        let i = sorted::insert(&mut self.slabs, slab).ok()?;
        self.rebuild();
        Some(i)
    }

    /// Takes slab `i` out of the list.
    fn remove(&mut self, i: usize) -> Option<Arc<Slab>> {
        let slab = self.slabs.remove(i).ok()?;
        self.rebuild();
        Some(slab)
    }

    /// The first slab with its bit set in `bits`, other than `skip`.
    fn first(bits: &[u64], skip: Option<usize>) -> Option<usize> {
        bits.iter().enumerate().find_map(|(w, &word)| {
            let word = match skip {
                Some(i) if i / 64 == w => word & !(1u64 << (i % 64)),
                _ => word,
            };
            (word != 0).then(|| w * 64 + word.trailing_zeros() as usize)
        })
    }
}

/// Counters of one cache. Allocations and frees on a CPU's current slab are counted
/// per CPU, see [`ObjCache::allocs`].
pub(crate) struct CacheStats {
    /// Objects handed out from other slabs.
    slow_allocs: Counter,
    /// Objects freed to other slabs.
    slow_frees: Counter,
    /// Slabs created.
    pub(crate) slabs_created: Counter,
    /// Slabs given back to the page allocator.
    pub(crate) slabs_freed: Counter,
    /// Allocations that failed.
    pub(crate) failures: Counter,
    /// Allocations in atomic context that found no object and no reserve.
    pub(crate) atomic_failures: Counter,
    /// Frees refused.
    pub(crate) bad_frees: Counter,
    /// Allocations refused for their flags.
    pub(crate) bad_requests: Counter,
}

/// The slabs a CPU uses without the node lock, each pinned.
#[derive(Default)]
struct CpuSlabs {
    /// Where the CPU allocates, and frees objects of it.
    current: Option<Arc<Slab>>,
    /// The last slab the CPU freed an object of on the slow path: objects allocated on
    /// another CPU (a completion, a remote free) usually come back in runs from the same
    /// slab, and while the slab is pinned here its range can only hold its own objects,
    /// so the next frees of the run need no lookup and no lock.
    remote: Option<Arc<Slab>>,
}

/// Which of a CPU's slabs.
#[derive(Clone, Copy)]
enum Which {
    Current = 0,
    Remote = 1,
}

impl CpuSlabs {
    fn get(&mut self, which: Which) -> &mut Option<Arc<Slab>> {
        match which {
            Which::Current => &mut self.current,
            Which::Remote => &mut self.remote,
        }
    }
}

/// A CPU's work on its current and remote slab: written by the CPU in its slot (see
/// [`PerCpu`]), read by anyone.
struct CpuShared {
    allocs: CpuCounter,
    frees: CpuCounter,
    /// Free objects of the current slab that only this CPU hands out (bit `i`: object
    /// `i`). Atomic only so that frees on other CPUs may read it; the CPU changes it
    /// with plain loads and stores.
    own: AtomicU64,
    /// Direct map addresses of the current and remote slab as [`hint`]s (0: none), read
    /// without taking the CPU's slot: they tell `kfree_decrypted()` which cache to try,
    /// checked again in the slot.
    at: [AtomicUsize; 2],
    /// Sequence count of the current slab: odd while it changes. A reader that sees the
    /// same even count before and after reading `at` and `own` knows that `own` was
    /// the set of the slab at `at[0]`.
    seq: AtomicU32,
}

/// A slab's address as [`CpuShared::at`] keeps it, and back (the inversion is its own
/// inverse): inverted, so that kmemleak does not take it for a reference to the slab's
/// first object (see [`MappedBytes`]). 0, for no slab, reads back as an address no
/// object has.
#[inline(always)]
fn hint(addr: usize) -> usize {
    !addr
}

impl CpuShared {
    /// Whether object bit `bit` of the slab at `at` is in this CPU's private set. A
    /// read from another CPU: `false` when the set is changing hands.
    fn owns(&self, at: usize, bit: u64) -> bool {
        let seq = self.seq.load(Acquire);
        let held = self.at[Which::Current as usize].load(Relaxed) == hint(at)
            && self.own.load(Relaxed) & bit != 0;
        fence(Acquire);
        held && seq % 2 == 0 && self.seq.load(Relaxed) == seq
    }
}

/// Makes `slab` the `which` slab of the CPU of `cpu`, `this`; returns the one it
/// replaces. A current slab leaving the CPU takes the CPU's private set back into its
/// `free`; the second value has the objects that were in both (see [`Slab`]).
fn set_slab(
    cpu: &mut CpuLocal<'_, CpuSlabs, CpuShared>,
    this: Option<&ThisCpu>,
    which: Which,
    slab: Option<Arc<Slab>>,
) -> (Option<Arc<Slab>>, u64) {
    let at = slab.as_ref().map_or(0, |s| hint(s.bytes.addr()));
    let shared = cpu.shared();
    let mut overlap = 0;
    if let Which::Current = which {
        let seq = shared.seq.load(Relaxed);
        shared.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        if let Some(old) = &cpu.current {
            let own = shared.own.load(Relaxed);
            overlap = old.free.fetch_or(own, Release) & own;
            old.owner.store(0, Relaxed);
        }
        shared.own.store(0, Relaxed);
        shared.at[which as usize].store(at, Relaxed);
        if let (Some(slab), Some(this)) = (&slab, this) {
            slab.owner.store(this.id() as u32 + 1, Relaxed);
        }
        shared.seq.store(seq.wrapping_add(2), Release);
    } else {
        shared.at[which as usize].store(at, Relaxed);
    }
    (core::mem::replace(cpu.get(which), slab), overlap)
}

/// Why an object free was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BadObjFree {
    /// Not in any slab of this cache (another kind of memory, another cache).
    NotOurs,
    /// Inside a slab but not at the start of an object.
    Interior,
    /// The object is already free.
    DoubleFree,
}

/// A cache of decrypted objects of one size.
///
/// Each CPU has a current slab, pinned so that it stays while the CPU uses it: objects
/// are allocated from it, and freed to it, with preemption off and no lock. It also
/// keeps the last slab it freed to on the slow path pinned as its remote slab, for
/// frees only. Everything else goes through the node's slab list under its lock.
pub(crate) struct ObjCache {
    name: KVec<u8>,
    tag: u16,
    /// Bytes between objects: the object size rounded up to the alignment.
    size: usize,
    /// The object size the cache was made for.
    object_size: usize,
    /// `size` is `1 << size_shift`, if a power of two.
    size_shift: Option<u32>,
    slab_order: u32,
    objs_per_slab: usize,
    /// Bytes of a slab.
    slab_bytes: usize,
    /// The free bits of an empty slab.
    all_free: u64,
    pages: Arc<PageAllocator>,
    nodes: PerNode<CacheNode>,
    /// Each CPU's current and remote slab.
    cpus: PerCpu<CpuSlabs, CpuShared>,
    /// Event counters.
    pub(crate) stats: CacheStats,
}

/// GFP flags objects refuse, with a one-time warning and `NULL`: the zones and
/// `__GFP_NOFAIL` as for pages (see [`crate::pages::REFUSED_GFP`]), and `__GFP_ACCOUNT`:
/// objects are not charged to a memory cgroup one by one, and charging a whole slab to
/// whoever grew it would be wrong. `__GFP_COMP` is ignored, as kmalloc() does.
pub(crate) const REFUSED_GFP: bindings::gfp_t =
    bindings::__GFP_DMA | bindings::__GFP_DMA32 | bindings::__GFP_NOFAIL | bindings::__GFP_ACCOUNT;

/// Whether objects may be allocated with `gfp`; warns once if not.
fn gfp_allowed(gfp: bindings::gfp_t) -> bool {
    if gfp & REFUSED_GFP == 0 {
        return true;
    }
    pr_warn_once!(
        "kmalloc_decrypted: GFP flags {:#x} refused (__GFP_DMA, __GFP_DMA32, __GFP_NOFAIL \
         and __GFP_ACCOUNT are not supported for objects)\n",
        gfp & REFUSED_GFP
    );
    false
}

/// Object stride and slab order for objects of `size` aligned to `align`.
pub(crate) fn geometry(size: usize, align: usize) -> Option<(usize, u32)> {
    if size == 0 || !align.is_power_of_two() && align != 0 {
        return None;
    }
    let align = align.max(MIN_SIZE);
    // Aligned to its size up to a page: round up to a power of two below a page.
    let stride = if size <= PAGE_SIZE {
        size.next_power_of_two().max(align)
    } else {
        size.checked_next_multiple_of(PAGE_SIZE.max(align))?
    };
    if align > PAGE_SIZE && stride % align != 0 {
        return None;
    }
    // At least four objects per slab, at most 64, slabs of at least four pages.
    let mut order = 2u32;
    while (PAGE_SIZE << order) / stride < 4 {
        order += 1;
    }
    while (PAGE_SIZE << order) / stride > MAX_OBJS && order > 0 {
        order -= 1;
    }
    (order <= sys::block_order()).then_some((stride, order))
}

impl ObjCache {
    /// A cache of objects of `size` bytes aligned to `align` (0: the default) on the
    /// decrypted memory of `pages`, identified there by `tag`.
    pub(crate) fn new(
        name: &[u8],
        size: usize,
        align: usize,
        tag: u16,
        pages: &Arc<PageAllocator>,
    ) -> Result<Self> {
        let (stride, slab_order) = geometry(size, align).ok_or(EINVAL)?;
        let objs_per_slab = (PAGE_SIZE << slab_order) / stride;
        let all_free = u64::MAX >> (MAX_OBJS - objs_per_slab);
        let nodes = new_per_node!(|| CacheNode::new(all_free), c"unmapped_alloc_cache_node")?;
        let cpus = PerCpu::new(|| {
            (
                CpuSlabs::default(),
                CpuShared {
                    allocs: CpuCounter::new(),
                    frees: CpuCounter::new(),
                    own: AtomicU64::new(0),
                    at: [AtomicUsize::new(0), AtomicUsize::new(0)],
                    seq: AtomicU32::new(0),
                },
            )
        })?;
        let mut n = KVec::new();
        n.extend_from_slice(name, GFP_KERNEL)?;
        Ok(Self {
            name: n,
            tag,
            size: stride,
            object_size: size,
            size_shift: stride.is_power_of_two().then(|| stride.trailing_zeros()),
            slab_order,
            objs_per_slab,
            slab_bytes: PAGE_SIZE << slab_order,
            all_free,
            pages: pages.clone(),
            nodes,
            cpus,
            stats: CacheStats {
                slow_allocs: Counter::new(),
                slow_frees: Counter::new(),
                slabs_created: Counter::new(),
                slabs_freed: Counter::new(),
                failures: Counter::new(),
                atomic_failures: Counter::new(),
                bad_frees: Counter::new(),
                bad_requests: Counter::new(),
            },
        })
    }

    /// Object size (and stride) in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The cache's name.
    pub(crate) fn name(&self) -> &str {
        core::str::from_utf8(&self.name).unwrap_or("?")
    }

    /// Alignment of every object.
    pub(crate) fn align(&self) -> usize {
        if self.size <= PAGE_SIZE {
            self.size
        } else {
            PAGE_SIZE
        }
    }

    /// Tag of the cache's slabs in the page allocator.
    pub(crate) fn tag(&self) -> u16 {
        self.tag
    }

    /// Objects handed out.
    pub(crate) fn allocs(&self) -> u64 {
        let fast: u64 = self.cpus.shared().map(|c| c.allocs.get()).sum();
        fast + self.stats.slow_allocs.get()
    }

    /// Objects freed.
    pub(crate) fn frees(&self) -> u64 {
        let fast: u64 = self.cpus.shared().map(|c| c.frees.get()).sum();
        fast + self.stats.slow_frees.get()
    }

    /// Pages of a slab.
    pub(crate) fn slab_pages(&self) -> usize {
        1 << self.slab_order
    }

    fn node(&self, nid: i32) -> Option<&IrqSpinLock<CacheNode>> {
        self.nodes.get(nid)
    }

    /// Index of the object at byte `offset` of a slab.
    #[inline(always)]
    fn index(&self, offset: usize) -> core::result::Result<usize, BadObjFree> {
        let (i, rest) = match self.size_shift {
            Some(s) => (offset >> s, offset & (self.size - 1)),
            None => (offset / self.size, offset % self.size),
        };
        if rest != 0 || i >= self.objs_per_slab {
            return Err(BadObjFree::Interior);
        }
        Ok(i)
    }

    /// The address of object `i` of `slab`, zeroed first with `zero`.
    #[inline(always)]
    fn object(&self, slab: &Slab, i: usize, zero: bool) -> Option<usize> {
        // `i` is below 64: no overflow, and `sub()` and `zero()` check the bounds.
        let offset = i.wrapping_mul(self.size);
        let addr = slab.bytes.sub(offset, self.size)?;
        if zero {
            sys::detectors::slot_usable(addr, self.size);
            if !slab.bytes.zero(offset, self.size) {
                return None;
            }
        }
        Some(addr)
    }

    fn is_empty(&self, slab: &Slab) -> bool {
        slab.free.load(Relaxed) == self.all_free
    }

    /// Claims an object of an unpinned slab of node `nid`, zeroed with `zero`. With
    /// `pin`, the slab is pinned and returned, to become the caller's current slab.
    fn take(&self, nid: i32, pin: bool, zero: bool) -> Option<(usize, Option<Arc<Slab>>)> {
        let mut node = self.node(nid)?.lock();
        // Closed meanwhile (see `alloc_slow()`): checked again under the lock.
        if self.pages.is_shut_down() {
            return None;
        }
        let i = CacheNode::first(&node.avail, None)?;
        let slab = node.slabs[i].clone();
        // Unpinned, with a free object, and only changed under the lock: cannot fail.
        let obj = slab.claim()?;
        if pin {
            slab.pin(1);
        }
        node.refresh(i);
        drop(node);
        let addr = self.object(&slab, obj, zero)?;
        Some((addr, pin.then_some(slab)))
    }

    /// Adds a new slab with object 0 taken; pinned and returned as in [`Self::take`].
    fn grow(
        &self,
        nid: i32,
        gfp: bindings::gfp_t,
        pin: bool,
    ) -> Option<(usize, Option<Arc<Slab>>)> {
        let base = self.pages.alloc(nid, gfp, self.slab_order, true)?;
        self.pages.set_tag(base, self.slab_order, self.tag);
        sys::detectors::slab_created(base.virt(), self.slab_bytes);
        let flags = if sys::gfp_allows_blocking(gfp) {
            GFP_KERNEL
        } else {
            GFP_ATOMIC
        };
        let slab = self
            .pages
            .mapped(base, self.slab_order, 0, PAGE_SIZE << self.slab_order)
            .and_then(|bytes| {
                Arc::new(
                    Slab {
                        base,
                        nid: base.nid(),
                        bytes,
                        free: AtomicU64::new(self.all_free & !1),
                        pins: AtomicU32::new(u32::from(pin)),
                        owner: AtomicU32::new(0),
                    },
                    flags,
                )
                .ok()
            });
        let inserted = slab.and_then(|slab| {
            self.node(slab.nid)?.lock().insert(slab.clone())?;
            Some(slab)
        });
        let Some(slab) = inserted else {
            let _ = self.pages.free_tagged(base, self.slab_order, self.tag);
            return None;
        };
        self.stats.slabs_created.inc();
        let addr = self.object(&slab, 0, gfp & bindings::__GFP_ZERO != 0)?;
        Some((addr, pin.then_some(slab)))
    }

    /// Allocates an object on node `nid`; zeroed when `gfp` has `__GFP_ZERO`. Returns its
    /// direct map address.
    #[inline(always)]
    pub(crate) fn alloc(&self, nid: i32, gfp: bindings::gfp_t) -> Option<usize> {
        self.alloc_sized(nid, gfp, self.object_size)
    }

    /// [`Self::alloc`] for a caller that will use `size` bytes, at most the object size:
    /// the bug detectors see the rest of the object as a redzone.
    #[inline(always)]
    pub(crate) fn alloc_sized(&self, nid: i32, gfp: bindings::gfp_t, size: usize) -> Option<usize> {
        let gfp = if crate::mutant::is(crate::mutant::Mutant::SkipObjectZero) {
            gfp & !bindings::__GFP_ZERO
        } else {
            gfp
        };
        if gfp & (REFUSED_GFP | bindings::__GFP_COMP) != 0 {
            return self.alloc_odd_gfp(nid, gfp, size);
        }
        let zero = gfp & bindings::__GFP_ZERO != 0;
        let cpu = sys::PreemptOff::new();
        let local = self.alloc_local(cpu.this(), nid, zero);
        drop(cpu);
        let addr = local.or_else(|| self.alloc_slow(nid, gfp))?;
        sys::detectors::handed_out(
            addr,
            size.min(self.size),
            self.size,
            Redzone::Slot,
            gfp,
            self.pages.registers_objects(),
        );
        Some(addr)
    }

    /// [`Self::alloc`] with flags that are refused, or ignored as kmalloc() ignores
    /// `__GFP_COMP`.
    #[cold]
    #[inline(never)]
    fn alloc_odd_gfp(&self, nid: i32, gfp: bindings::gfp_t, size: usize) -> Option<usize> {
        if !gfp_allowed(gfp) {
            self.stats.bad_requests.inc();
            return None;
        }
        self.alloc_sized(nid, gfp & !bindings::__GFP_COMP, size)
    }

    /// Allocates from this CPU's current slab, if it is on node `nid` and has a free
    /// object; zeroed with `zero`.
    #[inline(always)]
    fn alloc_local(&self, this: &ThisCpu, nid: i32, zero: bool) -> Option<usize> {
        let cpu = self.cpus.local(this)?;
        let slab = cpu.current.as_ref()?;
        if nid != NUMA_NO_NODE && nid != slab.nid {
            return None;
        }
        let shared = cpu.shared();
        let mut own = shared.own.load(Relaxed);
        // One test for both: the set is empty, or holds an object that is in `free` too,
        // freed twice at once (see `Slab`), which must not be handed out from here.
        if (own == 0) | (own & slab.free.load(Relaxed) != 0) {
            own = self.refill(slab, own);
            if own == 0 {
                shared.own.store(0, Relaxed);
                return None;
            }
        }
        let bit = own & own.wrapping_neg();
        shared.own.store(own & !bit, Relaxed);
        shared.allocs.inc();
        self.object(slab, bit.trailing_zeros() as usize, zero)
    }

    /// The private set `own` of `slab`, its CPU's current slab, cannot serve as it is:
    /// drops the objects that are in `free` too (they stay free there, and are reported),
    /// then, if nothing is left, takes everything freed to the slab elsewhere since the
    /// last refill. Returns the new set, 0 if the slab has nothing free.
    #[cold]
    #[inline(never)]
    fn refill(&self, slab: &Slab, mut own: u64) -> u64 {
        if self.pages.is_shut_down() {
            // Closed: what is left of the set goes back to the slab, free.
            slab.free.fetch_or(own, Release);
            return 0;
        }
        loop {
            let both = own & slab.free.load(Relaxed);
            self.freed_twice(slab, both);
            own &= !both;
            if own != 0 {
                return own;
            }
            own = if crate::mutant::is(crate::mutant::Mutant::RefillRace) {
                // A free on another CPU between the two is lost; the delay widens
                // the window so that the concurrency tests hit it.
                let own = slab.free.load(Acquire);
                for _ in 0..1000 {
                    core::hint::spin_loop();
                }
                slab.free.store(0, Relaxed);
                own
            } else {
                slab.free.swap(0, Acquire)
            };
            if own == 0 {
                return 0;
            }
        }
    }

    /// Allocates from the slab lists, or a new slab. A slab of this CPU's node becomes
    /// its current slab.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, nid: i32, gfp: bindings::gfp_t) -> Option<usize> {
        // Closed (see `close()`): not even from slabs that exist.
        if self.pages.is_shut_down() {
            self.stats.failures.inc();
            return None;
        }
        let local = sys::local_node();
        let nid = if nid == NUMA_NO_NODE { local } else { nid };
        let pin = nid == local;
        let nodes = self.nodes.len() as i32;
        let thisnode = gfp & bindings::__GFP_THISNODE != 0;
        let zero = gfp & bindings::__GFP_ZERO != 0;
        let got = self
            .take(nid, pin, zero)
            .or_else(|| self.grow(nid, gfp, pin))
            .or_else(|| {
                // Another node's free objects before failing.
                (0..nodes)
                    .filter(|&n| n != nid && !thisnode)
                    .find_map(|n| self.take(n, false, zero))
            });
        let Some((obj, pinned)) = got else {
            if sys::gfp_allows_blocking(gfp) {
                self.stats.failures.inc();
            } else {
                self.stats.atomic_failures.inc();
            }
            return None;
        };
        self.stats.slow_allocs.inc();
        if let Some(slab) = pinned {
            self.install(slab, Which::Current);
        }
        Some(obj)
    }

    /// Makes `slab`, pinned by the caller, this CPU's current or remote slab (`which`)
    /// and drops the pin of the slab it replaces. If this interrupted the CPU's own use
    /// of its slabs, `slab` is unpinned instead.
    fn install(&self, slab: Arc<Slab>, which: Which) {
        // Not once the cache is closed: with preemption off, either `close()`'s drain
        // on this CPU comes after and takes the slab away, or this sees the flag.
        let (old, both) = sys::on_this_cpu(|this| match self.cpus.local(this) {
            Some(mut cpu) if !self.pages.is_shut_down() => {
                set_slab(&mut cpu, Some(this), which, Some(slab))
            }
            _ => (Some(slab), 0),
        });
        if let Some(old) = old {
            self.freed_twice(&old, both);
            self.unpin(old, true);
        }
    }

    /// Reports objects `both` of `slab` that were freed twice at the same moment, each
    /// free unable to see the other (see [`Slab`]): one refused free per object. They
    /// are free once.
    fn freed_twice(&self, slab: &Slab, both: u64) {
        if both == 0 {
            return;
        }
        // One refused free per object.
        self.stats.bad_frees.add(u64::from(both.count_ones()));
        sys::report_bad_free(format_args!(
            "{}: objects {:#x} of slab {:#x} were freed twice at once\n",
            core::str::from_utf8(&self.name).unwrap_or("?"),
            both,
            slab.bytes.addr()
        ));
    }

    /// Drops a CPU's pin of `slab`. With `give_back`, an empty slab goes back to the page
    /// allocator unless it is its node's only empty slab.
    fn unpin(&self, slab: Arc<Slab>, give_back: bool) {
        let Some(node) = self.node(slab.nid) else {
            return;
        };
        let spare = {
            let mut node = node.lock();
            slab.pin(-1);
            let i = node.find(slab.base, self.slab_pages());
            if let Some(i) = i {
                node.refresh(i);
            }
            i.filter(|_| give_back)
                .and_then(|i| self.remove_spare(&mut node, i))
        };
        drop(slab);
        if let Some(base) = spare {
            self.give_back(base);
        }
    }

    /// Removes slab `i` if it is empty, unpinned and not the node's only such slab.
    fn remove_spare(&self, node: &mut CacheNode, i: usize) -> Option<Pfn> {
        let slab = &node.slabs[i];
        if slab.pinned() || !self.is_empty(slab) {
            return None;
        }
        CacheNode::first(&node.empty, Some(i))?;
        node.remove(i).map(|s| s.base)
    }

    fn give_back(&self, base: Pfn) {
        // Ours and tagged: the page allocator cannot refuse it.
        let _ = self.pages.free_tagged(base, self.slab_order, self.tag);
        self.stats.slabs_freed.inc();
    }

    /// Frees the object at `addr`. Any context. Bad pointers change nothing.
    #[inline]
    pub(crate) fn free(&self, addr: usize) -> core::result::Result<(), BadObjFree> {
        let cpu = sys::PreemptOff::new();
        let local = self.free_local(cpu.this(), addr);
        drop(cpu);
        let r = local.unwrap_or_else(|| self.free_slow(addr));
        if let Err(e) = r {
            self.stats.bad_frees.inc();
            sys::report_bad_free(format_args!(
                "{}: refused to free {:#x}: {:?}\n",
                core::str::from_utf8(&self.name).unwrap_or("?"),
                addr,
                e
            ));
        }
        r
    }

    /// Frees `addr` to this CPU's current or remote slab; `None` if it is in neither.
    /// Both are pinned, so their ranges hold nothing but their own objects.
    #[inline(always)]
    fn free_local(
        &self,
        this: &ThisCpu,
        addr: usize,
    ) -> Option<core::result::Result<(), BadObjFree>> {
        let cpu = self.cpus.local(this)?;
        let shared = cpu.shared();
        // `addr`'s offset in `slab`, if it is inside it.
        let offset_in = |slab: &Slab| {
            let offset = addr.wrapping_sub(slab.bytes.addr());
            (offset < self.slab_bytes).then_some(offset)
        };
        let current = cpu.current.as_ref().and_then(|s| Some((s, offset_in(s)?)));
        let r = match current {
            Some((slab, offset)) => self.index(offset).and_then(|i| {
                // To the private set: not there, and not freed elsewhere either.
                let bit = 1u64 << i;
                let own = shared.own.load(Relaxed);
                if (own | slab.free.load(Relaxed)) & bit != 0
                    && !crate::mutant::is(crate::mutant::Mutant::LocalDoubleFree)
                {
                    return Err(BadObjFree::DoubleFree);
                }
                sys::detectors::object_freed(addr, self.size, self.pages.registers_objects());
                shared.own.store(own | bit, Relaxed);
                Ok(())
            }),
            None => {
                let slab = cpu.remote.as_ref()?;
                self.index(offset_in(slab)?).and_then(|i| self.put(slab, i))
            }
        };
        if r.is_ok() {
            shared.frees.inc();
        }
        Some(r)
    }

    /// Marks object `i` of `slab` free in its `free`, unless it is free already there or
    /// in the private set of the slab's owner. The owner's set is read without its
    /// CPU, so a free there at the same moment is missed; the owner finds the object in
    /// both before it hands it out or when the slab leaves it, and reports it (see
    /// [`Slab`]).
    fn put(&self, slab: &Slab, i: usize) -> core::result::Result<(), BadObjFree> {
        let bit = 1u64 << i;
        let mut old = slab.free.load(Relaxed);
        let mut seen = false;
        loop {
            if (old & bit != 0 || self.owner_holds(slab, bit))
                && !crate::mutant::is(crate::mutant::Mutant::RemoteDoubleFree)
            {
                return Err(BadObjFree::DoubleFree);
            }
            // Before the object can be taken again, once.
            if !seen {
                seen = true;
                sys::detectors::object_freed(
                    slab.bytes.addr() + i * self.size,
                    self.size,
                    self.pages.registers_objects(),
                );
            }
            // Fails, and checks again, if the owner gave its set back meanwhile.
            match slab.free.compare_exchange(old, old | bit, Release, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => old = now,
            }
        }
    }

    /// Whether object bit `bit` of `slab` is in its owner's private set.
    fn owner_holds(&self, slab: &Slab, bit: u64) -> bool {
        let owner = slab.owner.load(Relaxed) as usize;
        owner != 0
            && self
                .cpus
                .shared_at(owner - 1)
                .is_some_and(|cpu| cpu.owns(slab.bytes.addr(), bit))
    }

    /// Whether `addr` may be in this CPU's current or remote slab, from the hints in
    /// [`CpuShared`], read without taking the CPU's slot: an interrupt may change the
    /// slabs at any time, so only [`Self::free_local`] can tell.
    #[inline(always)]
    fn may_hold_local(&self, this: &ThisCpu, addr: usize) -> bool {
        self.cpus.shared_of(this).is_some_and(|cpu| {
            cpu.at
                .iter()
                .any(|at| addr.wrapping_sub(hint(at.load(Relaxed))) < self.slab_bytes)
        })
    }

    #[cold]
    #[inline(never)]
    fn free_slow(&self, addr: usize) -> core::result::Result<(), BadObjFree> {
        let pfn = Pfn::of_virt(addr).ok_or(BadObjFree::NotOurs)?;
        let (head, _, tag) = self.pages.chunk_of(pfn).ok_or(BadObjFree::NotOurs)?;
        if tag != self.tag {
            return Err(BadObjFree::NotOurs);
        }
        self.free_in_slab(addr, head)
    }

    /// Frees the object at `addr` of the slab whose first page is `head`, which the
    /// caller found tagged with this cache.
    fn free_in_slab(&self, addr: usize, head: Pfn) -> core::result::Result<(), BadObjFree> {
        let (spare, remote) = {
            let mut node = self.node(head.nid()).ok_or(BadObjFree::NotOurs)?.lock();
            let i = node
                .find(head, self.slab_pages())
                .ok_or(BadObjFree::NotOurs)?;
            let slab = &node.slabs[i];
            let obj = self.index(addr.wrapping_sub(slab.bytes.addr()))?;
            self.put(slab, obj)?;
            if self.is_empty(&node.slabs[i]) {
                node.refresh(i);
                // Keep one empty slab per node; give further ones back.
                (self.remove_spare(&mut node, i), None)
            } else {
                // More of its objects are out: pin it as this CPU's remote slab.
                let slab = node.slabs[i].clone();
                slab.pin(1);
                node.refresh(i);
                (None, Some(slab))
            }
        };
        self.stats.slow_frees.inc();
        if let Some(base) = spare {
            self.give_back(base);
        }
        if let Some(slab) = remote {
            self.install(slab, Which::Remote);
        }
        Ok(())
    }

    /// Whether `addr` is the start of an allocated object of the slab whose first
    /// page is `head`, which the caller found tagged with this cache. Like `ksize()`,
    /// the answer is only stable while the caller owns the object.
    fn is_live_in_slab(&self, addr: usize, head: Pfn) -> bool {
        let Some(node) = self.node(head.nid()) else {
            return false;
        };
        let node = node.lock();
        let Some(i) = node.find(head, self.slab_pages()) else {
            return false;
        };
        let slab = &node.slabs[i];
        self.index(addr.wrapping_sub(slab.bytes.addr()))
            .is_ok_and(|obj| {
                let bit = 1u64 << obj;
                slab.free.load(Relaxed) & bit == 0 && !self.owner_holds(slab, bit)
            })
    }

    /// Takes every CPU's current and remote slab away from it; empty ones go back.
    fn drain_cpus(&self) {
        self.cpus.each_cpu(
            |cpu| {
                [
                    set_slab(cpu, None, Which::Current, None),
                    set_slab(cpu, None, Which::Remote, None),
                ]
            },
            |slabs| {
                for (slab, both) in slabs {
                    if let Some(slab) = slab {
                        self.freed_twice(&slab, both);
                        self.unpin(slab, true);
                    }
                }
            },
        );
    }

    /// Closes the cache once its page allocator is shut down
    /// ([`PageAllocator::shut_down`]): takes every CPU's slabs away, and from then on
    /// every allocation is refused (frees still work). Sleeps.
    pub(crate) fn close(&self) {
        self.drain_cpus();
    }

    /// Gives every empty slab back to the page allocator, the CPUs' current ones too.
    pub(crate) fn shrink(&self) -> usize {
        self.drain_cpus();
        let mut freed = 0;
        for node in self.nodes.iter() {
            loop {
                let victim = {
                    let mut node = node.lock();
                    CacheNode::first(&node.empty, None)
                        .and_then(|i| node.remove(i))
                        .map(|s| s.base)
                };
                let Some(base) = victim else { break };
                self.give_back(base);
                freed += 1;
            }
        }
        freed
    }

    /// Checks every node's bitmaps against the slabs' states.
    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    fn check_nodes(&self) -> Result {
        use crate::testutil::ensure_eq;
        for node in self.nodes.iter() {
            let node = node.lock();
            for (i, s) in node.slabs.iter().enumerate() {
                let bit = |bits: &KVec<u64>| bits[i / 64] >> (i % 64) & 1 != 0;
                let free = s.free.load(Relaxed);
                ensure_eq!(bit(&node.avail), (!s.pinned() && free != 0));
                ensure_eq!(bit(&node.empty), (!s.pinned() && free == self.all_free));
            }
        }
        Ok(())
    }

    /// Active and total objects, and slabs, over all nodes.
    pub(crate) fn usage(&self) -> (usize, usize, usize) {
        let mut slabs = 0;
        let mut free = 0;
        for node in self.nodes.iter() {
            let node = node.lock();
            slabs += node.slabs.len();
            free += node
                .slabs
                .iter()
                .map(|s| s.free.load(Relaxed).count_ones() as usize)
                .sum::<usize>();
        }
        // And the CPUs' private sets; a set moving to its slab meanwhile may be seen
        // twice.
        free += self
            .cpus
            .shared()
            .map(|c| c.own.load(Relaxed).count_ones() as usize)
            .sum::<usize>();
        let total = slabs * self.objs_per_slab;
        (total.saturating_sub(free), total, slabs)
    }
}

/// The `kmalloc-decrypted-*` caches and large allocations on one decrypted page allocator.
pub(crate) struct KmallocDecrypted {
    pages: Arc<PageAllocator>,
    caches: KVec<ObjCache>,
    /// Large allocations served as pages.
    pub(crate) large_allocs: Counter,
    /// Large allocations freed.
    pub(crate) large_frees: Counter,
    /// `kfree_decrypted()` calls refused.
    pub(crate) bad_frees: Counter,
    /// Large allocations refused (flags, sizes past any order).
    pub(crate) bad_requests: Counter,
}

impl KmallocDecrypted {
    /// The caches on `pages`, which must be a decrypted page allocator.
    pub(crate) fn new(pages: &Arc<PageAllocator>) -> Result<Self> {
        let mut caches = KVec::new();
        for (i, &size) in KMALLOC_SIZES.iter().enumerate() {
            let mut name = KVec::new();
            name.extend_from_slice(b"kmalloc-decrypted-", GFP_KERNEL)?;
            let label: &[u8] = match size {
                256 => b"256",
                512 => b"512",
                1024 => b"1k",
                2048 => b"2k",
                4096 => b"4k",
                _ => b"8k",
            };
            name.extend_from_slice(label, GFP_KERNEL)?;
            caches.push(
                ObjCache::new(&name, size, 0, TAG_FIRST_CACHE + i as u16, pages)?,
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            pages: pages.clone(),
            caches,
            large_allocs: Counter::new(),
            large_frees: Counter::new(),
            bad_frees: Counter::new(),
            bad_requests: Counter::new(),
        })
    }

    #[cfg(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)]
    /// The page allocator underneath.
    pub(crate) fn pages(&self) -> &Arc<PageAllocator> {
        &self.pages
    }

    /// The caches, smallest first.
    pub(crate) fn caches(&self) -> &[ObjCache] {
        &self.caches
    }

    /// Allocations refused for their flags or size, by the caches and the large path.
    pub(crate) fn bad_requests(&self) -> u64 {
        let cached: u64 = self.caches.iter().map(|c| c.stats.bad_requests.get()).sum();
        cached + self.bad_requests.get()
    }

    /// The page order of a large object of `size` bytes; `None` past any order.
    fn large_order(size: usize) -> Option<u32> {
        size.div_ceil(PAGE_SIZE)
            .checked_next_power_of_two()
            .map(usize::trailing_zeros)
    }

    /// Allocates `size` bytes of decrypted memory, aligned to at least 256 bytes and to
    /// the size class up to a page. Returns the direct map address.
    #[inline(always)]
    pub(crate) fn alloc(&self, size: usize, nid: i32, gfp: bindings::gfp_t) -> Option<usize> {
        if size == 0 {
            return None;
        }
        // The classes are the powers of two from `KMALLOC_SIZES[0]`: no search. A size
        // past the largest power of two is past any order too.
        let Some(rounded) = size.max(KMALLOC_SIZES[0]).checked_next_power_of_two() else {
            return self.alloc_large(size, nid, gfp);
        };
        let class = rounded.trailing_zeros() - KMALLOC_SIZES[0].trailing_zeros();
        if let Some(c) = self.caches.get(class as usize) {
            let addr = c.alloc_sized(nid, gfp, size)?;
            sys::trace::kmalloc(addr, size, c.size(), gfp);
            return Some(addr);
        }
        self.alloc_large(size, nid, gfp)
    }

    #[cold]
    #[inline(never)]
    fn alloc_large(&self, size: usize, nid: i32, gfp: bindings::gfp_t) -> Option<usize> {
        if !gfp_allowed(gfp) {
            self.bad_requests.inc();
            return None;
        }
        let gfp = gfp & !bindings::__GFP_COMP;
        let Some(order) = Self::large_order(size).filter(|&o| o <= self.pages.max_order()) else {
            self.bad_requests.inc();
            pr_warn_once!("kmalloc_decrypted: {} bytes is too large\n", size);
            return None;
        };
        // Decrypted pages are always zero when handed out.
        let pfn = self.pages.alloc(nid, gfp, order, true)?;
        self.pages.set_tag(pfn, order, TAG_LARGE);
        sys::detectors::handed_out(
            pfn.virt(),
            size,
            PAGE_SIZE << order,
            Redzone::Pages,
            gfp,
            self.pages.registers_objects(),
        );
        self.large_allocs.inc();
        sys::trace::kmalloc(pfn.virt(), size, PAGE_SIZE << order, gfp);
        Some(pfn.virt())
    }

    /// Frees memory from [`Self::alloc`]. Anything else is refused, reported once and
    /// left alone.
    #[inline(always)]
    pub(crate) fn free(&self, addr: usize) -> core::result::Result<(), BadObjFree> {
        // This CPU's current slabs first: no lookup, no lock. The hints pick the one
        // cache to try instead of taking every cache's slot in turn.
        let cpu = sys::PreemptOff::new();
        let this = cpu.this();
        let local = self
            .caches
            .iter()
            .find(|c| c.may_hold_local(this, addr))
            .and_then(|c| Some((c, c.free_local(this, addr)?)));
        drop(cpu);
        let r = match local {
            Some((_, Ok(()))) => Ok(()),
            Some((cache, Err(e))) => {
                cache.stats.bad_frees.inc();
                Err(e)
            }
            None => self.free_slow(addr),
        };
        match r {
            Ok(()) => sys::trace::kfree(addr),
            Err(e) => self.refused(addr, e),
        }
        r
    }

    #[cold]
    #[inline(never)]
    fn refused(&self, addr: usize, e: BadObjFree) {
        if e == BadObjFree::NotOurs && crate::mutant::is(crate::mutant::Mutant::ForeignFreeIgnored)
        {
            return;
        }
        self.bad_frees.inc();
        sys::report_bad_free(format_args!(
            "kfree_decrypted: refused {:#x}: {:?}\n",
            addr, e
        ));
    }

    #[cold]
    #[inline(never)]
    fn free_slow(&self, addr: usize) -> core::result::Result<(), BadObjFree> {
        let pfn = Pfn::of_virt(addr).ok_or(BadObjFree::NotOurs)?;
        let (head, order, tag) = self.pages.chunk_of(pfn).ok_or(BadObjFree::NotOurs)?;
        if tag == TAG_LARGE {
            if head.virt() != addr {
                return Err(BadObjFree::Interior);
            }
            // Unregistered before the pages can be handed out again; a refused free
            // leaves the object with its user, registered again.
            let registered =
                self.pages.registers_objects() && self.pages.range_of(head, order).is_some();
            sys::detectors::large_object_freed(addr, registered);
            if let Err(e) = self.pages.free_tagged(head, order, TAG_LARGE) {
                if e == BadFree::Referenced {
                    sys::detectors::large_object_kept(addr, PAGE_SIZE << order, registered);
                }
                return Err(BadObjFree::DoubleFree);
            }
            self.large_frees.inc();
            return Ok(());
        }
        let cache = self
            .caches
            .iter()
            .find(|c| c.tag() == tag)
            .ok_or(BadObjFree::NotOurs)?;
        let r = cache.free_in_slab(addr, head);
        if r.is_err() {
            cache.stats.bad_frees.inc();
        }
        r
    }

    /// Usable size of the live allocation at `addr`.
    pub(crate) fn usable_size(&self, addr: usize) -> Option<usize> {
        let (head, order, tag) = self.pages.chunk_of(Pfn::of_virt(addr)?)?;
        if tag == TAG_LARGE {
            return (head.virt() == addr).then_some(PAGE_SIZE << order);
        }
        let cache = self.caches.iter().find(|c| c.tag() == tag)?;
        cache.is_live_in_slab(addr, head).then(|| cache.size())
    }

    /// Closes every cache of the family, see [`ObjCache::close`].
    pub(crate) fn close(&self) {
        for c in self.caches.iter() {
            c.close();
        }
    }

    /// Gives empty slabs back, then lets the page allocator return free blocks.
    pub(crate) fn shrink(&self) {
        for c in self.caches.iter() {
            c.shrink();
        }
        self.pages.scrub_pending();
        self.pages.shrink(0);
    }
}
