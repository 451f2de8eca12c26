"""Weights as published: quantisation recipes, format byte rules, GGUF weight types, and the
planner's weights for checkpoints that ship quantised.

Every expected value is derived by hand in the docstring or comment beside it from the
published config.json in tests/data/hf_configs and the checkpoint layouts cited in
kvcalc/quant.py (DeepSeek-V3 README_WEIGHTS.md, transformers integrations/mxfp4.py,
vLLM modelopt.py, ggml/src/ggml-common.h).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvcalc.cli import app
from kvcalc.dtypes import weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.planner import weights_per_stage
from kvcalc.presets import load_model
from kvcalc.quant import (
    FP8_TENSOR,
    MXFP4,
    NVFP4,
    Format,
    Linear,
    parse_recipe,
    published_weights,
    with_hf_quant_config,
)

CONFIGS = Path(__file__).parent / "data" / "hf_configs"

# gpt-oss-120b (openai/gpt-oss-120b config.json): hidden 2880, 36 layers, 128 experts of
# intermediate 2880, 64 heads × 64, 8 KV heads, vocab 201088, untied; quant_method mxfp4
# with self_attn, router, embed_tokens and lm_head not converted.
#   experts per layer and expert, mxfp4 (4-bit blocks + one e8m0 byte per 32 inputs):
#     gate_up_proj 5760 × 2880: 5760·2880/2 + 5760·90 = 8,294,400 + 518,400 = 8,812,800
#     down_proj    2880 × 2880: 2880·2880/2 + 2880·90 = 4,147,200 + 259,200 = 4,406,400
#     × 128 experts × 36 layers = 60,914,073,600 B
#   bf16 rest of the expert part: biases 128·(5760 + 2880) and router 2880·128 + 128, per
#     layer 1,105,920 + 368,768 = 1,474,688; × 36 = 53,088,768 weights = 106,177,536 B
#   attention (bf16): 36·(2880·4096 + 4096 + 2·(2880·512 + 512) + 4096·2880 + 2880 + 64)
#     = 955,805,184 weights = 1,911,610,368 B
#   embedding = LM head = 201088·2880 = 579,133,440 weights; norms 36·2·2880 + 2880 = 210,240
#   total = 60,914,073,600 + 106,177,536 + 1,911,610,368 + 2·(2·579,133,440 + 210,240)
GPT_OSS_120B_BYTES = 60_914_073_600 + 106_177_536 + 1_911_610_368 + 2 * (2 * 579_133_440 + 210_240)

# DeepSeek-V3 (deepseek-ai/DeepSeek-V3 config.json): hidden 7168, 61 layers (3 dense), 128
# heads, q_lora 1536, kv_lora 512, rope 64, nope 128, v 128, intermediate 18432, 256 routed
# experts + 1 shared of 2048, vocab 129280; fp8 e4m3 with 128×128 blocks: one fp32
# weight_scale_inv per block of every linear but the router (README_WEIGHTS.md).
#   attention per layer, weights + 4·⌈out/128⌉·⌈in/128⌉:
#     q_a 1536×7168 = 11,010,048 + 4·12·56;  q_b 24576×1536 = 37,748,736 + 4·192·12
#     kv_a 576×7168 = 4,128,768 + 4·5·56 (576 rows: 5 blocks); kv_b 32768×512 = 16,777,216
#     + 4·256·4; o 7168×16384 = 117,440,512 + 4·56·128
#     = 187,105,280 + 45,792 B; × 61, plus q_a/kv_a layernorms 61·2048 in bf16
DSV3_ATTENTION = 61 * (187_105_280 + 45_792) + 2 * 61 * 2048
#   dense MLP (3 layers): 3 × 18432×7168 = 396,361,728 + 3·4·144·56 = 96,768 B
#   shared expert (58 layers): 3 × 2048×7168 = 44,040,192 + 3·4·16·56 = 10,752 B
DSV3_MLP = 3 * (396_361_728 + 96_768) + 58 * (44_040_192 + 10_752)
#   routed experts: 58 · 256 · (44,040,192 + 10,752); router 58 · 256·7168 in bf16
DSV3_EXPERTS = 58 * 256 * (44_040_192 + 10_752) + 2 * 58 * 256 * 7168
#   embedding = LM head = 129280·7168 = 926,679,040; norms (2·61 + 1)·7168, bf16
DSV3_BYTES = DSV3_ATTENTION + DSV3_MLP + DSV3_EXPERTS + 2 * (2 * 926_679_040 + 123 * 7168)


def _config(stem: str) -> dict[str, object]:
    config = json.loads((CONFIGS / f"{stem}.json").read_text())
    hf_quant = CONFIGS / "hf_quant" / f"{stem}.json"
    if hf_quant.is_file():
        config = with_hf_quant_config(config, json.loads(hf_quant.read_text()))
    return config


def test_gpt_oss_120b_experts_in_mxfp4() -> None:
    """gpt-oss-120b ships its experts in mxfp4 and the rest in bf16: 65,248,815,744 B."""
    spec = load_model("gpt-oss-120b")
    assert spec.weights_quant is not None and spec.weights_quant.method == "mxfp4"
    assert spec.weights_quant.experts.bytes == 60_914_073_600 + 106_177_536
    assert spec.weights_quant.attention.bytes == 1_911_610_368
    assert weights_per_stage(spec, ENGINES["vllm"], 1, 1, None) == (GPT_OSS_120B_BYTES,)
    assert GPT_OSS_120B_BYTES == 65_248_815_744


def test_deepseek_v3_fp8_with_block_scales() -> None:
    """DeepSeek-V3 ships fp8 with one fp32 scale per 128×128 block: 673,150,552,416 B."""
    spec = load_model("deepseek-v3")
    wq = spec.weights_quant
    assert wq is not None
    assert (wq.attention.bytes, wq.mlp.bytes, wq.experts.bytes) == (
        DSV3_ATTENTION,
        DSV3_MLP,
        DSV3_EXPERTS,
    )
    assert weights_per_stage(spec, ENGINES["vllm"], 1, 1, None) == (DSV3_BYTES,)
    assert DSV3_BYTES == 673_150_552_416


def test_fit_gpt_oss_120b_on_h100_sizes_weights_as_published() -> None:
    """`kvcalc fit gpt-oss-120b --gpu h100` counts 65,248,815,744 B of weights and fits one GPU."""
    result = CliRunner().invoke(app, ["fit", "gpt-oss-120b", "--gpu", "h100", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["weights_bytes"] == GPT_OSS_120B_BYTES
    assert data["fits"] is True


def test_weights_dtype_overrides_the_published_format() -> None:
    """--weights-dtype bf16 sizes gpt-oss-120b's 116,829,156,672 weights at 2 B each."""
    spec = load_model("gpt-oss-120b")
    assert weights_per_stage(spec, ENGINES["vllm"], 1, 1, weight_dtype("bf16")) == (
        2 * 116_829_156_672,
    )


