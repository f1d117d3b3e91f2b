#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make test: the KUnit suites on x86_64 and arm64 (or only ARCH= if given),
# and with arm64 the suites inside a pKVM protected VM (make test-coco;
# UA_COCO=0 leaves that out). One line per part, then the total:
# "N passed, N failed". Exits non-zero on any failure, crash, timeout, splat
# or part without tests.
set -uo pipefail
here=$(dirname "$0")
archs=${UA_ARCH:-${ARCH:-x86_64 arm64}}
unset ARCH
p=0 f=0 s=0 rc=0 lines=()
parts=$archs
[[ " $archs " == *" arm64 "* ]] && [ "${UA_COCO:-1}" != 0 ] && parts="$parts coco"
for a in $parts; do
	out=$(mktemp)
	if [ "$a" = coco ]; then
		"$here/coco.sh" | tee "$out" || rc=1
	else
		UA_ARCH=$a "$here/test-arch.sh" | tee "$out" || rc=1
	fi
	line=$(tail -n 1 "$out")
	rm -f "$out"
	if [[ $line =~ ^([a-z0-9_]+):\ ([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
		p=$((p + BASH_REMATCH[2])) f=$((f + BASH_REMATCH[3])) s=$((s + ${BASH_REMATCH[5]:-0}))
		lines+=("$line")
	else
		lines+=("$a: did not finish")
		rc=1
	fi
done
echo
printf '%s\n' "${lines[@]}"
line="$p passed, $f failed"
[ "$s" = 0 ] || line="$line, $s skipped"
echo "$line"
[ "$f" = 0 ] || rc=1
exit $rc
