"""Compare an engine's own start-up figures with kvcalc's prediction, term by term (pure).

For each figure the log prints (weights, available KV memory, KV tokens or cells, blocks,
concurrency) kvcalc computes the same quantity for the same settings. Two kinds of rows:

- "from the engine's ..." rows take one engine figure as input (its available KV memory,
  its free memory) and test kvcalc's KV layout: bytes per token, blocks, groups, rounding.
- "kvcalc's budget" rows predict the figure end to end from the GPU's memory, the
  utilisation, the weights and kvcalc's reserve model. Where the log reports the weights
  and weights="engine" (the default), that figure is used as the weights term of the
  budget, and the row says so; kvcalc's own weight estimate is still compared on its row.

Printed figures are rounded ("5.01 GiB"); every value here is an interval, and a row's
error is how far kvcalc's interval lies from the engine's, relative to the engine's
figure (0 when they overlap).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, replace
from fractions import Fraction
from typing import Any

from kvcalc.dtypes import KvDtype, WeightDtype, kv_dtype
from kvcalc.engines import EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.llamacpp import LlamaCppOptions
from kvcalc.logs import EngineLog, Figure, KvCacheLine
from kvcalc.planner import Plan, budget, fit, max_tokens, weights_per_stage
from kvcalc.records import record
from kvcalc.specs import GpuSpec, ModelSpec

# vLLM's and the planner's model dtype names for a log's torch dtype
_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32"}
# llama.cpp's ggml type names (K (f16): ...) as kvcalc spells them
_GGML_TYPES = {"f16": "fp16", "bf16": "bf16", "f32": "fp32"}
# a capacity for plans that only need a given KV budget (no GPU known): large enough that
# the reserve solved for stays positive
_NO_GPU_CAPACITY = 2**50


@record
class Setting:
    """One setting the comparison used, and where its value came from."""

    name: str
    value: str
    source: str  # "log", "option", "engine default", "model"


@record
class Term:
    """One compared quantity: the engine's figure, kvcalc's, and how kvcalc got it."""

    name: str
    unit: str  # "bytes", "tokens", "blocks", "cells", "x"
    engine: Figure | None
    kvcalc: Figure | None
    basis: str  # what kvcalc computed it from (inputs named)
    counts: bool = True  # part of the verdict

    @property
    def error(self) -> Fraction | None:
        """Return (kvcalc − engine) / engine beyond both figures' rounding (0: overlap)."""
        if self.engine is None or self.kvcalc is None or self.engine.value == 0:
            return None
        if self.kvcalc.hi < self.engine.lo:
            return (self.kvcalc.hi - self.engine.lo) / abs(self.engine.value)
        if self.kvcalc.lo > self.engine.hi:
            return (self.kvcalc.lo - self.engine.hi) / abs(self.engine.value)
        return Fraction(0)

    def within(self, tolerance: Fraction) -> bool | None:
        """Return whether |error| ≤ tolerance (None when nothing is compared)."""
        error = self.error
        return None if error is None else abs(error) <= tolerance


@record
class VerifyOptions:
    """The settings a user gives on the command line; None: the log's, else the default."""

    tp: int | None = None
    pp: int | None = None
    max_model_len: int | None = None
    util: float | None = None
    kv_dtype: str | None = None
    weights_dtype: WeightDtype | None = None
    block_size: int | None = None
    reserve_bytes: int | None = None
    weights: str = "engine"  # "engine": use the log's weights in the budget; "kvcalc": own
    tolerance: Fraction = Fraction(1, 100)


@record
class Verification:
    """The whole comparison: what was compared, with what, and the verdict."""

    engine: str
    version: str | None
    log_model: str | None
    model: str
    gpu: str | None
    settings: tuple[Setting, ...]
    terms: tuple[Term, ...]
    tolerance: Fraction
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def compared(self) -> tuple[Term, ...]:
        """Return the terms with both figures and part of the verdict."""
        return tuple(t for t in self.terms if t.counts and t.error is not None)

    @property
    def agrees(self) -> bool:
        """Return True when every compared term is within the tolerance."""
        return all(t.within(self.tolerance) for t in self.compared)


