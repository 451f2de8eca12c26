"""kvcalc sweep: value lists and ranges, rows equal to calc/fit point by point, streaming output.

Expected figures are hand-derived: Llama-3.1-8B (meta-llama/Llama-3.1-8B config.json: 32
layers, 8 KV heads, head_dim 128) caches 2 · 8 · 128 · 2 B = 4,096 B per token per layer,
131,072 B per token over its 32 layers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.planner import Plan, fit, min_gpus
from kvcalc.presets import load_gpu, load_model
from kvcalc.report import calc_report, fit_report
from kvcalc.sweep import CALC_COLUMNS, FIT_COLUMNS, Grid, iter_rows, parse_values, rows
from kvcalc.units import parse_tokens

ROOT = Path(__file__).resolve().parent.parent
Run = Callable[..., Any]


def tokens(text: str) -> list[int]:
    return parse_values(text, lambda v: parse_tokens(v, "--seq"), "--seq")


def test_value_lists_and_ranges() -> None:
    """Lists, doubling ranges and stepped ranges expand as written (8k = 8192)."""
    assert tokens("1k,2k,4k") == [1024, 2048, 4096]
    assert tokens("1k..128k:x2") == [2**k for k in range(10, 18)]
    assert tokens("1k..4k:+1k") == [1024, 2048, 3072, 4096]
    assert tokens("1..5") == [1, 2, 4]  # doubling, as plot reads it
    assert tokens("1..5:+1") == [1, 2, 3, 4, 5]
    assert tokens("1..10:+4, 8k") == [1, 5, 9, 8192]
    assert tokens("3..100:x10") == [3, 30]


@pytest.mark.parametrize("text", ["4k..1k", "1..8:x1", "1..8:x", "1..", "..8", "", "1..8:+0"])
def test_bad_ranges_are_refused(text: str) -> None:
    """A range that is empty, backwards or has a bad step is a KvcalcError, not a guess."""
    with pytest.raises(KvcalcError):
        tokens(text)


def test_calc_rows_hand_derived() -> None:
    """Llama-3.1-8B, formula engine: total = 131,072 B × seq × batch; per GPU divided by tp."""
    grid = Grid(
        models=("LLAMA-3.1-8B",),
        seqs=(1024, 8192),
        batches=(1, 3),
        tps=(1, 8),
        engines=("formula",),
    )
    got = {(r["seq_len"], r["batch"], r["tp"]): r for r in rows(grid)}
    assert len(got) == grid.size == 8
    for (seq, batch, tp), row in got.items():
        assert row["model"] == "llama-3.1-8b"  # the canonical preset name, not the alias typed
        assert row["total_bytes"] == 131_072 * seq * batch
        assert row["per_gpu_bytes"] == 131_072 * seq * batch // tp
        assert row["error"] is None


def _calc_expected(
    model: str, engine: str, dtype: str, seq: int, batch: int, tp: int, pp: int
) -> dict[str, Any]:
    from kvcalc.dtypes import kv_dtype

    d = None if dtype == "auto" else kv_dtype(dtype)
    kv = kv_cache(load_model(model), Workload(seq, batch, d, d, tp, pp), ENGINES[engine])
    return calc_report(kv, model)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    models=st.lists(
        st.sampled_from(["llama-3.1-8b", "gemma-2-9b", "deepseek-v3", "mistral-7b-v0.1", "gemma-3-27b"]),
        min_size=1, max_size=2, unique=True,
    ),
    seqs=st.lists(st.integers(1, 200_000), min_size=1, max_size=3),
    batches=st.lists(st.integers(1, 300), min_size=1, max_size=3),
    tps=st.lists(st.sampled_from([1, 2, 3, 8]), min_size=1, max_size=2, unique=True),
    pps=st.lists(st.sampled_from([1, 2]), min_size=1, max_size=2, unique=True),
    engines=st.lists(st.sampled_from(sorted(ENGINES)), min_size=1, max_size=2, unique=True),
    dtypes=st.lists(st.sampled_from(["auto", "fp8", "q8_0"]), min_size=1, max_size=2, unique=True),
)  # fmt: skip
def test_calc_sweep_rows_equal_calc(
    models: list[str],
    seqs: list[int],
    batches: list[int],
    tps: list[int],
    pps: list[int],
    engines: list[str],
    dtypes: list[str],
) -> None:
    """Every calc sweep row equals `calc --format json` at that point (or says why it cannot)."""
    grid = Grid(
        models=tuple(models),
        seqs=tuple(seqs),
        batches=tuple(batches),
        tps=tuple(tps),
        pps=tuple(pps),
        engines=tuple(engines),
        kv_dtypes=tuple(dtypes),
    )
    found = list(rows(grid))
    points = list(product(models, engines, dtypes, tps, pps, seqs, batches))
    assert len(found) == len(points) == grid.size
    for row, (model, engine, dtype, tp, pp, seq, batch) in zip(found, points, strict=True):
        assert (row["model"], row["engine"], row["tp"], row["pp"]) == (model, engine, tp, pp)
        assert (row["seq_len"], row["batch"]) == (seq, batch)
        try:
            expected = _calc_expected(model, engine, dtype, seq, batch, tp, pp)
        except KvcalcError as exc:
            assert row["error"] == str(exc)
            continue
        assert row["error"] is None
        assert {c: row[c] for c in CALC_COLUMNS} == {c: expected[c] for c in CALC_COLUMNS}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    models=st.lists(
        st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "gemma-2-9b", "qwen3-30b-a3b"]),
        min_size=1, max_size=2, unique=True,
    ),
    gpus=st.lists(st.sampled_from(["h100-80gb", "a10", "mi300x", "l4"]), min_size=1, max_size=2, unique=True),
    seqs=st.lists(st.integers(1, 200_000), min_size=1, max_size=2),
    batches=st.lists(st.integers(1, 600), min_size=1, max_size=2),
    tps=st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=2, unique=True),
    engines=st.lists(st.sampled_from(["vllm", "sglang", "trtllm", "hf"]), min_size=1, max_size=2, unique=True),
    utils=st.sampled_from([(None,), (0.8,), (None, 0.85)]),
)  # fmt: skip
def test_fit_sweep_rows_equal_fit(
    models: list[str],
    gpus: list[str],
    seqs: list[int],
    batches: list[int],
    tps: list[int],
    engines: list[str],
    utils: tuple[float | None, ...],
) -> None:
    """Every fit sweep row equals `fit --format json` at that point: budget, verdict, solvers."""
    grid = Grid(
        models=tuple(models),
        gpus=tuple(gpus),
        seqs=tuple(seqs),
        batches=tuple(batches),
        tps=tuple(tps),
        engines=tuple(engines),
        utils=utils,
    )
    found = list(rows(grid))
    points = list(product(models, engines, tps, gpus, utils, seqs, batches))
    assert len(found) == len(points) == grid.size
    for row, (model, engine, tp, gpu, util, seq, batch) in zip(found, points, strict=True):
        assert (row["model"], row["gpu"], row["tp"], row["seq_len"]) == (model, gpu, tp, seq)
        if ENGINES[engine].budget_rule == "whole" and util is not None:
            assert row["error"] is not None  # --util (or tp) does not apply to that engine
            continue
        plan = Plan(
            load_model(model), load_gpu(gpu), ENGINES[engine], Workload(seq, batch, tp=tp),
            util=util,
        )  # fmt: skip
        try:
            result = fit(plan)
        except KvcalcError:
            assert row["error"] is not None
            continue
        assert row["error"] is None
        expected = fit_report(result, model, gpu, min_gpus(plan), min_gpus(plan, max_pp=1))
        for column in CALC_COLUMNS + FIT_COLUMNS:
            if column in expected:  # the calc-only columns are checked by the calc test
                assert row[column] == expected[column], column


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(["llama-3.1-70b", "qwen3-30b-a3b", "gemma-3-27b", "llama-3.1-405b"]),
    gpu=st.sampled_from(["l40s", "h100-80gb", "a10"]),
    seq=st.sampled_from([4096, 32768, 131072]),
    batches=st.lists(st.integers(1, 3000), min_size=5, max_size=30),
)
def test_min_gpus_columns_follow_every_batch_order(
    model: str, gpu: str, seq: int, batches: list[int]
) -> None:
    """The sweep reuses a minimum-GPU answer over the batches it holds for (MinGpus.span):
    over many batches in any order (rising, falling, repeated) every row is still
    planner.min_gpus's at that point."""
    grid = Grid(models=(model,), gpus=(gpu,), seqs=(seq,), batches=tuple(batches))
    plan_of = Plan(load_model(model), load_gpu(gpu), ENGINES["vllm"], Workload(seq))
    for row, batch in zip(rows(grid), batches, strict=True):
        plan = replace(plan_of, workload=Workload(seq, batch))
        least, alone = min_gpus(plan), min_gpus(plan, max_pp=1)
        assert (row["min_tp"], row["min_pp"]) == (least or (None, None))
        assert row["min_tp_alone"] == (None if alone is None else alone[0])


