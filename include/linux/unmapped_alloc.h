/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Allocator for memory in a special direct map state: pages removed from
 * the kernel direct map, and memory shared with the host of a confidential
 * guest.
 *
 * The implementation is in Rust under mm/unmapped_alloc; this header is its
 * C interface.
 */
#ifndef _LINUX_UNMAPPED_ALLOC_H
#define _LINUX_UNMAPPED_ALLOC_H

#include <linux/gfp_types.h>
#include <linux/types.h>

struct page;

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
 */
struct page *unmapped_alloc_noscrub(int nid, gfp_t gfp, unsigned int order);

/**
 * unmapped_free() - free pages from unmapped_alloc()
 * @page: first page, as returned by unmapped_alloc()
 * @order: the order it was allocated with
 *
 * May be called from any context. A page the allocator does not own, a
 * wrong order or a double free is reported once and changes nothing.
 */
void unmapped_free(struct page *page, unsigned int order);

/* Largest order served: one PMD-sized block. */
#define UNMAPPED_ALLOC_MAX_ORDER	(PMD_SHIFT - PAGE_SHIFT)

#endif /* _LINUX_UNMAPPED_ALLOC_H */
