# SPDX-License-Identifier: GPL-2.0
# Sourced by the 'make run' guest's /init on arm64: the GICv3 ITS driver on
# the component. The kernel was booted with the function tracer on
# set_memory_decrypted() and the ITS's page helper, and with the component's
# kmalloc_decrypted/kfree_decrypted events, so the trace holds every
# conversion and every ITT allocation since early boot. The host script
# unplugs and replugs a device through the QEMU monitor when asked.

its_irqs() { grep ' ITS-' /proc/interrupts | awk '{ s = 0; for (i = 2; i <= 3; i++) s += $i; t += s } END { print t + 0 }'; }
kmalloc_active() { awk '$1 ~ /^kmalloc-decrypted-/ { a += $4 } END { print a + 0 }' "$D/caches"; }
its_counts() {
	# Conversions made, and what Linux 7.2's scheme makes for the same
	# requests: one set_memory_decrypted() per page allocation (its table
	# helper, ITTs of a page or more) and one per 4 KiB page its ITT gen_pool
	# grows by, which is simulated here first-fit, newest chunk first, as
	# gen_pool_alloc() searches; the pool never shrinks.
	awk -v pagesz=4096 '
	function pool_alloc(ptr, n,    c, i, j, run) {
		for (c = chunks - 1; c >= 0; c--) {
			run = 0
			for (i = 0; i < 16; i++) {
				run = used[c, i] ? 0 : run + 1
				if (run == n) {
					for (j = i - n + 1; j <= i; j++) used[c, j] = 1
					where[ptr] = c " " (i - n + 1) " " n
					return
				}
			}
		}
		chunks++; grew++
		for (j = 0; j < n; j++) used[chunks - 1, j] = 1
		where[ptr] = (chunks - 1) " 0 " n
	}
	function pool_free(ptr,    f, j) {
		split(where[ptr], f, " ")
		for (j = f[2]; j < f[2] + f[3]; j++) used[f[1], j] = 0
		delete where[ptr]
	}
	# Callers in Rust (mangled _R...) are the component; the rest is the
	# ITS converting by itself before the component was up.
	/ set_memory_decrypted <-/ { if ($NF ~ /^<-_R/) comp++; else early++ }
	/ its_alloc_pages_node <-/ { pages++ }
	/ kmalloc_decrypted: / {
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^ptr=/) ptr = substr($i, 5)
			if ($i ~ /^bytes_req=/) req = substr($i, 11)
		}
		itts++
		if (req + 0 >= pagesz) pages++
		else pool_alloc(ptr, int((req + 255) / 256))
	}
	/ kfree_decrypted: / {
		ptr = substr($NF, 5)
		if (ptr in where) pool_free(ptr)
	}
	END {
		printf "its_conversions_component %d\n", comp
		printf "its_conversions_early %d\n", early
		printf "its_conversions_total %d\n", comp + early
		printf "linux72_page_allocations %d\n", pages
		printf "linux72_genpool_pages %d\n", grew
		printf "linux72_conversions %d\n", pages + grew
		printf "itt_allocations %d\n", itts
	}' "$T/trace"
}

mount -t devtmpfs devtmpfs /dev
section "GICv3 ITS on the component: MSI-X devices"
if ! grep -qw its_alloc_pages_node "$T/available_filter_functions"; then
	echo "FAIL: its_alloc_pages_node is not traceable (inlined?): cannot count 7.2's conversions"
	status=fail
