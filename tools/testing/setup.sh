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
	busybox-static xz-utils socat gcc-aarch64-linux-gnu libc6-dev-arm64-cross
	device-tree-compiler libcap-dev"
# For 'make check' only: the tree's Sphinx documentation build, and what
# checkpatch's SPDX check (scripts/spdxcheck.py) imports.
APT_DOC_PKGS="python3-sphinx python3-yaml python3-ply python3-git"

install_debs() {
	local missing=()
	for p in ${1:-$APT_PKGS}; do
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
	local have
	have=$(rustup component list --installed --toolchain "$UA_RUST_TOOLCHAIN" 2>/dev/null || true)
	if ! grep -q '^rust-src' <<<"$have" || ! grep -q '^clippy' <<<"$have" ||
		! grep -q '^rustfmt' <<<"$have"; then
		stage "installing Rust $UA_RUST_TOOLCHAIN with rust-src, clippy and rustfmt"
		logged "$UA_CACHE/logs/rust-toolchain.log" rustup toolchain install "$UA_RUST_TOOLCHAIN" \
			--profile minimal -c rust-src -c clippy -c rustfmt
	fi
	if ! command -v bindgen >/dev/null; then
		# bindgen-cli is built with the default toolchain: it is a
		# host program, and its own minimum Rust may be newer.
		stage "installing bindgen-cli from crates.io (a few minutes)"
		logged "$UA_CACHE/logs/bindgen.log" env -u RUSTUP_TOOLCHAIN \
			cargo install bindgen-cli --locked
	fi
}

# apt_download DIR ARCH PACKAGE TAG: download PACKAGE's .deb for ARCH into
# DIR/dl through a private apt configuration whose sources list comes on
# standard input; the system's apt configuration is neither read nor changed.
apt_download() {
	local apt=$1 arch=$2 pkg=$3 tag=$4 status=/var/lib/dpkg/status
	# The system's package database only describes this machine's architecture.
	[ "$arch" = amd64 ] || status=/dev/null
	mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/cache" "$apt/dl"
	cat >"$apt/sources.list"
	local opts=(-oDir::Etc::SourceList="$apt/sources.list" -oDir::Etc::SourceParts=/dev/null
		-oDir::State::Lists="$apt/lists" -oDir::Cache="$apt/cache"
		-oDir::State::Status="$status" -oAPT::Architecture="$arch"
		-oAPT::Architectures::="$arch")
	stage "fetching package lists for $pkg (private apt configuration)"
	logged "$UA_CACHE/logs/apt-$tag-update.log" apt-get "${opts[@]}" update
	stage "downloading $pkg"
	(cd "$apt/dl" && logged "$UA_CACHE/logs/apt-$tag-download.log" \
		apt-get "${opts[@]}" download "$pkg")
}

# The Debian archive this machine's apt is configured with (its sources.list
# or sources.list.d), so that no host name is written into the scripts;
# UA_DEBIAN_MIRROR overrides it.
debian_mirror() {
	if [ -n "${UA_DEBIAN_MIRROR:-}" ]; then
		echo "${UA_DEBIAN_MIRROR%/}"
		return
	fi
	local uri
	# The main archive: Origin and Label "Debian" once the lists are
	# fetched, otherwise the configured URI whose path ends in /debian.
	uri=$(apt-get indextargets --format '$(REPO_URI) $(ORIGIN) $(LABEL)' \
		'Identifier: Packages' 2>/dev/null | awk '$2 == "Debian" && $3 == "Debian" { print $1; exit }')
	[ -n "$uri" ] || uri=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null |
		grep -m1 '/debian/$' || true)
	[ -n "$uri" ] || die "no Debian archive in this machine's apt sources; set UA_DEBIAN_MIRROR=http://.../debian"
	echo "${uri%/}"
}

# A file's SHA-256 is the pinned one.
kpkg_verified() {
	[ "$(sha256sum "$1" | cut -d' ' -f1)" = "$UA_KPKG_SHA256" ]
}

