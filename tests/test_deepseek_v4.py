"""DeepSeek-V4 compressed attention under the hf profile, derived by hand from the published
configs (tests/data/hf_configs/deepseek-v4-*.json) and transformers 5.24's cache layout
(models/deepseek_v4/modeling_deepseek_v4.py, written up in docs/deepseek-v4.md).

Flash: 43 layers = 2 sliding (0, 1) + 21 CSA (even 2-42, m = 4) + 20 HCA (odd 3-41,
m' = 128); Pro: 61 layers = 30 CSA + 31 HCA. D = head_dim 512, Di = index_head_dim 128,
W = sliding_window 128, bf16 (e = 2).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.dtypes import weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.hf import import_config
from kvcalc.kernel import FitKernel, KvKernel
from kvcalc.planner import Plan, fits_at, largest_fitting_seq, max_seq_len
from kvcalc.presets import load_gpu, load_model
from kvcalc.specs import ModelSpec

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
HF = ENGINES["hf"]


def _config(stem: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((CONFIGS / f"{stem}.json").read_text())
    return data


def _bytes(model: ModelSpec, seq: int, batch: int = 1) -> int:
    return kv_cache(model, Workload(seq_len=seq, batch=batch), HF).total_bytes


def _layer_bytes(seq: int, *, csa: bool) -> int:
    """One compressed layer, one sequence, by the CompressedKind formula (e = 2)."""
    d, di, e, t = 512, 128, 2, min(seq, 127)
    if not csa:
        return t * d * e + 2 * (seq % 128) * d * e + (seq // 128) * d * e
    overlap = 4 * (d + di) * (e + 4) if seq >= 4 else 0
    return t * d * e + 2 * (seq % 4) * (2 * d + 2 * di) * e + (seq // 4) * (d + di) * e + overlap


def test_flash_777_tokens_batch_3_worked_example(flash: ModelSpec) -> None:
    """Flash after 777 tokens at batch 3 holds 35,965,440 B: the doc's 51,961,344 B numel sum
    less the 41 compressed layers' aliased values, held once (41 · 390,144 = 15,995,904)."""
    # keys = values = 3·127·512·2 = 390,144 per layer
    # sliding layer: 2·390,144 = 780,288 (K and V are two tensors there)
    # HCA: 390,144 + 2·(3·9·512·2) + 3·6·512·2 = 390,144 + 55,296 + 18,432 = 463,872
    # CSA: 390,144 + 2·(3·1·1024·2) + 2·(3·1·256·2) + 3·194·512·2 + 3·194·128·2
    #      + 3·4·512·(2 + 4) + 3·4·128·(2 + 4)
    #    = 390,144 + 12,288 + 3,072 + 595,968 + 148,992 + 46,080 = 1,196,544
    # model: 2·780,288 + 20·463,872 + 21·1,196,544 = 35,965,440
    assert _bytes(flash, 777, 3) == 35_965_440
    assert 51_961_344 - 41 * 390_144 == 35_965_440


def test_flash_one_token_holds_no_compressed_entry(flash: ModelSpec) -> None:
    """At seq 1 every layer holds one key row and one buffered row, no entry, no overlap."""
    # sliding 2·1·512·2 = 2,048; HCA 1,024 + 2·1·512·2 = 3,072;
    # CSA 1,024 + 2·1·(1024 + 256)·2 = 6,144
    assert _bytes(flash, 1) == 2 * 2_048 + 20 * 3_072 + 21 * 6_144


def test_flash_at_128_tokens_hca_buffer_has_emptied(flash: ModelSpec) -> None:
    """At seq 128 = m': HCA holds one entry and no buffer; CSA 32 entries, overlap, no buffer."""
    # sliding 2·127·512·2 = 260,096; keys 130,048
    # HCA 130,048 + 1·512·2 = 131,072; CSA 130,048 + 32·640·2 + 4·640·6 = 186,368
    assert _bytes(flash, 128) == 2 * 260_096 + 20 * 131_072 + 21 * 186_368


@pytest.mark.parametrize("seq", [1, 2, 3, 4, 5, 8, 127, 128, 129, 255, 256, 777, 8192, 100_003])
def test_every_length_follows_the_per_layer_formula(
    flash: ModelSpec, pro: ModelSpec, seq: int
) -> None:
    """Both models equal their layer counts times the per-layer formula, at and around m, m'."""
    sliding = 2 * min(seq, 127) * 512 * 2
    assert _bytes(flash, seq) == 2 * sliding + 20 * _layer_bytes(
        seq, csa=False
    ) + 21 * _layer_bytes(seq, csa=True)
    assert _bytes(pro, seq) == 31 * _layer_bytes(seq, csa=False) + 30 * _layer_bytes(seq, csa=True)


