"""Sweeps: the cross product of models, GPUs, contexts, batches, dtypes, parallelism, engines.

`iter_rows(grid)` yields one tuple per point (columns: `grid.columns`), lazily, so ten
million points run in flat memory; `rows(grid)` yields the same as dicts. Each row holds
the scalar keys of `kvcalc calc --format json` and, when GPUs are given, of `kvcalc fit
--format json`, with the same names and values (docs/sweep.md). The numbers come from the
compiled kernels of kvcalc/kernel.py, which tests/test_kernel.py holds equal to
formula.kv_cache and planner.fit.

A point that cannot be computed (tp that does not divide the heads, --util under an engine
that uses the whole device ...) is a row whose `error` says why, its numbers null.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterator
from math import prod
from pathlib import Path
from typing import Any

from kvcalc.errors import KvcalcError
from kvcalc.records import record

CALC_COLUMNS: tuple[str, ...] = (
    "model",
    "model_name",
    "engine",
    "kv_dtype",
    "k_dtype",
    "v_dtype",
    "attention",
    "seq_len",
    "batch",
    "tp",
    "pp",
    "n_gpus",
    "block_size",
    "kv_heads_per_gpu",
    "bytes_per_token",
    "per_gpu_bytes_per_token",
    "per_sequence_bytes",
    "total_bytes",
    "per_gpu_bytes",
    "state_bytes_per_sequence",
    "state_total_bytes",
    "state_per_gpu_bytes",
    "cache_total_bytes",
    "cache_per_gpu_bytes",
)
FIT_COLUMNS: tuple[str, ...] = (
    "gpu",
    "gpu_name",
    "weights_dtype",
    "util",
    "capacity_bytes",
    "usable_bytes",
    "weights_bytes",
    "reserve_bytes",
    "kv_budget_bytes",
    "kv_bytes",
    "fits",
    "headroom_bytes",
    "max_batch",
    "max_seq_len",
    "max_seq_len_clamped",
    "max_tokens",
    "max_concurrency",
    "min_gpus",
    "min_tp",
    "min_pp",
    "min_tp_alone",
)
ERROR_COLUMN = "error"

# A range "A..B" doubles (= "A..B:x2"); ":xF" multiplies by F, ":+S" adds S (S may be "1k"):
# one grammar for sweep and plot, so "1k..128k" is 8 points, never 130,049.
_RANGE = re.compile(r"^\s*([^.:]+?)\s*\.\.\s*([^.:]+?)\s*(?::\s*([x+*])\s*([^\s]+))?\s*$")
MAX_VALUES = 10_000_000  # values one option may expand to (a typo guard, not a memory need)


def parse_values(text: str, parse: Callable[[str], int], what: str) -> list[int]:
    """Return the values of a list-or-range option: '1k,2k,4k', '1k..128k' (doubling, as
    '1k..128k:x2'), '1..64:x4', '1..64:+1'.

    Ranges are inclusive of their end when a step lands on it; values keep the given order.
    """
    values: list[int] = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _RANGE.match(part) if ".." in part else None
        if match is None:
            if ".." in part:
                raise KvcalcError(
                    f"invalid {what} range {part.strip()!r}: expected A..B, A..B:xF or A..B:+S"
                )
            values.append(parse(part))
            continue
        start, end = parse(match.group(1)), parse(match.group(2))
        op, step_text = match.group(3) or "x", match.group(4) or "2"
        if end < start:
            raise KvcalcError(f"invalid {what} range {part.strip()!r}: end is below start")
        if op in ("x", "*"):
            if not step_text.isdigit() or int(step_text) < 2:
                raise KvcalcError(
                    f"invalid {what} range {part.strip()!r}: the factor after ':x' must be "
                    "an integer of at least 2"
                )
            factor, value = int(step_text), start
            while value <= end:
                values.append(value)
                value *= factor
        else:
            step = parse(step_text)
            count = (end - start) // step + 1
            if len(values) + count > MAX_VALUES:
                raise KvcalcError(f"{what} expands to more than {MAX_VALUES:,} values")
            values.extend(range(start, end + 1, step))
        if len(values) > MAX_VALUES:
            raise KvcalcError(f"{what} expands to more than {MAX_VALUES:,} values")
    if not values:
        raise KvcalcError(f"{what} is empty")
    return values


def split_names(items: list[str] | tuple[str, ...]) -> list[str]:
    """Return the names of a repeatable option that also takes comma lists, in order."""
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


@record
class Grid:
    """What a sweep crosses. Strings are resolved by `resolve`; an empty `gpus`: calc only.

    `kv_dtypes` and `weights_dtypes` take "auto" for the engine's or model's default;
    `utils` None for the engine's default.
    """

    models: tuple[str, ...]
    gpus: tuple[str, ...] = ()
    seqs: tuple[int, ...] = (8192,)
    batches: tuple[int, ...] = (1,)
    tps: tuple[int, ...] = (1,)
    pps: tuple[int, ...] = (1,)
    kv_dtypes: tuple[str, ...] = ("auto",)
    weights_dtypes: tuple[str, ...] = ("auto",)
    engines: tuple[str, ...] = ("vllm",)
    utils: tuple[float | None, ...] = (None,)
    reserve_bytes: int | None = None
    presets_dir: str | Path | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Return the row's column names: calc's, then fit's when GPUs are given, then error."""
        return CALC_COLUMNS + (FIT_COLUMNS if self.gpus else ()) + (ERROR_COLUMN,)

    @property
    def size(self) -> int:
        """Return the number of points (rows) in the sweep."""
        return prod(
            len(v)
            for v in (
                self.models,
                self.gpus or ("",),
                self.seqs,
                self.batches,
                self.tps,
                self.pps,
                self.kv_dtypes,
                self.weights_dtypes if self.gpus else ("",),
                self.engines,
                self.utils if self.gpus else (None,),
            )
        )


