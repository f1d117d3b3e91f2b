// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for the Rust implementation of unmapped_alloc: the direct map
 * and the page frames, fault injection, the calling context, per-CPU
 * iteration, locks and memory cgroup charges.
 */
#include <linux/completion.h>
#include <linux/cpu.h>
#include <linux/debugfs.h>
#include <linux/fault-inject.h>
#include <linux/gfp.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/preempt.h>
#include <linux/ratelimit.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/set_memory.h>
#include <linux/spinlock.h>
#include <linux/topology.h>
#include <linux/unmapped_alloc.h>
#include <linux/vmalloc.h>
#include <asm/tlbflush.h>

#include "internal.h"

unsigned int ua_num_online_cpus(void)
{
	return num_online_cpus();
}

/*
 * Bad frees are reported with the caller's stack, rate limited like SLUB's
 * reports rather than once per boot, so that every broken caller shows up.
 */
static DEFINE_RATELIMIT_STATE(ua_bad_free_rs, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

bool ua_bad_free_ratelimit(void)
{
	return __ratelimit(&ua_bad_free_rs);
}

/*
 * Fault injection with the kernel's framework: boot parameter
 * fail_unmapped_alloc=<interval>,<probability>,<space>,<times> and debugfs
 * fail_unmapped_alloc/ (probability, interval, times, verbose, ... and
 * "sites", a mask of the UA_FAIL_* points to fail). Only the real paths are
 * instrumented: the model backend of the unit tests has its own.
 */
#ifdef CONFIG_FAULT_INJECTION
static u32 ua_fail_sites = UA_FAIL_ALL;
static DECLARE_FAULT_ATTR(fail_unmapped_alloc);

/*
 * The boot parameter is applied by an initcall, not by its __setup handler:
 * setup_fault_attr() calls prandom_init_once(), and DO_ONCE's
 * once_disable_jump() allocates memory, which oopses in __setup time, before
 * the slab allocator is up (7.2, any fail_*= parameter). The string stays in
 * the kernel's copy of the command line.
 */
static char *ua_fail_param __initdata;

static int __init setup_fail_unmapped_alloc(char *str)
{
	ua_fail_param = str;
	return 1;
}
__setup("fail_unmapped_alloc=", setup_fail_unmapped_alloc);

/* Before the component's initcall, so that its first allocations see it. */
static int __init fail_unmapped_alloc_param(void)
{
	if (ua_fail_param)
		setup_fault_attr(&fail_unmapped_alloc, ua_fail_param);
	return 0;
}
early_initcall(fail_unmapped_alloc_param);

#ifdef CONFIG_FAULT_INJECTION_DEBUG_FS
static int __init fail_unmapped_alloc_debugfs(void)
{
	struct dentry *dir;

	dir = fault_create_debugfs_attr("fail_unmapped_alloc", NULL, &fail_unmapped_alloc);
	if (IS_ERR(dir))
		return PTR_ERR(dir);
	debugfs_create_x32("sites", 0600, dir, &ua_fail_sites);
	return 0;
}
late_initcall(fail_unmapped_alloc_debugfs);
#endif

static atomic64_t ua_fail_injected_count = ATOMIC64_INIT(0);

bool ua_should_fail(unsigned int site, size_t size)
{
	if (!(READ_ONCE(ua_fail_sites) & site) || !should_fail(&fail_unmapped_alloc, size))
		return false;
	atomic64_inc(&ua_fail_injected_count);
	return true;
}

u64 ua_fail_injected(void)
{
	return atomic64_read(&ua_fail_injected_count);
}

#if IS_ENABLED(CONFIG_UNMAPPED_ALLOC_TORTURE)
/* The torture test: fail @percent % of the calls at @sites, quietly, for good. */
void ua_fail_configure(unsigned int sites, unsigned int percent)
{
	fail_unmapped_alloc.probability = 0;
	WRITE_ONCE(ua_fail_sites, sites);
	fail_unmapped_alloc.verbose = 0;
	fail_unmapped_alloc.interval = 1;
	atomic_set(&fail_unmapped_alloc.space, 0);
	atomic_set(&fail_unmapped_alloc.times, -1);
	fail_unmapped_alloc.probability = percent;
}
#endif

#if IS_ENABLED(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)
/* Tests: fail the next @times calls at @sites, quietly; 0 stops injecting. */
void ua_fail_inject(unsigned int sites, int times)
{
	fail_unmapped_alloc.probability = 0;
	WRITE_ONCE(ua_fail_sites, times ? sites : UA_FAIL_ALL);
	fail_unmapped_alloc.verbose = 0;
	fail_unmapped_alloc.interval = 1;
	atomic_set(&fail_unmapped_alloc.space, 0);
	atomic_set(&fail_unmapped_alloc.times, times);
	if (times)
		fail_unmapped_alloc.probability = 100;
}
#endif
#else
bool ua_should_fail(unsigned int site, size_t size)
{
	return false;
}

u64 ua_fail_injected(void)
{
	return 0;
}

void ua_fail_configure(unsigned int sites, unsigned int percent)
{
}

void ua_fail_inject(unsigned int sites, int times)
{
}
#endif

/*
 * A caller's GFP_NOFS or GFP_NOIO also governs what the component allocates
 * for it (blocks, metadata, temporary mappings, all GFP_KERNEL): it enters
 * the matching memalloc scope around that work. Returns what to restore.
 */
unsigned int ua_reclaim_scope_enter(gfp_t gfp)
{
	unsigned int flags = 0;

	if (!(gfp & __GFP_IO))
		flags = PF_MEMALLOC_NOIO;
	else if (!(gfp & __GFP_FS))
		flags = PF_MEMALLOC_NOFS;
	return memalloc_flags_save(flags);
}

void ua_reclaim_scope_exit(unsigned int old)
{
	memalloc_flags_restore(old);
}

/* The current task's NOFS/NOIO scope (tests). */
unsigned int ua_reclaim_scope_current(void)
{
	return current->flags & (PF_MEMALLOC_NOFS | PF_MEMALLOC_NOIO);
}

bool ua_node_has_memory(int nid)
{
	return nid >= 0 && nid < nr_node_ids && node_state(nid, N_MEMORY);
}

void ua_flush_tlb_kernel_range(unsigned long start, unsigned long end)
{
	flush_tlb_kernel_range(start, end);
}

struct page *ua_alloc_pages_node(int nid, gfp_t gfp, unsigned int order)
{
	return alloc_pages_node(nid, gfp, order);
}

/*
 * Take the reference count of the page at @pfn from @refs to 0 in one step,
 * or fail: a speculative get_page_unless_zero() (a page cache lookup under
 * RCU, GUP-fast) may raise it at any time, and must either come before and
 * make the free fail, or find 0 and back off.
 */
bool ua_page_ref_freeze(unsigned long pfn, int refs)
{
	return page_ref_freeze(pfn_to_page(pfn), refs);
}

/* Whether the page at @pfn is mapped into a user address space. */
bool ua_page_mapped(unsigned long pfn)
{
	return folio_mapped(page_folio(pfn_to_page(pfn)));
}

/* A consumer's get_page() and put_page(), for the tests. */
void ua_get_page(unsigned long pfn)
{
	get_page(pfn_to_page(pfn));
}

void ua_put_page(unsigned long pfn)
{
	put_page(pfn_to_page(pfn));
}

/*
 * Map @nr pages starting at @pfn at a temporary kernel address, for pages
 * that have no direct mapping. May sleep. Undo with vunmap().
 */
void *ua_vmap_pfns(unsigned long pfn, unsigned int nr)
{
	struct page **pages;
	unsigned int i;
	void *addr;

	pages = kmalloc_array(nr, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return NULL;
	for (i = 0; i < nr; i++)
		pages[i] = pfn_to_page(pfn + i);
	addr = vmap(pages, nr, VM_MAP, PAGE_KERNEL);
	kfree(pages);
	return addr;
}

/* Disable preemption; return the CPU we now stay on. */
unsigned int ua_get_cpu(void)
{
	return get_cpu();
}

void ua_put_cpu(void)
{
	put_cpu();
}

struct ua_each_cpu_call {
	void (*fn)(void *info, unsigned int cpu, bool online);
	void *info;
	unsigned int cpu;
};

static int ua_each_cpu_one(void *arg)
{
	struct ua_each_cpu_call *call = arg;

	call->fn(call->info, call->cpu, true);
	return 0;
}

/*
 * Call @fn(@info, cpu, online) for every possible CPU, in process context:
 * for an online CPU in a kworker bound to it, for offline CPUs (which run
 * nothing) here. Serialised against itself and CPU hotplug. May sleep.
 */
void ua_each_cpu(void (*fn)(void *info, unsigned int cpu, bool online),
		 void *info)
{
	static DEFINE_MUTEX(lock);
	struct ua_each_cpu_call call = { .fn = fn, .info = info };
	unsigned int cpu;

	mutex_lock(&lock);
	cpus_read_lock();
	for_each_possible_cpu(cpu) {
		call.cpu = cpu;
		if (cpu_online(cpu))
			smp_call_on_cpu(cpu, ua_each_cpu_one, &call, false);
		else
			fn(info, cpu, false);
	}
	cpus_read_unlock();
	mutex_unlock(&lock);
}

#if IS_ENABLED(CONFIG_UNMAPPED_ALLOC_KUNIT_TEST)
struct ua_on_cpus_thread {
	void (*fn)(void *info, unsigned int i);
	void *info;
	unsigned int i;
	struct completion done;
};

static int ua_on_cpus_fn(void *arg)
{
	struct ua_on_cpus_thread *t = arg;

	t->fn(t->info, t->i);
	complete(&t->done);
	return 0;
}

/*
 * Tests: call @fn(@info, i) for i < @n at the same time, each in a kthread
 * bound to the i-th online CPU, and wait for all of them. -ENODEV if fewer
 * than @n CPUs are online; CPU hotplug waits meanwhile.
 */
int ua_test_on_cpus(void (*fn)(void *info, unsigned int i), void *info,
		    unsigned int n)
{
	struct ua_on_cpus_thread *t;
	struct task_struct *task;
	unsigned int cpu, i = 0, started = 0;
	int ret = 0;

	t = kcalloc(n, sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	cpus_read_lock();
	if (num_online_cpus() < n) {
		ret = -ENODEV;
		goto out;
	}
	for_each_online_cpu(cpu) {
		if (i == n)
			break;
		t[i] = (struct ua_on_cpus_thread){ .fn = fn, .info = info, .i = i };
		init_completion(&t[i].done);
		task = kthread_run_on_cpu(ua_on_cpus_fn, &t[i], cpu, "ua_test/%u");
		if (IS_ERR(task)) {
			ret = PTR_ERR(task);
			break;
		}
		started++;
		i++;
	}
	for (i = 0; i < started; i++)
		wait_for_completion(&t[i].done);
out:
	cpus_read_unlock();
	kfree(t);
	return ret;
}

struct ua_test_timer {
	struct hrtimer timer;
	void (*fn)(void *info);
	void *info;
};

static enum hrtimer_restart ua_test_timer_fn(struct hrtimer *timer)
{
	struct ua_test_timer *t = container_of(timer, struct ua_test_timer, timer);

	t->fn(t->info);
	return HRTIMER_NORESTART;
}

/*
 * Tests: a timer that calls @fn(@info) in interrupt context on the CPU that
 * started it. Not HRTIMER_MODE_HARD: it expires in hard interrupt context
 * except on PREEMPT_RT, like the interrupt handlers that may call the
 * allocator (and lockdep checks the callee accordingly).
 */
struct ua_test_timer *ua_test_timer_new(void (*fn)(void *info), void *info)
{
	struct ua_test_timer *t = kzalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return NULL;
	t->fn = fn;
	t->info = info;
	hrtimer_setup(&t->timer, ua_test_timer_fn, CLOCK_MONOTONIC,
		      HRTIMER_MODE_REL_PINNED);
	return t;
}

/* Tests: (re)start @t to expire in @ns nanoseconds on this CPU. */
void ua_test_timer_start(struct ua_test_timer *t, u64 ns)
{
	hrtimer_start(&t->timer, ns_to_ktime(ns), HRTIMER_MODE_REL_PINNED);
}

/* Tests: stop @t, waiting for a running callback, and free it. */
void ua_test_timer_free(struct ua_test_timer *t)
{
	hrtimer_cancel(&t->timer);
	kfree(t);
}
#endif

/*
 * Whether set_direct_map_*() really changes the direct map. On arm64 it
 * silently does nothing unless the linear map is page-granular (rodata=on,
 * debug_pagealloc, KFENCE, a realm); unmapped pages must then be refused.
 */
bool ua_can_set_direct_map(void)
{
	return can_set_direct_map();
}

/* Charge an allocation to the memory cgroup of the current task. */
int ua_memcg_charge(unsigned long pfn, gfp_t gfp, unsigned int order)
{
	return memcg_kmem_charge_page(pfn_to_page(pfn), gfp, order);
}

/* Uncharge it; does nothing for pages that were not charged. */
void ua_memcg_uncharge(unsigned long pfn, unsigned int order)
{
	struct page *page = pfn_to_page(pfn);

	/* Only the component's own charge: a user's (a folio's) is the user's. */
	if (PageMemcgKmem(page))
		memcg_kmem_uncharge_page(page, order);
}