def test_long_sequences_grow_6880_bytes_per_token_flash_9848_pro(
    flash: ModelSpec, pro: ModelSpec
) -> None:
    """Past the window, 128 more tokens add 128 × (21·320 + 20·8) = 128 × 6,880 B (Flash) and
    128 × (30·320 + 31·8) = 128 × 9,848 B (Pro): (D + Di)·e / m per CSA, D·e / m' per HCA."""
    for seq in (1000, 4096 + 77, 65_539):
        assert _bytes(flash, seq + 128) - _bytes(flash, seq) == 128 * 6_880
        assert _bytes(pro, seq + 128) - _bytes(pro, seq) == 128 * 9_848


def test_linear_in_batch(flash: ModelSpec) -> None:
    """Bytes scale with the batch exactly (each sequence keeps its own tensors)."""
    for seq in (3, 130, 5000):
        assert _bytes(flash, seq, 7) == 7 * _bytes(flash, seq)


def test_import_matches_the_transformers_parameter_count() -> None:
    """The closed form gives transformers' meta-device sum(p.numel()): 284,332,230,231 (Flash)
    and 1,572,997,179,491 (Pro), docs/deepseek-v4.md."""
    flash = import_config(_config("deepseek-v4-flash"), "x").spec
    pro = import_config(_config("deepseek-v4-pro"), "x").spec
    assert flash.n_params == 284_332_230_231
    assert pro.n_params == 1_572_997_179_491
    assert flash.layer_kind_names()[:4] == ("sliding", "sliding", "csa", "hca")
    assert flash.layer_kind_names().count("csa") == 21
    assert pro.layer_kind_names()[:3] == ("hca", "hca", "csa")
    assert pro.mtp_layers == flash.mtp_layers == 1


def test_layer_types_and_rates_follow_deepseek_v4_config() -> None:
    """layer_types wins over compress_ratios; compress_rates / compress_rate_* set m and m'."""
    config = _config("deepseek-v4-flash")
    types = ["sliding_attention"] + ["compressed_sparse_attention"] * 42
    spec = import_config({**config, "layer_types": types, "compress_rate_csa": 8}, "x").spec
    assert spec.layer_kind_names().count("csa") == 42
    assert spec.kinds is not None and spec.kinds["csa"].rate == 8  # type: ignore[union-attr]
    spec = import_config(
        {**config, "compress_rates": {"heavily_compressed_attention": 64}}, "x"
    ).spec
    assert spec.kinds is not None and spec.kinds["hca"].rate == 64  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"compress_ratios": [0, 4, 16]}, "'compress_ratios' must list 0, 4 or 128"),
        ({"compress_ratios": [0, 4]}, "layer_types must list 43 layers"),
        ({"layer_types": ["full_attention"] * 43}, "'layer_types' must list"),
        ({"indexer_types": ["full"] * 43}, "config key 'indexer_types'"),
        ({"index_head_dim": None}, "lacks 'index_head_dim'"),
    ],
)
def test_config_it_does_not_understand_is_refused(change: dict[str, object], message: str) -> None:
    """Unknown layer types, rates and cache keys are refused in one line naming them."""
    with pytest.raises(KvcalcError, match=message):
        import_config({**_config("deepseek-v4-flash"), **change}, "x")


@pytest.mark.parametrize("engine", ["vllm@v0", "trtllm", "hf@4"])
def test_other_engines_refuse_compressed_layers(flash: ModelSpec, engine: str) -> None:
    """Engines whose layout is not read refuse the compressed layers in one line (vllm's:
    tests/test_deepseek_v4_vllm.py; llama.cpp's: tests/test_llamacpp.py)."""
    with pytest.raises(KvcalcError, match="compressed layers") as info:
        kv_cache(flash, Workload(seq_len=100), ENGINES[engine])
    assert "\n" not in str(info.value)


def test_textbook_formula_keeps_the_window_whole(flash: ModelSpec) -> None:
    """--engine formula counts transformers' compressed tensors with windows of W = 128, not
    W − 1: at seq 777, batch 3, 43 layers hold 128 key rows instead of 127, 3 · 512 · 2 =
    3,072 B more each (2 tensors in the 2 sliding layers): 35,965,440 + 45 · 3,072."""
    formula = kv_cache(flash, Workload(seq_len=777, batch=3), ENGINES["formula"])
    assert formula.total_bytes == 35_965_440 + (2 * 2 + 41) * 3_072


def test_hf_refuses_what_it_does_not_model(flash: ModelSpec) -> None:
    """--mtp (transformers builds no MTP layer), a quantised cache and TP are refused."""
    from kvcalc.dtypes import kv_dtype

    with pytest.raises(KvcalcError, match="MTP"):
        kv_cache(flash, Workload(seq_len=10, mtp=True), HF)
    fp8 = kv_dtype("fp8")
    with pytest.raises(KvcalcError, match="model dtype"):
        kv_cache(flash, Workload(seq_len=10, k_dtype=fp8, v_dtype=fp8), HF)
    with pytest.raises(KvcalcError, match="tensor parallelism"):
        kv_cache(flash, Workload(seq_len=10, tp=2), HF)


