"""The formula engine against hand-derived figures from published configs, and its invariants.

Every expected number is derived by hand in the comment beside it, from the model's
published config.json (cited) and the engine rules in ../shared/ENGINES.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.dtypes import kv_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache, pp_partition
from kvcalc.presets import load_model
from kvcalc.specs import ModelSpec
from tests.conftest import spec

BF16 = kv_dtype("bf16")
FP16 = kv_dtype("fp16")

# facebook/opt-30b config.json: 48 layers, hidden 7168, 56 heads (head_dim 7168/56 = 128).
OPT_30B = spec(n_layers=48, d_model=7168, attention={"kind": "mha", "n_heads": 56, "head_dim": 128})


def total(model_name: str, engine: str, seq: int = 8192, **kw: object) -> int:
    dtype = kw.pop("k_dtype", BF16)
    workload = Workload(seq_len=seq, k_dtype=dtype, v_dtype=dtype, **kw)  # type: ignore[arg-type]
    return kv_cache(load_model(model_name), workload, ENGINES[engine]).total_bytes


def per_gpu(model_name: str, engine: str, seq: int = 8192, **kw: object) -> int:
    workload = Workload(seq_len=seq, k_dtype=BF16, v_dtype=BF16, **kw)  # type: ignore[arg-type]
    return kv_cache(load_model(model_name), workload, ENGINES[engine]).per_gpu_bytes


@pytest.mark.parametrize("engine", ["formula", "vllm", "sglang", "trtllm", "hf", "llama.cpp"])
def test_opt_30b_seed_example(engine: str) -> None:
    """OPT-30B fp16, seq 1024, batch 128: 2·2·48·7168·1024·128 = 180,388,626,432 B."""
    workload = Workload(seq_len=1024, batch=128, k_dtype=FP16, v_dtype=FP16)
    assert kv_cache(OPT_30B, workload, ENGINES[engine]).total_bytes == 180_388_626_432


@pytest.mark.parametrize("engine", ["formula", "vllm", "sglang", "trtllm", "hf", "llama.cpp"])
def test_llama_31_8b_gqa_every_engine(engine: str) -> None:
    """Llama-3.1-8B (32 layers, 8 KV heads, head_dim 128): 2·8·128·2·32·8192 = 1,073,741,824."""
    assert total("llama-3.1-8b", engine) == 1_073_741_824


@pytest.mark.parametrize("engine", ["formula", "vllm", "sglang", "trtllm", "hf", "llama.cpp"])
def test_falcon_7b_mqa(engine: str) -> None:
    """Falcon-7B (32 layers, multi_query, head_dim 4544/71 = 64): 2·1·64·2·32·8192 = 67,108,864."""
    assert total("falcon-7b", engine) == 67_108_864


@pytest.mark.parametrize("engine", ["formula", "vllm", "sglang", "trtllm", "hf", "llama.cpp"])
def test_falcon_180b_gqa_every_engine(engine: str) -> None:
    """Falcon-180B (tiiuae/falcon-180B config.json: 80 layers, new_decoder_architecture,
    num_kv_heads 8, head_dim 14848/232 = 64): 2·8·64·2·80·8192 = 1,342,177,280. transformers
    caches the 8 KV heads since 5.25.0 (modeling_falcon.py's refactor onto repeat_kv at attention
    time; 5.24 broadcast K/V to all 232 query heads before caching, 29× this)."""
    assert total("falcon-180b", engine) == 1_342_177_280


def test_falcon_40b_transformers_4_expanded() -> None:
    """transformers 4.x broadcast Falcon-40B's 8 KV heads to its 128 query heads before caching
    (tiiuae/falcon-40b config.json: 60 layers, head_dim 8192/128 = 64):
    2·128·64·2·60·8192 = 16,106,127,360."""
    assert total("falcon-40b", "hf@4") == 16_106_127_360


@pytest.mark.parametrize("engine", ["formula", "vllm", "sglang", "trtllm", "hf", "llama.cpp"])
def test_deepseek_v3_mla_latent(engine: str) -> None:
    """DeepSeek-V3 (61 layers, kv_lora_rank 512 + qk_rope_head_dim 64): 576·2·61·8192 = 575,668,224."""
    assert total("deepseek-v3", engine) == 575_668_224


def test_deepseek_v3_transformers_4_expanded() -> None:
    """transformers 4.x cached MLA per head: 128·(128+64 + 128)·2·61·8192 = 40,936,407,040."""
    assert total("deepseek-v3", "hf@4") == 40_936_407_040


@pytest.mark.parametrize("tp", [1, 2, 8, 16])
def test_deepseek_v3_latent_on_every_tp_rank(tp: int) -> None:
    """vLLM replicates the MLA latent: per GPU stays 575,668,224 at any tp; total = tp times it."""
    assert per_gpu("deepseek-v3", "vllm", tp=tp) == 575_668_224
    assert total("deepseek-v3", "vllm", tp=tp) == tp * 575_668_224


def test_llama_31_70b_tp_replicates_heads() -> None:
    """Llama-3.1-70B (80 layers, 8 KV heads, head_dim 128) under vLLM.

    tp 4: 8//4 = 2 heads/GPU → 2·2·128·2·80·8192 = 671,088,640 per GPU.
    tp 16: max(1, 8//16) = 1 head/GPU, each head on 2 ranks → 2·1·128·2·80·8192 = 335,544,320
    per GPU (not the naive 167,772,160), 16 × 335,544,320 = 5,368,709,120 fleet-wide.
    """
    assert per_gpu("llama-3.1-70b", "vllm", tp=4) == 671_088_640
    assert per_gpu("llama-3.1-70b", "vllm", tp=16) == 335_544_320
    assert total("llama-3.1-70b", "vllm", tp=16) == 5_368_709_120
    assert per_gpu("llama-3.1-70b", "trtllm", tp=16) == 335_544_320  # ceil(8/16) = 1


def test_gemma_2_9b_sliding_layers_by_engine() -> None:
    """Gemma-2-9B: 42 layers alternate sliding (W=4096) / full; 8 KV heads × 256 = 8,192 B/token/layer.

    hf (DynamicCache keeps W-1):   21·8192·8192 + 21·4095·8192 = 2,113,757,184
    formula (window exactly):      21·8192·8192 + 21·4096·8192 = 2,113,929,216
    llama.cpp (pad(4096+512,256)): 21·8192·8192 + 21·4608·8192 = 2,202,009,600
    sglang, trtllm (no window):    42·8192·8192                 = 2,818,572,288
    vllm (N=8192): 21·(512 + (cdiv(min(4095+8192, 8192),16)+1))·131,072 = 21·1025·131,072
                                                                 = 2,821,324,800
    """
    assert total("gemma-2-9b", "hf") == 2_113_757_184
    assert total("gemma-2-9b", "formula") == 2_113_929_216
    assert total("gemma-2-9b", "llama.cpp") == 2_202_009_600
    assert total("gemma-2-9b", "sglang") == 2_818_572_288
    assert total("gemma-2-9b", "trtllm") == 2_818_572_288
    assert total("gemma-2-9b", "vllm") == 2_821_324_800
    assert total("gemma-2-9b", "vllm", max_num_batched_tokens=2048) == 21 * (512 + 385) * 131_072


def test_mistral_7b_v01_all_sliding() -> None:
    """Mistral-7B-v0.1: 32 layers all sliding W=4096, 4,096 B/token/layer.

    hf keeps 4095 tokens: 4095·4096·32 = 536,739,840.
    vllm planning with N=8192: (cdiv(8192,16)+1) = 513 blocks · 65,536 · 32 = 1,075,838,976;
    with N=2048: (cdiv(6143,16)+1) = 385 blocks → 807,403,520.
    """
    assert total("mistral-7b-v0.1", "hf") == 536_739_840
    assert total("mistral-7b-v0.1", "vllm") == 1_075_838_976
    assert total("mistral-7b-v0.1", "vllm", max_num_batched_tokens=2048) == 807_403_520
    assert total("mistral-7b-v0.1", "sglang") == 1_073_741_824


def test_llama_cpp_quantised_cache_types() -> None:
    """Llama-3.1-8B with q8_0 (34 B per 32 values): 2·8·(128/32·34)·32·8192 = 570,425,344;
    q4_0 (18 B per 32): 2·8·72·32·8192 = 301,989,888; K q8_0 + V q4_0: 8·(136+72)·32·8192."""
    workload = Workload(seq_len=8192, k_dtype=kv_dtype("q8_0"), v_dtype=kv_dtype("q8_0"))
    model = load_model("llama-3.1-8b")
    assert kv_cache(model, workload, ENGINES["llama.cpp"]).total_bytes == 570_425_344
    workload = Workload(seq_len=8192, k_dtype=kv_dtype("q4_0"), v_dtype=kv_dtype("q4_0"))
    assert kv_cache(model, workload, ENGINES["llama.cpp"]).total_bytes == 301_989_888
    mixed = Workload(seq_len=8192, k_dtype=kv_dtype("q8_0"), v_dtype=kv_dtype("q4_0"))
    assert kv_cache(model, mixed, ENGINES["llama.cpp"]).total_bytes == 8 * 208 * 32 * 8192


def test_deepseek_v3_fp8_layouts() -> None:
    """DeepSeek-V3 fp8: 576·1·61·8192 = 287,834,112; fp8_ds_mla 656 B: 656·61·8192 = 327,811,072."""
    model = load_model("deepseek-v3")
    fp8 = Workload(seq_len=8192, k_dtype=kv_dtype("fp8"), v_dtype=kv_dtype("fp8"))
    assert kv_cache(model, fp8, ENGINES["vllm"]).total_bytes == 287_834_112
    ds = Workload(seq_len=8192, k_dtype=kv_dtype("fp8_ds_mla"), v_dtype=kv_dtype("fp8_ds_mla"))
    assert kv_cache(model, ds, ENGINES["vllm"]).total_bytes == 327_811_072


def test_per_token_head_scales() -> None:
    """vLLM int8_per_token_head adds a 4-byte scale per head for K and V:
    Llama-3.1-8B: 2·8·(128 + 4)·32·8192 = 553,648,128."""
    workload = Workload(
        seq_len=8192,
        k_dtype=kv_dtype("int8_per_token_head"),
        v_dtype=kv_dtype("int8_per_token_head"),
    )
    result = kv_cache(load_model("llama-3.1-8b"), workload, ENGINES["vllm"])
    assert result.total_bytes == 553_648_128


@pytest.mark.parametrize(
    ("engine", "tokens"), [("formula", 1000), ("vllm", 1008), ("trtllm", 1024), ("llama.cpp", 1024)]
)
def test_block_and_context_rounding(engine: str, tokens: int) -> None:
    """1000 tokens: vLLM rounds to 16-token blocks (1008), TRT-LLM to 32 (1024), llama.cpp pads
    n_ctx to 256 (1024); each token costs 131,072 B on Llama-3.1-8B."""
    assert total("llama-3.1-8b", engine, seq=1000) == tokens * 131_072


def test_k_and_v_head_dims_apart() -> None:
    """K head dim 192, V head dim 128, 4 KV heads, 2 layers, fp16: 4·(192+128)·2·2·10 = 51,200."""
    model = spec(
        n_layers=2,
        d_model=1024,
        attention={
            "kind": "gqa",
            "n_heads": 8,
            "n_kv_heads": 4,
            "head_dim": 192,
            "head_dim_v": 128,
        },
    )
    result = kv_cache(model, Workload(seq_len=10, k_dtype=FP16, v_dtype=FP16), ENGINES["formula"])
    assert result.total_bytes == 51_200


def test_pipeline_stages_hold_their_layers() -> None:
    """vLLM get_pp_indices splits 32 layers over 3 stages as 11, 11, 10; the busiest stage of
    Llama-3.1-8B at 8192 tokens holds 11·4,096·8192 = 369,098,752 B."""
    assert pp_partition(32, 3) == ((0, 11), (11, 22), (22, 32))
    assert per_gpu("llama-3.1-8b", "vllm", pp=3) == 369_098_752
    assert total("llama-3.1-8b", "vllm", pp=3) == 1_073_741_824


def test_tp_must_divide_heads() -> None:
    """tp 3 does not divide Llama-3.1-8B's 32 heads: a user error naming tp."""
    with pytest.raises(KvcalcError, match="tp 3"):
        total("llama-3.1-8b", "vllm", tp=3)


def test_layer_split_engines_refuse_tp() -> None:
    """llama.cpp and transformers split layers, not heads: --tp is a user error there."""
    for engine in ("llama.cpp", "hf"):
        with pytest.raises(KvcalcError, match="no tensor parallelism"):
            total("llama-3.1-8b", engine, tp=2)


# ---- invariants -------------------------------------------------------------------------

ENGINE_NAMES = sorted(ENGINES)
PRESETS_FOR_PROPERTIES = ["llama-3.1-8b", "gemma-2-9b", "mistral-7b-v0.1", "deepseek-v3",
                          "falcon-7b", "gpt-oss-20b"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(PRESETS_FOR_PROPERTIES),
    engine=st.sampled_from(ENGINE_NAMES),
    seq=st.integers(1, 300_000),
    batch=st.integers(1, 512),
)
def test_linear_in_batch(name: str, engine: str, seq: int, batch: int) -> None:
    """Every engine's total is exactly batch × the one-sequence total."""
    one = total(name, engine, seq=seq)
    assert total(name, engine, seq=seq, batch=batch) == batch * one


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(1, 10_000),
    seq=st.integers(1, 50_000),
    engine=st.sampled_from(["formula", "hf"]),
)
def test_sliding_layers_never_exceed_window(window: int, seq: int, engine: str) -> None:
    """A sliding layer never holds more than the window (nor more than the sequence)."""
    model = spec(
        n_layers=2,
        d_model=64,
        attention={"kind": "gqa", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16},
        layers={"sliding_window": window, "pattern": ["sliding", "full"]},
    )
    result = kv_cache(model, Workload(seq_len=seq), ENGINES[engine])
    sliding = next(g for g in result.groups if g.kind == "sliding")
    assert sliding.tokens <= min(window, seq)


