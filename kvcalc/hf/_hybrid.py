"""Adapters of the families whose layers are not all alike: hybrids of attention and
recurrent / linear-attention mixers, per-layer KV geometry, sparse-attention indexers.

Each adapter reads its family's config keys into the spec's layer kinds and counts the
parameters of the transformers model exactly (checked by tests/test_crosscheck.py on the
`meta` device); the module each count comes from is named beside it.
"""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.hf._config import _Config
from kvcalc.specs import ParamBreakdown

_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def _state_dtype(c: _Config, *keys: str) -> str:
    for key in keys:
        raw = c.data.get(key)
        if raw not in (None, "auto"):
            if str(raw) not in _DTYPES:
                raise KvcalcError(f"config key {key!r}: unknown dtype {raw!r}")
            return _DTYPES[str(raw)]
    return "model"


def _period(names: list[str]) -> list[str]:
    """Return the shortest repeating unit that tiles the layers exactly (else every layer)."""
    n = len(names)
    for period in range(1, n + 1):
        if n % period == 0 and all(names[i] == names[i % period] for i in range(n)):
            return names[:period]
    return names


def _gqa(n_heads: int, n_kv: int, head_dim: int, head_dim_v: int | None = None) -> dict[str, Any]:
    extra = {} if head_dim_v in (None, head_dim) else {"head_dim_v": head_dim_v}
    if n_kv == n_heads:
        return {"kind": "mha", "n_heads": n_heads, "head_dim": head_dim, **extra}
    if n_kv == 1:
        return {"kind": "mqa", "n_heads": n_heads, "head_dim": head_dim, **extra}
    return {"kind": "gqa", "n_heads": n_heads, "n_kv_heads": n_kv, "head_dim": head_dim, **extra}


def _attn_params(
    h: int, n_heads: int, n_kv: int, d: int, bias: bool = False, q_mult: int = 1
) -> int:
    """q, k, v, o projections (q_mult 2: a gated output doubles q_proj)."""
    q, kv = n_heads * d, n_kv * d
    total = h * q * q_mult + 2 * h * kv + q * h
    return total + ((q * q_mult + 2 * kv + h) if bias else 0)


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
            "state_dtype": _state_dtype(c, "mamba_ssm_cache_dtype")
            if c.has("mamba_ssm_cache_dtype")
            else "fp32",
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
    }
)  # fmt: skip


# ---- Qwen3-Next, Qwen3.5 / 3.6 (qwen3_next, qwen3_5_text, qwen3_5_moe_text) ----------------


