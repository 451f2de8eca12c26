"""kvcalc sweep: calc (and, with --gpu, fit) over the cross product of the given values."""

import sys
from pathlib import Path
from typing import IO, Any

import typer

from kvcalc.errors import KvcalcError

FORMATS = ("csv", "jsonl", "json", "table")
TABLE_LIMIT = 10_000  # rows a terminal table is built for; machine formats stream any number
# a table shows the point (the options that vary) and the answer; csv/json carry every column
_TABLE_VARYING = ("engine", "kv_dtype", "tp", "pp", "gpu", "weights_dtype", "util")
_TABLE_ANSWER = ("per_gpu_bytes",)
_TABLE_FIT_ANSWER = ("fits", "max_batch", "min_gpus")


def _list(help_text: str, *names: str, metavar: str = "V[,V...]") -> Any:
    return typer.Option(None, *names, metavar=metavar, help=help_text)


def sweep_command(
    model: list[str] | None = _list(
        "Model presets or spec/config paths; repeat or comma-separate.",
        "--model",
        "-m",
        metavar="MODEL[,MODEL...]",
    ),
    gpu: list[str] | None = _list(
        "GPU presets: adds the fit columns for each (`kvcalc gpus list`).",
        "--gpu",
        "-g",
        metavar="GPU[,GPU...]",
    ),
    seq: list[str] | None = _list(
        "Tokens per sequence: 8k, lists 1k,2k,4k, ranges 1k..128k:x2 or 1k..8k:+1k [8k].",
        "--seq",
        "-s",
        metavar="TOKENS",
    ),
    batch: list[str] | None = _list(
        "Concurrent sequences: lists and ranges as for --seq [1].", "--batch", "-b", metavar="N"
    ),
    tp: list[str] | None = _list("Tensor-parallel sizes [1].", "--tp", metavar="N"),
    pp: list[str] | None = _list("Pipeline-parallel sizes [1].", "--pp", metavar="N"),
    kv_dtype: list[str] | None = _list(
        "KV-cache dtypes, auto = the engine's or model's [auto].", "--kv-dtype", metavar="DTYPE"
    ),
    weights_dtype: list[str] | None = _list(
        "Weight dtypes (fit columns), auto = the model's [auto].",
        "--weights-dtype",
        metavar="DTYPE",
    ),
    engine: list[str] | None = _list(
        "Engine profiles (`kvcalc engines`) [vllm].", "--engine", "-e", metavar="ENGINE"
    ),
    util: list[str] | None = _list(
        "Memory fractions (fit columns), auto = the engine's default [auto].",
        "--util",
        metavar="F",
    ),
    reserve: list[str] | None = _list(
        "Non-KV, non-weight memory per GPU, e.g. 4GiB (default: the planner's model).",
        "--reserve",
        metavar="SIZE",
    ),
    presets: list[Path] | None = _list(
        "Extra directory of presets (also $KVCALC_PRESETS).", "--presets", metavar="DIR"
    ),
    fmt: list[str] | None = _list(
        "Output format: csv, jsonl, json or table [csv].", "--format", "-f", metavar="FORMAT"
    ),
    output: list[Path] | None = _list(
        "Write to FILE (atomically: nothing is left if interrupted) instead of stdout.",
        "--output",
        "-o",
        metavar="FILE",
    ),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        metavar="FILE",
        help="Also draw the rows to FILE (.png, .svg, .pdf; pip install 'kvcalc[plot]').",
    ),
) -> None:
    """Sweep calc (and fit, with --gpu) over every combination of the values given.

    List options may be repeated or comma-separated (values accumulate); single-valued
    options (--format, --output, --reserve, --presets) may be given once. Columns are the
    keys of `calc --format json` (and of `fit --format json`), see docs/sweep.md.
    """  # fmt: skip
    from kvcalc.sweep import Grid, parse_values, split_names
    from kvcalc.units import parse_count, parse_size, parse_tokens

    fmt_name = _single(fmt, "--format") or "csv"
    if fmt_name not in FORMATS:
        raise KvcalcError(f"unknown --format {fmt_name!r}; known: {', '.join(FORMATS)}")
    out_path = _single(output, "--output")
    reserve_text = _single(reserve, "--reserve")
    presets_dir = _single(presets, "--presets")

    def values(given: list[str] | None, default: str, what: str, parse: Any) -> tuple[int, ...]:
        text = ",".join(given) if given else default
        return tuple(parse_values(text, lambda v: parse(v, what), what))

    grid = Grid(
        models=tuple(split_names(model or [])),
        gpus=tuple(split_names(gpu or [])),
        seqs=values(seq, "8k", "--seq", parse_tokens),
        batches=values(batch, "1", "--batch", parse_count),
        tps=values(tp, "1", "--tp", lambda v, w: parse_count(v, w, 4096)),
        pps=values(pp, "1", "--pp", lambda v, w: parse_count(v, w, 4096)),
        kv_dtypes=tuple(split_names(kv_dtype or ["auto"])),
        weights_dtypes=tuple(split_names(weights_dtype or ["auto"])),
        engines=tuple(split_names(engine or ["vllm"])),
        utils=tuple(_util(u) for u in split_names(util or ["auto"])),
        reserve_bytes=None if reserve_text is None else parse_size(reserve_text, "--reserve"),
        presets_dir=presets_dir,
    )
    if not grid.models:
        raise KvcalcError("give at least one --model (preset name or spec/config path)")
    if fmt_name == "table" and grid.size > TABLE_LIMIT:
        raise KvcalcError(
            f"a table of {grid.size:,} rows is too long to read: use --format csv, jsonl or json"
        )
    from kvcalc.sweep import resolve

    resolve(grid)  # every name checked before a byte is written
    if plot is not None:
        from kvcalc.commands.plot import write_sweep_plot

        write_sweep_plot(grid, plot)
    if out_path is None:
        _write(grid, fmt_name, sys.stdout)
        return
    _write_atomically(grid, fmt_name, Path(out_path))


