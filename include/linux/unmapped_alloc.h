/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Allocator for memory in a special direct map state: pages removed from
 * the kernel direct map, and memory shared with the host of a confidential
 * guest.
 *
 * The implementation is in Rust under mm/unmapped_alloc; this header is its
 * C interface.
 *
 * "Any context but NMI" below means the contexts kfree() may be called from:
 * the allocator's locks are spinlock_t, so on PREEMPT_RT not from a hard
 * interrupt handler that is not threaded.
 */
#ifndef _LINUX_UNMAPPED_ALLOC_H
#define _LINUX_UNMAPPED_ALLOC_H

#include <linux/gfp_types.h>
#include <linux/kconfig.h>
#include <linux/types.h>

struct page;

/*
 * Largest order served: one block, a PMD (2 MiB) with 4 KiB pages, and 2 MiB
 * (a contiguous-PTE range) where a PMD is larger (arm64 with 16 KiB or
 * 64 KiB pages: 32 MiB or 512 MiB).
 */
#define UNMAPPED_ALLOC_BLOCK_SHIFT	(PMD_SHIFT > 21 ? 21 : PMD_SHIFT)
#define UNMAPPED_ALLOC_MAX_ORDER	(UNMAPPED_ALLOC_BLOCK_SHIFT - PAGE_SHIFT)

/*
 * The contract of the page allocations below is alloc_pages()'s without
 * %__GFP_COMP, with these rules:
 *
 * - GFP flags. %__GFP_ZERO, %__GFP_THISNODE, %__GFP_ACCOUNT, %__GFP_NOWARN
 *   and the reclaim flags (%GFP_NOFS, %GFP_NOIO, sleeping or not) are
 *   honoured; %__GFP_HIGHMEM and %__GFP_MOVABLE are accepted (the pages are
 *   lowmem and unmovable). %__GFP_DMA, %__GFP_DMA32, %__GFP_COMP and
 *   %__GFP_NOFAIL are refused: %NULL, a one-time warning, and the
 *   "bad_requests" counter in debugfs.
 * - References. The first page of an allocation holds one reference, the
 *   others none, as alloc_pages() gives. A consumer may take and drop extra
 *   references (get_page()/put_page() of an sg list, a bio, a skb). The last
 *   reference is given back by the matching free, never by put_page(): a
 *   free while extra references remain, or while the pages are mapped into
 *   user space, is refused, reported and counted, and the pages stay
 *   allocated for good rather than being reused under their holders.
 * *   Page-cache consumers keep that reference while the folio is in a file
 *   (so that no folio_put() can send the page to the page allocator) and
 *   give it back after ->free_folio, with unmapped_try_free() (see
 *   mm/secretmem.c).
 * - Frees of the wrong kind (pages of the other kind, a slab's page, an
 *   interior page, another order, a double free) are refused and reported.
 */

/**
 * unmapped_alloc_node() - allocate pages that are not in the direct map
 * @nid: preferred node, or NUMA_NO_NODE
 * @gfp: allocation flags; %__GFP_ZERO is honoured, sleeping flags allow
 *       a new block to be taken and unmapped
 * @order: order of the allocation, at most %UNMAPPED_ALLOC_MAX_ORDER
 *
 * Return: the first page of 2^@order contiguous pages, none of which is
 * mapped in the kernel direct map, or %NULL. The pages never carry data of
 * a previous owner.
 */
struct page *unmapped_alloc_node(int nid, gfp_t gfp, unsigned int order);

/**
 * unmapped_alloc() - allocate pages that are not in the direct map
 * @gfp: allocation flags
 * @order: order of the allocation
 *
 * Like unmapped_alloc_node() on the local node.
 *
 * Return: the first page of 2^@order unmapped pages, or %NULL.
 */
struct page *unmapped_alloc(gfp_t gfp, unsigned int order);

/**
 * unmapped_alloc_noscrub() - allocate unmapped pages the caller initialises
 * @nid: preferred node, or NUMA_NO_NODE
 * @gfp: allocation flags
 * @order: order of the allocation
 *
 * For users that overwrite all of the memory before anything reads it, or
 * hand it to an entity that initialises it (the TDX module, for example):
 * the pages may hold data of a previous owner, and the cost of zeroing them
 * is saved. With %__GFP_ZERO this behaves like unmapped_alloc_node().
 *
 * Return: the first page of 2^@order unmapped pages, or %NULL.
 */
struct page *unmapped_alloc_noscrub(int nid, gfp_t gfp, unsigned int order);

