"""Adapters of the families whose attention layers differ from one another: sparse-attention
indexers (DeepSeek-V3.2, GLM-5), Gemma 4 global layers and KV sharing, NAS / DeciLM
per-block configs, MiMo-V2-Flash and MiniMax-M2.

Each adapter reads its family's config keys into the spec's layer kinds and counts the
parameters of the transformers model exactly (checked by tests/test_crosscheck.py on the
`meta` device); the module each count comes from is named beside it.
"""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.hf._config import _Config
from kvcalc.hf._layers import _attn_params, _breakdown, _gqa, _period
from kvcalc.specs import ParamBreakdown

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
    indexers = types.count("full") * per_indexer
    # every tensor-parallel rank holds the indexer whole (vLLM deepseek_v2.py Indexer: wq_b,
    # wk, weights_proj ReplicatedLinear, k_norm; SGLang nsa_indexer.py the same:
    # kvcalc/quant.py MLA_REPLICATED)
    fields["params"] = params.model_copy(
        update={
            "attention": params.attention + indexers,
            "replicated_attention": params.replicated("attention") + indexers or None,
        }
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
    num_kv_shared_layers layers reuse earlier layers' KV and cache nothing ("shared" sliding
    and "shared_global" full ones, each `like` the kind of its type).

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
        if i >= first_shared:  # a shared layer keeps the geometry of its type (`like`)
            names.append("shared" if t == "sliding_attention" else "shared_global")
        else:
            names.append("sliding" if t == "sliding_attention" else "global")
    kinds: dict[str, Any] = {
        "global": {
            "kind": "attention", "n_kv_heads": global_kv, "head_dim": global_d, "k_eq_v": k_eq_v,
        },
        "shared": {"kind": "none", "reason": "kv_shared", "like": "sliding"},
        "shared_global": {"kind": "none", "reason": "kv_shared", "like": "global"},
    }  # fmt: skip
    used = set(names) | ({"global"} if "shared_global" in names else set())
    kinds = {k: v for k, v in kinds.items() if k in used}
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
    params = _breakdown(
        c,
        h,
        tied_default=False,
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
    are read and must agree with that model. The config's own sliding_window (128, without
    the query) is kept beside it as config_sliding_window: llama.cpp's converter writes that
    key as n_swa (conversion/mimo.py MimoV2Model.set_gguf_parameters).
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
    params = _breakdown(
        c,
        h,
        tied_default=False,
        attention=attention,
        mlp=mlp,
        experts=experts,
        norms=n_layers * 2 * h + h,
    )
    names = ["swa" if t == "sliding_attention" else "full" for t in types]
    layers: dict[str, Any] = {"sliding_window": window, "pattern": _period(names)}
    if c.has("sliding_window") and c.get_int("sliding_window") != window:
        # the config's own key (sliding_window_size, no query), as converters copy it
        layers["config_sliding_window"] = c.get_int("sliding_window")
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d, dv),
        "layers": layers,
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