def test_tensor_parallel_shares_cover_the_published_bytes() -> None:
    """tp 8: every GPU holds 1/8 of each part's split share (rounded up), a whole copy of
    the norms (123·7168 bf16) and of the replicated modules (vLLM deepseek_v2.py: per
    layer q_a_proj 1536×7168 and kv_a_proj_with_mqa 576×7168 in fp8 with their block
    scales and the two norms, 1536 + 512 bf16; the 58 routers 256×7168 bf16), so 8 shares
    are the whole plus 7 copies of those, over by under 8 · 16 B (each of the 3 parts and 2
    sharded kept terms rounds up by under one weight and one B)."""
    spec = load_model("deepseek-v3")
    (share,) = weights_per_stage(spec, ENGINES["vllm"], 8, 1, None)
    a_projections = 1536 * 7168 + 4 * 12 * 56 + 576 * 7168 + 4 * 5 * 56 + 2 * (1536 + 512)
    replicated = 61 * a_projections + 58 * 256 * 7168 * 2
    whole = DSV3_BYTES + 7 * 2 * 123 * 7168 + 7 * replicated
    assert whole <= 8 * share < whole + 8 * 16
    (one,) = weights_per_stage(spec, ENGINES["vllm"], 1, 1, None)
    assert one == DSV3_BYTES


