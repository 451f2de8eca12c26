"""Results -> plain dicts with a stable schema (documented in docs/schemas.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvcalc.formula import KvBreakdown
from kvcalc.specs import GpuSpec, LayerPattern, ModelSpec
from kvcalc.units import GB, GiB, format_gb, format_gib

if TYPE_CHECKING:  # calc's report needs no planner: it is imported by fit_report alone
    from kvcalc.planner import Fit

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
        "kv_dtype_source": kv.kv_dtype_source,
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
        "total_human": f"{format_gb(kv.total_bytes)} = {format_gib(kv.total_bytes)}",
        "per_gpu_human": f"{format_gb(kv.per_gpu_bytes)} = {format_gib(kv.per_gpu_bytes)}",
        "busiest_stage": kv.busiest_stage,
        "stage_layers": [list(r) for r in kv.stage_layers],
        "layers": [
            {
                "kind": g.kind,
                "window": g.window,
                "count": g.count,
                "padded_count": g.padded_count,
                "tokens": g.tokens,
                "bytes_per_token_per_layer": g.bytes_per_token_per_layer,
                "bytes": g.bytes,
                "layer_kind": g.layer_kind or None,
            }
            for g in kv.groups
        ],
        "formula": f"{kv.formula}; {kv.layer_formula}",
        "total_formula": kv.formula,
        "layer_formula": kv.layer_formula,
        # fixed-size recurrent / linear-attention state, apart from the growing KV above
        "state_bytes_per_sequence": kv.state_bytes_per_sequence,
        "state_total_bytes": kv.state_total_bytes,
        "state_per_gpu_bytes": kv.state_per_gpu_bytes,
        "state_layers": [
            {
                "kind": g.layer_kind,
                "mixer": g.mixer,
                "count": g.count,
                "padded_count": g.padded_count,
                "conv_bytes_per_layer": g.conv_bytes_per_layer,
                "recurrent_bytes_per_layer": g.recurrent_bytes_per_layer,
                "bytes_per_sequence_per_layer": g.bytes_per_sequence_per_layer,
                "pages_per_sequence": g.pages_per_sequence,
                "bytes": g.bytes,
                "formula": g.formula,
            }
            for g in kv.state_groups
        ],
        "cache_total_bytes": kv.cache_total_bytes,
        "cache_per_gpu_bytes": kv.cache_per_gpu_bytes,
        "mtp_layers": kv.mtp_layers,
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
    "state_bytes_per_sequence",
    "state_total_bytes",
)


def preset_row(name: str, spec: ModelSpec, bf16_bytes_per_token: int) -> dict[str, Any]:
    """Return one `kvcalc presets list` row."""
    return {
        "name": name,
        "model": spec.name,
        "attention": spec.attention.kind,
        "layers": spec.n_layers,
        "sliding": None if spec.layers is None else _pattern_text(spec.layers, spec),
        "n_params": spec.n_params,
        "kv_bytes_per_token_bf16": bf16_bytes_per_token,
    }


def fit_report(
    result: Fit,
    model_label: str,
    gpu_label: str,
    min_gpus: tuple[int, int] | None,
    min_tp: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Return a `kvcalc fit` answer as a JSON-ready dict; bytes per GPU, all ints."""
    from kvcalc.planner import weights_format

    plan, budget = result.plan, result.budget
    w = plan.workload
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model_label,
        "model_name": plan.model.name,
        "gpu": gpu_label,
        "gpu_name": plan.gpu.name,
        "engine": plan.engine.name,
        "kv_dtype": result.kv.k_dtype.name if result.kv.k_dtype == result.kv.v_dtype else None,
        "kv_dtype_source": result.kv.kv_dtype_source,
        "weights_dtype": weights_format(plan.model, plan.weights_dtype),
        "tp": w.tp,
        "pp": w.pp,
        "n_gpus": w.tp * w.pp,
        "capacity_bytes": budget.capacity_bytes,
        "capacity_kind": plan.gpu.memory_kind,
        "util": budget.util,
        "usable_bytes": budget.usable_bytes,
        "weights_bytes": budget.weights_bytes,
        "weights_approximate": result.weights_approximate,
        "reserve_bytes": budget.reserve_bytes,
        "reserve_terms": [{"term": t, "bytes": b} for t, b in budget.reserve_terms],
        "budget_terms": [{"term": t, "bytes": b} for t, b in budget.terms],
        "kv_budget_bytes": budget.kv_budget_bytes,
        "pool_terms": [{"term": t, "bytes": b} for t, b in budget.pool_terms],
        "stage_weights_bytes": list(budget.stage_weights_bytes),
        "stage_kv_budget_bytes": list(budget.stage_kv_budget_bytes),
        "budget_rule": budget.rule,
        "seq_len": w.seq_len,
        "batch": w.batch,
        "kv_bytes": result.kv_bytes,
        "fits": result.fits,
        "headroom_bytes": result.headroom_bytes,
        "max_batch": result.max_batch,
        "max_seq_len": result.max_seq_len,
        "max_seq_len_clamped": result.max_seq_len_clamped,
        "max_tokens": result.max_tokens,
        "max_concurrency": round(result.max_concurrency, 2),
        "min_gpus": None if min_gpus is None else min_gpus[0] * min_gpus[1],
        "min_tp": None if min_gpus is None else min_gpus[0],
        "min_pp": None if min_gpus is None else min_gpus[1],
        "min_tp_alone": None if min_tp is None else min_tp[0],
        "notes": list(result.notes),
        "assumptions": list(result.kv.assumptions),
    }


