"""Bytes-only kernels: formula.kv_cache and planner.fit compiled once, evaluated per point.

`kv_cache` builds an explained breakdown (formula text, assumptions, per-group records) on
every call; a sweep over a million points needs only the integers. A `KvKernel` is
compiled once per (model, engine, dtypes, parallelism) and evaluates a point with a few
integer operations, from two facts about the formula:

* a sequence of length seq reaches the bytes only through the tokens each distinct layer
  window holds, t_w(seq) (formula.tokens_held, compiled here as `token_rule`);
* growing KV is linear in those tokens and fixed state is constant per sequence, and both
  are linear in the batch. So every quantity is

      q(seq, batch) = batch · (fixed_q + Σ_w coef_{q,w} · t_w(seq)).

The coefficients are not re-derived from the formula's internals (which grow new layer
kinds): they are solved exactly (rational Gaussian elimination) from kv_cache's own
answers at probe lengths, then verified against kv_cache at every probe. A kernel whose
probes do not verify, or whose engine is not linear in the batch (llama.cpp: unified
streams, context per slot), or whose windows depend on seq (TRT-LLM max_attention_window),
answers every point through kv_cache itself: exact, only slower. tests/test_kernel.py
fails when a bundled preset needs that fallback under an engine that should not, and
compares the kernels with kv_cache, planner.fit and planner.min_gpus on random points, so
a formula change the kernel does not follow fails loudly.

`FitKernel` solves planner._stage_units' per-request units the same way (the budget and
max_tokens are the planner's own, computed once); `MinGpus` runs planner.min_gpus's search
over compiled FitKernels, from the analytic lower bound up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

from kvcalc.dtypes import WeightDtype
from kvcalc.engines import EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.formula import (
    COMPRESSED_PARTS,
    POOL_KINDS,
    KvBreakdown,
    Workload,
    cdiv,
    freed_blocks_tokens,
    kv_cache,
    pool_blocks,
)
from kvcalc.specs import GpuSpec, ModelSpec, Window

if TYPE_CHECKING:
    from kvcalc.planner import Budget, Fit, Plan

TokenRule = Callable[[int], int]

_NO_LIMIT = 2**62  # what planner._max_batch_at answers when nothing limits the batch
_MEMO = 8192  # entries a kernel memoises (bounded: a sweep's memory stays flat)
_BUILTIN_KINDS = ("full", "sliding", "chunked")


class KvAt(NamedTuple):
    """kv_cache's integers at one (seq, batch)."""

    total_bytes: int
    per_gpu_bytes: int
    per_sequence_bytes: int
    per_gpu_bytes_per_token: int
    busiest_stage: int
    state_total_bytes: int
    state_per_gpu_bytes: int
    state_bytes_per_sequence: int