@settings(max_examples=60, deadline=None)
@given(
    window=st.integers(1, 10_000),
    seq=st.integers(1, 50_000),
    n_batched=st.integers(1, 16_384),
)
def test_vllm_sliding_bound(window: int, seq: int, n_batched: int) -> None:
    """vLLM's planning bound stays within min(W-1+N, seq) tokens plus one partial and one extra block."""
    model = spec(
        n_layers=1,
        d_model=64,
        attention={"kind": "mha", "n_heads": 4, "head_dim": 16},
        layers={"sliding_window": window, "pattern": ["sliding"]},
    )
    workload = Workload(seq_len=seq, max_num_batched_tokens=n_batched)
    tokens = kv_cache(model, workload, ENGINES["vllm"]).groups[0].tokens
    assert min(window - 1 + n_batched, seq) + 16 <= tokens <= min(window - 1 + n_batched, seq) + 31


@settings(max_examples=60, deadline=None)
@given(
    n_heads=st.integers(1, 128),
    head_dim=st.integers(1, 512),
    layers=st.integers(1, 128),
    seq=st.integers(1, 100_000),
    engine=st.sampled_from(ENGINE_NAMES),
)
def test_gqa_full_equals_mha_and_mqa_is_a_head(
    n_heads: int, head_dim: int, layers: int, seq: int, engine: str
) -> None:
    """GQA with n_kv = n_heads equals MHA; MQA equals MHA / n_heads."""
    base = {"n_heads": n_heads, "head_dim": head_dim}
    mha = spec(n_layers=layers, d_model=64, attention={"kind": "mha", **base})
    gqa = spec(
        n_layers=layers, d_model=64, attention={"kind": "gqa", "n_kv_heads": n_heads, **base}
    )
    mqa = spec(n_layers=layers, d_model=64, attention={"kind": "mqa", **base})
    workload = Workload(seq_len=seq)
    mha_bytes = kv_cache(mha, workload, ENGINES[engine]).total_bytes
    assert kv_cache(gqa, workload, ENGINES[engine]).total_bytes == mha_bytes
    assert kv_cache(mqa, workload, ENGINES[engine]).total_bytes * n_heads == mha_bytes


