"""kvcalc: exact KV-cache memory calculator and capacity planner for LLM inference."""

from kvcalc.dtypes import KV_DTYPES, KvDtype, kv_dtype
from kvcalc.engines import ENGINES, EngineProfile, engine_profile
from kvcalc.errors import KvcalcError
from kvcalc.formula import KvBreakdown, Workload, kv_cache
from kvcalc.specs import GQA, MHA, MLA, MQA, LayerPattern, ModelSpec

__version__ = "0.1.0"

__all__ = [
    "ENGINES",
    "GQA",
    "KV_DTYPES",
    "MHA",
    "MLA",
    "MQA",
    "EngineProfile",
    "KvBreakdown",
    "KvDtype",
    "KvcalcError",
    "LayerPattern",
    "ModelSpec",
    "Workload",
    "__version__",
    "engine_profile",
    "kv_cache",
    "kv_dtype",
]
