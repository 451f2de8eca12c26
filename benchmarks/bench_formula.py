"""Benchmark: how fast kvcalc sizes workloads and starts up. Prints figures; asserts nothing.

Run: python benchmarks/bench_formula.py
"""

from __future__ import annotations

import subprocess
import sys
import time

from kvcalc.engines import ENGINES
from kvcalc.formula import Workload, kv_cache
from kvcalc.presets import load_all_models


def main() -> None:
    start = time.perf_counter()
    models = load_all_models()
    load_s = time.perf_counter() - start
    print(f"load + validate {len(models)} presets: {load_s * 1000:.1f} ms")

    n = 0
    start = time.perf_counter()
    for spec in models.values():
        for engine in ENGINES.values():
            for seq in (1, 1000, 8192, 131072):
                for batch in (1, 64):
                    try:
                        kv_cache(spec, Workload(seq_len=seq, batch=batch), engine)
                    except Exception:
                        continue
                    n += 1
    elapsed = time.perf_counter() - start
    print(f"kv_cache: {n:,} workloads in {elapsed * 1000:.1f} ms = {elapsed / n * 1e6:.1f} µs each")

    runs = 5
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run(
            [sys.executable, "-m", "kvcalc", "calc", "llama-3.1-8b", "--format", "json"],
            check=True,
            capture_output=True,
        )
    per_call = (time.perf_counter() - start) / runs
    print(f"`python -m kvcalc calc ... --format json` wall time: {per_call * 1000:.0f} ms per call")


if __name__ == "__main__":
    main()