@record
class _Resolved:
    models: tuple[tuple[str, Any], ...]  # (canonical name, spec)
    gpus: tuple[tuple[str, Any], ...]
    engines: tuple[Any, ...]
    kv_dtypes: tuple[tuple[str, Any], ...]  # (as given, KvDtype or None)
    weights_dtypes: tuple[tuple[str, Any], ...]


def resolve(grid: Grid) -> _Resolved:
    """Return the grid's names resolved to specs; KvcalcError for any unknown name."""
    from kvcalc.dtypes import kv_dtype, weight_dtype
    from kvcalc.engines import engine_profile
    from kvcalc.presets import canonical_gpu_name, canonical_model_name, load_gpu, load_model

    if not grid.models:
        raise KvcalcError("give at least one --model")
    for name, values in (
        ("seq", grid.seqs),
        ("batch", grid.batches),
        ("tp", grid.tps),
        ("pp", grid.pps),
    ):
        if not values or any(not isinstance(v, int) or v < 1 for v in values):
            raise KvcalcError(f"{name} values must be positive integers")
    models = tuple(
        (canonical_model_name(m, grid.presets_dir), load_model(m, grid.presets_dir))
        for m in grid.models
    )
    gpus = tuple(
        (canonical_gpu_name(g, grid.presets_dir), load_gpu(g, grid.presets_dir)) for g in grid.gpus
    )
    engines = tuple(engine_profile(e) for e in grid.engines)
    kv = tuple((d, None if d.lower() == "auto" else kv_dtype(d)) for d in grid.kv_dtypes)
    weights = tuple(
        (d, None if d.lower() == "auto" else weight_dtype(d)) for d in grid.weights_dtypes
    )
    for util in grid.utils:
        if util is not None and not 0 < util <= 1:
            raise KvcalcError(f"--util must be in (0, 1], got {util}")
    return _Resolved(models, gpus, engines, kv, weights)


def rows(grid: Grid) -> Iterator[dict[str, Any]]:
    """Yield the sweep's rows as dicts keyed by `grid.columns`."""
    columns = grid.columns
    for row in iter_rows(grid):
        yield dict(zip(columns, row, strict=True))


