"""Results -> plain dicts with a stable schema (documented in docs/json-schema.md)."""

from __future__ import annotations

from typing import Any

from kvcalc.formula import KvBreakdown
from kvcalc.specs import ModelSpec
from kvcalc.units import GB, GiB

SCHEMA_VERSION = 1


def calc_report(kv: KvBreakdown, model_label: str) -> dict[str, Any]:
    """Return the `kvcalc calc` result as a JSON-ready dict; every byte value is an int."""
    w = kv.workload
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model_label,
        "model_name": kv.model.name,
        "engine": kv.engine.name,
        "kv_dtype": kv.k_dtype.name if kv.k_dtype == kv.v_dtype else None,
        "k_dtype": kv.k_dtype.name,
        "v_dtype": kv.v_dtype.name,
        "attention": kv.model.attention.kind,
        "seq_len": w.seq_len,
        "batch": w.batch,
        "tp": w.tp,
        "pp": w.pp,
        "n_gpus": kv.n_gpus,
        "block_size": kv.block_size,
        "kv_heads_per_gpu": kv.kv_heads_per_gpu,
        "bytes_per_token": kv.bytes_per_token,
        "per_gpu_bytes_per_token": kv.per_gpu_bytes_per_token,
        "per_sequence_bytes": kv.per_sequence_bytes,
        "total_bytes": kv.total_bytes,
        "per_gpu_bytes": kv.per_gpu_bytes,
        "total_gib": round(kv.total_bytes / GiB, 3),
        "total_gb": round(kv.total_bytes / GB, 3),
        "per_gpu_gib": round(kv.per_gpu_bytes / GiB, 3),
        "per_gpu_gb": round(kv.per_gpu_bytes / GB, 3),
        "busiest_stage": kv.busiest_stage,
        "stage_layers": [list(r) for r in kv.stage_layers],
        "layers": [
            {
                "kind": g.kind,
                "window": g.window,
                "count": g.count,
                "tokens": g.tokens,
                "bytes_per_token_per_layer": g.bytes_per_token_per_layer,
                "bytes": g.bytes,
            }
            for g in kv.groups
        ],
        "formula": f"{kv.formula}; {kv.layer_formula}",
        "total_formula": kv.formula,
        "layer_formula": kv.layer_formula,
        "assumptions": list(kv.assumptions),
    }


CALC_CSV_COLUMNS = (
    "model",
    "engine",
    "kv_dtype",
    "seq_len",
    "batch",
    "tp",
    "pp",
    "bytes_per_token",
    "per_sequence_bytes",
    "total_bytes",
    "per_gpu_bytes",
)


def preset_row(name: str, spec: ModelSpec, bf16_bytes_per_token: int) -> dict[str, Any]:
    """Return one `kvcalc presets list` row."""
    return {
        "name": name,
        "model": spec.name,
        "attention": spec.attention.kind,
        "layers": spec.n_layers,
        "sliding": (
            None
            if spec.layers is None
            else f"{spec.layers.pattern.count('sliding')}:{spec.layers.pattern.count('full')}"
            f" W={spec.layers.sliding_window}"
        ),
        "n_params": spec.n_params,
        "kv_bytes_per_token_bf16": bf16_bytes_per_token,
    }
