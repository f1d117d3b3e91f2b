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
#include <linux/stackdepot.h>
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
 * report's closing line. The trees' lock is taken with interrupts off (the
 * component is called in hard-IRQ context) and their nodes are allocated
 * without sleeping: under memory pressure a range may keep an older stack.
 * A block given back to the page allocator is forgotten.
 */
static DEFINE_MTREE(ua_alloc_stacks);
static DEFINE_MTREE(ua_free_stacks);
static atomic_long_t ua_stacks_lost;

static void ua_stacks_store(struct maple_tree *mt, unsigned long first,
			    unsigned long last, void *entry)
{
	unsigned long flags;
	int err;

	local_irq_save(flags);
	err = mtree_store_range(mt, first, last, entry, GFP_NOWAIT | __GFP_NOWARN);
	local_irq_restore(flags);
	if (err)
		atomic_long_inc(&ua_stacks_lost);
}

static void *ua_stack_entry(void)
{
	depot_stack_handle_t h = kasan_save_stack(GFP_NOWAIT | __GFP_NOWARN,
						  STACK_DEPOT_FLAG_CAN_ALLOC);

	return h ? xa_mk_value((u64)task_pid_nr(current) << 32 | h) : NULL;
}

void ua_kasan_track(unsigned long addr, size_t size, bool alloc)
{
	unsigned long last = addr + size - 1;

	if (!size)
		return;
	if (alloc) {
		ua_stacks_store(&ua_alloc_stacks, addr, last, ua_stack_entry());
		ua_stacks_store(&ua_free_stacks, addr, last, NULL);
	} else {
		ua_stacks_store(&ua_free_stacks, addr, last, ua_stack_entry());
	}
}

void ua_kasan_forget(unsigned long addr, size_t size)
{
	if (!size)
		return;
	ua_stacks_store(&ua_alloc_stacks, addr, addr + size - 1, NULL);
	ua_stacks_store(&ua_free_stacks, addr, addr + size - 1, NULL);
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
	ua_print_stack("allocated", mtree_load(&ua_alloc_stacks, addr));
	ua_print_stack("freed", mtree_load(&ua_free_stacks, addr));
	if (lost)
		pr_err("unmapped_alloc: %ld stack records failed (no memory): a stack above may be older\n",
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