def qwen_gated_deltanet(c: _Config, family: str) -> dict[str, Any]:
    """Qwen3-Next / Qwen3.5: Gated DeltaNet linear attention in most layers, gated full
    attention every full_attention_interval-th layer (or as layer_types lists).

    transformers models/qwen3_next/modeling_qwen3_next.py (Qwen3NextGatedDeltaNet: conv1d
    over 2·Hk·Dk + Hv·Dv channels without bias, recurrent state Hv × Dk × Dv;
    Qwen3NextAttention: q_proj doubled for the output gate, q/k RMSNorm over head_dim) and
    models/qwen3_5/modeling_qwen3_5.py (the same in split in_proj_qkv/z/b/a). The MTP layers
    (mtp_num_hidden_layers) are not part of the transformers model.
    """
    n_layers = c.get_int("num_hidden_layers")
    types = c.data.get("layer_types")
    if types is None:
        interval = c.get_int("full_attention_interval", default=4)
        types = [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention"
            for i in range(n_layers)
        ]
    if not isinstance(types, list) or len(types) != n_layers:
        raise KvcalcError(f"layer_types must list {n_layers} layers")
    names = {"full_attention": "full", "linear_attention": "linear"}
    unknown = [t for t in types if t not in names]
    if unknown:
        raise KvcalcError(f"unsupported layer type {unknown[0]!r} in layer_types")
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads", default=n_heads)
    d = c.get_int("head_dim", default=h // n_heads)
    hk, dk = c.get_int("linear_num_key_heads"), c.get_int("linear_key_head_dim")
    hv, dv = c.get_int("linear_num_value_heads"), c.get_int("linear_value_head_dim")
    kernel = c.get_int("linear_conv_kernel_dim", default=4)
    conv_dim = 2 * hk * dk + hv * dv
    kinds = {
        "linear": {
            "kind": "state", "mixer": "gated_deltanet", "conv_kernel": kernel,
            "conv_inner": hv * dv, "conv_groups": hk, "conv_group_channels": 2 * dk,
            "state_heads": hv, "state_head_elems": dk * dv,
            "state_dtype": _state_dtype(c, "mamba_ssm_dtype", "mamba_ssm_cache_dtype"),
        }
    }  # fmt: skip
    gated = family == "qwen3_next" or c.get_bool("attn_output_gate", True)
    attention = mixer = other = mlp = experts = 0
    n_experts = c.get_int("num_experts", default=0)
    mlp_only = set(c.data.get("mlp_only_layers") or [])
    step = c.get_int("decoder_sparse_step", default=1)
    for i, layer_type in enumerate(types):
        if layer_type == "full_attention":
            attention += _attn_params(h, n_heads, n_kv, d, q_mult=2 if gated else 1) + 2 * d
        else:
            mixer += h * (conv_dim + hv * dv + 2 * hv) + hv * dv * h  # in_proj*, out_proj
            other += conv_dim * kernel + 2 * hv + dv  # conv1d, dt_bias, A_log, gated norm
        if n_experts and i not in mlp_only and (i + 1) % step == 0:
            inter = c.get_int("moe_intermediate_size")
            experts += n_experts * 3 * h * inter + n_experts * h  # experts, router
            shared = c.get_int("shared_expert_intermediate_size", default=0)
            if shared:
                mlp += 3 * h * shared + h  # shared expert and its gate
        else:
            mlp += 3 * h * c.get_int("intermediate_size")
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", False)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=attention + mixer,
        mlp=mlp,
        experts=experts,
        norms=n_layers * 2 * h + h,
        other=other,
    )
    moe = None
    if n_experts:
        moe = {
            "n_experts": n_experts,
            "n_experts_per_token": c.get_int("num_experts_per_tok", default=1),
            "n_shared_experts": 1 if c.get_int("shared_expert_intermediate_size", default=0) else 0,
        }
    layer_names = [names[t] for t in types]
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "layers": {"pattern": _period(layer_names)},
        "kinds": kinds,
        "params": params,
        "moe": moe,
        "mtp_layers": c.get_int("mtp_num_hidden_layers", "num_nextn_predict_layers", default=0),
    }


QWEN_GDN_READS = frozenset(
    {
        "layer_types", "full_attention_interval", "linear_conv_kernel_dim",
        "linear_key_head_dim", "linear_num_key_heads", "linear_num_value_heads",
        "linear_value_head_dim", "mamba_ssm_dtype", "mtp_num_hidden_layers",
        "num_nextn_predict_layers",
    }
)  # fmt: skip


# ---- DeepSeek-V3.2 and GLM-5 sparse attention (deepseek_v32, glm_moe_dsa) -----------------


def _indexer_types(c: _Config, family: str, n_layers: int) -> list[str]:
    """Return each layer's indexer mode, full or shared, as GlmMoeDsaConfig derives it
    (transformers models/glm_moe_dsa/configuration_glm_moe_dsa.py __post_init__)."""
    given = c.data.get("indexer_types")
    if given is None and family == "glm_moe_dsa":
        pattern = c.data.get("index_topk_pattern")
        if isinstance(pattern, str):
            given = [{"F": "full", "S": "shared"}.get(ch, ch) for ch in pattern]
        elif pattern is not None:
            given = list(pattern)
        else:
            freq = max(c.get_int("index_topk_freq", default=1), 1)
            offset = c.get_int("index_skip_topk_offset", default=2)
            given = [
                "full" if max(i - offset + 1, 0) % freq == 0 else "shared" for i in range(n_layers)
            ]
    if given is None:
        return ["full"] * n_layers
    if not isinstance(given, list) or len(given) != n_layers or set(given) - {"full", "shared"}:
        raise KvcalcError(f"indexer_types must list full or shared for {n_layers} layers")
    return given


