"""Adapters of the hybrids of attention and Mamba / Mamba2 mixers (a fixed conv + SSM state
per sequence): Nemotron-H, Jamba, Granite-4.0-H, Falcon-H1.

Each adapter reads its family's config keys into the spec's layer kinds and counts the
parameters of the transformers model exactly (checked by tests/test_crosscheck.py on the
`meta` device); the module each count comes from is named beside it.
"""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.hf._config import _Config
from kvcalc.hf._layers import (
    _attn_params,
    _breakdown,
    _gqa,
    _period,
    _state_dtype_fields,
)
from kvcalc.specs import ParamBreakdown


def _chunk_size(c: _Config, *keys: str, default: int | None = None) -> dict[str, Any]:
    """Return the state kind's chunk_size field: the scan chunk the config publishes.

    vLLM's ModelConfig.get_mamba_chunk_size reads the config's mamba_chunk_size, else its
    chunk_size, as the engine's mamba_cache_mode all aligns its block to it
    (kvcalc/formula.py _vllm_block); a family's keys name the attributes its config class
    keeps it in. None published: the config class's own default where the engine loads the
    config with that class (`default`), else no field (mode all is refused, not guessed).
    """
    values = {key: c.get_int(key) for key in keys if c.has(key)}
    if len(set(values.values())) > 1:
        shown = ", ".join(f"{key} {value}" for key, value in values.items())
        raise KvcalcError(f"config sets {shown}: which one is the mixer's chunk is not read")
    if not values:
        return {} if default is None else {"chunk_size": default}
    key, value = next(iter(values.items()))
    if value == 0:
        raise KvcalcError(f"config key {key!r} must be a positive chunk of tokens, got 0")
    return {"chunk_size": value}


# ---- NVIDIA Nemotron-H (nemotron_h) -----------------------------------------------------

# layers_block_type names (transformers NemotronHConfig, legacy and current) -> pattern letters
_BLOCK_LETTERS = {
    "mamba": "M", "linear_attention": "M", "attention": "*", "full_attention": "*",
    "mlp": "-", "moe": "E",
}  # fmt: skip


def _block_types_pattern(value: Any, key: str) -> str:
    if not isinstance(value, list) or any(v not in _BLOCK_LETTERS for v in value):
        raise KvcalcError(
            f"config key {key!r} must list layer types among {', '.join(_BLOCK_LETTERS)}"
        )
    return "".join(_BLOCK_LETTERS[v] for v in value)


