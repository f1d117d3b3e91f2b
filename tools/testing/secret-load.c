// SPDX-License-Identifier: GPL-2.0
/*
 * secret-load PROCS PAGES: PROCS processes each fault in PAGES pages of a
 * memfd_secret() area of their own and hold them until all have; then all
 * unmap and close. Run by the bench guest's /init, once with secretmem on
 * unmapped_alloc and once with secretmem.unmapped_alloc=0 (the per-page path
 * of 7.2), in one boot. Prints one line:
 *
 *   secret-load procs=P pages=N fault_ns_per_page=F release_ns_per_page=R
 *
 * fault: the time each process took to write the first byte of each of its
 * pages (the faults), summed over the processes, per page; release: munmap()
 * and close() (the last reference: truncation frees the folios), the same
 * way. The processes fault, and later release, one after another (a token
 * passes between them), so that the times are not those of a contended CPU.
 * The direct map figures are read by the caller around the run: with
 * SECRET_LOAD_WAIT set, a line on stdin starts the release.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void xread(int fd, void *buf, size_t len)
{
	if (read(fd, buf, len) != (ssize_t)len) {
		perror("secret-load: read");
		exit(2);
	}
}

static void xwrite(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len) {
		perror("secret-load: write");
		exit(2);
	}
}

/* One user: fault in and pass the token on; with it again, release. */
static void user(long pages, long page_size, int token_in, int token_out,
		 int result)
{
	uint64_t t0, times[2];
	size_t len = pages * page_size;
	char *p, c;
	int fd;
	long i;

	xread(token_in, &c, 1);
	fd = syscall(SYS_memfd_secret, 0);
	if (fd < 0 || ftruncate(fd, len)) {
		perror("secret-load: memfd_secret");
		exit(2);
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("secret-load: mmap");
		exit(2);
	}
	t0 = now_ns();
	for (i = 0; i < pages; i++)
		p[i * page_size] = 1;
	times[0] = now_ns() - t0;
	xwrite(token_out, &c, 1);

	xread(token_in, &c, 1);
	t0 = now_ns();
	munmap(p, len);
	close(fd);
	times[1] = now_ns() - t0;
	xwrite(result, times, sizeof(times));
	xwrite(token_out, &c, 1);
	exit(0);
}

int main(int argc, char **argv)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	long procs, pages, page_size = sysconf(_SC_PAGESIZE), i;
	uint64_t fault = 0, release = 0, times[2];
	int (*token)[2], result[2];
	int status, failed = 0;
	char c = 0;

	if (argc != 3 || (procs = atol(argv[1])) < 1 || (pages = atol(argv[2])) < 1) {
		fprintf(stderr, "usage: secret-load PROCS PAGES\n");
		return 2;
	}
	/* secretmem counts every page against RLIMIT_MEMLOCK, per user. */
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited))
		perror("secret-load: RLIMIT_MEMLOCK");
	token = calloc(procs + 1, sizeof(*token));
	if (!token || pipe(result)) {
		perror("secret-load: setup");
		return 2;
	}
	for (i = 0; i <= procs; i++) {
		if (pipe(token[i])) {
			perror("secret-load: pipe");
			return 2;
		}
	}
	for (i = 0; i < procs; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("secret-load: fork");
			return 2;
		}
		if (!pid)
			user(pages, page_size, token[i][0], token[i + 1][1], result[1]);
	}
	/* The token goes round once: every user has faulted in when it is back. */
	xwrite(token[0][1], &c, 1);
	xread(token[procs][0], &c, 1);
	printf("secret-load: all faulted in\n");
	fflush(stdout);
	/* The caller reads the direct map figures now; a line on stdin says go. */
	if (getenv("SECRET_LOAD_WAIT"))
		xread(0, &c, 1);
	/* Round two: each releases in turn. */
	xwrite(token[0][1], &c, 1);
	xread(token[procs][0], &c, 1);
	for (i = 0; i < procs; i++) {
		xread(result[0], times, sizeof(times));
		fault += times[0];
		release += times[1];
	}
	while (wait(&status) > 0)
		failed |= !WIFEXITED(status) || WEXITSTATUS(status);
	printf("secret-load procs=%ld pages=%ld fault_ns_per_page=%llu release_ns_per_page=%llu%s\n",
	       procs, pages, (unsigned long long)(fault / (procs * pages)),
	       (unsigned long long)(release / (procs * pages)), failed ? " FAILED" : "");
	return failed;
}
