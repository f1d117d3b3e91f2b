#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Configure and build the test kernel (incrementally) with the component in it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

"$UA_ROOT/tools/testing/setup.sh" all
stage "building kernel $UA_KVER with unmapped_alloc (log: $UA_CACHE/logs/build.log)"
start=$(date +%s)
mkdir -p "$UA_BUILD"
logged "$UA_CACHE/logs/build.log" python3 "$UA_KSRC/tools/testing/kunit/kunit.py" build \
	--arch=x86_64 --build_dir="$UA_BUILD" \
	--kunitconfig="${UA_KUNITCONFIG:-$UA_ROOT/tools/testing/kunitconfig}" \
	--make_options "LLVM=$UA_LLVM" ${UA_MAKE_OPTIONS:+--make_options "$UA_MAKE_OPTIONS"} \
	--jobs="$UA_JOBS"
stage "kernel built in $(($(date +%s) - start)) s"