@settings(max_examples=60, deadline=None)
@given(
    seq=st.integers(1, 100_000),
    k=st.integers(2, 5),
)
def test_formula_linear_in_seq_for_full_attention(seq: int, k: int) -> None:
    """With full attention and no paging, k times the tokens is k times the bytes."""
    assert total("llama-3.1-8b", "formula", seq=k * seq) == k * total(
        "llama-3.1-8b", "formula", seq=seq
    )


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["llama-3.1-70b", "deepseek-v3", "gemma-2-9b", "qwen2.5-7b"]),
    engine=st.sampled_from(["vllm", "sglang", "trtllm", "formula"]),
    tp=st.sampled_from([1, 2, 4, 8, 16]),
    pp=st.integers(1, 7),
    seq=st.integers(1, 200_000),
    batch=st.integers(1, 64),
)
def test_per_gpu_shares_cover_the_total(
    name: str, engine: str, tp: int, pp: int, seq: int, batch: int
) -> None:
    """The busiest GPU times the GPU count covers the whole workload's bytes."""
    model = load_model(name)
    try:
        result = kv_cache(model, Workload(seq_len=seq, batch=batch, tp=tp, pp=pp), ENGINES[engine])
    except KvcalcError:
        return  # tp that does not divide this model's heads
    assert result.per_gpu_bytes * tp * pp >= result.total_bytes
    assert result.per_gpu_bytes <= result.total_bytes


