// SPDX-License-Identifier: GPL-2.0
/*
 * The allocation pattern of drivers/irqchip/irq-gic-v3-its.c in a
 * confidential guest, on unmapped_alloc instead of one
 * set_memory_decrypted() per page and a gen_pool that never gives memory
 * back: the device and collection tables as decrypted pages, and one
 * interrupt translation table (ITT) per device, 256 B to 8 KiB and 256 B
 * aligned, allocated when a device appears and freed when it goes.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/unmapped_alloc.h>

#define NR_DEVICES	256
#define ITE_SIZE	8	/* bytes per interrupt translation entry */
#define ITT_ALIGN	256

static struct page *device_table;	/* 64 KiB */
static struct page *collection_table;	/* 16 KiB */
static void *itt[NR_DEVICES];

/* An ITT for a device with @nvecs MSIs: nvecs entries, at least 256 B. */
static void *its_alloc_itt(unsigned int nvecs)
{
	size_t sz = max_t(size_t, nvecs * ITE_SIZE, ITT_ALIGN);
	void *p = kzalloc_decrypted(sz, GFP_KERNEL);

	if (p && !IS_ALIGNED((unsigned long)p, ITT_ALIGN)) {
		pr_err("ITT of %zu bytes not %d B aligned\n", sz, ITT_ALIGN);
		kfree_decrypted(p);
		return NULL;
	}
	return p;
}

static void its_free_tables(void)
{
	unsigned int i;

	for (i = 0; i < NR_DEVICES; i++) {
		kfree_decrypted(itt[i]);
		itt[i] = NULL;
	}
	if (collection_table)
		free_decrypted_pages(collection_table, 2);
	if (device_table)
		free_decrypted_pages(device_table, 4);
}

static int __init its_like_init(void)
{
	unsigned int i, nvecs, removed = 0;
	phys_addr_t phys;

	device_table = alloc_decrypted_pages(GFP_KERNEL | __GFP_ZERO, 4);
	collection_table = alloc_decrypted_pages(GFP_KERNEL | __GFP_ZERO, 2);
	if (!device_table || !collection_table)
		goto nomem;

	/* Devices with 1 to 1024 MSIs: ITTs from 256 B to 8 KiB. */
	for (i = 0; i < NR_DEVICES; i++) {
		nvecs = 1U << get_random_u32_below(11);
		itt[i] = its_alloc_itt(nvecs);
		if (!itt[i])
			goto nomem;
	}
	/* Hot-unplug every third device, then plug new ones in. */
	for (i = 0; i < NR_DEVICES; i += 3, removed++) {
		kfree_decrypted(itt[i]);
		itt[i] = its_alloc_itt(1U << get_random_u32_below(11));
		if (!itt[i])
			goto nomem;
	}
	phys = page_to_phys(device_table);
	pr_info("device table at %pa, %d devices, %u replaced; ITT of device 0: %zu bytes\n",
		&phys, NR_DEVICES, removed, ksize_decrypted(itt[0]));
	return 0;
nomem:
	its_free_tables();
	return -ENOMEM;
}

static void __exit its_like_exit(void)
{
	its_free_tables();
	pr_info("tables and ITTs freed\n");
}

module_init(its_like_init);
module_exit(its_like_exit);
MODULE_DESCRIPTION("ITS-like consumer of unmapped_alloc's decrypted memory");
MODULE_LICENSE("GPL");