# ---- helpers ------------------------------------------------------------------------------


def _point(value: int | Fraction, unit: str, text: str | None = None) -> Figure:
    v = Fraction(value)
    return Figure(v, v, v, unit, text or _show(v, unit))


def _span(lo: int | Fraction, value: int | Fraction, hi: int | Fraction, unit: str) -> Figure:
    return Figure(Fraction(value), Fraction(lo), Fraction(hi), unit, _show(Fraction(value), unit))


def _show(value: Fraction, unit: str) -> str:
    if unit == "bytes":
        return f"{float(value) / 2**30:.4f} GiB"
    if unit == "x":
        return f"{float(value):.2f}x"
    return f"{round(value):,} {unit}"


class _Settings:
    def __init__(self) -> None:
        self.items: list[Setting] = []

    def pick(self, name: str, *candidates: tuple[object, str]) -> Any:
        """Return the first candidate value that is not None, recording where it came from.

        Any: a log setting is str, int, float or bool; callers convert with int() / float().
        """
        for value, source in candidates:
            if value is not None:
                self.items.append(Setting(name, str(value), source))
                return value
        return None

    def parallelism(self, options: VerifyOptions, logged: Mapping[str, object]) -> tuple[int, int]:
        """Return (tp, pp): the option, else what the log says, else 1 (recorded)."""
        tp, pp = (
            int(
                self.pick(
                    name,
                    (getattr(options, name), "option"),
                    (logged.get(name), "log"),
                    (1, "engine default"),
                )
            )
            for name in ("tp", "pp")
        )
        return tp, pp


def _kv_dtype_of(name: str | None, model_dtype: str | None) -> KvDtype | None:
    """Return the KV dtype a log's kv_cache_dtype means ('auto': the model's dtype)."""
    if name is None or name.lower() == "auto":
        return kv_dtype(model_dtype) if model_dtype else None
    return kv_dtype(_GGML_TYPES.get(name.lower(), name))


def _with_budget(plan: Plan, target: int) -> Plan:
    """Return the plan with its reserve solved so that its KV budget is exactly target.

    For the vLLM, SGLang and whole-device rules the budget falls one byte per reserve byte,
    so the reserve is the budget without any reserve less the target.
    """
    zero = budget(replace(plan, reserve_bytes=0))
    return replace(plan, reserve_bytes=zero.kv_budget_bytes - target)


def _tokens_from_budget(
    plan: Plan, lo: Fraction, value: Fraction, hi: Fraction
) -> tuple[Figure, Figure]:
    """Return kvcalc's (KV tokens, max concurrency) for a KV budget interval."""
    results = []
    for amount in (lo, value, hi):
        p = _with_budget(plan, int(amount))
        result = fit(p)
        results.append((result.max_tokens, Fraction(result.max_concurrency)))
    tokens = _span(results[0][0], results[1][0], results[2][0], "tokens")
    conc = _span(results[0][1], results[1][1], results[2][1], "x")
    return tokens, conc


# ---- vLLM ---------------------------------------------------------------------------------


