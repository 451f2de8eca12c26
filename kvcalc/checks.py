"""`kvcalc check`: a file of deployments -> one pass/fail result per deployment.

The file is YAML: a mapping with a `deployments:` list (or the list itself); each entry
names a model and a GPU and may set tp/pp (or gpus), seq, batch, engine, dtypes, util,
reserve, gpu_mem and min_headroom. Errors name the file, the entry and the field.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kvcalc.errors import KvcalcError


class Deployment(BaseModel):
    """One deployment to check, as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    model: str
    gpu: str
    tp: int | None = Field(default=None, gt=0)
    pp: int | None = Field(default=None, gt=0)
    gpus: int | None = Field(default=None, gt=0)
    seq: int | str = 8192
    batch: int | str = 1
    engine: str = "vllm"
    kv_dtype: str = "auto"
    weights_dtype: str | None = None
    util: float | None = Field(default=None, gt=0, le=1)
    reserve: int | str | None = None
    gpu_mem: int | str | None = None
    max_batched_tokens: int | str | None = None
    min_headroom: int | str | None = None


def _entries(data: Any, path: Path) -> list[Any]:
    if isinstance(data, dict):
        unknown = set(data) - {"deployments"}
        if unknown:
            raise KvcalcError(
                f"{path}: unknown top-level key {sorted(unknown)[0]!r} (expected 'deployments')"
            )
        data = data.get("deployments")
    if not isinstance(data, list) or not data:
        raise KvcalcError(f"{path}: expected a non-empty list of deployments")
    return data


def _field_error(path: Path, index: int, exc: ValidationError) -> KvcalcError:
    from kvcalc.specs import format_validation_error

    return KvcalcError(f"{path}: deployments[{index}].{format_validation_error(exc)}")


def run_checks(path: Path, presets_dir: Path | None = None) -> list[dict[str, Any]]:
    """Return one result dict per deployment in the file: name, ok, message, numbers."""
    from kvcalc.dtypes import kv_dtype, weight_dtype
    from kvcalc.engines import engine_profile
    from kvcalc.formula import Workload
    from kvcalc.planner import Plan, fit, split_gpus
    from kvcalc.presets import load_gpu, load_model, read_yaml
    from kvcalc.units import format_gb, format_gib, parse_count, parse_size, parse_tokens

    results = []
    for index, raw in enumerate(_entries(read_yaml(path), path)):
        where = f"{path}: deployments[{index}]"
        if not isinstance(raw, dict):
            raise KvcalcError(f"{where}: expected a mapping of fields")
        try:
            entry = Deployment.model_validate(raw)
        except ValidationError as exc:
            raise _field_error(path, index, exc) from None

        def field(name: str, parse: Any, *args: Any, where: str = where) -> Any:
            try:
                return parse(*args)
            except KvcalcError as exc:
                raise KvcalcError(f"{where}.{name}: {exc}") from None

        spec = field("model", load_model, entry.model, presets_dir)
        gpu = field("gpu", load_gpu, entry.gpu, presets_dir)
        engine = field("engine", engine_profile, entry.engine)
        if entry.gpus is not None:
            tp, pp = field("gpus", split_gpus, spec, engine, entry.gpus)
        else:
            tp, pp = entry.tp or 1, entry.pp or 1
        dtype = None if entry.kv_dtype == "auto" else field("kv_dtype", kv_dtype, entry.kv_dtype)
        if entry.gpu_mem is not None:
            capacity = field("gpu_mem", parse_size, entry.gpu_mem, "gpu_mem")
            gpu = gpu.model_copy(update={"memory_bytes": capacity, "memory_kind": "user"})
        batched = entry.max_batched_tokens
        workload = Workload(
            seq_len=field("seq", parse_tokens, entry.seq, "seq"),
            batch=field("batch", parse_count, entry.batch, "batch"),
            k_dtype=dtype,
            v_dtype=dtype,
            tp=tp,
            pp=pp,
            max_num_batched_tokens=(
                None if batched is None else field("max_batched_tokens", parse_tokens, batched)
            ),
        )
        plan = Plan(
            model=spec,
            gpu=gpu,
            engine=engine,
            workload=workload,
            weights_dtype=(
                None
                if entry.weights_dtype in (None, "auto")
                else field("weights_dtype", weight_dtype, entry.weights_dtype)
            ),
            util=entry.util,
            reserve_bytes=(
                None
                if entry.reserve is None
                else field("reserve", parse_size, entry.reserve, "reserve")
            ),
        )
        try:
            result = fit(replace(plan))
        except KvcalcError as exc:
            raise KvcalcError(f"{where}: {exc}") from None
        need = (
            0
            if entry.min_headroom is None
            else field("min_headroom", parse_size, entry.min_headroom, "min_headroom")
        )
        label = entry.name or f"{entry.model} on {entry.gpu}"
        setup = (
            f"{spec.name} on {tp * pp}× {gpu.name} (tp {tp} × pp {pp}, {engine.name}), "
            f"seq {workload.seq_len:,} × batch {workload.batch:,}"
        )
        room = result.headroom_bytes
        if not result.fits:
            ok = False
            reason = (
                f"KV needs {format_gb(result.kv_bytes)} per GPU but the budget is "
                f"{format_gb(result.budget.kv_budget_bytes)} (short by {format_gb(-room)} = "
                f"{format_gib(-room)}); max batch at this seq: {result.max_batch:,}"
            )
        elif room < need:
            ok = False
            reason = (
                f"headroom {format_gb(room)} = {format_gib(room)} is below the required "
                f"min_headroom {format_gb(need)} = {format_gib(need)}"
            )
        else:
            ok = True
            reason = (
                f"KV {format_gb(result.kv_bytes)} of {format_gb(result.budget.kv_budget_bytes)} "
                f"budget, headroom {format_gb(room)} = {format_gib(room)}"
            )
        results.append(
            {
                "file": str(path),
                "name": label,
                "ok": ok,
                "message": f"{setup}: {reason}",
                "fits": result.fits,
                "headroom_bytes": room,
                "kv_bytes": result.kv_bytes,
                "kv_budget_bytes": result.budget.kv_budget_bytes,
                "max_batch": result.max_batch,
            }
        )
    return results
