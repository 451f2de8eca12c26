"""Adapter of MiniMax's lightning attention (model_type minimax: MiniMax-Text-01, MiniMax-M1 in
transformers' format): lightning (linear) attention layers that keep a fixed state per
sequence, softmax GQA layers that keep K and V per token, a MoE block in every layer.

transformers 5.25.0 models/minimax (configuration_minimax.py MiniMaxConfig,
modeling_minimax.py): MiniMaxDecoderLayer builds MiniMaxLightningAttention where
layer_types says linear_attention and MiniMaxAttention where it says full_attention;
MiniMaxCache (a DynamicCache) keeps K / V for the full layers and, in linear_cache, one
[batch, num_attention_heads, head_dim, head_dim] tensor (K^T V, the decayed running sum)
per lightning layer in the dtype of the layer's values (the model dtype: the decay buffers
are built in it), whatever the sequence length. The parameter count is checked against the
meta model by tests/test_crosscheck.py.

The remote-code release (model_type minimax_m1 / minimax_text_01, family minimax_m1) has the
same modules and spells the layer list attn_type_list (0 lightning, 1 softmax), which vLLM's
MiniMaxText01Model reads before layer_types; transformers does not load it (remote code).
"""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.hf._config import _Config
from kvcalc.hf._layers import _attn_params, _breakdown, _gqa, _period

_TYPES = ("full_attention", "linear_attention")


def _layer_types(c: _Config, n_layers: int) -> list[str]:
    """Each layer's type: layer_types, else MiniMaxConfig.__post_init__'s default (full
    attention on even layers, lightning on odd ones)."""
    types = c.data.get("layer_types")
    if types is None:
        return ["full_attention" if (i + 1) % 2 else "linear_attention" for i in range(n_layers)]
    if not isinstance(types, list) or len(types) != n_layers or set(types) - set(_TYPES):
        raise KvcalcError(
            f"config key 'layer_types' must list full_attention or linear_attention for each "
            f"of the {n_layers} layers"
        )
    return list(types)


def _attn_type_list(c: _Config, n_layers: int) -> list[str]:
    """Each layer's type from the remote-code attn_type_list, as vLLM reads it: 0 a lightning
    (linear) layer, 1 a softmax one (vllm-project/vllm@98370df70c1813f5f9c9c127e8baed660cd09280:
    vllm/model_executor/models/minimax_text_01.py:MiniMaxText01Model.__init__, which takes
    attn_type_list before layer_types and builds MiniMaxText01LinearAttention where it is 0)."""
    types = c.data.get("attn_type_list")
    if (
        not isinstance(types, list)
        or len(types) != n_layers
        or any(isinstance(t, bool) or t not in (0, 1) for t in types)
    ):
        raise KvcalcError(
            f"config key 'attn_type_list' must list 0 (lightning) or 1 (softmax) for each of "
            f"the {n_layers} layers"
        )
    return ["linear_attention" if t == 0 else "full_attention" for t in types]


def minimax(c: _Config, family: str) -> dict[str, Any]:
    """MiniMax-Text-01 / M1 (transformers' model_type minimax): lightning and softmax layers."""
    return _build(c, _layer_types(c, c.get_int("num_hidden_layers")))


def minimax_m1(c: _Config, family: str) -> dict[str, Any]:
    """MiniMax-M1 / Text-01 remote code (model_type minimax_m1, minimax_text_01): the layers
    from attn_type_list; the same modules as transformers' MiniMax (the checkpoint's
    model.safetensors.index.json names qkv_proj, output_gate, norm, out_proj on the lightning
    layers, q/k/v/o_proj on the softmax ones, block_sparse_moe gate and w1/w2/w3 experts)."""
    # layer_types is not among MINIMAX_M1_READS: a config with both lists is refused there
    return _build(c, _attn_type_list(c, c.get_int("num_hidden_layers")))


def _build(c: _Config, types: list[str]) -> dict[str, Any]:
    """The spec's fields of a MiniMax lightning model whose layer types are given.

    Parameters (modeling_minimax.py): MiniMaxLightningAttention qkv_proj h → 3·H·d,
    output_gate h → H·d, out_proj H·d → h, norm over H·d (no biases); MiniMaxAttention
    q/k/v/o without biases; MiniMaxSparseMoeBlock in every layer (router num_local_experts ×
    h, experts gate_up 2·inter × h and down h × inter); input and post-attention RMSNorms,
    a final norm, embed_tokens and an untied lm_head (tie_word_embeddings default False).
    """
    # MiniMaxConfig keeps keys it has no field for and builds nothing from them: a shared MLP
    # (shared_intermediate_size, which vLLM's MiniMaxText01DecoderLayer builds) would be
    # weights transformers does not count, and a list of experts per layer is not its form
    shared = c.data.get("shared_intermediate_size")
    if isinstance(shared, list):
        shared = max(shared, default=0)
    if shared:
        raise KvcalcError(
            "config key 'shared_intermediate_size' (a shared expert) is not built by "
            "transformers' MiniMax model and is not modelled"
        )
    n_layers = len(types)
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    # MiniMaxConfig: num_key_value_heads defaults to 8, and None means num_attention_heads
    if "num_key_value_heads" in c.data and not c.has("num_key_value_heads"):
        n_kv = n_heads
    else:
        n_kv = c.get_int("num_key_value_heads", default=8)
    d = c.get_int("head_dim", default=0) or h // n_heads
    if not n_kv or n_heads % n_kv:
        raise KvcalcError(
            f"num_attention_heads ({n_heads}) must be divisible by num_key_value_heads ({n_kv})"
        )
    n_experts = c.get_int("num_local_experts", "num_experts", default=8)
    inter = c.get_int("intermediate_size", default=14336)
    inner = n_heads * d
    attention = mixer = 0
    for layer_type in types:
        if layer_type == "full_attention":
            attention += _attn_params(h, n_heads, n_kv, d)
        else:
            mixer += 3 * h * inner + h * inner + inner * h + inner  # qkv, gate, out, norm
    experts = n_layers * (n_experts * 3 * h * inter + n_experts * h)  # experts, router
    params = _breakdown(
        c,
        h,
        tied_default=False,
        attention=attention + mixer,
        mlp=0,
        experts=experts,
        norms=n_layers * 2 * h + h,
    )
    kinds = {
        # one [heads, head_dim, head_dim] state per sequence, no conv state; its dtype is the
        # model's in transformers (MiniMaxLightningAttention) and vLLM (mamba_cache_dtype auto)
        "lightning": {
            "kind": "state", "mixer": "lightning",
            "state_heads": n_heads, "state_head_elems": d * d,
        }
    }  # fmt: skip
    names = ["full" if t == "full_attention" else "lightning" for t in types]
    return {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "layers": {"pattern": _period(names)},
        "kinds": kinds,
        "params": params,
        "moe": {
            "n_experts": n_experts,
            "n_experts_per_token": c.get_int("num_experts_per_tok", default=2),
        },
    }


# layer_types shapes the cache; the linear_attn_*_factor residual scales (under the linear_
# prefix kvcalc watches) change neither the cache nor the weights
MINIMAX_READS = frozenset({"layer_types", "linear_attn_alpha_factor", "linear_attn_beta_factor"})
# the remote-code form: attn_type_list gives the layers; its layernorm_*_alpha / _beta
# residual scales, postnorm and rotary_dim change neither the cache nor the weights
MINIMAX_M1_READS = frozenset({"attn_type_list"})
