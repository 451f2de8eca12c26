"""The compiled kernels equal formula.kv_cache, planner.fit and planner.min_gpus exactly.

These are the guard rails of kvcalc/kernel.py: any change to the formula or the planner
that the kernel does not follow makes one of these fail (the kernel never silently
diverges: a kernel that cannot reproduce kv_cache at its probes falls back to it, and
test_every_preset_compiles_to_the_fast_form fails).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvcalc.dtypes import KV_DTYPES, kv_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.kernel import FitKernel, KvKernel, MinGpus, fit_fast, min_gpus_fast
from kvcalc.planner import Plan, fit, min_gpus, min_gpus_lower_bound
from kvcalc.presets import load_all_gpus, load_all_models, load_gpu, load_model

MODELS = load_all_models()
GPUS = load_all_gpus()
DTYPES = [None, "fp8", "fp16", "q4_0", "int8_per_token_head", "nvfp4", "fp8_ds_mla"]


def _workload(tp: int, pp: int, dtype: str | None, **kw: object) -> Workload:
    d = None if dtype is None else kv_dtype(dtype)
    return Workload(seq_len=1, tp=tp, pp=pp, k_dtype=d, v_dtype=d, **kw)  # type: ignore[arg-type]


# engines whose cache is not linear in the batch (llama.cpp's unified streams, cells per
# slot) answer through kv_cache by design; every other engine must compile
COMPILED_ENGINES = sorted(e for e, p in ENGINES.items() if p.sliding != "llama_cpp")


@pytest.mark.parametrize("engine", COMPILED_ENGINES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_preset_compiles_to_the_fast_form(name: str, engine: str) -> None:
    """Every bundled preset under every batch-linear engine compiles (no kv_cache fallback)."""
    try:
        kernel = KvKernel(MODELS[name], ENGINES[engine], _workload(1, 1, None))
    except KvcalcError:
        pytest.skip("the formula refuses this model under this engine")
    assert kernel.exact_fast, kernel.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(MODELS)),
    engine=st.sampled_from(sorted(ENGINES)),
    seq=st.one_of(st.integers(1, 4096), st.integers(1, 2_000_000)),
    batch=st.integers(1, 4096),
    tp=st.sampled_from([1, 2, 4, 8, 16]),
    pp=st.sampled_from([1, 2, 3, 5]),
    dtype=st.sampled_from(DTYPES),
    batched=st.sampled_from([None, 512, 2048]),
)
def test_kv_kernel_equals_kv_cache(
    name: str,
    engine: str,
    seq: int,
    batch: int,
    tp: int,
    pp: int,
    dtype: str | None,
    batched: int | None,
) -> None:
    """KvKernel gives kv_cache's KV and state bytes (total, per GPU, per sequence) at any point."""
    model, profile = MODELS[name], ENGINES[engine]
    workload = _workload(tp, pp, dtype, max_num_batched_tokens=batched)
    try:
        expected = kv_cache(model, replace(workload, seq_len=seq, batch=batch), profile)
    except KvcalcError:
        with pytest.raises(KvcalcError):
            KvKernel(model, profile, workload).at(seq, batch)
        return
    kernel = KvKernel(model, profile, workload)
    got = kernel.at(seq, batch)
    assert got.total_bytes == expected.total_bytes
    assert got.per_gpu_bytes == expected.per_gpu_bytes
    assert got.per_sequence_bytes == expected.per_sequence_bytes
    assert got.per_gpu_bytes_per_token == expected.per_gpu_bytes_per_token
    assert got.busiest_stage == expected.busiest_stage
    assert got.state_total_bytes == expected.state_total_bytes
    assert got.state_per_gpu_bytes == expected.state_per_gpu_bytes
    assert got.state_bytes_per_sequence == expected.state_bytes_per_sequence
    assert kernel.bytes_per_token == expected.bytes_per_token
    assert kernel.block_size == expected.block_size
    assert kernel.kv_heads_per_gpu == expected.kv_heads_per_gpu


