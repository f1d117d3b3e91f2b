#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the protected guest of 'make bench-coco': the ITS-like, churn and
# DMA workloads, whose conversions are real pKVM hypercalls here, then
# virtio-blk throughput with dma-direct and SWIOTLB on 7.2's path against
# unmapped_alloc (dma_direct.unmapped_alloc, patches/0009). The guest has
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

# virtio-blk: ROUNDS rounds of reading and of writing the whole disk, the two
# paths taking turns round by round; the real set_memory_decrypted() and
# set_memory_encrypted() calls counted by kprobe events. Each result is a
# ua-bench line as the kernel's (bench_report.py): an op is 1 MiB moved.
ROUNDS=5
P=/sys/module/dma_direct/parameters/unmapped_alloc
T=/sys/kernel/tracing
if [ -b /dev/vda ] && [ -w $P ]; then
	mib=$(($(cat /sys/block/vda/size) / 2048))
	mount -t tracefs tracefs $T
	echo 'p:ua_decrypt set_memory_decrypted' >>$T/kprobe_events
	echo 'p:ua_encrypt set_memory_encrypted' >>$T/kprobe_events
	# SWIOTLB's pools: grown for no device, and transient ones for a mapping.
	echo 'p:ua_pool_grown swiotlb_dyn_alloc' >>$T/kprobe_events
	echo 'p:ua_pool_freed swiotlb_dyn_free' >>$T/kprobe_events
	echo 1 >$T/events/kprobes/enable
	hits() { awk -v e="$1" '$1 == e { n += $2 } END { print n + 0 }' $T/kprobe_profile; }
	calls() { echo $(($(hits ua_decrypt) + $(hits ua_encrypt))); }
	# 10 ms ticks since boot.
	ticks() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
	# blk DIR: one pass over the disk; ns per MiB.
	blk() {
		sync
		echo 3 >/proc/sys/vm/drop_caches
		t0=$(ticks)
		if [ "$1" = read ]; then
			dd if=/dev/vda of=/dev/null bs=1M count=$mib 2>/dev/null
		else
			dd if=/dev/zero of=/dev/vda bs=1M count=$mib conv=fsync 2>/dev/null
		fi
		echo $((($(ticks) - t0) * 10000000 / mib))
	}
	# report WORKLOAD [OPS]: the ua-bench lines of both paths from r_stock,
	# r_comp (ns per op, one per round) and c_stock, c_comp (conversions).
	report() {
		for path in stock component; do
			if [ $path = stock ]; then
				name=dma-7.2 rounds=$r_stock conv=$c_stock
			else
				name=component rounds=$r_comp conv=$c_comp
			fi
			med=$(echo "$rounds" | tr / '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
			echo "ua-bench,pkvm,$1,$name,conversions=$conv,flushes=0,splits=0,peak_pages=0,left_pages=0,atomic_failures=0,median_ns=$med,ops=${2:-$ROUNDS},mean_ns=0,rounds=$rounds"
		done
	}
	for dir in read write; do
		r_stock= r_comp= c_stock=0 c_comp=0
		# A warm-up pass each: SWIOTLB grows its pools in the first.
		for path in stock component; do
			[ $path = stock ] && echo 0 >$P || echo 1 >$P
			blk $dir >/dev/null
		done
		i=0 g_stock=0 g_comp=0 f_stock=0 f_comp=0
		while [ $i -lt $ROUNDS ]; do
			# Which path goes first alternates, so that neither always
			# follows the other.
			order="stock component"
			[ $((i % 2)) = 1 ] && order="component stock"
			for path in $order; do
				[ $path = stock ] && echo 0 >$P || echo 1 >$P
				c0=$(calls) g0=$(hits ua_pool_grown) f0=$(hits ua_pool_freed)
				ns=$(blk $dir)
				sleep 1
				c=$(($(calls) - c0))
				g=$(($(hits ua_pool_grown) - g0)) f=$(($(hits ua_pool_freed) - f0))
				if [ $path = stock ]; then
					r_stock=$r_stock${r_stock:+/}$ns c_stock=$((c_stock + c))
					g_stock=$((g_stock + g)) f_stock=$((f_stock + f))
				else
					r_comp=$r_comp${r_comp:+/}$ns c_comp=$((c_comp + c))
					g_comp=$((g_comp + g)) f_comp=$((f_comp + f))
				fi
			done
			i=$((i + 1))
		done
		echo 1 >$P
		report virtio-blk-$dir-${mib}M $((ROUNDS * mib))
		echo "ua-bench-guest: virtio-blk-$dir: SWIOTLB pools grown, transient pools freed: dma-7.2 $g_stock, $f_stock; component $g_comp, $f_comp"
	done

	# The kernel's DMA map benchmark (CONFIG_DMA_MAP_BENCHMARK, the tree's
	# tools/dma/dma_map_benchmark): the disk's device driven by its driver
	# instead of virtio's, streaming mappings of GRANULE pages by 2 threads
	# for 2 s, bouncing through SWIOTLB. ns per op: the average map plus
	# unmap latency of a run; one run per round and path.
	dev=$(basename "$(readlink -f /sys/block/vda/device/..)")
	if [ -n "$dev" ] && [ -x /bin/dma_map_benchmark ] &&
		echo "$dev" >/sys/bus/platform/drivers/virtio-mmio/unbind &&
		echo dma_map_benchmark >/sys/bus/platform/devices/$dev/driver_override &&
		echo "$dev" >/sys/bus/platform/drivers/dma_map_benchmark/bind; then
		for g in 1 16; do
			r_stock= r_comp= c_stock=0 c_comp=0
			i=0
			while [ $i -le $ROUNDS ]; do
				for path in stock component; do
					[ $path = stock ] && echo 0 >$P || echo 1 >$P
					c0=$(calls)
					# "average map latency(us):A standard deviation:S", the same for unmap.
					ns=$(dma_map_benchmark -t 2 -s 2 -g $g -d 0 -b 64 |
						awk -F'[:a-z() ]+' '/average (map|unmap) latency/ { t += $2 } END { printf "%d", t * 1000 }')
					c=$(($(calls) - c0))
					# Round 0 is the warm-up.
					[ $i = 0 ] && continue
					if [ $path = stock ]; then
						r_stock=$r_stock${r_stock:+/}$ns c_stock=$((c_stock + c))
					else
						r_comp=$r_comp${r_comp:+/}$ns c_comp=$((c_comp + c))
					fi
				done
				i=$((i + 1))
			done
			echo 1 >$P
			report dma-map-bench-${g}p
		done
	else
		echo "ua-bench-guest: no DMA map benchmark (dma_map_benchmark driver or tool missing)"
		status=fail
	fi
	echo 0 >$T/events/kprobes/enable
else
	echo "ua-bench-guest: no virtio-blk disk or no dma_direct.unmapped_alloc: no virtio-blk figures"
	status=fail
fi
echo "ua-bench-guest: $status"
poweroff -f
