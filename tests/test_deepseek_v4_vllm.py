"""DeepSeek-V4 under vLLM, derived by hand from the published configs
(tests/data/hf_configs/deepseek-v4-*.json) and vLLM's cache specs (kvcalc/vllm_compressed.py,
sources in engines.VLLM_DEEPSEEK_V4_SOURCES, written up in docs/deepseek-v4.md).

Config: head_dim D = 512 (qk_rope_head_dim 64: 448 NoPE), index_head_dim Di = 128,
sliding_window W = 128; compress_ratios 0 / 4 / 128 per layer. Flash: 2 sliding + 21 CSA
(m 4) + 20 HCA (m 128) = 43 layers; Pro: 30 CSA + 31 HCA = 61 layers.

One fp8_ds_mla token: 448 fp8 NoPE + 64·2 bf16 RoPE + 448/64 = 7 ue8m0 scales + 1 pad = 584 B.
Pages (rounded up to 576 B):
  C4A  256/4 = 64 entries · 584 = 37,376 -> 65·576 = 37,440
  C128A 256/128 = 2 entries · 584 = 1,168 -> 3·576 = 1,728
  C4I  64 entries · (128 fp8 + 128/128·4 B scale) = 8,448 -> 15·576 = 8,640
  SWA  64 tokens · 584 = 37,376 -> 37,440
  C4 state   4 tokens · 2·2·512 fp32 · 4 B = 32,768 -> 57·576 = 32,832 (padded to 37,440)
  C4I state  4 tokens · 2·2·128 · 4 = 8,192 -> 15·576 = 8,640
  C128 state 8 tokens · 2·512 · 4 = 32,768 -> 32,832 (padded to 37,440)
Flash layer tuples: full-MLA 21 (C4A 21, C4I 21, C128A 20), SWA 43, C4 states 21, C128
state 20; _approximate_gcd from 21: d = 21 pads 0 + 20 + 0 + 1 = 21, d = 22 pads
1 + 1 + 1 + 2 = 5, d = 23 pads 10, d >= 24 more: 22. SWA splits into cdiv(43, 22) = 2
groups (22 and 21 tuples); the longest bucket is 22. A pool block is 22 · (1,728 + 8,640 +
37,440) = 22 · 47,808 = 1,051,776 B. Per sequence of S tokens (N = 8,192 batched tokens):
cdiv(S, 256) full-MLA blocks, and cdiv(min(W - 1 + N, S), B) + 1 in each sliding group:
SWA (2 groups) B 64 W 128, C4 states B 4 W 8, C128 state B 8 W 128.
"""

from __future__ import annotations

import pytest

from kvcalc.dtypes import kv_dtype, weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.kernel import FitKernel, KvKernel, fit_fast
from kvcalc.planner import Plan, fit
from kvcalc.presets import load_gpu
from kvcalc.specs import ModelSpec
from kvcalc.vllm_compressed import block_pool, layer_caches

VLLM = ENGINES["vllm"]
FP8 = kv_dtype("fp8")
FLASH_BLOCK = 22 * (1_728 + 8_640 + 37_440)  # 1,051,776 B
PRO_BLOCK = 31 * (1_728 + 8_640 + 37_440)  # 1,482,048 B


def _workload(seq: int, **kw: int) -> Workload:
    return Workload(seq_len=seq, k_dtype=FP8, v_dtype=FP8, **kw)


def test_pages_per_layer_kind(flash: ModelSpec) -> None:
    """Each layer kind registers the caches and 576-aligned pages of the module docstring."""
    pages = {
        name: [(c.name, c.block_size, c.window, c.page) for c in layer_caches(flash, name, 128)]
        for name in ("sliding", "csa", "hca")
    }
    assert pages["sliding"] == [("SWA", 64, 128, 37_440)]
    assert pages["hca"] == [
        ("SWA", 64, 128, 37_440),
        ("C128A", 256, None, 1_728),
        ("C128 state", 8, 128, 32_832),
    ]
    assert pages["csa"] == [
        ("SWA", 64, 128, 37_440),
        ("C4A", 256, None, 37_440),
        ("C4I", 256, None, 8_640),
        ("C4 state", 4, 8, 32_832),  # window coff · m = 2 · 4
        ("C4I state", 4, 8, 8_640),
    ]


