/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers for the Rust implementation of unmapped_alloc: wrappers for
 * macros and inline functions that bindgen cannot see. Not an API.
 */
#ifndef _MM_UNMAPPED_ALLOC_INTERNAL_H
#define _MM_UNMAPPED_ALLOC_INTERNAL_H

#include <linux/gfp_types.h>
#include <linux/types.h>

struct page;

#ifdef __BINDGEN__
/* GFP flags the Rust side needs that rust/bindings does not export. */
const gfp_t RUST_CONST_HELPER___GFP_THISNODE = __GFP_THISNODE;
const gfp_t RUST_CONST_HELPER___GFP_NORETRY = __GFP_NORETRY;
const gfp_t RUST_CONST_HELPER___GFP_ACCOUNT = __GFP_ACCOUNT;
const gfp_t RUST_CONST_HELPER_GFP_NOFS = GFP_NOFS;
const gfp_t RUST_CONST_HELPER_GFP_NOIO = GFP_NOIO;
const gfp_t RUST_CONST_HELPER___GFP_DMA = __GFP_DMA;
const gfp_t RUST_CONST_HELPER___GFP_DMA32 = __GFP_DMA32;
const gfp_t RUST_CONST_HELPER___GFP_COMP = __GFP_COMP;
const gfp_t RUST_CONST_HELPER___GFP_NOFAIL = __GFP_NOFAIL;
#endif

unsigned int ua_num_online_cpus(void);
bool ua_node_has_memory(int nid);
void ua_flush_tlb_kernel_range(unsigned long start, unsigned long end);
struct page *ua_alloc_pages_node(int nid, gfp_t gfp, unsigned int order);
void *ua_vmap_pfns(unsigned long pfn, unsigned int nr);
bool ua_can_set_direct_map(void);
bool ua_bad_free_ratelimit(void);
bool ua_page_ref_freeze(unsigned long pfn, int refs);
bool ua_page_mapped(unsigned long pfn);
void ua_get_page(unsigned long pfn);
void ua_put_page(unsigned long pfn);

/* Fault injection sites (fail_unmapped_alloc/sites in debugfs). */
#define UA_FAIL_CONVERSION	0x1U	/* set_memory_decrypted/encrypted() */
#define UA_FAIL_DIRECT_MAP	0x2U	/* set_direct_map_valid_noflush() */
#define UA_FAIL_BLOCK		0x4U	/* taking a block from the page allocator */
#define UA_FAIL_METADATA	0x8U	/* a block's bookkeeping */
#define UA_FAIL_ALL		0xfU
/* Not in UA_FAIL_ALL: tests only. */
#define UA_FAIL_HANDOUT		0x10U	/* zeroing decrypted pages on hand-out */
bool ua_should_fail(unsigned int site, size_t size);
void ua_fail_inject(unsigned int sites, int times);
u64 ua_fail_injected(void);
void ua_fail_configure(unsigned int sites, unsigned int percent);
unsigned int ua_reclaim_scope_enter(gfp_t gfp);
void ua_reclaim_scope_exit(unsigned int old);
unsigned int ua_reclaim_scope_current(void);

/* Out of line on purpose: the benchmark times a helper call pair. */
unsigned int ua_get_cpu(void);
void ua_put_cpu(void);
void ua_each_cpu(void (*fn)(void *info, unsigned int cpu, bool online),
		 void *info);

int ua_memcg_charge(unsigned long pfn, gfp_t gfp, unsigned int order);
void ua_memcg_uncharge(unsigned long pfn, unsigned int order);

/* Tests only (CONFIG_UNMAPPED_ALLOC_KUNIT_TEST). */
int ua_test_on_cpus(void (*fn)(void *info, unsigned int i), void *info,
		    unsigned int n);
struct ua_test_timer;
struct ua_test_timer *ua_test_timer_new(void (*fn)(void *info), void *info);
void ua_test_timer_start(struct ua_test_timer *t, u64 ns);
void ua_test_timer_free(struct ua_test_timer *t);

/*
 * In detectors.c: KASAN's shadow, KMSAN's and kmemleak's registry (no-ops
 * without them).
 */
#define UA_POISON_FREE_PAGES		0U	/* free pages of the pools */
#define UA_POISON_FREE_OBJECT		1U	/* free slots of a slab */
#define UA_POISON_OBJECT_REDZONE	2U	/* a live object's slot past its size */
#define UA_POISON_PAGE_REDZONE		3U	/* a large object's pages past its size */
void ua_kasan_poison(unsigned long addr, size_t size, unsigned int what);
void ua_kasan_unpoison(unsigned long addr, size_t size);
void ua_kasan_track(unsigned long addr, size_t size, bool alloc);
void ua_kasan_forget(unsigned long addr, size_t size);
void ua_kasan_quiet_begin(void);
void ua_kasan_quiet_end(void);
void ua_kmsan_uninit(unsigned long addr, size_t size, gfp_t gfp);
void ua_kmsan_init(unsigned long addr, size_t size);
void ua_kmsan_returning(void);
void ua_kmemleak_alloc(unsigned long addr, size_t size, gfp_t gfp);
void ua_kmemleak_free(unsigned long addr);

/* In register.c. */
int ua_register_shrinker(void);
int ua_register_shutdown_hook(void);
int ua_register_pm_notifier(void);
int ua_hibernation_check(void);

/* Defined in Rust, called by the shrinker and the shutdown hook. */
unsigned long unmapped_alloc_reclaimable(void);
unsigned long unmapped_alloc_shrink(unsigned long nr_to_scan);
void unmapped_alloc_unshare_all(void);

/* Defined in Rust for the torture test (CONFIG_UNMAPPED_ALLOC_TORTURE). */
long ua_torture_host_write(u64 seed);
long ua_torture_model_shared_pages(void);

/* A probe on unmapped_alloc_pages that counts hits, for the KUnit suite. */
int ua_trace_probe_register(void);
int ua_trace_probe_unregister(void);
int ua_trace_probe_hits(void);

#endif /* _MM_UNMAPPED_ALLOC_INTERNAL_H */
