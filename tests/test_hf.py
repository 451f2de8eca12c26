"""Hugging Face config.json import: key mapping per family, errors, and the YAML round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from kvcalc import hf
from kvcalc.dtypes import kv_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.specs import ModelSpec

DATA = Path(__file__).parent / "data"
PUBLISHED = sorted((DATA / "hf_configs").glob("*.json"))
SYNTHETIC = sorted((DATA / "hf_synthetic").glob("*.json"))


def load(path: Path) -> ModelSpec:
    # the one synthetic config of an unknown family is read the standard way on purpose
    assume = path.stem == "unknown_llama_like"
    return hf.import_config(
        json.loads(path.read_text()), source="test", assume_standard=assume
    ).spec


def per_token_bf16(spec: ModelSpec) -> int:
    one = Workload(seq_len=1, k_dtype=kv_dtype("bf16"), v_dtype=kv_dtype("bf16"))
    return kv_cache(spec, one, ENGINES["formula"]).bytes_per_token


@pytest.mark.parametrize(
    ("name", "kind", "per_token", "pattern"),
    [
        # head_dim = 256/8 = 32; 2 KV heads: 2·2·32·2 B · 4 layers
        ("qwen2_moe", "gqa", 2 * 2 * 32 * 2 * 4, None),
        # one KV head of head_dim 64 (read, not derived): 2·64·2 B · 3 layers
        ("gemma", "mqa", 2 * 64 * 2 * 3, None),
        # multi_query: one head of 256/8 = 32: 2·32·2 B · 3 layers
        ("gpt_bigcode", "mqa", 2 * 32 * 2 * 3, None),
        # no num_key_value_heads: MHA, 8 heads of 32: 2·8·32·2 B · 3 layers
        ("gpt_neox", "mha", 2 * 8 * 32 * 2 * 3, None),
        # sliding_window_pattern 4: three sliding layers, then one full
        ("cohere2", "gqa", 2 * 2 * 32 * 2 * 8, ["sliding", "sliding", "sliding", "full"]),
        # use_sliding_window with max_window_layers 2: layers 0-1 full, 2-3 sliding
        ("qwen2_swa", "gqa", 2 * 2 * 32 * 2 * 4, ["full", "full", "sliding", "sliding"]),
        ("mistral_noswa", "mha", 2 * 8 * 32 * 2 * 2, None),
        # OLMo 3, layer_types given: 2 KV heads of 256/8 = 32 over 8 layers, 3 sliding : 1 full
        ("olmo3", "gqa", 2 * 2 * 32 * 2 * 8, ["sliding", "sliding", "sliding", "full"]),
        # OLMo 3, no layer_types: Olmo3Config's default 3 sliding : 1 full, MHA 8 heads of 32
        ("olmo3_defaults", "mha", 2 * 8 * 32 * 2 * 4, ["sliding", "sliding", "sliding", "full"]),
        # Ministral 3 inside mistral3: 2 KV heads of head_dim 64 over 3 layers, all sliding
        ("mistral3_tied", "gqa", 2 * 2 * 64 * 2 * 3, ["sliding"]),
    ],
)
def test_family_mapping(name: str, kind: str, per_token: int, pattern: list[str] | None) -> None:
    """Each family's keys map to the right layout, window pattern and bytes per token."""
    spec = load(DATA / "hf_synthetic" / f"{name}.json")
    assert spec.attention.kind == kind
    assert per_token_bf16(spec) == per_token
    assert (spec.layers.pattern if spec.layers else None) == pattern


def test_gpt_neox_parameter_count() -> None:
    """GPT-NeoX (hidden 256, 3 layers, d_ff 1024, vocab 1000, untied), with biases:
    per layer 2 LayerNorms 1,024 + qkv 196,608+768 + dense 65,536+256 + MLP
    (262,144+1,024) + (262,144+256) = 789,760; ×3 + final norm 512 + 2·256,000 = 2,881,792."""
    assert load(DATA / "hf_synthetic" / "gpt_neox.json").n_params == 2_881_792


def test_olmo3_window_defaults_and_parameter_count() -> None:
    """OLMo 3 (transformers Olmo3Config): sliding_window 256 as given, 4096 when the key is
    absent. Params of the layer_types config (hidden 256, 8 layers, 8 heads of 32, 2 KV
    heads, d_ff 512, vocab 1000, untied): per layer q and o 256·256 = 65,536 each, k and v
    2·256·64 = 32,768, q_norm over all heads 256 and k_norm 64, MLP 3·256·512 = 393,216,
    post-attention and post-feedforward norms 2·256: 557,888; ×8 + final norm 256 +
    2·256,000 = 4,975,360."""
    given = load(DATA / "hf_synthetic" / "olmo3.json")
    assert given.layers is not None and given.layers.sliding_window == 256
    assert given.n_params == 8 * 557_888 + 256 + 2 * 256_000 == 4_975_360
    default = load(DATA / "hf_synthetic" / "olmo3_defaults.json")
    assert default.layers is not None and default.layers.sliding_window == 4096


def test_olmo3_refuses_sliding_keys_it_does_not_have() -> None:
    """Olmo3Config has no use_sliding_window / max_window_layers: a config setting one is
    refused rather than read as Qwen2's would be."""
    config = json.loads((DATA / "hf_synthetic" / "olmo3.json").read_text())
    with pytest.raises(KvcalcError, match="'use_sliding_window' changes what a olmo3 model"):
        hf.import_config({**config, "use_sliding_window": True}, source="test")


def test_olmo_31_32b_from_published_config() -> None:
    """allenai/Olmo-3.1-32B-Instruct: 64 layers in layer_types, 3 sliding (window 4096) to 1
    full; 8 KV heads of 5,120/40 = 128: 2·8·128·2 = 4,096 B per layer per token. At 8,192
    tokens the 16 full layers hold 8,192 tokens and the 48 sliding ones 4,096:
    4,096·(16·8,192 + 48·4,096) = 1,342,177,280 B. Params: embedding and lm_head
    100,278·5,120 = 513,423,360 each; per layer q and o 5,120·5,120 = 26,214,400 each, k and
    v 2·5,120·1,024 = 10,485,760, q_norm 5,120 and k_norm 1,024 (over all heads), MLP
    3·5,120·27,648 = 424,673,280, two norms 10,240: 487,604,224 · 64 = 31,206,670,336;
    final norm 5,120; total 32,233,522,176."""
    spec = load(DATA / "hf_configs" / "olmo-3.1-32b.json")
    assert spec.family == "olmo3"
    assert spec.layers is not None and spec.layers.sliding_window == 4096
    assert spec.layers.pattern == ["sliding", "sliding", "sliding", "full"]
    at_8k = Workload(seq_len=8192, k_dtype=kv_dtype("bf16"), v_dtype=kv_dtype("bf16"))
    total = kv_cache(spec, at_8k, ENGINES["formula"]).total_bytes
    assert total == 4096 * (16 * 8192 + 48 * 4096) == 1_342_177_280
    assert spec.n_params == 2 * 513_423_360 + 64 * 487_604_224 + 5_120 == 32_233_522_176


