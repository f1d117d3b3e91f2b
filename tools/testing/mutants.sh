#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make mutants: the test of the tests. The test kernel takes
# unmapped_alloc.mutant=N and then has one deliberate bug (rust/mutant.rs);
# for N = 0 (none, the baseline, which must pass) and every mutant, boot the
# suites (and, for the baseline and the detector mutants, the caught suite with
# its kmemleak check) and record which tests fail. A mutant no test catches, or a test no mutant makes fail, is printed:
# the first is a gap in the suites, the second a test not yet shown able to
# fail. The tables go to $UA_CACHE/logs/mutants$UA_SUFFIX.md.
#
# MUTANTS="3 5" runs only those (and the baseline); the table keeps the
# results of the other mutants from their last run, with its date.
# MUTANT_PARTS picks the boots (default "suites doctests"): suites boots the
# suites (with the sys and caught suites where noted below), doctests the
# Rust API's examples (the doctests make test counts).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/build.sh"
dir=$UA_CACHE/logs/mutants$UA_SUFFIX
mkdir -p "$dir"
kmemleak_initrd=$(ua_kmemleak_initrd)

# The mutants whose bugs only the detectors' reports show: the caught suite
# (KASAN and kmemleak reports expected) boots for them and the baseline only,
# since it tests the detectors' hooks and nothing else (and saves a boot per
# mutant).
detector_mutants="no_kasan no_kmemleak"
# The mutants of the unsafe layer that corrupt or crash the kernel in the
# suites before unmapped_alloc_sys: for these the sys suite also boots on
# its own, so that its tests run under the mutant.
sys_mutants="read_via_direct_map of_page_off_by_one"

# boot_part N PART CMDLINE [INITRD]: boot PART (suites, sys, caught,
# doctests) under mutant N, log in $dir/PART-N.log; its results go to
# $dir/results-N-PART, one line per test, "PASSED name" / "FAILED name" /
# "SKIPPED name".
boot_part() {
	local n=$1 log=$dir/$2-$1.log qrc=0
	"$UA_ROOT/tools/testing/qemu.sh" "$log" "$3 unmapped_alloc.mutant=$n" ${4:+"$4"} || qrc=$?
	ua_mutant_results "$log" "$qrc" >"$dir/results-$n-$2"
}

parts=${MUTANT_PARTS:-suites doctests}
# Results of runs before the boots had files of their own: the suites'.
for f in "$dir"/results-*; do
	if [[ $f =~ /results-[0-9]+$ ]]; then mv "$f" "$f-suites"; fi
done
boot_mutant() {
	local n=$1 name=$2
	if [[ " $parts " == *" doctests "* ]]; then
		boot_part "$n" doctests \
			"kunit_shutdown=reboot kunit.filter_glob=rust_doctests_kernel.rust_doctest_kernel_unmapped_alloc_rs_*"
	fi
	[[ " $parts " == *" suites "* ]] || return 0
	boot_part "$n" suites "kunit_shutdown=reboot kunit.filter_glob=unmapped_alloc_[!c]*"
	case " $sys_mutants " in
	*" $name "*) boot_part "$n" sys "kunit_shutdown=reboot kunit.filter_glob=unmapped_alloc_sys" ;;
	esac
	case " baseline $detector_mutants " in
	*" $name "*) ;;
	*) return 0 ;;
	esac
	boot_part "$n" caught "kunit.filter_glob=unmapped_alloc_caught kasan_multi_shot caught_test.lose_object=1" \
		"$kmemleak_initrd"
	if ua_kmemleak_lost "$dir/caught-$n.log" >/dev/null 2>&1; then
		echo "PASSED kmemleak_reports_lost_object" >>"$dir/results-$n-caught"
	else
		echo "FAILED kmemleak_reports_lost_object" >>"$dir/results-$n-caught"
	fi
}

# ua_mutant_results LOG QEMU_EXIT: the boot's tests as kunit.py parsed them,
# and pseudo-tests for what make test also fails on: a crash or timeout, and
# a kernel splat outside the caught suite's expected reports.
ua_mutant_results() {
	local log=$1 qrc=$2 parsed=$1.parsed
	python3 "$UA_KSRC/tools/testing/kunit/kunit.py" parse "$log" >"$parsed" 2>&1 || true
	sed -nE 's/^\[[0-9:]+\] \[(PASSED|FAILED|SKIPPED|CRASHED)\] ([A-Za-z0-9_]+).*/\1 \2/p' "$parsed" |
		sed -E 's/^CRASHED/FAILED/'
	local boot
	boot=$(basename "$log" .log)
	boot=${boot%-*}
	if [ "$qrc" != 0 ] || ! grep -q 'reboot: Restarting system' "$log"; then
		echo "FAILED ${boot}_boot_completes"
	else
		echo "PASSED ${boot}_boot_completes"
	fi
	if "$UA_ROOT/tools/testing/splats.sh" "$log" >"$log.splats"; then
		echo "PASSED ${boot}_no_splat"
	else
		echo "FAILED ${boot}_no_splat"
	fi
}