@pytest.mark.parametrize(
    ("fmt", "out", "inp", "expected"),
    [
        # 4-bit values + one e8m0 byte per 32 inputs: 64·96/2 + 64·3
        (MXFP4, 64, 96, 3072 + 192),
        # 4-bit + one fp8 per 16 inputs + fp32 weight_scale_2 and input_scale: 64·96/2 + 64·6 + 8
        (NVFP4, 64, 96, 3072 + 384 + 8),
        # fp8 + fp32 weight_scale and input_scale
        (FP8_TENSOR, 64, 96, 6144 + 8),
        # fp8, 128×128 blocks: a 200×300 matrix has ⌈200/128⌉·⌈300/128⌉ = 2·3 blocks
        (parse_recipe({"quant_method": "fp8", "weight_block_size": [128, 128]}).default, 200, 300,
         60000 + 4 * 6),
        # GPTQ int4 group 128, in 256 out 64: qweight 256/8·64 int32, qzeros 2·64/8 int32,
        # scales 2·64 fp16, g_idx 256 int32
        (Format("g", "gptq", 4, 128), 64, 256, 32 * 64 * 4 + 2 * 8 * 4 + 2 * 64 * 2 + 256 * 4),
        # AWQ: the same without g_idx
        (Format("a", "awq", 4, 128), 64, 256, 32 * 64 * 4 + 2 * 8 * 4 + 2 * 64 * 2),
        # compressed-tensors int4 pack-quantized group 32: int32 packs of 8, bf16 scale per
        # group, int64[2] weight_shape: 64·96/2 + 64·3·2 + 16
        (Format("c", "int_pack", 4, 32), 64, 96, 3072 + 384 + 16),
    ],
)  # fmt: skip
def test_format_bytes(fmt: Format | None, out: int, inp: int, expected: int) -> None:
    """Each format's bytes for one matrix are its values plus its scale tensors."""
    assert fmt is not None
    assert fmt.matrix_bytes(out, inp) == expected


def test_kimi_k25_ignore_list_keeps_attention_and_shared_experts_bf16() -> None:
    """Kimi-K2.5's compressed-tensors ignore list quantises only the routed experts (int4,
    group 32): 60 MoE layers · 384 experts · 3 linears of 2048×7168 at
    7168·2048/2 + 2048·224·2 + 16 = 8,257,552 B each."""
    config = _config("kimi-k2.5")
    text = config["text_config"]
    assert isinstance(text, dict)
    wq, warnings = published_weights(
        config,
        text,
        "kimi_k2",
        {"attention": 10**12, "mlp": 10**12, "experts": 60 * 384 * 3 * 2048 * 7168 + 60 * 384 * 7168,
         # whole on every tp rank: 61 layers' q_a_proj (1536×7168), kv_a_proj_with_mqa
         # (576×7168) and their norms; the 60 routers (384×7168)
         "replicated_attention": 61 * (1536 * 7168 + 1536 + 576 * 7168 + 512),
         "replicated_experts": 60 * 384 * 7168},
        2,
    )  # fmt: skip
    assert warnings == ()
    assert wq is not None
    assert wq.attention.quantized_weights == 0 and wq.mlp.quantized_weights == 0
    assert wq.experts.quantized_weights == 60 * 384 * 3 * 2048 * 7168
    assert wq.experts.bytes == 60 * 384 * 3 * 8_257_552 + 2 * 60 * 384 * 7168
    # the replicated modules ship in bf16 here (the ignore list keeps attention unquantised)
    assert wq.attention.replicated_bytes == 2 * 61 * (1536 * 7168 + 1536 + 576 * 7168 + 512)
    assert wq.experts.replicated_bytes == 2 * 60 * 384 * 7168


def test_modelopt_fp8_per_tensor_llama_70b() -> None:
    """nvidia/Llama-3.1-70B-Instruct-FP8 (ModelOpt FP8, lm_head excluded): every one of the
    80·7 linears ships fp8 + two fp32 scalars; 80 layers · (2·8192² + 2·1024·8192 +
    3·28672·8192) = 68,451,041,280 weights."""
    config = _config("llama-3.1-70b-fp8")
    per_layer = 2 * 8192 * 8192 + 2 * 1024 * 8192 + 3 * 28672 * 8192
    wq, _ = published_weights(
        config, config, "llama", {"attention": 80 * 150_994_944, "mlp": 80 * 704_643_072}, 2
    )
    assert wq is not None and wq.method == "modelopt FP8"
    assert wq.attention.bytes + wq.mlp.bytes == 80 * per_layer + 80 * 7 * 8


