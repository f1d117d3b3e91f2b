#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make series: the component as a patch series against the pinned 7.2 tree,
# in .cache/series/ (git format-patch, with a cover letter). The pristine
# tree is a git repository in .cache/series-tree, made once from the pinned
# package. With 'check' (make check): apply the series with git am to the
# pristine tree, build the component after every patch, and run
# checkpatch --strict on every patch.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/setup.sh" kernel
tree=$UA_CACHE/series-tree out=$UA_CACHE/series
want="$UA_KPKG $UA_KPKG_VERSION $UA_KPKG_SHA256"
if [ "$(cat "$tree/.git/unmapped_alloc-kpkg" 2>/dev/null)" != "$want" ]; then
	stage "making the pristine tree, a git repository (once; about a minute)"
	rm -rf "$tree" "$tree.tmp" && mkdir -p "$tree.tmp"
	pkg=$UA_CACHE/apt/series-pkg
	rm -rf "$pkg" && dpkg -x "$UA_CACHE/apt/dl/${UA_KPKG}_${UA_KPKG_VERSION}_all.deb" "$pkg"
	tar -xf "$(ls "$pkg/usr/src/$UA_KPKG".tar.* | head -1)" -C "$tree.tmp" --strip-components=1
	rm -rf "$pkg"
	git -C "$tree.tmp" init -q
	# Debian's .gitignore ignores everything at the top level: add by force.
	git -C "$tree.tmp" add -A -f
	git -C "$tree.tmp" -c user.name="unmapped_alloc developers" \
		-c user.email=unmapped_alloc@localhost commit -q \
		-m "Linux 7.2 ($UA_KPKG $UA_KPKG_VERSION)"
	git -C "$tree.tmp" tag v7.2
	echo "$want" >"$tree.tmp/.git/unmapped_alloc-kpkg"
	mv "$tree.tmp" "$tree"
fi
stage "generating the series"
python3 "$UA_ROOT/tools/testing/series/series.py" "$UA_ROOT" "$tree" "$out"
ls "$out"
[ "${1:-}" = check ] || exit 0

rc=0
stage "git am on a pristine tree"
git -C "$tree" am --abort 2>/dev/null || true
git -C "$tree" checkout -q -f -B series-check v7.2
git -C "$tree" clean -q -fdx
patches=$(ls "$out"/0*-*.patch | grep -v '/0000-')
# shellcheck disable=SC2086 # one argument per patch
git -C "$tree" -c user.name=check -c user.email=check@localhost am -q $patches ||
	die "the series does not apply with git am"
