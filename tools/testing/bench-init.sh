#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the 'make bench' guest: one run at real cost, one with a simulated
# hypercall cost per conversion, and the multi-CPU workloads as run
# "cpus-N"; with ua_bench=scale on the command line only the latter, with
# ua_bench=quick only the single-CPU object workloads.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
B=/sys/kernel/debug/unmapped_alloc_bench
status=ok
echo "ua-bench-guest: begin"
grep -E 'direct_map_level[23]_splits' /proc/vmstat
if grep -q 'ua_bench=scale' /proc/cmdline; then
	# Only the multi-CPU workloads, for the scaling curve.
	echo scale >$B || status=fail
elif grep -q 'ua_bench=quick' /proc/cmdline; then
	echo quick >$B || status=fail
else
	echo real >$B || status=fail
	echo "sim 5" >$B || status=fail
	echo scale >$B || status=fail
fi
dmesg | grep -o 'ua-bench.*'
grep -E 'direct_map_level[23]_splits' /proc/vmstat
echo "ua-bench-guest: $status"
poweroff -f
