"""The presets added in the 2026b batch, each checked against its published recipe and config.

Every expected value is derived by hand in the test from the published config.json /
hf_quant_config.json copies in tests/data/hf_configs (and hf_quant/), with the byte rules of
kvcalc/quant.py: ModelOpt NVFP4 keeps 4 bits a weight, one fp8 scale per 16 inputs of a
row and fp32 weight_scale_2 + input_scale (8 B) a matrix; W4A16_NVFP4 drops the
input_scale (4 B); ModelOpt FP8 keeps one byte a weight and two fp32 scales (8 B).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvcalc.cli import app
from kvcalc.engines import ENGINES
from kvcalc.formula import Workload, kv_cache
from kvcalc.planner import weights_per_stage
from kvcalc.presets import load_model
from kvcalc.quant import hf_linears, parse_recipe, published_weights, with_hf_quant_config

NEW_PRESETS = [
    "kimi-k2.7-code-nvfp4",
    "nemotron-3.5-lightning-30b-a3b-nvfp4",
    "glm-5.1-nvfp4",
    "gemma-4-26b-a4b-nvfp4",
    "minimax-m3-nvfp4",
    "deepseek-v4-flash-nvfp4",
]
CONFIGS = Path(__file__).parent / "data" / "hf_configs"


def _nvfp4(out_features: int, in_features: int) -> int:
    """One NVFP4 matrix: 4-bit values, an fp8 scale per 16 inputs a row, 8 B of fp32 scales."""
    return out_features * in_features // 2 + out_features * (in_features // 16) + 8


def _w4a16_nvfp4(out_features: int, in_features: int) -> int:
    """One W4A16_NVFP4 matrix: as NVFP4 without the input_scale (4 B of fp32 scales)."""
    return out_features * in_features // 2 + out_features * (in_features // 16) + 4


def _tiny_llama() -> tuple[dict[str, int], dict[str, int]]:
    """A one-layer llama config (hidden 32, 4 heads of 8, MLP 64, vocab 64) and its parts:
    attention 4 × 32 × 32, MLP 3 × 64 × 32, an untied LM head 64 × 32."""
    config = {
        "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 64,
    }  # fmt: skip
    return config, {"attention": 4 * 32 * 32, "mlp": 3 * 64 * 32, "experts": 0, "lm_head": 64 * 32}


def _mxfp8(out_features: int, in_features: int) -> int:
    """One MXFP8 matrix: an fp8 byte a weight and an e8m0 byte per 32 inputs of a row (vLLM
    ModelOptMxFp8LinearMethod.create_weights: weight [N, K] fp8, weight_scale [N, K/32] uint8)."""
    return out_features * in_features + out_features * (in_features // 32)


def test_kimi_k2_7_code_nvfp4_experts_and_mla_latent() -> None:
    """nvidia/Kimi-K2.7-Code-NVFP4 (text_config: hidden 7168, 61 layers, first_k_dense_replace
    1, 384 routed experts of moe_intermediate_size 2048; kv_lora_rank 512, qk_rope_head_dim
    64; hf_quant_config NVFP4 group 16 excluding every self_attn, shared expert, layer 0 and
    lm_head): the 60 MoE layers' experts are gate and up 2048 × 7168 and down 7168 × 2048 in
    NVFP4, the router 384 × 7168 in bf16. The MLA cache keeps the 512 + 64 latent, 2 B each,
    in every one of the 61 layers."""
    spec = load_model("kimi-k2.7-code-nvfp4")
    wq = spec.weights_quant
    assert wq is not None and wq.method == "modelopt NVFP4"
    per_expert = 2 * _nvfp4(2048, 7168) + _nvfp4(7168, 2048)
    assert per_expert == 2 * (7_340_032 + 917_504 + 8) + (7_340_032 + 917_504 + 8)
    assert wq.experts.quantized_weights == 60 * 384 * 3 * 2048 * 7168
    assert wq.experts.bytes == 60 * (384 * per_expert + 384 * 7168 * 2)
    assert wq.attention.quantized_weights == 0 and wq.lm_head is None  # excluded: bf16
    result = kv_cache(spec, Workload(seq_len=1), ENGINES["formula"])
    assert result.bytes_per_token == 61 * (512 + 64) * 2 == 70_272


def test_nemotron_3_5_lightning_reads_layers_block_type_for_its_recipe() -> None:
    """nvidia/NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4 names its 52 layers by
    layers_block_type (23 mamba, 23 moe, 6 attention); hidden 2688, Mamba 64 heads × 64,
    n_groups 8, ssm_state_size 128; 128 experts of 1856, a shared expert of 3712; vocab
    131072. Its MIXED_PRECISION quantized_layers: Mamba in_proj / out_proj FP8, expert and
    shared-expert up / down W4A16_NVFP4, lm_head W4A16_NVFP4; attention (q, k, v, o) excluded.

    Mamba in_proj rows 2·4096 + 2·8·128 + 64 = 10,304. Attention part: 23 × (10,304·2688 +
    8 + 2688·4096 + 8) in FP8 + 6 × ((4096 + 256 + 256)·2688 + 2688·4096) weights × 2 B.
    Experts: 23 × 128 × (up 1856 × 2688 + down 2688 × 1856), router 128 × 2688 bf16. LM head
    131,072 × 2,688 in W4A16_NVFP4 (never bf16). KV: 6 attention layers × 2 × 2 KV heads ×
    128 × 2 B."""
    spec = load_model("nemotron-3.5-lightning-30b-a3b-nvfp4")
    wq = spec.weights_quant
    assert wq is not None and wq.method == "modelopt MIXED_PRECISION"
    in_proj = 2 * 64 * 64 + 2 * 8 * 128 + 64
    assert in_proj == 10_304
    attention_fp8 = 23 * (in_proj * 2688 + 8 + 2688 * 4096 + 8)
    attention_bf16 = 6 * ((4096 + 256 + 256) * 2688 + 2688 * 4096) * 2
    assert wq.attention.bytes == attention_fp8 + attention_bf16
    assert wq.attention.quantized_weights == 23 * (in_proj * 2688 + 2688 * 4096)
    up, down = _w4a16_nvfp4(1856, 2688), _w4a16_nvfp4(2688, 1856)
    assert up == down == 2_494_464 + 311_808 + 4
    experts = 23 * (128 * (up + down) + 128 * 2688 * 2)
    assert wq.experts.bytes == experts
    mlp = 23 * (_w4a16_nvfp4(3712, 2688) + _w4a16_nvfp4(2688, 3712))
    assert wq.mlp.bytes == mlp
    lm_head = _w4a16_nvfp4(131_072, 2688)
    assert lm_head == 176_160_768 + 22_020_096 + 4
    assert wq.lm_head is not None and wq.lm_head.bytes == lm_head
    # one GPU holds it all: the parts as published, the LM head in W4A16_NVFP4; embedding
    # 131,072 × 2,688, norms 53 × 2,688 and the Mamba 'other' 23 × (conv1d 6,144 × 4 + bias
    # 6,144 + A_log, D, dt_bias 3 × 64 + norm 4,096) in bf16
    kept = 131_072 * 2688 + 53 * 2688 + 23 * (6144 * 4 + 6144 + 3 * 64 + 4096)
    total = attention_fp8 + attention_bf16 + experts + mlp + lm_head + 2 * kept
    assert weights_per_stage(spec, ENGINES["vllm"], 1, 1, None) == (total,)
    result = kv_cache(spec, Workload(seq_len=1), ENGINES["formula"])
    assert result.bytes_per_token == 6 * 2 * 2 * 128 * 2 == 6_144


def test_glm_5_1_nvfp4_experts_and_dsa_latent() -> None:
    """nvidia/GLM-5.1-NVFP4 (hidden 6144, 78 layers, mlp_layer_types 3 dense then 75 sparse,
    256 routed experts of moe_intermediate_size 2048; kv_lora_rank 512, qk_rope_head_dim 64,
    index_head_dim 128, indexer_types all full; NVFP4 group 16 excluding lm_head, layers 0-2,
    every self_attn and shared expert): each MoE layer's experts gate and up 2048 × 6144 and
    down 6144 × 2048 in NVFP4, its router 256 × 6144 bf16. Each layer caches the 512 + 64
    latent and one 128-wide indexer key, 2 B each."""
    config = json.loads((CONFIGS / "glm-5.1-nvfp4.json").read_text())
    assert config["mlp_layer_types"] == ["dense"] * 3 + ["sparse"] * 75  # = first_k_dense 3
    assert config["indexer_types"] == ["full"] * 78
    spec = load_model("glm-5.1-nvfp4")
    wq = spec.weights_quant
    assert wq is not None and wq.method == "modelopt NVFP4" and wq.lm_head is None
    per_expert = 2 * _nvfp4(2048, 6144) + _nvfp4(6144, 2048)
    assert per_expert == 2 * (6_291_456 + 786_432 + 8) + (6_291_456 + 786_432 + 8)
    assert wq.experts.bytes == 75 * (256 * per_expert + 256 * 6144 * 2)
    assert wq.attention.quantized_weights == 0 and wq.mlp.quantized_weights == 0
    result = kv_cache(spec, Workload(seq_len=1), ENGINES["formula"])
    assert result.bytes_per_token == 78 * ((512 + 64) * 2 + 128 * 2) == 109_824


def test_gemma_4_26b_a4b_nvfp4_sizes_its_moe_experts() -> None:
    """nvidia/Gemma-4-26B-A4B-NVFP4 (text_config: hidden 2816, 30 layers, enable_moe_block,
    128 experts of moe_intermediate_size 704 beside a dense MLP of 2112; 16 heads; sliding
    layers 8 KV heads × 256, every 6th layer global with 2 KV heads × 512 and attention_k_eq_v
    (K only); sliding_window 1024; NVFP4 group 16 excluding every self_attn, mlp, router, the
    vision tower and lm_head): each layer's 128 experts ship as gate_proj and up_proj 704 ×
    2816 and down_proj 2816 × 704 in NVFP4 (vLLM gemma4.py expert_params_mapping), the router
    proj 128 × 2816, its scale 2816 and per_expert_scale 128 in bf16. KV per token at a seq
    within the window: 25 sliding layers × 2 (K, V) × 8 × 256 × 2 B + 5 global layers × 2 ×
    2 × 512 × 2 B: attention_k_eq_v drops v_proj, not V, whose states are the k_proj output
    under v_norm, cached beside K (transformers 5.25 models/gemma4/modeling_gemma4.py
    Gemma4TextAttention.forward: value_states = key_states, v_norm, cache.update(key, value))."""
    spec = load_model("gemma-4-26b-a4b-nvfp4")
    wq = spec.weights_quant
    assert wq is not None and wq.method == "modelopt NVFP4"
    per_expert = 2 * _nvfp4(704, 2816) + _nvfp4(2816, 704)
    assert per_expert == 2 * (991_232 + 123_904 + 8) + (991_232 + 123_904 + 8)
    assert wq.experts.quantized_weights == 30 * 128 * 3 * 704 * 2816
    assert wq.experts.bytes == 30 * (128 * per_expert + (128 * 2816 + 2816 + 128) * 2)
    assert wq.mlp.bytes == 30 * 3 * 2112 * 2816 * 2  # dense MLP excluded: bf16
    assert wq.attention.quantized_weights == 0 and wq.lm_head is None
    assert spec.tower is not None and not spec.tower.quantized  # model.vision_tower* excluded
    result = kv_cache(spec, Workload(seq_len=1), ENGINES["formula"])
    assert result.bytes_per_token == 25 * 2 * 8 * 256 * 2 + 5 * 2 * 2 * 512 * 2 == 225_280


def test_minimax_m3_nvfp4_mixes_mxfp8_and_nvfp4() -> None:
    """nvidia/MiniMax-M3-NVFP4 (text_config: hidden 6144, 60 layers, 64 heads / 4 KV heads of
    128, moe_layer_freq and sparse_attention_freq 0 for layers 0-2 then 1; 128 experts of
    intermediate_size 3072, a shared expert of 3072, dense_intermediate_size 12288; indexer 4
    heads × 128). Its MIXED_PRECISION quantized_layers: q/k/v/o, index_q_proj / index_k_proj,
    the dense and shared MLPs MXFP8, experts w1/w3/w2 NVFP4; gate and lm_head excluded.

    Attention: 60 × (q 8192 × 6144, k and v 512 × 6144, o 6144 × 8192 in MXFP8 + q/k norms
    2 × 128 bf16) + 57 × (index_q 512 × 6144, index_k 128 × 6144 in MXFP8 + 2 × 128 norms).
    KV: 60 layers × 2 × 4 × 128 × 2 B + 57 sparse layers × one 128-wide bf16 indexer key."""
    spec = load_model("minimax-m3-nvfp4")
    wq = spec.weights_quant
    assert wq is not None and wq.method == "modelopt MIXED_PRECISION" and wq.lm_head is None
    assert _mxfp8(8192, 6144) == 50_331_648 + 1_572_864
    attention = 60 * (
        _mxfp8(8192, 6144) + 2 * _mxfp8(512, 6144) + _mxfp8(6144, 8192) + 2 * 128 * 2
    ) + 57 * (_mxfp8(512, 6144) + _mxfp8(128, 6144) + 2 * 128 * 2)
    assert wq.attention.bytes == attention
    mlp = 3 * (2 * _mxfp8(12288, 6144) + _mxfp8(6144, 12288))
    mlp += 57 * (2 * _mxfp8(3072, 6144) + _mxfp8(6144, 3072))
    assert wq.mlp.bytes == mlp
    per_expert = 2 * _nvfp4(3072, 6144) + _nvfp4(6144, 3072)
    assert wq.experts.bytes == 57 * (128 * per_expert + 128 * 6144 * 2)
    result = kv_cache(spec, Workload(seq_len=1), ENGINES["formula"])
    assert result.bytes_per_token == 60 * 2 * 4 * 128 * 2 + 57 * 128 * 2 == 137_472


def test_deepseek_v4_flash_nvfp4_experts_are_nvfp4_the_rest_the_fp8_release() -> None:
    """nvidia/DeepSeek-V4-Flash-NVFP4 (hidden 4096, 43 layers, 256 routed experts of
    moe_intermediate_size 2048, num_hash_layers 3, num_experts_per_tok 6, vocab 129280;
    quantization_config quant_method fp8, 128 × 128 blocks, scale_fmt ue8m0, moe_quant_algo
    NVFP4): vLLM's DeepseekV4FP8Config gives the routed experts ModelOptNvFp4FusedMoE, each
    expert's w1 and w3 2048 × 4096 and w2 4096 × 2048 NVFP4; the routers 256 × 4096 bf16,
    the 3 hash layers' int64 tid2eid tables of 129,280 × 6 and the other 40 layers' fp32
    router biases of 256. Attention and the shared experts stay the fp8 release's, so those
    parts are the bf16-named preset's (deepseek-v4-flash) to the byte.

    KV under hf at seq 1 (docs/deepseek-v4.md): 2 sliding layers × 2 × 512 × 2 B, 20 HCA
    layers × (1,024 + 2 × 512 × 2), 21 CSA layers × (1,024 + 2 × (1,024 + 256) × 2); past
    the window each 128 tokens add 128 × (21 × (512 + 128) × 2 / 4 + 20 × 512 × 2 / 128)."""
    spec = load_model("deepseek-v4-flash-nvfp4")
    wq = spec.weights_quant
    assert wq is not None and wq.method == "fp8 + nvfp4 experts"
    per_expert = 2 * _nvfp4(2048, 4096) + _nvfp4(4096, 2048)
    assert per_expert == 3 * (4_194_304 + 524_288 + 8)
    buffers = 3 * 129_280 * 6 * 8 + 40 * 256 * 4
    assert wq.experts.bytes == 43 * (256 * per_expert + 256 * 4096 * 2) + buffers
    fp8 = load_model("deepseek-v4-flash").weights_quant
    assert fp8 is not None
    assert (wq.attention, wq.mlp, wq.other) == (fp8.attention, fp8.mlp, fp8.other)
    hf = ENGINES["hf"]
    one = kv_cache(spec, Workload(seq_len=1), hf).total_bytes
    assert one == 2 * 2 * 512 * 2 + 20 * (1024 + 2 * 512 * 2) + 21 * (1024 + 2 * 1280 * 2)
    grow = kv_cache(spec, Workload(seq_len=4096 + 128), hf).total_bytes
    assert grow - kv_cache(spec, Workload(seq_len=4096), hf).total_bytes == 128 * 6_880
    assert 21 * (512 + 128) * 2 // 4 + 20 * 512 * 2 // 128 == 6_880


@pytest.mark.parametrize(
    ("stem", "family", "prefix"),
    [
        ("nemotron-3.5-lightning-30b-a3b-nvfp4", "nemotron_h", "backbone."),
        ("minimax-m3-nvfp4", "minimax_m3", "language_model.model."),
    ],
)
def test_every_module_a_mixed_recipe_lists_is_a_linear_kvcalc_sizes(
    stem: str, family: str, prefix: str
) -> None:
    """Each module of a MIXED_PRECISION quantized_layers table (experts.N standing for all
    of a layer's experts) is a linear kvcalc lists and gives that table's format, and no
    other linear is quantised: the layer kinds are read as the checkpoint has them."""
    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    text = config.get("text_config", config)
    q = json.loads((CONFIGS / "hf_quant" / f"{stem}.json").read_text())["quantization"]
    recipe = parse_recipe({"quant_method": "modelopt", **q})
    linears = hf_linears(text, family)
    assert linears is not None
    sized = {}
    for linear in linears:
        fmt = recipe.format_for(linear)
        if fmt is not None:
            sized[prefix + linear.name] = fmt.name
    algo_names = {"FP8": "fp8 (per-tensor", "MXFP8": "mxfp8", "NVFP4": "nvfp4 (fp8",
                  "W4A16_NVFP4": "nvfp4 weight-only"}  # fmt: skip
    listed: dict[str, str] = {}
    for name, entry in q["quantized_layers"].items():
        parts = name.split(".")
        if "experts" in parts and parts[parts.index("experts") + 1].isdigit():
            parts[parts.index("experts") + 1] = "0"
        listed[".".join(parts)] = algo_names[entry["quant_algo"]]
    listed.pop("lm_head", None)  # sized apart (weights_quant.lm_head)
    assert set(sized) == set(listed)
    assert all(sized[name].startswith(listed[name]) for name in listed)


def test_hf_quant_config_does_not_replace_another_methods_recipe() -> None:
    """nvidia/DeepSeek-V4-Flash-NVFP4's config.json carries quant_method fp8 (with
    moe_quant_algo NVFP4): its hf_quant_config.json (ModelOpt MIXED_PRECISION) is not the
    recipe, since vLLM's get_quant_config reads config.json's quantization_config first; a
    config.json with a ModelOpt quantization_config or none takes the file's recipe."""
    config = json.loads((CONFIGS / "deepseek-v4-flash-nvfp4.json").read_text())
    hf_quant = json.loads((CONFIGS / "hf_quant" / "deepseek-v4-flash-nvfp4.json").read_text())
    kept = with_hf_quant_config(config, hf_quant)["quantization_config"]
    assert kept["quant_method"] == "fp8" and kept["moe_quant_algo"] == "NVFP4"
    bare = {k: v for k, v in config.items() if k != "quantization_config"}
    taken = with_hf_quant_config(bare, hf_quant)["quantization_config"]
    assert taken["quant_method"] == "modelopt" and taken["quant_algo"] == "MIXED_PRECISION"