git -C "$tree" diff --quiet series series-check || die "git am gave another tree than the series"
# Each patch built on its own: the test configuration of x86_64 (options of
# later patches are dropped by olddefconfig until they exist).
build=$UA_CACHE/series-build
mkdir -p "$build"
rm -f "$build"/undefined-*
# The symbols of an object or archive (llvm-nm reads the thin archives and
# the LLVM bitcode of the build).
syms() { llvm-nm$UA_LLVM "$1" --format=just-symbols "$2" 2>/dev/null | grep -v ':$' | grep . | sort -u; }
n=0
for c in $(git -C "$tree" rev-list --reverse v7.2..series-check); do
	n=$((n + 1))
	git -C "$tree" checkout -q "$c"
	subject=$(git -C "$tree" log -1 --format=%s "$c")
	stage "patch $n: $subject: building"
	cp "$UA_CACHE/build/.config" "$build/.config"
	log=$UA_CACHE/logs/series-build-$n.log
	# The component once it exists (with the Rust crates 'prepare' builds),
	# the Rust side of the tree before. The ITS patch changes an arm64
	# driver, which 'make run ARCH=arm64' and the arm64 tests build.
	target=rust/
	[ -d "$tree/mm/unmapped_alloc" ] && target=mm/unmapped_alloc/
	if ! make -C "$tree" O="$build" LLVM="$UA_LLVM" olddefconfig >"$log" 2>&1 ||
		! make -C "$tree" O="$build" LLVM="$UA_LLVM" -j"$UA_JOBS" $target >>"$log" 2>&1 ||
		grep -q '^warning\|^error\|: warning:\|: error:' "$log"; then
		tail -n 30 "$log"
		rc=1
	fi
	# A patch that changes the GICv3 ITS driver, an arm64 one, builds that
	# driver for arm64 too, with the arm64 test configuration (made once by
	# kunit.py in the full test tree; olddefconfig drops later options).
	if ! git -C "$tree" diff --quiet "$c^" "$c" -- drivers/irqchip; then
		stage "patch $n: $subject: building the ITS driver for arm64"
		arm=$UA_CACHE/series-build-arm64
		log=$UA_CACHE/logs/series-build-$n-arm64.log
		mkdir -p "$arm"
		if [ ! -f "$arm/test.config" ]; then
			python3 "$UA_KSRC/tools/testing/kunit/kunit.py" config --arch=arm64 \
				--build_dir="$arm/config" --kunitconfig="$UA_ROOT/.kunitconfig" \
				--kunitconfig="$UA_CONFIGS/test.config" --kunitconfig="$UA_CONFIGS/kasan.config" --kunitconfig="$UA_CONFIGS/arm64.config" \
				--make_options "LLVM=$UA_LLVM" >"$log" 2>&1 && cp "$arm/config/.config" "$arm/test.config"
		fi
		cp "$arm/test.config" "$arm/.config" 2>/dev/null || true
		if ! make -C "$tree" O="$arm" ARCH=arm64 LLVM="$UA_LLVM" olddefconfig >>"$log" 2>&1 ||
			! make -C "$tree" O="$arm" ARCH=arm64 LLVM="$UA_LLVM" -j"$UA_JOBS" \
				drivers/irqchip/irq-gic-v3-its.o >>"$log" 2>&1 ||
			grep -q '^warning\|^error\|: warning:\|: error:' "$log"; then
			tail -n 30 "$log"
			rc=1
		fi
	fi
	# What the built-in component references but does not define, to check
	# after the last patch that none of it is defined by a later patch (the
	# directory builds, but vmlinux would not link).
	a=$build/mm/unmapped_alloc/built-in.a
	[ ! -d "$tree/mm/unmapped_alloc" ] ||
		comm -23 <(syms --undefined-only "$a") <(syms --defined-only "$a") >"$build/undefined-$n"
done
for f in "$build"/undefined-*; do
	late=$(comm -12 "$f" <(syms --defined-only "$build/mm/unmapped_alloc/built-in.a"))
	[ -z "$late" ] || { echo "patch ${f##*-} uses what a later patch defines:"; echo "$late"; rc=1; }
done
git -C "$tree" checkout -q series-check
"$UA_ROOT/tools/testing/setup.sh" docs
stage "checkpatch --strict on every patch"
# In the tree with the whole series applied, so that checkpatch sees
# MAINTAINERS and kernel-parameters.txt. Explained exceptions:
# - EXPORT_SYMBOL: the C API is defined in Rust, so its EXPORT_SYMBOL_GPL()s
#   in helpers.c cannot follow the definitions;
# - FILE_PATH_CHANGES: patch 3 adds the MAINTAINERS entry that covers the
#   files the later patches add (rust/helpers/ is the RUST entry's);
# - OPEN_ENDED_LINE and PARENTHESIS_ALIGNMENT in the trace event header: the
#   layout of TRACE_EVENT(), as in every header under include/trace/events/.
for p in $patches; do
	# Debian's python3 (not a pyenv one first in PATH) has what the SPDX
	# check imports ('setup.sh docs' installs it).
	out=$(cd "$tree" && PATH=/usr/bin:$PATH scripts/checkpatch.pl --strict --terse --showfile --show-types \
		--ignore EXPORT_SYMBOL,FILE_PATH_CHANGES "$p" |
		grep -Ev '^include/trace/events/unmapped_alloc\.h:[0-9]+: CHECK:(OPEN_ENDED_LINE|PARENTHESIS_ALIGNMENT):' |
		grep -E ': (ERROR|WARNING|CHECK):' || true)
	[ -z "$out" ] || { echo "$(basename "$p"):"; echo "$out"; rc=1; }
done
[ $rc = 0 ] && stage "the series applies, builds after every patch and is checkpatch-clean"
exit $rc
