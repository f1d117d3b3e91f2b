// SPDX-License-Identifier: GPL-2.0
/*
 * ua-vmm: the smallest VMM that runs a Linux kernel as a pKVM protected VM,
 * for 'make test-coco' of unmapped_alloc.
 *
 * It runs inside an arm64 host booted with kvm-arm.mode=protected, creates a
 * KVM_VM_TYPE_ARM_PROTECTED VM with one memslot, a vGICv3, the architected
 * timer and PSCI (both in KVM), loads the kernel Image and a device tree
 * built by the caller, and emulates one device: the write side of a PL011
 * that the guest uses as its early console. Every other MMIO access reads 0.
 *
 * Host-side verification: when the guest prints "ua-coco: mailbox <gpa> seq
 * <n>" (see ua_coco.h), the vCPU that wrote the newline is stopped in its
 * MMIO exit; the VMM then reads every range the guest listed through its own
 * mapping of guest memory, where pKVM lets it read only what the guest
 * shared, and writes back what it saw.
 *
 * Sweeps: before the guest starts, every page of its RAM holds a marker (or
 * what the VMM loaded there). When the guest prints "ua-coco: sweep <tag>
 * <i>/<n>" for i = 0 to n - 1, the VMM reads every page of guest RAM, a part
 * at a time, and counts those it can read with other contents: pages the
 * guest shared (pKVM refuses the host any page the guest owns, and a page the
 * guest never touched keeps the marker). Used across a guest kexec to see
 * that nothing stays shared. A shared page the guest never wrote looks
 * untouched: the sweep finds pages shared and written.
 *
 * Guest-physical layout (the device tree must match):
 *   0x08000000  GICv3 distributor (64 KiB)
 *   0x080a0000  GICv3 redistributors (128 KiB per vCPU)
 *   0x09000000  PL011 (write-only console)
 *   0x40000000  RAM; the kernel at its start, the device tree in its last 2 MiB
 *   0x48000000  the initramfs, if any (the device tree's linux,initrd-start)
 *
 * Usage: ua-vmm -k Image -d guest.dtb [-i initramfs] [-m MiB] [-c vCPUs]
 * Exit status: 0 if the guest powered off or reset, 1 on any error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ua_coco.h"

#define GIC_DIST	0x08000000ULL
#define GIC_REDIST	0x080a0000ULL
#define GIC_REDIST_SIZE	0x20000ULL
#define UART_BASE	0x09000000ULL
#define UART_SIZE	0x1000ULL
#define RAM_BASE	0x40000000ULL
#define DTB_SPACE	(2ULL << 20)
#define INITRD_OFFSET	(128ULL << 20)
#define MAX_VCPUS	8
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

static int vm_fd;
static uint8_t *ram;
static uint64_t ram_size;
static size_t vcpu_mmap_size;
static pthread_mutex_t console_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t sweep_lock = PTHREAD_MUTEX_INITIALIZER;
static char line[4096];
static size_t line_len;
static unsigned int checks;

/* What every page of guest RAM held before the guest ran. */
#define RAM_MARKER	0x7561766d6d61726bULL	/* "uavmmark" */
struct loaded {
	uint64_t off, size;	/* page-aligned, in RAM */
	uint8_t *copy;
};

static struct loaded loaded[3];
static unsigned int nr_loaded;
/* One bit per page of guest RAM: read as shared by the last sweep. */
static uint8_t *last_shared;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ua-vmm: ");
	vfprintf(stderr, fmt, ap);
	if (errno)
		fprintf(stderr, ": %s", strerror(errno));
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *what)
{
	int r = ioctl(fd, req, arg);

	if (r < 0)
		die("%s", what);
	return r;
}

/* --- reading guest memory the way a hostile host would ---------------- */

/*
 * volatile, as C requires of what a signal handler and the code after
 * siglongjmp() share (checkpatch's advice is for kernel code).
 */
static __thread sigjmp_buf probe_env;
static __thread volatile sig_atomic_t probing;

