"""Measure what Hugging Face transformers actually allocates for the KV cache.

Everything runs on the ``meta`` device: no weights are allocated and no real
compute happens, only shapes/dtypes are propagated.  This lets us build
405B/671B-shaped models in seconds and run a "forward pass" over long
sequences to see which cache tensors transformers keeps per decoder layer.

Public API (pure functions, used by pytest):

    build_meta_model(config)                     -> torch.nn.Module
    count_params(config)                         -> int
    measure_cache(config, seq_len, batch, dtype) -> list[(key_bytes, value_bytes)]
    transformers_version()                       -> str
"""

from __future__ import annotations

import copy
import types
from typing import Any

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.models.mistral3.modeling_mistral3 import Mistral3RMSNorm
from transformers.models.pixtral.modeling_pixtral import PixtralRMSNorm

__all__ = [
    "build_meta_model",
    "count_params",
    "make_config",
    "measure_cache",
    "measure_cache_storage",
    "measure_cache_tensors",
    "transformers_version",
]

# Keys of a config.json that would make transformers do something other than
# "instantiate the in-library architecture from this config".
_DROP_KEYS = (
    "auto_map",  # would point at remote code (trust_remote_code); we want the in-library class
    "quantization_config",  # e.g. DeepSeek-V3 fp8: irrelevant for shapes, may trigger quantizer hooks
    "_name_or_path",
)


def transformers_version() -> str:
    return transformers.__version__


# --------------------------------------------------------------------------- #
# Config handling
# --------------------------------------------------------------------------- #
def _clean(d: dict) -> dict:
    d = copy.deepcopy(dict(d))
    for k in _DROP_KEYS:
        d.pop(k, None)
    return d


# Published configs whose model_type transformers no longer (or never) registers, mapped the
# way the engines map them: Falcon's original "RefinedWebModel" remote-code configs use
# n_head / n_layer / n_head_kv (in-library Falcon reads num_attention_heads ...), and
# Kimi-K2 ships remote code that is DeepSeek-V3's architecture (vLLM serves it as
# DeepseekV3ForCausalLM).
_LEGACY_MODEL_TYPES = {
    "RefinedWebModel": "falcon",
    "RefinedWeb": "falcon",
    "kimi_k2": "deepseek_v3",
    # MiniMax-M3's published config.json says minimax_m3; transformers implements its text
    # model as minimax_m3_vl_text (reading the legacy sparse_attention_config keys).
    "minimax_m3": "minimax_m3_vl_text",
}
_LEGACY_KEYS = {
    "n_head": "num_attention_heads",
    "n_layer": "num_hidden_layers",
    "n_head_kv": "num_kv_heads",
}


def _legacy_to_current(model_type: str | None, d: dict) -> tuple[str | None, dict]:
    if model_type not in _LEGACY_MODEL_TYPES:
        return model_type, d
    d = {_LEGACY_KEYS.get(k, k): v for k, v in d.items()}
    return _LEGACY_MODEL_TYPES[model_type], d


# Multimodal model_types whose text model transformers registers no causal LM for
# (qwen3_vl_text is only built inside Qwen3VLForConditionalGeneration), or whose lm_head
# tying the wrapper decides (Mistral3ForConditionalGeneration reads the outer
# tie_word_embeddings, default True): the whole model is built, text-only input runs
# through it, and count_params leaves the vision tower and projector out (kvcalc counts a
# tower apart, spec.tower: count_tower_params).
_WHOLE_MODEL = frozenset({"qwen3_vl", "qwen3_vl_moe", "mistral3"})
_VISION_PREFIX = ("model.visual.", "model.vision_tower.", "model.multi_modal_projector.")