def test_devstral_2_123b_from_published_config() -> None:
    """mistralai/Devstral-2-123B-Instruct-2512 (flat ministral3): 88 layers, 8 KV heads of 128,
    sliding_window null: 2·8·128·2 B · 88 = 360,448 B/token. Params: embedding and lm_head
    131,072·12,288 = 1,610,612,736 each; per layer q and o 12,288·12,288 = 150,994,944 each,
    k and v 2·12,288·1,024 = 25,165,824, MLP 3·12,288·28,672 = 1,056,964,608, two norms
    24,576: 1,384,144,896 · 88 = 121,804,750,848; final norm 12,288; total 125,025,988,608.
    fp8 per tensor, static: attention 88·327,155,712 = 28,789,702,656 one-byte weights plus a
    fp32 weight and input scale (8 B) on each of 88·4 linears = 2,816 B."""
    spec = load(DATA / "hf_configs" / "devstral-2-123b.json")
    assert spec.family == "ministral3" and spec.layers is None
    assert per_token_bf16(spec) == 2 * 8 * 128 * 2 * 88 == 360_448
    assert spec.n_params == 2 * 1_610_612_736 + 88 * 1_384_144_896 + 12_288 == 125_025_988_608
    assert spec.weights_quant is not None
    assert spec.weights_quant.attention.bytes == 28_789_702_656 + 88 * 4 * 8


def test_devstral_small_2_24b_text_model_inside_mistral3() -> None:
    """mistralai/Devstral-Small-2-24B-Instruct-2512: model_type mistral3 around a ministral3
    text_config (40 layers, 8 KV heads of 128): 2·8·128·2 B · 40 = 163,840 B/token; the outer
    tie_word_embeddings false keeps lm_head, so the text model counts as Mistral-Small-24B's:
    2·671,088,640 + 2,097,152,000 + 20,132,659,200 + 414,720 = 23,572,403,200."""
    spec = load(DATA / "hf_configs" / "devstral-small-2-24b.json")
    assert spec.family == "ministral3"
    assert spec.architecture == "Mistral3ForConditionalGeneration"
    assert per_token_bf16(spec) == 163_840
    assert spec.params is not None and spec.params.lm_head == 671_088_640
    assert spec.n_params == 23_572_403_200


def test_mistral3_lm_head_is_tied_by_the_outer_config_default_true() -> None:
    """Mistral3ForConditionalGeneration ties lm_head by its own config's tie_word_embeddings,
    which Mistral3Config defaults to True (transformers models/mistral3; modeling_utils
    get_expanded_tied_weights_keys reads self.config): the synthetic config (hidden 256, 3
    layers, 8 heads and 2 KV heads of 64, d_ff 512, vocab 1000) has no outer key, so the
    embedding 256,000 is counted once: per layer 256·512 + 2·256·128 + 512·256 = 327,680
    and MLP 3·256·512 = 393,216; ×3 + norms 3·2·256 + 256 + 256,000 = 2,420,480."""
    config = json.loads((DATA / "hf_synthetic" / "mistral3_tied.json").read_text())
    tied = hf.import_config(config, source="test").spec
    assert tied.tie_word_embeddings and tied.params is not None and tied.params.lm_head == 0
    assert tied.n_params == 3 * (327_680 + 393_216) + 3 * 2 * 256 + 256 + 256_000 == 2_420_480
    untied = hf.import_config({**config, "tie_word_embeddings": False}, source="test").spec
    assert untied.n_params == 2_420_480 + 256_000


def test_ministral3_refuses_layer_types() -> None:
    """Ministral3Config has no layer_types (it warns and keeps the key): refused, not read."""
    config = json.loads((DATA / "hf_configs" / "devstral-2-123b.json").read_text())
    with pytest.raises(KvcalcError, match="'layer_types' changes what a ministral3 model"):
        hf.import_config({**config, "layer_types": ["full_attention"] * 88}, source="test")


def test_llama_31_8b_from_published_config() -> None:
    """meta-llama/Llama-3.1-8B: 32 layers, 8 KV heads of 128: 131,072 B/token; 8,030,261,248 params."""
    spec = load(DATA / "hf_configs" / "llama-3.1-8b.json")
    assert per_token_bf16(spec) == 131_072
    assert spec.n_params == 8_030_261_248


def test_deepseek_v3_from_published_config() -> None:
    """deepseek-ai/DeepSeek-V3: MLA with kv_lora_rank 512 + qk_rope_head_dim 64 over 61 layers."""
    spec = load(DATA / "hf_configs" / "deepseek-v3.json")
    assert spec.attention.kind == "mla"
    assert per_token_bf16(spec) == 576 * 2 * 61


def test_mistral_small_24b_from_published_config() -> None:
    """mistralai/Mistral-Small-24B-Instruct-2501: 40 layers, 8 KV heads of head_dim 128 (read:
    5,120/32 would be 160), sliding_window null: 2·8·128·2 B · 40 = 163,840 B/token. Params:
    embedding and lm_head 131,072·5,120 = 671,088,640 each; per layer q 5,120·4,096 and o
    4,096·5,120 (20,971,520 each) + k, v 2·5,120·1,024 = 10,485,760: 52,428,800 · 40 =
    2,097,152,000; MLP 3·5,120·32,768 = 503,316,480 · 40 = 20,132,659,200; norms 40·2·5,120 +
    5,120 = 414,720; total 23,572,403,200, the safetensors index's 47,144,806,400 B / 2."""
    spec = load(DATA / "hf_configs" / "mistral-small-24b-2501.json")
    assert spec.layers is None
    assert per_token_bf16(spec) == 2 * 8 * 128 * 2 * 40 == 163_840
    assert spec.n_params == 2 * 671_088_640 + 2_097_152_000 + 20_132_659_200 + 414_720
    assert spec.n_params == 47_144_806_400 // 2


def test_gemma3_text_config_nested_in_multimodal() -> None:
    """Gemma-3-27B's text_config (62 layers, 16 KV heads of 128, 5 sliding W=1024 : 1 full) is read,
    with transformers' default vocab 262,208 where the published file leaves it out."""
    spec = load(DATA / "hf_configs" / "gemma-3-27b.json")
    assert spec.n_layers == 62
    assert spec.vocab_size == 262_208
    assert spec.layers is not None and spec.layers.sliding_window == 1024
    assert spec.layers.pattern == ["sliding"] * 5 + ["full"]
    assert per_token_bf16(spec) == 2 * 16 * 128 * 2 * 62


def test_qwen3_vl_32b_text_model_from_published_config() -> None:
    """Qwen/Qwen3-VL-32B-Instruct's text_config (qwen3_vl_text): 64 layers, 8 KV heads of 128,
    all full: 2·8·128·2 B · 64 = 262,144 B/token. Params (untied; the vision tower is spec.tower):
    embedding and lm_head 151,936·5,120 = 777,912,320 each; per layer q 5,120·8,192 =
    41,943,040, k+v 2·5,120·1,024 = 10,485,760, o 41,943,040, q/k norm 2·128 = 256, so
    attention 94,372,096 · 64 = 6,039,814,144; MLP 3·5,120·25,600 = 393,216,000 · 64 =
    25,165,824,000; norms 64·2·5,120 + 5,120 = 660,480; total 32,762,123,264."""
    spec = load(DATA / "hf_configs" / "qwen3-vl-32b.json")
    assert spec.family == "qwen3_vl_text"
    assert spec.architecture == "Qwen3VLForConditionalGeneration"
    assert spec.layers is None
    assert per_token_bf16(spec) == 2 * 8 * 128 * 2 * 64 == 262_144
    assert spec.n_params == 2 * 777_912_320 + 6_039_814_144 + 25_165_824_000 + 660_480
    assert spec.n_params == 32_762_123_264