static void probe_fault(int sig)
{
	if (probing)
		siglongjmp(probe_env, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Read @len bytes at guest-physical @gpa through the VMM's own mapping (no
 * system call: pKVM answers a host access to a page the guest did not share
 * with a fault, delivered as SIGSEGV).
 */
static enum ua_coco_result probe(uint64_t gpa, uint32_t len, uint64_t pattern)
{
	volatile const uint64_t *p;
	bool all_pattern = true;
	uint32_t i;

	if (gpa < RAM_BASE || len > ram_size || gpa - RAM_BASE > ram_size - len || len % 8)
		return UA_COCO_OUTSIDE;
	p = (volatile const uint64_t *)(ram + (gpa - RAM_BASE));
	probing = 1;
	if (sigsetjmp(probe_env, 0)) {
		probing = 0;
		return UA_COCO_REFUSED;
	}
	for (i = 0; i < len / 8; i++)
		if (p[i] != pattern)
			all_pattern = false;
	probing = 0;
	return all_pattern ? UA_COCO_READ_PATTERN : UA_COCO_READ_OTHER;
}

static const char *const kind_names[UA_COCO_NR_KINDS] = {
	[UA_COCO_KMALLOC] = "kmalloc_decrypted objects",
	[UA_COCO_DECRYPTED_PAGE] = "alloc_decrypted_pages pages",
	[UA_COCO_UNMAPPED_PAGE] = "unmapped_alloc pages",
	[UA_COCO_PLAIN_PAGE] = "alloc_pages pages",
	[UA_COCO_FREED_PAGE] = "formerly shared pages, freed and drained",
	[UA_COCO_DMA_COHERENT] = "dma_alloc_coherent buffers",
};

/* A 4 KiB page of guest memory in a check, and whether it behaved as expected. */
struct checked_page {
	uint64_t pfn;
	bool shared;
	bool as_expected;
};

static struct checked_page checked[4 * UA_COCO_MAX_RANGES];
static unsigned int nr_checked;

/* Counts every page a range touches once, however many objects share it. */
static void check_pages(const struct ua_coco_range *r, bool as_expected)
{
	bool shared = r->expect == UA_COCO_EXPECT_SHARED;
	uint64_t pfn;
	unsigned int i;

	for (pfn = r->gpa >> 12; pfn <= (r->gpa + r->len - 1) >> 12; pfn++) {
		for (i = 0; i < nr_checked; i++)
			if (checked[i].pfn == pfn && checked[i].shared == shared)
				break;
		if (i == nr_checked) {
			if (nr_checked == ARRAY_SIZE(checked))
				return;
			checked[nr_checked++] = (struct checked_page){ pfn, shared, true };
		}
		checked[i].as_expected &= as_expected;
	}
}

/* The guest asked for a check: its mailbox is at @gpa. */
static void coco_check(uint64_t gpa, uint32_t seq)
{
	unsigned int readable[UA_COCO_NR_KINDS] = {}, total[UA_COCO_NR_KINDS] = {};
	unsigned int shared_ok = 0, shared = 0, private_read = 0, private = 0;
	struct ua_coco_mailbox *mb;
	enum ua_coco_result res;
	uint32_t i, mseq, nr;
	uint64_t magic;

	/* The mailbox itself must be shared, or the guest could not talk to us. */
	res = probe(gpa, sizeof(*mb), 0);
	if (res == UA_COCO_REFUSED || res == UA_COCO_OUTSIDE) {
		printf("coco: check %u: the mailbox at 0x%llx is not readable\n", seq,
		       (unsigned long long)gpa);
		return;
	}
	mb = (struct ua_coco_mailbox *)(ram + (gpa - RAM_BASE));
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	/*
	 * The guest can write the mailbox at any time: every field is read
	 * once, into a local copy, and only the copy is validated and used.
	 */
	magic = __atomic_load_n(&mb->magic, __ATOMIC_RELAXED);
	mseq = __atomic_load_n(&mb->seq, __ATOMIC_RELAXED);
	nr = __atomic_load_n(&mb->nr, __ATOMIC_RELAXED);
	if (magic != UA_COCO_MAGIC || mseq != seq || nr > UA_COCO_MAX_RANGES) {
		printf("coco: check %u: bad mailbox (magic %llx seq %u nr %u)\n", seq,
		       (unsigned long long)magic, mseq, nr);
		return;
	}
	for (i = 0; i < nr; i++) {
		struct ua_coco_range r;
		uint32_t kind;
		bool read;

		r.gpa = __atomic_load_n(&mb->r[i].gpa, __ATOMIC_RELAXED);
		r.pattern = __atomic_load_n(&mb->r[i].pattern, __ATOMIC_RELAXED);
		r.len = __atomic_load_n(&mb->r[i].len, __ATOMIC_RELAXED);
		r.expect = __atomic_load_n(&mb->r[i].expect, __ATOMIC_RELAXED);
		r.kind = __atomic_load_n(&mb->r[i].kind, __ATOMIC_RELAXED);
		kind = r.kind < UA_COCO_NR_KINDS ? r.kind : UA_COCO_PLAIN_PAGE;
		res = probe(r.gpa, r.len, r.pattern);
		read = res == UA_COCO_READ_PATTERN || res == UA_COCO_READ_OTHER;

		__atomic_store_n(&mb->r[i].result, res, __ATOMIC_RELAXED);
		total[kind]++;
		readable[kind] += read;
		if (res != UA_COCO_OUTSIDE && r.len)
			check_pages(&r, r.expect == UA_COCO_EXPECT_SHARED ?
				    res == UA_COCO_READ_PATTERN : !read);
	}
	for (i = 0; i < nr_checked; i++) {
		if (checked[i].shared) {
			shared++;
			shared_ok += checked[i].as_expected;
		} else {
			private++;
			private_read += !checked[i].as_expected;
		}
	}
	nr_checked = 0;
	for (i = 0; i < UA_COCO_NR_KINDS; i++)
		if (total[i])
			printf("coco: check %u: host read %u/%u %s\n", seq, readable[i],
			       total[i], kind_names[i]);
	printf("coco: host read %u/%u shared pages, %u/%u private pages\n", shared_ok, shared,
	       private_read, private);
	fflush(stdout);
	checks++;
	__atomic_store_n(&mb->done, seq, __ATOMIC_RELEASE);
}

/* Record what the VMM put at @off..@off+@size (the rest of RAM is the marker). */
static void keep_loaded(uint64_t off, uint64_t size)
{
	struct loaded *l = &loaded[nr_loaded++];

	l->off = off & ~0xfffULL;
	l->size = ((off + size + 0xfff) & ~0xfffULL) - l->off;
	l->copy = malloc(l->size);
	if (!l->copy)
		die("a copy of %llu loaded bytes", (unsigned long long)l->size);
	memcpy(l->copy, ram + l->off, l->size);
}

/* The page at RAM offset @off still holds what it held before the guest ran. */
static bool untouched(const uint64_t *p, uint64_t off)
{
	unsigned int i;

	for (i = 0; i < nr_loaded; i++)
		if (off - loaded[i].off < loaded[i].size)
			return !memcmp(p, loaded[i].copy + (off - loaded[i].off), 4096);
	for (i = 0; i < 4096 / 8; i++)
		if (p[i] != RAM_MARKER)
			return false;
	return true;
}

/* Copy the page at RAM offset @off into @copy; false if pKVM refused the read. */
static bool read_page(uint64_t off, uint64_t *copy)
{
	volatile const uint64_t *p = (volatile const uint64_t *)(ram + off);
	unsigned int i;

	probing = 1;
	if (sigsetjmp(probe_env, 0)) {
		probing = 0;
		return false;
	}
	for (i = 0; i < 4096 / 8; i++)
		copy[i] = p[i];
	probing = 0;
	return true;
}

/*
 * A sweep of guest RAM, asked for in parts ("ua-coco: sweep TAG I/N", I from
 * 0 to N - 1) so that no vCPU waits for the host longer than a part takes.
 * Every page is counted as shared (the host reads it and the guest wrote
 * it), untouched (the host reads what it put there: never the guest's) or
 * private (pKVM refuses the read); the last part reports, with where the
 * shared pages are and how many of those of the previous sweep still are.
 */
struct sweep {
	char tag[32];
	unsigned int next;	/* the part expected next */
	unsigned long shared, untouched, private, ranges, before, still;
	uint64_t start, first_word;
	bool in_range;
	struct timespec t0;
};

static struct sweep sw;

/* Ends the run of shared pages in progress, if any, at RAM offset @off. */
static void end_range(struct sweep *w, uint64_t off, FILE *out)
{
	if (!w->in_range)
		return;
	if (w->ranges++ < 8)
		fprintf(out, "coco: sweep %s: shared 0x%llx+%llu pages, %016llx\n", w->tag,
			(unsigned long long)(RAM_BASE + w->start),
			(unsigned long long)((off - w->start) >> 12),
			(unsigned long long)w->first_word);
	w->in_range = false;
}

/* Sweeps the pages at RAM offsets @from to @to (excluded). */
static void sweep_range(struct sweep *w, uint64_t from, uint64_t to, FILE *out)
{
	static uint64_t copy[4096 / 8];
	uint64_t off;

	for (off = from; off < to; off += 4096) {
		uint64_t pfn = off / 4096;
		bool shared = false, was;

		if (!read_page(off, copy))
			w->private++;
		else if (untouched(copy, off))
			w->untouched++;
		else
			shared = true;
		if (shared && !w->in_range) {
			w->start = off;
			w->first_word = copy[0];
			w->in_range = true;
		} else if (!shared) {
			end_range(w, off, out);
		}
		w->shared += shared;
		was = last_shared[pfn / 8] & (1 << (pfn % 8));
		w->before += was;
		w->still += was && shared;
		if (shared)
			last_shared[pfn / 8] |= 1 << (pfn % 8);
		else
			last_shared[pfn / 8] &= ~(1 << (pfn % 8));
	}
}

static void sweep_ram(const char *tag, unsigned int part, unsigned int parts, FILE *out)
{
	uint64_t pages = ram_size / 4096;
	struct timespec t1;

	if (!last_shared) {
		last_shared = calloc(pages / 8 + 1, 1);
		if (!last_shared)
			die("the sweep's bitmap");
	}
	if (!parts || part >= parts || (part && (part != sw.next || strcmp(tag, sw.tag)))) {
		fprintf(out, "coco: sweep %s: part %u/%u out of order\n", tag, part, parts);
		sw.next = 0;
		return;
	}
	if (!part) {
		memset(&sw, 0, sizeof(sw));
		snprintf(sw.tag, sizeof(sw.tag), "%s", tag);
		clock_gettime(CLOCK_MONOTONIC, &sw.t0);
	}
	sw.next = part + 1;
	sweep_range(&sw, pages * part / parts * 4096, pages * (part + 1) / parts * 4096, out);
	if (part + 1 < parts)
		return;
	end_range(&sw, ram_size, out);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(out, "coco: sweep %s: %lu shared pages in %lu ranges, %lu private, %lu untouched\n",
		tag, sw.shared, sw.ranges, sw.private, sw.untouched);
	fprintf(out, "coco: sweep %s: %lu of %lu last-sweep pages still shared, in %ld ms\n",
		tag, sw.still, sw.before, (long)((t1.tv_sec - sw.t0.tv_sec) * 1000 +
						 (t1.tv_nsec - sw.t0.tv_nsec) / 1000000));
	sw.next = 0;
}

/* --- the console -------------------------------------------------------- */

static void console_putc(char c)
{
	unsigned long long gpa;
	unsigned int seq, part = 0, parts = 0;
	char tag[32] = "";
	char *m;

	pthread_mutex_lock(&console_lock);
	putchar(c);
	if (c == '\n') {
		fflush(stdout);
		line[line_len] = 0;
		m = strstr(line, "ua-coco: mailbox ");
		if (m && sscanf(m, "ua-coco: mailbox %llx seq %u", &gpa, &seq) == 2)
			coco_check(gpa, seq);
		m = strstr(line, "ua-coco: sweep ");
		if (m && sscanf(m, "ua-coco: sweep %31s %u/%u", tag, &part, &parts) != 3)
			tag[0] = 0;
		line_len = 0;
	} else if (line_len < sizeof(line) - 1) {
		line[line_len++] = c;
	}
	pthread_mutex_unlock(&console_lock);
	/*
	 * Only this vCPU waits for a sweep: the others can print meanwhile
	 * (a vCPU stopped longer than the RCU stall timeout is a stall).
	 */
	if (tag[0]) {
		char *text = NULL;
		size_t len = 0;
		FILE *out = open_memstream(&text, &len);

		if (!out)
			die("open_memstream");
		pthread_mutex_lock(&sweep_lock);
		sweep_ram(tag, part, parts, out);
		pthread_mutex_unlock(&sweep_lock);
		fclose(out);
		/* On lines of their own, even if another vCPU is mid-line. */
		pthread_mutex_lock(&console_lock);
		if (line_len)
			putchar('\n');
		fputs(text, stdout);
		fflush(stdout);
		pthread_mutex_unlock(&console_lock);
		free(text);
	}
}

static void handle_mmio(struct kvm_run *run)
{
	uint64_t addr = run->mmio.phys_addr;

	if (run->mmio.is_write) {
		/* PL011 UARTDR: the character is in the low byte. */
		if (addr == UART_BASE)
			console_putc((char)run->mmio.data[0]);
		return;
	}
	/* Reads: 0 everywhere. For the PL011 that is "FIFO not full, not busy". */
	memset(run->mmio.data, 0, sizeof(run->mmio.data));
}

/* --- vCPUs -------------------------------------------------------------- */

struct vcpu {
	int fd;
	unsigned int id;
	struct kvm_run *run;
	pthread_t thread;
};

static struct vcpu vcpus[MAX_VCPUS];

#define CORE_REG(x) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
		     (offsetof(struct kvm_regs, x) / sizeof(__u32)))

