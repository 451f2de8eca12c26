"""Deterministic renders: a Console of fixed width and no colour, captured in a StringIO."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from kvcalc.engines import ENGINES
from kvcalc.formula import Workload, kv_cache
from kvcalc.planner import Plan, fit, min_gpus
from kvcalc.presets import load_gpu, load_model
from kvcalc.render import render_calc, render_fit, render_fit_table, render_rows, render_text
from kvcalc.report import calc_report, fit_report


def console() -> tuple[Console, StringIO]:
    out = StringIO()
    return Console(width=100, color_system=None, file=out, highlight=False), out


def test_calc_table_rows_and_units() -> None:
    """The calc table shows each layer kind and the per-GPU row, in bytes, GiB and GB."""
    c, out = console()
    kv = kv_cache(load_model("gemma-2-9b"), Workload(seq_len=8192, tp=2), ENGINES["vllm"])
    render_calc(c, calc_report(kv, "gemma-2-9b"))
    text = out.getvalue()
    assert "21 full layers, 8,192 tokens held" in text
    assert "21 sliding layers (W=4,096), 8,208 tokens held" in text
    assert "per GPU (busiest of 2)" in text
    assert "GiB (2^30)" in text and "GB (10^9)" in text
    assert "× 2 TP ranks" in text


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
    assert "h100-80gb" in table and "l4" in table and "min GPUs" in table


def test_rows_and_text() -> None:
    """Generic rows format ints with separators, floats with two decimals, None as '-'."""
    c, out = console()
    render_rows(c, "t", [{"a": 1234567, "b": 1.5, "c": None, "d": True}], ["a", "b", "c", "d"])
    text = out.getvalue()
    assert "1,234,567" in text and "1.50" in text and "-" in text and "yes" in text
    c, out = console()
    render_text(c, "body", title="title")
    assert "title" in out.getvalue() and "body" in out.getvalue()
