#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make test-coco, second part: virtio-blk and virtio-rng in the pKVM
# protected guest, served by ua-vmm (coco/vmm-rs, on the rust-vmm crates)
# from the memory the guest shares: the vrings from dma-direct's coherent
# allocations (on unmapped_alloc, patches/0009; unencrypted in a protected
# guest by patches/0010), the data through SWIOTLB's bounce buffers.
#
#   coco-virtio.sh build   build ua-vmm only and print its path
#   coco-virtio.sh dts     print the device-tree nodes of the devices
#   coco-virtio.sh [run]   build ua-vmm, boot the pKVM host under QEMU/TCG
#                          (as coco.sh does) and in it a protected guest
#                          whose /init moves data through both devices
#
# A boot of its own, not coco.sh's: the guest needs swiotlb=force (streaming
# DMA bounces through the SWIOTLB pool, which 7.2 shares at boot and never
# unshares), which coco.sh's kexec sweep must not see.
#
# The host checks: the disk's first half, written by the host, reads back in
# the guest with the same SHA-256; the second half, written by the guest,
# has the guest's SHA-256 in the host's file after the run; ua-vmm's
# counters show the bytes moved both ways and from the rng, with no I/O
# error, no refused access and no ring error; no kernel splat. Then every
# virtio driver is unbound and bound again CYCLES times, with the DMA layer
# on unmapped_alloc and then on 7.2's path (dma_direct.unmapped_alloc=0),
# the real set_memory_decrypted() and set_memory_encrypted() calls counted
# by kprobe events: none on the component after a warm-up cycle, one each
# per virtqueue and cycle on 7.2's path. SWIOTLB's dynamic pools while the
# data move (a small default pool): transient pools were made, from
# unmapped_alloc, and freed with no conversion. Last, the host sweeps all
# guest memory: every page it can read with the guest's contents lies in
# SWIOTLB's pools or in unmapped_alloc's decrypted blocks (its debugfs
# "blocks"): everything else stays private. Last line
# "coco-virtio: N passed, N failed".
#
# UA_COCO_NO_BUILD=1 uses the kernel already built (no build.sh).
# UA_VIRTIO_SWIOTLB=noforce: the guest maps its data buffers in place, in
# private memory: ua-vmm must answer with I/O errors and count refused
# accesses, not crash (the checks of data then fail, as they should).
set -euo pipefail
export UA_ARCH=arm64
. "$(dirname "$0")/lib.sh"
mode=${1:-run}
case "$mode" in build|dts|run) ;; *) die "usage: coco-virtio.sh [build|dts|run]" ;; esac

COCO=$UA_CACHE/coco-virtio
# Two vCPUs, as the device tree of ua_coco_guest_dtb (lib.sh) has.
GUEST_VCPUS=2
GUEST_NODE_MIB=256
# The disk: the host fills its first half, the guest its second.
HALF_MIB=4
RNG_KIB=64
# Unbind/bind cycles of every virtio driver, per DMA path.
CYCLES=8
# ua-vmm's devices, in its command-line order: --blk /disk.img --rng.
DEVICES=(blk rng)
mkdir -p "$COCO" "$UA_CACHE/logs"

case "$mode" in
build) ua_vmm_build; exit 0 ;;
dts) ua_virtio_nodes "${DEVICES[@]}"; exit 0 ;;
esac

[ "${UA_COCO_NO_BUILD:-0}" = 1 ] || "$UA_ROOT/tools/testing/build.sh"
image=$(ua_kernel_image)
[ -f "$image" ] || die "no kernel image at $image"
grep -q '^CONFIG_VIRTIO_MMIO=y' "$UA_BUILD/.config" ||
	die "the guest kernel has no CONFIG_VIRTIO_MMIO=y (add it to tools/testing/configs/arm64.config)"
vmm=${UA_COCO_VMM:-$(ua_vmm_build)}