def dsa(c: _Config, family: str) -> dict[str, Any]:
    """DeepSeek-V3.2 / GLM-5: MLA plus the lightning indexer's key (index_head_dim) per token,
    in every layer that runs its own indexer (GLM-5.2+: indexer_types 'shared' layers reuse
    the previous full layer's top-k and cache no indexer key).

    transformers models/deepseek_v32 and models/glm_moe_dsa (DynamicIndexedLayer keeps
    indexer_keys [batch, seq, index_head_dim]); the indexer's parameters: wq_b
    (q_lora_rank → index_n_heads·index_head_dim), wk (hidden → index_head_dim), k_norm
    (LayerNorm with bias), weights_proj (hidden → index_n_heads).
    """
    from kvcalc.hf._import import standard_fields

    layer_types = c.data.get("layer_types")
    if layer_types is not None and set(layer_types) != {"indexed_attention"}:
        raise KvcalcError("layer_types other than indexed_attention are not modelled")
    fields = standard_fields(c, family, [])
    n_layers = fields["n_layers"]
    index_dim = c.get_int("index_head_dim")
    index_heads = c.get_int("index_n_heads")
    h = c.get_int("hidden_size")
    q_lora = c.get_int("q_lora_rank")
    types = _indexer_types(c, family, n_layers)
    per_indexer = q_lora * index_heads * index_dim + h * index_dim + 2 * index_dim + h * index_heads
    params: ParamBreakdown = fields["params"]
    fields["params"] = params.model_copy(
        update={"attention": params.attention + types.count("full") * per_indexer}
    )
    fields["attention"] = {**fields["attention"], "index_head_dim": index_dim}
    if "shared" in types:
        fields["layers"] = {"pattern": _period(types)}
        fields["kinds"] = {"shared": {"kind": "attention", "indexer": False}}
    return fields


DSA_READS = frozenset(
    {
        "kv_lora_rank", "qk_rope_head_dim", "v_head_dim", "index_head_dim", "indexer_types",
        "num_nextn_predict_layers", "layer_types",
    }
)  # fmt: skip


# ---- Gemma 4 (gemma4_text) ---------------------------------------------------------------