def test_flash_pool_layout(flash: ModelSpec) -> None:
    """Flash: 22 layer tuples, a 1,051,776 B block, five KV-cache groups (SWA split in two)."""
    caches = [c for name in flash.layer_kind_names() for c in layer_caches(flash, name, 128)]
    pool = block_pool(caches, 777, 8_192)
    assert pool.tuple_pages == (1_728, 8_640, 37_440)
    assert (pool.layer_tuples, pool.block_bytes) == (22, FLASH_BLOCK) == (22, 1_051_776)
    shape = [(g.name, g.layers, g.groups, g.block_size, g.window, g.pages) for g in pool.groups]
    assert shape == [
        ("C4A + C4I + C128A", 21 + 21 + 20, 1, 256, None, (1_728, 8_640, 37_440)),
        ("SWA", 43, 2, 64, 128, (37_440,)),
        ("C4 state + C4I state", 21 + 21, 1, 4, 8, (8_640, 37_440)),
        ("C128 state", 20, 1, 8, 128, (37_440,)),
    ]


@pytest.mark.parametrize(
    ("seq", "blocks"),
    [
        # S = 100 (below W): cdiv(100, 256) = 1; SWA cdiv(100, 64) + 1 = 3 (two groups);
        # C4 states cdiv(100, 4) + 1 = 26; C128 state cdiv(100, 8) + 1 = 14
        (100, 1 + 2 * 3 + 26 + 14),
        # S = 777 (not a multiple of 128): 4; cdiv(777, 64) + 1 = 14; cdiv(777, 4) + 1 = 196;
        # cdiv(777, 8) + 1 = 99
        (777, 4 + 2 * 14 + 196 + 99),
        # S = 131,072 (past N): 512; cdiv(127 + 8,192, 64) + 1 = 131; cdiv(7 + 8,192, 4) + 1
        # = 2,051; cdiv(127 + 8,192, 8) + 1 = 1,041
        (131_072, 512 + 2 * 131 + 2_051 + 1_041),
    ],
)
def test_flash_bytes_by_hand(flash: ModelSpec, seq: int, blocks: int) -> None:
    """Flash at three lengths holds blocks × 1,051,776 B: 47, 327 and 3,866 blocks."""
    kv = kv_cache(flash, _workload(seq), VLLM)
    assert kv.total_bytes == blocks * 1_051_776
    assert [g.tokens for g in kv.groups] == [
        g.blocks
        for g in kv.block_pool.groups  # type: ignore[union-attr]
    ]
    assert {100: 49_433_472, 777: 343_930_752, 131_072: 4_066_166_016}[seq] == kv.total_bytes


def test_per_token_counts_the_token_indexed_caches(flash: ModelSpec, pro: ModelSpec) -> None:
    """ "Per token" is what one token writes into the caches indexed by token (they stop at
    their windows): 584 B of SWA per layer, fp32 compressor states 2·2·(512 + 128)·4 =
    10,240 B per CSA layer and 2·512·4 = 4,096 B per HCA layer."""
    flash_kv = kv_cache(flash, _workload(777), VLLM)
    assert flash_kv.bytes_per_token == 43 * 584 + 21 * 10_240 + 20 * 4_096 == 322_072
    pro_kv = kv_cache(pro, _workload(777), VLLM)
    assert pro_kv.bytes_per_token == 61 * 584 + 30 * 10_240 + 31 * 4_096 == 469_800


def test_flash_batch_and_tensor_parallelism(flash: ModelSpec) -> None:
    """Bytes scale with the batch; under tp 4 every rank holds the whole cache (4× in total)."""
    one = kv_cache(flash, _workload(777), VLLM).total_bytes
    kv = kv_cache(flash, _workload(777, batch=3, tp=4), VLLM)
    assert kv.per_gpu_bytes == 3 * 343_930_752 == 3 * one
    assert kv.total_bytes == 4 * 3 * 343_930_752


def test_flash_bytes_never_fall(flash: ModelSpec) -> None:
    """Unlike transformers' buffers, vLLM's blocks never shrink as a sequence grows."""
    sizes = [kv_cache(flash, _workload(s), VLLM).total_bytes for s in range(1, 1_100)]
    assert sizes == sorted(sizes)


def test_pro_by_hand(pro: ModelSpec) -> None:
    """Pro: 31 layer tuples (full-MLA 31 = the 31 C128A; values [31, 61, 30, 31]: d = 31 pads
    0 + 1 + 1 + 0 = 2, d = 32 pads 7), block 31 · 47,808 = 1,482,048 B; at 8,192 tokens
    32 + 2·(cdiv(8,192, 64) + 1) + (cdiv(8,192, 4) + 1) + (cdiv(8,192, 8) + 1) = 3,364 blocks."""
    kv = kv_cache(pro, _workload(8_192, tp=8), VLLM)
    assert kv.block_pool is not None
    assert (kv.block_pool.layer_tuples, kv.block_pool.block_bytes) == (31, PRO_BLOCK)
    assert [g.groups for g in kv.block_pool.groups] == [1, 2, 1, 1]  # SWA: 31 + 30 tuples
    assert kv.per_gpu_bytes == (32 + 2 * 129 + 1_025 + 2_049) * 1_482_048 == 4_985_609_472
    assert kv.total_bytes == 8 * 4_985_609_472


