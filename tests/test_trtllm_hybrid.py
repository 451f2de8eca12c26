"""Hybrid models under TensorRT-LLM (the PyTorch backend), derived by hand from the published
configs and TensorRT-LLM's source.

Kimi-K3 (tests/data/hf_configs/kimi-k3.json: 93 layers, 24 MLA with kv_lora_rank 512 and
qk_rope_head_dim 64, 69 KDA with linear_attn_config num_heads 96, head_dim 128,
short_conv_kernel_size 4; bf16). Read at:

* NVIDIA/TensorRT-LLM@00679c66c3e38f6d2651ad0a5bef0f94d862e36c
  tensorrt_llm/_torch/pyexecutor/config_utils.py extract_mamba_kv_cache_params, Kimi K3
  branch: state_size = head_dim, conv_kernel = short_conv_kernel_size + 1, num_heads =
  n_groups = num_heads, so conv_dim = head_dim · num_heads + 2 · n_groups · state_size =
  3 · 96 · 128 = 36,864 and the SSM state [96, 128, 128], forced to float32;
  MambaKVCacheParams.get_states_bytes_per_layer splits conv_dim and heads by tp.
* tensorrt_llm/_torch/pyexecutor/kv_cache/mamba_cache_manager.py PythonMambaCacheManager:
  conv [pool, conv_dim / tp, conv_kernel − 1] in the model dtype, ssm [pool, heads / tp,
  head_dim, state_size]; _get_mamba_hybrid_pool_size: pool = max_batch_size + 1.
* NVIDIA/TensorRT-LLM@0004396720054fd8e205cbf616f21f0b57c6b412 _util.py: Kimi K3 takes
  MixedMambaHybridCacheManager without block reuse (use_kv_cache_manager_v2 false); the MLA
  latent on the paged side (SELFKONLY, one head of 512 + 64); KvCacheCreator adds back only
  the C++ KV pool's bytes (kv_stats.allocated_bytes), so the state pool, in the profiled
  peak, comes out before free_gpu_memory_fraction.
* NVIDIA/TensorRT-LLM@000a860db1d1b990742ff55e8230d1ddc5672e39 modeling_kimi_linear.py:
  get_model_defaults tokens_per_block 64; KimiLinearForCausalLM asserts pp_size == 1.

Gemma 4 with KV-shared layers (tests/data/hf_synthetic/gemma4.json: 8 layers, layer_types
S S F S F S S F, num_kv_shared_layers 3, so layers 5, 6 (sliding) and 7 (full) are shared;
sliding 2 KV heads × head_dim 64, W = 64; full attention_k_eq_v with 1 global KV head ×
global_head_dim 128; bf16). NVIDIA/TensorRT-LLM@0004396720054fd8e205cbf616f21f0b57c6b412
_util.py _create_kv_cache_manager builds KVCacheManagerV2 for config.num_hidden_layers
layers, each with its type's heads and head_dim and window ("No layer_mask exclusion
needed"); @00e7d1037d24 modeling_gemma4.py Gemma4DecoderLayer points a shared layer's
attention at the last non-shared layer of its type (cache_layer_idx), so the shared layers'
own slots are allocated and never written.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvcalc import hf
from kvcalc.cli import app
from kvcalc.dtypes import kv_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.kernel import fit_fast
from kvcalc.planner import Plan, budget, fit, fits_at
from kvcalc.presets import load_model
from kvcalc.specs import GpuSpec, ModelSpec, NoCacheKind

TRTLLM = ENGINES["trtllm"]
MLA_LAYERS, KDA_LAYERS = 24, 69
KDA_HEADS, KDA_DIM, KERNEL = 96, 128, 4
LATENT = 512 + 64  # kv_lora_rank + qk_rope_head_dim
# one KDA layer, one sequence, tp 1: conv 3 · 96 · 128 channels × 4 columns × 2 B (bf16)
# + SSM 96 · 128 · 128 × 4 B (float32)
CONV_TP1 = 3 * KDA_HEADS * KDA_DIM * KERNEL * 2  # 294,912
SSM_TP1 = KDA_HEADS * KDA_DIM * KDA_DIM * 4  # 6,291,456


@pytest.fixture(scope="module")
def k3() -> ModelSpec:
    return load_model("kimi-k3")


def test_kimi_k3_kda_state_per_sequence(k3: ModelSpec) -> None:
    """Per KDA layer at tp 1: conv 36,864 ch × 4 (the pool's conv_kernel − 1 = 5 − 1 columns:
    the full short-conv window) × 2 B = 294,912 B, SSM 96 × 128 × 128 × 4 B = 6,291,456 B;
    69 layers: 69 · 6,586,368 = 454,459,392 B a sequence. At tp 8: conv 4,608 ch × 4 × 2 =
    36,864 B, SSM 12 · 16,384 · 4 = 786,432 B; 69 · 823,296 = 56,807,424 B a GPU."""
    assert CONV_TP1 == 294_912 and SSM_TP1 == 6_291_456
    tp1 = kv_cache(k3, Workload(seq_len=1000), TRTLLM)
    assert tp1.state_bytes_per_sequence == KDA_LAYERS * (CONV_TP1 + SSM_TP1) == 454_459_392
    tp8 = kv_cache(k3, Workload(seq_len=1000, tp=8), TRTLLM)
    per_layer = (36_864 // 8) * KERNEL * 2 + (KDA_HEADS // 8) * KDA_DIM * KDA_DIM * 4
    assert per_layer == 36_864 + 786_432 == 823_296
    assert tp8.state_per_gpu_bytes == KDA_LAYERS * 823_296 == 56_807_424


def test_kimi_k3_mla_latent_in_64_token_blocks(k3: ModelSpec) -> None:
    """Each MLA layer caches 576 values a token, 1,152 B in bf16, on every TP rank, in blocks of
    64 tokens (get_model_defaults): 1,025 tokens hold cdiv(1025, 64) · 64 = 1,088, so 24 ·
    1,088 · 1,152 = 30,081,024 B a sequence at tp 1 and at tp 8 alike; fp8 KV halves it to
    15,040,512 B."""
    kv = kv_cache(k3, Workload(seq_len=1025), TRTLLM)
    assert kv.block_size == 64
    assert kv.per_sequence_bytes == MLA_LAYERS * 1_088 * LATENT * 2 == 30_081_024
    tp8 = kv_cache(k3, Workload(seq_len=1025, tp=8), TRTLLM)
    assert tp8.per_gpu_bytes == 30_081_024
    fp8 = kv_dtype("fp8")
    low = kv_cache(k3, Workload(seq_len=1025, k_dtype=fp8, v_dtype=fp8), TRTLLM)
    assert low.per_sequence_bytes == MLA_LAYERS * 1_088 * LATENT == 15_040_512


def test_kimi_k3_block_size_flag_overrides_the_model_default(k3: ModelSpec) -> None:
    """--block-size 32 (tokens_per_block 32): 1,025 tokens hold 1,056, 24 · 1,056 · 1,152 =
    29,196,288 B."""
    kv = kv_cache(k3, Workload(seq_len=1025, block_size=32), TRTLLM)
    assert kv.per_sequence_bytes == MLA_LAYERS * 1_056 * LATENT * 2 == 29_196_288


def test_kimi_k3_max_batch_pays_the_state_pool_before_the_fraction(k3: ModelSpec) -> None:
    """A 4,000,000,000,000 B device, tp 1, no reserve; weights 1,560,838,075,584 B (as
    tests/test_kimi_k3.py test_vllm_max_batch derives them): free F = 2,439,161,924,416 B.
    At 8,192 tokens a sequence's KV is K = 24 · 8,192 · 1,152 = 226,492,416 B; a state slot
    S = 454,459,392 B. With max_batch_size B the budget is floor(0.9 · (F − (B + 1) · S)) and
    B · K must fit it: B · (10 · K + 9 · S) ≤ 9 · (F − S), B = 21,948,367,185,216 //
    6,355,058,688 = 3,453. At B = 3,453: budget floor(0.9 · (F − 3,454 · S)) =
    782,513,266,003 B, KV 3,453 · K = 782,078,312,448 B, headroom 434,953,555 B; the pool
    reports 782,513,266,003 // 27,648 = 28,302,707 tokens, 28,302,656 in 64-token blocks.
    B = 3,454 does not fit: floor(0.9 · (F − 3,455 · S)) = 782,104,252,550 < 3,454 · K =
    782,304,804,864."""
    gpu = GpuSpec(
        name="4 TB", vendor="other", memory_bytes=4_000_000_000_000, memory_kind="user", source="t"
    )
    free = 4_000_000_000_000 - 1_560_838_075_584
    seq_kv, slot = MLA_LAYERS * 8192 * LATENT * 2, KDA_LAYERS * (CONV_TP1 + SSM_TP1)
    assert (free, seq_kv, slot) == (2_439_161_924_416, 226_492_416, 454_459_392)
    assert 9 * (free - slot) // (10 * seq_kv + 9 * slot) == 3_453
    plan = Plan(k3, gpu, TRTLLM, Workload(seq_len=8192, batch=3_453), reserve_bytes=0)
    assert budget(plan).stage_weights_bytes == (1_560_838_075_584,)
    assert budget(plan).kv_budget_bytes == 9 * (free - 3_454 * slot) // 10 == 782_513_266_003
    result = fit(plan)
    assert result.max_batch == 3_453
    assert result.fits
    assert result.headroom_bytes == 782_513_266_003 - 3_453 * seq_kv == 434_953_555
    assert result.max_tokens == 782_513_266_003 // 27_648 // 64 * 64 == 28_302_656
    assert fit_fast(plan) == result
    bigger = replace(plan, workload=replace(plan.workload, batch=3_454))
    assert 9 * (free - 3_455 * slot) // 10 == 782_104_252_550 < 3_454 * seq_kv
    assert not fit(bigger).fits
    assert not fits_at(plan, 8192, 3_454)


def test_kimi_k3_budget_terms_name_the_state_pool(k3: ModelSpec) -> None:
    """The budget's steps add up to the KV budget and list the state pool of batch + 1 slots
    ahead of the fraction: 5 slots of 454,459,392 B at batch 4."""
    gpu = GpuSpec(
        name="4 TB", vendor="other", memory_bytes=4_000_000_000_000, memory_kind="user", source="t"
    )
    plan = Plan(k3, gpu, TRTLLM, Workload(seq_len=8192, batch=4), reserve_bytes=0)
    b = budget(plan)
    assert b.capacity_bytes + sum(v for _, v in b.terms) == b.kv_budget_bytes
    labels = [label for label, _ in b.terms]
    pool = next(i for i, label in enumerate(labels) if label.startswith("state pool of 5 slots"))
    assert b.terms[pool][1] == -5 * 454_459_392
    assert labels[pool + 1].startswith("(1 − free_gpu_memory_fraction")


@pytest.mark.parametrize(
    ("workload", "needle"),
    [
        (Workload(seq_len=1000, pp=2), "KimiLinearForCausalLM asserts pp_size == 1"),
        (Workload(seq_len=1000, tp=64), "tp 64 does not divide"),
    ],
)
def test_kimi_k3_refusals(k3: ModelSpec, workload: Workload, needle: str) -> None:
    """Pipeline parallelism and a tp that does not divide the 96 KDA heads (36,864 conv
    channels) are refused in one line."""
    with pytest.raises(KvcalcError, match=re.escape(needle)) as info:
        kv_cache(k3, workload, TRTLLM)
    assert "\n" not in str(info.value)


def test_kimi_k3_notes_name_the_manager_and_its_limits(k3: ModelSpec) -> None:
    """The assumptions say which manager is modelled and which are not, and drop the
    engine's 32-token block and Cpp-manager state lines."""
    notes = " ".join(kv_cache(k3, Workload(seq_len=1000), TRTLLM).assumptions)
    assert "MixedMambaHybridCacheManager" in notes
    assert "MambaHybridCacheManagerV2" in notes
    assert "32-token blocks" not in notes
    assert "CppMambaHybridCacheManager, use_kv_cache_manager_v2" not in notes


