"""llama.cpp's answers to `fit`, in its own terms: context (-c) and slots (-np) (pure).

planner.fit answers in vLLM's terms (sequences of seq_len, linear in the batch). llama.cpp
allocates one KV stream per slot, or one shared stream with --kv-unified, and its sliding
layers grow with the slots when unified, so its KV is not linear in the slots; and its
compute buffer (kvcalc/llamacpp.py:compute_buffer_bytes) grows with -ub and the context.
This module answers exactly with formula.kv_cache at each candidate:

    needed(-c, -np) = KV bytes on the busiest GPU + compute buffer
    room            = capacity − weights − CUDA context (the planner's budget, reserve added back)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from kvcalc.formula import Workload, kv_cache
from kvcalc.llamacpp import (
    LlamaCppContext,
    LlamaCppOptions,
    compute_buffer_bytes,
    compute_buffer_modelled,
    compute_reserve_terms,
    llama_context,
)
from kvcalc.planner import Fit
from kvcalc.records import record
from kvcalc.specs import ModelSpec

MAX_SLOTS = 256  # LLAMA_MAX_SEQ (src/llama-cparams.h)


@record
class LlamaCppFit:
    """llama.cpp's view of a fit: its context and slots, KV and compute buffer, and limits."""

    ctx: LlamaCppContext
    kv_bytes: int  # busiest GPU
    compute_bytes: int  # estimate of llama.cpp's compute buffer
    room_bytes: int  # capacity − weights − CUDA context, tightest stage
    fits: bool
    headroom_bytes: int
    max_ctx_size: int  # largest -c that fits with these slots (0: none)
    max_slots: int  # largest -np with --seq tokens per slot that fits (0: none)


def _context(workload: Workload) -> LlamaCppContext:
    return llama_context(workload.llamacpp, workload.seq_len, workload.batch)


def _compute(model: ModelSpec, ctx: LlamaCppContext) -> int:
    """The compute buffer's estimate; 0 where it is not modelled (then --reserve holds it)."""
    return compute_buffer_bytes(model, ctx) if compute_buffer_modelled(model) else 0


def _needed(fit: Fit, workload: Workload, with_compute: bool) -> tuple[tuple[int, ...], int]:
    """Return (KV [+ compute] bytes per stage on one GPU, compute bytes) for a workload."""
    kv = kv_cache(fit.plan.model, workload, fit.plan.engine)
    compute = _compute(fit.plan.model, _context(workload))
    extra = compute if with_compute else 0
    states = kv.stage_state_bytes or (0,) * len(kv.stage_bytes)
    return tuple(k + s + extra for k, s in zip(kv.stage_bytes, states, strict=True)), compute


def llamacpp_fit(fit: Fit, compute_in_reserve: bool) -> LlamaCppFit:
    """Return llama.cpp's answers for a planner fit (engine llama.cpp / llama-server).

    compute_in_reserve: the planner's reserve holds the compute buffer's context-free part
    (no --reserve given): the room is the KV budget with it added back, and each candidate
    needs its whole compute buffer. With --reserve, that figure covers all non-KV memory.
    """
    plan = fit.plan
    workload = plan.workload
    add_back = 0
    if compute_in_reserve:
        add_back = sum(b for _, b in compute_reserve_terms(plan.model, workload.llamacpp))
    rooms = tuple(b + add_back for b in fit.budget.stage_kv_budget_bytes)

    def fits(w: Workload) -> bool:
        needed, _ = _needed(fit, w, compute_in_reserve)
        return all(n <= r for n, r in zip(needed, rooms, strict=True))

    needed, compute = _needed(fit, workload, compute_in_reserve)
    headroom = min(r - n for r, n in zip(rooms, needed, strict=True))
    kv = kv_cache(plan.model, workload, plan.engine)
    options = workload.llamacpp or LlamaCppOptions()
    slots = workload.batch

    def with_ctx(c: int) -> Workload:
        seq = c if options.kv_unified else max(1, c // slots)
        return replace(workload, seq_len=seq, llamacpp=replace(options, ctx_size=c))

    limit = (plan.model.max_position_embeddings or 2**24) * (1 if options.kv_unified else slots)
    max_ctx = _largest(lambda c: fits(with_ctx(c)), limit)

    def with_slots(n: int) -> Workload:
        per_slot = _context(workload).n_ctx_seq if options.ctx_size is not None else None
        seq = per_slot or workload.seq_len
        ctx_size = None if options.ctx_size is None else seq * n
        return replace(workload, seq_len=seq, batch=n, llamacpp=replace(options, ctx_size=ctx_size))

    max_slots = _largest(lambda n: fits(with_slots(n)), MAX_SLOTS)
    return LlamaCppFit(
        ctx=_context(workload),
        kv_bytes=kv.per_gpu_bytes + kv.state_per_gpu_bytes,
        compute_bytes=compute,
        room_bytes=min(rooms),
        fits=headroom >= 0,
        headroom_bytes=headroom,
        max_ctx_size=max_ctx,
        max_slots=max_slots,
    )


def _largest(ok: Callable[[int], bool], limit: int) -> int:
    """Return the largest n in [1, limit] with ok(n) (ok is monotone), 0 when ok(1) fails."""
    if not ok(1):
        return 0
    if ok(limit):
        return limit
    low, high = 1, limit
    while high - low > 1:
        mid = (low + high) // 2
        if ok(mid):
            low = mid
        else:
            high = mid
    return low
