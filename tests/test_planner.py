"""The planner against hand-derived budgets and weights, and its solvers' invariants.

Model numbers come from the published config.json files in tests/data/hf_configs;
GPU capacities from presets/gpus (H100 SXM: 85,017,493,504 B CUDA-reported).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.dtypes import kv_dtype, weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.kernel import fit_fast
from kvcalc.planner import (
    Plan,
    budget,
    fit,
    fits_at,
    hf_sliding_storage_tail,
    max_batch,
    max_seq_len,
    max_tokens,
    min_gpus,
    sglang_mem_fraction_static,
    weights_per_stage,
)
from kvcalc.presets import load_gpu, load_model
from kvcalc.specs import ModelSpec

H100 = 85_017_493_504
# Llama-3.1-8B (meta-llama/Llama-3.1-8B config.json): hidden 4096, 32 layers, 32 heads,
# 8 KV heads, head_dim 128, intermediate 14336, vocab 128256, untied embeddings.
#   per layer: q 4096² + k,v 2·4096·1024 + o 4096² = 41,943,040; MLP 3·4096·14336 =
#   176,160,768; norms 2·4096. Embedding = LM head = 128256·4096 = 525,336,576.
#   total = 32·(41,943,040 + 176,160,768 + 8,192) + 4,096 + 2·525,336,576 = 8,030,261,248
LLAMA_8B_PARAMS = 8_030_261_248


def plan(
    model: str = "llama-3.1-8b", gpu: str = "h100-80gb", engine: str = "vllm", **kw: object
) -> Plan:
    workload_keys = {"seq_len", "batch", "tp", "pp", "k_dtype", "v_dtype", "max_num_batched_tokens"}
    workload = Workload(**{"seq_len": 8192, **{k: v for k, v in kw.items() if k in workload_keys}})  # type: ignore[arg-type]
    rest = {k: v for k, v in kw.items() if k not in workload_keys}
    return Plan(load_model(model), load_gpu(gpu), ENGINES[engine], workload, **rest)  # type: ignore[arg-type]


def test_llama_8b_parameter_count() -> None:
    """The preset's exact count is the hand sum above; bf16 weights are twice that."""
    assert load_model("llama-3.1-8b").n_params == LLAMA_8B_PARAMS
    assert weights_per_stage(load_model("llama-3.1-8b"), ENGINES["vllm"], 1, 1, None) == (
        2 * LLAMA_8B_PARAMS,
    )


def test_qwen3_vl_vision_tower_is_counted_in_the_weights() -> None:
    """Qwen3-VL-8B's tower (576,388,336 params, 4,657,792 of them whole on every tp rank;
    tests/test_hf.py derives both) adds 2 B per param in bf16 at tp 1, and at tp 2
    2·(4,657,792 + (576,388,336 − 4,657,792)/2) = 2·290,523,064 = 581,046,128 B per GPU, on
    every pipeline stage; fit says it is counted. Without the tower the note says it is not."""
    model = load_model("qwen3-vl-8b")
    assert model.tower is not None and model.tower.params == 576_388_336
    bare = model.model_copy(update={"tower": None})
    vllm = ENGINES["vllm"]
    with_tower = weights_per_stage(model, vllm, 1, 1, None)[0]
    assert with_tower - weights_per_stage(bare, vllm, 1, 1, None)[0] == 576_388_336 * 2
    for pp in (1, 2):
        grown = [
            a - b
            for a, b in zip(
                weights_per_stage(model, vllm, 2, pp, None),
                weights_per_stage(bare, vllm, 2, pp, None),
                strict=True,
            )
        ]
        assert grown == [581_046_128] * pp
    counted = fit(plan("qwen3-vl-8b"))
    assert counted.budget.weights_bytes == with_tower
    assert any(
        "vision tower (576,388,336 params) is counted in the weights, 1,152,776,672 B per GPU"
        in note
        for note in counted.notes
    )
    uncounted = fit(replace(plan("qwen3-vl-8b"), model=bare))
    assert any("tower is not counted" in note for note in uncounted.notes)


def test_gemma_3_vision_tower_is_counted_in_the_weights() -> None:
    """Gemma-3-4B's tower (419,816,304 params, 3,817,728 whole on every rank; tests/test_hf.py)
    at tp 2 in bf16: 2·(3,817,728 + (419,816,304 − 3,817,728)/2) = 2·211,817,016 =
    423,634,032 B per GPU."""
    model = load_model("gemma-3-4b")
    bare = model.model_copy(update={"tower": None})
    vllm = ENGINES["vllm"]
    grown = (
        weights_per_stage(model, vllm, 2, 1, None)[0] - weights_per_stage(bare, vllm, 2, 1, None)[0]
    )
    assert grown == 2 * (3_817_728 + 207_999_288) == 423_634_032


def test_gemma_4_vision_tower_is_counted_whole_on_every_rank() -> None:
    """Gemma-4-26B-A4B's tower (572,792,112 params, all whole on every rank; tests/test_hf.py)
    adds 572,792,112 · 2 = 1,145,584,224 B per GPU in bf16 at tp 1 and tp 2 alike, and stays
    bf16 under --weights-dtype fp8 (vLLM leaves it unquantised: intermediate 4,304 is not a
    multiple of 64, gemma4_mm.py); fit says it is counted."""
    model = load_model("gemma-4-26b-a4b")
    bare = model.model_copy(update={"tower": None})
    vllm = ENGINES["vllm"]
    for tp, dtype in ((1, None), (2, None), (2, weight_dtype("fp8"))):
        grown = (
            weights_per_stage(model, vllm, tp, 1, dtype)[0]
            - weights_per_stage(bare, vllm, tp, 1, dtype)[0]
        )
        assert grown == 572_792_112 * 2 == 1_145_584_224
    notes = fit(plan("gemma-4-26b-a4b")).notes
    assert any("vision tower (572,792,112 params) is counted" in note for note in notes)