def test_qwen3_vl_235b_moe_text_model_from_published_config() -> None:
    """Qwen/Qwen3-VL-235B-A22B-Instruct's text_config (qwen3_vl_moe_text): 94 layers, 4 KV heads
    of 128: 2·4·128·2 B · 94 = 192,512 B/token. Params (untied; the vision tower is spec.tower):
    embedding and lm_head 151,936·4,096 = 622,329,856 each; per layer attention 4,096·8,192 ·2
    + 2·4,096·512 + 256 = 71,303,424 (· 94 = 6,702,521,856); 128 experts 3·4,096·1,536 each
    plus router 4,096·128: 2,416,443,392 (· 94 = 227,145,678,848); norms 94·2·4,096 + 4,096 =
    774,144; total 235,093,634,560."""
    spec = load(DATA / "hf_configs" / "qwen3-vl-235b-a22b.json")
    assert spec.family == "qwen3_vl_moe_text"
    assert per_token_bf16(spec) == 2 * 4 * 128 * 2 * 94 == 192_512
    assert spec.moe is not None and (spec.moe.n_experts, spec.moe.n_experts_per_token) == (128, 8)
    assert spec.params is not None and spec.params.experts == 94 * (
        128 * 3 * 4096 * 1536 + 4096 * 128
    )
    assert spec.n_params == 2 * 622_329_856 + 6_702_521_856 + 227_145_678_848 + 774_144
    assert spec.n_params == 235_093_634_560


def test_qwen3_vl_8b_vision_tower_from_published_config() -> None:
    """Qwen/Qwen3-VL-8B-Instruct's vision_config: hidden h 1,152, intermediate i 4,304, depth
    27, in_channels 3, temporal_patch_size 2, patch_size 16, 2,304 position embeddings,
    spatial_merge_size 2 (H = 1,152·2² = 4,608), out_hidden_size o 4,096, 3 deepstack indexes.
      patch embed 3·2·16²·1,152 + 1,152 = 1,770,624; position embedding 2,304·1,152 = 2,654,208
      block: norms 4·1,152 = 4,608, qkv 3·1,152² + 3·1,152 = 3,984,768, proj 1,152² + 1,152 =
        1,328,256, fc1 1,152·4,304 + 4,304 = 4,962,512, fc2 4,304·1,152 + 1,152 = 4,959,360:
        15,239,504, · 27 = 411,466,608
      merger: norm 2·1,152 = 2,304, fc1 4,608² + 4,608 = 21,238,272, fc2 4,608·4,096 + 4,096 =
        18,878,464: 40,119,040; each deepstack merger: norm 2·4,608 = 9,216 instead: 40,125,952
      total 1,770,624 + 2,654,208 + 411,466,608 + 40,119,040 + 3·40,125,952 = 576,388,336.
    Whole on every tp rank: embeddings 4,424,832, per block norms and the proj / fc2 biases
    6·1,152 = 6,912 (· 27 = 186,624), merger norm + fc2 bias 2,304 + 4,096 = 6,400, deepstack
    9,216 + 4,096 = 13,312 each (39,936): 4,657,792. n_params stays the language model's."""
    spec = load(DATA / "hf_configs" / "qwen3-vl-8b.json")
    assert spec.tower is not None
    assert (
        spec.tower.params == 1_770_624 + 2_654_208 + 27 * 15_239_504 + 40_119_040 + 3 * 40_125_952
    )
    assert spec.tower.params == 576_388_336
    assert spec.tower.replicated == 4_424_832 + 27 * 6_912 + 6_400 + 3 * 13_312 == 4_657_792
    assert spec.params is not None and spec.n_params == spec.params.total


def test_qwen3_vl_tower_is_left_out_when_not_understood_or_quantised() -> None:
    """An unknown vision_config key is refused in one line naming it; a checkpoint published
    quantised keeps its tower uncounted (whether the recipe quantises it is not read)."""
    config = json.loads((DATA / "hf_configs" / "qwen3-vl-8b.json").read_text())
    odd = {**config, "vision_config": {**config["vision_config"], "window_size": 112}}
    with pytest.raises(KvcalcError, match="vision_config key 'window_size' is not understood"):
        hf.import_config(odd, source="t")
    fp8 = {
        **config,
        "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]},
    }
    assert hf.import_config(fp8, source="t").spec.tower is None
    assert load(DATA / "hf_configs" / "gemma-3-1b.json").tower is None  # text-only Gemma 3


def test_qwen3_5_27b_vision_tower_from_published_config() -> None:
    """Qwen/Qwen3.5-27B's vision_config is Qwen3-VL-8B's (h 1,152, i 4,304, depth 27, patch
    16, temporal 2, 2,304 positions, merge 2) with out_hidden_size o 5,120 and no deepstack
    mergers (deepstack_visual_indexes []; transformers' Qwen3_5VisionModel deletes them):
      patch embed 1,770,624, position embedding 2,654,208, blocks 27·15,239,504 (as Qwen3-VL)
      merger: norm 2,304, fc1 4,608² + 4,608 = 21,238,272, fc2 4,608·5,120 + 5,120 =
        23,598,080: 44,838,656
      total 1,770,624 + 2,654,208 + 411,466,608 + 44,838,656 = 460,730,096.
    Whole on every tp rank: 4,424,832 + 27·6,912 + (2,304 + 5,120) = 4,618,880."""
    spec = load(DATA / "hf_configs" / "qwen3.5-27b.json")
    assert spec.tower is not None and spec.multimodal
    assert spec.tower.params == 1_770_624 + 2_654_208 + 27 * 15_239_504 + 44_838_656
    assert spec.tower.params == 460_730_096
    assert spec.tower.replicated == 4_424_832 + 27 * 6_912 + 7_424 == 4_618_880
    config = json.loads((DATA / "hf_configs" / "qwen3.5-27b.json").read_text())
    odd = {**config, "vision_config": {**config["vision_config"], "deepstack_visual_indexes": [8]}}
    with pytest.raises(KvcalcError, match="deepstack_visual_indexes is \\[8\\]"):
        hf.import_config(odd, source="t")


@pytest.mark.parametrize(
    ("stem", "why"),
    [
        ("qwen3.5-397b-a17b-nvfp4", "its ignore list names model.visual*"),
        ("qwen3.6-35b-a3b", "its ModelOpt quantized_layers name language-model modules only"),
    ],
)
def test_nvfp4_qwen_towers_stay_16_bit(stem: str, why: str) -> None:
    """NVIDIA's NVFP4 Qwen3.5 / Qwen3.6 checkpoints leave the tower unquantised, so kvcalc
    counts it 16-bit whatever --weights-dtype says (quantized false)."""
    spec = load(DATA / "hf_configs" / f"{stem}.json")
    assert spec.tower is not None and spec.tower.quantized is False, why


