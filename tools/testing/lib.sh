# SPDX-License-Identifier: GPL-2.0
# Shared settings and helpers for the unmapped_alloc pipeline scripts.

UA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
UA_CACHE=${UA_CACHE:-$UA_ROOT/.cache}
UA_KVER=7.2
UA_KPKG=linux-source-$UA_KVER
# The pinned kernel: this exact Debian package, checked against its SHA-256
# before it is unpacked (setup.sh). Change both together.
UA_KPKG_VERSION=7.2.13-1
UA_KPKG_SHA256=30a8c5fc63f9028a62e6d7b3f7f43bee67425dbce2a05fceba83f9b87c92083d
# An existing kernel tree may be used instead of the downloaded one.
UA_KSRC=${UA_KSRC:-$UA_CACHE/linux-source-$UA_KVER}
# Target architecture: x86_64 or arm64 (ARCH= on the make command line).
UA_ARCH=${UA_ARCH:-${ARCH:-x86_64}}
case "$UA_ARCH" in
	x86_64|x86) UA_ARCH=x86_64 UA_SUFFIX= ;;
	arm64|aarch64) UA_ARCH=arm64 UA_SUFFIX=-arm64 ;;
	*) printf 'error: unsupported ARCH=%s (x86_64 or arm64)\n' "$UA_ARCH" >&2; exit 1 ;;
esac
# UA_VARIANT=kcsan or kmsan: the test kernel with configs/kcsan.config or
# configs/kmsan.config in the place of configs/kasan.config (make kcsan, make
# kmsan), in a build directory and logs of its own.
[ -z "${UA_VARIANT:-}" ] || UA_SUFFIX=$UA_SUFFIX-$UA_VARIANT
# ARCH is kbuild's variable too; the scripts pass UA_ARCH on instead.
unset ARCH
export UA_ARCH
UA_BUILD=${UA_BUILD:-$UA_CACHE/build$UA_SUFFIX}
UA_CONFIGS=$UA_ROOT/tools/testing/configs
UA_LLVM=${UA_LLVM:--19}
UA_JOBS=${UA_JOBS:-$(nproc)}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
export PATH="$HOME/.cargo/bin:$PATH"
# rustc on the same LLVM major as clang-19 (1.85 is on LLVM 19.1, and is the
# tree's minimum), so that CONFIG_RUST_INLINE_HELPERS can inline the C
# helpers into Rust: the object fast paths turn preemption off and on
# through them. rustup selects the toolchain for every rustc, rustdoc,
# clippy and rustfmt run below.
UA_RUST_TOOLCHAIN=${UA_RUST_TOOLCHAIN:-1.85.0}
export RUSTUP_TOOLCHAIN=$UA_RUST_TOOLCHAIN

stage() { printf '==> [%s] %s\n' "$UA_ARCH" "$*" >&2; }
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

# The kernel image QEMU boots.
ua_kernel_image() {
	case "$UA_ARCH" in
	x86_64) echo "$UA_BUILD/arch/x86/boot/bzImage" ;;
	arm64) echo "$UA_BUILD/arch/arm64/boot/Image" ;;
	esac
}

# ua_kunit_results LOG PARSED: parse the KTAP output of a console log with
# kunit.py into PARSED, show its suite lines on stderr, and print
# "passed failed skipped" (crashes and errors count as failed). With
# UA_FAILURES set (test.sh), the failed tests' names are added to that file,
# one "PART: name (LOG)" line each, for the summary at the end.
ua_kunit_results() {
	python3 "$UA_KSRC/tools/testing/kunit/kunit.py" parse "$1" >"$2" 2>&1 || true
	grep -E '^\[[0-9:]+\] ' "$2" | sed -E 's/^\[[0-9:]+\] //' | grep -vE '^=+$' >&2 || true
	python3 - "$2" "${UA_FAILURES:-}" "${UA_PART:-$UA_ARCH}" "$(basename "$1")" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.findall(r'Ran (\d+) tests?: (.*)', text)
p = f = s = 0
if m:
    d = {k: int(v) for k, v in re.findall(r'(passed|failed|skipped|crashed|errors): (\d+)', m[-1][1])}
    p, s = d.get('passed', 0), d.get('skipped', 0)
    f = d.get('failed', 0) + d.get('crashed', 0) + d.get('errors', 0)
if sys.argv[2] and f:
    names = re.findall(r'^\[[0-9:]+\] \[(?:FAILED|CRASHED)\] (\S+)', text, re.M)
    with open(sys.argv[2], 'a') as out:
        for name in names or ['(no name: %d failed)' % f]:
            out.write('%s: %s (%s)\n' % (sys.argv[3], name, sys.argv[4]))
print(p, f, s)
PY
}

