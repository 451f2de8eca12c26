"""Bytes-only kernels: formula.kv_cache and planner.fit compiled once, evaluated per point.

`kv_cache` builds an explained breakdown (formula text, assumptions, per-group records) for
every call; a sweep over a million points needs only the integers. A `KvKernel` is compiled
once per (model, engine, dtypes, parallelism) from formula.py's own primitives (the layer
windows, the pipeline split, vLLM's padded group counts, the per-layer bytes) and evaluates
a sequence length with a few integer operations:

    stage bytes per sequence = fixed_s + Σ_w coef_{s,w} · tokens_w(seq)

where tokens_w is the engine's rule for a layer of window w (formula.tokens_held) and
fixed_s is whatever the formula counts per sequence that does not grow with the context
(measured against kv_cache at compile time, 0 for attention-only models). Every quantity
is linear in the batch, so a point costs two multiplications once its sequence length has
been seen.

Each kernel checks itself against kv_cache at probe lengths when compiled; a kernel that
does not reproduce it falls back to calling kv_cache per sequence length (exact, slower),
and tests/test_kernel.py fails when any bundled preset needs that fallback, so a formula
change the kernel does not follow is caught. `FitKernel` does the same for planner.fit and
`MinGpus` for planner.min_gpus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from operator import mul as _mul
from typing import TYPE_CHECKING, NamedTuple

from kvcalc.dtypes import KV_DTYPES, KvDtype, WeightDtype
from kvcalc.engines import EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.formula import (
    Workload,
    cdiv,
    effective_windows,
    hybrid_group_size,
    kv_cache,
    kv_heads_per_gpu,
    layer_bytes_per_token,
    padded_layer_counts,
    pp_partition,
)
from kvcalc.specs import MLA, GpuSpec, ModelSpec, Window

if TYPE_CHECKING:
    from kvcalc.planner import Plan

TokenRule = Callable[[int], int]

_NO_LIMIT = 2**62  # what planner._max_batch_at answers when nothing limits the batch


class SeqKv(NamedTuple):
    """KV bytes of one sequence of a given length (multiply by the batch for the workload)."""

    per_sequence_bytes: int  # all GPUs, replicas included (KvBreakdown.total_bytes / batch)
    per_gpu_bytes: int  # busiest GPU (KvBreakdown.per_gpu_bytes / batch)
    per_gpu_bytes_per_token: int  # KvBreakdown.per_gpu_bytes_per_token
    busiest_stage: int
    stage_bytes: tuple[int, ...]  # one GPU of each stage, one sequence


def token_rule(
    engine: EngineProfile, model: ModelSpec, workload: Workload, local: Window | None, block: int
) -> TokenRule:
    """Return seq_len -> tokens a layer of window `local` holds: formula.tokens_held, compiled.

    The rule is chosen once; what remains per call is a few integer operations.
    """
    pad = engine.context_pad
    window = None if local is None else local.size
    rule = engine.sliding
    if not engine.honours_window(model.family, model.architecture):
        rule = "full"
    if workload.attention_windows is not None:
        rule = "window"
    if window is None or rule == "full":
        if pad == 1:
            if block == 1:
                return lambda seq: seq
            return lambda seq: -(-seq // block) * block
        return lambda seq: -(-(-(-seq // pad) * pad) // block) * block
    w = window
    if rule == "window":
        return lambda seq: -(-min(-(-seq // pad) * pad, w) // block) * block
    if rule == "window_minus_one":
        return lambda seq: min(-(-seq // pad) * pad, w - 1)
    if rule == "vllm_planning":
        fixed_n = workload.max_num_batched_tokens or engine.max_num_batched_tokens
        chunked = local is not None and local.kind == "chunked"
        if fixed_n is None:  # N defaults to the (padded) sequence itself

            def rule_seq(seq: int) -> int:
                s = -(-seq // pad) * pad
                if chunked:
                    return -(-min(w + s, s) // block) * block
                return (-(-min(w - 1 + s, s) // block) + 1) * block

            return rule_seq
        n = fixed_n
        if chunked:
            return lambda seq: -(-min(w + n, -(-seq // pad) * pad) // block) * block
        return lambda seq: (-(-min(w - 1 + n, -(-seq // pad) * pad) // block) + 1) * block
    ubatch = engine.ubatch or 512
    return lambda seq: -(-min(-(-seq // pad) * pad, w + ubatch) // pad) * pad


@dataclass(frozen=True)
class _Structure:
    """What a kernel multiplies: per stage, per distinct window, the bytes one token costs."""

    keys: tuple[Window | None, ...]  # distinct windows, in a fixed order
    rules: tuple[TokenRule, ...]  # tokens_w(seq) for each key
    stage_coef: tuple[tuple[int, ...], ...]  # [stage][key]: padded layers · per-layer bytes
    total_coef: tuple[int, ...]  # [key]: tp · allocated layers · per-layer bytes
    stage_per_token: tuple[int, ...]  # per_gpu_bytes_per_token if that stage is the busiest
    stage_counts: tuple[tuple[int, ...], ...]  # [stage][key]: unpadded layers (planner units)


class KvKernel:
    """formula.kv_cache for one (model, engine, dtypes, tp, pp), evaluated per seq and batch.

    `seq(seq_len)` gives one sequence's bytes (memoised); `total_bytes(seq, batch)` and
    `per_gpu_bytes(seq, batch)` scale it. `exact_fast` is False when the compiled form did
    not reproduce kv_cache at the probes and every length goes through kv_cache instead.
    """

    def __init__(self, model: ModelSpec, engine: EngineProfile, workload: Workload) -> None:
        self.model = model
        self.engine = engine
        self.workload = replace(workload, seq_len=1, batch=1)
        self.k_dtype = workload.k_dtype or _auto_dtype(model, engine)
        self.v_dtype = workload.v_dtype or _auto_dtype(model, engine)
        is_mla = isinstance(model.attention, MLA)
        self.block_size = workload.block_size or engine.block_for(is_mla)
        self.tp, self.pp = workload.tp, workload.pp
        self.kv_heads_per_gpu = kv_heads_per_gpu(model, engine, self.tp)
        self.per_layer_bytes, _ = layer_bytes_per_token(
            model, engine, self.k_dtype, self.v_dtype, self.kv_heads_per_gpu
        )
        logical_heads = kv_heads_per_gpu(model, engine, 1)
        logical, _ = layer_bytes_per_token(model, engine, self.k_dtype, self.v_dtype, logical_heads)
        self.logical_per_layer_bytes = logical
        self.bytes_per_token = logical * model.n_layers
        self.stage_layers = pp_partition(model.n_layers, self.pp)
        self._memo: dict[int, SeqKv] = {}
        self._fixed_stage: tuple[int, ...] = (0,) * self.pp
        self._fixed_total = 0
        self.structure: _Structure | None = None
        if workload.attention_windows is None:  # given windows depend on seq: no fast form
            self.structure = self._compile()
            self._fast = self._build_fast()
            self.exact_fast = self._calibrate()
        else:
            self.exact_fast = False
        if not self.exact_fast:
            self.structure = None

    def _compile(self) -> _Structure:
        model, engine, block = self.model, self.engine, self.block_size
        windows = effective_windows(model, self.workload, engine)
        keys = tuple(sorted(set(windows), key=lambda w: ("", 0) if w is None else w))
        rules = tuple(token_rule(engine, model, self.workload, w, block) for w in keys)
        per_layer = self.per_layer_bytes
        stage_coef, stage_counts, per_token = [], [], []
        for start, end in self.stage_layers:
            padded = padded_layer_counts(engine, windows[start:end])
            stage_coef.append(tuple(padded.get(w, 0) * per_layer for w in keys))
            stage_counts.append(tuple(windows[start:end].count(w) for w in keys))
            per_token.append(per_layer * (end - start))
        total_coef = tuple(self.tp * sum(row[i] for row in stage_coef) for i in range(len(keys)))
        return _Structure(
            keys, rules, tuple(stage_coef), total_coef, tuple(per_token), tuple(stage_counts)
        )

    def _calibrate(self) -> bool:
        """Measure the per-sequence bytes that do not grow with seq; True if kv_cache agrees."""
        probes = self._probe_lengths()
        first = kv_cache(self.model, replace(self.workload, seq_len=probes[0]), self.engine)
        raw = self._evaluate(probes[0])
        self._fixed_stage = tuple(
            b - r for b, r in zip(first.stage_bytes, raw.stage_bytes, strict=True)
        )
        self._fixed_total = first.total_bytes - raw.per_sequence_bytes
        self._fast = self._build_fast()
        for seq_len in probes:
            kv = (
                first
                if seq_len == probes[0]
                else kv_cache(self.model, replace(self.workload, seq_len=seq_len), self.engine)
            )
            got = self._evaluate(seq_len)
            if (
                got.per_sequence_bytes != kv.total_bytes
                or got.per_gpu_bytes != kv.per_gpu_bytes
                or got.per_gpu_bytes_per_token != kv.per_gpu_bytes_per_token
                or got.stage_bytes != kv.stage_bytes
                or self.bytes_per_token != kv.bytes_per_token
            ):
                return False
        return True

    def _probe_lengths(self) -> list[int]:
        """Return sequence lengths that cross every window, block and pad boundary once."""
        probes = {1, 8191, 131_072 + 7}
        for w in self.structure.keys if self.structure else ():
            if w is not None:
                probes.update({max(1, w.size - 1), w.size + 1, 2 * w.size + 513})
        return sorted(probes)

    def _evaluate(self, seq_len: int) -> SeqKv:
        return self._fast(seq_len)

    def _build_fast(self) -> Callable[[int], SeqKv]:
        """Return seq_len -> SeqKv specialised to this structure (one stage, one window ...)."""
        s = self.structure
        assert s is not None  # only called when compiled
        rules, fixed_stage, fixed_total = s.rules, self._fixed_stage, self._fixed_total
        if self.pp == 1 and len(rules) == 1:
            (rule,) = rules
            (total_c,), ((stage_c,),) = s.total_coef, s.stage_coef
            (per_token,), (fixed_0,) = s.stage_per_token, fixed_stage

            def one(seq_len: int) -> SeqKv:
                t = rule(seq_len)
                b = fixed_0 + stage_c * t
                return SeqKv(fixed_total + total_c * t, b, per_token, 0, (b,))

            return one
        if self.pp == 1:
            (coefs,), (per_token,), (fixed_0,) = s.stage_coef, s.stage_per_token, fixed_stage
            total_coef = s.total_coef

            def stage1(seq_len: int) -> SeqKv:
                tokens = [rule(seq_len) for rule in rules]
                b = fixed_0 + sum(map(_mul, coefs, tokens))
                total = fixed_total + sum(map(_mul, total_coef, tokens))
                return SeqKv(total, b, per_token, 0, (b,))

            return stage1
        stages = tuple(zip(fixed_stage, s.stage_coef, strict=True))
        per_tokens, total_coef, pp = s.stage_per_token, s.total_coef, self.pp

        def general(seq_len: int) -> SeqKv:
            tokens = [rule(seq_len) for rule in rules]
            stage_bytes = tuple(fixed + sum(map(_mul, coefs, tokens)) for fixed, coefs in stages)
            busiest = 0
            for i in range(1, pp):  # the first stage of the largest, as kv_cache picks it
                if stage_bytes[i] > stage_bytes[busiest]:
                    busiest = i
            total = fixed_total + sum(map(_mul, total_coef, tokens))
            return SeqKv(total, stage_bytes[busiest], per_tokens[busiest], busiest, stage_bytes)

        return general

    def tokens(self, seq_len: int) -> tuple[int, ...]:
        """Return the tokens each distinct window's layers hold (structure.keys order)."""
        s = self.structure
        if s is None:
            raise KvcalcError("kernel has no compiled form for this workload")
        return tuple(rule(seq_len) for rule in s.rules)

    def evaluate(self, seq_len: int) -> SeqKv:
        """Return the bytes of one sequence of seq_len tokens (not memoised)."""
        if seq_len < 1:
            raise KvcalcError(f"seq_len must be a positive integer, got {seq_len!r}")
        if self.structure is not None:
            return self._fast(seq_len)
        kv = kv_cache(self.model, replace(self.workload, seq_len=seq_len), self.engine)
        return SeqKv(
            kv.total_bytes, kv.per_gpu_bytes, kv.per_gpu_bytes_per_token, kv.busiest_stage,
            kv.stage_bytes,
        )  # fmt: skip

    def seq(self, seq_len: int) -> SeqKv:
        """Return the bytes of one sequence of seq_len tokens (memoised per length)."""
        found = self._memo.get(seq_len)
        if found is None:
            found = self.evaluate(seq_len)
            if len(self._memo) < 65536:
                self._memo[seq_len] = found
        return found

    def total_bytes(self, seq_len: int, batch: int) -> int:
        """Return KvBreakdown.total_bytes at (seq_len, batch)."""
        return self.seq(seq_len).per_sequence_bytes * batch

    def per_gpu_bytes(self, seq_len: int, batch: int) -> int:
        """Return KvBreakdown.per_gpu_bytes at (seq_len, batch)."""
        return self.seq(seq_len).per_gpu_bytes * batch


