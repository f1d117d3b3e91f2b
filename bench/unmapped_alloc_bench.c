// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark of unmapped_alloc against what the kernel does today, run by
 * 'make bench' in one boot. It is built in (the direct map and TLB calls
 * of the secretmem baseline are not available to modules) and started by
 * writing "real", "sim <us>", "scale" (the multi-CPU workloads only) or
 * "quick" (the single-CPU object workloads only) to
 * /sys/kernel/debug/unmapped_alloc_bench,
 * or "pkvm" in a pKVM protected guest ('make bench-coco'): the ITS-like and
 * churn workloads, whose conversions are real MEM_SHARE/MEM_UNSHARE
 * hypercalls there, and dma-direct's coherent allocations on 7.2's path
 * against unmapped_alloc (patches/0009 and 0010).
 * Every workload runs against every allocator that can serve it; each
 * result is one line
 *
 *   ua-bench,<run>,<workload>,<allocator>,key=value,...
 *
 * on the console, which the host turns into a table and a CSV file.
 *
 * Allocators:
 *   kmalloc     plain kmalloc()/alloc_pages(): no conversion, the lower bound
 *   per-alloc   alloc_pages() + set_memory_decrypted() per allocation,
 *               set_memory_encrypted() on free (the pre-gen_pool ITS scheme)
 *   its-genpool the ITS scheme of Linux 7.2: set_memory_decrypted() per page
 *               feeding a gen_pool; pages are never given back
 *   secretmem   alloc_page() + set_direct_map_invalid_noflush() +
 *               flush_tlb_kernel_range() per page, restored on free
 *   component   this component
 *
 * Counts (conversions, flushes, direct map splits, pages) do not depend on
 * the machine; times under QEMU TCG are only meaningful as ratios within
 * one run. With "sim <us>", every set_memory_{en,de}crypted() call of
 * every allocator takes that much longer, standing in for a hypercall.
 */
#define pr_fmt(fmt) "ua-bench: " fmt

#include <linux/completion.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/device/faux.h>
#include <linux/dma-direct.h>
#include <linux/dma-map-ops.h>
#include <linux/dma-mapping.h>
#include <linux/genalloc.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/init.h>
#include <linux/mutex.h>
#include <linux/prandom.h>
#include <linux/set_memory.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/spinlock.h>
#include <linux/unmapped_alloc.h>
#include <linux/vmstat.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <asm/tlbflush.h>

#include "../conversions.h"
#include "../internal.h"

/* Extra microseconds per set_memory_{en,de}crypted() call, and the run's label. */
static unsigned int sim_delay_us;
static const char *run = "real";

#define ITS_ALLOCS	10000
#define ITS_ROUNDS	5
#define VIRTIO_BURSTS	100
#define VIRTIO_BURST	32
#define VIRTIO_SIZE	1536
#define VIRTIO_ROUNDS	5
#define UNMAPPED_BYTES	(64UL << 20)
#define UNMAPPED_ROUNDS	3
#define CHURN_OPS	45000
#define CHURN_ROUNDS	9
#define REMOTE_OPS	(CHURN_OPS / CHURN_ROUNDS)
#define REMOTE_BATCH	64
#define GROWTH_BLOCKS	256
#define GROWTH_ROUNDS	3
#define MAX_ROUNDS	9

/*
 * What one allocator did in one workload. Counts are from the first round;
 * times are one figure per round (the allocators take turns round by
 * round, so that background work and host noise hit all of them alike).
 */
struct result {
	u64 conversions;	/* set_memory_*() or direct map calls */
	u64 flushes;		/* TLB flushes */
	u64 splits;		/* direct map 2M and 1G splits */
	u64 peak_pages;		/* pages held at the peak of the live set */
	u64 left_pages;		/* pages still held after free (+ shrink) */
	u64 atomic_failures;
	u64 ops;
	u64 mean_ns;		/* unmapped pages: mean allocation, first round */
	unsigned int rounds;
	u64 round_ns[MAX_ROUNDS];	/* per round: ns of an op, 0 if it failed */
};

/* Counters of the baselines' own conversions and flushes. */
static u64 base_conversions, base_flushes;

static int set_decrypted(void *addr, int pages)
{
	base_conversions++;
	if (sim_delay_us)
		udelay(sim_delay_us);
	return set_memory_decrypted((unsigned long)addr, pages);
}

static int set_encrypted(void *addr, int pages)
{
	base_conversions++;
	if (sim_delay_us)
		udelay(sim_delay_us);
	return set_memory_encrypted((unsigned long)addr, pages);
}

#ifdef CONFIG_X86
/* Splits of 2M and 1G direct map pages, as /proc/vmstat counts them. */
static u64 direct_map_splits(void)
{
	unsigned long ev[NR_VM_EVENT_ITEMS];

	all_vm_events(ev);
	return ev[DIRECT_MAP_LEVEL2_SPLIT] + ev[DIRECT_MAP_LEVEL3_SPLIT];
}
#else
/* Whether the linear map maps @addr with a block (PMD or PUD) entry. */
static bool linear_map_block(unsigned long addr)
{
	pgd_t *pgdp = pgd_offset_k(addr);
	p4d_t *p4dp;
	pud_t *pudp, pud;
	pmd_t pmd;

	if (pgd_none(READ_ONCE(*pgdp)))
		return false;
	p4dp = p4d_offset(pgdp, addr);
	if (p4d_none(READ_ONCE(*p4dp)))
		return false;
	pudp = pud_offset(p4dp, addr);
	pud = READ_ONCE(*pudp);
	if (pud_none(pud))
		return false;
	if (pud_leaf(pud))
		return true;
	pmd = READ_ONCE(*pmd_offset(pudp, addr));
	return !pmd_none(pmd) && pmd_leaf(pmd);
}

