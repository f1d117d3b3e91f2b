#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the pKVM host for 'make test-coco': run the component's test
# kernel as a protected VM under ua-vmm, then power off. The guest's console
# and the VMM's checks go to this console.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /coco.env
echo "coco-host: $(dmesg | grep -m 1 -o 'Protected .* initialized successfully' || echo 'pKVM NOT initialized')"
if [ ! -e /dev/kvm ]; then
	echo "coco-host: no /dev/kvm"
else
	start=$(cut -d' ' -f1 /proc/uptime)
	initrd=
	[ -f /guest-initrd.cpio.gz ] && initrd="-i /guest-initrd.cpio.gz"
	/ua-vmm -k /Image -d /guest.dtb $initrd -m "$COCO_MEM_MIB" -c "$COCO_VCPUS"
	echo "coco-host: vmm exit $? after $(awk -v s="$start" '{ printf "%d", $1 - s }' /proc/uptime) s"
fi
poweroff -f
