"""Capacity planning: weights, memory budget, fit, and the max batch / context solvers (pure).

Every quantity is an integer number of bytes or tokens. With tensor and pipeline
parallelism each stage is planned on its own (its layers' KV, its weights) and capacity
is the minimum over stages, as vLLM's get_kv_cache_configs takes the minimum over workers.
"""

from collections.abc import Callable
from dataclasses import field, replace
from fractions import Fraction
from math import lcm
from typing import NamedTuple

from kvcalc.dtypes import WEIGHT_DTYPES, WeightDtype
from kvcalc.engines import EngineProfile, engine_for_gpu
from kvcalc.errors import KvcalcError
from kvcalc.formula import (
    COMPRESSED_PARTS,
    BlockPool,
    KvBreakdown,
    Workload,
    cdiv,
    has_state_layers,
    hybrid_group_size,
    is_dsa,
    kv_cache,
    kv_heads_per_gpu,
    pp_partition,
    round_up,
)
from kvcalc.records import record
from kvcalc.specs import (
    MLA,
    PARTS,
    CompressedKind,
    GpuSpec,
    ModelSpec,
    StateKind,
    Window,
    cuda_major,
)
from kvcalc.units import MiB

# CUDA context on an H100 (driver 580): 85,017,493,504 total − 84,465,090,560 free after
# the context is created (torch.cuda.mem_get_info; see docs/budget.md).
CUDA_CONTEXT_BYTES = 552_402_944
# vLLM V1's sampler warm-up holds fp32 logits for this many requests (max_num_seqs default
# in the profile run of recent releases).
PROFILE_LOGIT_ROWS = 1024
# transformers (fit --engine hf), measured on an H200 with torch 2.11.0+cu130, driver
# 580.159.04 (tests/data/hf_peak, scripts/measure_hf_peak.py): device memory outside
# PyTorch's allocator once a model has run a decode step, i.e. the CUDA context
# (648,871,936 B there) plus the CUDA libraries' handles and loaded kernels; the largest
# of the 24 recorded runs (they range 730,660,864 to 747,438,080 B).
HF_NONTORCH_BYTES = 747_438_080
# cuBLAS workspace, taken through PyTorch's caching allocator (measured: 32 MiB on Hopper)
HF_CUBLAS_WORKSPACE_BYTES = 33_554_432
# vLLM's max_num_seqs defaults (vllm/engine/arg_utils.py EngineArgs._set_default_args:
# 1024 on large GPUs, where max_num_batched_tokens defaults to 8192 or 16384; else 256)
VLLM_MAX_NUM_SEQS = 256
VLLM_LARGE_MAX_NUM_SEQS = 1024
TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)
MAX_PP = 64


@record
class Plan:
    """What is planned: a model on GPUs of one kind under an engine, with its budget knobs."""

    model: ModelSpec
    gpu: GpuSpec
    engine: EngineProfile
    workload: Workload
    weights_dtype: WeightDtype | None = None  # None: the model's own dtype
    util: float | None = None  # None: the engine's default
    reserve_bytes: int | None = None  # None: the documented default model

    def __post_init__(self) -> None:
        # the engine as it serves this model on this GPU (SGLang's DSA defaults follow the
        # CUDA capability: engines.engine_for_gpu)
        engine = engine_for_gpu(
            self.engine,
            dsa=is_dsa(self.model),
            vendor=self.gpu.vendor,
            cuda_major=cuda_major(self.gpu),
            gpu=self.gpu.name,
        )
        if engine is not self.engine:
            object.__setattr__(self, "engine", engine)


# ---- SGLang's split pools ------------------------------------------------------------------

_SGLANG_MIXIN = (
    "sgl-project/sglang@001ccef0072a4537d4ec6bdd50a73e6feb2c907d:"
    "python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py"
)


