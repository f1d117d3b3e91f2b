#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the test boots: wait for the torture run if the kernel runs one
# (unmapped_alloc_torture.duration=N), then scan for leaks with kmemleak
# after the KUnit suites and the torture run, print what it found and
# reboot (QEMU runs with -no-reboot, so this ends it).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
# /dev, with /dev/null.
mount -t devtmpfs devtmpfs /dev

if grep -q 'unmapped_alloc_torture.duration=[1-9]' /proc/cmdline; then
	echo "ua-init: waiting for the torture run"
	until dmesg | grep -qE 'torture: [0-9]+ ops, '; do
		sleep 5
	done
fi
# The kernel's memfd_secret selftest against secretmem on unmapped_alloc
# (the suites boot asks with ua_memfd_secret on the command line), with the
# component's counts of order-0 unmapped pages around it: every page the
# selftest faulted in must come from the component and go back to it.
if grep -qw ua_memfd_secret /proc/cmdline; then
	S=/sys/kernel/debug/unmapped_alloc/stats
	count() { awk -v k="$1" '$1 == k { print $2 }' $S; }
	a0=$(count unmapped_alloc_order0) f0=$(count unmapped_free_order0)
	b0=$(count unmapped_bad_frees)
	# As the selftests' run_vmtests.sh: the ptrace test attaches to its parent.
	Y=/proc/sys/kernel/yama/ptrace_scope
	[ -w $Y ] && echo 0 >$Y
	echo "ua-init: memfd_secret selftest begin"
	timeout 120 /bin/memfd_secret
	echo "ua-init: memfd_secret exit $?"
	echo "ua-init: memfd_secret selftest end"
	# secret-probe holds a secret and reads /proc/kcore over it (no crash,
	# no secret byte) and the kernel page tables' dump (the secret page's
	# direct-map range not present).
	P=/sys/kernel/debug/page_tables/kernel
	[ -r $P ] || P=/sys/kernel/debug/kernel_page_tables
	timeout 120 /bin/secret-probe $P
	echo "ua-init: secret-probe: exit $?"
	# Freed pages go back after a grace period (mm/secretmem.c's reaper).
	n=0
	while [ $n -lt 20 ] && [ $(($(count unmapped_free_order0) - f0)) -lt \
		$(($(count unmapped_alloc_order0) - a0)) ]; do
		sleep 1
		n=$((n + 1))
	done
	echo "ua-init: memfd_secret pages: $(($(count unmapped_alloc_order0) - a0)) allocated," \
		"$(($(count unmapped_free_order0) - f0)) freed, $(($(count unmapped_bad_frees) - b0)) bad frees"
	# The per-page path of 7.2 (secretmem.unmapped_alloc=0) still works,
	# and takes nothing from the component.
	M=/sys/module/secretmem/parameters/unmapped_alloc
	if [ -w $M ]; then
		a0=$(count unmapped_alloc_order0)
		echo 0 >$M
		echo "ua-init: memfd_secret stock selftest begin"
		timeout 120 /bin/memfd_secret
		echo "ua-init: memfd_secret stock exit $?"
		echo "ua-init: memfd_secret stock selftest end"
		echo 1 >$M
		echo "ua-init: memfd_secret stock pages: $(($(count unmapped_alloc_order0) - a0)) from the component"
	fi
fi
K=/sys/kernel/debug/kmemleak
if [ -w $K ]; then
	# Two scans: an object is only reported once it was found unreferenced
	# in a scan and is older than the minimum age.
	echo scan >$K
	sleep 6
	echo scan >$K
	cat $K
	echo "kmemleak: $(grep -c '^unreferenced object' $K) leaks"
else
	echo "kmemleak: not available"
fi
reboot -f
