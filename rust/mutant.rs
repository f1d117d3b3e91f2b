// SPDX-License-Identifier: GPL-2.0

//! Deliberate bugs, to show that the tests catch them (`make mutants`).
//!
//! A test that passes whatever the code does proves nothing. A kernel with the KUnit
//! suites built in takes `unmapped_alloc.mutant=N` on its command line and then breaks
//! one property of the component at one place, the N-th mutant of [`MUTANTS`]; the
//! suites boot again and must fail somewhere. `tools/testing/mutants.sh` boots every
//! mutant in turn and tabulates which tests each one made fail, and which tests no
//! mutant made fail. Without `CONFIG_UNMAPPED_ALLOC_KUNIT_TEST`, [`is`] is a constant
//! `false` and every mutation compiles away.

#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use kernel::prelude::*;

/// One deliberate bug; its number is its place in [`MUTANTS`], from 1.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mutant {
    /// Unmapped blocks stay in the direct map.
    KeepMapped,
    /// The TLB is not flushed after a block leaves the direct map.
    SkipFlush,
    /// Decrypted blocks are never shared with the host.
    SkipDecrypt,
    /// Blocks given back are not made private again first.
    SkipReencrypt,
    /// A block whose conversion failed goes back to the page allocator.
    ReleaseUnknown,
    /// Decrypted pages are handed out without being zeroed.
    SkipPageZero,
    /// Objects asked for with `__GFP_ZERO` are not zeroed.
    SkipObjectZero,
    /// The atomic reserve is never refilled.
    NoRefill,
    /// Shrinking gives nothing back.
    NoShrink,
    /// The per-CPU walk misses the last possible CPU.
    SkipLastCpu,
    /// The page allocators ignore the preferred node.
    IgnoreNode,
    /// The page state query says every page is not the component's.
    StateUnknown,
    /// KASAN's shadow is never changed.
    NoKasan,
    /// Objects are not registered with kmemleak.
    NoKmemleak,
    /// A scrubbed chunk is not merged with its free buddy.
    BuddyNoMerge,
    /// A split hands out the lower half and lists it free as well.
    SplitOverlap,
    /// The buddy allocator frees a chunk without checking that it is in use.
    BuddyUncheckedFree,
    /// The page state machine allows every transition.
    AnyTransition,
    /// Freed chunks are allocatable again at once, not scrubbed first.
    FreeSkipsDirty,
    /// Scrubbing marks chunks clean without zeroing them.
    ScrubNoZero,
    /// Pages of another kind (another cache's slabs, say) are accepted by a free.
    WrongKindAccepted,
    /// A free to this CPU's slab does not look for a double free.
    LocalDoubleFree,
    /// A free to another CPU's slab does not look for a double free.
    RemoteDoubleFree,
    /// A CPU takes its slab's remote frees with a load and a store, not a swap.
    RefillRace,
    /// The allocation tracepoint is never emitted.
    NoTracepoint,
    /// The tunables written to debugfs are not range-checked.
    TunablesUnchecked,
    /// Test reads of a page go through the direct map, not a temporary mapping.
    ReadViaDirectMap,
    /// Taking pages out of the direct map does nothing, and says it worked.
    UnmapIgnored,
    /// Giving a block back while a range still names it says it worked (and leaks it).
    ReleaseWhileUsed,
    /// The frame of a `struct page` is one too far.
    OfPageOffByOne,
    /// Making pages private again reports a failure even when it worked.
    EncryptReportsFailure,
    /// `kfree_decrypted()` of memory that is not the component's is silently ignored.
    ForeignFreeIgnored,
    /// The C API's `unmapped_alloc*()` return `NULL` for every request (secretmem's
    /// faults then find no page).
    CUnmappedAllocFails,
}

/// Every mutant, in order of their numbers, with the name `make mutants` prints.
pub(crate) const MUTANTS: &[(Mutant, &str)] = &[
    (Mutant::KeepMapped, "keep_mapped"),
    (Mutant::SkipFlush, "skip_flush"),
    (Mutant::SkipDecrypt, "skip_decrypt"),
    (Mutant::SkipReencrypt, "skip_reencrypt"),
    (Mutant::ReleaseUnknown, "release_unknown"),
    (Mutant::SkipPageZero, "skip_page_zero"),
    (Mutant::SkipObjectZero, "skip_object_zero"),
    (Mutant::NoRefill, "no_refill"),
    (Mutant::NoShrink, "no_shrink"),
    (Mutant::SkipLastCpu, "skip_last_cpu"),
    (Mutant::IgnoreNode, "ignore_node"),
    (Mutant::StateUnknown, "state_unknown"),
    (Mutant::NoKasan, "no_kasan"),
    (Mutant::NoKmemleak, "no_kmemleak"),
    (Mutant::BuddyNoMerge, "buddy_no_merge"),
    (Mutant::SplitOverlap, "split_overlap"),
    (Mutant::BuddyUncheckedFree, "buddy_unchecked_free"),
    (Mutant::AnyTransition, "any_transition"),
    (Mutant::FreeSkipsDirty, "free_skips_dirty"),
    (Mutant::ScrubNoZero, "scrub_no_zero"),
    (Mutant::WrongKindAccepted, "wrong_kind_accepted"),
    (Mutant::LocalDoubleFree, "local_double_free"),
    (Mutant::RemoteDoubleFree, "remote_double_free"),
    (Mutant::RefillRace, "refill_race"),
    (Mutant::NoTracepoint, "no_tracepoint"),
    (Mutant::TunablesUnchecked, "tunables_unchecked"),
    (Mutant::ReadViaDirectMap, "read_via_direct_map"),
    (Mutant::UnmapIgnored, "unmap_ignored"),
    (Mutant::ReleaseWhileUsed, "release_while_used"),
    (Mutant::OfPageOffByOne, "of_page_off_by_one"),
    (Mutant::EncryptReportsFailure, "encrypt_reports_failure"),
    (Mutant::ForeignFreeIgnored, "foreign_free_ignored"),
    (Mutant::CUnmappedAllocFails, "c_unmapped_alloc_fails"),
];

/// The number of the active mutant, 0 for none; set once at boot.
static ACTIVE: AtomicU32 = AtomicU32::new(0);

/// Activates mutant `n` (0: none), as the command line asked; says so loudly, since the
/// kernel is then broken on purpose.
pub(crate) fn set(n: u32) {
    if n == 0 {
        return;
    }
    if !cfg!(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST) {
        pr_err!(
            "mutant={}: only kernels with the KUnit suites take mutants, ignored\n",
            n
        );
        return;
    }
    match MUTANTS.get(n as usize - 1) {
        Some((_, name)) => {
            pr_warn!(
                "MUTANT {} ({}): broken on purpose, for make mutants\n",
                n,
                name
            );
            ACTIVE.store(n, Relaxed);
        }
        None => pr_err!("mutant={}: no such mutant, {} exist\n", n, MUTANTS.len()),
    }
}

/// Whether the kernel was booted to have mutant `m`'s bug.
#[inline(always)]
pub(crate) fn is(m: Mutant) -> bool {
    cfg!(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)
        && MUTANTS
            .get((ACTIVE.load(Relaxed) as usize).wrapping_sub(1))
            .is_some_and(|&(active, _)| active == m)
}