/*
 * arm64 keeps no split counters: count the PMD-sized ranges of node memory
 * that the linear map does not map with a block entry. A split (BBML2
 * systems split block mappings on demand) raises the count; nothing merges
 * them back. With a page-granular linear map (rodata=on, debug_pagealloc)
 * every range counts and no split is possible.
 */
static u64 direct_map_splits(void)
{
	unsigned long pfn, end;
	u64 n = 0;
	int nid;

	for_each_online_node(nid) {
		pfn = ALIGN(node_start_pfn(nid), PTRS_PER_PTE);
		end = node_end_pfn(nid);
		for (; pfn + PTRS_PER_PTE <= end; pfn += PTRS_PER_PTE)
			if (pfn_valid(pfn) &&
			    !linear_map_block((unsigned long)pfn_to_kaddr(pfn)))
				n++;
	}
	return n;
}
#endif

static u64 slab_pages(void)
{
	return global_node_page_state_pages(NR_SLAB_UNRECLAIMABLE_B);
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static u64 median(u64 *v, unsigned int n)
{
	if (!n)
		return 0;
	sort(v, n, sizeof(*v), cmp_u64, NULL);
	return v[n / 2];
}

static void report(const char *workload, const char *alloc, struct result *r)
{
	char rounds[MAX_ROUNDS * 21 + 1] = "";
	u64 sorted[MAX_ROUNDS];
	unsigned int i, len = 0;

	for (i = 0; i < r->rounds; i++)
		len += scnprintf(rounds + len, sizeof(rounds) - len, "%s%llu",
				 i ? "/" : "", r->round_ns[i]);
	memcpy(sorted, r->round_ns, sizeof(sorted));
	pr_info("ua-bench,%s,%s,%s,conversions=%llu,flushes=%llu,splits=%llu,peak_pages=%llu,left_pages=%llu,atomic_failures=%llu,median_ns=%llu,ops=%llu,mean_ns=%llu,rounds=%s\n",
		run, workload, alloc, r->conversions, r->flushes, r->splits,
		r->peak_pages, r->left_pages, r->atomic_failures,
		median(sorted, r->rounds), r->ops, r->mean_ns, rounds);
}

/* ---- the ITS 7.2 gen_pool scheme, as in irq-gic-v3-its.c ---- */

static struct gen_pool *its_pool;
static u64 its_pool_pages;

static void *its_alloc(size_t size, gfp_t gfp)
{
	struct page *page;
	unsigned long addr;

	if (size >= PAGE_SIZE) {
		page = alloc_pages(gfp | __GFP_ZERO, get_order(size));
		if (!page)
			return NULL;
		if (set_decrypted(page_address(page), 1 << get_order(size)))
			return NULL;	/* state unknown: leaked */
		return page_address(page);
	}
	do {
		addr = gen_pool_alloc(its_pool, size);
		if (addr)
			break;
		/* Refilling converts memory: impossible in atomic context. */
		if (!gfpflags_allow_blocking(gfp))
			return NULL;
		page = alloc_page(gfp | __GFP_ZERO);
		if (!page || set_decrypted(page_address(page), 1))
			return NULL;
		its_pool_pages++;
		gen_pool_add(its_pool, (unsigned long)page_address(page),
			     PAGE_SIZE, NUMA_NO_NODE);
	} while (!addr);
	return (void *)addr;
}

static void its_free(void *addr, size_t size)
{
	if (size >= PAGE_SIZE) {
		if (!set_encrypted(addr, 1 << get_order(size)))
			free_pages((unsigned long)addr, get_order(size));
		return;
	}
	gen_pool_free(its_pool, (unsigned long)addr, size);
}

/* ---- a conversion per allocation ---- */

static void *per_alloc(size_t size, gfp_t gfp)
{
	unsigned int order = get_order(size);
	struct page *page;

	/* Converting may sleep: not possible in atomic context. */
	if (!gfpflags_allow_blocking(gfp))
		return NULL;
	page = alloc_pages(gfp | __GFP_ZERO, order);
	if (!page)
		return NULL;
	if (set_decrypted(page_address(page), 1 << order))
		return NULL;
	return page_address(page);
}

static void per_free(void *addr, size_t size)
{
	unsigned int order = get_order(size);

	if (!set_encrypted(addr, 1 << order))
		free_pages((unsigned long)addr, order);
}

/* ---- object allocators behind one interface ---- */

enum obj_alloc { OBJ_KMALLOC, OBJ_PER_ALLOC, OBJ_ITS, OBJ_COMPONENT, OBJ_NR };
static const char *const obj_name[OBJ_NR] = {
	"kmalloc", "per-alloc", "its-genpool", "component"
};

static void *obj_alloc(enum obj_alloc a, size_t size, gfp_t gfp)
{
	switch (a) {
	case OBJ_KMALLOC:
		return kmalloc(size, gfp);
	case OBJ_PER_ALLOC:
		return per_alloc(size, gfp);
	case OBJ_ITS:
		return its_alloc(size, gfp);
	default:
		return kmalloc_decrypted(size, gfp);
	}
}

static void obj_free(enum obj_alloc a, void *p, size_t size)
{
	switch (a) {
	case OBJ_KMALLOC:
		kfree(p);
		break;
	case OBJ_PER_ALLOC:
		per_free(p, size);
		break;
	case OBJ_ITS:
		its_free(p, size);
		break;
	default:
		kfree_decrypted(p);
	}
}

/*
 * Pages kmalloc or the component use for the live set: slab pages, or the
 * component's decrypted pages in use (slabs and large objects). With @held,
 * the component's pages held in blocks, free ones included.
 */
static u64 obj_pages(enum obj_alloc a, u64 slab_base, bool held)
{
	struct unmapped_alloc_counters c;

	if (a == OBJ_KMALLOC)
		return slab_pages() - slab_base;
	unmapped_alloc_read_counters(&c);
	return held ? c.decrypted_held_pages : c.decrypted_used_pages;
}

static u64 component_conversions(void)
{
	struct unmapped_alloc_counters c;

	unmapped_alloc_read_counters(&c);
	return c.decrypted_conversions + c.decrypted_reversions;
}

static u64 conversions(enum obj_alloc a)
{
	return a == OBJ_COMPONENT ? component_conversions() : base_conversions;
}

/* ---- workload: ITS-like ---- */

struct its_state {
	size_t *sizes;
	void **objs;
	u64 *t_alloc, *t_free;
};

/*
 * One round of the ITS-like workload with allocator @a: every object
 * allocated, then all freed (and the component drained). The round's
 * figure is the median alloc plus the median free; the counts go to @r.
 */
static u64 its_round(struct its_state *st, enum obj_alloc a, struct result *r)
{
	u64 conv0 = conversions(a), slab0 = slab_pages(), t, pages = 0;
	unsigned int i, n;

	its_pool_pages = 0;
	for (i = 0; i < ITS_ALLOCS; i++) {
		t = ktime_get_ns();
		st->objs[i] = obj_alloc(a, st->sizes[i], GFP_KERNEL);
		st->t_alloc[i] = ktime_get_ns() - t;
		if (!st->objs[i])
			break;
		if (a == OBJ_PER_ALLOC || (a == OBJ_ITS && st->sizes[i] >= PAGE_SIZE))
			pages += 1 << get_order(st->sizes[i]);
	}
	n = i;
	r->ops = n;
	r->peak_pages = a == OBJ_KMALLOC || a == OBJ_COMPONENT ?
		obj_pages(a, slab0, false) : pages + its_pool_pages;
	while (i--) {
		t = ktime_get_ns();
		obj_free(a, st->objs[i], st->sizes[i]);
		st->t_free[i] = ktime_get_ns() - t;
	}
	if (a == OBJ_COMPONENT)
		unmapped_alloc_drain();
	r->left_pages = a == OBJ_KMALLOC || a == OBJ_COMPONENT ?
		obj_pages(a, slab0, true) : a == OBJ_ITS ? its_pool_pages : 0;
	r->conversions = conversions(a) - conv0;
	if (n < ITS_ALLOCS)
		return 0;
	return median(st->t_alloc, n) + median(st->t_free, n);
}

static void workload_its(void)
{
	struct its_state st = {
		.sizes = kvmalloc_array(ITS_ALLOCS, sizeof(size_t), GFP_KERNEL),
		.objs = kvmalloc_array(ITS_ALLOCS, sizeof(void *), GFP_KERNEL),
		.t_alloc = kvmalloc_array(ITS_ALLOCS, sizeof(u64), GFP_KERNEL),
		.t_free = kvmalloc_array(ITS_ALLOCS, sizeof(u64), GFP_KERNEL),
	};
	struct result res[OBJ_NR] = {};
	struct rnd_state rnd;
	unsigned int i, round;
	enum obj_alloc a;

	if (!st.sizes || !st.objs || !st.t_alloc || !st.t_free)
		goto out;
	prandom_seed_state(&rnd, 42);
	for (i = 0; i < ITS_ALLOCS; i++)
		st.sizes[i] = 256 + prandom_u32_state(&rnd) % (8192 - 256 + 1);
	for (round = 0; round < ITS_ROUNDS; round++) {
		for (a = 0; a < OBJ_NR; a++) {
			struct result r = {};

			res[a].round_ns[round] = its_round(&st, a, &r);
			if (!round)
				res[a] = (struct result){ .conversions = r.conversions,
					.peak_pages = r.peak_pages,
					.left_pages = r.left_pages, .ops = r.ops,
					.round_ns = { res[a].round_ns[0] } };
			res[a].rounds = round + 1;
		}
	}
	for (a = 0; a < OBJ_NR; a++)
		report("its", obj_name[a], &res[a]);
out:
	kvfree(st.sizes);
	kvfree(st.objs);
	kvfree(st.t_alloc);
	kvfree(st.t_free);
}

/* ---- workload: virtio-like bursts in atomic context ---- */

static DEFINE_SPINLOCK(tx_lock);

/*
 * VIRTIO_BURSTS / VIRTIO_ROUNDS bursts with @a under a spinlock with
 * interrupts off; the median alloc+free of the round.
 */
static u64 virtio_round(enum obj_alloc a, u64 *t, struct result *r)
{
	struct unmapped_alloc_counters c0, c1;
	void *burst[VIRTIO_BURST];
	unsigned long flags;
	unsigned int b, i, n = 0;
	u64 conv0 = conversions(a);

	unmapped_alloc_read_counters(&c0);
	for (b = 0; b < VIRTIO_BURSTS / VIRTIO_ROUNDS; b++) {
		spin_lock_irqsave(&tx_lock, flags);
		for (i = 0; i < VIRTIO_BURST; i++) {
			u64 s = ktime_get_ns();

			burst[i] = obj_alloc(a, VIRTIO_SIZE, GFP_ATOMIC);
			if (!burst[i]) {
				r->atomic_failures++;
				continue;
			}
			memset(burst[i], 0x5a, 64);
			obj_free(a, burst[i], VIRTIO_SIZE);
			t[n++] = ktime_get_ns() - s;
		}
		spin_unlock_irqrestore(&tx_lock, flags);
	}
	unmapped_alloc_read_counters(&c1);
	r->ops += n;
	r->conversions += conversions(a) - conv0;
	if (a == OBJ_COMPONENT)
		r->atomic_failures += c1.atomic_failures - c0.atomic_failures;
	return median(t, n);
}

static void workload_virtio(void)
{
	u64 *t = kvmalloc_array(VIRTIO_BURSTS * VIRTIO_BURST, sizeof(u64),
				GFP_KERNEL);
	struct result res[OBJ_NR] = {};
	unsigned int round;
	enum obj_alloc a;

	if (!t)
		return;
	for (round = 0; round < VIRTIO_ROUNDS; round++) {
		for (a = 0; a < OBJ_NR; a++) {
			res[a].round_ns[round] = virtio_round(a, t, &res[a]);
			res[a].rounds = round + 1;
		}
	}
	for (a = 0; a < OBJ_NR; a++)
		report("virtio", obj_name[a], &res[a]);
	kvfree(t);
}

/* ---- workload: unmapped pages ---- */

/*
 * The component runs before the secretmem scheme, so that it cannot profit
 * from direct map splits the per-page scheme leaves behind. The fair
 * baseline is alloc_pages(__GFP_ZERO): the component hands out zeroed pages.
 */
enum page_alloc { PG_PLAIN, PG_ZERO, PG_COMPONENT, PG_SECRETMEM, PG_NR };
static const char *const pg_name[PG_NR] = {
	"alloc_pages", "alloc_pages_zero", "component", "secretmem"
};

static struct page *pg_alloc(enum page_alloc a, unsigned int order)
{
	struct page *page;
	unsigned long addr;
	unsigned int i;

	switch (a) {
	case PG_PLAIN:
		return alloc_pages(GFP_KERNEL, order);
	case PG_ZERO:
		return alloc_pages(GFP_KERNEL | __GFP_ZERO, order);
	case PG_SECRETMEM:
		page = alloc_pages(GFP_KERNEL | __GFP_ZERO, order);
		if (!page)
			return NULL;
		for (i = 0; i < (1U << order); i++) {
			base_conversions++;
			set_direct_map_invalid_noflush(page + i);
		}
		addr = (unsigned long)page_address(page);
		flush_tlb_kernel_range(addr, addr + (PAGE_SIZE << order));
		base_flushes++;
		return page;
	default:
		return unmapped_alloc(GFP_KERNEL, order);
	}
}

static void pg_free(enum page_alloc a, struct page *page, unsigned int order)
{
	unsigned int i;

	switch (a) {
	case PG_PLAIN:
	case PG_ZERO:
		__free_pages(page, order);
		break;
	case PG_SECRETMEM:
		for (i = 0; i < (1U << order); i++) {
			base_conversions++;
			set_direct_map_default_noflush(page + i);
		}
		__free_pages(page, order);
		break;
	default:
		unmapped_free(page, order);
	}
}

struct pg_state {
	struct page **pages;
	u8 *orders;
	u64 *t;
};

/* 64 MiB allocated with @a, then freed; the median allocation. */
static u64 unmapped_round(struct pg_state *st, enum page_alloc a, bool mixed,
			  struct result *r)
{
	unsigned long max = UNMAPPED_BYTES >> PAGE_SHIFT, held = 0, n = 0, i;
	struct unmapped_alloc_counters c0, c1;
	u64 conv0 = base_conversions, fl0 = base_flushes;
	u64 split0 = direct_map_splits();
	struct rnd_state rnd;
	u64 sum = 0;

	prandom_seed_state(&rnd, 7);
	unmapped_alloc_read_counters(&c0);
	while (held < max) {
		unsigned int order = mixed ? prandom_u32_state(&rnd) % 5 : 0;
		u64 s = ktime_get_ns();

		if (held + (1UL << order) > max)
			order = 0;
		st->pages[n] = pg_alloc(a, order);
		st->t[n] = ktime_get_ns() - s;
		if (!st->pages[n])
			break;
		sum += st->t[n];
		st->orders[n++] = order;
		held += 1UL << order;
	}
	unmapped_alloc_read_counters(&c1);
	r->peak_pages = a == PG_COMPONENT ? c1.unmapped_held_pages : held;
	for (i = 0; i < n; i++)
		pg_free(a, st->pages[i], st->orders[i]);
	if (a == PG_COMPONENT) {
		unmapped_alloc_drain();
		unmapped_alloc_read_counters(&c1);
		r->conversions = c1.unmapped_conversions + c1.unmapped_reversions -
				 c0.unmapped_conversions - c0.unmapped_reversions;
		r->flushes = c1.unmapped_tlb_flushes - c0.unmapped_tlb_flushes;
		r->left_pages = c1.unmapped_held_pages;
	} else {
		r->conversions = base_conversions - conv0;
		r->flushes = base_flushes - fl0;
	}
	r->splits = direct_map_splits() - split0;
	r->ops = n;
	/* The median hides what one allocation in 512 pays for a block. */
	r->mean_ns = n ? div64_u64(sum, n) : 0;
	return held < max ? 0 : median(st->t, n);
}

static void workload_unmapped(const char *name, bool mixed)
{
	unsigned long max = UNMAPPED_BYTES >> PAGE_SHIFT;
	struct pg_state st = {
		.pages = kvmalloc_array(max, sizeof(struct page *), GFP_KERNEL),
		.orders = kvmalloc_array(max, 1, GFP_KERNEL),
		.t = kvmalloc_array(max, sizeof(u64), GFP_KERNEL),
	};
	struct result res[PG_NR] = {};
	unsigned int round;
	enum page_alloc a;

	if (!st.pages || !st.orders || !st.t)
		goto out;
	for (round = 0; round < UNMAPPED_ROUNDS; round++) {
		for (a = 0; a < PG_NR; a++) {
			struct result r = {};
			u64 ns = unmapped_round(&st, a, mixed, &r);

			if (!round)
				res[a] = r;
			res[a].round_ns[round] = ns;
			res[a].rounds = round + 1;
		}
	}
	for (a = 0; a < PG_NR; a++)
		report(name, pg_name[a], &res[a]);
out:
	kvfree(st.pages);
	kvfree(st.orders);
	kvfree(st.t);
}

/*
 * The component's unmapped allocation cost as its pool grows: order-0 pages
 * from node 0 until GROWTH_BLOCKS blocks are held, the median allocation
 * while each block fills, reported for pools of 1, 4, 16, 64 and 256
 * blocks (workload "pool-<N>-blocks"). Nothing else is compared: the cost
 * must not depend on N.
 */
static void workload_growth(void)
{
	unsigned long per_block = 1UL << (PMD_SHIFT - PAGE_SHIFT);
	unsigned long max = GROWTH_BLOCKS * per_block;
	struct page **pages = kvmalloc_array(max, sizeof(*pages), GFP_KERNEL);
	u64 *t = kvmalloc_array(per_block, sizeof(u64), GFP_KERNEL);
	struct result *res = kcalloc(GROWTH_BLOCKS + 1, sizeof(*res), GFP_KERNEL);
	unsigned long n, i, blocks;
	gfp_t gfp = GFP_KERNEL | __GFP_THISNODE | __GFP_NOWARN;
	unsigned int round;
	int nid = first_memory_node;

	if (!pages || !t || !res)
		goto out;
	for (round = 0; round < GROWTH_ROUNDS; round++) {
		for (n = 0, blocks = 1; blocks <= GROWTH_BLOCKS; blocks++) {
			for (i = 0; i < per_block; i++, n++) {
				u64 s = ktime_get_ns();

				pages[n] = unmapped_alloc_node(nid, gfp, 0);
				t[i] = ktime_get_ns() - s;
				if (!pages[n])
					break;
			}
			res[blocks].round_ns[round] = i == per_block ? median(t, i) : 0;
			res[blocks].rounds = round + 1;
			res[blocks].ops += i;
			if (i < per_block)
				break;
		}
		while (n--)
			unmapped_free(pages[n], 0);
		unmapped_alloc_drain();
	}
	for (blocks = 1; blocks <= GROWTH_BLOCKS; blocks *= 4) {
		char name[32];

		snprintf(name, sizeof(name), "pool-%lu-blocks", blocks);
		report(name, "component", &res[blocks]);
	}
out:
	kvfree(pages);
	kvfree(t);
	kfree(res);
}

/* ---- workload: small object churn, one CPU and all CPUs ---- */

/*
 * One round of @ops alloc/free pairs; ns per pair, or 0 if an allocation
 * failed.
 */
static u64 churn_round(enum obj_alloc a, unsigned int ops)
{
	u64 start = ktime_get_ns();
	unsigned int i;
	void *p;

	for (i = 0; i < ops; i++) {
		p = obj_alloc(a, 256, GFP_KERNEL);
		if (!p)
			return 0;
		obj_free(a, p, 256);
	}
	return (ktime_get_ns() - start) / ops;
}

static void churn_one_cpu(void)
{
	struct result res[OBJ_NR] = {};
	unsigned int round;
	enum obj_alloc a;

	/* Warm-up, untimed: every allocator sets up its per-CPU state first. */
	for (a = 0; a < OBJ_NR; a++)
		churn_round(a, CHURN_OPS / CHURN_ROUNDS);
	for (round = 0; round < CHURN_ROUNDS; round++) {
		for (a = 0; a < OBJ_NR; a++) {
			u64 conv0 = conversions(a);

			res[a].round_ns[round] = churn_round(a, CHURN_OPS / CHURN_ROUNDS);
			res[a].conversions += conversions(a) - conv0;
			res[a].ops += CHURN_OPS / CHURN_ROUNDS;
			res[a].rounds = round + 1;
		}
	}
	for (a = 0; a < OBJ_NR; a++)
		report("churn-1cpu", obj_name[a], &res[a]);
}

/* One CPU's part of a round on all CPUs. */
struct churn {
	struct work_struct work;
	enum obj_alloc a;
	u64 ns;
	struct completion *done;
	atomic_t *left;
};

static void churn_work(struct work_struct *w)
{
	struct churn *c = container_of(w, struct churn, work);

	c->ns = churn_round(c->a, CHURN_OPS / CHURN_ROUNDS);
	if (atomic_dec_and_test(c->left))
		complete(c->done);
}

/* A round of @a on every online CPU at once; the mean ns per pair. */
static u64 churn_all_round(struct churn *per_cpu_work, enum obj_alloc a)
{
	DECLARE_COMPLETION_ONSTACK(done);
	int cpu, ncpus = num_online_cpus();
	atomic_t left = ATOMIC_INIT(ncpus);
	u64 sum = 0;

	for_each_online_cpu(cpu) {
		struct churn *c = &per_cpu_work[cpu];

		c->a = a;
		c->done = &done;
		c->left = &left;
		INIT_WORK(&c->work, churn_work);
		queue_work_on(cpu, system_dfl_wq, &c->work);
	}
	wait_for_completion(&done);
	for_each_online_cpu(cpu) {
		if (!per_cpu_work[cpu].ns)
			return 0;
		sum += per_cpu_work[cpu].ns;
	}
	return sum / ncpus;
}

static void churn_all_cpus(void)
{
	struct churn *per_cpu_work;
	struct result res[OBJ_NR] = {};
	unsigned int round;
	enum obj_alloc a;

	per_cpu_work = kcalloc(nr_cpu_ids, sizeof(*per_cpu_work), GFP_KERNEL);
	if (!per_cpu_work)
		return;
	for (a = 0; a < OBJ_NR; a++)
		churn_all_round(per_cpu_work, a);
	for (round = 0; round < CHURN_ROUNDS; round++) {
		for (a = 0; a < OBJ_NR; a++) {
			u64 conv0 = conversions(a);

			res[a].round_ns[round] = churn_all_round(per_cpu_work, a);
			res[a].conversions += conversions(a) - conv0;
			res[a].ops += (u64)CHURN_OPS / CHURN_ROUNDS * num_online_cpus();
			res[a].rounds = round + 1;
		}
	}
	for (a = 0; a < OBJ_NR; a++)
		report("churn-allcpu", obj_name[a], &res[a]);
	kfree(per_cpu_work);
}

/* ---- workload: allocate on one CPU, free on another ---- */

/*
 * A producer on the first online CPU allocates 256 B objects in batches
 * of REMOTE_BATCH and hands each batch to a consumer on the next CPU, which
 * frees it (a virtio or network completion). Two buffers alternate, so
 * both CPUs work at once. ns per object: the producer's allocation time
 * plus the consumer's free time, both measured per batch.
 */
struct remote {
	struct work_struct work;
	enum obj_alloc a;
	void *batch[2][REMOTE_BATCH];
	struct completion filled[2], emptied[2];
	u64 free_ns;
	bool failed;
};

static void remote_consumer(struct work_struct *w)
{
	struct remote *rm = container_of(w, struct remote, work);
	unsigned int b, i;
	u64 s;

	for (b = 0; b < REMOTE_OPS / REMOTE_BATCH; b++) {
		void **batch = rm->batch[b % 2];

		wait_for_completion(&rm->filled[b % 2]);
		s = ktime_get_ns();
		for (i = 0; i < REMOTE_BATCH; i++)
			if (batch[i])
				obj_free(rm->a, batch[i], 256);
		rm->free_ns += ktime_get_ns() - s;
		complete(&rm->emptied[b % 2]);
	}
}

static u64 remote_round(struct remote *rm, enum obj_alloc a, int to)
{
	unsigned int b, i, batches = REMOTE_OPS / REMOTE_BATCH;
	u64 alloc_ns = 0, s;

	rm->a = a;
	rm->free_ns = 0;
	rm->failed = false;
	for (i = 0; i < 2; i++) {
		init_completion(&rm->filled[i]);
		init_completion(&rm->emptied[i]);
		complete(&rm->emptied[i]);
	}
	INIT_WORK(&rm->work, remote_consumer);
	queue_work_on(to, system_dfl_wq, &rm->work);
	for (b = 0; b < batches; b++) {
		void **batch = rm->batch[b % 2];

		wait_for_completion(&rm->emptied[b % 2]);
		s = ktime_get_ns();
		for (i = 0; i < REMOTE_BATCH; i++) {
			batch[i] = obj_alloc(a, 256, GFP_KERNEL);
			rm->failed |= !batch[i];
		}
		alloc_ns += ktime_get_ns() - s;
		complete(&rm->filled[b % 2]);
	}
	flush_work(&rm->work);
	return rm->failed ? 0 : (alloc_ns + rm->free_ns) / (batches * REMOTE_BATCH);
}

/* Runs on the producer's CPU. */
static long remote_workload_fn(void *arg)
{
	struct remote *rm = kzalloc(sizeof(*rm), GFP_KERNEL);
	enum obj_alloc allocs[] = { OBJ_KMALLOC, OBJ_COMPONENT };
	struct result res[ARRAY_SIZE(allocs)] = {};
	int to;
	unsigned int round, i;

	if (!rm)
		return -ENOMEM;
	to = cpumask_next_wrap(smp_processor_id(), cpu_online_mask);
	for (i = 0; i < ARRAY_SIZE(allocs); i++)
		remote_round(rm, allocs[i], to);
	for (round = 0; round < CHURN_ROUNDS; round++) {
		for (i = 0; i < ARRAY_SIZE(allocs); i++) {
			res[i].round_ns[round] = remote_round(rm, allocs[i], to);
			res[i].ops += REMOTE_OPS;
			res[i].rounds = round + 1;
		}
	}
	for (i = 0; i < ARRAY_SIZE(allocs); i++)
		report("cross-cpu", obj_name[allocs[i]], &res[i]);
	kfree(rm);
	return 0;
}

static void workload_cross_cpu(void)
{
	if (num_online_cpus() < 2) {
		pr_info("cross-cpu: needs two CPUs, skipped\n");
		return;
	}
	work_on_cpu(cpumask_first(cpu_online_mask), remote_workload_fn, NULL);
}

/* ---- where the time of a 256 B alloc+free pair goes ---- */

enum phase { PH_KMALLOC, PH_COMPONENT, PH_CALL, PH_CPU, PH_NR };
static const char *const phase_name[PH_NR] = {
	"kmalloc", "component", "call-into-rust", "get_cpu-put_cpu"
};

/* @ops repetitions of phase @p; ns per repetition, 0 if an allocation failed. */
static u64 phase_round(enum phase p, unsigned int ops)
{
	u64 start = ktime_get_ns();
	unsigned int i;
	void *obj;

	for (i = 0; i < ops; i++) {
		switch (p) {
		case PH_KMALLOC:
		case PH_COMPONENT:
			obj = obj_alloc(p == PH_KMALLOC ? OBJ_KMALLOC : OBJ_COMPONENT,
					256, GFP_KERNEL);
			if (!obj)
				return 0;
			obj_free(p == PH_KMALLOC ? OBJ_KMALLOC : OBJ_COMPONENT, obj, 256);
			break;
		case PH_CALL:
			/* A C call into the component's Rust code that does nothing. */
			if (!decrypted_alloc_ready())
				return 0;
			break;
		default:
			/*
			 * An out-of-line preemption off/on pair: what each
			 * alloc and each free paid before the helpers were
			 * inlined (CONFIG_RUST_INLINE_HELPERS).
			 */
			ua_get_cpu();
			ua_put_cpu();
			break;
		}
	}
	return (ktime_get_ns() - start) / ops;
}

/*
 * The churn pair next to its parts: one C call into Rust (each alloc and
 * each free makes one) and one out-of-line preemption off/on pair (each
 * alloc and each free turns preemption off and on; with
 * CONFIG_RUST_INLINE_HELPERS that costs what it costs in C, without it
 * this pair).
 */
static void workload_phases(void)
{
	struct result res[PH_NR] = {};
	unsigned int round;
	enum phase p;

	for (p = 0; p < PH_NR; p++)
		phase_round(p, CHURN_OPS / CHURN_ROUNDS);
	for (round = 0; round < CHURN_ROUNDS; round++) {
		for (p = 0; p < PH_NR; p++) {
			res[p].round_ns[round] = phase_round(p, CHURN_OPS / CHURN_ROUNDS);
			res[p].ops += CHURN_OPS / CHURN_ROUNDS;
			res[p].rounds = round + 1;
		}
	}
	for (p = 0; p < PH_NR; p++)
		report("phases", phase_name[p], &res[p]);
}

/* ---- dma-direct's coherent allocations (patches/0009), in a protected VM ---- */

#define DMA_OPS		64
#define DMA_ROUNDS	5

enum dma_path { DMA_STOCK, DMA_COMPONENT, DMA_NR };
static const char *const dma_path_name[DMA_NR] = { "dma-7.2", "component" };
static DEFINE_SPINLOCK(dma_bench_lock);

/*
 * One round: @ops dma_alloc_coherent() and dma_free_coherent() pairs of
 * @size bytes, the atomic ones under a spinlock with interrupts off as a
 * driver's interrupt path takes them. ns per pair, 0 if one failed.
 */
static u64 dma_round(struct device *dev, size_t size, bool atomic, unsigned int ops)
{
	u64 t0 = ktime_get_ns();
	unsigned long flags;
	dma_addr_t handle;
	unsigned int i;
	void *buf;

	for (i = 0; i < ops; i++) {
		if (atomic) {
			spin_lock_irqsave(&dma_bench_lock, flags);
			buf = dma_alloc_coherent(dev, size, &handle, GFP_ATOMIC);
			spin_unlock_irqrestore(&dma_bench_lock, flags);
		} else {
			buf = dma_alloc_coherent(dev, size, &handle, GFP_KERNEL);
		}
		if (!buf)
			return 0;
		dma_free_coherent(dev, size, buf, handle);
	}
	return div_u64(ktime_get_ns() - t0, ops);
}

/*
 * Both paths take turns round by round, after a warm-up round each. The
 * conversions are the real calls of set_memory_decrypted() and
 * set_memory_encrypted() during the paths' rounds, whoever made them
 * (kprobes), both directions together.
 */
static void workload_dma_size(struct device *dev, const char *name, size_t size,
			      bool atomic)
{
	struct ua_conversions before, conv;
	struct result res[DMA_NR] = {};
	unsigned int round;
	enum dma_path p;

	for (p = 0; p < DMA_NR; p++) {
		ua_set_dma_unmapped_alloc(p == DMA_COMPONENT);
		dma_round(dev, size, atomic, DMA_OPS);
	}
	for (round = 0; round < DMA_ROUNDS; round++) {
		for (p = 0; p < DMA_NR; p++) {
			ua_set_dma_unmapped_alloc(p == DMA_COMPONENT);
			ua_conversions_read(&before);
			res[p].round_ns[round] = dma_round(dev, size, atomic, DMA_OPS);
			ua_conversions_since(&conv, &before);
			res[p].conversions += conv.calls[0] + conv.calls[1];
			res[p].ops += DMA_OPS;
			res[p].rounds = round + 1;
		}
	}
	ua_set_dma_unmapped_alloc(true);
	for (p = 0; p < DMA_NR; p++)
		report(name, dma_path_name[p], &res[p]);
}

static void workload_dma(void)
{
	struct faux_device *fdev;
	struct device *dev;
	int err;

	err = ua_set_dma_unmapped_alloc(true);
	if (err) {
		pr_info("dma: skipped, no dma_direct.unmapped_alloc (%d)\n", err);
		return;
	}
	err = ua_conversions_probe();
	if (err) {
		pr_info("dma: skipped, no kprobes to count conversions (%d)\n", err);
		return;
	}
	fdev = faux_device_create("ua-bench-dma", NULL, NULL);
	if (!fdev) {
		pr_info("dma: skipped, no device\n");
		goto out;
	}
	dev = &fdev->dev;
	dev->coherent_dma_mask = DMA_BIT_MASK(64);
	dev->dma_mask = &dev->coherent_dma_mask;
	/* As virtio's devices on this machine: no cache maintenance, no remap. */
	dev_set_dma_coherent(dev);
	if (!force_dma_unencrypted(dev)) {
		pr_info("dma: skipped, this guest's DMA needs no decryption\n");
	} else {
		workload_dma_size(dev, "dma-coherent-4K", SZ_4K, false);
		workload_dma_size(dev, "dma-coherent-64K", SZ_64K, false);
		workload_dma_size(dev, "dma-coherent-4K-atomic", SZ_4K, true);
	}
	faux_device_destroy(fdev);
out:
	ua_conversions_unprobe();
}

/* @all: every workload; otherwise the ITS-like, churn and DMA ones. */
static void bench_run(bool all)
{
	unmapped_alloc_set_sim_delay(sim_delay_us);
	pr_info("run %s: sim_delay_us=%u, %d CPUs\n", run, sim_delay_us,
		num_online_cpus());

	/*
	 * The reserve is for the atomic workload; elsewhere it would hide
	 * what is returned.
	 */
	unmapped_alloc_set_reserve(0, 0);
	unmapped_alloc_drain();
	workload_its();
	churn_one_cpu();
	if (all)
		workload_phases();
	churn_all_cpus();
	workload_cross_cpu();
	if (!all) {
		/* The atomic coherent allocations come from the reserve. */
		unmapped_alloc_set_reserve(256, 512);
		msleep(200);
		workload_dma();
	}
	if (all) {
		unmapped_alloc_set_reserve(256, 512);
		/* Let the background work fill the reserve before the bursts. */
		msleep(200);
		workload_virtio();
		unmapped_alloc_set_reserve(0, 0);
		unmapped_alloc_drain();
		/*
		 * The page workloads last: the secretmem scheme splits the
		 * direct map, which makes every later measurement under TCG
		 * slower (kmalloc's and the component's alike, the component's
		 * more), and a machine using the component has no such splits.
		 */
		workload_growth();
		workload_unmapped("unmapped-64M-order0", false);
		workload_unmapped("unmapped-64M-mixed", true);
	}
	unmapped_alloc_set_reserve(256, 512);

	unmapped_alloc_set_sim_delay(0);
	pr_info("run %s done\n", run);
}

/*
 * The multi-CPU workloads alone, as run "cpus-<N>": booted with 1, 2 and 4
 * CPUs, they give the scaling curve.
 */
static void bench_scale(void)
{
	static char label[16];

	snprintf(label, sizeof(label), "cpus-%u", num_online_cpus());
	run = label;
	sim_delay_us = 0;
	unmapped_alloc_set_sim_delay(0);
	unmapped_alloc_set_reserve(0, 0);
	unmapped_alloc_drain();
	churn_all_cpus();
	workload_cross_cpu();
	pr_info("run %s done\n", run);
}

/*
 * The single-CPU object workloads alone, as run "quick": for trying a change
 * to the object fast paths in a minute instead of the whole benchmark.
 */
static void bench_quick(void)
{
	run = "quick";
	sim_delay_us = 0;
	unmapped_alloc_set_sim_delay(0);
	unmapped_alloc_set_reserve(0, 0);
	unmapped_alloc_drain();
	churn_one_cpu();
	workload_phases();
	unmapped_alloc_set_reserve(256, 512);
	msleep(200);
	workload_virtio();
	pr_info("run %s done\n", run);
}

static DEFINE_MUTEX(bench_lock);

static ssize_t bench_write(struct file *file, const char __user *ubuf,
			   size_t len, loff_t *ppos)
{
	char buf[32];
	unsigned int us = 0;
	bool pkvm = false;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (sysfs_streq(buf, "scale")) {
		mutex_lock(&bench_lock);
		bench_scale();
		mutex_unlock(&bench_lock);
		return len;
	}
	if (sysfs_streq(buf, "quick")) {
		mutex_lock(&bench_lock);
		bench_quick();
		mutex_unlock(&bench_lock);
		return len;
	}
	if (sysfs_streq(buf, "real"))
		us = 0;
	else if (sysfs_streq(buf, "pkvm"))
		pkvm = true;
	else if (sscanf(buf, "sim %u", &us) != 1 || !us || us > 1000)
		return -EINVAL;

	mutex_lock(&bench_lock);
	sim_delay_us = us;
	run = pkvm ? "pkvm" : us ? "sim-coco" : "real";
	bench_run(!pkvm);
	mutex_unlock(&bench_lock);
	return len;
}

static const struct file_operations bench_fops = {
	.write = bench_write,
};

static int __init bench_init(void)
{
	/* 256 B granules: ITTs are 256 B aligned. */
	its_pool = gen_pool_create(8, NUMA_NO_NODE);
	if (!its_pool)
		return -ENOMEM;
	debugfs_create_file("unmapped_alloc_bench", 0200, NULL, NULL, &bench_fops);
	return 0;
}
late_initcall(bench_init);