def test_llama_4_vision_tower_is_split_by_tp() -> None:
    """Llama-4-Scout's tower (871,932,416 params, 1,106,688 whole on every rank;
    tests/test_hf.py) at tp 8 in bf16: 2·(1,106,688 + (871,932,416 − 1,106,688)/8) =
    2·(1,106,688 + 108,853,216) = 219,919,808 B per GPU; fit says it is counted."""
    model = load_model("llama-4-scout")
    bare = model.model_copy(update={"tower": None})
    vllm = ENGINES["vllm"]
    grown = (
        weights_per_stage(model, vllm, 8, 1, None)[0] - weights_per_stage(bare, vllm, 8, 1, None)[0]
    )
    assert grown == 2 * (1_106_688 + 108_853_216) == 219_919_808
    notes = fit(plan("llama-4-scout")).notes
    assert any("vision tower (871,932,416 params) is counted" in note for note in notes)


def test_qwen3_vl_vision_tower_under_a_weights_dtype() -> None:
    """With --weights-dtype fp8 the tower's split linears take 1 B per param and what every
    rank holds whole stays bf16: at tp 2, (576,388,336 − 4,657,792)/2 · 1 + 4,657,792 · 2 =
    285,865,272 + 9,315,584 = 295,180,856 B. A GGUF dtype counts none (llama.cpp reads a
    tower only from its --mmproj file), and fit says so."""
    model = load_model("qwen3-vl-8b")
    bare = model.model_copy(update={"tower": None})
    vllm = ENGINES["vllm"]
    fp8, q4_0 = weight_dtype("fp8"), weight_dtype("q4_0")
    grown = (
        weights_per_stage(model, vllm, 2, 1, fp8)[0] - weights_per_stage(bare, vllm, 2, 1, fp8)[0]
    )
    assert grown == 285_865_272 + 2 * 4_657_792 == 295_180_856
    assert weights_per_stage(model, vllm, 1, 1, q4_0) == weights_per_stage(bare, vllm, 1, 1, q4_0)
    notes = fit(plan("qwen3-vl-8b", weights_dtype=q4_0)).notes
    assert any("not counted in q4_0 weights" in note for note in notes)


@pytest.mark.parametrize("reserve", [0, 2 * 2**30, 4_000_000_000])
def test_vllm_kv_token_capacity_acceptance(reserve: int) -> None:
    """KV capacity = floor((ceil(H100 · 0.9) − weights − reserve) / 65,536 / 32) · 16 tokens.

    ceil(85,017,493,504 · 0.9) = 76,515,744,154 (ENGINES.md §6); page = 16 tokens · 4,096 B.
    """
    expected = (76_515_744_154 - 2 * LLAMA_8B_PARAMS - reserve) // 65_536 // 32 * 16
    p = plan(reserve_bytes=reserve)
    assert budget(p).usable_bytes == 76_515_744_154
    assert max_tokens(p) == expected
    # max concurrency at 8192 tokens = num_blocks / 512 blocks per request
    num_blocks = (76_515_744_154 - 2 * LLAMA_8B_PARAMS - reserve) // 65_536 // 32
    assert fit(p).max_batch == num_blocks // 512
    assert fit(p).max_concurrency == pytest.approx(num_blocks / 512)


def test_llama_70b_h100_tp4_and_tp16() -> None:
    """Llama-3.1-70B (hidden 8192, 80 layers, 64 heads, 8 KV heads, d_ff 28672, vocab 128256).

    Per layer: q = o = 8192² = 67,108,864; k+v = 2·8192·1024 = 16,777,216;
    MLP 3·8192·28672 = 704,643,072; norms 16,384. Embedding = LM head = 1,050,673,152.
    tp 4: per layer per GPU (2·67,108,864 + 16,777,216 + 704,643,072)/4 = 213,909,504, ×80,
      + norms 1,318,912 (replicated) + 2·1,050,673,152/4 → 17,639,415,808 params = 35,278,831,616 B.
    tp 16: q, o, MLP /16 = 52,428,800 per layer + k,v replicated 1 head: 2·128·8192 = 2,097,152,
      ×80 + 1,318,912 + 2·65,667,072 → 4,494,729,216 params = 8,989,458,432 B.
    KV at 8192 tokens: 671,088,640 (tp 4) and 335,544,320 (tp 16, replicated heads).
    """
    tp4 = fit(plan("llama-3.1-70b", tp=4, reserve_bytes=0))
    assert tp4.budget.weights_bytes == 35_278_831_616
    assert tp4.kv.per_gpu_bytes == 671_088_640
    assert tp4.kv_bytes == 671_088_640
    assert tp4.budget.kv_budget_bytes == 76_515_744_154 - 35_278_831_616
    tp16 = fit(plan("llama-3.1-70b", tp=16, reserve_bytes=0))
    assert tp16.budget.weights_bytes == 8_989_458_432
    assert tp16.kv.per_gpu_bytes == 335_544_320


