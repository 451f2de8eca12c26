"""The formula engine: spec + workload + engine profile -> exact KV-cache bytes (pure, integer).

Bytes per token per layer on one GPU, by head layout (arXiv 2405.04434 Table 1):
  MHA 2·n_heads·head_dim, GQA 2·n_kv_heads·head_dim, MQA 2·head_dim, all × dtype size
  (n_kv·(d_k + d_v) when K and V dims differ); MLA (kv_lora_rank + qk_rope_head_dim) × dtype
  size with no factor 2. Times the tokens each layer holds (sliding layers hold at most
  about the window, by the engine's rule), times batch.
"""

import math
from dataclasses import field, replace
from typing import TYPE_CHECKING, Literal

from kvcalc.dtypes import KV_DTYPES, KvDtype
from kvcalc.engines import ENGINES, EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.records import record
from kvcalc.specs import (
    GQA,
    MHA,
    MLA,
    MQA,
    AttentionKind,
    CompressedKind,
    ModelSpec,
    NoCacheKind,
    StateKind,
    Window,
)

if TYPE_CHECKING:  # imported where a llama.cpp workload is sized: the other engines skip it
    from kvcalc.llamacpp import LlamaCppOptions


def cdiv(a: int, b: int) -> int:
    """Return ceil(a / b) for positive integers."""
    return -(-a // b)


def round_up(a: int, multiple: int) -> int:
    """Return a rounded up to a multiple of `multiple`."""
    return cdiv(a, multiple) * multiple


@record
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
    # speculative decoding with the model's MTP / next-n layers: the engine caches them too
    mtp: bool = False
    # vLLM --enable-prefix-caching, and its --mamba-cache-mode for state layers (None: the
    # mode vLLM picks for the model)
    prefix_caching: bool = False
    mamba_cache_mode: Literal["align", "all"] | None = None
    # llama.cpp's context flags (-c, -kvu, -b, -ub, --swa-full, -fa): engine llama.cpp only
    llamacpp: "LlamaCppOptions | None" = None

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
        if self.mamba_cache_mode is not None and not self.prefix_caching:
            raise KvcalcError(
                f"--mamba-cache-mode {self.mamba_cache_mode} needs --prefix-caching (vLLM sets "
                "mamba_cache_mode none when prefix caching is off)"
            )


@record
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
    layer_kind: str = ""  # the spec's kind name when not a built-in (full/sliding/chunked)
    block_size: int = 0  # tokens per block of these layers (vLLM re-blocks smaller pages); 0: kv's


@record
class StateGroup:
    """Recurrent / linear-attention layers of one kind: a fixed state per sequence, not per token."""

    layer_kind: str  # the spec's kind name
    mixer: str  # mamba2, gated_deltanet, ...
    count: int  # layers of this kind in the whole model
    padded_count: int  # layers allocated, with vLLM's hybrid-group padding
    conv_bytes_per_layer: int  # one sequence, one GPU
    recurrent_bytes_per_layer: int  # one sequence, one GPU
    bytes_per_sequence_per_layer: int  # as allocated (vLLM: its pages, padded to the KV page)
    bytes: int  # whole workload, all GPUs
    formula: str
    # vLLM: state pages a sequence holds (mamba_cache_mode align: 2, all: cdiv(seq, block))
    pages_per_sequence: int = 1


@record
class PoolGroup:
    """vLLM KV-cache groups of one shape drawing blocks from the shared pool (DeepSeek-V4)."""

    name: str  # what its layers cache, e.g. "SWA" or "C4 state (kv + score, C4I)"
    layers: int  # cache layers in these groups (one per attention layer and tensor)
    groups: int  # vLLM KV-cache groups of this shape
    block_size: int  # tokens per block
    window: int | None  # sliding window in tokens; None: full attention (blocks for every token)
    pages: tuple[int, ...]  # each layer's page bytes as allocated (after padding)
    blocks: int  # blocks one sequence holds in each such group


@record
class BlockPool:
    """vLLM's one block pool for DeepSeek-V4 (kv_cache_utils._get_kv_cache_config_deepseek_v4).

    Every block is one page of each page size of the full-MLA group, times the layer tuples:
    block_bytes = layer_tuples · tuple_page_bytes, whichever group holds the block.
    """

    tuple_pages: tuple[int, ...]  # the full-MLA group's distinct page sizes (bytes)
    layer_tuples: int
    block_bytes: int
    groups: tuple[PoolGroup, ...]

    @property
    def blocks_per_sequence(self) -> int:
        """Blocks one sequence takes from the pool: the sum over every KV-cache group."""
        return sum(g.groups * g.blocks for g in self.groups)


@record
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
    # fixed-size recurrent / linear-attention state, apart from the growing KV above
    state_groups: tuple[StateGroup, ...] = ()
    state_bytes_per_sequence: int = 0  # one sequence, all GPUs
    state_total_bytes: int = 0  # whole workload, all GPUs
    state_per_gpu_bytes: int = 0  # busiest stage, one GPU
    stage_state_bytes: tuple[int, ...] = ()  # state bytes on one GPU of each PP stage
    layer_kinds: tuple[str, ...] = ()  # each layer's kind name (full, sliding, a spec kind)
    # bytes one token adds on one GPU, per layer (0 for layers without growing KV)
    layer_bytes_per_token: tuple[int, ...] = ()
    mtp_layers: int = 0  # MTP / next-n layers counted (speculative decoding on)
    # each layer's parts beside its window's (compressed layers: (part window, bytes per
    # part token) of the compressed, buffered and overlap tensors); () for other layers
    layer_parts: tuple[tuple[tuple[Window, int], ...], ...] = ()
    # vLLM's DeepSeek-V4 block pool: what a block costs and how many a sequence takes
    block_pool: BlockPool | None = None
    # the kernel block the engine's backends require whatever its own block-size choice
    # (vLLM's MiniMax-M3 sparse backends: 128); None where the engine's choice stands
    kernel_block_size: int | None = None
    # where the KV dtype came from: the option given, or what "auto" resolved to and why
    kv_dtype_source: str = ""

    @property
    def n_gpus(self) -> int:
        return self.workload.tp * self.workload.pp

    @property
    def cache_total_bytes(self) -> int:
        """Growing KV plus fixed state, whole workload, all GPUs."""
        return self.total_bytes + self.state_total_bytes

    @property
    def cache_per_gpu_bytes(self) -> int:
        """Growing KV plus fixed state on the busiest GPU."""
        return max(
            kv + st
            for kv, st in zip(
                self.stage_bytes,
                self.stage_state_bytes or (0,) * len(self.stage_bytes),
                strict=True,
            )
        )


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


def kv_heads_per_gpu(
    model: ModelSpec,
    engine: EngineProfile,
    tp: int,
    attention: MHA | GQA | MQA | MLA | None = None,
) -> int:
    """Return the KV heads each tensor-parallel rank holds, after the engine's replication rule.

    `attention`: a layer kind's own geometry (default: the model's attention).
    """
    attention = attention or model.attention
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


def kind_attention(model: ModelSpec, kind: AttentionKind) -> MHA | GQA | MQA | MLA:
    """Return the attention geometry of a layer kind: the model's, with the kind's overrides."""
    base = model.attention
    if isinstance(base, MLA):
        if not kind.indexer and base.index_head_dim is not None:
            return base.model_copy(update={"index_head_dim": None})
        return base
    if not (kind.n_kv_heads or kind.head_dim or kind.head_dim_v):
        return base
    n_kv = kind.n_kv_heads or base.n_kv_heads
    head_dim = kind.head_dim or base.head_dim
    head_dim_v = (
        kind.head_dim_v if kind.head_dim is not None else kind.head_dim_v or base.head_dim_v
    )
    fields = {"n_heads": base.n_heads, "head_dim": head_dim, "head_dim_v": head_dim_v}
    if n_kv == base.n_heads:
        return MHA(kind="mha", **fields)
    if n_kv == 1:
        return MQA(kind="mqa", **fields)
    return GQA(kind="gqa", n_kv_heads=n_kv, **fields)


def indexer_bytes_per_token(attention: MLA, engine: EngineProfile, k_dtype: KvDtype) -> int:
    """Return the bytes one token's DSA indexer key takes in one layer (0 without an indexer).

    fp8_scaled: index_head_dim fp8 values + one fp32 scale per 128 (vLLM
    vllm/model_executor/models/deepseek_v2.py:DeepseekV32IndexerCache, head_dim =
    index_head_dim + index_head_dim // quant_block_size · 4; SGLang
    python/sglang/srt/mem_cache/memory_pool.py:NSATokenToKVPool index_k_with_scale_buffer);
    model: index_head_dim values in the K cache dtype (transformers DynamicIndexedLayer;
    llama.cpp src/llama-kv-cache-dsa.cpp:llama_kv_cache_dsa, one head of indexer_head_size
    in type_k).
    """
    if attention.index_head_dim is None:
        return 0
    if engine.indexer_layout == "fp8_scaled":
        return attention.index_head_dim + cdiv(attention.index_head_dim, 128) * 4
    return k_dtype.row_bytes(attention.index_head_dim)


def has_gqa_indexer(model: ModelSpec) -> bool:
    """Return True when some GQA layer kind caches its own indexer key (MiniMax-M3)."""
    kinds = (model.kinds or {}).values()
    return any(isinstance(k, AttentionKind) and k.index_head_dim is not None for k in kinds)


# vllm/models/minimax_m3/common/sparse_attention.py:MiniMaxM3SparseBackend.supported_kv_cache_dtypes
_MINIMAX_M3_VLLM_KV_DTYPES = frozenset({"bf16", "fp8_e4m3", "fp8_e5m2"})


def kind_indexer_bytes_per_token(
    kind: AttentionKind,
    attention: MHA | GQA | MQA | MLA,
    engine: EngineProfile,
    dtypes: tuple[KvDtype, KvDtype, KvDtype],
) -> tuple[int, str]:
    """Return (bytes one token's indexer key takes in a GQA layer of `kind`, formula text).

    MiniMax-M3 sparse layers cache one head of index_head_dim beside K and V, so no
    tensor-parallel split (replicated, as a single KV head is). `dtypes` are the K, V and
    model dtypes; by the engine's gqa_indexer_dtype the key is stored
      kv:        in the K dtype (transformers models/minimax_m3_vl/modeling_minimax_m3_vl.py:
                 MiniMaxM3VLSparseCacheLayer.idx_keys [batch, 1, seq, index_head_dim]);
      model:     in the model's dtype whatever the KV dtype (SGLang MiniMaxSparseKVPool:
                 index_dtype=model_dtype, head_num=1; pool_configurator
                 DefaultPoolConfigurator._compute_cell_size adds num_indexer_k_only ·
                 sparse_index_dim · element_size(model_dtype));
      bf16:      in bf16 whatever the KV dtype (vLLM vllm/models/minimax_m3/common/
                 indexer.py:MiniMaxM3IndexerCache.get_kv_cache_spec, an MLAAttentionSpec of
                 one head of index_head_dim, no V, in indexer_kv_dtype: bf16 by default);
      llama_cpp: in a second llama_kv_cache with one KV head whose K row is index_head_dim
                 in the K type and whose V row keeps the layer's V head dim in the V type
                 (src/llama-kv-cache-msa.cpp: hparams_idx sets n_head_kv 1 and
                 n_embd_head_k_full only; llama_kv_cache allocates K and V for non-MLA).
    (0, "") without one.
    """
    if kind.index_head_dim is None:
        return 0, ""
    k_dtype, v_dtype, model_dtype = dtypes
    layout = engine.gqa_indexer_dtype
    if layout is None:
        raise KvcalcError(
            f"engine {engine.name}: the indexer keys GQA sparse-attention layers cache "
            "(MiniMax-M3) are not modelled for it (try --engine sglang, hf or formula)"
        )
    if layout == "model" and (k_dtype.block_elems > 1 or k_dtype.scale_bytes_per_head):
        # the pool counts element_size(kv_cache_dtype) per K/V value, no block scales
        raise KvcalcError(
            f"engine {engine.name}: KV dtype {k_dtype.name} in a MiniMax-M3 pool "
            "(MiniMaxSparseKVPool) is not modelled (bf16, fp16 or fp8 are)"
        )
    if layout == "bf16" and {k_dtype.name, v_dtype.name} - _MINIMAX_M3_VLLM_KV_DTYPES:
        raise KvcalcError(
            f"engine {engine.name}: KV dtype {k_dtype.name}/{v_dtype.name} for MiniMax-M3: its "
            "sparse backend takes bf16 or fp8 (MiniMaxM3SparseBackend.supported_kv_cache_dtypes)"
        )
    dtype = {"model": model_dtype, "bf16": KV_DTYPES["bf16"]}.get(layout, k_dtype)
    index = dtype.row_bytes(kind.index_head_dim)
    text = f" + {index} B indexer key ({kind.index_head_dim} {dtype.name}, one head)"
    if layout == "llama_cpp" and not isinstance(attention, MLA):  # MLA kinds have no index key
        unused_v = v_dtype.row_bytes(attention.v_dim)
        text += f" + {unused_v} B its cache's V row ({attention.v_dim} {v_dtype.name})"
        index += unused_v
    return index, text


def _check_trailing_indexer_layers(model: ModelSpec, engine: EngineProfile) -> None:
    """Refuse indexer layers other than one trailing run: llama.cpp's MiniMax-M3 caches
    indexer keys in every layer from n_layer_dense_lead on (src/llama-model.cpp
    create_memory filter_idx; conversion/minimax.py counts the leading dense layers)."""
    indexed = []
    for name in model.layer_kind_names():
        kind = model.layer_kind(name)
        indexed.append(isinstance(kind, AttentionKind) and kind.index_head_dim is not None)
    if indexed != sorted(indexed):
        raise KvcalcError(
            f"engine {engine.name}: indexer layers that are not the last ones (it caches "
            "indexer keys in every layer past the leading dense ones) are not modelled"
        )


def layer_bytes_per_token(
    model: ModelSpec,
    engine: EngineProfile,
    k_dtype: KvDtype,
    v_dtype: KvDtype,
    heads: int,
    attention: MHA | GQA | MQA | MLA | None = None,
) -> tuple[int, str]:
    """Return (bytes one token adds to one layer on one GPU, the formula as text)."""
    attention = attention or model.attention
    if isinstance(attention, MLA):
        total, text = _mla_bytes_per_token(attention, engine, k_dtype, v_dtype)
        index = indexer_bytes_per_token(attention, engine, k_dtype)
        if index:
            layout = "fp8 + fp32 scale per 128" if engine.indexer_layout == "fp8_scaled" else ""
            text = f"{text} + {index} B indexer key ({attention.index_head_dim} {layout or k_dtype.name})"
        return total + index, text
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


def _mla_bytes_per_token(
    attention: MLA, engine: EngineProfile, k_dtype: KvDtype, v_dtype: KvDtype
) -> tuple[int, str]:
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


_STATE_DTYPES = {"fp32": 4, "bf16": 2, "fp16": 2}


def _state_dtype_size(rule: str, declared: str, model: ModelSpec) -> int:
    if rule == "fp32":
        return 4
    if rule == "config" and declared != "model":
        return _STATE_DTYPES[declared]
    return _STATE_DTYPES[model.dtype]


def _split(n: int, tp: int, what: str, model: ModelSpec) -> int:
    if n % tp:
        raise KvcalcError(f"tp {tp} does not divide the {n} {what} of {model.name}")
    return n // tp


def state_bytes_per_sequence(
    model: ModelSpec, engine: EngineProfile, kind: StateKind, tp: int
) -> tuple[int, int, str]:
    """Return (conv bytes, recurrent bytes, formula) of one state layer, one sequence, one GPU.

    conv: (conv_inner/tp + groups_per_rank · conv_group_channels) × width × dtype size,
    width = conv_kernel (transformers LinearAttentionLayer) or conv_kernel − 1 (vLLM
    vllm/model_executor/layers/mamba/mamba_utils.py:MambaStateShapeCalculator, llama.cpp
    src/llama-hparams.cpp:n_embd_r); recurrent: state_heads/tp × state_head_elems × dtype
    size (n_embd_s). Mamba2 groups fewer than the ranks are replicated, one per rank
    (MambaStateShapeCalculator.extra_groups_for_head_shards).
    """
    if tp > 1 and engine.head_rule == "none":
        raise KvcalcError(
            f"engine {engine.name} has no tensor parallelism (it splits layers): use --pp, not --tp"
        )
    conv = recurrent = 0
    parts = []
    # a family's own conv width / state dtype (TensorRT-LLM's Kimi-K3: engines.TRTLLM_KIMI_K3)
    rules = engine.rules_for(model.family)
    conv_width = rules.conv_width if rules is not None and rules.conv_width else engine.conv_width
    if kind.conv_kernel and kind.conv_channels:
        width = kind.conv_kernel if conv_width == "kernel" else kind.conv_kernel - 1
        if engine.conv_split == "whole":
            # TensorRT-LLM: conv_dim = d_inner + 2 · n_groups · d_state split as a whole
            # (mamba_cache_manager.py asserts conv_dim % tp == 0; no group replication)
            channels = _split(kind.conv_channels, tp, "conv channels", model)
        else:
            inner = _split(kind.conv_inner, tp, "conv channels", model)
            groups = kind.conv_groups
            if groups:
                if groups % tp == 0:
                    groups //= tp
                elif kind.mixer == "mamba2" and tp % groups == 0:
                    groups = 1
                else:
                    raise KvcalcError(
                        f"tp {tp} does not divide the {groups} state groups of {model.name}"
                    )
            channels = inner + groups * kind.conv_group_channels
        size = _state_dtype_size(engine.conv_dtype_rule, kind.conv_dtype, model)
        conv = channels * width * size
        parts.append(f"conv {channels:,} ch × {width} × {size} B")
    if kind.state_heads and kind.state_head_elems:
        heads = _split(kind.state_heads, tp, "state heads", model)
        declared = kind.state_dtype
        keys = engine.state_dtype_keys
        if keys is not None and kind.state_dtype_key not in keys:
            declared = engine.state_dtype_default  # a key (or a default) it does not read
        rule = dict(engine.mixer_state_dtype_rules).get(kind.mixer, engine.state_dtype_rule)
        if rules is not None and rules.state_dtype is not None:
            rule = rules.state_dtype  # the engine forces it whatever the config says
        size = _state_dtype_size(rule, declared, model)
        recurrent = heads * kind.state_head_elems * size
        parts.append(f"state {heads} heads × {kind.state_head_elems:,} × {size} B")
    return conv, recurrent, " + ".join(parts)


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
    if engine.sliding == "llama_cpp" and is_compressed(model):  # kvcalc/llamacpp_compressed.py
        return _llamacpp_compressed_rows(workload, local)
    if local is not None and local.kind in COMPRESSED_PARTS:
        return compressed_part_tokens(local, seq, block)
    if local is not None and local.kind in POOL_KINDS:
        n_batched = workload.max_num_batched_tokens or engine.max_num_batched_tokens
        return pool_blocks(local, block, seq, n_batched)
    window = None if local is None else local.size
    sliding_rule = engine.sliding_rule(
        model.family, model.architecture, workload.attention_windows is not None
    )
    if engine.sliding == "llama_cpp":  # one stream's cells (kvcalc/llamacpp.py)
        from kvcalc.llamacpp import llama_context

        ctx = llama_context(workload.llamacpp, workload.seq_len, workload.batch)
        return ctx.stream_cells(None if sliding_rule == "full" else window)
    if window is None or sliding_rule == "full":
        return round_up(seq, block)
    if sliding_rule == "window":
        return round_up(min(seq, window), block)
    if sliding_rule == "window_minus_one":
        return min(seq, window - 1)
    if sliding_rule == "freed_blocks":
        return freed_blocks_tokens(seq, window, block)
    if sliding_rule == "vllm_planning":
        n_batched = workload.max_num_batched_tokens or engine.max_num_batched_tokens or seq
        if local is not None and local.kind == "chunked":
            return cdiv(min(window + n_batched, seq), block) * block
        return (cdiv(min(window - 1 + n_batched, seq), block) + 1) * block
    # llama_cpp: GGML_PAD(min(kv_size, n_swa + n_ubatch), 256)
    ubatch = engine.ubatch or 512
    return round_up(min(seq, window + ubatch), engine.context_pad)


def _llamacpp_compressed_rows(workload: Workload, local: Window | None) -> int:
    """Return one stream's cells (or state rows) of a llama_kv_cache_dsv4 part."""
    from kvcalc.llamacpp import llama_context
    from kvcalc.llamacpp_compressed import CELLS, compressed_cells, raw_context

    ctx = raw_context(llama_context(workload.llamacpp, workload.seq_len, workload.batch))
    if local is not None and local.kind == CELLS:
        return compressed_cells(ctx, local.size)
    if local is not None and local.kind == "ring":
        return local.size
    return ctx.stream_cells(None if local is None else local.size)


def freed_blocks_tokens(seq: int, window: int, block: int) -> int:
    """Return the tokens of the blocks a sliding layer holds once seq tokens are cached,
    when the engine frees the blocks wholly behind the window.

    TensorRT-LLM's KVCacheManagerV2 (tensorrt_llm/runtime/kv_cache_manager_v2/
    _life_cycle_registry.py AttnLifeCycle.get_stale_range): blocks [0, (h + 1 − W) // B)
    are stale at history h; at the step that computes token seq, h = seq − 1 and the
    capacity is seq, so cdiv(seq, B) − max(0, (seq − W) // B) blocks are held (W = 1,024,
    B = 32: 32 or 33 blocks once seq passes the window).
    """
    return (cdiv(seq, block) - max(0, (seq - window) // block)) * block


# The parts of a compressed layer (CompressedKind) beside its sliding keys, as windows of
# size m whose "tokens" are the rows a sequence of seq tokens keeps of them: transformers'
# compressed / buffered / overlap tensors, SGLang's paged compressed rows and state ring.
COMPRESSED_PARTS = ("compressed", "buffered", "overlap", "paged", "ring", "cells")


def compressed_part_tokens(part: Window, seq: int, block: int = 1) -> int:
    """Return the rows a compressed layer keeps of one part after seq tokens (rate m = size).

    compressed: ⌊seq / m⌋ entries; buffered: the seq mod m tokens not compressed yet;
    overlap: m rows once seq ≥ m (CSA's previous window), else none (transformers 5.24
    models/deepseek_v4/modeling_deepseek_v4.py DeepseekV4CSACache / DeepseekV4HCACache).
    paged: the rows of the whole pages the sequence's tokens take, round_up(seq, block) / m
    (SGLang: a full page owns its C4 / C128 pages); ring: size rows, whatever seq (SGLang's
    per-request compress-state ring).
    """
    m = part.size
    if part.kind == "compressed":
        return seq // m
    if part.kind == "buffered":
        return seq % m
    if part.kind == "paged":
        return round_up(seq, block) // m
    if part.kind == "ring":
        return m
    return m if seq >= m else 0


# vLLM's DeepSeek-V4 KV-cache groups as windows whose "tokens" are the blocks a sequence
# holds: pool_full (size = block size) for every token, pool_sliding (size = the window)
POOL_KINDS = ("pool_full", "pool_sliding")


def pool_blocks(group: Window, block: int, seq: int, n_batched: int | None) -> int:
    """Return the blocks one sequence of seq tokens holds in a vLLM KV-cache group.

    pool_full: cdiv(seq, B) (FullAttentionSpec.max_memory_usage_bytes); pool_sliding of
    window W: cdiv(min(W - 1 + N, seq), B) + 1, N = max_num_batched_tokens (else seq)
    (SlidingWindowSpec.max_admission_blocks_per_request, the planning bound).
    """
    if group.kind == "pool_full":
        return cdiv(seq, block)
    n = n_batched or seq
    return cdiv(min(group.size - 1 + n, seq), block) + 1


def compressed_head_dim(model: ModelSpec, kind: CompressedKind) -> int:
    """Return D, the width of a compressed layer's rows: its own head_dim, else the MQA head."""
    attention = model.attention
    if isinstance(attention, MLA):  # specs.py refuses this; the check keeps mypy exact
        raise KvcalcError("compressed layers need MQA attention")
    return kind.head_dim or attention.head_dim


def compressed_parts(
    model: ModelSpec,
    engine: EngineProfile,
    kind: CompressedKind,
    k_dtype: KvDtype,
    v_dtype: KvDtype,
    name: str,
) -> tuple[int, tuple[tuple[Window, int, str], ...], str]:
    """Return (sliding-key bytes per token, the other parts, formula) of one compressed layer.

    Per part token, D = head_dim, Di = index_head_dim, e = model dtype bytes (CompressedKind):
    sliding keys D·e (values is the keys tensor, counted once); HCA compressed D·e,
    buffered (kv + gate) 2·D·e; CSA compressed (D + Di)·e, buffered 2·(2D + 2Di)·e,
    overlap (D + Di)·(e + 4) (the kv in the model dtype, the gate in fp32).
    """
    if engine.compressed_layout is None:
        raise KvcalcError(
            f"engine {engine.name}: DeepSeek-V4 compressed layers (kinds.{name}) are not "
            "modelled for it yet (try --engine hf)"
        )
    if engine.compressed_layout == "llama_cpp":
        from kvcalc.llamacpp_compressed import llamacpp_compressed_parts

        return llamacpp_compressed_parts(model, kind, k_dtype, name)
    if engine.compressed_layout == "sglang":
        from kvcalc.sglang_compressed import sglang_compressed_parts

        return sglang_compressed_parts(
            model, kind, (k_dtype, v_dtype), engine.compressed_block_size or 1, name
        )
    for dtype in (k_dtype, v_dtype):
        if dtype.name != model.dtype:
            raise KvcalcError(
                f"engine {engine.name}: compressed layers keep the model dtype "
                f"({model.dtype}); a {dtype.name} KV cache is not modelled for them"
            )
    d = compressed_head_dim(model, kind)
    e = k_dtype.row_bytes(1)
    m = kind.rate
    keys = d * e
    parts: tuple[tuple[Window, int, str], ...]
    if kind.index_head_dim is None:
        parts = (
            (Window("compressed", m), d * e, f"{d}·{e}"),
            (Window("buffered", m), 2 * d * e, f"2 (kv, gate) × {d}·{e}"),
        )
        text = f"HCA m={m}: keys {d}·{e} B (= values) per window token"
    else:
        di = kind.index_head_dim
        parts = (
            (Window("compressed", m), (d + di) * e, f"({d} + {di})·{e}"),
            (
                Window("buffered", m),
                2 * (2 * d + 2 * di) * e,
                f"2 (kv, gate) × (2·{d} + 2·{di})·{e}",
            ),
            (Window("overlap", m), (d + di) * (e + 4), f"({d} + {di}) × ({e} kv + 4 fp32 gate)"),
        )
        text = f"CSA m={m}: keys {d}·{e} B (= values) per window token"
    return keys, parts, text


def _kv_streams(engine: EngineProfile, workload: Workload, model: ModelSpec) -> int:
    """Return how many copies of a layer's held tokens are allocated: one per sequence, or
    one shared stream for llama.cpp's unified cache (src/llama-kv-cache.cpp n_stream)."""
    if engine.sliding == "llama_cpp" and workload.llamacpp and workload.llamacpp.kv_unified:
        return workload.batch if is_compressed(model) else 1  # llama_kv_cache_dsv4: per seq
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
    from kvcalc.llamacpp import LlamaCppOptions, check_cache_types, check_layers

    options = workload.llamacpp or LlamaCppOptions()
    # llama_init_from_model: is_mla() || LLM_ARCH_DEEPSEEK4 (K-only caches) refuse K != V
    k_only = isinstance(attention, MLA) or is_compressed(model)
    check_cache_types(k_dtype, v_dtype, k_only, dims, options.flash_attn)
    check_layers(model, workload.mtp)


def _padded_v_elems(model: ModelSpec, workload: Workload, engine: EngineProfile) -> int | None:
    """Return the V row every layer takes under llama.cpp without flash attention when the
    layers' V rows differ (n_embd_v_gqa_max), else None.

    src/llama-kv-cache.cpp:llama_kv_cache::llama_kv_cache [TAG_V_CACHE_VARIABLE]: with V
    stored transposed (no flash attention) every layer's V tensor is n_embd_v_gqa_max wide.
    """
    options = workload.llamacpp
    if engine.sliding != "llama_cpp" or options is None or options.flash_attn != "off":
        return None
    if isinstance(model.attention, MLA):
        return None
    widths = set()
    for name in set(model.layer_kind_names()):
        kind = model.layer_kind(name)
        attention = kind.attention if isinstance(kind, StateKind) else kind
        if isinstance(attention, AttentionKind):
            geometry = kind_attention(model, attention)
            if not isinstance(geometry, MLA):
                widths.add(geometry.n_kv_heads * geometry.v_dim)
    return max(widths) if len(widths) > 1 else None


def _pad_v(
    per: int, text: str, attention: MHA | GQA | MQA | MLA, v_dtype: KvDtype, v_elems: int | None
) -> tuple[int, str]:
    """Return (bytes per token, formula) with V widened to v_elems (llama.cpp, no FA)."""
    if v_elems is None or isinstance(attention, MLA):
        return per, text
    own = attention.n_kv_heads * attention.v_dim
    if own == v_elems:
        return per, text
    extra = v_dtype.row_bytes(v_elems) - v_dtype.row_bytes(own)
    return per + extra, f"{text} + {extra} B V padding to {v_elems} (n_embd_v_gqa_max, no FA)"


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


@record
class _Layer:
    """One layer as the engine caches it."""

    name: str  # kind name
    window: Window | None  # attention window (None: full, or no attention)
    per_token: int  # bytes per token, one GPU (0: no growing KV)
    logical_per_token: int  # bytes per token, unsharded
    text: str  # per-token formula
    state: StateKind | None = None
    conv_bytes: int = 0  # state, one sequence, one GPU
    recurrent_bytes: int = 0
    state_text: str = ""
    # compressed layers: (part window, bytes per part row, formula) beside the window's keys
    extra: tuple[tuple[Window, int, str], ...] = ()

    @property
    def parts(self) -> list[tuple[int, Window | None, str]]:
        """The groups this layer counts in: its KV by (window, custom kind), its state by kind
        (both for a layer with attention and a mixer side by side, Falcon-H1)."""
        found: list[tuple[int, Window | None, str]] = []
        if self.per_token:
            custom = "" if self.name in ("full", "sliding", "chunked") else self.name
            found.append((0, self.window, custom))
        found.extend((0, window, self.name) for window, _, _ in self.extra)
        if self.state is not None:
            found.append((1, None, self.name))
        return found


def _vllm_type(key: tuple[int, Window | None, str]) -> tuple[int, Window | None, str]:
    """vLLM's KV-cache group type of a part: attention by window (layers of one window with
    different page sizes share one group, UniformTypeKVCacheSpecs), state by kind."""
    return key if key[0] == 1 else (0, key[1], "")


def _layers(
    model: ModelSpec,
    workload: Workload,
    engine: EngineProfile,
    k_dtype: KvDtype,
    v_dtype: KvDtype,
) -> list[_Layer]:
    """Return every cached layer (MTP layers last when counted) with its bytes."""
    names = list(model.layer_kind_names())
    dtypes = (k_dtype, v_dtype, KV_DTYPES[model.dtype])
    compressed = any(isinstance(k, CompressedKind) for k in (model.kinds or {}).values())
    if workload.mtp and model.mtp_layers and compressed and engine.compressed_layout:
        why = {
            # sglang 0.5.23 pool_configurator.py DSV4PoolConfigurator.__init__ scales the
            # bytes per full and sliding token by (layers + 1) / layers for the draft, and
            # sizes its rings from the speculative draft-token count: those are not read
            "sglang": "SGLang's speculative ring sizes (get_swa_ring_size, "
            "resolve_compress_state_ring_size with the draft tokens) and draft-token count "
            "are not read",
            "llama_cpp": "llama.cpp runs them in their own MTP context (llama_kv_cache_iswa), "
            "whose sizing is not modelled",
        }.get(engine.compressed_layout, "transformers builds none for deepseek_v4")
        raise KvcalcError(
            f"engine {engine.name}: the MTP layers of a compressed-attention model are not "
            f"modelled ({why}: drop --mtp)"
        )
    sglang_v4 = compressed and engine.compressed_layout == "sglang"
    llamacpp_v4 = compressed and engine.compressed_layout == "llama_cpp"
    if workload.mtp:
        names += ["mtp"] * model.mtp_layers
    windows = effective_windows(model, workload, engine) + (None,) * (len(names) - model.n_layers)
    v_elems = _padded_v_elems(model, workload, engine)
    cache: dict[tuple[str, Window | None], _Layer] = {}
    layers = []
    for name, window in zip(names, windows, strict=True):
        key = (name, window)
        if key not in cache:
            kind = model.layer_kind("full" if name == "mtp" else name)
            if isinstance(kind, NoCacheKind):
                rules = engine.rules_for(model.family)
                if kind.reason == "kv_shared" and rules is not None and rules.no_kv_shared:
                    raise KvcalcError(f"engine {engine.name}: {rules.no_kv_shared}")
                cache[key] = _Layer(name, None, 0, 0, f"nothing cached ({kind.reason})")
            elif isinstance(kind, CompressedKind):
                per, extra, text = compressed_parts(model, engine, kind, k_dtype, v_dtype, name)
                if workload.tp > 1 and not sglang_v4:  # SGLang: one MQA row, every rank
                    raise KvcalcError(
                        f"engine {engine.name}: compressed layers under tensor parallelism "
                        "are not modelled"
                    )
                cache[key] = _Layer(name, window, per, per, text, extra=extra)
            elif isinstance(kind, StateKind) and kind.attention is None:
                conv, rec, text = state_bytes_per_sequence(model, engine, kind, workload.tp)
                cache[key] = _Layer(name, None, 0, 0, "", kind, conv, rec, text)
            elif isinstance(kind, StateKind):  # attention and a mixer side by side
                conv, rec, state_text = state_bytes_per_sequence(model, engine, kind, workload.tp)
                beside = kind.attention or AttentionKind(kind="attention")
                attention = kind_attention(model, beside)
                heads = kv_heads_per_gpu(model, engine, workload.tp, attention)
                per, text = layer_bytes_per_token(model, engine, k_dtype, v_dtype, heads, attention)
                one = kv_heads_per_gpu(model, engine, 1, attention)
                logical, _ = layer_bytes_per_token(model, engine, k_dtype, v_dtype, one, attention)
                per, text = _pad_v(per, text, attention, v_dtype, v_elems)
                logical, _ = _pad_v(logical, text, attention, v_dtype, v_elems)
                index, index_text = kind_indexer_bytes_per_token(beside, attention, engine, dtypes)
                per, logical, text = per + index, logical + index, text + index_text
                cache[key] = _Layer(name, window, per, logical, text, kind, conv, rec, state_text)
            elif sglang_v4 and window is not None and window.kind == "sliding":
                # the same DeepSeekV4SingleKVPool row as the compressed layers' window
                from kvcalc.sglang_compressed import sglang_v4_row_bytes

                per = sglang_v4_row_bytes(engine.compressed_block_size or 1)
                cache[key] = _Layer(name, window, per, per, f"{per} B FlashMLA V4 row")
            elif llamacpp_v4 and window is not None and window.kind == "sliding":
                # llama_kv_cache_dsv4's raw cache: K only (dsv4_make_k_only), head_dim wide
                sliding = kind_attention(model, kind)
                if isinstance(sliding, MLA):  # specs.py refuses this; the check keeps mypy exact
                    raise KvcalcError("compressed-attention models need MQA attention")
                per = k_dtype.row_bytes(sliding.head_dim_k)
                cache[key] = _Layer(name, window, per, per, f"{per:,} B {k_dtype.name} K row")
            else:
                if kind.k_eq_v and engine.k_eq_v is None:
                    raise KvcalcError(
                        f"engine {engine.name}: layers whose K is also V (attention_k_eq_v) are "
                        "not modelled for it yet (try --engine hf or formula)"
                    )
                attention = kind_attention(model, kind)
                heads = kv_heads_per_gpu(model, engine, workload.tp, attention)
                per, text = layer_bytes_per_token(model, engine, k_dtype, v_dtype, heads, attention)
                one = kv_heads_per_gpu(model, engine, 1, attention)
                logical, _ = layer_bytes_per_token(model, engine, k_dtype, v_dtype, one, attention)
                per, text = _pad_v(per, text, attention, v_dtype, v_elems)
                logical, _ = _pad_v(logical, text, attention, v_dtype, v_elems)
                index, index_text = kind_indexer_bytes_per_token(kind, attention, engine, dtypes)
                per, logical, text = per + index, logical + index, text + index_text
                cache[key] = _Layer(name, window, per, logical, text)
        layers.append(cache[key])
    return layers


def _stage_ranges(model: ModelSpec, n_cached: int, pp: int) -> tuple[tuple[int, int], ...]:
    """PP stages over the model's layers; MTP layers (past n_layers) join the last stage."""
    stages = list(pp_partition(model.n_layers, pp))
    start, _ = stages[-1]
    stages[-1] = (start, n_cached)
    return tuple(stages)


def _vllm_kernel_block(
    model: ModelSpec, workload: Workload, engine: EngineProfile, is_mla: bool
) -> int:
    """Return the attention block vLLM pages a model in before any hybrid alignment.

    MiniMax-M3's sparse layers and their indexer caches take only 128-token kernel blocks
    (vllm/models/minimax_m3/common/sparse_attention.py:MiniMaxM3SparseBackend and
    common/indexer.py:MiniMaxM3IndexerBackend get_supported_kernel_block_sizes), so a
    --block-size must be a multiple of 128, and without one the page is 128.
    """
    kernel = _required_kernel_block(model, engine)
    if kernel is None:
        return workload.block_size or engine.block_for(is_mla)
    if workload.block_size and workload.block_size % kernel:
        raise KvcalcError(
            f"engine {engine.name}: --block-size {workload.block_size} for {model.name}: its "
            f"sparse attention and indexer backends take {kernel}-token kernel blocks only "
            f"(use a multiple of {kernel})"
        )
    return workload.block_size or kernel


def _required_kernel_block(model: ModelSpec, engine: EngineProfile) -> int | None:
    """Return the only kernel block the engine's backends take for this model, if any."""
    if engine.pads_hybrid_groups and has_gqa_indexer(model):
        return engine.gqa_indexer_block_size
    return None


MambaMode = Literal["none", "align", "all"]  # vLLM's CacheConfig.mamba_cache_mode


def _vllm_block(
    engine: EngineProfile,
    workload: Workload,
    layers: list[_Layer],
    block: int,
    mode: MambaMode = "none",
) -> tuple[int, int | None]:
    """Return (attention block size, padded state page bytes) under vLLM's hybrid alignment.

    vllm/platforms/interface.py:Platform._align_hybrid_block_size (older:
    vllm/model_executor/models/config.py:HybridAttentionMambaModelConfig): with state
    layers, align = max(kernel block, block_size); attention block = align ·
    cdiv(state page, align · attention bytes per token), and the state page is padded to
    that attention page, so one block pool serves both. In mamba_cache_mode all the block
    is instead the smallest multiple of lcm(mamba chunk, align) tokens whose attention page
    covers the state page (chunk = ModelConfig.get_mamba_chunk_size: the config's
    mamba_chunk_size, else chunk_size), and mamba_block_size is that block.
    """
    states = {layer.conv_bytes + layer.recurrent_bytes for layer in layers if layer.state}
    if not states:
        return block, None
    attention = {layer.per_token for layer in layers if layer.per_token}
    if len(states) > 1 or len(attention) > 1:
        raise KvcalcError(
            f"engine {engine.name}: state layers of different sizes, or attention layers of "
            "different page sizes beside them, are not modelled (try --engine sglang or hf)"
        )
    state_page = states.pop()
    if not attention:
        raise KvcalcError(f"engine {engine.name}: models with no attention layer are not modelled")
    per_token = attention.pop()
    if mode == "all":
        chunk = _mamba_chunk(engine, layers)
        aligned = math.lcm(chunk, block)  # lcm(base_chunk_size, kernel_block_alignment_size)
        block = aligned * cdiv(cdiv(state_page, per_token), aligned)
    else:
        block = block * cdiv(state_page, block * per_token)
    return block, block * per_token


def _mamba_chunk(engine: EngineProfile, layers: list[_Layer]) -> int:
    """Return the mamba chunk size vLLM's mamba_cache_mode all aligns the block to, as the
    config publishes it (StateKind.chunk_size); refuse when it publishes none."""
    chunks = {layer.state.chunk_size for layer in layers if layer.state is not None}
    if None in chunks:
        raise KvcalcError(
            f"engine {engine.name}: mamba_cache_mode all aligns the block to the mamba chunk "
            "size (ModelConfig.get_mamba_chunk_size), which this config does not publish "
            "(mamba_chunk_size / chunk_size): pass --mamba-cache-mode align"
        )
    if len(chunks) > 1:
        raise KvcalcError(
            f"engine {engine.name}: state layers of different mamba chunk sizes are not modelled"
        )
    (chunk,) = chunks
    assert chunk is not None  # for mypy: None refused above
    return chunk


def _vllm_mamba_mode(model: ModelSpec, workload: Workload, engine: EngineProfile) -> MambaMode:
    """Return the mamba_cache_mode vLLM runs a hybrid model's state layers in: none (no
    prefix caching), align or all.

    vllm/model_executor/models/config.py:MambaModelConfig.verify_and_update_config: with
    prefix caching, none becomes all where the model class is SupportsMambaPrefixCaching,
    else align, and an asked-for all falls back to align on a class that is not.
    """
    if not workload.prefix_caching:
        return "none"
    family = model.family or model.name
    default = dict(engine.mamba_cache_modes or ()).get(family)
    mode: MambaMode | None = workload.mamba_cache_mode or default
    if mode is None:
        raise KvcalcError(
            f"engine {engine.name}: --prefix-caching on {family}: vLLM runs its state layers in "
            "mamba_cache_mode all or align by whether its model class supports Mamba prefix "
            "caching, not read for it (pass --mamba-cache-mode align)"
        )
    if mode == "all" and default is None:
        raise KvcalcError(
            f"engine {engine.name}: --mamba-cache-mode all on {family}: whether its model class "
            "is SupportsMambaPrefixCaching (else vLLM falls back to align) is not read (pass "
            "--mamba-cache-mode align)"
        )
    if mode == "all" and default == "align":
        mode = "align"  # MambaModelConfig: all without SupportsMambaPrefixCaching -> align
    if workload.mtp and model.mtp_layers:
        raise KvcalcError(
            f"engine {engine.name}: mamba_cache_mode {mode} with speculative decoding is not "
            "modelled (its num_speculative_blocks state pages are not read): drop --mtp"
        )
    return mode


def _vllm_state_pages(workload: Workload, mode: MambaMode, block: int) -> int:
    """Return the state pages a sequence holds per state layer under vLLM: 1 (mode none), 2
    (align) or one per block of its tokens (all).

    vllm/v1/core/single_type_kv_cache_manager.py MambaManager: in align mode a sequence's
    block table spans cdiv(tokens, mamba_block_size) blocks, all null but the block holding
    the running state and, on the step that crosses into a new block, the previous one (the
    state is copied from it; remove_skipped_blocks frees it the step after): two pages, as
    MambaSpec.max_memory_usage_bytes counts (2 + num_speculative_blocks). mamba_block_size is
    the attention block (HybridAttentionMambaModelConfig), so the page is the none-mode one.
    In all mode MambaManager allocates as any full-attention group, cdiv(tokens,
    mamba_block_size) blocks (a state saved at each block boundary), and
    MambaSpec.max_memory_usage_bytes counts cdiv(max_model_len, block_size) pages: kvcalc
    counts cdiv(seq_len, block), the pages a prompt prefilled in one step takes (after it
    remove_skipped_blocks frees all but the last one or two back to the pool, as cached
    blocks, like a sliding window's).
    """
    if mode == "all":
        return cdiv(workload.seq_len, block)
    return 2 if mode == "align" else 1


def kv_cache(model: ModelSpec, workload: Workload, engine: EngineProfile) -> KvBreakdown:
    """Return the exact KV-cache bytes of `workload` on `model` as `engine` allocates them.

    Growing KV (attention layers: bytes per token × tokens held) and fixed state
    (recurrent / linear-attention layers: bytes per sequence) are reported apart.
    """
    if workload.mtp and model.mtp_unmodelled:
        raise KvcalcError(f"--mtp on {model.name}: {model.mtp_unmodelled} (drop --mtp)")
    unread = dict(engine.unread_families).get(model.family or "")
    if unread is not None:  # before the dtype: no --kv-dtype makes an unread family sized
        other = next(
            (n for n in ("hf", "sglang") if model.family not in dict(ENGINES[n].unread_families)),
            None,
        )
        hint = f" (try --engine {other})" if other else ""
        raise KvcalcError(f"engine {engine.name}: {model.family}: {unread}{hint}")
    explicit = workload.k_dtype is not None and workload.v_dtype is not None
    default, why = ("", "") if explicit else _default_kv_dtype(model, engine)
    kv = _kv_cache(model, workload, engine, default)
    return replace(kv, kv_dtype_source=_kv_dtype_source(kv, why))


def _kv_dtype_source(kv: KvBreakdown, why: str) -> str:
    """Return where the KV dtype came from: '--kv-dtype fp8_e4m3', or 'auto → fp8_e4m3:
    the checkpoint's ... (vLLM resolve_kv_cache_dtype_string)', `why` being what "auto"
    resolved to and why (_default_kv_dtype)."""
    k, v = kv.workload.k_dtype, kv.workload.v_dtype
    if k is not None and v is not None:
        return f"--kv-dtype {k.name}" if k == v else f"--k-dtype {k.name}, --v-dtype {v.name}"
    auto = f"auto → {(kv.k_dtype if k is None else kv.v_dtype).name}: {why}"
    if k is not None:
        return f"--k-dtype {k.name}; V {auto}"
    if v is not None:
        return f"--v-dtype {v.name}; K {auto}"
    return auto


def _kv_cache(
    model: ModelSpec, workload: Workload, engine: EngineProfile, default: str
) -> KvBreakdown:
    """Return kv_cache's breakdown, its kv_dtype_source not yet filled in; `default` is the
    dtype "auto" resolved to (unused when both K and V dtypes are given)."""
    k_dtype = workload.k_dtype or KV_DTYPES[default]
    v_dtype = workload.v_dtype or KV_DTYPES[default]
    is_mla = isinstance(model.attention, MLA)
    tp, pp, batch = workload.tp, workload.pp, workload.batch
    k_dtype, v_dtype = dsa_stored_dtypes(
        model, engine, k_dtype, v_dtype, auto=workload.k_dtype is None or workload.v_dtype is None
    )
    if workload.prefix_caching and engine.mamba_cache_modes is None:
        modelled = ", ".join(n for n, e in ENGINES.items() if e.mamba_cache_modes is not None)
        raise KvcalcError(
            f"engine {engine.name}: --prefix-caching is modelled for engines {modelled} only "
            f"(how {engine.name}'s prefix cache changes the cache sizing is not read)"
        )
    rules = engine.rules_for(model.family)
    if pp > 1 and rules is not None and rules.no_pp:
        raise KvcalcError(f"engine {engine.name}: {rules.no_pp}")
    if rules is not None and rules.kv_shared_slots:
        model = _with_kv_shared_slots(model)
    if engine.dsa_indexer_layers == "every":
        model = _with_indexer_every_layer(model)
    _check_llama_cpp(model, workload, engine, k_dtype, v_dtype)
    compressed = any(isinstance(k, CompressedKind) for k in (model.kinds or {}).values())
    if compressed and engine.compressed_layout == "vllm":
        from kvcalc.vllm_compressed import compressed_cache

        return compressed_cache(model, workload, engine, k_dtype, v_dtype)
    layers = _layers(model, workload, engine, k_dtype, v_dtype)
    _check_state_support(model, workload, engine, layers)
    state_page: int | None = None
    state_pages = 1  # state pages a sequence holds per state layer
    mode: MambaMode = "none"
    if engine.pads_hybrid_groups:
        kernel_block = _vllm_kernel_block(model, workload, engine, is_mla)
        has_state = any(layer.state is not None for layer in layers)
        mode = _vllm_mamba_mode(model, workload, engine) if has_state else "none"
        block, state_page = _vllm_block(engine, workload, layers, kernel_block, mode)
        if state_page is not None and k_dtype.name == "fp8_ds_mla":
            raise KvcalcError(
                f"engine {engine.name}: fp8_ds_mla beside state layers is not modelled (vLLM's "
                "hybrid alignment sizes the page from the latent's 576 B a token, the layers' "
                "spec from 656)"
            )
        if state_page is not None:
            state_pages = _vllm_state_pages(workload, mode, block)
        window_blocks = _vllm_window_blocks(engine, layers, block)
    else:
        block = workload.block_size or engine.block_for(is_mla)
        if is_dsa(model) and engine.indexer_block_size and not workload.block_size:
            block = engine.indexer_block_size
        if engine.gqa_indexer_block_size and not workload.block_size and has_gqa_indexer(model):
            block = engine.gqa_indexer_block_size
        if rules is not None and rules.block_size and not workload.block_size:
            block = rules.block_size  # the family's own default (TensorRT-LLM's Kimi-K3)
        if engine.compressed_block_size and is_compressed(model):
            block = _compressed_block(engine, workload)
    if engine.gqa_indexer_dtype == "llama_cpp" and has_gqa_indexer(model):
        _check_trailing_indexer_layers(model, engine)
    heads = kv_heads_per_gpu(model, engine, tp)

    windows = tuple(layer.window for layer in layers)
    if not engine.pads_hybrid_groups:
        window_blocks = {}
    parts = {w for layer in layers for w, _, _ in layer.extra}
    held = {
        w: tokens_held(engine, model, workload, w, window_blocks.get(w, block))
        for w in set(windows) | parts
    }
    streams = _kv_streams(
        engine, workload, model
    )  # held is per stream: batch, or 1 (llama.cpp -kvu)
    stages = _stage_ranges(model, len(layers), pp)
    by_key = {key: layer for layer in layers for key in layer.parts}
    part_bytes = {key: layer.per_token for layer in layers for key in layer.parts[:1]}
    part_bytes |= {(0, w, layer.name): per for layer in layers for w, per, _ in layer.extra}
    keys = [key for layer in layers for key in layer.parts]
    stage_counts = [
        _padded_counts(engine, [k for layer in layers[a:b] for k in layer.parts]) for a, b in stages
    ]

    def kv_of(key: tuple[int, Window | None, str], n: int) -> int:
        return 0 if key[0] == 1 else n * held[key[1]] * streams * part_bytes[key]

    def state_of(key: tuple[int, Window | None, str], n: int) -> int:
        layer = by_key[key]
        if key[0] == 0 or layer.state is None:
            return 0
        page = state_page if state_page is not None else layer.conv_bytes + layer.recurrent_bytes
        return n * batch * page * state_pages

    stage_bytes = [sum(kv_of(k, n) for k, n in counts.items()) for counts in stage_counts]
    stage_state = [sum(state_of(k, n) for k, n in counts.items()) for counts in stage_counts]
    busiest = max(range(pp), key=lambda s: (stage_bytes[s] + stage_state[s], -s))
    start, end = stages[busiest]

    groups = []
    state_groups = []
    for key in sorted(by_key, key=_sort_key):
        layer = by_key[key]
        count = keys.count(key)
        allocated = sum(counts.get(key, 0) for counts in stage_counts)
        if key[0] == 1 and layer.state is not None:
            page = (
                state_page if state_page is not None else layer.conv_bytes + layer.recurrent_bytes
            )
            state_groups.append(
                StateGroup(
                    layer_kind=layer.name,
                    mixer=layer.state.mixer,
                    count=count,
                    padded_count=allocated,
                    conv_bytes_per_layer=layer.conv_bytes,
                    recurrent_bytes_per_layer=layer.recurrent_bytes,
                    bytes_per_sequence_per_layer=page * state_pages,
                    bytes=tp * allocated * batch * page * state_pages,
                    formula=layer.state_text,
                    pages_per_sequence=state_pages,
                )
            )
            continue
        if not layer.per_token:
            continue  # no-cache layers (NAS no-op, KV-shared) add nothing
        window = key[1]
        per_token = part_bytes[key]
        groups.append(
            LayerGroup(
                kind="full" if window is None else window.kind,
                window=None if window is None else window.size,
                count=count,
                padded_count=allocated,
                tokens=held[window],
                bytes_per_token_per_layer=per_token,
                bytes=tp * allocated * held[window] * streams * per_token,
                key=window,
                layer_kind=key[2],
                block_size=window_blocks.get(window, block),
            )
        )
    total = sum(g.bytes for g in groups)
    state_total = sum(g.bytes for g in state_groups)
    attention_layers = [layer for layer in layers if layer.per_token]
    layer_text = "; ".join(
        dict.fromkeys(f"{layer.text} = {layer.per_token:,} B" for layer in attention_layers)
    )
    return KvBreakdown(
        model=model,
        engine=engine,
        workload=workload,
        k_dtype=k_dtype,
        v_dtype=v_dtype,
        kv_heads_per_gpu=heads,
        block_size=block,
        kernel_block_size=_required_kernel_block(model, engine),
        groups=tuple(groups),
        bytes_per_token=sum(layer.logical_per_token for layer in layers),
        per_gpu_bytes_per_token=sum(layer.per_token for layer in layers[start:end]),
        per_sequence_bytes=total // batch,
        total_bytes=total,
        per_gpu_bytes=stage_bytes[busiest],
        layer_windows=windows,
        stage_layers=stages,
        stage_bytes=tuple(stage_bytes),
        busiest_stage=busiest,
        formula=_total_formula(groups, streams, tp, total),
        layer_formula=(
            f"{layer_text} per token per layer per GPU"
            if attention_layers
            else "no attention layers"
        ),
        assumptions=_assumptions(
            model, workload, engine, windows, groups, kv_heads_per_gpu(model, engine, 1)
        )
        + _state_assumptions(model, workload, engine, state_groups, state_page, block, mode)
        + _prefix_assumptions(workload, engine, state_page),
        state_groups=tuple(state_groups),
        state_bytes_per_sequence=state_total // batch,
        state_total_bytes=state_total,
        state_per_gpu_bytes=stage_state[busiest],
        stage_state_bytes=tuple(stage_state),
        layer_kinds=tuple(layer.name for layer in layers),
        layer_bytes_per_token=tuple(layer.per_token for layer in layers),
        mtp_layers=model.mtp_layers if workload.mtp else 0,
        layer_parts=(
            tuple(tuple((w, per) for w, per, _ in layer.extra) for layer in layers) if parts else ()
        ),
    )


def has_state_layers(model: ModelSpec) -> bool:
    """Whether the model has recurrent / linear-attention state layers (StateKind)."""
    return any(isinstance(k, StateKind) for k in (model.kinds or {}).values())


def is_compressed(model: ModelSpec) -> bool:
    """Whether the model has compressed-attention layers (DeepSeek-V4)."""
    return any(isinstance(k, CompressedKind) for k in (model.kinds or {}).values())


def auto_kv_dtype_name(model: ModelSpec, engine: EngineProfile) -> str:
    """Return the KV dtype name a KV dtype of "auto" gives the model under the engine."""
    return _default_kv_dtype(model, engine)[0]


def _default_kv_dtype(model: ModelSpec, engine: EngineProfile) -> tuple[str, str]:
    """Return (what a KV dtype of "auto" means, why): SGLang resolves it to fp8_e4m3 for
    DeepSeek-V4 (arg_groups/overrides.py _deepseek_v4_kv_cache_dtype); vLLM, SGLang and
    TensorRT-LLM follow the fp8 KV cache a checkpoint publishes, each reading its own file
    (kvcalc/checkpoint_kv.py); else the engine's default or the model's dtype."""
    if engine.compressed_layout == "sglang" and is_compressed(model):
        return "fp8_e4m3", "SGLang's DeepSeek-V4 default (_deepseek_v4_kv_cache_dtype)"
    if engine.dsa_auto_kv_dtypes is not None and is_dsa(model):
        return _dsa_auto_kv_dtype(model, engine)
    from kvcalc.checkpoint_kv import auto_kv_dtype

    published, why = auto_kv_dtype(model, engine)
    if published is not None:
        return published, why
    if engine.default_kv_dtype is not None:
        default = f"engine {engine.name}'s default cache type {engine.default_kv_dtype}"
    else:
        default = f"the model's dtype {model.dtype}"
    return engine.default_kv_dtype or model.dtype, f"{default}; {why}" if why else default


def _dsa_auto_kv_dtype(model: ModelSpec, engine: EngineProfile) -> tuple[str, str]:
    """Return (what "auto" gives a DSA model, why) for an engine that decides it without the
    checkpoint (engines.EngineProfile.dsa_auto_kv_dtypes); KvcalcError for an architecture
    its table does not list.

    SGLang (engines.SGLANG_DSA_SOURCES): arg_groups/overrides.py _dsa_kv_cache_dtype_default
    rewrites --kv-cache-dtype auto for the DSA architectures of _DEEPSEEK_FAMILY_ARCHS while
    the server arguments are resolved, before the model loads (fp8_e4m3 if the CUDA capability
    major >= 10, else bfloat16), so ModelRunner.configure_kv_cache_dtype never sees auto and
    a ModelOpt checkpoint's kv_cache_quant_algo FP8 is not read.
    """
    table = dict(engine.dsa_auto_kv_dtypes or ())
    dtype = table.get(model.architecture or "")
    if dtype is None:
        raise KvcalcError(
            f"engine {engine.name}: what KV dtype auto gives the DSA model {model.name} "
            f"(architecture {model.architecture or 'not named'}) is not read: "
            f"{engine.dsa_auto_kv_dtypes_source} covers {', '.join(table)}; pass --kv-dtype"
        )
    why = engine.dsa_auto_kv_dtypes_source
    if model.checkpoint_kv is not None:
        why = (
            f"{why}; the fp8 KV cache the checkpoint publishes is passed over "
            "(configure_kv_cache_dtype reads kv_cache_quant_algo only while it is still auto)"
        )
    return dtype, why


def is_dsa(model: ModelSpec) -> bool:
    """Whether the model is MLA with a DSA lightning indexer (DeepSeek-V3.2, GLM-5)."""
    return isinstance(model.attention, MLA) and model.attention.index_head_dim is not None


def dsa_stored_dtypes(
    model: ModelSpec, engine: EngineProfile, k_dtype: KvDtype, v_dtype: KvDtype, *, auto: bool
) -> tuple[KvDtype, KvDtype]:
    """Return the (K, V) dtypes a DSA model's latent is stored in under `engine`, from the
    ones asked for (or "auto"'s), by the engine's dsa_kv_dtypes; KvcalcError for a dtype it
    does not take.

    vLLM (engines.VLLM_DSA_SOURCES): DeepseekV32ForCausalLM.verify_and_update_config rewrites
    every fp8* cache dtype to fp8_ds_mla (656 B rows, MLAAttentionSpec.real_page_size_bytes);
    no other architecture is in MODELS_CONFIG_MAP. SGLang (engines.SGLANG_DSA_SOURCES):
    calculate_mla_kv_cache_dim stores fp8_e4m3 DSA rows in the same 656 B layout below
    SM100, raw (576 B) under the trtllm backends it picks from SM100 (the table
    engines.engine_for_gpu gives a plan on such a GPU). Models
    other than DSA, and engines without dsa_kv_dtypes, keep the dtypes given.
    """
    if engine.dsa_kv_dtypes is None or not is_dsa(model):
        return k_dtype, v_dtype
    if k_dtype != v_dtype:
        raise KvcalcError(
            f"engine {engine.name}: the MLA latent is one row: K and V dtypes must match, not "
            f"{k_dtype.name}/{v_dtype.name}"
        )
    rules = dict(engine.dsa_kv_dtypes)
    arch = model.architecture
    table = engine.dsa_layouts(arch)
    if arch is None and len({dict(t).get(k_dtype.name) for t in rules.values()}) > 1:
        raise KvcalcError(
            f"engine {engine.name}: how a {k_dtype.name} KV cache of a DSA model is stored "
            "depends on its architecture, which the spec does not name (set architecture)"
        )
    stored = table.get(k_dtype.name)
    if stored is None:
        raise KvcalcError(
            f"engine {engine.name}: KV dtype {k_dtype.name} for {model.name}: {engine.name} "
            f"serves DSA models with {', '.join(table)} only ({engine.dsa_kv_dtypes_source})"
        )
    if auto and stored != k_dtype.name:
        # "auto" resolved to an fp8 dtype (from the checkpoint): whether the engine's rewrite,
        # which reads the --kv-cache-dtype string, still applies is not read
        raise KvcalcError(
            f"engine {engine.name}: KV dtype auto resolves to {k_dtype.name} for {model.name}, "
            f"and whether {engine.name} then stores it as {stored} is not read: pass --kv-dtype"
        )
    dtype = KV_DTYPES[stored]
    return dtype, dtype


def _compressed_block(engine: EngineProfile, workload: Workload) -> int:
    """Return the page size of a compressed-attention model: the one the engine forces."""
    forced = engine.compressed_block_size or 1
    if workload.block_size not in (None, forced):
        raise KvcalcError(
            f"engine {engine.name}: DeepSeek-V4 runs with page size {forced} "
            f"(model_overrides/deepseek_v4.py); --block-size {workload.block_size} is not "
            "modelled"
        )
    return forced


def _with_kv_shared_slots(model: ModelSpec) -> ModelSpec:
    """Return the model with each KV-shared layer sized as the kind it is `like`.

    For engines that keep a slot for every layer, shared ones included (TensorRT-LLM's
    Gemma 4: _util.py _create_kv_cache_manager builds the manager for num_hidden_layers
    layers with no layer_mask; a shared layer reads its source layer's slot). Shared kinds
    without `like` are left as they are (and refused: FamilyRules.no_kv_shared).
    """
    if model.layers is None or not model.kinds:
        return model
    like = {
        name: kind.like
        for name, kind in model.kinds.items()
        if isinstance(kind, NoCacheKind) and kind.reason == "kv_shared" and kind.like
    }
    if not like:
        return model
    pattern = [like.get(name, name) for name in model.layers.pattern]
    return model.model_copy(update={"layers": model.layers.model_copy(update={"pattern": pattern})})


def _with_indexer_every_layer(model: ModelSpec) -> ModelSpec:
    """Return the DSA model with an indexer key in every layer, shared-indexer ones included.

    For engines whose pool gives every layer an indexer row whatever its config says
    (EngineProfile.dsa_indexer_layers "every": SGLang's DSATokenToKVPool builds
    index_k_with_scale_buffer for each of layer_num = num_effective_layers layers, and
    pool_configurator.py DefaultPoolConfigurator._compute_cell_size adds the 132 B key
    times effective_num_layers on CUDA; engines.SGLANG_DSA_SOURCES). A shared kind that
    then equals a plain full layer is renamed "full" in the pattern.
    """
    if not is_dsa(model) or model.layers is None or not model.kinds:
        return model
    flipped = {
        name: kind.model_copy(update={"indexer": True})
        for name, kind in model.kinds.items()
        if isinstance(kind, AttentionKind) and not kind.indexer
    }
    if not flipped:
        return model
    full = model.layer_kind("full")
    plain = {name for name, kind in flipped.items() if kind == full}
    kinds = {name: flipped.get(name, kind) for name, kind in model.kinds.items()}
    kinds = {name: kind for name, kind in kinds.items() if name not in plain}
    pattern = ["full" if name in plain else name for name in model.layers.pattern]
    layers = model.layers.model_copy(update={"pattern": pattern})
    return model.model_copy(update={"kinds": kinds or None, "layers": layers})


def _check_state_support(
    model: ModelSpec, workload: Workload, engine: EngineProfile, layers: list[_Layer]
) -> None:
    """Refuse state layers the engine cannot cache, or whose layout under it is not read."""
    mixers = {layer.state.mixer for layer in layers if layer.state is not None}
    if not mixers or engine.state_families is None:
        return
    if model.family not in engine.state_families:
        raise KvcalcError(
            f"engine {engine.name}: {model.family or model.name}'s {'/'.join(sorted(mixers))} "
            "state layers are not modelled (it caches state for "
            f"{', '.join(sorted(engine.state_families))} only)"
        )
    if any(layer.state is not None and layer.per_token for layer in layers):
        raise KvcalcError(
            f"engine {engine.name}: layers with attention beside a state mixer are not modelled"
        )
    if workload.pp > 1:
        raise KvcalcError(
            f"engine {engine.name}: state layers under pipeline parallelism are not modelled "
            "(its per-rank state slots are not read): use --pp 1"
        )


def _sort_key(key: tuple[int, Window | None, str]) -> tuple[int, str, int, str]:
    order, window, name = key
    return (
        order,
        "" if window is None else window.kind,
        0 if window is None else window.size,
        name,
    )


def _padded_counts(
    engine: EngineProfile, keys: list[tuple[int, Window | None, str]]
) -> dict[tuple[int, Window | None, str], int]:
    """Return layers allocated per group part: vLLM pads each hybrid group to the group size.

    Layers that cache nothing have no parts and take no part in vLLM's groups.
    """
    counts = {k: keys.count(k) for k in dict.fromkeys(keys)}
    if not engine.pads_hybrid_groups:
        return counts
    types: dict[tuple[int, Window | None, str], int] = {}
    for k, n in counts.items():
        types[_vllm_type(k)] = types.get(_vllm_type(k), 0) + n
    if len(types) < 2:
        return counts
    size = hybrid_group_size(list(types.values()))
    return {k: cdiv(n, size) * size for k, n in counts.items()}


def _vllm_window_blocks(
    engine: EngineProfile, layers: list[_Layer], block: int
) -> dict[Window | None, int]:
    """Return each window's block size under vLLM's page unification.

    vllm/v1/core/kv_cache_utils.py unify_kv_cache_spec_page_size: when hybrid groups' pages
    differ, a layer type with a smaller page gets its block size multiplied by
    max_page / page (which must divide evenly, else vLLM raises NotImplementedError), so
    every page has the same bytes. Types are windows here; within one window the layers
    must share one page size (else they form one UniformTypeKVCacheSpecs group, which
    this rule does not combine with other types).
    """
    by_window: dict[Window | None, set[int]] = {}
    for layer in layers:
        if layer.per_token:
            by_window.setdefault(layer.window, set()).add(layer.per_token)
    if len(by_window) < 2:
        return dict.fromkeys(by_window, block)
    if any(len(sizes) > 1 for sizes in by_window.values()):
        raise KvcalcError(
            f"engine {engine.name}: hybrid layers whose KV page sizes differ within one window "
            "type are not modelled (try --engine sglang, hf or formula)"
        )
    pages = {w: block * next(iter(sizes)) for w, sizes in by_window.items()}
    largest = max(pages.values())
    blocks = {}
    for window, page in pages.items():
        if largest % page:
            raise KvcalcError(
                f"engine {engine.name}: KV pages of {page:,} and {largest:,} B do not divide "
                "(vLLM cannot unify them: NotImplementedError in unify_kv_cache_spec_page_size)"
            )
        blocks[window] = block * (largest // page)
    if len(set(blocks.values())) > 1 and any(layer.state is not None for layer in layers):
        raise KvcalcError(
            f"engine {engine.name}: state layers beside attention layers of different page "
            "sizes are not modelled (try --engine sglang or hf)"
        )
    return blocks


def _state_assumptions(
    model: ModelSpec,
    workload: Workload,
    engine: EngineProfile,
    state_groups: list[StateGroup],
    state_page: int | None,
    block: int,
    mode: MambaMode = "none",
) -> tuple[str, ...]:
    notes: list[str] = []
    rules = engine.rules_for(model.family)
    if state_groups:
        conv_width = engine.conv_width
        if rules is not None and rules.conv_width is not None:
            # the family's own state rules, in its note, replace the engine's [state] ones
            conv_width = rules.conv_width
        elif not (rules is not None and rules.replaces_state_notes):
            notes.extend(
                t.removeprefix("[state] ") for t in engine.assumptions if t.startswith("[state] ")
            )
        width = "conv_kernel" if conv_width == "kernel" else "conv_kernel - 1"
        held = f"conv state {width} wide + recurrent state"
        if not any(g.conv_bytes_per_layer for g in state_groups):
            held = "a recurrent state only, no conv state"  # MiniMax's lightning layers
        notes.append(
            f"recurrent / linear-attention layers keep a fixed state per sequence "
            f"({held}){'' if mode == 'all' else ', independent of seq_len'}"
        )
    if state_page is not None and mode == "all":
        pages = cdiv(workload.seq_len, block)
        chunks = sorted(
            {k.chunk_size or 0 for k in (model.kinds or {}).values() if isinstance(k, StateKind)}
        )
        notes.append(
            f"vLLM hybrid alignment, mamba_cache_mode all: attention block size {block} "
            f"tokens, a multiple of lcm(mamba chunk {', '.join(map(str, chunks))}, kernel "
            "block) whose KV page covers a state page (the config's chunk); each state layer "
            f"holds one page of {state_page:,} B per block of a "
            f"sequence, cdiv({workload.seq_len:,}, {block:,}) = {pages:,} (a state saved at "
            "every block boundary: the planning bound MambaSpec.max_memory_usage_bytes, as "
            "vLLM's memory check and max concurrency count it; once prefilled a request "
            "keeps one or two, the rest cached and evictable)"
        )
    elif state_page is not None:
        pages_text = (
            "one page" if mode == "none" else "two pages (the running state and the last step's)"
        )
        notes.append(
            f"vLLM hybrid alignment: attention block size {block} tokens so one KV page covers "
            f"a state page; each state layer holds {pages_text} of {state_page:,} B per "
            f"sequence (mamba_cache_mode {mode})"
        )
    if workload.mtp and not model.mtp_layers:
        notes.append("the model has no MTP / next-n layers: --mtp adds nothing")
    if model.mtp_layers:
        if workload.mtp:
            notes.append(f"{model.mtp_layers} MTP layer(s) cached (speculative decoding on)")
        elif is_compressed(model):
            why = (
                "speculative decoding off"
                if engine.compressed_layout == "sglang"
                else "transformers builds none for DeepSeek-V4"
            )
            notes.append(f"the model's {model.mtp_layers} MTP layer(s) are not counted ({why})")
        elif engine.sliding == "llama_cpp" and getattr(model.attention, "index_head_dim", None):
            notes.append(
                f"the model's {model.mtp_layers} MTP layer(s) are not counted (llama.cpp "
                "keeps them out of the trunk's caches)"
            )
        else:
            notes.append(
                f"the model's {model.mtp_layers} MTP layer(s) are not counted "
                "(speculative decoding off; --mtp counts them)"
            )
    return tuple(notes)


def _prefix_assumptions(
    workload: Workload, engine: EngineProfile, state_page: int | None
) -> tuple[str, ...]:
    """Return the note that prefix caching changes nothing for a model without state layers
    (with them, the hybrid-alignment note says how many state pages it keeps)."""
    if not workload.prefix_caching or state_page is not None:
        return ()
    return (
        "prefix caching on: cached prefix blocks are evictable and free for new requests, so "
        f"the sizing is the same as without it ({engine.name} turns it on for such models)",
    )


def effective_windows(
    model: ModelSpec, workload: Workload, engine: EngineProfile
) -> tuple[Window | None, ...]:
    """Return each layer's window: the model's (its config's own where the engine reads that),
    or TRT-LLM max_attention_window when given."""
    given = workload.attention_windows
    if given is None:
        return model.layer_windows(config_window=engine.window_source == "config")
    if not engine.accepts_attention_windows:
        raise KvcalcError(f"--max-attention-window applies to engine trtllm, not {engine.name}")
    return tuple(
        Window("sliding", given[i % len(given)])
        if given[i % len(given)] < workload.seq_len
        else None
        for i in range(model.n_layers)
    )


def _kind_text(group: LayerGroup) -> str:
    name = f"{group.layer_kind} " if group.layer_kind else ""
    if group.window is None:
        return name
    label = {"sliding": "W", "chunked": "chunk", "ring": "rows"}.get(group.kind, "m")
    return f"{name}{group.kind} ({label}={group.window}) "


def _total_formula(groups: list[LayerGroup], batch: int, tp: int, total: int) -> str:
    terms = [
        f"{_layers_text(g)} {_kind_text(g)}layers × "
        f"{g.tokens:,} {'rows' if g.kind in COMPRESSED_PARTS else 'tokens'} × {batch:,} seq × "
        f"{g.bytes_per_token_per_layer:,} B"
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
    compressed = is_compressed(model)
    # SGLang pools DeepSeek-V4's windows its own way (its [compressed] assumption)
    sglang_v4 = compressed and engine.compressed_layout == "sglang"
    if not sglang_v4 and any(w is not None and w.kind == "sliding" for w in windows):
        topics.add("sliding")
    if any(w is not None and w.kind == "chunked" for w in windows):
        topics.update({"sliding", "chunked"})
    if is_mla:
        topics.add("mla")
    if is_dsa(model):
        topics.add("indexer")
    if model.layers is not None and model.layers.config_sliding_window is not None:
        topics.add("config_window")
    topics.add("compressed" if compressed else "uncompressed")
    if model.family == "falcon" and isinstance(model.attention, GQA):
        topics.add("falcon")
    rules = engine.rules_for(model.family)
    if rules is not None and rules.sliding is not None:
        topics.discard("sliding")  # the family's own rule, in its note, replaces the engine's
    if rules is None or rules.block_size is None or workload.block_size is not None:
        topics.add("block")  # the engine's own block (a family's own is in its note)
    if has_gqa_indexer(model):
        topics.add("gqa_indexer")
    notes = list(engine.assumptions_for(topics))
    if rules is not None and rules.note:
        notes.append(rules.note)
    no_window = not engine.honours_window(model.family, model.architecture)
    if no_window and any(w is not None for w in model.layer_windows()):
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