def make_config(config: dict, attn_implementation: str = "eager"):
    """config.json dict -> PreTrainedConfig of the *text decoder* to build.

    Multimodal wrappers (anything carrying a nested ``text_config``, e.g.
    Gemma3ForConditionalGeneration) are reduced to their text config, so that
    AutoModelForCausalLM builds the text-only causal LM (Gemma3ForCausalLM).
    """
    d = _clean(config)
    if isinstance(d.get("text_config"), dict):
        d["text_config"] = _clean(d["text_config"])
    model_type = d.pop("model_type", None)
    model_type, d = _legacy_to_current(model_type, d)
    if model_type is None:
        raise ValueError("config dict has no 'model_type'")
    cfg = AutoConfig.for_model(model_type, **d)
    if getattr(cfg, "text_config", None) is not None and model_type not in _WHOLE_MODEL:
        # Let the parent config class parse/normalise the nested text_config
        # (it fills in model_type e.g. "gemma3_text" when the json omits it).
        cfg = cfg.get_text_config(decoder=True)
    cfg._attn_implementation = attn_implementation
    return cfg


# --------------------------------------------------------------------------- #
# Model building
# --------------------------------------------------------------------------- #
def _from_config(cfg, dtype: torch.dtype) -> nn.Module:
    if cfg.model_type in _WHOLE_MODEL:
        from transformers import AutoModelForImageTextToText

        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(
                cfg, dtype=dtype, attn_implementation=cfg._attn_implementation
            )
        return model.eval()
    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(
                cfg, dtype=dtype, attn_implementation=cfg._attn_implementation
            )
        except TypeError:  # transformers 4.x spelling
            model = AutoModelForCausalLM.from_config(
                cfg, torch_dtype=dtype, attn_implementation=cfg._attn_implementation
            )
    model.eval()
    return model


def build_meta_model(config: dict, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Build AutoModelForCausalLM from a config.json dict on the meta device.

    Multimodal configs with a nested ``text_config`` build the text model only.
    """
    cfg = make_config(config)
    return _from_config(cfg, dtype)


def count_params(config: dict) -> int:
    """sum(p.numel()) over model.parameters() (tied embeddings counted once); a whole
    multimodal model (_WHOLE_MODEL) without its vision tower, which kvcalc counts apart
    (spec.tower, count_tower_params)."""
    model = build_meta_model(config)
    if model.config.model_type in _WHOLE_MODEL:
        return sum(
            p.numel() for n, p in model.named_parameters() if not n.startswith(_VISION_PREFIX)
        )
    return sum(p.numel() for p in model.parameters())


def build_whole_meta_model(config: dict, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Build a multimodal config's whole model (AutoModelForImageTextToText: vision tower,
    projector and language model) on the meta device."""
    from transformers import AutoModelForImageTextToText

    d = _clean(config)
    for key in ("text_config", "vision_config", "audio_config"):
        if isinstance(d.get(key), dict):
            d[key] = _clean(d[key])
    cfg = AutoConfig.for_model(d.pop("model_type"), **d)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(cfg, dtype=dtype)
    return model.eval()


# The language model's parameters in a whole multimodal model; the rest is its tower.
_LANGUAGE_PREFIXES = ("model.language_model.", "lm_head.", "language_model.")


def count_tower_params(config: dict) -> int:
    """sum(p.numel()) over a whole multimodal model outside its language model: the vision
    tower and its projector (Qwen3-VL's model.visual, merger and deepstack mergers included;
    Gemma 3's model.vision_tower and model.multi_modal_projector; Gemma 4's model.vision_tower
    and model.embed_vision, and model.audio_tower and model.embed_audio; Llama 4's vision_model and multi_modal_projector, its language
    model under language_model), which kvcalc counts apart."""
    model = build_whole_meta_model(config)
    return sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith(_LANGUAGE_PREFIXES)
    )


