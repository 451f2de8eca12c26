"""kvcalc: exact KV-cache memory calculator and capacity planner for LLM inference.

The public Python API (docs/api.md). Names are imported on first use, so `import kvcalc`
(and `kvcalc --version`) costs nothing beyond this file:

    >>> import kvcalc
    >>> kvcalc.calc("llama-3.1-8b", seq="8k").total_bytes
    1073741824
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # functions: load, size, plan, sweep
    "load_model": "kvcalc.api",
    "load_gpu": "kvcalc.api",
    "tokens": "kvcalc.api",
    "workload": "kvcalc.api",
    "calc": "kvcalc.api",
    "plan": "kvcalc.api",
    "fit": "kvcalc.api",
    "max_batch": "kvcalc.api",
    "max_context": "kvcalc.api",
    "min_gpus": "kvcalc.api",
    "sweep": "kvcalc.api",
    "GpuCount": "kvcalc.api",
    # the models and results those functions take and return
    "ModelSpec": "kvcalc.specs",
    "GpuSpec": "kvcalc.specs",
    "MHA": "kvcalc.specs",
    "GQA": "kvcalc.specs",
    "MQA": "kvcalc.specs",
    "MLA": "kvcalc.specs",
    "LayerPattern": "kvcalc.specs",
    "Workload": "kvcalc.formula",
    "KvBreakdown": "kvcalc.formula",
    "kv_cache": "kvcalc.formula",
    "Plan": "kvcalc.planner",
    "Fit": "kvcalc.planner",
    "Budget": "kvcalc.planner",
    "Grid": "kvcalc.sweep",
    "KvKernel": "kvcalc.kernel",
    "FitKernel": "kvcalc.kernel",
    "EngineProfile": "kvcalc.engines",
    "ENGINES": "kvcalc.engines",
    "engine_profile": "kvcalc.engines",
    "KvDtype": "kvcalc.dtypes",
    "KV_DTYPES": "kvcalc.dtypes",
    "kv_dtype": "kvcalc.dtypes",
    "weight_dtype": "kvcalc.dtypes",
    "KvcalcError": "kvcalc.errors",
}

__all__ = [
    "ENGINES",
    "GQA",
    "KV_DTYPES",
    "MHA",
    "MLA",
    "MQA",
    "Budget",
    "EngineProfile",
    "Fit",
    "FitKernel",
    "GpuCount",
    "GpuSpec",
    "Grid",
    "KvBreakdown",
    "KvDtype",
    "KvKernel",
    "KvcalcError",
    "LayerPattern",
    "ModelSpec",
    "Plan",
    "Workload",
    "__version__",
    "calc",
    "engine_profile",
    "fit",
    "kv_cache",
    "kv_dtype",
    "load_gpu",
    "load_model",
    "max_batch",
    "max_context",
    "min_gpus",
    "plan",
    "sweep",
    "tokens",
    "weight_dtype",
    "workload",
]

if TYPE_CHECKING:
    from kvcalc.api import (
        GpuCount,
        calc,
        fit,
        load_gpu,
        load_model,
        max_batch,
        max_context,
        min_gpus,
        plan,
        sweep,
        tokens,
        workload,
    )
    from kvcalc.dtypes import KV_DTYPES, KvDtype, kv_dtype, weight_dtype
    from kvcalc.engines import ENGINES, EngineProfile, engine_profile
    from kvcalc.errors import KvcalcError
    from kvcalc.formula import KvBreakdown, Workload, kv_cache
    from kvcalc.kernel import FitKernel, KvKernel
    from kvcalc.planner import Budget, Fit, Plan
    from kvcalc.specs import GQA, MHA, MLA, MQA, GpuSpec, LayerPattern, ModelSpec
    from kvcalc.sweep import Grid


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kvcalc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