def test_deepseek_v3_tp8_latent_on_every_rank() -> None:
    """DeepSeek-V3 at tp 8 on H200: each rank holds the full MLA latent, 576·2·61·8192 bytes."""
    result = fit(
        plan("deepseek-v3", gpu="h200", tp=8, reserve_bytes=0, weights_dtype=weight_dtype("fp8"))
    )
    assert result.kv.per_gpu_bytes == 575_668_224
    assert result.kv_bytes == 575_668_224  # 128 blocks of 64 tokens × 61 layers × 73,728 B


def test_int4_weights_keep_embeddings_in_16_bit() -> None:
    """Llama-3.1-8B int4-awq: 32·(41,943,040 + 176,160,768) = 6,979,321,856 weights at 133/256 B
    (= 3,625,975,808 B exactly) + embeddings, LM head and norms (1,050,939,392) at 2 B."""
    weights = weights_per_stage(
        load_model("llama-3.1-8b"), ENGINES["vllm"], 1, 1, weight_dtype("int4-awq")
    )
    assert weights == (3_625_975_808 + 2 * 1_050_939_392,)


def test_pipeline_stages_split_weights_and_take_the_minimum() -> None:
    """pp 2 splits Llama-3.1-8B's 32 layers 16/16: embedding on stage 0, LM head on stage 1."""
    per_layer = 41_943_040 + 176_160_768 + 8_192
    stages = weights_per_stage(load_model("llama-3.1-8b"), ENGINES["vllm"], 1, 2, None)
    # final norm (4,096) counts with the layers' norms, split by layer share: ceil(4,096·16/32)
    assert stages == (
        2 * (16 * per_layer + 2_048 + 525_336_576),
        2 * (16 * per_layer + 2_048 + 525_336_576),
    )


def test_sglang_default_fraction_matches_engines_md() -> None:
    """SGLang on H100 (nvidia-smi 81,559 MiB) at tp 1: reserved 13,440 MiB → 0.835 (ENGINES.md §2.3)."""
    assert sglang_mem_fraction_static(81_559 * 2**20, 1, 1) == 0.835


def test_sglang_budget() -> None:
    """SGLang: (capacity − CUDA context) · mem_fraction_static − weights."""
    p = plan(engine="sglang", util=0.8)
    free_before = H100 - 552_402_944
    assert budget(p).kv_budget_bytes == free_before * 4 // 5 - 2 * LLAMA_8B_PARAMS


@pytest.mark.parametrize("model", ["qwen3.5-27b", "qwen3-next-80b-a3b", "nemotron-h-56b"])
def test_sglang_state_pool_and_kv_pool_add_up_to_the_budget(model: str) -> None:
    """Gated DeltaNet (Qwen3.5, Qwen3-Next) and Mamba2 (NemotronH) models get SGLang's state
    pool beside its KV pool (handle_max_mamba_cache): the pools' terms add up to the budget,
    the state pool holds whole mamba_cache_per_req slots, and the batch is capped by them."""
    b = budget(plan(model, "h200", engine="sglang", tp=4))
    assert b.pools is not None and b.pools.state_slots > 0
    assert sum(t for _, t in b.pool_terms) == b.kv_budget_bytes
    assert b.pool_terms[0][1] == b.pools.state_slots * b.pools.state_bytes_per_slot


def test_sglang_budget_still_given_for_attention_only_models() -> None:
    """The refusal is for state layers only: Llama-3.1-8B (no state) keeps its SGLang budget."""
    assert budget(plan(engine="sglang", util=0.8)).kv_budget_bytes > 0


def test_util_refused_where_it_does_not_apply() -> None:
    """llama.cpp uses the whole device: --util there is a user error."""
    with pytest.raises(KvcalcError, match="does not apply"):
        budget(plan(engine="llama.cpp", util=0.9))


def test_max_context_clamped_to_model_limit() -> None:
    """Llama-3.1-8B at batch 1 fits its whole 131,072-token context on one H100: clamped, said so."""
    result = fit(plan(reserve_bytes=0))
    assert result.max_seq_len == 131_072
    assert result.max_seq_len_clamped
    assert any("max_position_embeddings" in n for n in result.notes)


def test_min_gpus_llama_70b() -> None:
    """Llama-3.1-70B bf16 (141 GB of weights) needs more than one 80 GB GPU; the answer fits."""
    p = plan("llama-3.1-70b", seq_len=8192, batch=1)
    tp, pp = min_gpus(p) or (0, 0)
    assert tp * pp >= 2
    assert fit(replace(p, workload=replace(p.workload, tp=tp, pp=pp))).fits


# ---- solver invariants ------------------------------------------------------------------

MODELS = ["llama-3.1-8b", "gemma-2-9b", "mistral-7b-v0.1", "qwen2.5-7b", "deepseek-v2-lite",
          "gpt-oss-20b", "phi-3-mini-4k"]  # fmt: skip
ENGINE_NAMES = ["vllm", "sglang", "trtllm", "llama.cpp", "hf", "formula"]


def _sglang_unmodelled(p: Plan, solve: object = None) -> bool:
    """True where SGLang's split pools are refused for this plan (pipeline parallelism, or a
    batch that hangs on the sliding pool's unread residency): the refusal is checked here."""
    if p.engine.name != "sglang" or not p.model.name.lower().startswith("gpt-oss"):
        return False
    try:
        b = budget(p)
        if callable(solve):
            solve(p, b)
    except KvcalcError as exc:
        assert str(exc).startswith("engine sglang: ")
        assert "pipeline parallelism" in str(exc) or "is not modelled" in str(exc)
        return True
    return False


