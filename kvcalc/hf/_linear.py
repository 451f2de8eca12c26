"""Adapters of the hybrids of attention and linear-attention or short-convolution mixers (a
fixed state per sequence): Qwen3-Next / Qwen3.5 Gated DeltaNet, Kimi Linear KDA, LFM2.

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
            **_state_dtype_fields(c, "mamba_ssm_dtype", "mamba_ssm_cache_dtype"),
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


# ---- Moonshot Kimi Linear (kimi_linear) and Kimi-K3 (kimi_k3) ----------------------------

# Kimi-K3's keys, which KimiLinearConfig does not know: read inside a kimi_k3 config only (its
# reading follows SGLang's models/kimi_k3.py), refused in a bare kimi_linear one.
_KIMI_K3_KEYS = ("attn_res_block_size", "routed_expert_hidden_size", "latent_moe_use_norm",
                 "use_full_rank_gate", "mla_use_output_gate")  # fmt: skip


def kimi_linear(c: _Config, family: str) -> dict[str, Any]:
    """Kimi Linear: MLA layers (linear_attn_config.full_attn_layers, 1-based) and Kimi Delta
    Attention (KDA) layers with a short conv over q, k, v (3 · num_heads · head_dim channels)
    and a num_heads × head_dim × head_dim recurrent state.

    transformers models/kimi_linear/modeling_kimi_linear.py (KimiDeltaAttention: q/k/v
    projections, conv1d, forget gate f_a/f_b with dt_bias and A_log, beta b_proj, output
    gate g_a/g_b, o_norm, o_proj; MLA as DeepSeek-V3's; MoE with shared experts)."""
    la = _linear_attn_config(c)
    for key in _KIMI_K3_KEYS:
        if c.data.get(key) not in (None, False) or la.get(key) not in (None, False):
            raise KvcalcError(
                f"config key {key!r} is Kimi-K3's, which transformers' kimi_linear model does "
                "not build: kvcalc reads it inside a kimi_k3 config (model_type kimi_k3) only"
            )
    return _kimi(c, la, router_bias=False)


def kimi_k3(c: _Config, family: str) -> dict[str, Any]:
    """Kimi-K3 (model_type kimi_k3, its text_config a kimi_linear one): Kimi Linear's MLA and
    KDA layers with an output gate on MLA (g_proj, hidden → heads · v_head_dim), a full-rank
    KDA output gate (g_proj, hidden → heads · head_dim, for g_a/g_b), latent MoE and
    Attention Residuals.

    Counted from SGLang's implementation (transformers has no kimi_k3 model):
    sgl-project/sglang@e44a41c1c413ce470c66445745f380a50203c286
    python/sglang/srt/models/kimi_k3.py: KimiK3MoE (the router MoEGate with its
    e_score_correction_bias, num_experts experts of SiTU gate/up/down in the
    routed_expert_hidden_size latent, routed_expert_down_proj hidden → latent,
    routed_expert_norm (latent_moe_use_norm), routed_expert_up_proj latent → hidden, shared
    experts of num_shared_experts · moe_intermediate_size in the hidden space; the router and
    DeepseekV2AttentionMLA from models/deepseek_v2.py);
    KimiK3DeltaAttention (A_log one per head: the checkpoint's head_dim-long A_log is cut to
    num_heads on load); KimiK3MLAAttention (DeepseekV2AttentionMLA + g_proj);
    KimiK3DecoderLayer (input/post-attention norms, self_attention_res_norm/_proj and
    mlp_res_norm/_proj: an RMSNorm and a hidden → 1 pseudo-query per aggregation point);
    KimiK3LinearModel (final norm, output_attn_res_norm/_proj). SiTU has no parameters. Attention
    Residuals keep no cache: python/sglang/srt/layers/attn_residual.py AttnResidual builds its
    [tokens, blocks, hidden] snapshot bank per forward pass, over the layers of the tokens in
    that pass, and nothing of it outlives the pass.
    """
    # models/deepseek_v2.py MoEGate (stored at 00114aef19bbb7431b9cfc5a77dce64b9c53ed95): an
    # e_score_correction_bias parameter per expert under topk_method noaux_tc
    # (KimiLinearConfig's default)
    noaux = c.data.get("topk_method", "noaux_tc") == "noaux_tc"
    return _kimi(c, _linear_attn_config(c), router_bias=noaux, replicated=True)


def _linear_attn_config(c: _Config) -> dict[str, Any]:
    la = c.data.get("linear_attn_config")
    if not isinstance(la, dict):
        raise KvcalcError("config key 'linear_attn_config' must be a table")
    return la


def _mla_params(c: _Config, h: int, n_heads: int) -> int:
    """DeepSeek-V3's MLA (q_a/q_b with q_a_layernorm, or q_proj; kv_a_proj_with_mqa,
    kv_a_layernorm, kv_b_proj, o_proj), plus Kimi-K3's output gate g_proj when
    mla_use_output_gate is set."""
    kv_lora, rope = c.get_int("kv_lora_rank"), c.get_int("qk_rope_head_dim")
    nope, v_dim = c.get_int("qk_nope_head_dim"), c.get_int("v_head_dim")
    q_lora = c.opt_int("q_lora_rank")
    if q_lora:
        q = h * q_lora + q_lora + q_lora * n_heads * (nope + rope)
    else:
        q = h * n_heads * (nope + rope)
    kv = h * (kv_lora + rope) + kv_lora + kv_lora * n_heads * (nope + v_dim)
    gate = h * n_heads * v_dim if c.get_bool("mla_use_output_gate", False) else 0
    return q + kv + n_heads * v_dim * h + gate


def _kda_params(h: int, heads: int, dim: int, kernel: int, full_rank_gate: bool) -> int:
    """KDA: q/k/v projections and their conv taps, forget gate f_a/f_b with dt_bias and A_log
    (one per head), beta b_proj, output gate (g_proj full rank, else g_a/g_b), o_norm,
    o_proj."""
    proj = heads * dim
    qkv = 3 * h * proj + 3 * proj * kernel
    forget = h * dim + dim * proj + proj + heads
    gate = h * proj if full_rank_gate else h * dim + dim * proj
    return qkv + forget + h * heads + gate + dim + proj * h


def _mla_replicated(c: _Config, h: int) -> int:
    """Of _mla_params, what every tensor-parallel rank holds whole: q_a_proj and
    q_a_layernorm (with q_lora_rank), kv_a_proj_with_mqa and kv_a_layernorm, as SGLang's
    DeepseekV2AttentionMLA builds them (fused_qkv_a_proj_with_mqa, a ReplicatedLinear:
    kvcalc/quant.py MLA_REPLICATED)."""
    kv_lora, rope = c.get_int("kv_lora_rank"), c.get_int("qk_rope_head_dim")
    q_lora = c.opt_int("q_lora_rank")
    return (h * q_lora + q_lora if q_lora else 0) + h * (kv_lora + rope) + kv_lora


def _kimi(
    c: _Config, la: dict[str, Any], *, router_bias: bool, replicated: bool = False
) -> dict[str, Any]:
    """Kimi Linear / Kimi-K3 fields; replicated: count what every tensor-parallel rank
    holds whole (Kimi-K3, read in SGLang: its MLA layers' q_a / kv_a projections and norms,
    the router MoEGate and its bias, the latent routed_expert_down_proj / _up_proj, built
    as ReplicatedLinear in models/kimi_k3.py); the MLA output gate g_proj is split with the
    heads (KimiK3MLAAttention: "Gate is applied in TP-local space before o_proj")."""
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
    mla = _mla_params(c, h, n_heads)
    kda_params = _kda_params(h, heads, dim, kernel, bool(la.get("use_full_rank_gate")))
    n_experts = c.get_int("num_experts", default=0)
    first_dense = c.get_int("first_k_dense_replace", default=0)
    step = c.get_int("moe_layer_freq", default=1)
    inter, moe_inter = c.get_int("intermediate_size"), c.get_int("moe_intermediate_size", default=0)
    n_shared = c.get_int("num_shared_experts", default=0)
    latent = c.opt_int("routed_expert_hidden_size")
    expert_width = latent or h
    latent_norm = latent if latent and c.get_bool("latent_moe_use_norm", False) else 0
    # Attention Residuals: per layer an RMSNorm and a hidden -> 1 pseudo-query before the
    # attention and before the MLP, and one pair before the final norm
    attn_res = c.opt_int("attn_res_block_size") is not None
    attention = mixer = mlp = experts = norms = other = 0
    attn_whole = mlp_whole = experts_whole = 0
    names = []
    for i in range(n_layers):
        if i in full:
            names.append("full")
            attention += mla
            attn_whole += _mla_replicated(c, h)
        else:
            names.append("kda")
            mixer += kda_params
        if n_experts and i >= first_dense and i % step == 0:
            experts += n_experts * 3 * expert_width * moe_inter + n_experts * h
            experts += n_experts if router_bias else 0  # MoEGate.e_score_correction_bias
            mlp += n_shared * 3 * h * moe_inter
            mlp += 2 * h * latent if latent else 0  # routed_expert_down_proj, _up_proj
            experts_whole += n_experts * h + (n_experts if router_bias else 0)
            mlp_whole += 2 * h * latent if latent else 0
            norms += latent_norm
        else:
            mlp += 3 * h * inter
    norms += n_layers * 2 * h + h
    if attn_res:
        norms += n_layers * 2 * h + h
        other += n_layers * 2 * h + h
    params = _breakdown(
        c,
        h,
        tied_default=False,
        attention=attention + mixer,
        mlp=mlp,
        experts=experts,
        norms=norms,
        other=other,
        replicated_attention=attn_whole if replicated and attn_whole else None,
        replicated_mlp=mlp_whole if replicated and mlp_whole else None,
        replicated_experts=experts_whole if replicated and experts_whole else None,
    )
    kinds = {
        "kda": {
            "kind": "state", "mixer": "kda", "conv_kernel": kernel, "conv_inner": 3 * heads * dim,
            "state_heads": heads, "state_head_elems": dim * dim,
            # the recurrent state is float32 whatever the model dtype: vLLM
            # mamba_utils.py MambaStateDtypeCalculator.kda_state_dtype returns float32 for
            # it; SGLang's KimiLinearConfig.mamba2_cache_params builds KimiLinearCacheParams
            # without a dtype, so mamba2_state_dtype(None) gives float32 (configs/mamba_utils.py;
            # --mamba-ssm-dtype / SGLANG_MAMBA_SSM_DTYPE override it)
            "state_dtype": "fp32",
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
        "kind": "mla", "n_heads": n_heads, "kv_lora_rank": c.get_int("kv_lora_rank"),
        "qk_rope_head_dim": c.get_int("qk_rope_head_dim"),
        "qk_nope_head_dim": c.get_int("qk_nope_head_dim"), "v_head_dim": c.get_int("v_head_dim"),
        "q_lora_rank": c.opt_int("q_lora_rank"),
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
    params = _breakdown(
        c,
        h,
        tied_default=True,
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
