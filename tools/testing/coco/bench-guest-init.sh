#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the protected guest of 'make bench-coco': the ITS-like and churn
# workloads, whose conversions are real pKVM hypercalls here. The guest has
# only the kernel's early console, so this script speaks through /dev/kmsg.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
exec >/dev/kmsg 2>&1
status=ok
echo "ua-bench-guest: begin"
echo pkvm >/sys/kernel/debug/unmapped_alloc_bench || status=fail
echo "ua-bench-guest: $status"
poweroff -f
