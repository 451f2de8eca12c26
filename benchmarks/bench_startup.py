"""Start-up: whole-process wall time of kvcalc commands as ratios to a no-op typer command.

Each command runs `rounds` times, interleaved with the no-op (benchmarks/_noop_typer.py)
on the same interpreter, and the medians are compared, so machine load mostly cancels.
Prints figures; asserts nothing. Run: python benchmarks/bench_startup.py [rounds]
"""

from __future__ import annotations

import sys

from _common import PYTHON, ROOT, load, medians

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
    print(f"start-up, median of {rounds} interleaved runs ({load()})")
    result = medians(COMMANDS, rounds)
    floor = result["no-op typer command"]
    for name, seconds in result.items():
        print(f"  {name:45s} {seconds * 1000:7.1f} ms  {seconds / floor:5.2f}x")


if __name__ == "__main__":
    main()
