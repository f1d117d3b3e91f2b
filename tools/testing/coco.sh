#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make test-coco: the KUnit suites inside a real confidential guest.
# make bench-coco (coco.sh bench): the ITS-like, churn and DMA workloads
# there, and virtio-blk throughput on 7.2's DMA path against unmapped_alloc.
#
# QEMU (TCG, virt with EL2 and a GICv3) boots the arm64 test kernel as a pKVM
# host (kvm-arm.mode=protected). Its initramfs holds ua-vmm (coco/vmm-rs,
# Rust on the rust-vmm crates, built static here), the same kernel
# Image and a device tree; ua-vmm runs that kernel as a protected VM whose
# set_memory_decrypted/encrypted() are pKVM MEM_SHARE/MEM_UNSHARE hypercalls.
# The guest runs the suites that touch the platform: unmapped_alloc_sys (the
# direct map and encryption primitives), unmapped_alloc_real_backend (the
# global instances on the real backend) and unmapped_alloc_coco, which asks
# the VMM to read its shared and private memory (coco/ua_coco.h); then it
# kexecs into the same kernel (kexec-init.sh) while the samples hold shared
# memory, and the VMM sweeps all guest memory before and after. The other
# suites test the allocators above those primitives, on the model backend or
# the guest's own direct map, which a protected VM does not change: they run
# in the arm64 boot of make test, not here again (in nested TCG they took
# 400 s more, the pages suite alone 131 s).
#
# Last line: "coco: N passed, N failed". Exit status non-zero on a failed or
# skipped coco test, a failed suite, a host check line that is not all-good,
# a crash, a timeout or a kernel splat. In bench mode the guest is the bench
# kernel with a busybox initramfs, and the result is a table.
set -euo pipefail
export UA_ARCH=arm64
. "$(dirname "$0")/lib.sh"
mode=${1:-test}
case "$mode" in test|bench) ;; *) die "usage: coco.sh [test|bench]" ;; esac

COCO=$UA_CACHE/coco
# Two vCPUs, as the device tree of ua_coco_guest_dtb (lib.sh) has.
GUEST_VCPUS=2
# Two NUMA nodes. The test guest's suites need little memory, and its boot
# time grows with it (KASAN shadow and struct pages, every page of them a
# stage-2 fault the host serves): 768 MiB per node booted in 258 s.
GUEST_NODE_MIB=256
[ "$mode" = bench ] && GUEST_NODE_MIB=768
# The bench guest's virtio-blk disk (ua-vmm --blk on a file of the host).
BENCH_DISK_MIB=32
mkdir -p "$COCO" "$UA_CACHE/logs"

# The host is always the test kernel; in bench mode the guest is the bench
# kernel (both configurations have KVM and ARM_PKVM_GUEST, arm64.config).
"$UA_ROOT/tools/testing/build.sh"
host_image=$(ua_kernel_image)
guest_image=$host_image
if [ "$mode" = bench ]; then
	UA_BUILD=$UA_CACHE/build-bench$UA_SUFFIX UA_CONFIG=bench "$UA_ROOT/tools/testing/build.sh"
	guest_image=$(UA_BUILD=$UA_CACHE/build-bench$UA_SUFFIX; ua_kernel_image)
fi

# The VMM (lib.sh).
vmm=$(ua_vmm_build)
src=$UA_ROOT/tools/testing/coco

# The guest's initramfs. In test mode, after the suites, the guest kexecs
# into the same kernel (kexec-init.sh, as in the arm64 boot of make test) and
# the VMM sweeps its memory on both sides of the kexec.
if [ "$mode" = bench ]; then
	groot=$COCO/bench-guest-initramfs
	guest_initrd=$groot.cpio.gz
	ua_initramfs_root "$groot" "$src/bench-guest-init.sh"
	mkdir -p "$groot/tmp"
	# The tree's DMA map benchmark tool (tools/dma), for the guest.
	ua_guest_prog "$UA_CACHE/selftests$UA_SUFFIX/dma_map_benchmark" \
		"$UA_KSRC/tools/dma/dma_map_benchmark.c" -D__EXPORTED_HEADERS__ -I"$UA_KSRC/include/uapi"
	cp "$UA_CACHE/selftests$UA_SUFFIX/dma_map_benchmark" "$groot/bin/"
	ua_initramfs_pack "$groot" "$guest_initrd"
else
	guest_initrd=$(ua_kexec_initrd)
fi
# The guest's command line and device tree (lib.sh).
guest_cmdline="earlycon=pl011,mmio32,0x09000000 keep_bootcon panic=-1 oops=panic"
if [ "$mode" = test ]; then
	# No software IO TLB: 7.2 shares its default pool at boot and never
	# unshares it, not even across kexec; with it the sweep after the kexec
	# would see the stock kernel's shared pages, not the component's.
	# The suites that touch the platform: unmapped_alloc_coco, _real_backend
	# and _sys; not the allocator suites (b, d, p), nor _caught ([!a]), whose
	# KASAN reports want a boot of their own.
	guest_cmdline="$guest_cmdline debug_pagealloc=on ua_coco=1 swiotlb=noforce
		printk.devkmsg=on kunit.filter_glob=unmapped_alloc_[!bdp][!a]*"
else
	# A virtio-blk whose data bounce through SWIOTLB, whose default pool
	# is small so that SWIOTLB_DYNAMIC makes pools (coco-virtio.sh).
	guest_cmdline="$guest_cmdline kunit.enable=0 debug_pagealloc=off swiotlb=1024,force"
