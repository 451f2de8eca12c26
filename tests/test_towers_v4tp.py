"""Honest weights accounting: Gemma 4's audio tower, and DeepSeek-V4's per-GPU weight split.

Every expected number is derived by hand in the test from the config shapes and the
transformers / engine source named in its docstring.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kvcalc import hf
from kvcalc.dtypes import weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload
from kvcalc.hf._tower import gemma4_audio_tower, read_tower
from kvcalc.planner import (
    Plan,
    fit,
    tower_bytes_per_gpu,
    weights_approximation,
    weights_per_stage,
)
from kvcalc.presets import load_gpu, load_model
from kvcalc.specs import ModelSpec
from tests.conftest import Result

SYNTHETIC = Path(__file__).parent / "data" / "hf_synthetic"

# The released Gemma 4 E2B / E4B audio_config, as ollama/ollama quotes it verbatim in its
# Go tests (x/models/gemma4, const releasedGemma4AudioConfig); the published config.json of
# google/gemma-4-E2B-it itself is not in the stored corpus.
RELEASED_AUDIO: dict[str, Any] = {
    "attention_chunk_size": 12,
    "attention_context_left": 13,
    "attention_context_right": 0,
    "attention_invalid_logits_value": -1000000000.0,
    "attention_logit_cap": 50.0,
    "conv_kernel_size": 5,
    "gradient_clipping": 10000000000.0,
    "hidden_size": 1024,
    "num_attention_heads": 8,
    "num_hidden_layers": 12,
    "output_proj_dims": 1536,
    "residual_weight": 0.5,
    "rms_norm_eps": 0.000001,
    "subsampling_conv_channels": [128, 32],
    "use_clipped_linears": True,
}
# E2B's vision_config shape keys (the same third-party copies: hidden 768, 16 layers)
E2B_VISION: dict[str, Any] = {
    "model_type": "gemma4_vision",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 16,
    "num_attention_heads": 12,
    "num_key_value_heads": 12,
    "head_dim": 64,
    "patch_size": 16,
    "position_embedding_size": 10240,
    "pooling_kernel_size": 3,
    "use_clipped_linears": True,
    "standardize": False,
}


def _e2b(text_hidden: int = 1536, **audio: Any) -> dict[str, Any]:
    """A Gemma 4 outer config of E2B's towers around a text model of the given width."""
    return {
        "model_type": "gemma4",
        "text_config": {"hidden_size": text_hidden},
        "vision_config": E2B_VISION,
        "audio_config": {"model_type": "gemma4_audio", **RELEASED_AUDIO, **audio},
    }


def _synthetic() -> dict[str, Any]:
    return json.loads((SYNTHETIC / "gemma4_audio.json").read_text())


# ---- Gemma 4 audio tower -------------------------------------------------------------------


def test_released_gemma_4_audio_tower_count_by_hand() -> None:
    """The released audio_config, per transformers 5.25 modeling_gemma4.py Gemma4AudioModel
    and Gemma4MultimodalEmbedder, h 1,024, 8 heads (d 128), channels (128, 32), kernel 5,
    12 layers, output_proj_dims o 1,536:
      subsample_conv_projection: conv0 9·128 = 1,152, norm0 128, conv1 9·128·32 = 36,864,
        norm1 32, input_proj_linear (128 // 4)·32·1,024 = 1,048,576: 1,086,752
      layer: feed_forward1 + 2: 2·(8·1,024² + 2·1,024) = 16,781,312; self_attn q/k/v/post
        + relative_k_proj 5·1,024² = 5,242,880 + per_dim_scale 128; lconv1d 3·1,024² +
        1,024·5 + 2·1,024 = 3,152,896; three norms 3,072: 25,180,288, · 12 = 302,163,456
      output_proj 1,024·1,536 + 1,536 = 1,574,400
      embed_audio 1,536·t: E2B t = 1,536 -> 2,359,296; E4B t = 2,560 -> 3,932,160
    E2B 1,086,752 + 302,163,456 + 1,574,400 + 2,359,296 = 307,183,904; E4B 308,756,768.
    Linear weights: 1,048,576 + 12·24·1,024² = 301,989,888 + 1,572,864 + o·t."""
    layer = 16_781_312 + 5_242_880 + 128 + 3_152_896 + 3_072
    assert layer == 25_180_288
    for t, projector in ((1_536, 2_359_296), (2_560, 3_932_160)):
        counted = gemma4_audio_tower(RELEASED_AUDIO, t)
        assert counted["params"] == 1_086_752 + 12 * layer + 1_574_400 + projector
        assert counted["linears"] == 1_048_576 + 301_989_888 + 1_572_864 + projector
    assert gemma4_audio_tower(RELEASED_AUDIO, 1_536)["params"] == 307_183_904
    assert gemma4_audio_tower(RELEASED_AUDIO, 2_560)["params"] == 308_756_768