def test_uncounted_tower_is_said_from_the_config() -> None:
    """moonshotai/Kimi-K2.5 has a vision_config (MoonViT) kvcalc has no reader for, and its
    text_config names DeepseekV3ForCausalLM: the spec records the checkpoint as multimodal,
    so fit says the tower is not counted (it said nothing before)."""
    from kvcalc.planner import Plan, fit
    from kvcalc.presets import load_gpu, load_model

    spec = load(DATA / "hf_configs" / "kimi-k2.5.json")
    assert spec.tower is None and spec.multimodal
    assert spec.architecture == "DeepseekV3ForCausalLM"
    preset = load_model("kimi-k2.5")
    assert preset.multimodal
    notes = fit(Plan(preset, load_gpu("h200"), ENGINES["vllm"], Workload(seq_len=1024))).notes
    assert any("vision/audio tower is not counted" in note for note in notes), notes
    assert not load(DATA / "hf_configs" / "llama-3.1-8b.json").multimodal


def test_devstral_small_2_pixtral_tower_from_published_config() -> None:
    """mistralai/Devstral-Small-2-24B-Instruct-2512: Pixtral vision_config h 1,024, i 4,096,
    24 layers, 3 channels, patch 14; text hidden T 5,120; spatial_merge_size 2, no projector
    bias. The checkpoint is fp8 with model.vision_tower and model.multi_modal_projector in
    modules_to_not_convert, so the tower is counted 16-bit (quantized false):
      patch_conv 3·14²·1,024 = 602,112; ln_pre 1,024
      each layer: norms 2,048, q/k/v/o 4·1,024² = 4,194,304, MLP 3·1,024·4,096 = 12,582,912:
        16,779,264, · 24 = 402,702,336
      projector: norm 1,024, patch merger 1,024·4·1,024 = 4,194,304, linear_1 1,024·5,120 =
        5,242,880, linear_2 5,120² = 26,214,400
      total 438,958,080. Whole on every tp rank (vLLM: norms, patch_conv, patch merger):
      602,112 + 1,024 + 24·2,048 + 1,024 + 4,194,304 = 4,847,616."""
    spec = load(DATA / "hf_configs" / "devstral-small-2-24b.json")
    assert spec.tower is not None and spec.tower.quantized is False
    assert spec.tower.params == (
        602_112 + 1_024 + 24 * 16_779_264 + 1_024 + 4_194_304 + 5_242_880 + 26_214_400
    )
    assert spec.tower.params == 438_958_080
    assert spec.tower.replicated == 602_112 + 1_024 + 24 * 2_048 + 1_024 + 4_194_304
    config = json.loads((DATA / "hf_configs" / "devstral-small-2-24b.json").read_text())
    with pytest.raises(KvcalcError, match="vision_feature_layer -2 is not understood"):
        hf.import_config({**config, "vision_feature_layer": -2}, source="t")


def test_gemma_3_4b_vision_tower_from_published_config() -> None:
    """google/gemma-3-4b-it's SigLIP vision_config: hidden h 1,152, intermediate i 4,304, 27
    layers, patch 14, image 896 (64² = 4,096 positions), num_channels 3 (SiglipVisionConfig's
    default), no pooling head; the text model's hidden_size d is 2,560.
      patch embedding 3·14²·1,152 + 1,152 = 678,528; position embedding 4,096·1,152 = 4,718,592
      layer: norms 4,608, q/k/v/out_proj 4·(1,152² + 1,152) = 5,313,024, fc1 + fc2
        4,962,512 + 4,959,360: 15,239,504, · 27 = 411,466,608; post_layernorm 2,304
      projector: mm_input_projection_weight 1,152·2,560 = 2,949,120, mm_soft_emb_norm 1,152
      total 678,528 + 4,718,592 + 411,466,608 + 2,304 + 2,950,272 = 419,816,304
    which is exactly Keras Hub's vision+text minus text-only figures for the same model,
    4,299,915,632 − 3,880,099,328 (keras-team/keras-hub:keras_hub/src/models/gemma3/
    gemma3_presets.py). Whole on every tp rank (vLLM splits the position embedding): patch
    embedding, 27·6·1,152 = 186,624 of norms and row-parallel biases, post_layernorm and the
    projector: 678,528 + 186,624 + 2,304 + 2,950,272 = 3,817,728."""
    spec = load(DATA / "hf_configs" / "gemma-3-4b.json")
    assert spec.tower is not None
    assert spec.tower.params == 678_528 + 4_718_592 + 27 * 15_239_504 + 2_304 + 2_950_272
    assert spec.tower.params == 4_299_915_632 - 3_880_099_328 == 419_816_304
    assert spec.tower.replicated == 678_528 + 186_624 + 2_304 + 2_950_272 == 3_817_728


def test_gemma_4_26b_a4b_vision_tower_from_published_config() -> None:
    """google/gemma-4-26B-A4B's vision_config: hidden h 1,152, intermediate i 4,304, 27
    layers, 16 query and 16 KV heads of head_dim 72 (q = kv = 1,152), patch 16, 10,240
    position-table rows, no biases; the text model's hidden_size t is 2,816; no audio_config.
      patch_embedder: input_proj 3·16²·1,152 = 884,736, position_embedding_table
        2·10,240·1,152 = 23,592,960
      layer: q/k/v/o_proj 4·1,152² = 5,308,416, q_norm + k_norm 2·72 = 144, gate/up/down_proj
        3·1,152·4,304 = 14,874,624, four RMSNorms 4·1,152 = 4,608: 20,187,792, · 27 = 545,070,384
      embed_vision: embedding_projection 1,152·2,816 = 3,244,032
      total 884,736 + 23,592,960 + 545,070,384 + 3,244,032 = 572,792,112
    vLLM holds all of it whole on every tp rank (gemma4_mm.py: ReplicatedLinear throughout)."""
    spec = load(DATA / "hf_configs" / "gemma-4-26b-a4b.json")
    assert spec.tower is not None
    assert spec.tower.params == 884_736 + 23_592_960 + 27 * 20_187_792 + 3_244_032
    assert spec.tower.params == spec.tower.replicated == 572_792_112