def token_rule(
    engine: EngineProfile, model: ModelSpec, workload: Workload, local: Window | None, block: int
) -> TokenRule:
    """Return seq_len -> tokens a layer of window `local` holds: formula.tokens_held, compiled.

    Not for llama.cpp (its cells depend on the batch and the context flags: no kernel).
    """
    pad = engine.context_pad
    if local is not None and local.kind in POOL_KINDS:  # formula.pool_blocks (vLLM, no pad)
        n_batched = workload.max_num_batched_tokens or engine.max_num_batched_tokens
        group = local
        return lambda seq: pool_blocks(group, block, seq, n_batched)
    if local is not None and local.kind in COMPRESSED_PARTS:  # formula.compressed_part_tokens
        m = local.size
        if local.kind == "compressed":
            return lambda seq: -(-seq // pad) * pad // m
        if local.kind == "buffered":
            return lambda seq: -(-seq // pad) * pad % m
        if local.kind == "paged":
            return lambda seq: -(-(-(-seq // pad) * pad) // block) * block // m
        if local.kind == "ring":
            return lambda seq: m
        return lambda seq: m if -(-seq // pad) * pad >= m else 0
    window = None if local is None else local.size
    rule = engine.sliding_rule(
        model.family, model.architecture, workload.attention_windows is not None
    )
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
    if rule == "freed_blocks" and pad == 1:
        return lambda seq: freed_blocks_tokens(seq, w, block)
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
    raise KvcalcError(f"no compiled token rule for engine {engine.name} ({rule})")


class _Linear(NamedTuple):
    """q(t) = (const + Σ coef_w · t_w) // denominator, exact at every probe."""

    const: int
    coef: tuple[int, ...]
    denominator: int

    def __call__(self, tokens: Sequence[int]) -> int:
        value = self.const + sum(c * t for c, t in zip(self.coef, tokens, strict=True))
        return value // self.denominator if self.denominator != 1 else value


class _Solver:
    """Exact linear fits q(t) = const + Σ coef_w · t_w through probes, one matrix for all q.

    Token columns that are linear combinations of earlier ones at every probe (windows an
    engine sizes alike; the identities between compressed layers' ⌊S/m⌋ and S mod m) are
    left out (coefficient 0); n independent probes are inverted once (rationals), and each
    fit is then verified at every probe in integers.
    """

    def __init__(self, vectors: list[tuple[int, ...]], with_const: bool) -> None:
        self.vectors, self.with_const = vectors, with_const
        columns = list(zip(*vectors, strict=True)) if vectors and vectors[0] else []
        self.keep = _independent(columns)
        self.width = len(columns)
        rows = [[v[i] for i in self.keep] + ([1] if with_const else []) for v in vectors]
        n = len(rows[0]) if rows else 0
        picked = _independent(rows, limit=n)
        self.inverse: list[list[Fraction]] | None = None
        self.picked = picked
        if len(picked) == n and n:
            self.inverse = _invert([[Fraction(x) for x in rows[i]] for i in picked])

    def fit(self, values: list[int]) -> _Linear | None:
        """Return the linear form through (probes, values), or None when none is exact."""
        if self.inverse is None:
            if all(v == values[0] for v in values) and self.with_const:
                return _Linear(values[0], (0,) * self.width, 1)
            if all(v == 0 for v in values):
                return _Linear(0, (0,) * self.width, 1)
            return None
        rhs = [Fraction(values[i]) for i in self.picked]
        solution = [sum(a * b for a, b in zip(row, rhs, strict=True)) for row in self.inverse]
        denominator = 1
        for x in solution:
            denominator = denominator * x.denominator // _gcd(denominator, x.denominator)
        ints = [int(x * denominator) for x in solution]
        coef = [0] * self.width
        for position, column in enumerate(self.keep):
            coef[column] = ints[position]
        form = _Linear(ints[-1] if self.with_const else 0, tuple(coef), denominator)
        for vector, value in zip(self.vectors, values, strict=True):
            exact = form.const + sum(c * t for c, t in zip(form.coef, vector, strict=True))
            if exact % denominator or exact // denominator != value:
                return None
        return form


def _independent(vectors: Sequence[Sequence[int]], limit: int | None = None) -> list[int]:
    """Return the indices of vectors, in order, that no earlier kept ones combine linearly to
    (the first `limit` of them, when given).

    Equal columns (windows an engine sizes alike) are the common case; compressed layers add
    identities: S mod 4 + 4·⌊S/4⌋ = S mod 128 + 128·⌊S/128⌋ = S, so of the columns of one
    length split by two rates (and a full layer's S) one is left out. A dependency the
    probes show but other lengths break would fail the kernels' tests, which compare them
    with kv_cache at random points.
    """
    keep: list[int] = []
    basis: list[list[Fraction]] = []
    for index, vector in enumerate(vectors):
        if limit is not None and len(keep) == limit:
            break
        reduced = _reduce([Fraction(x) for x in vector], basis)
        if any(reduced):
            basis.append(reduced)
            keep.append(index)
    return keep


def _reduce(vector: list[Fraction], basis: list[list[Fraction]]) -> list[Fraction]:
    """Return vector less its part along `basis` (rows with distinct leading entries, in the
    order found): zero exactly when the basis combines to it."""
    for b in basis:
        lead = next(k for k, x in enumerate(b) if x)
        if vector[lead]:
            factor = vector[lead] / b[lead]
            vector = [x - factor * y for x, y in zip(vector, b, strict=True)]
    return vector


def _invert(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Return the inverse of a non-singular square matrix (Gauss-Jordan over the rationals)."""
    n = len(matrix)
    a = [row + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if a[r][col])
        a[col], a[pivot] = a[pivot], a[col]
        lead = a[col][col]
        a[col] = [x / lead for x in a[col]]
        for r in range(n):
            if r != col and a[r][col]:
                factor = a[r][col]
                a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
    return [row[n:] for row in a]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


class KvKernel:
    """formula.kv_cache for one (model, engine, dtypes, tp, pp), evaluated per (seq, batch).

    `at(seq, batch)` gives kv_cache's integers. `exact_fast` is False when the compiled form
    is not used and every point goes through kv_cache.
    """

    def __init__(self, model: ModelSpec, engine: EngineProfile, workload: Workload) -> None:
        self.model, self.engine = model, engine
        self.workload = replace(workload, seq_len=1, batch=1)
        # kv_cache first: a workload it refuses raises its own error, word for word
        first = kv_cache(model, self.workload, engine)
        self.first = first
        self.k_dtype, self.v_dtype = first.k_dtype, first.v_dtype
        self.block_size = first.block_size
        self.kv_heads_per_gpu = first.kv_heads_per_gpu
        self.bytes_per_token = first.bytes_per_token
        self.tp, self.pp = workload.tp, workload.pp
        # one token rule per (window, block): vLLM may give a hybrid group its own block
        self.keys: tuple[tuple[Window | None, int], ...] = tuple(
            sorted(
                {self.group_key(g) for g in first.groups},
                key=lambda k: (("", 0) if k[0] is None else k[0], k[1]),
            )
        )
        self.rules: tuple[TokenRule, ...] = ()
        self.probes: dict[int, KvBreakdown] = {1: first}
        self._breakdowns: dict[tuple[int, int], KvBreakdown] = {}
        self._memo: dict[int, tuple[int, ...]] = {}
        self._slow: dict[tuple[int, int], KvAt] = {}
        self.exact_fast = False
        self.reason = ""
        linear_in_batch = engine.sliding != "llama_cpp" and workload.attention_windows is None
        if linear_in_batch and workload.llamacpp is None:
            try:
                self.exact_fast = self._compile()
            except KvcalcError as exc:  # a probe the formula refuses: no compiled form
                self.reason = str(exc)
        else:
            self.reason = "not linear in the batch, or windows depend on seq"

    def group_key(self, group: Any) -> tuple[Window | None, int]:
        """Return a layer group's (window, block size): what its tokens held depend on."""
        return (group.key, getattr(group, "block_size", None) or self.first.block_size)

    # ---- compiling ----------------------------------------------------------------------

    def probe_lengths(self) -> list[int]:
        """Return sequence lengths that cross every window, block and pad boundary."""
        probes = {1, 4097, 131_072 + 7, 1_000_003}
        for w, _ in self.keys:
            if w is not None:
                probes.update({max(1, w.size - 1), w.size + 1, 2 * w.size + 513, 3 * w.size})
            if w is not None and w.kind in COMPRESSED_PARTS:  # seq < m, ≡ 0 and ≢ 0 mod m
                m = w.size
                probes.update({m, 2 * m + 1, 5 * m + 2, 7 * m + m - 1, 11 * m + 3})
        return sorted(probes)

    def breakdown(self, seq_len: int, batch: int) -> KvBreakdown:
        """Return kv_cache at (seq_len, batch), the explained breakdown (memoised: fitting
        one workload on every GPU explains it once)."""
        key = (seq_len, batch)
        found = self._breakdowns.get(key)
        if found is None:
            workload = replace(self.workload, seq_len=seq_len, batch=batch)
            found = kv_cache(self.model, workload, self.engine)
            if len(self._breakdowns) >= 64:
                self._breakdowns.clear()
            self._breakdowns[key] = found
        return found

    def probe(self, seq_len: int) -> KvBreakdown:
        """Return kv_cache at (seq_len, batch 1), kept for the fit kernel's probes."""
        if seq_len not in self.probes:
            self.probes[seq_len] = kv_cache(
                self.model, replace(self.workload, seq_len=seq_len), self.engine
            )
        return self.probes[seq_len]

    def _compile(self) -> bool:
        first = self.first
        if len(first.layer_kinds) != len(first.layer_windows):
            self.reason = "breakdown has no per-layer kinds"
            return False
        self.rules = tuple(
            token_rule(self.engine, self.model, self.workload, w, block) for w, block in self.keys
        )
        lengths = self.probe_lengths()
        kvs = [self.probe(s) for s in lengths]
        vectors = [self.tokens(s) for s in lengths]
        for kv, vector in zip(kvs, vectors, strict=True):  # the token rules are formula's
            by_key = dict(zip(self.keys, vector, strict=True))
            if any(g.tokens != by_key.get(self.group_key(g)) for g in kv.groups):
                self.reason = "token rule differs from formula.tokens_held"
                return False
        forms: list[_Linear] = []
        series = [[kv.total_bytes for kv in kvs]]
        series += [[kv.stage_bytes[stage] for kv in kvs] for stage in range(self.pp)]
        self.vectors = vectors
        self._const_solver: _Solver | None = None
        solver = _Solver(vectors, with_const=False)
        for values in series:
            form = solver.fit(values)
            if form is None:
                self.reason = "KV bytes are not linear in the held tokens"
                return False
            forms.append(form)
        self._total, self._stages = forms[0], tuple(forms[1:])
        state = (first.state_total_bytes, first.stage_state_bytes or (0,) * self.pp)
        if any(
            (kv.state_total_bytes, kv.stage_state_bytes or (0,) * self.pp) != state for kv in kvs
        ):
            self.reason = "fixed state changes with seq"
            return False
        self._state_total, self._stage_state = state[0], tuple(state[1])
        self._stage_per_token = self._per_token_by_stage(first)
        for kv, length in zip(kvs, lengths, strict=True):
            if self._evaluate(length, 1) != _from_breakdown(kv):
                self.reason = "compiled form differs from kv_cache at a probe"
                return False
        return True

    def _per_token_by_stage(self, kv: KvBreakdown) -> tuple[int, ...]:
        """Return Σ bytes per token of each stage's layers (per_gpu_bytes_per_token)."""
        if kv.block_pool is not None:  # its groups are pool blocks, not layers' tokens
            return tuple(sum(kv.layer_bytes_per_token[a:b]) for a, b in kv.stage_layers)
        per_group = {(g.key, g.layer_kind): g.bytes_per_token_per_layer for g in kv.groups}
        per_layer = [
            per_group.get((w, "" if k in _BUILTIN_KINDS else k), 0)
            for w, k in zip(kv.layer_windows, kv.layer_kinds, strict=True)
        ]
        return tuple(sum(per_layer[a:b]) for a, b in kv.stage_layers)

    @property
    def const_solver(self) -> _Solver:
        """Return the probes' solver for forms with a constant term (the fit kernel's)."""
        if self._const_solver is None:
            self._const_solver = _Solver(self.vectors, with_const=True)
        return self._const_solver

    # ---- evaluating ---------------------------------------------------------------------

    def tokens(self, seq_len: int) -> tuple[int, ...]:
        """Return the tokens each distinct window's layers hold (in `keys` order)."""
        return tuple(rule(seq_len) for rule in self.rules)

    def _per_sequence(self, seq_len: int) -> tuple[int, ...]:
        """(total, per stage ..., busiest): one sequence's KV, memoised per length."""
        found = self._memo.get(seq_len)
        if found is None:
            t = self.tokens(seq_len)
            stages = [f(t) for f in self._stages]
            busiest = 0
            for i in range(1, self.pp):  # the first stage of the largest, as kv_cache picks it
                if stages[i] + self._stage_state[i] > stages[busiest] + self._stage_state[busiest]:
                    busiest = i
            found = (self._total(t), stages[busiest], busiest)
            if len(self._memo) < _MEMO:
                self._memo[seq_len] = found
        return found

    def _evaluate(self, seq_len: int, batch: int) -> KvAt:
        total, per_gpu, busiest = self._per_sequence(seq_len)
        return KvAt(
            total * batch,
            per_gpu * batch,
            total,
            self._stage_per_token[busiest],
            busiest,
            self._state_total * batch,
            self._stage_state[busiest] * batch,
            self._state_total,
        )

    def at(self, seq_len: int, batch: int) -> KvAt:
        """Return kv_cache's integers at (seq_len, batch)."""
        if seq_len < 1 or batch < 1:
            raise KvcalcError(f"seq_len and batch must be positive, got {seq_len}, {batch}")
        if self.exact_fast:
            return self._evaluate(seq_len, batch)
        key = (seq_len, batch)
        found = self._slow.get(key)
        if found is None:
            kv = kv_cache(
                self.model, replace(self.workload, seq_len=seq_len, batch=batch), self.engine
            )
            found = _from_breakdown(kv)
            if len(self._slow) < _MEMO:
                self._slow[key] = found
        return found


_KV_KERNELS: dict[tuple[Any, ...], tuple[ModelSpec, KvKernel]] = {}


def kv_kernel(model: ModelSpec, engine: EngineProfile, workload: Workload) -> KvKernel:
    """Return the KvKernel for (model, engine, workload shape), compiled once per process.

    Keyed by the model object (kept alive with its kernel), the engine and the workload
    with seq and batch cleared; at most 4,096 kernels are kept.
    """
    shape = replace(workload, seq_len=1, batch=1)
    key = (id(model), engine, shape)
    found = _KV_KERNELS.get(key)
    if found is not None and found[0] is model:
        return found[1]
    kernel = KvKernel(model, engine, shape)
    if len(_KV_KERNELS) >= 4096:
        _KV_KERNELS.clear()
    _KV_KERNELS[key] = (model, kernel)
    return kernel


def _from_breakdown(kv: KvBreakdown) -> KvAt:
    return KvAt(
        kv.total_bytes,
        kv.per_gpu_bytes,
        kv.per_sequence_bytes,
        kv.per_gpu_bytes_per_token,
        kv.busiest_stage,
        kv.state_total_bytes,
        kv.state_per_gpu_bytes,
        kv.state_bytes_per_sequence,
    )


class FitAt(NamedTuple):
    """planner.fit's answer at one (seq, batch), integers only (no notes, no breakdown)."""

    fits: bool
    headroom_bytes: int
    kv_bytes: int
    max_batch: int
    max_concurrency: float


class FitAnswer(NamedTuple):
    """Everything a fit row shows at one (seq, batch): FitAt, the solvers and the budget."""

    at: FitAt
    max_seq_len: int
    max_seq_len_clamped: bool
    max_tokens: int
    budget: Budget


class FitKernel:
    """planner.fit for one plan shape, evaluated per (seq, batch) from a compiled KvKernel.

    The budget is planner.budget's own (it does not depend on seq or batch) and max_tokens
    planner.max_tokens'; what one request needs per stage (planner._stage_units) is solved
    as a linear form of the held tokens and verified at the KV kernel's probes.
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
        from kvcalc.planner import Plan, budget, max_tokens, reserves_state_slots

        self.kv = kv or kv_kernel(model, engine, workload)
        self.plan = Plan(
            model,
            gpu,
            engine,
            replace(workload, seq_len=1, batch=1),
            weights_dtype,
            util,
            reserve_bytes,
        )
        self.budget: Budget = budget(self.plan)
        self.max_tokens = max_tokens(self.plan, self.budget, self.kv.first)
        # TensorRT-LLM reserves each sequence's state (max_batch_size slots) before tokens:
        # its capacity in tokens follows the batch (planner.max_tokens)
        self._tokens_follow_batch = reserves_state_slots(engine, self.kv.first)
        self.limit = model.max_position_embeddings or 2**24
        self._batch_memo: dict[int, int] = {}
        self._seq_memo: dict[int, tuple[int, bool]] = {}
        self._last_seq = 0
        from kvcalc import planner

        self._has_working_set = bool(getattr(engine, "decode_working_set", False)) and hasattr(
            planner, "_working_set"
        )
        self._last_need: tuple[tuple[int, int], ...] = ()
        # some budgets depend on the asked point (vLLM V0 profiles max(seq, 2048) tokens):
        # then every point is planner.fit's own
        # SGLang's split pools (planner.SglangPools) bound the batch per pool, not by one
        # budget: every point is planner.fit's own
        self.exact_fast = (
            self.budget.pools is None
            and self.kv.exact_fast
            and self._budget_is_constant()
            and self._compile()
        )
        self._slow: dict[tuple[int, int], FitAnswer] = {}

    def max_tokens_at(self, seq_len: int, batch: int) -> int:
        """Return planner.max_tokens for a plan of this length and batch (the same at every
        point unless the engine reserves the batch's state before tokens, or reports its
        capacity at the length asked: vLLM's DeepSeek-V4 pool)."""
        from kvcalc.planner import max_tokens

        if self.kv.first.block_pool is not None:
            return max_tokens(self._plan_at(seq_len, 1), self.budget, self.kv.breakdown(seq_len, 1))
        if not self._tokens_follow_batch:
            return self.max_tokens
        return max_tokens(self._plan_at(1, batch), self.budget, self.kv.first)

    def _budget_is_constant(self) -> bool:
        from kvcalc.planner import budget

        return all(
            budget(self._plan_at(seq, batch)) == self.budget
            for seq, batch in ((4097, 1), (131_079, 3), (1_000_003, 1))
        )

    def answer(self, seq_len: int, batch: int) -> FitAnswer:
        """Return the row's fit answer at (seq_len, batch): planner.fit's integers."""
        if self.exact_fast:
            max_seq, clamped = self.max_seq_len(batch)
            return FitAnswer(
                self.at(seq_len, batch),
                max_seq,
                clamped,
                self.max_tokens_at(seq_len, batch),
                self.budget,
            )
        key = (seq_len, batch)
        found = self._slow.get(key)
        if found is None:
            from kvcalc.planner import fit

            r = fit(self._plan_at(seq_len, batch))
            found = FitAnswer(
                FitAt(r.fits, r.headroom_bytes, r.kv_bytes, r.max_batch, r.max_concurrency),
                r.max_seq_len,
                r.max_seq_len_clamped,
                r.max_tokens,
                r.budget,
            )
            if len(self._slow) >= _MEMO:
                self._slow.clear()
            self._slow[key] = found
        return found

    def _compile(self) -> bool:
        from kvcalc.planner import _stage_units

        lengths = self.kv.probe_lengths()
        budgets = self.budget.stage_kv_budget_bytes
        units = [
            [_stage_units(self.kv.probe(s), stage, b) for stage, b in enumerate(budgets)]
            for s in lengths
        ]
        self._available = tuple(u.available for u in units[0])
        self._unit_bytes = tuple(u.unit_bytes for u in units[0])
        if any(
            tuple(u.available for u in row) != self._available
            or tuple(u.unit_bytes for u in row) != self._unit_bytes
            for row in units
        ):
            return False
        forms = []
        for stage in range(len(budgets)):
            form = self.kv.const_solver.fit([row[stage].per_request for row in units])
            if form is None:
                return False
            forms.append(form)
        self._needs = tuple(forms)
        return True

    def _working(self, seq_len: int, stage: int) -> int:
        """Bytes a sequence needs beside the cache on one stage (transformers' decode working
        set): the planner's own function, per length (it takes a max of terms: not a linear
        form)."""
        if not self._has_working_set:
            return 0
        from kvcalc import planner

        value: int = planner._working_set(self.plan, self.kv.first, seq_len, stage)
        return value

    def _per_request(self, seq_len: int) -> tuple[tuple[int, int], ...]:
        """Per stage: (cache units a request needs, working-set bytes a sequence needs)."""
        if seq_len == self._last_seq:  # a sweep asks one length for many batches in a row
            return self._last_need
        t = self.kv.tokens(seq_len)
        found = tuple((f(t), self._working(seq_len, s)) for s, f in enumerate(self._needs))
        self._last_seq, self._last_need = seq_len, found
        return found

    def max_batch(self, seq_len: int) -> int:
        """Return planner.max_batch at seq_len (memoised)."""
        found = self._batch_memo.get(seq_len)
        if found is None:
            found = self._max_batch(seq_len)
            if len(self._batch_memo) < _MEMO:
                self._batch_memo[seq_len] = found
        return found

    def _max_batch(self, seq_len: int) -> int:
        if not self.exact_fast:
            from kvcalc.planner import max_batch

            found = max_batch(self._plan_at(seq_len, 1))  # the budget at that length
        else:
            best = None
            for available, (need, working) in zip(
                self._available, self._per_request(seq_len), strict=True
            ):
                if need:
                    n = available // (need + working)
                    best = n if best is None or n < best else best
            found = best if best is not None else _NO_LIMIT
        return found

    def max_seq_len(self, batch: int) -> tuple[int, bool]:
        """Return planner.max_seq_len at batch: (largest seq that fits, clamped to the limit)."""
        found = self._seq_memo.get(batch)
        if found is not None:
            return found
        from kvcalc.planner import compression_rates, largest_fitting_seq

        # unmemoised: the probed lengths are not the sweep's
        found = largest_fitting_seq(
            lambda seq: self._max_batch(seq) >= batch,
            self.limit,
            compression_rates(self.kv.model),
        )
        if len(self._seq_memo) < _MEMO:
            self._seq_memo[batch] = found
        return found

    def at(self, seq_len: int, batch: int) -> FitAt:
        """Return fits, headroom, kv_bytes, max_batch and max_concurrency at one point."""
        if not self.exact_fast:
            return self.answer(seq_len, batch).at
        budgets = self.budget.stage_kv_budget_bytes
        kv_bytes, headroom, concurrency = 0, None, None
        for available, unit, (need, working), b in zip(
            self._available, self._unit_bytes, self._per_request(seq_len), budgets, strict=True
        ):
            stage_need = need * batch * unit
            kv_bytes = max(kv_bytes, stage_need)
            room = b - stage_need - working * batch
            headroom = room if headroom is None else min(headroom, room)
            if need:
                c = available / (need + working)
                concurrency = c if concurrency is None else min(concurrency, c)
        if headroom is None:
            raise KvcalcError("plan has no pipeline stage")
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


_FIT_KERNELS: dict[tuple[Any, ...], tuple[ModelSpec, GpuSpec, FitKernel]] = {}


def fit_kernel(
    model: ModelSpec,
    gpu: GpuSpec,
    engine: EngineProfile,
    workload: Workload,
    weights_dtype: WeightDtype | None = None,
    util: float | None = None,
    reserve_bytes: int | None = None,
) -> FitKernel:
    """Return the FitKernel of a plan shape, compiled once per process (as kv_kernel): fit
    and both minimum-GPU searches of one GPU share their candidates' kernels."""
    shape = replace(workload, seq_len=1, batch=1)
    key = (id(model), id(gpu), engine, shape, weights_dtype, util, reserve_bytes)
    found = _FIT_KERNELS.get(key)
    if found is not None and found[0] is model and found[1] is gpu:
        return found[2]
    kernel = FitKernel(model, gpu, engine, shape, weights_dtype, util, reserve_bytes)
    if len(_FIT_KERNELS) >= 4096:
        _FIT_KERNELS.clear()
    _FIT_KERNELS[key] = (model, gpu, kernel)
    return kernel


class MinGpus:
    """planner.min_gpus for one (model, gpu, engine, dtypes, budget knobs), per (seq, batch).

    Candidates are planner.min_gpus_candidates, in its order; each candidate's FitKernel is
    compiled on first use, and candidates below planner.min_gpus_lower_bound (compiled
    here) are skipped.
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
        self.knobs: tuple[Any, ...] = (weights_dtype, util, reserve_bytes)
        self.candidates = min_gpus_candidates(model, engine, MAX_PP if max_pp is None else max_pp)
        self._kernels: dict[tuple[int, int], FitKernel | None] = {}
        self._bound: _Bound | None = None
        self._bound_failed = False
        # (seq, batch, index) of the last answer: for the same seq and a larger batch no
        # earlier candidate can fit (fitting is monotone in the batch), so the scan resumes
        self._last: tuple[int, int, int] = (0, 0, 0)
        self._rooms: dict[tuple[int, int], tuple[int, ...] | None] = {}

    def _kernel(self, tp: int, pp: int) -> FitKernel | None:
        key = (tp, pp)
        if key not in self._kernels:
            kernel: FitKernel | None
            try:
                kernel = fit_kernel(
                    self.model, self.gpu, self.engine, replace(self.workload, tp=tp, pp=pp),
                    *self.knobs,
                )  # fmt: skip
                if kernel.budget.kv_budget_bytes <= 0:
                    kernel = None
            except KvcalcError:
                kernel = None
            self._kernels[key] = kernel
        return self._kernels[key]

    def _room(self, tp: int, pp: int) -> tuple[int, ...] | None:
        """Return tp × each stage's KV budget (planner.budget) for a candidate, None if refused."""
        key = (tp, pp)
        if key not in self._rooms:
            from kvcalc.planner import Plan, budget

            plan = Plan(
                self.model, self.gpu, self.engine, replace(self.workload, tp=tp, pp=pp),
                *self.knobs,
            )  # fmt: skip
            try:
                found: tuple[int, ...] | None = tuple(
                    tp * b for b in budget(plan).stage_kv_budget_bytes
                )
            except KvcalcError:
                found = None
            self._rooms[key] = found
        return self._rooms[key]

    def _cannot_fit(self, tp: int, pp: int, seq_len: int, batch: int) -> bool:
        """True when some stage's GPUs together cannot hold that stage's layers' logical KV.

        Necessary for fitting: a GPU holds at least 1/tp of its layers' unsharded KV
        (replication and block rounding only add), all within its stage's budget.
        """
        room = self._room(tp, pp)
        if room is None:
            return True
        if self._bound is None:
            return False
        needs = self._bound.stage_needs(seq_len, pp)
        return any(r < need * batch for r, need in zip(room, needs, strict=False))

    def lower_bound(self, seq_len: int, batch: int) -> int:
        """Return planner.min_gpus_lower_bound at this point."""
        if self._bound is None and not self._bound_failed:
            try:
                self._bound = _Bound(
                    self.model, self.gpu, self.engine, self.workload, self.knobs[0]
                )
            except KvcalcError:
                self._bound_failed = True
        if self._bound is None:
            return 1
        return self._bound.at(seq_len, batch)

    def span(self, seq_len: int, batch: int) -> tuple[tuple[int, int] | None, int]:
        """Return (the answer at (seq_len, batch), the largest batch with the same answer).

        The answer stays for every larger batch up to that: the candidates before it did not
        fit this batch (fitting is monotone in the batch), and it fits up to its max batch,
        so the bounds that skip candidates (necessary conditions) cannot skip it. A sweep
        over ascending batches asks once per step of the answer.
        """
        found = self(seq_len, batch)
        if found is None:
            return None, _NO_LIMIT
        kernel = self._kernels.get((found[0], found[1]))
        return found, batch if kernel is None else kernel.max_batch(seq_len)

    def __call__(self, seq_len: int, batch: int) -> tuple[int, int] | None:
        """Return the smallest (tp, pp) that fits batch sequences of seq_len, or None."""
        if not self.candidates:
            return None
        last_seq, last_batch, start = self._last
        if last_seq != seq_len or batch < last_batch:
            start = 0
        elif start < len(self.candidates):  # the last answer, if it still fits, is the answer
            _, pp, tp = self.candidates[start]
            kernel = self._kernels.get((tp, pp))
            if kernel is not None and kernel.max_batch(seq_len) >= batch:
                self._last = (seq_len, batch, start)
                return tp, pp
        low = self.lower_bound(seq_len, batch)
        if low > self.candidates[-1][0]:
            return None
        for index in range(start, len(self.candidates)):
            n, pp, tp = self.candidates[index]
            if n < low or self._cannot_fit(tp, pp, seq_len, batch):
                continue
            kernel = self._kernel(tp, pp)
            if kernel is not None and kernel.max_batch(seq_len) >= batch:
                self._last = (seq_len, batch, index)
                return tp, pp
        self._last = (seq_len, batch, len(self.candidates))
        return None


class _Bound:
    """planner.min_gpus_lower_bound with its seq-dependent part compiled."""

    def __init__(
        self,
        model: ModelSpec,
        gpu: GpuSpec,
        engine: EngineProfile,
        workload: Workload,
        weights_dtype: WeightDtype | None,
    ) -> None:
        from kvcalc.planner import Plan, min_gpus_lower_bound, weights_per_stage

        self.capacity = gpu.memory_bytes
        self.weights = weights_per_stage(model, engine, 1, 1, weights_dtype)[0]
        self.kv = kv_kernel(model, engine, workload)
        self.plan = Plan(model, gpu, engine, self.kv.workload, weights_dtype)
        self.min_gpus_lower_bound = min_gpus_lower_bound
        self.model = model
        self._stage_coef: dict[int, tuple[tuple[int, ...], ...]] = {}
        self._stage_need_memo: dict[tuple[int, int], tuple[int, ...]] = {}
        self._need_memo: dict[int, int] = {}
        self.layer_coef: list[list[int]] = []
        if self.kv.exact_fast:
            first = self.kv.first
            index = {k: i for i, k in enumerate(self.kv.keys)}
            coef = [0] * len(self.kv.keys)
            for g in first.groups:
                coef[index[self.kv.group_key(g)]] += g.count * g.bytes_per_token_per_layer
            self.coef: tuple[int, ...] | None = tuple(coef)
            per_group = {
                (g.key, g.layer_kind): (index[self.kv.group_key(g)], g.bytes_per_token_per_layer)
                for g in first.groups
            }
            parts = first.layer_parts or ((),) * len(first.layer_kinds)
            for w, kind, extra in zip(first.layer_windows, first.layer_kinds, parts, strict=True):
                row = [0] * len(self.kv.keys)
                found = per_group.get((w, "" if kind in _BUILTIN_KINDS else kind))
                if found is not None:
                    row[found[0]] = found[1]
                for part, _ in extra:  # a compressed layer's other tensors
                    column, per = per_group[(part, kind)]
                    row[column] += per
                self.layer_coef.append(row)
        else:
            self.coef = None

    def stage_needs(self, seq_len: int, pp: int) -> tuple[int, ...]:
        """Return one sequence's unsharded, unpadded KV per pipeline stage of `pp` (or zeros)."""
        if self.coef is None:
            return (0,) * pp
        if pp not in self._stage_coef:
            from kvcalc.formula import pp_partition

            ranges = list(pp_partition(self.model.n_layers, pp))
            ranges[-1] = (ranges[-1][0], len(self.layer_coef))  # MTP layers: last stage
            self._stage_coef[pp] = tuple(
                tuple(sum(c[k] for c in self.layer_coef[a:b]) for k in range(len(self.kv.keys)))
                for a, b in ranges
            )
        key = (seq_len, pp)
        found = self._stage_need_memo.get(key)
        if found is None:
            t = self.kv.tokens(seq_len)
            found = tuple(
                sum(c * x for c, x in zip(coef, t, strict=True)) for coef in self._stage_coef[pp]
            )
            if len(self._stage_need_memo) >= _MEMO:
                self._stage_need_memo.clear()
            self._stage_need_memo[key] = found
        return found

    def at(self, seq_len: int, batch: int) -> int:
        if self.coef is None:
            plan = replace(
                self.plan, workload=replace(self.plan.workload, seq_len=seq_len, batch=batch)
            )
            return self.min_gpus_lower_bound(plan)
        need = self._need_memo.get(seq_len)
        if need is None:
            need = sum(c * t for c, t in zip(self.coef, self.kv.tokens(seq_len), strict=True))
            if len(self._need_memo) >= _MEMO:
                self._need_memo.clear()
            self._need_memo[seq_len] = need
        return max(1, cdiv(self.weights + need * batch, self.capacity))


def fit_fast(plan: Plan) -> Fit:
    """Return planner.fit(plan), its searches answered by a compiled FitKernel.

    The FitKernel's KV kernel is shared by every plan of the same model, engine and workload
    shape (kv_kernel), so fitting one workload on many GPUs compiles the KV once. Where the
    kernel has no compiled form, planner.fit searches as usual.
    """
    from kvcalc.planner import Searched, fit

    kernel = fit_kernel(
        plan.model, plan.gpu, plan.engine, plan.workload,
        plan.weights_dtype, plan.util, plan.reserve_bytes,
    )  # fmt: skip
    if not kernel.exact_fast:
        return fit(plan)
    seq_len, batch = plan.workload.seq_len, plan.workload.batch
    max_seq, clamped = kernel.max_seq_len(batch)
    searched = Searched(
        kernel.budget, kernel.max_batch(seq_len), max_seq, clamped, kernel.max_tokens_at(seq_len, batch),
        kernel.kv.breakdown(seq_len, batch), kernel.kv.breakdown(seq_len, 1),
    )  # fmt: skip
    return fit(plan, searched)


def min_gpus_fast(plan: Plan, max_pp: int | None = None) -> tuple[int, int] | None:
    """Return planner.min_gpus(plan, max_pp) through MinGpus's compiled candidates."""
    search = MinGpus(
        plan.model, plan.gpu, plan.engine, plan.workload,
        plan.weights_dtype, plan.util, plan.reserve_bytes, max_pp,
    )  # fmt: skip
    return search(plan.workload.seq_len, plan.workload.batch)
