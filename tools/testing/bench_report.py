#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the ua-bench console lines into results.csv, results.md and tables.

Every time is one figure per round; the allocators of a workload take turns
round by round. A ratio is computed round by round against the workload's
baseline (kmalloc; alloc_pages(__GFP_ZERO) for unmapped pages) and shown as
min / median / max over the rounds. A target counts as met only when the
worst round meets it.
"""
import csv
import re
import statistics
import sys

# Usage: bench_report.py OUTDIR ARCH CONSOLE_LOG...
out, arch, logs = sys.argv[1], sys.argv[2], sys.argv[3:]
SPLITS = {"x86_64": "direct map splits: 2M and 1G splits from /proc/vmstat",
          "arm64": "direct map splits: PMD-sized ranges of the linear map that stopped "
                   "being block-mapped (arm64 keeps no split counters)"}
FIELDS = ["conversions", "flushes", "splits", "peak_pages", "left_pages",
          "atomic_failures", "median_ns", "ops", "mean_ns"]
rows = []
lines_in = (line for log in logs for line in open(log, errors="replace"))
for line in lines_in:
    m = re.search(r"ua-bench,([^,]+),([^,]+),([^,]+),(.*)$", line.strip())
    if not m:
        continue
    kv = dict(p.split("=", 1) for p in m.group(4).split(","))
    r = {"run": m.group(1), "workload": m.group(2), "allocator": m.group(3),
         **{f: int(kv.get(f, 0)) for f in FIELDS}}
    r["rounds"] = [int(x) for x in kv.get("rounds", "").split("/") if x]
    if not r["rounds"] and r["ops"]:
        r["rounds"] = [r["median_ns"]]
    rows.append(r)
if not rows:
    sys.exit("no benchmark results in " + " ".join(logs))

with open(f"{out}/results.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["run", "workload", "allocator"] + FIELDS + ["rounds"])
    w.writeheader()
    w.writerows({**r, "rounds": "/".join(map(str, r["rounds"]))} for r in rows)


def get(run, workload, alloc):
    return next((r for r in rows if r["run"] == run and r["workload"] == workload
                 and r["allocator"] == alloc), None)


def baseline_of(workload):
    if workload.startswith("unmapped-"):
        return "alloc_pages_zero"
    if workload.startswith("pool-"):
        return None
    if workload.startswith(("dma-", "virtio-blk-")):
        return "dma-7.2"
    return "kmalloc"


def valid(r):
    return r and r["ops"] and r["rounds"] and all(r["rounds"])


def ratios(r, base):
    """Per-round ratios of r to base (rounds of the same index ran together)."""
    if not valid(r) or not valid(base):
        return []
    return [a / b for a, b in zip(r["rounds"], base["rounds"])]


def spread(v, fmt):
    if not v:
        return "n/a"
    return f"{fmt(min(v))} / {fmt(statistics.median(v))} / {fmt(max(v))}"


def ns(x):
    return f"{x:.0f}"


def x(v):
    return f"{v:.2f}"


lines = [f"## Architecture: {arch}", "", SPLITS.get(arch, ""), "",
         "Times: min / median / max over the rounds (allocators take turns round by "
         "round). Ratios: round by round against the workload's baseline "
         "(kmalloc; alloc_pages_zero for unmapped pages; dma-direct's and SWIOTLB's own "
         "path, dma-7.2, for the dma-coherent and virtio-blk workloads). The dma-coherent "
         "and virtio-blk workloads count conversions over all their rounds (real calls, "
         "by kprobes); a virtio-blk op is 1 MiB read or written.", ""]
for run in (r for r in dict.fromkeys(r["run"] for r in rows) if not r.startswith("cpus-")):
    title = {"real": "real cost (conversions are no-ops in this guest)",
             "sim-coco": "simulated CoCo cost: 5 us per set_memory_*() call",
             "pkvm": "real CoCo cost in a pKVM protected VM (make bench-coco): every "
                     "conversion is one MEM_SHARE/MEM_UNSHARE hypercall per 4 KiB page, "
                     "under nested TCG"}.get(run, run)
    lines += [f"### Run: {title}", "",
              "| workload | allocator | conversions | TLB flushes | direct map splits | "
              "peak pages | pages returned | atomic failures | ns per op | ratio |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in (r for r in rows if r["run"] == run):
        b = baseline_of(r["workload"])
        base = get(run, r["workload"], b) if b else None
        rt = spread(ratios(r, base), x) if base else "-"
        t = spread(r["rounds"], ns) if valid(r) else "n/a"
        returned = max(0, r["peak_pages"] - r["left_pages"])
        lines.append(f"| {r['workload']} | {r['allocator']} | {r['conversions']} | "
                     f"{r['flushes']} | {r['splits']} | {r['peak_pages']} | "
                     f"{returned} | {r['atomic_failures']} | {t} | {rt} |")
    lines.append("")

scale = sorted({int(r["run"][5:]) for r in rows if r["run"].startswith("cpus-")})
if scale:
    lines += ["### Scaling: the multi-CPU workloads booted with 1, 2 and 4 CPUs", "",
              "ns per alloc+free pair, median over the rounds (min / median / max of the "
              "per-round ratio). With one CPU the cross-CPU workload cannot run. "
              "QEMU runs each vCPU in a host thread; this machine has 2 cores, so "
              "4 vCPUs share them.", "",
              "| workload | CPUs | kmalloc ns | component ns | ratio |",
              "|---|---:|---:|---:|---:|"]
    for wl in ("churn-allcpu", "cross-cpu"):
        for n in scale:
            k, c = get(f"cpus-{n}", wl, "kmalloc"), get(f"cpus-{n}", wl, "component")
            if not (valid(k) and valid(c)):
                continue
            lines.append(f"| {wl} | {n} | {ns(statistics.median(k['rounds']))} | "
                         f"{ns(statistics.median(c['rounds']))} | "
                         f"{spread(ratios(c, k), x)} |")
    lines.append("")

targets = []


def target(name, ok, detail):
    targets.append(f"| {name} | {detail} | {'met' if ok else '**missed**'} |")


def ratio_target(name, workload, limit, alloc="component"):
    c, b = get("real", workload, alloc), get("real", workload, baseline_of(workload))
    v = ratios(c, b)
    if v:
        target(name, max(v) <= limit, f"{spread(v, x)} (min / median / max)")


ratio_target("ITS-like alloc+free median <= 1.3x kmalloc", "its", 1.3)
ratio_target("churn 256 B, one CPU <= 1.1x kmalloc", "churn-1cpu", 1.1)
ratio_target("churn 256 B, all CPUs <= 1.2x kmalloc", "churn-allcpu", 1.2)
ratio_target("virtio-like bursts in atomic context <= 1.2x kmalloc", "virtio", 1.2)
ratio_target("unmapped 64 MiB order 0, alloc <= 2x alloc_pages(__GFP_ZERO)",
             "unmapped-64M-order0", 2.0)
uc = get("real", "unmapped-64M-order0", "component")
uz = get("real", "unmapped-64M-order0", "alloc_pages_zero")
if uc and uz and uc["mean_ns"] and uz["mean_ns"]:
    # The component zeroes a whole block when it takes one: one allocation in 512
    # pays it, which the median does not show and the mean does.
    target("unmapped 64 MiB order 0, mean alloc (block zeroing included) <= 2x "
           "alloc_pages(__GFP_ZERO)", uc["mean_ns"] <= 2 * uz["mean_ns"],
           f"{uc['mean_ns']} vs {uz['mean_ns']} ns ({uc['mean_ns'] / uz['mean_ns']:.2f}x, "
           "first round)")
ratio_target("allocate on one CPU, free on another <= 1.5x kmalloc", "cross-cpu", 1.5)
growth = [r for r in rows if r["run"] == "real" and r["workload"].startswith("pool-")]
if growth and all(valid(r) for r in growth):
    first, last = growth[0], growth[-1]
    v = [a / b for a, b in zip(last["rounds"], first["rounds"])]
    # Flat: the largest pool costs no more than the smallest beyond their spread.
    ok = statistics.median(last["rounds"]) <= max(first["rounds"]) * 1.25
    target(f"allocation cost flat from {first['workload']} to {last['workload']}", ok,
           "median " + " -> ".join(ns(statistics.median(r["rounds"])) for r in growth)
           + f" ns; last/first per round {spread(v, x)}")
elif growth:
    target("allocation cost flat as the pool grows", False,
           "the pool did not reach " + growth[-1]["workload"])
c = get("real", "its", "component")
g = get("real", "its", "its-genpool")
if c and g:
    blocks = max(1, -(-c["peak_pages"] // 512))
    target("ITS-like conversions <= 1 per 2 MiB block, >= 100x fewer than gen_pool",
           c["conversions"] <= 2 * blocks and c["conversions"] * 100 <= g["conversions"],
           f"{c['conversions']} (both directions) vs {g['conversions']}")
if c:
    target("after free + shrink: all pages returned, all re-encrypted",
           c["left_pages"] == 0, f"{c['left_pages']} pages left")
u = get("real", "unmapped-64M-order0", "component")
if u:
    target("unmapped 64 MiB order-0: <= 32 splits and <= 32 TLB flushes",
           u["splits"] <= 32 and u["flushes"] <= 32,
           f"{u['splits']} splits, {u['flushes']} flushes")
v = get("real", "virtio", "component")
if v:
    target("0 atomic failures for bursts within the reserve", v["atomic_failures"] == 0,
           f"{v['atomic_failures']} failures")
if targets:
    lines += ["### Targets (real run; a ratio target is met when its worst round is)", "",
              "| target | measured | |", "|---|---|---|"] + targets
text = "\n".join(lines) + "\n"
open(f"{out}/results.md", "w").write(text)
print(text)
print(f"results: {out}/results.csv, {out}/results.md")