def test_kimi_k3_emit_sets_the_batch_and_the_manager() -> None:
    """--emit trtllm for Kimi-K3 carries --max_batch_size even at batch 1 (the state pool is
    max_batch_size + 1 slots: the default 2048 would reserve 2,049) and says the plan
    assumes use_kv_cache_manager_v2 false."""
    result = CliRunner().invoke(
        app,
        ["fit", "kimi-k3", "--engine", "trtllm", "--gpu", "h200", "--tp", "16", "--emit", "trtllm"],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.stderr
    argv = result.stdout.split()
    assert argv[argv.index("--max_batch_size") + 1] == "1"
    assert "use_kv_cache_manager_v2: false" in result.output


SYNTHETIC_GEMMA4 = Path(__file__).parent / "data" / "hf_synthetic" / "gemma4.json"


@pytest.fixture(scope="module")
def gemma4() -> ModelSpec:
    return hf.import_config(json.loads(SYNTHETIC_GEMMA4.read_text()), source="t").spec


def test_gemma4_shared_layers_keep_slots_of_their_type(gemma4: ModelSpec) -> None:
    """Every layer takes 512 B a token: sliding K + V 2 · 2 · 64 · 2, full (K = V cached
    twice) 2 · 1 · 128 · 2; 8 layers, 4,096 B. At 1,000 tokens (32-token blocks) the 3 full
    layers (2, 4 and the shared 7) hold cdiv(1000, 32) = 32 blocks, 1,024 tokens, and the 5
    sliding ones (0, 1, 3 and the shared 5, 6) 32 − (1000 − 64) // 32 = 3 blocks, 96 tokens:
    3 · 1,024 · 512 + 5 · 96 · 512 = 1,818,624 B a sequence."""
    kv = kv_cache(gemma4, Workload(seq_len=1000), TRTLLM)
    assert kv.bytes_per_token == 8 * 512 == 4_096
    by_kind = {g.kind: (g.count, g.tokens) for g in kv.groups}
    assert by_kind == {"full": (3, 1024), "sliding": (5, 96)}
    assert kv.per_sequence_bytes == 3 * 1024 * 512 + 5 * 96 * 512 == 1_818_624
    assert any("KV-shared layers" in note for note in kv.assumptions)


def test_gemma4_shared_layers_cache_nothing_elsewhere(gemma4: ModelSpec) -> None:
    """Under vLLM the shared layers still cache nothing (their two kinds, one per type):
    only layers 0-4 hold KV."""
    assert gemma4.layer_kind_names()[5:] == ("shared", "shared", "shared_global")
    kv = kv_cache(gemma4, Workload(seq_len=1000), ENGINES["vllm"])
    assert sum(g.count for g in kv.groups) == 5


def test_gemma4_shared_layer_without_its_type_is_refused(gemma4: ModelSpec) -> None:
    """A spec whose shared kind does not say which type it is like is refused in one line
    under TensorRT-LLM; `like` is for kv_shared layers only and must name attention."""
    kinds = dict(gemma4.kinds or {})
    kinds["shared"] = NoCacheKind(kind="none", reason="kv_shared")
    bare = gemma4.model_copy(update={"kinds": kinds})
    with pytest.raises(KvcalcError, match=r"kinds\.<name>\.like") as info:
        kv_cache(bare, Workload(seq_len=1000), TRTLLM)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="like is for kv_shared layers only"):
        NoCacheKind(kind="none", reason="no_attention", like="sliding")
    data = gemma4.to_data()
    data["kinds"]["shared"]["like"] = "shared_global"  # type: ignore[index]
    with pytest.raises(ValueError, match="is no attention kind"):
        ModelSpec.model_validate(data)