@settings(max_examples=80, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    engine=st.sampled_from(ENGINE_NAMES),
    gpu=st.sampled_from(["h100-80gb", "a100-40gb", "l4", "h200"]),
    seq=st.integers(1, 200_000),
    reserve=st.integers(0, 8 * 2**30),
    kv=st.sampled_from(["bf16", "fp8", "q8_0"]),
)
def test_max_batch_fits_and_one_more_does_not(
    model: str, engine: str, gpu: str, seq: int, reserve: int, kv: str
) -> None:
    """At the reported max batch the workload fits; one more sequence does not."""
    p = plan(
        model,
        gpu,
        engine,
        seq_len=seq,
        reserve_bytes=reserve,
        k_dtype=kv_dtype(kv),
        v_dtype=kv_dtype(kv),
    )
    if _sglang_unmodelled(p, max_batch):
        return
    b = budget(p)
    best = max_batch(p, b)
    if best > 0:
        assert fits_at(p, seq, best, b)
    assert not fits_at(p, seq, best + 1, b)


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    engine=st.sampled_from(ENGINE_NAMES),
    gpu=st.sampled_from(["h100-80gb", "a100-40gb", "l4"]),
    batch=st.integers(1, 512),
    reserve=st.integers(0, 8 * 2**30),
)
def test_max_context_fits_and_one_more_does_not(
    model: str, engine: str, gpu: str, batch: int, reserve: int
) -> None:
    """At the reported max context the batch fits; one more token does not (unless clamped)."""
    p = plan(model, gpu, engine, batch=batch, reserve_bytes=reserve)
    if _sglang_unmodelled(p, max_seq_len):
        return
    b = budget(p)
    best, clamped = max_seq_len(p, b)
    if best > 0:
        assert fits_at(p, best, batch, b)
    if not clamped:
        assert not fits_at(p, best + 1, batch, b)


@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from(["llama-3.1-8b", "gemma-2-9b", "qwen2.5-7b"]),
    reserve=st.integers(0, 8 * 2**30),
)
def test_vllm_token_capacity_is_whole_blocks_within_budget(model: str, reserve: int) -> None:
    """vLLM's KV capacity is whole blocks whose pages fit the budget; one more block does not."""
    p = plan(model, reserve_bytes=reserve)
    tokens = max_tokens(p)
    per_token = fit(p).kv.per_gpu_bytes_per_token
    assert tokens % 16 == 0
    assert tokens * per_token <= budget(p).kv_budget_bytes
    assert (tokens + 16) * per_token > budget(p).kv_budget_bytes


@settings(max_examples=30, deadline=None)
@given(
    seq=st.sampled_from([2048, 8192, 32768, 131072]),
    batch=st.integers(1, 64),
    gpu=st.sampled_from(["h100-80gb", "a100-40gb", "l4"]),
)
def test_min_gpus_fits_and_fewer_do_not(seq: int, batch: int, gpu: str) -> None:
    """The minimum (tp, pp) fits; no smaller GPU count does, for any split the heads allow."""
    p = plan("llama-3.1-70b", gpu, seq_len=seq, batch=batch)
    answer = min_gpus(p)
    if answer is None:
        return
    tp, pp = answer
    assert fits_at(replace(p, workload=replace(p.workload, tp=tp, pp=pp)), seq, batch)
    for smaller_tp in (1, 2, 4, 8):
        for smaller_pp in range(1, 81):
            if smaller_tp * smaller_pp >= tp * pp:
                continue
            q = replace(p, workload=replace(p.workload, tp=smaller_tp, pp=smaller_pp))
            if budget(q).kv_budget_bytes > 0:
                assert not fits_at(q, seq, batch)


@settings(max_examples=20, deadline=None)
@given(
    seq=st.sampled_from([2048, 8192, 32768]),
    batch=st.integers(1, 64),
    gpu=st.sampled_from(["h100-80gb", "a100-40gb", "l4"]),
)
def test_min_tp_alone_fits_and_smaller_tp_does_not(seq: int, batch: int, gpu: str) -> None:
    """With pipeline parallelism off, the minimum tp fits and every smaller power of two does not."""
    p = plan("llama-3.1-70b", gpu, seq_len=seq, batch=batch)
    answer = min_gpus(p, max_pp=1)
    if answer is None:
        return
    tp, pp = answer
    assert pp == 1
    assert fits_at(replace(p, workload=replace(p.workload, tp=tp)), seq, batch)
    for smaller in (1, 2, 4, 8, 16, 32):
        if smaller < tp:
            q = replace(p, workload=replace(p.workload, tp=smaller))
            assert budget(q).kv_budget_bytes <= 0 or not fits_at(q, seq, batch)


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from([*MODELS, "llama-3.1-70b", "deepseek-v3"]),
    engine=st.sampled_from(ENGINE_NAMES),
    gpu=st.sampled_from(["h100-80gb", "a100-40gb", "l4", "h200", "mi300x"]),
    reserve=st.one_of(st.none(), st.integers(0, 16 * 2**30)),
    pp=st.integers(1, 4),
)
def test_budget_terms_add_up(
    model: str, engine: str, gpu: str, reserve: int | None, pp: int
) -> None:
    """Capacity plus the signed budget terms shown to the user equals the KV budget."""
    p = plan(model, gpu, engine, pp=pp, reserve_bytes=reserve)
    if _sglang_unmodelled(p):
        return
    b = budget(p)
    assert b.capacity_bytes + sum(t for _, t in b.terms) == b.kv_budget_bytes
    if b.pools is not None:  # SGLang's split pools: their bytes add up to the budget
        assert sum(t for _, t in b.pool_terms) == b.kv_budget_bytes
        assert b.kv_budget_bytes < 0 or all(t >= 0 for _, t in b.pool_terms)


