"""MiniMax-M3 under vLLM, derived by hand from the published config
(tests/data/hf_configs/minimax-m3.json) and vLLM's cache specs
(vllm-project/vllm@0484480bc73081c4a5133b3cb53018323fce632d, kvcalc/engines.py
VLLM_MINIMAX_M3_SOURCES).

Config: 60 layers, sparse_attention_freq 0 for layers 0-2 and 1 for 3-59 (3 dense + 57
sparse), num_key_value_heads 4, head_dim 128, sparse_index_dim 128, bf16.
vLLM: every layer's K/V is a FullAttentionSpec of max(1, 4 // tp) heads, page
block · heads · (128 + 128) · dtype; each sparse layer's MiniMaxM3IndexerCache is an
MLAAttentionSpec of one head of 128 in bf16 (indexer_kv_dtype), no V, page block · 128 · 2;
all 117 specs share one KV-cache group (UniformTypeKVCacheSpecs: its page is the sum), and
the block is 128, the one kernel block MiniMaxM3SparseBackend / MiniMaxM3IndexerBackend take.
"""

from __future__ import annotations

import pytest

from kvcalc.dtypes import KV_DTYPES
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.planner import Plan, budget, fit
from kvcalc.presets import load_model
from kvcalc.specs import GpuSpec, ModelSpec

VLLM = ENGINES["vllm"]


@pytest.fixture(scope="module")
def m3() -> ModelSpec:
    return load_model("minimax-m3")


@pytest.mark.parametrize(
    ("tp", "kv_dtype", "per_token"),
    [
        # dense 2·4·128·2 = 2,048; sparse 2,048 + 128·2 = 2,304: 6,144 + 131,328
        (1, "bf16", 3 * 2048 + 57 * (2048 + 256)),  # 137,472
        # 1 head a rank: dense 2·1·128·2 = 512; sparse 512 + 256: 1,536 + 43,776
        (4, "bf16", 3 * 512 + 57 * (512 + 256)),  # 45,312
        # tp 8 > 4 heads: one replicated head, fp8: 2·1·128·1 = 256; the indexer stays bf16
        (8, "fp8_e4m3", 3 * 256 + 57 * (256 + 256)),  # 768 + 29,184 = 29,952
    ],
)
def test_per_token_k_v_and_a_bf16_indexer_key(
    m3: ModelSpec, tp: int, kv_dtype: str, per_token: int
) -> None:
    """Per GPU a token adds its layers' K/V (heads max(1, 4 // tp)) and, in each sparse layer,
    one 128-wide bf16 indexer key on every rank; 8,000 tokens hold cdiv(8000, 128) = 63
    blocks of 128 = 8,064 token slots."""
    dtype = KV_DTYPES[kv_dtype]
    kv = kv_cache(m3, Workload(seq_len=8000, tp=tp, k_dtype=dtype, v_dtype=dtype), VLLM)
    assert kv.per_gpu_bytes_per_token == per_token
    assert kv.block_size == 128
    assert kv.per_gpu_bytes == 8064 * per_token
    assert {(g.count, g.padded_count, g.tokens) for g in kv.groups} == {
        (3, 3, 8064),
        (57, 57, 8064),
    }


def test_per_sequence_bytes_at_tp1(m3: ModelSpec) -> None:
    """tp 1, bf16, 8,000 tokens, batch 2: 8,064 · 137,472 = 1,108,574,208 B a sequence and
    2,217,148,416 B in all."""
    kv = kv_cache(m3, Workload(seq_len=8000, batch=2), VLLM)
    assert kv.per_sequence_bytes == 8064 * 137_472 == 1_108_574_208
    assert kv.total_bytes == 2 * 1_108_574_208 == 2_217_148_416


