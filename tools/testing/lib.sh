# SPDX-License-Identifier: GPL-2.0
# Shared settings and helpers for the unmapped_alloc pipeline scripts.

UA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
UA_CACHE=${UA_CACHE:-$UA_ROOT/.cache}
UA_KVER=7.2
UA_KPKG=linux-source-$UA_KVER
# An existing kernel tree may be used instead of the downloaded one.
UA_KSRC=${UA_KSRC:-$UA_CACHE/linux-source-$UA_KVER}
UA_BUILD=${UA_BUILD:-$UA_CACHE/build}
UA_LLVM=${UA_LLVM:--19}
UA_JOBS=${UA_JOBS:-$(nproc)}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
export PATH="$HOME/.cargo/bin:$PATH"

stage() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a long command quietly, keeping its output in a log; show the tail on failure.
logged() {
	local log=$1; shift
	mkdir -p "$(dirname "$log")"
	if ! "$@" >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "'$*' failed; full log in $log"
	fi
}
