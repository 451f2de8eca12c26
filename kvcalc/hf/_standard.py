"""The standard reading of a config: attention heads, sliding / chunked layers, exact params.

Shared by the families whose configs use the common keys (num_attention_heads,
num_key_value_heads, head_dim, sliding_window, layer_types ...); parameter counts match
`sum(p.numel() for p in model.parameters())` of the transformers model (tied embeddings
counted once), which tests/test_crosscheck.py checks on the `meta` device.
"""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.hf._config import _Config, _positive
from kvcalc.quant import MLA_REPLICATED
from kvcalc.specs import ParamBreakdown

# transformers' own default for tie_word_embeddings when a config leaves it out.
_TIED_BY_DEFAULT = frozenset(
    {"gemma", "gemma2", "gemma3", "gemma3_text", "gpt2", "gpt_bigcode", "opt", "falcon",
     "cohere", "cohere2", "starcoder2"}
)  # fmt: skip


def _attention(c: _Config, family: str) -> dict[str, Any]:
    n_heads = c.get_int("num_attention_heads", "n_head", "num_heads")
    hidden = c.get_int("hidden_size", "n_embd", "d_model")
    if c.has("kv_lora_rank"):
        return {
            "kind": "mla",
            "n_heads": n_heads,
            "kv_lora_rank": c.get_int("kv_lora_rank"),
            "qk_rope_head_dim": c.get_int("qk_rope_head_dim"),
            "qk_nope_head_dim": c.get_int("qk_nope_head_dim"),
            "v_head_dim": c.get_int("v_head_dim"),
            "q_lora_rank": c.opt_int("q_lora_rank"),
        }
    head_dim = c.get_int("head_dim", default=0) or hidden // n_heads
    if family == "falcon":
        if c.get_bool("new_decoder_architecture", False):
            n_kv = c.get_int("num_kv_heads", "n_head_kv", default=n_heads)
        elif c.get_bool("multi_query", True):
            n_kv = 1
        else:
            n_kv = n_heads
    elif family == "gpt_bigcode":
        n_kv = 1 if c.get_bool("multi_query", True) else n_heads
    else:
        n_kv = c.get_int("num_key_value_heads", "num_kv_heads", default=n_heads)
    if n_kv == n_heads:
        return {"kind": "mha", "n_heads": n_heads, "head_dim": head_dim}
    if n_kv == 1:
        return {"kind": "mqa", "n_heads": n_heads, "head_dim": head_dim}
    return {"kind": "gqa", "n_heads": n_heads, "n_kv_heads": n_kv, "head_dim": head_dim}