def nemotron_h(c: _Config, family: str) -> dict[str, Any]:
    """Nemotron-H / Nemotron-3: hybrid_override_pattern M (Mamba2), * (attention), - (MLP),
    E (MoE); only M and * layers cache anything.

    transformers models/nemotron_h/modeling_nemotron_h.py: NemotronHMamba2Mixer
    (conv1d over d_inner + 2·n_groups·d_state channels, d_inner = mamba_num_heads ·
    mamba_head_dim; ssm state mamba_num_heads × mamba_head_dim × ssm_state_size),
    NemotronHAttention, NemotronHMLP (up/down, no gate), NemotronHMoE.
    """
    pattern = c.data.get("hybrid_override_pattern")
    if pattern is None and c.has("layers_block_type"):
        pattern = _block_types_pattern(c.data["layers_block_type"], "layers_block_type")
    if not isinstance(pattern, str) or not pattern or set(pattern) - set("M*-E"):
        raise KvcalcError("config key 'hybrid_override_pattern' must be a string of M * - E")
    n_layers = len(pattern)
    if c.has("num_hidden_layers") and c.get_int("num_hidden_layers") != n_layers:
        raise KvcalcError(
            f"hybrid_override_pattern lists {n_layers} layers, not num_hidden_layers "
            f"{c.get_int('num_hidden_layers')}"
        )
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads", default=n_heads)
    d = c.get_int("head_dim", "attention_head_dim", default=h // n_heads)
    m_heads = c.get_int("mamba_num_heads")
    m_dim = c.get_int("mamba_head_dim")
    d_state = c.get_int("ssm_state_size")
    groups = c.get_int("n_groups", default=1)
    kernel = c.get_int("conv_kernel", default=4)
    d_inner = m_heads * m_dim
    conv_dim = d_inner + 2 * groups * d_state
    names = {"M": "mamba", "*": "full", "-": "mlp", "E": "moe"}
    kinds: dict[str, Any] = {
        "mamba": {
            "kind": "state", "mixer": "mamba2", "conv_kernel": kernel, "conv_inner": d_inner,
            "conv_groups": groups, "conv_group_channels": 2 * d_state, "state_heads": m_heads,
            "state_head_elems": m_dim * d_state,
            # absent: float32, vLLM's NemotronHForCausalLMConfig.DEFAULT_MAMBA_SSM_CACHE_DTYPE
            # (vllm/model_executor/models/config.py), "the only dtype known to be accurate"
            **(
                _state_dtype_fields(c, "mamba_ssm_cache_dtype")
                if c.has("mamba_ssm_cache_dtype")
                else {"state_dtype": "fp32"}
            ),
            # transformers NemotronHConfig keeps a mamba_chunk_size kwarg as chunk_size, and
            # so does vLLM's own (vllm-project/vllm@a59ddf748721ca8c4c538c77364d8540f15ed5cc:
            # vllm/transformers_utils/configs/nemotron_h.py), a published chunk_size then
            # set over it; with both set they disagree on which wins (refused), with neither
            # on the default (transformers 128, vLLM's 256: no field, mode all refused)
            **_chunk_size(c, "mamba_chunk_size", "chunk_size"),
        },
        "mlp": {"kind": "none", "reason": "no_attention"},
        "moe": {"kind": "none", "reason": "no_attention"},
    }  # fmt: skip
    layer_names = [names[ch] for ch in pattern]
    kinds = {k: v for k, v in kinds.items() if k in layer_names}

    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", False)
    conv_bias = c.get_bool("use_conv_bias", True)
    use_bias = c.get_bool("use_bias", False)
    mlp_bias = c.get_bool("mlp_bias", False)
    attention = mixer = other = mlp = experts = 0
    n_experts = c.get_int("n_routed_experts", "num_local_experts", default=0)
    for ch in pattern:
        if ch == "M":
            mixer += h * (d_inner + conv_dim + m_heads) + d_inner * h  # in_proj, out_proj
            mixer += (d_inner + conv_dim + m_heads + h) if use_bias else 0
            other += conv_dim * kernel + (conv_dim if conv_bias else 0)  # conv1d
            other += 3 * m_heads + d_inner  # dt_bias, A_log, D, gated RMSNorm
        elif ch == "*":
            attention += _attn_params(h, n_heads, n_kv, d)
        elif ch == "-":
            inter = c.get_int("intermediate_size")
            mlp += 2 * h * inter + ((inter + h) if mlp_bias else 0)
        else:
            latent = c.get_int("moe_latent_size", default=0)
            width = latent or h
            inter = c.get_int("moe_intermediate_size")
            experts += n_experts * 2 * width * inter + n_experts * h  # experts, router
            shared = c.get_int("moe_shared_expert_intermediate_size")
            mlp += 2 * h * shared + ((shared + h) if mlp_bias else 0)
            if latent:
                mlp += 2 * h * latent + ((latent + h) if mlp_bias else 0)
    mtp_pattern = c.data.get("mtp_hybrid_override_pattern") or "*E"
    if c.has("mtp_layers_block_type"):
        mtp_pattern = _block_types_pattern(c.data["mtp_layers_block_type"], "mtp_layers_block_type")
    n_nextn = c.get_int("num_nextn_predict_layers", default=0)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=attention + mixer,
        mlp=mlp,
        experts=experts,
        norms=n_layers * h + h,  # one norm per block, norm_f
        other=other,
    )
    moe = None
    if n_experts:
        moe = {
            "n_experts": n_experts,
            "n_experts_per_token": c.get_int("num_experts_per_tok", default=1),
            "n_shared_experts": 1,
        }
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "layers": {"pattern": _period(layer_names)},
        "kinds": kinds,
        "params": params,
        "moe": moe,
        "mtp_layers": n_nextn * str(mtp_pattern).count("*"),
    }


