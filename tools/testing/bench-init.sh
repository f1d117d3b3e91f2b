#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the 'make bench' guest: one run at real cost, one with a simulated
# hypercall cost per conversion.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
B=/sys/kernel/debug/unmapped_alloc_bench
status=ok
echo "ua-bench-guest: begin"
grep -E 'direct_map_level[23]_splits' /proc/vmstat
echo real >$B || status=fail
echo "sim 5" >$B || status=fail
dmesg | grep -o 'ua-bench.*'
grep -E 'direct_map_level[23]_splits' /proc/vmstat
echo "ua-bench-guest: $status"
poweroff -f
