#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Print kernel splats found in a console log. Inside regions a test announced
# as expected (between "unmapped_alloc: expect splat begin" and
# "unmapped_alloc: expect splat end") only the stack dumps of the component's
# bad-free reports are expected: any BUG, WARNING, KASAN or lockdep report
# there still counts (such a region once hid a sleeping allocation under a
# spinlock). Between "unmapped_alloc: expect kasan begin" and "... end" (the
# unmapped_alloc_caught suite, which checks that each report it provokes
# comes and that no other does) KASAN's and KMSAN's reports are expected as
# well: their "BUG: KASAN:" and "BUG: KMSAN:" lines and stack dumps, nothing
# else. Exit 1 when any is found.
set -euo pipefail
awk '
/unmapped_alloc: expect splat begin/ { expected = 1; next }
/unmapped_alloc: expect splat end/ { expected = 0; next }
/unmapped_alloc: expect kasan begin/ { kasan = 1; next }
/unmapped_alloc: expect kasan end/ { kasan = 0; next }
/(BUG:|WARNING:|kernel BUG|Oops|KASAN|UBSAN|Kernel panic|Call Trace:|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|INFO: task .* blocked|DEBUG_LOCKS_WARN_ON|Unable to handle|general protection fault|rcu_preempt detected stalls|soft lockup|hard LOCKUP)/ {
	if (kasan && (/BUG: KASAN: / || /BUG: KMSAN: / || /Call Trace:/)) next
	if (!expected || !/Call Trace:/) { print; found = 1 }
}
END { exit found }
' "$1"
