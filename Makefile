# SPDX-License-Identifier: GPL-2.0-only
#
# User entry points of the unmapped_alloc component. Inside a kernel tree,
# kbuild reads the Kbuild file instead of this one.
#
#   make run    set up, build, boot the kernel in QEMU, exercise the allocator
#   make test   set up, build, run the KUnit suites under QEMU
#   make bench  benchmark tables against the baselines (QUICK=1: only the
#               single-CPU object workloads, raw figures, in a minute)
#   make torture    the torture test, 10 minutes per architecture
#               (DURATION=seconds to change): every API at once under CPU
#               hotplug, reclaim, fault injection and a hostile host
#   make test-coco  the suites inside a pKVM protected VM (arm64, nested
#               under QEMU), the host checking what it can read; then
#               virtio-blk and virtio-rng in it (coco-virtio.sh)
#   make bench-coco the ITS-like, churn and DMA workloads in that protected
#               VM: dma_alloc_coherent() cycles, virtio-blk throughput and
#               the kernel's DMA map benchmark, 7.2's path against the
#               component's, in one run
#   make kcsan  the x86_64 part of 'make test' on a KCSAN kernel (instead of
#               KASAN): the suites, the kexec and the torture run, no report
#   make kmsan  the same on a KMSAN kernel: no report, and the caught suite's
#               reads of memory nobody initialised reported
#   make mutants the test of the tests (x86_64): boot the suites with each
#               deliberate bug of rust/mutant.rs, list what each made fail
#               and the tests none made fail (.cache/logs/mutants.md)
#   make series the component as a patch series against the pinned 7.2 tree
#               (git format-patch with a cover letter, in .cache/series/)
#
# ARCH=x86_64 (the default for run and bench) or ARCH=arm64 (cross-built
# with LLVM, QEMU virt with GICv3). 'make test' without ARCH runs both.
#
# Downloads and build outputs go to .cache/ (UA_CACHE=... to move it).

T := tools/testing

.PHONY: all run test test-coco torture bench bench-coco kcsan kmsan mutants series setup build check clean distclean

all: run

setup:
	@$(T)/setup.sh all

build:
	@$(T)/build.sh

test:
	@$(T)/test.sh

run:
	@$(T)/run.sh

test-coco:
	@$(T)/coco.sh
	@$(T)/coco-virtio.sh

bench-coco:
	@$(T)/coco.sh bench

bench:
	@$(T)/bench.sh

series:
	@$(T)/series.sh

torture:
	@rc=0; for a in $${ARCH:-x86_64 arm64}; do \
		UA_ARCH=$$a ARCH= $(T)/torture.sh || rc=1; \
	done; exit $$rc

kcsan:
	@UA_VARIANT=kcsan UA_ARCH=x86_64 ARCH= $(T)/test-arch.sh

kmsan:
	@UA_VARIANT=kmsan UA_ARCH=x86_64 ARCH= $(T)/test-arch.sh

mutants:
	@UA_ARCH=x86_64 ARCH= $(T)/mutants.sh

# Style checks: rustfmt with the tree's configuration, clippy, checkpatch.
check:
	@$(T)/check.sh

clean:
	rm -rf .cache/build .cache/build-bench .cache/bench .cache/logs \
		.cache/build-arm64 .cache/build-bench-arm64 .cache/bench-arm64 \
		.cache/build-kcsan .cache/build-kmsan .cache/coco

distclean:
	rm -rf .cache
