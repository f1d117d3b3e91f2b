// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite unmapped_alloc_coco: what the host of a confidential guest
 * really sees of the component's memory.
 *
 * Only meaningful in a pKVM protected VM run by the test VMM of 'make
 * test-coco' (tools/testing/coco/): the guest lists the ranges it got from
 * kmalloc_decrypted(), alloc_decrypted_pages(), unmapped_alloc() and plain
 * alloc_pages() in a mailbox page shared with the host, with the pattern it
 * wrote into each, and asks the host to read them all. The host must read
 * every shared range with its pattern and be refused every private one; once
 * the shared memory is freed and drained, the same pages must be refused
 * too. Anywhere else (no pKVM MEM_SHARE service) the tests skip.
 */
#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/device/faux.h>
#include <linux/dma-direct.h>
#include <linux/dma-mapping.h>
#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/set_memory.h>
#include <linux/spinlock.h>
#include <linux/unmapped_alloc.h>
#include <linux/vmalloc.h>
#if IS_ENABLED(CONFIG_ARM_PKVM_GUEST)
#include <linux/arm-smccc.h>
#include <asm/hypervisor.h>
#endif

#include "conversions.h"
#include "tools/testing/coco/ua_coco.h"

#define HOST_ANSWER_TIMEOUT_MS	30000

struct coco_ctx {
	struct ua_coco_mailbox *mb;
	unsigned int seq;
};

static bool pkvm_protected_guest(void)
{
#if IS_ENABLED(CONFIG_ARM_PKVM_GUEST)
	return kvm_arm_hyp_service_available(ARM_SMCCC_KVM_FUNC_MEM_SHARE);
#else
	return false;
#endif
}

/*
 * The mailbox is converted by itself, outside the component, so that it
 * keeps none of the component's blocks shared.
 */
static int coco_init(struct kunit *test)
{
	struct coco_ctx *ctx;
	struct page *page;

	if (!pkvm_protected_guest())
		kunit_skip(test, "not a pKVM protected guest (run by 'make test-coco')");
	ctx = kunit_kzalloc(test, sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!page)
		return -ENOMEM;
	if (set_memory_decrypted((unsigned long)page_address(page), 1)) {
		/* Unknown state: leaked on purpose. */
		return -EIO;
	}
	ctx->mb = page_address(page);
	test->priv = ctx;
	return 0;
}

static void coco_exit(struct kunit *test)
{
	struct coco_ctx *ctx = test->priv;

	if (!ctx || !ctx->mb)
		return;
	if (!set_memory_encrypted((unsigned long)ctx->mb, 1))
		free_page((unsigned long)ctx->mb);
}

static void coco_add(struct kunit *test, phys_addr_t gpa, size_t len, u64 pattern,
		     enum ua_coco_expect expect, enum ua_coco_kind kind)
{
	struct coco_ctx *ctx = test->priv;
	struct ua_coco_range *r;

	KUNIT_ASSERT_LT(test, ctx->mb->nr, UA_COCO_MAX_RANGES);
	r = &ctx->mb->r[ctx->mb->nr++];
	*r = (struct ua_coco_range){
		.gpa = gpa, .len = len, .pattern = pattern, .expect = expect, .kind = kind,
	};
}

static void fill(void *p, size_t len, u64 pattern)
{
	u64 *w = p;
	size_t i;

	for (i = 0; i < len / sizeof(u64); i++)
		w[i] = pattern;
}

/* Asks the host to check every range, waits for its answer. */
static void ask_host(struct kunit *test)
{
	struct coco_ctx *ctx = test->priv;
	struct ua_coco_mailbox *mb = ctx->mb;
	unsigned long deadline = jiffies + msecs_to_jiffies(HOST_ANSWER_TIMEOUT_MS);
	phys_addr_t gpa = virt_to_phys(mb);

	mb->magic = UA_COCO_MAGIC;
	WRITE_ONCE(mb->done, 0);
	/* Pairs with the host's acquire: the ranges are written before @seq. */
	smp_store_release(&mb->seq, ++ctx->seq);
	pr_info("ua-coco: mailbox %llx seq %u\n", (unsigned long long)gpa, ctx->seq);
	/* Pairs with the host's release: the results are read after @done. */
	while (smp_load_acquire(&mb->done) != ctx->seq && time_before(jiffies, deadline))
		usleep_range(1000, 2000);
	KUNIT_ASSERT_EQ_MSG(test, READ_ONCE(mb->done), ctx->seq,
			    "the host did not answer within %d ms", HOST_ANSWER_TIMEOUT_MS);
}