# The guest: busybox, and an /init that reads the host's half of the disk,
# writes its own half, reads it back past the page cache, and reads the rng.
groot=$COCO/guest-initramfs
ginit=$COCO/guest-init.sh
cat >"$ginit" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The protected guest's only console is the early console: the kernel log.
exec >/dev/kmsg 2>&1
mount -t debugfs debugfs /sys/kernel/debug
# Conversions and SWIOTLB's dynamic pools, counted by kprobe events on the
# functions (hits in kprobe_profile: every call, whoever makes it): the
# pools SWIOTLB grows for no device in particular (swiotlb_dyn_alloc, the
# worker) and the transient ones it makes for one mapping and frees from an
# RCU callback (swiotlb_dyn_free).
T=/sys/kernel/tracing
P=/sys/module/dma_direct/parameters/unmapped_alloc
D=/sys/kernel/debug/unmapped_alloc
mount -t tracefs tracefs \$T
echo 'p:ua_decrypt set_memory_decrypted' >>\$T/kprobe_events
echo 'p:ua_encrypt set_memory_encrypted' >>\$T/kprobe_events
echo 'p:ua_pool_grown swiotlb_dyn_alloc' >>\$T/kprobe_events
echo 'p:ua_pool_freed swiotlb_dyn_free' >>\$T/kprobe_events
# Where each pool is, for the sweep (struct io_tlb_pool: start, end first).
echo 'r:ua_pool swiotlb_alloc_pool start=+0(\$retval):x64 end=+8(\$retval):x64' >>\$T/kprobe_events
echo 1 >\$T/events/kprobes/enable
hits() { awk -v e="\$1" '\$1 == e { print \$2 }' \$T/kprobe_profile; }
ua_stat() { awk -v k="\$1" '\$1 == k { print \$2 }' \$D/stats; }
# "D E G F C R": set_memory_decrypted() and set_memory_encrypted() calls,
# pools grown, transient pools freed, and the conversions unmapped_alloc
# made itself (to shared, to private), since boot.
counts() {
	echo \$(hits ua_decrypt) \$(hits ua_encrypt) \$(hits ua_pool_grown) \$(hits ua_pool_freed) \\
		\$(ua_stat decrypted_conversions_to_shared) \$(ua_stat decrypted_conversions_to_private)
}
# report WHAT BEFORE: what happened since counts printed BEFORE, one line.
report() {
	# One printf: each write to /dev/kmsg is a record of its own.
	echo "\$2 \$(counts)" | awk -v w="\$1" '{
		printf "ua-virtio: %s: %d set_memory_decrypted() calls, %d set_memory_encrypted() calls, %d pools grown, %d transient pools freed, unmapped_alloc %d to shared %d to private\\n",
			w, \$7 - \$1, \$8 - \$2, \$9 - \$3, \$10 - \$4, \$11 - \$5, \$12 - \$6 }'
}
for d in /sys/bus/virtio/devices/*; do
	[ -e "\$d" ] || continue
	echo "ua-virtio: \${d##*/} device \$(cat \$d/device) driver \$(basename "\$(readlink \$d/driver)") features \$(cat \$d/features)"
done
before=\$(counts)
if [ -b /dev/vda ]; then
	echo "ua-virtio: vda \$(cat /sys/block/vda/size) sectors"
	echo "ua-virtio: read head sha256 \$(dd if=/dev/vda bs=1M count=$HALF_MIB 2>/dev/null | sha256sum | cut -d' ' -f1)"
	dd if=/dev/urandom of=/tmp/data bs=1M count=$HALF_MIB 2>/dev/null
	echo "ua-virtio: wrote tail sha256 \$(sha256sum </tmp/data | cut -d' ' -f1)"
	dd if=/tmp/data of=/dev/vda bs=1M seek=$HALF_MIB conv=fsync 2>/dev/null
	echo 3 >/proc/sys/vm/drop_caches
	echo "ua-virtio: reread tail sha256 \$(dd if=/dev/vda bs=1M skip=$HALF_MIB count=$HALF_MIB 2>/dev/null | sha256sum | cut -d' ' -f1)"
else
	echo "ua-virtio: no /dev/vda"
fi
if [ -c /dev/hwrng ]; then
	echo "ua-virtio: hwrng \$(cat /sys/class/misc/hw_random/rng_current)"
	echo "ua-virtio: hwrng read \$(timeout 60 head -c $((RNG_KIB << 10)) /dev/hwrng | wc -c) bytes"
else
	echo "ua-virtio: no /dev/hwrng"
fi
# A pool grown meanwhile: let its worker end (the count is taken on entry).
sleep 1
report "data" "\$before"

