"""KV and total memory against context (or batch): the series (pure) and a matplotlib Figure.

`plot_data` computes every point with the same functions `kvcalc calc` and `kvcalc fit` use:
a KV point is calc's per_gpu_bytes; a total point adds the planner's weights and reserve on
the busiest GPU. `figure` draws them with matplotlib (the optional extra
`pip install 'kvcalc[plot]'`), every value in bytes, axis ticks in GiB. Nothing here writes
a file: the command saves the Figure.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from kvcalc.engines import EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.formula import KvBreakdown, Workload, kv_cache
from kvcalc.planner import Budget, Plan, budget, max_batch, max_seq_len
from kvcalc.records import record
from kvcalc.specs import GpuSpec, ModelSpec
from kvcalc.units import GiB, parse_tokens

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Axis = Literal["seq", "batch"]
MAX_POINTS = 4096


@record
class Series:
    """One curve: bytes on the busiest GPU at each x (tokens per sequence, or sequences)."""

    label: str
    model: str
    gpu: str | None
    kind: Literal["kv", "total"]
    x: tuple[int, ...]
    y: tuple[int, ...]


@record
class Capacity:
    """A GPU's memory as its driver reports it: a horizontal line."""

    gpu: str
    capacity_bytes: int


@record
class Boundary:
    """The largest x that fits for a model on a GPU (max context or max batch), and its total."""

    model: str
    gpu: str
    axis: Axis
    x: int  # 0: not even the smallest point fits
    total_bytes: int | None  # total at x on the busiest GPU (None: x is 0, or not computed)
    model_limit: bool = False  # x is the model's max_position_embeddings, not memory

    @property
    def text(self) -> str:
        """Return '<model> on <gpu>: max context 40,960 (the model's limit)' and the like."""
        if self.x == 0:
            return f"{self.model} on {self.gpu}: does not fit at the smallest point"
        what = "context" if self.axis == "seq" else "batch"
        limit = " (the model's limit)" if self.model_limit else ""
        return f"{self.model} on {self.gpu}: max {what} {self.x:,}{limit}"


@record
class PlotData:
    """Everything a plot shows, as integers."""

    axis: Axis
    fixed: int  # batch when axis is seq; seq_len when axis is batch
    engine: str
    kv_dtype: str
    series: tuple[Series, ...]
    capacities: tuple[Capacity, ...]
    boundaries: tuple[Boundary, ...]

    @property
    def title(self) -> str:
        what = "batch" if self.axis == "seq" else "seq"
        fixed = f" · {what} {self.fixed:,}" if self.fixed else ""
        return f"KV cache per GPU · {self.engine} · KV {self.kv_dtype}{fixed}"


def parse_grid(text: str, what: str) -> tuple[int, ...]:
    """Return the points of '1k,4k,8k', '1k..128k' (doubling) or '1..64:x4' / '1k..8k:+1k'.

    The grammar is the sweep's (kvcalc.sweep.parse_values); a plot also takes each range's
    end when the steps pass it, so the curve spans the range asked for, sorted, deduplicated.
    """
    from kvcalc.sweep import parse_values

    points: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        values = parse_values(part, lambda v: parse_tokens(v, what), what)
        if ".." in part:
            end = parse_tokens(part.partition("..")[2].partition(":")[0], what)
            if values[-1] != end:
                values.append(end)
        points.extend(values)
        if len(points) > MAX_POINTS:
            raise KvcalcError(f"{what} has more than {MAX_POINTS:,} points")
    if not points:
        raise KvcalcError(f"invalid {what} {text!r}: no points")
    return tuple(sorted(set(points)))


def default_seq_grid(models: list[ModelSpec]) -> tuple[int, ...]:
    """Return 1k, 2k, 4k ... up to the longest context among the models (at least 8k, at most 1M)."""
    limit = max((m.max_position_embeddings or 131072 for m in models), default=131072)
    limit = min(max(limit, 8192), 2**20)
    points, value = [], 1024
    while value <= limit:
        points.append(value)
        value *= 2
    if points[-1] != limit:
        points.append(limit)
    return tuple(points)


def _busiest_total(kv: KvBreakdown, plan_budget: Budget) -> int:
    """Return max over stages of (weights + KV) on one GPU, plus the reserve."""
    return plan_budget.reserve_bytes + max(
        w + k for w, k in zip(plan_budget.stage_weights_bytes, kv.stage_bytes, strict=True)
    )


