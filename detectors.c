// SPDX-License-Identifier: GPL-2.0
/*
 * What the kernel's memory bug detectors see of unmapped_alloc's memory,
 * for the Rust side (rust/sys/detectors.rs): KASAN's shadow, KMSAN's shadow
 * and kmemleak's object registry. Empty where the detector is not built in.
 *
 * Only generic KASAN is served: its shadow values tell a freed page, a
 * freed object and a redzone apart, as for the page and slab allocators.
 * The tag-based modes would need the pointers the component hands out to
 * carry tags, which its lock-free per-CPU paths do not.
 */
#include <linux/kasan.h>
#include <linux/kmemleak.h>
#include <linux/kmsan-checks.h>
#include <linux/kmsan_types.h>
#include <linux/sched.h>

#include "internal.h"

#ifdef CONFIG_KASAN_GENERIC
#include <linux/maple_tree.h>
#include <linux/spinlock.h>
#include <linux/stackdepot.h>
#include <linux/workqueue.h>
#include <trace/events/error_report.h>

#include "../kasan/kasan.h"

static const u8 ua_shadow_value[] = {
	[UA_POISON_FREE_PAGES] = KASAN_PAGE_FREE,
	[UA_POISON_FREE_OBJECT] = KASAN_SLAB_FREE,
	[UA_POISON_OBJECT_REDZONE] = KASAN_SLAB_REDZONE,
	[UA_POISON_PAGE_REDZONE] = KASAN_PAGE_REDZONE,
};

void ua_kasan_poison(unsigned long addr, size_t size, unsigned int what)
{
	if (WARN_ON_ONCE(what >= ARRAY_SIZE(ua_shadow_value)))
		return;
	kasan_poison((void *)addr, size, ua_shadow_value[what], false);
}

void ua_kasan_unpoison(unsigned long addr, size_t size)
{
	kasan_unpoison((void *)addr, size, false);
}

/*
 * Allocation and free stacks, for KASAN's reports. SLUB keeps them in its
 * caches' per-object metadata, which the component's slabs and pages do not
 * have: here two maple trees map each allocation's range (an object's slot, a
 * chunk of pages) to the task and stack depot handle of its last allocation
 * and of its last free. A report about an address in such a range prints
 * them from the error_report_end tracepoint, which KASAN fires before its
 * report's closing line.
 *
 * The component is called in hard-IRQ context, where a maple tree can
 * neither allocate its nodes nor take its lock. So every record goes first
 * into a fixed queue (a raw spinlock, interrupts off, no allocation), in
 * order, and a work item moves them into the trees in that order, in process
 * context. A report looks in the queue, newest first, before the trees. A
 * full queue drops the record and counts it; the report then says that a
 * stack it prints may be older. A block given back to the page allocator is
 * forgotten the same way.
 */
enum ua_stacks_tree { UA_ALLOC_STACKS, UA_FREE_STACKS };

struct ua_stacks_rec {
	unsigned long first, last;	/* ua_stacks_key()s */
	void *entry;		/* xa_mk_value(pid << 32 | handle), or NULL */
	enum ua_stacks_tree tree;
};

#define UA_STACKS_QUEUE	8192

static struct maple_tree ua_stacks[] = {
	[UA_ALLOC_STACKS] = MTREE_INIT(ua_alloc_stacks, 0),
	[UA_FREE_STACKS] = MTREE_INIT(ua_free_stacks, 0),
};

static struct ua_stacks_rec ua_stacks_queue[UA_STACKS_QUEUE];
static unsigned int ua_stacks_head, ua_stacks_len;
static DEFINE_RAW_SPINLOCK(ua_stacks_lock);
static atomic_long_t ua_stacks_lost;

static void ua_stacks_drain(struct work_struct *work)
{
	struct ua_stacks_rec rec;
	unsigned long flags;

	for (;;) {
		raw_spin_lock_irqsave(&ua_stacks_lock, flags);
		if (!ua_stacks_len) {
			raw_spin_unlock_irqrestore(&ua_stacks_lock, flags);
			return;
		}
		rec = ua_stacks_queue[ua_stacks_head];
		ua_stacks_head = (ua_stacks_head + 1) % UA_STACKS_QUEUE;
		ua_stacks_len--;
		raw_spin_unlock_irqrestore(&ua_stacks_lock, flags);
		if (mtree_store_range(&ua_stacks[rec.tree], rec.first, rec.last,
				      rec.entry, GFP_KERNEL | __GFP_NOWARN))
			atomic_long_inc(&ua_stacks_lost);
		cond_resched();
	}
}

static DECLARE_WORK(ua_stacks_work, ua_stacks_drain);

static void ua_stacks_queue_rec(enum ua_stacks_tree tree, unsigned long first,
				unsigned long last, void *entry)
{
	unsigned long flags;
	bool queued = false;

	raw_spin_lock_irqsave(&ua_stacks_lock, flags);
	if (ua_stacks_len < UA_STACKS_QUEUE) {
		ua_stacks_queue[(ua_stacks_head + ua_stacks_len) % UA_STACKS_QUEUE] =
			(struct ua_stacks_rec){ first, last, entry, tree };
		ua_stacks_len++;
		queued = true;
	}
	raw_spin_unlock_irqrestore(&ua_stacks_lock, flags);
	if (queued)
		queue_work(system_dfl_wq, &ua_stacks_work);
	else
		atomic_long_inc(&ua_stacks_lost);
}

/*
 * The records' keys are addresses in KASAN granules, not addresses: kmemleak
 * scans the queue and the trees' nodes, and would take an object's address
 * (or one inside it) kept there for a reference to it: a lost object would
 * never be reported.
 */
