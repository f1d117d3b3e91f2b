// SPDX-License-Identifier: GPL-2.0
/*
 * Torture test of unmapped_alloc ('make torture'), in the style of
 * locktorture and scftorture: every API at once, for minutes, while CPUs go
 * offline and online, a memory hog drives the machine into reclaim, the
 * kernel's fault injection fails conversions, and a hostile host writes all
 * shared memory.
 *
 * Built in; it runs only when booted with unmapped_alloc_torture.duration=N
 * (seconds) and prints, when done, one line:
 *
 *   torture: N ops, N hotplug, N reclaim, N injected, N leaked, N errors
 *
 * Every allocation is recorded in a maple tree by physical range, with its
 * owner's stamp: a range handed out twice (even in part) fails the insert.
 * Mapped memory also carries the stamp in its bytes, checked when freed.
 * At the end everything is freed, the component drained, and its counters
 * must agree with what was freed; with the model backend
 * (unmapped_alloc.decrypted_model=1) every page the model records as shared
 * must be held or leaked by the component, never back in the page allocator.
 */

#define pr_fmt(fmt) "unmapped_alloc " fmt

#include <linux/atomic.h>
#include <linux/cpuhotplug.h>
#include <linux/hrtimer.h>
#include <linux/io.h>
#include <linux/kthread.h>
#include <linux/maple_tree.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/moduleparam.h>
#include <linux/percpu.h>
#include <linux/random.h>
#include <linux/rwsem.h>
#include <linux/set_memory.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/swap.h>
#include <linux/torture.h>
#include <linux/unmapped_alloc.h>

#include "internal.h"

static char *torture_type = "unmapped_alloc";

torture_param(int, duration, 0, "Seconds to run; 0: do not run");
torture_param(int, nworkers, -1, "Worker kthreads; -1: one per CPU and one more");
torture_param(int, slots, 48, "Allocations each worker holds at most");
torture_param(int, stat_interval, 15, "Seconds between statistics lines; 0: none");
torture_param(int, onoff_interval, 300, "Milliseconds between CPU hotplugs; 0: none");
torture_param(int, onoff_holdoff, 2, "Seconds before the first CPU hotplug");
torture_param(int, irq_interval_us, 400, "Microseconds between hard-IRQ allocations; 0: none");
torture_param(bool, hog, true, "Drive the machine into reclaim with a memory hog");
torture_param(int, inject_percent, 0, "Percent of calls at inject_sites to fail");
torture_param(int, inject_sites, UA_FAIL_CONVERSION, "fail_unmapped_alloc sites (mask)");
torture_param(bool, host, true, "Hostile host writing all shared memory (model backend)");
torture_param(int, host_interval_ms, 20, "Milliseconds between hostile host bursts");
torture_param(int, verbose, 0, "Torture framework messages");

#define UA_TORTURE_CACHES	4
#define UA_RING			16
#define UA_HANDOFF		128
#define UA_STAMP_BYTES		256

enum ua_kind {
	UA_NONE,
	UA_UNMAPPED,		/* unmapped_alloc_node() */
	UA_DECRYPTED,		/* alloc_decrypted_pages_node() */
	UA_KMALLOC,		/* kmalloc_decrypted_node() */
	UA_CACHE,		/* kmem_cache_alloc_decrypted() */
};

/* One allocation, wherever it is held. */
struct ua_alloc {
	enum ua_kind kind;
	unsigned int order;	/* pages */
	unsigned int size;	/* objects */
	int cache;		/* UA_CACHE: index in ua_caches[] */
	int cpu;		/* where it was allocated */
	bool tracked;		/* in ua_live */
	bool stamped;		/* its bytes carry the stamp */
	unsigned long stamp;
	unsigned long host_gen;	/* ua_host_gen when stamped */
	struct page *page;
	void *p;		/* mapped address (all but UA_UNMAPPED) */
};

struct ua_worker {
	struct task_struct *task;
	struct torture_random_state rand;
	struct ua_alloc *slot;
	int id;
};

/* A dedicated cache, created and destroyed while the others run. */
struct ua_cache {
	struct rw_semaphore sem;	/* write: create/destroy */
	struct kmem_cache_decrypted *cache;
	unsigned int size, align;
	atomic_t live;
};

/* Per CPU: the hrtimer allocating in hard-IRQ context, and its rings. */
struct ua_pcpu {
	struct hrtimer timer;
	struct torture_random_state rand;
	raw_spinlock_t lock;
	struct ua_alloc got[UA_RING];	/* allocated in IRQ, for the workers */
	int ngot;
	struct ua_alloc put[UA_RING];	/* left by workers, freed in IRQ */
	int nput;
	bool armed;
};

static DEFINE_PER_CPU(struct ua_pcpu, ua_pcpu);
static struct ua_worker *ua_workers;
static int ua_nworkers;
static struct task_struct *ua_maint_task, *ua_hog_task, *ua_host_task, *ua_stats_task;
static struct task_struct *ua_end_task;
static struct ua_cache ua_caches[UA_TORTURE_CACHES];
static DEFINE_MTREE(ua_live);
static DEFINE_SPINLOCK(ua_handoff_lock);
static struct ua_alloc ua_handoff[UA_HANDOFF];
static int ua_nhandoff;
static enum cpuhp_state ua_cpuhp;
static bool ua_counting_hotplug;
static atomic64_t ua_seq;
static struct unmapped_alloc_counters ua_c0;
static u64 ua_injected0;
static unsigned long ua_reserve_low, ua_reserve_high;