def test_qwen3_6_27b_lm_head_is_sized_as_its_recipe_lists_it() -> None:
    """nvidia/Qwen3.6-27B-NVFP4's quantized_layers lists lm_head W4A16_NVFP4 (vocab 248,320 ×
    hidden 5,120): 635,699,200 B of 4-bit values + 248,320 × 320 fp8 scales + 4 B, not
    2 × 1,271,398,400 B of bf16 as kvcalc counted it before."""
    wq = load_model("qwen3.6-27b").weights_quant
    assert wq is not None and wq.lm_head is not None
    assert wq.lm_head.weights == 248_320 * 5120
    assert wq.lm_head.bytes == 248_320 * 5120 // 2 + 248_320 * 320 + 4 == 715_161_604
    assert "LM head in nvfp4 weight-only" in wq.summary


def test_lm_head_exclusion_under_a_multimodal_wrapper_is_honoured() -> None:
    """Kimi-K2.5-style exclude lists name the head 'language_model.lm_head': it stays in the
    model dtype; with no exclusion a ModelOpt NVFP4 recipe quantises it (vLLM
    ModelOptQuantConfigBase.get_quant_method gives ParallelLMHead the linear method)."""
    config, parts = _tiny_llama()
    for ignore, quantised in ((["language_model.lm_head"], False), ([], True)):
        q = {"quant_method": "modelopt", "quant_algo": "NVFP4", "exclude_modules": ignore}
        wq, warnings = published_weights({"quantization_config": q}, config, "llama", parts, 2)
        assert not warnings and wq is not None
        assert (wq.lm_head is not None) is quantised
        if wq.lm_head is not None:
            assert wq.lm_head.bytes == 64 * 32 // 2 + 64 * 2 + 8


