// SPDX-License-Identifier: GPL-2.0
/*
 * A C consumer of <linux/unmapped_alloc.h>: a secret store that keeps its
 * pages out of the kernel direct map, the way secretmem-like users would.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/unmapped_alloc.h>
#include <linux/vmalloc.h>

#define NR_SECRETS 64

static struct page *secrets[NR_SECRETS];

/* Write through a private mapping: the direct map has no entry for it. */
static int fill_secret(struct page *page, u8 val)
{
	void *p = vmap(&page, 1, VM_MAP, PAGE_KERNEL);

	if (!p)
		return -ENOMEM;
	memset(p, val, PAGE_SIZE);
	vunmap(p);
	return 0;
}

static int __init unmapped_alloc_sample_init(void)
{
	unsigned int order, i;
	int ret;

	for (i = 0; i < NR_SECRETS; i++) {
		/* Charged to the memory cgroup of the task loading us. */
		secrets[i] = unmapped_alloc(GFP_KERNEL_ACCOUNT, 0);
		if (!secrets[i]) {
			ret = -ENOMEM;
			goto free;
		}
		ret = fill_secret(secrets[i], i);
		if (ret)
			goto free;
	}
	pr_info("%d secret pages filled, first at pfn %#lx on node %d\n",
		NR_SECRETS, page_to_pfn(secrets[0]), page_to_nid(secrets[0]));

	for (order = 0; order <= UNMAPPED_ALLOC_MAX_ORDER; order++) {
		struct page *page = unmapped_alloc_node(NUMA_NO_NODE,
							GFP_KERNEL, order);

		if (!page) {
			ret = -ENOMEM;
			goto free;
		}
		pr_info("order %u: pfn %#lx node %d\n", order,
			page_to_pfn(page), page_to_nid(page));
		unmapped_free(page, order);
	}
	return 0;
free:
	while (i--)
		unmapped_free(secrets[i], 0);
	return ret;
}

static void __exit unmapped_alloc_sample_exit(void)
{
	unsigned int i;

	for (i = 0; i < NR_SECRETS; i++)
		unmapped_free(secrets[i], 0);
	pr_info("secret pages freed\n");
}

module_init(unmapped_alloc_sample_init);
module_exit(unmapped_alloc_sample_exit);
MODULE_DESCRIPTION("Sample C consumer of unmapped_alloc");
MODULE_LICENSE("GPL");
