"""Hugging Face config.json (a dict) -> ModelSpec, through the family table (strict)."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from pydantic import ValidationError

from kvcalc.errors import KvcalcError, did_you_mean
from kvcalc.hf import _standard
from kvcalc.hf._config import _Config, _dtype, _positive, text_config
from kvcalc.hf._tower import read_tower
from kvcalc.hf.families import REFUSED, Family, families, is_cache_key, is_set
from kvcalc.quant import checkpoint_kv, published_weights
from kvcalc.records import record
from kvcalc.specs import ModelSpec, format_validation_error

# Defaults that transformers' config classes fill in when a published config.json leaves a
# key out (google/gemma-3-27b-it's text_config has no vocab_size, for one).
# huggingface/transformers:src/transformers/models/gemma3/configuration_gemma3.py:Gemma3TextConfig
_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {
        "vocab_size": 262_208,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 131_072,
        "sliding_window": 4096,
    },
    # configuration_qwen3_vl.py:Qwen3VLTextConfig (head_dim is not hidden // heads there)
    "qwen3_vl_text": {"head_dim": 128},
}

# Outer (multimodal) model_types whose text_config carries no model_type of its own.
_TEXT_FAMILY = {
    "gemma3": "gemma3_text",
    "gemma4": "gemma4_text",
    "qwen3_vl": "qwen3_vl_text",
    "qwen3_vl_moe": "qwen3_vl_moe_text",
    "minimax_m3_vl": "minimax_m3_vl_text",
    "mistral3": "mistral",  # Mistral3Config's default text_config
}


# Multimodal families whose lm_head is tied by the outer config's tie_word_embeddings (default
# False), whatever text_config says: Qwen3VLForConditionalGeneration ties through its own
# config (PreTrainedModel.get_expanded_tied_weights_keys reads self.config).
_OUTER_TIES = frozenset({"qwen3_vl_text", "qwen3_vl_moe_text"})
# ... and those tied when either config says so: MiniMaxM3VLConfig.__post_init__ takes
# text_config's tie_word_embeddings when its own is False.
_EITHER_TIES = frozenset({"minimax_m3_vl_text"})
# Multimodal wrappers that tie lm_head the same way but whose own config defaults
# tie_word_embeddings to True: Mistral3ForConditionalGeneration (Mistral3Config).
_OUTER_TIES_DEFAULT_TRUE = frozenset({"mistral3"})


@record
class Imported:
    """An imported spec and the warnings met on the way."""

    spec: ModelSpec
    warnings: tuple[str, ...] = field(default_factory=tuple)


# Outer (multimodal) model_types whose language model is read by their own family, whatever
# text_config's model_type says: Kimi-K3's text_config says kimi_linear, but its layers are
# not transformers' kimi_linear ones (kvcalc/hf/_linear.py kimi_k3).
_OUTER_FAMILIES = frozenset({"kimi_k3"})


def resolve_family(config: dict[str, Any], data: dict[str, Any]) -> str:
    """Return the model_type of the language model a config describes."""
    if data is not config and config.get("model_type") in _OUTER_FAMILIES:
        return str(config["model_type"])
    family = str(data.get("model_type") or config.get("model_type") or "")
    if data is not config and not data.get("model_type"):
        family = _TEXT_FAMILY.get(family, family)
    if family == "gemma3" and data is not config:
        family = "gemma3_text"  # the text model of a multimodal Gemma 3 config
    return family


def _check_keys(data: dict[str, Any], family: Family) -> str | None:
    """Return the first cache-changing key the family does not read, or None."""
    for key, value in data.items():
        if is_cache_key(key) and is_set(value) and key not in family.reads:
            return key
    return None


def import_config(
    config: dict[str, Any],
    source: str,
    name: str | None = None,
    published_params: str | None = None,
    checkpoint_bytes: int | None = None,
    assume_standard: bool = False,
) -> Imported:
    """Return the ModelSpec a Hugging Face config.json describes, with exact parameter counts.

    The config's model_type must be a supported family (kvcalc.hf.families) and every
    cache-changing key it sets must be one that family reads; otherwise KvcalcError names
    what is not understood. assume_standard=True reads such a config with the standard
    keys instead, and says so in a warning.
    """
    warnings: list[str] = []
    data = text_config(config)
    family_name = resolve_family(config, data)
    if data is not config and family_name in _OUTER_TIES:
        data = {**data, "tie_word_embeddings": bool(config.get("tie_word_embeddings", False))}
    if data is not config and family_name in _EITHER_TIES:
        tied = config.get("tie_word_embeddings") or data.get("tie_word_embeddings")
        data = {**data, "tie_word_embeddings": bool(tied)}
    if data is not config and config.get("model_type") in _OUTER_TIES_DEFAULT_TRUE:
        data = {**data, "tie_word_embeddings": bool(config.get("tie_word_embeddings", True))}
    table = families()
    family = table.get(family_name)
    if family is not None and family.model_type != family_name:
        family_name = family.model_type  # an alias (RefinedWebModel -> falcon)
    defaults = _FAMILY_DEFAULTS.get(family_name, {})
    if defaults:
        data = {**defaults, **{k: v for k, v in data.items() if v is not None}}
    c = _Config(data)
    if family is None:
        shown = family_name or "(none)"
        if not assume_standard:
            reason = REFUSED.get(family_name)
            if reason:
                raise KvcalcError(f"model_type {shown!r} is not supported: {reason}")
            raise KvcalcError(
                f"unknown model_type {shown!r}{did_you_mean(family_name, list(table))}: "
                "see `kvcalc import --list-families`, or pass --assume-standard to read it "
                "with the standard keys"
            )
        if not any(c.has(k) for k in ("num_attention_heads", "n_head", "num_heads")):
            raise KvcalcError(
                f"model_type {shown!r} is not modelled: its config has no attention "
                "heads (a recurrent or state-space model?); kvcalc sizes attention KV caches"
            )
        warnings.append(
            f"unknown model_type {shown!r} read with the standard keys (--assume-standard): "
            "num_attention_heads, num_key_value_heads, head_dim ...; check the result"
        )
        family = Family(family_name, "read with the standard keys", crosschecked=False)
    else:
        key = _check_keys(data, family)
        if key is not None:
            if not assume_standard:
                raise KvcalcError(
                    f"config key {key!r} changes what a {family_name} model caches and kvcalc "
                    "does not model it (--assume-standard ignores it)"
                )
            warnings.append(
                f"config key {key!r} is not modelled and was ignored (--assume-standard): "
                "check the result"
            )
    if family.build is not None:
        fields = family.build(c, family_name)
    else:
        fields = standard_fields(c, family_name, warnings)
    params = fields["params"]
    weights_quant, quant_warnings = published_weights(
        config, data, family_name, params.model_dump(), 4 if _dtype(c) == "fp32" else 2
    )
    warnings += quant_warnings
    architectures = data.get("architectures") or config.get("architectures") or [None]
    if data is not config and config.get("model_type") in _OUTER_FAMILIES:
        architectures = config.get("architectures") or architectures
    spec_data: dict[str, Any] = {
        "name": name
        or str(data.get("_name_or_path") or config.get("_name_or_path") or family_name),
        "source": source,
        "family": family_name or None,
        "architecture": architectures[0],
        "n_layers": fields["n_layers"],
        "d_model": c.get_int("hidden_size", "n_embd", "d_model"),
        "vocab_size": c.get_int("vocab_size"),
        "n_params": params.total,
        "params": params.model_dump(),
        "published_params": published_params,
        "tower": read_tower(config) if data is not config else None,
        "multimodal": data is not config
        and any(isinstance(config.get(k), dict) for k in ("vision_config", "audio_config")),
        "checkpoint_bytes": checkpoint_bytes,
        "weights_quant": weights_quant,
        "max_position_embeddings": c.opt_int("max_position_embeddings", "n_positions"),
        "dtype": _dtype(c),
        "tie_word_embeddings": c.get_bool(
            "tie_word_embeddings", family_name in _standard._TIED_BY_DEFAULT
        ),
        "attention": fields["attention"],
        "layers": fields.get("layers"),
        "kinds": fields.get("kinds"),
        "mtp_layers": fields.get("mtp_layers", 0),
        "mtp_unmodelled": fields.get("mtp_unmodelled"),
        "moe": fields.get("moe"),
        "checkpoint_kv": checkpoint_kv(config),
    }
    try:
        spec = ModelSpec.model_validate(spec_data)
    except ValidationError as exc:
        raise KvcalcError(f"inconsistent config: {format_validation_error(exc)}") from None
    return Imported(spec=spec, warnings=tuple(warnings))


def moe_fields(c: _Config, family: str) -> dict[str, Any] | None:
    """Return the spec's MoE shape from the usual keys, or None for a dense model."""
    n_experts = c.opt_int("num_local_experts", "n_routed_experts", "num_experts")
    if not n_experts:
        return None
    return {
        "n_experts": n_experts,
        "n_experts_per_token": c.get_int(
            "num_experts_per_tok", "experts_per_token", "num_experts_per_token", default=1
        ),
        "n_shared_experts": c.get_int("n_shared_experts", default=0)
        or (1 if c.get_int("shared_expert_intermediate_size", default=0) else 0)
        or (1 if family == "llama4_text" else 0),
    }


def standard_fields(c: _Config, family: str, warnings: list[str]) -> dict[str, Any]:
    """Return the spec fields of a standard family: uniform attention, sliding / chunked layers."""
    n_layers = c.get_int("num_hidden_layers", "n_layer", "num_layers")
    attention = _standard._attention(c, family)
    layers = _standard._layers(c, family, n_layers)
    if layers is None and _positive(c, "attention_chunk_size"):
        warnings.append(
            "config sets attention_chunk_size but no chunked layers kvcalc recognises: "
            "all layers are counted as full attention, an upper bound"
        )
    return {
        "n_layers": n_layers,
        "attention": attention,
        "layers": layers,
        "params": _standard._param_breakdown(c, family, attention),
        "moe": moe_fields(c, family),
        "mtp_layers": c.get_int("num_nextn_predict_layers", default=0),
    }
