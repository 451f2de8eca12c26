"""Sweep throughput against the csv-module floor, and a sweep's peak memory.

1. A 1,000,000-point calc sweep (Llama-3.1-8B, 1,000 lengths × 1,000 batches) written
   with csv.writer to a null sink, against the floor: the same csv.writer writing the same
   columns from 1,000 of those rows cycled (no computing at all). Ratio = floor / sweep.
2. A 1,000,000-point fit sweep (4 models × 5 GPUs × 50 lengths × 1,000 batches): rows/s.
3. `kvcalc sweep` as a process writing 1,000,000 rows to a file: wall time and peak RSS.
Prints figures; asserts nothing. Run: python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import csv
import io
import itertools
import resource
import tempfile
import time
from pathlib import Path

from _common import PYTHON, load, run

from kvcalc.sweep import Grid, iter_rows


class _Null(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def calc_vs_floor() -> None:
    grid = Grid(models=("llama-3.1-8b",), seqs=tuple(range(1, 1001)), batches=tuple(range(1, 1001)))
    n = grid.size
    start = time.perf_counter()
    writer = csv.writer(_Null())
    writer.writerow(grid.columns)
    writer.writerows(iter_rows(grid))
    sweep_s = time.perf_counter() - start
    sample = list(itertools.islice(iter_rows(grid), 1000))
    start = time.perf_counter()
    writer = csv.writer(_Null())
    writer.writerow(grid.columns)
    writer.writerows(itertools.islice(itertools.cycle(sample), n))
    floor_s = time.perf_counter() - start
    print(
        f"  calc sweep to CSV: {n:,} rows in {sweep_s:.2f} s = {n / sweep_s:,.0f} rows/s; "
        f"csv floor {n / floor_s:,.0f} rows/s; ratio {floor_s / sweep_s:.2f}x of the floor"
    )


def fit_rows() -> None:
    grid = Grid(
        models=("llama-3.1-8b", "llama-3.1-70b", "qwen3-30b-a3b", "gemma-3-27b"),
        gpus=("h100-80gb", "a100-80gb", "l40s", "h200", "mi300x"),
        seqs=tuple(range(1024, 1024 * 51, 1024)),
        batches=tuple(range(1, 1001)),
    )
    n = grid.size
    start = time.perf_counter()
    count = sum(1 for _ in iter_rows(grid))
    seconds = time.perf_counter() - start
    print(f"  fit sweep: {count:,} rows in {seconds:.2f} s = {count / seconds:,.0f} rows/s")
    assert count == n


def process() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep.csv"
        argv = [PYTHON, "-m", "kvcalc", "sweep", "-m", "llama-3.1-8b", "--seq", "1..1000:+1",
                "--batch", "1..1000:+1", "-o", str(out)]  # fmt: skip
        wall, code, rss = run(argv)
        size = out.stat().st_size if out.exists() else 0
        print(
            f"  `kvcalc sweep` process, 1,000,000 rows to a file: {wall:.2f} s (exit {code}), "
            f"peak RSS {rss / 2**20:.1f} MiB, file {size / 1e6:.1f} MB"
        )


def main() -> None:
    print(f"sweeps ({load()})")
    process()  # first: a child forked from a large parent reports the parent's pages
    calc_vs_floor()
    fit_rows()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process after both in-process sweeps: {peak:.1f} MiB")


if __name__ == "__main__":
    main()