fi
# UA_COCO_GUEST_EXTRA: more for the guest's command line (for instance
# unmapped_alloc.mutant=N, a deliberate bug of rust/mutant.rs).
guest_cmdline=$(set -f; echo $guest_cmdline ${UA_COCO_GUEST_EXTRA:-})
nodes=
[ "$mode" = bench ] && nodes=$(ua_virtio_nodes blk)
ua_coco_guest_dtb "$COCO/guest.dtb" $GUEST_NODE_MIB "$guest_cmdline" "$guest_initrd" "$nodes"

printf 'COCO_MEM_MIB=%d\nCOCO_VCPUS=%d\n' $((2 * GUEST_NODE_MIB)) $GUEST_VCPUS >"$COCO/coco.env"
[ "$mode" = bench ] && printf 'COCO_DISK_MIB=%d\n' $BENCH_DISK_MIB >>"$COCO/coco.env"
log=$UA_CACHE/logs/coco-$mode-console.log
ua_coco_host_boot "$log" "$src/host-init.sh" "$vmm" "$guest_image" "$COCO/guest.dtb" "$guest_initrd" \
	"$COCO/coco.env"
qrc=$UA_COCO_QRC

ok=1
console=$COCO/$mode-console.txt
tr -d '\r' <"$log" >"$console"
grep -E '^coco(-host)?:|^ua-vmm:' "$console" || true
[ "$qrc" = 0 ] || { ua_error "QEMU exited with $qrc (crash or timeout)"; ok=0; }
grep -q 'coco-host: Protected .* initialized successfully' "$console" ||
	{ ua_error "the host did not initialise pKVM in protected mode"; ok=0; }
grep -q 'coco-host: vmm exit 0' "$console" ||
	{ ua_error "the VMM did not end with the guest powering off"; ok=0; }

if [ "$mode" = bench ]; then
	grep -q 'ua-bench-guest: ok' "$console" ||
		{ ua_error "the benchmark did not complete in the guest"; ok=0; }
	ua_no_splats "$console" "$UA_CACHE/logs/coco-bench-splats.txt" "the host or the guest" || ok=0
	[ $ok = 1 ] || exit 1
	python3 "$UA_ROOT/tools/testing/bench_report.py" "$COCO" arm64 "$console"
	exit 0
fi

parsed=$UA_CACHE/logs/coco-parsed.txt
read -r passed failed skipped < <(ua_kunit_results "$console" "$parsed")
[ $((passed + failed)) -gt 0 ] || { ua_error "no test ran in the protected guest"; ok=0; }
# The point of the exercise: the coco suite ran (not skipped) and every host
# check line says all shared pages read, no private page read.
for t in host_reads_only_shared_memory freed_shared_memory_is_private_again; do
	grep -qE "^ *ok [0-9]+ $t\$" "$console" ||
		{ ua_error "$t did not pass in the protected guest"; ok=0; }
done
checks=$(grep -c '^coco: host read' "$console" || true)
bad=$(awk '/^coco: host read / {
	split($4, s, "/"); split($7, p, "/");
	if (s[1] != s[2] || p[1] != 0) n++ } END { print n + 0 }' "$console")
[ "$checks" -ge 3 ] || { ua_error "only $checks host checks ran (expected 3)"; ok=0; }
[ "$bad" = 0 ] || { ua_error "$bad host checks saw private memory or missed shared memory"; ok=0; }
# The kexec in the protected guest: the checks of the arm64 kexec boot, and
# the host's sweeps of guest memory. Before the kexec the host must read
# exactly the pages the component holds shared (the same count before and
# after the sweep, and not 0); in the second kernel none of those pages: all
# were made private again. The second kernel itself keeps no reserve; what
# else the host reads then is the stock kernel's (its DMA atomic pool,
# decrypted at boot, never re-encrypted) and is only shown.
kexec_ok=1
ua_kexec_check "$console" || kexec_ok=0
grep -E '^coco: sweep|ua-kexec: shared' "$console" | sed 's/^\[[^]]*\] //' || true
held=$(sed -n 's/.*ua-kexec: shared by the component \(before\|after\) the sweep: \([0-9]*\) pages.*/\2/p' \
	"$console" | sort -u)
seen=$(sed -n 's/^coco: sweep before-kexec: \([0-9]*\) shared pages.*/\1/p' "$console")
after=$(sed -n 's/^coco: sweep second-kernel: \([0-9]*\) of \([0-9]*\) last-sweep pages.*/\1 \2/p' \
	"$console")
if [ -z "$seen" ] || [ -z "$held" ] || [ "$seen" != "$held" ] || [ "$seen" = 0 ]; then
	ua_error "before the kexec the host read ${seen:-?} pages, the component held ${held//$'\n'/ then } shared"
	kexec_ok=0
fi
if [ -z "$seen" ] || [ "$after" != "0 $seen" ]; then
	ua_error "after the kexec the host still read ${after% *} of the ${after#* } pages shared before"
	kexec_ok=0
fi
ua_check kexec_in_protected_guest $kexec_ok
read -r cp cf cs < <(ua_checks_results "$UA_CACHE/logs/coco-checks.ktap")
passed=$((passed + cp)) failed=$((failed + cf)) skipped=$((skipped + cs))
ua_no_splats "$console" "$UA_CACHE/logs/coco-splats.txt" "the host or the guest" || ok=0
[ "$failed" = 0 ] || ok=0
line="coco: $passed passed, $failed failed"
[ "$skipped" = 0 ] || line="$line, $skipped skipped"
[ $ok = 1 ] || line="$line (errors above)"
echo "$line"
[ $ok = 1 ]