static void expect_results(struct kunit *test)
{
	struct ua_coco_mailbox *mb = ((struct coco_ctx *)test->priv)->mb;
	unsigned int i;

	for (i = 0; i < mb->nr; i++) {
		struct ua_coco_range *r = &mb->r[i];
		u32 want = r->expect == UA_COCO_EXPECT_SHARED ? UA_COCO_READ_PATTERN
							      : UA_COCO_REFUSED;

		KUNIT_EXPECT_EQ_MSG(test, r->result, want,
				    "range %u (kind %u) at %llx, %u bytes", i, r->kind,
				    (unsigned long long)r->gpa, r->len);
	}
}

static const size_t object_sizes[] = { 256, 256, 512, 1024, 2048, 4096, 4096 };

/*
 * Every shared range is readable by the host with what the guest wrote;
 * unmapped pages and ordinary pages are refused.
 */
static void host_reads_only_shared_memory(struct kunit *test)
{
	void *objs[ARRAY_SIZE(object_sizes)] = {};
	struct page *dec[3] = {}, *dec4 = NULL, *unm[3] = {}, *unm2 = NULL, *plain[3] = {};
	struct unmapped_alloc_counters before, after;
	unsigned int i, j;
	u64 pattern;

	unmapped_alloc_read_counters(&before);
	for (i = 0; i < ARRAY_SIZE(object_sizes); i++) {
		objs[i] = kmalloc_decrypted(object_sizes[i], GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, objs[i]);
		KUNIT_EXPECT_TRUE(test, IS_ALIGNED((unsigned long)objs[i], 256));
		pattern = 0xc0c0000000000000ULL | (i << 16) | object_sizes[i];
		fill(objs[i], object_sizes[i], pattern);
		coco_add(test, virt_to_phys(objs[i]), object_sizes[i], pattern,
			 UA_COCO_EXPECT_SHARED, UA_COCO_KMALLOC);
	}
	for (i = 0; i < ARRAY_SIZE(dec); i++) {
		dec[i] = alloc_decrypted_pages(GFP_KERNEL, 0);
		KUNIT_ASSERT_NOT_NULL(test, dec[i]);
	}
	dec4 = alloc_decrypted_pages(GFP_KERNEL, 2);
	KUNIT_ASSERT_NOT_NULL(test, dec4);
	for (i = 0; i < ARRAY_SIZE(dec) + 4; i++) {
		struct page *p = i < ARRAY_SIZE(dec) ? dec[i] : dec4 + (i - ARRAY_SIZE(dec));

		pattern = 0xdec0000000000000ULL | i;
		fill(page_address(p), PAGE_SIZE, pattern);
		coco_add(test, page_to_phys(p), PAGE_SIZE, pattern, UA_COCO_EXPECT_SHARED,
			 UA_COCO_DECRYPTED_PAGE);
	}
	/* Unmapped pages are absent from the direct map: written through vmap(). */
	for (i = 0; i < ARRAY_SIZE(unm); i++) {
		unm[i] = unmapped_alloc(GFP_KERNEL, 0);
		KUNIT_ASSERT_NOT_NULL(test, unm[i]);
	}
	unm2 = unmapped_alloc(GFP_KERNEL, 1);
	KUNIT_ASSERT_NOT_NULL(test, unm2);
	for (i = 0; i < ARRAY_SIZE(unm) + 2; i++) {
		struct page *p = i < ARRAY_SIZE(unm) ? unm[i] : unm2 + (i - ARRAY_SIZE(unm));
		void *v = vmap(&p, 1, VM_MAP, PAGE_KERNEL);

		KUNIT_ASSERT_NOT_NULL(test, v);
		pattern = 0x0a0a000000000000ULL | i;
		fill(v, PAGE_SIZE, pattern);
		vunmap(v);
		coco_add(test, page_to_phys(p), PAGE_SIZE, pattern, UA_COCO_EXPECT_PRIVATE,
			 UA_COCO_UNMAPPED_PAGE);
	}
	for (i = 0; i < ARRAY_SIZE(plain); i++) {
		plain[i] = alloc_page(GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, plain[i]);
		pattern = 0x9a9a000000000000ULL | i;
		fill(page_address(plain[i]), PAGE_SIZE, pattern);
		coco_add(test, page_to_phys(plain[i]), PAGE_SIZE, pattern,
			 UA_COCO_EXPECT_PRIVATE, UA_COCO_PLAIN_PAGE);
	}

	ask_host(test);
	expect_results(test);

	unmapped_alloc_read_counters(&after);
	/*
	 * pKVM's guest driver makes one MEM_SHARE hypercall per 4 KiB granule of
	 * every set_memory_decrypted() call: a block saves calls (and the work
	 * around each), never hypercalls. What this test took cost no new
	 * conversion when the pool already held shared memory; a call per
	 * allocation, as drivers do today, would have made one call and one
	 * hypercall per object (a page each) and per page.
	 */
	kunit_info(test, "ua-coco: this test: %llu set_memory_decrypted() calls, %llu MEM_SHARE hypercalls (derived: 4 KiB granules converted) for %zu objects and %zu pages (a call per allocation: %zu calls, %zu hypercalls)\n",
		   after.decrypted_conversions - before.decrypted_conversions,
		   (after.decrypted_pages_shared - before.decrypted_pages_shared) *
		   (PAGE_SIZE / SZ_4K),
		   ARRAY_SIZE(objs), ARRAY_SIZE(dec) + 4, ARRAY_SIZE(objs) + ARRAY_SIZE(dec) + 1,
		   (ARRAY_SIZE(objs) + ARRAY_SIZE(dec) + 4) * (PAGE_SIZE / SZ_4K));
	kunit_info(test, "ua-coco: since boot: %llu set_memory_decrypted() calls, %llu MEM_SHARE hypercalls (derived); %llu set_memory_encrypted() calls, %llu MEM_UNSHARE hypercalls (derived)\n",
		   after.decrypted_conversions,
		   after.decrypted_pages_shared * (PAGE_SIZE / SZ_4K),
		   after.decrypted_reversions,
		   after.decrypted_pages_unshared * (PAGE_SIZE / SZ_4K));

	for (j = 0; j < ARRAY_SIZE(objs); j++)
		kfree_decrypted(objs[j]);
	for (j = 0; j < ARRAY_SIZE(dec); j++)
		free_decrypted_pages(dec[j], 0);
	free_decrypted_pages(dec4, 2);
	for (j = 0; j < ARRAY_SIZE(unm); j++)
		unmapped_free(unm[j], 0);
	unmapped_free(unm2, 1);
	for (j = 0; j < ARRAY_SIZE(plain); j++)
		__free_page(plain[j]);
}