names=$(sed -nE 's/^ *\(Mutant::[A-Za-z]+, "([a-z_]+)"\),$/\1/p' "$UA_ROOT/rust/mutant.rs")
count=$(wc -w <<<"$names")
[ "$count" -gt 0 ] || die "no mutants found in rust/mutant.rs"
list=${MUTANTS:-$(seq 1 "$count")}
for n in 0 $list; do
	name=baseline
	[ "$n" = 0 ] || name=$(cut -d' ' -f"$n" <<<"$(echo $names)")
	stage "mutant $n ($name)"
	start=$(date +%s)
	boot_mutant "$n" "$name"
	if [ "$n" != 0 ] && ! grep -q "MUTANT $n ($name)" "$dir"/*-"$n".log; then
		die "the kernel did not take mutant $n ($name)"
	fi
	stage "mutant $n: $(cat "$dir/results-$n"-* | grep -c '^FAILED' || true) failed, $(($(date +%s) - start)) s"
done

# The table: this run's mutants, and those of earlier runs whose results are
# still in $dir (MUTANTS= runs a few; the others keep their last results,
# marked with their date).
UA_MUTANT_NAMES=$names UA_MUTANT_COUNT=$count python3 - "$dir" "$UA_CACHE/logs/mutants$UA_SUFFIX.md" "$UA_ARCH" 0 $list <<'PY'
import datetime, glob, os, sys
d, out, arch, ran = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
# Each boot's results (results-N-PART).
def files(n):
    return glob.glob(f'{d}/results-{n}-*')
names = ['baseline'] + os.environ['UA_MUTANT_NAMES'].split()
count = int(os.environ['UA_MUTANT_COUNT'])
ns = ['0'] + [str(n) for n in range(1, count + 1) if str(n) in ran or files(n)]
res, when = {}, {}
for n in ns:
    r = {}
    for f in files(n):
        for line in open(f):
            verdict, test = line.split()
            r[test] = verdict
    res[n] = r
    when[n] = 'this run' if n in ran else datetime.datetime.fromtimestamp(
        max(os.path.getmtime(f) for f in files(n))).strftime('%Y-%m-%d %H:%M')
base = res['0']
bad = sorted(t for t, v in base.items() if v == 'FAILED')
lines = [f'# make mutants, {arch}', '']
if bad:
    lines += ['The baseline (no mutant) failed: ' + ', '.join(bad), '']
lines += ['| mutant | run | tests failed | which |', '|---|---|---:|---|']
killed_by = {t: [] for t in base}
uncaught = []
for n in ns[1:]:
    failed = sorted(t for t, v in res[n].items() if v == 'FAILED' and base.get(t) != 'FAILED')
    for t in failed:
        killed_by.setdefault(t, []).append(names[int(n)])
    if not failed:
        uncaught.append(names[int(n)])
    shown = ', '.join(failed[:8]) + (f' and {len(failed) - 8} more' if len(failed) > 8 else '')
    lines.append(f'| {n} {names[int(n)]} | {when[n]} | {len(failed)} | {shown or "NONE: not caught"} |')
# The boots' own checks (a crash or timeout, a splat) are make test's failure
# conditions, not tests it counts: listed apart.
def pseudo(t):
    return t.endswith('_boot_completes') or t.endswith('_no_splat')
counted = [t for t, v in base.items() if v == 'PASSED' and not pseudo(t)]
never = sorted(t for t in counted if not killed_by.get(t))
lines += ['', f'{len(counted) - len(never)} of the {len(counted)} tests that pass in the baseline '
          f'failed under at least one mutant; {len(ns) - 1 - len(uncaught)} of {len(ns) - 1} mutants caught.']
boots = sorted(t for t, v in base.items() if v == 'PASSED' and pseudo(t))
lines += ['', 'Boot checks (not counted as tests): ' + ', '.join(
    f'{t} ({"failed under " + ", ".join(killed_by[t]) if killed_by.get(t) else "never failed"})'
    for t in boots)]
if uncaught:
    lines += ['', 'Mutants no test caught: ' + ', '.join(uncaught)]
lines += ['', 'Tests no mutant made fail (not yet shown able to fail):', '']
lines += [f'- {t}' for t in never] or ['- none']
open(out, 'w').write('\n'.join(lines) + '\n')
print('\n'.join(lines[:len(ns) + 6]))
print(f'{len(never)} tests not shown able to fail; the full table: {out}')
sys.exit(1 if bad or uncaught else 0)
PY