def iter_rows(grid: Grid) -> Iterator[tuple[Any, ...]]:
    """Yield the sweep's rows as tuples in `grid.columns` order, one point at a time.

    Order: model, engine, kv dtype, tp, pp, then (with GPUs) gpu, weights dtype, util,
    then seq, then batch (the innermost).
    """
    from kvcalc.formula import Workload
    from kvcalc.kernel import kv_kernel

    r = resolve(grid)
    with_fit = bool(grid.gpus)
    n_fit = len(FIT_COLUMNS) if with_fit else 0
    solvers: dict[tuple[Any, ...], Any] = {}
    for model_name, spec in r.models:
        for engine in r.engines:
            for kv_given, kv_type in r.kv_dtypes:
                for tp in grid.tps:
                    for pp in grid.pps:
                        workload = Workload(1, 1, kv_type, kv_type, tp, pp)
                        try:
                            kernel = kv_kernel(spec, engine, workload)
                        except KvcalcError as exc:
                            yield from _error_rows(
                                grid, r, model_name, engine.name, kv_given, tp, pp, str(exc)
                            )
                            continue
                        head = (
                            model_name,
                            spec.name,
                            engine.name,
                            kernel.k_dtype.name if kernel.k_dtype == kernel.v_dtype else None,
                            kernel.k_dtype.name,
                            kernel.v_dtype.name,
                            spec.attention.kind,
                        )
                        middle = (
                            tp,
                            pp,
                            tp * pp,
                            kernel.block_size,
                            kernel.kv_heads_per_gpu,
                            kernel.bytes_per_token,
                        )
                        if not with_fit:
                            yield from _calc_rows(grid, kernel, head, middle)
                            continue
                        for gpu_name, gpu in r.gpus:
                            for w_given, w_type in r.weights_dtypes:
                                for util in grid.utils:
                                    yield from _fit_rows(
                                        grid,
                                        kernel,
                                        head,
                                        middle,
                                        (gpu_name, gpu, w_given, w_type, util),
                                        solvers,
                                        n_fit,
                                    )


def _calc_rows(
    grid: Grid, kernel: Any, head: tuple[Any, ...], middle: tuple[Any, ...]
) -> Iterator[tuple[Any, ...]]:
    at = kernel.at
    if kernel.exact_fast:  # linear in the batch: one evaluation per seq, then products
        for seq in grid.seqs:
            first = (*head, seq)
            k = at(seq, 1)
            total, per_gpu, state, state_gpu = k[0], k[1], k[5], k[6]
            last = (*middle, k[3], k[2])
            for b in grid.batches:
                yield (
                    *first, b, *last, total * b, per_gpu * b, k[7], state * b, state_gpu * b,
                    (total + state) * b, (per_gpu + state_gpu) * b, None,
                )  # fmt: skip
        return
    for seq in grid.seqs:
        first = (*head, seq)
        for batch in grid.batches:
            k = at(seq, batch)
            yield (
                *first, batch, *middle, k[3], k[2], k[0], k[1], k[7], k[5], k[6],
                k[0] + k[5], k[1] + k[6], None,
            )  # fmt: skip


