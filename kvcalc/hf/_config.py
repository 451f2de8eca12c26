"""Typed access to a Hugging Face config dict, with errors that name the key."""

from __future__ import annotations

from typing import Any

from kvcalc.errors import KvcalcError

# Far above any published model (the deepest have a few hundred layers; the widest counts
# are vocabularies and contexts of a few million), far below what would hang the import.
MAX_CONFIG_INT = 2**40
_LIMITS = {"num_hidden_layers": 100_000, "n_layer": 100_000, "num_layers": 100_000}


class _Config:
    """Typed access to a config dict, with errors that name the missing or bad key."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get_int(self, *keys: str, default: int | None = None) -> int:
        for key in keys:
            value = self.data.get(key)
            if value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (isinstance(value, float) and not value.is_integer())  # NaN, inf, 2.5
            ):
                raise KvcalcError(f"config key {key!r} must be an integer, got {value!r}")
            if value < 0:
                raise KvcalcError(f"config key {key!r} must not be negative, got {value!r}")
            limit = _LIMITS.get(key, MAX_CONFIG_INT)
            if value > limit:  # a typo or a fuzzed file: per-layer lists would never finish
                raise KvcalcError(f"config key {key!r} is {value!r}, more than {limit:,}")
            return int(value)
        if default is not None:
            return default
        raise KvcalcError(f"config.json lacks {keys[0]!r}, which the layout needs")

    def opt_int(self, *keys: str) -> int | None:
        return self.get_int(*keys, default=-1) if any(self.has(k) for k in keys) else None

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        return default if value is None else bool(value)


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return the language-model part of a config (multimodal configs nest it in text_config)."""
    inner = config.get("text_config")
    if isinstance(inner, dict):
        merged = dict(inner)
        for key in ("tie_word_embeddings", "torch_dtype", "dtype"):
            if key not in merged and key in config:
                merged[key] = config[key]
        merged.setdefault("architectures", config.get("architectures"))
        return merged
    return config


def _dtype(c: _Config) -> str:
    raw = c.data.get("torch_dtype") or c.data.get("dtype") or "bfloat16"
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(str(raw), "bf16")


def _positive(c: _Config, key: str) -> int | None:
    value = c.data.get(key)
    if value is None or value is False:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise KvcalcError(f"config key {key!r} must be a positive integer, got {value!r}")
    return value
