#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make torture: boot the test kernel (UA_ARCH) with the built-in torture test
# for DURATION seconds (default 600): worker kthreads on every API, hard-IRQ
# allocations, CPU hotplug, a memory hog driving reclaim, 1% of conversions
# and direct map changes failed by fail_unmapped_alloc, and a hostile host
# writing all shared memory (decrypted memory on the model backend). KASAN,
# lockdep and DEBUG_PAGEALLOC watch; kmemleak scans at the end.
# UA_TORTURE_ARGS adds unmapped_alloc_torture.* parameters.
# Last line: "ARCH: torture: N ops, N hotplug, N reclaim, N injected,
# N leaked, N errors"; exits non-zero on any error, leak report, splat,
# crash or timeout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

duration=${DURATION:-600}
[[ $duration =~ ^[1-9][0-9]*$ ]] || die "DURATION=$duration: seconds, above 0"
"$UA_ROOT/tools/testing/build.sh"

initrd=$(ua_kmemleak_initrd)

log=$UA_CACHE/logs/torture$UA_SUFFIX.log
# watermark_scale_factor: 10% of memory between the watermarks, the room
# the others allocate in while the hog holds all down to the low one.
cmdline="kunit.enable=0 unmapped_alloc.decrypted_model=1 sysctl.vm.watermark_scale_factor=1000
unmapped_alloc_torture.duration=$duration
unmapped_alloc_torture.inject_percent=1 unmapped_alloc_torture.inject_sites=3
${UA_TORTURE_ARGS:-}"
# Under KMSAN every instrumented C access costs tens of times more: at the
# default rate the hard-IRQ allocations (each zero-checked) take all of TCG's
# time and the workers starve; and a CPU hotplug takes so long that one is
# nearly always in progress, and whatever needs the hotplug lock waits. The
# memory hog does not get through a round in a minute (it fills memory
# that KMSAN's metadata triples), so it stays home. And the KMSAN kernel has
# no kmemleak.
leakcheck=1
if [ "${UA_VARIANT:-}" = kmsan ]; then
	cmdline="$cmdline unmapped_alloc_torture.irq_interval_us=50000 unmapped_alloc_torture.onoff_interval=3000 unmapped_alloc_torture.hog=0"
	# KMSAN keeps two bytes of metadata per byte: 2 GiB leave 600 MiB.
	export UA_QEMU_NODE_GIB=${UA_QEMU_NODE_GIB:-3}
	leakcheck=0
fi
stage "torture for $duration s under QEMU/TCG (console: $log)"
start=$(date +%s)
qrc=0
UA_QEMU_TIMEOUT=$((duration + 900)) "$UA_ROOT/tools/testing/qemu.sh" "$log" "$(echo $cmdline)" "$initrd" || qrc=$?
stage "QEMU finished in $(($(date +%s) - start)) s (exit $qrc)"

ok=1
grep -E 'unmapped_alloc torture: (stats|end):' "$log" | sed -E 's/^\[[^]]*\] //' >&2 || true
line=$(grep -oE 'torture: [0-9]+ ops, .*' "$log" | tr -d '\r' | tail -n 1 || true)
if [ -z "$line" ]; then
	echo "error: the torture run did not finish" >&2; ok=0; line="torture: did not finish"
elif ! [[ $line =~ ,\ 0\ errors$ ]]; then
	echo "error: the torture run found errors" >&2
	grep -E 'torture: ERROR' "$log" | head -20 >&2 || true
	ok=0
fi
if [ $leakcheck = 0 ]; then
	leaks="kmemleak: not in this kernel"
elif ! leaks=$(ua_kmemleak_result "$log"); then
	echo "error: $leaks" >&2
	ok=0
fi
if [ "$qrc" != 0 ]; then echo "error: QEMU exited with $qrc (crash or timeout)" >&2; ok=0; fi
if ! grep -q 'reboot: Restarting system' "$log"; then
	echo "error: the guest did not reach its end (crash?)" >&2; ok=0
fi
ua_no_splats "$log" "$UA_CACHE/logs/splats$UA_SUFFIX-torture.txt" "the torture boot" || ok=0
echo "$UA_ARCH: $line, $leaks"
[ $ok = 1 ]
