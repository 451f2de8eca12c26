"""MiniMax-M3 (minimax_m3, transformers minimax_m3_vl_text): GQA layers, the sparse ones with
a lightning indexer whose key is cached beside K and V.

Read as transformers 5.24 builds the text model, huggingface/transformers
src/transformers/models/minimax_m3_vl/configuration_minimax_m3_vl.py (MiniMaxM3VLTextConfig:
the legacy sparse_attention_config keys override the flat index_* ones; layer_types from
sparse_attention_freq, mlp_layer_types from moe_layer_freq) and modeling_minimax_m3_vl.py
(MiniMaxM3VLAttention, MiniMaxM3VLIndexer, MiniMaxM3VLSparseMoeBlock,
MiniMaxM3VLSparseCacheLayer). Every key that would change the cache or the parameter count
and that transformers does not follow the way the checkpoint means it is refused by name.
"""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.hf._config import _Config
from kvcalc.hf._layers import _breakdown, _gqa, _period

# MiniMaxM3VLTextConfig's flat indexer keys and the legacy sparse_attention_config keys that
# override them in __post_init__, with the dataclass defaults.
_INDEX_KEYS = {
    "index_n_heads": ("sparse_num_index_heads", 4),
    "index_head_dim": ("sparse_index_dim", 128),
    "index_block_size": ("sparse_block_size", 128),
    "index_topk_blocks": ("sparse_topk_blocks", 16),
    "index_local_blocks": ("sparse_local_block", 1),
}
# sparse_attention_config keys transformers ignores that change block selection only
# (compute, not what is cached nor the weights)
_SELECTION_ONLY = frozenset({"sparse_init_block", "sparse_score_type"})
_SPARSE_KEYS = frozenset(
    {"sparse_attention_freq", "sparse_disable_index_value", "use_sparse_attention"}
    | {legacy for legacy, _ in _INDEX_KEYS.values()}
    | _SELECTION_ONLY
)
_LAYER_TYPES = {"full_attention": "full", "minimax_m3_sparse": "sparse"}


def _flags(value: object, key: str, n_layers: int) -> list[bool]:
    if not isinstance(value, list) or len(value) != n_layers or set(value) - {0, 1}:
        raise KvcalcError(f"config key {key!r} must list 0 or 1 for {n_layers} layers")
    return [bool(v) for v in value]


def _names(value: object, key: str, n_layers: int, known: set[str]) -> list[str]:
    if not isinstance(value, list) or len(value) != n_layers:
        raise KvcalcError(f"config key {key!r} must list {n_layers} layers")
    for name in value:
        if name not in known:
            raise KvcalcError(f"config key {key!r}: layer type {name!r} is not modelled")
    return [str(v) for v in value]


def _sparse_config(c: _Config) -> dict[str, Any]:
    sparse = c.data.get("sparse_attention_config") or {}
    if not isinstance(sparse, dict):
        raise KvcalcError("config key 'sparse_attention_config' must be a mapping")
    for key in sparse:
        if key not in _SPARSE_KEYS:
            raise KvcalcError(
                f"config key 'sparse_attention_config.{key}' changes what a MiniMax-M3 model "
                "caches or computes and kvcalc does not model it"
            )
    return sparse


def _layer_kinds(c: _Config, sparse: dict[str, Any], n_layers: int) -> list[str]:
    """Each layer's attention, full or sparse, as MiniMaxM3VLTextConfig derives layer_types."""
    if c.data.get("layer_types") is not None:
        types = _names(c.data["layer_types"], "layer_types", n_layers, set(_LAYER_TYPES))
        kinds = [_LAYER_TYPES[t] for t in types]
    elif sparse.get("sparse_attention_freq") is not None:
        freq = _flags(sparse["sparse_attention_freq"], "sparse_attention_freq", n_layers)
        kinds = ["sparse" if f else "full" for f in freq]
    else:
        kinds = ["full"] * n_layers
    if "sparse" in kinds and sparse.get("use_sparse_attention") is False:
        # transformers builds the sparse layers from their list whatever this flag says
        raise KvcalcError(
            "config key 'sparse_attention_config.use_sparse_attention' false with sparse "
            "layers listed is not modelled"
        )
    disabled = sparse.get("sparse_disable_index_value")
    if disabled is not None:
        no_value = _flags(disabled, "sparse_disable_index_value", n_layers)
        if any(k == "sparse" and not off for k, off in zip(kinds, no_value, strict=True)):
            # transformers' indexer has no value path: a layer using one is not what it builds
            raise KvcalcError(
                "config key 'sparse_attention_config.sparse_disable_index_value' 0 on a sparse "
                "layer (an indexer value path) is not modelled"
            )
    return kinds


def _moe_layers(c: _Config, n_layers: int) -> list[bool]:
    """Each layer's MLP, MoE or dense, as MiniMaxM3VLTextConfig derives mlp_layer_types."""
    if c.data.get("mlp_layer_types") is not None:
        types = _names(c.data["mlp_layer_types"], "mlp_layer_types", n_layers, {"sparse", "dense"})
        moe = [t == "sparse" for t in types]
    elif c.data.get("moe_layer_freq") is not None:
        moe = _flags(c.data["moe_layer_freq"], "moe_layer_freq", n_layers)
    else:
        moe = [True] * n_layers
    first_dense = c.data.get("first_k_dense_replace")
    if first_dense is not None and moe != [
        i >= c.get_int("first_k_dense_replace") for i in range(n_layers)
    ]:
        # transformers reads the per-layer list only; a disagreeing first_k is not guessed at
        raise KvcalcError(
            "config key 'first_k_dense_replace' disagrees with moe_layer_freq / mlp_layer_types"
        )
    return moe