NEMOTRON_H_READS = frozenset(
    {
        "hybrid_override_pattern", "mamba_num_heads", "mamba_head_dim", "ssm_state_size",
        "n_groups", "conv_kernel", "mamba_ssm_cache_dtype", "num_nextn_predict_layers",
        "mtp_hybrid_override_pattern", "expand", "layers_block_type", "mtp_layers_block_type",
        "chunk_size", "mamba_chunk_size",
    }
)  # fmt: skip


# ---- AI21 Jamba (jamba) ------------------------------------------------------------------


def jamba(c: _Config, family: str) -> dict[str, Any]:
    """Jamba: attention in layers i % attn_layer_period == attn_layer_offset, Mamba (1) in
    the rest; MoE in layers i % expert_layer_period == expert_layer_offset.

    transformers models/jamba/configuration_jamba.py (layers_block_type,
    layers_num_experts, mamba_dt_rank 'auto' = ceil(hidden / 16)) and modeling_jamba.py
    (JambaMambaMixer: conv1d over d_inner = mamba_expand · hidden, ssm state d_inner ×
    mamba_d_state; in_proj, x_proj, dt_proj, out_proj, dt/B/C layernorms).
    """
    import math

    n_layers = c.get_int("num_hidden_layers")
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads", default=n_heads)
    d = h // n_heads
    period, offset = (
        c.get_int("attn_layer_period", default=8),
        c.get_int("attn_layer_offset", default=4),
    )
    e_period = c.get_int("expert_layer_period", default=2)
    e_offset = c.get_int("expert_layer_offset", default=1)
    n_experts = c.get_int("num_experts", default=16)
    d_inner = c.get_int("mamba_expand", default=2) * h
    d_state = c.get_int("mamba_d_state", default=16)
    kernel = c.get_int("mamba_d_conv", default=4)
    raw_rank = c.data.get("mamba_dt_rank", "auto")
    dt_rank = math.ceil(h / 16) if raw_rank in (None, "auto") else c.get_int("mamba_dt_rank")
    proj_bias = c.get_bool("mamba_proj_bias", False)
    conv_bias = c.get_bool("mamba_conv_bias", True)
    inter = c.get_int("intermediate_size")
    attention = mixer = other = mlp = experts = 0
    names = []
    for i in range(n_layers):
        if i % period == offset:
            names.append("full")
            attention += _attn_params(h, n_heads, n_kv, d)
        else:
            names.append("mamba")
            mixer += h * 2 * d_inner + d_inner * (dt_rank + 2 * d_state) + d_inner * h  # in/x/out
            mixer += dt_rank * d_inner + d_inner  # dt_proj with bias
            mixer += (2 * d_inner + h) if proj_bias else 0
            other += d_inner * kernel + (d_inner if conv_bias else 0)  # conv1d
            other += d_inner * d_state + d_inner + dt_rank + 2 * d_state  # A_log, D, norms
        if n_experts > 1 and i % e_period == e_offset:
            experts += n_experts * 3 * h * inter + n_experts * h
        else:
            mlp += 3 * h * inter
    params = _breakdown(
        c,
        h,
        tied_default=False,
        attention=attention + mixer,
        mlp=mlp,
        experts=experts,
        norms=n_layers * 2 * h + h,
        other=other,
    )
    kinds = {
        "mamba": {
            "kind": "state", "mixer": "mamba", "conv_kernel": kernel, "conv_inner": d_inner,
            "state_heads": d_inner, "state_head_elems": d_state,
        }
    }  # fmt: skip
    moe = None
    if n_experts > 1:
        moe = {
            "n_experts": n_experts,
            "n_experts_per_token": c.get_int("num_experts_per_tok", default=2),
        }
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "layers": {"pattern": _period(names)},
        "kinds": kinds,
        "params": params,
        "moe": moe,
    }