/*
 * Shared memory, once freed and drained (with the atomic reserve at zero, so
 * that nothing takes it back), is private to the guest again: the host is
 * refused every page it could read before.
 */
static void freed_shared_memory_is_private_again(struct kunit *test)
{
	struct coco_ctx *ctx = test->priv;
	struct ua_coco_mailbox *mb = ctx->mb;
	unsigned long low, high;
	struct page *pages[8];
	struct unmapped_alloc_counters before, after;
	unsigned int i, shared_before = 0;

	unmapped_alloc_get_reserve(&low, &high);
	KUNIT_ASSERT_EQ(test, unmapped_alloc_set_reserve(0, 0), 0);
	for (i = 0; i < ARRAY_SIZE(pages); i++) {
		pages[i] = alloc_decrypted_pages(GFP_KERNEL, 0);
		if (!pages[i])
			break;
		fill(page_address(pages[i]), PAGE_SIZE, 0x5a5a000000000000ULL | i);
		coco_add(test, page_to_phys(pages[i]), PAGE_SIZE, 0x5a5a000000000000ULL | i,
			 UA_COCO_EXPECT_SHARED, UA_COCO_DECRYPTED_PAGE);
	}
	if (i == ARRAY_SIZE(pages)) {
		ask_host(test);
		for (i = 0; i < mb->nr; i++)
			shared_before += mb->r[i].result == UA_COCO_READ_PATTERN;
	}
	for (i = 0; i < ARRAY_SIZE(pages) && pages[i]; i++)
		free_decrypted_pages(pages[i], 0);
	unmapped_alloc_read_counters(&before);
	unmapped_alloc_drain();
	unmapped_alloc_read_counters(&after);
	kunit_info(test, "ua-coco: drain: %llu set_memory_encrypted() calls, %llu MEM_UNSHARE hypercalls (derived: 4 KiB granules converted back)\n",
		   after.decrypted_reversions - before.decrypted_reversions,
		   (after.decrypted_pages_unshared - before.decrypted_pages_unshared) *
		   (PAGE_SIZE / SZ_4K));
	KUNIT_EXPECT_EQ(test, shared_before, ARRAY_SIZE(pages));

	/* Every page went back to the page allocator, private again. */
	mb->nr = 0;
	for (i = 0; i < ARRAY_SIZE(pages) && pages[i]; i++) {
		KUNIT_EXPECT_EQ(test, unmapped_alloc_page_state(pages[i]),
				UNMAPPED_PAGE_NOT_OWNED);
		coco_add(test, page_to_phys(pages[i]), PAGE_SIZE, 0, UA_COCO_EXPECT_PRIVATE,
			 UA_COCO_FREED_PAGE);
	}
	ask_host(test);
	expect_results(test);
	KUNIT_EXPECT_EQ(test, unmapped_alloc_set_reserve(low, high), 0);
}

