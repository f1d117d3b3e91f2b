/* SPDX-License-Identifier: GPL-2.0 */
/*
 * For unmapped_alloc's protected-VM tests and its benchmark: the real calls
 * of set_memory_decrypted() and set_memory_encrypted() in the kernel,
 * whoever makes them, counted by kprobes on the two functions (in a pKVM
 * guest each call is a MEM_SHARE or MEM_UNSHARE hypercall per 4 KiB
 * granule), and dma-direct's choice between unmapped_alloc and 7.2's path
 * (patches/0009). Not an API.
 */
#ifndef _MM_UNMAPPED_ALLOC_CONVERSIONS_H
#define _MM_UNMAPPED_ALLOC_CONVERSIONS_H

#include <linux/types.h>

struct ua_conversions {
	u64 calls[2];	/* [0] set_memory_decrypted(), [1] set_memory_encrypted() */
	u64 pages[2];	/* their numpages arguments, summed */
};

int ua_conversions_probe(void);
void ua_conversions_unprobe(void);
void ua_conversions_since(struct ua_conversions *c,
			  const struct ua_conversions *before);
void ua_conversions_read(struct ua_conversions *c);
int ua_set_dma_unmapped_alloc(bool on);

#endif /* _MM_UNMAPPED_ALLOC_CONVERSIONS_H */
