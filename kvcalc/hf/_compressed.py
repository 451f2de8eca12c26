"""Adapter of DeepSeek-V4 (deepseek_v4): sliding, CSA and HCA compressed-attention layers.

transformers 5.24 models/deepseek_v4: configuration_deepseek_v4.py (DeepseekV4Config
.__post_init__: layer_types from `layer_types`, else the legacy `compress_ratios`, cut to
num_hidden_layers; rates from `compress_rates`, else `compress_rate_csa` /
`compress_rate_hca`, else 4 and 128) and modeling_deepseek_v4.py (the parameters counted
below; the cache layout is kvcalc.specs.CompressedKind). docs/deepseek-v4.md has both.
"""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.hf._config import _Config
from kvcalc.hf._layers import _breakdown, _period

_CSA, _HCA, _SLIDING = (
    "compressed_sparse_attention",
    "heavily_compressed_attention",
    "sliding_attention",
)
_RATIO_TYPES = {0: _SLIDING, 4: _CSA, 128: _HCA}  # _COMPRESS_RATIO_TO_LAYER_TYPE
_KIND_NAMES = {_SLIDING: "sliding", _CSA: "csa", _HCA: "hca"}

DEEPSEEK_V4_READS = frozenset(
    {
        "sliding_window", "layer_types", "compress_ratios", "compress_rates",
        "compress_rate_csa", "compress_rate_hca", "compress_rope_theta", "index_head_dim",
        "qk_rope_head_dim", "num_nextn_predict_layers",
    }
)  # fmt: skip


def _layer_types(c: _Config, n_layers: int) -> list[str]:
    """Return each layer's attention type as DeepseekV4Config.__post_init__ derives it."""
    types = c.data.get("layer_types")
    ratios = c.data.get("compress_ratios")
    if types is None and ratios is not None:
        if not isinstance(ratios, list) or any(r not in _RATIO_TYPES for r in ratios):
            raise KvcalcError(
                "config key 'compress_ratios' must list 0, 4 or 128 per layer "
                f"(transformers maps no other value), got {ratios!r}"
            )
        types = [_RATIO_TYPES[r] for r in ratios]
    if types is None:  # transformers' default: 2 HCA layers, then HCA / CSA alternating
        types = [_HCA] * min(n_layers, 2) + [
            _CSA if i % 2 else _HCA for i in range(max(n_layers - 2, 0))
        ]
    if not isinstance(types, list) or set(types) - set(_KIND_NAMES):
        raise KvcalcError(f"config key 'layer_types' must list {', '.join(_KIND_NAMES)}")
    types = types[:n_layers]  # the published lists name the MTP layer too: dropped
    if len(types) != n_layers:
        raise KvcalcError(f"layer_types must list {n_layers} layers")
    return types


def _rates(c: _Config) -> dict[str, int]:
    """Return the compression rate of CSA and HCA layers (m and m')."""
    rates = {_CSA: 4, _HCA: 128}
    given = c.data.get("compress_rates")
    if given is not None:
        if not isinstance(given, dict) or set(given) - {_CSA, _HCA}:
            raise KvcalcError(f"config key 'compress_rates' must map {_CSA} / {_HCA} to rates")
        rates.update(given)
    for key, layer_type in (("compress_rate_csa", _CSA), ("compress_rate_hca", _HCA)):
        if c.has(key):
            rates[layer_type] = c.get_int(key)
    for layer_type, rate in rates.items():
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 2:
            raise KvcalcError(f"compression rate of {layer_type} must be an integer ≥ 2")
    return rates


def compressed_layers(data: dict[str, Any]) -> tuple[list[str], int, int]:
    """Return each layer's attention type (sliding / csa / hca) and the CSA and HCA rates."""
    c = _Config(data)
    rates = _rates(c)
    types = _layer_types(c, c.get_int("num_hidden_layers"))
    return [_KIND_NAMES[t] for t in types], rates[_CSA], rates[_HCA]


