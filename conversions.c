// SPDX-License-Identifier: GPL-2.0
/*
 * Conversions counted by kprobes, and dma-direct's switch: see
 * conversions.h. Built for the KUnit suites and the benchmark only.
 */
#include <linux/atomic.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/moduleparam.h>
#include <linux/string.h>

#include "conversions.h"

static atomic64_t conv_calls[2], conv_pages[2];

static int conv_pre(struct kprobe *p, struct pt_regs *regs);

static struct kprobe conv_decrypt = {
	.symbol_name = "set_memory_decrypted", .pre_handler = conv_pre,
};

static struct kprobe conv_encrypt = {
	.symbol_name = "set_memory_encrypted", .pre_handler = conv_pre,
};

static struct kprobe *conv_probes[] = { &conv_decrypt, &conv_encrypt };

static int conv_pre(struct kprobe *p, struct pt_regs *regs)
{
	int i = p == &conv_encrypt;

	atomic64_inc(&conv_calls[i]);
	atomic64_add(regs_get_kernel_argument(regs, 1), &conv_pages[i]);
	return 0;
}

/* Starts counting; -EOPNOTSUPP without CONFIG_KPROBES. One user at a time. */
int ua_conversions_probe(void)
{
	if (!IS_ENABLED(CONFIG_KPROBES))
		return -EOPNOTSUPP;
	return register_kprobes(conv_probes, ARRAY_SIZE(conv_probes));
}

void ua_conversions_unprobe(void)
{
	if (IS_ENABLED(CONFIG_KPROBES))
		unregister_kprobes(conv_probes, ARRAY_SIZE(conv_probes));
}

/* The calls counted since the probes were first registered. */
void ua_conversions_read(struct ua_conversions *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		c->calls[i] = atomic64_read(&conv_calls[i]);
		c->pages[i] = atomic64_read(&conv_pages[i]);
	}
}

/* The calls counted since @before was read. */
void ua_conversions_since(struct ua_conversions *c,
			  const struct ua_conversions *before)
{
	int i;

	ua_conversions_read(c);
	for (i = 0; i < 2; i++) {
		c->calls[i] -= before->calls[i];
		c->pages[i] -= before->pages[i];
	}
}

/*
 * Sets dma_direct.unmapped_alloc (patches/0009) as writing its file would;
 * -ENOENT in a kernel without it.
 */
int ua_set_dma_unmapped_alloc(bool on)
{
	const struct kernel_param *kp;
	int err = -ENOENT;

	kernel_param_lock(NULL);
	for (kp = __start___param; kp < __stop___param; kp++) {
		if (!strcmp(kp->name, "dma_direct.unmapped_alloc")) {
			err = kp->ops->set(on ? "1" : "0", kp);
			break;
		}
	}
	kernel_param_unlock(NULL);
	return err;
}
