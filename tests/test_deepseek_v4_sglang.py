"""DeepSeek-V4 under --engine sglang, derived by hand from the published configs
(tests/data/hf_configs/deepseek-v4-*.json) and SGLang's pools (sgl-project/sglang v0.5.23,
the PyPI wheel: srt/mem_cache/deepseek_v4_memory_pool.py DeepSeekV4TokenToKVPool,
srt/model_executor/pool_configurator.py DSV4PoolConfigurator,
kernels/ops/attention/dsv4/kv_layout.py KVLayout.V4, srt/arg_groups/model_overrides/deepseek_v4.py).

Config: head_dim 512 = 448 no-RoPE + qk_rope_head_dim 64, index_head_dim 128,
sliding_window 128; compress_ratios cut to num_hidden_layers: Flash 2 sliding + 21 C4 (CSA)
+ 20 C128 (HCA) = 43 layers, Pro 30 C4 + 31 C128 = 61.

SGLang (CUDA defaults: fp8_e4m3 KV, page P = 256, no speculative decoding):
  one KV row (FlashMLA V4) = 448 fp8 + 64·2 bf16 + 448/64 scales + 1 pad = 584 B, pages
  padded to a multiple of 576 B: pages of 256 (sliding) and 64 (C4) rows cost
  ceil(256·584/576)·576 / 256 = 260·576 / 256 = 585 B a row and 65·576 / 64 = 585 B,
  pages of 2 (C128) 3·576 / 2 = 864 B;
  C4 indexer row = 128 fp8 + 128/128 · 4 B fp32 scale = 132 B;
  C4 compress state: a ring of 8 fp32 rows per sliding page, (4·512 + 4·128)·4 = 10,240 B
  a row, 8·10,240 / 256 = 320 B per sliding token of a C4 layer;
  C128 compress state: 128 fp32 rows of 2·512·4 = 4,096 B per request slot = 524,288 B.
A sequence of S tokens takes p = ceil(S / 256) full pages: p·64 C4 rows, p·2 C128 rows, and
(at the least, counted here) one 256-token page of every layer's sliding pool.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.dtypes import KV_DTYPES, weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.explain import explain
from kvcalc.formula import KvBreakdown, Workload, kv_cache
from kvcalc.kernel import KvKernel
from kvcalc.planner import (
    CUDA_CONTEXT_BYTES,
    Plan,
    _sglang_pools,
    budget,
    fit,
    fits_at,
    max_batch,
)
from kvcalc.presets import load_gpu, load_model
from kvcalc.specs import ModelSpec
from tests.conftest import Result

SGLANG = ENGINES["sglang"]
SWA_PAGE = 256 * 585  # one sliding page of one layer: 149,760 B
C4_STATE_PAGE = 8 * 10_240  # one sliding page's C4 compress-state ring rows: 81,920 B
C4_ROW = 585 + 132  # C4 KV row + indexer row
C128_ROW = 864
C128_RING = 128 * 4_096  # 524,288 B per request per C128 layer


def _pools(kv: KvBreakdown) -> dict[tuple[str, str], int]:
    """Bytes by (group kind, layer kind): the sliding pool, paged C4 / C128 rows, C128 rings."""
    found: dict[tuple[str, str], int] = {}
    for g in kv.groups:
        key = (g.kind, g.layer_kind or "sliding")
        found[key] = found.get(key, 0) + g.bytes
    return found


@pytest.mark.parametrize(
    ("seq", "pages"),
    [(1, 1), (1000, 4), (5000, 20), (131_072, 512)],
)
def test_flash_per_pool_bytes(flash: ModelSpec, seq: int, pages: int) -> None:
    """Flash, one sequence: sliding pool 2 · 149,760 + 21 · (149,760 + 81,920) + 20 · 149,760
    = 8,160,000 B whatever S; C4 21 · 64p · 717 B; C128 20 · 2p · 864 B; rings 20 · 524,288 =
    10,485,760 B. S = 1000: p = 4, 3,854,592 + 138,240 → 22,638,592 B; S = 5000: p = 20,
    19,272,960 + 691,200 → 38,609,920 B; S = 131,072: p = 512, 493,387,776 + 17,694,720 →
    529,728,256 B; S = 1: p = 1, 963,648 + 34,560 → 19,643,968 B."""
    kv = kv_cache(flash, Workload(seq_len=seq), SGLANG)
    assert kv.k_dtype.name == "fp8_e4m3" and kv.block_size == 256
    assert -(-seq // 256) == pages
    assert _pools(kv) == {
        ("sliding", "sliding"): 2 * SWA_PAGE,
        ("sliding", "csa"): 21 * (SWA_PAGE + C4_STATE_PAGE),
        ("sliding", "hca"): 20 * SWA_PAGE,
        ("paged", "csa"): 21 * pages * 64 * C4_ROW,
        ("paged", "hca"): 20 * pages * 2 * C128_ROW,
        ("ring", "hca"): 20 * C128_RING,
    }
    expected = {
        1: 19_643_968,
        1000: 22_638_592,
        5000: 38_609_920,
        131_072: 529_728_256,
    }[seq]
    assert 8_160_000 + 21 * pages * 64 * 717 + 20 * pages * 2 * 864 + 10_485_760 == expected
    assert kv.total_bytes == expected
    # what one more token in every layer's sliding pool costs: 43 · 585 + 21 · 320
    assert kv.bytes_per_token == 31_875


def test_pro_per_pool_bytes(pro: ModelSpec) -> None:
    """Pro at S = 1000 (p = 4): sliding 30 · 231,680 + 31 · 149,760 = 11,592,960 B; C4 30 · 256
    · 717 = 5,506,560 B; C128 31 · 8 · 864 = 214,272 B; rings 31 · 524,288 = 16,252,928 B;
    33,566,720 B in all."""
    kv = kv_cache(pro, Workload(seq_len=1000), SGLANG)
    assert _pools(kv) == {
        ("sliding", "csa"): 30 * (SWA_PAGE + C4_STATE_PAGE),
        ("sliding", "hca"): 31 * SWA_PAGE,
        ("paged", "csa"): 30 * 256 * C4_ROW,
        ("paged", "hca"): 31 * 8 * C128_ROW,
        ("ring", "hca"): 31 * C128_RING,
    }
    assert kv.total_bytes == 11_592_960 + 5_506_560 + 214_272 + 16_252_928 == 33_566_720


def test_attention_tp_replicates_and_batch_is_linear(flash: ModelSpec) -> None:
    """One MQA row per token (the pool has no head split): every attention-TP rank holds the
    whole cache, and b sequences hold b times one."""
    one = kv_cache(flash, Workload(seq_len=5000), SGLANG)
    tp8 = kv_cache(flash, Workload(seq_len=5000, batch=3, tp=8), SGLANG)
    assert tp8.per_gpu_bytes == 3 * one.total_bytes
    assert tp8.total_bytes == 8 * 3 * one.total_bytes


@settings(max_examples=40, deadline=None)
@given(
    seq=st.one_of(st.integers(1, 1_200), st.integers(1, 1_048_576)),
    batch=st.integers(1, 64),
    stem=st.sampled_from(["deepseek-v4-flash", "deepseek-v4-pro"]),
)
def test_kernel_equals_kv_cache(seq: int, batch: int, stem: str) -> None:
    """The compiled kernel (paged rows round_up(S, 256) / m, a constant ring) equals kv_cache."""
    model = load_model(stem)
    kernel = KvKernel(model, SGLANG, Workload(seq_len=1))
    assert kernel.exact_fast, kernel.reason
    kv = kv_cache(model, Workload(seq_len=seq, batch=batch), SGLANG)
    at = kernel.at(seq, batch)
    assert (at.total_bytes, at.per_sequence_bytes) == (kv.total_bytes, kv.per_sequence_bytes)


# the pool tests pin bf16 weights (not the published fp8 + mxfp4) so the figures below,
# taken with them, keep testing the pools' arithmetic
BF16 = weight_dtype("bf16")


def _plan(model: ModelSpec, seq: int, util: float) -> Plan:
    workload = Workload(seq_len=seq, tp=8)
    return Plan(model, load_gpu("h200"), SGLANG, workload, util=util, weights_dtype=BF16)


# H200 (tp 8, attention TP: every rank holds the whole cache): capacity 150,109,880,320 B,
# CUDA context 552,402,944 B, weights (bf16, a rank's share) 71,458,600,318 B.
H200_FREE = 150_109_880_320 - CUDA_CONTEXT_BYTES
WEIGHTS_TP8 = 71_458_600_318
# DSV4PoolConfigurator, Flash: bytes_per_full_token = 0.1 · 31,875 (sliding pool, C4 state
# with it) + 21 · 717 / 4 + 20 · 864 / 128 = 3,187.5 + 3,764.25 + 135 = 7,086.75 B; the
# C128 rings of 256 + 1 request slots: round_up(257 · 128 + 128 + 1, 128) = 33,152 rows ·
# 4,096 B · 20 layers = 2,715,811,840 B, paid first.
C128_FIXED = 33_152 * 4_096 * 20


def test_flash_pools_on_h200_tp8() -> None:
    """mem_fraction_static 0.9: budget ⌊149,557,477,376 · 0.9⌋ − weights = 63,143,129,320 B;
    full = ⌊(63,143,129,320 − 2,715,811,840) / 7,086.75⌋ = 8,526,802 → 8,526,592 in pages of
    256 (SGLang's max_total_num_tokens); sliding = ⌊852,659.2⌋ → 852,480. A 64k request takes
    65,536 full tokens: 8,526,592 // 65,536 = 130 requests (the sliding pool holds at most
    768 of each, 852,480 // 768 = 1,110 ≥ 130); at 32k 260, capped at max_running_requests
    256."""
    flash = load_model("deepseek-v4-flash")
    p = _plan(flash, 65_536, 0.9)
    b = budget(p)
    assert b.weights_bytes == WEIGHTS_TP8
    rest = H200_FREE * 9 // 10 - WEIGHTS_TP8
    assert b.kv_budget_bytes == rest == 63_143_129_320
    full = (rest - C128_FIXED) * 4 // 28_347  # / 7,086.75
    assert full == 8_526_802
    full -= full % 256
    swa = full // 10 // 256 * 256
    assert (full, swa) == (8_526_592, 852_480)
    assert b.pools is not None
    assert (b.pools.kv_tokens, b.pools.swa_tokens, b.pools.max_requests) == (full, swa, 256)
    assert [t for _, t in b.pool_terms] == [
        swa * 31_875,
        full * 15_597 // 4,  # 3,899.25 B of C4 / C128 rows a full token
        C128_FIXED,
        rest - swa * 31_875 - full * 15_597 // 4 - C128_FIXED,
    ]
    result = fit(p)
    assert result.max_tokens == full
    assert result.max_batch == 130 == full // 65_536
    assert result.fits
    assert not fits_at(p, 65_536, 131)
    assert max_batch(replace(p, workload=replace(p.workload, seq_len=32_768))) == 256


def test_flash_max_context_on_h200_tp8_at_half_memory() -> None:
    """mem_fraction_static 0.5: budget 74,778,738,688 − 71,458,600,318 = 3,320,138,370 B;
    full = ⌊604,326,530 / 7,086.75⌋ = 85,275 → 85,248, sliding ⌊8,524.8⌋ → 8,448. One
    sequence may take every full page: max context 85,248 tokens; at 8k, 85,248 // 8,192 = 10
    requests (the sliding pool holds 8,448 // 768 = 11 even at the most each keeps)."""
    flash = load_model("deepseek-v4-flash")
    p = _plan(flash, 8_192, 0.5)
    rest = H200_FREE // 2 - WEIGHTS_TP8
    assert rest == 3_320_138_370
    assert (rest - C128_FIXED) * 4 // 28_347 == 85_275
    result = fit(p)
    assert result.max_tokens == 85_248
    assert result.max_seq_len == 85_248
    assert result.max_batch == 10


def test_short_requests_on_a_small_sliding_pool_refused() -> None:
    """At 4k on the 0.5 budget the full pool would take 20 requests but the sliding pool
    (8,448 tokens) holds between 8,448 // 768 = 11 and 8,448 // 256 = 33 of them, set by
    SGLang's SWA eviction schedule: refused in one line, not guessed."""
    p = _plan(load_model("deepseek-v4-flash"), 4_096, 0.5)
    with pytest.raises(KvcalcError, match=r"^engine sglang: at 4,096 tokens the sliding"):
        max_batch(p)


def test_a_budget_below_one_request_fits_nothing() -> None:
    """A budget whose sliding pool is at most window + page (384) tokens: SGLang refuses to
    start (validate_swa_pool_size), so nothing fits."""
    flash = load_model("deepseek-v4-flash")
    p = _plan(flash, 1000, 0.48)
    b = budget(p)
    assert b.pools is not None and b.pools.kv_tokens == 0
    assert max_batch(p) == 0


@pytest.mark.parametrize(
    ("workload", "message"),
    [
        (Workload(seq_len=100, k_dtype=KV_DTYPES["bf16"]), "a bf16 KV cache is not modelled"),
        (Workload(seq_len=100, mtp=True), "MTP layers of a compressed-attention model"),
        (Workload(seq_len=100, block_size=64), "--block-size 64 is not modelled"),
    ],
)
def test_refusals(flash: ModelSpec, workload: Workload, message: str) -> None:
    """What SGLang's DeepSeek-V4 path does not take, or kvcalc has not read, is refused in
    one line: a non-fp8 cache (the pool asserts uint8 storage), speculative decoding (its
    rings and draft worker), another page size."""
    with pytest.raises(KvcalcError, match=message) as info:
        kv_cache(flash, workload, SGLANG)
    assert "\n" not in str(info.value)


def test_pools_refused_off_cuda_and_with_pipeline_parallelism(flash: ModelSpec) -> None:
    """ROCm builds other pools (unified KV rings, fp4 indexer); the PP slices are not read."""
    amd = Plan(flash, load_gpu("mi300x"), SGLANG, Workload(seq_len=1000, tp=8))
    with pytest.raises(KvcalcError, match="amd GPUs is not modelled"):
        budget(amd)
    pp = Plan(flash, load_gpu("h200"), SGLANG, Workload(seq_len=1000, tp=4, pp=2))
    with pytest.raises(KvcalcError, match="pipeline parallelism"):
        budget(pp)


def test_explain_refused(flash: ModelSpec) -> None:
    """explain has no textbook counterpart for SGLang's fp8 paged rows: one line."""
    kv = kv_cache(flash, Workload(seq_len=1000), SGLANG)
    with pytest.raises(KvcalcError, match=r"^explain: SGLang's DeepSeek-V4 pools"):
        explain(kv, "deepseek-v4-flash")


def test_cli_calc_and_fit(run_cli: Callable[..., Result]) -> None:
    """`calc --engine sglang` gives the hand-derived 22,638,592 B at 1,000 tokens (fp8, page
    256); `fit` on 8 H200 lists SGLang's pools (8,526,592 full tokens) and 130 requests of
    64k; a bf16 cache is one error line, exit 2."""
    result = run_cli(
        "calc", "deepseek-v4-flash", "--engine", "sglang", "--seq", "1000", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["total_bytes"], data["kv_dtype"], data["block_size"]) == (
        22_638_592,
        "fp8_e4m3",
        256,
    )
    args = (
        "--gpu",
        "h200",
        "--tp",
        "8",
        "--util",
        "0.9",
        "--seq",
        "64k",
        "--weights-dtype",
        "bf16",
    )
    args += ("--format", "json")
    result = run_cli("fit", "deepseek-v4-flash", "--engine", "sglang", *args)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["max_tokens"], data["max_batch"]) == (8_526_592, 130)
    assert sum(t["bytes"] for t in data["pool_terms"]) == data["kv_budget_bytes"]
    result = run_cli("calc", "deepseek-v4-flash", "--engine", "sglang", "--kv-dtype", "bf16")
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr


def test_pro_pools_on_a_given_budget(pro: ModelSpec) -> None:
    """Pro, 63,143,129,320 B of KV budget: bytes_per_full_token = 0.1 · 45,285 + 30 · 717 / 4
    + 31 · 864 / 128 = 4,528.5 + 5,377.5 + 209.25 = 10,115.25 B; rings 33,152 · 4,096 · 31 =
    4,209,508,352 B; full = ⌊58,933,620,968 / 10,115.25⌋ = 5,826,214 → 5,826,048, sliding
    ⌊582,604.8⌋ → 582,400 (what SGLang's DSV4PoolConfigurator returns for this budget)."""
    p = Plan(pro, load_gpu("h200"), SGLANG, Workload(seq_len=1000, tp=8))
    pools = _sglang_pools(p, 63_143_129_320)
    assert pools is not None
    assert (63_143_129_320 - 33_152 * 4_096 * 31) * 4 // 40_461 == 5_826_214
    assert (pools.kv_tokens, pools.swa_tokens) == (5_826_048, 582_400)
    assert pools.fixed_state_bytes == 4_209_508_352
    assert pools.compressed_bytes == 5_826_048 * (30 * 717 * 32 + 31 * 864) // 128
