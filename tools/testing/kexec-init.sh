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
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t debugfs debugfs /sys/kernel/debug
D=/sys/kernel/debug/unmapped_alloc

if grep -q 'ua_kexec=second' /proc/cmdline; then
	echo "ua-kexec: second kernel up"
	grep -E 'leak|fail' "$D/stats" | grep -v ' 0$' | sed 's/^/ua-kexec: second kernel: /'
	reboot -f
fi

for m in unmapped_alloc_sample its_like_sample virtio_like_sample; do
	insmod /lib/modules/$m.ko || echo "ua-kexec: FAIL: insmod $m"
done
grep -E '_(used_pages|active_objs) ' "$D/stats" | grep -v ' 0$' |
	sed 's/^/ua-kexec: in use before kexec: /'
# The same console, no KUnit run again.
cmdline="$(sed -e 's/kunit[.a-z_]*=[^ ]*//g' /proc/cmdline) kunit.enable=0 ua_kexec=second"
/bin/ua-kexec /kexec/kernel /kexec/initrd "$(echo $cmdline)"
echo "ua-kexec: FAIL: kexec did not happen"
reboot -f
