"""A multimodal config's vision_config (and Gemma 4's audio_config) -> the exact parameter
count of its towers.

One reader per outer model_type; families without one leave the tower uncounted (the
planner says so). Counts follow transformers' modeling code; the split of what every
tensor-parallel rank holds whole follows vLLM's implementation of the same family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kvcalc.errors import KvcalcError

# Qwen3VLVisionConfig's keys (transformers 5.24,
# huggingface/transformers:src/transformers/models/qwen3_vl/configuration_qwen3_vl.py);
# those that change no parameter's shape are read and ignored.
# PretrainedConfig's own keys, in any vision_config: they name or steer the config object,
# not the tower's shape
_CONFIG_BOOKKEEPING = frozenset(
    {
        "model_type",
        "dtype",
        "torch_dtype",
        "_name_or_path",
        "architectures",
        "chunk_size_feed_forward",
        "id2label",
        "label2id",
        "is_encoder_decoder",
        "output_attentions",
        "output_hidden_states",
        "problem_type",
        "return_dict",
    }
)
_QWEN3_VL_SHAPE_KEYS = frozenset(
    {
        "depth",
        "hidden_size",
        "intermediate_size",
        "in_channels",
        "patch_size",
        "temporal_patch_size",
        "spatial_merge_size",
        "out_hidden_size",
        "num_position_embeddings",
        "deepstack_visual_indexes",
    }
)
_QWEN3_VL_OTHER_KEYS = frozenset(
    {
        "hidden_act",
        "num_heads",
        "initializer_range",
        "rope_parameters",
    }
)


def _int(
    config: dict[str, Any], key: str, default: int | None = None, where: str = "vision_config."
) -> int:
    """Return config[key] (default when absent) as a positive int, else refuse naming it."""
    value = config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise KvcalcError(f"{where}{key} must be a positive integer, not {value!r}")
    return value


def qwen3_vl_tower(vision: dict[str, Any]) -> dict[str, int]:
    """Return VisionTower fields for a Qwen3-VL vision_config (dense and MoE alike).

    transformers' Qwen3VLVisionModel (modeling_qwen3_vl.py), with h = hidden_size,
    i = intermediate_size, H = h · spatial_merge_size², o = out_hidden_size:
      patch_embed  Conv3d(in_channels -> h, kernel t × p × p, bias)  c·t·p²·h + h
      pos_embed    Embedding(num_position_embeddings, h)             n_pos·h
      each of depth blocks: two LayerNorms 4h, qkv 3h² + 3h, proj h² + h,
                   MLP fc1 h·i + i and fc2 i·h + h                   4h² + 2hi + 9h + i
      merger       LayerNorm(h) 2h, fc1 H² + H, fc2 H·o + o
      one deepstack merger per deepstack_visual_indexes entry:
                   LayerNorm(H) 2H, fc1 H² + H, fc2 H·o + o
    vLLM (vllm/model_executor/models/qwen3_vl.py) splits qkv, fc1 and the mergers' fc1
    (column-parallel, bias too) and proj, fc2 and the mergers' fc2 (row-parallel, bias
    whole) over tensor-parallel ranks; the patch and position embeddings and the norms
    are whole on every rank.
    """
    _check_keys(vision, _QWEN3_VL_SHAPE_KEYS, _QWEN3_VL_OTHER_KEYS, "Qwen3-VL")
    h, i = _int(vision, "hidden_size"), _int(vision, "intermediate_size")
    c, t = _int(vision, "in_channels"), _int(vision, "temporal_patch_size")
    p = _int(vision, "patch_size")
    n_pos, o = _int(vision, "num_position_embeddings"), _int(vision, "out_hidden_size")
    depth, merge = _int(vision, "depth"), _int(vision, "spatial_merge_size")
    deepstack = vision["deepstack_visual_indexes"]
    if not isinstance(deepstack, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) for x in deepstack
    ):
        raise KvcalcError(
            f"vision_config.deepstack_visual_indexes must be a list of integers, not {deepstack!r}"
        )
    k = len(deepstack)
    big = h * merge * merge
    patch_embed = c * t * p * p * h + h
    pos_embed = n_pos * h
    block = 4 * h * h + 2 * h * i + 9 * h + i
    merger_linears = big * big + big + big * o + o
    params = (
        patch_embed
        + pos_embed
        + depth * block
        + (2 * h + merger_linears)
        + k * (2 * big + merger_linears)
    )
    block_whole = 4 * h + h + h  # the two norms, proj's and fc2's biases
    replicated = patch_embed + pos_embed + depth * block_whole + (2 * h + o) + k * (2 * big + o)
    return {"params": params, "replicated": replicated}


# SiglipVisionConfig's keys (huggingface/transformers:src/transformers/models/siglip/
# configuration_siglip.py); num_channels defaults to 3 there, and Gemma 3's published
# vision_config leaves it out.
_SIGLIP_SHAPE_KEYS = frozenset(
    {"hidden_size", "intermediate_size", "num_hidden_layers", "image_size", "patch_size"}
)
_SIGLIP_OTHER_KEYS = frozenset(
    {
        "num_channels",
        "vision_use_head",
        "num_attention_heads",
        "hidden_act",
        "layer_norm_eps",
        "attention_dropout",
    }
)


def gemma3_tower(vision: dict[str, Any], text_hidden: int) -> dict[str, int]:
    """Return VisionTower fields for Gemma 3's SigLIP vision_config and its projector.

    transformers' SiglipVisionModel (modeling_siglip.py) and Gemma3MultiModalProjector
    (modeling_gemma3.py), with h = hidden_size, i = intermediate_size, p = patch_size,
    d = the text model's hidden_size:
      patch_embedding  Conv2d(num_channels -> h, kernel p × p, bias)  c·p²·h + h
      position_embedding  Embedding((image_size // p)², h)          n_pos·h
      each of num_hidden_layers layers: two LayerNorms 4h, q/k/v/out_proj 4(h² + h),
                   fc1 h·i + i and fc2 i·h + h                      4h² + 2hi + 9h + i
      post_layernorm 2h (vision_use_head false: no pooling head)
      projector    mm_input_projection_weight h·d, mm_soft_emb_norm h
    vLLM (vllm/model_executor/models/siglip.py, gemma3_mm.py) splits qkv and fc1
    (column-parallel), out_proj and fc2 (row-parallel, bias whole) and the position
    embedding (VocabParallelEmbedding) over tensor-parallel ranks; the patch embedding,
    the norms and the projector are whole on every rank.
    """
    _check_keys(vision, _SIGLIP_SHAPE_KEYS, _SIGLIP_OTHER_KEYS, "Gemma 3")
    if vision.get("vision_use_head", True) is not False:
        raise KvcalcError(
            "vision_config.vision_use_head is not false: SigLIP's pooling head is not "
            "modelled, so kvcalc cannot count this Gemma 3 vision tower"
        )
    h, i = _int(vision, "hidden_size"), _int(vision, "intermediate_size")
    layers, p = _int(vision, "num_hidden_layers"), _int(vision, "patch_size")
    c = _int(vision, "num_channels") if "num_channels" in vision else 3
    n_pos = (_int(vision, "image_size") // p) ** 2
    patch_embed = c * p * p * h + h
    layer = 4 * h * h + 2 * h * i + 9 * h + i
    projector = h * text_hidden + h
    params = patch_embed + n_pos * h + layers * layer + 2 * h + projector
    replicated = patch_embed + layers * (4 * h + h + h) + 2 * h + projector
    return {"params": params, "replicated": replicated}


# Gemma4VisionConfig's keys (transformers 5.24,
# huggingface/transformers:src/transformers/models/gemma4/configuration_gemma4.py) and the
# generic PreTrainedConfig keys a saved vision_config carries; those that change no
# parameter's shape are read and ignored (use_clipped_linears and standardize add buffers
# only, no parameters).
_GEMMA4_SHAPE_KEYS = frozenset(
    {
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "patch_size",
        "position_embedding_size",
    }
)
_GEMMA4_OTHER_KEYS = frozenset(
    {
        "attention_bias",
        "attention_dropout",
        "default_output_length",
        "global_head_dim",
        "hidden_activation",
        "image_seq_length",
        "video_seq_length",
        "initializer_range",
        "max_position_embeddings",
        "pooling_kernel_size",
        "rms_norm_eps",
        "rope_parameters",
        "standardize",
        "use_clipped_linears",
    }
)


def gemma4_tower(vision: dict[str, Any], text_hidden: int) -> dict[str, int]:
    """Return VisionTower fields for Gemma 4's vision_config and its embed_vision projector.

    transformers' Gemma4VisionModel and Gemma4MultimodalEmbedder (modeling_gemma4.py), with
    h = hidden_size, i = intermediate_size, d = head_dim, q = num_attention_heads · d,
    kv = num_key_value_heads · d, p = patch_size, P = position_embedding_size and
    t = the text model's hidden_size (every linear is bias-free):
      patch_embedder  input_proj 3p²·h, position_embedding_table 2·P·h
      each of num_hidden_layers layers: q_proj h·q, k_proj and v_proj h·kv each,
                   o_proj q·h, q_norm and k_norm d each (v_norm has no scale),
                   gate/up/down_proj 3hi, four RMSNorms 4h
      pooler       no parameters
      embed_vision embedding_projection h·t (its norm has no scale)
    The standardize buffers (std_bias, std_scale: 2h) are buffers, not parameters, and
    are left out. vLLM (vllm/model_executor/models/gemma4_mm.py) builds the tower with
    transformers' AutoModel.from_config, turns its linears into ReplicatedLinear
    (recursive_replace_linear) and the projector is a ReplicatedLinear: the whole tower
    is held on every tensor-parallel rank.
    """
    _check_keys(vision, _GEMMA4_SHAPE_KEYS, _GEMMA4_OTHER_KEYS, "Gemma 4")
    h, i = _int(vision, "hidden_size"), _int(vision, "intermediate_size")
    layers, d = _int(vision, "num_hidden_layers"), _int(vision, "head_dim")
    q = _int(vision, "num_attention_heads") * d
    kv = _int(vision, "num_key_value_heads") * d
    p, n_pos = _int(vision, "patch_size"), _int(vision, "position_embedding_size")
    patch_embedder = 3 * p * p * h + 2 * n_pos * h
    layer = h * q + 2 * h * kv + q * h + 2 * d + 3 * h * i + 4 * h
    params = patch_embedder + layers * layer + h * text_hidden
    return {"params": params, "replicated": params}


def gemma4_vision_linears(vision: dict[str, Any], text_hidden: int) -> int:
    """Return the weights of Gemma 4's vision-tower linears and embed_vision's projection.

    With gemma4_tower's letters: input_proj 3p²·h, per layer q_proj h·q, k_proj and v_proj
    h·kv, o_proj q·h, gate/up/down_proj 3hi, and embedding_projection h·t (no biases): the
    nn.Linear modules vLLM's recursive_replace_linear turns into ReplicatedLinear under the
    tower's quant config.
    """
    h, i = _int(vision, "hidden_size"), _int(vision, "intermediate_size")
    layers, d = _int(vision, "num_hidden_layers"), _int(vision, "head_dim")
    q = _int(vision, "num_attention_heads") * d
    kv = _int(vision, "num_key_value_heads") * d
    p = _int(vision, "patch_size")
    return 3 * p * p * h + layers * (2 * h * q + 2 * h * kv + 3 * h * i) + h * text_hidden


# Gemma4AudioConfig's keys (transformers 5.25,
# huggingface/transformers:src/transformers/models/gemma4/configuration_gemma4.py). The shape
# keys size a parameter; the others steer the forward pass only (use_clipped_linears adds
# four scalar buffers per clippable linear, no parameters).
_GEMMA4_AUDIO_SHAPE_KEYS = frozenset(
    {
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "subsampling_conv_channels",
        "conv_kernel_size",
        "output_proj_dims",
    }
)
_GEMMA4_AUDIO_OTHER_KEYS = frozenset(
    {
        "hidden_act",
        "residual_weight",
        "attention_chunk_size",
        "attention_context_left",
        "attention_context_right",
        "attention_logit_cap",
        "attention_invalid_logits_value",
        "use_clipped_linears",
        "rms_norm_eps",
        "gradient_clipping",
        "initializer_range",
    }
)


def gemma4_audio_tower(audio: dict[str, Any], text_hidden: int) -> dict[str, int]:
    """Return the parameters of Gemma 4's audio tower and its embed_audio projector (params)
    and of them the nn.Linear weights (linears).

    transformers' Gemma4AudioModel and Gemma4MultimodalEmbedder (modeling_gemma4.py), with
    h = hidden_size, n = num_attention_heads, d = h // n, (c0, c1) =
    subsampling_conv_channels, k = conv_kernel_size, o = output_proj_dims and t = the text
    model's hidden_size:
      subsample_conv_projection  layer0 Conv2d(1 -> c0, 3 × 3, no bias) 9·c0 and its
                   LayerNorm (no bias) c0; layer1 Conv2d(c0 -> c1) 9·c0·c1 and c1;
                   input_proj_linear (c0 // 4)·c1·h (no bias)
      each of num_hidden_layers layers:
                   feed_forward1 and feed_forward2: ffw_layer_1 h·4h, ffw_layer_2 4h·h, two
                     RMSNorms 2h                                            2 × (8h² + 2h)
                   self_attn: q/k/v_proj and post h² each, relative_k_proj h², per_dim_scale d
                   lconv1d: linear_start h·2h, linear_end h², depthwise Conv1d (groups h, no
                     bias) h·k, pre_layer_norm and conv_norm 2h
                   norm_pre_attn, norm_post_attn, norm_out 3h
                                                            24h² + h·k + 9h + d
      rel_pos_enc  no parameters (its inv_timescales is a buffer)
      output_proj  h·o + o (the tower's one bias)
      embed_audio  embedding_projection o·t (its pre-projection norm has no scale)
    vLLM (vllm/model_executor/models/gemma4_mm.py Gemma4ForConditionalGeneration) builds the
    tower with transformers' AutoModel.from_config, turns its linears into ReplicatedLinear
    (recursive_replace_linear) and embed_audio's projection is a ReplicatedLinear: all of it
    is whole on every tensor-parallel rank.
    """
    unknown = sorted(
        set(audio) - _GEMMA4_AUDIO_SHAPE_KEYS - _GEMMA4_AUDIO_OTHER_KEYS - _CONFIG_BOOKKEEPING
    )
    if unknown:
        raise KvcalcError(
            f"audio_config key {unknown[0]!r} is not understood: kvcalc cannot count this "
            "Gemma 4 audio tower"
        )
    missing = sorted(k for k in _GEMMA4_AUDIO_SHAPE_KEYS if k not in audio)
    if missing:
        raise KvcalcError(f"audio_config has no {missing[0]!r}: cannot count the audio tower")
    where = "audio_config."
    h, layers = (
        _int(audio, "hidden_size", where=where),
        _int(audio, "num_hidden_layers", where=where),
    )
    n, k = (
        _int(audio, "num_attention_heads", where=where),
        _int(audio, "conv_kernel_size", where=where),
    )
    o = _int(audio, "output_proj_dims", where=where)
    if h % n:
        raise KvcalcError(
            f"audio_config.hidden_size {h} is not a multiple of num_attention_heads {n}: "
            "Gemma 4's audio attention splits hidden_size into whole heads"
        )
    channels = audio["subsampling_conv_channels"]
    if not (
        isinstance(channels, list)
        and len(channels) == 2
        and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)
    ):
        raise KvcalcError(
            "audio_config.subsampling_conv_channels must be two positive integers, "
            f"not {channels!r}"
        )
    c0, c1 = channels
    subsample = 9 * c0 + c0 + 9 * c0 * c1 + c1 + (c0 // 4) * c1 * h
    layer = 24 * h * h + h * k + 9 * h + h // n
    params = subsample + layers * layer + h * o + o + o * text_hidden
    # the nn.Linear weights (no bias): input_proj_linear, per layer 24h², output_proj, and
    # embed_audio's projection; the convs, norms, per_dim_scale and output_proj's bias are not
    linears = (c0 // 4) * c1 * h + layers * 24 * h * h + h * o + o * text_hidden
    return {"params": params, "linears": linears}


# Llama4VisionConfig's keys (transformers 5.24,
# huggingface/transformers:src/transformers/models/llama4/configuration_llama4.py); those
# that change no parameter's shape are read and ignored.
_LLAMA4_SHAPE_KEYS = frozenset(
    {
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_channels",
        "image_size",
        "patch_size",
        "projector_input_dim",
        "projector_output_dim",
        "vision_output_dim",
        "multi_modal_projector_bias",
    }
)
_LLAMA4_OTHER_KEYS = frozenset(
    {
        "attention_dropout",
        "hidden_act",
        "initializer_range",
        "norm_eps",
        "num_attention_heads",
        "pixel_shuffle_ratio",
        "projector_dropout",
        "rope_theta",
        "rope_parameters",
        "vision_feature_layer",
        "vision_feature_select_strategy",
    }
)


def llama4_tower(vision: dict[str, Any], text_hidden: int) -> dict[str, int]:
    """Return VisionTower fields for Llama 4's vision_config and its multi_modal_projector.

    transformers' Llama4VisionModel and Llama4MultiModalProjector (modeling_llama4.py), with
    h = hidden_size, i = intermediate_size, c = num_channels, p = patch_size,
    n = (image_size // p)² + 1 positions (the class token's included), a = projector_input_dim,
    b = projector_output_dim, o = vision_output_dim and t = the text model's hidden_size:
      patch_embedding  linear c·p²·h (no bias); class_embedding h; positional_embedding_vlm n·h
      layernorm_pre, layernorm_post  4h
      each of num_hidden_layers layers: q/k/v/o_proj 4(h² + h), fc1 h·i + i, fc2 i·h + h,
                   two LayerNorms 4h                                4h² + 2hi + 9h + i
      vision_adapter  fc1 i·a, fc2 b·b (no biases)
      projector    linear_1 o·t (no bias)
    vLLM (vllm/model_executor/models/mllama4.py, mm_encoder_tp_mode "weights") splits the
    patch embedding, qkv, fc1, the adapter's fc1 and the projector (column-parallel) and
    o_proj, fc2 and the adapter's fc2 (row-parallel, bias whole) over tensor-parallel ranks;
    the class and position embeddings and the LayerNorms are whole on every rank. vLLM
    (mllama4.py at 00dd549: Llama4VisionModel and Llama4MultiModalProjector get None for
    quant_config) and SGLang (python/sglang/srt/models/mllama4.py: built without one) keep
    the tower 16-bit under any weights dtype: quantized false.
    """
    _check_keys(vision, _LLAMA4_SHAPE_KEYS, _LLAMA4_OTHER_KEYS, "Llama 4")
    if vision["multi_modal_projector_bias"] is not False:
        raise KvcalcError(
            "vision_config.multi_modal_projector_bias is not false: transformers builds the "
            "vision adapter without biases and vLLM with them, so kvcalc cannot count this "
            "Llama 4 vision tower"
        )
    h, i = _int(vision, "hidden_size"), _int(vision, "intermediate_size")
    layers, c = _int(vision, "num_hidden_layers"), _int(vision, "num_channels")
    p = _int(vision, "patch_size")
    n_pos = (_int(vision, "image_size") // p) ** 2 + 1
    a, b = _int(vision, "projector_input_dim"), _int(vision, "projector_output_dim")
    o = _int(vision, "vision_output_dim")
    whole = h + n_pos * h + 4 * h  # class and position embeddings, the two outer LayerNorms
    layer = 4 * h * h + 2 * h * i + 9 * h + i
    params = c * p * p * h + whole + layers * layer + i * a + b * b + o * text_hidden
    replicated = whole + layers * (4 * h + h + h)  # the norms, o_proj's and fc2's biases
    return {"params": params, "replicated": replicated, "quantized": False}


# PixtralVisionConfig's keys (transformers 5.24, models/pixtral/configuration_pixtral.py)
_PIXTRAL_SHAPE_KEYS = frozenset({"hidden_size", "intermediate_size", "num_hidden_layers"})
_PIXTRAL_OTHER_KEYS = frozenset(
    {
        "num_channels",
        "patch_size",
        "head_dim",
        "num_attention_heads",
        "image_size",
        "hidden_act",
        "attention_dropout",
        "rope_parameters",
        "rope_theta",
        "initializer_range",
    }
)


def pixtral_tower(
    vision: dict[str, Any], text_hidden: int, merge: int, bias: bool
) -> dict[str, int]:
    """Return VisionTower fields for Mistral 3's Pixtral vision_config and its projector.

    transformers' PixtralVisionModel (models/pixtral/modeling_pixtral.py) and
    Mistral3MultiModalProjector (models/mistral3/modeling_mistral3.py), with h = hidden_size,
    i = intermediate_size, L = num_hidden_layers, T = the text model's hidden size, m =
    spatial_merge_size, no linear biases in the tower:
      patch_conv   Conv2d(num_channels -> h, kernel p × p, no bias)  c·p²·h
      ln_pre       RMSNorm(h)                                        h
      each layer:  two RMSNorms 2h, q/k/v/o 4h², MLP gate/up/down 3hi
      projector:   RMSNorm(h) h, patch merger Linear(h·m² -> h) h²·m², linear_1 h·T,
                   linear_2 T² (+ T each with multimodal_projector_bias)
    vLLM (vllm/model_executor/models/pixtral.py PixtralHFVisionModel, mistral3.py) makes
    qkv and gate_up column-parallel and o_proj and down_proj row-parallel, linear_1
    column- and linear_2 row-parallel; patch_conv, the norms and the patch merger (an
    nn.Linear) are whole on every rank, and linear_2's bias.
    """
    _check_keys(vision, _PIXTRAL_SHAPE_KEYS, _PIXTRAL_OTHER_KEYS, "Pixtral")
    h, i = _int(vision, "hidden_size"), _int(vision, "intermediate_size")
    layers = _int(vision, "num_hidden_layers")
    # PixtralVisionConfig's defaults: 3 channels, patch 16
    c, p = _int(vision, "num_channels", 3), _int(vision, "patch_size", 16)
    patch, merger = c * p * p * h, h * h * merge * merge
    block = 2 * h + 4 * h * h + 3 * h * i
    projector = h + merger + h * text_hidden + text_hidden * text_hidden + 2 * text_hidden * bias
    params = patch + h + layers * block + projector
    replicated = patch + h + layers * 2 * h + h + merger + text_hidden * bias
    return {"params": params, "replicated": replicated}


# KimiK3VisionConfig's keys (sgl-project/sglang python/sglang/srt/configs/kimi_k3.py); the
# layout keys must name the one layout SGLang builds
_KIMI_K3_SHAPE_KEYS = frozenset(
    {
        "patch_size", "init_pos_emb_height", "init_pos_emb_width", "vt_hidden_size",
        "vt_intermediate_size", "vt_num_hidden_layers", "qkv_hidden_size", "merge_kernel_size",
        "attn_bias", "linear_bias", "patch_embed_proj_bias", "norm_type",
    }
)  # fmt: skip
_KIMI_K3_LAYOUT = {
    "pos_emb_type": "divided_fixed",
    "merge_type": "sd2_tpool",
    "mm_projector_type": "patchmergerv2",
    "mlp_type": "mlp2",
}
_KIMI_K3_OTHER_KEYS = frozenset(
    {
        *_KIMI_K3_LAYOUT, "mm_hidden_size", "text_hidden_size", "vt_num_attention_heads",
        "init_pos_emb_time", "activation_func", "projector_hidden_act", "projector_ln_eps",
        "pos_emb_interpolation_mode", "_attn_implementation",
    }
)  # fmt: skip


def kimi_k3_tower(vision: dict[str, Any], text_hidden: int) -> dict[str, int]:
    """Return VisionTower fields for Kimi-K3's MoonViT3d vision_config and its projector.

    SGLang's port of the checkpoint's modeling_kimi_k3.py
    (sgl-project/sglang python/sglang/srt/models/kimi_k3_vl.py, stored at
    0c82983489411f901481560abb9519bb2a75252b: KimiK3VisionTower, MoonViTEncoderLayer,
    KimiK3MultiModalProjector), with h = vt_hidden_size, i = vt_intermediate_size,
    q = qkv_hidden_size, L = vt_num_hidden_layers, m = mm_hidden_size · merge_h · merge_w,
    T = text_hidden_size, n = h (rmsnorm) or 2h (layernorm):
      patch_embed  Conv2d(3 -> h, p × p) 3·p²·h (+ h with patch_embed_proj_bias) and the
                   learnt position embedding init_pos_emb_height × _width × h (the time
                   embedding is a fixed buffer, the 2D RoPE has no weights)
      each layer:  norm0, norm1 2n, wqkv h·3q, wo q·h (+ 3q + h with attn_bias), MLP fc0
                   h·i, fc1 i·h (+ i + h with linear_bias)
      final norm n; projector proj.0 m², proj.2 m·T (no biases), post_norm RMSNorm(T) T.
    SGLang runs the tower replicated on every rank (KimiK3ForConditionalGeneration
    use_data_parallel: images are split across ranks, not weights).
    """
    _check_keys(vision, _KIMI_K3_SHAPE_KEYS, _KIMI_K3_OTHER_KEYS, "Kimi-K3 MoonViT3d")
    for key, built in _KIMI_K3_LAYOUT.items():
        if vision.get(key, built) != built:
            raise KvcalcError(
                f"vision_config.{key} {vision[key]!r} is not understood: SGLang's Kimi-K3 tower "
                f"builds {built!r} only"
            )
    flags = {k: vision[k] for k in ("attn_bias", "linear_bias", "patch_embed_proj_bias")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise KvcalcError(f"vision_config bias flags must be true or false, not {flags!r}")
    norm = {"rmsnorm": 1, "layernorm": 2}.get(str(vision["norm_type"]))
    if norm is None:
        raise KvcalcError(f"vision_config.norm_type {vision['norm_type']!r} is not understood")
    merge = vision["merge_kernel_size"]
    if not (isinstance(merge, list) and len(merge) == 2 and all(isinstance(x, int) for x in merge)):
        raise KvcalcError(f"vision_config.merge_kernel_size must be two integers, not {merge!r}")
    h, i = _int(vision, "vt_hidden_size"), _int(vision, "vt_intermediate_size")
    q, layers = _int(vision, "qkv_hidden_size"), _int(vision, "vt_num_hidden_layers")
    p = _int(vision, "patch_size")
    pos = _int(vision, "init_pos_emb_height") * _int(vision, "init_pos_emb_width") * h
    m = _int(vision, "mm_hidden_size", h) * merge[0] * merge[1]
    text = _int(vision, "text_hidden_size", text_hidden)
    patch = 3 * p * p * h + h * flags["patch_embed_proj_bias"]
    block = 2 * norm * h + 3 * h * q + q * h + 2 * h * i
    block += (3 * q + h) * flags["attn_bias"] + (i + h) * flags["linear_bias"]
    params = patch + pos + layers * block + norm * h + m * m + m * text + text
    return {"params": params, "replicated": params}


def _kimi_k3(config: dict[str, Any]) -> dict[str, int]:
    return kimi_k3_tower(config["vision_config"], _text_hidden(config, 7168))


def _text_hidden(config: dict[str, Any], default: int) -> int:
    text = config.get("text_config") or {}
    hidden = text.get("hidden_size", default)
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden <= 0:
        raise KvcalcError(f"text_config.hidden_size must be a positive integer, not {hidden!r}")
    return hidden


def _qwen3_vl(config: dict[str, Any]) -> dict[str, int]:
    return qwen3_vl_tower(config["vision_config"])


def _qwen3_5(config: dict[str, Any]) -> dict[str, int]:
    """Qwen3.5's tower is Qwen3-VL's without the deepstack mergers: transformers'
    Qwen3_5VisionModel (models/qwen3_5/modular_qwen3_5.py) deletes them and its config has
    no deepstack_visual_indexes; vLLM builds the same Qwen3_VisionTransformer as for Qwen3-VL
    (vllm/model_executor/models/qwen3_5.py), which makes one merger per listed index."""
    vision = dict(config["vision_config"])
    deepstack = vision.pop("deepstack_visual_indexes", [])
    if deepstack != []:
        raise KvcalcError(
            f"vision_config.deepstack_visual_indexes is {deepstack!r}: Qwen3.5's tower has no "
            "deepstack mergers in transformers, and kvcalc cannot tell which count is built"
        )
    return qwen3_vl_tower({**vision, "deepstack_visual_indexes": []})


def _mistral3(config: dict[str, Any]) -> dict[str, int]:
    # Mistral3Config's defaults (models/mistral3/configuration_mistral3.py): merge 2, no
    # projector bias, the last layer's features
    feature_layer = config.get("vision_feature_layer", -1)
    if feature_layer != -1:
        raise KvcalcError(
            f"vision_feature_layer {feature_layer!r} is not understood: transformers builds "
            "every vision layer and a wider projector for a list, vLLM only the layers up to "
            "it; kvcalc counts the tower for -1 (the last layer) only"
        )
    merge = _int(config, "spatial_merge_size", 2, where="")
    bias = config.get("multimodal_projector_bias", False)
    if not isinstance(bias, bool):
        raise KvcalcError(f"multimodal_projector_bias must be true or false, not {bias!r}")
    text = config.get("text_config") or {}
    if "hidden_size" not in text:
        raise KvcalcError("text_config has no 'hidden_size': cannot count the projector")
    return pixtral_tower(config["vision_config"], _text_hidden(config, 0), merge, bias)


def _gemma3(config: dict[str, Any]) -> dict[str, int]:
    # 2304: Gemma3TextConfig's default (configuration_gemma3.py)
    return gemma3_tower(config["vision_config"], _text_hidden(config, 2304))


def _gemma4(config: dict[str, Any]) -> dict[str, int]:
    # 2304: Gemma4TextConfig's default (configuration_gemma4.py)
    text_hidden = _text_hidden(config, 2304)
    vision = config["vision_config"]
    fields = gemma4_tower(vision, text_hidden)
    audio = config.get("audio_config")
    linears = 0
    if audio is not None:
        if not isinstance(audio, dict):
            raise KvcalcError(f"audio_config must be a mapping or null, not {audio!r}")
        counted = gemma4_audio_tower(audio, text_hidden)
        fields = {
            "params": fields["params"] + counted["params"],
            "replicated": fields["replicated"] + counted["params"],
            "audio": counted["params"],
        }
        linears = counted["linears"]
    # vLLM's Gemma4ForConditionalGeneration (gemma4_mm.py) hands both towers one tower_quant:
    # the quant config when the vision hidden_size and intermediate_size are multiples of 64
    # (always for bitsandbytes and torchao, which kvcalc does not model), else None. With it
    # every tower linear, each a ReplicatedLinear, takes the weight dtype; without it the
    # whole tower is 16-bit, which replicated (all of it, held in 16 bits) already says.
    if _int(vision, "hidden_size") % 64 == 0 and _int(vision, "intermediate_size") % 64 == 0:
        fields["whole_linears"] = gemma4_vision_linears(vision, text_hidden) + linears
    else:  # no tower_quant: the towers stay 16-bit whatever the weights dtype
        fields["quantized"] = False
    return fields


def _llama4(config: dict[str, Any]) -> dict[str, int]:
    # 5120: Llama4TextConfig's default (configuration_llama4.py)
    return llama4_tower(config["vision_config"], _text_hidden(config, 5120))


# Outer model_type -> its tower reader (given the whole config); None: not counted.
TOWERS: dict[str, Callable[[dict[str, Any]], dict[str, int] | None]] = {
    "qwen3_vl": _qwen3_vl,
    "qwen3_vl_moe": _qwen3_vl,
    "qwen3_5": _qwen3_5,
    "qwen3_5_moe": _qwen3_5,
    "mistral3": _mistral3,
    "gemma3": _gemma3,
    "gemma4": _gemma4,
    "llama4": _llama4,
    "kimi_k3": _kimi_k3,
}


# Outer model_type -> the checkpoint's module names of its tower and projector, as a
# published recipe's ignore list names them (nvidia/Gemma-4-31B-IT-NVFP4 config.json:
# "model.vision_tower*", "model.embed_vision*"). Only families whose names were read.
TOWER_MODULES: dict[str, tuple[str, ...]] = {
    "gemma4": ("model.vision_tower", "model.embed_vision"),
    # nvidia/Qwen3.5-397B-A17B-NVFP4 and -122B-A10B-NVFP4 config.json: "model.visual*"
    "qwen3_5": ("model.visual",),
    "qwen3_5_moe": ("model.visual",),
    # mistralai/Devstral-Small-2-24B-Instruct-2512 config.json modules_to_not_convert
    "mistral3": ("model.vision_tower", "model.multi_modal_projector"),
    # moonshotai/Kimi-K3 config.json ignore list: "re:.*vision_tower.*", "re:.*mm_projector.*"
    # (SGLang's encoder_only_safetensors_weight_prefixes: "vision_tower.", "mm_projector.")
    "kimi_k3": ("vision_tower", "mm_projector"),
}


# A Gemma 4 checkpoint's audio tower and projector: Gemma4Model's audio_tower and
# embed_audio (transformers modeling_gemma4.py; vLLM's gemma4_mm.py hf_to_vllm_mapper maps
# "model.audio_tower." and "model.embed_audio.")
_GEMMA4_AUDIO_MODULES = ("model.audio_tower", "model.embed_audio")


def read_tower(config: dict[str, Any]) -> dict[str, int] | None:
    """Return the vision tower's VisionTower fields, or None when kvcalc does not count it.

    A Gemma 4 config's audio tower (audio_config, E2B / E4B) is counted with it (field
    audio). None for a family without a reader, a config without vision_config, or a
    checkpoint published
    quantised whose recipe may quantise the tower: counted only when the recipe leaves every
    tower module unquantised (quant.Recipe.leaves_unquantised: its ignore list names it, or
    it lists the modules it quantises and the tower is not among them), and then 16-bit
    whatever --weights-dtype says (quantized false).
    """
    model_type = str(config.get("model_type") or "")
    reader = TOWERS.get(model_type)
    vision = config.get("vision_config")
    if reader is None or not isinstance(vision, dict):
        return None
    quant = config.get("quantization_config") or (config.get("text_config") or {}).get(
        "quantization_config"
    )
    if not quant:
        return reader(config)
    from kvcalc.quant import parse_recipe  # quantised checkpoints alone need it

    modules = TOWER_MODULES.get(model_type, ())
    if model_type == "gemma4" and config.get("audio_config") is not None:
        modules += _GEMMA4_AUDIO_MODULES
    recipe = parse_recipe(quant)
    if not modules or not all(recipe.leaves_unquantised(module) for module in modules):
        return None
    fields = reader(config)
    return None if fields is None else {**fields, "quantized": False}


def _check_keys(
    vision: Mapping[str, Any], shape: frozenset[str], other: frozenset[str], family: str
) -> None:
    """Refuse a vision_config with a key kvcalc does not read, or without a shape key."""
    unknown = sorted(set(vision) - shape - other - _CONFIG_BOOKKEEPING)
    if unknown:
        raise KvcalcError(
            f"vision_config key {unknown[0]!r} is not understood: kvcalc cannot count "
            f"this {family} vision tower"
        )
    missing = sorted(k for k in shape if k not in vision)
    if missing:
        raise KvcalcError(f"vision_config has no {missing[0]!r}: cannot count the vision tower")
