"""Every tensor a transformers cache holds per layer, for hybrid and sparse-attention models.

`measure_layers(config, seq, batch)` runs a prefill on the `meta` device (as measure.py
does) and, optionally, one decode step with the returned cache; per decoder layer it
returns the bytes of each tensor the layer's cache object holds: K, V, DSA indexer keys,
conv and recurrent states (transformers 5.x LinearAttentionLayer keeps them in dicts by
state index), DeepSeek-V4's compressor and indexer buffers, compressed entries and overlap
tensors (dicts by branch), MiniMax's lightning state (MiniMaxCache.linear_cache, by layer). A V that is the K tensor itself (V4) is counted once. A layer with no cache (DummyLayer: MLP-only, KV-shared) holds nothing.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import torch

from tests.crosscheck.measure import _from_config, make_config, stub_feed_forward

# indexer_keys: DeepSeek-V3.2 / GLM-5 (DynamicIndexedLayer); idx_keys: MiniMax-M3 sparse layers
TENSORS = ("keys", "values", "indexer_keys", "idx_keys")
# conv / recurrent states by state index (LinearAttentionLayer); DeepSeek-V4's compressed
# layers' dicts by branch, "compressor" and "indexer" (DeepseekV4CSACache / HCACache)
STATES = (
    "conv_states", "recurrent_states",
    "buffer_kv", "buffer_gate", "compressed_kv", "overlap_kv", "overlap_gate",
)  # fmt: skip


def _nbytes(t: Any) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def layer_tensors(layer: Any) -> dict[str, int]:
    """Return {tensor name: bytes} of one cache layer (empty tensors left out)."""
    found: dict[str, int] = {}
    for name in TENSORS:
        if name == "values" and getattr(layer, "values", None) is getattr(layer, "keys", None):
            # DeepSeek-V4 compressed layers: `self.values = self.keys`, one tensor held once
            # (memory, not numel: a numel() sum would count it twice)
            continue
        n = _nbytes(getattr(layer, name, None))
        if n:
            found[name] = n
    for name in STATES:
        states = getattr(layer, name, None)
        if isinstance(states, dict):
            for index, tensor in states.items():
                n = _nbytes(tensor)
                if n:
                    found[f"{name}[{index}]"] = n
    return found


def _run(model: Any, input_ids: torch.Tensor, cache: Any = None) -> Any:
    kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": True}
    if cache is not None:
        kwargs["cache"] = cache  # transformers 5.x name (past_key_values is deprecated)
    with torch.no_grad():
        out = model(**kwargs)
    found = out.get("cache") if hasattr(out, "get") else None
    return found if found is not None else out.past_key_values


@functools.lru_cache(maxsize=2)
def _model(config_json: str, stub: bool) -> Any:
    """The meta model of a config, built once for all its points (a forward leaves no state
    in it: each prefill starts a new cache), its feed-forwards stubbed when `stub`."""
    model = _from_config(make_config(json.loads(config_json)), torch.bfloat16)
    if stub:
        stub_feed_forward(model)
    return model


def measure_layers(
    config: dict[str, Any], seq: int, batch: int, decode: bool = False
) -> list[dict[str, int]]:
    """Return, per decoder layer, the bytes of every tensor its cache holds after a prefill of
    `seq` tokens (and one decoded token more when `decode`)."""
    last: Exception | None = None
    for stub in (False, True):
        model = _model(json.dumps(config, sort_keys=True), stub)
        try:
            ids = torch.zeros((batch, seq), dtype=torch.long, device="meta")
            cache = _run(model, ids)
            if decode:
                step = torch.zeros((batch, 1), dtype=torch.long, device="meta")
                cache = _run(model, step, cache)
        except Exception as exc:  # MoE routing without a meta kernel: retry with stubbed MLPs
            last = exc
            continue
        layers = [layer_tensors(layer) for layer in cache.layers]
        # MiniMaxCache keeps each lightning layer's state in linear_cache (a list by layer,
        # [] for a softmax layer) beside the DynamicCache layers, which it appends only up
        # to the last softmax layer
        linear = getattr(cache, "linear_cache", [])
        layers += [{} for _ in range(len(linear) - len(layers))]
        for i, tensor in enumerate(linear):
            n = _nbytes(tensor)
            if n:
                layers[i]["linear_cache"] = n
        return layers
    raise RuntimeError(f"forward failed: {last}") from last
