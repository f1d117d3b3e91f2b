#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: rustfmt with the kernel tree's configuration, clippy through
# kbuild (CLIPPY=1), and checkpatch on the C sources.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/setup.sh" all
cd "$UA_ROOT"
rc=0
stage "rustfmt --check"
rustfmt --edition 2021 --config-path "$UA_KSRC/.rustfmt.toml" --check \
	$(find rust samples -name '*.rs' | sort) || rc=1
stage "unsafe code only in the unsafe layer"
# sys.rs and sys/ (the kernel primitives), c_api.rs and c_api/ (the
# #[export]ed C API), the crate root and its tests (which call that API) hold
# all unsafe code of the component; every other module denies it, so the
# compiler refuses any unsafe block there.
for f in $(find rust -name '*.rs' | sort); do
	case $f in rust/sys.rs | rust/sys/*.rs | rust/c_api.rs | rust/c_api/*.rs | \
		rust/unmapped_alloc.rs | rust/tests.rs | rust/kernel_api.rs) continue ;; esac
	grep -qx '#!\[deny(unsafe_code)\]' "$f" || { echo "$f: no #![deny(unsafe_code)]"; rc=1; }
done
stage "clippy (CLIPPY=1)"
[ -f "$UA_BUILD/.config" ] || "$UA_ROOT/tools/testing/build.sh"
if ! make -s -C "$UA_KSRC" O="$UA_BUILD" LLVM="$UA_LLVM" CLIPPY=1 -j"$UA_JOBS" \
	mm/unmapped_alloc/ >"$UA_CACHE/logs/clippy.log" 2>&1 ||
	grep -q '^warning\|^error' "$UA_CACHE/logs/clippy.log"; then
	cat "$UA_CACHE/logs/clippy.log"
	rc=1
fi
if [ -f "$UA_CACHE/build-bench$UA_SUFFIX/.config" ]; then
	# The bench kernel is built without the KUnit option: it shows test-only
	# code that would be unused in a production configuration.
	stage "warnings without the KUnit option (bench kernel)"
	make -s -C "$UA_KSRC" O="$UA_CACHE/build-bench$UA_SUFFIX" LLVM="$UA_LLVM" -j"$UA_JOBS" \
		mm/unmapped_alloc/ >"$UA_CACHE/logs/check-bench.log" 2>&1 || rc=1
	if grep -q '^warning\|^error' "$UA_CACHE/logs/check-bench.log"; then
		cat "$UA_CACHE/logs/check-bench.log"
		rc=1
	fi
fi
# arm64 page sizes other than 4 KiB, where a PMD is 32 MiB or 512 MiB, and
# the ITS driver without the component: configured by kunit.py, then only
# the component's directory (with the Rust crates 'prepare' builds) or the
# driver is compiled.
# arm64_build NAME TARGET [BASE]: BASE is the component's test configuration
# unless given (the driver alone needs none of it).
arm64_build() {
	local name=$1 target=$2 dir=$UA_CACHE/build-arm64-$1 base=()
	[ $# -gt 2 ] || base=(--kunitconfig="$UA_ROOT/.kunitconfig" --kunitconfig="$UA_CONFIGS/test.config" --kunitconfig="$UA_CONFIGS/kasan.config")
	stage "arm64 build test: $name ($target)"
	mkdir -p "$dir"
	if ! python3 "$UA_KSRC/tools/testing/kunit/kunit.py" config --arch=arm64 --build_dir="$dir" \
		"${base[@]}" --kunitconfig="$UA_CONFIGS/arm64.config" \
		--kunitconfig="$UA_CONFIGS/arm64-$name.config" --make_options "LLVM=$UA_LLVM" \
		>"$UA_CACHE/logs/check-arm64-$name.log" 2>&1 ||
		! make -s -C "$UA_KSRC" O="$dir" ARCH=arm64 LLVM="$UA_LLVM" -j"$UA_JOBS" "$target" \
		>>"$UA_CACHE/logs/check-arm64-$name.log" 2>&1 ||
		grep -q '^warning\|^error\|: warning:\|: error:' "$UA_CACHE/logs/check-arm64-$name.log"; then
		tail -n 30 "$UA_CACHE/logs/check-arm64-$name.log"
		rc=1
	fi
}
if [ -z "${UA_CHECK_QUICK:-}" ]; then
	arm64_build 16k mm/unmapped_alloc/
	arm64_build 64k mm/unmapped_alloc/
	arm64_build nocomp drivers/irqchip/irq-gic-v3-its.o none
fi
stage "kernel-doc and the documentation (Sphinx, Documentation/mm)"
# Every kernel-doc comment of the C API complete (parameters, return
# values), and the guide, with the API reference pulled from the header,
# built by the tree's Sphinx without a warning about it. Building only
# Documentation/mm leaves the tree's own cross-references to other parts
# unresolved; those warnings are not ours.
kdoc=$("$UA_KSRC/scripts/kernel-doc" -Wall -none include/linux/unmapped_alloc.h 2>&1) || rc=1
[ -z "$kdoc" ] || { echo "$kdoc"; rc=1; }
"$UA_ROOT/tools/testing/setup.sh" docs
docs_log=$UA_CACHE/logs/htmldocs.log
if ! make -C "$UA_KSRC" O="$UA_CACHE/docs" SPHINXDIRS=mm htmldocs >"$docs_log" 2>&1; then
	tail -n 20 "$docs_log"
	rc=1
elif grep -i 'warning\|error' "$docs_log" | grep 'unmapped_alloc'; then
	rc=1
elif ! grep -q 'kmalloc_decrypted_node' "$UA_CACHE/docs/Documentation/output/mm/unmapped_alloc.html"; then
	echo "Documentation/mm/unmapped_alloc.html lacks the C API reference"
	rc=1
fi
stage "checkpatch"
# The exports of the Rust-defined C API cannot follow their definitions.
# fail_unmapped_alloc= is documented in Documentation/unmapped_alloc.rst; its
# kernel-parameters.txt entry belongs to the patch series (issue #14).
"$UA_KSRC/scripts/checkpatch.pl" --no-tree --quiet --strict \
	--ignore EXPORT_SYMBOL,UNDOCUMENTED_SETUP --file \
	helpers.c rust_helpers.c detectors.c register.c trace.c internal.h coco_test.c caught_test.c unmapped_alloc_torture.c include/linux/unmapped_alloc.h samples/*.c \
	bench/*.c tools/testing/coco/ua_coco.h || rc=1
# The test VMM (a user program, Rust on crates.io's rust-vmm crates):
# rustfmt, clippy on the arm64 target it runs on, its unit tests here.
stage "ua-vmm: rustfmt, clippy, unit tests"
ua_vmm_build >/dev/null
(cd tools/testing/coco/vmm-rs &&
	cargo fmt --check &&
	CARGO_TARGET_DIR=$UA_CACHE/vmm-rs cargo clippy --locked --offline --all-targets \
		--target "$UA_VMM_TARGET" -- -D warnings &&
	CARGO_TARGET_DIR=$UA_CACHE/vmm-rs cargo test --locked --offline -q) || rc=1
if [ -z "${UA_CHECK_QUICK:-}" ]; then
	# The series: git am on a pristine tree, a build after every patch,
	# checkpatch --strict on every patch.
	"$UA_ROOT/tools/testing/series.sh" check || rc=1
fi
[ $rc = 0 ] && stage "all checks clean"
exit $rc