def test_llama_4_scout_vision_tower_from_published_config() -> None:
    """meta-llama/Llama-4-Scout-17B-16E's vision_config: hidden h 1,408, intermediate i 5,632,
    34 layers, 3 channels, patch 14, image 336 ((336/14)² + 1 = 577 positions with the class
    token), projector input / output 4,096, vision_output_dim 4,096, no projector bias; the
    text model's hidden_size t is 5,120.
      patch_embedding 3·14²·1,408 = 827,904; class_embedding 1,408; positional_embedding_vlm
        577·1,408 = 812,416; layernorm_pre + layernorm_post 4·1,408 = 5,632
      layer: q/k/v/o_proj 4·(1,408² + 1,408) = 7,935,488, fc1 1,408·5,632 + 5,632 =
        7,935,488, fc2 5,632·1,408 + 1,408 = 7,931,264, two LayerNorms 5,632: 23,807,872,
        · 34 = 809,467,648
      vision_adapter: fc1 5,632·4,096 = 23,068,672, fc2 4,096² = 16,777,216
      multi_modal_projector: linear_1 4,096·5,120 = 20,971,520
      total 827,904 + 1,408 + 812,416 + 5,632 + 809,467,648 + 23,068,672 + 16,777,216 +
        20,971,520 = 871,932,416
    Whole on every tp rank (vLLM's mllama4.py): the class and position embeddings, the outer
    norms and, per layer, two LayerNorms and the o_proj and fc2 biases 6·1,408 = 8,448:
    1,408 + 812,416 + 5,632 + 34·8,448 = 1,106,688. Maverick's vision_config is the same."""
    for stem in ("llama-4-scout", "llama-4-maverick"):
        spec = load(DATA / "hf_configs" / f"{stem}.json")
        assert spec.tower is not None
        assert (
            spec.tower.params
            == (827_904 + 1_408 + 812_416 + 5_632 + 34 * 23_807_872 + 23_068_672 + 16_777_216)
            + 20_971_520
        )
        assert spec.tower.params == 871_932_416
        assert spec.tower.replicated == 1_408 + 812_416 + 5_632 + 34 * 8_448 == 1_106_688


def test_llama_4_tower_stays_16_bit_under_a_weights_dtype() -> None:
    """vLLM builds Llama 4's vision model and projector with quant_config None
    (vllm/model_executor/models/mllama4.py at 00dd549), so --weights-dtype fp8 leaves the
    tower in bf16: 871,932,416 params × 2 B = 1,743,864,832 B per GPU at tp 1, and at tp 2
    the split part cdiv(871,932,416 − 1,106,688, 2) = 435,412,864 × 2 B plus the whole
    1,106,688 × 2 B = 873,039,104 B. Qwen3-VL's tower takes the quant config: its split
    linears do follow fp8."""
    from kvcalc.dtypes import weight_dtype
    from kvcalc.planner import tower_bytes_per_gpu

    spec = load(DATA / "hf_configs" / "llama-4-scout.json")
    assert spec.tower is not None and spec.tower.quantized is False
    fp8 = weight_dtype("fp8")
    assert tower_bytes_per_gpu(spec, 1, fp8) == 871_932_416 * 2 == 1_743_864_832
    assert tower_bytes_per_gpu(spec, 2, fp8) == 435_412_864 * 2 + 1_106_688 * 2 == 873_039_104
    qwen = load(DATA / "hf_configs" / "qwen3-vl-30b-a3b.json")
    assert qwen.tower is not None and qwen.tower.quantized is True
    split = qwen.tower.params - qwen.tower.replicated
    assert tower_bytes_per_gpu(qwen, 1, fp8) == split + 2 * qwen.tower.replicated


def test_llama_4_tower_refuses_a_projector_bias() -> None:
    """multi_modal_projector_bias true is refused in one line naming the key: transformers
    builds the vision adapter without biases, vLLM with them."""
    config = json.loads((DATA / "hf_configs" / "llama-4-scout.json").read_text())
    biased = {**config, "vision_config": {**config["vision_config"]}}
    biased["vision_config"]["multi_modal_projector_bias"] = True
    with pytest.raises(KvcalcError, match="multi_modal_projector_bias is not false"):
        hf.import_config(biased, source="t")


def test_gemma_4_tower_is_left_out_when_quantised_or_refused_when_not_understood() -> None:
    """A Gemma 4 audio_config without its shape keys is refused in one line naming the
    first missing key (tests/test_towers_v4tp.py counts a whole one); a quantised checkpoint
    whose ignore list does not leave the whole tower unquantised counts none; an unknown
    vision_config key is refused in one line naming it."""
    config = json.loads((DATA / "hf_configs" / "gemma-4-26b-a4b.json").read_text())
    with_audio = {**config, "audio_config": {"model_type": "gemma4_audio"}}
    with pytest.raises(KvcalcError, match="audio_config has no 'conv_kernel_size'"):
        hf.import_config(with_audio, source="t")
    published = json.loads((DATA / "hf_configs" / "gemma-4-31b.json").read_text())
    quant = published["quantization_config"]
    for kept in (
        [e for e in quant["ignore"] if e != "model.embed_vision*"],  # the projector quantised
        ["lm_head", "model.vision_tower.encoder*"],  # part of the tower only
    ):
        partly = {**published, "quantization_config": {**quant, "ignore": kept}}
        assert hf.import_config(partly, source="t").spec.tower is None
    # compressed-tensors' regular expressions name modules too (kvcalc/quant.py _Matcher)
    regex = {**quant, "ignore": ["re:.*vision_tower.*", "re:.*embed_vision.*"]}
    tower = hf.import_config({**published, "quantization_config": regex}, source="t").spec.tower
    assert tower is not None and tower.quantized is False
    odd = {**config, "vision_config": {**config["vision_config"], "window_size": 112}}
    with pytest.raises(KvcalcError, match="vision_config key 'window_size' is not understood"):
        hf.import_config(odd, source="t")


def test_gemma_4_31b_nvfp4_counts_its_tower_16_bit_as_its_ignore_list_leaves_it() -> None:
    """nvidia/Gemma-4-31B-IT-NVFP4's quantization_config ignores "model.vision_tower*" and
    "model.embed_vision*": the tower ships unquantised, so it is counted, 16-bit. Its
    vision_config equals Gemma-4-26B-A4B's (27 layers, hidden 1,152, intermediate 4,304);
    only embed_vision's projection 1,152 × text hidden differs, 5,376 here against 2,816:
    572,792,112 + 1,152 · (5,376 − 2,816) = 575,741,232, all whole on every rank (vLLM's
    gemma4_mm.py ReplicatedLinear)."""
    tower = load(DATA / "hf_configs" / "gemma-4-31b.json").tower
    assert tower is not None and tower.quantized is False
    assert tower.params == tower.replicated == 572_792_112 + 1_152 * (5_376 - 2_816)
    assert tower.params == 575_741_232


def test_gemma_3_pooling_head_is_refused() -> None:
    """A SigLIP vision_config with vision_use_head true (or left to its default, true) has a
    pooling head kvcalc does not model: refused in one line naming the key."""
    config = json.loads((DATA / "hf_configs" / "gemma-3-4b.json").read_text())
    vision = {k: v for k, v in config["vision_config"].items() if k != "vision_use_head"}
    with pytest.raises(KvcalcError, match=r"vision_config\.vision_use_head is not false"):
        hf.import_config({**config, "vision_config": vision}, source="t")


def test_qwen3_vl_sliding_key_is_refused() -> None:
    """Qwen3VLTextConfig has no sliding window (transformers caches every layer in full), so a
    Qwen3-VL text_config setting sliding_window is refused in one line naming the key."""
    config = json.loads((DATA / "hf_configs" / "qwen3-vl-32b.json").read_text())
    config["text_config"]["sliding_window"] = 4096
    with pytest.raises(
        KvcalcError, match="config key 'sliding_window' changes what a qwen3_vl_text"
    ):
        hf.import_config(config, source="t")