JAMBA_READS = frozenset(
    {
        "attn_layer_period", "attn_layer_offset", "mamba_d_state", "mamba_d_conv",
        "mamba_expand", "mamba_dt_rank", "mamba_conv_bias", "mamba_proj_bias",
    }
)  # fmt: skip


# ---- IBM Granite-4.0-H (granitemoehybrid) -------------------------------------------------


def granitemoehybrid(c: _Config, family: str) -> dict[str, Any]:
    """Granite-4.0-H: Mamba2 and attention layers by layer_types (mamba / attention), each
    with a MoE (or none) plus a shared MLP.

    transformers models/granitemoehybrid (GraniteMoeHybridMambaLayer: d_inner = mamba_expand
    · hidden, conv over d_inner + 2·n_groups·d_state, ssm mamba_n_heads × mamba_d_head ×
    mamba_d_state; GraniteMoeHybridMoE router + experts; shared_mlp input/output linear)."""
    n_layers = c.get_int("num_hidden_layers")
    types = c.data.get("layer_types") or c.data.get("layers_block_type") or ["mamba"] * n_layers
    names_map = {"mamba": "mamba", "linear_attention": "mamba", "attention": "full",
                 "full_attention": "full"}  # fmt: skip
    if len(types) != n_layers or set(types) - set(names_map):
        raise KvcalcError(f"layer_types must list mamba or attention for {n_layers} layers")
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads", default=n_heads)
    d = h // n_heads
    d_inner = c.get_int("mamba_expand", default=2) * h
    m_heads = c.get_int("mamba_n_heads", default=128)
    raw_head = c.data.get("mamba_d_head", "auto")
    m_dim = d_inner // m_heads if raw_head in (None, "auto") else c.get_int("mamba_d_head")
    if m_heads * m_dim != d_inner:
        raise KvcalcError("mamba_n_heads × mamba_d_head must equal mamba_expand × hidden_size")
    groups = c.get_int("mamba_n_groups", default=1)
    d_state = c.get_int("mamba_d_state", default=256)
    kernel = c.get_int("mamba_d_conv", default=4)
    conv_dim = d_inner + 2 * groups * d_state
    conv_bias = c.get_bool("mamba_conv_bias", True)
    proj_bias = c.get_bool("mamba_proj_bias", False)
    attn_bias = c.get_bool("attention_bias", False)
    n_experts = c.get_int("num_local_experts", default=0)
    inter = c.get_int("intermediate_size")
    shared = c.get_int("shared_intermediate_size", default=0)
    attention = mixer = other = mlp = experts = 0
    for t in types:
        if names_map[t] == "full":
            attention += _attn_params(h, n_heads, n_kv, d, attn_bias)
        else:
            mixer += h * (d_inner + conv_dim + m_heads) + d_inner * h
            mixer += (d_inner + conv_dim + m_heads + h) if proj_bias else 0
            other += conv_dim * kernel + (conv_dim if conv_bias else 0) + 3 * m_heads + d_inner
        if n_experts:
            experts += n_experts * 3 * h * inter + n_experts * h
        if shared:
            mlp += 3 * h * shared
    params = _breakdown(
        c,
        h,
        tied_default=True,
        attention=attention + mixer,
        mlp=mlp,
        experts=experts,
        norms=n_layers * 2 * h + h,
        other=other,
    )
    kinds = {
        "mamba": {
            "kind": "state", "mixer": "mamba2", "conv_kernel": kernel, "conv_inner": d_inner,
            "conv_groups": groups, "conv_group_channels": 2 * d_state, "state_heads": m_heads,
            "state_head_elems": m_dim * d_state,
            # transformers GraniteMoeHybridConfig.mamba_chunk_size, default 256 (5.25.0
            # configuration_granitemoehybrid.py), the class vLLM loads the config with
            **_chunk_size(c, "mamba_chunk_size", default=256),
        }
    }  # fmt: skip
    moe = None
    if n_experts:
        moe = {"n_experts": n_experts, "n_experts_per_token": c.get_int("num_experts_per_tok", default=1),
               "n_shared_experts": 1 if shared else 0}  # fmt: skip
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "layers": {"pattern": _period([names_map[t] for t in types])},
        "kinds": kinds,
        "params": params,
        "moe": moe,
    }


