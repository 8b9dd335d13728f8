#!/usr/bin/env python3
"""Runs the compare bench's `tracing_*` rows in RUNS processes (default 20)
and prints, per thread count, the layer's median time and the per-process
ratios of the two tracing-opentelemetry rows to it (median, least,
greatest, how many reach 5).

    cargo bench -p tracer-benches --bench compare --no-run
    python3 benches/scripts/tracing_ratios.py [RUNS]
"""
import glob
import os
import re
import statistics
import subprocess
import sys

UNITS = {"ns": 1e-3, "µs": 1.0, "ms": 1e3}
ROW = re.compile(r"^[├╰]─ (\w+)")
ARG = re.compile(r"[├╰]─ (\d+)\s")
THREADS = re.compile(
    r"t=(\d)\s+([\d.]+) (ns|µs|ms)\s+│\s+([\d.]+) (ns|µs|ms)\s+│\s+([\d.]+) (ns|µs|ms)"
)


def newest_binary():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "deps")
    found = [b for b in glob.glob(os.path.join(root, "compare-*")) if not b.endswith(".d")]
    if not found:
        sys.exit("no compare binary: cargo bench -p tracer-benches --bench compare --no-run")
    return max(found, key=os.path.getmtime)


def medians(binary, n=100):
    """{(row, threads): median in µs} at argument n, from one process."""
    out = subprocess.run(
        [binary, "--bench", "--sample-count", "300", "tracing_layer", "tracing_otel", "tracing_registry"],
        capture_output=True, text=True, check=True,
    ).stdout
    row, arg, found = None, None, {}
    for line in out.splitlines():
        if m := ROW.match(line):
            row, arg = m.group(1), None
        if (m := ARG.search(line)) and "t=" not in line:
            arg = int(m.group(1))
        if (m := THREADS.search(line)) and arg == n:
            found[(row, int(m.group(1)))] = float(m.group(6)) * UNITS[m.group(7)]
    return found


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    binary = newest_binary()
    seen = {}
    for _ in range(runs):
        m = medians(binary)
        for t in (1, 2):
            layer = m[("tracing_layer", t)]
            seen.setdefault(("layer µs", t), []).append(layer)
            seen.setdefault(("registry µs", t), []).append(m[("tracing_registry", t)])
            for row in ("tracing_otel", "tracing_otel_batch"):
                seen.setdefault((row + " µs", t), []).append(m[(row, t)])
                seen.setdefault((row + " / layer", t), []).append(m[(row, t)] / layer)
    for (what, t), v in sorted(seen.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        line = f"t={t} {what:26} median {statistics.median(v):8.2f}  least {min(v):8.2f}  greatest {max(v):8.2f}"
        if what.endswith("/ layer"):
            line += f"  at least 5: {sum(x >= 5 for x in v)} of {len(v)}"
        print(line)


if __name__ == "__main__":
    main()