# Fetch the pinned linux-source-7.2 (trixie-backports or sid), verify it, and
# unpack it. The unpacked tree is stamped with the package's version and
# checksum; a tree with another stamp is replaced.
fetch_kernel() {
	[ -n "${UA_KSRC_EXTERNAL:-}" ] && return
	local apt=$UA_CACHE/apt stamp=$UA_KSRC/.unmapped_alloc-kpkg
	local deb=$apt/dl/${UA_KPKG}_${UA_KPKG_VERSION}_all.deb
	local want="$UA_KPKG $UA_KPKG_VERSION $UA_KPKG_SHA256"
	[ -f "$UA_KSRC/Makefile" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return
	if [ -f "$deb" ] && ! kpkg_verified "$deb"; then
		stage "removing $deb: its SHA-256 is not the pinned one"
		rm -f "$deb"
	fi
	if [ ! -f "$deb" ]; then
		local mirror
		mirror=$(debian_mirror)
		apt_download "$apt" amd64 "$UA_KPKG=$UA_KPKG_VERSION" private <<SRC ||
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main
SRC
			die "$UA_KPKG $UA_KPKG_VERSION, the pinned kernel, is not served by $mirror (trixie-backports, sid)." \
				"Get that .deb from https://snapshot.debian.org/package/linux/$UA_KPKG_VERSION/" \
				"into $apt/dl/, or move the pin (UA_KPKG_VERSION and UA_KPKG_SHA256 in tools/testing/lib.sh)."
		kpkg_verified "$deb" ||
			die "$deb: SHA-256 $(sha256sum "$deb" | cut -d' ' -f1) is not the pinned $UA_KPKG_SHA256"
	fi
	# A tree unpacked before trees were stamped: the verified package in
	# the cache is the one it came from.
	if [ -f "$UA_KSRC/Makefile" ] && [ ! -e "$stamp" ] && [ -d "$UA_KSRC/.unmapped_alloc-patches" ]; then
		echo "$want" >"$stamp"
		return
	fi
	# Never delete a tree this set-up did not unpack (a user's UA_KSRC).
	if [ -e "$UA_KSRC" ] && [ ! -e "$stamp" ] && [ -n "$(ls -A "$UA_KSRC")" ]; then
		die "$UA_KSRC is a tree this set-up did not unpack; it is left alone." \
			"Set UA_KSRC_EXTERNAL=1 to build in it as it is, or move it away to get the pinned $UA_KPKG_VERSION there."
	fi
	stage "unpacking $UA_KPKG $UA_KPKG_VERSION (SHA-256 verified)"
	rm -rf "$apt/pkg" && dpkg -x "$deb" "$apt/pkg"
	local tarball
	tarball=$(ls "$apt/pkg/usr/src/$UA_KPKG".tar.* | head -1)
	rm -rf "$UA_KSRC.tmp" && mkdir -p "$UA_KSRC.tmp"
	tar -xf "$tarball" -C "$UA_KSRC.tmp" --strip-components=1
	echo "$want" >"$UA_KSRC.tmp/.unmapped_alloc-kpkg"
	rm -rf "$apt/pkg" "$UA_KSRC" && mv "$UA_KSRC.tmp" "$UA_KSRC"
}

# The arm64 guests' userspace: Debian's busybox-static for arm64 (the system
# stays single-architecture).
fetch_busybox_arm64() {
	local dir=$UA_CACHE/busybox-arm64 apt=$UA_CACHE/apt-arm64
	[ -x "$dir/bin/busybox" ] && return
	local mirror
	mirror=$(debian_mirror)
	apt_download "$apt" arm64 busybox-static:arm64 arm64 <<SRC ||
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main
SRC
		die "could not download busybox-static for arm64 from $mirror"
	rm -rf "$dir.tmp" && dpkg -x "$apt"/dl/busybox-static_*_arm64.deb "$dir.tmp"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# libcap for arm64, which the kernel's memfd_secret selftest links with
# (static): Debian's libcap-dev for arm64, unpacked, as busybox above.
fetch_libcap_arm64() {
	local dir=$UA_CACHE/libcap-arm64 apt=$UA_CACHE/apt-arm64
	[ -f "$dir/usr/lib/aarch64-linux-gnu/libcap.a" ] && return
	local mirror
	mirror=$(debian_mirror)
	apt_download "$apt" arm64 libcap-dev:arm64 arm64-libcap <<SRC ||
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main
SRC
		die "could not download libcap-dev for arm64 from $mirror"
	rm -rf "$dir.tmp" && dpkg -x "$(ls "$apt"/dl/libcap-dev_*_arm64.deb | tail -1)" "$dir.tmp"
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
	# By content, and a changed file gets the time of the copy: with the
	# repository's times kept, an edit made while a build ran (after the
	# copy it started from) would look older than the object built from the
	# file before it, and never be compiled.
	rsync -rlpc --delete --exclude=.git --exclude=.cache --exclude=.ci \
		"$UA_ROOT/" "$UA_KSRC/mm/unmapped_alloc/"
	rsync -rlpc "$UA_ROOT/include/" "$UA_KSRC/include/"
	# The guide, in the tree's memory management documentation (patch 0006).
	cmp -s "$UA_ROOT/Documentation/unmapped_alloc.rst" "$UA_KSRC/Documentation/mm/unmapped_alloc.rst" ||
		cp "$UA_ROOT/Documentation/unmapped_alloc.rst" "$UA_KSRC/Documentation/mm/unmapped_alloc.rst"
	# The Rust abstractions are the kernel crate's module unmapped_alloc.
	cmp -s "$UA_ROOT/rust/kernel_api.rs" "$UA_KSRC/rust/kernel/unmapped_alloc.rs" ||
		cp "$UA_ROOT/rust/kernel_api.rs" "$UA_KSRC/rust/kernel/unmapped_alloc.rs"
	# The hot-path helpers join the kernel crate's (patch 0002 includes
	# them), which CONFIG_RUST_INLINE_HELPERS inlines into Rust.
	cmp -s "$UA_ROOT/rust_helpers.c" "$UA_KSRC/rust/helpers/unmapped_alloc.c" ||
		cp "$UA_ROOT/rust_helpers.c" "$UA_KSRC/rust/helpers/unmapped_alloc.c"
}

mkdir -p "$UA_CACHE/logs"
case "${1:-all}" in
	deps) install_debs; install_rust ;;
	docs) install_debs "$APT_DOC_PKGS" ;;
	kernel) fetch_kernel ;;
	place) place_component ;;
	all)
		# Building bindgen-cli takes the CPU for minutes while apt
		# mostly waits for the network: the two at once.
		install_rust &
		rust=$!
		install_debs
		fetch_kernel
		wait $rust || die "installing the Rust toolchain or bindgen failed (logs in $UA_CACHE/logs)"
		place_component
		if [ "$UA_ARCH" = arm64 ]; then
			fetch_busybox_arm64
			fetch_libcap_arm64
		fi ;;
	*) die "usage: $0 [deps|docs|kernel|place|all]" ;;
esac
