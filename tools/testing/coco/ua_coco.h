/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The mailbox between the coco KUnit test (the protected guest) and the test
 * VMM (its host), for 'make test-coco'. The guest puts it in a page it shares
 * with the host, fills in the ranges it allocated and what it wrote there, and
 * prints "ua-coco: mailbox <gpa> seq <n>" on the console. The VMM sees the
 * line in its console MMIO exit, with the vCPU stopped, reads every range
 * through its own mapping of guest memory, writes the results and sets @done
 * to @seq; the guest waits for that and asserts the results.
 */
#ifndef UA_COCO_H
#define UA_COCO_H

#include <linux/types.h>

#define UA_COCO_MAGIC		0x6f636f632d6175ULL	/* "ua-coco" */
#define UA_COCO_MAX_RANGES	120

/* What the guest expects the host to see. */
enum ua_coco_expect {
	UA_COCO_EXPECT_SHARED = 1,	/* readable, with the pattern */
	UA_COCO_EXPECT_PRIVATE = 2,	/* any read refused */
};

/* What the host saw. */
enum ua_coco_result {
	UA_COCO_UNCHECKED = 0,
	UA_COCO_READ_PATTERN = 1,	/* readable, every word the pattern */
	UA_COCO_READ_OTHER = 2,		/* readable, other content */
	UA_COCO_REFUSED = 3,		/* the read faulted (SIGSEGV/SIGBUS) */
	UA_COCO_OUTSIDE = 4,		/* not in guest memory */
};

/* Where the memory came from, for the host's report. */
enum ua_coco_kind {
	UA_COCO_KMALLOC = 0,		/* a kmalloc_decrypted() object */
	UA_COCO_DECRYPTED_PAGE = 1,	/* a page of alloc_decrypted_pages() */
	UA_COCO_UNMAPPED_PAGE = 2,	/* a page of unmapped_alloc() */
	UA_COCO_PLAIN_PAGE = 3,		/* a page of alloc_pages(), for contrast */
	UA_COCO_FREED_PAGE = 4,		/* once shared, then freed and drained */
	UA_COCO_DMA_COHERENT = 5,	/* dma_alloc_coherent() memory */
	UA_COCO_NR_KINDS
};

struct ua_coco_range {
	__u64 gpa;		/* guest-physical address */
	__u64 pattern;		/* every 64-bit word of the range */
	__u32 len;		/* bytes, a multiple of 8 */
	__u32 expect;		/* enum ua_coco_expect */
	__u32 kind;		/* enum ua_coco_kind */
	__u32 result;		/* enum ua_coco_result, written by the host */
};

struct ua_coco_mailbox {
	__u64 magic;
	__u32 seq;		/* request number, written last by the guest */
	__u32 nr;		/* ranges in use */
	__u32 done;		/* = seq once the host wrote every result */
	__u32 reserved[3];
	struct ua_coco_range r[UA_COCO_MAX_RANGES];
};

#endif /* UA_COCO_H */