# Unbind/bind cycles, the conversions counted by the kprobe events.
cycles() {
	i=0
	while [ \$i -lt \$1 ]; do
		for d in /sys/bus/virtio/devices/*; do
			drv=\$(readlink \$d/driver)
			drv=\${drv##*/}
			echo \${d##*/} >/sys/bus/virtio/drivers/\$drv/unbind
			echo \${d##*/} >/sys/bus/virtio/drivers/\$drv/bind
		done
		i=\$((i + 1))
	done
}
# virtio-blk's request queues, and virtio-rng's one.
queues=\$((\$(ls -d /sys/block/vda/mq/* | wc -l) + 1))
for mode in component stock; do
	if [ \$mode = component ]; then echo 1 >\$P; else echo 0 >\$P; fi
	cycles 1
	dec=\$(hits ua_decrypt) enc=\$(hits ua_encrypt)
	cycles $CYCLES
	echo "ua-virtio: cycles \$mode: $CYCLES cycles, \$queues virtqueues: \$((\$(hits ua_decrypt) - dec)) set_memory_decrypted() calls, \$((\$(hits ua_encrypt) - enc)) set_memory_encrypted() calls"
done
# Back on the component, and a cycle so that the live vrings are its own.
echo 1 >\$P
cycles 1
[ -b /dev/vda ] && echo "ua-virtio: after the cycles vda reads \$(dd if=/dev/vda bs=1M skip=$HALF_MIB count=$HALF_MIB 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo 0 >\$T/events/kprobes/enable
# What may be shared now: SWIOTLB's default pool and the pools it grew, and
# unmapped_alloc's decrypted blocks (listed before and after the sweep: one
# may come or go meanwhile). The VMM's sweep lists every range it can read
# with contents the guest wrote.
dmesg | sed -n 's/.*software IO TLB: mapped \\[mem \\(0x[0-9a-f]*\\)-\\(0x[0-9a-f]*\\)\\].*/ua-virtio: swiotlb \\1 \\2/p'
sed -n 's/.* ua_pool: .* start=\\(0x[0-9a-f]*\\) end=\\(0x[0-9a-f]*\\).*/ua-virtio: swiotlb \\1 \\2/p' \$T/trace
blocks() { grep -v '^#' \$D/blocks | sed "s/^/ua-virtio: block \$1 /"; }
blocks before
i=0
while [ \$i -lt 16 ]; do
	echo "ua-coco: sweep virtio \$i/16"
	i=\$((i + 1))
done
blocks after
echo "ua-virtio: done"
poweroff -f
EOF
ua_initramfs_root "$groot" "$ginit"
mkdir -p "$groot/tmp"
guest_initrd=$COCO/guest-initramfs.cpio.gz
ua_initramfs_pack "$groot" "$guest_initrd"

# The guest's command line and device tree (lib.sh), with the devices' nodes.
# swiotlb=SLABS,force: every streaming mapping bounces through SWIOTLB,
# whose default pool 7.2 shares with the host at boot. A small one (2 MiB:
# 1024 slabs of 2 KiB) so that the data overflow it and SWIOTLB_DYNAMIC
# steps in: a transient pool for a mapping that finds no room (from
# unmapped_alloc for a device that needs unencrypted DMA, patches/0009),
# and new pools grown in the background for no device in particular. Without
# SWIOTLB_DYNAMIC the size would have to cover every mapping in flight.
# UA_COCO_GUEST_EXTRA: more for the guest's command line, as in coco.sh.
guest_cmdline="earlycon=pl011,mmio32,0x09000000 keep_bootcon panic=-1 oops=panic
	kunit.enable=0 debug_pagealloc=off printk.devkmsg=on swiotlb=${UA_VIRTIO_SWIOTLB:-1024,force}"
guest_cmdline=$(set -f; echo $guest_cmdline ${UA_COCO_GUEST_EXTRA:-})
ua_coco_guest_dtb "$COCO/guest.dtb" $GUEST_NODE_MIB "$guest_cmdline" "$guest_initrd" \
	"$(ua_virtio_nodes "${DEVICES[@]}")"

# The pKVM host: makes the disk, runs ua-vmm with the devices, hashes the disk.
hinit=$COCO/host-init.sh
cat >"$hinit" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "coco-host: \$(dmesg | grep -m 1 -o 'Protected .* initialized successfully' || echo 'pKVM NOT initialized')"
dd if=/dev/urandom of=/disk.img bs=1M count=$HALF_MIB 2>/dev/null
dd if=/dev/zero bs=1M count=$HALF_MIB 2>/dev/null >>/disk.img
echo "coco-host: disk head sha256 \$(dd if=/disk.img bs=1M count=$HALF_MIB 2>/dev/null | sha256sum | cut -d' ' -f1)"
/ua-vmm -k /Image -d /guest.dtb -i /guest-initrd.cpio.gz -m $((2 * GUEST_NODE_MIB)) -c $GUEST_VCPUS \\
	--blk /disk.img --rng
echo "coco-host: vmm exit \$?"
echo "coco-host: disk tail sha256 \$(dd if=/disk.img bs=1M skip=$HALF_MIB count=$HALF_MIB 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo "coco-host: disk sha256 \$(sha256sum /disk.img | cut -d' ' -f1)"
poweroff -f
EOF
log=$UA_CACHE/logs/coco-virtio-console.log
ua_coco_host_boot "$log" "$hinit" "$vmm" "$image" "$COCO/guest.dtb" "$guest_initrd"
qrc=$UA_COCO_QRC

console=$COCO/console.txt
tr -d '\r' <"$log" | sed 's/^\[ *[0-9.]*\] //' >"$console"
grep -E '^coco(-host)?:|^ua-vmm:|^ua-virtio:' "$console" || true
val() { sed -n "s|^$1|\\1|p" "$console" | head -1; }
# Whether every range "coco: sweep virtio: shared 0xA+N pages" is covered by
# the ranges the guest listed ("ua-virtio: swiotlb START END", END excluded;
# "ua-virtio: block WHEN decrypted NODE FIRST LAST ...", LAST included), and
# the sweep printed all its ranges.
sweep_accounted() {
	local total nr allowed=() a b r start n pos end covered
	read -r total nr < <(sed -n 's/^coco: sweep virtio: \([0-9]*\) shared pages in \([0-9]*\) ranges.*/\1 \2/p' \
		"$console" | head -1) || return 1
	[ "$total" -gt 0 ] && [ "$nr" -le 64 ] || return 1
	[ "$(grep -c '^coco: sweep virtio: shared 0x' "$console")" = "$nr" ] || return 1
	while read -r a b; do
		allowed+=("$((a)) $((b))")
	done < <(sed -n 's/^ua-virtio: swiotlb \(0x[0-9a-f]*\) \(0x[0-9a-f]*\)$/\1 \2/p' "$console"
		sed -n 's/^ua-virtio: block [a-z]* decrypted *[0-9]* *\(0x[0-9a-f]*\) *\(0x[0-9a-f]*\) .*/\1 \2+1/p' \
			"$console")
	while read -r start n; do
		pos=$((start)) end=$((start + n * 4096))
		while [ $pos -lt $end ]; do
			covered=0
			for r in "${allowed[@]}"; do
				set -- $r
				if [ $1 -le $pos ] && [ $pos -lt $2 ]; then
					pos=$2 covered=1
					break
				fi
			done
			[ $covered = 1 ] || { printf 'shared, not accounted for: 0x%x\n' $pos >&2; return 1; }
		done
	done < <(sed -n 's/^coco: sweep virtio: shared \(0x[0-9a-f]*\)+\([0-9]*\) pages.*/\1 \2/p' "$console")
}
check() { ua_check "$1" "$2"; }
t() { if eval "$1"; then echo 1; else echo 0; fi; }

# The boot itself, as test-arch.sh treats its boots: errors, not tests
# (a crash, a timeout or a kernel splat fails the part whatever it counts).
ok=1
[ "$qrc" = 0 ] || { ua_error "QEMU exited with $qrc (crash or timeout)"; ok=0; }
grep -q 'coco-host: Protected .* initialized successfully' "$console" ||
	{ ua_error "the host did not initialise pKVM in protected mode"; ok=0; }
ua_no_splats "$console" "$UA_CACHE/logs/coco-virtio-splats.txt" "the host or the guest" || ok=0
check vmm_exit_0 "$(t "grep -q 'coco-host: vmm exit 0' '$console'")"
check virtio_blk_probed "$(t "grep -qE '^ua-virtio: virtio[0-9]+ device 0x0002 driver virtio_blk' '$console'")"
check virtio_rng_probed "$(t "grep -qE '^ua-virtio: virtio[0-9]+ device 0x0004 driver virtio_rng' '$console'")"
head_host=$(val 'coco-host: disk head sha256 \([0-9a-f]*\)')
head_guest=$(val 'ua-virtio: read head sha256 \([0-9a-f]*\)')
check blk_host_to_guest "$(t '[ -n "$head_host" ] && [ "$head_host" = "$head_guest" ]')"
wrote=$(val 'ua-virtio: wrote tail sha256 \([0-9a-f]*\)')
reread=$(val 'ua-virtio: reread tail sha256 \([0-9a-f]*\)')
tail_host=$(val 'coco-host: disk tail sha256 \([0-9a-f]*\)')
check blk_guest_to_host "$(t '[ -n "$wrote" ] && [ "$wrote" = "$reread" ] && [ "$wrote" = "$tail_host" ]')"
disk_host=$(val 'coco-host: disk sha256 \([0-9a-f]*\)')
disk_vmm=$(val 'coco: virtio-blk 0: /disk.img: sha256 \([0-9a-f]*\) at exit')
check blk_vmm_sees_the_disk "$(t '[ -n "$disk_host" ] && [ "$disk_host" = "$disk_vmm" ]')"
# "coco: virtio-blk 0: N requests (...), R bytes read, W bytes written, E I/O errors, F refused"
read -r r w e f < <(sed -n 's/^coco: virtio-blk 0: .*), \([0-9]*\) bytes read, \([0-9]*\) bytes written, \([0-9]*\) I\/O errors, \([0-9]*\) refused$/\1 \2 \3 \4/p' \
	"$console" | head -1) || true
check blk_counters "$(t '[ "${r:-0}" -ge $((HALF_MIB << 20)) ] && [ "${w:-0}" -ge $((HALF_MIB << 20)) ] && [ "$e" = 0 ] && [ "$f" = 0 ]')"
read -r rb rf < <(sed -n 's/^coco: virtio-rng 1: [0-9]* requests, \([0-9]*\) bytes, \([0-9]*\) refused$/\1 \2/p' \
	"$console" | head -1) || true
check rng_counters "$(t '[ "${rb:-0}" -ge $((RNG_KIB << 10)) ] && [ "$rf" = 0 ]')"
# "coco: virtio-X I: C chains served, Q ring errors, R resets, features 0x..."
rings=$(sed -n 's/^coco: virtio-[a-z]* [0-9]*: [0-9]* chains served, \([0-9]*\) ring errors, [0-9]* resets, features \(0x[0-9a-f]*\)$/\1 \2/p' "$console")
# "ua-virtio: cycles MODE: K cycles, Q virtqueues: D set_memory_decrypted() calls, E set_memory_encrypted() calls"
cyc() { sed -n "s/^ua-virtio: cycles $1: $CYCLES cycles, \([0-9]*\) virtqueues: \([0-9]*\) set_memory_decrypted() calls, \([0-9]*\) set_memory_encrypted() calls$/\1 \2 \3/p" "$console" | head -1; }
read -r q cd ce < <(cyc component) || true
read -r sq sd se < <(cyc stock) || true
check cycles_component_no_conversion "$(t '[ -n "$q" ] && [ "$cd" = 0 ] && [ "$ce" = 0 ]')"
check cycles_stock_one_per_virtqueue "$(t '[ -n "$sq" ] && [ "$sd" = $((CYCLES * sq)) ] && [ "$se" = $((CYCLES * sq)) ]')"
check blk_after_cycles "$(t '[ -n "$wrote" ] && [ "$(val "ua-virtio: after the cycles vda reads \([0-9a-f]*\)")" = "$wrote" ]')"
# "ua-virtio: data: D set_memory_decrypted() calls, E set_memory_encrypted() calls,
# G pools grown, F transient pools freed, unmapped_alloc C to shared R to private":
# SWIOTLB's transient pools came from unmapped_alloc and went back to it with
# no conversion; only the pools grown for no device in particular were
# converted, on 7.2's path (cc_platform_has() is false in a protected VM).
read -r dd de dg df dc dr < <(sed -n 's/^ua-virtio: data: \([0-9]*\) set_memory_decrypted() calls, \([0-9]*\) set_memory_encrypted() calls, \([0-9]*\) pools grown, \([0-9]*\) transient pools freed, unmapped_alloc \([0-9]*\) to shared \([0-9]*\) to private$/\1 \2 \3 \4 \5 \6/p' \
	"$console" | head -1) || true
check swiotlb_dynamic_pools_from_component \
	"$(t '[ -n "$df" ] && [ "$df" -ge 1 ] && [ "$de" = "$dr" ] && [ $((dd - dc)) = "$dg" ]')"
check rings_shared_access_platform "$(t '[ "$(echo "$rings" | wc -l)" = 2 ] && ! echo "$rings" | grep -qv "^0 0x3"')"
# Everything else stays private: each range of shared pages the host read
# in its sweep lies in SWIOTLB's pools or in unmapped_alloc's decrypted blocks.
check sweep_only_bounce_buffers_and_decrypted_blocks "$(t sweep_accounted)"
read -r p fl s < <(ua_checks_results "$UA_CACHE/logs/coco-virtio-checks.ktap")
line="coco-virtio: $p passed, $fl failed"
[ $ok = 1 ] || line="$line (errors above)"
echo "$line"
[ "$fl" = 0 ] && [ $ok = 1 ]
