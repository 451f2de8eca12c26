"""`kvcalc check` per deployment, beyond start-up, and its memory at 100,000 deployments.

Deployment files of 1, 10,000 and 100,000 entries cycle over 40 (model, GPU, tp, engine)
set-ups and varied seq/batch; each is checked by a `kvcalc check FILE --format csv`
process. Per deployment = (time(N) − time(1)) / (N − 1); peak RSS of each process shows
whether memory grows with N. Prints figures; asserts nothing.
Run: python benchmarks/bench_check.py
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from _common import PYTHON, load, run

SETUPS = [
    (model, gpu, tp, engine)
    for model, tp in (("llama-3.1-8b", 1), ("llama-3.1-70b", 4), ("qwen3-30b-a3b", 2), ("gemma-3-27b", 2))
    for gpu in ("h100", "a100-80gb", "l40s", "h200", "mi300x")
    for engine in ("vllm", "sglang")
]  # fmt: skip


def write(path: Path, n: int) -> None:
    seqs = (1024, 4096, 8192, 32768)
    with path.open("w") as out:
        out.write("deployments:\n")
        for i, (model, gpu, tp, engine) in zip(range(n), itertools.cycle(SETUPS), strict=False):
            out.write(
                f"  - name: d{i}\n    model: {model}\n    gpu: {gpu}\n    tp: {tp}\n"
                f"    engine: {engine}\n    seq: {seqs[i % 4]}\n    batch: {1 + i % 64}\n"
            )


def main() -> None:
    print(f"check ({load()})")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 10_000, 100_000):
            path = Path(tmp) / f"d{n}.yaml"
            write(path, n)
            wall, code, rss = run([PYTHON, "-m", "kvcalc", "check", str(path), "-f", "csv"])
            results[n] = wall
            print(
                f"  {n:>7,} deployments: {wall:6.2f} s (exit {code}), peak RSS {rss / 2**20:6.1f} MiB"
            )
    for n in (10_000, 100_000):
        per = (results[n] - results[1]) / (n - 1)
        print(f"  beyond start-up, at {n:,}: {per * 1000:.3f} ms per deployment")


if __name__ == "__main__":
    main()