def test_every_fit_column_is_a_fit_json_key_and_calc_columns_are_calc_keys() -> None:
    """Sweep columns are named as calc/fit JSON keys (only `error` is the sweep's own)."""
    kv = kv_cache(load_model("llama-3.1-8b"), Workload(8192), ENGINES["vllm"])
    assert set(CALC_COLUMNS) <= set(calc_report(kv, "x"))
    plan = Plan(load_model("llama-3.1-8b"), load_gpu("h100"), ENGINES["vllm"], Workload(8192))
    assert set(FIT_COLUMNS) <= set(fit_report(fit(plan), "x", "y", min_gpus(plan), None))


def test_invalid_points_are_rows_with_an_error() -> None:
    """tp 3 does not divide Llama-3.1-8B's 32 heads: those rows carry the calc error, null numbers."""
    grid = Grid(models=("llama-3.1-8b",), tps=(1, 3), gpus=("h100",))
    found = list(rows(grid))
    assert [r["tp"] for r in found] == [1, 3]
    assert found[0]["error"] is None
    assert "does not divide the 32 attention heads" in found[1]["error"]
    assert found[1]["total_bytes"] is None and found[1]["fits"] is None


def test_rows_stream_in_flat_memory() -> None:
    """200,000 rows are produced one at a time: memory does not grow with the row count."""
    grid = Grid(models=("llama-3.1-8b",), seqs=tuple(range(1, 2001)), batches=tuple(range(1, 101)))
    it = iter_rows(grid)
    for _ in range(1000):
        next(it)
    tracemalloc.start()
    for _ in range(199_000):
        next(it)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * 2**20


