"""kvcalc plot: every plotted value is a calc (KV) or fit (weights + reserve + KV) figure.

The KV points are compared with `kvcalc calc --format json` per_gpu_bytes at the same
point, the boundary with `kvcalc fit`'s max_seq_len / max_batch; the file tests run when
matplotlib (the 'plot' extra) is installed, as CI installs it.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload
from kvcalc.planner import Plan, budget
from kvcalc.plot import PlotData, parse_grid, plot_data
from kvcalc.presets import load_gpu, load_model
from kvcalc.render_insight import render_plot_text
from tests.conftest import Result

Run = Callable[..., Result]


def _data(axis: str = "seq", xs: tuple[int, ...] = (1024, 4096, 16384, 65536)) -> PlotData:
    models = [(m, load_model(m)) for m in ("llama-3.1-8b", "gemma-2-9b")]
    gpus = [(g, load_gpu(g)) for g in ("h100-80gb", "l40s")]
    fixed = Workload(seq_len=1, batch=4) if axis == "seq" else Workload(seq_len=8192)
    return plot_data(models, gpus, ENGINES["vllm"], fixed, axis, xs)  # type: ignore[arg-type]


def test_kv_points_equal_calc(run_cli: Run) -> None:
    """Each KV point is calc's per_gpu_bytes at that seq and batch (vLLM, the model's dtype)."""
    data = _data()
    for s in (s for s in data.series if s.kind == "kv"):
        for x, y in zip(s.x, s.y, strict=True):
            calc = run_cli("calc", s.model, "--seq", str(x), "--batch", "4", "--format", "json")
            assert y == json.loads(calc.stdout)["per_gpu_bytes"]


def test_batch_axis_points_equal_calc(run_cli: Run) -> None:
    """Against batch: each KV point is calc's per_gpu_bytes at seq 8192 and that batch."""
    data = _data("batch", (1, 8, 64))
    kv = next(s for s in data.series if s.kind == "kv" and s.model == "gemma-2-9b")
    for x, y in zip(kv.x, kv.y, strict=True):
        calc = run_cli("calc", "gemma-2-9b", "--seq", "8192", "--batch", str(x), "--format", "json")
        assert y == json.loads(calc.stdout)["per_gpu_bytes"]


def test_totals_and_boundary_equal_fit(run_cli: Run) -> None:
    """Total = fit's weights + reserve + KV; the boundary is fit's max_seq_len at that batch."""
    data = _data()
    for s in (s for s in data.series if s.kind == "total"):
        fit = json.loads(
            run_cli(
                "fit", s.model, "--gpu", str(s.gpu), "--seq", str(s.x[1]), "--batch", "4",
                "--format", "json",
            ).stdout
        )  # fmt: skip
        kv = next(k for k in data.series if k.kind == "kv" and k.model == s.model)
        assert s.y[1] == fit["weights_bytes"] + fit["reserve_bytes"] + kv.y[1]
        boundary = next(b for b in data.boundaries if (b.model, b.gpu) == (s.model, s.gpu))
        assert boundary.x == fit["max_seq_len"]


def test_boundary_total_reaches_the_budget() -> None:
    """At the boundary the KV fits the budget, one token more it would not (vLLM blocks aside)."""
    data = _data()
    for b in data.boundaries:
        plan = Plan(load_model(b.model), load_gpu(b.gpu), ENGINES["vllm"], Workload(1, 4))
        usable = budget(plan).usable_bytes
        assert b.total_bytes is not None and b.total_bytes <= usable


def test_capacities_are_the_gpu_presets() -> None:
    """Each GPU's horizontal line is its preset's memory_bytes (the CUDA-reported total)."""
    data = _data()
    assert [c.capacity_bytes for c in data.capacities] == [
        load_gpu("h100-80gb").memory_bytes,
        load_gpu("l40s").memory_bytes,
    ]


