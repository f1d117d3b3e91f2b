#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The KUnit suites on one architecture (UA_ARCH): build, boot under QEMU,
# parse the KTAP output, reject kernel splats. A second boot runs the Rust
# API's documentation examples. On arm64 a third boot with
# rodata=noalias and without debug_pagealloc, where set_direct_map_*() does
# nothing, checks that the unmapped allocator refuses instead of handing out
# mapped pages, and the make run boot checks the ITS with MSI-X devices.
# Last line: "ARCH: N passed, N failed[, N skipped]".
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/build.sh"
total_p=0 total_f=0 total_s=0 ok=1

# boot NAME CMDLINE [INITRD [kmemleak|kmemleak-lost]]: one boot; adds its
# counts to the totals. With an initramfs, its /init runs after the KUnit
# suites and ends the run with a reboot; with the kmemleak one, it scans for
# leaks first: none may be found ('kmemleak'), or exactly the object that
# unmapped_alloc_caught loses on purpose ('kmemleak-lost'). Without one,
# KUnit reboots when done.
boot() {
	local name=$1 cmdline=$2 initrd=${3:-} leakcheck=${4:-}
	local log=$UA_CACHE/logs/kunit$UA_SUFFIX-$name.log
	local parsed=$UA_CACHE/logs/kunit$UA_SUFFIX-$name-parsed.txt
	local qrc=0 start passed failed skipped
	stage "KUnit under QEMU/TCG, $name boot (console: $log)"
	start=$(date +%s)
	[ -n "$initrd" ] || cmdline="kunit_shutdown=reboot $cmdline"
	"$UA_ROOT/tools/testing/qemu.sh" "$log" "$cmdline" $initrd || qrc=$?
	stage "QEMU finished in $(($(date +%s) - start)) s (exit $qrc)"
	read -r passed failed skipped < <(ua_kunit_results "$log" "$parsed")
	if [ "$qrc" != 0 ]; then ua_error "QEMU exited with $qrc (crash or timeout)"; ok=0; fi
	if ! grep -q 'reboot: Restarting system' "$log"; then
		ua_error "the kernel did not reach KUnit shutdown (crash?)"; ok=0
	fi
	if [ $((passed + failed)) = 0 ]; then ua_error "no test ran in the $name boot"; ok=0; fi
	ua_no_splats "$log" "$UA_CACHE/logs/splats$UA_SUFFIX-$name.txt" "the $name boot" || ok=0
	if [ "$leakcheck" = kmemleak ]; then
		if leaks=$(ua_kmemleak_result "$log"); then
			echo "$leaks after the $name boot" >&2
		else
			ua_error "$leaks after the $name boot"
			ok=0
		fi
	elif [ "$leakcheck" = kmemleak-lost ]; then
		local lost=1
		leaks=$(ua_kmemleak_lost "$log") || lost=0
		echo "$leaks, in the $name boot" >&2
		ua_check kmemleak_reports_lost_object $lost
	fi
	total_p=$((total_p + passed)) total_f=$((total_f + failed)) total_s=$((total_s + skipped))
	LAST_LOG=$log
}

kmemleak_initrd=$(ua_kmemleak_initrd)
# The KMSAN kernel has no kmemleak (configs/kmsan.config): no leak checks.
leakcheck=kmemleak lostcheck=kmemleak-lost
[ "${UA_VARIANT:-}" = kmsan ] && leakcheck= lostcheck=
# Every suite of the component but unmapped_alloc_coco, which needs a pKVM
# protected VM and its host (make test-coco) and would only skip here, and
# unmapped_alloc_caught, next.
# After them its /init runs the kernel's memfd_secret selftest against
# secretmem on the component (patches/0007), each of its tests a check.
boot suites "kunit.filter_glob=${UA_FILTER:-unmapped_alloc_[!c]*} ua_memfd_secret" "$kmemleak_initrd" $leakcheck
[ -n "${UA_FILTER:-}" ] || ua_memfd_secret_checks "$LAST_LOG"
# The bug detectors on the component's memory: KASAN reports each bad access
# the suite makes (once per boot without kasan_multi_shot), and kmemleak the
# object it loses. A boot of its own: a KASAN report taints the kernel and
# turns lockdep off.
if [ -z "${UA_FILTER:-}" ]; then
	boot caught "kunit.filter_glob=unmapped_alloc_caught kasan_multi_shot caught_test.lose_object=1" \
		"$kmemleak_initrd" $lostcheck