def plot_data(
    models: list[tuple[str, ModelSpec]],
    gpus: list[tuple[str, GpuSpec]],
    engine: EngineProfile,
    workload: Workload,
    axis: Axis,
    xs: tuple[int, ...],
) -> PlotData:
    """Return the KV series of each model and, per GPU, its total series and fit boundary.

    `workload` gives the fixed values (batch when the axis is seq, seq_len when it is batch)
    and dtypes and parallelism; `xs` the points along the axis.
    """

    def at(w: Workload, x: int) -> Workload:
        return replace(w, seq_len=x) if axis == "seq" else replace(w, batch=x)

    series: list[Series] = []
    boundaries: list[Boundary] = []
    kv_dtype = ""
    for label, spec in models:
        points = [kv_cache(spec, at(workload, x), engine) for x in xs]
        kv_dtype = points[0].k_dtype.name
        if points[0].k_dtype != points[0].v_dtype:
            kv_dtype = f"K {points[0].k_dtype.name} / V {points[0].v_dtype.name}"
        series.append(
            Series(f"{spec.name} KV", label, None, "kv", xs, tuple(p.per_gpu_bytes for p in points))
        )
        for gpu_label, gpu in gpus:
            plan = Plan(spec, gpu, engine, workload)
            plan_budget = budget(plan)
            totals = tuple(_busiest_total(p, plan_budget) for p in points)
            series.append(
                Series(f"{spec.name} total on {gpu.name}", label, gpu_label, "total", xs, totals)
            )
            clamped = False
            if axis == "seq":
                edge, clamped = max_seq_len(replace(plan, workload=at(workload, 1)), plan_budget)
            else:
                edge = max_batch(replace(plan, workload=at(workload, 1)), plan_budget)
            edge_total = None
            if edge > 0:
                edge_total = _busiest_total(kv_cache(spec, at(workload, edge), engine), plan_budget)
            boundaries.append(Boundary(label, gpu_label, axis, edge, edge_total, clamped))
    return PlotData(
        axis=axis,
        fixed=workload.batch if axis == "seq" else workload.seq_len,
        engine=engine.name,
        kv_dtype=kv_dtype,
        series=tuple(series),
        capacities=tuple(Capacity(label, gpu.memory_bytes) for label, gpu in gpus),
        boundaries=tuple(boundaries),
    )


_SWEEP_AXES = ("seq_len", "batch")
# Columns that tell one sweep curve from another (all but the axis).
_CURVE_KEYS = ("model", "engine", "kv_dtype", "k_dtype", "v_dtype", "tp", "pp", "seq_len",
               "batch", "gpu", "weights_dtype", "util")  # fmt: skip


def sweep_plot_data(rows: list[dict[str, Any]]) -> PlotData:
    """Return the plot of a sweep's rows (kvcalc/sweep.py): its values, none recomputed.

    The x axis is seq_len when the sweep has several, else batch. A KV curve per
    combination of the other columns (per_gpu_bytes); with GPUs, a total curve
    (weights_bytes + reserve_bytes + per_gpu_bytes), each GPU's capacity_bytes, and the
    boundary at max_seq_len (or max_batch) of the curve's smallest point. Rows with an
    error are left out.
    """
    good = [r for r in rows if not r.get("error")]
    if not good:
        raise KvcalcError("the sweep has no point to plot (every row is an error)")
    seqs = {r["seq_len"] for r in good}
    axis: Axis = "seq" if len(seqs) > 1 else "batch"
    x_key = "seq_len" if axis == "seq" else "batch"
    with_fit = "gpu" in good[0]
    curves: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in good:
        key = tuple(r.get(k) for k in _CURVE_KEYS if k != x_key)
        curves.setdefault(key, []).append(r)
    varying = [
        k for k in _CURVE_KEYS if k not in (x_key, "gpu") and len({r.get(k) for r in good}) > 1
    ]
    series: list[Series] = []
    boundaries: list[Boundary] = []
    seen_kv: set[tuple[Any, ...]] = set()
    for curve in curves.values():
        curve.sort(key=lambda r: r[x_key])
        first = curve[0]
        xs = tuple(r[x_key] for r in curve)
        name = " ".join(
            [str(first["model"])] + [f"{k}={first.get(k)}" for k in varying if k != "model"]
        )
        kv_key = (name, xs)
        if kv_key not in seen_kv:  # one KV curve, however many GPUs
            seen_kv.add(kv_key)
            series.append(
                Series(f"{name} KV", name, None, "kv", xs, tuple(r["per_gpu_bytes"] for r in curve))
            )
        if with_fit and first.get("gpu") is not None:
            totals = tuple(
                r["weights_bytes"] + r["reserve_bytes"] + r["per_gpu_bytes"] for r in curve
            )
            series.append(
                Series(f"{name} total on {first['gpu']}", name, first["gpu"], "total", xs, totals)
            )
            edge = first["max_seq_len"] if axis == "seq" else first["max_batch"]
            clamped = bool(first.get("max_seq_len_clamped")) if axis == "seq" else False
            boundaries.append(Boundary(name, first["gpu"], axis, edge, None, clamped))
    capacities: dict[str, int] = {}
    for r in good:
        if with_fit and r.get("gpu") is not None:
            capacities.setdefault(r["gpu"], r["capacity_bytes"])
    dtypes = {str(r["kv_dtype"]) for r in good}
    engines = {str(r["engine"]) for r in good}
    fixed_values = {r["batch"] if axis == "seq" else r["seq_len"] for r in good}
    return PlotData(
        axis=axis,
        fixed=min(fixed_values) if len(fixed_values) == 1 else 0,
        engine=", ".join(sorted(engines)),
        kv_dtype=", ".join(sorted(dtypes)),
        series=tuple(series),
        capacities=tuple(Capacity(g, b) for g, b in capacities.items()),
        boundaries=tuple(boundaries),
    )