@record
class SglangPools:
    """SGLang's pools on one GPU: the full-attention KV pool and a sliding-window or state pool.

    Hybrid sliding-window models (set_num_tokens_hybrid_swa): `kv_tokens` full-layer
    tokens and `swa_tokens` sliding-layer tokens. Mamba / linear-attention hybrids
    (handle_max_mamba_cache): `state_slots` slots of `state_bytes_per_slot` beside a KV pool
    of `kv_tokens` tokens of the attention layers.
    """

    kv_tokens: int  # the full-attention pool (SGLang's max_total_num_tokens)
    kv_bytes_per_token: int  # F·n_full (Mamba hybrids: the attention layers' cell size)
    swa_tokens: int = 0
    swa_bytes_per_token: int = 0  # S·n_swa
    window: int = 0
    page: int = 1
    state_slots: int = 0  # max_mamba_cache_size
    state_bytes_per_slot: int = 0  # mamba_cache_per_req
    slots_per_request: int = 0
    # DeepSeek-V4 (DSV4PoolConfigurator): kv_tokens is the logical full pool (no KV of its
    # own), compressed_bytes the C4 / C128 pools sized from it, fixed_state_bytes the C128
    # compress-state rings of max_requests + 1 slots, and max_requests caps the batch
    compressed_bytes: int = 0
    fixed_state_bytes: int = 0
    max_requests: int = 0
    ratio: Fraction = Fraction(0)  # the profile's ratio this split was sized with

    def swa_residency(self, full_tokens: int, window_tokens: int) -> tuple[int, int]:
        """Return (least, most) sliding-pool tokens one decoding request holds.

        Every new token takes a slot in both pools (swa_memory_pool.py
        SWATokenToKVPoolAllocator.alloc / alloc_extend / alloc_decode); the scheduler frees
        the sliding slots of tokens older than seq − W − page (ScheduleBatch._evict_swa)
        every W decode steps (maybe_evict_swa), so a request holds at least its window and
        at most 2·W + 2·page of them (never more than its tokens).
        """
        return window_tokens, min(full_tokens, 2 * self.window + 2 * self.page)

    def max_batch(self, full_tokens: int, window_tokens: int) -> int:
        """Return the most requests of full_tokens (window_tokens in a window) both pools hold.

        Raises KvcalcError where the answer depends on the sliding pool's per-request
        residency between its bounds (swa_residency), which is not modelled.
        """
        if full_tokens <= 0:
            return 2**62
        best = self.kv_tokens // full_tokens
        if self.max_requests:
            best = min(best, self.max_requests)
        if self.state_slots or self.state_bytes_per_slot:
            best = min(best, self.state_slots // self.slots_per_request)
        if not self.swa_bytes_per_token:
            return best
        least, most = self.swa_residency(full_tokens, window_tokens)
        optimistic = min(best, self.swa_tokens // least) if least else best
        pessimistic = min(best, self.swa_tokens // most) if most else best
        if optimistic != pessimistic:
            raise KvcalcError(
                f"engine sglang: at {full_tokens:,} tokens the sliding-window pool "
                f"({self.swa_tokens:,} tokens) bounds the batch, and what a request holds "
                f"there (between {least:,} and {most:,} tokens, set by SGLang's SWA eviction "
                "schedule) is not modelled (try a longer --seq, or --engine vllm)"
            )
        return optimistic

    def terms(self, kv_budget: int) -> tuple[tuple[str, int], ...]:
        """Return the pools' bytes as (term, bytes), with what is left: Σ = kv_budget."""
        pools: tuple[tuple[str, int], ...]
        if self.max_requests:
            pools = (
                (
                    f"sliding-window pool: {self.swa_tokens:,} tokens × "
                    f"{self.swa_bytes_per_token:,} B (with C4 compress state; "
                    f"--swa-full-tokens-ratio {float(self.ratio)})",
                    self.swa_tokens * self.swa_bytes_per_token,
                ),
                (
                    f"C4 / C128 compressed pools for {self.kv_tokens:,} full tokens "
                    "(max_total_num_tokens)",
                    self.compressed_bytes,
                ),
                (
                    f"C128 compress-state rings ({self.max_requests + 1:,} request slots)",
                    self.fixed_state_bytes,
                ),
            )
        elif self.state_bytes_per_slot:
            state = self.state_slots * self.state_bytes_per_slot
            running = self.state_slots // self.slots_per_request
            pools = (
                (
                    f"Mamba state pool: {self.state_slots:,} slots × "
                    f"{self.state_bytes_per_slot:,} B (--mamba-full-memory-ratio "
                    f"{float(self.ratio)}; ≤ {running:,} running requests)",
                    state,
                ),
                (
                    f"KV pool: {self.kv_tokens:,} tokens × {self.kv_bytes_per_token:,} B",
                    self.kv_tokens * self.kv_bytes_per_token,
                ),
            )
        else:
            pools = (
                (
                    f"full-attention pool: {self.kv_tokens:,} tokens × "
                    f"{self.kv_bytes_per_token:,} B",
                    self.kv_tokens * self.kv_bytes_per_token,
                ),
                (
                    f"sliding-window pool: {self.swa_tokens:,} tokens × "
                    f"{self.swa_bytes_per_token:,} B "
                    f"(--swa-full-tokens-ratio {float(self.ratio)})",
                    self.swa_tokens * self.swa_bytes_per_token,
                ),
            )
        left = kv_budget - sum(b for _, b in pools)
        return (*pools, ("left unallocated (whole tokens, page rounding)", left))

    def concurrency(self, full_tokens: int, window_tokens: int) -> float:
        """Return requests of full_tokens the pools hold, as a fraction (fit's concurrency)."""
        found = [self.kv_tokens / full_tokens] if full_tokens else []
        if self.max_requests:
            found.append(float(self.max_requests))
        if self.state_bytes_per_slot:
            found.append(self.state_slots / self.slots_per_request)
        if self.swa_bytes_per_token and window_tokens:
            found.append(self.swa_tokens / window_tokens)
        return min(found, default=0.0)


@record
class Budget:
    """How one GPU's memory splits into weights, reserve and KV, for each pipeline stage."""

    capacity_bytes: int
    usable_bytes: int  # after the engine's utilisation fraction
    util: float | None
    stage_weights_bytes: tuple[int, ...]
    reserve_bytes: int
    reserve_terms: tuple[tuple[str, int], ...]
    stage_kv_budget_bytes: tuple[int, ...]
    rule: str  # the budget formula in words
    terms: tuple[tuple[str, int], ...] = ()  # signed steps: capacity + Σ = kv_budget_bytes
    # SGLang's split pools (hybrid sliding-window, Mamba hybrids), None for one pool
    pools: SglangPools | None = None

    @property
    def weights_bytes(self) -> int:
        """Weights on the GPU that holds the most."""
        return max(self.stage_weights_bytes)

    @property
    def kv_budget_bytes(self) -> int:
        """KV budget of the tightest stage."""
        return min(self.stage_kv_budget_bytes)

    @property
    def pool_terms(self) -> tuple[tuple[str, int], ...]:
        """SGLang's split pools as (term, bytes) adding up to kv_budget_bytes; () for one."""
        return self.pools.terms(self.kv_budget_bytes) if self.pools else ()


@record
class Fit:
    """The answer for one plan: does the workload fit, and how far it can be pushed."""

    plan: Plan
    kv: KvBreakdown
    budget: Budget
    fits: bool
    headroom_bytes: int  # KV budget left at the asked point, tightest stage (negative: short)
    kv_bytes: int  # KV bytes on the busiest GPU at the asked point (vLLM: whole groups)
    max_batch: int  # at plan.workload.seq_len
    max_seq_len: int  # at plan.workload.batch
    max_seq_len_clamped: bool  # max_seq_len stopped at the model's max_position_embeddings
    max_tokens: int  # KV capacity per GPU in tokens (vLLM's "GPU KV cache size")
    max_concurrency: float  # max_tokens-based requests of seq_len (vLLM's log line)
    notes: tuple[str, ...] = field(default_factory=tuple)
    # why the per-GPU weights are an estimate (weights_approximation); None: no known reason
    weights_approximate: str | None = None


# ---- weights ------------------------------------------------------------------------------


def weights_per_stage(
    model: ModelSpec, engine: EngineProfile, tp: int, pp: int, dtype: WeightDtype | None
) -> tuple[int, ...]:
    """Return weight bytes on one GPU of each pipeline stage.

    In the model's own dtype, when the spec knows its checkpoint's exact size (safetensors),
    that size is used: exactly on one GPU, split in the computed proportions otherwise.
    """
    computed = _computed_weights(model, engine, tp, pp, dtype)
    if dtype is not None or model.checkpoint_bytes is None:
        return computed
    whole = _computed_weights(model, engine, 1, 1, None)[0]
    return tuple(cdiv(stage * model.checkpoint_bytes, whole) for stage in computed)


def weights_approximation(model: ModelSpec, tp: int, pp: int) -> str | None:
    """Return why weights_per_stage's per-GPU figure is an estimate for this split, or None.

    DeepSeek-V4 over more than one GPU: _computed_weights keeps an MQA K and V projection
    (2·H·D a layer, the spec's attention kind) whole on every rank and splits the rest of
    the attention part (the compressors and indexers with it) and the router evenly by tp,
    gives a pp stage its
    layer count's share of every layer part and the first stage the hyper-connections
    (params.other), while vLLM's DeepseekV4Attention and DeepseekV4MoE
    (vllm-project/vllm@023da1fc828eb07787cf0734a1ba32f0a0f11887:
    vllm/model_executor/models/deepseek_v4.py) keep fused_wqa_wkv (wq_a and wkv) whole on
    every rank (MergedColumnParallelLinear, disable_tp=True), pad attn_sink to 64 fp32 heads
    a rank, hold the hash-routed layers' tid2eid tables whole (int32 outside MegaMoE, the
    checkpoint's int64 in it) and build the compressor and indexer in
    layers/deepseek_v4_attention.py, which kvcalc has not read; CSA, HCA, sliding and
    hash-routed layers differ in size, and the hyper-connections are per layer, so a pp
    stage's share is not its layer count's. One GPU holds the checkpoint whole: no reason.
    """
    if model.family != "deepseek_v4" or tp * pp == 1:
        return None
    return (
        f"{model.name}'s per-GPU weights at tp {tp}, pp {pp} are an estimate: kvcalc keeps "
        "an MQA K and V projection (2 x hidden x head_dim a layer) whole on every rank, "
        "splits the rest of attention (compressors and indexers included) and the router "
        "evenly by tp, gives each pp stage its layer count's share and the first stage all "
        "hyper-connections, but vLLM's deepseek_v4.py keeps wq_a and wkv (fused_wqa_wkv, "
        "hidden x (q_lora_rank + head_dim)) whole on every rank, pads attn_sink to 64 heads "
        "a rank and holds the hash layers' tid2eid tables whole, and CSA, HCA and "
        "hash-routed layers differ in size; on one GPU the total is the checkpoint's"
    )


def weights_format(model: ModelSpec, dtype: WeightDtype | None) -> str:
    """Return the weights' storage in words: the asked dtype, as published, or the model's."""
    if dtype is not None:
        return dtype.name
    if model.weights_quant is not None:
        return f"published {model.weights_quant.method}"
    return model.dtype


def _computed_weights(
    model: ModelSpec, engine: EngineProfile, tp: int, pp: int, dtype: WeightDtype | None
) -> tuple[int, ...]:
    """Return weight bytes per stage computed from the parameter breakdown.

    Attention, MLP and expert matrices take the weight dtype and are sharded by tp (KV
    projections replicated like the KV heads, and a part's replicated parameters,
    params.replicated_<part>, whole on every rank: MLA's q_a / kv_a projections and norms,
    the MoE router, the DSA indexer, as vLLM and SGLang build them, see
    kvcalc/quant.py MLA_REPLICATED); embeddings, the LM head, norms and other
    parameters stay 16-bit (docs/weights.md). Embedding on the first stage, LM head on the
    last (a tied LM head is a second copy there when pp > 1); layers by the stage split.

    Without a weights dtype, a checkpoint published quantised (spec.weights_quant) takes
    each part's exact published bytes (kvcalc/quant.py): all of them on one GPU, and a
    stage's share of a part's weights at the part's bytes per weight otherwise, rounded up,
    the part's replicated weights at their own published bytes (replicated_bytes) on every
    rank;
    the `other` parameters at their published bytes where it sizes them (DeepSeek-V4's fp32
    hyper-connections), on the first stage as ever, and the LM head at its published bytes
    per weight where a ModelOpt recipe quantises it. A GGUF weights dtype stores embeddings and the LM head in the type too and norms in
    f32, as `llama-quantize --pure` does (kvcalc/dtypes.py WeightDtype).
    """
    if model.n_params is None:
        raise KvcalcError(
            f"model {model.name} has no n_params, which the planner needs for its weights: "
            "add n_params to its spec, or import its config.json with `kvcalc import`"
        )
    if dtype is not None and dtype.mix:
        return _mix_weights(model, engine, tp, pp, dtype)
    own = WEIGHT_DTYPES[model.dtype]
    published = model.weights_quant if dtype is None else None
    dtype = dtype or own
    dense = dtype if Fraction(dtype.num, dtype.den) >= 2 else WEIGHT_DTYPES["bf16"]
    p = model.params
    if p is None:  # no breakdown: everything sharded and stored in the weight dtype
        layer_q, layer_dense, embedding, lm_head, first_extra = model.n_params, 0, 0, 0, 0
        kv_proj_total = kv_proj_rank = 0
    else:
        attention = model.attention
        heads = kv_heads_per_gpu(model, engine, tp)
        if isinstance(attention, MLA):
            kv_proj_total = kv_proj_rank = 0
        else:
            per_head = model.d_model * (attention.head_dim_k + attention.v_dim) * model.n_layers
            kv_proj_total = attention.n_kv_heads * per_head
            kv_proj_rank = heads * per_head
            if kv_proj_total > p.attention:  # spec breakdown without standard projections
                kv_proj_total = kv_proj_rank = 0
        # the part's replicated parameters (MLA's q_a / kv_a projections and norms, the
        # router, the DSA indexer) whole on every rank, the rest split by tp
        layer_q = sum(
            cdiv(
                getattr(p, part)
                - p.replicated(part)
                - (kv_proj_total if part == "attention" else 0),
                tp,
            )
            + p.replicated(part)
            for part in PARTS
        )
        layer_dense = p.norms
        embedding = cdiv(p.embedding, tp)
        tied_copy = p.embedding if (p.lm_head == 0 and model.tie_word_embeddings and pp > 1) else 0
        lm_head = cdiv(p.lm_head or tied_copy, tp)
        first_extra = p.other
    rules = engine.rules_for(model.family)
    # an engine that holds the LM head in float32 (vLLM's MiniMax-Text-01): its bytes apart
    lm_head_fp32 = lm_head if rules is not None and rules.fp32_lm_head else 0
    lm_head -= lm_head_fp32
    fp32_head = WEIGHT_DTYPES["fp32"].bytes_for(lm_head_fp32)
    tower = tower_bytes_per_gpu(model, tp, dtype)
    stages = pp_partition(model.n_layers, pp)
    result = []
    for index, (start, end) in enumerate(stages):
        share = end - start
        last = index == len(stages) - 1
        fp32_on_stage = fp32_head if last else 0  # an LM head the engine holds in float32
        if published is not None and p is not None:
            other = published.other  # the `other` parameters in a dtype of their own
            head = published.lm_head  # the LM head, when the recipe quantises it
            kept = cdiv(p.norms * share, model.n_layers)
            kept += (embedding + (first_extra if other is None else 0) if index == 0 else 0) + (
                lm_head if last and head is None else 0
            )
            part_bytes = 0
            for part in PARTS:
                shipped = published.part(part)
                # replicated weights whole on every rank at their own published bytes; the
                # split rest at its bytes per weight, the K/V projections like the KV heads
                whole_weights = shipped.replicated_weights or 0
                whole_bytes = shipped.replicated_bytes or 0
                split_weights = shipped.weights - whole_weights
                split_bytes = shipped.bytes - whole_bytes
                kv_total, kv_rank = (kv_proj_total, kv_proj_rank) if part == "attention" else (0, 0)
                if split_weights:
                    on_rank = cdiv(split_weights - kv_total, tp) + kv_rank
                    weights = cdiv(on_rank * share, model.n_layers)
                    part_bytes += cdiv(weights * split_bytes, split_weights)
                part_bytes += cdiv(whole_bytes * share, model.n_layers)
            if index == 0 and other is not None:
                part_bytes += other.bytes
            if last and head is not None:
                part_bytes += cdiv(lm_head * head.bytes, head.weights)
            result.append(part_bytes + own.bytes_for(kept) + tower + fp32_on_stage)
            continue
        quantised = cdiv((layer_q + kv_proj_rank) * share, model.n_layers)
        kept = cdiv(layer_dense * share, model.n_layers)
        if dtype.gguf:  # llama-quantize --pure: 2-D weights in the type, norms in f32
            quantised += (embedding + first_extra if index == 0 else 0) + (lm_head if last else 0)
            result.append(
                dtype.bytes_for(quantised) + WEIGHT_DTYPES["fp32"].bytes_for(kept) + fp32_on_stage
            )
            continue
        if index == 0:
            kept += embedding + first_extra
        if last:
            kept += lm_head
        result.append(dtype.bytes_for(quantised) + dense.bytes_for(kept) + tower + fp32_on_stage)
    return tuple(result)


def _mix_weights(
    model: ModelSpec, engine: EngineProfile, tp: int, pp: int, dtype: WeightDtype
) -> tuple[int, ...]:
    """Return weight bytes per stage of a llama.cpp k-quant file type, tensor by tensor.

    Each tensor takes the type llama-quantize gives it (kvcalc/gguf_mix.py). A stage holds
    its layers' tensors, the first also token_embd, the last output and output_norm (and a
    tied embedding's second copy when pp > 1). Under tp each quantised tensor is split by
    rows, rounded up, the K/V rows (attn_k, attn_v, attn_qkv's) by the KV heads a rank keeps;
    1-D tensors are whole.
    """
    from kvcalc.gguf_mix import gguf_mix  # the llama.cpp file types alone read it

    mix = gguf_mix(model, dtype.name)
    n_kv = model.attention.n_kv_heads
    heads = kv_heads_per_gpu(model, engine, tp)
    stages = pp_partition(model.n_layers, pp)
    result = [0] * len(stages)
    last = len(stages) - 1
    for typed in mix.tensors:
        t = typed.tensor
        if not t.quantizable:
            share = typed.bytes
        else:
            rows = t.elements // t.ne[0]
            row_bytes = typed.bytes // rows
            share = cdiv((rows - t.kv_rows) * row_bytes, tp)
            share += cdiv(t.kv_rows * row_bytes * heads, n_kv)
        if t.layer is not None:
            index = next(k for k, (start, end) in enumerate(stages) if start <= t.layer < end)
            result[index] += share
        elif t.name == "token_embd.weight":
            result[0] += share
            if model.tie_word_embeddings and pp > 1:
                result[last] += share
        else:
            result[last] += share
    return tuple(result)


def weights_mix_note(model: ModelSpec, dtype: WeightDtype | None) -> str | None:
    """Return, for a llama.cpp file type, which tensors take which ggml type, in words."""
    if dtype is None or not dtype.mix:
        return None
    from kvcalc.gguf_mix import LLAMA_CPP_COMMIT, gguf_mix

    mix = gguf_mix(model, dtype.name)
    types = ", ".join(f"{k} {n} tensors {b:,} B" for k, n, b in mix.by_type())
    return (
        f"weights as llama.cpp {dtype.name.upper()} (llama_tensor_get_type, src/llama-quant.cpp "
        f"@{LLAMA_CPP_COMMIT[:7]}): {mix.roles()}; {types}"
    )


def tower_bytes_per_gpu(model: ModelSpec, tp: int, dtype: WeightDtype) -> int:
    """Return the bytes of a multimodal checkpoint's vision tower (spec.tower) on one GPU.

    On every pipeline stage: vLLM builds the tower in the model's constructor on every
    rank (vllm/model_executor/models/qwen3_vl.py, Qwen3VLForConditionalGeneration). Its
    split linears take the weight dtype like the layers' (vLLM hands the tower the quant
    config), and so do linears held whole on every rank under that config
    (tower.whole_linears: Gemma 4's ReplicatedLinear, gemma4_mm.py); the rest stays 16-bit.
    A tower built without the quant config (tower.quantized false: Llama 4) stays 16-bit
    whole. A GGUF weights dtype counts none: llama.cpp loads a
    tower only from a separate --mmproj file.
    """
    tower = model.tower
    if tower is None or dtype.gguf:
        return 0
    if not tower.quantized:
        dtype = WEIGHT_DTYPES["bf16"]
    dense = dtype if Fraction(dtype.num, dtype.den) >= 2 else WEIGHT_DTYPES["bf16"]
    split = cdiv(tower.params - tower.replicated, tp)
    # whole linears (Gemma 4's ReplicatedLinear) take the weight dtype like the split ones
    whole_linears = tower.whole_linears or 0
    return dtype.bytes_for(split + whole_linears) + dense.bytes_for(
        tower.replicated - whole_linears
    )


# ---- reserve and budget -------------------------------------------------------------------


def default_reserve(
    model: ModelSpec, engine: EngineProfile, workload: Workload
) -> tuple[tuple[str, int], ...]:
    """Return the default non-KV, non-weight memory per GPU as (term, bytes) pairs.

    A rough model, first calibrated on one unsourced vLLM datapoint (Llama-3-8B on H100:
    3.01 GiB of non-KV, non-weight memory at N = 8192; docs/budget.md has the public logs):
      CUDA context (552,402,944 B, measured on H100)
    + activation peak of a forward over N tokens: N · (16·d_model + 4·d_ff) · 2 B
    + fp32 logits of the sampler warm-up: min(N, 1024) · vocab · 4 B
    N = max_num_batched_tokens (vLLM 8192) or n_ubatch (llama.cpp 512). NCCL and custom
    all-reduce buffers are not modelled: pass --reserve when you know better.
    llama.cpp: CUDA context + its compute buffer (kvcalc/llamacpp.py:compute_reserve_terms).
    transformers (profiles with decode_working_set): the memory outside PyTorch's
    allocator and the cuBLAS workspace, both measured; what a decode step allocates per
    sequence is counted per sequence (hf_decode_working_set), not here.
    """
    if engine.decode_working_set:
        return (
            ("CUDA context + libraries (measured, H200, torch 2.11)", HF_NONTORCH_BYTES),
            ("cuBLAS workspace", HF_CUBLAS_WORKSPACE_BYTES),
        )
    if engine.sliding == "llama_cpp":
        from kvcalc.llamacpp import compute_reserve_terms

        terms = compute_reserve_terms(model, workload.llamacpp)
        return (("CUDA context", CUDA_CONTEXT_BYTES), *terms)
    if engine.budget_rule == "vllm":
        n_tokens = _batched_tokens(engine, workload)
        # V1's large-GPU defaults pair max_num_batched_tokens ≥ 8192 with 1024 sequences
        large = engine.max_num_batched_tokens is not None and n_tokens >= 8192
        max_seqs = VLLM_LARGE_MAX_NUM_SEQS if large else VLLM_MAX_NUM_SEQS
        return vllm_profile_reserve(model, workload.tp, n_tokens, max_seqs)
    n_tokens = _batched_tokens(engine, workload)
    d_ff = 4 * model.d_model
    if model.params is not None and model.params.mlp:
        dense_layers = model.n_layers
        d_ff = max(1, model.params.mlp // (3 * model.d_model * dense_layers))
    activations = n_tokens * (16 * model.d_model + 4 * d_ff) * 2
    logits = min(n_tokens, PROFILE_LOGIT_ROWS) * model.vocab_size * 4
    return (
        ("CUDA context", CUDA_CONTEXT_BYTES),
        (f"activations ({n_tokens:,} tokens)", activations),
        (f"logits ({min(n_tokens, PROFILE_LOGIT_ROWS):,} × vocab, fp32)", logits),
    )


def _batched_tokens(engine: EngineProfile, workload: Workload) -> int:
    """Return the tokens of the engine's profile forward (llama.cpp: n_ubatch)."""
    if engine.ubatch is not None:
        return engine.ubatch
    if workload.max_num_batched_tokens or engine.max_num_batched_tokens:
        return workload.max_num_batched_tokens or engine.max_num_batched_tokens or 0
    if engine.budget_rule == "vllm":  # vLLM V0 without chunked prefill: max(len, 2048)
        return max(workload.seq_len, 2048)
    return 8192


def _mlp_width(model: ModelSpec) -> int:
    """Return the MLP intermediate width one token runs through per layer (dense + active experts).

    From the parameter breakdown: dense MLP (and shared experts) params / (3 · d_model · L);
    routed experts: params / (n_experts · 3 · d_model · L), times the experts per token.
    4 · d_model when the spec has no breakdown.
    """
    p = model.params
    if p is None or not (p.mlp or p.experts):
        return 4 * model.d_model
    per_layer = 3 * model.d_model * model.n_layers
    width = p.mlp // per_layer
    if p.experts and model.moe is not None:
        width += p.experts // (model.moe.n_experts * per_layer) * model.moe.n_experts_per_token
    return max(1, width)


def vllm_profile_reserve(
    model: ModelSpec, tp: int, n_tokens: int, max_num_seqs: int = 256
) -> tuple[tuple[str, int], ...]:
    """Return what vLLM V1 (0.10 and later) subtracts beside the weights, as (term, bytes).

    Worker.determine_available_memory (vllm/v1/worker/gpu_worker.py): available KV =
    total · gpu_memory_utilization − (weights + torch peak increase + non-torch increase),
    measured by memory_profiling (vllm/utils/mem_utils.py) against a snapshot taken in
    init_device after the CUDA context and NCCL exist, so neither is subtracted again.
    The torch peak is GPUModelRunner.profile_run (vllm/v1/worker/gpu_model_runner.py): one
    dummy forward over max_num_batched_tokens N, then _dummy_sampler_run on one row per
    request, min(max_num_seqs, N). CUDA graphs are captured after the KV cache is sized
    (compile_or_warm_up_model), so their memory comes out of the 1 − utilisation margin.
    Modelled, and checked against the public start-up logs in docs/budget.md:
      activations: N · (3 · mlp_width / tp + 4 · d_model) · 2 B (gate_up output, its
        activation, and four hidden-size buffers; mlp_width counts active experts)
    + sampler: rows · vocab · 8 B (fp32 logits and probabilities; the full vocab on every
      TP rank), rows = min(max_num_seqs, N); V1 defaults max_num_seqs to 1024 where N
      is 8192 or more (EngineArgs' large-GPU defaults), else 256 (and V0: 256).
    Not modelled: a multimodal encoder's profile run, NCCL / custom all-reduce buffers
    created during the forward, attention-backend workspaces.
    """
    activations = n_tokens * (3 * _mlp_width(model) // tp + 4 * model.d_model) * 2
    rows = min(max_num_seqs, n_tokens)
    sampler = rows * model.vocab_size * 8
    return (
        (f"profile activations ({n_tokens:,} tokens)", activations),
        (f"sampler warm-up ({rows:,} × vocab, fp32 logits + probs)", sampler),
    )


def hf_decode_working_set(
    model: ModelSpec, windows: tuple[Window | None, ...], seq_len: int
) -> tuple[tuple[str, int], ...]:
    """Return what one transformers decode step allocates per sequence beside the cache.

    (term, bytes) pairs that add up; read from transformers 5.17 (cache_utils.py,
    integrations/sdpa_attention.py, masking_utils.py, models/deepseek_v2) and measured on
    an H200 at the out-of-memory boundary (tests/data/hf_peak). The step's peak is the
    largest of, for one layer at a time:
    - a full layer's cache update: DynamicLayer.update builds torch.cat([K, k]) before the
      old K (seq − 1 tokens) is freed: n_kv·(seq − 1)·max(d_k, d_v) values; sdpa then
      runs GQA natively (an all-ones mask is skipped, use_gqa_in_sdpa);
    - where d_k ≠ d_v or d_k > 256, K and V repeated to every query head (repeat_kv);
    - a sliding layer once seq ≥ W: its mask cannot be skipped (kv_length = W), so K and V
      are repeated to every query head: n_heads·W·(d_k + d_v) (MHA: no repeat, the new K
      and V beside the old W-token tensors, DynamicSlidingWindowLayer.update); a W that
      is not a multiple of 16 adds sdpa's padded mask bias (3 · n_heads · W values);
    - MLA: the latent expanded for one layer, kv_b_proj's output n_heads·(nope + v) and
      the new key n_heads·(nope + rope) per token (DeepseekV2Attention.expand_kv);
    - the logits: vocab in the model dtype and generate()'s fp32 copy;
    plus generate()'s input_ids and attention_mask (int64: 16 B per token) and the step's
    activations (8·d_model values, a bound on the 12-54 KB measured).
    Padded batches (a mask that is not all ones) repeat K/V on every layer: not modelled.
    """
    elt = 4 if model.dtype == "fp32" else 2
    attention = model.attention
    candidates: list[tuple[str, int]] = []
    if isinstance(attention, MLA):
        width = attention.n_heads * (
            2 * attention.qk_nope_head_dim + attention.v_head_dim + attention.qk_rope_head_dim
        )
        candidates.append(("MLA latent expanded for one layer", seq_len * width * elt))
    else:
        n_heads = attention.n_heads
        n_kv = getattr(attention, "n_kv_heads", n_heads)
        d_k, d_v = attention.head_dim_k, attention.v_dim
        if None in windows or not windows:
            if d_k == d_v <= 256 or n_kv == n_heads:
                bytes_ = n_kv * (seq_len - 1) * max(d_k, d_v) * elt
                candidates.append(("one layer's old K beside its torch.cat copy", bytes_))
            else:
                bytes_ = n_heads * seq_len * (d_k + d_v) * elt
                candidates.append(("one layer's K/V repeated to every query head", bytes_))
        for size in sorted({w.size for w in windows if w is not None}):
            if seq_len >= size and n_heads > n_kv:
                bytes_ = n_heads * size * (d_k + d_v) * elt
                label = f"sliding layer (W {size:,}): K/V repeated to every query head"
            else:  # the old tensor (a view over W tokens once full) beside the new
                bytes_ = n_kv * min(seq_len - 1, size) * (d_k + d_v) * elt
                label = f"sliding layer (W {size:,}): old K/V beside the new"
            if seq_len >= size and size % 16:
                # the mask's last dim unaligned: sdpa's padded bias, per query head
                # (3 copies: measured on Phi-3-mini, W 2,047)
                bytes_ += 3 * n_heads * cdiv(size, 16) * 16 * elt
                label += " + padded mask bias"
            candidates.append((label, bytes_))
    candidates.append(("logits (model dtype + fp32 copy)", model.vocab_size * (elt + 4)))
    largest = max(candidates, key=lambda term: term[1])
    return (
        (f"decode peak: {largest[0]}", largest[1]),
        ("input_ids + attention_mask (int64)", 16 * seq_len),
        ("activations (8 · d_model)", 8 * model.d_model * elt),
    )


def hf_sliding_storage_tail(kv: KvBreakdown, seq_len: int, stage: int | None = None) -> int:
    """Return the bytes a sequence's sliding layers hold beyond their W − 1 token views.

    DynamicSlidingWindowLayer.update keeps `cat([K, k])[:, :, -W + 1:]`, a view of the W-token
    tensor the step made, so once seq ≥ W each sliding layer's storage is one token more
    than its cache exposes (transformers 5.17 and 5.24 cache_utils.py alike; measured on an
    H200: tests/data/hf_peak, and on the meta device). Compressed layers (their own cache
    classes) are left out. `stage`: only that pipeline stage's layers.
    """
    start, end = kv.stage_layers[stage] if stage is not None else (0, len(kv.layer_windows))
    return sum(
        kv.layer_bytes_per_token[i]
        for i in range(start, end)
        if (window := kv.layer_windows[i]) is not None
        and seq_len >= window.size
        and not (kv.layer_parts and kv.layer_parts[i])
    )


def _working_set(plan: Plan, kv: KvBreakdown, seq_len: int, stage: int | None = None) -> int:
    """Return the per-sequence decode working set the engine needs beside the cache (0: none):
    transformers' decode step, and its sliding layers' storage behind their views."""
    if not plan.engine.decode_working_set:
        return 0
    step = sum(b for _, b in hf_decode_working_set(plan.model, kv.layer_windows, seq_len))
    return step + hf_sliding_storage_tail(kv, seq_len, stage)


def sglang_mem_fraction_static(capacity_bytes: int, tp: int, pp: int) -> float:
    """Return SGLang's default mem_fraction_static for a GPU (ServerArgs._handle_gpu_memory_settings).

    reserved_MiB = 512 + max(chunked_prefill, 2048)·1.5 + cuda_graph_max_bs·2 + tp·pp/8·1024,
    at least 10,240 MiB above 60 GiB; fraction = round((gpu_MiB − reserved) / gpu_MiB, 3).
    """
    gpu_mib = capacity_bytes / MiB
    gib = gpu_mib / 1024
    if gib < 20:
        chunk, graph_bs = 2048, 8
    elif gib < 35:
        chunk, graph_bs = 2048, 80 if tp >= 4 else 24
    elif gib < 60:
        chunk, graph_bs = 4096, 160 if tp >= 4 else 32
    elif gib < 160:
        chunk, graph_bs = 8192, 512 if tp >= 4 else 256
    else:
        chunk, graph_bs = 16384, 512
    reserved = 512 + max(chunk, 2048) * 1.5 + graph_bs * 2 + tp * pp / 8 * 1024
    if gib > 60:
        reserved = max(reserved, 10240)
    return round((gpu_mib - reserved) / gpu_mib, 3)


def _times(value: int, fraction: Fraction, round_up: bool = False) -> int:
    product = value * fraction.numerator
    return -(-product // fraction.denominator) if round_up else product // fraction.denominator


def _sglang_pools(plan: Plan, kv_budget: int) -> SglangPools | None:
    """Return SGLang's pools for this plan's KV budget (Budget.pool_terms shows their bytes).

    None for a model of one pool. DeepSeek-V4's compressed layers get their own split
    (_dsv4_pools). Refused in one line where the split is not read: pipeline parallelism
    with state layers, DeepSeek-V4 or all layers sliding, other compressed or chunked layers, more than one window, windows with state.
    Arithmetic is exact (rational) where SGLang's is in floats.
    """
    model, engine = plan.model, plan.engine
    # under pp every rank sizes and allocates the hybrid sliding-window pools for the whole
    # model's layers: get_cell_size_per_token and set_num_tokens_hybrid_swa count
    # model_config.full / swa_attention_layer_ids, not the rank's start_layer..end_layer,
    # and init_memory hands SWAKVPool those model-wide ids (_SGLANG_MIXIN; SWAKVPool read at
    # sgl-project/sglang@00381c02b8ad9f78982f46986b63aeab5fc71fe9:python/sglang/srt/
    # mem_cache/swa_memory_pool.py, the stored copy); rest memory is the least of all ranks
    # (get_available_gpu_memory over the world group), kv_budget here
    kv = kv_cache(model, replace(plan.workload, batch=1, seq_len=1, pp=1), engine)
    layers = _stage_layers(kv, 0)
    if not engine.honours_window(model.family, model.architecture):  # cached in full
        layers = _StageLayers(
            {None: [b for per in layers.attention.values() for b in per]},
            layers.state,
            layers.state_pages,
        )
    windows = [w for w in layers.attention if w is not None]
    if not windows and not layers.state:
        return None
    name = model.architecture or model.name
    if plan.workload.pp > 1 and (layers.state or compression_rates(model)):
        raise KvcalcError(
            f"engine sglang: {name}'s "
            f"{'state pool' if layers.state else 'DeepSeek-V4 pools'} under pipeline "
            "parallelism is not modelled (which layers a pp rank's "
            f"{'mamba_cache_per_req' if layers.state else 'DSV4 pools'} count is not read; "
            "use --pp 1, or --engine vllm)"
        )
    if plan.engine.compressed_layout == "sglang" and compression_rates(model):
        if plan.gpu.vendor != "nvidia":
            raise KvcalcError(
                f"engine sglang: DeepSeek-V4 on {plan.gpu.vendor} GPUs is not modelled "
                "(SGLang's ROCm pools switch to unified KV rings and fp4 indexer keys)"
            )
        return _dsv4_pools(engine, kv, layers, max(0, kv_budget))
    if kv.layer_parts or any(w.kind != "sliding" for w in windows) or len(windows) > 1:
        raise KvcalcError(
            f"engine sglang: {name} is a hybrid sliding-window model whose layers (compressed, "
            "chunked or of several windows) SGLang pools in a way that is not modelled "
            "(try --engine vllm)"
        )
    page = max(1, kv.block_size)
    full_per_token = sum(layers.attention.get(None, []))
    budget_ = max(0, kv_budget)
    if windows and layers.state:
        raise KvcalcError(
            f"engine sglang: {name} has both sliding-window and state layers, whose pools "
            "are not modelled (try --engine vllm)"
        )
    if windows:
        (window,) = windows
        if not full_per_token:  # all layers sliding: one pool (set_num_tokens_hybrid_swa)
            if plan.workload.pp > 1:
                raise KvcalcError(
                    f"engine sglang: {name}, all sliding-window layers, under pipeline "
                    "parallelism is not modelled (use --pp 1, or --engine vllm)"
                )
            return None
        return _swa_pools(
            engine, budget_, full_per_token, sum(layers.attention[window]), window, page
        )
    if not full_per_token:
        raise KvcalcError(
            f"engine sglang: {name} has no attention layer on which to size SGLang's KV pool "
            "(try --engine vllm)"
        )
    per_slot = sum(n * page_bytes for n, page_bytes in layers.state.values())
    return _mamba_pools(engine, budget_, full_per_token, per_slot, page)


def _ratio(value: Fraction | None, name: str) -> Fraction:
    if value is None:
        raise KvcalcError(f"engine profile sets no {name}, which its pool split needs")
    return value


def _swa_pools(
    engine: EngineProfile,
    budget_: int,
    full_per_token: int,
    swa_per_token: int,
    window: Window,
    page: int,
) -> SglangPools:
    """set_num_tokens_hybrid_swa: M = rest // cell tokens profiled (profile_max_num_token),
    then full = int(M·cell / (F·n_full + r·S·n_swa)), swa = int(full · r), page-aligned."""
    cell = full_per_token + swa_per_token
    profiled = budget_ // cell
    profiled -= profiled % page  # init_memory pages max_total_num_tokens first
    r = _ratio(engine.swa_full_tokens_ratio, "swa_full_tokens_ratio")
    full = (profiled * cell * r.denominator) // (
        full_per_token * r.denominator + r.numerator * swa_per_token
    )
    swa = full * r.numerator // r.denominator
    return SglangPools(
        kv_tokens=full - full % page,
        kv_bytes_per_token=full_per_token,
        swa_tokens=swa - swa % page,
        swa_bytes_per_token=swa_per_token,
        window=window.size,
        page=page,
        ratio=r,
    )


def _dsv4_pools(
    engine: EngineProfile, kv: KvBreakdown, layers: "_StageLayers", budget_: int
) -> SglangPools:
    """DSV4PoolConfigurator.calculate_pool_sizes (ratio sizing, no speculative decoding).

    bytes_per_full_token = r·(sliding-pool bytes per token, C4 state with it) + Σ C4 / C128
    row bytes / m; fixed = the C128 rings, round_up(slots·ring + ring + 1, ring) rows of
    every HCA layer, slots = max_running_requests + 1; full = (budget − fixed) //
    bytes_per_full_token in whole pages, sliding = ⌊full·r⌋ in whole pages (at most window
    + page: SGLang refuses to start, counted as no capacity). Exact (rational) where
    SGLang's is in floats.
    """
    page = kv.block_size
    r = _ratio(engine.dsv4_swa_full_tokens_ratio, "dsv4_swa_full_tokens_ratio")
    max_requests = engine.dsv4_max_running_requests
    windows = [w for w in layers.attention if w is not None and w.kind == "sliding"]
    if len(windows) != 1:
        raise KvcalcError("engine sglang: DeepSeek-V4 needs one sliding window (sliding_window)")
    (window,) = windows
    swa_per_token = sum(layers.attention[window])
    parts = [(w, per) for layer in kv.layer_parts for w, per in layer]
    compressed = sum((Fraction(per, w.size) for w, per in parts if w.kind == "paged"), Fraction(0))
    slots = max_requests + 1
    fixed = sum(
        round_up(slots * w.size + w.size + 1, w.size) * per for w, per in parts if w.kind == "ring"
    )
    per_full_token = r * swa_per_token + compressed
    full = int(max(0, budget_ - fixed) / per_full_token) if per_full_token else 0
    full -= full % page
    swa = int(full * r)
    swa -= swa % page
    if swa <= window.size + page:  # validate_swa_pool_size: the server does not start
        full = swa = 0
    return SglangPools(
        kv_tokens=full,
        kv_bytes_per_token=0,
        swa_tokens=swa,
        swa_bytes_per_token=swa_per_token,
        window=window.size,
        page=page,
        compressed_bytes=int(full * compressed),
        fixed_state_bytes=fixed if full else 0,
        max_requests=max_requests,
        ratio=r,
    )


def _mamba_pools(
    engine: EngineProfile, budget_: int, full_per_token: int, per_slot: int, page: int
) -> SglangPools:
    """handle_max_mamba_cache: mamba memory = rest · ratio / (1 + ratio), in whole
    mamba_cache_per_req slots; profile_max_num_token: KV tokens = the rest // cell, the cell
    summed over the attention layers only."""
    q = _ratio(engine.mamba_full_memory_ratio, "mamba_full_memory_ratio")
    if engine.mamba_slots_per_request <= 0:
        raise KvcalcError("engine profile sets no mamba_slots_per_request, which its pools need")
    slots = budget_ * q.numerator // ((q.denominator + q.numerator) * per_slot)
    tokens = (budget_ - slots * per_slot) // full_per_token
    return SglangPools(
        kv_tokens=tokens - tokens % page,
        kv_bytes_per_token=full_per_token,
        page=page,
        state_slots=slots,
        state_bytes_per_slot=per_slot,
        slots_per_request=engine.mamba_slots_per_request,
        ratio=q,
    )


def budget(plan: Plan) -> Budget:
    """Return the memory budget of one GPU per pipeline stage, every term explicit.

    `terms` lists, for the GPU holding the most weights, signed steps from the capacity to
    the KV budget: capacity + Σ terms = kv_budget_bytes.
    """
    engine, workload, capacity = plan.engine, plan.workload, plan.gpu.memory_bytes
    rules = engine.rules_for(plan.model.family)
    if rules is not None and rules.no_capacity:
        raise KvcalcError(f"engine {engine.name}: {rules.no_capacity}")
    stage_weights = weights_per_stage(
        plan.model, engine, workload.tp, workload.pp, plan.weights_dtype
    )
    if plan.util is not None and engine.budget_rule == "whole":
        raise KvcalcError(
            f"--util does not apply to engine {engine.name} (it uses the whole device)"
        )
    if plan.util is not None and not 0 < plan.util <= 1:
        raise KvcalcError(f"--util must be in (0, 1], got {plan.util}")
    if plan.reserve_bytes is not None:
        reserve_terms: tuple[tuple[str, int], ...] = (("reserve (--reserve)", plan.reserve_bytes),)
    else:
        reserve_terms = default_reserve(plan.model, engine, workload)
    util = plan.util
    rule = engine.budget_rule
    weights_label = f"weights ({weights_format(plan.model, plan.weights_dtype)})"
    heaviest = max(stage_weights)
    if rule == "sglang":
        util = (
            util
            if util is not None
            else sglang_mem_fraction_static(capacity, workload.tp, workload.pp)
        )
        free_before = capacity - CUDA_CONTEXT_BYTES
        if plan.reserve_bytes is None:
            static = _times(free_before, Fraction(str(util)))
            reserve_terms = (
                ("CUDA context", CUDA_CONTEXT_BYTES),
                (f"(1 − mem_fraction_static {util}) × free memory", free_before - static),
            )
        else:
            reserve_terms = (("CUDA context", CUDA_CONTEXT_BYTES), *reserve_terms)
        text = "(capacity − CUDA context) × mem_fraction_static − weights"
    reserve = sum(b for _, b in reserve_terms)
    steps: list[tuple[str, int]] = []
    if rule == "vllm":
        util = util if util is not None else engine.default_util or 0.9
        usable = _times(capacity, Fraction(str(util)), round_up=True)
        kv = tuple(usable - w - reserve for w in stage_weights)
        steps.append((f"(1 − gpu_memory_utilization {util}) × capacity", -(capacity - usable)))
        steps.append((weights_label, -heaviest))
        steps += [(label, -b) for label, b in reserve_terms]
        text = "ceil(capacity × gpu_memory_utilization) − weights − reserve"
    elif rule == "sglang":
        usable = capacity - reserve
        kv = tuple(usable - w for w in stage_weights)
        steps += [(label, -b) for label, b in reserve_terms]
        steps.append((weights_label, -heaviest))
    elif rule == "trtllm":
        util = util if util is not None else engine.default_util or 0.9
        fraction = Fraction(str(util))
        usable = capacity
        # MixedMambaHybridCacheManager: the state pool is in the profiled peak, so it comes
        # out of the memory before free_gpu_memory_fraction (zeros for other managers)
        pool = state_pool_bytes(plan)
        kv = tuple(
            _times(max(0, capacity - w - reserve - p), fraction)
            for w, p in zip(stage_weights, pool, strict=True)
        )
        steps.append((weights_label, -heaviest))
        steps += [(label, -b) for label, b in reserve_terms]
        heaviest_pool = pool[stage_weights.index(heaviest)]
        text = "(capacity − weights − reserve) × free_gpu_memory_fraction"
        if heaviest_pool:
            slots = plan.workload.batch + engine.state_spare_slots
            steps.append(
                (
                    f"state pool of {slots:,} slots (max_batch_size {plan.workload.batch:,} "
                    f"+ {engine.state_spare_slots} padding)",
                    -heaviest_pool,
                )
            )
            text = (
                "(capacity − weights − reserve − state pool of max_batch_size + "
                f"{engine.state_spare_slots} slots) × free_gpu_memory_fraction"
            )
        left = capacity - heaviest - reserve - heaviest_pool
        free = max(0, left)
        steps.append((f"(1 − free_gpu_memory_fraction {util}) × the rest", -(free - min(kv))))
        if left < 0:
            steps.append(("(no room left: budget floors at 0)", -left))
        spare = spare_state_bytes(plan)
        if any(spare):
            room = min(kv)
            kv = tuple(max(0, b - s) for b, s in zip(kv, spare, strict=True))
            slots = engine.state_spare_slots
            steps.append((f"state of {slots} CUDA-graph padding slot(s)", -(room - min(kv))))
            text += f" − {slots} padding state slot(s)"
    elif rule == "whole":
        usable = capacity
        kv = tuple(capacity - w - reserve for w in stage_weights)
        steps.append((weights_label, -heaviest))
        steps += [(label, -b) for label, b in reserve_terms]
        text = "capacity − weights − reserve"
    pools = _sglang_pools(plan, min(kv)) if rule == "sglang" else None
    return Budget(
        capacity_bytes=capacity,
        usable_bytes=usable,
        util=util,
        stage_weights_bytes=stage_weights,
        reserve_bytes=reserve,
        reserve_terms=reserve_terms,
        stage_kv_budget_bytes=kv,
        rule=text,
        terms=tuple(steps),
        pools=pools,
    )


def reserves_state_slots(engine: EngineProfile, kv: KvBreakdown) -> bool:
    """True where the engine pays every sequence's state slot out of the KV budget before
    tokens (TensorRT-LLM: max_batch_size slots) and the model has state layers: its
    capacity in tokens then follows the batch (max_tokens)."""
    return bool(engine.state_spare_slots and kv.state_groups) and not _state_before_fraction(
        engine, kv.model
    )


def _state_before_fraction(engine: EngineProfile, model: ModelSpec) -> bool:
    """True where the engine allocates the model's state pool before it measures the free
    memory its KV budget is a fraction of (TensorRT-LLM's MixedMambaHybridCacheManager:
    engines.FamilyRules.state_before_fraction)."""
    rules = engine.rules_for(model.family)
    return rules is not None and rules.state_before_fraction and has_state_layers(model)


def state_pool_bytes(plan: Plan) -> tuple[int, ...]:
    """Return the state pool bytes per GPU of each stage where the engine allocates it before
    measuring free memory (zeros elsewhere).

    TensorRT-LLM's MixedMambaHybridCacheManager (kv_cache/mamba_cache_manager.py
    _get_mamba_hybrid_pool_size): max_batch_size + 1 slots (one shared by the CUDA-graph
    padding dummies), torch tensors allocated with the estimation manager, so the profiled
    peak holds them and only the C++ KV pool's bytes are added back (_util.py
    KvCacheCreator.configure_kv_cache_capacity: allocated_bytes = kv_stats.allocated_bytes);
    the plan's batch is the max_batch_size set.
    """
    if not _state_before_fraction(plan.engine, plan.model):
        return (0,) * plan.workload.pp
    return _slot_state_bytes(plan, plan.workload.batch + plan.engine.state_spare_slots)


def spare_state_bytes(plan: Plan) -> tuple[int, ...]:
    """Return the state bytes per GPU of each stage for the engine's spare state slots.

    TensorRT-LLM (CppMambaHybridCacheManager.get_cache_size_per_token,
    _estimate_mamba_hybrid_cache_cost): intercept = (max_batch_size · pp + 1) · local
    state layers · state bytes per layer, paid out of the KV budget before tokens
    (CacheCost.tokens_for_budget: (budget − intercept) // slope). The batch's own slots are
    each sequence's state (planner._stage_units); this is the one padding slot beyond them.
    """
    engine, model = plan.engine, plan.model
    if not engine.state_spare_slots or not has_state_layers(model):
        return (0,) * plan.workload.pp
    if _state_before_fraction(engine, model):  # the spare slot is in state_pool_bytes
        return (0,) * plan.workload.pp
    return _slot_state_bytes(plan, engine.state_spare_slots)


def _slot_state_bytes(plan: Plan, slots: int) -> tuple[int, ...]:
    """Return `slots` sequences' state bytes per GPU of each stage (one sequence's state,
    from a one-token kv_cache, times slots); zeros for a model without state layers."""
    one = kv_cache(plan.model, replace(plan.workload, seq_len=1, batch=1), plan.engine)
    return tuple(slots * b for b in one.stage_state_bytes) or (0,) * plan.workload.pp


# ---- capacity in engine units -------------------------------------------------------------


@record
class _StageUnits:
    available: int  # blocks (vLLM) or bytes (others) a stage can hold
    per_request: int  # what one sequence of the asked length needs
    unit_bytes: int  # bytes per unit


def _stage_groups(windows: tuple[Window | None, ...]) -> tuple[dict[Window | None, int], int]:
    """Return a stage's layers per window and vLLM's KV-cache group size for them."""
    counts = {w: windows.count(w) for w in set(windows)}
    return counts, hybrid_group_size(list(counts.values()))


@record
class _StageLayers:
    """A stage's cached layers by vLLM group type: attention by window, state by kind."""

    attention: dict[Window | None, list[int]]  # window -> bytes per token of each layer
    state: dict[str, tuple[int, int]]  # kind -> (layers, bytes per sequence of one layer)
    state_pages: dict[str, int]  # kind -> pages a sequence holds per layer (vLLM align: 2)


def _stage_layers(kv: KvBreakdown, stage: int) -> _StageLayers:
    start, end = kv.stage_layers[stage]
    states = {g.layer_kind: g.bytes_per_sequence_per_layer for g in kv.state_groups}
    pages = {g.layer_kind: g.pages_per_sequence for g in kv.state_groups}
    attention: dict[Window | None, list[int]] = {}
    state: dict[str, tuple[int, int]] = {}
    kinds = kv.layer_kinds or ("full",) * len(kv.layer_windows)
    per_token = kv.layer_bytes_per_token or (kv.groups[0].bytes_per_token_per_layer,) * len(kinds)
    for i in range(start, end):
        if kinds[i] in states:
            n, page = state.get(kinds[i], (0, states[kinds[i]]))
            state[kinds[i]] = (n + 1, page)
        if per_token[i]:
            attention.setdefault(kv.layer_windows[i], []).append(per_token[i])
        for part, per in kv.layer_parts[i] if kv.layer_parts else ():
            attention.setdefault(part, []).append(per)  # a compressed layer's other tensors
    return _StageLayers(attention, state, {kind: pages[kind] for kind in state})


def _stage_units(kv: KvBreakdown, stage: int, kv_budget: int) -> _StageUnits:
    """Return what a stage can hold and what one request needs, in the engine's units.

    A request needs its KV (tokens held × bytes per token, per attention layer) and the
    fixed state of every recurrent layer. vLLM counts blocks of one shared pool: a block
    is one page per layer slot of a group, and a request takes cdiv(tokens, B) blocks per
    attention group and one block per state group (kv_cache_utils.get_num_blocks,
    v1/core/single_type_kv_cache_manager.py MambaManager).
    """
    if kv.block_pool is not None:  # vLLM's DeepSeek-V4 pool: blocks of every group alike
        pool = kv.block_pool
        return _StageUnits(
            max(0, kv_budget) // pool.block_bytes, pool.blocks_per_sequence, pool.block_bytes
        )
    layers = _stage_layers(kv, stage)
    tokens = {g.key: g.tokens for g in kv.groups}
    blocks = {g.key: g.block_size or kv.block_size for g in kv.groups}
    if kv.engine.pads_hybrid_groups:  # vLLM: one block pool shared by equal-size groups
        counts = {w: len(b) for w, b in layers.attention.items()}
        counts_all = list(counts.values()) + [n for n, _ in layers.state.values()]
        if not counts_all:
            # each worker's groups are the global ones with its own layers
            # (kv_cache_utils.get_kv_cache_configs); with none of them, vLLM's page and
            # block count for that worker are not read, so refuse rather than guess
            start, end = kv.stage_layers[stage]
            raise KvcalcError(
                f"pipeline stage {stage} holds no cache layer (layers {start}-{end - 1}); "
                "vLLM with a cache-free stage is not modelled: choose another pp"
            )
        if len(counts_all) == 1 and layers.attention:  # one group (UniformTypeKVCacheSpecs)
            ((window, per_layer),) = layers.attention.items()
            block_bytes = kv.block_size * sum(per_layer)
            per_request = tokens[window] // kv.block_size
            return _StageUnits(max(0, kv_budget) // block_bytes, per_request, block_bytes)
        group_size = hybrid_group_size(counts_all)
        # one page size for every group (unify_kv_cache_spec_page_size re-blocks smaller ones)
        # (a stage of state layers alone, under pipeline parallelism: its state page)
        page = max(
            [blocks.get(w, kv.block_size) * max(per) for w, per in layers.attention.items()]
            + [per_seq // layers.state_pages[k] for k, (_, per_seq) in layers.state.items()]
        )
        block_bytes = page * group_size
        # a state group takes one block per state page a sequence holds (align: two)
        per_request = sum(
            cdiv(c, group_size) * (tokens[w] // blocks.get(w, kv.block_size))
            for w, c in counts.items()
        ) + sum(cdiv(n, group_size) * layers.state_pages[k] for k, (n, _) in layers.state.items())
        return _StageUnits(max(0, kv_budget) // block_bytes, per_request, block_bytes)
    per_request = sum(tokens[w] * sum(per) for w, per in layers.attention.items())
    if not _state_before_fraction(kv.engine, kv.model):  # else paid before the budget
        per_request += sum(n * page for n, page in layers.state.values())
    return _StageUnits(max(0, kv_budget), per_request, 1)


def _pool_tokens(kv: KvBreakdown) -> tuple[int, int]:
    """Return (tokens a request holds in full layers, in its sliding layers) at kv's point.

    A model of compressed and sliding layers only (DeepSeek-V4 under SGLang) holds its
    tokens in whole pages of the logical full pool.
    """
    tokens = {g.key: g.tokens for g in kv.groups}
    windowed = [
        t for key, t in tokens.items() if key is not None and key.kind not in COMPRESSED_PARTS
    ]
    full = tokens.get(None, 0)
    if not full and any(w.kind == "paged" for layer in kv.layer_parts for w, _ in layer):
        full = round_up(kv.workload.seq_len, kv.block_size)
    return full, max(windowed, default=0)


def _max_batch_at(plan: Plan, seq_len: int, budget_: Budget) -> tuple[int, KvBreakdown]:
    kv = kv_cache(plan.model, replace(plan.workload, seq_len=seq_len, batch=1), plan.engine)
    if budget_.pools is not None:  # SGLang's split pools
        return budget_.pools.max_batch(*_pool_tokens(kv)), kv
    if _state_before_fraction(plan.engine, plan.model):
        return _max_batch_state_first(plan, kv, budget_), kv
    best = None
    for stage, kv_budget in enumerate(budget_.stage_kv_budget_bytes):
        units = _stage_units(kv, stage, kv_budget)
        if units.per_request == 0:
            continue
        # transformers: each sequence also needs the decode step's working set (bytes)
        per_request = units.per_request + _working_set(plan, kv, seq_len, stage)
        fit = units.available // per_request
        best = fit if best is None else min(best, fit)
    return (best if best is not None else 2**62), kv


def _max_batch_state_first(plan: Plan, one: KvBreakdown, budget_: Budget) -> int:
    """Return the largest max_batch_size B whose sequences' KV fits where the state pool of
    B + spare slots comes out before the fraction f = p / q (TensorRT-LLM's
    MixedMambaHybridCacheManager: state_pool_bytes).

    With F = capacity − weights − reserve, S the state of one slot, K one sequence's KV:
    B · K ≤ floor(f · (F − (B + spare) · S)) ⇔ B · (q · K + p · S) ≤ p · (F − spare · S)
    (B · K is an integer), so B = p · (F − spare · S) // (q · K + p · S).
    """
    fraction = Fraction(str(budget_.util if budget_.util is not None else 0.9))
    p, q = fraction.numerator, fraction.denominator
    spare = plan.engine.state_spare_slots
    best = None
    for stage, weights in enumerate(budget_.stage_weights_bytes):
        kv_per_request = _stage_units(one, stage, 0).per_request
        slot = one.stage_state_bytes[stage] if one.stage_state_bytes else 0
        if kv_per_request == 0 and slot == 0:
            continue
        room = budget_.capacity_bytes - weights - budget_.reserve_bytes - spare * slot
        fit = max(0, p * room) // (q * kv_per_request + p * slot)
        best = fit if best is None else min(best, fit)
    return best if best is not None else 2**62


def _pools_headroom(pools: SglangPools, one: KvBreakdown, batch: int) -> int:
    """Return the bytes left in SGLang's tightest pool with batch requests of one's length.

    A request holds its tokens in the full-attention pool, its window in the sliding pool
    (the least it holds: SglangPools.swa_residency) and one state slot per
    slots_per_request (init_memory's cap on running requests) in the state pool.
    """
    full_tokens, window_tokens = _pool_tokens(one)
    rooms = [(pools.kv_tokens - batch * full_tokens) * pools.kv_bytes_per_token]
    if pools.max_requests:  # DeepSeek-V4: the compressed pools follow the logical full pool
        spare = pools.kv_tokens - batch * full_tokens
        rooms = [spare * pools.compressed_bytes // pools.kv_tokens if pools.kv_tokens else 0]
    if pools.swa_bytes_per_token:
        rooms.append((pools.swa_tokens - batch * window_tokens) * pools.swa_bytes_per_token)
    if pools.state_bytes_per_slot:
        spare = pools.state_slots - batch * pools.slots_per_request
        rooms.append(spare * pools.state_bytes_per_slot)
    return min(rooms)


def fits_at(plan: Plan, seq_len: int, batch: int, budget_: Budget | None = None) -> bool:
    """Return True when batch sequences of seq_len tokens fit on every stage."""
    return _max_batch_at(plan, seq_len, budget_ or budget(plan))[0] >= batch


def max_batch(plan: Plan, budget_: Budget | None = None) -> int:
    """Return the largest batch of plan.workload.seq_len that fits (0 if none)."""
    return _max_batch_at(plan, plan.workload.seq_len, budget_ or budget(plan))[0]


def compression_rates(model: ModelSpec) -> tuple[int, ...]:
    """Return the rates of the model's compressed layer kinds (none: bytes never fall)."""
    kinds = (model.kinds or {}).values()
    return tuple(sorted({k.rate for k in kinds if isinstance(k, CompressedKind)}))


def largest_fitting_seq(
    fits: Callable[[int], bool], limit: int, rates: tuple[int, ...] = ()
) -> tuple[int, bool]:
    """Return (largest S ≤ limit such that every length 1..S fits, S == limit), 0 if none.

    Binary search on "every length up to S fits", which never turns true again once false.
    Without compressed layers KV bytes never fall as the sequence grows, so that is "S
    fits". A compressed layer's bytes fall where seq reaches a multiple of its rate m (its
    seq mod m buffer empties into one compressed entry), and they are otherwise
    non-decreasing, and bytes(S + P) ≥ bytes(S) for P = lcm of the rates (tests pin both).
    So the most any length up to S needs is reached at S itself or just before one of the
    drops in (S − P, S]: those lengths are the ones checked.
    """

    def fits_up_to(seq: int) -> bool:
        if not rates:
            return fits(seq)
        period = lcm(*rates)
        peaks = {seq} | {
            s for s in range(max(1, seq - period + 1), seq) if any((s + 1) % m == 0 for m in rates)
        }
        return all(fits(s) for s in sorted(peaks, reverse=True))

    if not fits_up_to(1):
        return 0, False
    if fits_up_to(limit):
        return limit, True
    low, high = 1, limit  # fits_up_to(low), not fits_up_to(high)
    while high - low > 1:
        mid = (low + high) // 2
        if fits_up_to(mid):
            low = mid
        else:
            high = mid
    return low, False


def max_seq_len(plan: Plan, budget_: Budget | None = None) -> tuple[int, bool]:
    """Return (largest seq_len at plan.workload.batch that fits, clamped to the model's limit).

    "Fits" means every length up to it fits, as a growing sequence needs: for every model
    but compressed-attention ones (DeepSeek-V4) bytes never fall as the sequence grows,
    so that is the largest length that fits (largest_fitting_seq).
    """
    budget_ = budget_ or budget(plan)
    batch = plan.workload.batch
    limit = plan.model.max_position_embeddings or 2**24
    return largest_fitting_seq(
        lambda seq: fits_at(plan, seq, batch, budget_), limit, compression_rates(plan.model)
    )


def max_tokens(plan: Plan, budget_: Budget | None = None, kv: KvBreakdown | None = None) -> int:
    """Return the KV capacity in tokens per GPU (the tightest stage), as the engine reports it.

    vLLM: (num_blocks // num_groups) · block_size, num_blocks = budget // (page · group_size)
    (kv_cache_utils.get_num_blocks, _report_kv_cache_config); others: budget // bytes per
    token of the stage's layers, rounded down to the engine's block.
    """
    budget_ = budget_ or budget(plan)
    if budget_.pools is not None:  # SGLang's split pools: the full-attention pool's tokens
        return budget_.pools.kv_tokens
    if kv is None:  # any length does: the capacity is per token
        kv = kv_cache(plan.model, replace(plan.workload, batch=1), plan.engine)
    if kv.block_pool is not None:  # one stage: pipeline parallelism is refused for it
        pool_budget = budget_.stage_kv_budget_bytes[0]
        return _pool_tokens_reported(kv.block_pool, kv.workload.seq_len, pool_budget)
    result = None
    for stage, kv_budget in enumerate(budget_.stage_kv_budget_bytes):
        layers = _stage_layers(kv, stage)
        per_token = sum(
            sum(per)
            for w, per in layers.attention.items()
            if w is None or w.kind not in COMPRESSED_PARTS  # rows per m tokens, not per token
        )
        if not per_token:
            continue
        if kv.engine.pads_hybrid_groups:  # vLLM: one block pool shared by equal-size groups
            units = _stage_units(kv, stage, kv_budget)
            counts = [len(b) for b in layers.attention.values()]
            counts += [n for n, _ in layers.state.values()]
            size = hybrid_group_size(counts)
            n_groups = sum(cdiv(c, size) for c in counts) if len(counts) > 1 else 1
            # _report_kv_cache_config: blocks per group times the smallest block size
            smallest = min(
                (g.block_size or kv.block_size for g in kv.groups), default=kv.block_size
            )
            tokens = units.available // n_groups * smallest
        else:
            # engines that reserve state slots out of the KV budget (TensorRT-LLM: one per
            # sequence of max_batch_size = the plan's batch) report the tokens beside them
            state = 0
            if reserves_state_slots(kv.engine, kv):
                state = plan.workload.batch * sum(n * page for n, page in layers.state.values())
            tokens = max(0, kv_budget - state) // per_token
            tokens -= tokens % kv.block_size
        result = tokens if result is None else min(result, tokens)
    return result or 0


def _pool_tokens_reported(pool: BlockPool, seq_len: int, kv_budget: int) -> int:
    """Return vLLM's "GPU KV cache size" for a DeepSeek-V4 pool at a length L = seq_len.

    kv_cache_planning._report_kv_cache_config: int(max_concurrency · L), max_concurrency =
    num_blocks / the blocks one sequence of L takes (get_max_concurrency_for_kv_cache_config),
    num_blocks = budget // block bytes; here as the exact floor of the rational.
    """
    num_blocks = max(0, kv_budget) // pool.block_bytes
    return num_blocks * seq_len // pool.blocks_per_sequence


class Searched(NamedTuple):
    """fit's searched answers, when something faster found them (kernel.fit_fast)."""

    budget: Budget
    max_batch: int
    max_seq_len: int
    max_seq_len_clamped: bool
    max_tokens: int
    kv: KvBreakdown  # kv_cache at the plan's point
    one: KvBreakdown  # kv_cache at the plan's seq_len, batch 1


def fit(plan: Plan, searched: Searched | None = None) -> Fit:
    """Return the full answer for a plan: verdict, headroom, max batch, max context, capacity.

    `searched`: the budget, max batch, max context and capacity already found for this plan
    (kernel.fit_fast, from compiled kernels equal to the searches here); else searched here.
    """
    if searched is None:
        budget_ = budget(plan)
        kv = kv_cache(plan.model, plan.workload, plan.engine)
        one = kv_cache(plan.model, replace(plan.workload, batch=1), plan.engine)
    else:
        budget_, kv, one = searched.budget, searched.kv, searched.one
    stage_units = [_stage_units(one, s, b) for s, b in enumerate(budget_.stage_kv_budget_bytes)]
    needed = [u.per_request * plan.workload.batch * u.unit_bytes for u in stage_units]
    kv_bytes = max(needed)
    per_seq_working = [
        _working_set(plan, one, plan.workload.seq_len, s) for s in range(len(stage_units))
    ]  # bytes (unit 1), per stage
    working = max(per_seq_working, default=0) * plan.workload.batch
    headroom = min(
        b - n - w * plan.workload.batch
        for b, n, w in zip(budget_.stage_kv_budget_bytes, needed, per_seq_working, strict=True)
    )
    if budget_.pools is not None:  # the tightest pool's room at the asked point
        headroom = _pools_headroom(budget_.pools, one, plan.workload.batch)
    if searched is None:
        batch_max = max_batch(plan, budget_)
        seq_max, clamped = max_seq_len(plan, budget_)
        tokens = max_tokens(plan, budget_)
    else:
        batch_max, seq_max = searched.max_batch, searched.max_seq_len
        clamped, tokens = searched.max_seq_len_clamped, searched.max_tokens
    concurrency = min(
        (
            u.available / (u.per_request + w)
            for u, w in zip(stage_units, per_seq_working, strict=True)
            if u.per_request
        ),
        default=0.0,
    )
    if budget_.pools is not None:
        concurrency = budget_.pools.concurrency(*_pool_tokens(one))
    notes = []
    if clamped and plan.model.max_position_embeddings is not None:
        notes.append(
            f"max context clamped to the model's max_position_embeddings "
            f"({plan.model.max_position_embeddings:,})"
        )
    elif clamped:  # max_seq_len's search cap: the model states no context limit
        notes.append(
            f"max context capped at {seq_max:,} tokens, the search limit (the model states "
            "no max_position_embeddings)"
        )
    if (
        plan.model.max_position_embeddings
        and plan.workload.seq_len > plan.model.max_position_embeddings
    ):
        notes.append(
            f"seq {plan.workload.seq_len:,} exceeds the model's max_position_embeddings "
            f"({plan.model.max_position_embeddings:,})"
        )
    if budget_.kv_budget_bytes <= 0:
        notes.append("weights and reserve leave no memory for the KV cache")
    if working:
        per_seq = working // plan.workload.batch
        unmeasured = sorted(
            {
                "compressed-attention" if isinstance(kind, CompressedKind) else "recurrent-state"
                for kind in (plan.model.kinds or {}).values()
                if isinstance(kind, CompressedKind | StateKind)
            }
        )
        how = (
            "transformers, measured"
            if not unmeasured
            else "transformers' rules for attention layers, measured on dense, sliding and "
            f"MLA models; not measured with this model's {' and '.join(unmeasured)} layers: "
            "an estimate"
        )
        tail = hf_sliding_storage_tail(one, plan.workload.seq_len)
        behind = (
            f"; {tail:,} B of it is the sliding layers' W-token tensors behind their "
            "W − 1 token cache views"
            if tail
            else ""
        )
        notes.append(
            f"decode step's working set counted beside the KV: {per_seq:,} B per sequence "
            f"({how}; PyTorch's default allocator can lose more to "
            f"fragmentation: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True avoids it{behind})"
        )
    if plan.weights_dtype is None and plan.model.weights_quant is not None:
        notes.append(f"weights as published: {plan.model.weights_quant.summary}")
    mix_note = weights_mix_note(plan.model, plan.weights_dtype)
    if mix_note is not None:
        notes.append(mix_note)
    notes += _tower_notes(plan)
    approximate = weights_approximation(plan.model, plan.workload.tp, plan.workload.pp)
    if approximate is not None:
        notes.append(approximate)
    return Fit(
        plan=plan,
        kv=kv,
        budget=budget_,
        fits=headroom >= 0 and budget_.kv_budget_bytes > 0,
        headroom_bytes=headroom,
        kv_bytes=kv_bytes,
        max_batch=batch_max,
        max_seq_len=seq_max,
        max_seq_len_clamped=clamped,
        max_tokens=tokens,
        max_concurrency=concurrency,
        notes=tuple(notes),
        weights_approximate=approximate,
    )


def _tower_notes(plan: Plan) -> list[str]:
    """Return fit's note on a multimodal checkpoint's tower: counted, and how, or not."""
    model = plan.model
    if model.tower is None:
        if not (
            model.multimodal or (model.architecture or "").endswith("ForConditionalGeneration")
        ):
            return []
        return [
            f"{model.architecture} is multimodal: its vision/audio tower is not counted "
            "in the weights (the spec is the language model); --reserve can hold room for it"
        ]
    dtype = plan.weights_dtype or WEIGHT_DTYPES[model.dtype]
    if dtype.gguf:
        return [
            f"{model.architecture} is multimodal: its {_towers(model)} not counted in "
            f"{dtype.name} weights (llama.cpp loads a tower from a separate --mmproj file)"
        ]
    on_gpu = tower_bytes_per_gpu(model, plan.workload.tp, dtype)
    kept = "" if model.tower.quantized or Fraction(dtype.num, dtype.den) >= 2 else ", in 16 bits"
    if model.tower.audio is None:
        counted = f"vision tower ({model.tower.params:,} params) is"
    else:
        counted = (
            f"vision and audio towers ({model.tower.params:,} params, "
            f"{model.tower.audio:,} of them audio) are"
        )
    return [
        f"{model.architecture} is multimodal: its {counted} counted in the weights{kept}, "
        f"{on_gpu:,} B per GPU on every pipeline stage"
    ]


def _towers(model: ModelSpec) -> str:
    """Return 'vision tower is' or, with an audio tower, 'vision and audio towers are'."""
    if model.tower is not None and model.tower.audio is not None:
        return "vision and audio towers are"
    return "vision tower is"


def min_gpus_candidates(
    model: ModelSpec, engine: EngineProfile, max_pp: int = MAX_PP
) -> list[tuple[int, int, int]]:
    """Return min_gpus's (n_gpus, pp, tp) candidates in search order: fewest GPUs, then pp.

    tp ranges over powers of two the model's heads allow under the engine, pp over
    1..max_pp (at most the model's layers).
    """
    options = []
    for tp in TP_CANDIDATES:
        try:
            kv_heads_per_gpu(model, engine, tp)
        except KvcalcError:
            continue
        for pp in range(1, min(max_pp, model.n_layers) + 1):
            options.append((tp * pp, pp, tp))
    return sorted(options)


def min_gpus_lower_bound(plan: Plan) -> int:
    """Return a number of GPUs below which the workload cannot fit, whatever the tp × pp.

    Each GPU's KV budget is at most its capacity less its weights (every budget rule takes
    at least the weights away), so n GPUs hold at most n · capacity − Σ weights of KV. The
    weights summed over all GPUs are at least the unsplit model's (sharding rounds up and
    replicates KV projections; it never drops bytes), and the KV at least every layer's
    tokens at the unsharded per-layer bytes (replicated heads and padded groups only add):
      n ≥ ceil((weights(tp 1, pp 1) + batch · Σ_layers tokens · bytes_per_token_per_layer)
               / capacity)
    Returns 1 when the bound cannot be computed (the search then decides).
    """
    one = replace(plan.workload, tp=1, pp=1)
    try:
        weights = weights_per_stage(plan.model, plan.engine, 1, 1, plan.weights_dtype)[0]
        kv = kv_cache(plan.model, replace(one, batch=1), plan.engine)
    except KvcalcError:
        return 1
    need = sum(g.count * g.tokens * g.bytes_per_token_per_layer for g in kv.groups)
    return max(1, cdiv(weights + need * plan.workload.batch, plan.gpu.memory_bytes))


def min_gpus(plan: Plan, max_pp: int = MAX_PP) -> tuple[int, int] | None:
    """Return the smallest (tp, pp) whose tp·pp GPUs fit the workload, preferring pp = 1.

    tp ranges over powers of two the model's heads allow under the engine, pp over
    1..max_pp (max_pp = 1: the smallest tensor-parallel size alone). None when nothing fits.
    Candidates below min_gpus_lower_bound are not tried.
    """
    candidates = min_gpus_candidates(plan.model, plan.engine, max_pp)
    if not candidates:
        return None
    low = min_gpus_lower_bound(plan)
    if low > candidates[-1][0]:
        return None
    for n, pp, tp in candidates:
        if n < low:
            continue
        candidate = replace(plan, workload=replace(plan.workload, tp=tp, pp=pp))
        try:
            if budget(candidate).kv_budget_bytes <= 0:
                continue
            if fits_at(candidate, plan.workload.seq_len, plan.workload.batch):
                return tp, pp
        except KvcalcError:
            continue
    return None


def split_gpus(model: ModelSpec, engine: EngineProfile, n_gpus: int) -> tuple[int, int]:
    """Return (tp, pp) for n_gpus: the largest tensor-parallel size the heads allow, rest pipeline."""
    for tp in sorted((t for t in TP_CANDIDATES if n_gpus % t == 0), reverse=True):
        try:
            kv_heads_per_gpu(model, engine, tp)
        except KvcalcError:
            continue
        if n_gpus // tp <= model.n_layers:
            return tp, n_gpus // tp
    raise KvcalcError(
        f"cannot split {n_gpus} GPUs into tp × pp for {model.name} under {engine.name}"
    )
