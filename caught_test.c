// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite unmapped_alloc_caught: the kernel's memory bug detectors catch
 * bugs in the component's memory as they catch them in kmalloc()'s and
 * alloc_pages()'s, in the style of mm/kasan/kasan_test_c.c.
 *
 * Each bad access runs in a kthread of its own, as a driver's would, and a
 * probe on the console tracepoint tells whether KASAN reported it: a report
 * in the test's own thread would fail the test whatever it expected. The
 * kasan_* tests need generic KASAN, the kmsan_* tests KMSAN ('make kmsan'):
 * one of the two is built, the other's tests skip. KASAN reports once per
 * boot unless booted with kasan_multi_shot, so its tests skip without it;
 * 'make test' gives the suite a boot of its own, since a report taints the
 * kernel and turns lockdep off. The last test loses an object on
 * purpose when booted with caught_test.lose_object=1: the boot's /init has
 * kmemleak scan, and the test script checks that the report names that
 * object, its size and its allocation stack.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/init.h>
#include <linux/kasan.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <linux/vmalloc.h>
#include <linux/unmapped_alloc.h>
#include <trace/events/printk.h>

static bool report_found;

/*
 * The stacks a KASAN report about the component's memory ends with: which
 * of them named the function in stack_fn (set by the test, its __func__).
 */
enum { STACK_NONE, STACK_ALLOC, STACK_FREE };
static int stack_section;
static const char *stack_fn;
static bool alloc_stack_seen, free_stack_seen;

/* Only the boot that checks kmemleak's report loses an object on purpose. */
static bool lose_object_on_purpose;
module_param_named(lose_object, lose_object_on_purpose, bool, 0444);
MODULE_PARM_DESC(lose_object, "let kmemleak_lost_object lose an object for kmemleak to report");

static char sink;

static void probe_console(void *ignore, const char *buf, size_t len)
{
	const char *fn = READ_ONCE(stack_fn);

	if (strnstr(buf, "BUG: KASAN: ", len) || strnstr(buf, "BUG: KMSAN: ", len)) {
		WRITE_ONCE(report_found, true);
		stack_section = STACK_NONE;
	} else if (strnstr(buf, "unmapped_alloc: allocated by task ", len)) {
		stack_section = STACK_ALLOC;
	} else if (strnstr(buf, "unmapped_alloc: freed by task ", len)) {
		stack_section = STACK_FREE;
	} else if (fn && strnstr(buf, fn, len)) {
		if (stack_section == STACK_ALLOC)
			WRITE_ONCE(alloc_stack_seen, true);
		else if (stack_section == STACK_FREE)
			WRITE_ONCE(free_stack_seen, true);
	}
}

/* The next reports' stacks are checked for @fn, the calling test's name. */
static void watch_stacks(const char *fn)
{
	WRITE_ONCE(stack_fn, fn);
}

/*
 * Whether the last report ended with an allocation stack (@alloc) and a free
 * stack (@freed) naming the test, and with no other.
 */
static void expect_stacks(struct kunit *test, bool alloc, bool freed)
{
	KUNIT_EXPECT_EQ_MSG(test, READ_ONCE(alloc_stack_seen), alloc,
			    "allocation stack naming %s in the report", stack_fn);
	KUNIT_EXPECT_EQ_MSG(test, READ_ONCE(free_stack_seen), freed,
			    "free stack naming %s in the report", stack_fn);
}

struct bad_access {
	void (*fn)(const void *addr);
	const void *addr;
	struct completion done;
};

static int bad_access_thread(void *data)
{
	struct bad_access *ba = data;

	ba->fn(ba->addr);
	complete(&ba->done);
	return 0;
}

static void read_byte(const void *addr)
{
	WRITE_ONCE(sink, READ_ONCE(*(const char *)addr));
}

/*
 * A use of one byte's value that KMSAN checks: a branch to a call, which
 * the compiler cannot turn into a select that would only carry the byte's
 * shadow along.
 */
static void use_byte(const void *addr)
{
	if (READ_ONCE(*(const char *)addr) == 0x5a)
		pr_info("unmapped_alloc_caught: 0x5a\n");
}

/* KASAN's verdict on one byte, without touching it (unmapped pages). */
static void check_byte(const void *addr)
{
	kasan_check_byte(addr);
}

/* Whether @fn(@addr), run in a kthread, made KASAN or KMSAN report. */
static bool reported(struct kunit *test, void (*fn)(const void *addr),
		     const void *addr)
{
	struct bad_access ba = { .fn = fn, .addr = addr };
	struct task_struct *t;

	KUNIT_EXPECT_FALSE_MSG(test, READ_ONCE(report_found),
			       "a report nobody expected");
	WRITE_ONCE(report_found, false);
	WRITE_ONCE(alloc_stack_seen, false);
	WRITE_ONCE(free_stack_seen, false);
	init_completion(&ba.done);
	t = kthread_run(bad_access_thread, &ba, "ua_caught");
	if (IS_ERR(t)) {
		KUNIT_FAIL(test, "kthread_run: %ld", PTR_ERR(t));
		return false;
	}
	wait_for_completion(&ba.done);
	return xchg(&report_found, false);
}

