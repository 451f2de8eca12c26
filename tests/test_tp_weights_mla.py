"""Per-GPU weights of the MLA models under tensor parallelism, as vLLM and SGLang shard them.

vllm-project/vllm@b863fe5bf4e19680572603b4e166faefc5725551:vllm/model_executor/models/
deepseek_v2.py: DeepseekV2MLAAttention builds fused_qkv_a_proj (q_a_proj + kv_a_proj_with_mqa)
as a MergedColumnParallelLinear with disable_tp=True (kv_a_proj_with_mqa a ReplicatedLinear
without q_lora_rank) and q_a_layernorm / kv_a_layernorm whole, q_b_proj and kv_b_proj
ColumnParallelLinear, o_proj RowParallelLinear; DeepSeekV2Gate is a ReplicatedLinear; the
DSA Indexer's wq_b, wk and weights_proj are ReplicatedLinear and k_norm a LayerNorm. SGLang
(sgl-project/sglang@3e4a39ee73308590c5c753108bdcb8d333f7f1c6:python/sglang/srt/models/
deepseek_v2.py, DeepseekV2AttentionMLA's fused_qkv_a_proj_with_mqa ReplicatedLinear and
MoEGate's whole nn.Parameter; nsa_indexer.py Indexer) holds the same modules whole. The
routed experts' intermediate (FusedMoE) and the shared experts are split by tp.

fp8 checkpoints (128 x 128 blocks, fp32 weight_scale_inv): a linear of out x in takes
out·in + 4·⌈out/128⌉·⌈in/128⌉ bytes; every number below is written out from the published
config values (tests/data/hf_configs/<stem>.json).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kvcalc.dtypes import weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.planner import weights_per_stage
from kvcalc.presets import load_model
from kvcalc.specs import ParamBreakdown, PartBytes


def fp8(out_features: int, in_features: int) -> int:
    """Bytes of one fp8 linear with fp32 scales per 128 x 128 block."""
    return out_features * in_features + 4 * -(-out_features // 128) * -(-in_features // 128)


def mla_fp8_rank_bytes(
    *,
    h: int,
    n_layers: int,
    vocab: int,
    n_heads: int,
    first_dense: int,
    inter: int,
    moe_inter: int,
    n_experts: int,
    n_shared: int,
    tp: int,
) -> int:
    """One rank's bytes of a DeepSeek-V3-shaped fp8 checkpoint (q_lora 1536, kv_lora 512,
    rope 64, nope 128, v 128), written out module by module as vLLM shards it."""
    q_lora, kv_lora, rope, nope, v = 1536, 512, 64, 128, 128
    # whole on every rank: fused_qkv_a_proj (q_a_proj, kv_a_proj_with_mqa), the two norms
    replicated = fp8(q_lora, h) + fp8(kv_lora + rope, h) + 2 * (q_lora + kv_lora)
    # split: q_b_proj and kv_b_proj by output heads, o_proj by input heads
    split = (
        fp8(n_heads // tp * (nope + rope), q_lora)
        + fp8(n_heads // tp * (nope + v), kv_lora)
        + fp8(h, n_heads // tp * v)
    )
    attention = n_layers * (replicated + split)
    # dense layers: gate_up_proj column-parallel, down_proj row-parallel
    dense = first_dense * (2 * fp8(inter // tp, h) + fp8(h, inter // tp))
    # MoE layers: each expert (and the shared expert) split along moe_intermediate by tp;
    # the router (gate) whole in bf16
    expert = 2 * fp8(moe_inter // tp, h) + fp8(h, moe_inter // tp)
    moe_layers = n_layers - first_dense
    moe = moe_layers * (n_experts * expert + n_shared * expert + 2 * n_experts * h)
    embedding = lm_head = 2 * vocab * h // tp  # VocabParallelEmbedding / ParallelLMHead
    norms = 2 * (n_layers * 2 * h + h)  # input / post-attention norms, final norm: whole
    return attention + dense + moe + embedding + lm_head + norms


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_deepseek_v3_tp8(engine: str) -> None:
    """DeepSeek-V3 at tp 8 holds its replicated linears whole: 85,140,071,456 B a GPU."""
    # config.json: hidden_size 7168, 61 layers, vocab 129280, 128 heads, first_k_dense_replace
    # 3, intermediate_size 18432, moe_intermediate_size 2048, 256 routed + 1 shared expert
    expected = mla_fp8_rank_bytes(
        h=7168,
        n_layers=61,
        vocab=129280,
        n_heads=128,
        first_dense=3,
        inter=18432,
        moe_inter=2048,
        n_experts=256,
        n_shared=1,
        tp=8,
    )
    # per layer: replicated 11,012,736 + 4,129,888 + 4,096 = 15,146,720; split 4,719,744 +
    # 2,097,664 + 14,683,648 = 21,501,056
    assert fp8(1536, 7168) == 1536 * 7168 + 4 * 12 * 56 == 11_012_736
    assert fp8(576, 7168) == 576 * 7168 + 4 * 5 * 56 == 4_129_888
    assert expected == 85_140_071_456
    model = load_model("deepseek-v3")
    assert weights_per_stage(model, ENGINES[engine], 8, 1, None) == (expected,)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_kimi_k2_tp8(engine: str) -> None:
    """Kimi-K2 at tp 8 (64 heads, 384 experts): the same modules whole on every rank."""
    # config.json: hidden_size 7168, 61 layers, vocab 163840, 64 heads, first_k_dense_replace
    # 1, intermediate_size 18432, moe_intermediate_size 2048, 384 routed + 1 shared expert
    expected = mla_fp8_rank_bytes(
        h=7168,
        n_layers=61,
        vocab=163840,
        n_heads=64,
        first_dense=1,
        inter=18432,
        moe_inter=2048,
        n_experts=384,
        n_shared=1,
        tp=8,
    )
    # split attention per layer: q_b 1536 x 1536, kv_b 2048 x 512, o_proj 7168 x 1024
    assert fp8(1536, 1536) + fp8(2048, 512) + fp8(7168, 1024) == 10_750_528
    model = load_model("kimi-k2")
    assert weights_per_stage(model, ENGINES[engine], 8, 1, None) == (expected,)


def test_deepseek_v3_replicated_bytes() -> None:
    """The preset records the replicated linears' own fp8 bytes, not the part's average."""
    model = load_model("deepseek-v3")
    assert model.params is not None and model.weights_quant is not None
    # q_a_proj 1536 x 7168, q_a_layernorm 1536, kv_a_proj_with_mqa 576 x 7168, kv_a_layernorm
    # 512, in each of 61 layers
    assert model.params.replicated_attention == 61 * (1536 * 7168 + 1536 + 576 * 7168 + 512)
    attention = model.weights_quant.attention
    assert attention.replicated_weights == model.params.replicated_attention
    assert attention.replicated_bytes == 61 * (fp8(1536, 7168) + fp8(576, 7168) + 2 * 2048)
    # the router of each of the 58 MoE layers, 256 x 7168 in bf16
    assert model.params.replicated_experts == 58 * 256 * 7168
    assert model.weights_quant.experts.replicated_bytes == 58 * 256 * 7168 * 2
    assert model.params.replicated_mlp is None


def test_deepseek_v32_indexer_replicated() -> None:
    """DeepSeek-V3.2's indexer (wq_b, wk, k_norm, weights_proj) is whole on every rank."""
    model = load_model("deepseek-v3.2")
    assert model.params is not None
    mla = 1536 * 7168 + 1536 + 576 * 7168 + 512
    # index_n_heads 64, index_head_dim 128: wq_b 8192 x 1536, wk 128 x 7168, k_norm weight
    # and bias 2 x 128, weights_proj 64 x 7168
    indexer = 64 * 128 * 1536 + 128 * 7168 + 2 * 128 + 64 * 7168
    assert model.params.replicated_attention == 61 * (mla + indexer)


