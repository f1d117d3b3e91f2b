#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the 'make run' guest.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
D=/sys/kernel/debug/unmapped_alloc
status=ok

section() { echo; echo "--- $*"; }
nonzero() { grep -v ' 0$' "$D/stats"; }

echo "ua-run: begin"
section "unmapped_alloc stats at boot (non-zero counters)"
nonzero
for m in unmapped_alloc_sample unmapped_alloc_rust_sample; do
	section "insmod $m"
	insmod /lib/modules/$m.ko || status=fail
	dmesg | grep "$m:" | sed 's/^\[[^]]*\] //' | tail -n 20
done
section "stats with the samples loaded (non-zero counters)"
nonzero
for m in unmapped_alloc_rust_sample unmapped_alloc_sample; do
	rmmod $m || status=fail
done
sleep 1
section "stats after unloading (freed pages scrubbed; blocks above the cache limit returned)"
nonzero
echo
echo "ua-run: $status"
echo "ua-run: end"
poweroff -f