def gemma4(c: _Config, family: str) -> dict[str, Any]:
    """Gemma 4: sliding layers (num_key_value_heads × head_dim) and full layers with their
    own geometry (num_global_key_value_heads × global_head_dim; with attention_k_eq_v the
    full layers have no v_proj and transformers caches the keys as values too); the last
    num_kv_shared_layers layers reuse earlier layers' KV and cache nothing.

    transformers models/gemma4/configuration_gemma4.py (Gemma4TextConfig.__post_init__:
    layer_types default 5 sliding : 1 full, the last layer forced full, per_layer_config
    overrides of the full layers; kv_sharing_modes) and modeling_gemma4.py
    (Gemma4TextAttention: q/k norms, no K/V projections in shared layers; Gemma4TextMLP
    doubled in shared layers with use_double_wide_mlp; router and experts of the MoE block).
    """
    if c.has("per_layer_config"):
        raise KvcalcError("config key 'per_layer_config' is not modelled yet")
    n_layers = c.get_int("num_hidden_layers")
    types = c.data.get("layer_types") or [
        "sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n_layers)
    ]
    if not isinstance(types, list) or len(types) != n_layers:
        raise KvcalcError(f"layer_types must list {n_layers} layers")
    types = [*types[:-1], "full_attention"]  # Gemma4TextConfig forces the last layer full
    if set(types) - {"sliding_attention", "full_attention"}:
        raise KvcalcError("layer_types other than sliding_attention / full_attention")
    window = c.get_int("sliding_window")
    if c.data.get("use_bidirectional_attention") == "all":
        window = window // 2 + 1
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads")
    d = c.get_int("head_dim")
    k_eq_v = c.get_bool("attention_k_eq_v", False)
    global_d = c.get_int("global_head_dim", default=512)
    global_kv = c.get_int("num_global_key_value_heads", default=0) if k_eq_v else 0
    global_kv = global_kv or n_kv
    shared = c.get_int("num_kv_shared_layers", default=0)
    first_shared = n_layers - shared
    names = []
    for i, t in enumerate(types):
        if i >= first_shared:
            names.append("shared")
        else:
            names.append("sliding" if t == "sliding_attention" else "global")
    kinds: dict[str, Any] = {
        "global": {
            "kind": "attention", "n_kv_heads": global_kv, "head_dim": global_d, "k_eq_v": k_eq_v,
        },
        "shared": {"kind": "none", "reason": "kv_shared"},
    }  # fmt: skip
    kinds = {k: v for k, v in kinds.items() if k in names}
    bias = c.get_bool("attention_bias", False)
    moe = c.get_bool("enable_moe_block", False)
    n_experts = c.get_int("num_experts", default=0) if moe else 0
    inter = c.get_int("intermediate_size")
    double = c.get_bool("use_double_wide_mlp", False)
    attention = mlp = experts = norms = 0
    for i, t in enumerate(types):
        full = t == "full_attention"
        dl = global_d if full else d
        kvl = global_kv if full else n_kv
        q = n_heads * dl
        attention += h * q + q * h + dl + (q + h if bias else 0)  # q, o, q_norm
        if i < first_shared:
            n_proj = 1 if (k_eq_v and full) else 2
            attention += n_proj * (h * kvl * dl + (kvl * dl if bias else 0)) + dl  # k/v, k_norm
        mlp += 3 * h * inter * (2 if double and i >= first_shared else 1)
        norms += 4 * h
        if n_experts:
            moe_inter = c.get_int("moe_intermediate_size")
            experts += n_experts * 3 * h * moe_inter + n_experts * h + h + n_experts  # router
            norms += 3 * h
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", True)
    # per-layer inputs (Gemma 4 E2B/E4B): embed_tokens_per_layer, per_layer_model_projection
    # and its norm; per layer an input gate, a projection and a norm
    per_layer = c.get_int("hidden_size_per_layer_input", default=0)
    other = 0
    if per_layer:
        vocab_pl = c.get_int("vocab_size_per_layer_input", default=vocab)
        other = vocab_pl * n_layers * per_layer + h * n_layers * per_layer + per_layer
        other += n_layers * 2 * h * per_layer
        norms += n_layers * h
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=attention,
        mlp=mlp,
        experts=experts,
        norms=norms + h,
        other=other,
    )
    moe_spec = None
    if n_experts:
        moe_spec = {
            "n_experts": n_experts,
            "n_experts_per_token": c.get_int("top_k_experts", "num_experts_per_tok", default=1),
        }
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "layers": {"sliding_window": window, "pattern": _period(names)},
        "kinds": kinds,
        "params": params,
        "moe": moe_spec,
    }


GEMMA4_READS = frozenset(
    {
        "layer_types", "sliding_window", "global_head_dim", "num_global_key_value_heads",
        "attention_k_eq_v", "num_kv_shared_layers", "per_layer_config",
        "hidden_size_per_layer_input",
    }
)  # fmt: skip


# ---- NVIDIA Llama-Nemotron NAS / DeciLM (nemotron-nas) ------------------------------------


def _nas_intermediate(ffn_mult: Any, h: int) -> int:
    """DeciLM's _ffn_mult_to_intermediate_size: int(2·ffn_mult·h/3), up to a multiple of 256."""
    from fractions import Fraction

    width = int(2 * Fraction(str(ffn_mult)) * h / 3)
    return width if width % 256 == 0 else width + 256 - width % 256


