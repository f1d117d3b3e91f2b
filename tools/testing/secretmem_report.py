#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The secretmem table of 'make bench' from the guest's ua-secretmem lines.

Usage: secretmem_report.py LOG ARCH OUT.md

Each workload ran twice in one boot: secretmem on the component, then the
per-page path of 7.2 (secretmem.unmapped_alloc=0). Splits and IPIs are the
differences of the kernel's own counters around the run (vmstat, the CAL
line of /proc/interrupts); DirectMap and the linear map's entries are read
while every secret is held.
"""
import re
import sys


def parse(log):
    runs = {}
    for line in open(log, errors='replace'):
        m = re.search(r'ua-secretmem,(\S+)', line)
        if not m:
            continue
        kv = dict(f.split('=', 1) for f in m.group(1).split(',') if '=' in f)
        key = (kv['mode'], int(kv['procs']), int(kv['pages']))
        runs.setdefault(key, {})[kv['phase']] = kv
    return runs


def num(d, k):
    try:
        return int(d.get(k, ''))
    except ValueError:
        return None


def delta(r, k, a='before', b='held'):
    x, y = num(r.get(a, {}), k), num(r.get(b, {}), k)
    return None if x is None or y is None else y - x


def fmt(v):
    return '-' if v is None else str(v)


def main():
    log, arch, out = sys.argv[1:4]
    runs = parse(log)
    workloads = sorted({(p, n) for (_, p, n) in runs}, key=lambda w: (-w[0], w[1]))
    rows = ['| secrets | path | fault ns/page | munmap+close ns/page | level-2 splits | '
            'level-3 splits | DirectMap4k / 2M held (kB) | direct map in pages held (kB) | '
            'call IPIs per MiB |',
            '|---|---|---|---|---|---|---|---|---|']
    ratios = []
    for procs, pages in workloads:
        mib = procs * pages * 4096 / (1 << 20)
        times = {}
        for mode in ('component', 'stock'):
            r = runs.get((mode, procs, pages))
            if not r:
                continue
            t = r.get('times', {})
            fault, rel = num(t, 'fault_ns_per_page'), num(t, 'release_ns_per_page')
            times[mode] = (fault, rel)
            ipis = delta(r, 'cal_ipis', 'before', 'after')
            pte = num(r.get('held', {}), 'map_pte_kB')
            rows.append(
                f'| {procs} x {pages} pages ({mib:g} MiB) | '
                f'{"unmapped_alloc" if mode == "component" else "7.2 per page"} | '
                f'{fmt(fault)} | {fmt(rel)} | '
                f'{fmt(delta(r, "direct_map_level2_splits"))} | '
                f'{fmt(delta(r, "direct_map_level3_splits"))} | '
                f'{fmt(num(r.get("held", {}), "DirectMap4k_kB"))} / '
                f'{fmt(num(r.get("held", {}), "DirectMap2M_kB"))} | {fmt(pte)} | '
                f'{"-" if ipis is None else f"{ipis / mib:.0f}"} |')
        if 'component' in times and 'stock' in times and all(times['component']) \
                and all(times['stock']):
            ratios.append(f'{procs} x {pages}: fault {times["component"][0] / times["stock"][0]:.2f}x, '
                          f'munmap+close {times["component"][1] / times["stock"][1]:.2f}x '
                          f'of the per-page path')
    text = f'### secretmem, {arch}\n\n' + '\n'.join(rows) + '\n\n' + \
        ('Component against the per-page path, same boot: ' + '; '.join(ratios) + '.\n'
         if ratios else '')
    with open(out, 'w') as f:
        f.write(text)
    print(text)
    # Every workload must have run on both paths.
    sys.exit(0 if len(ratios) == len(workloads) and workloads else 1)


if __name__ == '__main__':
    main()
