/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trace events of mm/unmapped_alloc: block conversion and release, and
 * allocation and free in both allocators, in the spirit of kmem:kmalloc.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM unmapped_alloc

#if !defined(_TRACE_UNMAPPED_ALLOC_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_UNMAPPED_ALLOC_H

#include <linux/tracepoint.h>

/* Kinds of memory: 0 unmapped from the direct map, 1 decrypted (shared). */
#define ua_show_kind(kind) __print_symbolic(kind, { 0, "unmapped" }, { 1, "decrypted" })

DECLARE_EVENT_CLASS(unmapped_alloc_block,
	TP_PROTO(int kind, unsigned long pfn, unsigned int order, int ret),
	TP_ARGS(kind, pfn, order, ret),
	TP_STRUCT__entry(
		__field(int, kind)
		__field(unsigned long, pfn)
		__field(unsigned int, order)
		__field(int, ret)
	),
	TP_fast_assign(
		__entry->kind = kind;
		__entry->pfn = pfn;
		__entry->order = order;
		__entry->ret = ret;
	),
	TP_printk("kind=%s pfn=0x%lx order=%u ret=%d",
		  ua_show_kind(__entry->kind),
		  __entry->pfn, __entry->order, __entry->ret)
);

/* A block taken from the page allocator was unmapped or made shared. */
DEFINE_EVENT(unmapped_alloc_block, unmapped_alloc_block_convert,
	TP_PROTO(int kind, unsigned long pfn, unsigned int order, int ret),
	TP_ARGS(kind, pfn, order, ret)
);

/* A block was converted back and returned, or leaked if ret != 0. */
DEFINE_EVENT(unmapped_alloc_block, unmapped_alloc_block_release,
	TP_PROTO(int kind, unsigned long pfn, unsigned int order, int ret),
	TP_ARGS(kind, pfn, order, ret)
);

TRACE_EVENT(unmapped_alloc_pages,
	TP_PROTO(int kind, unsigned long pfn, unsigned int order,
		 unsigned int gfp),
	TP_ARGS(kind, pfn, order, gfp),
	TP_STRUCT__entry(
		__field(int, kind)
		__field(unsigned long, pfn)
		__field(unsigned int, order)
		__field(unsigned int, gfp)
	),
	TP_fast_assign(
		__entry->kind = kind;
		__entry->pfn = pfn;
		__entry->order = order;
		__entry->gfp = gfp;
	),
	TP_printk("kind=%s pfn=0x%lx order=%u gfp_flags=%#x",
		  ua_show_kind(__entry->kind),
		  __entry->pfn, __entry->order, __entry->gfp)
);

TRACE_EVENT(unmapped_free_pages,
	TP_PROTO(int kind, unsigned long pfn, unsigned int order),
	TP_ARGS(kind, pfn, order),
	TP_STRUCT__entry(
		__field(int, kind)
		__field(unsigned long, pfn)
		__field(unsigned int, order)
	),
	TP_fast_assign(
		__entry->kind = kind;
		__entry->pfn = pfn;
		__entry->order = order;
	),
	TP_printk("kind=%s pfn=0x%lx order=%u",
		  ua_show_kind(__entry->kind),
		  __entry->pfn, __entry->order)
);

TRACE_EVENT(kmalloc_decrypted,
	TP_PROTO(unsigned long ptr, size_t bytes_req, size_t bytes_alloc,
		 unsigned int gfp),
	TP_ARGS(ptr, bytes_req, bytes_alloc, gfp),
	TP_STRUCT__entry(
		__field(unsigned long, ptr)
		__field(size_t, bytes_req)
		__field(size_t, bytes_alloc)
		__field(unsigned int, gfp)
	),
	TP_fast_assign(
		__entry->ptr = ptr;
		__entry->bytes_req = bytes_req;
		__entry->bytes_alloc = bytes_alloc;
		__entry->gfp = gfp;
	),
	TP_printk("ptr=0x%lx bytes_req=%zu bytes_alloc=%zu gfp_flags=%#x",
		  __entry->ptr, __entry->bytes_req, __entry->bytes_alloc,
		  __entry->gfp)
);

TRACE_EVENT(kfree_decrypted,
	TP_PROTO(unsigned long ptr),
	TP_ARGS(ptr),
	TP_STRUCT__entry(
		__field(unsigned long, ptr)
	),
	TP_fast_assign(
		__entry->ptr = ptr;
	),
	TP_printk("ptr=0x%lx", __entry->ptr)
);

#endif /* _TRACE_UNMAPPED_ALLOC_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