def test_trtllm_windows_only_when_given() -> None:
    """TRT-LLM sizes Gemma-2-9B in full by default (2,818,572,288); with max_attention_window
    [4096, 8192] cycled over layers: 21·8192·8192 + 21·4096·8192 = 2,113,929,216 (ENGINES.md §8)."""
    assert total("gemma-2-9b", "trtllm") == 2_818_572_288
    assert total("gemma-2-9b", "trtllm", attention_windows=(4096, 8192)) == 2_113_929_216
    # 1000-token windows round up to 32-token blocks: 1024 tokens in every layer
    assert total("llama-3.1-8b", "trtllm", attention_windows=(1000,)) == 1024 * 131_072
    with pytest.raises(KvcalcError, match="trtllm"):
        total("gemma-2-9b", "vllm", attention_windows=(4096,))


def test_vllm_pads_hybrid_groups() -> None:
    """Gemma-3-27B (62 layers: 52 sliding W=1024, 10 full; 16 KV heads × 128 → 8,192 B/token/layer).

    vLLM groups hybrid layers by min(10, 52) = 10 (52 ≥ 1.5·10): 6 sliding groups, the last
    padded by 8 layers. Sliding planning bound at 8192 tokens, N=8192:
    (cdiv(min(1023 + 8192, 8192), 16) + 1) · 16 = 8,208 tokens.
    10·8192·8192 + 60·8208·8192 = 671,088,640 + 4,034,396,160 = 4,705,484,800.
    Gemma-2-9B (21/21 layers) needs no padding.
    """
    result = kv_cache(load_model("gemma-3-27b"), Workload(seq_len=8192), ENGINES["vllm"])
    assert result.total_bytes == 4_705_484_800
    sliding = next(g for g in result.groups if g.kind == "sliding")
    assert (sliding.count, sliding.padded_count) == (52, 60)
    gemma2 = kv_cache(load_model("gemma-2-9b"), Workload(seq_len=8192), ENGINES["vllm"])
    assert all(g.padded_count == g.count for g in gemma2.groups)


def test_sglang_windows_only_for_hybrid_swa_architectures() -> None:
    """gpt-oss-20b (GptOssForCausalLM, 24 layers alternating sliding W=128 / full, 8 KV heads × 64
    → 2,048 B/token/layer) is hybrid-SWA in SGLang: 12·8192·2048 + 12·128·2048 = 204,472,320;
    Gemma-2-9B is not on SGLang's list and is held in full (2,818,572,288)."""
    assert total("gpt-oss-20b", "sglang") == 204_472_320
    assert total("gemma-2-9b", "sglang") == 2_818_572_288


def test_chunked_layers_by_engine() -> None:
    """Chunked local attention (Llama-4 style, chunk C=8192, 3 chunked : 1 full, 8 KV heads × 128
    → 4,096 B/token/layer, 4 layers) at 65,536 tokens:
    vLLM ChunkedLocalAttentionSpec, N=8192: cdiv(min(8192 + 8192, 65536), 16) = 1024 blocks
      → 3·16384·4096 + 1·65536·4096 = 469,762,048;
    hf keeps C-1: 3·8191·4096 + 65536·4096 = 369,086,464;
    trtllm (no window given): 4·65536·4096 = 1,073,741,824."""
    model = spec(
        n_layers=4,
        d_model=1024,
        attention={"kind": "gqa", "n_heads": 32, "n_kv_heads": 8, "head_dim": 128},
        layers={"chunk_size": 8192, "pattern": ["chunked", "chunked", "chunked", "full"]},
    )
    workload = Workload(seq_len=65536, k_dtype=BF16, v_dtype=BF16)
    assert kv_cache(model, workload, ENGINES["vllm"]).total_bytes == 469_762_048
    assert kv_cache(model, workload, ENGINES["hf"]).total_bytes == 369_086_464
    assert kv_cache(model, workload, ENGINES["trtllm"]).total_bytes == 1_073_741_824


def test_layer_pattern_needs_its_sizes() -> None:
    """A pattern with chunked layers needs chunk_size; with sliding layers, sliding_window."""
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="chunk_size"):
        spec(
            n_layers=2,
            d_model=64,
            attention={"kind": "mha", "n_heads": 4, "head_dim": 16},
            layers={"sliding_window": 16, "pattern": ["chunked", "full"]},
        )


# ---- layer kinds: recurrent state, per-kind KV geometry, no-cache layers -------------------

HF_CONFIGS = Path(__file__).parent / "data" / "hf_configs"


def _import(stem: str) -> ModelSpec:
    from kvcalc import hf

    return hf.import_config(json.loads((HF_CONFIGS / f"{stem}.json").read_text()), "t").spec