# ua_error MESSAGE: "error: MESSAGE" on stderr, and with UA_FAILURES set
# (test.sh) in that file for the summary at the end.
ua_error() {
	echo "error: $*" >&2
	[ -z "${UA_FAILURES:-}" ] || echo "${UA_PART:-$UA_ARCH}: error: $*" >>"$UA_FAILURES"
}

# ua_no_splats LOG OUT WHERE: the kernel splats of console LOG (splats.sh)
# into OUT; if it has any, an error (ua_error) "kernel splats in WHERE" with
# the first line, and the first 20 on stderr. Fails then.
ua_no_splats() {
	"$UA_ROOT/tools/testing/splats.sh" "$1" >"$2" && return 0
	ua_error "kernel splats in $3: $(head -n 1 "$2")"
	head -20 "$2" >&2
	return 1
}

# ua_initramfs_root DIR INIT: a fresh staging directory for a busybox
# initramfs with INIT as /init.
ua_initramfs_root() {
	local busybox
	busybox=$(ua_busybox)
	[ -x "$busybox" ] || die "busybox is missing at $busybox: run 'make setup'"
	rm -rf "$1" && mkdir -p "$1"/{bin,dev,proc,sys}
	cp "$busybox" "$1/bin/busybox"
	cp "$2" "$1/init"
	chmod +x "$1/init"
}

# ua_initramfs_pack DIR OUT: pack the staging directory into OUT.
ua_initramfs_pack() {
	(cd "$1" && find . | cpio -o -H newc --quiet | gzip -1) >"$2"
}

# The busybox that becomes the guests' userspace.
ua_busybox() {
	case "$UA_ARCH" in
	x86_64) echo /bin/busybox ;;
	arm64) echo "$UA_CACHE/busybox-arm64/bin/busybox" ;;
	esac
}