def test_block_size_must_be_a_multiple_of_128(m3: ModelSpec) -> None:
    """--block-size 256 splits into 128-token kernel blocks: 8,000 tokens take cdiv(8000, 256)
    = 32 blocks = 8,192 slots, 8,192 · 137,472 = 1,126,170,624 B; 16 is refused in one line."""
    kv = kv_cache(m3, Workload(seq_len=8000, block_size=256), VLLM)
    assert kv.per_gpu_bytes == 8192 * 137_472 == 1_126_170_624
    with pytest.raises(KvcalcError, match=r"^engine vllm: --block-size 16 for MiniMax-M3") as err:
        kv_cache(m3, Workload(seq_len=8000, block_size=16), VLLM)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kv_dtype", ["fp16", "nvfp4", "int8_per_token_head"])
def test_kv_dtypes_its_sparse_backend_does_not_take_are_refused(
    m3: ModelSpec, kv_dtype: str
) -> None:
    """MiniMaxM3SparseBackend.supported_kv_cache_dtypes is bf16 and fp8 (e4m3, e5m2) only."""
    dtype = KV_DTYPES[kv_dtype]
    with pytest.raises(KvcalcError, match=r"^engine vllm: KV dtype .* for MiniMax-M3") as err:
        kv_cache(m3, Workload(seq_len=1000, k_dtype=dtype, v_dtype=dtype), VLLM)
    assert "\n" not in str(err.value)


def test_max_batch_under_the_vllm_budget(m3: ModelSpec) -> None:
    """A 2,000,000,000,000 B device, tp 1, no reserve: usable ceil(2e12 · 0.9) =
    1,800,000,000,000 B; bf16 weights 2 · 426,174,565,632 (tests/test_hf.py
    test_minimax_m3_from_published_config) = 852,349,131,264 B; KV budget 947,650,868,736 B.
    One block of the one group is 128 · 137,472 = 17,596,416 B (3 dense pages of
    128 · 2,048 + 57 sparse of 128 · 2,304), so 947,650,868,736 // 17,596,416 = 53,854
    blocks; 8,192 tokens take 64 blocks: max batch 53,854 // 64 = 841."""
    gpu = GpuSpec(
        name="2 TB", vendor="other", memory_bytes=2_000_000_000_000, memory_kind="user", source="t"
    )
    plan = Plan(m3, gpu, VLLM, Workload(seq_len=8192), reserve_bytes=0)
    assert budget(plan).usable_bytes == 1_800_000_000_000
    assert budget(plan).kv_budget_bytes == 1_800_000_000_000 - 852_349_131_264
    assert 947_650_868_736 // 17_596_416 == 53_854
    result = fit(plan)
    assert result.max_batch == 53_854 // 64 == 841
    assert result.max_concurrency == pytest.approx(53_854 / 64)


def test_vllm_v0_does_not_model_the_indexer_cache(m3: ModelSpec) -> None:
    """vLLM's V0 engine predates MiniMax-M3: its indexer keys are refused there in one line."""
    with pytest.raises(KvcalcError, match=r"^engine vllm@v0: the indexer keys GQA sparse"):
        kv_cache(m3, Workload(seq_len=1000), ENGINES["vllm@v0"])


@pytest.mark.parametrize("engine", ["vllm", "sglang", "hf"])
def test_mtp_on_minimax_m3_is_refused_naming_its_modules(m3: ModelSpec, engine: str) -> None:
    """The config declares MTP modules (num_mtp_modules 7, num_nextn_predict_layers 1) whose
    speculative-decoding cache kvcalc has not read: --mtp is refused, never sized as 0."""
    with pytest.raises(KvcalcError, match=r"num_mtp_modules 7, num_nextn_predict_layers 1"):
        kv_cache(m3, Workload(seq_len=8192, batch=1, mtp=True), ENGINES[engine])


def test_without_mtp_minimax_m3_is_sized(m3: ModelSpec) -> None:
    """Speculative decoding off, the trunk is sized as before: 3 dense + 57 sparse layers,
    (3 · 2,048 + 57 · 2,304) B a token, 8,192 tokens (64 blocks of 128)."""
    kv = kv_cache(m3, Workload(seq_len=8192, batch=1), VLLM)
    assert kv.total_bytes == (3 * 2048 + 57 * 2304) * 8192