def test_nemotron_3_nano_attention_and_mamba2_state() -> None:
    """NVIDIA-Nemotron-3-Nano-30B-A3B (published config, hybrid_override_pattern: 6 '*' attention
    layers, 23 'M' Mamba2 layers, the rest MoE), bf16, one sequence of 8,192 tokens.

    Attention: 6 layers × 2 (K,V) × 2 KV heads × 128 × 2 B = 6,144 B/token, × 8,192 =
    50,331,648 B per sequence (issue 7 writes 100,663,296, twice its own 6,144 B/token ×
    8,192; transformers measures 50,331,648 on the meta device).
    Mamba2, per layer and sequence: conv channels d_inner 64·64 = 4,096 + 2 · n_groups 8 ·
    ssm_state_size 128 = 6,144; ssm state 64 heads × 64 × 128 in mamba_ssm_cache_dtype float32.
      formula / SGLang (kernel − 1 = 3 columns, bf16): 3·6,144·2 = 36,864 + 64·64·128·4 =
      2,097,152 → 2,134,016 B × 23 = 49,082,368 B;
      hf (transformers keeps conv_kernel 4 columns, measured): 4·6,144·2 = 49,152 + 2,097,152
      → 2,146,304 × 23 = 49,364,992 B;
      llama.cpp (r and s in f32): 3·6,144·4 = 73,728 + 2,097,152 → 2,170,880 × 23 = 49,930,240 B.
    """
    model = _import("nemotron-3-nano-30b-a3b")
    one = Workload(seq_len=8192, k_dtype=BF16, v_dtype=BF16)
    for engine, state in (("formula", 49_082_368), ("sglang", 49_082_368), ("hf", 49_364_992)):
        result = kv_cache(model, one, ENGINES[engine])
        assert result.bytes_per_token == 6_144
        assert result.per_sequence_bytes == 50_331_648
        assert result.state_bytes_per_sequence == state
    llama = kv_cache(model, Workload(seq_len=8192), ENGINES["llama.cpp"])
    assert llama.state_bytes_per_sequence == 49_930_240
    # the state does not grow with the context, and is linear in batch
    longer = kv_cache(model, Workload(seq_len=65536, batch=3, k_dtype=BF16), ENGINES["formula"])
    assert longer.state_total_bytes == 3 * 49_082_368


def test_nemotron_3_nano_vllm_hybrid_pages() -> None:
    """vLLM's hybrid alignment (vllm/platforms/interface.py _align_hybrid_block_size): state
    page 2,134,016 B, attention 1,024 B per token per layer, alignment 16 → block =
    16 · cdiv(2,134,016, 16·1,024) = 16 · 131 = 2,096 tokens, page 2,096·1,024 = 2,146,304 B
    (the state page padded up to it). Groups (kv_cache_utils): 6 attention and 23 Mamba layers,
    group size 6 → 4 Mamba groups (24 slots). At 8,192 tokens: attention 6 · cdiv(8192, 2096) ·
    2,096 · 1,024 = 6 · 8,384 · 1,024 = 51,511,296 B; state 24 · 2,146,304 = 51,511,296 B."""
    model = _import("nemotron-3-nano-30b-a3b")
    result = kv_cache(model, Workload(seq_len=8192, k_dtype=BF16, v_dtype=BF16), ENGINES["vllm"])
    assert result.block_size == 2096
    assert result.per_sequence_bytes == 51_511_296
    assert result.state_bytes_per_sequence == 51_511_296
    assert result.state_groups[0].padded_count == 24


def test_state_splits_over_tensor_parallel_ranks() -> None:
    """Mamba2 state under TP 2 (vLLM MambaStateShapeCalculator): d_inner 4,096/2 + n_groups 8/2 ·
    256 = 3,072 conv channels × 3 × 2 B = 18,432; 32 heads × 8,192 × 4 B = 1,048,576 B per
    layer, exactly half of tp 1; n_groups 8 under tp 16 is replicated one group per rank."""
    model = _import("nemotron-3-nano-30b-a3b")
    tp2 = kv_cache(model, Workload(seq_len=100, tp=2, k_dtype=BF16), ENGINES["sglang"])
    group = tp2.state_groups[0]
    assert (group.conv_bytes_per_layer, group.recurrent_bytes_per_layer) == (18_432, 1_048_576)
    assert tp2.state_total_bytes == 2 * 23 * (18_432 + 1_048_576)
    with pytest.raises(KvcalcError, match="state heads"):
        kv_cache(model, Workload(seq_len=100, tp=128, k_dtype=BF16), ENGINES["sglang"])


