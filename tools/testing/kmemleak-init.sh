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

if grep -q 'unmapped_alloc_torture.duration=[1-9]' /proc/cmdline; then
	echo "ua-init: waiting for the torture run"
	until dmesg | grep -qE 'torture: [0-9]+ ops, '; do
		sleep 5
	done
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
