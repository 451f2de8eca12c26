"""kvcalc compare: per-token and per-sequence bytes side by side, ratios to the first column.

Expected values are derived by hand from the published configs in tests/data/hf_configs:
DeepSeek-V3 61 layers × (kv_lora_rank 512 + qk_rope_head_dim 64) × 2 B (bf16);
Llama-3.1-70B 80 layers × 2 (K, V) × 8 KV heads × 128 (8192 / 64) × 2 B;
Llama-3.1-8B 32 layers × 2 × 8 KV heads × 128 × 2 B.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction
from io import StringIO

import pytest
from rich.console import Console

from kvcalc.compare import Column, as_mha, compare, compared_rows
from kvcalc.engines import ENGINES
from kvcalc.formula import Workload
from kvcalc.presets import load_model
from kvcalc.render_insight import render_compare
from tests.conftest import Result

Run = Callable[..., Result]

DSV3_PER_TOKEN = 61 * (512 + 64) * 2
LLAMA70_PER_TOKEN = 80 * 2 * 8 * 128 * 2
LLAMA8_PER_TOKEN = 32 * 2 * 8 * 128 * 2


def test_acceptance_deepseek_v3_vs_llama_70b(run_cli: Run) -> None:
    """compare deepseek-v3 llama-3.1-70b --seq 8k: 70,272 and 327,680 B per token, ratio 327680/70272."""
    assert (DSV3_PER_TOKEN, LLAMA70_PER_TOKEN) == (70_272, 327_680)
    result = run_cli("compare", "deepseek-v3", "llama-3.1-70b", "--seq", "8k", "--format", "json")
    assert result.exit_code == 0, result.stderr
    first, second = json.loads(result.stdout)
    assert first["bytes_per_token"] == DSV3_PER_TOKEN
    assert second["bytes_per_token"] == LLAMA70_PER_TOKEN
    assert second["ratio_per_token"] == round(LLAMA70_PER_TOKEN / DSV3_PER_TOKEN, 4) == 4.663
    assert first["ratio_per_token"] == 1.0
    # vLLM at 8192 tokens (a multiple of 16 and of 64): exactly seq × per-token bytes
    assert first["per_sequence_bytes"] == 8192 * DSV3_PER_TOKEN
    assert second["per_sequence_bytes"] == 8192 * LLAMA70_PER_TOKEN
    table = run_cli("compare", "deepseek-v3", "llama-3.1-70b", "--seq", "8k").stdout
    assert "70,272" in table and "327,680" in table and "4.66×" in table
    assert "█" in table  # the bar chart


def test_as_mha_shows_the_saving(run_cli: Run) -> None:
    """--as mha: Llama-3.1-70B as MHA caches 64 heads, 80·2·64·128·2 B/token, 8× its GQA."""
    result = run_cli("compare", "llama-3.1-70b", "deepseek-v3", "--as", "mha", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["model"], r["as_mha"]) for r in rows] == [
        ("llama-3.1-70b", False), ("llama-3.1-70b", True),
        ("deepseek-v3", False), ("deepseek-v3", True),
    ]  # fmt: skip
    assert rows[1]["bytes_per_token"] == 80 * 2 * 64 * 128 * 2 == 8 * LLAMA70_PER_TOKEN
    assert rows[1]["ratio_per_token"] == 8.0
    # DeepSeek-V3 as MHA (arXiv 2405.04434 Table 1): 2·n_h·d_h = 2·128·128 per layer
    assert rows[3]["bytes_per_token"] == 61 * 2 * 128 * 128 * 2 == 3_997_696


def test_as_mha_drops_windows() -> None:
    """A sliding-window model as MHA has every layer full: per sequence = seq × per-token bytes."""
    spec = as_mha(load_model("gemma-3-27b"))
    assert spec.layers is None and spec.attention.kind == "mha"
    [c] = compare([Column("g", spec, ENGINES["formula"], None, True)], Workload(seq_len=8192))
    assert c.bytes_per_token == 62 * 2 * 32 * 128 * 2
    assert c.per_sequence_bytes == 8192 * c.bytes_per_token


def test_dtypes_and_engines_columns(run_cli: Run) -> None:
    """--kv-dtype bf16,fp8 × --engine vllm,hf: four columns; fp8 halves the bytes (1 B vs 2 B)."""
    result = run_cli(
        "compare", "llama-3.1-8b", "--kv-dtype", "bf16,fp8", "--engine", "vllm,hf",
        "--seq", "1000", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["engine"], r["kv_dtype"]) for r in rows] == [
        ("vllm", "bf16"), ("vllm", "fp8_e4m3"), ("hf", "bf16"), ("hf", "fp8_e4m3"),
    ]  # fmt: skip
    assert [r["bytes_per_token"] for r in rows] == [LLAMA8_PER_TOKEN, LLAMA8_PER_TOKEN // 2] * 2
    # vLLM rounds 1000 tokens up to 63 blocks of 16 = 1008; transformers keeps exactly 1000
    assert rows[0]["per_sequence_bytes"] == 1008 * LLAMA8_PER_TOKEN
    assert rows[2]["per_sequence_bytes"] == 1000 * LLAMA8_PER_TOKEN
    assert rows[2]["ratio_per_sequence"] == round(1000 / 1008, 4)


def test_gpu_columns_equal_fit(run_cli: Run) -> None:
    """With --gpu, max batch and max context are the ones `kvcalc fit` reports for that point."""
    result = run_cli(
        "compare", "llama-3.1-8b", "qwen3-8b", "--gpu", "h100-80gb", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    for row in json.loads(result.stdout):
        fit = json.loads(
            run_cli("fit", row["model"], "--gpu", "h100-80gb", "--format", "json").stdout
        )
        assert (row["fits"], row["max_batch"], row["max_seq_len"]) == (
            fit["fits"], fit["max_batch"], fit["max_seq_len"],
        )  # fmt: skip


def test_ratios_are_exact_fractions() -> None:
    """Compared ratios are exact: Llama-3.1-70B / Llama-3.1-8B per token = 80/32."""
    cols = [
        Column(name, load_model(name), ENGINES["formula"], None)
        for name in ("llama-3.1-8b", "llama-3.1-70b")
    ]
    _, second = compare(cols, Workload(seq_len=4096))
    assert second.ratio_per_token == Fraction(LLAMA70_PER_TOKEN, LLAMA8_PER_TOKEN) == Fraction(5, 2)


def test_render_has_rows_and_bars() -> None:
    """The table names every quantity in bytes, GiB and GB, and draws a bar per column."""
    cols = [
        Column(name, load_model(name), ENGINES["vllm"], None)
        for name in ("deepseek-v3", "llama-3.1-70b")
    ]
    w = Workload(seq_len=8192)
    out = StringIO()
    render_compare(
        Console(width=100, color_system=None, file=out), compared_rows(compare(cols, w), w)
    )
    text = out.getvalue()
    for needle in ("KV bytes per token", "GiB (2^30)", "GB (10^9)", "MLA latent 576", "GQA 8 KV"):
        assert needle in text
    assert text.count("█") > 10


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["llama-3.1-8b", "--as", "gqa"], "--as takes 'mha'"),
        (["llama-3.1-8b", "--kv-dtype", "bf16,fp7"], "unknown KV dtype"),
        (["llama-3.1-8b", "--engine", "vllm,nope"], "engine"),
        (["llama-3.1-9b"], "did you mean"),
        (["llama-3.1-8b", "--gpu", "h1000"], "unknown GPU"),
    ],
)
def test_bad_input_one_error_line(run_cli: Run, args: list[str], needle: str) -> None:
    """Bad input: exit 2 and one `error:` line naming the problem, never a traceback."""
    result = run_cli("compare", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_state_counted_per_sequence() -> None:
    """A hybrid model's fixed state adds to its per-sequence cache and to the ratio; as MHA it has none."""
    from typing import Any

    from tests.test_explain import _hybrid_spec

    spec: Any = _hybrid_spec()
    w = Workload(seq_len=8192)
    real, mha = compare(
        [Column("h", spec, ENGINES["hf"], None), Column("h", as_mha(spec), ENGINES["hf"], None)],
        w,
    )
    assert real.state_bytes_per_sequence > 0 and mha.state_bytes_per_sequence == 0
    assert real.bytes_per_token == 16 * 2 * 4 * 256 * 2
    assert mha.bytes_per_token == 64 * 2 * 24 * 256 * 2  # every layer full MHA, 24 heads × 256
    assert mha.ratio_per_sequence == Fraction(
        mha.per_sequence_bytes, real.per_sequence_bytes + real.state_bytes_per_sequence
    )