def test_e2b_towers_are_counted_together_whole_on_every_rank() -> None:
    """E2B's vision tower (modeling_gemma4.py Gemma4VisionModel, h 768, i 3,072, 16 layers,
    q = kv = 12·64 = 768, patch 16, 10,240 position rows, t 1,536):
      patch_embedder 3·16²·768 = 589,824 + 2·10,240·768 = 15,728,640
      layer 4·768² = 2,359,296 + 2·64 + 3·768·3,072 = 7,077,888 + 4·768: 9,440,384, · 16 =
        151,046,144; embed_vision 768·1,536 = 1,179,648: 168,544,256
    plus the audio tower's 307,183,904 = 475,728,160, all whole on every rank (vLLM
    gemma4_mm.py: ReplicatedLinear throughout). 768 and 3,072 are multiples of 64, so vLLM
    hands both towers the quant config: their linear weights, vision 589,824 +
    16·(4·768² + 3·768·3,072) + 1,179,648 = 152,764,416 and audio 306,970,624, follow the
    weight dtype."""
    tower = read_tower(_e2b())
    assert tower is not None
    vision = 589_824 + 15_728_640 + 16 * 9_440_384 + 1_179_648
    assert vision == 168_544_256
    assert tower["params"] == tower["replicated"] == vision + 307_183_904 == 475_728_160
    assert tower["audio"] == 307_183_904
    vision_linears = 589_824 + 16 * (4 * 589_824 + 7_077_888) + 1_179_648
    assert vision_linears == 152_764_416
    audio_linears = 1_048_576 + 301_989_888 + 1_572_864 + 2_359_296
    assert tower["whole_linears"] == vision_linears + audio_linears == 459_735_040


def test_e2b_towers_in_fp8_take_1_byte_a_linear_weight() -> None:
    """Under --weights-dtype fp8 E2B's 459,735,040 tower linear weights take 1 B each and the
    other 475,728,160 − 459,735,040 = 15,993,120 parameters 2 B: 459,735,040 + 31,986,240 =
    491,721,280 B on every GPU (tp 2 alike: all of it is whole on every rank); bf16:
    2 × 475,728,160 = 951,456,320 B."""
    config = json.loads((SYNTHETIC / "gemma4_audio.json").read_text())
    config["text_config"]["hidden_size"] = 1_536
    config["vision_config"], config["audio_config"] = (
        _e2b()["vision_config"],
        _e2b()["audio_config"],
    )
    spec = hf.import_config(config, source="t").spec
    for tp in (1, 2):
        assert tower_bytes_per_gpu(spec, tp, weight_dtype("fp8")) == 459_735_040 + 2 * 15_993_120
        assert tower_bytes_per_gpu(spec, tp, weight_dtype("bf16")) == 951_456_320
    assert 459_735_040 + 2 * 15_993_120 == 491_721_280


def _plan(spec: ModelSpec, tp: int = 1, dtype: str | None = None) -> Plan:
    return Plan(
        spec,
        load_gpu("h100"),
        ENGINES["vllm"],
        Workload(seq_len=1024, tp=tp),
        weights_dtype=weight_dtype(dtype) if dtype else None,
    )