# What vLLM keeps whole on every tensor-parallel rank, by outer model_type: the module types
# held whole (vLLM builds them unsplit), the linears it makes row-parallel (bias whole), the
# prefixes held whole and the modules whose own (direct) parameters are whole.
# Qwen3-VL: vllm/model_executor/models/qwen3_vl.py (pos_embed is an nn.Embedding); Gemma 3:
# siglip.py (position_embedding is a VocabParallelEmbedding, split) and gemma3_mm.py (the
# projector's weight is a plain nn.Parameter).
_WHOLE_ON_EVERY_RANK = {
    "qwen3_vl": ((nn.LayerNorm, nn.Conv3d, nn.Embedding), ("attn.proj", "linear_fc2"), (), ()),
    "qwen3_vl_moe": (
        (nn.LayerNorm, nn.Conv3d, nn.Embedding),
        ("attn.proj", "linear_fc2"),
        (),
        (),
    ),
    # Qwen3.5: vllm/model_executor/models/qwen3_5.py builds qwen3_vl.py's
    # Qwen3_VisionTransformer for both, so the split is Qwen3-VL's
    "qwen3_5": ((nn.LayerNorm, nn.Conv3d, nn.Embedding), ("attn.proj", "linear_fc2"), (), ()),
    "qwen3_5_moe": (
        (nn.LayerNorm, nn.Conv3d, nn.Embedding),
        ("attn.proj", "linear_fc2"),
        (),
        (),
    ),
    "gemma3": (
        (nn.LayerNorm, nn.Conv2d),
        ("out_proj", "fc2"),
        ("model.multi_modal_projector",),
        (),
    ),
    # Mistral 3 (Pixtral): pixtral.py PixtralHFVisionModel makes qkv and gate_up
    # column-parallel and o_proj and down_proj row-parallel, mistral3.py linear_1 column-
    # and linear_2 row-parallel; patch_conv, the RMSNorms and the patch merger (nn.Linear)
    # are whole
    "mistral3": (
        (nn.Conv2d, PixtralRMSNorm, Mistral3RMSNorm),
        ("o_proj", "down_proj", "linear_2"),
        ("model.multi_modal_projector.patch_merger",),
        (),
    ),
    # Gemma 4: gemma4_mm.py builds the tower with transformers' AutoModel.from_config, makes
    # its linears ReplicatedLinear (recursive_replace_linear) and embed_vision's projection a
    # ReplicatedLinear: all of it whole; the audio tower and embed_audio (E2B / E4B) alike.
    "gemma4": (
        (),
        (),
        ("model.vision_tower", "model.embed_vision", "model.audio_tower", "model.embed_audio"),
        (),
    ),
    # Llama 4: mllama4.py makes the patch embedding, qkv, fc1s and the projector
    # column-parallel and o_proj and the fc2s row-parallel; vision_model's own
    # class_embedding and positional_embedding_vlm are plain nn.Parameters, whole.
    "llama4": ((nn.LayerNorm,), ("o_proj", "fc2"), (), ("vision_model",)),
}


def count_tower_parts(config: dict, prefixes: tuple[str, ...]) -> tuple[int, int]:
    """(parameters, nn.Linear weights) of a whole multimodal model under the given module
    prefixes (Gemma 4's model.audio_tower. and model.embed_audio.: its audio tower)."""
    model = build_whole_meta_model(config)
    params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefixes))
    linears = sum(
        m.weight.numel()
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.startswith(tuple(p.rstrip(".") for p in prefixes))
    )
    return params, linears


def count_tower_whole_on_every_rank(config: dict) -> int:
    """The tower's parameters vLLM keeps whole on every tensor-parallel rank
    (_WHOLE_ON_EVERY_RANK): whole modules, whole prefixes and row-parallel linears' biases."""
    types, row_parallel, prefixes, own = _WHOLE_ON_EVERY_RANK[config["model_type"]]
    language = tuple(p.rstrip(".") for p in _LANGUAGE_PREFIXES)
    whole = 0
    for name, module in build_whole_meta_model(config).named_modules():
        if not name or name.startswith(language):
            continue
        if (prefixes and name.startswith(prefixes)) or name in own:
            whole += sum(p.numel() for p in module.parameters(recurse=False))
        elif isinstance(module, types):
            whole += sum(p.numel() for p in module.parameters())
        elif isinstance(module, nn.Linear) and name.endswith(row_parallel):
            whole += module.bias.numel() if module.bias is not None else 0
    return whole