def nemotron_nas(c: _Config, family: str) -> dict[str, Any]:
    """Llama-Nemotron NAS (DeciLM): block_configs give each layer its attention (GQA with
    n_heads_in_group, a no-op, or a linear replacement) and FFN (ffn_mult, no-op, linear).
    Only real attention layers cache K and V, each with its own KV heads.

    nvidia/Llama-3_3-Nemotron-Super-49B-v1: modeling_decilm.py (remote code, not in
    transformers, so not cross-checked): DeciLMDecoderLayer builds input_layernorm + attention
    unless attention no_op, post_attention_layernorm + gated MLP unless ffn no_op; a
    replace_with_linear block is one hidden × hidden linear.
    """
    blocks = c.data.get("block_configs")
    n_layers = c.get_int("num_hidden_layers")
    if not isinstance(blocks, list) or len(blocks) != n_layers:
        raise KvcalcError(f"block_configs must list {n_layers} layers")
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    d = c.get_int("head_dim", default=h // n_heads)
    names: list[str] = []
    kinds: dict[str, Any] = {}
    attention = mlp = norms = 0
    for block in blocks:
        attn, ffn = block.get("attention") or {}, block.get("ffn") or {}
        for part in (attn, ffn):
            for key in ("sparsify", "num_sink_tokens", "window_length"):
                if part.get(key):
                    raise KvcalcError(f"block_configs key {key!r} is not modelled yet")
        if attn.get("no_op"):
            names.append("no_attention")
            kinds["no_attention"] = {"kind": "none", "reason": "no_attention"}
        elif attn.get("replace_with_linear"):
            names.append("linear")
            kinds["linear"] = {"kind": "none", "reason": "no_attention"}
            attention += h * h
            norms += h
        else:
            group = attn.get("n_heads_in_group")
            if not isinstance(group, int) or group <= 0 or n_heads % group:
                raise KvcalcError(f"block_configs n_heads_in_group {group!r} must divide the heads")
            n_kv = n_heads // group
            name = f"gqa{n_kv}"
            names.append(name)
            kinds[name] = {"kind": "attention", "n_kv_heads": n_kv}
            attention += _attn_params(h, n_heads, n_kv, d, c.get_bool("attention_bias", False))
            norms += h
        if ffn.get("no_op"):
            continue
        norms += h
        if ffn.get("replace_with_linear"):
            mlp += h * h
        else:
            inter = _nas_intermediate(ffn.get("ffn_mult"), h)
            mlp += 3 * h * inter + ((2 * inter + h) if c.get_bool("mlp_bias", False) else 0)
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", False)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=attention,
        mlp=mlp,
        norms=norms + h,
    )
    first = next((kinds[n] for n in names if kinds[n]["kind"] == "attention"), None)
    base_kv = first["n_kv_heads"] if first else n_heads
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, base_kv, d),
        "layers": {"pattern": _period(names)},
        "kinds": kinds,
        "params": params,
    }


NAS_READS = frozenset({"block_configs"})


# ---- Xiaomi MiMo-V2-Flash (mimo_v2_flash) --------------------------------------------------