def test_engines_md_vllm_capacity_illustration() -> None:
    """ENGINES.md §8: vLLM with 57,219,701,800 B of KV memory (Llama-3-8B on H100, PR #10511):
    57,219,701,800 // 65,536 // 32 = 27,284 blocks → "GPU KV cache size: 436,544 tokens",
    "Maximum concurrency for 8,192 tokens per request: 27,284 / 512 = 53.29x".
    The reserve that leaves exactly that: 76,515,744,154 − 16,060,522,496 − 57,219,701,800."""
    p = plan(reserve_bytes=76_515_744_154 - 16_060_522_496 - 57_219_701_800)
    result = fit(p)
    assert result.budget.kv_budget_bytes == 57_219_701_800
    assert result.max_tokens == 436_544
    assert round(result.max_concurrency, 2) == 53.29


def test_engines_md_sglang_capacity_illustration() -> None:
    """ENGINES.md §8: SGLang, mem_fraction_static 0.835, free before load 84,465,090,560 B
    (= H100 total − CUDA context), bf16 weights 16,060,522,496 B:
    84,465,090,560 · 0.835 − 16,060,522,496 = 54,467,828,121 B → // 131,072 = 415,556 tokens."""
    result = fit(plan(engine="sglang", util=0.835))
    assert result.budget.kv_budget_bytes == 84_465_090_560 * 167 // 200 - 16_060_522_496
    assert result.max_tokens == 415_556


def test_vllm_main_utilisation() -> None:
    """vLLM main defaults gpu_memory_utilization to 0.92: ceil(85,017,493,504 · 0.92) =
    78,216,094,024 on an H100; H200: ceil(150,109,880,320 · 0.92) = 138,101,089,895 (ENGINES.md §6)."""
    assert budget(plan(engine="vllm@main")).usable_bytes == 78_216_094_024
    assert budget(plan(engine="vllm@main", gpu="h200")).usable_bytes == 138_101_089_895
    assert budget(plan(gpu="h200")).usable_bytes == 135_098_892_288


def test_max_context_of_a_model_without_a_stated_limit() -> None:
    """A model with no max_position_embeddings (Falcon-7B's config states none) whose cache fits
    the search limit: max context is that limit, said so, not a crash.

    Falcon-7B (tiiuae/falcon-7b config.json): MQA, 32 layers, head_dim 4544 / 71 = 64, so
    2 · 1 · 64 · 2 B · 32 = 8,192 B per token; 2^24 tokens = 137,438,953,472 B fit an MI300X.
    """
    result = fit(plan("falcon-7b", "mi300x", "formula", seq_len=1))
    assert load_model("falcon-7b").max_position_embeddings is None
    assert (result.max_seq_len, result.max_seq_len_clamped) == (2**24, True)
    assert any("search limit" in note for note in result.notes)


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("llama-3.1-8b", None),
        ("gemma-3-27b", None),
        ("qwen3.5-27b", "recurrent-state"),
        ("deepseek-v4-flash", "compressed-attention"),
    ],
)
def test_decode_working_set_note_says_where_it_was_not_measured(
    name: str, kinds: str | None
) -> None:
    """The transformers working set was measured on dense, sliding and MLA models only
    (tests/data/hf_peak): for layers it was not measured with, fit's note says it is an
    estimate and names them."""
    plan = Plan(load_model(name), load_gpu("h200"), ENGINES["hf"], Workload(8192, 2))
    (note,) = [n for n in fit(plan).notes if n.startswith("decode step's working set")]
    if kinds is None:
        assert "(transformers, measured;" in note
    else:
        assert f"not measured with this model's {kinds} layers: an estimate" in note


def test_vllm_refuses_a_pipeline_stage_without_cache_layers() -> None:
    """Llama-3.3-Nemotron-Super-49B (published config.json block_configs): attention is no_op
    in layers 6, 7, 11, 42-51 and 53-70. Under pp 8, vLLM's get_pp_indices gives 80 // 8 =
    10 layers a stage, so stage 6 holds layers 60-69: no cache layer at all. kvcalc has not
    read what vLLM sizes for such a worker, so it refuses that pp, and the minimum-GPU search
    passes over it instead of crashing (hypothesis found the crash: a10, batch 239)."""
    model = load_model("llama-3.3-nemotron-super-49b")
    gpu = load_gpu("a10")
    workload = Workload(seq_len=161, batch=239, pp=8)
    plan = Plan(model, gpu, ENGINES["vllm"], workload)
    with pytest.raises(KvcalcError, match=r"stage 6 holds no cache layer \(layers 60-69\)"):
        fit(plan)
    # pp 4 (20 layers a stage: 0-19, 20-39, 40-59, 60-79) keeps a cache layer on every stage
    fit(replace(plan, workload=replace(workload, pp=4)))
    assert min_gpus(replace(plan, workload=replace(workload, pp=1)), max_pp=64) is not None


# gpt-oss-120b and Nemotron-3-Nano under SGLang on one H100, default mem_fraction_static
# 0.834 (sglang_mem_fraction_static): rest = (85,017,493,504 − 552,402,944) · 0.834 −
# weights = 70,443,885,527 − weights (the published checkpoints' bytes, presets/models).
SGLANG_H100_STATIC = (H100 - 552_402_944) * 834 // 1000  # 70,443,885,527