def test_flash_fit_on_h200(flash: ModelSpec) -> None:
    """Flash, tp 4 on H200, fp8 weights, 32k tokens: the KV budget holds
    62,052,223,618 // 1,051,776 = 58,997 blocks; a 32,768-token sequence takes
    128 + 2·131 + 2,051 + 1,041 = 3,482, so max batch 16 and vLLM's 'GPU KV cache size'
    58,997 · 32,768 // 3,482 = 555,202 tokens; the compiled fit agrees."""
    plan = Plan(flash, load_gpu("h200"), VLLM, _workload(32_768, tp=4), weight_dtype("fp8"))
    result = fit(plan)
    assert result.budget.kv_budget_bytes == 62_052_223_618  # planner.budget (vllm rule)
    assert result.max_batch == 58_997 // (128 + 2 * 131 + 2_051 + 1_041) == 16
    assert result.max_tokens == 58_997 * 32_768 // 3_482 == 555_202
    assert result.max_seq_len == 1_048_576 and result.max_seq_len_clamped
    fast = fit_fast(plan)
    assert (fast.max_batch, fast.max_tokens, fast.max_seq_len) == (16, 555_202, 1_048_576)


def test_kernels_compile_and_agree(flash: ModelSpec) -> None:
    """The KV and fit kernels compile for the pool (no fallback) and match kv_cache and fit."""
    kernel = KvKernel(flash, VLLM, _workload(1, tp=2))
    assert kernel.exact_fast, kernel.reason
    for seq in (1, 100, 777, 8_192, 8_321, 131_072, 1_000_003):
        assert (
            kernel.at(seq, 5).total_bytes
            == kv_cache(flash, _workload(seq, batch=5, tp=2), VLLM).total_bytes
        )
    gpu = load_gpu("h200")
    fk = FitKernel(flash, gpu, VLLM, _workload(1, tp=8), weight_dtype("fp8"))
    assert fk.exact_fast
    for seq in (100, 4_096, 65_536):
        slow = fit(Plan(flash, gpu, VLLM, _workload(seq, tp=8), weight_dtype("fp8")))
        answer = fk.answer(seq, 1)
        assert (answer.at.max_batch, answer.max_tokens) == (slow.max_batch, slow.max_tokens)


@pytest.mark.parametrize(
    ("workload", "engine", "message"),
    [
        (Workload(seq_len=100), "vllm", "needs an fp8 KV cache"),  # auto: the model's bf16
        (
            Workload(seq_len=100, k_dtype=kv_dtype("fp16"), v_dtype=kv_dtype("fp16")),
            "vllm",
            "needs an fp8 KV cache",
        ),
        (_workload(100, pp=2), "vllm", "pipeline parallelism is not modelled"),
        (Workload(seq_len=100, k_dtype=FP8, v_dtype=FP8, mtp=True), "vllm", "drop --mtp"),
        (Workload(seq_len=100, k_dtype=FP8, v_dtype=FP8, block_size=16), "vllm", "256-token"),
        (_workload(100), "vllm@v0", "not modelled for it yet"),
        (_workload(100, tp=3), "vllm", "does not divide the 64 attention heads"),
    ],
)
def test_refusals(flash: ModelSpec, workload: Workload, engine: str, message: str) -> None:
    """What vLLM refuses, or kvcalc has not read, is refused in one line."""
    with pytest.raises(KvcalcError, match=message) as info:
        kv_cache(flash, workload, ENGINES[engine])
    assert "\n" not in str(info.value)


def test_cli_calc_vllm(flash: ModelSpec) -> None:
    """calc --engine vllm --kv-dtype fp8 lists the pool's groups in JSON; without it, and
    explain (not written for the pool), one error line each."""
    import json

    from typer.testing import CliRunner

    from kvcalc.cli import app

    runner = CliRunner()
    args = ["calc", "deepseek-v4-flash", "--seq", "777", "--engine", "vllm"]
    ok = runner.invoke(app, [*args, "--kv-dtype", "fp8", "-f", "json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["total_bytes"] == 343_930_752
    assert [(g["kind"], g["count"], g["tokens"]) for g in data["layers"]] == [
        ("pool_full", 1, 4),
        ("pool_sliding", 2, 14),
        ("pool_sliding", 1, 196),
        ("pool_sliding", 1, 99),
    ]
    table = runner.invoke(app, [*args, "--kv-dtype", "fp8"])
    assert table.exit_code == 0 and "Traceback" not in table.output
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and refused.stderr.count("error:") == 1
    assert "Traceback" not in refused.output
    explain = runner.invoke(app, ["explain", *args[1:], "--kv-dtype", "fp8"])
    assert explain.exit_code == 2 and explain.stderr.count("error:") == 1
    assert "block pool is not explained yet" in explain.stderr