def _auto_dtype(model: ModelSpec, engine: EngineProfile) -> KvDtype:
    return KV_DTYPES[engine.default_kv_dtype or model.dtype]


class _Units(NamedTuple):
    available: int  # blocks (vLLM) or bytes a stage holds
    unit_bytes: int
    counts: tuple[int, ...]  # per window key: what one token of a request costs in units
    divisor: int  # tokens per unit along a window (block size for vLLM, 1 otherwise)


class FitAt(NamedTuple):
    """planner.fit's answer at one (seq, batch), integers only (no notes, no breakdown)."""

    fits: bool
    headroom_bytes: int
    kv_bytes: int
    max_batch: int
    max_concurrency: float


class FitKernel:
    """planner.fit for one plan shape, evaluated per (seq, batch) from a compiled KvKernel.

    The budget is planner.budget's own (it does not depend on seq or batch) and max_tokens
    planner.max_tokens'; the per-request units follow planner._stage_units.
    """

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        engine: EngineProfile,
        workload: Workload,
        weights_dtype: WeightDtype | None = None,
        util: float | None = None,
        reserve_bytes: int | None = None,
        kv: KvKernel | None = None,
    ) -> None:
        from kvcalc.planner import Plan, budget, max_tokens

        self.kv = kv or KvKernel(model, engine, workload)
        self.plan = Plan(
            model,
            gpu,
            engine,
            replace(workload, seq_len=1, batch=1),
            weights_dtype,
            util,
            reserve_bytes,
        )
        self.budget = budget(self.plan)
        self.max_tokens = max_tokens(self.plan, self.budget)
        self.limit = model.max_position_embeddings or 2**24
        self._batch_memo: dict[int, int] = {}
        self._seq_memo: dict[int, tuple[int, bool]] = {}
        self.units: tuple[_Units, ...] | None = None
        s = self.kv.structure
        if s is not None and self.kv._fixed_total == 0:
            self.units = self._compile_units(s)

    def _compile_units(self, s: _Structure) -> tuple[_Units, ...]:
        per_layer, block = self.kv.per_layer_bytes, self.kv.block_size
        units = []
        for stage, kv_budget in enumerate(self.budget.stage_kv_budget_bytes):
            counts = s.stage_counts[stage]
            if self.kv.engine.pads_hybrid_groups:
                group = hybrid_group_size([c for c in counts if c])
                block_bytes = block * per_layer * group
                units.append(
                    _Units(
                        max(0, kv_budget) // block_bytes,
                        block_bytes,
                        tuple(cdiv(c, group) if c else 0 for c in counts),
                        block,
                    )
                )
            else:
                units.append(_Units(max(0, kv_budget), 1, tuple(c * per_layer for c in counts), 1))
        return tuple(units)

    def _per_request(self, seq_len: int) -> list[int]:
        assert self.units is not None
        tokens = self.kv.tokens(seq_len)
        return [
            sum(c * (t // u.divisor) for c, t in zip(u.counts, tokens, strict=True))
            for u in self.units
        ]

    def max_batch(self, seq_len: int) -> int:
        """Return planner.max_batch at seq_len (memoised)."""
        found = self._batch_memo.get(seq_len)
        if found is not None:
            return found
        if self.units is None:
            from kvcalc.planner import max_batch

            found = max_batch(self._plan_at(seq_len, 1), self.budget)
        else:
            best = None
            for u, need in zip(self.units, self._per_request(seq_len), strict=True):
                if need:
                    n = u.available // need
                    best = n if best is None else min(best, n)
            found = best if best is not None else _NO_LIMIT
        if len(self._batch_memo) < 65536:
            self._batch_memo[seq_len] = found
        return found

    def max_seq_len(self, batch: int) -> tuple[int, bool]:
        """Return planner.max_seq_len at batch: (largest seq that fits, clamped to the limit)."""
        found = self._seq_memo.get(batch)
        if found is not None:
            return found
        limit = self.limit
        if self.max_batch(1) < batch:
            found = (0, False)
        elif self.max_batch(limit) >= batch:
            found = (limit, True)
        else:
            low, high = 1, limit
            while high - low > 1:
                mid = (low + high) // 2
                if self.max_batch(mid) >= batch:
                    low = mid
                else:
                    high = mid
            found = (low, False)
        if len(self._seq_memo) < 65536:
            self._seq_memo[batch] = found
        return found

    def at(self, seq_len: int, batch: int) -> FitAt:
        """Return fits, headroom, kv_bytes, max_batch and max_concurrency at one point."""
        budgets = self.budget.stage_kv_budget_bytes
        if self.units is None:
            from kvcalc.planner import fit

            result = fit(self._plan_at(seq_len, batch))
            return FitAt(
                result.fits,
                result.headroom_bytes,
                result.kv_bytes,
                result.max_batch,
                result.max_concurrency,
            )
        needs = self._per_request(seq_len)
        kv_bytes, headroom, concurrency = 0, None, None
        for u, need, b in zip(self.units, needs, budgets, strict=True):
            stage_need = need * batch * u.unit_bytes
            kv_bytes = max(kv_bytes, stage_need)
            room = b - stage_need
            headroom = room if headroom is None else min(headroom, room)
            if need:
                c = u.available / need
                concurrency = c if concurrency is None else min(concurrency, c)
        assert headroom is not None
        return FitAt(
            headroom >= 0 and self.budget.kv_budget_bytes > 0,
            headroom,
            kv_bytes,
            self.max_batch(seq_len),
            concurrency if concurrency is not None else 0.0,
        )

    def _plan_at(self, seq_len: int, batch: int) -> Plan:
        return replace(
            self.plan, workload=replace(self.plan.workload, seq_len=seq_len, batch=batch)
        )


class MinGpus:
    """planner.min_gpus for one (model, gpu, engine, dtypes, budget knobs), per (seq, batch).

    Candidates are planner's, in its order; each candidate's FitKernel is compiled on first
    use, and the analytic lower bound (planner.min_gpus_lower_bound) skips the ones that
    cannot hold the weights and the KV in their combined memory.
    """

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        engine: EngineProfile,
        workload: Workload,
        weights_dtype: WeightDtype | None = None,
        util: float | None = None,
        reserve_bytes: int | None = None,
        max_pp: int | None = None,
    ) -> None:
        from kvcalc.planner import MAX_PP, min_gpus_candidates

        self.model, self.gpu, self.engine = model, gpu, engine
        self.workload = replace(workload, seq_len=1, batch=1, tp=1, pp=1)
        self.knobs = (weights_dtype, util, reserve_bytes)
        self.candidates = min_gpus_candidates(model, engine, MAX_PP if max_pp is None else max_pp)
        self._kernels: dict[tuple[int, int], FitKernel | None] = {}
        self._bound: _BoundKernel | bool | None = None

    def _kernel(self, tp: int, pp: int) -> FitKernel | None:
        key = (tp, pp)
        if key not in self._kernels:
            try:
                k: FitKernel | None = FitKernel(
                    self.model,
                    self.gpu,
                    self.engine,
                    replace(self.workload, tp=tp, pp=pp),
                    *self.knobs,
                )
                if k is not None and k.budget.kv_budget_bytes <= 0:
                    k = None
            except KvcalcError:
                k = None
            self._kernels[key] = k
        return self._kernels[key]

    def lower_bound(self, seq_len: int, batch: int) -> int:
        """Return planner.min_gpus_lower_bound at this point (1 when it cannot be computed)."""
        if self._bound is None:
            try:
                self._bound = _BoundKernel(
                    self.model, self.gpu, self.engine, self.workload, self.knobs[0]
                )
            except KvcalcError:
                self._bound = False
        if self._bound is False or self._bound is True:
            return 1
        return self._bound.at(seq_len, batch)

    def __call__(self, seq_len: int, batch: int) -> tuple[int, int] | None:
        """Return the smallest (tp, pp) that fits batch sequences of seq_len, or None."""
        low = self.lower_bound(seq_len, batch)
        for n, pp, tp in self.candidates:
            if n < low:
                continue
            k = self._kernel(tp, pp)
            if k is not None and k.max_batch(seq_len) >= batch:
                return tp, pp
        return None


class _BoundKernel:
    """planner.min_gpus_lower_bound with its seq-dependent part compiled."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        engine: EngineProfile,
        workload: Workload,
        weights_dtype: WeightDtype | None,
    ) -> None:
        from kvcalc.planner import weights_per_stage

        self.capacity = gpu.memory_bytes
        self.weights = weights_per_stage(model, engine, 1, 1, weights_dtype)[0]
        self.kv = KvKernel(model, engine, workload)
        s = self.kv.structure
        if s is None:
            raise KvcalcError("no compiled form")
        self.coef = tuple(
            sum(counts[i] for counts in s.stage_counts) * self.kv.logical_per_layer_bytes
            for i in range(len(s.keys))
        )

    def at(self, seq_len: int, batch: int) -> int:
        need = sum(c * t for c, t in zip(self.coef, self.kv.tokens(seq_len), strict=True))
        return max(1, cdiv(self.weights + need * batch, self.capacity))
