"""The Python API: what the CLI does, as typed functions (re-exported by `kvcalc`).

Every function accepts what the command line accepts: a model as a preset name, a spec
YAML or a Hugging Face config.json path (or an already loaded ModelSpec); token counts as
ints or "8k"-style strings (8k = 8192); sizes as ints or "80GiB" / "80GB" strings; dtypes
and engines by name. Errors are KvcalcError with the CLI's one-line message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kvcalc.records import record

if TYPE_CHECKING:
    from kvcalc.formula import KvBreakdown, Workload
    from kvcalc.planner import Fit, Plan
    from kvcalc.specs import GpuSpec, ModelSpec

Tokens = int | str
Size = int | str


def load_model(model: str | Path | ModelSpec, presets_dir: str | Path | None = None) -> ModelSpec:
    """Return the ModelSpec for a preset name (case-insensitive), a spec YAML or a config.json.

    >>> load_model("llama-3.1-8b").n_layers
    32
    """
    from kvcalc.specs import ModelSpec

    if isinstance(model, ModelSpec):
        return model
    from kvcalc.presets import load_model as _load

    return _load(str(model), presets_dir)


def load_gpu(gpu: str | Path | GpuSpec, presets_dir: str | Path | None = None) -> GpuSpec:
    """Return the GpuSpec for a GPU preset name or alias ('h100'), or a GPU YAML path."""
    from kvcalc.specs import GpuSpec

    if isinstance(gpu, GpuSpec):
        return gpu
    from kvcalc.presets import load_gpu as _load

    return _load(str(gpu), presets_dir)


def tokens(value: Tokens, what: str = "token count") -> int:
    """Return a token count from 8192, '8192' or '8k' (= 8192; k and m are binary)."""
    from kvcalc.units import parse_tokens

    return parse_tokens(value, what)


def workload(
    seq: Tokens = "8k",
    batch: int | str = 1,
    *,
    kv_dtype: str = "auto",
    k_dtype: str | None = None,
    v_dtype: str | None = None,
    tp: int = 1,
    pp: int = 1,
    block_size: int | None = None,
    max_batched_tokens: Tokens | None = None,
    prefix_caching: bool = False,
    mamba_cache_mode: Literal["align", "all"] | None = None,
) -> Workload:
    """Return the Workload the CLI's --seq/--batch/--kv-dtype/--tp/--pp options describe
    (prefix_caching, mamba_cache_mode: vLLM's --enable-prefix-caching, --mamba-cache-mode)."""
    from kvcalc.dtypes import kv_dtype as _dtype
    from kvcalc.formula import Workload
    from kvcalc.units import parse_count, parse_tokens

    def dtype(name: str | None) -> Any:
        name = name or kv_dtype
        return None if name.lower() == "auto" else _dtype(name)

    return Workload(
        seq_len=parse_tokens(seq, "seq"),
        batch=parse_count(batch, "batch"),
        k_dtype=dtype(k_dtype),
        v_dtype=dtype(v_dtype),
        tp=tp,
        pp=pp,
        block_size=block_size,
        max_num_batched_tokens=(
            None
            if max_batched_tokens is None
            else parse_tokens(max_batched_tokens, "max_batched_tokens")
        ),
        prefix_caching=prefix_caching,
        mamba_cache_mode=mamba_cache_mode,
    )


def calc(
    model: str | Path | ModelSpec,
    seq: Tokens = "8k",
    batch: int | str = 1,
    *,
    engine: str = "vllm",
    kv_dtype: str = "auto",
    k_dtype: str | None = None,
    v_dtype: str | None = None,
    tp: int = 1,
    pp: int = 1,
    block_size: int | None = None,
    max_batched_tokens: Tokens | None = None,
    prefix_caching: bool = False,
    mamba_cache_mode: Literal["align", "all"] | None = None,
    presets_dir: str | Path | None = None,
) -> KvBreakdown:
    """Return the explained KV-cache breakdown of one workload (`kvcalc calc`), bytes as ints.

    >>> calc("opt-30b", seq=1024, batch=128, kv_dtype="fp16", engine="formula").total_bytes
    180388626432
    """
    from kvcalc.engines import engine_profile
    from kvcalc.formula import kv_cache

    return kv_cache(
        load_model(model, presets_dir),
        workload(
            seq,
            batch,
            kv_dtype=kv_dtype,
            k_dtype=k_dtype,
            v_dtype=v_dtype,
            tp=tp,
            pp=pp,
            block_size=block_size,
            max_batched_tokens=max_batched_tokens,
            prefix_caching=prefix_caching,
            mamba_cache_mode=mamba_cache_mode,
        ),
        engine_profile(engine),
    )


def plan(
    model: str | Path | ModelSpec,
    gpu: str | Path | GpuSpec,
    seq: Tokens = "8k",
    batch: int | str = 1,
    *,
    engine: str = "vllm",
    kv_dtype: str = "auto",
    weights_dtype: str = "auto",
    tp: int | None = None,
    pp: int | None = None,
    gpus: int | None = None,
    util: float | None = None,
    reserve: Size | None = None,
    gpu_mem: Size | None = None,
    max_batched_tokens: Tokens | None = None,
    prefix_caching: bool = False,
    mamba_cache_mode: Literal["align", "all"] | None = None,
    presets_dir: str | Path | None = None,
) -> Plan:
    """Return the Plan the options of `kvcalc fit` describe (gpus=N is split into tp × pp)."""
    from kvcalc.dtypes import weight_dtype
    from kvcalc.engines import engine_profile
    from kvcalc.errors import KvcalcError
    from kvcalc.planner import Plan, split_gpus
    from kvcalc.units import parse_size

    spec = load_model(model, presets_dir)
    profile = engine_profile(engine)
    device = load_gpu(gpu, presets_dir)
    if gpu_mem is not None:
        capacity = parse_size(gpu_mem, "gpu_mem")
        if capacity <= 0:
            raise KvcalcError(f"invalid gpu_mem {gpu_mem!r}: must be positive")
        device = device.model_copy(update={"memory_bytes": capacity, "memory_kind": "user"})
    if gpus is not None and (tp is not None or pp is not None):
        raise KvcalcError("give gpus or tp/pp, not both")
    tp_n, pp_n = split_gpus(spec, profile, gpus) if gpus is not None else (tp or 1, pp or 1)
    return Plan(
        spec,
        device,
        profile,
        workload(
            seq,
            batch,
            kv_dtype=kv_dtype,
            tp=tp_n,
            pp=pp_n,
            max_batched_tokens=max_batched_tokens,
            prefix_caching=prefix_caching,
            mamba_cache_mode=mamba_cache_mode,
        ),
        weights_dtype=None if weights_dtype.lower() == "auto" else weight_dtype(weights_dtype),
        util=util,
        reserve_bytes=None if reserve is None else parse_size(reserve, "reserve"),
    )


def fit(model: str | Path | ModelSpec, gpu: str | Path | GpuSpec, *args: Any, **kw: Any) -> Fit:
    """Return `kvcalc fit`'s answer: budget, verdict, headroom, max batch, context and tokens.

    Takes plan()'s arguments.

    >>> fit("llama-3.1-8b", "h100-80gb", seq="8k", batch=64, reserve="2GiB").max_batch
    54
    """
    from kvcalc.kernel import fit_fast

    return fit_fast(plan(model, gpu, *args, **kw))


def max_batch(
    model: str | Path | ModelSpec, gpu: str | Path | GpuSpec, *args: Any, **kw: Any
) -> int:
    """Return the largest batch of `seq`-token sequences that fits (0 if none); plan()'s args."""
    from kvcalc.planner import max_batch as _max_batch

    return _max_batch(plan(model, gpu, *args, **kw))


def max_context(
    model: str | Path | ModelSpec, gpu: str | Path | GpuSpec, *args: Any, **kw: Any
) -> int:
    """Return the longest sequence that fits `batch` times (0 if none, at most the model's limit)."""
    from kvcalc.planner import max_seq_len

    return max_seq_len(plan(model, gpu, *args, **kw))[0]


@record
class GpuCount:
    """The fewest GPUs that fit a workload: tp × pp of them."""

    tp: int
    pp: int

    @property
    def n_gpus(self) -> int:
        return self.tp * self.pp


def min_gpus(
    model: str | Path | ModelSpec,
    gpu: str | Path | GpuSpec,
    *args: Any,
    max_pp: int | None = None,
    **kw: Any,
) -> GpuCount | None:
    """Return the fewest GPUs (tp × pp, preferring pp = 1) that fit, or None; plan()'s args.

    max_pp=1 asks for tensor parallelism alone.
    """
    from kvcalc.kernel import min_gpus_fast

    found = min_gpus_fast(plan(model, gpu, *args, **kw), max_pp)
    return None if found is None else GpuCount(*found)


def sweep(
    models: str | list[str] | tuple[str, ...],
    gpus: str | list[str] | tuple[str, ...] = (),
    seqs: Tokens | list[Tokens] | tuple[Tokens, ...] = "8k",
    batches: int | str | list[int] | tuple[int, ...] = 1,
    *,
    tps: int | list[int] | tuple[int, ...] = 1,
    pps: int | list[int] | tuple[int, ...] = 1,
    kv_dtypes: str | list[str] | tuple[str, ...] = "auto",
    weights_dtypes: str | list[str] | tuple[str, ...] = "auto",
    engines: str | list[str] | tuple[str, ...] = "vllm",
    utils: float | list[float | None] | tuple[float | None, ...] | None = None,
    reserve: Size | None = None,
    presets_dir: str | Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one dict per point of the cross product, keyed as `kvcalc sweep`'s columns.

    Strings take the CLI's lists and ranges: seqs="1k..32k:x2", models="a,b".

    >>> [r["total_bytes"] for r in sweep("llama-3.1-8b", seqs="1k,2k", engines="formula")]
    [134217728, 268435456]
    """
    from kvcalc.sweep import Grid, parse_values, rows, split_names
    from kvcalc.units import parse_count, parse_size, parse_tokens

    def names(value: Any) -> tuple[str, ...]:
        return tuple(split_names([value] if isinstance(value, str) else [str(v) for v in value]))

    def ints(value: Any, parse: Any, what: str) -> tuple[int, ...]:
        items = [value] if isinstance(value, int | str) else list(value)
        found: list[int] = []
        for item in items:
            if isinstance(item, int):
                found.append(parse(item, what))
            else:
                found.extend(parse_values(item, lambda v: parse(v, what), what))
        return tuple(found)

    grid = Grid(
        models=names(models),
        gpus=names(gpus) if gpus else (),
        seqs=ints(seqs, parse_tokens, "seqs"),
        batches=ints(batches, parse_count, "batches"),
        tps=ints(tps, parse_count, "tps"),
        pps=ints(pps, parse_count, "pps"),
        kv_dtypes=names(kv_dtypes),
        weights_dtypes=names(weights_dtypes),
        engines=names(engines),
        utils=tuple(utils) if isinstance(utils, list | tuple) else (utils,),
        reserve_bytes=None if reserve is None else parse_size(reserve, "reserve"),
        presets_dir=presets_dir,
    )
    return rows(grid)
