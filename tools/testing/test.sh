#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make test: the KUnit suites on x86_64 and arm64 (or only ARCH= if given),
# and with arm64 the suites inside a pKVM protected VM and its virtio
# devices (make test-coco: coco.sh, coco-virtio.sh; UA_COCO=0 leaves them
# out). One line per part, then the total:
# "N passed, N failed". Exits non-zero on any failure, crash, timeout, splat
# or part without tests.
set -uo pipefail
here=$(dirname "$0")
archs=${UA_ARCH:-${ARCH:-x86_64 arm64}}
unset ARCH
p=0 f=0 s=0 rc=0 lines=()
# Every failed test and error, by name, for the summary at the end (lib.sh's
# ua_kunit_results and ua_error add to it): a run's last lines tell what
# failed, not only how many.
export UA_FAILURES=${UA_CACHE:-$here/../../.cache}/logs/failures.txt
mkdir -p "$(dirname "$UA_FAILURES")"
: >"$UA_FAILURES"
parts=$archs
[[ " $archs " == *" arm64 "* ]] && [ "${UA_COCO:-1}" != 0 ] && parts="$parts coco virtio"
# Both architectures: the arm64 kernel builds in the background, at low
# priority, while the x86_64 kernel builds and boots. A kernel build leaves a
# CPU idle in its serial steps (the Rust crates, the links) and a KUnit boot
# mostly runs one vCPU: the arm64 build takes those cycles, and is done or
# nearly when the x86_64 part ends. Its output goes to a log; the arm64 part
# calls build.sh again, which then has little or nothing left to do and shows
# the error if it failed. UA_OVERLAP=0 builds one after the other.
bg=
if [[ " $archs " == *" x86_64 "* && " $archs " == *" arm64 "* ]] && [ "${UA_OVERLAP:-1}" != 0 ]; then
	"$here/setup.sh" all || exit 1
	logs=${UA_CACHE:-$here/../../.cache}/logs
	mkdir -p "$logs"
	echo "==> [arm64] building in the background meanwhile (log: $logs/build-arm64-background.txt)" >&2
	# Its own process group (job control on for the launch), so that it can be
	# stopped as a whole, but not its own session: a new session is a new
	# scheduler autogroup, which gets an equal share of the CPU whatever its
	# nice value; in this one, nice 15 leaves it only what the x86_64 part
	# does not use.
	set -m
	UA_ARCH=arm64 nice -n 15 "$here/build.sh" >"$logs/build-arm64-background.txt" 2>&1 &
	bg=$!
	set +m
	# Interrupted: stop the whole background build.
	trap 'if [ -n "$bg" ]; then kill -- "-$bg" 2>/dev/null; fi' EXIT
fi
for a in $parts; do
	if [ "$a" = arm64 ] && [ -n "$bg" ]; then
		start=$(date +%s)
		wait "$bg" || true
		echo "==> [arm64] waited $(($(date +%s) - start)) s for the background build" >&2
		bg=
	fi
	out=$(mktemp)
	export UA_PART=$a
	if [ "$a" = coco ]; then
		"$here/coco.sh" | tee "$out" || rc=1
	elif [ "$a" = virtio ]; then
		"$here/coco-virtio.sh" | tee "$out" || rc=1
	else
		UA_ARCH=$a "$here/test-arch.sh" | tee "$out" || rc=1
	fi
	line=$(tail -n 1 "$out")
	rm -f "$out"
	if [[ $line =~ ^([a-z0-9_-]+):\ ([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
		p=$((p + BASH_REMATCH[2])) f=$((f + BASH_REMATCH[3])) s=$((s + ${BASH_REMATCH[5]:-0}))
		lines+=("$line")
	else
		lines+=("$a: did not finish")
		echo "$a: did not finish (no summary line)" >>"$UA_FAILURES"
		rc=1
	fi
done
echo
if [ -s "$UA_FAILURES" ]; then
	echo "failed or in error ($(wc -l <"$UA_FAILURES")):"
	head -n 30 "$UA_FAILURES" | sed 's/^/  /'
fi
printf '%s\n' "${lines[@]}"
line="$p passed, $f failed"
[ "$s" = 0 ] || line="$line, $s skipped"
echo "$line"
[ "$f" = 0 ] || rc=1
exit $rc
