// SPDX-License-Identifier: GPL-2.0
/*
 * The trace events of unmapped_alloc, and a counting probe the KUnit suite
 * uses to see them fire.
 */
#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include <trace/events/unmapped_alloc.h>

#include "internal.h"

#ifdef CONFIG_UNMAPPED_ALLOC_KUNIT_TEST
static atomic_t ua_trace_hits;

static void ua_count_pages(void *data, int kind, unsigned long pfn,
			   unsigned int order, unsigned int gfp)
{
	atomic_inc(&ua_trace_hits);
}

int ua_trace_probe_register(void)
{
	atomic_set(&ua_trace_hits, 0);
	return register_trace_unmapped_alloc_pages(ua_count_pages, NULL);
}

int ua_trace_probe_unregister(void)
{
	int ret = unregister_trace_unmapped_alloc_pages(ua_count_pages, NULL);

	tracepoint_synchronize_unregister();
	return ret;
}

int ua_trace_probe_hits(void)
{
	return atomic_read(&ua_trace_hits);
}
#endif