GRANITE_H_READS = frozenset(
    {
        "layer_types", "layers_block_type", "mamba_expand", "mamba_n_heads", "mamba_d_head",
        "mamba_n_groups", "mamba_d_state", "mamba_d_conv", "mamba_conv_bias", "mamba_proj_bias",
        "mamba_chunk_size",
    }
)  # fmt: skip


# ---- TII Falcon-H1 (falcon_h1) -----------------------------------------------------------


def falcon_h1(c: _Config, family: str) -> dict[str, Any]:
    """Falcon-H1: every layer runs attention and a Mamba2 mixer side by side, so each layer
    caches K and V per token and a fixed Mamba2 state per sequence.

    transformers models/falcon_h1 (FalconH1DecoderLayer: self_attn and mamba in parallel;
    d_inner = mamba_d_ssm, or mamba_expand · hidden; conv over d_inner + 2·n_groups·d_state;
    LinearAttentionAndFullAttentionLayer holds both caches, measured)."""
    if c.get_bool("projectors_bias", False):
        raise KvcalcError("config key 'projectors_bias' is not modelled yet")
    n_layers = c.get_int("num_hidden_layers")
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads", default=n_heads)
    d = c.get_int("head_dim", default=h // n_heads)
    d_inner = c.get_int("mamba_d_ssm", default=0) or c.get_int("mamba_expand", default=2) * h
    m_heads = c.get_int("mamba_n_heads", default=128)
    raw_head = c.data.get("mamba_d_head", "auto")
    m_dim = d_inner // m_heads if raw_head in (None, "auto") else c.get_int("mamba_d_head")
    if m_heads * m_dim != d_inner:
        raise KvcalcError(
            f"mamba_n_heads × mamba_d_head ({m_heads * m_dim:,}) must equal mamba_d_ssm, or "
            f"mamba_expand × hidden_size ({d_inner:,}) without it (transformers refuses it too)"
        )
    groups = c.get_int("mamba_n_groups", default=1)
    d_state = c.get_int("mamba_d_state", default=256)
    kernel = c.get_int("mamba_d_conv", default=4)
    conv_dim = d_inner + 2 * groups * d_state
    conv_bias = c.get_bool("mamba_conv_bias", True)
    proj_bias = c.get_bool("mamba_proj_bias", False)
    attn_bias = c.get_bool("attention_bias", False)
    norm = d_inner if c.get_bool("mamba_rms_norm", False) else 0
    inter = c.get_int("intermediate_size")
    per_layer_attention = _attn_params(h, n_heads, n_kv, d, attn_bias)
    per_layer_mixer = h * (d_inner + conv_dim + m_heads) + d_inner * h
    per_layer_mixer += (d_inner + conv_dim + m_heads + h) if proj_bias else 0
    per_layer_other = conv_dim * kernel + (conv_dim if conv_bias else 0) + 3 * m_heads + norm
    params = _breakdown(
        c,
        h,
        tied_default=False,
        attention=n_layers * (per_layer_attention + per_layer_mixer),
        mlp=n_layers * 3 * h * inter,
        norms=n_layers * 2 * h + h,
        other=n_layers * per_layer_other,
    )
    kinds = {
        "hybrid": {
            "kind": "state", "mixer": "mamba2", "conv_kernel": kernel, "conv_inner": d_inner,
            "conv_groups": groups, "conv_group_channels": 2 * d_state, "state_heads": m_heads,
            "state_head_elems": m_dim * d_state, "attention": {"kind": "attention"},
        }
    }  # fmt: skip
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "layers": {"pattern": ["hybrid"]},
        "kinds": kinds,
        "params": params,
    }


FALCON_H1_READS = frozenset(
    {
        "mamba_d_ssm", "mamba_expand", "mamba_n_heads", "mamba_d_head", "mamba_n_groups",
        "mamba_d_state", "mamba_d_conv", "mamba_conv_bias", "mamba_proj_bias", "mamba_rms_norm",
        "projectors_bias",
    }
)  # fmt: skip
