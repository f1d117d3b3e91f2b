// SPDX-License-Identifier: GPL-2.0
/*
 * secret-probe: what a reader of /proc/kcore sees of a memfd_secret() page,
 * run by the test guests' /init as root. A page of an ordinary mapping and
 * a secret page are filled with words of their own; each is looked up
 * through /proc/self/pagemap (its PFN) and read back through the kcore
 * segment that covers that physical address. The ordinary page must read
 * back as written (the probe does see memory), the secret page must read
 * as anything but its word (zeros: kcore finds no mapping for it), and
 * reading kcore must not crash the kernel. Then the kernel page tables'
 * dump (ptdump, whose debugfs file is the first argument) is read with the
 * secret in use: the range that holds the ordinary page's direct-map address
 * must be mapped, the one that holds the secret page's must not (x86 prints
 * no flags for a non-present range, arm64 an "F" for an invalid entry). The
 * secret word is never kept in ordinary memory: it is derived from two
 * halves when it is used.
 *
 * Prints "secret-probe: ordinary page <ok|FAIL>", "secret-probe: secret
 * page <hidden|REVEALED|FAIL>", "secret-probe: ptdump: ordinary page
 * <mapped|UNMAPPED|FAIL>", "secret-probe: ptdump: secret page
 * <unmapped|MAPPED|FAIL>", then "secret-probe: done"; exits non-zero on any
 * failure.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static long page_size;

/* The PFN behind @addr, from /proc/self/pagemap (root sees PFNs). */
static uint64_t pfn_of(void *addr)
{
	uint64_t entry = 0;
	off_t off = (uintptr_t)addr / page_size * sizeof(entry);
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0 || pread(fd, &entry, sizeof(entry), off) != sizeof(entry)) {
		perror("secret-probe: pagemap");
		exit(2);
	}
	close(fd);
	if (!(entry & (1ULL << 63)))
		return 0;
	return entry & ((1ULL << 55) - 1);
}

/*
 * Read the page at physical address @phys through /proc/kcore into @buf:
 * through the direct map's segment that covers it. The kernel text's segment
 * has a physical address too, and covers the init memory freed after boot,
 * whose kernel-image alias is unmapped: of the segments that cover @phys the
 * largest is the direct map's (one per range of RAM). Its virtual address
 * there goes to @vaddr.
 */
static int kcore_read(int fd, uint64_t phys, void *buf, uint64_t *vaddr)
{
	Elf64_Phdr ph, best = { .p_memsz = 0 };
	Elf64_Ehdr eh;
	int i;

	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh))
		return -1;
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + i * eh.e_phentsize) != sizeof(ph))
			return -1;
		if (ph.p_type != PT_LOAD || ph.p_paddr == (Elf64_Addr)-1 ||
		    phys < ph.p_paddr || phys - ph.p_paddr >= ph.p_memsz)
			continue;
		if (ph.p_memsz > best.p_memsz)
			best = ph;
	}
	if (!best.p_memsz) {
		errno = ENOENT;
		return -1;
	}
	printf("secret-probe: phys %#llx in segment paddr %#llx vaddr %#llx size %#llx\n",
	       (unsigned long long)phys, (unsigned long long)best.p_paddr,
	       (unsigned long long)best.p_vaddr, (unsigned long long)best.p_memsz);
	*vaddr = best.p_vaddr + (phys - best.p_paddr);
	if (pread(fd, buf, page_size, best.p_offset + (phys - best.p_paddr)) != page_size)
		return -1;
	return 0;
}

/*
 * Whether the ptdump file @path shows @vaddr mapped: 1 if the range that
 * covers it has protection flags ("RW" or "ro") and no "F" (arm64's invalid
 * entry), 0 if it has none or an "F", -1 if no range covers it. The range's
 * line goes to @line.
 */
static int ptdump_mapped(const char *path, uint64_t vaddr, char *line, size_t len)
{
	FILE *f = fopen(path, "r");
	unsigned long long start, end;
	int found = -1;

	if (!f) {
		perror("secret-probe: ptdump");
		return -1;
	}
	while (found < 0 && fgets(line, len, f)) {
		bool flags = false, invalid = false;
		char copy[256], *tok, *save;

		if (sscanf(line, "0x%llx-0x%llx", &start, &end) != 2 ||
		    vaddr < start || vaddr >= end)
			continue;
		line[strcspn(line, "\n")] = 0;
		snprintf(copy, sizeof(copy), "%s", line);
		for (tok = strtok_r(strchr(copy, ' '), " ", &save); tok;
		     tok = strtok_r(NULL, " ", &save)) {
			flags |= !strcmp(tok, "RW") || !strcmp(tok, "ro");
			invalid |= !strcmp(tok, "F");
		}
		found = flags && !invalid;
	}
	fclose(f);
	return found;
}