def mimo_v2_flash(c: _Config, family: str) -> dict[str, Any]:
    """MiMo-V2-Flash: full layers (num_key_value_heads) and sliding layers with twice the KV
    heads and attention sinks; K head_dim ≠ V v_head_dim; the window is sliding_window_size
    previous tokens plus the query.

    transformers models/mimo_v2_flash/configuration_mimo_v2_flash.py (layer_types default:
    layer 0 and every 6th full; sliding_window = sliding_window_size + 1) and
    modeling_mimo_v2_flash.py (MiMoV2FlashAttention: SWA layers num_key_value_heads · 2, sinks;
    MiMoV2FlashMoE: no shared experts). hybrid_layer_pattern (1 = sliding) and the swa_* keys
    are read and must agree with that model.
    """
    n_layers = c.get_int("num_hidden_layers")
    types = c.data.get("layer_types")
    pattern = c.data.get("hybrid_layer_pattern")
    if types is None and isinstance(pattern, list):
        types = ["sliding_attention" if flag else "full_attention" for flag in pattern]
    if types is None:
        types = [
            "full_attention" if (i == 0 or not (i + 1) % 6) else "sliding_attention"
            for i in range(n_layers)
        ]
    if len(types) != n_layers or set(types) - {"full_attention", "sliding_attention"}:
        raise KvcalcError(f"layer_types / hybrid_layer_pattern must list {n_layers} layers")
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads")
    d = c.get_int("head_dim", default=192)
    dv = c.get_int("v_head_dim", default=128)
    for key, expected in (
        ("swa_num_key_value_heads", 2 * n_kv),
        ("swa_num_attention_heads", n_heads),
        ("swa_head_dim", d),
        ("swa_v_head_dim", dv),
    ):
        if c.has(key) and c.get_int(key) != expected:
            raise KvcalcError(
                f"config key {key!r} = {c.get_int(key)} differs from the {expected} the "
                "transformers model uses; not modelled"
            )
    window = (
        c.get_int("sliding_window_size") + 1
        if c.has("sliding_window_size")
        else c.get_int("sliding_window", default=129)
    )
    bias = c.get_bool("attention_bias", False)
    flags = c.data.get("mlp_layer_types") or c.data.get("moe_layer_freq")
    if isinstance(flags, list):
        moe_layers = [f in ("sparse", 1, True) for f in flags]
    else:
        moe_layers = [i > 0 for i in range(n_layers)]
    if len(moe_layers) != n_layers:
        raise KvcalcError(f"moe_layer_freq / mlp_layer_types must list {n_layers} layers")
    n_experts = c.get_int("n_routed_experts", "num_local_experts")
    attention = mlp = experts = 0
    for t, moe in zip(types, moe_layers, strict=True):
        kv = 2 * n_kv if t == "sliding_attention" else n_kv
        q = n_heads * d
        attention += h * q + h * kv * d + h * kv * dv + n_heads * dv * h
        attention += (q + kv * d + kv * dv) if bias else 0
        attention += n_heads if t == "sliding_attention" else 0  # attention sinks
        if moe:
            experts += n_experts * 3 * h * c.get_int("moe_intermediate_size") + n_experts * h
        else:
            mlp += 3 * h * c.get_int("intermediate_size")
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", False)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=attention,
        mlp=mlp,
        experts=experts,
        norms=n_layers * 2 * h + h,
    )
    names = ["swa" if t == "sliding_attention" else "full" for t in types]
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d, dv),
        "layers": {"sliding_window": window, "pattern": _period(names)},
        "kinds": {"swa": {"kind": "attention", "window": "sliding", "n_kv_heads": 2 * n_kv}},
        "params": params,
        "moe": {
            "n_experts": n_experts,
            "n_experts_per_token": c.get_int("num_experts_per_tok", default=1),
        },
        "mtp_layers": c.get_int("num_nextn_predict_layers", default=0),
    }


MIMO_V2_READS = frozenset(
    {
        "layer_types", "hybrid_layer_pattern", "sliding_window", "sliding_window_size",
        "swa_num_key_value_heads", "swa_num_attention_heads", "swa_head_dim", "swa_v_head_dim",
        "v_head_dim", "attention_chunk_size", "num_nextn_predict_layers",
    }
)  # fmt: skip


# ---- MiniMax-M2 (minimax_m2) ---------------------------------------------------------------


def minimax_m2(c: _Config, family: str) -> dict[str, Any]:
    """MiniMax-M2.x: GQA with q/k RMSNorm over all heads (qk_norm_type per_layer), MoE of
    intermediate_size experts; with use_mtp, num_mtp_modules × mtp_transformer_layers MTP
    layers (their KV only with speculative decoding). transformers
    models/minimax_m2/modeling_minimax_m2.py."""
    from kvcalc.hf._import import standard_fields

    if c.data.get("attn_type_list") and set(c.data["attn_type_list"]) != {1}:
        raise KvcalcError("config key 'attn_type_list' with lightning-attention layers (0)")
    if c.get_bool("use_qk_norm", False) and c.data.get("qk_norm_type", "per_layer") != "per_layer":
        raise KvcalcError(f"qk_norm_type {c.data.get('qk_norm_type')!r} is not modelled")
    fields = standard_fields(c, family, [])
    if c.get_bool("use_mtp", False):
        layers = c.get_int("mtp_transformer_layers", default=1)
        fields["mtp_layers"] = c.get_int("num_mtp_modules", default=1) * layers
    return fields