static unsigned long ua_stacks_key(unsigned long addr)
{
	return addr >> KASAN_SHADOW_SCALE_SHIFT;
}

static void *ua_stack_entry(void)
{
	depot_stack_handle_t h = kasan_save_stack(GFP_NOWAIT | __GFP_NOWARN,
						  STACK_DEPOT_FLAG_CAN_ALLOC);

	return h ? xa_mk_value((u64)task_pid_nr(current) << 32 | h) : NULL;
}

void ua_kasan_track(unsigned long addr, size_t size, bool alloc)
{
	unsigned long first = ua_stacks_key(addr);
	unsigned long last = ua_stacks_key(addr + size - 1);

	if (!size)
		return;
	if (alloc) {
		ua_stacks_queue_rec(UA_ALLOC_STACKS, first, last, ua_stack_entry());
		ua_stacks_queue_rec(UA_FREE_STACKS, first, last, NULL);
	} else {
		ua_stacks_queue_rec(UA_FREE_STACKS, first, last, ua_stack_entry());
	}
}

void ua_kasan_forget(unsigned long addr, size_t size)
{
	unsigned long first = ua_stacks_key(addr);
	unsigned long last = ua_stacks_key(addr + size - 1);

	if (!size)
		return;
	ua_stacks_queue_rec(UA_ALLOC_STACKS, first, last, NULL);
	ua_stacks_queue_rec(UA_FREE_STACKS, first, last, NULL);
}

/* The newest record of @tree for @addr: still queued, or in the tree. */
static void *ua_stacks_find(enum ua_stacks_tree tree, unsigned long addr)
{
	unsigned long key = ua_stacks_key(addr);
	unsigned long flags;
	unsigned int i;

	raw_spin_lock_irqsave(&ua_stacks_lock, flags);
	for (i = ua_stacks_len; i-- > 0;) {
		struct ua_stacks_rec *r =
			&ua_stacks_queue[(ua_stacks_head + i) % UA_STACKS_QUEUE];

		if (r->tree == tree && r->first <= key && key <= r->last) {
			void *entry = r->entry;

			raw_spin_unlock_irqrestore(&ua_stacks_lock, flags);
			return entry;
		}
	}
	raw_spin_unlock_irqrestore(&ua_stacks_lock, flags);
	return mtree_load(&ua_stacks[tree], key);
}

static void ua_print_stack(const char *what, void *entry)
{
	u64 v;

	if (!xa_is_value(entry))
		return;
	v = xa_to_value(entry);
	pr_err("unmapped_alloc: %s by task %u:\n", what, (u32)(v >> 32));
	stack_depot_print((depot_stack_handle_t)v);
}

static void ua_report_probe(void *ignore, enum error_detector detector,
			    unsigned long addr)
{
	long lost = atomic_long_read(&ua_stacks_lost);

	if (detector != ERROR_DETECTOR_KASAN)
		return;
	ua_print_stack("allocated", ua_stacks_find(UA_ALLOC_STACKS, addr));
	ua_print_stack("freed", ua_stacks_find(UA_FREE_STACKS, addr));
	if (lost)
		pr_err("unmapped_alloc: %ld stack records dropped: a stack above may be older\n",
		       lost);
}

static int __init ua_kasan_stacks_init(void)
{
	if (!IS_ENABLED(CONFIG_TRACEPOINTS) || !kasan_enabled())
		return 0;
	return register_trace_error_report_end(ua_report_probe, NULL);
}
late_initcall(ua_kasan_stacks_init);
#else
void ua_kasan_poison(unsigned long addr, size_t size, unsigned int what)
{
}

void ua_kasan_track(unsigned long addr, size_t size, bool alloc)
{
}

void ua_kasan_forget(unsigned long addr, size_t size)
{
}

void ua_kasan_unpoison(unsigned long addr, size_t size)
{
}
#endif

void ua_kasan_quiet_begin(void)
{
	kasan_disable_current();
}

void ua_kasan_quiet_end(void)
{
	kasan_enable_current();
}

/*
 * KMSAN: rustc does not instrument the component, whose stores leave KMSAN's
 * shadow as it was; these say what the memory it hands out holds.
 */
void ua_kmsan_uninit(unsigned long addr, size_t size, gfp_t gfp)
{
	kmsan_poison_memory((void *)addr, size, gfp);
}

void ua_kmsan_init(unsigned long addr, size_t size)
{
	kmsan_unpoison_memory((void *)addr, size);
}

#ifdef CONFIG_KMSAN
/* KMSAN's runtime entry point for instrumented code (mm/kmsan/instrumentation.c). */
struct kmsan_context_state *__msan_get_context_state(void);

/*
 * A C caller of the C API takes the shadow of the value returned from the
 * task's (or interrupt's) KMSAN context, where the callee leaves it; the
 * component's Rust leaves none, so what is there is the shadow of whatever
 * instrumented C function returned last, often one the Rust just called on
 * memory KMSAN never saw it write. The C API's functions call this as they
 * return: their value is initialised. Not instrumented itself, so that
 * nothing stores a shadow after it.
 */
__no_sanitize_memory void ua_kmsan_returning(void)
{
	struct kmsan_context_state *cs = __msan_get_context_state();

	__builtin_memset(cs->retval_tls, 0, sizeof(u64));
}
#else
void ua_kmsan_returning(void)
{
}
#endif

void ua_kmemleak_alloc(unsigned long addr, size_t size, gfp_t gfp)
{
	kmemleak_alloc((void *)addr, size, 1, gfp);
}

void ua_kmemleak_free(unsigned long addr)
{
	kmemleak_free((void *)addr);
}