/**
 * unmapped_free() - free pages from unmapped_alloc()
 * @page: first page, as returned by unmapped_alloc()
 * @order: the order it was allocated with
 *
 * May be called from any context but NMI. A page the allocator does not own, a
 * wrong order or a double free is reported with the caller's stack (rate
 * limited) and changes nothing.
 */
void unmapped_free(struct page *page, unsigned int order);

/**
 * unmapped_try_free() - free pages from unmapped_alloc() once nobody else holds them
 * @page: first page, as returned by unmapped_alloc()
 * @order: the order it was allocated with
 *
 * For pages that others may still reach for a moment, as page cache folios
 * are reached by lookups under RCU: while a reference beyond the one
 * unmapped_alloc() handed out remains (or a user space mapping), nothing
 * changes and nothing is reported, and the caller tries again later. The
 * check and the free are one atomic step on the reference count. Any other
 * refusal is reported as by unmapped_free(). Any context but NMI.
 *
 * Return: 0 when freed, -EBUSY while referenced, -EINVAL when refused.
 */
int unmapped_try_free(struct page *page, unsigned int order);

/**
 * alloc_decrypted_pages_node() - allocate pages shared with the host
 * @nid: preferred node, or NUMA_NO_NODE
 * @gfp: allocation flags; without sleeping flags only memory that is
 *       already decrypted is used, no conversion is attempted
 * @order: order of the allocation, at most %UNMAPPED_ALLOC_MAX_ORDER
 *
 * The pages stay in the direct map (page_address() works) but are
 * decrypted: in a confidential guest the host can read and write them.
 * They are zeroed. Memory is converted in blocks of 2 MiB.
 *
 * Return: the first page of 2^@order contiguous pages, or %NULL.
 */
struct page *alloc_decrypted_pages_node(int nid, gfp_t gfp, unsigned int order);

/**
 * alloc_decrypted_pages() - allocate pages shared with the host
 * @gfp: allocation flags
 * @order: order of the allocation
 *
 * Like alloc_decrypted_pages_node() on the local node.
 *
 * Return: the first page of 2^@order zeroed decrypted pages, or %NULL.
 */
struct page *alloc_decrypted_pages(gfp_t gfp, unsigned int order);

/**
 * free_decrypted_pages() - free pages from alloc_decrypted_pages()
 * @page: first page
 * @order: the order it was allocated with
 *
 * Any context but NMI. Pages of another kind, a wrong order or a double free are
 * reported with the caller's stack (rate limited) and change nothing.
 */
void free_decrypted_pages(struct page *page, unsigned int order);

/**
 * try_free_decrypted_pages() - free pages if they came from alloc_decrypted_pages()
 * @page: first page
 * @order: the order it was allocated with
 *
 * For a user that takes decrypted pages from the component when it can and
 * from elsewhere when it cannot (the DMA layer, whose devices' masks the
 * component may not meet): frees @page like free_decrypted_pages() if it
 * is in the component's decrypted memory, and otherwise changes and reports
 * nothing. Any context but NMI.
 *
 * Return: %true if the pages were the component's (freed, or refused and
 * reported as by free_decrypted_pages()), %false if they were not.
 */
bool try_free_decrypted_pages(struct page *page, unsigned int order);

/**
 * enum unmapped_page_state - what unmapped_alloc knows of a page
 * @UNMAPPED_PAGE_NOT_OWNED: not a page of the component
 * @UNMAPPED_PAGE_FREE: unmapped from the direct map, free in a cached block
 * @UNMAPPED_PAGE_USED: unmapped, handed out by unmapped_alloc()
 * @SHARED_PAGE_FREE: decrypted, free in a cached block or the atomic reserve
 * @SHARED_PAGE_USED: decrypted, handed out by alloc_decrypted_pages()
 * @UNMAPPED_ALLOC_PAGE_LEAKED: in a block whose conversion failed; its state
 *	is unknown and it is never used or freed again
 * @SHARED_PAGE_OBJECTS: decrypted, held by the kmalloc_decrypted() caches (a
 *	slab, or a large object); free_decrypted_pages() refuses it
 */
enum unmapped_page_state {
	UNMAPPED_PAGE_NOT_OWNED,
	UNMAPPED_PAGE_FREE,
	UNMAPPED_PAGE_USED,
	SHARED_PAGE_FREE,
	SHARED_PAGE_USED,
	UNMAPPED_ALLOC_PAGE_LEAKED,
	SHARED_PAGE_OBJECTS,
};

/**
 * unmapped_alloc_page_state() - the component's record of a page
 * @page: any page
 *
 * Any context but NMI. The record is the one the frees are validated against.
 *
 * Return: the page's state; %UNMAPPED_PAGE_NOT_OWNED for any page the
 * component does not hold.
 */