def _matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise KvcalcError(
            "plotting to a file needs matplotlib: pip install 'kvcalc[plot]' "
            "(or leave out --output for a terminal plot)"
        ) from None
    return Figure


def _nice_step(raw: float) -> float:
    """Return 1, 2 or 5 × 10^k at or above raw (a tick step in GiB)."""
    import math

    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _digits(step: float) -> int:
    """Return the decimals a tick step needs: 2.5 -> 1, 0.05 -> 2, 50 -> 0."""
    text = f"{step:.6f}".rstrip("0").rstrip(".")
    return len(text.split(".")[1]) if "." in text else 0


def figure(data: PlotData) -> Figure:
    """Return a matplotlib Figure of the data: lines in bytes (ticks in GiB), one per series.

    Line labels: the series' label; capacity lines '<gpu> capacity'; boundary markers
    '<model> on <gpu> fits up to x'. KvcalcError when matplotlib is not installed.
    """
    figure_class = _matplotlib()
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    fig = figure_class(figsize=(9, 5.5), layout="constrained")
    ax = fig.add_subplot()
    colours: dict[str, str] = {}
    palette = [f"C{i}" for i in range(10)]
    dashes = ["--", "-.", (0, (3, 1, 1, 1, 1, 1)), (0, (6, 2))]
    gpu_index = {c.gpu: i for i, c in enumerate(data.capacities)}
    for s in data.series:
        colour = colours.setdefault(s.model, palette[len(colours) % len(palette)])
        ax.plot(
            s.x,
            s.y,
            label=s.label,
            color=colour,
            linestyle="-" if s.gpu is None else dashes[gpu_index[s.gpu] % len(dashes)],
            marker="o" if s.kind == "kv" else None,
            markersize=3,
        )
    for i, c in enumerate(data.capacities):
        ax.axhline(
            c.capacity_bytes,
            label=f"{c.gpu} capacity",
            color="0.3",
            linestyle=[":", "-.", (0, (1, 3)), (0, (5, 2))][i % 4],
            linewidth=1,
        )
    low, high = min(min(s.x) for s in data.series), max(max(s.x) for s in data.series)
    for b in data.boundaries:
        if b.x == 0 or not low <= b.x <= high:
            continue
        colour = colours.get(b.model, "k")
        unmarked = b.total_bytes is None  # a sweep gives the boundary's x, not its total
        ax.axvline(
            b.x, color=colour, linestyle=":", linewidth=0.8, label=b.text if unmarked else None
        )
        if unmarked:
            continue
        ax.plot(
            [b.x],
            [b.total_bytes],
            marker="X",
            markersize=9,
            linestyle="none",
            color=colour,
            label=b.text,
        )
    if data.axis == "seq":
        ax.set_xscale("log", base=2)
        ax.set_xlabel("tokens per sequence")
    else:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent sequences (batch)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v):,}"))
    top = max([max(s.y) for s in data.series] + [c.capacity_bytes for c in data.capacities])
    step = _nice_step(top / GiB / 8)
    ax.yaxis.set_major_locator(MultipleLocator(step * GiB))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / GiB:,.{_digits(step)}f}"))
    ax.set_ylabel("memory per GPU, GiB (2^30 B)")
    ax.set_ylim(bottom=0)
    ax.set_title(data.title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    result: Figure = fig
    return result