static void set_reg(int fd, uint64_t id, uint64_t val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uint64_t)&val };

	xioctl(fd, KVM_SET_ONE_REG, &reg, "KVM_SET_ONE_REG");
}

static void *vcpu_loop(void *arg)
{
	struct vcpu *v = arg;
	struct kvm_run *run = v->run;

	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("vCPU %u: KVM_RUN", v->id);
		}
		switch (run->exit_reason) {
		case KVM_EXIT_MMIO:
			handle_mmio(run);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			fflush(stdout);
			fprintf(stderr, "ua-vmm: guest %s (vCPU %u), %u host checks\n",
				run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ?
				"powered off" : run->system_event.type ==
				KVM_SYSTEM_EVENT_RESET ? "reset" : "stopped",
				v->id, checks);
			exit(run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ||
			     run->system_event.type == KVM_SYSTEM_EVENT_RESET ? 0 : 1);
		case KVM_EXIT_HYPERCALL:
			/* Nothing is offered to the guest beyond what KVM handles. */
			run->hypercall.ret = -1;
			break;
		default:
			errno = 0;
			die("vCPU %u: unexpected exit %u", v->id, run->exit_reason);
		}
	}
	return NULL;
}

static void load_file(const char *path, uint64_t offset, uint64_t limit, uint64_t *size)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0)
		die("%s", path);
	if ((uint64_t)st.st_size > limit)
		die("%s: %lld bytes do not fit in %llu", path, (long long)st.st_size,
		    (unsigned long long)limit);
	n = read(fd, ram + offset, st.st_size);
	if (n != st.st_size)
		die("%s: short read", path);
	close(fd);
	*size = st.st_size;
}