enum unmapped_page_state unmapped_alloc_page_state(const struct page *page);

/**
 * struct unmapped_alloc_counters - a snapshot of the component's counters
 * @unmapped_conversions: blocks removed from the direct map (one call each)
 * @unmapped_reversions: blocks whose direct map was restored
 * @unmapped_tlb_flushes: TLB flushes issued
 * @unmapped_held_pages: pages held in unmapped blocks
 * @unmapped_used_pages: unmapped pages handed out
 * @decrypted_conversions: set_memory_decrypted() calls
 * @decrypted_reversions: set_memory_encrypted() calls
 * @decrypted_pages_shared: pages those set_memory_decrypted() calls covered
 *	(in a pKVM guest, one MEM_SHARE hypercall per 4 KiB)
 * @decrypted_pages_unshared: pages set_memory_encrypted() calls covered
 * @decrypted_held_pages: pages held in decrypted blocks
 * @decrypted_used_pages: decrypted pages handed out (slabs included)
 * @unmapped_leaked_pages: unmapped pages whose direct map state is unknown
 *	after a failure, kept away from the page allocator for good
 * @decrypted_leaked_pages: decrypted pages whose encryption state is unknown
 *	after a failure, kept away from the page allocator for good
 * @atomic_failures: allocations in atomic context that found no memory
 * @shrinker_scans: calls of the component's shrinker by memory reclaim
 */
struct unmapped_alloc_counters {
	u64 unmapped_conversions;
	u64 unmapped_reversions;
	u64 unmapped_tlb_flushes;
	u64 unmapped_held_pages;
	u64 unmapped_used_pages;
	u64 decrypted_conversions;
	u64 decrypted_reversions;
	u64 decrypted_pages_shared;
	u64 decrypted_pages_unshared;
	u64 decrypted_held_pages;
	u64 decrypted_used_pages;
	u64 unmapped_leaked_pages;
	u64 decrypted_leaked_pages;
	u64 atomic_failures;
	u64 shrinker_scans;
};

/**
 * unmapped_alloc_read_counters() - take a snapshot of the counters
 * @c: filled in
 *
 * For monitoring and benchmarks; debugfs shows the same and more.
 */
void unmapped_alloc_read_counters(struct unmapped_alloc_counters *c);

/**
 * unmapped_alloc_drain() - give all free cached memory back
 *
 * Empty slabs, free blocks and the atomic reserve are converted back and
 * returned to the page allocator, like writing to the debugfs file
 * "shrink". May sleep.
 */
void unmapped_alloc_drain(void);

/**
 * unmapped_alloc_set_reserve() - set the decrypted atomic reserve
 * @low: refill when a node has fewer free decrypted pages
 * @high: refill up to this many, at most 64 MiB of pages per node
 *
 * A node already below @low is refilled by background work right away.
 *
 * Return: 0, or -EINVAL if @low is above @high or @high above 64 MiB.
 */
int unmapped_alloc_set_reserve(unsigned long low, unsigned long high);

/**
 * unmapped_alloc_get_reserve() - read the decrypted atomic reserve
 * @low: set to the refill threshold, in free decrypted pages per node
 * @high: set to the refill target
 *
 * For saving the watermarks before unmapped_alloc_set_reserve(); both are
 * 0 if the component did not initialise.
 */
void unmapped_alloc_get_reserve(unsigned long *low, unsigned long *high);

#if IS_ENABLED(CONFIG_UNMAPPED_ALLOC_BENCH)
/*
 * Benchmarks only: make every set_memory_decrypted/encrypted() call of the
 * real backend take @us microseconds more, standing in for the hypercall of
 * a confidential guest.
 */
void unmapped_alloc_set_sim_delay(unsigned int us);
#endif

/**
 * kmalloc_decrypted() - allocate memory shared with the host
 * @size: bytes; up to 8 KiB from the kmalloc-decrypted-* caches, larger
 *        requests as decrypted pages
 * @gfp: allocation flags; %__GFP_ZERO zeroes the object; without sleeping
 *       flags no memory is converted (the atomic reserve serves it);
 *       %__GFP_COMP is ignored as kmalloc() does; %__GFP_DMA, %__GFP_DMA32,
 *       %__GFP_NOFAIL and %__GFP_ACCOUNT are refused (%NULL and a one-time
 *       warning: objects are not charged to memory cgroups)
 *
 * Objects are aligned to at least 256 bytes and to their size class up to
 * a page. In a confidential guest the host can read and write them.
 *
 * Return: the object's address in the direct map, or %NULL, also for a
 * size of 0 or larger than %UNMAPPED_ALLOC_MAX_ORDER pages.
 */