def test_trtllm_state_shapes_split_conv_dim_whole() -> None:
    """TensorRT-LLM (NVIDIA/TensorRT-LLM@00679c66c3e3 config_utils.py
    extract_mamba_kv_cache_params, MambaKVCacheParams.get_states_bytes_per_layer):
    conv_dim = head_dim · num_heads + 2 · n_groups · d_state split as a whole over tp,
    conv_kernel − 1 columns in the model dtype; SSM [num_heads/tp, head_dim, d_state] in
    mamba_ssm_cache_dtype (resolve_ssm_cache_dtype: that key only), else the model dtype.
    Qwen3-Next-80B-A3B (config.json: 48 layers, full_attention_interval 4 → 36 linear;
    linear_num_value_heads 32 × linear_value_head_dim 128, linear_num_key_heads 16 ×
    linear_key_head_dim 128, linear_conv_kernel_dim 4, bfloat16, no SSM dtype key) at tp 2:
    conv (32·128 + 2·16·128) / 2 = 4,096 × 3 × 2 B = 24,576 B; SSM 16 × 128 × 128 × 2 B =
    524,288 B; 36 · 548,864 = 19,759,104 B per GPU and sequence. Nemotron-3-Nano under tp 16:
    conv_dim 6,144 / 16 = 384 (vLLM replicates its 8 groups instead).

    The SSM dtype comes from mamba_ssm_cache_dtype only (StateKind.state_dtype_key).
    Qwen3.5-27B's config sets mamba_ssm_dtype float32, which TensorRT-LLM ignores: 48 linear
    layers of Hv 48 × Dv 128, Hk 16 × Dk 128, kernel 4, bf16: conv (48·128 + 2·16·128) ×
    3 × 2 B = 61,440 B, SSM 48 × 128 × 128 × 2 B = 1,572,864 B, 48 · 1,634,304 =
    78,446,592 B per sequence (SGLang, which reads mamba_ssm_dtype, keeps the SSM in fp32:
    48 · (61,440 + 3,145,728) = 153,944,064 B). Nemotron-H-56B's config has no SSM dtype
    key: vLLM's NemotronH default is float32, TensorRT-LLM keeps the model dtype: SSM 256 ×
    64 × 256 × 2 B = 8,388,608 B a layer (vLLM 16,777,216)."""
    qwen = kv_cache(
        load_model("qwen3-next-80b-a3b"), Workload(seq_len=100, tp=2), ENGINES["trtllm"]
    )
    group = qwen.state_groups[0]
    assert (group.count, group.conv_bytes_per_layer, group.recurrent_bytes_per_layer) == (
        36,
        24_576,
        524_288,
    )
    assert qwen.state_per_gpu_bytes == 36 * (24_576 + 524_288) == 19_759_104
    nano = kv_cache(
        _import("nemotron-3-nano-30b-a3b"), Workload(seq_len=100, tp=16), ENGINES["trtllm"]
    )
    assert nano.state_groups[0].conv_bytes_per_layer == 384 * 3 * 2
    assert nano.state_groups[0].recurrent_bytes_per_layer == 4 * 64 * 128 * 4
    qwen35 = load_model("qwen3.5-27b")
    trt = kv_cache(qwen35, Workload(seq_len=100), ENGINES["trtllm"])
    assert trt.state_groups[0].recurrent_bytes_per_layer == 48 * 128 * 128 * 2
    assert trt.state_per_gpu_bytes == 48 * (61_440 + 1_572_864) == 78_446_592
    sglang = kv_cache(qwen35, Workload(seq_len=100), ENGINES["sglang"])
    assert sglang.state_per_gpu_bytes == 48 * (61_440 + 3_145_728) == 153_944_064
    h56 = load_model("nemotron-h-56b")
    ssm = {
        e: kv_cache(h56, Workload(seq_len=100), ENGINES[e]).state_groups[0]
        for e in ("trtllm", "vllm")
    }
    assert ssm["trtllm"].recurrent_bytes_per_layer == 256 * 64 * 256 * 2 == 8_388_608
    assert ssm["vllm"].recurrent_bytes_per_layer == 256 * 64 * 256 * 4


def test_qwen35_27b_full_attention_and_gated_deltanet_state() -> None:
    """Qwen3.5-27B (published config: 64 layers, layer_types 3 linear_attention : 1
    full_attention; 4 KV heads × head_dim 256; GDN linear_num_key_heads 16 × 128,
    linear_num_value_heads 48 × 128, conv kernel 4, mamba_ssm_dtype float32), bf16.

    KV: 16 full layers × 2 × 4 × 256 × 2 B = 65,536 B per token (issue 7).
    GDN state of 48 layers, per layer and sequence: conv channels 2·16·128 + 48·128 = 10,240;
      formula (kernel − 1 = 3 columns, bf16): 3·10,240·2 = 61,440 + recurrent 48·128·128·4 B =
      3,145,728 → 3,207,168 B × 48 = 153,944,064 B;
      hf (4 columns, measured on transformers' LinearAttentionLayer): 81,920 + 3,145,728 →
      3,227,648 × 48 = 154,927,104 B.
    """
    model = _import("qwen3.5-27b")
    workload = Workload(seq_len=1000, batch=2, k_dtype=BF16, v_dtype=BF16)
    formula = kv_cache(model, workload, ENGINES["formula"])
    assert formula.bytes_per_token == 65_536
    assert formula.per_sequence_bytes == 65_536 * 1000
    assert formula.state_bytes_per_sequence == 153_944_064
    assert formula.state_total_bytes == 2 * 153_944_064
    assert kv_cache(model, workload, ENGINES["hf"]).state_bytes_per_sequence == 154_927_104
    assert [g.count for g in formula.state_groups] == [48]
    assert model.mtp_layers == 1
    # the MTP layer's KV (one more full-attention layer) only with speculative decoding on
    mtp = kv_cache(model, Workload(seq_len=1000, mtp=True, k_dtype=BF16), ENGINES["formula"])
    assert mtp.bytes_per_token == 65_536 + 4096


def test_deepseek_v32_indexer_keys_by_engine() -> None:
    """DeepSeek-V3.2 (published config: 61 MLA layers, kv_lora_rank 512 + rope 64,
    index_head_dim 128), per token and layer:
      hf (DynamicIndexedLayer, bf16 indexer keys): 576·2 + 128·2 = 1,408 → × 61 = 85,888 B;
      vLLM / SGLang (indexer key fp8 + one fp32 scale per 128 = 132 B):
      576·2 + 132 = 1,284 → × 61 = 78,324 B; with fp8_ds_mla (656 B) 788 × 61 = 48,068 B
      (TRT-LLM refuses DSA models: tests/test_sparse_mla_fp8.py).
    SGLang's NSA pool pages 64 tokens: 1,000 tokens hold 1,024 cells. llama.cpp keeps the
    indexer keys in the fp16 K type: 576·2 + 128·2 = 1,408 → × 61 = 85,888 B, as hf."""
    model = _import("deepseek-v3.2")
    workload = Workload(seq_len=1000)
    assert kv_cache(model, workload, ENGINES["hf"]).bytes_per_token == 85_888
    for engine in ("vllm", "sglang"):
        assert kv_cache(model, workload, ENGINES[engine]).bytes_per_token == 78_324
    sglang = kv_cache(model, workload, ENGINES["sglang"])
    assert sglang.per_sequence_bytes == 1024 * 78_324
    ds = Workload(seq_len=1000, k_dtype=kv_dtype("fp8_ds_mla"), v_dtype=kv_dtype("fp8_ds_mla"))
    assert kv_cache(model, ds, ENGINES["vllm"]).bytes_per_token == 48_068
    assert kv_cache(model, workload, ENGINES["llama.cpp"]).bytes_per_token == 85_888