def test_bytes_fall_only_where_a_buffer_empties_and_grow_over_a_period(flash: ModelSpec) -> None:
    """bytes(S) < bytes(S - 1) only at multiples of m = 4, and bytes(S + 128) ≥ bytes(S):
    the two facts planner.largest_fitting_seq relies on."""
    values = [_bytes(flash, s) for s in range(1, 1200)]
    for s in range(2, 1200):
        if values[s - 1] < values[s - 2]:
            assert s % 4 == 0
    assert values[8 - 1] < values[7 - 1]  # 3 buffered rows empty into one entry at 8
    for s in range(1, 1200 - 128):
        assert values[s + 128 - 1] >= values[s - 1]


def test_largest_fitting_seq_is_exact_for_non_monotone_bytes() -> None:
    """The search finds the first length that does not fit, minus one, though bytes fall."""
    rates = (4, 128)

    def need(seq: int) -> int:  # a CSA + HCA layer pair's shape: falls at multiples of 4
        return 10 * min(seq, 127) + 50 * (seq % 4) + 3 * (seq // 4) + 7 * (seq % 128) + seq // 128

    for cap in range(150, 4000, 37):
        expected = next(s for s in range(1, 10**6) if need(s) > cap) - 1
        found = largest_fitting_seq(lambda s, cap=cap: need(s) <= cap, 10**6, rates)
        assert found == (expected, False)


def test_planner_max_seq_len_is_the_first_length_that_does_not_fit_minus_one(
    flash: ModelSpec,
) -> None:
    """planner.max_seq_len: every length up to it fits and the next one does not."""
    gpu = load_gpu("h200")
    bf16 = weight_dtype("bf16")  # weights in bf16, not as published: short contexts to sweep
    for batch in (3_000, 30_000, 60_000):  # max context 4,985, 106 and 18 tokens
        plan = Plan(flash, gpu, HF, Workload(seq_len=1, batch=batch, pp=8), weights_dtype=bf16)
        found, clamped = max_seq_len(plan)
        assert not clamped and 0 < found < 6_000, (batch, found)
        assert all(fits_at(plan, s, batch) for s in range(1, found + 1))
        assert not fits_at(plan, found + 1, batch)


@settings(max_examples=60, deadline=None)
@given(
    seq=st.one_of(st.integers(1, 600), st.integers(1, 1_048_576)),
    batch=st.integers(1, 64),
    pp=st.sampled_from([1, 2, 3]),
    stem=st.sampled_from(["deepseek-v4-flash", "deepseek-v4-pro"]),
)
def test_kernel_equals_kv_cache(seq: int, batch: int, pp: int, stem: str) -> None:
    """The compiled kernel (token rules min(S, W−1), ⌊S/m⌋, S mod m, [S ≥ m]) equals kv_cache."""
    model = load_model(stem)
    workload = Workload(seq_len=1, pp=pp)
    kernel = KvKernel(model, HF, workload)
    assert kernel.exact_fast, kernel.reason
    kv = kv_cache(model, replace(workload, seq_len=seq, batch=batch), HF)
    at = kernel.at(seq, batch)
    assert (at.total_bytes, at.per_gpu_bytes, at.per_sequence_bytes) == (
        kv.total_bytes,
        kv.per_gpu_bytes,
        kv.per_sequence_bytes,
    )
    assert (at.per_gpu_bytes_per_token, at.busiest_stage) == (
        kv.per_gpu_bytes_per_token,
        kv.busiest_stage,
    )


@pytest.mark.parametrize("batch", [1, 40, 100_000])
def test_fit_kernel_max_seq_len_equals_planner(flash: ModelSpec, batch: int) -> None:
    """FitKernel's max context (non-monotone search) equals planner.max_seq_len's."""
    for pp in (8, 16):
        workload = Workload(seq_len=1, batch=batch, pp=pp)
        kernel = FitKernel(flash, load_gpu("h200"), HF, workload)
        assert kernel.exact_fast
        expected = max_seq_len(Plan(flash, load_gpu("h200"), HF, workload))
        assert kernel.max_seq_len(batch) == expected


def test_cli_calc_explain_and_a_refused_engine() -> None:
    """calc lists the compressed parts as groups, explain runs, and vllm without an fp8 KV
    cache is refused in one `error:` line with exit 2 (no traceback)."""
    from typer.testing import CliRunner

    from kvcalc.cli import app

    runner = CliRunner()
    args = ["deepseek-v4-flash", "--seq", "777", "--batch", "3"]
    calc = runner.invoke(app, ["calc", *args, "--engine", "hf", "-f", "json"])
    assert calc.exit_code == 0, calc.output
    data = json.loads(calc.stdout)
    assert data["total_bytes"] == 35_965_440
    kinds = {(g["kind"], g["window"]) for g in data["layers"]}
    assert {("compressed", 4), ("buffered", 128), ("overlap", 4), ("sliding", 128)} <= kinds
    explain = runner.invoke(app, ["explain", *args, "--engine", "hf"])
    assert explain.exit_code == 0 and "Traceback" not in explain.output
    assert "21 of 43 layers are csa (compressed, m = 4)" in explain.stdout
    refused = runner.invoke(app, ["calc", *args, "--engine", "vllm"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.stderr.count("error:") == 1 and "needs an fp8 KV cache" in refused.stderr