def test_kernel_with_given_attention_windows_follows_kv_cache() -> None:
    """TRT-LLM's max_attention_window makes windows depend on seq: the kernel uses kv_cache."""
    model, engine = MODELS["gemma-2-9b"], ENGINES["trtllm"]
    workload = Workload(seq_len=1, attention_windows=(4096, 8192))
    kernel = KvKernel(model, engine, workload)
    assert not kernel.exact_fast
    for seq in (100, 4096, 5000, 9000):
        assert kernel.at(seq, 3).total_bytes == (
            kv_cache(model, replace(workload, seq_len=seq, batch=3), engine).total_bytes
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    engine=st.sampled_from(["hf", "formula", "sglang", "vllm"]),
    seq=st.integers(1, 2_000_000),
    batch=st.integers(1, 4096),
    tp=st.sampled_from([1, 2, 4]),
    pp=st.sampled_from([1, 2, 3]),
    dtype=st.sampled_from([None, "fp8", "fp16"]),
)
def test_kv_kernel_follows_gqa_indexer_keys(
    engine: str, seq: int, batch: int, tp: int, pp: int, dtype: str | None
) -> None:
    """MiniMax-M3's sparse layers (GQA K/V + an indexer key): the kernel compiles and equals
    kv_cache, where the engine models them (hf: no tp; formula, sglang, vllm: tp too; vllm's
    sparse backend takes no fp16 KV)."""
    model, profile = MODELS["minimax-m3"], ENGINES[engine]
    if engine == "vllm" and dtype == "fp16":
        dtype = None
    workload = _workload(1 if profile.head_rule == "none" else tp, pp, dtype)
    kernel = KvKernel(model, profile, workload)
    assert kernel.exact_fast, kernel.reason
    expected = kv_cache(model, replace(workload, seq_len=seq, batch=batch), profile)
    got = kernel.at(seq, batch)
    assert (got.total_bytes, got.per_gpu_bytes, got.per_sequence_bytes) == (
        expected.total_bytes,
        expected.per_gpu_bytes,
        expected.per_sequence_bytes,
    )
    assert got.per_gpu_bytes_per_token == expected.per_gpu_bytes_per_token


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(MODELS)),
    gpu=st.sampled_from(sorted(GPUS)),
    engine=st.sampled_from(sorted(ENGINES)),
    seq=st.one_of(st.integers(1, 9000), st.integers(1, 300_000)),
    batch=st.one_of(st.just(1), st.integers(1, 512)),
    tp=st.sampled_from([1, 2, 4, 8]),
    pp=st.sampled_from([1, 2, 3]),
    dtype=st.sampled_from([None, "fp8", "q8_0"]),
    util=st.sampled_from([None, 0.8]),
    reserve=st.sampled_from([None, 2**30]),
)
def test_fit_kernel_equals_planner_fit(
    name: str,
    gpu: str,
    engine: str,
    seq: int,
    batch: int,
    tp: int,
    pp: int,
    dtype: str | None,
    util: float | None,
    reserve: int | None,
) -> None:
    """FitKernel gives planner.fit's verdict, headroom, KV bytes, max batch/context/tokens."""
    model, profile = MODELS[name], ENGINES[engine]
    if profile.budget_rule == "whole":
        util = None
    workload = _workload(tp, pp, dtype)
    plan = Plan(
        model,
        GPUS[gpu],
        profile,
        replace(workload, seq_len=seq, batch=batch),
        util=util,
        reserve_bytes=reserve,
    )
    try:
        expected = fit(plan)
    except KvcalcError:
        return
    kernel = FitKernel(model, GPUS[gpu], profile, workload, util=util, reserve_bytes=reserve)
    answer = kernel.answer(seq, batch)
    got = answer.at
    assert got == kernel.at(seq, batch)
    assert got.fits == expected.fits
    assert got.headroom_bytes == expected.headroom_bytes
    assert got.kv_bytes == expected.kv_bytes
    assert got.max_batch == expected.max_batch
    assert got.max_concurrency == pytest.approx(expected.max_concurrency, rel=1e-12)
    assert (answer.max_seq_len, answer.max_seq_len_clamped) == (
        expected.max_seq_len,
        expected.max_seq_len_clamped,
    )
    assert answer.max_tokens == expected.max_tokens
    assert answer.budget == expected.budget
    budget_follows_seq = profile.budget_rule == "vllm" and profile.max_num_batched_tokens is None
    if profile.sliding != "llama_cpp" and kernel.kv.exact_fast and not budget_follows_seq:
        assert kernel.exact_fast  # per-request units compiled wherever the KV is


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(MODELS)),
    gpu=st.sampled_from(sorted(GPUS)),
    engine=st.sampled_from(["vllm", "sglang", "llama.cpp", "trtllm", "hf"]),
    seq=st.sampled_from([1024, 8192, 32768, 131072]),
    batch=st.sampled_from([1, 16, 256, 4096]),
    max_pp=st.sampled_from([1, 64]),
)
def test_min_gpus_kernel_equals_planner(
    name: str, gpu: str, engine: str, seq: int, batch: int, max_pp: int
) -> None:
    """MinGpus answers planner.min_gpus, and no smaller candidate than the bound fits."""
    model, profile = MODELS[name], ENGINES[engine]
    plan = Plan(model, GPUS[gpu], profile, Workload(seq_len=seq, batch=batch))
    expected = min_gpus(plan, max_pp=max_pp)
    solver = MinGpus(model, GPUS[gpu], profile, Workload(seq_len=1), max_pp=max_pp)
    assert solver(seq, batch) == expected
    if expected is not None:
        assert expected[0] * expected[1] >= min_gpus_lower_bound(plan)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(MODELS)),
    gpus=st.lists(st.sampled_from(sorted(GPUS)), min_size=1, max_size=3),
    engine=st.sampled_from(sorted(ENGINES)),
    points=st.lists(
        st.tuples(st.integers(1, 300_000), st.integers(1, 512)), min_size=1, max_size=3
    ),
    tp=st.sampled_from([1, 2, 4]),
    dtype=st.sampled_from([None, "fp8"]),
)
def test_fit_fast_equals_planner_fit(
    name: str,
    gpus: list[str],
    engine: str,
    points: list[tuple[int, int]],
    tp: int,
    dtype: str | None,
) -> None:
    """fit_fast and min_gpus_fast (what `kvcalc fit` runs, kernels shared between GPUs and
    points) return planner.fit's whole answer and planner.min_gpus's, point after point."""
    model, profile = MODELS[name], ENGINES[engine]
    for gpu in gpus:
        for seq, batch in points:
            plan = Plan(
                model,
                GPUS[gpu],
                profile,
                replace(_workload(tp, 1, dtype), seq_len=seq, batch=batch),
            )
            try:
                expected = fit(plan)
            except KvcalcError:
                return
            assert fit_fast(plan) == expected
            for max_pp in (1, 64):
                assert min_gpus_fast(plan, max_pp) == min_gpus(plan, max_pp=max_pp)


