#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make run: build, boot the kernel in QEMU with a tiny busybox initramfs that
# loads the sample consumers and prints the allocator's debugfs statistics.
# On arm64 the guest also has virtio-blk, virtio-rng and virtio-serial PCI
# devices behind PCIe root ports, whose MSI-X interrupts go through the
# GICv3 ITS running on the component; this script unplugs and replugs one
# through the QEMU monitor when the guest asks.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/build.sh"

stage "making the initramfs"
root=$UA_CACHE/initramfs$UA_SUFFIX
ua_initramfs_root "$root" "$UA_ROOT/tools/testing/guest-init.sh"
mkdir -p "$root"/{tmp,lib/modules}
find "$UA_BUILD/mm/unmapped_alloc/samples" -name '*.ko' -exec cp {} "$root/lib/modules/" \;
ls "$root"/lib/modules/*.ko >/dev/null 2>&1 || die "sample modules were not built"
initrd=$UA_CACHE/initramfs$UA_SUFFIX.cpio.gz
cmdline="kunit.enable=0 quiet"
log=$UA_CACHE/logs/run$UA_SUFFIX-console.log
if [ "$UA_ARCH" = arm64 ]; then
	cp "$UA_ROOT/tools/testing/guest-its.sh" "$root/guest-its.sh"
	disk=$UA_CACHE/run-disk.img
	[ -f "$disk" ] || truncate -s 16M "$disk"
	sock=$UA_CACHE/run-monitor.sock
	vport_out=$UA_CACHE/run-vport.out
	rm -f "$sock" "$vport_out"
	export UA_QEMU_EXTRA="-monitor unix:$sock,server=on,wait=off
		-device pcie-root-port,id=rp1,chassis=1,slot=1
		-device pcie-root-port,id=rp2,chassis=2,slot=2
		-device pcie-root-port,id=rp3,chassis=3,slot=3
		-drive if=none,id=d0,file=$disk,format=raw,readonly=on
		-device virtio-blk-pci,bus=rp1,id=blk0,drive=d0
		-device virtio-rng-pci,bus=rp2,id=rng0
		-chardev file,id=cn0,path=$vport_out -device virtio-serial-pci,bus=rp3,id=ser0
		-device virtserialport,bus=ser0.0,chardev=cn0,name=ua"
	# From early boot: every set_memory_decrypted() call and the ITS's page
	# helper (function tracer), every ITT allocation and free (events).
	cmdline="$cmdline trace_buf_size=4M ftrace=function
ftrace_filter=set_memory_decrypted,its_alloc_pages_node
trace_event=unmapped_alloc:kmalloc_decrypted,unmapped_alloc:kfree_decrypted"
	cmdline=$(echo $cmdline)
fi
ua_initramfs_pack "$root" "$initrd"

stage "booting under QEMU/TCG (console: $log)"
# A stale log would replay the previous run's monitor requests.
rm -f "$log"
qrc=0
"$UA_ROOT/tools/testing/qemu.sh" "$log" "$cmdline" "$initrd" &
qemu_pid=$!
# However this script ends, it leaves no QEMU behind: qemu.sh's child
# (timeout) passes the signal on to QEMU.
stop_qemu() {
	pkill -TERM -P "$qemu_pid" 2>/dev/null || true
	kill "$qemu_pid" 2>/dev/null || true
}
trap stop_qemu EXIT
# One monitor command, retried while QEMU refuses it (a device_add of an id
# whose unplug QEMU has not finished yet).
monitor() {
	local out i
	for i in $(seq 30); do
		# Neither a failed connection nor an error reply counts as sent.
		if out=$(echo "$1" | socat - "UNIX-CONNECT:$sock" 2>&1 | tr -d '\r') &&
			! grep -qi 'error' <<<"$out"; then
			return 0
		fi
		sleep 1
	done
	echo "error: monitor command '$1' refused: $(grep -i error <<<"$out" | head -n 1)" >&2
}
if [ "$UA_ARCH" = arm64 ]; then
	# Send the monitor commands the guest asks for, each once.
	sent=0
	while kill -0 $qemu_pid 2>/dev/null; do
		[ -f "$log" ] || { sleep 1; continue; }
		mapfile -t cmds < <(tr -d '\r' <"$log" | sed -n 's/^ua-run: monitor //p')
		while [ $sent -lt ${#cmds[@]} ]; do
			monitor "${cmds[$sent]}"
			sent=$((sent + 1))
		done
		sleep 1
	done
fi
wait $qemu_pid || qrc=$?
# Show what the guest printed, without the kernel's boot chatter.
sed -n '/^ua-run: begin/,/^ua-run: end/p' "$log" | tr -d '\r'
ok=1
[ "$qrc" = 0 ] || { echo "error: QEMU exited with $qrc" >&2; ok=0; }
grep -q '^ua-run: ok' "$log" || { echo "error: the guest did not finish its run" >&2; ok=0; }
if [ "$UA_ARCH" = arm64 ]; then
	if grep -q '^ua-run: hello through' "$vport_out" 2>/dev/null; then
		echo "host: the guest's virtio-serial write arrived: $(head -n 1 "$vport_out")"
	else
		echo "error: nothing arrived through virtio-serial" >&2
		ok=0
	fi
fi
# Known, outside the component: 7.2's pciehp takes pci_rescan_remove_lock
# under its reset_lock on hot-unplug, which lockdep reports as a possible
# circular dependency. Such a report is set aside (and shown) only if none
# of the component's code is in it.
checked=$UA_CACHE/logs/run$UA_SUFFIX-checked.log
tr -d '\r' <"$log" | awk '
/WARNING: possible circular locking dependency detected/ { inblk = 1; blk = ""; }
inblk && ($0 ~ /^ua-run:|^device |^--- / || n++ > 200) { flush() }
inblk { blk = blk $0 "\n"; next }
{ print }
function flush() {
	if (blk ~ /pci_rescan_remove_lock/ && blk ~ /reset_lock/ && blk ~ /pciehp_ist/ &&
	    blk !~ /unmapped_alloc|decrypted|_RN/) {
		print "known pciehp lockdep report (not the component) set aside" > "/dev/stderr"
	} else {
		printf "%s", blk
	}
	inblk = 0; n = 0
}
END { if (inblk) printf "%s", blk }' >"$checked"
ua_no_splats "$checked" "$UA_CACHE/logs/run$UA_SUFFIX-splats.txt" "the run" || ok=0
[ $ok = 1 ] && stage "run finished successfully"
[ $ok = 1 ]