fi
dmesg | grep -E 'ITS|GICv3' | sed 's/^\[[^]]*\] //' | head -n 8
lspci_like() { for d in /sys/bus/pci/devices/*; do echo "$(basename $d) $(cat $d/vendor):$(cat $d/device) driver=$(basename "$(readlink $d/driver)" 2>/dev/null)"; done; }
lspci_like
grep -E 'CPU0| ITS-' /proc/interrupts
before=$(its_irqs)
# Make every device interrupt: disk reads, entropy, console output.
# Each bounded in time: a missing interrupt must fail the run, not hang it.
timeout 30 dd if=/dev/vda of=/dev/null bs=4096 count=512 2>/dev/null ||
	{ echo "FAIL: reading virtio-blk"; status=fail; }
timeout 30 dd if=/dev/hwrng of=/dev/null bs=64 count=8 2>/dev/null ||
	{ echo "FAIL: reading virtio-rng"; status=fail; }
for p in /dev/vport*p*; do
	echo "ua-run: hello through $p" | timeout 30 dd of="$p" 2>/dev/null ||
		{ echo "FAIL: writing $p"; status=fail; }
done
after=$(its_irqs)
grep -E ' ITS-' /proc/interrupts
echo "ITS MSI-X interrupts: $before before the I/O, $after after"
if [ "$after" -le "$before" ]; then
	echo "FAIL: the MSI-X interrupt counts did not rise"
	status=fail
fi
nits=$(grep -c ' ITS-PCI-MSIX-.*virtio' /proc/interrupts)
[ "$nits" -ge 6 ] || { echo "FAIL: only $nits virtio MSI-X vectors behind the ITS"; status=fail; }

section "ITS memory in the component: ITTs in kmalloc-decrypted-*, tables in decrypted pages"
cat "$D/caches"
grep -E '^decrypted_(alloc_order[0-9]+|blocks_taken|conversions_to_shared) [1-9]' "$D/stats"
itt_objs=$(kmalloc_active)
[ "$itt_objs" -ge 3 ] || { echo "FAIL: no ITTs in kmalloc-decrypted-*"; status=fail; }

section "hot-unplug and replug of virtio-rng through the QEMU monitor"
rng=$(for d in /sys/bus/pci/devices/*; do
	case "$(cat $d/vendor):$(cat $d/device)" in 0x1af4:0x1044|0x1af4:0x1005) basename $d ;; esac
done)
[ -n "$rng" ] || { echo "FAIL: no virtio-rng device"; status=fail; }
echo "ua-run: monitor device_del rng0"
i=0
while [ -e "/sys/bus/pci/devices/$rng" ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
[ -e "/sys/bus/pci/devices/$rng" ] && { echo "FAIL: $rng was not removed"; status=fail; }
unplugged=$(kmalloc_active)
echo "device $rng removed after ${i}s: kmalloc-decrypted objects $itt_objs -> $unplugged"
[ "$unplugged" -lt "$itt_objs" ] || { echo "FAIL: the ITT was not freed"; status=fail; }
# QEMU finishes the unplug after the guest powered the slot off.
sleep 2
echo "ua-run: monitor device_add virtio-rng-pci,bus=rp2,id=rng0"
i=0
while [ "$(kmalloc_active)" -le "$unplugged" ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
replugged=$(kmalloc_active)
echo "device back after ${i}s: kmalloc-decrypted objects $unplugged -> $replugged"
[ "$replugged" = "$itt_objs" ] || { echo "FAIL: objects after replug $replugged, before unplug $itt_objs"; status=fail; }
timeout 30 dd if=/dev/hwrng of=/dev/null bs=64 count=4 2>/dev/null ||
	{ echo "FAIL: the replugged rng does not work"; status=fail; }
grep -E ' ITS-' /proc/interrupts | grep -i virtio || true

section "set_memory_decrypted() calls for these devices: converted ITS and Linux 7.2's scheme"
its_counts | tee /tmp/its-counts
conv=$(awk '$1 == "its_conversions_total" { print $2 }' /tmp/its-counts)
old=$(awk '$1 == "linux72_conversions" { print $2 }' /tmp/its-counts)
echo "converted ITS: $conv set_memory_decrypted() calls; Linux 7.2: $old for the same allocations"
# Stop tracing functions; the samples' part below uses the events only.
echo nop >"$T/current_tracer"
echo >"$T/trace"
