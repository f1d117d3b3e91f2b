#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: one boot of a kernel built like the test kernel but without its
# bug detectors (KASAN, lockdep, DEBUG_VM, DEBUG_PAGEALLOC would distort the
# baselines; generic KASAN cannot be switched off at boot). It runs every workload against
# the component and the baselines, twice (real cost, simulated CoCo cost);
# prints the tables and writes .cache/bench/results.csv and results.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# A kernel of its own, without the test kernel's bug detectors.
export UA_BUILD=$UA_CACHE/build-bench$UA_SUFFIX UA_CONFIG=bench
"$UA_ROOT/tools/testing/build.sh"

stage "making the bench initramfs"
root=$UA_CACHE/bench-initramfs$UA_SUFFIX
ua_initramfs_root "$root" "$UA_ROOT/tools/testing/bench-init.sh"
ua_guest_prog "$UA_CACHE/selftests$UA_SUFFIX/secret-load" "$UA_ROOT/tools/testing/secret-load.c"
cp "$UA_CACHE/selftests$UA_SUFFIX/secret-load" "$root/bin/"
ua_initramfs_pack "$root" "$UA_CACHE/bench-initramfs$UA_SUFFIX.cpio.gz"

out=$UA_CACHE/bench$UA_SUFFIX
mkdir -p "$out"
log=$out/console.log
stage "running the benchmark under QEMU/TCG (console: $log)"
start=$(date +%s)
# debug_pagealloc maps the direct map with 4 KiB pages; the splits are only
# visible with large pages. 2 GiB per node: the pool growth workload holds
# 256 blocks (512 MiB) on node 0.
export UA_QEMU_NODE_GIB=2
# Guest memory backed by the host from the start: otherwise the first touch of
# each page is a host page fault, paid by whichever allocator first hands out
# that page (the component's fresh 2 MiB blocks, most often), which is QEMU's
# lazy allocation, not the allocator's cost.
export UA_QEMU_PREALLOC=1
# secretmem on the component against the per-page path of 7.2, one boot
# (bench-init.sh, secret-load.c): the table and ratios, in
# .cache/bench/secretmem.md. UA_BENCH=secretmem runs only this boot.
secretmem_boot() {
	local slog=$out/console-secretmem.log
	stage "secretmem workloads (console: $slog)"
	UA_QEMU_TIMEOUT=${UA_QEMU_TIMEOUT:-900} "$UA_ROOT/tools/testing/qemu.sh" "$slog" \
		"kunit.enable=0 debug_pagealloc=off quiet ua_bench=secretmem" \
		"$UA_CACHE/bench-initramfs$UA_SUFFIX.cpio.gz"
	grep -q 'ua-bench-guest: ok' "$slog" || die "the secretmem run did not complete (see $slog)"
	python3 "$UA_ROOT/tools/testing/secretmem_report.py" "$slog" "$UA_ARCH" "$out/secretmem.md"
}
if [ "${UA_BENCH:-}" = secretmem ]; then
	secretmem_boot
	exit 0
fi
# QUICK=1: the single-CPU object workloads only, raw lines, no tables.
quick=${QUICK:+ua_bench=quick}
UA_QEMU_TIMEOUT=${UA_QEMU_TIMEOUT:-1800} "$UA_ROOT/tools/testing/qemu.sh" "$log" \
	"kunit.enable=0 debug_pagealloc=off quiet $quick" "$UA_CACHE/bench-initramfs$UA_SUFFIX.cpio.gz"
stage "benchmark finished in $(($(date +%s) - start)) s"
grep -q 'ua-bench-guest: ok' "$log" || die "the benchmark did not complete (see $log)"
if [ -n "$quick" ]; then
	grep -o 'ua-bench,quick,.*' "$log" | sed 's/^ua-bench,quick,//; s/,conversions=.*,median_ns=/ median_ns=/; s/,ops=.*,rounds=/ rounds=/'
	exit 0
fi
# The scaling curve: the multi-CPU workloads again with 1 and 4 CPUs (the
# main boot ran them with 2).
logs=("$log")
for cpus in 1 4; do
	slog=$out/console-cpus-$cpus.log
	stage "multi-CPU workloads with $cpus CPUs (console: $slog)"
	UA_QEMU_SMP=$cpus UA_QEMU_TIMEOUT=${UA_QEMU_TIMEOUT:-900} \
		"$UA_ROOT/tools/testing/qemu.sh" "$slog" \
		"kunit.enable=0 debug_pagealloc=off quiet ua_bench=scale" \
		"$UA_CACHE/bench-initramfs$UA_SUFFIX.cpio.gz"
	grep -q 'ua-bench-guest: ok' "$slog" || die "the $cpus-CPU run did not complete (see $slog)"
	logs+=("$slog")
done
python3 "$UA_ROOT/tools/testing/bench_report.py" "$out" "$UA_ARCH" "${logs[@]}"
secretmem_boot