def test_glm52_shared_indexer_layers_keep_no_indexer_keys() -> None:
    """GLM-5.2 (published config: 78 layers, indexer_types 'full' for 21 of them, 'shared' for
    57 that reuse the previous full layer's top-k): hf per token = 78 · 576·2 + 21 · 128·2 =
    89,856 + 5,376 = 95,232 B."""
    model = _import("glm-5.2")
    names = model.layer_kind_names()
    assert names.count("shared") == 57
    result = kv_cache(model, Workload(seq_len=10), ENGINES["hf"])
    assert result.bytes_per_token == 78 * 1152 + 21 * 256


def test_glm47_gqa_moe_per_token_and_params() -> None:
    """GLM-4.7 (published config: 92 layers, 96 q heads, 8 KV heads × head_dim 128, bf16; the
    one MTP layer, num_nextn_predict_layers 1, is not in num_hidden_layers and caches nothing
    in hf): per token 92 × 2 (K, V) × 8 × 128 × 2 B = 376,832 B. Parameters (transformers
    Glm4MoeForCausalLM, MTP layer not built): embedding and untied lm_head 151,552 × 5,120 each;
    attention per layer q 5,120·12,288 + 12,288 bias, k and v 5,120·1,024 + 1,024 each,
    o 12,288·5,120, q_norm and k_norm 128 each; 3 dense MLP layers 3·5,120·12,288; 89 MoE layers
    with 160 experts and 1 shared expert of 3·5,120·1,536 and a 160 × 5,120 router (its
    e_score_correction_bias is a buffer); 2 RMSNorms a layer and the final one, 5,120 each."""
    model = _import("glm-4.7")
    workload = Workload(seq_len=100, k_dtype=BF16)
    for engine in ("formula", "hf"):
        assert kv_cache(model, workload, ENGINES[engine]).bytes_per_token == 92 * 2 * 8 * 128 * 2
    embedding = 151_552 * 5_120
    attention = (5_120 * 12_288 + 12_288) + 2 * (5_120 * 1_024 + 1_024) + 12_288 * 5_120 + 256
    expert = 3 * 5_120 * 1_536
    assert model.n_params == (
        2 * embedding
        + 92 * attention
        + 3 * 3 * 5_120 * 12_288
        + 89 * (161 * expert + 160 * 5_120)
        + 92 * 2 * 5_120
        + 5_120
    )


def test_gemma4_26b_sliding_and_global_layers() -> None:
    """Gemma-4-26B-A4B (published config: 30 layers, 5 sliding : 1 full; sliding 8 KV heads ×
    256, W = 1,024; full layers num_global_key_value_heads 2 × global_head_dim 512, K = V).
    Per token: 25 × 2·8·256·2 + 5 × 2·2·512·2 = 204,800 + 20,480 = 225,280 B.
    hf at 2,000 tokens (sliding keep W − 1 = 1,023; K = V still caches the values,
    measured): 25·1,023·8,192 + 5·2,000·4,096 = 209,510,400 + 40,960,000 = 250,470,400 B.
    trtllm at 2,000 tokens (KVCacheManagerV2, 32-token blocks; blocks behind the window
    freed): full cdiv(2,000, 32) = 63 blocks = 2,016 tokens, sliding 63 − (2,000 − 1,024) // 32
    = 33 blocks = 1,056: 5·2,016·4,096 + 25·1,056·8,192 = 41,287,680 + 216,268,800 =
    257,556,480 B. Engines whose K = V storage kvcalc has not read (vLLM's V0 engine) are
    refused (vLLM's, SGLang's and TensorRT-LLM's: K and V both cached,
    tests/test_layer_kinds.py)."""
    model = _import("gemma-4-26b-a4b")
    hf_result = kv_cache(model, Workload(seq_len=2000, k_dtype=BF16), ENGINES["hf"])
    assert hf_result.bytes_per_token == 225_280
    assert hf_result.per_sequence_bytes == 250_470_400
    trtllm = kv_cache(model, Workload(seq_len=2000), ENGINES["trtllm"])
    assert trtllm.per_sequence_bytes == 257_556_480
    with pytest.raises(KvcalcError, match="attention_k_eq_v"):
        kv_cache(model, Workload(seq_len=2000), ENGINES["vllm@v0"])


def test_llama_nemotron_super_49b_nas_blocks() -> None:
    """Llama-3.3-Nemotron-Super-49B-v1 (published config, block_configs: 49 layers with
    n_heads_in_group 8 → 64/8 = 8 KV heads × 128, 31 attention no-ops): 49 × 2 × 8 × 128 × 2 B
    = 200,704 B per token (today's reading, 80 layers × 64 MHA heads, gave 2,621,440).
    Parameters 49,867,145,216 (DeciLM FFN widths from ffn_mult: int(2·m·8192/3) up to a
    multiple of 256), the card's '49B'."""
    model = _import("llama-3.3-nemotron-super-49b")
    assert (
        kv_cache(model, Workload(seq_len=100, k_dtype=BF16), ENGINES["formula"]).bytes_per_token
        == 200_704
    )
    assert model.layer_kind_names().count("no_attention") == 31
    assert model.n_params == 49_867_145_216


