#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the 'make run' guest.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
# The memory cgroup the samples are loaded from (below), made first, while
# nothing else runs: onlining the first memory cgroup switches kmem
# accounting on, a static key whose call sites are patched one after
# another. A page charged at an allocation site already patched and freed at
# a site not patched yet is reported as "page still charged to cgroup";
# under TCG the window is long enough for the guest's own pipes and page
# tables to fall into it (seen once on arm64, in the kernel's own pages).
mkdir -p /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
echo +memory >/sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/ua
D=/sys/kernel/debug/unmapped_alloc
status=ok

section() { echo; echo "--- $*"; }
nonzero() { grep -v ' 0$' "$D/stats"; }

mount -t tracefs tracefs /sys/kernel/tracing
T=/sys/kernel/tracing

echo "ua-run: begin"
# arm64: the real GICv3 ITS driver on the component, from the boot's trace.
[ -f /guest-its.sh ] && . /guest-its.sh
echo 1 >$T/events/unmapped_alloc/enable
echo 4096 >$T/buffer_size_kb
section "unmapped_alloc stats at boot (non-zero counters)"
nonzero
# Load the samples from a child memory cgroup: the C sample's secret pages are
# allocated with GFP_KERNEL_ACCOUNT and must show up in its kernel memory.
echo $$ >/sys/fs/cgroup/ua/cgroup.procs
kmem() { awk '$1 == "kernel" { print $2 }' /sys/fs/cgroup/ua/memory.stat; }
# memory.stat folds in the per-CPU counters only when enough updates are
# pending (64 pages per CPU) or every 2 s: 64 pages alone can take that long
# to show. kmem_settled waits for the periodic flush; kmem_moved BEFORE SIGN
# polls until the counter moved by 64 pages in SIGN's direction (+1 grew,
# -1 shrank), up to 6 s, and prints how far it moved.
kmem_settled() { sleep 3; kmem; }
kmem_moved() {
	local i=0 d
	while :; do
		d=$(( ($(kmem) - $1) * $2 ))
		[ $d -ge $((64 * 4096)) ] || [ $i -ge 12 ] && break
		sleep 0.5
		i=$((i + 1))
	done
	echo $d
}
for m in unmapped_alloc_sample unmapped_alloc_rust_sample its_like_sample virtio_like_sample; do
	section "insmod $m"
	[ $m = unmapped_alloc_sample ] && before=$(kmem_settled)
	insmod /lib/modules/$m.ko || status=fail
	dmesg | grep "$m:" | sed 's/^\[[^]]*\] //' | tail -n 20
	if [ $m = unmapped_alloc_sample ]; then
		grew=$(kmem_moved $before 1)
		echo "memcg 'kernel' of the loading task's cgroup grew by $grew bytes"
		if [ $grew -lt $((64 * 4096)) ]; then
			echo "FAIL: the 64 accounted secret pages were not charged"
			status=fail
		fi
	fi
done
# Back to the root cgroup: from here on nothing runs in "ua", whose kernel
# memory only falls when the secret pages charged to it are freed (rmmod
# below runs in the root cgroup: the uncharge follows the pages).
echo $$ >/sys/fs/cgroup/cgroup.procs
# Hibernation would copy the secret pages into the image: refused while the
# sample holds them. pm_test=freezer stops a hibernation that is let through
# after freezing tasks, so the check after unloading thaws and goes on.
hibernate() {
	# No 5 s pause at the test point.
	echo 0 >/sys/module/hibernate/parameters/pm_test_delay
	echo freezer >/sys/power/pm_test && echo disk >/sys/power/state
}
section "hibernation with unmapped pages in use"
if hibernate 2>/dev/null; then
	echo "FAIL: hibernation went ahead with unmapped pages in use"
	status=fail
elif ! dmesg | grep -q 'unmapped_alloc: hibernation refused'; then
	echo "FAIL: hibernation failed, but not for the unmapped pages"
	status=fail
else
	dmesg | grep 'unmapped_alloc: hibernation refused' | tail -n 1 | sed 's/^\[[^]]*\] //'
fi
section "stats with the samples loaded (non-zero counters)"
nonzero
section "decrypted caches with the samples loaded"
cat "$D/caches"
for m in virtio_like_sample its_like_sample unmapped_alloc_rust_sample unmapped_alloc_sample; do
	[ $m = unmapped_alloc_sample ] && before=$(kmem_settled)
	rmmod $m || status=fail
	if [ $m = unmapped_alloc_sample ]; then
		# unmapped_free() uncharges the cgroup the pages were charged
		# to, whoever frees them.
		shrank=$(kmem_moved $before -1)
		echo "memcg 'kernel' of the cgroup shrank by $shrank bytes when the secret pages were freed"
		if [ $shrank -lt $((64 * 4096)) ]; then
			echo "FAIL: the 64 accounted secret pages were not uncharged"
			status=fail
		fi
	fi
done
section "hibernation with no unmapped page in use (pm_test=freezer)"
if hibernate; then
	echo "hibernation let through: tasks frozen and thawed"
else
	echo "FAIL: hibernation refused with no unmapped page in use"
	status=fail
fi
echo none >/sys/power/pm_test
sleep 1
section "stats after unloading (freed pages scrubbed; blocks above the cache limit returned)"
nonzero
section "decrypted caches after unloading"
cat "$D/caches"
section "trace events recorded while the samples ran (events/unmapped_alloc)"
echo 0 >$T/events/unmapped_alloc/enable
for e in unmapped_alloc_block_convert unmapped_alloc_block_release \
	unmapped_alloc_pages unmapped_free_pages kmalloc_decrypted kfree_decrypted; do
	echo "$e $(grep -c " $e:" $T/trace)"
done
grep -m 3 ' kmalloc_decrypted:' $T/trace | sed 's/^ *//'
grep -m 2 ' unmapped_alloc_block_convert:' $T/trace | sed 's/^ *//'
section "nodes"
cat "$D/nodes"
section "reserve: a bad write is refused, a good one applies"
if echo "low=900 high=100" >"$D/reserve" 2>/dev/null; then
	echo "FAIL: low above high was accepted"
	status=fail
else
	echo "low=900 high=100 refused"
fi
echo "low=128 high=640" >"$D/reserve" || status=fail
cat "$D/reserve"
section "shrink: all free cached memory back (the background work then refills the decrypted reserve)"
echo 1 >"$D/shrink" || status=fail
cat "$D/nodes"
echo
echo "ua-run: $status"
echo "ua-run: end"
poweroff -f
