// SPDX-License-Identifier: GPL-2.0
/*
 * unmapped_alloc's registrations with the kernel: the shrinker, the shutdown
 * hook, the hibernation notifier, and the symbol exports of its C API.
 */
#include <linux/export.h>
#include <linux/notifier.h>
#include <linux/printk.h>
#include <linux/shrinker.h>
#include <linux/suspend.h>
#include <linux/syscore_ops.h>
#include <linux/unmapped_alloc.h>

#include "internal.h"

static unsigned long ua_shrink_count(struct shrinker *s,
				     struct shrink_control *sc)
{
	return unmapped_alloc_reclaimable() ?: SHRINK_EMPTY;
}

static unsigned long ua_shrink_scan(struct shrinker *s,
				    struct shrink_control *sc)
{
	return unmapped_alloc_shrink(sc->nr_to_scan) ?: SHRINK_STOP;
}

int ua_register_shrinker(void)
{
	struct shrinker *s = shrinker_alloc(0, "unmapped_alloc");

	if (!s)
		return -ENOMEM;
	s->count_objects = ua_shrink_count;
	s->scan_objects = ua_shrink_scan;
	s->seeks = DEFAULT_SEEKS;
	shrinker_register(s);
	return 0;
}

/*
 * Reboot, power off, halt and kexec must not leave memory shared with the
 * host behind the next kernel's back. The syscore shutdown callbacks run
 * after device_shutdown() on all of these paths (kernel_restart_prepare(),
 * then syscore_shutdown(), in kernel_kexec() too), so no driver uses the
 * memory any more; on x86 the platform's own kexec unsharing
 * (x86_platform.guest.enc_kexec_begin/finish, in machine_shutdown()) runs
 * after this and finds nothing of ours left shared. Process context: the
 * conversions may sleep.
 */
static void ua_syscore_shutdown(void *data)
{
	unmapped_alloc_unshare_all();
}

static const struct syscore_ops ua_syscore_ops = {
	.shutdown = ua_syscore_shutdown,
};

static struct syscore ua_syscore = {
	.ops = &ua_syscore_ops,
};

int ua_register_shutdown_hook(void)
{
	register_syscore(&ua_syscore);
	return 0;
}

/*
 * Hibernation copies every page into the image, mapping those missing from
 * the direct map for the copy: unmapped pages hold secrets by purpose, so
 * hibernation is refused while any is in use. Returns 0 or -EBUSY.
 */
int ua_hibernation_check(void)
{
	struct unmapped_alloc_counters c;

	unmapped_alloc_read_counters(&c);
	if (!c.unmapped_used_pages)
		return 0;
	pr_warn("unmapped_alloc: hibernation refused: %llu unmapped pages in use\n",
		c.unmapped_used_pages);
	return -EBUSY;
}

static int ua_pm_notify(struct notifier_block *nb, unsigned long action,
			void *data)
{
	if (action != PM_HIBERNATION_PREPARE)
		return NOTIFY_DONE;
	return notifier_from_errno(ua_hibernation_check());
}

static struct notifier_block ua_pm_nb = {
	.notifier_call = ua_pm_notify,
};

int ua_register_pm_notifier(void)
{
	return register_pm_notifier(&ua_pm_nb);
}

/*
 * The C API is implemented in Rust (rust/c_api.rs); its symbols are
 * exported here, away from their definitions.
 */
EXPORT_SYMBOL_GPL(unmapped_alloc);
EXPORT_SYMBOL_GPL(unmapped_alloc_node);
EXPORT_SYMBOL_GPL(unmapped_alloc_noscrub);
EXPORT_SYMBOL_GPL(unmapped_free);
EXPORT_SYMBOL_GPL(alloc_decrypted_pages);
EXPORT_SYMBOL_GPL(alloc_decrypted_pages_node);
EXPORT_SYMBOL_GPL(free_decrypted_pages);
EXPORT_SYMBOL_GPL(try_free_decrypted_pages);
EXPORT_SYMBOL_GPL(unmapped_alloc_page_state);
EXPORT_SYMBOL_GPL(unmapped_alloc_read_counters);
EXPORT_SYMBOL_GPL(unmapped_alloc_drain);
EXPORT_SYMBOL_GPL(unmapped_alloc_set_reserve);
EXPORT_SYMBOL_GPL(unmapped_alloc_get_reserve);
#if IS_ENABLED(CONFIG_UNMAPPED_ALLOC_BENCH)
EXPORT_SYMBOL_GPL(unmapped_alloc_set_sim_delay);
#endif

/* The decrypted object caches. */
EXPORT_SYMBOL_GPL(kmalloc_decrypted);
EXPORT_SYMBOL_GPL(kmalloc_decrypted_node);
EXPORT_SYMBOL_GPL(kfree_decrypted);
EXPORT_SYMBOL_GPL(decrypted_alloc_ready);
EXPORT_SYMBOL_GPL(ksize_decrypted);
EXPORT_SYMBOL_GPL(kmem_cache_create_decrypted);
EXPORT_SYMBOL_GPL(kmem_cache_alloc_decrypted);
EXPORT_SYMBOL_GPL(kmem_cache_free_decrypted);
EXPORT_SYMBOL_GPL(kmem_cache_destroy_decrypted);
