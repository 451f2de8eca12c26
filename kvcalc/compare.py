"""Models side by side: per-token and per-sequence KV bytes, layout, capacity, ratio (pure).

A column is one (model, KV dtype, engine) point; `as_mha` gives the same model as plain
multi-head attention, every layer full, so what GQA, MQA, MLA and windows save shows up
as a ratio.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from kvcalc.dtypes import KvDtype
from kvcalc.engines import EngineProfile
from kvcalc.explain import layout_text
from kvcalc.formula import KvBreakdown, Workload, kv_cache
from kvcalc.planner import Plan, fit
from kvcalc.records import record
from kvcalc.specs import MHA, MLA, GpuSpec, ModelSpec


@record
class Column:
    """One compared point: a model (or its MHA equivalent) under an engine and KV dtype."""

    label: str
    model: ModelSpec
    engine: EngineProfile
    kv_dtype: KvDtype | None  # None: auto
    as_mha: bool = False


@record
class Compared:
    """The numbers of one column; ratios are to the first column, exact fractions.

    ratio_per_sequence compares what one sequence keeps: its KV plus any fixed state.
    """

    column: Column
    layout: str
    kv_dtype: str
    bytes_per_token: int
    per_sequence_bytes: int
    total_bytes: int
    per_gpu_bytes: int
    state_bytes_per_sequence: int  # fixed recurrent / linear-attention state, 0 for none
    ratio_per_token: Fraction
    ratio_per_sequence: Fraction
    gpu: str | None = None
    fits: bool | None = None
    max_batch: int | None = None
    max_seq_len: int | None = None


def as_mha(model: ModelSpec) -> ModelSpec:
    """Return the model as plain MHA: one K/V head per query head, every layer full.

    MLA becomes MHA of n_heads heads with d_h = qk_nope_head_dim (V: v_head_dim), the
    baseline of arXiv 2405.04434 Table 1 (2·n_h·d_h·l elements per token).
    """
    a = model.attention
    if isinstance(a, MLA):
        head_dim, v_dim = a.qk_nope_head_dim, a.v_head_dim
    else:
        head_dim, v_dim = a.head_dim, a.v_dim
    attention = MHA(
        kind="mha",
        n_heads=a.n_heads,
        head_dim=head_dim,
        head_dim_v=None if v_dim == head_dim else v_dim,
    )
    update: dict[str, object] = {
        "name": f"{model.name} as MHA",
        "attention": attention,
        "layers": None,
    }
    if "kinds" in type(model).model_fields:  # named layer kinds (state, no-cache) go too
        update["kinds"] = None
    return model.model_copy(update=update)


def compare(
    columns: list[Column],
    workload: Workload,
    gpu: tuple[str, GpuSpec] | None = None,
) -> list[Compared]:
    """Return every column's numbers at the workload, ratios to the first column.

    With a GPU, each column also gets the planner's verdict, max batch at seq_len and max
    context at the batch (weights of the real model, also for an MHA column).
    """
    results = []
    for col in columns:
        w = replace(workload, k_dtype=col.kv_dtype, v_dtype=col.kv_dtype)
        kv = kv_cache(col.model, w, col.engine)
        answer = None
        if gpu is not None:
            answer = fit(Plan(col.model, gpu[1], col.engine, w))
        results.append((col, kv, answer))

    def cache_per_sequence(kv: KvBreakdown) -> int:
        return kv.per_sequence_bytes + int(getattr(kv, "state_bytes_per_sequence", 0) or 0)

    first_kv = results[0][1]
    compared = []
    for col, kv, answer in results:
        compared.append(
            Compared(
                column=col,
                layout=layout_text(col.model),
                kv_dtype=kv.k_dtype.name,
                bytes_per_token=kv.bytes_per_token,
                per_sequence_bytes=kv.per_sequence_bytes,
                total_bytes=kv.total_bytes,
                per_gpu_bytes=kv.per_gpu_bytes,
                state_bytes_per_sequence=int(getattr(kv, "state_bytes_per_sequence", 0) or 0),
                ratio_per_token=Fraction(kv.bytes_per_token, first_kv.bytes_per_token),
                ratio_per_sequence=Fraction(cache_per_sequence(kv), cache_per_sequence(first_kv)),
                gpu=None if gpu is None else gpu[0],
                fits=None if answer is None else answer.fits,
                max_batch=None if answer is None else answer.max_batch,
                max_seq_len=None if answer is None else answer.max_seq_len,
            )
        )
    return compared


def compared_rows(compared: list[Compared], workload: Workload) -> list[dict[str, object]]:
    """Return plain rows (JSON/CSV ready): bytes as ints, ratios rounded to 4 decimals."""
    return [
        {
            "model": c.column.label,
            "model_name": c.column.model.name,
            "as_mha": c.column.as_mha,
            "engine": c.column.engine.name,
            "kv_dtype": c.kv_dtype,
            "layout": c.layout,
            "seq_len": workload.seq_len,
            "batch": workload.batch,
            "tp": workload.tp,
            "pp": workload.pp,
            "bytes_per_token": c.bytes_per_token,
            "per_sequence_bytes": c.per_sequence_bytes,
            "total_bytes": c.total_bytes,
            "per_gpu_bytes": c.per_gpu_bytes,
            "state_bytes_per_sequence": c.state_bytes_per_sequence,
            "ratio_per_token": round(float(c.ratio_per_token), 4),
            "ratio_per_sequence": round(float(c.ratio_per_sequence), 4),
            "gpu": c.gpu,
            "fits": c.fits,
            "max_batch": c.max_batch,
            "max_seq_len": c.max_seq_len,
        }
        for c in compared
    ]


COMPARE_CSV_COLUMNS = (
    "model", "as_mha", "engine", "kv_dtype", "layout", "seq_len", "batch", "tp", "pp",
    "bytes_per_token", "per_sequence_bytes", "total_bytes", "per_gpu_bytes",
    "state_bytes_per_sequence", "ratio_per_token",
    "ratio_per_sequence", "gpu", "fits", "max_batch", "max_seq_len",
)  # fmt: skip