void *kmalloc_decrypted(size_t size, gfp_t gfp);

/**
 * kmalloc_decrypted_node() - kmalloc_decrypted() on a preferred node
 * @size: bytes
 * @gfp: allocation flags
 * @nid: preferred node, or NUMA_NO_NODE
 *
 * Return: the object's address in the direct map, or %NULL.
 */
void *kmalloc_decrypted_node(size_t size, gfp_t gfp, int nid);

/**
 * kzalloc_decrypted() - kmalloc_decrypted() for zeroed memory
 * @size: bytes
 * @gfp: allocation flags
 *
 * Return: the zeroed object's address in the direct map, or %NULL.
 */
static inline void *kzalloc_decrypted(size_t size, gfp_t gfp)
{
	return kmalloc_decrypted(size, gfp | __GFP_ZERO);
}

/**
 * kzalloc_decrypted_node() - kmalloc_decrypted_node() for zeroed memory
 * @size: bytes
 * @gfp: allocation flags
 * @nid: preferred node, or NUMA_NO_NODE
 *
 * Return: the zeroed object's address in the direct map, or %NULL.
 */
static inline void *kzalloc_decrypted_node(size_t size, gfp_t gfp, int nid)
{
	return kmalloc_decrypted_node(size, gfp | __GFP_ZERO, nid);
}

/**
 * decrypted_alloc_ready() - whether decrypted memory can be allocated yet
 *
 * The allocator starts with the device initcalls. Code that runs earlier
 * (interrupt controllers at init_IRQ() time) converts its memory itself
 * until this returns true; unmapped_alloc_page_state() tells the two kinds
 * of memory apart when they are freed. Any context but NMI.
 *
 * Return: true once alloc_decrypted_pages() and kmalloc_decrypted() serve
 * requests.
 */
bool decrypted_alloc_ready(void);

/**
 * kfree_decrypted() - free memory from kmalloc_decrypted()
 * @p: the object, or NULL
 *
 * Any context but NMI. A pointer that is not a live object of kmalloc_decrypted()
 * (another allocator's memory, an interior pointer, a double free) is
 * reported with the caller's stack (rate limited) and changes nothing. A
 * second free that races the first one, on another CPU or in an interrupt,
 * may be found only later, before the object is handed out again: it is
 * reported then, and the object is still handed out once (see "Per-CPU
 * slabs" in Documentation/mm/unmapped_alloc.rst). As with kfree(), a free
 * that lands after the object was handed out again frees the new owner's
 * object.
 */
void kfree_decrypted(const void *p);

/**
 * ksize_decrypted() - usable size of a kmalloc_decrypted() object
 * @p: the object
 *
 * As with ksize(), the caller may then use all of it: KASAN stops treating
 * the bytes past the size asked for as a redzone.
 *
 * Return: its usable size, or 0 if @p is not a live object.
 */
size_t ksize_decrypted(const void *p);

struct kmem_cache_decrypted;

/**
 * kmem_cache_create_decrypted() - a cache of decrypted objects of one size
 * @name: name in the caches table
 * @size: object size
 * @align: alignment, a power of two (0: the default); at least 256
 *
 * Return: the cache, or %NULL.
 */
struct kmem_cache_decrypted *kmem_cache_create_decrypted(const char *name,
							 unsigned int size,
							 unsigned int align);

/**
 * kmem_cache_alloc_decrypted() - allocate an object from a decrypted cache
 * @cache: a cache from kmem_cache_create_decrypted()
 * @gfp: allocation flags, as for kmalloc_decrypted()
 *
 * Return: the object's address in the direct map, aligned as the cache was
 * created, or %NULL.
 */
void *kmem_cache_alloc_decrypted(struct kmem_cache_decrypted *cache, gfp_t gfp);

/**
 * kmem_cache_free_decrypted() - free an object to its decrypted cache
 * @cache: the cache it was allocated from
 * @obj: the object, or NULL
 *
 * Any context but NMI. A pointer that is not a live object of @cache is reported
 * with the caller's stack (rate limited) and changes nothing.
 */
void kmem_cache_free_decrypted(struct kmem_cache_decrypted *cache,
			       const void *obj);

/**
 * kmem_cache_destroy_decrypted() - destroy a kmem_cache_create_decrypted() cache
 * @cache: the cache, without live objects
 *
 * Takes the cache's slabs back from every CPU and gives them back. A cache
 * with live objects is reported and left in place. Process context; sleeps.
 */
void kmem_cache_destroy_decrypted(struct kmem_cache_decrypted *cache);

#endif /* _LINUX_UNMAPPED_ALLOC_H */