fi
# The examples of the Rust API (kernel::unmapped_alloc), which
# CONFIG_RUST_KERNEL_DOCTESTS turns into KUnit cases; the other kernel
# crate examples are not this component's to run. After them the same boot
# kexecs (kexec-init.sh): with the samples' unmapped pages and decrypted
# objects in use, kexec_file_load() the same kernel and reboot into it. The
# first kernel's unshare-all (after the devices are shut down) must convert
# the decrypted blocks back with no failure, and the second kernel must come
# up with nothing leaked or failed. One check (ua_check).
# On arm64 without LPIs: the GICv3 redistributors keep using the first
# kernel's LPI property and pending tables (LPIs cannot be turned off once on),
# and only EFI's persistent memory reservations tell the second kernel where
# they are. QEMU's -kernel boot has no EFI, so kexec_file_load() may put the
# second kernel over them: its GIC driver then resets the property table it
# finds there, writing 0xc2 (priority 0xc0, group 1) over its own text.
kexec_cmdline=
[ "$UA_ARCH" = arm64 ] && kexec_cmdline="irqchip.gicv3_nolpi=1"
if [ -z "${UA_FILTER:-}" ]; then
	boot doctests-kexec "kunit.filter_glob=rust_doctests_kernel.rust_doctest_kernel_unmapped_alloc_rs_* $kexec_cmdline" \
		"$(ua_kexec_initrd)"
	kexec_ok=1
	ua_kexec_check "$LAST_LOG" || { kexec_ok=0; echo "the kexec boot's log: $LAST_LOG" >&2; }
	ua_check kexec $kexec_ok
fi
if [ "$UA_ARCH" = arm64 ] && [ -z "${UA_FILTER:-}" ]; then
	boot no-direct-map "rodata=noalias debug_pagealloc=off \
kunit.filter_glob=unmapped_alloc_real_backend.global_unmapped_follows_can_set_direct_map"
	# The test took its refusing branch: the boot really had no direct map changes.
	if ! grep -q 'can_set_direct_map: no, unmapped pages refused' "$LAST_LOG" ||
		! grep -q 'unmapped pages disabled: set_direct_map' "$LAST_LOG"; then
		ua_error "the rodata=noalias boot did not refuse unmapped pages"
		ok=0
	fi
fi
# The real GICv3 ITS driver on the component, with MSI-X devices behind it:
# the make run boot, whose guest fails unless the interrupt counts rise, the
# ITTs sit in kmalloc-decrypted-*, and an unplug and replug through the QEMU
# monitor frees and re-allocates the ITT. One check (ua_check).
if [ "$UA_ARCH" = arm64 ] && [ -z "${UA_FILTER:-}" ]; then
	its_log=$UA_CACHE/logs/its-devices$UA_SUFFIX.log
	stage "the ITS with MSI-X devices, hot-unplug and replug (log: $its_log)"
	if "$UA_ROOT/tools/testing/run.sh" >"$its_log" 2>&1; then
		grep -E '^(ITS MSI-X interrupts|device |converted ITS)' "$its_log" || true
		ua_check its_devices 1
	else
		grep -E 'FAIL|error' "$its_log" | head -20 >&2 || true
		echo "the ITS device boot's log: $its_log" >&2
		ua_check its_devices 0
	fi
fi
# The torture test for a minute (make torture runs it for ten): one check.
if [ -z "${UA_FILTER:-}" ] && [ "${UA_TORTURE:-1}" != 0 ]; then
	torture_out=$UA_CACHE/logs/torture$UA_SUFFIX-summary.txt
	if DURATION=${UA_TORTURE_DURATION:-60} "$UA_ROOT/tools/testing/torture.sh" >"$torture_out" 2>&1; then
		tail -n 1 "$torture_out"
		ua_check torture 1
	else
		tail -n 25 "$torture_out" >&2
		echo "the torture run's log: $UA_CACHE/logs/torture$UA_SUFFIX.log" >&2
		ua_check torture 0
	fi
fi
# The checks above, counted from their KTAP document like the suites.
read -r passed failed skipped < <(ua_checks_results "$UA_CACHE/logs/checks$UA_SUFFIX.ktap")
total_p=$((total_p + passed)) total_f=$((total_f + failed)) total_s=$((total_s + skipped))
[ "$total_f" = 0 ] || ok=0
line="$UA_ARCH: $total_p passed, $total_f failed"
[ "$total_s" = 0 ] || line="$line, $total_s skipped"
[ $ok = 1 ] || line="$line (errors above)"
echo "$line"
[ $ok = 1 ]