static int caught_suite_init(struct kunit_suite *suite)
{
	/* The test script lets KASAN and KMSAN reports through between these lines. */
	pr_info("unmapped_alloc: expect kasan begin\n");
	register_trace_console(probe_console, NULL);
	return 0;
}

static void caught_suite_exit(struct kunit_suite *suite)
{
	unregister_trace_console(probe_console, NULL);
	tracepoint_synchronize_unregister();
	pr_info("unmapped_alloc: expect kasan end\n");
}

static int caught_test_init(struct kunit *test)
{
	if (!decrypted_alloc_ready())
		kunit_skip(test, "no decrypted memory");
	WRITE_ONCE(report_found, false);
	return 0;
}

static void caught_test_exit(struct kunit *test)
{
	KUNIT_EXPECT_FALSE_MSG(test, READ_ONCE(report_found),
			       "a report nobody expected");
}

static void needs_kasan(struct kunit *test)
{
	/* The messages in lower case: the test scripts take "KASAN" for a report. */
	if (!IS_ENABLED(CONFIG_KASAN_GENERIC) || !kasan_enabled())
		kunit_skip(test, "needs generic kasan");
	if (!IS_ENABLED(CONFIG_TRACEPOINTS))
		kunit_skip(test, "needs tracepoints, to see the reports");
	if (!strstr(saved_command_line, "kasan_multi_shot"))
		kunit_skip(test, "needs kasan_multi_shot: kasan reports once otherwise");
}

/* Past the size asked for, up to the end of the 512-byte slot: a redzone. */
static void kasan_object_out_of_bounds(struct kunit *test)
{
	char *p;

	needs_kasan(test);
	watch_stacks(__func__);
	p = kmalloc_decrypted(300, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_EQ(test, (unsigned long)p % 256, 0);
	KUNIT_EXPECT_FALSE(test, reported(test, read_byte, p));
	KUNIT_EXPECT_FALSE(test, reported(test, read_byte, p + 299));
	/* In the granule of the last byte, and in the next ones. */
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 300));
	expect_stacks(test, true, false);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 304));
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 511));
	kfree_decrypted(p);
}

static void kasan_object_use_after_free(struct kunit *test)
{
	char *p;

	needs_kasan(test);
	watch_stacks(__func__);
	p = kmalloc_decrypted(256, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_FALSE(test, reported(test, read_byte, p + 255));
	kfree_decrypted(p);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p));
	expect_stacks(test, true, true);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 255));
}

/* Zeroing on allocation is the component's write, before the redzone. */
static void kasan_zeroed_object_readable(struct kunit *test)
{
	char *p;
	size_t i;

	needs_kasan(test);
	p = kzalloc_decrypted(300, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	for (i = 0; i < 300; i++)
		KUNIT_ASSERT_EQ(test, p[i], 0);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 300));
	kfree_decrypted(p);
}

/* As with ksize(), the whole slot may be used once its size was asked. */
static void kasan_ksize_widens(struct kunit *test)
{
	char *p;

	needs_kasan(test);
	p = kmalloc_decrypted(300, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 400));
	KUNIT_EXPECT_EQ(test, ksize_decrypted(p), 512);
	KUNIT_EXPECT_FALSE(test, reported(test, read_byte, p + 511));
	kfree_decrypted(p);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 511));
}

static void kasan_cache_object(struct kunit *test)
{
	struct kmem_cache_decrypted *c;
	char *p;

	needs_kasan(test);
	c = kmem_cache_create_decrypted("ua_caught_300", 300, 0);
	KUNIT_ASSERT_NOT_NULL(test, c);
	watch_stacks(__func__);
	p = kmem_cache_alloc_decrypted(c, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_FALSE(test, reported(test, read_byte, p + 299));
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 300));
	expect_stacks(test, true, false);
	kmem_cache_free_decrypted(c, p);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p));
	expect_stacks(test, true, true);
	kmem_cache_destroy_decrypted(c);
}

/* A large object: pages, with a redzone to the end of the last one. */
static void kasan_large_object(struct kunit *test)
{
	size_t size = 2 * PAGE_SIZE + 100;
	char *p;

	needs_kasan(test);
	watch_stacks(__func__);
	p = kmalloc_decrypted(size, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_FALSE(test, reported(test, read_byte, p + size - 1));
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + size));
	expect_stacks(test, true, false);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 4 * PAGE_SIZE - 1));
	kfree_decrypted(p);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p));
	expect_stacks(test, true, true);
}