def test_unmodelled_recipes_warn_and_keep_the_model_dtype() -> None:
    """An unknown quant_method or a family whose module layout is not listed gives a warning
    (weights in the model dtype, an upper bound), never a guess."""
    wq, warnings = published_weights(
        {"quantization_config": {"quant_method": "bitsandbytes"}}, {}, "llama", {}, 2
    )
    assert wq is None and "bitsandbytes" in warnings[0]
    wq, warnings = published_weights(
        {"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}},
        {},
        "some_new_family",
        {},
        2,
    )
    assert wq is None and "module layout is not modelled" in warnings[0]


def test_ignore_patterns_match_as_published() -> None:
    """Exact names, prefixes, globs, suffixes and 're:' regexes each name a module."""
    recipe = parse_recipe(
        {
            "quant_method": "fp8",
            "weight_block_size": [128, 128],
            "modules_to_not_convert": ["gate", "model.layers.*.self_attn", "re:.*shared_experts.*"],
        }
    )
    assert recipe.format_for(Linear("layers.3.self_attn.q_proj", "attention", 8, 8)) is None
    assert recipe.format_for(Linear("layers.3.block_sparse_moe.gate", "experts", 8, 8)) is None
    assert recipe.format_for(Linear("layers.3.mlp.shared_experts.up_proj", "mlp", 8, 8)) is None
    assert recipe.format_for(Linear("layers.3.mlp.gate_proj", "mlp", 8, 8)) is not None


@pytest.mark.parametrize(
    ("name", "bytes_per_256"),
    [
        ("q8_0", 8 * 34),  # block_q8_0: fp16 d + 32 int8 = 34 B per 32
        ("q6_k", 210),  # block_q6_K: ql[128] + qh[64] + scales[16] + d = 210 B per 256
        ("q5_k", 176),  # block_q5_K: d, dmin + scales[12] + qh[32] + qs[128]
        ("q4_k", 144),  # block_q4_K: d, dmin + scales[12] + qs[128]
        ("q4_0", 8 * 18),  # block_q4_0: d + qs[16] per 32
        ("q3_k", 110),  # block_q3_K: hmask[32] + qs[64] + scales[12] + d
        ("q2_k", 84),  # block_q2_K: scales[16] + qs[64] + d, dmin
        ("iq4_xs-pure", 136),  # block_iq4_xs: d + scales_h + scales_l[4] + qs[128]
        ("mxfp4", 8 * 17),  # 32 fp4 (16 B) + e8m0 scale
        ("nvfp4", 16 * 9),  # 16 fp4 (8 B) + fp8 scale
    ],
)
def test_weight_dtype_bits_from_block_layouts(name: str, bytes_per_256: int) -> None:
    """Each GGUF / fp4 weight type stores 256 weights in its block layout's bytes."""
    assert weight_dtype(name).bytes_for(256) == bytes_per_256
    assert weight_dtype(name.upper()).bytes_for(256) == bytes_per_256


@pytest.mark.parametrize("name", ["iq4_xs", "IQ4_NL"])
def test_gguf_mixes_that_need_the_imatrix_said_are_refused(name: str) -> None:
    """IQ4_XS / IQ4_NL files differ with and without an importance matrix: one line, naming both."""
    with pytest.raises(KvcalcError, match="-imatrix or") as info:
        weight_dtype(name)
    assert "\n" not in str(info.value)


def test_gguf_weights_dtype_quantises_embeddings_and_keeps_norms_f32() -> None:
    """llama-3.1-8b in q8_0 as `llama-quantize --pure`: every 2-D weight at 34/32 B, norms in
    f32: (8,030,261,248 − 266,240 norm weights)·34/32 + 266,240·4 B (norms: 32·2·4096 + 4096)."""
    spec = load_model("llama-3.1-8b")
    norms = 32 * 2 * 4096 + 4096
    expected = -(-(8_030_261_248 - norms) * 34 // 32) + 4 * norms
    assert weights_per_stage(spec, ENGINES["llama.cpp"], 1, 1, weight_dtype("q8_0")) == (expected,)


def test_cli_refuses_a_mix_in_one_line() -> None:
    """`--weights-dtype iq4_xs` is one error line and exit 2."""
    result = CliRunner().invoke(
        app, ["fit", "llama-3.1-8b", "--gpu", "h100", "--weights-dtype", "iq4_xs"]
    )
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.output


def test_import_reads_hf_quant_config_beside_config(tmp_path: Path) -> None:
    """A folder with ModelOpt's hf_quant_config.json next to config.json imports its recipe:
    nvidia/Llama-3.1-70B-Instruct-FP8, every linear fp8 + 8 B of fp32 scales."""
    from kvcalc.presets import import_hf

    (tmp_path / "config.json").write_text((CONFIGS / "llama-3.1-70b-fp8.json").read_text())
    (tmp_path / "hf_quant_config.json").write_text(
        (CONFIGS / "hf_quant" / "llama-3.1-70b-fp8.json").read_text()
    )
    wq = import_hf(tmp_path).spec.weights_quant
    assert wq is not None and wq.method == "modelopt FP8"
    assert wq.mlp.bytes == 80 * (3 * 28672 * 8192 + 3 * 8)
    (tmp_path / "hf_quant_config.json").write_text("[]")
    with pytest.raises(KvcalcError, match=r"hf_quant_config\.json: expected a JSON object"):
        import_hf(tmp_path)


def test_qwen3_235b_nvfp4_experts_and_attention() -> None:
    """nvidia/Qwen3-235B-A22B-NVFP4 (ModelOpt NVFP4, group 16; routers and lm_head excluded):
    hidden 4096, 94 layers, 64 heads / 4 KV heads of 128, 128 experts of 1536. Every expert
    linear is 1536·4096 weights: 4-bit values 3,145,728 B + one fp8 scale per 16 inputs
    (1536·256 = 4096·96 = 393,216 B) + fp32 weight_scale_2 and input_scale (8 B)."""
    spec = load_model("qwen3-235b-a22b-nvfp4")
    wq = spec.weights_quant
    assert wq is not None and wq.method == "modelopt NVFP4"
    per_matrix = 1536 * 4096 // 2 + 393_216 + 8
    router = 128 * 4096
    assert wq.experts.bytes == 94 * (128 * 3 * per_matrix + 2 * router)
    # attention per layer: q 8192×4096, k and v 512×4096, o 4096×8192, all NVFP4, plus the
    # q/k norms (2·128 bf16)
    attention = 2 * (8192 * 4096 // 2 + 8192 * 256 + 8) + 2 * (512 * 4096 // 2 + 512 * 256 + 8)
    assert wq.attention.bytes == 94 * (attention + 2 * 2 * 128)


def test_mixed_precision_recipe_gives_each_module_its_format() -> None:
    """ModelOpt MIXED_PRECISION: listed modules take their own algorithm (prefix match for
    `mlp.experts`), unlisted ones ship unquantised."""
    recipe = parse_recipe(
        {
            "quant_method": "modelopt",
            "quant_algo": "MIXED_PRECISION",
            "quantized_layers": {
                "model.language_model.layers.0.self_attn.q_proj": {"quant_algo": "FP8"},
                "model.language_model.layers.0.mlp.experts": {
                    "quant_algo": "W4A16_NVFP4",
                    "group_size": 16,
                },
            },
        }
    )
    q = recipe.format_for(Linear("layers.0.self_attn.q_proj", "attention", 8, 8))
    e = recipe.format_for(Linear("layers.0.mlp.experts.0.up_proj", "experts", 8, 32, 4, True))
    assert q == FP8_TENSOR
    assert e is not None and e.matrix_bytes(8, 32) == 8 * 32 // 2 + 8 * 2 + 4
    assert recipe.format_for(Linear("layers.0.self_attn.k_proj", "attention", 8, 8)) is None
    with pytest.raises(KvcalcError, match="not modelled"):
        parse_recipe({"quant_method": "modelopt", "quant_algo": "W8A8_SQ"})


def test_gptq_and_awq_configs() -> None:
    """GPTQ/AWQ quantization_config: bits and group_size as published; group -1 is one group
    per output row. GPTQ 4-bit per-channel, 64 × 256: qweight 32·64 int32, qzeros 1·8 int32,
    scales 64 fp16, g_idx 256 int32; AWQ 4-bit group 64, 64 × 256: qweight 256·8 int32,
    qzeros 4·8 int32, scales 4·64 fp16."""
    gptq = parse_recipe({"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": True})
    assert gptq.default is not None
    assert gptq.default.matrix_bytes(64, 256) == 32 * 64 * 4 + 8 * 4 + 64 * 2 + 256 * 4
    awq = parse_recipe({"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True})
    assert awq.default is not None
    assert awq.default.matrix_bytes(64, 256) == 256 * 8 * 4 + 4 * 8 * 4 + 4 * 64 * 2
    with pytest.raises(KvcalcError, match="group_size"):
        parse_recipe({"quant_method": "gptq", "bits": 4, "group_size": 0})


def test_regex_ignore_with_alternation_names_whole_modules() -> None:
    """'re:' patterns match from the start of a module path and end at a path boundary."""
    recipe = parse_recipe(
        {
            "quant_method": "compressed-tensors",
            "format": "pack-quantized",
            "config_groups": {
                "g": {
                    "targets": ["Linear"],
                    "weights": {
                        "num_bits": 4,
                        "type": "int",
                        "strategy": "group",
                        "group_size": 32,
                    },
                }
            },
            "ignore": ["re:.*self_attn.*|lm_head", r"re:.*mlp\.(gate|up|down)_proj"],
        }
    )
    assert recipe.format_for(Linear("layers.1.self_attn.o_proj", "attention", 8, 32)) is None
    assert recipe.format_for(Linear("layers.1.mlp.down_proj", "mlp", 8, 32)) is None
    expert = Linear("layers.1.mlp.experts.0.down_proj", "experts", 8, 32, 2, True)
    assert recipe.format_for(expert) is not None


def test_a_layout_that_does_not_fit_the_breakdown_warns() -> None:
    """Linears holding more weights than the parameter breakdown's part: no guess, a warning."""
    config = _config("qwen3-32b-fp8")
    wq, warnings = published_weights(config, config, "qwen3", {"attention": 1, "mlp": 1}, 2)
    assert wq is None and "more than the parameter breakdown" in warnings[0]


def test_fp8_activation_scheme() -> None:
    """HF fp8: dynamic activations store no input_scale; static ones add an fp32 scalar per
    linear. 64 × 96 per tensor: 6144 + 4 (weight_scale) [+ 4]; 128×128 blocks: one block."""
    dynamic = parse_recipe({"quant_method": "fp8", "activation_scheme": "dynamic"}).default
    static = parse_recipe({"quant_method": "fp8", "activation_scheme": "static"}).default
    assert dynamic is not None and dynamic.matrix_bytes(64, 96) == 6144 + 4
    assert static is not None and static.matrix_bytes(64, 96) == 6144 + 8
    blocks = parse_recipe(
        {"quant_method": "fp8", "activation_scheme": "static", "weight_block_size": [128, 128]}
    ).default
    assert blocks is not None and blocks.matrix_bytes(64, 96) == 6144 + 4 + 4


def test_an_implausibly_deep_config_is_not_listed_module_by_module() -> None:
    """A config of 10^9 layers (a fuzzed value) gives a warning at once, not 10^10 modules."""
    config = {**_config("deepseek-v3"), "num_hidden_layers": 10**9}
    wq, warnings = published_weights(config, config, "deepseek_v3", {}, 2)
    assert wq is None and "not sized" in warnings[0]


# DeepSeek-V4-Flash (deepseek-ai/DeepSeek-V4-Flash config.json): hidden H 4096, 43 layers
# (compress_ratios: 2 sliding, then CSA (4) on the even layers 2..42 = 21, HCA (128) on the
# odd 3..41 = 20), 64 heads × D 512, q_lora 1024, o_groups 8 × o_lora 1024, indexer 64 heads
# × Di 128, 256 routed experts + 1 shared of I 2048, top-6, 3 hash layers, hc_mult 4, vocab
# 129280; quant_method fp8 with 128×128 blocks, expert_dtype fp4: fp8 linears with one e8m0
# byte per block, experts mxfp4, the compressor and indexer kv / gate / weights projections
# and the router bf16, sinks / position biases / hyper-connections fp32 (kvcalc/quant.py
# names the vLLM, transformers and DeepSeek inference sources).
#   attention fp8 per layer, out·in + ⌈out/128⌉·⌈in/128⌉:
#     q_a 1024×4096 + 8·32; q_b 32768×1024 + 256·8; kv 512×4096 + 4·32;
#     o_a 8192×4096 + 64·32; o_b 4096×8192 + 32·64
DSV4_ATTENTION_FP8 = (1024 * 4096 + 256) + (32768 * 1024 + 2048) + (512 * 4096 + 128)
DSV4_ATTENTION_FP8 += (8192 * 4096 + 2048) + (4096 * 8192 + 2048)
#     + each CSA layer's indexer q_b 8192×1024 + 64·8
DSV4_INDEXER_Q_FP8 = 8192 * 1024 + 512
#   fp32: 64 sinks a layer; position biases 4·1024 + 4·256 (CSA), 128·512 (HCA)
DSV4_FP32_ATTENTION = 43 * 64 + 21 * (4 * 1024 + 4 * 256) + 20 * 128 * 512
#   bf16: q_norm 1024 + kv_norm 512 a layer; CSA: compressor kv + gate 2·(1024×4096), norm
#     512, indexer kv + gate 2·(256×4096), norm 128, weights_proj 64×4096; HCA: kv + gate
#     2·(512×4096), norm 512
DSV4_BF16_ATTENTION = 43 * (1024 + 512)
DSV4_BF16_ATTENTION += 21 * (2 * 1024 * 4096 + 512 + 2 * 256 * 4096 + 128 + 64 * 4096)
DSV4_BF16_ATTENTION += 20 * (2 * 512 * 4096 + 512)
DSV4_ATTENTION = 43 * DSV4_ATTENTION_FP8 + 21 * DSV4_INDEXER_Q_FP8
DSV4_ATTENTION += 4 * DSV4_FP32_ATTENTION + 2 * DSV4_BF16_ATTENTION
#   shared expert: w1, w3 2048×4096 + 16·32, w2 4096×2048 + 32·16, × 43
DSV4_MLP = 43 * 3 * (2048 * 4096 + 512)
#   routed experts mxfp4: 43 layers × 256 × 3 matrices × (4096·2048/2 + 4096·2048/32);
#   router 256×4096 bf16 a layer; tid2eid 129280 × 6 int64 in the 3 hash layers, an fp32
#   bias of 256 in the other 40
DSV4_EXPERTS = 43 * 256 * 3 * (4096 * 2048 // 2 + 4096 * 2048 // 32) + 43 * 2 * 256 * 4096
DSV4_EXPERTS += 3 * 129280 * 6 * 8 + 40 * 256 * 4
#   hyper-connections fp32: 43 × 2 × ((2 + 4)·4·4·4096 + (2 + 4)·4 + 3) + 4·4·4096 + 4 + 1
DSV4_OTHER = 4 * (43 * 2 * (6 * 4 * 4 * 4096 + 6 * 4 + 3) + 4 * 4 * 4096 + 4 + 1)
#   bf16: embedding and LM head 129280×4096 each, norms (2·43 + 1)·4096
DSV4_BYTES = DSV4_ATTENTION + DSV4_MLP + DSV4_EXPERTS + DSV4_OTHER
DSV4_BYTES += 2 * (2 * 129280 * 4096 + 87 * 4096)


def test_deepseek_v4_flash_ships_fp8_blocks_and_mxfp4_experts() -> None:
    """DeepSeek-V4-Flash's published weights, part by part: 156,015,698,140 B in all."""
    spec = load_model("deepseek-v4-flash")
    wq = spec.weights_quant
    assert wq is not None and wq.method == "fp8 + mxfp4 experts"
    assert wq.attention.bytes == DSV4_ATTENTION == 5_400_554_112
    assert wq.mlp.bytes == DSV4_MLP == 1_082_196_480
    assert wq.experts.bytes == DSV4_EXPERTS == 147_278_573_568
    assert wq.other is not None and wq.other.bytes == DSV4_OTHER == 135_537_756
    #  quantised: the fp8 attention linears and indexer q_b, the shared and routed experts
    assert wq.attention.quantized_weights == 43 * 106_954_752 + 21 * 8192 * 1024
    assert wq.experts.quantized_weights == 43 * 256 * 3 * 2048 * 4096
    assert weights_per_stage(spec, ENGINES["vllm"], 1, 1, None) == (DSV4_BYTES,)
    assert DSV4_BYTES == 156_015_698_140


def test_deepseek_v4_pro_experts_in_mxfp4() -> None:
    """DeepSeek-V4-Pro (hidden 7168, 61 layers, 384 experts of 3072, top-6, 3 hash layers):
    61 · 384 · 3 · (7168·3072/2 + 7168·3072/32) mxfp4, the router 61 · 384×7168 bf16,
    tid2eid 3 · 129280 · 6 int64 and a 384 fp32 bias in the other 58 layers."""
    wq = load_model("deepseek-v4-pro").weights_quant
    assert wq is not None
    mxfp4 = 61 * 384 * 3 * (7168 * 3072 // 2 + 7168 * 3072 // 32)
    buffers = 3 * 129280 * 6 * 8 + 58 * 384 * 4
    assert wq.experts.bytes == mxfp4 + 61 * 2 * 384 * 7168 + buffers == 822_408_735_744


def test_fit_deepseek_v4_flash_tp4_counts_the_published_weights() -> None:
    """`fit deepseek-v4-flash --engine vllm --kv-dtype fp8 --gpu h200 -tp 4`: each GPU holds
    a quarter of each part at its published bytes per weight (docs/weights.md), the MQA K = V
    projection 43·4096·(512 + 512) counted replicated as the planner does for one KV head,
    the norms and the fp32 hyper-connections whole, a quarter of the embedding and LM head."""
    attention = -(-(5_086_317_888 - 180_355_072) // 4) + 180_355_072
    expected = -(-attention * DSV4_ATTENTION // 5_086_317_888)
    expected += DSV4_MLP // 4 + DSV4_EXPERTS // 4 + DSV4_OTHER
    expected += 2 * (87 * 4096 + 2 * (129280 * 4096 // 4))
    args = ["fit", "deepseek-v4-flash", "--engine", "vllm", "--kv-dtype", "fp8", "--gpu", "h200"]
    result = CliRunner().invoke(app, [*args, "-tp", "4", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["weights_bytes"] == expected == 39_249_735_530
    assert data["weights_dtype"] == "published fp8 + mxfp4 experts"


def test_deepseek_v4_fp8_experts_keep_fp32_block_scales() -> None:
    """expert_dtype "fp8" (V4-Flash-Base): experts in fp8 blocks and every block scale fp32,
    4 B (vLLM DeepseekV4FP8Config.is_scale_e8m0 is False): 43 · 256 · 3 · (2048·4096 +
    4·16·32) for the experts, 3 B more per block of each fp8 linear than under fp4."""
    config = {**_config("deepseek-v4-flash"), "expert_dtype": "fp8"}
    params = load_model("deepseek-v4-flash").params
    assert params is not None
    wq, warnings = published_weights(config, config, "deepseek_v4", params.model_dump(), 2)
    assert warnings == () and wq is not None and wq.method == "fp8"
    buffers = 3 * 129280 * 6 * 8 + 40 * 256 * 4
    router = 43 * 2 * 256 * 4096
    assert wq.experts.bytes == 43 * 256 * 3 * (2048 * 4096 + 4 * 16 * 32) + router + buffers
    #  per layer 256 + 2048 + 128 + 2048 + 2048 blocks, each CSA indexer q_b 512
    assert wq.attention.bytes == DSV4_ATTENTION + 3 * (43 * 6528 + 21 * 512)
    assert wq.mlp.bytes == DSV4_MLP + 3 * 43 * 3 * 512


def test_deepseek_v4_unknown_expert_dtype_is_refused() -> None:
    """An expert_dtype vLLM does not read is refused in one line, not sized by a guess."""
    config = {**_config("deepseek-v4-flash"), "expert_dtype": "nvfp4"}
    with pytest.raises(KvcalcError, match="expert_dtype 'nvfp4' is not modelled") as caught:
        published_weights(config, config, "deepseek_v4", {}, 2)
    assert "\n" not in str(caught.value)


def test_deepseek_v4_other_recipes_are_not_sized() -> None:
    """A DeepSeek-V4 checkpoint in another recipe than DeepSeek's fp8 (its layout is listed
    for that one only) warns and keeps the model dtype."""
    config = {**_config("deepseek-v4-flash"), "quantization_config": {"quant_method": "awq"}}
    wq, warnings = published_weights(config, config, "deepseek_v4", {}, 2)
    assert wq is None and "module layout is not modelled" in warnings[0]


def test_qwen36_27b_lm_head_ships_in_nvfp4_as_its_recipe_lists() -> None:
    """nvidia/Qwen3.6-27B-NVFP4's hf_quant_config.json lists `lm_head` as W4A16_NVFP4 group
    16 (quantized_layers), so the LM head (vocab 248320 × hidden 5120, untied) is sized in
    nvfp4 weight-only: 1,271,398,400 weights / 2 = 635,699,200 B of 4-bit values, one fp8
    scale per 16 inputs 248,320 · 320 = 79,462,400 B, and the fp32 weight_scale_2 4 B:
    715,161,604 B, not 2 · 1,271,398,400 in bf16. fit then holds that on the one GPU."""
    stem = "qwen3.6-27b"
    model = load_model(stem)
    head = model.weights_quant.lm_head if model.weights_quant else None
    assert head is not None
    assert head.weights == head.quantized_weights == 248_320 * 5120
    assert head.bytes == 248_320 * 5120 // 2 + 248_320 * (5120 // 16) + 4
    assert "LM head in nvfp4" in model.weights_quant.summary  # type: ignore[union-attr]
    # the same model with the LM head in bf16 takes 2 · weights − the nvfp4 bytes more
    as_bf16 = model.model_copy(
        update={"weights_quant": model.weights_quant.model_copy(update={"lm_head": None})}  # type: ignore[union-attr]
    )
    (quantised,) = weights_per_stage(model, ENGINES["vllm"], 1, 1, None)
    (plain,) = weights_per_stage(as_bf16, ENGINES["vllm"], 1, 1, None)
    assert plain - quantised == 2 * 1_271_398_400 - 715_161_604
    # tp = 2: each rank holds half the head's rows (635,699,200 weights), at the part's
    # bytes per weight: half of 715,161,604 in nvfp4 against 2 B a weight in bf16
    (half,) = weights_per_stage(model, ENGINES["vllm"], 2, 1, None)
    (half_bf16,) = weights_per_stage(as_bf16, ENGINES["vllm"], 2, 1, None)
    assert half_bf16 - half == 2 * 635_699_200 - 715_161_604 // 2


def test_modelopt_recipes_that_exclude_the_lm_head_keep_it_in_the_model_dtype() -> None:
    """Every ModelOpt NVFP4 / FP8 checkpoint read lists lm_head in exclude_modules
    (e.g. nvidia/Qwen3-235B-A22B-NVFP4): no LM head part, the summary says the model dtype."""
    model = load_model("qwen3-235b-a22b-nvfp4")
    assert model.weights_quant is not None and model.weights_quant.lm_head is None
    assert "LM head, norms and biases in the model dtype" in model.weights_quant.summary