# --------------------------------------------------------------------------- #
# MLP / MoE stubbing
# --------------------------------------------------------------------------- #
# The KV cache only depends on the attention blocks.  MoE routers use
# data-dependent ops (nonzero / where / one_hot / index_add / histc / topk-driven
# indexing) that cannot run on meta tensors, because their output shape depends
# on values.  For measurement we therefore replace the feed-forward sub-module
# of every decoder layer by a shape-preserving stub (returns zeros like its
# input).  This does not change any cache tensor: k/v are produced by the
# attention projections from the (meta) hidden states, whose shape is unchanged.
# Stubbing is done only when the plain forward fails (see measure_cache).
# With transformers 5.23 the default experts implementation ("grouped_mm") runs
# on meta, so none of the tested families (mixtral, qwen3_moe, deepseek_v2/v3,
# gpt_oss) needed the stub; with experts_implementation="eager" they all fail
# with NotImplementedError from torch.nonzero's meta kernel and the stub is used.
_MLP_ATTR_NAMES = ("mlp", "block_sparse_moe", "moe", "feed_forward", "ffn", "mixer_mlp", "experts")


def _stub_forward(self, hidden_states, *args, **kwargs):
    out = torch.zeros_like(hidden_states)
    # Some MoE blocks return (hidden_states, router_logits); the decoder layer
    # then unpacks a tuple.  Mirror the original arity.
    if getattr(self, "_xc_returns_tuple", False):
        return out, None
    return out


def _returns_tuple(layer: nn.Module, attr: str) -> bool:
    """Whether the decoder layer unpacks a tuple from ``self.<attr>(...)``
    (e.g. GPT-OSS: ``hidden_states, _ = self.mlp(hidden_states)``)."""
    import inspect
    import re

    try:
        src = inspect.getsource(type(layer).forward)
    except (OSError, TypeError):
        return False
    pat = re.compile(r"^\s*[\w\.]+\s*,\s*[\w\.]+\s*=\s*self\." + re.escape(attr) + r"\(", re.M)
    return bool(pat.search(src))


def _decoder_layers(model: nn.Module) -> list[nn.Module]:
    best: list[nn.Module] = []
    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > len(best):
            best = list(mod)
    return best


def stub_feed_forward(model: nn.Module) -> int:
    """Replace each decoder layer's MLP/MoE forward by a zeros_like stub. Returns #stubbed."""
    n = 0
    for layer in _decoder_layers(model):
        for name in _MLP_ATTR_NAMES:
            sub = getattr(layer, name, None)
            if isinstance(sub, nn.Module) and not isinstance(sub, nn.ModuleList):
                sub._xc_returns_tuple = _returns_tuple(layer, name)
                sub.forward = types.MethodType(_stub_forward, sub)
                n += 1
                break
    return n


# --------------------------------------------------------------------------- #
# Cache extraction
# --------------------------------------------------------------------------- #
def _nbytes(t: Any) -> int:
    if t is None or not isinstance(t, torch.Tensor):
        return 0
    return t.numel() * t.element_size()


def cache_tensors(cache: Any) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
    """Per-layer (key, value) tensors held by a transformers cache object.

    Handles transformers 5.x (cache.layers[i].keys/.values), 4.4x
    (cache.key_cache / cache.value_cache lists), EncoderDecoderCache
    (self_attention_cache) and the legacy tuple-of-tuples format.
    """
    if cache is None:
        return []
    # EncoderDecoderCache -> the decoder self-attention part
    if hasattr(cache, "self_attention_cache"):
        cache = cache.self_attention_cache
    if hasattr(cache, "layers"):
        return [
            (getattr(layer, "keys", None), getattr(layer, "values", None)) for layer in cache.layers
        ]
    if hasattr(cache, "key_cache") and hasattr(cache, "value_cache"):
        return list(zip(cache.key_cache, cache.value_cache, strict=True))
    if isinstance(cache, (tuple, list)):  # legacy format
        return [(kv[0], kv[1]) for kv in cache]
    raise TypeError(f"unknown cache type {type(cache)!r}")