#define DMA_CYCLES	16

static void unprobe_conversions(void *unused)
{
	ua_conversions_unprobe();
}

/* One cycle of a driver's coherent buffers: a ring-sized and a larger one. */
static const size_t dma_sizes[] = { SZ_4K, SZ_64K };

struct dma_cycle_result {
	unsigned int from_component;	/* buffers in the component's pages */
	unsigned int coherent_ok;	/* dma handle = the buffer's address */
	unsigned int buffers;
};

/*
 * @cycles rounds of dma_alloc_coherent() and dma_free_coherent() of every
 * size, and with @atomic one GFP_ATOMIC buffer under a spinlock with
 * interrupts off, as a driver's interrupt path would take it. The last
 * round's buffers are listed for the host to read, with a pattern, before
 * they are freed.
 */
static DEFINE_SPINLOCK(dma_test_lock);

static void dma_cycles(struct kunit *test, struct device *dev, unsigned int cycles,
		       bool atomic, u64 tag, struct dma_cycle_result *res)
{
	unsigned int nr = ARRAY_SIZE(dma_sizes) + atomic;
	void *buf[ARRAY_SIZE(dma_sizes) + 1];
	dma_addr_t handle[ARRAY_SIZE(buf)];
	size_t size[ARRAY_SIZE(buf)];
	unsigned long flags;
	unsigned int c, i;

	memset(res, 0, sizeof(*res));
	((struct coco_ctx *)test->priv)->mb->nr = 0;
	for (c = 0; c < cycles; c++) {
		for (i = 0; i < ARRAY_SIZE(dma_sizes); i++) {
			size[i] = dma_sizes[i];
			buf[i] = dma_alloc_coherent(dev, size[i], &handle[i], GFP_KERNEL);
			KUNIT_ASSERT_NOT_NULL(test, buf[i]);
		}
		if (atomic) {
			size[i] = SZ_4K;
			spin_lock_irqsave(&dma_test_lock, flags);
			buf[i] = dma_alloc_coherent(dev, size[i], &handle[i], GFP_ATOMIC);
			spin_unlock_irqrestore(&dma_test_lock, flags);
			KUNIT_ASSERT_NOT_NULL(test, buf[i]);
		}
		for (i = 0; i < nr; i++) {
			/* The atomic pool's buffers are remapped: vmalloc addresses. */
			phys_addr_t phys = dma_to_phys(dev, handle[i]);
			struct page *page = pfn_to_page(PHYS_PFN(phys));

			res->buffers++;
			res->from_component += unmapped_alloc_page_state(page) ==
					       SHARED_PAGE_USED;
			res->coherent_ok += is_vmalloc_addr(buf[i]) ?
					    vmalloc_to_page(buf[i]) == page :
					    virt_to_phys(buf[i]) == phys;
			if (c + 1 == cycles) {
				fill(buf[i], size[i], tag | i);
				coco_add(test, phys, size[i], tag | i,
					 UA_COCO_EXPECT_SHARED, UA_COCO_DMA_COHERENT);
			}
		}
		if (c + 1 == cycles)
			ask_host(test);
		for (i = 0; i < nr; i++)
			dma_free_coherent(dev, size[i], buf[i], handle[i]);
	}
}

/*
 * dma-direct's coherent allocations for a device that needs unencrypted DMA
 * (patches/0009, and patches/0010 for pKVM): from the component, shared
 * with the host (which reads them), atomic ones too, and after a warm-up no
 * conversion for any number of cycles. Then the same with
 * dma_direct.unmapped_alloc=0, 7.2's path: the buffers are shared as well,
 * and none is the component's.
 */