def _vllm(
    log: EngineLog,
    spec: ModelSpec,
    profile: EngineProfile,
    gpu: GpuSpec | None,
    options: VerifyOptions,
) -> tuple[tuple[Setting, ...], list[Term], list[str], str | None]:
    s = log.settings
    settings = _Settings()
    notes: list[str] = []
    tp, pp = settings.parallelism(options, s)
    max_len = int(
        settings.pick(
            "max_model_len",
            (options.max_model_len, "option"),
            (s.get("max_model_len"), "log"),
            (s.get("concurrency_tokens"), "log (concurrency line)"),
            (spec.max_position_embeddings, "model (max_position_embeddings)"),
        )
        or 0
    )
    if max_len <= 0:
        raise KvcalcError("the log gives no max model len: pass --max-model-len")
    util = float(
        settings.pick(
            "gpu_memory_utilization",
            (options.util, "option"),
            (s.get("util"), "log"),
            (profile.default_util or 0.9, f"engine default ({profile.name})"),
        )
    )
    log_dtype = _TORCH_DTYPES.get(str(s.get("dtype", "")))
    settings.pick("dtype", (log_dtype, "log"), (spec.dtype, "model"))
    cache_name = settings.pick(
        "kv_cache_dtype",
        (options.kv_dtype, "option"),
        (s.get("kv_cache_dtype"), "log"),
        ("auto", "engine default"),
    )
    dtype = _kv_dtype_of(str(cache_name), log_dtype or spec.dtype)
    block = settings.pick(
        "block_size", (options.block_size, "option"), (s.get("block_size"), "log"), (None, "")
    )
    if block is None:
        settings.items.append(
            Setting("block_size", "engine default", f"engine default ({profile.name})")
        )
    batched = s.get("max_num_batched_tokens")
    if batched is not None:
        settings.items.append(Setting("max_num_batched_tokens", str(batched), "log"))
    if options.weights_dtype is not None:
        settings.items.append(Setting("weights_dtype", options.weights_dtype.name, "option"))
    workload = Workload(
        seq_len=max_len,
        batch=1,
        k_dtype=dtype,
        v_dtype=dtype,
        tp=tp,
        pp=pp,
        block_size=None if block is None else int(block),
        max_num_batched_tokens=None if batched is None else int(batched),
    )
    device = log.figures.get("device_bytes")
    gpu_label = gpu.name if gpu is not None else None
    plan_gpu = gpu
    if plan_gpu is None and device is not None:
        plan_gpu = GpuSpec(
            name=f"device of {device.text} (from the log)",
            vendor="other",
            memory_bytes=device.as_int,
            memory_kind="user",
            source="the log's free-memory line",
        )
        gpu_label = plan_gpu.name
    base = Plan(
        spec,
        plan_gpu
        or GpuSpec(
            name="none",
            vendor="other",
            memory_bytes=_NO_GPU_CAPACITY,
            memory_kind="user",
            source="-",
        ),
        profile,
        workload,
        weights_dtype=options.weights_dtype,
        util=util,
        reserve_bytes=options.reserve_bytes,
    )
    terms: list[Term] = []
    if gpu is not None and device is not None:
        terms.append(
            Term(
                "GPU memory",
                "bytes",
                device,
                _point(gpu.memory_bytes, "bytes"),
                f"GPU preset {gpu.name}",
            )
        )
    engine_weights = log.figures.get("weights_bytes")
    kvcalc_weights: int | None = None
    if spec.n_params is not None:
        kvcalc_weights = max(weights_per_stage(spec, profile, tp, pp, options.weights_dtype))
        terms.append(
            Term(
                "weights",
                "bytes",
                engine_weights,
                _point(kvcalc_weights, "bytes"),
                f"kvcalc's weights ({_weights_kind(spec, options)}, tp {tp}, pp {pp})",
            )
        )
    blocks = log.figures.get("gpu_blocks")
    engine_tokens = log.figures.get("kv_tokens") or _blocks_as_tokens(blocks, base)
    available = log.figures.get("available_kv_bytes")
    concurrency = log.figures.get("max_concurrency")
    if available is not None:
        tokens, conc = _tokens_from_budget(base, available.lo, available.value, available.hi)
        basis = f"from the engine's available KV memory ({available.text}, input)"
        terms.append(Term("KV tokens", "tokens", engine_tokens, tokens, basis))
        if concurrency is not None:
            terms.append(Term("concurrency", "x", concurrency, conc, basis))
        if blocks is not None and not _hybrid(base):
            block_size = fit(_with_budget(base, available.as_int)).kv.block_size
            terms.append(
                Term(
                    "GPU blocks",
                    "blocks",
                    blocks,
                    _span(
                        tokens.lo // block_size,
                        tokens.value // block_size,
                        tokens.hi // block_size,
                        "blocks",
                    ),
                    basis,
                )
            )
    if plan_gpu is not None:
        b = budget(base)
        if options.weights == "engine" and engine_weights is not None:
            shift = b.weights_bytes - engine_weights.value
            lo, mid, hi = (
                b.kv_budget_bytes + b.weights_bytes - engine_weights.hi,
                b.kv_budget_bytes + shift,
                b.kv_budget_bytes + b.weights_bytes - engine_weights.lo,
            )
            weights_text = f"the engine's weights ({engine_weights.text}, input)"
        else:
            lo = mid = hi = Fraction(b.kv_budget_bytes)
            weights_text = "kvcalc's weights"
        reserve_text = (
            "--reserve" if options.reserve_bytes is not None else "kvcalc's default reserve"
        )
        basis = (
            f"kvcalc's budget: {gpu_label} × {util} − {weights_text} − {reserve_text} "
            f"({b.reserve_bytes / 2**30:.2f} GiB)"
        )
        if device is not None and gpu is None:
            lo_cap = budget(
                replace(base, gpu=replace_memory(plan_gpu, int(device.lo)))
            ).kv_budget_bytes
            hi_cap = budget(
                replace(base, gpu=replace_memory(plan_gpu, int(device.hi)))
            ).kv_budget_bytes
            lo += lo_cap - b.kv_budget_bytes
            hi += hi_cap - b.kv_budget_bytes
        terms.append(Term("KV memory", "bytes", available, _span(lo, mid, hi, "bytes"), basis))
        if available is not None and engine_weights is not None:
            usable = [Fraction(b.usable_bytes)] * 2
            if device is not None and gpu is None:
                usable = [
                    Fraction(
                        budget(replace(base, gpu=replace_memory(plan_gpu, int(c)))).usable_bytes
                    )
                    for c in (device.lo, device.hi)
                ]
            low = usable[0] - engine_weights.hi - available.hi
            high = usable[1] - engine_weights.lo - available.lo
            middle = Fraction(b.usable_bytes) - engine_weights.value - available.value
            derived = Figure(
                middle, low, high, "bytes", f"{float(middle) / 2**30:.2f} GiB (derived)"
            )
            terms.append(
                Term(
                    "reserve",
                    "bytes",
                    derived,
                    _point(b.reserve_bytes, "bytes"),
                    "kvcalc's reserve model; the engine's is its budget (capacity × "
                    "utilisation) − its weights − its available KV memory",
                    counts=False,
                )
            )
        tokens, conc = _tokens_from_budget(base, lo, mid, hi)
        terms.append(
            Term(
                "KV tokens",
                "tokens",
                engine_tokens or _blocks_as_tokens(blocks, base),
                tokens,
                basis,
            )
        )
        if concurrency is not None:
            terms.append(Term("concurrency", "x", concurrency, conc, basis))
    else:
        notes.append("no GPU given and none in the log: the budget rows need --gpu or --gpu-mem")
    if _hybrid(base):
        notes.append(
            "hybrid (sliding-window) model: GPU KV cache size is (blocks // groups) × block "
            "size, as vLLM 0.10-0.11 report it"
        )
    return tuple(settings.items), terms, notes, gpu_label


