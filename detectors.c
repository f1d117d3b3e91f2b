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
#include <linux/sched.h>

#include "internal.h"

#ifdef CONFIG_KASAN_GENERIC
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
#else
void ua_kasan_poison(unsigned long addr, size_t size, unsigned int what)
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

void ua_kmemleak_alloc(unsigned long addr, size_t size, gfp_t gfp)
{
	kmemleak_alloc((void *)addr, size, 1, gfp);
}

void ua_kmemleak_free(unsigned long addr)
{
	kmemleak_free((void *)addr);
}