def test_qwen3_vl_lm_head_is_tied_by_the_outer_config() -> None:
    """Qwen3VLForConditionalGeneration ties lm_head by its own (outer) tie_word_embeddings, not
    text_config's: Qwen3-VL-2B (outer and inner true) with the outer key set false gains an
    lm_head of 151,936 · 2,048 = 311,164,928 parameters; with the inner key false it stays tied."""
    config = json.loads((DATA / "hf_configs" / "qwen3-vl-2b.json").read_text())
    tied = hf.import_config(config, source="t").spec
    assert tied.tie_word_embeddings and tied.params is not None and tied.params.lm_head == 0
    config["text_config"]["tie_word_embeddings"] = False
    assert hf.import_config(config, source="t").spec.n_params == tied.n_params
    config["tie_word_embeddings"] = False
    untied = hf.import_config(config, source="t").spec
    assert untied.n_params == tied.n_params + 151_936 * 2_048 == tied.n_params + 311_164_928


def test_mimo_7b_is_qwen2_with_one_mtp_layer() -> None:
    """XiaomiMiMo/MiMo-7B-Base (remote code: Qwen2 body + num_nextn_predict_layers = 1 MTP layer):
    use_sliding_window false, so all 36 layers full whatever sliding_window / max_window_layers
    say: 2·8·128·2 B · 36 = 147,456 B/token, one more layer's 4,096 B with --mtp. Params
    (untied, MTP weights not counted): embedding and lm_head 151,680·4,096 = 621,281,280 each;
    per layer q 4,096·4,096 = 16,777,216, k+v 2·4,096·1,024 = 8,388,608, o 16,777,216, q/k/v
    biases 4,096 + 2·1,024 = 6,144, so attention 41,949,184 · 36 = 1,510,170,624; MLP
    3·4,096·11,008 = 135,266,304 · 36 = 4,869,586,944; norms 36·2·4,096 + 4,096 = 299,008;
    total 7,622,619,136."""
    spec = load(DATA / "hf_configs" / "mimo-7b.json")
    assert (spec.family, spec.layers, spec.mtp_layers) == ("mimo", None, 1)
    assert per_token_bf16(spec) == 2 * 8 * 128 * 2 * 36 == 147_456
    with_mtp = Workload(seq_len=1, k_dtype=kv_dtype("bf16"), v_dtype=kv_dtype("bf16"), mtp=True)
    assert kv_cache(spec, with_mtp, ENGINES["formula"]).bytes_per_token == 2 * 8 * 128 * 2 * 37
    assert spec.n_params == 2 * 621_281_280 + 1_510_170_624 + 4_869_586_944 + 299_008
    assert spec.n_params == 7_622_619_136


def test_mimo_use_sliding_window_is_refused() -> None:
    """MiMo's remote sliding-window path is not modelled: use_sliding_window true is refused."""
    config = json.loads((DATA / "hf_configs" / "mimo-7b.json").read_text())
    config["use_sliding_window"] = True
    with pytest.raises(KvcalcError, match="config key 'use_sliding_window' changes what a mimo"):
        hf.import_config(config, source="t")


def test_unknown_model_type_is_refused_unless_assumed_standard() -> None:
    """An unknown model_type is refused in one line naming it; --assume-standard reads it with
    the standard keys, with a warning to check the result."""
    config = json.loads((DATA / "hf_synthetic" / "unknown_llama_like.json").read_text())
    with pytest.raises(KvcalcError, match=r"unknown model_type .my_llama.*--assume-standard"):
        hf.import_config(config, source="t")
    imported = hf.import_config(config, source="t", assume_standard=True)
    assert imported.warnings and "my_llama" in imported.warnings[0]
    assert imported.spec.attention.kind == "gqa"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hybrid_override_pattern", "M*M*"),
        ("mamba_num_heads", 8),
        ("compress_ratios", [0, 4]),
        ("num_kv_shared_layers", 2),
        ("index_head_dim", 128),
    ],
)
def test_cache_changing_key_a_family_does_not_read_is_refused(key: str, value: object) -> None:
    """A key that changes what is cached, set on a family that does not read it, is refused in
    one line naming the key; --assume-standard ignores it with a warning."""
    config = json.loads((DATA / "hf_synthetic" / "mistral_noswa.json").read_text())
    config[key] = value
    with pytest.raises(KvcalcError, match=f"config key '{key}' changes what a mistral model"):
        hf.import_config(config, source="t")
    imported = hf.import_config(config, source="t", assume_standard=True)
    assert any(key in w for w in imported.warnings)


def test_keys_that_do_not_change_the_cache_are_accepted() -> None:
    """Router settings, moe_layer_freq lists and unset cache keys (None, 0, False) import."""
    config = json.loads((DATA / "hf_synthetic" / "mistral_noswa.json").read_text())
    config.update(
        {"moe_layer_freq": [0, 1], "topk_group": 1, "router_aux_loss_coef": 0.01,
         "num_kv_shared_layers": 0, "sliding_window": None, "mamba_hidden_act": "silu"}
    )  # fmt: skip
    assert hf.import_config(config, source="t").warnings == ()


def test_known_but_unmodelled_family_is_refused_with_its_reason() -> None:
    """DeepSeek-V4's reference config (deepseek_ref) is refused in one line that says why."""
    config = {"model_type": "deepseek_ref", "num_hidden_layers": 2}
    with pytest.raises(KvcalcError, match="'deepseek_ref' is not supported: DeepSeek-V4 ref"):
        hf.import_config(config, source="t")


def test_minimax_m3_from_published_config() -> None:
    """MiniMax-M3 (MiniMaxAI/MiniMax-M3 config.json, read as transformers 5.24
    MiniMaxM3VLTextConfig / MiniMaxM3VLForCausalLM): 60 GQA layers of num_key_value_heads 4 ×
    head_dim 128; sparse_attention_freq 0 for layers 0-2, 1 for 3-59, so 57 sparse layers
    also cache the lightning indexer's key, one head of sparse_index_dim 128.

    Per token, bf16: a full layer 2 (K, V) · 4 · 128 · 2 B = 2,048 B; a sparse layer
    2,048 + 128 · 2 B = 2,304 B; all layers 3 · 2,048 + 57 · 2,304 = 6,144 + 131,328 =
    137,472 B. At seq 1000, batch 2 under hf: 137,472 · 1000 · 2 = 274,944,000 B.

    Parameters (h 6144, vocab 200064, untied): embedding = lm_head = 200,064 · 6,144 =
    1,229,193,216. Attention per layer q_proj and o_proj 2 · 6,144 · 64·128 = 100,663,296,
    k_proj and v_proj 2 · 6,144 · 4·128 = 6,291,456, q_norm + k_norm 2 · 128 = 256:
    106,955,008 × 60 = 6,417,300,480; the indexer per sparse layer q_proj 6,144 · 4·128 =
    3,145,728 (sparse_num_index_heads 4), k_proj 6,144 · 128 = 786,432, two norms 256:
    3,932,416 × 57 = 224,147,712; attention 6,641,448,192. MLP: 3 dense layers (moe_layer_freq
    0) of 3 · 6,144 · 12,288 = 226,492,416 → 679,477,248, and 57 shared experts of
    3 · 6,144 · 3,072 = 56,623,104 → 3,227,516,928: 3,906,994,176. Experts: 57 × (128 ·
    56,623,104 + router 128 · 6,144 = 786,432) = 57 × 7,248,543,744 = 413,166,993,408.
    Norms 60 · 2 · 6,144 + 6,144 = 743,424. Total 426,174,565,632."""
    spec = load(DATA / "hf_configs" / "minimax-m3.json")
    assert spec.family == "minimax_m3" and spec.attention.kind == "gqa"
    assert spec.layers is not None and spec.layers.pattern == ["full"] * 3 + ["sparse"] * 57
    assert spec.params is not None
    assert spec.params.attention == 6_641_448_192
    assert spec.params.mlp == 3_906_994_176
    assert spec.params.experts == 413_166_993_408
    assert spec.n_params == 426_174_565_632
    assert per_token_bf16(spec) == 137_472
    workload = Workload(seq_len=1000, batch=2)
    assert kv_cache(spec, workload, ENGINES["hf"]).total_bytes == 274_944_000


