#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the pKVM host for 'make test-coco' and 'make bench-coco': run the
# component's test or bench kernel as a protected VM under ua-vmm (with a
# virtio-blk disk if coco.env asks for one), then power off. The guest's console
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
	initrd= disk=
	[ -f /guest-initrd.cpio.gz ] && initrd="-i /guest-initrd.cpio.gz"
	# A virtio-blk disk for the guest (make bench-coco), device 0.
	if [ -n "${COCO_DISK_MIB:-}" ]; then
		dd if=/dev/zero of=/disk.img bs=1M count="$COCO_DISK_MIB" 2>/dev/null
		disk="--blk /disk.img"
	fi
	/ua-vmm -k /Image -d /guest.dtb $initrd -m "$COCO_MEM_MIB" -c "$COCO_VCPUS" $disk
	echo "coco-host: vmm exit $? after $(awk -v s="$start" '{ printf "%d", $1 - s }' /proc/uptime) s"
fi
poweroff -f