def test_synthetic_gemma_4_audio_config_counts_both_towers_by_hand() -> None:
    """tests/data/hf_synthetic/gemma4_audio.json (text hidden t 256):
    vision h 64, i 128, 2 layers, 4 heads and 4 KV heads of 16 (q = kv = 64), patch 4, 32
      rows: patch_embedder 3·16·64 + 2·32·64 = 7,168; layer 4·64² + 2·16 + 3·64·128 + 4·64 =
      41,248, · 2 = 82,496; embed_vision 64·256 = 16,384: 106,048
    audio h 64, 4 heads (d 16), channels (12, 8), kernel 3, 2 layers, o 48: subsample 9·12 +
      12 + 9·12·8 + 8 + (12 // 4)·8·64 = 2,528; layer 24·64² + 64·3 + 9·64 + 16 = 99,088,
      · 2 = 198,176; output_proj 64·48 + 48 = 3,120; embed_audio 48·256 = 12,288: 216,112
    whole linears: vision 3·16·64 + 2·(4·64² + 3·64·128) + 16,384 = 101,376, audio
      3·8·64 + 2·24·64² + 64·48 + 12,288 = 213,504.
    In bf16 the towers add 2·322,160 = 644,320 B per GPU at tp 1 and 2 alike (and on each of
    2 pipeline stages); in fp8 the linears take 1 B and the rest 2 B:
    314,880 + 2·(322,160 − 314,880) = 314,880 + 2·7,280 = 329,440 B."""
    spec = hf.import_config(_synthetic(), source="t").spec
    tower = spec.tower
    assert tower is not None
    assert tower.params == tower.replicated == 106_048 + 216_112 == 322_160
    assert tower.audio == 2_528 + 198_176 + 3_120 + 12_288 == 216_112
    assert tower.whole_linears == 101_376 + 213_504 == 314_880
    assert tower.quantized
    bf16, fp8 = weight_dtype("bf16"), weight_dtype("fp8")
    for tp in (1, 2):
        assert tower_bytes_per_gpu(spec, tp, bf16) == 2 * 322_160 == 644_320
        assert tower_bytes_per_gpu(spec, tp, fp8) == 314_880 + 2 * 7_280 == 329_440
    bare = spec.model_copy(update={"tower": None})
    vllm = ENGINES["vllm"]
    grown = weights_per_stage(spec, vllm, 2, 2, None)
    assert [
        a - b for a, b in zip(grown, weights_per_stage(bare, vllm, 2, 2, None), strict=True)
    ] == [
        644_320,
        644_320,
    ]


def test_fit_says_the_audio_tower_is_counted() -> None:
    """fit's note names both towers, the audio share and the bytes per GPU (322,160 params,
    216,112 of them audio, 644,320 B in bf16); the JSON spec carries tower.audio."""
    spec = hf.import_config(_synthetic(), source="t").spec
    notes = fit(_plan(spec, tp=2)).notes
    assert any(
        "vision and audio towers (322,160 params, 216,112 of them audio) are counted in the "
        "weights, 644,320 B per GPU on every pipeline stage" in note
        for note in notes
    ), notes
    data = spec.to_data()
    assert data["tower"] == {
        "params": 322_160,
        "replicated": 322_160,
        "quantized": True,
        "whole_linears": 314_880,
        "audio": 216_112,
    }


def test_gemma_4_tower_is_16_bit_when_vision_dims_are_not_multiples_of_64() -> None:
    """With a vision intermediate_size of 4,304 (26B / 31B's; not a multiple of 64) vLLM's
    tower_quant is None (gemma4_mm.py): with an audio_config the towers are 16-bit whatever
    --weights-dtype says (quantized false, no whole_linears)."""
    config = _e2b()
    config["vision_config"] = {**E2B_VISION, "intermediate_size": 4_304}
    tower = read_tower(config)
    assert tower is not None
    assert tower["quantized"] is False and "whole_linears" not in tower


def test_gemma_4_26b_vision_only_tower_is_16_bit_and_says_so() -> None:
    """Gemma-4-26B-A4B's vision tower (intermediate_size 4,304, no audio_config) gets no
    tower_quant in vLLM either: under --weights-dtype fp8 its 572,792,112 params stay 16-bit,
    2 · 572,792,112 = 1,145,584,224 B per GPU, and the note says "in 16 bits"."""
    model = load_model("gemma-4-26b-a4b")
    assert model.tower is not None and model.tower.quantized is False
    assert tower_bytes_per_gpu(model, 2, weight_dtype("fp8")) == 2 * 572_792_112
    plan = Plan(
        model, load_gpu("h100"), ENGINES["vllm"], Workload(seq_len=4096), weight_dtype("fp8")
    )
    assert any("in 16 bits, 1,145,584,224 B per GPU" in note for note in fit(plan).notes)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ({"num_mel_bins": 128}, "audio_config key 'num_mel_bins' is not understood"),
        ({"num_attention_heads": 6}, "hidden_size 1024 is not a multiple of num_attention_heads 6"),
        ({"subsampling_conv_channels": [128]}, "subsampling_conv_channels must be two positive"),
        ({"conv_kernel_size": 0}, r"audio_config\.conv_kernel_size must be a positive integer"),
    ],
)
def test_gemma_4_audio_config_refuses_what_it_does_not_understand(
    audio: dict[str, Any], message: str
) -> None:
    """An unknown audio_config key, heads that do not divide hidden_size, a channel list not
    of two, or a non-positive size: one KvcalcError naming the key."""
    with pytest.raises(KvcalcError, match=message):
        read_tower(_e2b(**audio))