/* Odd while the hostile host writes. */
static atomic_long_t ua_host_gen;

static atomic_long_t n_ops, n_allocs, n_alloc_failures, n_frees, n_remote_frees;
static atomic_long_t n_irq_allocs, n_irq_frees, n_hotplug, n_hog_rounds;
/*
 * Shrinker scans that the hog's direct reclaim made (not its drop_slab()),
 * and hog rounds that found nothing reclaimable in the component.
 */
static atomic_long_t n_direct_scans, n_hog_empty;
static atomic_long_t n_maint, n_caches_cycled, n_host_pages, n_zero_checks;
static atomic_long_t n_zero_skipped, n_stamp_checks, n_untracked, n_errors;

#define ua_error(fmt, ...)						\
	do {								\
		atomic_long_inc(&n_errors);				\
		pr_err_ratelimited("torture: ERROR: " fmt, ##__VA_ARGS__); \
	} while (0)

static bool ua_host_quiet(unsigned long gen)
{
	return !(gen & 1) && gen == (unsigned long)atomic_long_read(&ua_host_gen);
}

static unsigned long ua_host_snapshot(void)
{
	unsigned long gen = atomic_long_read(&ua_host_gen);

	/* The generation is read before the bytes it vouches for. */
	smp_rmb();
	return gen;
}

/* Pages (unmapped or decrypted), as opposed to objects. */
static bool ua_is_pages(const struct ua_alloc *a)
{
	return a->kind == UA_UNMAPPED || a->kind == UA_DECRYPTED;
}

static phys_addr_t ua_phys(const struct ua_alloc *a)
{
	return ua_is_pages(a) ? page_to_phys(a->page) : virt_to_phys(a->p);
}

static size_t ua_bytes(const struct ua_alloc *a)
{
	return ua_is_pages(a) ? PAGE_SIZE << a->order : a->size;
}

/* The stamp pattern: word @i of an allocation stamped @stamp. */
static u64 ua_word(unsigned long stamp, size_t i)
{
	return stamp ^ (i * 0x9e3779b97f4a7c15ULL);
}

/*
 * Stamps the first and last UA_STAMP_BYTES of a mapped allocation (all of a
 * small object) so that a write by the allocator or another owner shows.
 * Checking returns the offset of the first word that differs, or -1.
 */
static long ua_stamp_range(struct ua_alloc *a, bool check)
{
	size_t words = ua_bytes(a) / sizeof(u64);
	size_t head = min_t(size_t, words, UA_STAMP_BYTES / sizeof(u64));
	u64 *w = a->p;
	size_t i;

	for (i = 0; i < words; i++) {
		if (i == head && words > 2 * head)
			i = words - head;
		if (!check)
			w[i] = ua_word(a->stamp, i);
		else if (READ_ONCE(w[i]) != ua_word(a->stamp, i))
			return i * sizeof(u64);
	}
	return -1;
}

/* Zeroed memory must be zero when handed out, whatever the host wrote before. */
static void ua_check_zero(struct ua_alloc *a, unsigned long gen)
{
	size_t bytes = ua_bytes(a);

	/*
	 * A race by design (KCSAN reports it, from an unknown origin: the
	 * host's writes are the component's uninstrumented Rust): with
	 * host=1 the hostile host may write any shared byte at any time, as a
	 * real host can; the generation check below tells such a read apart.
	 */
	if (!data_race(memchr_inv(a->p, 0, bytes))) {
		atomic_long_inc(&n_zero_checks);
		return;
	}
	/*
	 * The bytes read above count only if the host's generation, read after
	 * them, did not move. The host may write after the hand-out, not before.
	 */
	smp_rmb();
	if (!ua_host_quiet(gen)) {
		atomic_long_inc(&n_zero_skipped);
		return;
	}
	ua_error("zeroed allocation at %pa (%zu bytes) is not zero\n",
		 &(phys_addr_t){ ua_phys(a) }, bytes);
}

/* Checks the component's record and the direct map for an allocation. */
static void ua_check_state(struct ua_alloc *a, const char *when)
{
	struct page *pages[2];
	int i;

	if (a->kind == UA_KMALLOC && ksize_decrypted(a->p) < a->size)
		ua_error("%s: ksize_decrypted(%p) %zu below %u\n", when, a->p,
			 ksize_decrypted(a->p), a->size);
	if (a->kind == UA_KMALLOC && !IS_ALIGNED((unsigned long)a->p, 256))
		ua_error("%s: object %p not 256 B aligned\n", when, a->p);
	if (a->kind == UA_CACHE &&
	    !IS_ALIGNED((unsigned long)a->p, ua_caches[a->cache].align))
		ua_error("%s: object %p not %u B aligned\n", when, a->p,
			 ua_caches[a->cache].align);
	if (!ua_is_pages(a))
		return;
	pages[0] = a->page;
	pages[1] = a->page + (1 << a->order) - 1;
	for (i = 0; i < 2; i++) {
		enum unmapped_page_state s = unmapped_alloc_page_state(pages[i]);

		if (a->kind == UA_UNMAPPED &&
		    (s != UNMAPPED_PAGE_USED || kernel_page_present(pages[i])))
			ua_error("%s: unmapped pfn %#lx state %d, %s\n", when,
				 page_to_pfn(pages[i]), s,
				 kernel_page_present(pages[i]) ? "mapped" : "unmapped");
		if (a->kind == UA_DECRYPTED && s != SHARED_PAGE_USED)
			ua_error("%s: decrypted pfn %#lx state %d\n", when,
				 page_to_pfn(pages[i]), s);
	}
}

/* Records a fresh allocation: a range already live is a double hand-out. */
static void ua_track(struct ua_alloc *a)
{
	phys_addr_t first = ua_phys(a);
	int ret;

	a->stamp = atomic64_inc_return(&ua_seq) & (LONG_MAX >> 2);
	ret = mtree_insert_range(&ua_live, first, first + ua_bytes(a) - 1,
				 xa_mk_value(a->stamp),
				 GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
	a->tracked = !ret;
	if (ret == -EEXIST)
		ua_error("%pa (%zu bytes) handed out while (part of it) is live\n",
			 &first, ua_bytes(a));
	else if (ret)
		atomic_long_inc(&n_untracked);
	ua_check_state(a, "alloc");
	if (a->kind != UA_UNMAPPED) {
		a->host_gen = ua_host_snapshot();
		ua_stamp_range(a, false);
		a->stamped = true;
	}
}

/* Checks an allocation before it is freed and forgets it. */
static void ua_untrack(struct ua_alloc *a)
{
	phys_addr_t first = ua_phys(a);
	void *entry;

	ua_check_state(a, "free");
	if (a->stamped && ua_host_quiet(a->host_gen)) {
		long bad = ua_stamp_range(a, true);

		/*
		 * Like a seqcount reader: the stamp read above counts only if
		 * the host's generation, read after it, did not move.
		 */
		smp_rmb();
		if (bad >= 0 && ua_host_quiet(a->host_gen))
			ua_error("stamp of %s at %pa (%zu bytes) overwritten at byte %ld\n",
				 a->kind == UA_DECRYPTED ? "pages" : "object", &first,
				 ua_bytes(a), bad);
		atomic_long_inc(&n_stamp_checks);
	}
	a->stamped = false;
	if (!a->tracked)
		return;
	entry = mtree_erase(&ua_live, first);
	if (entry != xa_mk_value(a->stamp))
		ua_error("%pa: live record %p, expected stamp %lx\n", &first, entry,
			 a->stamp);
	a->tracked = false;
}

/* The free call itself; any context. */
static void ua_release(struct ua_alloc *a)
{
	switch (a->kind) {
	case UA_UNMAPPED:
		unmapped_free(a->page, a->order);
		break;
	case UA_DECRYPTED:
		free_decrypted_pages(a->page, a->order);
		break;
	case UA_KMALLOC:
		kfree_decrypted(a->p);
		break;
	case UA_CACHE:
		kmem_cache_free_decrypted(ua_caches[a->cache].cache, a->p);
		atomic_dec(&ua_caches[a->cache].live);
		break;
	case UA_NONE:
		return;
	}
	if (a->cpu != raw_smp_processor_id())
		atomic_long_inc(&n_remote_frees);
	atomic_long_inc(&n_frees);
	a->kind = UA_NONE;
}

static void ua_free(struct ua_alloc *a)
{
	ua_untrack(a);
	ua_release(a);
}

static int ua_random_node(struct torture_random_state *r)
{
	int nid;

	if (torture_random(r) % 2)
		return NUMA_NO_NODE;
	nid = torture_random(r) % nr_node_ids;
	return node_state(nid, N_MEMORY) ? nid : NUMA_NO_NODE;
}

/* Geometric: order k with probability 2^-(k+1), the last one taking the rest. */
static unsigned int ua_random_order(struct torture_random_state *r)
{
	return __ffs(torture_random(r) | (1UL << UNMAPPED_ALLOC_MAX_ORDER));
}

static unsigned int ua_random_size(struct torture_random_state *r)
{
	unsigned long x = torture_random(r);

	if (x % 64 == 0)	/* beyond the caches: decrypted pages */
		return 8192 + 1 + torture_random(r) % (4 * 8192);
	return 1 + torture_random(r) % (256 << (x % 6));
}

/* Allocates something at random into @a from a kthread; false if it failed. */
static bool ua_alloc_one(struct ua_alloc *a, struct torture_random_state *r)
{
	unsigned long x = torture_random(r);
	gfp_t gfp = x % 8 == 0 ? GFP_NOWAIT : GFP_KERNEL;
	int nid = ua_random_node(r);
	struct ua_cache *c;
	unsigned long gen;

	if (x % 4 == 1)
		gfp |= __GFP_ZERO;
	if (x % 16 == 2)
		gfp |= __GFP_NORETRY;
	gfp |= __GFP_NOWARN;
	memset(a, 0, sizeof(*a));
	gen = ua_host_snapshot();
	switch ((x >> 8) % 8) {
	case 0:
	case 1:
		a->kind = UA_UNMAPPED;
		a->order = ua_random_order(r);
		a->page = unmapped_alloc_node(nid, gfp, a->order);
		break;
	case 2:
		a->kind = UA_DECRYPTED;
		a->order = ua_random_order(r) % 4;
		a->page = alloc_decrypted_pages_node(nid, gfp, a->order);
		a->p = a->page ? page_address(a->page) : NULL;
		gfp |= __GFP_ZERO;	/* always zeroed */
		break;
	case 3:
	case 4:
	case 5:
		a->kind = UA_KMALLOC;
		a->size = ua_random_size(r);
		a->p = kmalloc_decrypted_node(a->size, gfp, nid);
		break;
	default:
		a->kind = UA_CACHE;
		a->cache = torture_random(r) % UA_TORTURE_CACHES;
		c = &ua_caches[a->cache];
		down_read(&c->sem);
		a->size = c->size;
		a->p = c->cache ? kmem_cache_alloc_decrypted(c->cache, gfp) : NULL;
		if (a->p)
			atomic_inc(&c->live);
		up_read(&c->sem);
		break;
	}
	if (!a->page && !a->p) {
		a->kind = UA_NONE;
		atomic_long_inc(&n_alloc_failures);
		return false;
	}
	a->cpu = raw_smp_processor_id();
	atomic_long_inc(&n_allocs);
	if (a->kind != UA_UNMAPPED && (gfp & __GFP_ZERO))
		ua_check_zero(a, gen);
	ua_track(a);
	return true;
}

/* Hands an allocation to another thread, or to a CPU's hrtimer; false if full. */
static bool ua_hand_off(struct ua_alloc *a, struct torture_random_state *r)
{
	struct ua_pcpu *pc;
	unsigned long flags;
	bool done = false;

	if (torture_random(r) % 2 && a->kind != UA_CACHE && irq_interval_us > 0) {
		/* Freed in hard-IRQ context: checked and forgotten here first. */
		ua_untrack(a);
		local_irq_save(flags);
		pc = this_cpu_ptr(&ua_pcpu);
		raw_spin_lock(&pc->lock);
		if (pc->armed && pc->nput < UA_RING) {
			pc->put[pc->nput++] = *a;
			done = true;
		}
		raw_spin_unlock(&pc->lock);
		local_irq_restore(flags);
		if (!done)
			ua_release(a);
		a->kind = UA_NONE;
		return true;
	}
	spin_lock(&ua_handoff_lock);
	if (ua_nhandoff < UA_HANDOFF) {
		ua_handoff[ua_nhandoff++] = *a;
		done = true;
	}
	spin_unlock(&ua_handoff_lock);
	if (done)
		a->kind = UA_NONE;
	return done;
}

/* Frees what another thread left, on this thread's CPU. */
static void ua_take_handoff(struct torture_random_state *r)
{
	struct ua_alloc a;
	int n = torture_random(r) % 4;

	while (n--) {
		spin_lock(&ua_handoff_lock);
		if (!ua_nhandoff) {
			spin_unlock(&ua_handoff_lock);
			return;
		}
		a = ua_handoff[--ua_nhandoff];
		spin_unlock(&ua_handoff_lock);
		ua_free(&a);
	}
}

/* Moves allocations made in hard-IRQ context into empty slots (tracked then). */
static void ua_collect_irq(struct ua_worker *w)
{
	unsigned long flags;
	struct ua_pcpu *pc;
	struct ua_alloc a;
	int cpu, i = 0;

	for_each_possible_cpu(cpu) {
		pc = per_cpu_ptr(&ua_pcpu, cpu);
		for (;;) {
			while (i < slots && w->slot[i].kind != UA_NONE)
				i++;
			if (i == slots)
				return;
			raw_spin_lock_irqsave(&pc->lock, flags);
			if (!pc->ngot) {
				raw_spin_unlock_irqrestore(&pc->lock, flags);
				break;
			}
			a = pc->got[--pc->ngot];
			raw_spin_unlock_irqrestore(&pc->lock, flags);
			ua_track(&a);
			w->slot[i] = a;
		}
	}
}

static int ua_worker_fn(void *arg)
{
	struct ua_worker *w = arg;
	struct ua_alloc *a;
	unsigned long x;

	do {
		x = torture_random(&w->rand);
		a = &w->slot[x % slots];
		if (a->kind == UA_NONE)
			ua_alloc_one(a, &w->rand);
		else if ((x >> 16) % 8 == 0 && ua_hand_off(a, &w->rand))
			;
		else
			ua_free(a);
		if ((x >> 20) % 16 == 0) {
			ua_take_handoff(&w->rand);
			ua_collect_irq(w);
		}
		atomic_long_inc(&n_ops);
		if ((x >> 24) % 64 == 0)
			torture_hrtimeout_us(50, 50000, &w->rand);
		cond_resched();
	} while (!torture_must_stop());
	torture_kthread_stopping("ua_worker_fn");
	return 0;
}

/*
 * Hard-IRQ context: GFP_ATOMIC allocations, and frees the workers left. The
 * timer is not HRTIMER_MODE_HARD: like kmalloc(), the component may be called
 * in hard-IRQ context except on PREEMPT_RT, where such timers expire in a
 * softirq, and lockdep checks exactly that.
 */
static enum hrtimer_restart ua_irq_fn(struct hrtimer *t)
{
	struct ua_pcpu *pc = this_cpu_ptr(&ua_pcpu);
	unsigned long x = torture_random(&pc->rand);
	struct ua_alloc a = { .cpu = smp_processor_id() };
	unsigned long gen;
	bool have;

	raw_spin_lock(&pc->lock);
	have = pc->nput > 0;
	if (have)
		a = pc->put[--pc->nput];
	raw_spin_unlock(&pc->lock);
	if (have) {
		ua_release(&a);
		atomic_long_inc(&n_irq_frees);
	}

	memset(&a, 0, sizeof(a));
	a.cpu = smp_processor_id();
	gen = ua_host_snapshot();
	switch (x % 4) {
	case 0:
		a.kind = UA_UNMAPPED;
		a.page = unmapped_alloc(GFP_ATOMIC | __GFP_NOWARN, 0);
		break;
	case 1:
		a.kind = UA_DECRYPTED;
		a.page = alloc_decrypted_pages(GFP_ATOMIC | __GFP_NOWARN, 0);
		a.p = a.page ? page_address(a.page) : NULL;
		break;
	default:
		a.kind = UA_KMALLOC;
		a.size = 1 + (x >> 8) % 2048;
		a.p = kmalloc_decrypted(a.size, GFP_ATOMIC | __GFP_ZERO | __GFP_NOWARN);
		break;
	}
	if (a.page || a.p) {
		atomic_long_inc(&n_irq_allocs);
		if (a.kind != UA_UNMAPPED)
			ua_check_zero(&a, gen);
		raw_spin_lock(&pc->lock);
		have = pc->ngot < UA_RING;
		if (have)
			pc->got[pc->ngot++] = a;
		raw_spin_unlock(&pc->lock);
		if (!have)
			ua_release(&a);
	}
	hrtimer_forward_now(t, us_to_ktime(irq_interval_us));
	return HRTIMER_RESTART;
}

/* CPU hotplug callbacks, run on the CPU concerned: the hrtimers follow. */
static int ua_cpu_online(unsigned int cpu)
{
	struct ua_pcpu *pc = this_cpu_ptr(&ua_pcpu);

	if (READ_ONCE(ua_counting_hotplug))
		atomic_long_inc(&n_hotplug);
	if (irq_interval_us <= 0)
		return 0;
	raw_spin_lock_irq(&pc->lock);
	pc->armed = true;
	raw_spin_unlock_irq(&pc->lock);
	hrtimer_start(&pc->timer, us_to_ktime(irq_interval_us), HRTIMER_MODE_REL_PINNED);
	return 0;
}

static void ua_drain_put_ring(struct ua_pcpu *pc)
{
	struct ua_alloc a;

	for (;;) {
		raw_spin_lock_irq(&pc->lock);
		if (!pc->nput) {
			raw_spin_unlock_irq(&pc->lock);
			return;
		}
		a = pc->put[--pc->nput];
		raw_spin_unlock_irq(&pc->lock);
		ua_release(&a);
	}
}

static int ua_cpu_offline(unsigned int cpu)
{
	struct ua_pcpu *pc = this_cpu_ptr(&ua_pcpu);

	if (READ_ONCE(ua_counting_hotplug))
		atomic_long_inc(&n_hotplug);
	raw_spin_lock_irq(&pc->lock);
	pc->armed = false;
	raw_spin_unlock_irq(&pc->lock);
	hrtimer_cancel(&pc->timer);
	ua_drain_put_ring(pc);
	return 0;
}

/* Destroys a dedicated cache nobody uses and creates one of another geometry. */
static void ua_cache_cycle(struct ua_cache *c, unsigned long x)
{
	char name[32];

	down_write(&c->sem);
	if (!atomic_read(&c->live)) {
		kmem_cache_destroy_decrypted(c->cache);
		c->size = 1 + (x >> 12) % 3000;
		c->align = 256 << ((x >> 24) % 3);
		snprintf(name, sizeof(name), "ua_torture_%lu", (x >> 8) % 100);
		c->cache = kmem_cache_create_decrypted(name, c->size, c->align);
		atomic_long_inc(&n_caches_cycled);
	}
	up_write(&c->sem);
}

/* Drain, shrink, reserve changes, and dedicated caches destroyed and re-created. */
static int ua_maint_fn(void *arg)
{
	DEFINE_TORTURE_RANDOM(rand);
	unsigned long x, low;

	do {
		torture_hrtimeout_ms(20, 100000, &rand);
		x = torture_random(&rand);
		switch (x % 4) {
		case 0:
			unmapped_alloc_drain();
			break;
		case 1:
			low = (x >> 8) % 512;
			if (unmapped_alloc_set_reserve(low, low + (x >> 20) % 512))
				ua_error("set_reserve(%lu, ...) refused\n", low);
			break;
		default:
			ua_cache_cycle(&ua_caches[(x >> 8) % UA_TORTURE_CACHES], x);
			break;
		}
		atomic_long_inc(&n_maint);
	} while (!torture_must_stop());
	torture_kthread_stopping("ua_maint_fn");
	return 0;
}

/*
 * Where the memory hog stops: half-way between the low and the min watermark
 * (summed over the zones). Its last allocations cross the low watermark and
 * wake kswapd, whose reclaim calls the component's shrinker while the others
 * run; the room left above the min watermark keeps their GFP_KERNEL
 * allocations out of direct reclaim and the OOM killer. Boot with a large
 * sysctl.vm.watermark_scale_factor to make that room large.
 */
static unsigned long ua_hog_floor(void)
{
	unsigned long floor = 0;
	struct zone *zone;

	for_each_populated_zone(zone)
		floor += (low_wmark_pages(zone) + min_wmark_pages(zone)) / 2;
	return floor;
}

/* The memory hog: takes free memory down to ua_hog_floor(), holds it briefly. */
static int ua_hog_fn(void *arg)
{
	DEFINE_TORTURE_RANDOM(rand);
	struct page *page, *tmp;
	unsigned int order;
	unsigned long floor;
	LIST_HEAD(held);

	/* After the boot's sysctl.* parameters (watermark_scale_factor) apply. */
	while (system_state != SYSTEM_RUNNING && !torture_must_stop())
		schedule_timeout_interruptible(HZ / 10);
	schedule_timeout_interruptible(HZ);
	do {
		floor = ua_hog_floor();
		for (order = 9; !torture_must_stop();) {
			if (global_zone_page_state(NR_FREE_PAGES) < floor + (1UL << order)) {
				if (order == 0)
					break;
				order = order > 3 ? 3 : 0;
				continue;
			}
			page = alloc_pages(GFP_NOWAIT | __GFP_NOWARN | __GFP_NOMEMALLOC, order);
			if (!page)
				break;
			set_page_private(page, order);
			list_add(&page->lru, &held);
			cond_resched();
		}
		/*
		 * Down there, direct reclaim as the page allocator enters it for
		 * a caller that cannot wait for kswapd. It reaches the shrinkers
		 * (scan = freeable >> priority) only once the priority has dropped
		 * far, which depends on what else is reclaimable: some rounds
		 * never get there. So the round then also reclaims slab at
		 * priority 0, as vm.drop_caches=2 does, which scans every
		 * shrinker that counts something: the component's shrinker runs
		 * in every round, under pressure and beside the workers, unless
		 * it counts nothing even with the block given back first.
		 */
		if (!torture_must_stop()) {
			struct unmapped_alloc_counters c;
			unsigned long count;
			u64 before;

			/*
			 * A whole block allocated and given back to the
			 * decrypted cache just before, so that reclaim finds
			 * something of the component's to take whatever the
			 * workers hold: without it, most rounds find every
			 * block partly used and the shrinker counts nothing.
			 */
			page = alloc_decrypted_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN,
						     UNMAPPED_ALLOC_MAX_ORDER);
			if (page)
				free_decrypted_pages(page, UNMAPPED_ALLOC_MAX_ORDER);
			count = unmapped_alloc_reclaimable();
			unmapped_alloc_read_counters(&c);
			before = c.shrinker_scans;
			try_to_free_pages(node_zonelist(numa_node_id(), GFP_KERNEL), 0,
					  GFP_KERNEL, NULL);
			unmapped_alloc_read_counters(&c);
			atomic_long_add(c.shrinker_scans - before, &n_direct_scans);
			drop_slab();
			if (!count)
				atomic_long_inc(&n_hog_empty);
		}
		torture_hrtimeout_ms(50, 50000, &rand);
		list_for_each_entry_safe(page, tmp, &held, lru) {
			list_del(&page->lru);
			order = page_private(page);
			set_page_private(page, 0);
			__free_pages(page, order);
		}
		atomic_long_inc(&n_hog_rounds);
		torture_hrtimeout_ms(500, 500000, &rand);
	} while (!torture_must_stop());
	torture_kthread_stopping("ua_hog_fn");
	return 0;
}

/* The hostile host: writes random bytes over all shared memory, free and in use. */
static int ua_host_fn(void *arg)
{
	DEFINE_TORTURE_RANDOM(rand);
	long pages;

	do {
		atomic_long_inc(&ua_host_gen);
		/* Odd generation visible before the first write... */
		smp_mb__after_atomic();
		pages = ua_torture_host_write(torture_random(&rand));
		/* ...and the writes before the even one. */
		smp_mb__before_atomic();
		atomic_long_inc(&ua_host_gen);
		if (pages > 0)
			atomic_long_add(pages, &n_host_pages);
		torture_hrtimeout_ms(host_interval_ms, 1000000, &rand);
	} while (!torture_must_stop());
	torture_kthread_stopping("ua_host_fn");
	return 0;
}

static void ua_counters(struct unmapped_alloc_counters *c)
{
	unmapped_alloc_read_counters(c);
}

static long ua_leaked_pages(const struct unmapped_alloc_counters *c)
{
	return c->unmapped_leaked_pages + c->decrypted_leaked_pages -
	       ua_c0.unmapped_leaked_pages - ua_c0.decrypted_leaked_pages;
}

/* Conversions and reversions since the start, both kinds. */
static u64 ua_conversions(const struct unmapped_alloc_counters *c)
{
	return c->unmapped_conversions + c->unmapped_reversions +
	       c->decrypted_conversions + c->decrypted_reversions -
	       ua_c0.unmapped_conversions - ua_c0.unmapped_reversions -
	       ua_c0.decrypted_conversions - ua_c0.decrypted_reversions;
}

static void ua_print_stats(const char *what)
{
	struct unmapped_alloc_counters c;

	ua_counters(&c);
	pr_info("torture: %s: %ld ops, %ld allocs (%ld failed, %ld in IRQ), %ld frees (%ld remote, %ld in IRQ), %ld hotplug, %llu reclaim (%ld in direct reclaim, %ld hog rounds, %ld with nothing to reclaim), %llu conversions, %llu injected, %ld leaked, %ld maintenance (%ld caches cycled), %ld host pages written, zero checks %ld (%ld racing the host), stamp checks %ld, %ld untracked, %ld errors\n",
		what, atomic_long_read(&n_ops), atomic_long_read(&n_allocs),
		atomic_long_read(&n_alloc_failures), atomic_long_read(&n_irq_allocs),
		atomic_long_read(&n_frees), atomic_long_read(&n_remote_frees),
		atomic_long_read(&n_irq_frees), atomic_long_read(&n_hotplug),
		c.shrinker_scans - ua_c0.shrinker_scans, atomic_long_read(&n_direct_scans),
		atomic_long_read(&n_hog_rounds), atomic_long_read(&n_hog_empty),
		ua_conversions(&c),
		ua_fail_injected() - ua_injected0, ua_leaked_pages(&c),
		atomic_long_read(&n_maint), atomic_long_read(&n_caches_cycled),
		atomic_long_read(&n_host_pages), atomic_long_read(&n_zero_checks),
		atomic_long_read(&n_zero_skipped), atomic_long_read(&n_stamp_checks),
		atomic_long_read(&n_untracked), atomic_long_read(&n_errors));
}

static int ua_stats_fn(void *arg)
{
	do {
		schedule_timeout_interruptible(stat_interval * HZ);
		if (!torture_must_stop())
			ua_print_stats("stats");
	} while (!torture_must_stop());
	torture_kthread_stopping("ua_stats_fn");
	return 0;
}

/* Frees everything still held, once every thread and timer has stopped. */
static void ua_free_all(void)
{
	struct ua_pcpu *pc;
	int i, j, cpu;

	for (i = 0; i < ua_nworkers; i++)
		for (j = 0; ua_workers[i].slot && j < slots; j++)
			if (ua_workers[i].slot[j].kind != UA_NONE)
				ua_free(&ua_workers[i].slot[j]);
	while (ua_nhandoff)
		ua_free(&ua_handoff[--ua_nhandoff]);
	for_each_possible_cpu(cpu) {
		pc = per_cpu_ptr(&ua_pcpu, cpu);
		ua_drain_put_ring(pc);
		while (pc->ngot)
			ua_release(&pc->got[--pc->ngot]);
	}
	for (i = 0; i < UA_TORTURE_CACHES; i++) {
		if (atomic_read(&ua_caches[i].live))
			ua_error("cache %d: %d objects still live\n", i,
				 atomic_read(&ua_caches[i].live));
		kmem_cache_destroy_decrypted(ua_caches[i].cache);
		ua_caches[i].cache = NULL;
	}
}

/* After everything was freed and drained, the counters must agree. */
static void ua_final_checks(void)
{
	struct unmapped_alloc_counters c;
	long shared;

	if (!mtree_empty(&ua_live))
		ua_error("allocations still recorded as live after freeing all\n");
	mtree_destroy(&ua_live);
	unmapped_alloc_drain();
	ua_counters(&c);
	if (c.unmapped_used_pages != ua_c0.unmapped_used_pages)
		ua_error("unmapped pages in use: %llu, %llu before the run\n",
			 c.unmapped_used_pages, ua_c0.unmapped_used_pages);
	if (c.decrypted_used_pages != ua_c0.decrypted_used_pages)
		ua_error("decrypted pages in use: %llu, %llu before the run\n",
			 c.decrypted_used_pages, ua_c0.decrypted_used_pages);
	shared = ua_torture_model_shared_pages();
	if (shared >= 0 && shared != c.decrypted_held_pages + c.decrypted_leaked_pages)
		ua_error("%ld pages shared, %llu held and %llu leaked: some went back\n",
			 shared, c.decrypted_held_pages, c.decrypted_leaked_pages);
	if (duration >= 30) {
		if (hog && c.shrinker_scans == ua_c0.shrinker_scans)
			ua_error("the memory hog never drove reclaim into the shrinker\n");
		/* Expect one only where the odds make it near certain. */
		if (inject_percent > 0 && ua_fail_injected() == ua_injected0 &&
		    ua_conversions(&c) * inject_percent >= 500)
			ua_error("no failure injected in %llu conversions\n",
				 ua_conversions(&c));
		if (onoff_interval > 0 && num_possible_cpus() > 1 &&
		    !atomic_long_read(&n_hotplug))
			ua_error("no CPU hotplug happened\n");
	}
	ua_print_stats("end");
	pr_info("torture: %ld ops, %ld hotplug, %llu reclaim, %llu injected, %ld leaked, %ld errors\n",
		atomic_long_read(&n_ops), atomic_long_read(&n_hotplug),
		c.shrinker_scans - ua_c0.shrinker_scans, ua_fail_injected() - ua_injected0,
		ua_leaked_pages(&c), atomic_long_read(&n_errors));
}

static void ua_torture_cleanup(void)
{
	int i;

	if (torture_cleanup_begin())
		return;
	WRITE_ONCE(ua_counting_hotplug, false);
	if (ua_workers)
		for (i = 0; i < ua_nworkers; i++)
			torture_stop_kthread(ua_worker_fn, ua_workers[i].task);
	torture_stop_kthread(ua_maint_fn, ua_maint_task);
	torture_stop_kthread(ua_hog_fn, ua_hog_task);
	torture_stop_kthread(ua_host_fn, ua_host_task);
	torture_stop_kthread(ua_stats_fn, ua_stats_task);
	if (ua_cpuhp > 0)
		cpuhp_remove_state(ua_cpuhp);
	ua_fail_configure(UA_FAIL_ALL, 0);
	ua_free_all();
	unmapped_alloc_set_reserve(ua_reserve_low, ua_reserve_high);
	ua_final_checks();
	if (ua_workers)
		for (i = 0; i < ua_nworkers; i++)
			kfree(ua_workers[i].slot);
	kfree(ua_workers);
	ua_workers = NULL;
	torture_cleanup_end();
}

/* Ends the run after @duration seconds; not a torture kthread, as it stops them. */
static int ua_end_fn(void *arg)
{
	schedule_timeout_uninterruptible(duration * HZ);
	ua_torture_cleanup();
	return 0;
}

static int __init ua_torture_init(void)
{
	struct ua_pcpu *pc;
	int i, cpu, err;

	if (duration <= 0)
		return 0;
	if (!torture_init_begin(torture_type, verbose))
		return -EBUSY;
	pr_info("torture: %d s, %d workers, hog %d, inject %d%% at %#x, host %d, onoff %d ms, irq %d us\n",
		duration, nworkers, hog, inject_percent, inject_sites, host,
		onoff_interval, irq_interval_us);
	for (i = 0; i < UA_TORTURE_CACHES; i++) {
		init_rwsem(&ua_caches[i].sem);
		atomic_set(&ua_caches[i].live, 0);
		ua_cache_cycle(&ua_caches[i], get_random_u32());
	}
	for_each_possible_cpu(cpu) {
		pc = per_cpu_ptr(&ua_pcpu, cpu);
		raw_spin_lock_init(&pc->lock);
		hrtimer_setup(&pc->timer, ua_irq_fn, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED);
	}
	unmapped_alloc_drain();
	unmapped_alloc_get_reserve(&ua_reserve_low, &ua_reserve_high);
	ua_counters(&ua_c0);
	ua_injected0 = ua_fail_injected();

	slots = max(slots, 1);
	ua_nworkers = nworkers >= 0 ? nworkers : num_online_cpus() + 1;
	ua_workers = kcalloc(ua_nworkers, sizeof(*ua_workers), GFP_KERNEL);
	err = -ENOMEM;
	if (!ua_workers)
		goto unwind;
	for (i = 0; i < ua_nworkers; i++) {
		ua_workers[i].id = i;
		ua_workers[i].slot = kcalloc(slots, sizeof(struct ua_alloc), GFP_KERNEL);
		if (!ua_workers[i].slot)
			goto unwind;
	}
	err = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "unmapped_alloc_torture:online",
				ua_cpu_online, ua_cpu_offline);
	if (err < 0)
		goto unwind;
	ua_cpuhp = err;
	WRITE_ONCE(ua_counting_hotplug, true);
	if (inject_percent > 0)
		ua_fail_configure(inject_sites, inject_percent);
	for (i = 0; i < ua_nworkers; i++) {
		err = torture_create_kthread(ua_worker_fn, &ua_workers[i], ua_workers[i].task);
		if (err)
			goto unwind;
	}
	err = torture_create_kthread(ua_maint_fn, NULL, ua_maint_task);
	if (!err && hog)
		err = torture_create_kthread(ua_hog_fn, NULL, ua_hog_task);
	if (!err && host && ua_torture_model_shared_pages() >= 0)
		err = torture_create_kthread(ua_host_fn, NULL, ua_host_task);
	if (!err && stat_interval > 0)
		err = torture_create_kthread(ua_stats_fn, NULL, ua_stats_task);
	if (!err && onoff_interval > 0)
		err = torture_onoff_init(onoff_holdoff * HZ, msecs_to_jiffies(onoff_interval),
					 NULL);
	if (err)
		goto unwind;
	ua_end_task = kthread_run(ua_end_fn, NULL, "ua_torture_end");
	if (IS_ERR(ua_end_task)) {
		err = PTR_ERR(ua_end_task);
		goto unwind;
	}
	torture_init_end();
	return 0;

unwind:
	torture_init_end();
	ua_torture_cleanup();
	return err;
}
late_initcall(ua_torture_init);