# Families whose sliding window applies only with use_sliding_window, above max_window_layers
# (Qwen2Config); MiMo-7B's remote code is Qwen2's body (its family refuses use_sliding_window).
_QWEN2_WINDOWS = frozenset({"qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "mimo"})

_KNOWN_LAYER_TYPES = frozenset({"sliding_attention", "full_attention", "chunked_attention"})


def _check_layer_types(c: _Config) -> None:
    """Refuse layer kinds kvcalc cannot size (recurrent or linear-attention state)."""
    layer_types = c.data.get("layer_types")
    if isinstance(layer_types, list):
        for t in layer_types:
            if t not in _KNOWN_LAYER_TYPES:
                raise KvcalcError(
                    f"unsupported layer type {t!r} in layer_types (kvcalc sizes attention "
                    "KV caches; recurrent or linear-attention state is not modelled yet)"
                )


def _layer_kinds(c: _Config, family: str, n_layers: int, window: int | None) -> list[str] | None:
    """Return each layer's kind (full / sliding / chunked), or None when all are full."""
    layer_types = c.data.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        names = {"sliding_attention": "sliding", "chunked_attention": "chunked"}
        kinds = [names.get(t, "full") for t in layer_types]
        if window is None:  # transformers caches such layers in full
            kinds = ["full" if k == "sliding" else k for k in kinds]
        if len(kinds) != n_layers:
            raise KvcalcError(f"layer_types lists {len(kinds)} layers, not {n_layers}")
        return kinds
    if family == "olmo3":
        # Olmo3Config: layer_types defaults to 3 sliding layers to 1 full
        kinds = ["sliding" if (i + 1) % 4 else "full" for i in range(n_layers)]
        return kinds if window is not None else None
    if family == "llama4_text":
        # Llama4TextConfig: layers that use RoPE (no_rope_layers[i] == 1) are chunked
        interval = c.get_int("no_rope_layer_interval", default=4)
        flags = c.data.get("no_rope_layers") or [
            int((i + 1) % interval != 0) for i in range(n_layers)
        ]
        if len(flags) != n_layers:
            raise KvcalcError(f"no_rope_layers lists {len(flags)} layers, not {n_layers}")
        return ["chunked" if flag else "full" for flag in flags]
    if window is None:
        return None
    if family == "gemma2":
        return [["sliding", "full"][i % 2] for i in range(n_layers)]
    if family in ("gemma3", "gemma3_text", "cohere2"):
        period = c.get_int("sliding_window_pattern", default=6 if family != "cohere2" else 4)
        return ["sliding" if (i + 1) % period else "full" for i in range(n_layers)]
    if family in _QWEN2_WINDOWS:
        first_sliding = c.get_int("max_window_layers", default=28)  # Qwen2Config default
        return ["full" if i < first_sliding else "sliding" for i in range(n_layers)]
    return ["sliding"] * n_layers


def _layers(c: _Config, family: str, n_layers: int) -> dict[str, Any] | None:
    """Return the spec's layer pattern (sliding and chunked layers), or None if all full."""
    _check_layer_types(c)
    window = _positive(c, "sliding_window")
    if family == "olmo3" and "sliding_window" not in c.data:
        window = 4096  # Olmo3Config default (an explicit null keeps sliding layers in full)
    if family in _QWEN2_WINDOWS and not c.get_bool("use_sliding_window", False):
        window = None  # transformers drops sliding_window unless use_sliding_window
    kinds = _layer_kinds(c, family, n_layers, window)
    if kinds is None or all(k == "full" for k in kinds):
        return None
    chunk = None
    if "chunked" in kinds:
        chunk = _positive(c, "attention_chunk_size")
        if chunk is None:
            if family != "llama4_text":
                raise KvcalcError("config has chunked_attention layers but no attention_chunk_size")
            chunk = 8192  # Llama4TextConfig default
    return {
        "sliding_window": window if "sliding" in kinds else None,
        "chunk_size": chunk,
        "pattern": _shortest_period(kinds),
    }


def _shortest_period(kinds: list[str]) -> list[str]:
    for period in range(1, len(kinds) + 1):
        if all(kinds[i] == kinds[i % period] for i in range(len(kinds))):
            return kinds[:period]
    return kinds


# MoE placement of DeepSeek-V3 (DeepseekV3Model): dense below first_k_dense_replace, then
# every moe_layer_freq-th layer
_DEEPSEEK_MOE = frozenset(
    {"deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2", "glm4_moe", "glm_moe_dsa"}
)


def _layer_list(c: _Config, key: str, n_layers: int) -> list[Any] | None:
    """Return a per-layer list a config gives under `key`, or None when it is not a list."""
    value = c.data.get(key)
    if not isinstance(value, list):
        return None
    if len(value) != n_layers:
        raise KvcalcError(f"config key {key!r} lists {len(value)} layers, not {n_layers}")
    return value


# q_norm and k_norm over head_dim, shared by the heads (Qwen3VLTextAttention is Qwen3's)
_PER_HEAD_QK_NORM = frozenset(
    {"qwen3", "qwen3_moe", "qwen3_vl_text", "qwen3_vl_moe_text", "gemma3", "gemma3_text"}
)


def _param_breakdown(c: _Config, family: str, attention: dict[str, Any]) -> ParamBreakdown:
    """Return exact parameter counts of the transformers model for this config."""
    h = c.get_int("hidden_size", "n_embd", "d_model")
    n_layers = c.get_int("num_hidden_layers", "n_layer", "num_layers")
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", family in _TIED_BY_DEFAULT)
    if family in ("gpt2", "gpt_bigcode", "gpt_neox", "opt", "falcon"):
        return _classic_breakdown(c, family, attention, h, n_layers, vocab, tied)

    n_heads = attention["n_heads"]
    attn_replicated = router_replicated = 0
    # attention
    if attention["kind"] == "mla":
        q_lora = attention["q_lora_rank"]
        qk_dim = attention["qk_nope_head_dim"] + attention["qk_rope_head_dim"]
        bias = c.get_bool("attention_bias", False)
        if q_lora is None:
            q = h * n_heads * qk_dim
        else:
            q = h * q_lora + (q_lora if bias else 0) + q_lora + q_lora * n_heads * qk_dim
        kv_a = h * (attention["kv_lora_rank"] + attention["qk_rope_head_dim"])
        kv_a += (attention["kv_lora_rank"] + attention["qk_rope_head_dim"]) if bias else 0
        kv_b = (
            attention["kv_lora_rank"]
            * n_heads
            * (attention["qk_nope_head_dim"] + attention["v_head_dim"])
        )
        o = n_heads * attention["v_head_dim"] * h + (h if bias else 0)
        attn = q + kv_a + attention["kv_lora_rank"] + kv_b + o
        # held whole on every TP rank: q_a_proj + q_a_layernorm (or none with q_proj) and
        # kv_a_proj_with_mqa + kv_a_layernorm (vLLM's fused_qkv_a_proj, disable_tp=True;
        # SGLang's fused_qkv_a_proj_with_mqa, a ReplicatedLinear: sources at MLA_REPLICATED)
        if family in MLA_REPLICATED:
            attn_replicated = q - q_lora * n_heads * qk_dim if q_lora is not None else 0
            attn_replicated += kv_a + attention["kv_lora_rank"]
    else:
        d = attention["head_dim"]
        n_kv = attention.get("n_kv_heads", n_heads if attention["kind"] == "mha" else 1)
        q_out, kv_out = n_heads * d, n_kv * d
        attn = h * q_out + 2 * h * kv_out + q_out * h
        if family in ("qwen2", "qwen2_moe", "mimo"):
            attn += q_out + 2 * kv_out  # q, k, v biases; o_proj has none
        elif family == "starcoder2":
            attn += q_out + 2 * kv_out + h if c.get_bool("use_bias", True) else 0
        elif family == "glm4_moe":
            attn += q_out + 2 * kv_out if c.get_bool("attention_bias", False) else 0
        elif c.get_bool("attention_bias", family == "gpt_oss"):
            attn += q_out + 2 * kv_out + h
        per_head_qk_norm = family in _PER_HEAD_QK_NORM or (
            family == "glm4_moe" and c.get_bool("use_qk_norm", False)
        )
        if per_head_qk_norm:
            attn += 2 * d  # q_norm and k_norm over head_dim, shared by the heads
        elif (
            family in ("olmo2", "olmo3")
            or (family == "cohere" and c.get_bool("use_qk_norm", False))
            or (family == "minimax_m2" and c.get_bool("use_qk_norm", False))
        ):
            attn += q_out + kv_out  # q_norm and k_norm over all heads
        if family == "gpt_oss":
            attn += n_heads  # attention sinks
    # norms per layer and final
    norm = 2 * h if family == "starcoder2" else h
    per_layer_norms = {"gemma2": 4, "gemma3": 4, "gemma3_text": 4, "cohere2": 1, "cohere": 1}
    norms = n_layers * per_layer_norms.get(family, 2) * norm + norm
    # MLP / experts
    mlp = 0
    experts = 0
    inter = c.get_int("intermediate_size", default=0)
    gated = family != "starcoder2"
    mlp_bias = c.get_bool("mlp_bias", False) or (
        family == "starcoder2" and c.get_bool("use_bias", True)
    )

    def dense(width: int) -> int:
        if gated:
            return 3 * h * width + (2 * width + h if mlp_bias else 0)
        return 2 * h * width + (width + h if mlp_bias else 0)

    n_experts = c.opt_int("num_local_experts", "n_routed_experts", "num_experts")
    if n_experts:
        moe_inter = c.get_int("moe_intermediate_size", default=inter)
        first_dense = c.get_int("first_k_dense_replace", default=0)
        # moe_layer_freq: a step (DeepSeek) or one flag per layer (MiMo-V2, MiniMax-M3);
        # mlp_layer_types: "dense" / "sparse" per layer (GLM-5)
        flags = _layer_list(c, "moe_layer_freq", n_layers) or [
            int(t == "sparse") for t in _layer_list(c, "mlp_layer_types", n_layers) or []
        ]
        if flags:
            sparse_step = c.get_int("decoder_sparse_step", default=1)
        else:
            sparse_step = c.get_int("decoder_sparse_step", "moe_layer_freq", default=1)
        mlp_only = set(c.data.get("mlp_only_layers") or [])
        dense_inter = inter
        if family == "llama4_text":
            # Llama4TextConfig: moe_layers default range(step - 1, n, step); dense layers use
            # intermediate_size_mlp; every MoE layer has one shared expert of intermediate_size
            step = c.get_int("interleave_moe_layer_step", default=1)
            moe_layers = set(c.data.get("moe_layers") or range(step - 1, n_layers, step))
            dense_inter = c.get_int("intermediate_size_mlp", default=inter)
        for layer in range(n_layers):
            is_moe = (
                layer >= first_dense and layer not in mlp_only and (layer + 1) % sparse_step == 0
            )
            if family in _DEEPSEEK_MOE:
                is_moe = layer >= first_dense and layer % sparse_step == 0
            if family == "llama4_text":
                is_moe = layer in moe_layers
            if flags:
                is_moe = bool(flags[layer])
            if not is_moe:
                mlp += dense(dense_inter)
                continue
            if family == "llama4_text":
                experts += n_experts * 3 * h * moe_inter + h * n_experts
                mlp += 3 * h * moe_inter  # the shared expert
                continue
            if family == "gpt_oss":
                experts += n_experts * (3 * h * moe_inter + 2 * moe_inter + h)
                experts += h * n_experts + n_experts  # router with bias
                continue
            # DeepSeek-V3's e_score_correction_bias is a buffer in transformers, not a parameter
            experts += n_experts * 3 * h * moe_inter + h * n_experts
            if family in MLA_REPLICATED:
                router_replicated += h * n_experts  # the router (gate), whole on every rank
            n_shared = c.get_int("n_shared_experts", default=0)
            if n_shared:
                mlp += 3 * h * moe_inter * n_shared
            shared_inter = c.get_int("shared_expert_intermediate_size", default=0)
            if shared_inter:
                mlp += 3 * h * shared_inter + h  # shared expert and its gate
    else:
        mlp = n_layers * dense(inter)
    return ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=n_layers * attn,
        mlp=mlp,
        experts=experts,
        norms=norms,
        replicated_attention=n_layers * attn_replicated or None,
        replicated_experts=router_replicated or None,
    )


def _classic_breakdown(
    c: _Config,
    family: str,
    attention: dict[str, Any],
    h: int,
    n_layers: int,
    vocab: int,
    tied: bool,
) -> ParamBreakdown:
    """Parameter counts for GPT-2, GPT-BigCode, GPT-NeoX, OPT and Falcon (biased LayerNorms)."""
    n_heads = attention["n_heads"]
    d = attention["head_dim"]
    n_kv = attention.get("n_kv_heads", n_heads if attention["kind"] == "mha" else 1)
    ln = 2 * h
    other = 0
    if family in ("gpt2", "gpt_bigcode"):
        inner = c.get_int("n_inner", default=4 * h)
        qkv = h * (h + 2 * n_kv * d) + (h + 2 * n_kv * d)
        attn = qkv + h * h + h
        mlp = h * inner + inner + inner * h + h
        norms = n_layers * 2 * ln + ln
        other = c.get_int("n_positions", "max_position_embeddings") * h
    elif family == "gpt_neox":
        inter = c.get_int("intermediate_size", default=4 * h)
        bias = c.get_bool("attention_bias", True)
        attn = h * 3 * h + h * h + ((3 * h + h) if bias else 0)
        mlp = 2 * h * inter + inter + h
        norms = n_layers * 2 * ln + ln
    elif family == "opt":
        ffn = c.get_int("ffn_dim")
        bias = c.get_bool("enable_bias", True)
        attn = 4 * h * h + (4 * h if bias else 0)
        mlp = 2 * h * ffn + ((ffn + h) if bias else 0)
        final_ln = c.get_bool("do_layer_norm_before", True) and not c.get_bool(
            "_remove_final_layer_norm", False
        )
        norms = n_layers * 2 * ln + (ln if final_ln else 0)
        proj = c.get_int("word_embed_proj_dim", default=h)
        other = (c.get_int("max_position_embeddings") + 2) * h  # learned positions, offset 2
        if proj != h:
            other += 2 * proj * h  # project_in and project_out, no bias
        return ParamBreakdown(
            embedding=vocab * proj,
            lm_head=0 if tied else vocab * proj,
            attention=n_layers * attn,
            mlp=n_layers * mlp,
            norms=norms,
            other=other,
        )
    else:  # falcon
        bias = c.get_bool("bias", False)
        ffn = c.get_int("ffn_hidden_size", default=4 * h)
        qkv_out = (n_heads + 2 * n_kv) * d
        attn = h * qkv_out + h * h + ((qkv_out + h) if bias else 0)
        mlp = 2 * h * ffn + ((ffn + h) if bias else 0)
        new_arch = c.get_bool("new_decoder_architecture", False)
        if new_arch:
            lns = c.get_int("num_ln_in_parallel_attn", default=2)
        else:
            lns = 1 if c.get_bool("parallel_attn", True) else 2
        norms = n_layers * lns * ln + ln
    return ParamBreakdown(
        embedding=vocab * h,
        lm_head=0 if tied else vocab * h,
        attention=n_layers * attn,
        mlp=n_layers * mlp,
        norms=norms,
        other=other,
    )