def _weights_kind(spec: ModelSpec, options: VerifyOptions) -> str:
    """Return how kvcalc sized the weights: the dtype asked for, or as the model publishes."""
    if options.weights_dtype is not None:
        return options.weights_dtype.name
    if spec.weights_quant is not None:
        return f"as published, {spec.weights_quant.method}"
    return spec.dtype


def replace_memory(gpu: GpuSpec, memory_bytes: int) -> GpuSpec:
    """Return the GPU with another memory size."""
    return gpu.model_copy(update={"memory_bytes": memory_bytes})


def _hybrid(plan: Plan) -> bool:
    kv = kv_cache(plan.model, plan.workload, plan.engine)
    return len(kv.groups) > 1


def _blocks_as_tokens(blocks: Figure | None, plan: Plan) -> Figure | None:
    if blocks is None:
        return None
    block_size = kv_cache(plan.model, plan.workload, plan.engine).block_size
    value = blocks.value * block_size
    return Figure(value, value, value, "tokens", f"{blocks.text} × {block_size}")


# ---- SGLang -------------------------------------------------------------------------------


def _sglang(
    log: EngineLog,
    spec: ModelSpec,
    profile: EngineProfile,
    gpu: GpuSpec | None,
    options: VerifyOptions,
) -> tuple[tuple[Setting, ...], list[Term], list[str], str | None]:
    s = log.settings
    settings = _Settings()
    notes: list[str] = []
    tp, pp = settings.parallelism(options, s)
    cache_name = settings.pick(
        "kv_cache_dtype",
        (options.kv_dtype, "option"),
        (s.get("kv_cache_dtype"), "log"),
        ("auto", "engine default"),
    )
    dtype = _kv_dtype_of(str(cache_name), spec.dtype)
    terms: list[Term] = []
    tokens = log.figures.get("kv_tokens")
    kv_bytes = log.figures.get("kv_bytes")
    if tokens is not None and kv_bytes is not None:
        kv = kv_cache(
            spec,
            Workload(seq_len=tokens.as_int, batch=1, k_dtype=dtype, v_dtype=dtype, tp=tp, pp=pp),
            profile,
        )
        terms.append(
            Term(
                "KV pool bytes",
                "bytes",
                kv_bytes,
                _point(kv.per_gpu_bytes, "bytes"),
                f"kvcalc's bytes per token × the engine's #tokens ({tokens.as_int:,}, input)",
            )
        )
    util = settings.pick(
        "mem_fraction_static",
        (options.util, "option"),
        (s.get("mem_fraction_static"), "log"),
        (None, ""),
    )
    if gpu is not None and tokens is not None:
        plan = Plan(
            spec,
            gpu,
            profile,
            Workload(
                seq_len=int(s.get("context_length") or spec.max_position_embeddings or 4096),
                k_dtype=dtype,
                v_dtype=dtype,
                tp=tp,
                pp=pp,
            ),
            weights_dtype=options.weights_dtype,
            util=None if util is None else float(util),
            reserve_bytes=options.reserve_bytes,
        )
        b = budget(plan)
        engine_weights = log.figures.get("weights_bytes")
        target = b.kv_budget_bytes
        weights_text = "kvcalc's weights"
        if options.weights == "engine" and engine_weights is not None:
            target += b.weights_bytes - engine_weights.as_int
            weights_text = f"the engine's weights ({engine_weights.text}, input)"
        predicted = max_tokens(_with_budget(plan, target))
        terms.append(
            Term(
                "KV pool tokens",
                "tokens",
                tokens,
                _point(predicted, "tokens"),
                f"kvcalc's budget: {gpu.name}, mem_fraction_static {b.util}, {weights_text}",
            )
        )
    elif gpu is None:
        notes.append("no GPU given: the budget row needs --gpu or --gpu-mem")
    return tuple(settings.items), terms, notes, gpu.name if gpu else None