def _single(given: list[Any] | None, option: str) -> Any:
    if not given:
        return None
    if len(given) > 1:
        raise KvcalcError(f"{option} given {len(given)} times; it takes one value")
    return given[0]


def _util(text: str) -> float | None:
    if text.lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise KvcalcError(f"invalid --util {text!r}: expected a fraction such as 0.9") from None
    if not 0 < value <= 1:
        raise KvcalcError(f"--util must be in (0, 1], got {text}")
    return value


def _write_atomically(grid: Any, fmt_name: str, path: Path) -> None:
    """Write to a temporary file beside `path`, then rename it: no half-written file remains."""
    import os
    import tempfile

    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise KvcalcError(f"--output {str(path)!r}: directory {str(directory)!r} does not exist")
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    try:
        with open(fd, "w", newline="", encoding="utf-8") as handle:
            _write(grid, fmt_name, handle)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _write(grid: Any, fmt_name: str, out: IO[str]) -> None:
    from kvcalc.sweep import iter_rows

    columns = grid.columns
    rows = iter_rows(grid)
    if sys.stderr.isatty():
        rows = _progress(rows, grid.size)
    if fmt_name == "csv":
        import csv

        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt_name in ("jsonl", "json"):
        import json

        dumps = json.dumps
        if fmt_name == "jsonl":
            for row in rows:
                out.write(dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False) + "\n")
        else:
            out.write("[")
            sep = "\n"
            for row in rows:
                out.write(sep + dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False))
                sep = ",\n"
            out.write("\n]\n")
    else:
        from kvcalc.commands._shared import _console
        from kvcalc.render import render_rows

        table = [dict(zip(columns, row, strict=True)) for row in rows]
        varying = [c for c in _TABLE_VARYING if c in columns and len({r[c] for r in table}) > 1]
        shown = ["model", *varying, "seq_len", "batch", *_TABLE_ANSWER]
        if grid.gpus:
            shown += _TABLE_FIT_ANSWER
        if any(r["error"] for r in table):
            shown.append("error")
        render_rows(_console(), f"sweep: {len(table):,} points", table, shown)


def _progress(rows: Any, total: int) -> Any:
    """Yield rows, drawing 'done/total' on stderr (a terminal) about five times a second."""
    import time

    last = time.monotonic()
    for done, row in enumerate(rows, 1):
        yield row
        if not done & 4095:
            now = time.monotonic()
            if now - last > 0.2:
                last = now
                sys.stderr.write(f"\rsweep: {done:,}/{total:,} rows ({100 * done // total}%)")
                sys.stderr.flush()
    sys.stderr.write(f"\rsweep: {total:,}/{total:,} rows (100%)\n")