def test_min_gpus_bound_rules_out_a_million_sequences() -> None:
    """Llama-3.1-70B, 8,192 tokens × 1,000,000 sequences cannot fit on 64 × 64 H100s.

    meta-llama/Llama-3.1-70B config.json: 80 layers × 8 KV heads × 128 dims × 2 (K, V) ×
    2 B = 327,680 B per token; × 8,192 × 10^6 = 2,684,354,560,000,000 B of KV. An H100
    reports 85,017,493,504 B, so at least 2.68e15 / 8.5e10 > 31,574 GPUs are needed,
    beyond the 4,096 the search allows: min_gpus answers None without searching.
    """
    plan = Plan(
        load_model("llama-3.1-70b"),
        load_gpu("h100-80gb"),
        ENGINES["vllm"],
        Workload(seq_len=8192, batch=1_000_000),
    )
    kv = 327_680 * 8192 * 1_000_000
    assert min_gpus_lower_bound(plan) > kv // 85_017_493_504 > 4096
    assert min_gpus(plan) is None


def test_every_dtype_in_the_property_strategy_exists() -> None:
    """The dtypes the property tests draw are real KV dtypes (the strategy is not vacuous)."""
    assert all(d is None or kv_dtype(d).name in KV_DTYPES for d in DTYPES)