static void dma_coherent_shared_from_the_component(struct kunit *test)
{
	struct unmapped_alloc_counters before, after;
	struct ua_conversions conv_before, conv;
	struct dma_cycle_result res;
	struct faux_device *fdev;
	struct device *dev;
	int err;

	if (!IS_ENABLED(CONFIG_DMA_DECRYPTED_UNMAPPED_ALLOC))
		kunit_skip(test, "needs CONFIG_DMA_DECRYPTED_UNMAPPED_ALLOC");
	if (!IS_ENABLED(CONFIG_KPROBES))
		kunit_skip(test, "needs CONFIG_KPROBES to count the conversions");
	err = ua_conversions_probe();
	KUNIT_ASSERT_EQ_MSG(test, err, 0, "kprobes on set_memory_decrypted/encrypted()");
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, unprobe_conversions, NULL), 0);
	fdev = faux_device_create("ua-coco-dma", NULL, NULL);
	KUNIT_ASSERT_NOT_NULL(test, fdev);
	dev = &fdev->dev;
	dev->coherent_dma_mask = DMA_BIT_MASK(64);
	dev->dma_mask = &dev->coherent_dma_mask;
	/* As virtio's devices on this machine: no cache maintenance, no remap. */
	dev_set_dma_coherent(dev);
	KUNIT_EXPECT_TRUE_MSG(test, force_dma_unencrypted(dev),
			      "a protected guest's DMA must be unencrypted (patches/0010)");

	KUNIT_ASSERT_EQ(test, ua_set_dma_unmapped_alloc(true), 0);
	dma_cycles(test, dev, 1, true, 0xd3a0000000000000ULL, &res);	/* warm-up */
	unmapped_alloc_read_counters(&before);
	ua_conversions_read(&conv_before);
	dma_cycles(test, dev, DMA_CYCLES, true, 0xd3a1000000000000ULL, &res);
	ua_conversions_since(&conv, &conv_before);
	unmapped_alloc_read_counters(&after);
	expect_results(test);
	KUNIT_EXPECT_EQ(test, res.from_component, res.buffers);
	KUNIT_EXPECT_EQ(test, res.coherent_ok, res.buffers);
	/* Not one conversion in the guest, by anyone, for all those buffers. */
	KUNIT_EXPECT_EQ(test, conv.calls[0], 0);
	KUNIT_EXPECT_EQ(test, conv.calls[1], 0);
	kunit_info(test, "ua-coco: dma component: %u buffers in %u cycles (%u atomic): %llu set_memory_decrypted() calls (%llu pages), %llu set_memory_encrypted() calls (%llu pages), counted by kprobes; the component's own count: %llu and %llu\n",
		   res.buffers, DMA_CYCLES, DMA_CYCLES, conv.calls[0], conv.pages[0],
		   conv.calls[1], conv.pages[1],
		   after.decrypted_conversions - before.decrypted_conversions,
		   after.decrypted_reversions - before.decrypted_reversions);

	/*
	 * 7.2's atomic buffers come from the atomic pool, shared at boot and
	 * never made private again: one the guest wrote would still be shared
	 * when the kexec test sweeps guest memory (a real 7.2 leak, not the
	 * component's). The blocking ones only. The component may convert in
	 * the background meanwhile (its reserve): its own calls, which it
	 * counts next to each, are taken out of the kprobes' count.
	 */
	KUNIT_ASSERT_EQ(test, ua_set_dma_unmapped_alloc(false), 0);
	unmapped_alloc_read_counters(&before);
	ua_conversions_read(&conv_before);
	dma_cycles(test, dev, DMA_CYCLES, false, 0xd3a2000000000000ULL, &res);
	ua_conversions_since(&conv, &conv_before);
	unmapped_alloc_read_counters(&after);
	KUNIT_EXPECT_EQ(test, ua_set_dma_unmapped_alloc(true), 0);
	expect_results(test);
	KUNIT_EXPECT_EQ(test, res.from_component, 0);
	KUNIT_EXPECT_EQ(test, res.coherent_ok, res.buffers);
	conv.calls[0] -= after.decrypted_conversions - before.decrypted_conversions;
	conv.calls[1] -= after.decrypted_reversions - before.decrypted_reversions;
	/* Each buffer is converted when allocated and converted back when freed. */
	KUNIT_EXPECT_EQ(test, conv.calls[0], res.buffers);
	KUNIT_EXPECT_EQ(test, conv.calls[1], res.buffers);
	kunit_info(test, "ua-coco: dma 7.2 path: %u buffers in %u cycles: %llu set_memory_decrypted() calls, %llu set_memory_encrypted() calls, counted by kprobes (the component's own taken out)\n",
		   res.buffers, DMA_CYCLES, conv.calls[0], conv.calls[1]);
	faux_device_destroy(fdev);
}

static struct kunit_case coco_cases[] = {
	KUNIT_CASE(host_reads_only_shared_memory),
	KUNIT_CASE(freed_shared_memory_is_private_again),
	KUNIT_CASE_SLOW(dma_coherent_shared_from_the_component),
	{}
};

static struct kunit_suite coco_suite = {
	.name = "unmapped_alloc_coco",
	.init = coco_init,
	.exit = coco_exit,
	.test_cases = coco_cases,
};

kunit_test_suite(coco_suite);
