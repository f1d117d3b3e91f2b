#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the built kernel under QEMU (TCG: KVM is not usable on the CI machines),
# with two NUMA nodes and two CPUs. Usage: qemu.sh LOG "CMDLINE" [INITRD]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

log=$1 cmdline=$2 initrd=${3:-}
timeout_s=${UA_QEMU_TIMEOUT:-900}
bios=()
[ -f /usr/share/qemu/qboot.rom ] && bios=(-bios qboot.rom)
args=(-accel tcg -nodefaults -nographic -no-reboot -serial stdio "${bios[@]}"
	-cpu max -smp 2,sockets=2,cores=1,threads=1 -m 2G
	-object memory-backend-ram,id=mem0,size=1G
	-object memory-backend-ram,id=mem1,size=1G
	-numa node,nodeid=0,cpus=0,memdev=mem0
	-numa node,nodeid=1,cpus=1,memdev=mem1
	-kernel "$UA_BUILD/arch/x86/boot/bzImage"
	-append "console=ttyS0 panic=-1 oops=panic debug_pagealloc=on $cmdline")
[ -n "$initrd" ] && args+=(-initrd "$initrd")
rc=0
timeout --foreground "$timeout_s" qemu-system-x86_64 "${args[@]}" </dev/null >"$log" 2>&1 || rc=$?
if [ $rc = 124 ]; then
	echo "error: QEMU timed out after ${timeout_s}s (log: $log)" >&2
fi
exit $rc
