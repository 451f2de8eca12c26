"""Kimi-K3 (moonshotai/Kimi-K3, model_type kimi_k3 over a kimi_linear text_config), derived by
hand from the published config (tests/data/hf_configs/kimi-k3.json) and SGLang's
implementation, sgl-project/sglang@e44a41c1c413ce470c66445745f380a50203c286
python/sglang/srt/models/kimi_k3.py (transformers has no kimi_k3 model).

The config: hidden h = 7168, vocab 163,840, 93 layers, 24 of them MLA
(linear_attn_config.full_attn_layers 4, 8, ..., 92 and 93, 1-based) and 69 KDA; MLA with
96 heads, q_lora_rank 1536, kv_lora_rank 512, qk_rope_head_dim 64, qk_nope_head_dim 128,
v_head_dim 128 and an output gate; KDA with 96 heads of head_dim 128, conv kernel 4 and a
full-rank output gate; layer 0 a dense SiTU MLP of 33,792, layers 1-92 MoE: 896 experts of
moe_intermediate_size 3072 in the routed_expert_hidden_size 3584 latent, 2 shared experts,
latent_moe_use_norm; attn_res_block_size 12; bf16.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kvcalc import hf
from kvcalc.dtypes import kv_dtype
from kvcalc.engines import ENGINES, EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.kernel import KvKernel
from kvcalc.llamacpp import LlamaCppOptions, compute_buffer_bytes, llama_context
from kvcalc.planner import Plan, budget, fit
from kvcalc.presets import load_model
from kvcalc.specs import GpuSpec, ModelSpec

CONFIG = Path(__file__).parent / "data" / "hf_configs" / "kimi-k3.json"
SGLANG = ENGINES["sglang"]
VLLM = ENGINES["vllm"]
TRTLLM = ENGINES["trtllm"]

H, VOCAB = 7168, 163_840
MLA_LAYERS, KDA_LAYERS, MOE_LAYERS = 24, 69, 92
HEADS, Q_LORA, KV_LORA, ROPE, NOPE, V_DIM = 96, 1536, 512, 64, 128, 128
KDA_HEADS, KDA_DIM, KERNEL = 96, 128, 4
PROJ = KDA_HEADS * KDA_DIM  # 12,288
EXPERTS, MOE_INTER, LATENT, SHARED, DENSE_INTER = 896, 3072, 3584, 2, 33_792


@pytest.fixture(scope="module")
def k3() -> ModelSpec:
    return load_model("kimi-k3")


def _config() -> dict[str, object]:
    data: dict[str, object] = json.loads(CONFIG.read_text())
    return data


def test_mla_layers_cache_the_576_wide_latent_1152_bytes_a_token_in_bf16(k3: ModelSpec) -> None:
    """Each MLA layer caches kv_lora_rank + qk_rope_head_dim = 512 + 64 values a token (the
    rope part is stored though mla_use_nope skips the rotation: DeepseekV2AttentionMLA with
    skip_rope=True still writes k_pe, the kv_a_proj_with_mqa output's last 64), no V; the KDA
    layers add nothing per token."""
    result = kv_cache(k3, Workload(seq_len=8192, batch=1), SGLANG)
    assert result.bytes_per_token == MLA_LAYERS * (KV_LORA + ROPE) * 2 == 27_648
    assert result.total_bytes == 8192 * 27_648 == 226_492_416
    fp8_e4m3 = kv_dtype("fp8")
    fp8 = kv_cache(k3, Workload(seq_len=8192, k_dtype=fp8_e4m3, v_dtype=fp8_e4m3), SGLANG)
    assert fp8.bytes_per_token == MLA_LAYERS * (KV_LORA + ROPE) == 13_824


def test_kda_state_per_sequence_bf16_conv_and_fp32_recurrent_under_sglang(k3: ModelSpec) -> None:
    """SGLang's KimiLinearStateShape: conv (kernel - 1) × 3 · heads · head_dim in bf16 (the
    conv dtype default), recurrent heads × head_dim × head_dim in float32
    (KimiLinearCacheParams without a dtype: mamba2_state_dtype(None)); TP splits the heads."""
    conv = (KERNEL - 1) * 3 * PROJ * 2  # 3 × 36,864 × 2 = 221,184
    recurrent = KDA_HEADS * KDA_DIM * KDA_DIM * 4  # 1,572,864 × 4 = 6,291,456
    assert conv + recurrent == 6_512_640
    result = kv_cache(k3, Workload(seq_len=8192, batch=3), SGLANG)
    assert result.state_bytes_per_sequence == KDA_LAYERS * 6_512_640 == 449_372_160
    assert result.state_total_bytes == 3 * 449_372_160
    # a bf16 recurrent state (a config's mamba_ssm_dtype: bfloat16, which SGLang reads)
    # holds half the bytes
    bf16_state = KDA_LAYERS * (conv + KDA_HEADS * KDA_DIM * KDA_DIM * 2)
    assert bf16_state == 69 * (221_184 + 3_145_728) == 232_316_928
    assert k3.kinds is not None
    kinds = {
        "kda": k3.kinds["kda"].model_copy(
            update={"state_dtype": "bf16", "state_dtype_key": "mamba_ssm_dtype"}
        )
    }
    bf16 = kv_cache(k3.model_copy(update={"kinds": kinds}), Workload(seq_len=8192), SGLANG)
    assert bf16.state_bytes_per_sequence == bf16_state
    tp8 = kv_cache(k3, Workload(seq_len=8192, batch=1, tp=8), SGLANG)
    per_rank = (KERNEL - 1) * 3 * PROJ // 8 * 2 + KDA_HEADS // 8 * KDA_DIM * KDA_DIM * 4
    assert per_rank == 27_648 + 786_432
    assert tp8.state_per_gpu_bytes == KDA_LAYERS * per_rank == 56_171_520


def test_parameters_by_part_from_sglangs_modules(k3: ModelSpec) -> None:
    """The parameter count, part by part, from SGLang's KimiK3 module definitions."""
    mla = (
        H * Q_LORA + Q_LORA + Q_LORA * HEADS * (NOPE + ROPE)  # q_a_proj, q_a_layernorm, q_b_proj
        + H * (KV_LORA + ROPE) + KV_LORA + KV_LORA * HEADS * (NOPE + V_DIM)  # kv_a, norm, kv_b
        + HEADS * V_DIM * H  # o_proj
        + H * HEADS * V_DIM  # g_proj (mla_use_output_gate)
    )  # fmt: skip
    assert mla == 232_196_096
    kda = (
        3 * H * PROJ + 3 * PROJ * KERNEL  # q/k/v projections, q/k/v conv1d
        + H * KDA_DIM + KDA_DIM * PROJ + PROJ + KDA_HEADS  # f_a, f_b, dt_bias, A_log
        + H * KDA_HEADS  # b_proj
        + H * PROJ  # g_proj (use_full_rank_gate)
        + KDA_DIM + PROJ * H  # o_norm, o_proj
    )  # fmt: skip
    assert kda == 443_740_384
    experts = MOE_LAYERS * (
        EXPERTS * 3 * LATENT * MOE_INTER  # w1, w3, w2 in the latent
        + EXPERTS * H + EXPERTS  # router MoEGate weight and e_score_correction_bias
    )  # fmt: skip
    mlp = (
        3 * H * DENSE_INTER  # layer 0's dense MLP
        + MOE_LAYERS * (3 * H * SHARED * MOE_INTER + 2 * H * LATENT)  # shared, latent down/up
    )
    norms = 93 * 2 * H + H + 93 * 2 * H + H + MOE_LAYERS * LATENT  # + attn-res, routed_expert_norm
    other = 93 * 2 * H + H  # self_attention_res_proj, mlp_res_proj; output_attn_res_proj
    params = k3.params
    assert params is not None
    assert params.embedding == params.lm_head == VOCAB * H == 1_174_405_120
    assert params.attention == MLA_LAYERS * mla + KDA_LAYERS * kda == 36_190_792_800
    assert params.experts == experts == 2_723_331_785_216
    assert params.mlp == mlp == 17_608_736_768
    assert params.norms == norms == 3_010_560
    assert params.other == other == 1_340_416
    assert k3.n_params == 2_779_484_476_000


