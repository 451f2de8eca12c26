"""Helpers the benchmarks share: run a command, time it, read its peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# As an installed package runs: with its bytecode cached. A PYTHONDONTWRITEBYTECODE=1 in
# the caller's environment would recompile every module of kvcalc (and dataclasses'
# generated methods are compiled either way) on each run and time the compiler instead.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(argv: list[str], stdout: int | None = subprocess.DEVNULL) -> tuple[float, int, int]:
    """Run argv; return (wall seconds, exit code, peak RSS in bytes of that process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, cwd=ROOT, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, proc.returncode, usage.ru_maxrss * 1024  # Linux reports KiB


def timings(commands: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """Return each command's wall times over `rounds`, the commands interleaved."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # one untimed round writes the bytecode caches
        run(argv)
    for _ in range(rounds):
        for name, argv in commands.items():
            times[name].append(run(argv)[0])
    return times


def load() -> str:
    """Return the machine's load average, for the record."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs"
