#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make test: build, run every unmapped_alloc KUnit suite under QEMU, parse the
# results, reject kernel splats. Last line: "N passed, N failed[, N skipped]".
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/build.sh"
log=$UA_CACHE/logs/kunit-console.log
stage "running KUnit suites under QEMU/TCG (console: $log)"
start=$(date +%s)
qrc=0
"$UA_ROOT/tools/testing/qemu.sh" "$log" \
	"kunit_shutdown=reboot kunit.filter_glob=${UA_FILTER:-unmapped_alloc*}" || qrc=$?
stage "QEMU finished in $(($(date +%s) - start)) s (exit $qrc)"

parsed=$UA_CACHE/logs/kunit-parsed.txt
python3 "$UA_KSRC/tools/testing/kunit/kunit.py" parse "$log" >"$parsed" 2>&1 || true
grep -E '^\[[0-9:]+\] ' "$parsed" | sed -E 's/^\[[0-9:]+\] //' | grep -vE '^=+$' || true

counts=$(python3 - "$parsed" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.findall(r'Ran (\d+) tests?: (.*)', text)
p = f = s = 0
if m:
    fields = dict((k, int(v)) for v, k in re.findall(r'(\d+) (passed|failed|skipped|crashed|errors)', m[-1][1].replace(':', '')))
    d = {k: int(v) for k, v in re.findall(r'(passed|failed|skipped|crashed|errors): (\d+)', m[-1][1])}
    p, f, s = d.get('passed', 0), d.get('failed', 0) + d.get('crashed', 0) + d.get('errors', 0), d.get('skipped', 0)
print(p, f, s)
PY
)
read -r passed failed skipped <<<"$counts"
ok=1
if [ "$qrc" != 0 ]; then echo "error: QEMU exited with $qrc (crash or timeout)" >&2; ok=0; fi
if ! grep -q 'reboot: Restarting system' "$log"; then
	echo "error: the kernel did not reach KUnit shutdown (crash?)" >&2; ok=0
fi
if [ $((passed + failed)) = 0 ]; then echo "error: no test ran" >&2; ok=0; failed=$((failed + 0)); fi
if ! "$UA_ROOT/tools/testing/splats.sh" "$log" >"$UA_CACHE/logs/splats.txt"; then
	echo "error: unexpected kernel splats:" >&2
	head -20 "$UA_CACHE/logs/splats.txt" >&2
	ok=0
fi
[ "$failed" = 0 ] || ok=0
line="$passed passed, $failed failed"
[ "$skipped" = 0 ] || line="$line, $skipped skipped"
echo "$line"
[ $ok = 1 ]
