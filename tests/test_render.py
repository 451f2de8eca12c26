"""Tables that never lose a value: every command's table at 60, 80 and 120 columns and in a
non-TTY (where rich assumes 80), checked against the same command's JSON.

A value is lost when it is cut ("…"), folded mid-number, or dropped for lack of room. Each
test takes the numbers and names the table must show from `--format json` and looks for
each one, whole, in the table; no line may be wider than the console. Plus deterministic
renders of the building blocks on a fixed Console(width=..., file=StringIO()).
"""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from kvcalc.engines import ENGINES
from kvcalc.formula import Workload, kv_cache
from kvcalc.planner import Plan, fit, min_gpus
from kvcalc.presets import load_gpu, load_model
from kvcalc.render import (
    Column,
    Row,
    render_calc,
    render_fit,
    render_fit_table,
    render_rows,
    render_text,
    show_table,
)
from kvcalc.report import calc_report, fit_report
from kvcalc.units import format_binary, format_decimal

WIDTHS = [60, 80, 120, None]  # None: a non-TTY with no COLUMNS (rich's 80)


def console(width: int = 100) -> tuple[Console, StringIO]:
    out = StringIO()
    return Console(width=width, color_system=None, file=out, highlight=False), out


def _run(argv: list[str], width: int | None) -> tuple[int, str]:
    from typer.testing import CliRunner

    from kvcalc.cli import app

    env = {"NO_COLOR": "1", "COLUMNS": str(width) if width else ""}
    result = CliRunner().invoke(app, argv, env=env)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.stdout


def _json(argv: list[str]) -> Any:
    code, out = _run([*argv, "-f", "json"], 120)
    assert code in (0, 1), out
    return json.loads(out)


def _n(value: int) -> str:
    return f"{value:,}"


def _assert_shows(table: str, width: int | None, wanted: list[str]) -> None:
    """Every wanted string appears whole; nothing is cut; no line is wider than the console."""
    assert "…" not in table
    for line in table.splitlines():
        assert len(line.rstrip()) <= (width or 80), line
    for text in wanted:
        assert text in table, f"{text!r} missing at width {width}:\n{table}"


def _words(text: str) -> list[str]:
    """The words of a note: each must survive wrapping somewhere in the output."""
    return [w for w in re.split(r"\s+", text) if w]


def _assert_words(table: str, texts: list[str]) -> None:
    """Every word of every text is shown; a word longer than a line (a source path) may fold
    onto the next line, so it is looked for in the output with the line breaks and borders
    taken out."""
    squashed = re.sub(r"[\s│┃╭╮╰╯─]+", "", table)
    for text in texts:
        for word in _words(text):
            assert word in table or (len(word) > 40 and word in squashed), (
                f"word {word!r} of {text!r} missing"
            )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "argv",
    [
        ["calc", "opt-30b", "--seq", "1024", "--batch", "128", "--kv-dtype", "fp16"],
        ["calc", "gemma-2-9b", "--tp", "2"],
        ["calc", "deepseek-v3", "--seq", "128k", "--tp", "8", "-b", "3"],
        ["calc", "llama-3.1-8b", "--k-dtype", "q8_0", "--v-dtype", "q4_0", "-e", "llama.cpp"],
    ],
)
def test_calc_table_keeps_every_value(argv: list[str], width: int | None) -> None:
    """calc: per token, each layer kind, per sequence, total and per GPU, exact and scaled;
    the formula and every word of every assumption."""
    data = _json(argv)
    code, table = _run(argv, width)
    assert code == 0
    values = [data["bytes_per_token"], data["per_sequence_bytes"], data["total_bytes"]]
    values += [data["per_gpu_bytes"], *(g["bytes"] for g in data["layers"])]
    wanted = [_n(v) for v in values] + [format_binary(v) for v in values]
    wanted += [format_decimal(v) for v in values]
    wanted += ["per token", "per sequence", "whole workload", "per GPU"]
    _assert_shows(table, width, wanted)
    _assert_words(table, [*data["assumptions"], data["total_formula"], data["layer_formula"]])


