"""kvcalc check: CI sanity check over deployment files."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from kvcalc.commands._shared import (
    FORMAT_OPTION,
    PRESETS_OPTION,
    OutputFormat,
    _answer,
    _emit,
)


def check_command(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Deployment YAML files."),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """CI sanity check: one line per deployment; exit 0 all fit, 1 any does not, 2 bad file."""
    from kvcalc.checks import run_checks

    results = []
    for path in files:
        results.extend(run_checks(path, presets))
    _answer(0 if all(r["ok"] for r in results) else 1)
    if fmt is OutputFormat.table:
        for r in results:
            status = "PASS" if r["ok"] else "FAIL"
            sys.stdout.write(f"{status} {r['name']}: {r['message']}\n")
        passed = sum(r["ok"] for r in results)
        sys.stdout.write(f"{passed} passed, {len(results) - passed} failed\n")
    else:
        _emit(results, fmt, ["file", "name", "ok", "message"])
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)
