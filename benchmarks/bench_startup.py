"""Start-up: whole-process wall time of kvcalc commands as ratios to a no-op typer command.

Each command runs `rounds` times, interleaved with the no-op (benchmarks/_noop_typer.py)
on the same interpreter; the medians are compared, so machine load mostly cancels, and so
are the fastest runs (the least disturbed ones, a steadier figure on a shared machine).
Prints figures; asserts nothing. Run: python benchmarks/bench_startup.py [rounds]
"""

from __future__ import annotations

import statistics
import sys

from _common import PYTHON, ROOT, load, timings

COMMANDS = {
    "no-op typer command": [PYTHON, str(ROOT / "benchmarks" / "_noop_typer.py")],
    "kvcalc --version": [PYTHON, "-m", "kvcalc", "--version"],
    "kvcalc --help": [PYTHON, "-m", "kvcalc", "--help"],
    "calc llama-3.1-8b --format json": [
        PYTHON, "-m", "kvcalc", "calc", "llama-3.1-8b", "--format", "json",
    ],
    "fit llama-3.1-8b (all GPUs) --format json": [
        PYTHON, "-m", "kvcalc", "fit", "llama-3.1-8b", "--format", "json",
    ],
    "fit llama-3.1-70b --batch 1000000": [
        PYTHON, "-m", "kvcalc", "fit", "llama-3.1-70b", "--batch", "1000000", "--format", "json",
    ],
    "presets list --format json": [PYTHON, "-m", "kvcalc", "presets", "list", "--format", "json"],
}  # fmt: skip


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    print(f"start-up over {rounds} interleaved runs ({load()}): median, then fastest run")
    times = timings(COMMANDS, rounds)
    median = {name: statistics.median(t) for name, t in times.items()}
    fastest = {name: min(t) for name, t in times.items()}
    floor, floor_fastest = median["no-op typer command"], fastest["no-op typer command"]
    for name in times:
        print(
            f"  {name:45s} {median[name] * 1000:7.1f} ms {median[name] / floor:5.2f}x"
            f"   fastest {fastest[name] * 1000:7.1f} ms {fastest[name] / floor_fastest:5.2f}x"
        )


if __name__ == "__main__":
    main()
