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
busybox=$(ua_busybox)
[ -x "$busybox" ] || die "busybox is missing at $busybox: run 'make setup'"

stage "making the initramfs"
root=$UA_CACHE/initramfs$UA_SUFFIX
rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
find "$UA_BUILD/mm/unmapped_alloc/samples" -name '*.ko' -exec cp {} "$root/lib/modules/" \;
ls "$root"/lib/modules/*.ko >/dev/null 2>&1 || die "sample modules were not built"
cp "$UA_ROOT/tools/testing/guest-init.sh" "$root/init"
chmod +x "$root/init"
initrd=$UA_CACHE/initramfs$UA_SUFFIX.cpio.gz
cmdline="kunit.enable=0 quiet"
log=$UA_CACHE/logs/run$UA_SUFFIX-console.log
if [ "$UA_ARCH" = arm64 ]; then
	cp "$UA_ROOT/tools/testing/guest-its.sh" "$root/guest-its.sh"
	disk=$UA_CACHE/run-disk.img
	[ -f "$disk" ] || truncate -s 16M "$disk"
	sock=$UA_CACHE/run-monitor.sock
	rm -f "$sock"
	export UA_QEMU_EXTRA="-monitor unix:$sock,server=on,wait=off
		-device pcie-root-port,id=rp1,chassis=1,slot=1
		-device pcie-root-port,id=rp2,chassis=2,slot=2
		-device pcie-root-port,id=rp3,chassis=3,slot=3
		-drive if=none,id=d0,file=$disk,format=raw
		-device virtio-blk-pci,bus=rp1,id=blk0,drive=d0
		-device virtio-rng-pci,bus=rp2,id=rng0
		-chardev null,id=cn0 -device virtio-serial-pci,bus=rp3,id=ser0
		-device virtserialport,bus=ser0.0,chardev=cn0,name=ua"
	# From early boot: every set_memory_decrypted() call and the ITS's page
	# helper (function tracer), every ITT allocation and free (events).
	cmdline="$cmdline trace_buf_size=4M ftrace=function
ftrace_filter=set_memory_decrypted,its_alloc_pages_node
trace_event=unmapped_alloc:kmalloc_decrypted,unmapped_alloc:kfree_decrypted"
	cmdline=$(echo $cmdline)
fi
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd"

stage "booting under QEMU/TCG (console: $log)"
qrc=0
"$UA_ROOT/tools/testing/qemu.sh" "$log" "$cmdline" "$initrd" &
qemu_pid=$!
if [ "$UA_ARCH" = arm64 ]; then
	# Send the monitor commands the guest asks for, each once.
	sent=0
	while kill -0 $qemu_pid 2>/dev/null; do
		mapfile -t cmds < <(tr -d '\r' <"$log" 2>/dev/null | sed -n 's/^ua-run: monitor //p')
		while [ $sent -lt ${#cmds[@]} ]; do
			echo "${cmds[$sent]}" | socat - "UNIX-CONNECT:$sock" >/dev/null ||
				echo "error: monitor command '${cmds[$sent]}' failed" >&2
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
if ! "$UA_ROOT/tools/testing/splats.sh" "$log" >"$UA_CACHE/logs/run$UA_SUFFIX-splats.txt"; then
	echo "error: kernel splats during the run:" >&2
	head -20 "$UA_CACHE/logs/run$UA_SUFFIX-splats.txt" >&2
	ok=0
fi
[ $ok = 1 ] && stage "run finished successfully"
[ $ok = 1 ]
