#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the ua-bench console lines into results.csv, results.md and tables."""
import csv
import re
import sys

log, out = sys.argv[1], sys.argv[2]
arch = sys.argv[3] if len(sys.argv) > 3 else "x86_64"
SPLITS = {"x86_64": "direct map splits: 2M and 1G splits from /proc/vmstat",
          "arm64": "direct map splits: PMD-sized ranges of the linear map that stopped "
                   "being block-mapped (arm64 keeps no split counters)"}
FIELDS = ["conversions", "flushes", "splits", "peak_pages", "left_pages",
          "atomic_failures", "median_ns", "ops"]
rows = []
for line in open(log, errors="replace"):
    m = re.search(r"ua-bench,([^,]+),([^,]+),([^,]+),(.*)$", line.strip())
    if not m:
        continue
    kv = dict(p.split("=", 1) for p in m.group(4).split(","))
    rows.append({"run": m.group(1), "workload": m.group(2), "allocator": m.group(3),
                 **{f: int(kv.get(f, 0)) for f in FIELDS}})
if not rows:
    sys.exit("no benchmark results in " + log)

with open(f"{out}/results.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["run", "workload", "allocator"] + FIELDS)
    w.writeheader()
    w.writerows(rows)


def get(run, workload, alloc):
    return next((r for r in rows if r["run"] == run and r["workload"] == workload
                 and r["allocator"] == alloc), None)


lines = [f"## Architecture: {arch}", "", SPLITS.get(arch, ""), ""]
for run in dict.fromkeys(r["run"] for r in rows):
    title = {"real": "real cost (conversions are no-ops in this guest)",
             "sim-coco": "simulated CoCo cost: 5 us per set_memory_*() call",
             "pkvm": "real CoCo cost in a pKVM protected VM (make bench-coco): every "
                     "conversion is one MEM_SHARE/MEM_UNSHARE hypercall per 4 KiB page, "
                     "under nested TCG"}.get(run, run)
    lines += [f"### Run: {title}", "",
              "| workload | allocator | conversions | TLB flushes | direct map splits | "
              "peak pages | pages returned | atomic failures | median ns | ratio to kmalloc |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in (r for r in rows if r["run"] == run):
        base = get(run, r["workload"], "kmalloc")
        ratio = (f"{r['median_ns'] / base['median_ns']:.2f}"
                 if base and base["median_ns"] and r["ops"] else "n/a")
        ns = r["median_ns"] if r["ops"] else "n/a"
        returned = max(0, r["peak_pages"] - r["left_pages"])
        lines.append(f"| {r['workload']} | {r['allocator']} | {r['conversions']} | "
                     f"{r['flushes']} | {r['splits']} | {r['peak_pages']} | "
                     f"{returned} | {r['atomic_failures']} | {ns} | {ratio} |")
    lines.append("")

targets = []


def target(name, ok, detail):
    targets.append(f"| {name} | {detail} | {'met' if ok else '**missed**'} |")


c = get("real", "its", "component")
g = get("real", "its", "its-genpool")
k = get("real", "its", "kmalloc")
if c and g:
    blocks = max(1, -(-c["peak_pages"] // 512))
    target("ITS-like conversions <= 1 per 2 MiB block, >= 100x fewer than gen_pool",
           c["conversions"] <= 2 * blocks and c["conversions"] * 100 <= g["conversions"],
           f"{c['conversions']} (both directions) vs {g['conversions']}")
if c and k and k["peak_pages"]:
    target("footprint <= 1.15x kmalloc", c["peak_pages"] <= 1.15 * k["peak_pages"],
           f"{c['peak_pages']} vs {k['peak_pages']} pages "
           f"({c['peak_pages'] / k['peak_pages']:.2f}x)")
if c:
    target("after free + shrink: all pages returned, all re-encrypted",
           c["left_pages"] == 0, f"{c['left_pages']} pages left")
c1 = get("real", "churn-1cpu", "component")
k1 = get("real", "churn-1cpu", "kmalloc")
if c1 and k1 and k1["median_ns"]:
    target("256 B alloc+free <= 1.5x kmalloc (one CPU)",
           c1["median_ns"] <= 1.5 * k1["median_ns"],
           f"{c1['median_ns']} vs {k1['median_ns']} ns "
           f"({c1['median_ns'] / k1['median_ns']:.2f}x)")
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
    lines += ["### Targets (real run)", "", "| target | measured | |", "|---|---|---|"] + targets
text = "\n".join(lines) + "\n"
open(f"{out}/results.md", "w").write(text)
print(text)
print(f"results: {out}/results.csv, {out}/results.md")
