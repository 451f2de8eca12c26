"""What the adapters of families whose layers are not all alike share (kvcalc/hf/_mamba.py,
_linear.py, _per_layer.py): state dtypes, layer periods, attention dicts and counts."""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.hf._config import _Config
from kvcalc.specs import ParamBreakdown

_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def _state_dtype_fields(c: _Config, *keys: str) -> dict[str, str]:
    """Return a state kind's state_dtype and, when a config key set it, state_dtype_key."""
    dtype, key = _state_dtype_from(c, *keys)
    return {"state_dtype": dtype} if key is None else {"state_dtype": dtype, "state_dtype_key": key}


def _state_dtype_from(c: _Config, *keys: str) -> tuple[str, str | None]:
    """Return the state dtype the first set key gives, and that key (model dtype: None)."""
    for key in keys:
        raw = c.data.get(key)
        if raw not in (None, "auto"):
            if str(raw) not in _DTYPES:
                raise KvcalcError(f"config key {key!r}: unknown dtype {raw!r}")
            return _DTYPES[str(raw)], key
    return "model", None


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


def _breakdown(c: _Config, h: int, *, tied_default: bool, **parts: int | None) -> ParamBreakdown:
    """Return the breakdown with the embedding (vocab_size × h) and an lm_head unless tied."""
    vocab = c.get_int("vocab_size")
    tied = c.get_bool("tie_word_embeddings", tied_default)
    return ParamBreakdown(embedding=vocab * h, lm_head=0 if tied else vocab * h, **parts)


def _attn_params(
    h: int, n_heads: int, n_kv: int, d: int, bias: bool = False, q_mult: int = 1
) -> int:
    """q, k, v, o projections (q_mult 2: a gated output doubles q_proj)."""
    q, kv = n_heads * d, n_kv * d
    total = h * q * q_mult + 2 * h * kv + q * h
    return total + ((q * q_mult + 2 * kv + h) if bias else 0)