def _refuse_unbuilt(c: _Config) -> None:
    """Refuse keys whose checkpoint meaning MiniMaxM3VLTextModel does not build."""
    if c.get_bool("attention_output_gate", False):
        raise KvcalcError(
            "config key 'attention_output_gate' (a gated attention output) is not modelled"
        )
    if c.get_bool("attention_bias", False):
        raise KvcalcError("config key 'attention_bias' is not modelled for MiniMax-M3")
    if not c.get_bool("use_qk_norm", True):
        raise KvcalcError(
            "config key 'use_qk_norm' false is not modelled (transformers always norms q, k)"
        )
    norm_type = c.data.get("qk_norm_type", "per_head")
    if norm_type != "per_head":
        raise KvcalcError(f"config key 'qk_norm_type' {norm_type!r} is not modelled")
    if c.get_int("n_shared_experts", default=1) != 1:
        raise KvcalcError("config key 'n_shared_experts' other than 1 is not modelled")
    inter = c.get_int("intermediate_size", default=3072)
    if c.get_int("moe_intermediate_size", default=inter) != inter:
        # the experts are intermediate_size wide in transformers; moe_intermediate_size is unread
        raise KvcalcError("config key 'moe_intermediate_size' differing from intermediate_size")


def minimax_m3(c: _Config, family: str) -> dict[str, Any]:
    """MiniMax-M3: GQA layers (num_key_value_heads × head_dim, q/k RMSNorm per head); the
    sparse ones also run a lightning indexer and cache its key, one head of index_head_dim,
    per token (MiniMaxM3VLSparseCacheLayer.idx_keys [batch, 1, seq, index_head_dim]).

    Parameters, as MiniMaxM3VLForCausalLM builds them: per layer q_proj h → n_heads·d,
    k_proj and v_proj h → n_kv·d, o_proj back, q_norm and k_norm (d each); per sparse layer
    the indexer's q_proj h → index_n_heads·index_head_dim, k_proj h → index_head_dim and two
    norms of index_head_dim; dense layers one gate_up/down MLP of dense_intermediate_size;
    MoE layers num_local_experts experts of intermediate_size, a router (its
    e_score_correction_bias is a buffer) and one shared expert of shared_intermediate_size;
    two norms per layer and a final one. The MTP modules (num_mtp_modules) are not built:
    transformers drops their mtp.* weights on load, so they are neither counted nor cached.
    """
    _refuse_unbuilt(c)
    sparse = _sparse_config(c)
    n_layers = c.get_int("num_hidden_layers")
    h = c.get_int("hidden_size")
    n_heads = c.get_int("num_attention_heads")
    n_kv = c.get_int("num_key_value_heads")
    d = c.get_int("head_dim", default=128)  # the config class's default, not h // n_heads
    index = {
        flat: (
            _Config(sparse).get_int(legacy)
            if legacy in sparse
            else c.get_int(flat, default=default)
        )
        for flat, (legacy, default) in _INDEX_KEYS.items()
    }
    index_dim, index_heads = index["index_head_dim"], index["index_n_heads"]
    kinds = _layer_kinds(c, sparse, n_layers)
    moe_layers = _moe_layers(c, n_layers)
    n_experts = c.get_int("num_local_experts", default=128)
    expert_inter = c.get_int("intermediate_size", default=3072)
    shared_inter = c.get_int("shared_intermediate_size", default=3072)
    dense_inter = c.get_int("dense_intermediate_size", default=12288)

    per_attention = 2 * h * n_heads * d + 2 * h * n_kv * d + 2 * d
    per_indexer = h * index_heads * index_dim + h * index_dim + 2 * index_dim
    attention = n_layers * per_attention + kinds.count("sparse") * per_indexer
    n_moe = moe_layers.count(True)
    mlp = (n_layers - n_moe) * 3 * h * dense_inter + n_moe * 3 * h * shared_inter
    experts = n_moe * (n_experts * 3 * h * expert_inter + n_experts * h)
    params = _breakdown(
        c,
        h,
        tied_default=False,
        attention=attention,
        mlp=mlp,
        experts=experts,
        norms=n_layers * 2 * h + h,
    )
    fields: dict[str, Any] = {
        "n_layers": n_layers,
        "attention": _gqa(n_heads, n_kv, d),
        "params": params,
        "moe": {
            "n_experts": n_experts,
            "n_experts_per_token": c.get_int("num_experts_per_tok", default=4),
            "n_shared_experts": 1,
        },
    }
    mtp_modules = c.get_int("num_mtp_modules", default=0)
    nextn = c.get_int("num_nextn_predict_layers", default=0)
    if mtp_modules or nextn:
        fields["mtp_unmodelled"] = (
            f"its MTP modules (num_mtp_modules {mtp_modules}, num_nextn_predict_layers {nextn}): "
            "what an engine caches for them under speculative decoding is not read"
        )
    if "sparse" in kinds:
        fields["layers"] = {"pattern": _period(kinds)}
        fields["kinds"] = {"sparse": {"kind": "attention", "index_head_dim": index_dim}}
    return fields


MINIMAX_M3_READS = frozenset(
    {
        "sparse_attention_config", "layer_types", "num_mtp_modules", "num_nextn_predict_layers",
        *_INDEX_KEYS,
    }
)  # fmt: skip
