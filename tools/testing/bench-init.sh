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

# ua_bench=secretmem: secret-load's workloads on secretmem on the component
# and, in the same boot, on the per-page path (secretmem.unmapped_alloc=0):
# the component first, since the splits the per-page path makes are never
# merged back. One line per phase (before, held, after) with the direct map
# figures: x86's split counters and DirectMap lines, the function-call IPIs
# (flush_tlb_kernel_range() sends one to every other CPU), and the linear
# map's page and block sizes from ptdump.
snap() {
	printf 'ua-secretmem,%s' "$1"
	awk '/^direct_map_level[23]_splits/ { printf ",%s=%s", $1, $2 }' /proc/vmstat
	awk '/^DirectMap/ { sub(":", "", $1); printf ",%s_kB=%s", $1, $2 }' /proc/meminfo
	awk '$1 == "CAL:" { s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; printf ",cal_ipis=%d", s }' \
		/proc/interrupts
	for P in /sys/kernel/debug/kernel_page_tables /sys/kernel/debug/page_tables/kernel; do
		[ -r $P ] || continue
		# Sizes of the linear (direct) map's entries by level, in KiB.
		# (arm64: "0x...-0x...  2M PMD ... BLK ..."; x86: "... 2M ... pmd".)
		awk '/Linear Mapping start|Low Kernel Mapping/ { on = 1 }
			/Linear Mapping end|vmalloc\(\) Area/ { on = 0 }
			on && $1 ~ /^0x/ && / (RW|ro) / {
				n = $2; u = substr(n, length(n)); v = substr(n, 1, length(n) - 1) + 0
				kb = u == "K" ? v : u == "M" ? v * 1024 : u == "G" ? v * 1048576 : 0
				lvl = $3 ~ /^(PTE|PMD|PUD|P4D|PGD)$/ ? $3 : $NF
				size[tolower(lvl)] += kb
			}
			END { for (l in size) printf ",map_%s_kB=%d", l, size[l] }' $P
		break
	done
	echo
}
if grep -q 'ua_bench=secretmem' /proc/cmdline; then
	mount -t devtmpfs devtmpfs /dev
	mkdir -p /tmp
	M=/sys/module/secretmem/parameters/unmapped_alloc
	for mode in component stock; do
		[ $mode = component ] && echo 1 >$M || echo 0 >$M
		for w in "400 1" "4 2048"; do
			set -- $w
			tag="mode=$mode,procs=$1,pages=$2"
			snap "$tag,phase=before"
			rm -f /tmp/go /tmp/out && mkfifo /tmp/go
			SECRET_LOAD_WAIT=1 /bin/secret-load $1 $2 </tmp/go >/tmp/out &
			load=$!
			exec 3>/tmp/go
			until grep -q 'all faulted in' /tmp/out || ! kill -0 $load 2>/dev/null; do
				sleep 1
			done
			snap "$tag,phase=held"
			echo >&3
			exec 3>&-
			wait $load || status=fail
			sleep 2
			snap "$tag,phase=after"
			sed -n 's/^secret-load /ua-secretmem,'"$tag"',phase=times,/p' /tmp/out | tr ' ' ','
		done
	done
	echo "ua-bench-guest: $status"
	poweroff -f
fi
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