def test_kimi_k3_replicated() -> None:
    """Kimi-K3: the 24 MLA layers' a-projections, the 92 routers and latent projections."""
    model = load_model("kimi-k3")
    assert model.params is not None
    # hidden 7168, q_lora 1536, kv_lora 512, rope 64; full_attn_layers lists 24 layers
    assert model.params.replicated_attention == 24 * (1536 * 7168 + 1536 + 576 * 7168 + 512)
    # 92 MoE layers (first_k_dense_replace 1 of 93): routed_expert_down_proj 7168 -> 3584 and
    # routed_expert_up_proj 3584 -> 7168 (SGLang kimi_k3.py, ReplicatedLinear)
    assert model.params.replicated_mlp == 92 * 2 * 7168 * 3584
    # the router (896 x 7168) and its e_score_correction_bias (896)
    assert model.params.replicated_experts == 92 * (896 * 7168 + 896)


@pytest.mark.parametrize("name", ["deepseek-v3", "kimi-k2", "glm-5-fp8", "kimi-k3"])
def test_one_gpu_unchanged(name: str) -> None:
    """On one GPU the replicated split changes nothing: the published parts' bytes whole."""
    model = load_model(name)
    assert model.params is not None and model.weights_quant is not None
    q = model.weights_quant
    p = model.params
    parts = q.attention.bytes + q.mlp.bytes + q.experts.bytes
    rest = 2 * (p.embedding + p.lm_head + p.norms + p.other)
    tower = 2 * model.tower.params if model.tower is not None else 0
    assert weights_per_stage(model, ENGINES["vllm"], 1, 1, None) == (parts + rest + tower,)