# ---- llama.cpp ----------------------------------------------------------------------------


def _llama_cpp(
    log: EngineLog,
    spec: ModelSpec,
    profile: EngineProfile,
    gpu: GpuSpec | None,
    options: VerifyOptions,
) -> tuple[tuple[Setting, ...], list[Term], list[str], str | None]:
    s = log.settings
    settings = _Settings()
    notes: list[str] = []
    n_seq = int(
        settings.pick("n_seq_max (-np)", (s.get("n_seq_max"), "log"), (1, "engine default"))
    )
    n_ctx = s.get("n_ctx")
    per_seq = settings.pick(
        "n_ctx_seq",
        (options.max_model_len, "option"),
        (s.get("n_ctx_seq"), "log"),
        (None if n_ctx is None else int(n_ctx) // n_seq, "log (n_ctx / n_seq_max)"),
    )
    if per_seq is None:
        raise KvcalcError("the log gives no context size (n_ctx): pass --max-model-len")
    unified = bool(
        settings.pick("kv_unified", (s.get("kv_unified"), "log"), (False, "engine default"))
    )
    n_batch = settings.pick("n_batch (-b)", (s.get("n_batch"), "log"), (None, ""))
    ubatch = settings.pick("n_ubatch (-ub)", (s.get("n_ubatch"), "log"), (None, ""))
    flash = settings.pick("flash_attn (-fa)", (s.get("flash_attn"), "log"), (None, ""))
    k_name = settings.pick(
        "type_k (-ctk)",
        (options.kv_dtype, "option"),
        (s.get("k_type"), "log"),
        ("f16", "engine default"),
    )
    v_name = settings.pick(
        "type_v (-ctv)",
        (options.kv_dtype, "option"),
        (s.get("v_type"), "log"),
        ("f16", "engine default"),
    )
    context = LlamaCppOptions(
        ctx_size=None if n_ctx is None else int(n_ctx),
        kv_unified=unified,
        n_batch=None if n_batch is None else int(n_batch),
        n_ubatch=None if ubatch is None else int(ubatch),
        flash_attn="auto" if flash is None else ("on" if flash else "off"),
    )
    workload = Workload(
        seq_len=int(per_seq),
        batch=n_seq,
        k_dtype=_kv_dtype_of(str(k_name), spec.dtype),
        v_dtype=_kv_dtype_of(str(v_name), spec.dtype),
        llamacpp=context,
    )
    engine = profile
    kv = kv_cache(spec, workload, engine)
    terms: list[Term] = []
    by_kind = {"non-SWA": "full", "SWA": "sliding", "unified": None}
    for cache in log.kv_caches:
        groups = [g for g in kv.groups if by_kind[cache.kind] in (None, g.kind)]
        if not groups:
            continue
        cells = max(g.tokens for g in groups)
        layers = sum(g.count for g in groups)
        size = sum(g.bytes for g in groups)
        terms.append(
            Term(
                f"{cache.kind} cells",
                "cells",
                _cells(cache),
                _point(cells, "cells"),
                "kvcalc's llama.cpp profile",
            )
        )
        terms.append(
            Term(
                f"{cache.kind} layers",
                "layers",
                _point(cache.layers, "layers", str(cache.layers)),
                _point(layers, "layers"),
                "the model's layer pattern",
            )
        )
        terms.append(
            Term(
                f"{cache.kind} bytes",
                "bytes",
                cache.size,
                _point(size, "bytes"),
                "kvcalc's llama.cpp profile",
            )
        )
    done = {c.kind for c in log.kv_caches}
    for kind in ("non-SWA", "SWA"):
        buffer = log.figures.get(f"{kind}_kv_buffer_bytes")
        if buffer is None or kind in done:
            continue
        groups = [g for g in kv.groups if g.kind == by_kind[kind]]
        cells_set = s.get(f"{kind}_cells")
        if cells_set is not None and groups:
            terms.append(
                Term(
                    f"{kind} cells",
                    "cells",
                    _point(int(cells_set), "cells", str(cells_set)),
                    _point(max(g.tokens for g in groups), "cells"),
                    "kvcalc's llama.cpp profile",
                )
            )
        terms.append(
            Term(
                f"{kind} bytes",
                "bytes",
                buffer,
                _point(sum(g.bytes for g in groups), "bytes"),
                "kvcalc's llama.cpp profile",
            )
        )
    total = log.figures.get("kv_bytes")
    if total is not None:
        terms.append(
            Term(
                "all KV bytes",
                "bytes",
                total,
                _point(kv.total_bytes, "bytes"),
                "kvcalc's llama.cpp profile",
            )
        )
    return tuple(settings.items), terms, notes, gpu.name if gpu else None


def _cells(cache: KvCacheLine) -> Figure:
    return _point(cache.cells, "cells", f"{cache.cells:,} cells")


# ---- TensorRT-LLM -------------------------------------------------------------------------


def _default_block(profile: EngineProfile, spec: ModelSpec) -> int:
    """Return the tokens per block the engine runs the model with by default (a family's own,
    e.g. TensorRT-LLM's Kimi-K3 get_model_defaults: 64, else the profile's)."""
    rules = profile.rules_for(spec.family)
    return rules.block_size if rules is not None and rules.block_size else profile.block_size


def _trtllm(
    log: EngineLog,
    spec: ModelSpec,
    profile: EngineProfile,
    gpu: GpuSpec | None,
    options: VerifyOptions,
) -> tuple[tuple[Setting, ...], list[Term], list[str], str | None]:
    s = log.settings
    settings = _Settings()
    notes: list[str] = []
    tp, pp = settings.parallelism(options, {})
    fraction = float(
        settings.pick(
            "free_gpu_memory_fraction",
            (options.util, "option"),
            (profile.default_util or 0.9, "engine default"),
        )
    )
    tokens_per_block = int(
        settings.pick(
            "tokens_per_block",
            (options.block_size, "option"),
            (s.get("tokens_per_block"), "log"),
            (_default_block(profile, spec), "engine default"),
        )
    )
    cache_name = settings.pick(
        "kv_cache_dtype", (options.kv_dtype, "option"), ("auto", "engine default")
    )
    dtype = _kv_dtype_of(str(cache_name), spec.dtype)
    workload = Workload(
        seq_len=tokens_per_block,
        k_dtype=dtype,
        v_dtype=dtype,
        tp=tp,
        pp=pp,
        block_size=tokens_per_block,
    )
    per_token = kv_cache(spec, workload, profile).per_gpu_bytes_per_token
    terms: list[Term] = []
    free = log.figures.get("free_bytes")
    blocks = log.figures.get("kv_blocks")
    tokens = log.figures.get("kv_tokens")
    if free is not None:
        budget_of = [int(x * Fraction(str(fraction))) for x in (free.lo, free.value, free.hi)]
        block_bytes = per_token * tokens_per_block
        basis = f"from the engine's free memory ({free.text}, input) × {fraction}, {tokens_per_block}-token blocks"
        if blocks is not None:
            # TensorRT-LLM rounds the block count up (KVCacheManager::calculateMaxNumBlocks)
            kv_blocks = [-(-b // block_bytes) for b in budget_of]
            low, mid, high = kv_blocks
            terms.append(
                Term("KV blocks", "blocks", blocks, _span(low, mid, high, "blocks"), basis)
            )
        if tokens is not None:
            terms.append(
                Term(
                    "KV tokens",
                    "tokens",
                    tokens,
                    _span(
                        budget_of[0] // per_token,
                        budget_of[1] // per_token,
                        budget_of[2] // per_token,
                        "tokens",
                    ),
                    basis,
                )
            )
    return tuple(settings.items), terms, notes, gpu.name if gpu else None


_VERIFIERS = {"vllm": _vllm, "sglang": _sglang, "llama.cpp": _llama_cpp, "trtllm": _trtllm}


def verify(
    log: EngineLog,
    spec: ModelSpec,
    profile: EngineProfile,
    gpu: GpuSpec | None = None,
    options: VerifyOptions | None = None,
    model_name: str | None = None,
) -> Verification:
    """Return the term-by-term comparison of a parsed log with kvcalc's prediction."""
    options = options or VerifyOptions()
    if options.weights not in ("engine", "kvcalc"):
        raise KvcalcError(f"--weights must be engine or kvcalc, got {options.weights!r}")
    settings, terms, notes, gpu_label = _VERIFIERS[log.engine](log, spec, profile, gpu, options)
    result = Verification(
        engine=log.engine,
        version=log.version,
        log_model=log.model,
        model=model_name or spec.name,
        gpu=gpu_label,
        settings=settings,
        terms=tuple(terms),
        tolerance=options.tolerance,
        notes=tuple(notes),
    )
    if not result.compared:
        raise KvcalcError(
            f"nothing to compare: the {log.engine} log's figures need a GPU (--gpu) or "
            "settings it does not print"
        )
    return result


def match_preset(log_model: str | None, presets: dict[str, str]) -> str | None:
    """Return the preset a log's model name or path means, or None.

    presets maps preset name -> its Hugging Face repo id (or ""). The log's name matches a
    repo id, the repo's last part, or a preset name, case-insensitively, after dropping a
    path and the common release suffixes (-Instruct, -Chat, -it, -hf, -FP8, -AWQ ...).
    """
    if not log_model:
        return None
    name = log_model.strip().rstrip("/")
    candidates = {name.lower(), name.split("/")[-1].lower()}
    if "/" in name:
        candidates.add("/".join(name.split("/")[-2:]).lower())
    suffixes = (
        "-instruct",
        "-chat",
        "-it",
        "-hf",
        "-fp8",
        "-awq",
        "-gptq",
        "-int4",
        "-int8",
        "-base",
        "-2507",
    )
    for c in list(candidates):
        stripped = c
        changed = True
        while changed:
            changed = False
            for suffix in suffixes:
                if stripped.endswith(suffix):
                    stripped = stripped[: -len(suffix)]
                    changed = True
        candidates.add(stripped)
        candidates.add(stripped.removeprefix("meta-"))
    for preset, repo in sorted(presets.items()):
        keys = {preset.lower()}
        if repo:
            keys |= {repo.lower(), repo.split("/")[-1].lower()}
        if keys & candidates:
            return preset
    return None


def _plain(value: Fraction, unit: str) -> int | float:
    return round(float(value), 4) if unit == "x" else round(value)


def verification_report(v: Verification) -> dict[str, object]:
    """Return the comparison as plain data (the `verify --format json` object)."""
    terms = []
    for t in v.terms:
        error = t.error
        row: dict[str, object] = {
            "term": t.name,
            "unit": t.unit,
            "engine": None if t.engine is None else _plain(t.engine.value, t.unit),
            "engine_text": None if t.engine is None else t.engine.text,
            "kvcalc": None if t.kvcalc is None else _plain(t.kvcalc.value, t.unit),
            "kvcalc_low": None if t.kvcalc is None else _plain(t.kvcalc.lo, t.unit),
            "kvcalc_high": None if t.kvcalc is None else _plain(t.kvcalc.hi, t.unit),
            "difference": (
                None
                if t.engine is None or t.kvcalc is None
                else _plain(t.kvcalc.value - t.engine.value, t.unit)
            ),
            "error": None if error is None else round(float(error), 6),
            "within_tolerance": t.within(v.tolerance),
            "counts": t.counts,
            "basis": t.basis,
        }
        terms.append(row)
    return {
        "schema_version": 1,
        "engine": v.engine,
        "engine_version": v.version,
        "log_model": v.log_model,
        "model": v.model,
        "gpu": v.gpu,
        "tolerance": float(v.tolerance),
        "agrees": v.agrees,
        "settings": [{"name": s.name, "value": s.value, "source": s.source} for s in v.settings],
        "terms": terms,
        "notes": list(v.notes),
    }
