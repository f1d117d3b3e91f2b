#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make run: build, boot the kernel in QEMU with a tiny busybox initramfs that
# loads the sample consumers and prints the allocator's debugfs statistics.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/build.sh"
[ -x /bin/busybox ] || die "busybox-static is missing: apt-get install busybox-static"

stage "making the initramfs"
root=$UA_CACHE/initramfs
rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
cp /bin/busybox "$root/bin/busybox"
find "$UA_BUILD/mm/unmapped_alloc/samples" -name '*.ko' -exec cp {} "$root/lib/modules/" \;
ls "$root"/lib/modules/*.ko >/dev/null 2>&1 || die "sample modules were not built"
cp "$UA_ROOT/tools/testing/guest-init.sh" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$UA_CACHE/initramfs.cpio.gz"

log=$UA_CACHE/logs/run-console.log
stage "booting under QEMU/TCG (console: $log)"
qrc=0
"$UA_ROOT/tools/testing/qemu.sh" "$log" "kunit.enable=0 quiet" "$UA_CACHE/initramfs.cpio.gz" || qrc=$?
# Show what the guest printed, without the kernel's boot chatter.
sed -n '/^ua-run: begin/,/^ua-run: end/p' "$log" | tr -d '\r'
ok=1
[ "$qrc" = 0 ] || { echo "error: QEMU exited with $qrc" >&2; ok=0; }
grep -q '^ua-run: ok' "$log" || { echo "error: the guest did not finish its run" >&2; ok=0; }
if ! "$UA_ROOT/tools/testing/splats.sh" "$log" >"$UA_CACHE/logs/run-splats.txt"; then
	echo "error: kernel splats during the run:" >&2
	head -20 "$UA_CACHE/logs/run-splats.txt" >&2
	ok=0
fi
[ $ok = 1 ] && stage "run finished successfully"
[ $ok = 1 ]