def test_minimax_m3_synthetic_flat_keys() -> None:
    """transformers' own keys (layer_types, mlp_layer_types, index_head_dim 16, index_n_heads
    2), tests/data/hf_synthetic/minimax_m3_vl_text.json: layers full, sparse, full, sparse of
    2 KV heads × 32; per token bf16 2 · (2·2·32·2) + 2 · (256 + 16·2) = 512 + 576 = 1,088 B.

    Parameters (h 256, vocab 1000): embedding + lm_head 512,000; attention per layer
    2·256·256 + 2·256·64 + 64 = 163,904 × 4 = 655,616, indexer 256·32 + 256·16 + 32 = 12,320
    × 2 = 24,640: 680,256; MLP one dense 3·256·128 = 98,304 + three shared 3·256·48 = 36,864
    each: 208,896; experts 3 × (4·3·256·64 + 4·256) = 592,896; norms 4·2·256 + 256 = 2,304.
    Total 1,996,352."""
    spec = load(DATA / "hf_synthetic" / "minimax_m3_vl_text.json")
    assert spec.family == "minimax_m3"
    assert spec.layers is not None and spec.layers.pattern == ["full", "sparse"]
    assert per_token_bf16(spec) == 1_088
    assert spec.n_params == 1_996_352


def test_minimax_m3_vl_outer_config_reads_its_text_config() -> None:
    """A minimax_m3_vl config nests the text model in text_config (no model_type of its own):
    it imports as the text model alone, the vision tower not counted; tie_word_embeddings
    set on either config ties the lm_head (MiniMaxM3VLConfig.__post_init__)."""
    text = json.loads((DATA / "hf_synthetic" / "minimax_m3_vl_text.json").read_text())
    text.pop("model_type")
    outer = {"model_type": "minimax_m3_vl", "text_config": text, "vision_config": {}}
    spec = hf.import_config(outer, source="t").spec
    assert spec.n_params == 1_996_352
    tied = hf.import_config({**outer, "tie_word_embeddings": True}, source="t").spec
    assert tied.n_params == 1_996_352 - 256_000


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"attn_type_list": [0, 1]}, "config key 'attn_type_list' changes what"),
        ({"lightning_attention_heads": 8}, "config key 'lightning_attention_heads' changes"),
        ({"sliding_window": 4096}, "config key 'sliding_window' changes what"),
        ({"attention_output_gate": True}, "'attention_output_gate'"),
        ({"qk_norm_type": "per_layer"}, "'qk_norm_type' 'per_layer'"),
        ({"n_shared_experts": 2}, "'n_shared_experts'"),
        ({"moe_intermediate_size": 1024}, "'moe_intermediate_size'"),
        ({"first_k_dense_replace": 1}, "'first_k_dense_replace' disagrees"),
        ({"layer_types": ["full_attention"] * 59 + ["linear"]}, "layer type 'linear'"),
    ],
)
def test_minimax_m3_keys_it_does_not_model_are_refused(
    patch: dict[str, object], needle: str
) -> None:
    """Lightning-attention and other keys the MiniMax-M3 reading does not model are refused in
    one line naming the key."""
    config = json.loads((DATA / "hf_configs" / "minimax-m3.json").read_text())
    config.update(patch)
    with pytest.raises(KvcalcError, match=re.escape(needle)):
        hf.import_config(config, source="t")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sparse_index_value_dim", 128),
        ("use_sparse_attention", False),
        ("sparse_disable_index_value", [0] * 60),
    ],
)
def test_minimax_m3_sparse_attention_keys_it_does_not_model_are_refused(
    key: str, value: object
) -> None:
    """A sparse_attention_config key unknown to kvcalc, or one saying something transformers
    does not build (an index-value path, sparse layers switched off), is refused by name."""
    config = json.loads((DATA / "hf_configs" / "minimax-m3.json").read_text())
    config["sparse_attention_config"] = {**config["sparse_attention_config"], key: value}
    with pytest.raises(KvcalcError, match=re.escape(f"'sparse_attention_config.{key}'")):
        hf.import_config(config, source="t")


def test_minimax_m3_is_refused_under_engines_that_have_not_been_read() -> None:
    """TensorRT-LLM runs MiniMax-M3 with the indexer keys in a cache of its own
    (MiniMaxM3KVCacheManagerV2) that kvcalc has not read: it refuses it in one line saying so.
    vLLM's V0 engine and transformers 4.x have no MiniMax-M3 at all and keep the plain
    refusal (vLLM V1: tests/test_minimax_m3_vllm.py)."""
    spec = load(DATA / "hf_configs" / "minimax-m3.json")
    expected = {
        "vllm@v0": "engine vllm@v0: the indexer keys GQA sparse-attention layers cache",
        "trtllm": "engine trtllm: minimax_m3: TensorRT-LLM runs it (NVIDIA/TensorRT-LLM@",
        "hf@4": "engine hf@4: the indexer keys GQA sparse-attention layers cache (MiniMax-M3)",
    }
    for name, start in expected.items():
        with pytest.raises(KvcalcError) as err:
            kv_cache(spec, Workload(seq_len=1000), ENGINES[name])
        assert str(err.value).startswith(start) and "\n" not in str(err.value)