# ---- the command -------------------------------------------------------------------------


def test_cli_csv_header_and_accumulating_options(run_cli: Run) -> None:
    """--model repeated and comma lists accumulate; the header is the documented columns."""
    result = run_cli(
        "sweep", "-m", "llama-3.1-8b", "--model", "gemma-2-9b,deepseek-v3", "--seq", "1k,2k",
        "--seq", "4k", "--engine", "formula",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == [*CALC_COLUMNS, "error"]
    assert len(table) == 1 + 3 * 3
    assert [r[0] for r in table[1:4]] == ["llama-3.1-8b"] * 3
    assert [int(r[7]) for r in table[1:4]] == [1024, 2048, 4096]
    assert int(table[3][17]) == 131_072 * 4096


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "csv", "--format", "json"],
        ["--output", "a.csv", "-o", "b.csv"],
        ["--reserve", "1GiB", "--reserve", "2GiB"],
        ["--format", "xml"],
        ["--seq", "8k..1k"],
        ["--engine", "vlm"],
        ["--util", "1.5"],
    ],
)
def test_cli_bad_options_one_error_line(run_cli: Run, args: list[str]) -> None:
    """A single-valued option given twice, or a bad value: exit 2 and one error line."""
    result = run_cli("sweep", "-m", "llama-3.1-8b", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert result.stdout == ""


def test_cli_needs_a_model(run_cli: Run) -> None:
    """Without --model the sweep says so (exit 2)."""
    result = run_cli("sweep", "--seq", "8k")
    assert result.exit_code == 2 and "--model" in result.stderr


def test_cli_formats_agree(run_cli: Run) -> None:
    """csv, jsonl and json carry the same rows (json: one array; jsonl: an object per line)."""
    args = ["sweep", "-m", "llama-3.1-8b", "-g", "h100", "--seq", "1k..4k:x2", "-b", "1,64"]
    as_json = json.loads(run_cli(*args, "-f", "json").stdout)
    as_jsonl = [json.loads(line) for line in run_cli(*args, "-f", "jsonl").stdout.splitlines()]
    as_csv = list(csv.DictReader(io.StringIO(run_cli(*args).stdout)))
    assert as_json == as_jsonl and len(as_json) == 6
    assert [r["max_batch"] for r in as_json] == [int(r["max_batch"]) for r in as_csv]
    assert [str(r["fits"]) for r in as_json] == [r["fits"] for r in as_csv]
    table = run_cli(*args, "-f", "table")
    assert table.exit_code == 0 and "sweep: 6 points" in table.stdout


def test_cli_output_is_atomic(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--output writes the whole file; an interrupted sweep leaves neither file nor temp file."""
    target = tmp_path / "out.csv"
    result = run_cli("sweep", "-m", "llama-3.1-8b", "--seq", "1..100:+1", "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert len(target.read_text().splitlines()) == 101

    import kvcalc.sweep

    real = kvcalc.sweep.iter_rows

    def interrupted(grid: Grid) -> Any:
        for i, row in enumerate(real(grid)):
            if i == 50:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(kvcalc.sweep, "iter_rows", interrupted)
    other = tmp_path / "other.csv"
    result = run_cli("sweep", "-m", "llama-3.1-8b", "--seq", "1..100:+1", "-o", str(other))
    assert result.exit_code == 130
    assert not other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_head_closes_the_pipe_quietly() -> None:
    """`kvcalc sweep ... | head -1` (a real pipe, a million rows): exit 0, no traceback."""
    env = {k: v for k, v in os.environ.items() if k != "KVCALC_PRESETS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvcalc", "sweep", "-m", "llama-3.1-8b", "--seq", "1..1000:+1",
         "--batch", "1..1000:+1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, stderr
    assert first.startswith(b"model,model_name,engine")
    assert "Traceback" not in stderr and stderr == ""


def test_sweep_is_in_the_cli_reference() -> None:
    """docs/cli.md has the sweep command's section and docs/sweep.md documents every column."""
    assert "## `kvcalc sweep`" in (ROOT / "docs" / "cli.md").read_text()
    page = (ROOT / "docs" / "sweep.md").read_text()
    for column in (*CALC_COLUMNS, *FIT_COLUMNS, "error"):
        assert f"`{column}`" in page, column


@pytest.mark.parametrize(
    "args",
    [
        ["calc", "llama-3.1-8b", "--seq", "1k", "--seq", "2k"],
        ["calc", "llama-3.1-8b", "--seq=1k", "-s", "2k"],
        ["fit", "llama-3.1-8b", "--gpu", "h100", "-g", "a10"],
        ["fit", "llama-3.1-8b", "--engine", "vllm", "--engine", "sglang"],
    ],
)
def test_single_valued_options_given_twice_are_refused(run_cli: Run, args: list[str]) -> None:
    """Every command refuses a single-valued option given twice (never "the last one wins")."""
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stderr.count("error: ") == 1 and "given more than once" in result.stderr
    assert result.stdout == ""
