"""The formula engine: spec + workload + engine profile -> exact KV-cache bytes (pure, integer).

Bytes per token per layer on one GPU, by head layout (arXiv 2405.04434 Table 1):
  MHA 2·n_heads·head_dim, GQA 2·n_kv_heads·head_dim, MQA 2·head_dim, all × dtype size
  (n_kv·(d_k + d_v) when K and V dims differ); MLA (kv_lora_rank + qk_rope_head_dim) × dtype
  size with no factor 2. Times the tokens each layer holds (sliding layers hold at most
  about the window, by the engine's rule), times batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvcalc.dtypes import KV_DTYPES, KvDtype
from kvcalc.engines import EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.llamacpp import LlamaCppOptions, check_cache_types, llama_context
from kvcalc.specs import GQA, MLA, ModelSpec, Window


def cdiv(a: int, b: int) -> int:
    """Return ceil(a / b) for positive integers."""
    return -(-a // b)


def round_up(a: int, multiple: int) -> int:
    """Return a rounded up to a multiple of `multiple`."""
    return cdiv(a, multiple) * multiple


@dataclass(frozen=True)
class Workload:
    """What is being served: tokens per sequence, concurrent sequences, cache dtypes, parallelism."""

    seq_len: int
    batch: int = 1
    # None: "auto", the engine's default cache type, else the model's own dtype
    k_dtype: KvDtype | None = None
    v_dtype: KvDtype | None = None
    tp: int = 1
    pp: int = 1
    block_size: int | None = None  # overrides the engine's page size
    max_num_batched_tokens: int | None = None  # overrides the engine's (vLLM sliding planning)
    # TensorRT-LLM's max_attention_window: per-layer windows, cycled over the layers
    attention_windows: tuple[int, ...] | None = None
    # llama.cpp's context flags (-c, -kvu, -b, -ub, --swa-full, -fa): engine llama.cpp only
    llamacpp: LlamaCppOptions | None = None

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch", "tp", "pp"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise KvcalcError(f"{name} must be a positive integer, got {value!r}")
        for name in ("block_size", "max_num_batched_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise KvcalcError(f"{name} must be a positive integer, got {value!r}")
        if self.attention_windows is not None and (
            not self.attention_windows or any(w < 1 for w in self.attention_windows)
        ):
            raise KvcalcError("attention windows must be positive token counts")


@dataclass(frozen=True)
class LayerGroup:
    """Layers of one kind (full, or sliding with one window) and what they hold."""

    kind: str  # "full", "sliding" or "chunked"
    window: int | None  # tokens of the window or chunk
    count: int  # layers of this kind in the whole model
    padded_count: int  # layers allocated, with vLLM's hybrid-group padding
    tokens: int  # tokens each such layer holds per sequence
    bytes_per_token_per_layer: int  # on one GPU (local heads)
    bytes: int  # whole workload, all GPUs (replicas included)
    key: Window | None = None  # the layers' window, as KvBreakdown.layer_windows lists it


@dataclass(frozen=True)
class KvBreakdown:
    """The KV-cache size of a workload, with everything needed to explain it."""

    model: ModelSpec
    engine: EngineProfile
    workload: Workload
    k_dtype: KvDtype
    v_dtype: KvDtype
    kv_heads_per_gpu: int
    block_size: int
    groups: tuple[LayerGroup, ...]
    bytes_per_token: int  # all layers, one sequence, unsharded (logical)
    per_gpu_bytes_per_token: int  # all layers of the busiest stage, one GPU
    per_sequence_bytes: int  # one sequence, all GPUs
    total_bytes: int  # whole workload, all GPUs
    per_gpu_bytes: int  # busiest GPU
    layer_windows: tuple[Window | None, ...]  # each layer's effective window (None: full)
    stage_layers: tuple[tuple[int, int], ...]  # [start, end) layer range of each PP stage
    stage_bytes: tuple[int, ...]  # KV bytes on one GPU of each PP stage
    busiest_stage: int
    formula: str
    layer_formula: str
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_gpus(self) -> int:
        return self.workload.tp * self.workload.pp


def pp_partition(n_layers: int, pp: int) -> tuple[tuple[int, int], ...]:
    """Return [start, end) layer ranges per pipeline stage, as vLLM's get_pp_indices splits them.

    vllm-project/vllm:vllm/distributed/utils.py:get_pp_indices: n // pp layers each, the
    remainder added one each to the stages before the last (the last holds the LM head).
    """
    if pp > n_layers:
        raise KvcalcError(f"pp {pp} exceeds the model's {n_layers} layers")
    sizes = [n_layers // pp] * pp
    for i in range(2, n_layers % pp + 2):
        sizes[-i] += 1
    ranges = []
    start = 0
    for size in sizes:
        ranges.append((start, start + size))
        start += size
    return tuple(ranges)


def kv_heads_per_gpu(model: ModelSpec, engine: EngineProfile, tp: int) -> int:
    """Return the KV heads each tensor-parallel rank holds, after the engine's replication rule."""
    attention = model.attention
    n_kv = attention.n_kv_heads
    if isinstance(attention, GQA) and model.family in engine.expanded_kv_families:
        n_kv = attention.n_heads
    if tp == 1:
        return n_kv
    if engine.head_rule == "none":
        raise KvcalcError(
            f"engine {engine.name} has no tensor parallelism (it splits layers): use --pp, not --tp"
        )
    if attention.n_heads % tp:
        raise KvcalcError(
            f"tp {tp} does not divide the {attention.n_heads} attention heads of {model.name}"
        )
    if isinstance(attention, MLA):
        return 1  # the latent is replicated on every rank
    if n_kv >= tp and n_kv % tp:
        raise KvcalcError(f"tp {tp} does not divide the {n_kv} KV heads of {model.name}")
    if n_kv < tp and tp % n_kv:
        raise KvcalcError(
            f"tp {tp} is not a multiple of the {n_kv} KV heads of {model.name} "
            "(heads cannot be replicated evenly)"
        )
    if engine.head_rule == "ceil":
        return cdiv(n_kv, tp)
    return max(1, n_kv // tp)


def layer_bytes_per_token(
    model: ModelSpec, engine: EngineProfile, k_dtype: KvDtype, v_dtype: KvDtype, heads: int
) -> tuple[int, str]:
    """Return (bytes one token adds to one layer on one GPU, the formula as text)."""
    attention = model.attention
    if isinstance(attention, MLA):
        if engine.mla_layout == "expanded":
            k_elems = attention.qk_nope_head_dim + attention.qk_rope_head_dim
            k = attention.n_heads * k_dtype.row_bytes(k_elems)
            v = attention.n_heads * v_dtype.row_bytes(attention.v_head_dim)
            text = (
                f"{attention.n_heads} heads × ({k_elems} K·{_size(k_dtype)} + "
                f"{attention.v_head_dim} V·{_size(v_dtype)}) [MLA expanded per head]"
            )
            return k + v, text
        if k_dtype.name == "fp8_ds_mla":
            if attention.kv_lora_rank % 128:
                raise KvcalcError("fp8_ds_mla needs kv_lora_rank to be a multiple of 128")
            scales = attention.kv_lora_rank // 128 * 4
            rope = attention.qk_rope_head_dim * 2
            total = attention.kv_lora_rank + scales + rope
            text = (
                f"({attention.kv_lora_rank} fp8 latent + {scales} B scales + "
                f"{attention.qk_rope_head_dim}·2 B rope) [fp8_ds_mla]"
            )
            return total, text
        latent = k_dtype.row_bytes(attention.latent_dim)
        text = (
            f"({attention.kv_lora_rank} kv_lora_rank + {attention.qk_rope_head_dim} "
            f"qk_rope_head_dim)·{_size(k_dtype)} [MLA latent, no V]"
        )
        return latent, text
    if "fp8_ds_mla" in (k_dtype.name, v_dtype.name):
        raise KvcalcError("KV dtype fp8_ds_mla applies to MLA models only")
    d_k, d_v = attention.head_dim_k, attention.v_dim
    k = heads * (k_dtype.row_bytes(d_k) + k_dtype.scale_bytes_per_head)
    v = heads * (v_dtype.row_bytes(d_v) + v_dtype.scale_bytes_per_head)
    same = k_dtype == v_dtype and d_k == d_v
    if same and not k_dtype.scale_bytes_per_head:
        text = f"2 (K,V) × {heads} KV heads × {d_k} head_dim × {_size(k_dtype)}"
    else:
        k_text = f"{d_k}·{_size(k_dtype)}" + _scale_text(k_dtype)
        v_text = f"{d_v}·{_size(v_dtype)}" + _scale_text(v_dtype)
        text = f"{heads} KV heads × (K {k_text} + V {v_text})"
    return k + v, text


def _size(dtype: KvDtype) -> str:
    if dtype.block_elems == 1:
        return f"{dtype.block_bytes} B {dtype.name}"
    return f"{dtype.block_bytes}/{dtype.block_elems} B {dtype.name}"


def _scale_text(dtype: KvDtype) -> str:
    return f" + {dtype.scale_bytes_per_head} B scale" if dtype.scale_bytes_per_head else ""


def tokens_held(
    engine: EngineProfile,
    model: ModelSpec,
    workload: Workload,
    local: Window | None,
    block: int,
) -> int:
    """Return the tokens one layer holds for one sequence under the engine's rules.

    Chunked layers (Llama 4) hold at most one chunk; engines size them like sliding
    windows, except vLLM's ChunkedLocalAttentionSpec: cdiv(min(C + N, seq), B) blocks.
    """
    seq = round_up(workload.seq_len, engine.context_pad)
    window = None if local is None else local.size
    sliding_rule = engine.sliding
    if not engine.honours_window(model.family, model.architecture):
        sliding_rule = "full"
    if workload.attention_windows is not None:
        sliding_rule = "window"  # windows the user gave the engine (TRT-LLM max_attention_window)
    if engine.sliding == "llama_cpp":  # one stream's cells (kvcalc/llamacpp.py)
        ctx = llama_context(workload.llamacpp, workload.seq_len, workload.batch)
        return ctx.stream_cells(None if sliding_rule == "full" else window)
    if window is None or sliding_rule == "full":
        return round_up(seq, block)
    if sliding_rule == "window":
        return round_up(min(seq, window), block)
    if sliding_rule == "window_minus_one":
        return min(seq, window - 1)
    if sliding_rule == "vllm_planning":
        n_batched = workload.max_num_batched_tokens or engine.max_num_batched_tokens or seq
        if local is not None and local.kind == "chunked":
            return cdiv(min(window + n_batched, seq), block) * block
        return (cdiv(min(window - 1 + n_batched, seq), block) + 1) * block
    # llama_cpp: GGML_PAD(min(kv_size, n_swa + n_ubatch), 256)
    ubatch = engine.ubatch or 512
    return round_up(min(seq, window + ubatch), engine.context_pad)


def _kv_streams(engine: EngineProfile, workload: Workload) -> int:
    """Return how many copies of a layer's held tokens are allocated: one per sequence, or
    one shared stream for llama.cpp's unified cache (src/llama-kv-cache.cpp n_stream)."""
    if engine.sliding == "llama_cpp" and workload.llamacpp and workload.llamacpp.kv_unified:
        return 1
    return workload.batch


def _check_llama_cpp(
    model: ModelSpec, workload: Workload, engine: EngineProfile, k_dtype: KvDtype, v_dtype: KvDtype
) -> None:
    """Refuse llama.cpp flags on other engines, and cache types llama.cpp refuses."""
    if engine.sliding != "llama_cpp":
        if workload.llamacpp is not None:
            raise KvcalcError(
                f"llama.cpp context options apply to --engine llama.cpp, not {engine.name}"
            )
        return
    attention = model.attention
    if isinstance(attention, MLA):
        dims = (attention.latent_dim, attention.kv_lora_rank)
    else:
        dims = (attention.head_dim_k, attention.v_dim)
    options = workload.llamacpp or LlamaCppOptions()
    check_cache_types(k_dtype, v_dtype, isinstance(attention, MLA), dims, options.flash_attn)


def hybrid_group_size(counts: list[int]) -> int:
    """Return vLLM's KV-cache group size for layer types of these counts.

    vllm-project/vllm:vllm/v1/core/kv_cache_utils.py:_get_kv_cache_groups_uniform_page_size:
    the smallest count, or the largest when it is under 1.5 × the smallest.
    """
    low, high = min(counts), max(counts)
    return high if high < 1.5 * low else low


def padded_layer_counts(
    engine: EngineProfile, windows: tuple[Window | None, ...]
) -> dict[Window | None, int]:
    """Return layers allocated per window: vLLM pads each hybrid group to the group size."""
    counts = {w: windows.count(w) for w in set(windows)}
    if engine.pads_hybrid_groups and len(counts) > 1:
        size = hybrid_group_size(list(counts.values()))
        return {w: cdiv(n, size) * size for w, n in counts.items()}
    return counts


def _layers_text(group: LayerGroup) -> str:
    if group.padded_count == group.count:
        return str(group.count)
    return f"({group.count} + {group.padded_count - group.count} padding)"


def kv_cache(model: ModelSpec, workload: Workload, engine: EngineProfile) -> KvBreakdown:
    """Return the exact KV-cache bytes of `workload` on `model` as `engine` allocates them."""
    k_dtype = workload.k_dtype or KV_DTYPES[engine.default_kv_dtype or model.dtype]
    v_dtype = workload.v_dtype or KV_DTYPES[engine.default_kv_dtype or model.dtype]
    is_mla = isinstance(model.attention, MLA)
    block = workload.block_size or engine.block_for(is_mla)
    tp, pp, batch = workload.tp, workload.pp, workload.batch
    _check_llama_cpp(model, workload, engine, k_dtype, v_dtype)
    heads = kv_heads_per_gpu(model, engine, tp)
    per_layer, per_layer_text = layer_bytes_per_token(model, engine, k_dtype, v_dtype, heads)
    logical_heads = kv_heads_per_gpu(model, engine, 1)
    logical_per_layer, _ = layer_bytes_per_token(model, engine, k_dtype, v_dtype, logical_heads)

    windows = effective_windows(model, workload, engine)
    held = {w: tokens_held(engine, model, workload, w, block) for w in set(windows)}
    streams = _kv_streams(engine, workload)  # held is per stream: batch, or 1 (llama.cpp -kvu)

    stages = pp_partition(model.n_layers, pp)
    # layers each stage allocates per window, padding of vLLM's hybrid groups included
    stage_counts = [padded_layer_counts(engine, windows[a:b]) for a, b in stages]
    stage_bytes = [
        sum(n * held[w] * streams * per_layer for w, n in counts.items()) for counts in stage_counts
    ]
    busiest = max(range(pp), key=lambda s: (stage_bytes[s], -s))
    start, end = stages[busiest]

    groups = []
    for local in sorted(set(windows), key=lambda w: ("", 0) if w is None else w):
        allocated = sum(counts.get(local, 0) for counts in stage_counts)
        groups.append(
            LayerGroup(
                kind="full" if local is None else local.kind,
                window=None if local is None else local.size,
                count=windows.count(local),
                padded_count=allocated,
                tokens=held[local],
                bytes_per_token_per_layer=per_layer,
                bytes=tp * allocated * held[local] * streams * per_layer,
                key=local,
            )
        )
    total = sum(g.bytes for g in groups)
    return KvBreakdown(
        model=model,
        engine=engine,
        workload=workload,
        k_dtype=k_dtype,
        v_dtype=v_dtype,
        kv_heads_per_gpu=heads,
        block_size=block,
        groups=tuple(groups),
        bytes_per_token=logical_per_layer * model.n_layers,
        per_gpu_bytes_per_token=per_layer * (end - start),
        per_sequence_bytes=total // batch,
        total_bytes=total,
        per_gpu_bytes=stage_bytes[busiest],
        layer_windows=windows,
        stage_layers=stages,
        stage_bytes=tuple(stage_bytes),
        busiest_stage=busiest,
        formula=_total_formula(groups, batch, tp, total),
        layer_formula=f"{per_layer_text} = {per_layer:,} B per token per layer per GPU",
        assumptions=_assumptions(model, workload, engine, windows, groups, logical_heads),
    )


def effective_windows(
    model: ModelSpec, workload: Workload, engine: EngineProfile
) -> tuple[Window | None, ...]:
    """Return each layer's window: the model's, or TRT-LLM max_attention_window when given."""
    given = workload.attention_windows
    if given is None:
        return model.layer_windows()
    if not engine.accepts_attention_windows:
        raise KvcalcError(f"--max-attention-window applies to engine trtllm, not {engine.name}")
    return tuple(
        Window("sliding", given[i % len(given)])
        if given[i % len(given)] < workload.seq_len
        else None
        for i in range(model.n_layers)
    )


def _kind_text(group: LayerGroup) -> str:
    if group.window is None:
        return ""
    label = "W" if group.kind == "sliding" else "chunk"
    return f"{group.kind} ({label}={group.window}) "


def _total_formula(groups: list[LayerGroup], batch: int, tp: int, total: int) -> str:
    terms = [
        f"{_layers_text(g)} {_kind_text(g)}layers × "
        f"{g.tokens:,} tokens × {batch:,} seq × {g.bytes_per_token_per_layer:,} B"
        for g in groups
    ]
    text = " + ".join(terms)
    if len(groups) > 1 or tp > 1:
        text = f"({text})"
    if tp > 1:
        text += f" × {tp} TP ranks"
    return f"{text} = {total:,} B"


def _assumptions(
    model: ModelSpec,
    workload: Workload,
    engine: EngineProfile,
    windows: tuple[Window | None, ...],
    groups: list[LayerGroup],
    logical_heads: int,
) -> tuple[str, ...]:
    """Return the engine's assumptions that apply to this model, and notes on this workload."""
    is_mla = isinstance(model.attention, MLA)
    tp = workload.tp
    topics = {"pp"} if workload.pp > 1 else set()
    if any(w is not None and w.kind == "sliding" for w in windows):
        topics.add("sliding")
    if any(w is not None and w.kind == "chunked" for w in windows):
        topics.update({"sliding", "chunked"})
    if is_mla:
        topics.add("mla")
    if model.family == "falcon" and isinstance(model.attention, GQA):
        topics.add("falcon")
    notes = list(engine.assumptions_for(topics))
    no_window = not engine.honours_window(model.family, model.architecture)
    if model.layers is not None and no_window:
        notes.append(
            f"{engine.name} gives {model.family or 'this model'} no sliding-window savings"
        )
    if any(g.padded_count > g.count for g in groups):
        notes.append(
            "hybrid layers are grouped in equal-size KV groups; short groups are padded "
            "(vLLM kv_cache_utils), so padding layers hold KV too"
        )
    limit = model.max_position_embeddings
    if limit is not None and workload.seq_len > limit:
        notes.append(
            f"seq_len {workload.seq_len:,} exceeds the model's max_position_embeddings {limit:,}"
        )
    if is_mla and tp > 1 and engine.mla_layout == "latent":
        notes.append("MLA latent is replicated on every TP rank: TP does not shrink it")
    if not is_mla and tp > logical_heads and engine.head_rule != "none":
        notes.append(
            f"tp {tp} > {logical_heads} KV heads: each head replicated on "
            f"{tp // logical_heads} ranks"
        )
    return tuple(notes)