def _forward(model: nn.Module, seq_len: int, batch: int):
    input_ids = torch.zeros((batch, seq_len), dtype=torch.long, device="meta")
    kwargs: dict[str, Any] = dict(input_ids=input_ids, use_cache=True)
    with torch.no_grad():
        try:
            # logits_to_keep avoids materialising [B, S, vocab] (free on meta anyway)
            return model(**kwargs, logits_to_keep=1)
        except TypeError as e:
            if "logits_to_keep" not in str(e):
                raise
            return model(**kwargs)


def measure_cache_tensors(
    config: dict, seq_len: int, batch: int, dtype: torch.dtype = torch.bfloat16
) -> tuple[list[tuple[torch.Tensor | None, torch.Tensor | None]], dict]:
    """Like measure_cache but returns the tensors themselves plus info."""
    cfg = make_config(config)
    info: dict[str, Any] = {"stubbed_ffn": 0, "attn_implementation": None, "errors": []}
    last_exc: Exception | None = None
    for attn in ("eager", "sdpa"):
        for stub in (False, True):
            cfg._attn_implementation = attn
            try:
                model = _from_config(cfg, dtype)
            except Exception as e:
                last_exc = e
                info["errors"].append(f"build[{attn}]: {type(e).__name__}: {e}")
                break
            if stub:
                info["stubbed_ffn"] = stub_feed_forward(model)
            try:
                out = _forward(model, seq_len, batch)
            except Exception as e:
                last_exc = e
                info["errors"].append(
                    f"forward[{attn},stub={stub}]: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
                )
                continue
            cache = getattr(out, "past_key_values", None)
            if cache is None and isinstance(out, tuple) and len(out) > 1:
                cache = out[1]
            info["attn_implementation"] = attn
            info["cache_type"] = type(cache).__name__
            if hasattr(cache, "layers"):
                info["layer_classes"] = [type(layer).__name__ for layer in cache.layers]
            if not stub:
                info["stubbed_ffn"] = 0
            return cache_tensors(cache), info
    assert last_exc is not None
    raise RuntimeError("; ".join(info["errors"])) from last_exc


def measure_cache(
    config: dict, seq_len: int, batch: int, dtype: torch.dtype = torch.bfloat16
) -> list[tuple[int, int]]:
    """Per decoder layer (key_bytes, value_bytes) of the cache after a prefill.

    A forward with ``use_cache=True`` and input_ids [batch, seq_len] is run on
    the meta device; the model creates its default cache (DynamicCache built
    from the config, as generate() does), so sliding-window layers report what
    transformers keeps (DynamicSlidingWindowLayer keeps the last window-1
    tokens after a prefill in transformers 5.x). Bytes = numel * element_size.
    """
    kv, _ = measure_cache_tensors(config, seq_len, batch, dtype)
    return [(_nbytes(k), _nbytes(v)) for k, v in kv]


def _storage_bytes(t: Any) -> int:
    if t is None or not isinstance(t, torch.Tensor):
        return 0
    return t.untyped_storage().nbytes()


def measure_cache_storage(
    config: dict, seq_len: int, batch: int, dtype: torch.dtype = torch.bfloat16
) -> list[tuple[int, int]]:
    """Like measure_cache, but bytes of the underlying *storage* of each tensor.

    Differs from measure_cache only for sliding-window layers right after a
    prefill: DynamicSlidingWindowLayer keeps a sliced *view* of the full
    concatenated prefill tensor, so the full seq_len storage stays alive until
    the next update replaces it.
    """
    kv, _ = measure_cache_tensors(config, seq_len, batch, dtype)
    return [(_storage_bytes(k), _storage_bytes(v)) for k, v in kv]