static void kasan_decrypted_page_use_after_free(struct kunit *test)
{
	struct page *page;
	char *p;

	needs_kasan(test);
	watch_stacks(__func__);
	page = alloc_decrypted_pages(GFP_KERNEL, 1);
	KUNIT_ASSERT_NOT_NULL(test, page);
	p = page_address(page);
	KUNIT_EXPECT_FALSE(test, reported(test, read_byte, p));
	KUNIT_EXPECT_FALSE(test, reported(test, read_byte, p + 2 * PAGE_SIZE - 1));
	free_decrypted_pages(page, 1);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p));
	expect_stacks(test, true, true);
	KUNIT_EXPECT_TRUE(test, reported(test, read_byte, p + 2 * PAGE_SIZE - 1));
}

/* Unmapped pages are never read through the direct map: KASAN's verdict. */
static void kasan_unmapped_page_use_after_free(struct kunit *test)
{
	struct page *page;
	char *p;

	needs_kasan(test);
	watch_stacks(__func__);
	page = unmapped_alloc(GFP_KERNEL, 0);
	if (!page)
		kunit_skip(test, "no unmapped pages here");
	p = page_address(page);
	KUNIT_EXPECT_FALSE(test, reported(test, check_byte, p));
	unmapped_free(page, 0);
	KUNIT_EXPECT_TRUE(test, reported(test, check_byte, p));
	expect_stacks(test, true, true);
}

static void needs_kmsan(struct kunit *test)
{
	/* In lower case, as in needs_kasan(). */
	if (!IS_ENABLED(CONFIG_KMSAN))
		kunit_skip(test, "needs kmsan");
	if (!IS_ENABLED(CONFIG_TRACEPOINTS))
		kunit_skip(test, "needs tracepoints, to see the reports");
}

/*
 * Not asked for zeroed, an object is uninitialised to KMSAN until its user
 * writes it, as kmalloc()'s are: whatever the component wrote into it (a
 * decrypted slab is zeroed when it is made) does not count.
 */
