#!/usr/bin/env python3
"""Medians (lower median) per server of the run.sh JSON files: summarize.py OUTDIR"""
import json, sys, glob, os, re, collections
d = sys.argv[1]
runs = collections.defaultdict(list)
for f in sorted(glob.glob(os.path.join(d, "*.json"))):
    m = re.match(r"(multi-m\d+|publish)-(.+)-r(\d+)\.json", os.path.basename(f))
    runs[(m.group(1), m.group(2))].append(json.load(open(f)))
def med(v):
    v = sorted(x for x in v if x is not None)
    return v[(len(v) - 1) // 2] if v else None
for (sc, srv), rs in sorted(runs.items()):
    if sc.startswith("multi"):
        keys = ["server_cpu_s", "replies", "delivered", "expected_deliveries", "lost", "duplicates",
                "out_of_order", "elapsed_s", "reconnects"]
    else:
        keys = ["server_cpu_per_push_us", "p50_ms", "p99_ms", "pushes_per_s", "delivered", "bad"]
    vals = {k: [r.get(k) for r in rs] for k in keys}
    print(f"{sc:12} {srv:16} n={len(rs)} ok={[r.get('ok') for r in rs]}")
    for k in keys:
        print(f"    {k:24} median {med(vals[k])!s:>10}   all {vals[k]}")
