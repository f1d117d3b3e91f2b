#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the built kernel under QEMU (TCG: KVM is not usable on the CI machines),
# with two NUMA nodes of 1 GiB and one CPU each.
# Usage: qemu.sh LOG "CMDLINE" [INITRD]
# UA_QEMU_EXTRA adds QEMU arguments (devices, a monitor socket).
# UA_QEMU_NODE_GIB sets the memory per node (default 1).
# UA_QEMU_SMP sets the number of CPUs (default 2), split between the nodes
# (one CPU: node 1 has memory only).
# UA_QEMU_PREALLOC=1 backs all guest memory with host memory before the guest
# starts, so that the first touch of a page costs no host page fault.
# UA_QEMU_EL2=1 (arm64) boots the kernel at EL2 (virt,virtualization=on), as
# a KVM host ('make test-coco').
# UA_KERNEL_APPEND is added to every boot's kernel command line (for
# instance unmapped_alloc.mutant=N, to see which checks a deliberate bug of
# rust/mutant.rs makes fail).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

log=$1 cmdline=$2 initrd=${3:-}
timeout_s=${UA_QEMU_TIMEOUT:-900}
kernel=$(ua_kernel_image)
[ -f "$kernel" ] || die "no kernel image at $kernel: run the build first"
node_gib=${UA_QEMU_NODE_GIB:-1}
smp=${UA_QEMU_SMP:-2}
half=$(((smp + 1) / 2))
prealloc=
[ "${UA_QEMU_PREALLOC:-0}" = 1 ] && prealloc=,prealloc=on
cpus() { if [ "$1" = "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }
node1=(-numa node,nodeid=1,memdev=mem1)
[ "$smp" -gt 1 ] && node1=(-numa "node,nodeid=1,cpus=$(cpus "$half" $((smp - 1))),memdev=mem1")
args=(-accel tcg -nodefaults -nographic -no-reboot -serial stdio
	-smp "$smp,sockets=$smp,cores=1,threads=1" -m $((2 * node_gib))G
	-object memory-backend-ram,id=mem0,size=${node_gib}G$prealloc
	-object memory-backend-ram,id=mem1,size=${node_gib}G$prealloc
	-numa "node,nodeid=0,cpus=$(cpus 0 $((half - 1))),memdev=mem0"
	"${node1[@]}"
	-kernel "$kernel")
case "$UA_ARCH" in
x86_64)
	qemu=qemu-system-x86_64
	[ -f /usr/share/qemu/qboot.rom ] && args+=(-bios qboot.rom)
	# No LA57: under TCG '-cpu max' offers 5-level paging, and until
	# alternatives are patched pgtable_l5_enabled() reads the capability
	# bits that identify_cpu() memsets with interrupts on, so an IRQ in that
	# window sees a 5-level direct-map address as wild to KASAN.
	args+=(-cpu max,la57=off)
	console=ttyS0 ;;
arm64)
	qemu=qemu-system-aarch64
	# GICv3 with an ITS (QEMU's default for virt with gic-version=3).
	# pauth-impdef: QEMU's cheap pointer authentication algorithm; the
	# architected one makes every function return slow under TCG.
	machine=virt,gic-version=3
	[ "${UA_QEMU_EL2:-0}" = 1 ] && machine=$machine,virtualization=on
	args+=(-machine $machine -cpu max,pauth-impdef=on)
	console=ttyAMA0 ;;
esac
command -v $qemu >/dev/null || die "$qemu not found: run 'make setup'"
# shellcheck disable=SC2206 # word splitting of the extra arguments is wanted
args+=(${UA_QEMU_EXTRA:-})
args+=(-append "console=$console panic=-1 oops=panic debug_pagealloc=on $cmdline ${UA_KERNEL_APPEND:-}")
[ -n "$initrd" ] && args+=(-initrd "$initrd")
rc=0
timeout --foreground "$timeout_s" $qemu "${args[@]}" </dev/null >"$log" 2>&1 || rc=$?
if [ $rc = 124 ]; then
	echo "error: QEMU timed out after ${timeout_s}s (log: $log)" >&2
fi
exit $rc