static void kmsan_object_uninit(struct kunit *test)
{
	struct kmem_cache_decrypted *c;
	char *p;

	needs_kmsan(test);
	p = kmalloc_decrypted(300, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_TRUE(test, reported(test, use_byte, p));
	KUNIT_EXPECT_TRUE(test, reported(test, use_byte, p + 299));
	memset(p, 1, 300);
	KUNIT_EXPECT_FALSE(test, reported(test, use_byte, p));
	KUNIT_EXPECT_FALSE(test, reported(test, use_byte, p + 299));
	kfree_decrypted(p);

	c = kmem_cache_create_decrypted("ua_caught_kmsan", 300, 0);
	KUNIT_ASSERT_NOT_NULL(test, c);
	p = kmem_cache_alloc_decrypted(c, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_TRUE(test, reported(test, use_byte, p + 100));
	kmem_cache_free_decrypted(c, p);
	p = kmem_cache_alloc_decrypted(c, GFP_KERNEL | __GFP_ZERO);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_FALSE(test, reported(test, use_byte, p + 100));
	kmem_cache_free_decrypted(c, p);
	kmem_cache_destroy_decrypted(c);
}

/* Zeroed on request: every byte of the slot initialised, and only then. */
static void kmsan_zeroed_object_init(struct kunit *test)
{
	char *p;
	size_t i;

	needs_kmsan(test);
	p = kzalloc_decrypted(300, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_FALSE(test, reported(test, use_byte, p));
	KUNIT_EXPECT_FALSE(test, reported(test, use_byte, p + 299));
	for (i = 0; i < 300; i++)
		KUNIT_ASSERT_EQ(test, p[i], 0);
	kfree_decrypted(p);
	/* Freed, its bytes are uninitialised again (a use after free). */
	KUNIT_EXPECT_TRUE(test, reported(test, use_byte, p));
}

/*
 * Large objects follow kmalloc()'s rule. Decrypted pages are always zeroed
 * (the API's promise, since the host may have written them): initialised.
 */
static void kmsan_large_object_and_pages(struct kunit *test)
{
	size_t size = 2 * PAGE_SIZE + 100;
	struct page *page;
	char *p;

	needs_kmsan(test);
	p = kmalloc_decrypted(size, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_TRUE(test, reported(test, use_byte, p + size - 1));
	kfree_decrypted(p);
	p = kzalloc_decrypted(size, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_EXPECT_FALSE(test, reported(test, use_byte, p + size - 1));
	kfree_decrypted(p);

	page = alloc_decrypted_pages(GFP_KERNEL, 1);
	KUNIT_ASSERT_NOT_NULL(test, page);
	p = page_address(page);
	KUNIT_EXPECT_FALSE(test, reported(test, use_byte, p + PAGE_SIZE));
	free_decrypted_pages(page, 1);
	/* Freed, the pages are uninitialised again. */
	KUNIT_EXPECT_TRUE(test, reported(test, use_byte, p + PAGE_SIZE));
	page = alloc_decrypted_pages(GFP_KERNEL | __GFP_ZERO, 1);
	KUNIT_ASSERT_NOT_NULL(test, page);
	p = page_address(page);
	KUNIT_EXPECT_FALSE(test, reported(test, use_byte, p + PAGE_SIZE));
	free_decrypted_pages(page, 1);
}

/*
 * An unmapped page read through a mapping of its own (vmap() gives KMSAN's
 * view of the page there too): unmapped_alloc() promises zeroed pages;
 * unmapped_alloc_noscrub() only with __GFP_ZERO.
 */
static void kmsan_unmapped_page(struct kunit *test)
{
	struct {
		bool scrub;
		gfp_t gfp;
		bool uninit;
	} cases[] = {
		{ true, GFP_KERNEL, false },
		{ false, GFP_KERNEL | __GFP_ZERO, false },
		{ false, GFP_KERNEL, true },
	};
	struct page *page;
	unsigned int i;
	char *p;

	needs_kmsan(test);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		if (cases[i].scrub)
			page = unmapped_alloc(cases[i].gfp, 0);
		else
			page = unmapped_alloc_noscrub(NUMA_NO_NODE, cases[i].gfp, 0);
		if (!page)
			kunit_skip(test, "no unmapped pages here");
		p = vmap(&page, 1, VM_MAP, PAGE_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, p);
		KUNIT_EXPECT_EQ_MSG(test, reported(test, use_byte, p + 7),
				    cases[i].uninit, "case %u", i);
		vunmap(p);
		unmapped_free(page, 0);
	}
}

/* Overwrite the stack below the caller's frame: no copy of a lost pointer. */
static noinline void clobber_deeper(void)
{
	char buf[1536];

	memzero_explicit(buf, sizeof(buf));
}

static noinline void clobber_stack(void)
{
	char buf[1536];

	memzero_explicit(buf, sizeof(buf));
	clobber_deeper();
}

static noinline unsigned long lose_object(size_t size)
{
	void *p = kmalloc_decrypted(size, GFP_KERNEL);

	if (p)
		memset(p, 0x5a, size);
	/* The address, hidden from kmemleak's scan of this stack. */
	return (unsigned long)p ^ ~0UL;
}

/*
 * An object nobody points to: kmemleak must report it, 300 bytes allocated
 * by kmalloc_decrypted() from lose_object(). The check is the test
 * script's, on the kmemleak scan after the suite (the KTAP result
 * kmemleak_reports_lost_object); the address is not printed, which would
 * leave copies of it on this stack. This case only sets that check up, and
 * skips with the reason, so as not to count as a test of its own.
 */
static void kmemleak_lost_object(struct kunit *test)
{
	unsigned long hidden;

	if (!IS_ENABLED(CONFIG_DEBUG_KMEMLEAK))
		kunit_skip(test, "needs kmemleak");
	if (!lose_object_on_purpose)
		kunit_skip(test, "needs caught_test.lose_object=1: kmemleak would report it");
	hidden = lose_object(300);
	clobber_stack();
	KUNIT_ASSERT_NE(test, hidden, ~0UL);
	pr_info("unmapped_alloc_caught: lost an object of 300 bytes on purpose\n");
	kunit_skip(test, "object lost on purpose: kmemleak_reports_lost_object checks the report");
}

static struct kunit_case caught_cases[] = {
	KUNIT_CASE(kasan_object_out_of_bounds),
	KUNIT_CASE(kasan_object_use_after_free),
	KUNIT_CASE(kasan_zeroed_object_readable),
	KUNIT_CASE(kasan_ksize_widens),
	KUNIT_CASE(kasan_cache_object),
	KUNIT_CASE(kasan_large_object),
	KUNIT_CASE(kasan_decrypted_page_use_after_free),
	KUNIT_CASE(kasan_unmapped_page_use_after_free),
	KUNIT_CASE(kmsan_object_uninit),
	KUNIT_CASE(kmsan_zeroed_object_init),
	KUNIT_CASE(kmsan_large_object_and_pages),
	KUNIT_CASE(kmsan_unmapped_page),
	KUNIT_CASE(kmemleak_lost_object),
	{}
};

static struct kunit_suite caught_suite = {
	.name = "unmapped_alloc_caught",
	.suite_init = caught_suite_init,
	.suite_exit = caught_suite_exit,
	.init = caught_test_init,
	.exit = caught_test_exit,
	.test_cases = caught_cases,
};

kunit_test_suite(caught_suite);