static void set_device_attr(int fd, uint32_t group, uint64_t attr, uint64_t val, const char *w)
{
	struct kvm_device_attr a = {
		.group = group, .attr = attr, .addr = (uint64_t)&val,
	};

	xioctl(fd, KVM_SET_DEVICE_ATTR, &a, w);
}

int main(int argc, char **argv)
{
	const char *kernel = NULL, *dtb = NULL, *initrd = NULL;
	unsigned int nr_vcpus = 1, i;
	uint64_t kernel_size, dtb_size, text_offset, dtb_off, initrd_size = 0, off;
	struct kvm_userspace_memory_region slot;
	struct kvm_create_device gic = { .type = KVM_DEV_TYPE_ARM_VGIC_V3 };
	struct sigaction sa = { .sa_handler = probe_fault };
	int kvm, opt;

	ram_size = 1024ULL << 20;
	while ((opt = getopt(argc, argv, "k:d:i:m:c:")) != -1) {
		switch (opt) {
		case 'k':
			kernel = optarg;
			break;
		case 'd':
			dtb = optarg;
			break;
		case 'i':
			initrd = optarg;
			break;
		case 'm':
			ram_size = strtoull(optarg, NULL, 0) << 20;
			break;
		case 'c':
			nr_vcpus = strtoul(optarg, NULL, 0);
			break;
		default:
			goto usage;
		}
	}
	if (!kernel || !dtb || !nr_vcpus || nr_vcpus > MAX_VCPUS || ram_size < (64ULL << 20))
		goto usage;
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	/*
	 * SA_NODEFER and an empty mask: the handler blocks nothing, so the
	 * probes' sigsetjmp() need not save the mask (a system call each, and
	 * a sweep probes every page of guest RAM).
	 */
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	/* Default IPA size (40 bits), protected. */
	vm_fd = ioctl(kvm, KVM_CREATE_VM, KVM_VM_TYPE_ARM_PROTECTED);
	if (vm_fd < 0)
		die("KVM_CREATE_VM(PROTECTED) (is the host in kvm-arm.mode=protected?)");
	vcpu_mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);

	/* Guest memory: anonymous, donated to the guest page by page as it faults. */
	ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram == MAP_FAILED)
		die("mmap of %llu MiB", (unsigned long long)(ram_size >> 20));
	if (ram_size < INITRD_OFFSET + DTB_SPACE)
		die("at least %llu MiB of RAM", (INITRD_OFFSET + DTB_SPACE) >> 20);
	for (off = 0; off < ram_size; off += 8)
		*(uint64_t *)(ram + off) = RAM_MARKER;
	load_file(kernel, 0, INITRD_OFFSET, &kernel_size);
	/* arm64 Image header: text_offset at byte 8 (0 for any recent kernel). */
	memcpy(&text_offset, ram + 8, sizeof(text_offset));
	if (text_offset) {
		memmove(ram + text_offset, ram, kernel_size);
		memset(ram, 0, text_offset);
	}
	dtb_off = ram_size - DTB_SPACE;
	load_file(dtb, dtb_off, DTB_SPACE, &dtb_size);
	if (initrd)
		load_file(initrd, INITRD_OFFSET, dtb_off - INITRD_OFFSET, &initrd_size);
	keep_loaded(0, text_offset + kernel_size);
	keep_loaded(dtb_off, dtb_size);
	if (initrd)
		keep_loaded(INITRD_OFFSET, initrd_size);
	slot = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = RAM_BASE, .memory_size = ram_size,
		.userspace_addr = (uint64_t)ram,
	};
	xioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &slot, "KVM_SET_USER_MEMORY_REGION");

	for (i = 0; i < nr_vcpus; i++) {
		struct kvm_vcpu_init init = { .target = KVM_ARM_TARGET_GENERIC_V8 };
		struct vcpu *v = &vcpus[i];

		v->id = i;
		v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0)
			die("KVM_CREATE_VCPU %u", i);
		v->run = mmap(NULL, vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED)
			die("mmap of vCPU %u's kvm_run", i);
		init.features[0] = 1U << KVM_ARM_VCPU_PSCI_0_2;
		/*
		 * The guest sees pointer authentication in its ID registers
		 * whenever the CPU has it; without these features its key
		 * registers trap as undefined.
		 */
		if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PTRAUTH_ADDRESS) > 0 &&
		    ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PTRAUTH_GENERIC) > 0)
			init.features[0] |= 1U << KVM_ARM_VCPU_PTRAUTH_ADDRESS |
					    1U << KVM_ARM_VCPU_PTRAUTH_GENERIC;
		/* Secondary vCPUs wait for PSCI CPU_ON. */
		if (i)
			init.features[0] |= 1U << KVM_ARM_VCPU_POWER_OFF;
		xioctl(v->fd, KVM_ARM_VCPU_INIT, &init, "KVM_ARM_VCPU_INIT");
	}
	/* The boot protocol: x0 = the device tree, pc = the kernel, MMU off. */
	set_reg(vcpus[0].fd, CORE_REG(regs.pc), RAM_BASE + text_offset);
	set_reg(vcpus[0].fd, CORE_REG(regs.regs[0]), RAM_BASE + dtb_off);

	xioctl(vm_fd, KVM_CREATE_DEVICE, &gic, "KVM_CREATE_DEVICE(VGIC_V3)");
	set_device_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST,
			GIC_DIST, "vGIC distributor address");
	set_device_attr(gic.fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST,
			GIC_REDIST, "vGIC redistributor address");
	{
		uint32_t nr_irqs = 128;
		struct kvm_device_attr a = {
			.group = KVM_DEV_ARM_VGIC_GRP_NR_IRQS, .addr = (uint64_t)&nr_irqs,
		};

		xioctl(gic.fd, KVM_SET_DEVICE_ATTR, &a, "vGIC number of interrupts");
	}
	{
		struct kvm_device_attr a = {
			.group = KVM_DEV_ARM_VGIC_GRP_CTRL, .attr = KVM_DEV_ARM_VGIC_CTRL_INIT,
		};

		xioctl(gic.fd, KVM_SET_DEVICE_ATTR, &a, "vGIC init");
	}

	fprintf(stderr,
		"ua-vmm: protected VM, %u vCPUs, %llu MiB at 0x%llx, kernel %llu bytes, initramfs %llu bytes, device tree at 0x%llx\n",
		nr_vcpus, (unsigned long long)(ram_size >> 20),
		RAM_BASE, (unsigned long long)kernel_size, (unsigned long long)initrd_size,
		(unsigned long long)(RAM_BASE + dtb_off));
	for (i = 1; i < nr_vcpus; i++)
		if (pthread_create(&vcpus[i].thread, NULL, vcpu_loop, &vcpus[i]))
			die("pthread_create");
	vcpu_loop(&vcpus[0]);
	return 1;
usage:
	fprintf(stderr,
		"usage: %s -k Image -d guest.dtb [-i initramfs] [-m MiB] [-c vCPUs (1-%d)]\n",
		argv[0], MAX_VCPUS);
	return 1;
}