def test_figure_line_data_equals_series() -> None:
    """The Figure's lines carry exactly the series' integers (bytes), by label."""
    pytest.importorskip("matplotlib")
    from kvcalc.plot import figure

    data = _data()
    lines = {line.get_label(): line for line in figure(data).axes[0].get_lines()}
    for s in data.series:
        line = lines[s.label]
        assert [int(v) for v in line.get_xdata()] == list(s.x)
        assert [int(v) for v in line.get_ydata()] == list(s.y)
    for c in data.capacities:
        assert list(lines[f"{c.gpu} capacity"].get_ydata()) == [c.capacity_bytes] * 2
    for b in data.boundaries:
        if b.total_bytes is not None and b.x <= 65536:
            assert list(lines[b.text].get_ydata()) == [b.total_bytes]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_file_is_valid(run_cli: Run, tmp_path: Path, suffix: str) -> None:
    """`kvcalc plot ... -o out.png|.svg` writes a valid image and says so on stderr."""
    pytest.importorskip("matplotlib")
    out = tmp_path / f"out{suffix}"
    result = run_cli(
        "plot", "llama-3.1-8b", "deepseek-v3", "--gpu", "h100-80gb", "--seq", "1k..32k",
        "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == f"wrote {out}\n"
    content = out.read_bytes()
    if suffix == ".png":
        assert content.startswith(b"\x89PNG\r\n\x1a\n")
        assert content[12:16] == b"IHDR"
    else:
        import xml.etree.ElementTree as ET

        root = ET.fromstring(content)
        assert root.tag.endswith("svg")
        assert b"Llama-3.1-8B KV" in content


def test_missing_matplotlib_is_one_error_line(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib, -o FILE fails with one error line naming the extra, exit 2."""
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = run_cli("plot", "llama-3.1-8b", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "pip install 'kvcalc[plot]'" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_terminal_plot(run_cli: Run) -> None:
    """Without -o: a character plot with the title, capacities and boundaries, no extra needed."""
    result = run_cli("plot", "llama-3.1-8b", "--gpu", "h100-80gb", "--batch", "8")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "KV cache per GPU · vllm · KV bf16 · batch 8" in text
    assert "h100-80gb capacity 79.18 GiB" in text
    assert "llama-3.1-8b on h100-80gb: max context" in text
    assert "●" in text and "┊" in text


def test_render_plot_text_fixed_console() -> None:
    """The terminal plot is deterministic on a fixed-width console without colour."""
    out = StringIO()
    render_plot_text(Console(width=100, color_system=None, file=out), _data(), 60, 12)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("KV cache per GPU")
    assert sum("│" in line for line in lines) == 12


def test_plot_json_rows(run_cli: Run) -> None:
    """--format json: one row per point, with the bytes of calc at that point."""
    result = run_cli("plot", "qwen3-8b", "--seq", "1k,8k", "--format", "json")
    rows = json.loads(result.stdout)
    assert [(r["seq_len"], r["kind"]) for r in rows] == [(1024, "kv"), (8192, "kv")]
    assert rows[1]["bytes"] == 36 * 2 * 8 * 128 * 2 * 8192  # Qwen3-8B config: 36 layers, 8 KV × 128


@pytest.mark.parametrize(
    ("text", "points"),
    [
        ("1k..8k", (1024, 2048, 4096, 8192)),
        ("1..64:x4", (1, 4, 16, 64)),
        ("1k..3k:+1k", (1024, 2048, 3072)),
        ("1000..5000", (1000, 2000, 4000, 5000)),
        ("8k,1k,8k", (1024, 8192)),
    ],
)
def test_parse_grid(text: str, points: tuple[int, ...]) -> None:
    """Grids: lists, doubling ranges (end included), xN and +N steps, sorted and deduplicated."""
    assert parse_grid(text, "--seq") == points


@pytest.mark.parametrize("text", ["8k..1k", "1..8:x1", "1..8:y2", "", "1..2:+0", "1..10m:+1"])
def test_parse_grid_rejects(text: str) -> None:
    """A bad grid is a KvcalcError (one line at the CLI), never a hang or a traceback."""
    with pytest.raises(KvcalcError):
        parse_grid(text, "--seq")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["llama-3.1-8b", "-o", "plot.jpg"], "must end in"),
        (["llama-3.1-8b", "--seq", "8k..1k"], "end is below"),
        (["llama-3.1-8b", "--gpu", "h1000"], "unknown GPU"),
        (["llama-3.1-8b", "--against", "tokens"], "--against"),
    ],
)
def test_bad_input_one_error_line(run_cli: Run, args: list[str], needle: str) -> None:
    """Bad input: exit 2 and one `error:` line naming the problem, never a traceback."""
    result = run_cli("plot", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_sweep_plot_values_are_the_sweep_rows() -> None:
    """sweep_plot_data draws the sweep's own numbers: per_gpu_bytes, weights + reserve + KV."""
    from kvcalc.plot import sweep_plot_data
    from kvcalc.sweep import Grid, rows

    grid = Grid(
        models=("llama-3.1-8b", "qwen3-8b"),
        gpus=("h100-80gb", "l4"),
        seqs=(1024, 4096, 16384),
        batches=(4,),
    )
    sweep = list(rows(grid))
    data = sweep_plot_data(sweep)
    assert data.axis == "seq" and data.fixed == 4
    for s in data.series:
        mine = [r for r in sweep if r["model"] == s.model and r["gpu"] == (s.gpu or r["gpu"])]
        by_seq = {r["seq_len"]: r for r in mine}
        assert s.x == (1024, 4096, 16384)
        for x, y in zip(s.x, s.y, strict=True):
            r = by_seq[x]
            expected = r["per_gpu_bytes"]
            if s.kind == "total":
                expected += r["weights_bytes"] + r["reserve_bytes"]
            assert y == expected
    assert {(c.gpu, c.capacity_bytes) for c in data.capacities} == {
        (r["gpu"], r["capacity_bytes"]) for r in sweep
    }
    boundary = {(b.model, b.gpu): b.x for b in data.boundaries}
    for r in sweep:
        assert boundary[(r["model"], r["gpu"])] == r["max_seq_len"]
    pytest.importorskip("matplotlib")
    from kvcalc.plot import figure

    lines = {line.get_label(): line for line in figure(data).axes[0].get_lines()}
    for s in data.series:
        assert [int(v) for v in lines[s.label].get_ydata()] == list(s.y)


def test_sweep_plot_option(run_cli: Run, tmp_path: Path) -> None:
    """`kvcalc sweep ... --plot out.svg` writes the picture and still prints the rows on stdout."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "sweep.svg"
    result = run_cli(
        "sweep", "-m", "llama-3.1-8b", "--batch", "1..64:x4", "-g", "l4", "--plot", str(out)
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("model,")
    assert len(result.stdout.splitlines()) == 1 + 4  # header + batches 1, 4, 16, 64
    assert f"wrote {out}" in result.stderr
    assert out.read_bytes().lstrip().startswith(b"<?xml")
    bad = run_cli("sweep", "-m", "llama-3.1-8b", "--plot", str(tmp_path / "x.gif"))
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and "must end in" in bad.stderr