def test_published_weights_mxfp4_routed_experts_only(k3: ModelSpec) -> None:
    """The recipe (compressed-tensors mxfp4-pack-quantized, group 32, uint8 scales) quantises
    the routed experts: per expert w1, w3 (3072 × 3584) and w2 (3584 × 3072), each
    n/2 bytes of packed fp4 + one scale byte per 32 inputs; self_attn, shared_experts, the
    dense mlp and lm_head are ignored, and the router, the latent projections and the
    Attention-Residual pseudo-queries ship in bf16 (SGLang builds them unquantised)."""
    quant = k3.weights_quant
    assert quant is not None
    expert_bytes = 2 * (3072 * 3584 // 2 + 3072 * 3584 // 32) + 3584 * 3072 // 2 + 3584 * 3072 // 32
    assert expert_bytes == 17_547_264  # 0.53125 B per weight
    quantized = MOE_LAYERS * EXPERTS * 3 * LATENT * MOE_INTER
    assert quant.experts.quantized_weights == quantized == 2_722_740_830_208
    routers = MOE_LAYERS * (EXPERTS * H + EXPERTS)
    assert quant.experts.bytes == MOE_LAYERS * EXPERTS * expert_bytes + 2 * routers
    assert quant.experts.bytes == 1_447_637_976_064
    assert quant.attention.quantized_weights == quant.mlp.quantized_weights == 0
    assert quant.attention.bytes == 2 * 36_190_792_800


def test_family_and_architecture_are_the_outer_configs() -> None:
    """The outer kimi_k3 config is read by its own family (not transformers' kimi_linear)."""
    imported = hf.import_config(_config(), source="t")
    assert imported.spec.family == "kimi_k3"
    assert imported.spec.architecture == "KimiK3ForConditionalGeneration"
    assert imported.warnings == ()


def test_moonvit3d_tower_and_projector_parameters(k3: ModelSpec) -> None:
    """SGLang's KimiK3VisionTower and KimiK3MultiModalProjector (models/kimi_k3_vl.py) with
    vision_config h = 1024, i = 4096, qkv_hidden_size 1536, 27 layers, patch 14, 64 × 64
    position embedding, RMSNorms, no biases, merge 2 × 2 of mm_hidden_size 1024, text 7168;
    replicated on every rank and left in bf16 by the recipe's ignore list."""
    h, i, q, layers = 1024, 4096, 1536, 27
    patch = 3 * 14 * 14 * h + 64 * 64 * h  # Conv2d without bias, learnt position embedding
    block = 2 * h + 3 * h * q + q * h + 2 * h * i  # norm0, norm1, wqkv, wo, fc0, fc1
    merged = 1024 * 2 * 2
    projector = merged * merged + merged * 7168 + 7168  # proj.0, proj.2, post_norm
    total = patch + layers * block + h + projector  # + final_layernorm
    assert total == 602_112 + 4_194_304 + 27 * 14_682_112 + 1024 + 46_144_512 == 447_358_976
    assert k3.tower is not None
    assert (k3.tower.params, k3.tower.replicated, k3.tower.quantized) == (total, total, False)


def test_k3_keys_in_a_bare_kimi_linear_config_are_refused() -> None:
    """K3's keys in a kimi_linear config (no kimi_k3 wrapper) are refused in one line."""
    text = _config()["text_config"]
    assert isinstance(text, dict)
    with pytest.raises(KvcalcError, match="'attn_res_block_size' is Kimi-K3's"):
        hf.import_config(text, source="t")


@pytest.mark.parametrize(
    ("engine", "needle"),
    [
        ("vllm@v0", "runs on the V1 engine only"),
        ("hf", "transformers has no kimi_k3 model"),
        ("hf@4", "transformers has no kimi_k3 model"),
    ],
)
def test_engines_that_have_not_been_read_refuse(k3: ModelSpec, engine: str, needle: str) -> None:
    """Engines whose Kimi-K3 implementation kvcalc has not read refuse it in one line."""
    with pytest.raises(KvcalcError, match=re.escape(needle)) as info:
        kv_cache(k3, Workload(seq_len=1000), ENGINES[engine])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("engine", [SGLANG, VLLM, TRTLLM], ids=["sglang", "vllm", "trtllm"])
@pytest.mark.parametrize(
    ("seq", "batch", "tp"), [(1, 1, 1), (1025, 3, 8), (8192, 4, 8), (100_001, 2, 16)]
)
def test_kernel_equals_kv_cache(
    k3: ModelSpec, engine: EngineProfile, seq: int, batch: int, tp: int
) -> None:
    """The planner's compiled kernel gives kv_cache's integers for Kimi-K3 under SGLang,
    vLLM and TensorRT-LLM."""
    kernel = KvKernel(k3, engine, Workload(seq_len=1, batch=1, tp=tp))
    assert kernel.exact_fast, kernel.reason
    kv = kv_cache(k3, Workload(seq_len=seq, batch=batch, tp=tp), engine)
    at = kernel.at(seq, batch)
    assert (at.total_bytes, at.per_gpu_bytes, at.state_total_bytes, at.state_per_gpu_bytes) == (
        kv.total_bytes,
        kv.per_gpu_bytes,
        kv.state_total_bytes,
        kv.state_per_gpu_bytes,
    )


def test_kimi_linear_kda_recurrent_state_is_fp32_under_vllm_and_sglang() -> None:
    """Kimi Linear's KDA layers share the reading: the recurrent state is float32 whatever
    the model dtype (vLLM MambaStateDtypeCalculator.kda_state_dtype; SGLang's
    KimiLinearCacheParams default), the conv state in bf16. The shape-only config
    tests/data/hf_synthetic/kimi_linear.json: 3 KDA layers of 4 heads × 32, kernel 4."""
    config = json.loads((CONFIG.parent.parent / "hf_synthetic" / "kimi_linear.json").read_text())
    spec = hf.import_config(config, source="t").spec
    conv, recurrent = (4 - 1) * 3 * 4 * 32 * 2, 4 * 32 * 32 * 4  # 2,304 + 16,384
    result = kv_cache(spec, Workload(seq_len=100), SGLANG)
    assert result.state_bytes_per_sequence == 3 * (conv + recurrent) == 56_064


def test_llama_cpp_keeps_kimi_k3_as_a_hybrid_mla_kda_memory(k3: ModelSpec) -> None:
    """llama.cpp 0c1e57098 (src/llama-model.cpp create_memory default branch:
    llama_memory_hybrid; src/models/kimi-k3.cpp: n_head_kv == 0 marks a KDA layer;
    conversion/kimi_k3.py: MLA served as MQA, one KV head of kv_lora_rank + qk_rope_head_dim).
    Published config (tests/data/hf_configs/kimi-k3.json): 93 layers, full_attn_layers
    4, 8, ..., 92, 93 (1-indexed: 24 MLA layers), the other 69 KDA; kv_lora_rank 512,
    qk_rope_head_dim 64, 96 heads, KDA head_dim 128, short_conv_kernel_size 4.
      K (MLA latent, no V, f16): 24 × 8,192 cells × 576·2 B = 226,492,416 B
      r (conv, f32): 3·(4 − 1)·96·128 = 110,592 elems · 4 = 442,368 B per layer and slot
      s (KDA, f32): 128·128·96 = 1,572,864 elems · 4 = 6,291,456 B per layer and slot
      -c 8192 -np 4: K the same 8,192 cells (4 streams of 2,048), state 4 slots ×
      69 × (442,368 + 6,291,456) = 1,858,535,424 B (measured: state_cases.json).
    """
    opts = LlamaCppOptions(ctx_size=8192)
    kv = kv_cache(k3, Workload(seq_len=2048, batch=4, llamacpp=opts), ENGINES["llama.cpp"])
    assert kv.total_bytes == 24 * 8192 * 576 * 2 == 226_492_416
    per_slot = 69 * (3 * (4 - 1) * 96 * 128 * 4 + 128 * 128 * 96 * 4)
    assert kv.state_total_bytes == 4 * per_slot == 1_858_535_424
    with pytest.raises(KvcalcError, match="pass --reserve"):
        compute_buffer_bytes(k3, llama_context(opts, 2048, 4))


# ---- vLLM (vllm-project/vllm@055e47c28003156421365af985d676fc921cb075, kvcalc/engines.py
# VLLM_KIMI_K3_SOURCES): each MLA layer an MLAAttentionSpec of one 576-wide latent head, each
# KDA layer a MambaSpec of kda_state_shape (conv (kernel - 1) × 3 · heads · head_dim / tp in
# the model dtype, recurrent heads / tp × 128 × 128 fp32). Hybrid alignment: the MLA block
# starts at 64 (FlashMLA) and grows by 64 until one page covers a state page, which is padded
# to it; 24 MLA and 69 KDA layers: 69 >= 1.5 · 24, so groups of 24, the KDA ones padded to
# cdiv(69, 24) · 24 = 72 layers.


@pytest.mark.parametrize(
    ("tp", "state", "block"),
    [
        # conv 3 · 36,864 · 2 = 221,184 + recurrent 96 · 16,384 · 4 = 6,291,456;
        # 64 · cdiv(6,512,640, 64 · 1,152 = 73,728) = 64 · 89 = 5,696
        (1, 221_184 + 6_291_456, 5696),
        # conv 3 · 4,608 · 2 = 27,648 + recurrent 12 · 16,384 · 4 = 786,432;
        # 64 · cdiv(814,080, 73,728) = 64 · 12 = 768
        (8, 27_648 + 786_432, 768),
    ],
)
def test_vllm_kda_state_pages_set_the_mla_block(
    k3: ModelSpec, tp: int, state: int, block: int
) -> None:
    """The KDA state page is padded to one MLA page of `block` tokens · 1,152 B (bf16 latent,
    on every TP rank); each KDA layer holds one page a sequence."""
    kv = kv_cache(k3, Workload(seq_len=8192, tp=tp), VLLM)
    assert kv.block_size == block
    [states] = kv.state_groups
    assert states.conv_bytes_per_layer + states.recurrent_bytes_per_layer == state
    assert states.bytes_per_sequence_per_layer == block * 1152
    assert (states.count, states.padded_count) == (69, 72)


def test_vllm_per_sequence_bytes(k3: ModelSpec) -> None:
    """8,192 tokens at tp 1: cdiv(8192, 5,696) = 2 MLA blocks = 11,392 slots, so the 24 MLA
    layers hold 24 · 11,392 · 1,152 = 314,966,016 B and the 72 allocated KDA layers
    72 · 5,696 · 1,152 = 72 · 6,561,792 = 472,449,024 B. At tp 8 (768-token blocks):
    cdiv(8192, 768) = 11 blocks = 8,448 slots, 24 · 8,448 · 1,152 = 233,570,304 B of latent
    and 72 · 768 · 1,152 = 72 · 884,736 = 63,700,992 B of state a GPU."""
    tp1 = kv_cache(k3, Workload(seq_len=8192), VLLM)
    assert (tp1.per_gpu_bytes, tp1.state_per_gpu_bytes) == (314_966_016, 472_449_024)
    tp8 = kv_cache(k3, Workload(seq_len=8192, tp=8), VLLM)
    assert (tp8.per_gpu_bytes, tp8.state_per_gpu_bytes) == (233_570_304, 63_700_992)


def test_vllm_fp8_latent_takes_a_longer_block(k3: ModelSpec) -> None:
    """fp8 KV: 576 B a token, 64 · cdiv(6,512,640, 64 · 576 = 36,864) = 64 · 177 = 11,328
    tokens a block; 8,192 tokens fit one block: 24 · 11,328 · 576 = 156,598,272 B of latent,
    72 · 11,328 · 576 = 72 · 6,524,928 = 469,794,816 B of state."""
    fp8 = kv_dtype("fp8")
    kv = kv_cache(k3, Workload(seq_len=8192, k_dtype=fp8, v_dtype=fp8), VLLM)
    assert kv.block_size == 11_328
    assert (kv.per_gpu_bytes, kv.state_per_gpu_bytes) == (156_598_272, 469_794_816)


def test_vllm_prefix_caching_keeps_two_state_pages(k3: ModelSpec) -> None:
    """KimiLinearForCausalLM is IsHybrid but not SupportsMambaPrefixCaching: prefix caching
    runs mamba_cache_mode align, two state pages a KDA layer: 2 · 472,449,024 = 944,898,048 B."""
    kv = kv_cache(k3, Workload(seq_len=8192, prefix_caching=True), VLLM)
    assert kv.state_per_gpu_bytes == 2 * 472_449_024 == 944_898_048


def test_vllm_max_batch(k3: ModelSpec) -> None:
    """A 4,000,000,000,000 B device, tp 1, no reserve: usable ceil(4e12 · 0.9) =
    3,600,000,000,000 B. Published weights (test_published_weights_mxfp4_routed_experts_only,
    test_parameters_by_part_from_sglangs_modules, test_moonvit3d_tower_and_projector_parameters):
    attention 72,381,585,600 + mlp 35,217,473,536 + experts 1,447,637,976,064 + embedding and
    LM head 4 · 1,174,405,120 + norms 2 · 3,010,560 + other 2 · 1,340,416 + tower
    2 · 447,358,976 = 1,560,838,075,584 B; KV budget 2,039,161,924,416 B. A block is one page
    of each of a group's 24 layers, 24 · 6,561,792 = 157,483,008 B: 12,948 blocks. A request
    of 8,192 tokens takes 2 blocks of the MLA group and 1 of each of the 3 KDA groups, 5:
    max batch 12,948 // 5 = 2,589."""
    gpu = GpuSpec(
        name="4 TB", vendor="other", memory_bytes=4_000_000_000_000, memory_kind="user", source="t"
    )
    plan = Plan(k3, gpu, VLLM, Workload(seq_len=8192), reserve_bytes=0)
    weights = (
        72_381_585_600 + 35_217_473_536 + 1_447_637_976_064 + 4 * 1_174_405_120
        + 2 * 3_010_560 + 2 * 1_340_416 + 2 * 447_358_976
    )  # fmt: skip
    assert weights == 1_560_838_075_584
    assert budget(plan).kv_budget_bytes == 3_600_000_000_000 - weights == 2_039_161_924_416
    assert 2_039_161_924_416 // 157_483_008 == 12_948
    result = fit(plan)
    assert result.max_batch == 12_948 // 5 == 2_589
    assert result.max_concurrency == pytest.approx(12_948 / 5)


def test_vllm_fp8_ds_mla_beside_kda_state_is_refused(k3: ModelSpec) -> None:
    """vLLM's hybrid alignment sizes the page from the latent's dtype (576 B a token in fp8),
    the layers' fp8_ds_mla spec takes 656: not modelled, refused in one line."""
    ds = kv_dtype("fp8_ds_mla")
    with pytest.raises(KvcalcError, match=r"^engine vllm: fp8_ds_mla beside state layers") as err:
        kv_cache(k3, Workload(seq_len=8192, k_dtype=ds, v_dtype=ds), VLLM)
    assert "\n" not in str(err.value)