MINIMAX_M2_READS = frozenset(
    {"attn_type_list", "use_mtp", "num_mtp_modules", "mtp_transformer_layers", "sliding_window"}
)


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
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", False)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
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


# ---- Liquid LFM2 (lfm2) ------------------------------------------------------------------


def lfm2(c: _Config, family: str) -> dict[str, Any]:
    """LFM2: gated short convolutions (conv_L_cache taps over hidden_size channels, a conv
    state only) and GQA attention with per-head q/k norms, by layer_types / full_attn_idxs.

    transformers models/lfm2/configuration_lfm2.py and modeling_lfm2.py (Lfm2ShortConv:
    in_proj hidden → 3·hidden, depthwise conv, out_proj; Lfm2MLP widths from
    block_auto_adjust_ff_dim / block_ffn_dim_multiplier / block_multiple_of)."""
    n_layers = c.get_int("num_hidden_layers")
    types = c.data.get("layer_types")
    if types is None:
        full = c.data.get("full_attn_idxs")
        full = set(range(n_layers)) if full is None else set(full)
        types = ["full_attention" if i in full else "conv" for i in range(n_layers)]
    if len(types) != n_layers or set(types) - {"full_attention", "conv"}:
        raise KvcalcError(f"layer_types must list full_attention or conv for {n_layers} layers")
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads", default=n_heads)
    d = h // n_heads
    taps = c.get_int("conv_L_cache", default=3)
    bias = c.get_bool("conv_bias", False)
    inter = c.get_int("intermediate_size")
    if c.get_bool("block_auto_adjust_ff_dim", False):
        inter = int(2 * inter / 3)
        multiplier = c.data.get("block_ffn_dim_multiplier")
        if multiplier is not None:
            from fractions import Fraction

            inter = int(Fraction(str(multiplier)) * inter)
            step = c.get_int("block_multiple_of", default=256)
            inter = step * ((inter + step - 1) // step)
    attention = mixer = other = 0
    for t in types:
        if t == "full_attention":
            attention += _attn_params(h, n_heads, n_kv, d) + 2 * d
        else:
            mixer += 3 * h * h + h * h + ((3 * h + h) if bias else 0)
            other += h * taps + (h if bias else 0)
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", True)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=attention + mixer,
        mlp=n_layers * 3 * h * inter,
        norms=n_layers * 2 * h + h,  # operator_norm, ffn_norm; embedding_norm
        other=other,
    )
    names = ["full" if t == "full_attention" else "conv" for t in types]
    kinds = {"conv": {"kind": "state", "mixer": "short_conv", "conv_kernel": taps, "conv_inner": h}}
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "layers": {"pattern": _period(names)},
        "kinds": kinds,
        "params": params,
    }


LFM2_READS = frozenset({"layer_types", "conv_L_cache", "full_attn_idxs"})


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
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", True)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
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
    }
)  # fmt: skip


# ---- Moonshot Kimi Linear (kimi_linear) ---------------------------------------------------

# Kimi-K3 keys that KimiLinearConfig does not know: its weights (and possibly its cache) are
# laid out differently from the transformers model, so they are refused, not guessed.
_KIMI_UNMODELLED = ("attn_res_block_size", "routed_expert_hidden_size", "latent_moe_use_norm",
                    "use_full_rank_gate")  # fmt: skip


