// SPDX-License-Identifier: GPL-2.0
/*
 * The helpers of unmapped_alloc's Rust code that sit on its allocation and
 * free paths: page and frame conversions, reference counts, the IRQ-safe
 * pool lock. They are among the kernel crate's helpers, so that
 * CONFIG_RUST_INLINE_HELPERS inlines them into the Rust callers instead of
 * leaving an out-of-line call for each (a lockdep assertion, empty without
 * lockdep, was one at 61 places). The other helpers stay with the component,
 * in mm/unmapped_alloc/helpers.c.
 */

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/preempt.h>
#include <linux/spinlock.h>
#include <linux/unmapped_alloc.h>

#ifdef CONFIG_UNMAPPED_ALLOC

__rust_helper unsigned long rust_helper_ua_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

__rust_helper struct page *rust_helper_ua_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

/* Direct map address of @pfn: used only while the page is mapped there. */
__rust_helper unsigned long rust_helper_ua_pfn_to_virt(unsigned long pfn)
{
	return (unsigned long)pfn_to_kaddr(pfn);
}

/* Frame of a direct map address, or -1 if @addr is not one. */
__rust_helper long rust_helper_ua_virt_to_pfn(unsigned long addr)
{
	if (!virt_addr_valid((void *)addr))
		return -1;
	return PHYS_PFN(__pa(addr));
}

__rust_helper bool rust_helper_ua_pfn_valid(unsigned long pfn)
{
	return pfn_valid(pfn);
}

__rust_helper int rust_helper_ua_pfn_to_nid(unsigned long pfn)
{
	return page_to_nid(pfn_to_page(pfn));
}

__rust_helper int rust_helper_ua_numa_node_id(void)
{
	return numa_node_id();
}

/* The reference count of the page at @pfn. */
__rust_helper int rust_helper_ua_page_refs(unsigned long pfn)
{
	return page_ref_count(pfn_to_page(pfn));
}

/*
 * Set the reference count of a page the component owns: 1 for the first
 * page of an allocation it hands out, 0 while the page is its own.
 */
__rust_helper void rust_helper_ua_page_set_refs(unsigned long pfn, int refs)
{
	set_page_count(pfn_to_page(pfn), refs);
}

__rust_helper bool rust_helper_ua_gfp_allows_blocking(gfp_t gfp)
{
	return gfpflags_allow_blocking(gfp);
}

/* Whether the caller may not sleep (needs CONFIG_PREEMPT_COUNT to see locks). */
__rust_helper bool rust_helper_ua_in_atomic(void)
{
	return !preemptible();
}

/*
 * Order of the blocks taken from the page allocator: a PMD (2 MiB) with
 * 4 KiB pages. With 16 KiB or 64 KiB pages a PMD maps 32 MiB or 512 MiB,
 * too much to take, convert and keep cached at once, so the blocks stay at
 * 2 MiB, which is a contiguous-PTE range (CONT_PTE) there.
 */
__rust_helper unsigned int rust_helper_ua_block_order(void)
{
	return UNMAPPED_ALLOC_MAX_ORDER;
}

__rust_helper unsigned long rust_helper_ua_spin_lock_irqsave(spinlock_t *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

__rust_helper void rust_helper_ua_spin_unlock_irqrestore(spinlock_t *lock,
							 unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

/* Nothing without lockdep: inlined, it costs nothing either. */
__rust_helper void rust_helper_ua_assert_spin_locked(spinlock_t *lock)
{
	lockdep_assert_held(lock);
}

#endif /* CONFIG_UNMAPPED_ALLOC */