def deepseek_v4(c: _Config, family: str) -> dict[str, Any]:
    """DeepSeek-V4: every layer a shared-KV MQA sliding window (one head of head_dim, K = V);
    CSA layers add the sequence compressed m to 1 with an indexer, HCA layers m' to 1.

    Parameters (modeling_deepseek_v4.py; H hidden, nh heads, D head_dim, ql q_lora_rank,
    og o_groups, ol o_lora_rank, E experts of I, ns shared, hc hc_mult, ni / Di indexer):
      attention: sinks nh, wq_a H·ql, q_norm ql, wq_b ql·nh·D, kv_proj H·D, kv_norm D,
                 wo_a og·ol·(nh·D/og), wo_b og·ol·H;
      HCA compressor: position bias m'·D, kv and gate projections 2·D·H, norm D;
      CSA compressor: m·2D + 2·2D·H + D, its indexer m·2Di + 2·2Di·H + Di, wq_b ql·ni·Di,
                 weights_proj ni·H;
      MoE: router E·H, experts E·3·I·H, shared 3·H·I·ns; 2 norms of H;
      hyper-connections: 2 × ((2 + hc)·hc·hc·H + (2 + hc)·hc + 3) per layer;
      model: embedding and lm_head V·H each (untied), norm H, hc_head hc·hc·H + hc + 1.
    The hash-routed layers' tid2eid table is a buffer, not a parameter.
    """
    from kvcalc.hf._import import moe_fields

    n_layers = c.get_int("num_hidden_layers")
    types = _layer_types(c, n_layers)
    rates = _rates(c)
    h = c.get_int("hidden_size")
    nh = c.get_int("num_attention_heads")
    d = c.get_int("head_dim")
    di = c.get_int("index_head_dim")
    ni = c.get_int("index_n_heads")
    ql = c.get_int("q_lora_rank")
    og = c.get_int("o_groups")
    ol = c.get_int("o_lora_rank")
    e = c.get_int("n_routed_experts")
    inter = c.get_int("moe_intermediate_size")
    ns = c.get_int("n_shared_experts", default=0)
    hc = c.get_int("hc_mult")
    if og == 0 or (nh * d) % og:
        raise KvcalcError(f"o_groups ({og}) must divide num_attention_heads × head_dim")
    m, m_hca = rates[_CSA], rates[_HCA]
    attention = nh + h * ql + ql + ql * nh * d + h * d + d + og * ol * (nh * d // og) + h * og * ol
    hca = m_hca * d + 2 * d * h + d
    indexer = m * 2 * di + 2 * (2 * di * h) + di + ql * ni * di + ni * h
    csa = m * 2 * d + 2 * (2 * d * h) + d + indexer
    n_csa, n_hca = types.count(_CSA), types.count(_HCA)
    hyper = 2 * ((2 + hc) * hc * hc * h + (2 + hc) * hc + 3)
    params = _breakdown(
        c,
        h,
        tied_default=False,
        attention=n_layers * attention + n_csa * csa + n_hca * hca,
        mlp=n_layers * 3 * h * inter * ns,
        experts=n_layers * (e * h + e * 3 * inter * h),
        norms=n_layers * 2 * h + h,
        other=n_layers * hyper + hc * hc * h + hc + 1,
    )
    kinds: dict[str, Any] = {}
    if n_csa:
        kinds["csa"] = {"kind": "compressed", "rate": m, "index_head_dim": di}
    if n_hca:
        kinds["hca"] = {"kind": "compressed", "rate": m_hca}
    return {
        "n_layers": n_layers,
        # one shared K = V head whatever num_key_value_heads says (kv_proj projects to D)
        "attention": {"kind": "mqa", "n_heads": nh, "head_dim": d},
        "layers": {
            "sliding_window": c.get_int("sliding_window"),
            "pattern": _period([_KIND_NAMES[t] for t in types]),
        },
        "kinds": kinds or None,
        "params": params,
        "moe": moe_fields(c, family),
        "mtp_layers": c.get_int("num_nextn_predict_layers", default=0),
    }
