"""`kvcalc check`: a file of deployments -> one pass/fail result per deployment, streamed.

The file is YAML: a mapping with a `deployments:` list (or the list itself); each entry
names a model and a GPU and may set tp/pp (or gpus), seq, batch, engine, dtypes, util,
reserve, gpu_mem and min_headroom. Errors name the file, the entry and the field.

The file is read as a stream of YAML events (presets.iter_yaml_list), one deployment at a
time, and each result is yielded before the next entry is read, so memory stays flat for
any number of deployments. Models and GPUs are loaded once per name, and the numbers come
from kvcalc/kernel.py's FitKernel (equal to planner.fit, tests/test_kernel.py), compiled
once per distinct (model, GPU, engine, dtypes, parallelism, budget knobs).
"""

from __future__ import annotations

from collections.abc import Iterator
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


def _field_error(path: Path, index: int, exc: ValidationError) -> KvcalcError:
    from kvcalc.specs import format_validation_error

    return KvcalcError(f"{path}: deployments[{index}].{format_validation_error(exc)}")


def iter_entries(path: Path) -> Iterator[Any]:
    """Yield the raw deployment entries of a file one at a time (YAML events, not a tree)."""
    from kvcalc.presets import iter_yaml_list

    return iter_yaml_list(path, "deployments", "deployments")


class _Cache:
    """What deployments share: loaded specs by name, and compiled fit kernels by plan shape."""

    def __init__(self, presets_dir: Path | None) -> None:
        self.presets_dir = presets_dir
        self.models: dict[str, tuple[str, Any]] = {}
        self.gpus: dict[str, tuple[str, Any]] = {}
        self.kernels: dict[tuple[Any, ...], Any] = {}

    def model(self, name: str) -> tuple[str, Any]:
        if name not in self.models:
            from kvcalc.presets import canonical_model_name, load_model

            spec = load_model(name, self.presets_dir)
            self.models[name] = (canonical_model_name(name, self.presets_dir), spec)
        return self.models[name]

    def gpu(self, name: str) -> tuple[str, Any]:
        if name not in self.gpus:
            from kvcalc.presets import canonical_gpu_name, load_gpu

            gpu = load_gpu(name, self.presets_dir)
            self.gpus[name] = (canonical_gpu_name(name, self.presets_dir), gpu)
        return self.gpus[name]

    def kernel(self, key: tuple[Any, ...], build: Any) -> Any:
        if key not in self.kernels:
            if len(self.kernels) >= 4096:
                self.kernels.clear()
            self.kernels[key] = build()
        return self.kernels[key]


def run_checks(path: Path, presets_dir: Path | None = None) -> list[dict[str, Any]]:
    """Return one result dict per deployment in the file (iter_checks, collected)."""
    return list(iter_checks(path, presets_dir))


def iter_checks(
    path: Path, presets_dir: Path | None = None, cache: _Cache | None = None
) -> Iterator[dict[str, Any]]:
    """Yield one result dict per deployment in the file: name, ok, message, what and numbers."""
    from dataclasses import replace

    from kvcalc.dtypes import kv_dtype, weight_dtype
    from kvcalc.engines import engine_profile
    from kvcalc.formula import Workload
    from kvcalc.kernel import FitKernel
    from kvcalc.planner import split_gpus
    from kvcalc.units import format_gb, format_gib, parse_count, parse_size, parse_tokens

    cache = cache or _Cache(presets_dir)
    for index, raw in enumerate(iter_entries(path)):
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

        model_name, spec = field("model", cache.model, entry.model)
        gpu_name, gpu = field("gpu", cache.gpu, entry.gpu)
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
        weights = (
            None
            if entry.weights_dtype in (None, "auto")
            else field("weights_dtype", weight_dtype, entry.weights_dtype)
        )
        reserve = (
            None
            if entry.reserve is None
            else field("reserve", parse_size, entry.reserve, "reserve")
        )
        shape = replace(workload, seq_len=1, batch=1)
        key = (
            model_name,
            gpu_name,
            gpu.memory_bytes,
            engine.name,
            shape,
            weights,
            entry.util,
            reserve,
        )

        def build(
            spec: Any = spec,
            gpu: Any = gpu,
            engine: Any = engine,
            shape: Workload = shape,
            weights: Any = weights,
            util: float | None = entry.util,
            reserve: int | None = reserve,
        ) -> Any:
            return FitKernel(spec, gpu, engine, shape, weights, util, reserve)

        try:
            kernel = cache.kernel(key, build)
            answer = kernel.answer(workload.seq_len, workload.batch)
        except KvcalcError as exc:
            raise KvcalcError(f"{where}: {exc}") from None
        result, budget = answer.at, answer.budget
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
                f"{format_gb(budget.kv_budget_bytes)} (short by {format_gb(-room)} = "
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
                f"KV {format_gb(result.kv_bytes)} of {format_gb(budget.kv_budget_bytes)} "
                f"budget, headroom {format_gb(room)} = {format_gib(room)}"
            )
        k = kernel.kv
        yield {
            "file": str(path),
            "name": label,
            "ok": ok,
            "message": f"{setup}: {reason}",
            "model": model_name,
            "model_name": spec.name,
            "gpu": gpu_name,
            "gpu_name": gpu.name,
            "engine": engine.name,
            "kv_dtype": k.k_dtype.name if k.k_dtype == k.v_dtype else None,
            "weights_dtype": weights.name if weights is not None else spec.dtype,
            "util": budget.util,
            "tp": tp,
            "pp": pp,
            "n_gpus": tp * pp,
            "capacity_bytes": budget.capacity_bytes,
            "seq_len": workload.seq_len,
            "batch": workload.batch,
            "fits": result.fits,
            "headroom_bytes": room,
            "min_headroom_bytes": need,
            "kv_bytes": result.kv_bytes,
            "kv_budget_bytes": budget.kv_budget_bytes,
            "max_batch": result.max_batch,
        }
