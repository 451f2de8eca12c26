"""Benchmark: how fast kvcalc sizes workloads and starts up. Prints figures; asserts nothing.

Run: python benchmarks/bench_formula.py
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc

from kvcalc.engines import ENGINES
from kvcalc.formula import Workload, kv_cache
from kvcalc.presets import load_all_models


def main() -> None:
    tracemalloc.start()
    start = time.perf_counter()
    models = load_all_models()
    load_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"load + validate {len(models)} presets: {load_s * 1000:.1f} ms, peak {peak / 2**20:.1f} MiB"
    )

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

    from kvcalc.planner import Plan, fit, min_gpus
    from kvcalc.presets import load_gpu

    h100 = load_gpu("h100-80gb")
    start = time.perf_counter()
    for name in ("llama-3.1-8b", "llama-3.1-70b", "gemma-2-9b", "deepseek-v3"):
        plan = Plan(models[name], h100, ENGINES["vllm"], Workload(seq_len=32768, batch=8))
        fit(plan)
        min_gpus(plan)
    elapsed = time.perf_counter() - start
    print(f"fit + min_gpus (4 models, max batch/context searches): {elapsed * 1000:.1f} ms")

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