def test_kimi_k3_is_read_by_its_own_family() -> None:
    """Kimi-K3's kimi_linear text_config is read by the kimi_k3 family (its outer model_type):
    its Attention Residuals, latent MoE and gates are not transformers' kimi_linear model."""
    config = json.loads((DATA / "hf_configs" / "kimi-k3.json").read_text())
    assert hf.import_config(config, source="t").spec.family == "kimi_k3"


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"num_hidden_layers": None}, "lacks 'num_hidden_layers'"),
        ({"num_attention_heads": None}, "lacks 'num_attention_heads'"),
        ({"num_hidden_layers": "many"}, "'num_hidden_layers' must be an integer"),
        ({"num_key_value_heads": 3}, "divisible"),
        ({"sliding_window": -4}, "sliding_window"),
        ({"layer_types": ["full_attention"], "sliding_window": 64}, "layer_types lists 1 layers"),
    ],
)
def test_bad_configs_name_the_key(patch: dict[str, object], needle: str) -> None:
    """A config missing or botching what the layout needs is a KvcalcError naming the key."""
    config = json.loads((DATA / "hf_synthetic" / "mistral_noswa.json").read_text())
    for key, value in patch.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    with pytest.raises(KvcalcError, match=needle.replace("(", r"\(")):
        hf.import_config(config, source="t")


def test_unsupported_layer_type() -> None:
    """A layer type kvcalc cannot size (linear attention) is refused, not guessed, window or not."""
    config = json.loads((DATA / "hf_synthetic" / "mistral_noswa.json").read_text())
    config["layer_types"] = ["linear_attention", "full_attention"]
    with pytest.raises(KvcalcError, match="linear_attention"):
        hf.import_config(config, source="t")
    config["sliding_window"] = 64
    with pytest.raises(KvcalcError, match="linear_attention"):
        hf.import_config(config, source="t")


def test_chunk_size_without_chunked_layers_warns() -> None:
    """attention_chunk_size on a family kvcalc cannot place chunked layers in: full, and said so."""
    config = json.loads((DATA / "hf_synthetic" / "mistral_noswa.json").read_text())
    config["attention_chunk_size"] = 8192
    imported = hf.import_config(config, source="t")
    assert any("attention_chunk_size" in w for w in imported.warnings)
    assert imported.spec.layers is None


def test_llama4_chunked_layers() -> None:
    """Llama 4: layers with RoPE are chunked (no_rope_layer_interval 4 by default: 3 chunked, 1
    full); an explicit no_rope_layers list wins; chunked layers hold at most one chunk."""
    spec = load(DATA / "hf_synthetic" / "llama4_text.json")
    assert spec.layers is not None
    assert spec.layers.pattern == ["chunked", "chunked", "chunked", "full"]
    assert spec.layers.chunk_size == 64
    nested = load(DATA / "hf_synthetic" / "llama4_multimodal.json")
    assert nested.layers is not None and nested.layers.pattern == ["chunked", "full"]
    # formula engine at 300 tokens: 2 full layers × 300 + 6 chunked × 64, 2 KV heads × 32 × 2 × 2 B
    workload = Workload(seq_len=300, k_dtype=kv_dtype("bf16"), v_dtype=kv_dtype("bf16"))
    assert kv_cache(spec, workload, ENGINES["formula"]).total_bytes == (2 * 300 + 6 * 64) * 256


@pytest.mark.parametrize("path", [*PUBLISHED, *SYNTHETIC], ids=lambda p: p.stem)
def test_import_yaml_round_trip(path: Path) -> None:
    """import → YAML → load gives the same spec, hence the same bytes under every engine."""
    preset = DATA.parent.parent / "presets" / "models" / f"{path.stem}.yaml"
    try:
        spec = load(path)
    except KvcalcError:
        if path.parent.name == "hf_configs" and not preset.is_file():
            return  # a published config with no preset yet, refused in one line (issue 7)
        raise
    text = yaml.safe_dump(spec.to_data(), sort_keys=False)
    again = ModelSpec.model_validate(yaml.safe_load(text))
    assert again == spec
    for engine in ENGINES.values():
        workload = Workload(seq_len=5000, batch=3)
        try:
            expected = kv_cache(spec, workload, engine)
        except KvcalcError as exc:  # an engine that refuses a layer kind refuses it again
            with pytest.raises(KvcalcError, match=re.escape(str(exc))):
                kv_cache(again, workload, engine)
            continue
        result = kv_cache(again, workload, engine)
        assert (result.total_bytes, result.state_total_bytes) == (
            expected.total_bytes,
            expected.state_total_bytes,
        )


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> int:
    """Write a header-only safetensors file; return the data bytes its header declares."""
    sizes = {"BF16": 2, "F32": 4, "F8_E4M3": 1}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)  # the data itself is not needed
    return offset


def test_checkpoint_bytes_from_safetensors_headers(tmp_path: Path) -> None:
    """Weight bytes beside a config come from the safetensors headers: 1000·256·2 + 256·4 bytes."""
    from kvcalc.presets import load_model

    (tmp_path / "config.json").write_text((DATA / "hf_synthetic" / "gemma.json").read_text())
    declared = _write_safetensors(
        tmp_path / "model.safetensors",
        {"embed": ("BF16", [1000, 256]), "norm": ("F32", [256])},
    )
    assert declared == 1000 * 256 * 2 + 256 * 4
    assert load_model(str(tmp_path)).checkpoint_bytes == declared


def test_checkpoint_bytes_from_index(tmp_path: Path) -> None:
    """model.safetensors.index.json's metadata.total_size wins, exactly, and feeds the planner."""
    from kvcalc.engines import ENGINES
    from kvcalc.planner import weights_per_stage
    from kvcalc.presets import load_model

    (tmp_path / "config.json").write_text((DATA / "hf_configs" / "llama-3.1-8b.json").read_text())
    # 16,060,522,496 = 2 B × 8,030,261,248 parameters; a checkpoint may hold a little more
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 16_060_522_496 + 1_000}, "weight_map": {}})
    )
    spec = load_model(str(tmp_path / "config.json"))
    assert spec.checkpoint_bytes == 16_060_523_496
    assert weights_per_stage(spec, ENGINES["vllm"], 1, 1, None) == (16_060_523_496,)


def test_bad_safetensors_is_one_clear_error(tmp_path: Path) -> None:
    """A corrupt safetensors file beside the config is named in a KvcalcError."""
    from kvcalc.presets import load_model

    (tmp_path / "config.json").write_text((DATA / "hf_synthetic" / "gemma.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"\x05\x00")
    with pytest.raises(KvcalcError, match="not a safetensors file"):
        load_model(str(tmp_path))


def test_families_doc_has_no_drift() -> None:
    """docs/families.md is what scripts/make_families_doc.py generates from the family table."""
    from kvcalc.hf.families import families_markdown

    doc = DATA.parent.parent / "docs" / "families.md"
    assert doc.read_text(encoding="utf-8") == families_markdown()


def test_every_family_listed_imports_its_synthetic_config() -> None:
    """Every cross-checked family outside the 2024 set has a shape-only config in hf_synthetic."""
    from kvcalc.hf.families import supported

    synthetic = {
        hf._import.resolve_family(c, hf.text_config(c))
        for c in (json.loads(p.read_text()) for p in SYNTHETIC)
    }
    new = {"nemotron_h", "qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "deepseek_v32",
           "glm_moe_dsa", "gemma4_text", "mimo_v2_flash", "minimax_m2", "jamba", "lfm2",
           "granitemoehybrid", "kimi_linear", "olmo3", "ministral3"}  # fmt: skip
    assert new <= {f.model_type for f in supported()}
    assert new <= synthetic