def test_sglang_gpt_oss_120b_full_and_sliding_window_pools() -> None:
    """gpt-oss-120b (openai/gpt-oss-120b config.json: 36 layers alternating sliding (window
    128) and full attention, 8 KV heads, head_dim 64, bf16 KV): one layer holds
    8 · (64 + 64) · 2 = 2,048 B per token, so F·n_full = S·n_swa = 18 · 2,048 = 36,864 B and
    a token in every layer is 73,728 B. Weights 65,248,815,744 B (mxfp4 checkpoint):
    rest = 70,443,885,527 − 65,248,815,744 = 5,195,069,783 B.
    SGLang (sgl-project/sglang@001ccef0072a4537d4ec6bdd50a73e6feb2c907d,
    python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py): profile_max_num_token
    M = 5,195,069,783 // 73,728 = 70,462; set_num_tokens_hybrid_swa full = int(M · 73,728 /
    (36,864 + 0.8 · 36,864)) = int(70,462 · 10 / 9) = 78,291, swa = int(78,291 · 0.8) = 62,632.
    At 8,192 tokens a request needs 8,192 full-pool tokens: 78,291 // 8,192 = 9 requests
    (the sliding pool holds their windows, at most 9 · (2 · 128 + 2) = 2,322 tokens, easily);
    one pool would have said 5,195,069,783 // (18 · 2,048 · (8,192 + 128)) = 16.
    At batch 1 the full pool bounds the context: 78,291 tokens."""
    p = plan("gpt-oss-120b", engine="sglang")
    rest = SGLANG_H100_STATIC - 65_248_815_744
    assert rest == 5_195_069_783
    profiled = rest // 73_728
    assert profiled == 70_462
    full = profiled * 10 // 9
    swa = full * 4 // 5
    assert (full, swa) == (78_291, 62_632)
    b = budget(p)
    assert b.kv_budget_bytes == rest
    assert b.pools is not None
    assert (b.pools.kv_tokens, b.pools.swa_tokens, b.pools.window) == (full, swa, 128)
    assert [t for _, t in b.pool_terms] == [
        full * 36_864,
        swa * 36_864,
        rest - full * 36_864 - swa * 36_864,
    ]
    result = fit(p)
    assert result.max_batch == 9 == full // 8192
    assert result.max_tokens == full
    assert result.max_seq_len == full
    assert result.fits
    assert not fits_at(p, 8192, 10)
    # fit's kernel falls back to the planner for split pools: the same answer
    assert fit_fast(p).max_batch == 9


def test_sglang_short_sequences_on_split_pools() -> None:
    """Up to the window a request holds every token in both pools, so the sliding pool
    (62,632 tokens, gpt-oss-120b above) bounds the batch: at 100 tokens 62,632 // 100 = 626
    (the full pool would allow 782). Between the window and the eviction slack it depends on
    what a request keeps in the sliding pool (its window up to 2·W + 2·page tokens), which is
    not modelled: refused in one line rather than guessed."""
    p = plan("gpt-oss-120b", engine="sglang", seq_len=100)
    assert max_batch(p) == 626
    with pytest.raises(KvcalcError, match=r"^engine sglang: at 200 tokens .* is not modelled"):
        max_batch(plan("gpt-oss-120b", engine="sglang", seq_len=200))


def test_sglang_nemotron_3_nano_state_pool_bounds_the_batch() -> None:
    """NVIDIA-Nemotron-3-Nano-30B-A3B (config.json: hybrid_override_pattern with 23 Mamba2
    layers "M" and 6 attention layers "*", 2 KV heads, head_dim 128, bf16; mamba_num_heads 64,
    mamba_head_dim 64, n_groups 8, ssm_state_size 128, conv_kernel 4, mamba_ssm_cache_dtype
    float32). KV per token: 6 · 2 · (128 + 128) · 2 = 6,144 B. One Mamba2 layer's slot: conv
    (64 · 64 + 2 · 8 · 128) · (4 − 1) = 18,432 bf16 values = 36,864 B plus the SSM state
    64 · 64 · 128 fp32 = 2,097,152 B, so mamba_cache_per_req = 23 · 2,134,016 = 49,082,368 B.
    Weights 63,155,874,688 B: rest = 70,443,885,527 − 63,155,874,688 = 7,288,010,839 B.
    SGLang (sgl-project/sglang@001ccef0072a4537d4ec6bdd50a73e6feb2c907d,
    model_runner_kv_cache_mixin.py handle_max_mamba_cache): max_mamba_cache_size =
    int(rest · 0.9 / 1.9 // 49,082,368) = 70 slots (3,435,765,760 B); profile_max_num_token
    then (7,288,010,839 − 3,435,765,760) // 6,144 = 626,993 tokens; init_memory caps running
    requests at 70 // 3 = 23 (calculate_mamba_ratio). At 8,192 tokens the KV pool holds
    626,993 // 8,192 = 76 requests, so the state pool's 23 is the answer."""
    p = plan("nemotron-3-nano-30b-a3b", engine="sglang")
    rest = SGLANG_H100_STATIC - 63_155_874_688
    assert rest == 7_288_010_839
    per_slot = 23 * ((64 * 64 + 2 * 8 * 128) * 3 * 2 + 64 * 64 * 128 * 4)
    assert per_slot == 49_082_368
    slots = rest * 9 // (19 * per_slot)
    tokens = (rest - slots * per_slot) // 6_144
    assert (slots, tokens) == (70, 626_993)
    b = budget(p)
    assert b.kv_budget_bytes == rest
    assert b.pools is not None
    assert (b.pools.state_slots, b.pools.state_bytes_per_slot) == (slots, per_slot)
    assert (b.pools.kv_tokens, b.pools.kv_bytes_per_token) == (tokens, 6_144)
    result = fit(p)
    assert result.max_batch == 23
    assert result.max_tokens == tokens
    assert not fits_at(p, 8192, 24)
    assert not fits_at(p, 1, 24)  # the state pool caps running requests at any length
    # batch 1: the KV pool's 626,993 tokens exceed the model's 262,144: clamped
    assert (result.max_seq_len, result.max_seq_len_clamped) == (262_144, True)
    assert fit_fast(p).max_batch == 23


