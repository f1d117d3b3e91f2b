#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Idempotent set-up: build dependencies, Rust toolchain pieces, the pinned
# kernel source, and the component placed into it. Each step is skipped when
# it is already done.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APT_PKGS="clang-19 lld-19 llvm-19 libclang-19-dev bc flex bison libelf-dev
	libssl-dev cpio make rsync python3 qemu-system-x86 qemu-system-arm
	busybox-static xz-utils socat"

install_debs() {
	local missing=()
	for p in $APT_PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	stage "installing Debian packages: ${missing[*]}"
	[ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]} (or install them yourself)"
	logged "$UA_CACHE/logs/apt-update.log" apt-get update
	DEBIAN_FRONTEND=noninteractive logged "$UA_CACHE/logs/apt-install.log" \
		apt-get install -y --no-install-recommends "${missing[@]}"
}

install_rust() {
	command -v rustup >/dev/null || die "rustup not found: install Rust with rustup (https://rustup.rs)"
	if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
		stage "adding rustup component rust-src"
		logged "$UA_CACHE/logs/rust-src.log" rustup component add rust-src
	fi
	if ! command -v bindgen >/dev/null; then
		stage "installing bindgen-cli from crates.io (a few minutes)"
		logged "$UA_CACHE/logs/bindgen.log" cargo install bindgen-cli --locked
	fi
}

# Fetch linux-source-7.2 through a private apt configuration: the system's
# sources list is neither read nor changed.
fetch_kernel() {
	[ -n "${UA_KSRC_EXTERNAL:-}" ] && return
	[ -f "$UA_KSRC/Makefile" ] && return
	local apt=$UA_CACHE/apt
	mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/dl"
	cat >"$apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
SRC
	local opts=(-oDir::Etc::SourceList="$apt/sources.list" -oDir::Etc::SourceParts=/dev/null
		-oDir::State::Lists="$apt/lists" -oDir::Cache="$apt/cache"
		-oDir::State::Status=/var/lib/dpkg/status -oAPT::Architecture=amd64)
	mkdir -p "$apt/cache"
	if ! ls "$apt/dl/$UA_KPKG"_*.deb >/dev/null 2>&1; then
		stage "fetching package lists for $UA_KPKG (private apt configuration)"
		logged "$UA_CACHE/logs/apt-private-update.log" apt-get "${opts[@]}" update
		stage "downloading $UA_KPKG"
		(cd "$apt/dl" && logged "$UA_CACHE/logs/apt-download.log" \
			apt-get "${opts[@]}" download "$UA_KPKG") ||
			die "could not download $UA_KPKG; check network access to deb.debian.org"
	fi
	stage "unpacking $UA_KPKG"
	rm -rf "$apt/pkg" && dpkg -x "$apt/dl/$UA_KPKG"_*.deb "$apt/pkg"
	local tarball
	tarball=$(ls "$apt/pkg/usr/src/$UA_KPKG".tar.* | head -1)
	mkdir -p "$UA_KSRC.tmp"
	tar -xf "$tarball" -C "$UA_KSRC.tmp" --strip-components=1
	rm -rf "$apt/pkg" "$UA_KSRC" && mv "$UA_KSRC.tmp" "$UA_KSRC"
}

# The arm64 guests' userspace: Debian's busybox-static for arm64, fetched
# through a private apt configuration (the system stays single-architecture).
fetch_busybox_arm64() {
	local dir=$UA_CACHE/busybox-arm64 apt=$UA_CACHE/apt-arm64
	[ -x "$dir/bin/busybox" ] && return
	mkdir -p "$apt/lists/partial" "$apt/cache" "$apt/dl"
	cat >"$apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
SRC
	local opts=(-oDir::Etc::SourceList="$apt/sources.list" -oDir::Etc::SourceParts=/dev/null
		-oDir::State::Lists="$apt/lists" -oDir::Cache="$apt/cache"
		-oDir::State::Status=/dev/null -oAPT::Architecture=arm64
		-oAPT::Architectures::=arm64)
	stage "fetching busybox-static for arm64 (private apt configuration)"
	logged "$UA_CACHE/logs/apt-arm64-update.log" apt-get "${opts[@]}" update
	(cd "$apt/dl" && logged "$UA_CACHE/logs/apt-arm64-download.log" \
		apt-get "${opts[@]}" download busybox-static:arm64) ||
		die "could not download busybox-static:arm64"
	rm -rf "$dir.tmp" && dpkg -x "$apt"/dl/busybox-static_*_arm64.deb "$dir.tmp"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# Apply the hook patches, then copy the component into mm/unmapped_alloc. A
# copy of every applied patch is kept in the tree, so that a patch changed or
# removed in the repository is reverse-applied before the new version goes in.
place_component() {
	local store=$UA_KSRC/.unmapped_alloc-patches
	local p name
	mkdir -p "$store"
	for p in $(ls -r "$store"/*.patch 2>/dev/null); do
		name=$(basename "$p")
		cmp -s "$p" "$UA_ROOT/patches/$name" && continue
		stage "reverting old $name"
		patch -d "$UA_KSRC" -p1 -R --quiet <"$p" || die "cannot revert $name"
		rm "$p"
	done
	for p in "$UA_ROOT"/patches/*.patch; do
		[ -e "$p" ] || continue
		name=$(basename "$p")
		[ -e "$store/$name" ] && continue
		stage "applying $name"
		patch -d "$UA_KSRC" -p1 --forward --quiet <"$p" || die "patch $name does not apply"
		cp "$p" "$store/$name"
	done
	rsync -a --delete --exclude=.git --exclude=.cache --exclude=.ci \
		"$UA_ROOT/" "$UA_KSRC/mm/unmapped_alloc/"
	rsync -a "$UA_ROOT/include/" "$UA_KSRC/include/"
}

mkdir -p "$UA_CACHE/logs"
case "${1:-all}" in
	deps) install_debs; install_rust ;;
	kernel) fetch_kernel ;;
	place) place_component ;;
	all) install_debs; install_rust; fetch_kernel; place_component
		[ "$UA_ARCH" = arm64 ] && fetch_busybox_arm64
		true ;;
	*) die "usage: $0 [deps|kernel|place|all]" ;;
esac