def test_mimo_v2_flash_sliding_layers_have_twice_the_kv_heads() -> None:
    """MiMo-V2-Flash (published config: 48 layers, hybrid_layer_pattern 9 full (0) and 39
    sliding (1); full 4 KV heads, sliding swa_num_key_value_heads 8; K 192, V 128;
    sliding_window_size 128 → window 129 with the query). Per token: 9 × 4 × (192+128) × 2 +
    39 × 8 × (192+128) × 2 = 23,040 + 199,680 = 222,720 B; moe_layer_freq as a list imports."""
    model = _import("mimo-v2-flash")
    result = kv_cache(model, Workload(seq_len=1000, k_dtype=BF16), ENGINES["formula"])
    assert result.bytes_per_token == 222_720
    assert model.layers is not None and model.layers.sliding_window == 129
    # formula engine: sliding layers hold the window, full layers every token
    assert result.per_sequence_bytes == 9 * 2560 * 1000 + 39 * 5120 * 129


@settings(max_examples=40, deadline=None)
@given(
    seq=st.integers(1, 300_000),
    batch=st.integers(1, 64),
    engine=st.sampled_from(["formula", "hf", "sglang", "vllm", "llama.cpp"]),
)
def test_state_is_fixed_per_sequence_and_linear_in_batch(seq: int, batch: int, engine: str) -> None:
    """Recurrent state does not grow with the context and is linear in batch; the growing KV
    is linear in batch too; per-GPU shares cover the totals (Nemotron-3-Nano, every engine)."""
    model = _import("nemotron-3-nano-30b-a3b")
    one = kv_cache(model, Workload(seq_len=1, k_dtype=BF16, v_dtype=BF16), ENGINES[engine])
    result = kv_cache(
        model, Workload(seq_len=seq, batch=batch, k_dtype=BF16, v_dtype=BF16), ENGINES[engine]
    )
    single = kv_cache(model, Workload(seq_len=seq, k_dtype=BF16, v_dtype=BF16), ENGINES[engine])
    assert result.state_total_bytes == batch * one.state_bytes_per_sequence
    assert result.total_bytes == batch * single.total_bytes
    assert result.cache_total_bytes == result.total_bytes + result.state_total_bytes
    assert result.cache_per_gpu_bytes * result.n_gpus >= result.cache_total_bytes


def test_vllm_unifies_page_sizes_of_mimo_v2_flash() -> None:
    """vLLM (kv_cache_utils.unify_kv_cache_spec_page_size) on MiMo-V2-Flash: sliding pages
    16 · 8·(192+128)·2 = 81,920 B, full layers (2,560 B/token) re-blocked to 32 tokens so their
    page is 81,920 B too; groups of 9 (39 sliding layers padded to 45). At 8,192 tokens
    (N = 8,192, W = 129): sliding cdiv(min(128 + 8192, 8192), 16) + 1 = 513 blocks = 8,208
    tokens, full 8,192: 9·8,192·2,560 + 45·8,208·5,120 = 188,743,680 + 1,891,123,200 =
    2,079,866,880 B per sequence."""
    model = _import("mimo-v2-flash")
    result = kv_cache(model, Workload(seq_len=8192, k_dtype=BF16, v_dtype=BF16), ENGINES["vllm"])
    assert result.per_sequence_bytes == 2_079_866_880
    full, sliding = result.groups
    assert (full.block_size, sliding.block_size) == (32, 16)
    assert sliding.padded_count == 45


def test_jamba_15_mini_attention_one_layer_in_eight() -> None:
    """Jamba-1.5-Mini (published config: 32 layers, attention where i % 8 == 4, so 4 layers of
    8 KV heads × 4096/32 = 128; Mamba in the other 28, d_inner = 2 · 4096 = 8,192, d_state 16,
    d_conv 4), bf16: KV 4 × 2 × 8 × 128 × 2 = 16,384 B per token (today's reading counted all
    32 layers: 131,072). Mamba state per sequence:
      formula (conv 3 columns, bf16; ssm in the model dtype): 3·8,192·2 + 8,192·16·2 = 311,296
      × 28 = 8,716,288 B; hf (4 columns, fp32 ssm, measured): 65,536 + 524,288 = 589,824 × 28 =
      16,515,072 B."""
    model = _import("jamba-1.5-mini")
    formula = kv_cache(
        model, Workload(seq_len=4096, k_dtype=BF16, v_dtype=BF16), ENGINES["formula"]
    )
    assert formula.bytes_per_token == 16_384
    assert formula.state_bytes_per_sequence == 8_716_288
    hf_result = kv_cache(model, Workload(seq_len=4096, k_dtype=BF16, v_dtype=BF16), ENGINES["hf"])
    assert hf_result.state_bytes_per_sequence == 16_515_072


def test_mtp_on_a_model_without_mtp_layers_says_it_adds_nothing() -> None:
    """Llama-3-8B (published config: no num_nextn_predict_layers) has no MTP layers: --mtp
    sizes the same 32 × 2 × 8 × 128 × 2 = 131,072 B a token and says it added nothing."""
    model = load_model("llama-3-8b")
    plain = kv_cache(model, Workload(seq_len=100, k_dtype=BF16), ENGINES["vllm"])
    mtp = kv_cache(model, Workload(seq_len=100, k_dtype=BF16, mtp=True), ENGINES["vllm"])
    assert mtp.bytes_per_token == plain.bytes_per_token == 32 * 2 * 8 * 128 * 2
    assert "the model has no MTP / next-n layers: --mtp adds nothing" in mtp.assumptions
    assert not any("MTP" in note for note in plain.assumptions)
