// SPDX-License-Identifier: GPL-2.0
/*
 * ua-kexec KERNEL INITRD CMDLINE: load KERNEL with INITRD and CMDLINE through
 * kexec_file_load() and reboot into it, as 'kexec -s -l ... && kexec -e'
 * would. Built static for the test guests (tools/testing/lib.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int kernel, initrd;

	if (argc != 4) {
		fprintf(stderr, "usage: %s KERNEL INITRD CMDLINE\n", argv[0]);
		return 2;
	}
	kernel = open(argv[1], O_RDONLY | O_CLOEXEC);
	initrd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (kernel < 0 || initrd < 0) {
		perror("ua-kexec: open");
		return 1;
	}
	/* The command line length counts its NUL. */
	if (syscall(SYS_kexec_file_load, kernel, initrd, strlen(argv[3]) + 1,
		    argv[3], 0UL)) {
		perror("ua-kexec: kexec_file_load");
		return 1;
	}
	printf("ua-kexec: loaded %s, rebooting into it\n", argv[1]);
	fflush(stdout);
	sync();
	syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
		LINUX_REBOOT_CMD_KEXEC, NULL);
	fprintf(stderr, "ua-kexec: reboot: %s\n", strerror(errno));
	return 1;
}