def _fit_rows(
    grid: Grid,
    kernel: Any,
    head: tuple[Any, ...],
    middle: tuple[Any, ...],
    target: tuple[Any, ...],
    solvers: dict[tuple[Any, ...], Any],
    n_fit: int,
) -> Iterator[tuple[Any, ...]]:
    from kvcalc.kernel import FitKernel, MinGpus

    gpu_name, gpu, w_given, w_type, util = target
    tp, pp = middle[0], middle[1]
    try:
        fk = FitKernel(
            kernel.model,
            gpu,
            kernel.engine,
            kernel.workload,
            w_type,
            util,
            grid.reserve_bytes,
            kv=kernel,
        )
    except KvcalcError as exc:
        yield from _error_rows_for(grid, head, tp, pp, gpu_name, w_given, util, str(exc))
        return
    key = (id(kernel.model), kernel.engine.name, kernel.k_dtype.name, gpu_name, w_given, util)
    if key not in solvers:
        if len(solvers) > 4096:
            solvers.clear()
        args = (kernel.model, gpu, kernel.engine, kernel.workload, w_type, util, grid.reserve_bytes)
        solvers[key] = (MinGpus(*args), MinGpus(*args, max_pp=1))
    solver, solver_tp = solvers[key]
    weights = w_type.name if w_type is not None else kernel.model.dtype
    heads: dict[int, tuple[Any, ...]] = {}  # by id of the budget: one per kernel, unless
    kv_at = kernel.at  # the budget follows the point (vLLM V0)
    fast = fk.exact_fast and kernel.exact_fast
    for seq in grid.seqs:
        first = (*head, seq)
        one = kv_at(seq, 1) if fast else None
        # each minimum-GPU answer and the batches it holds for (MinGpus.span): [from, to]
        least, least_from, least_to = None, 0, -1
        alone, alone_from, alone_to = None, 0, -1
        for batch in grid.batches:
            if one is not None:  # linear in the batch, the budget fixed: no per-row objects
                k = (one[0] * batch, one[1] * batch, one[2], one[3], one[4], one[5] * batch,
                     one[6] * batch, one[7])  # fmt: skip
                at = fk.at(seq, batch)
                max_seq, clamped = fk.max_seq_len(batch)
                b, max_tokens = fk.budget, fk.max_tokens_at(seq, batch)
            else:
                k = kv_at(seq, batch)
                answer = fk.answer(seq, batch)
                at, max_seq, clamped = answer.at, answer.max_seq_len, answer.max_seq_len_clamped
                b, max_tokens = answer.budget, answer.max_tokens
            fit_head = heads.get(id(b))
            if fit_head is None or fit_head[0] is not b:
                fit_head = (
                    b, gpu_name, gpu.name, weights, b.util, b.capacity_bytes, b.usable_bytes,
                    b.weights_bytes, b.reserve_bytes, b.kv_budget_bytes,
                )  # fmt: skip
                if len(heads) > 64:
                    heads.clear()
                heads[id(b)] = fit_head
            if not least_from <= batch <= least_to:
                (least, least_to), least_from = solver.span(seq, batch), batch
            if not alone_from <= batch <= alone_to:
                (alone, alone_to), alone_from = solver_tp.span(seq, batch), batch
            yield (
                *first,
                batch,
                *middle,
                k[3],
                k[2],
                k[0],
                k[1],
                k[7],
                k[5],
                k[6],
                k[0] + k[5],
                k[1] + k[6],
                *fit_head[1:],
                at.kv_bytes,
                at.fits,
                at.headroom_bytes,
                at.max_batch,
                max_seq,
                clamped,
                max_tokens,
                round(at.max_concurrency, 2),
                None if least is None else least[0] * least[1],
                None if least is None else least[0],
                None if least is None else least[1],
                None if alone is None else alone[0],
                None,
            )


def _error_rows(
    grid: Grid,
    r: _Resolved,
    model: str,
    engine: str,
    kv_given: str,
    tp: int,
    pp: int,
    message: str,
) -> Iterator[tuple[Any, ...]]:
    head = (model, None, engine, kv_given, None, None, None)
    if not grid.gpus:
        for seq in grid.seqs:
            for batch in grid.batches:
                yield _blank(grid, head, seq, batch, tp, pp, (), message)
        return
    for gpu_name, _ in r.gpus:
        for w_given, _ in r.weights_dtypes:
            for util in grid.utils:
                yield from _error_rows_for(grid, head, tp, pp, gpu_name, w_given, util, message)


def _error_rows_for(
    grid: Grid,
    head: tuple[Any, ...],
    tp: int,
    pp: int,
    gpu_name: str,
    w_given: str,
    util: float | None,
    message: str,
) -> Iterator[tuple[Any, ...]]:
    fit_head = (gpu_name, None, w_given, util)
    for seq in grid.seqs:
        for batch in grid.batches:
            yield _blank(grid, head, seq, batch, tp, pp, fit_head, message)


def _blank(
    grid: Grid,
    head: tuple[Any, ...],
    seq: int,
    batch: int,
    tp: int,
    pp: int,
    fit_head: tuple[Any, ...],
    message: str,
) -> tuple[Any, ...]:
    calc = (*head, seq, batch, tp, pp, tp * pp) + (None,) * (len(CALC_COLUMNS) - 12)
    if not grid.gpus:
        return (*calc, message)
    return (*calc, *fit_head) + (None,) * (len(FIT_COLUMNS) - len(fit_head)) + (message,)


class _SweepModule(types.ModuleType):
    """This module, callable as the API's `kvcalc.sweep(...)`.

    `kvcalc.sweep` names both the API function and this module, and importing the module
    makes it the package's attribute; calling it delegates to kvcalc.api.sweep, so the
    name works whichever one it is.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        from kvcalc.api import sweep

        return sweep(*args, **kwargs)


def _make_callable() -> None:
    import sys  # noqa: TID251 (sys.modules only: no I/O)

    sys.modules[__name__].__class__ = _SweepModule


_make_callable()