@pytest.mark.parametrize("name", ["gpt-oss-120b", "llama-3.1-70b", "qwen3-235b-a22b-fp8"])
def test_gqa_models_have_no_replicated_parts(name: str) -> None:
    """GQA models keep their K/V-projection replication (kv_proj_rank) and nothing else."""
    model = load_model(name)
    assert model.params is not None
    assert all(model.params.replicated(part) == 0 for part in ("attention", "mlp", "experts"))
    if model.weights_quant is not None:
        assert model.weights_quant.attention.replicated_weights is None


def test_replicated_fields_validated() -> None:
    """A replicated count larger than its part, or weights without bytes, is refused."""
    with pytest.raises(ValidationError, match="replicated_attention"):
        ParamBreakdown(embedding=1, lm_head=1, attention=10, mlp=1, replicated_attention=11)
    with pytest.raises(ValidationError, match="go together"):
        PartBytes(weights=10, quantized_weights=0, bytes=20, replicated_weights=5)
    with pytest.raises(ValidationError, match="exceeds bytes"):
        PartBytes(
            weights=10, quantized_weights=0, bytes=20, replicated_weights=5, replicated_bytes=21
        )


def test_deepseek_v3_bf16_weights_dtype_tp8() -> None:
    """--weights-dtype bf16 at tp 8: the replicated parameters whole at 2 B, the rest 1/8."""
    h, vocab = 7168, 129280
    # per layer (config.json): q_a_proj, q_a_layernorm, q_b_proj, kv_a_proj_with_mqa,
    # kv_a_layernorm, kv_b_proj, o_proj
    replicated = h * 1536 + 1536 + h * 576 + 512
    split = 1536 * 128 * 192 + 512 * 128 * 256 + 128 * 128 * h
    mlp = 3 * 3 * h * 18432 + 58 * 3 * h * 2048  # 3 dense MLPs, 58 shared experts
    experts = 58 * 256 * 3 * h * 2048  # the routed experts, split along moe_intermediate
    routers = 58 * 256 * h
    norms = 61 * 2 * h + h
    per_gpu = (
        61 * split // 8
        + 61 * replicated
        + mlp // 8
        + experts // 8
        + routers
        + 2 * vocab * h // 8
        + norms
    )
    model = load_model("deepseek-v3")
    got = weights_per_stage(model, ENGINES["vllm"], 8, 1, weight_dtype("bf16"))
    assert got == (2 * per_gpu,)