GOLDEN_CASES = {
    "explain-opt-30b": ["explain", "opt-30b", "--seq", "1024", "--batch", "128", "--kv-dtype", "fp16"],
    "explain-deepseek-v3-tp8": ["explain", "deepseek-v3", "--seq", "8k", "--tp", "8"],
    "compare-deepseek-v3-llama-3.1-70b-tp8": [
        "compare", "deepseek-v3", "llama-3.1-70b", "--seq", "8k", "--as", "mha",
        "--gpu", "h200", "--tp", "8",
    ],
    "plot-llama-3.1-8b-h100": ["plot", "llama-3.1-8b", "--gpu", "h100-80gb", "--seq", "1k..64k"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_json(name: str) -> None:
    """explain/compare/plot JSON equals its reviewed golden file (KVCALC_UPDATE_GOLDEN=1 rewrites).

    The key figures inside are hand-derived in tests/test_explain.py, test_compare.py and
    test_plot.py; the golden file makes any other change to the output show up in review.
    """
    import os
    from pathlib import Path

    from typer.testing import CliRunner

    from kvcalc.cli import app

    result = CliRunner().invoke(app, [*GOLDEN_CASES[name], "--format", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    path = Path(__file__).parent / "golden" / f"{name}.json"
    if os.environ.get("KVCALC_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    assert data == json.loads(path.read_text())


def test_as_mha_ratio_is_heads_over_kv_heads_for_every_preset() -> None:
    """For every GQA/MQA preset (K = V dims, formula engine): MHA / real per token = n_heads / n_kv_heads."""
    from kvcalc.presets import load_all_models
    from kvcalc.specs import MLA

    checked = 0
    for name, spec in sorted(load_all_models().items()):
        a = spec.attention
        kinds = getattr(spec, "kinds", None)
        if isinstance(a, MLA) or kinds or a.head_dim_v not in (None, a.head_dim):
            continue
        _, mha = compare(
            [
                Column(name, spec, ENGINES["formula"], None),
                Column(name, as_mha(spec), ENGINES["formula"], None),
            ],
            Workload(seq_len=1),
        )
        assert mha.ratio_per_token == Fraction(a.n_heads, a.n_kv_heads), name
        checked += 1
    assert checked >= 30