def test_gemma_4_audio_config_without_a_shape_key_is_refused() -> None:
    """Each shape key must be present (no default is assumed): output_proj_dims missing."""
    config = _e2b()
    del config["audio_config"]["output_proj_dims"]
    with pytest.raises(KvcalcError, match="audio_config has no 'output_proj_dims'"):
        read_tower(config)


def test_quantised_gemma_4_counts_no_tower_unless_the_audio_tower_is_left_out_too() -> None:
    """A recipe whose ignore list leaves the vision tower and embed_vision unquantised but not
    model.audio_tower / model.embed_audio counts no tower (the audio tower may be
    quantised); naming them too counts both, 16-bit."""
    # nvidia/Gemma-4-31B-IT-NVFP4's quantization_config (tests/data/hf_configs), its ignore
    # list cut to the towers
    published = json.loads((SYNTHETIC.parent / "hf_configs" / "gemma-4-31b.json").read_text())
    ignore = ["lm_head", "model.vision_tower*", "model.embed_vision*"]
    quant = {**published["quantization_config"], "ignore": ignore}
    config = {**_e2b(), "quantization_config": quant}
    assert read_tower(config) is None
    quant = {**quant, "ignore": [*ignore, "model.audio_tower*", "model.embed_audio*"]}
    tower = read_tower({**config, "quantization_config": quant})
    assert tower is not None and tower["quantized"] is False
    assert tower["params"] == 475_728_160


# ---- DeepSeek-V4's per-GPU weights ----------------------------------------------------------

Run = Callable[..., Result]


def test_deepseek_v4_flash_single_gpu_weights_are_the_checkpoint_and_not_flagged() -> None:
    """On one GPU DeepSeek-V4-Flash's weights are its published bytes (presets/models/
    deepseek-v4-flash.yaml weights_quant, from its quantization_config: attention
    5,400,554,112, mlp 1,082,196,480, experts 147,278,573,568, hyper-connections
    135,537,756 B) plus the bf16 norms 356,352, embedding 529,530,880 and LM head
    529,530,880 (× 2 B = 2,118,836,224): 156,015,698,140 B, with no approximation note."""
    model = load_model("deepseek-v4-flash")
    published = 5_400_554_112 + 1_082_196_480 + 147_278_573_568 + 135_537_756
    kept = 2 * (356_352 + 529_530_880 + 529_530_880)
    assert kept == 2_118_836_224
    assert weights_per_stage(model, ENGINES["vllm"], 1, 1, None) == (published + kept,)
    assert published + kept == 156_015_698_140
    assert weights_approximation(model, 1, 1) is None


@pytest.mark.parametrize(("tp", "pp"), [(8, 1), (2, 1), (1, 2), (8, 2)])
def test_deepseek_v4_split_over_gpus_is_flagged_approximate(tp: int, pp: int) -> None:
    """Over more than one GPU the V4 split is not vLLM's (deepseek_v4.py keeps
    fused_wqa_wkv, hidden × (q_lora_rank + head_dim) = 4,096 × 1,536 a layer, whole on every
    rank, where kvcalc keeps an MQA K and V, 2 × 4,096 × 512 = 4,096 × 1,024): the reason
    names the split, the replicated modules and the uneven layers; other families get none."""
    reason = weights_approximation(load_model("deepseek-v4-flash"), tp, pp)
    assert reason is not None
    assert f"at tp {tp}, pp {pp} are an estimate" in reason
    for named in ("fused_wqa_wkv", "attn_sink", "tid2eid", "CSA, HCA and hash-routed"):
        assert named in reason
    assert weights_approximation(load_model("deepseek-v3"), tp, pp) is None


def test_fit_json_and_text_flag_the_v4_tp8_weights(run_cli: Run) -> None:
    """`kvcalc fit deepseek-v4-flash --gpu h100 --tp 8` says in its JSON field
    weights_approximate and in a note of its text output that the per-GPU weights are an
    estimate; at tp 1 the field is null and no such note is printed."""
    args = ("fit", "deepseek-v4-flash", "--gpu", "h100", "--kv-dtype", "fp8")
    data = json.loads(run_cli(*args, "--tp", "8", "--format", "json").stdout)
    assert data["weights_approximate"].startswith(
        "DeepSeek-V4-Flash's per-GPU weights at tp 8, pp 1 are an estimate"
    )
    assert data["weights_approximate"] in data["notes"]
    single = json.loads(run_cli(*args, "--tp", "1", "--format", "json").stdout)
    assert single["weights_approximate"] is None
    text = run_cli(*args, "--tp", "8")
    assert text.exit_code in (0, 1) and "Traceback" not in text.stdout + text.stderr
    assert "are an estimate" in " ".join(text.stdout.split())