def kimi_linear(c: _Config, family: str) -> dict[str, Any]:
    """Kimi Linear: MLA layers (linear_attn_config.full_attn_layers, 1-based) and Kimi Delta
    Attention (KDA) layers with a short conv over q, k, v (3 · num_heads · head_dim channels)
    and a num_heads × head_dim × head_dim recurrent state.

    transformers models/kimi_linear/modeling_kimi_linear.py (KimiDeltaAttention: q/k/v
    projections, conv1d, forget gate f_a/f_b with dt_bias and A_log, beta b_proj, output
    gate g_a/g_b, o_norm, o_proj; MLA as DeepSeek-V3's; MoE with shared experts)."""
    la = c.data.get("linear_attn_config")
    if not isinstance(la, dict):
        raise KvcalcError("config key 'linear_attn_config' must be a table")
    for key in _KIMI_UNMODELLED:
        if c.data.get(key) not in (None, False) or la.get(key) not in (None, False):
            raise KvcalcError(f"config key {key!r} (Kimi-K3) is not modelled yet")
    n_layers = c.get_int("num_hidden_layers")
    full = {int(i) - 1 for i in la.get("full_attn_layers") or []}
    kda = {int(i) - 1 for i in la.get("kda_layers") or []}
    if full & kda or full | kda != set(range(n_layers)):
        raise KvcalcError(
            "linear_attn_config must give every layer to full_attn_layers or kda_layers"
        )
    heads = int(la.get("num_heads") or c.get_int("num_attention_heads"))
    dim = int(la.get("head_dim") or 128)
    kernel = int(la.get("short_conv_kernel_size") or 4)
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    kv_lora, rope = c.get_int("kv_lora_rank"), c.get_int("qk_rope_head_dim")
    nope, v_dim = c.get_int("qk_nope_head_dim"), c.get_int("v_head_dim")
    q_lora = c.opt_int("q_lora_rank")
    proj = heads * dim
    if q_lora:
        mla_q = h * q_lora + q_lora + q_lora * n_heads * (nope + rope)
    else:
        mla_q = h * n_heads * (nope + rope)
    mla = mla_q + h * (kv_lora + rope) + kv_lora + kv_lora * n_heads * (nope + v_dim)
    mla += n_heads * v_dim * h
    kda_params = 3 * h * proj + 3 * proj * kernel + proj + heads + h * dim + dim * proj
    kda_params += h * heads + h * dim + dim * proj + dim + proj * h
    n_experts = c.get_int("num_experts", default=0)
    first_dense = c.get_int("first_k_dense_replace", default=0)
    step = c.get_int("moe_layer_freq", default=1)
    inter, moe_inter = c.get_int("intermediate_size"), c.get_int("moe_intermediate_size", default=0)
    n_shared = c.get_int("num_shared_experts", default=0)
    attention = mixer = mlp = experts = 0
    names = []
    for i in range(n_layers):
        if i in full:
            names.append("full")
            attention += mla
        else:
            names.append("kda")
            mixer += kda_params
        if n_experts and i >= first_dense and i % step == 0:
            experts += n_experts * 3 * h * moe_inter + n_experts * h
            mlp += n_shared * 3 * h * moe_inter
        else:
            mlp += 3 * h * inter
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", False)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=attention + mixer,
        mlp=mlp,
        experts=experts,
        norms=n_layers * 2 * h + h,
    )
    kinds = {
        "kda": {
            "kind": "state", "mixer": "kda", "conv_kernel": kernel, "conv_inner": 3 * proj,
            "state_heads": heads, "state_head_elems": dim * dim,
        }
    }  # fmt: skip
    moe = None
    if n_experts:
        moe = {
            "n_experts": n_experts,
            "n_experts_per_token": c.get_int(
                "num_experts_per_token", "num_experts_per_tok", default=1
            ),
            "n_shared_experts": n_shared,
        }
    attention_spec = {
        "kind": "mla", "n_heads": n_heads, "kv_lora_rank": kv_lora, "qk_rope_head_dim": rope,
        "qk_nope_head_dim": nope, "v_head_dim": v_dim, "q_lora_rank": q_lora,
    }  # fmt: skip
    return {
        "n_layers": n_layers,
        "attention": attention_spec,
        "layers": {"pattern": _period(names)},
        "kinds": kinds,
        "params": params,
        "moe": moe,
        "mtp_layers": c.get_int("num_nextn_predict_layers", default=0),
    }


KIMI_LINEAR_READS = frozenset(
    {
        "linear_attn_config",
        "kv_lora_rank",
        "qk_rope_head_dim",
        "v_head_dim",
        "num_nextn_predict_layers",
    }
)


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
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", False)
    params = ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
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