FIT_CSV_COLUMNS = (
    "model", "gpu", "engine", "kv_dtype", "weights_dtype", "util", "tp", "pp", "n_gpus",
    "capacity_bytes", "weights_bytes", "reserve_bytes", "kv_budget_bytes", "seq_len", "batch",
    "kv_bytes", "fits", "headroom_bytes", "max_batch", "max_seq_len", "max_tokens", "min_gpus",
)  # fmt: skip

# `kvcalc check --format csv`: what each deployment was computed for, then the verdict
CHECK_CSV_COLUMNS = (
    "file", "name", "ok", "model", "gpu", "engine", "kv_dtype", "weights_dtype", "util", "tp",
    "pp", "n_gpus", "seq_len", "batch", "kv_bytes", "kv_budget_bytes", "headroom_bytes",
    "max_batch", "message",
)  # fmt: skip


def gpu_row(name: str, gpu: GpuSpec) -> dict[str, Any]:
    """Return one `kvcalc gpus list` row."""
    return {
        "name": name,
        "gpu": gpu.name,
        "vendor": gpu.vendor,
        "memory_bytes": gpu.memory_bytes,
        "memory_gib": round(gpu.memory_bytes / GiB, 2),
        "memory_gb": round(gpu.memory_bytes / GB, 2),
        "memory_kind": gpu.memory_kind,
        "datasheet_memory": gpu.datasheet_memory,
        "bandwidth_bytes_per_s": gpu.bandwidth_bytes_per_s,
        "price_per_hour_usd": gpu.price_per_hour_usd,
        "compute_capability": gpu.compute_capability,
    }


def _pattern_text(layers: LayerPattern, spec: ModelSpec | None = None) -> str:
    """Return 'local:full W=window' for a layer pattern, e.g. '5:1 W=1024' or '3:1 chunk=8192';
    with the model's own kinds, each kind and its layer count: 'mamba×23 full×6 moe×23'."""
    pattern = layers.pattern
    if spec is not None and spec.kinds and set(pattern) - {"full", "sliding", "chunked"}:
        names = spec.layer_kind_names()
        parts = [f"{name}×{names.count(name)}" for name in dict.fromkeys(names)]
        if layers.sliding_window is not None:
            parts.append(f"W={layers.sliding_window}")
        if layers.chunk_size is not None:
            parts.append(f"chunk={layers.chunk_size}")
        return " ".join(parts)
    local = len(pattern) - pattern.count("full")
    size = (
        f"W={layers.sliding_window}"
        if layers.sliding_window is not None
        else f"chunk={layers.chunk_size}"
    )
    return f"{local}:{pattern.count('full')} {size}"