# The checks the scripts make outside the kernel's KUnit run (the kexec, the
# ITS device boot, the torture run, the deliberate leak) are KTAP results too:
# ua_check NAME OK records one ("ok"/"not ok" printed as well); ua_checks_results
# KTAP writes them as a KTAP document and parses it with kunit.py like the
# suites' output, printing "passed failed skipped".
UA_CHECKS=()
ua_check() {
	local n=$((${#UA_CHECKS[@]} + 1))
	if [ "$2" = 1 ]; then
		UA_CHECKS+=("ok $n $1")
		echo "ok: $1"
	else
		UA_CHECKS+=("not ok $n $1")
		echo "not ok: $1"
	fi
}
ua_checks_results() {
	if [ ${#UA_CHECKS[@]} = 0 ]; then
		echo 0 0 0
		return
	fi
	{
		echo "KTAP version 1"
		echo "1..${#UA_CHECKS[@]}"
		printf '%s\n' "${UA_CHECKS[@]}"
	} >"$1"
	ua_kunit_results "$1" "$1.parsed"
}

# ua_guest_prog OUT SRC [LIBS...]: build a static program of the guests'
# userspace for UA_ARCH from SRC into OUT (when SRC is newer); for arm64 with
# the cross compiler and Debian's arm64 libcap-dev, unpacked (setup.sh).
ua_guest_prog() {
	local out=$1 src=$2 cc=(gcc) lib=()
	shift 2
	if [ "$UA_ARCH" = arm64 ]; then
		local l=$UA_CACHE/libcap-arm64
		cc=(aarch64-linux-gnu-gcc -I"$l/usr/include")
		lib=(-L"$l/usr/lib/aarch64-linux-gnu")
	fi
	mkdir -p "$(dirname "$out")"
	if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
		logged "$UA_CACHE/logs/$(basename "$out")$UA_SUFFIX-build.log" "${cc[@]}" -static -O2 -Wall \
			-I"$UA_KSRC/tools/testing/selftests" -o "$out" "$src" "${lib[@]}" "$@"
	fi
}

# ua_secret_progs DIR: the kernel's own memfd_secret selftest
# (tools/testing/selftests/mm/memfd_secret.c of the tree, with libcap) and
# secret-probe.c, built into DIR/bin.
ua_secret_progs() {
	local bin=$UA_CACHE/selftests$UA_SUFFIX
	ua_guest_prog "$bin/memfd_secret" "$UA_KSRC/tools/testing/selftests/mm/memfd_secret.c" -lcap
	ua_guest_prog "$bin/secret-probe" "$UA_ROOT/tools/testing/secret-probe.c"
	cp "$bin/memfd_secret" "$bin/secret-probe" "$1/bin/"
}

# ua_memfd_secret_checks LOG: the selftest's results in the suites boot's
# console log, each a check (ua_check): its five tests (a skip fails: the
# syscall must work here; so does a test that never reported, say because the
# selftest hung and was killed), then whether secretmem's pages came from
# unmapped_alloc() and all went back to it (kmemleak-init.sh's counts), what
# secret-probe read through /proc/kcore, and what it found in ptdump.
UA_MEMFD_SECRET_TESTS="file_IO_is_blocked_as_expected
vmsplice_is_blocked_as_expected_with_fresh_page
vmsplice_is_blocked_as_expected_with_existing_page
process_vm_read_is_blocked_as_expected
ptrace_is_blocked_as_expected"
ua_memfd_secret_checks() {
	local log=$1 line name ok found
	local tap
	tap=$(sed -n '/ua-init: memfd_secret selftest begin/,/ua-init: memfd_secret selftest end/p' "$log" |
		tr -d '\r' | grep -E '^(not )?ok [0-9]+ ' || true)
	for name in $UA_MEMFD_SECRET_TESTS; do
		ok=0 found=
		while IFS= read -r line; do
			[ -n "$line" ] || continue
			[ "$(sed -E 's/^(not )?ok [0-9]+ //; s/ # SKIP.*//; s/[^A-Za-z0-9]+/_/g; s/_$//' <<<"$line")" = "$name" ] ||
				continue
			found=1
			case "$line" in
			not*|*"# SKIP"*) ;;
			*) ok=1 ;;
			esac
		done <<<"$tap"
		[ -n "$found" ] || echo "memfd_secret: no result for $name" >&2
		ua_check "memfd_secret_$name" $ok
	done
	# "ua-init: memfd_secret pages: A allocated, F freed, B bad frees"
	line=$(grep -oE 'memfd_secret pages: [0-9]+ allocated, [0-9]+ freed, [0-9]+ bad frees' "$log" | tail -n 1)
	echo "${line:-memfd_secret pages: no counts}" >&2
	ok=0
	if [[ $line =~ ([0-9]+)\ allocated,\ ([0-9]+)\ freed,\ ([0-9]+)\ bad ]]; then
		[ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] &&
			[ "${BASH_REMATCH[3]}" = 0 ] && ok=1
	fi
	ua_check secretmem_pages_from_component_and_back $ok
	# The same selftest on the per-page path (secretmem.unmapped_alloc=0).
	tap=$(sed -n '/ua-init: memfd_secret stock selftest begin/,/ua-init: memfd_secret stock selftest end/p' "$log" |
		tr -d '\r' | grep -E '^(not )?ok [0-9]+ ' || true)
	ok=0
	[ "$(grep -c '^ok [0-9]* [a-z]' <<<"$tap")" = 5 ] && ! grep -q 'SKIP' <<<"$tap" &&
		grep -q 'memfd_secret stock pages: 0 from the component' "$log" && ok=1
	ua_check memfd_secret_stock_path_with_the_switch_off $ok
	# secret-probe (secret-probe.c): kcore shows an ordinary page and hides
	# the secret one; ptdump shows the ordinary page's direct-map range
	# mapped and the secret page's not.
	grep -E 'secret-probe: (ptdump: )?(ordinary|secret) page' "$log" | tr -d '\r' >&2 || true
	ok=0
	grep -q 'secret-probe: ordinary page ok' "$log" &&
		grep -q 'secret-probe: secret page hidden' "$log" && ok=1
	ua_check kcore_reveals_no_secret $ok
	ok=0
	grep -q 'secret-probe: ptdump: ordinary page mapped' "$log" &&
		grep -q 'secret-probe: ptdump: secret page unmapped' "$log" &&
		grep -q 'secret-probe: exit 0' "$log" && ok=1
	ua_check ptdump_shows_the_secret_unmapped $ok
}

# ua_kmemleak_initrd: build the initramfs whose /init (kmemleak-init.sh) waits
# for the torture run if the kernel has one, runs the memfd_secret selftest
# when the command line asks (ua_memfd_secret), scans with kmemleak and
# reboots; print its path.
ua_kmemleak_initrd() {
	local root=$UA_CACHE/kmemleak-initramfs$UA_SUFFIX
	ua_initramfs_root "$root" "$UA_ROOT/tools/testing/kmemleak-init.sh"
	ua_secret_progs "$root"
	ua_initramfs_pack "$root" "$root.cpio.gz"
	echo "$root.cpio.gz"
}

# ua_kmemleak_verdict LOG: the last "kmemleak: N leaks" (or "... not available")
# line kmemleak-init.sh printed in a console log; nothing if it never scanned.
ua_kmemleak_verdict() {
	grep -oE 'kmemleak: ([0-9]+ leaks|not available)' "$1" | tail -n 1 || true
}

# ua_kmemleak_result LOG: print the verdict of the kmemleak scan in a console
# log ("kmemleak: N leaks", "... not available" or "... no scan"); on anything
# but 0 leaks, show the reports on stderr and fail.
ua_kmemleak_result() {
	local leaks
	leaks=$(ua_kmemleak_verdict "$1")
	echo "${leaks:-kmemleak: no scan}"
	[ "$leaks" = "kmemleak: 0 leaks" ] && return 0
	grep -A 12 '^unreferenced object' "$1" | head -60 >&2 || true
	return 1
}

# ua_kmemleak_lost LOG: the kmemleak scan of the unmapped_alloc_caught boot
# reported the object its kmemleak_lost_object test lost on purpose, and
# nothing else: one leak, of 300 bytes, allocated by kmalloc_decrypted()
# from lose_object() (the report's stack). Prints the verdict; fails otherwise.
ua_kmemleak_lost() {
	local leaks report
	leaks=$(ua_kmemleak_verdict "$1")
	report=$(grep -A 40 'unreferenced object' "$1" | tr -d '\r' || true)
	if [ "$leaks" = "kmemleak: 1 leaks" ] &&
		grep -qE '^unreferenced object 0x[0-9a-f]+ \(size 300\):' <<<"$report" &&
		grep -qE '^ +kmalloc_decrypted\+' <<<"$report" &&
		grep -qE '^ +lose_object\+' <<<"$report"; then
		echo "kmemleak: the lost object reported, 300 bytes from lose_object()"
		return 0
	fi
	echo "kmemleak: the lost object not reported as expected (${leaks:-no scan})"
	head -40 <<<"$report" >&2
	return 1
}

# ua_kexec_initrd: build the initramfs of the kexec boot (kexec-init.sh as
# /init): busybox, the sample modules, ua-kexec (kexec/ua-kexec.c, static),
# and in /kexec the kernel image and the second kernel's initramfs (the same
# /init, without the kernel); print its path.
ua_kexec_initrd() {
	local root=$UA_CACHE/kexec-initramfs$UA_SUFFIX inner=$UA_CACHE/kexec-inner$UA_SUFFIX cc
	case "$UA_ARCH" in
	x86_64) cc=clang$UA_LLVM ;;
	arm64) cc=aarch64-linux-gnu-gcc ;;
	esac
	ua_initramfs_root "$inner" "$UA_ROOT/tools/testing/kexec-init.sh"
	ua_initramfs_root "$root" "$UA_ROOT/tools/testing/kexec-init.sh"
	mkdir -p "$root"/{kexec,lib/modules}
	"$cc" -static -O2 -Wall -Werror -o "$root/bin/ua-kexec" "$UA_ROOT/tools/testing/kexec/ua-kexec.c" ||
		die "cannot build ua-kexec with $cc"
	find "$UA_BUILD/mm/unmapped_alloc/samples" -name '*.ko' -exec cp {} "$root/lib/modules/" \;
	cp "$(ua_kernel_image)" "$root/kexec/kernel"
	ua_initramfs_pack "$inner" "$root/kexec/initrd"
	ua_initramfs_pack "$root" "$root.cpio.gz"
	echo "$root.cpio.gz"
}

# ua_kexec_check LOG: the checks of a kexec boot (kexec-init.sh). The first
# kernel's shutdown, between the load and the second kernel's banner (whose
# own reboot runs unshare-all again), converted decrypted blocks back and
# failed nothing; the second kernel came up with no leak or failure counted.
# Prints the first kernel's lines of interest, an "error: kexec: ..." line on
# stderr per failed check, and returns 1 if any failed.
ua_kexec_check() {
	local first errors=() bad='ua-kexec: (FAIL|second kernel: )|unshare-all: .* [1-9][0-9]* failed'
	first=$(sed -n '/ua-kexec: loaded/,/Linux version/p' "$1")
	[ -n "$first" ] || errors+=("kexec_file_load() failed")
	grep -qE 'unshare-all: decrypted: [1-9][0-9]* blocks converted back, 0 failed' <<<"$first" ||
		errors+=("the first kernel converted no decrypted block back, or failed")
	grep -qE 'unshare-all: unmapped: [0-9]+ blocks converted back, 0 failed' <<<"$first" ||
		errors+=("the first kernel's unshare-all of the unmapped pages is missing or failed")
	grep -q 'ua-kexec: second kernel up' "$1" || errors+=("the second kernel did not come up")
	grep -qE "$bad" "$1" && errors+=("$(grep -E "$bad" "$1" | head -5)")
	grep -E 'ua-kexec: in use|unshare-all: ' <<<"$first" | sed 's/^\[[^]]*\] //' || true
	[ ${#errors[@]} = 0 ] && return 0
	printf 'error: kexec: %s\n' "${errors[@]}" >&2
	return 1
}

# ua_vmm_build: build ua-vmm, the test VMM of make test-coco
# (tools/testing/coco/vmm-rs, Rust on the rust-vmm crates), and print its
# path: a static arm64 binary from Rust's musl target, linked by rust-lld
# (vmm-rs/.cargo/config.toml), with the tree's toolchain (RUSTUP_TOOLCHAIN).
# Set-up adds the target and fetches the crates of Cargo.lock, the only step
# that reaches crates.io, once per Cargo.lock; the build itself is --offline.
UA_VMM_TARGET=aarch64-unknown-linux-musl
ua_vmm_build() {
	local src=$UA_ROOT/tools/testing/coco/vmm-rs out=$UA_CACHE/vmm-rs sum
	local stamp=$UA_CACHE/vmm-rs/fetched
	mkdir -p "$out"
	if ! rustup target list --installed | grep -qx "$UA_VMM_TARGET"; then
		stage "adding Rust's $UA_VMM_TARGET target to $RUSTUP_TOOLCHAIN"
		logged "$UA_CACHE/logs/coco-vmm-target.log" rustup target add "$UA_VMM_TARGET"
	fi
	sum=$(sha256sum "$src/Cargo.lock" | cut -d' ' -f1)
	if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
		stage "fetching ua-vmm's crates (cargo fetch)"
		(cd "$src" && logged "$UA_CACHE/logs/coco-vmm-fetch.log" cargo fetch --locked)
		echo "$sum" >"$stamp"
	fi
	stage "building ua-vmm (Rust, $UA_VMM_TARGET, static)"
	(cd "$src" && CARGO_TARGET_DIR=$out logged "$UA_CACHE/logs/coco-vmm-build.log" \
		cargo build --release --locked --offline --target "$UA_VMM_TARGET")
	echo "$out/$UA_VMM_TARGET/release/ua-vmm"
}

# ua_virtio_nodes DEV...: the device-tree nodes of ua-vmm's virtio devices
# (DEV: blk or rng, in ua-vmm's command-line order): device i at 0x0a000000
# + 0x200 * i with SPI 16 + i, level-triggered (ua-vmm holds the line high
# while the device's InterruptStatus is not 0); dma-coherent, as virtio is.
ua_virtio_nodes() {
	local i=0 dev base
	for dev in "$@"; do
		base=$((0x0a000000 + 0x200 * i))
		printf '\t/* ua-vmm --%s: device %d */\n' "$dev" $i
		printf '\tvirtio_mmio@%x {\n' $base
		printf '\t\tcompatible = "virtio,mmio";\n'
		printf '\t\treg = <0x0 0x%08x 0x0 0x200>;\n' $base
		printf '\t\tinterrupts = <0 %d 4>;\n' $((16 + i))
		printf '\t\tdma-coherent;\n'
		printf '\t};\n'
		i=$((i + 1))
	done
}

# ua_coco_guest_dtb OUT.dtb NODE_MIB CMDLINE INITRD [NODES]: the device tree
# of a protected guest of ua-vmm (coco/vmm-rs, whose guest-physical layout
# this is): two vCPUs, one on each of two NUMA nodes of NODE_MIB from
# 0x40000000, the vGICv3, the timer, PSCI, CMDLINE, the initramfs INITRD
# (ua-vmm loads it 128 MiB into RAM) and NODES (device nodes) in the root.
ua_coco_guest_dtb() {
	local out=$1 node_bytes=$(($2 << 20)) cmdline=$3 initrd=$4 nodes=${5:-}
	local base=0x40000000 istart iend dts=${1%.dtb}.dts
	istart=$((base + (128 << 20)))
	iend=$((istart + $(stat -c %s "$initrd")))
	cat >"$dts" <<DTS
/dts-v1/;
/ {
	compatible = "linux,dummy-virt";
	#address-cells = <2>;
	#size-cells = <2>;
	interrupt-parent = <&gic>;
	chosen {
		bootargs = "$cmdline";
		linux,initrd-start = <0x0 $(printf '0x%x' $istart)>;
		linux,initrd-end = <0x0 $(printf '0x%x' $iend)>;
	};
	memory@40000000 {
		device_type = "memory";
		reg = <0x0 $(printf '0x%x' $base) 0x0 $(printf '0x%x' $node_bytes)>;
		numa-node-id = <0>;
	};
	memory@$(printf '%x' $((base + node_bytes))) {
		device_type = "memory";
		reg = <0x0 $(printf '0x%x' $((base + node_bytes))) 0x0 $(printf '0x%x' $node_bytes)>;
		numa-node-id = <1>;
	};
	cpus {
		#address-cells = <1>;
		#size-cells = <0>;
		cpu@0 {
			device_type = "cpu";
			compatible = "arm,arm-v8";
			reg = <0>;
			enable-method = "psci";
			numa-node-id = <0>;
		};
		cpu@1 {
			device_type = "cpu";
			compatible = "arm,arm-v8";
			reg = <1>;
			enable-method = "psci";
			numa-node-id = <1>;
		};
	};
	distance-map {
		compatible = "numa-distance-map-v1";
		distance-matrix = <0 0 10>, <0 1 20>, <1 0 20>, <1 1 10>;
	};
	psci {
		compatible = "arm,psci-1.0", "arm,psci-0.2";
		method = "hvc";
	};
	gic: interrupt-controller@8000000 {
		compatible = "arm,gic-v3";
		#interrupt-cells = <3>;
		interrupt-controller;
		reg = <0x0 0x08000000 0x0 0x10000>, <0x0 0x080a0000 0x0 $(printf '0x%x' $((2 * 0x20000)))>;
	};
	timer {
		compatible = "arm,armv8-timer";
		interrupts = <1 13 0x304>, <1 14 0x304>, <1 11 0x304>, <1 10 0x304>;
		always-on;
	};
$nodes
};
DTS
	command -v dtc >/dev/null || die "dtc not found: run 'make setup'"
	logged "$UA_CACHE/logs/$(basename "$dts").log" dtc -I dts -O dtb -o "$out" "$dts"
}

# ua_coco_host_boot LOG INIT VMM IMAGE DTB GUEST_INITRD [FILE...]: pack the
# pKVM host's initramfs (INIT as /init, ua-vmm, the guest kernel IMAGE, its
# device tree and initramfs, and FILEs) and boot the host under QEMU/TCG:
# the arm64 test kernel at EL2 with kvm-arm.mode=protected, 2 GiB per node.
# Sets UA_COCO_QRC to QEMU's exit status.
ua_coco_host_boot() {
	local log=$1 init=$2 root=$UA_CACHE/coco-host-initramfs start
	stage "making the pKVM host's initramfs (ua-vmm, the guest kernel, its device tree)"
	ua_initramfs_root "$root" "$init"
	cp "$3" "$root/ua-vmm"
	cp "$4" "$root/Image"
	cp "$5" "$root/guest.dtb"
	cp "$6" "$root/guest-initrd.cpio.gz"
	shift 6
	[ $# = 0 ] || cp "$@" "$root/"
	ua_initramfs_pack "$root" "$root.cpio.gz"
	stage "booting the pKVM host under QEMU/TCG, the protected guest inside (console: $log)"
	start=$(date +%s)
	UA_COCO_QRC=0
	UA_QEMU_EL2=1 UA_QEMU_NODE_GIB=2 UA_QEMU_TIMEOUT=${UA_COCO_TIMEOUT:-1500} \
		"$UA_ROOT/tools/testing/qemu.sh" "$log" \
		"kvm-arm.mode=protected kunit.enable=0 debug_pagealloc=off" "$root.cpio.gz" ||
		UA_COCO_QRC=$?
	stage "QEMU finished in $(($(date +%s) - start)) s (exit $UA_COCO_QRC)"
}
