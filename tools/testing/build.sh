#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Configure and build the test kernel (incrementally) with the component in it,
# for UA_ARCH (x86_64 natively, arm64 cross-built with the same LLVM).
# UA_CONFIG selects the configuration: test (default: the component's
# .kunitconfig and configs/test.config) or bench; the architecture's fragment
# in configs/ is added to it, and for test KASAN's (configs/kasan.config) or
# UA_VARIANT's instead (lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/setup.sh" all
config=${UA_CONFIG:-test}
stage "building kernel $UA_KVER ($config configuration) with unmapped_alloc (log: $UA_CACHE/logs/build$UA_SUFFIX-$config.log)"
start=$(date +%s)
mkdir -p "$UA_BUILD"
# The test configuration is the component's .kunitconfig with additions, and
# leaves out per architecture what no test needs (configs/test-ARCH.config).
base=() lean=()
if [ "$config" = test ]; then
	base=(--kunitconfig="$UA_ROOT/.kunitconfig")
	lean=(--kunitconfig="$UA_CONFIGS/test-$UA_ARCH.config")
	# The memory detector: KASAN, or the variant's instead (lib.sh).
	lean+=(--kunitconfig="$UA_CONFIGS/${UA_VARIANT:-kasan}.config")
fi
logged "$UA_CACHE/logs/build$UA_SUFFIX-$config.log" python3 "$UA_KSRC/tools/testing/kunit/kunit.py" build \
	--arch="$UA_ARCH" --build_dir="$UA_BUILD" "${base[@]}" \
	--kunitconfig="$UA_CONFIGS/$config.config" --kunitconfig="$UA_CONFIGS/$UA_ARCH.config" \
	"${lean[@]}" \
	--make_options "LLVM=$UA_LLVM" ${UA_MAKE_OPTIONS:+--make_options "$UA_MAKE_OPTIONS"} \
	--jobs="$UA_JOBS"
stage "kernel built in $(($(date +%s) - start)) s"