/* Checks one page's range in ptdump against @want_mapped; true if it fails. */
static bool ptdump_check(const char *path, const char *what, uint64_t vaddr, bool want_mapped)
{
	char line[256];
	int mapped = ptdump_mapped(path, vaddr, line, sizeof(line));

	if (mapped < 0) {
		printf("secret-probe: ptdump: %s page FAIL (no range covers %#llx)\n", what,
		       (unsigned long long)vaddr);
		return true;
	}
	printf("secret-probe: ptdump: %s page %s (%#llx in the range at %s)\n", what,
	       mapped == want_mapped ? (mapped ? "mapped" : "unmapped") :
	       (mapped ? "MAPPED" : "UNMAPPED"), (unsigned long long)vaddr, line);
	return mapped != want_mapped;
}

int main(int argc, char **argv)
{
	/* The secret word's halves: their XOR is the word, made in registers. */
	volatile uint64_t half_a = 0x5ec2e75ec2e75ec2ULL, half_b = 0x0123456789abcdefULL;
	const uint64_t plain = 0x0b5e12ab1e0b5e12ULL;
	uint64_t *ordinary, *secret, *buf, ordinary_va = 0, secret_va = 0;
	size_t i, words, hits;
	int fd, kcore, failed = 0;

	page_size = sysconf(_SC_PAGESIZE);
	words = page_size / sizeof(uint64_t);
	buf = aligned_alloc(page_size, page_size);
	ordinary = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
	fd = syscall(SYS_memfd_secret, 0);
	if (!buf || ordinary == MAP_FAILED || fd < 0 || ftruncate(fd, page_size)) {
		perror("secret-probe: setup");
		return 2;
	}
	secret = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (secret == MAP_FAILED) {
		perror("secret-probe: mmap secret");
		return 2;
	}
	for (i = 0; i < words; i++) {
		ordinary[i] = plain;
		secret[i] = half_a ^ half_b;
	}
	kcore = open("/proc/kcore", O_RDONLY);
	if (kcore < 0) {
		perror("secret-probe: /proc/kcore");
		return 2;
	}

	if (kcore_read(kcore, pfn_of(ordinary) * page_size, buf, &ordinary_va)) {
		perror("secret-probe: kcore read of the ordinary page");
		failed = 1;
	} else {
		for (hits = 0, i = 0; i < words; i++)
			hits += buf[i] == plain;
		printf("secret-probe: ordinary page %s (%zu of %zu words read back)\n",
		       hits == words ? "ok" : "FAIL", hits, words);
		failed |= hits != words;
	}

	if (!pfn_of(secret) || kcore_read(kcore, pfn_of(secret) * page_size, buf, &secret_va)) {
		perror("secret-probe: kcore read of the secret page");
		printf("secret-probe: secret page FAIL\n");
		failed = 1;
	} else {
		for (hits = 0, i = 0; i < words; i++)
			hits += buf[i] == (half_a ^ half_b);
		printf("secret-probe: secret page %s (%zu of %zu words revealed)\n",
		       hits ? "REVEALED" : "hidden", hits, words);
		failed |= hits != 0;
	}
	if (argc < 2) {
		printf("secret-probe: ptdump: no file given\n");
		failed = 1;
	} else if (!ordinary_va || !secret_va) {
		printf("secret-probe: ptdump: FAIL (no direct-map address)\n");
		failed = 1;
	} else {
		failed |= ptdump_check(argv[1], "ordinary", ordinary_va, true);
		failed |= ptdump_check(argv[1], "secret", secret_va, false);
	}
	/* The secret is still there for its owner. */
	for (hits = 0, i = 0; i < words; i++)
		hits += secret[i] == (half_a ^ half_b);
	if (hits != words) {
		printf("secret-probe: the secret page lost its contents\n");
		failed = 1;
	}
	printf("secret-probe: done\n");
	return failed;
}