def test_trtllm_nemotron_3_nano_state_slots_come_out_of_the_kv_budget() -> None:
    """NVIDIA-Nemotron-3-Nano-30B-A3B under TensorRT-LLM (tests/data/hf_configs/
    nemotron-3-nano-30b-a3b.json: 23 Mamba2 layers "M", 6 attention layers "*", 2 KV heads,
    head_dim 128, bf16; mamba_num_heads 64, mamba_head_dim 64, n_groups 8, ssm_state_size
    128, conv_kernel 4, mamba_ssm_cache_dtype float32). NVIDIA/TensorRT-LLM@00679c66c3e3
    tensorrt_llm/_torch/pyexecutor/config_utils.py MambaKVCacheParams.get_states_bytes_per_layer
    (the shapes of @00bce92cbb90 mamba_cache_manager.py CppMambaHybridCacheManager.__init__):
    conv_dim = (64 · 64 + 2 · 8 · 128) // tp = 6,144, conv [6,144, 4 − 1] in the model dtype
    = 36,864 B; SSM [64, 64, 128] in float32 = 2,097,152 B; one slot of 23 layers =
    49,082,368 B. At tp 2: conv 3,072 · 3 · 2 = 18,432 B, SSM 32 · 64 · 128 · 4 =
    1,048,576 B, 23 · 1,067,008 = 24,541,184 B per GPU. KV per token 6 · 2 · 2 · 128 · 2 =
    6,144 B. get_cache_size_per_token (_estimate_mamba_hybrid_cache_cost,
    num_reserved_dummy_slots 1) gives slope 6,144 and intercept (max_batch_size + 1) ·
    49,082,368, and _util.py CacheCost.tokens_for_budget (@0004396720054f) takes
    (budget − intercept) // slope. H200 150,109,880,320 B − weights 63,155,874,688 B (as
    the SGLang test above) − reserve 1,000,000,000 B = 85,954,005,632 B; × 0.9 =
    77,358,605,068 B; less the padding slot 49,082,368 B = 77,309,522,700 B. At 8,192
    tokens a sequence needs 8,192 · 6,144 + 49,082,368 = 99,414,016 B: max batch
    77,309,522,700 // 99,414,016 = 777 (777 · 99,414,016 = 77,244,690,432 B). With
    max_batch_size 777 the pool holds (77,309,522,700 − 777 · 49,082,368) // 6,144 =
    6,375,736 tokens, 6,375,712 in whole 32-token blocks."""
    p = plan("nemotron-3-nano-30b-a3b", gpu="h200", engine="trtllm", reserve_bytes=10**9)
    one = fit(replace(p, workload=replace(p.workload, batch=1)))
    assert one.kv.state_bytes_per_sequence == 23 * (36_864 + 2_097_152) == 49_082_368
    assert one.kv.per_sequence_bytes == 8192 * 6_144
    assert budget(p).kv_budget_bytes == 77_309_522_700
    result = fit(replace(p, workload=replace(p.workload, batch=777)))
    assert result.max_batch == 777
    assert result.fits
    assert not fits_at(p, 8192, 778)
    assert result.max_tokens == 6_375_712
    assert fit_fast(replace(p, workload=replace(p.workload, batch=777))) == result
    tp2 = plan("nemotron-3-nano-30b-a3b", gpu="h200", engine="trtllm", tp=2)
    assert fit(tp2).kv.state_per_gpu_bytes == 23 * (18_432 + 1_048_576) == 24_541_184


def test_trtllm_refuses_state_it_does_not_cache() -> None:
    """TensorRT-LLM's extract_mamba_kv_cache_params reads Nemotron-H and Qwen3-Next /
    Qwen3.5 configs only (others raise): Granite-4.0-H, Jamba and LFM2 are refused in one
    line, as is a state model under pipeline parallelism (per-rank slots not read)."""
    for name in ("granite-4.0-h-350m", "jamba-1.5-mini", "lfm2.5-2.6b"):
        with pytest.raises(KvcalcError, match=r"^engine trtllm: .* state layers are not modelled"):
            fit(plan(name, gpu="h200", engine="trtllm"))
    with pytest.raises(KvcalcError, match=r"^engine trtllm: state layers under pipeline"):
        fit(plan("nemotron-3-nano-30b-a3b", gpu="h200", engine="trtllm", pp=2))