def test_calc_rows_grouped_by_scope() -> None:
    """Rows read per token, then per sequence, then the whole workload, then per GPU; the
    per-token row is scaled (1.31 MiB for OPT-30B's 1,376,256 B = 2·2·48·7168), not 0.00128 GiB."""
    _, table = _run(["calc", "opt-30b", "--kv-dtype", "fp16"], 120)
    order = [table.index(s) for s in ("per token", "per sequence", "whole workload", "per GPU")]
    assert order == sorted(order)
    assert "1.31 MiB" in table and "1.38 MB" in table and "0.00128" not in table


@pytest.mark.parametrize("width", WIDTHS)
def test_fit_panel_keeps_every_value(width: int | None) -> None:
    """fit --gpu: every budget term, the KV budget, the KV, the headroom, and the limits."""
    argv = ["fit", "llama-3.1-8b", "-g", "h100-80gb", "--seq", "8k", "-b", "64"]
    data = _json(argv)
    code, table = _run(argv, width)
    assert code == 0
    values = [data["capacity_bytes"], data["kv_budget_bytes"], data["kv_bytes"]]
    values += [abs(data["headroom_bytes"]), *(abs(t["bytes"]) for t in data["budget_terms"])]
    wanted = [_n(v) for v in values] + [format_binary(v) for v in values]
    wanted += [_n(data["max_batch"]), _n(data["max_tokens"]), "DOES NOT FIT", "short by"]
    _assert_shows(table, width, wanted)
    _assert_words(table, [t["term"] for t in data["budget_terms"]] + data["notes"])


@pytest.mark.parametrize("width", WIDTHS)
def test_fit_all_gpus_keeps_every_value(width: int | None) -> None:
    """fit without --gpu: every GPU's name (never folded), max batch, context, KV tokens."""
    argv = ["fit", "llama-3.1-8b"]
    rows = _json(argv)
    code, table = _run(argv, width)
    assert code == 0
    wanted = []
    for r in rows:
        wanted += [r["gpu"], _n(r["max_batch"]), _n(r["max_seq_len"]), _n(r["max_tokens"])]
    _assert_shows(table, width, wanted)
    assert not re.search(r"h100-nv\s*│?\s*$", table, re.MULTILINE)  # was folded 'h100-nv' / 'l'


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("argv", "keys"),
    [
        (
            ["presets", "list"],
            ["name", "attention", "layers", "n_params", "kv_bytes_per_token_bf16"],
        ),
        (["gpus", "list"], ["name", "gpu", "memory_bytes", "memory_kind"]),
    ],
)
def test_lists_keep_every_value(argv: list[str], keys: list[str], width: int | None) -> None:
    """presets list and gpus list: every name whole (was 'laye…', 'A10…'), every number."""
    rows = _json(argv)
    code, table = _run(argv, width)
    assert code == 0
    wanted = []
    for r in rows:
        for key in keys:
            value = r.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                wanted.append(_n(value))
            elif isinstance(value, str):
                wanted.append(value)
    _assert_shows(table, width, wanted)
    for header in ("layers", "attention", "sliding") if argv[0] == "presets" else ("gpu",):
        assert header in table