@pytest.mark.parametrize(
    ("q", "why"),
    [
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "lm_head": True}, "lm_head: true"),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "g": {
                        "targets": ["Linear"],
                        "format": "pack-quantized",
                        "weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                    "group_size": 32},
                    }
                },
                "ignore": [],
            },
            "leaves out lm_head",
        ),
    ],
)  # fmt: skip
def test_an_lm_head_quantised_in_a_way_not_sized_warns(q: dict[str, object], why: str) -> None:
    """A recipe that may quantise the LM head in a layout kvcalc does not size gives the
    upper-bound warning naming it, never a silent bf16 LM head."""
    config, parts = _tiny_llama()
    wq, warnings = published_weights({"quantization_config": q}, config, "llama", parts, 2)
    assert wq is None
    assert len(warnings) == 1 and "upper bound" in warnings[0] and why in warnings[0]


def test_a_modelopt_recipe_quantising_a_tied_lm_head_warns() -> None:
    """A ModelOpt NVFP4 recipe that leaves lm_head out of exclude_modules on a model whose
    head is tied to the embedding (no lm_head parameters) warns, naming the tie."""
    config, parts = _tiny_llama()
    q = {"quant_method": "modelopt", "quant_algo": "NVFP4", "exclude_modules": []}
    tied = {**parts, "lm_head": 0}
    wq, warnings = published_weights({"quantization_config": q}, config, "llama", tied, 2)
    assert wq is None
    assert len(warnings) == 1 and "upper bound" in warnings[0] and "tied" in warnings[0]


@pytest.mark.parametrize("engine", ["hf", "vllm", "sglang", "trtllm", "llamacpp"])
@pytest.mark.parametrize("name", NEW_PRESETS)
def test_new_presets_answer_or_refuse_in_one_line(name: str, engine: str) -> None:
    """`kvcalc calc <preset> --engine E` answers (exit 0) or refuses with one error line
    (exit 2), never a traceback."""
    result = CliRunner().invoke(app, ["calc", name, "--engine", engine])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.stderr.count("error:") == 1