def test_sglang_hybrid_swa_pools_under_pipeline_parallelism() -> None:
    """gpt-oss-120b under SGLang with pp 2 on an H100: every rank sizes (and allocates) the
    full and sliding pools for all 36 layers, not its 18 (get_cell_size_per_token and
    set_num_tokens_hybrid_swa count model_config's layer ids; SWAKVPool gets them), out of
    the least rest memory of the ranks. mem_fraction_static: reserved = 512 + 8,192 · 1.5 +
    256 · 2 + 1 · 2 / 8 · 1,024 = 13,568 MiB of 81,079.5 MiB, round(67,511.5 / 81,079.5, 3)
    = 0.833; rest = (85,017,493,504 − 552,402,944) · 0.833 − the heavier stage's weights:
    65,248,815,744 B in all (derived in tests/test_quant.py GPT_OSS_120B_BYTES), and each
    stage holds 18 of the 36 layers, the embedding (stage 0) or the LM head of the same size
    (stage 1) and half the norms: 65,248,815,744 / 2 = 32,624,407,872 B.
    Cell 73,728 B (18 · 2,048 + 18 · 2,048, as at pp 1), M = rest // 73,728,
    full = int(M · 10 / 9), swa = int(full · 0.8)."""
    p = plan("gpt-oss-120b", engine="sglang", pp=2)
    b = budget(p)
    assert b.util == 0.833
    assert b.stage_weights_bytes == (32_624_407_872, 32_624_407_872)
    rest = (H100 - 552_402_944) * 833 // 1000 - 32_624_407_872
    assert b.kv_budget_bytes == rest
    profiled = rest // 73_728
    full = profiled * 10 // 9
    swa = full * 4 // 5
    assert b.pools is not None
    assert (b.pools.kv_tokens, b.pools.swa_tokens) == (full, swa)
    assert fit(p).max_batch == full // 8192
    assert min_gpus(plan("gpt-oss-120b", engine="sglang")) == (1, 1)


def test_sglang_state_and_dsv4_pools_refused_with_pipeline_parallelism(flash: ModelSpec) -> None:
    """A Mamba hybrid's or DeepSeek-V4's pools under pp > 1 are refused in one line: which
    layers a rank's mamba_cache_per_req and DSV4 pools count is not read."""
    with pytest.raises(KvcalcError, match=r"^engine sglang: .*state pool under pipeline"):
        budget(plan("nemotron-3-nano-30b-a3b", gpu="h200", engine="sglang", pp=2))
    v4 = Plan(flash, load_gpu("h200"), ENGINES["sglang"], Workload(seq_len=8192, batch=1, pp=2))
    with pytest.raises(KvcalcError, match=r"^engine sglang: .*DeepSeek-V4 pools under pipeline"):
        budget(v4)


def test_sglang_one_pool_for_a_non_hybrid_architecture() -> None:
    """Gemma-3 is not one of SGLang's hybrid-SWA architectures: one pool."""
    gemma = plan("gemma-3-27b", engine="sglang")  # not a hybrid-SWA architecture: one pool
    assert budget(gemma).pools is None


def test_sglang_minimax_m3_pool_holds_whole_pages() -> None:
    """SGLang sizes MiniMax-M3's pool as available // cell_size rounded down to the page
    (sgl-project/sglang@003fca8027387a3d6565b2c08e497e3020ac6211 pool_configurator.py
    DefaultPoolConfigurator.calculate_pool_sizes; page 128, model_overrides/minimax_m3.py).
    At tp 8, bf16 (tests/data/hf_configs/minimax-m3.json: 60 layers, 57 sparse, 4 KV heads
    of 128 → one a rank, sparse_index_dim 128): cell = 60 · 2 · 1 · 128 · 2 + 57 · 128 · 2
    = 45,312 B. A 10 GiB budget: 10,737,418,240 // 45,312 = 236,966 → 236,928 tokens (1,851
    pages). Requests of 8,000 tokens hold 63 pages: 1,851 // 63 = 29 fit, 30 do not."""
    p = plan("minimax-m3", "h200", engine="sglang", seq_len=8000, tp=8)
    given = replace(budget(p), stage_kv_budget_bytes=(10 * 2**30,))
    cell = 60 * 2 * 1 * 128 * 2 + 57 * 128 * 2
    assert cell == 45_312 and 10 * 2**30 // cell == 236_966
    assert max_tokens(p, given) == 236_966 // 128 * 128 == 236_928
    assert fits_at(p, 8000, 29, given) and not fits_at(p, 8000, 30, given)


def test_hf_sliding_layers_hold_one_token_more_than_their_view() -> None:
    """transformers keeps a sliding layer's cache as a W − 1 token view over the W-token tensor
    the decode step concatenated (DynamicSlidingWindowLayer.update), so the planner counts one
    token per sliding layer beside the cache once seq >= W. Gemma-3-27B (config: 62 layers,
    every 6th full (Gemma3TextConfig's default sliding_window_pattern 6): 52 sliding with
    W = 1024; 16 KV heads × head_dim 128, bf16): 52 · 2 · 16 · 128 · 2 B = 425,984 B a
    sequence at 8192 tokens, none at 1000 (< W)."""
    model, engine = load_model("gemma-3-27b"), ENGINES["hf"]
    at_8192 = kv_cache(model, Workload(8192, 1), engine)
    assert hf_sliding_storage_tail(at_8192, 8192) == 52 * 2 * 16 * 128 * 2 == 425_984
    assert hf_sliding_storage_tail(kv_cache(model, Workload(1000, 1), engine), 1000) == 0
    (note,) = [
        n
        for n in fit(Plan(model, load_gpu("h200"), engine, Workload(8192, 2))).notes
        if n.startswith("decode step's working set")
    ]
    assert "425,984 B of it is the sliding layers' W-token tensors" in note
