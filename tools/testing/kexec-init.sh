#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the kexec boot (test-arch.sh), in both kernels.
#
# First kernel (after its KUnit run): load the samples, so that unmapped
# pages and decrypted objects are in use, and kexec_file_load() the same
# kernel. The kexec path shuts the devices down and then runs unshare-all,
# which logs what it converted back. Second kernel (ua_kexec=second on its
# command line): says it is up, shows the component's counters, reboots
# (QEMU runs with -no-reboot, so this ends the run).
#
# In the pKVM protected guest of make test-coco (ua_coco=1 on its command
# line) both kernels also ask the test VMM to sweep guest memory for pages it
# can read ("ua-coco: sweep TAG I/N", coco/vmm-rs): before the kexec it must find
# exactly the pages the component holds shared, in the second kernel none.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
D=/sys/kernel/debug/unmapped_alloc
coco=
if grep -q 'ua_coco=1' /proc/cmdline; then
	coco=1
	# The protected guest's only console is the early console, which has
	# no tty: speak through the kernel log.
	mount -t devtmpfs devtmpfs /dev
	exec >/dev/kmsg 2>&1
	grep -E 'Kernel (code|data)' /proc/iomem | sed 's/^ */ua-kexec: /'
fi

# sweep TAG: the VMM sweeps guest memory in 16 parts, each while this vCPU
# waits in the console write that asks for it (a short wait each: one longer
# than the guest's RCU stall timeout would be reported as a stall).
sweep() {
	i=0
	while [ $i -lt 16 ]; do
		echo "ua-coco: sweep $1 $i/16"
		i=$((i + 1))
	done
}

# Pages the decrypted instance holds shared now (made shared minus made
# private since boot).
shared_pages() {
	awk '$1 == "decrypted_pages_made_shared" { s = $2 }
		$1 == "decrypted_pages_made_private" { p = $2 }
		END { print s - p }' "$D/stats"
}

if grep -q 'ua_kexec=second' /proc/cmdline; then
	echo "ua-kexec: second kernel up"
	if [ -n "$coco" ]; then
		echo "ua-kexec: shared by the component in the second kernel: $(shared_pages) pages"
		sweep second-kernel
	fi
	grep -E 'leak|fail' "$D/stats" | grep -v ' 0$' | sed 's/^/ua-kexec: second kernel: /'
	reboot -f
fi

for m in unmapped_alloc_sample its_like_sample virtio_like_sample; do
	insmod /lib/modules/$m.ko || echo "ua-kexec: FAIL: insmod $m"
done
grep -E '_(used_pages|active_objs) ' "$D/stats" | grep -v ' 0$' |
	sed 's/^/ua-kexec: in use before kexec: /'
if [ -n "$coco" ]; then
	# Let the reserve refill settle, then have the host count what it can
	# read, between two readings of the component's count.
	sleep 2
	echo "ua-kexec: shared by the component before the sweep: $(shared_pages) pages"
	sweep before-kexec
	echo "ua-kexec: shared by the component after the sweep: $(shared_pages) pages"
fi
# The same console, no KUnit run again. In the protected guest the second
# kernel keeps no atomic reserve, so that it shares nothing itself and the
# host's sweep sees only what the first kernel left shared.
extra=
[ -n "$coco" ] && extra="unmapped_alloc.decrypted_reserve_low=0 unmapped_alloc.decrypted_reserve_high=0"
# On x86 the second kernel speaks from its first steps (before its console
# driver), so that a second kernel that stops early says where.
grep -q 'console=ttyS0' /proc/cmdline && extra="$extra earlyprintk=serial,ttyS0,115200"
cmdline="$(sed -e 's/kunit[.a-z_]*=[^ ]*//g' /proc/cmdline) kunit.enable=0 ua_kexec=second $extra"
/bin/ua-kexec /kexec/kernel /kexec/initrd "$(echo $cmdline)"
echo "ua-kexec: FAIL: kexec did not happen"
reboot -f
