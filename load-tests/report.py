#!/usr/bin/env python3
"""Prints one run's numbers (the directory run.sh wrote) and the ratios the targets are
stated in, as Markdown table rows for docs/performance.md.

  report.py --store postgres --dir RESULTS
"""

import argparse
import json
import pathlib
import re

LOOKUPS = re.compile(r'^larder_cache_lookups_total\{cache="([a-z_]+)",result="([a-z]+)"\} ([0-9.e+]+)$')
BATCHES = re.compile(r'^larder_store_batch_size_(sum|count)\{operation="([a-z]+)"\} ([0-9.e+]+)$')


def lookups(path):
    counts = {}
    for line in pathlib.Path(path).read_text().splitlines():
        m = LOOKUPS.match(line)
        if m:
            counts[(m[1], m[2])] = float(m[3])
    return counts


def batches(path):
    """(operation, sum|count) -> value, from the batch-size histogram."""
    found = {}
    for line in pathlib.Path(path).read_text().splitlines():
        m = BATCHES.match(line)
        if m:
            found[(m[2], m[1])] = float(m[3])
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    d = pathlib.Path(args.dir)
    fresh = json.loads((d / "fresh.json").read_text())
    dups = json.loads((d / "duplicates.json").read_text())
    half = json.loads((d / "half.json").read_text())
    ceiling = {}
    for line in (d / "ceiling.txt").read_text().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "clients" in fields:
            ceiling[int(fields["clients"])] = fields
    reference = float(ceiling[8]["tps"])
    # Lookups during the bursts: the counters after, less those before.
    before, after = lookups(d / "metrics-before.txt"), lookups(d / "metrics-after.txt")
    hits = {}
    for cache in ("webhook_token", "mappings", "api_key"):
        n = {r: after.get((cache, r), 0) - before.get((cache, r), 0) for r in ("hit", "miss", "error")}
        total = sum(n.values())
        hits[cache] = (n["hit"] / total * 100) if total else None
    rss_mib = int((d / "rss-kib.txt").read_text().strip()) / 1024

    def row(what, r):
        cpu = r.get("server_cpu_ms_per_request")
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        return (
            f"| {args.store} | {what} | {r['requests']} | {r['per_second']:,.0f} | {r['p50_ms']:.1f} ms "
            f"| {r['p99_ms']:.1f} ms | {cpu:.2f} ms | {statuses} |"
        )

    print("| store | burst | requests | answers/s | p50 | p99 | Larder CPU a request | statuses |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(row("fresh", fresh))
    print(row("duplicates", dups))
    print(row("fresh, half rate", half))
    print()
    for clients, c in sorted(ceiling.items()):
        print(f"ceiling, pgbench, {clients} clients: {float(c['tps']):,.0f} TPS, p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms")
    print(f"fresh / ceiling (8 clients): {fresh['per_second'] / reference:.2f}x (target 1.5x)")
    print(f"fresh p99: {fresh['p99_ms']:.1f} ms (target 50 ms); at half rate: {half['p99_ms']:.1f} ms (target 10 ms)")
    print(f"duplicates: {dups['per_second']:,.0f}/s (target 10,000), p99 {dups['p99_ms']:.1f} ms (target 10 ms)")
    shown = ", ".join(f"{k} {v:.1f} %" if v is not None else f"{k} -" for k, v in hits.items())
    print(f"cache hits during the bursts: {shown} (target 99 %)")
    b0, b1 = batches(d / "metrics-before.txt"), batches(d / "metrics-after.txt")
    sizes = []
    for op in ("apply", "record"):
        n = b1.get((op, "count"), 0) - b0.get((op, "count"), 0)
        total = b1.get((op, "sum"), 0) - b0.get((op, "sum"), 0)
        sizes.append(f"{op} {total / n:.1f} ({n:,.0f} batches)" if n else f"{op} -")
    print(f"deliveries a batch, on average: {', '.join(sizes)}")
    print(f"RSS after the bursts: {rss_mib:.0f} MiB")
    welcome = d / "welcome-emails.txt"
    if welcome.exists():
        print(f"welcome emails to new members during the run: {welcome.read_text().strip()}")


if __name__ == "__main__":
    main()