@pytest.mark.parametrize("width", WIDTHS)
def test_engines_keep_every_assumption(width: int | None) -> None:
    """engines: every profile's name, summary and assumptions, every word; sources whole."""
    rows = _json(["engines"])
    code, table = _run(["engines"], width)
    assert code == 0
    _assert_shows(table, width, [r["engine"] for r in rows])
    for r in rows:
        _assert_words(table, [r["summary"], *r["assumptions"], *r["sources"]])


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "deepseek-v3"],
        ["compare", "opt-30b", "llama-3.1-8b", "deepseek-v3"],
        ["check", "docs/examples/deployments.yaml"],
        ["sweep", "-m", "llama-3.1-8b", "-g", "h100,l40s", "--seq", "8k,32k", "--format", "table"],
        ["verify", "tests/data/logs/llama.cpp-gpt-oss-120b-rocm.log", "--model", "gpt-oss-120b"],
        ["plot", "llama-3.1-8b", "-g", "h100-80gb"],
    ],
)
def test_other_commands_cut_nothing(
    argv: list[str], width: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """explain, compare, sweep, verify, plot and check: no cut value and no line wider than
    the console (check prints one plain line per deployment, for logs and grep)."""
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    code, table = _run(argv, width)
    assert code in (0, 1)
    if argv[0] == "check":  # plain log lines, one per deployment, never cut: no width limit
        assert "…" not in table and table.count("\n") == 3
        return
    _assert_shows(table, width, [])


def test_calc_render_direct() -> None:
    """render_calc on a fixed Console: each layer kind and the per-GPU row (Gemma-2-9B tp 2,
    21 full + 21 sliding layers, google/gemma-2-9b config.json)."""
    c, out = console()
    kv = kv_cache(load_model("gemma-2-9b"), Workload(seq_len=8192, tp=2), ENGINES["vllm"])
    render_calc(c, calc_report(kv, "gemma-2-9b"))
    text = out.getvalue()
    assert "21 full layers, 8,192 tokens held" in text
    assert "21 sliding layers (W=4,096), 8,208 tokens held" in text
    assert "per GPU (busiest of 2)" in text
    assert "binary" in text and "decimal" in text
    assert "× 2 TP ranks" in text


def test_footnotes_are_indented() -> None:
    """A wrapped assumption continues under its text, not at column 0."""
    c, out = console(60)
    kv = kv_cache(load_model("gemma-2-9b"), Workload(seq_len=8192), ENGINES["vllm"])
    render_calc(c, calc_report(kv, "gemma-2-9b"))
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  · "))
    for line in lines[start:]:
        assert line.startswith(("  · ", "    ")), line


def test_fit_panel_and_table() -> None:
    """The fit panel lists every budget term and the verdict; the table has a row per GPU."""
    spec = load_model("llama-3.1-8b")
    reports = []
    for gpu in ("h100-80gb", "l4"):
        plan = Plan(spec, load_gpu(gpu), ENGINES["vllm"], Workload(seq_len=8192, batch=64))
        reports.append(fit_report(fit(plan), "llama-3.1-8b", gpu, min_gpus(plan)))
    c, out = console()
    render_fit(c, reports[0])
    panel = out.getvalue()
    for text in ("capacity (cuda)", "gpu_memory_utilization 0.9", "weights (bf16)", "= KV budget",
                 "short by", "DOES NOT FIT", "maximum concurrency"):  # fmt: skip
        assert text in panel
    c, out = console()
    render_fit_table(c, reports)
    table = out.getvalue()
    assert "h100-80gb" in table and "l4" in table and "min" in table


def test_rows_and_text() -> None:
    """Generic rows format ints with separators, floats with two decimals, None as '-'."""
    c, out = console()
    render_rows(c, "t", [{"a": 1234567, "b": 1.5, "c": None, "d": True}], ["a", "b", "c", "d"])
    text = out.getvalue()
    assert "1,234,567" in text and "1.50" in text and "-" in text and "yes" in text
    c, out = console()
    render_text(c, "body", title="title")
    assert "title" in out.getvalue() and "body" in out.getvalue()


def test_narrow_table_becomes_records() -> None:
    """Columns that cannot all have their width become one paragraph per row, values whole."""
    columns = [Column("name", "name"), *(Column(f"column {i}", "number") for i in range(6))]
    rows = [Row(("a-rather-long-name", *(f"{10**12 + i:,}" for i in range(6))))]
    c, out = console(60)
    show_table(c, "t", columns, rows)
    text = out.getvalue()
    assert "┃" not in text and "a-rather-long-name" in text
    for i in range(6):
        assert f"column {i} {10**12 + i:,}" in text


@pytest.mark.parametrize(
    ("n", "binary", "decimal"),
    [(512, "512 B", "512 B"), (1_376_256, "1.31 MiB", "1.38 MB"),
     (180_388_626_432, "168.00 GiB", "180.39 GB"), (2**40, "1.00 TiB", "1.10 TB")],
)  # fmt: skip
def test_scaled_units(n: int, binary: str, decimal: str) -> None:
    """Scaled units by hand: 1,376,256 / 2^20 = 1.3125 MiB; / 10^6 = 1.376 MB; 2^40 B = 1 TiB."""
    assert (format_binary(n), format_decimal(n)) == (binary, decimal)
