"""vLLM's KV cache for DeepSeek-V4's compressed layers: per-layer pages, groups, one block pool.

Read at the commits engines.VLLM_DEEPSEEK_V4_SOURCES names (docs/deepseek-v4.md). Every
layer registers a sliding-window cache (SWA); a CSA layer (m = 4) adds its compressed MLA
cache (C4A), the indexer's key cache (C4I) and two compressor states, an HCA layer
(m = 128) its compressed cache (C128A) and one compressor state. With D = head_dim (512),
Di = index_head_dim and pages rounded up to 576 B (_apply_alignment_padding):

    cache       vLLM spec             block B   page bytes                     W
    C4A, C128A  MLAAttentionSpec      256       (B // m) · 584 (fp8_ds_mla)    -
    C4I         MLAAttentionSpec      256       (B // 4) · (Di + Di // 128 · 4) -
    SWA         SlidingWindowMLASpec  64        64 · 584                       W
    C4 state    SlidingWindowMLASpec  4         4 · 2·2·D · 4 (fp32 kv+score)  8
    C4I state   SlidingWindowMLASpec  4         4 · 2·2·Di · 4                 8
    C128 state  SlidingWindowMLASpec  8         8 · 2·D · 4                    128

kv_cache_planning.py then forms one full-MLA KV-cache group (every MLAAttentionSpec) and
one group per (block, window) of the rest, split into sub-groups of `layer_tuples` layer
tuples (_approximate_gcd), pads each of their pages up to the nearest full-MLA page, and
gives every group blocks from one pool whose block costs layer_tuples · Σ full-MLA pages
(_get_kv_cache_config_deepseek_v4).
"""

from collections import Counter
from collections.abc import Sequence

from kvcalc.dtypes import KvDtype
from kvcalc.engines import EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.formula import (
    BlockPool,
    KvBreakdown,
    LayerGroup,
    PoolGroup,
    Workload,
    cdiv,
    compressed_head_dim,
    kv_heads_per_gpu,
    pool_blocks,
    round_up,
)
from kvcalc.records import record
from kvcalc.specs import CompressedKind, ModelSpec, NoCacheKind, StateKind, Window

MLA_BLOCK = 256  # DeepseekV4FlashMLASparseBackend.get_supported_kernel_block_sizes
SWA_BLOCK = 64  # DeepseekV4SWACache.block_size
STATE_BLOCKS = {4: 4, 128: 8}  # CompressorStateCache.block_size by compress ratio
PAGE_ALIGNMENT = 576  # FlashMLA's TMA stride: every DeepSeek-V4 page rounds up to it
FP8_DS_MLA_TOKEN_BYTES = 584  # 448 fp8 NoPE + 64 bf16 RoPE + 7 ue8m0 scales + 1 pad
HEAD_DIM = 512  # the one head size the V4 backends take (584 B a token assumes it)
STATE_BYTES = 4  # compressor states are fp32


@record
class _Cache:
    """One per-layer cache vLLM registers (one KVCacheSpec), as the grouping sees it."""

    name: str
    block_size: int
    window: int | None  # None: an MLAAttentionSpec (the full-MLA group)
    page: int  # page_size_bytes, 576-aligned
    token_bytes: int = 0  # bytes one token writes (SWA rows, states); 0: per m tokens


def _page(nbytes: int) -> int:
    return round_up(nbytes, PAGE_ALIGNMENT)


def _state(name: str, rate: int, dim: int) -> _Cache:
    """A compressor's fp32 kv + score state: 2 · coff · dim wide, coff = 2 with overlap (m 4)."""
    coff = 2 if rate == 4 else 1
    token = 2 * coff * dim * STATE_BYTES
    block = STATE_BLOCKS[rate]
    return _Cache(name, block, coff * rate, _page(block * token), token)


def layer_caches(model: ModelSpec, name: str, window: int) -> tuple[_Cache, ...]:
    """Return the caches one layer of kind `name` registers under vLLM (module docstring)."""
    swa_page = _page(SWA_BLOCK * FP8_DS_MLA_TOKEN_BYTES)
    swa = _Cache("SWA", SWA_BLOCK, window, swa_page, FP8_DS_MLA_TOKEN_BYTES)
    kind = model.layer_kind(name)
    if not isinstance(kind, CompressedKind):
        if name != "sliding":
            raise KvcalcError(
                f"engine vllm: DeepSeek-V4 layers of kind {name!r} are not modelled "
                "(vLLM's layers are sliding, CSA or HCA)"
            )
        return (swa,)
    rate = 4 if kind.index_head_dim is not None else 128
    if kind.rate != rate:
        raise KvcalcError(
            f"engine vllm: kinds.{name} compresses {kind.rate} to 1, but vLLM reads the ratio "
            f"from compress_ratios and builds {'CSA' if rate == 4 else 'HCA'} layers at m = "
            f"{rate} only: a rate of {kind.rate} is not modelled"
        )
    head_dim = compressed_head_dim(model, kind)
    if head_dim != HEAD_DIM:
        raise KvcalcError(
            f"engine vllm: DeepSeek-V4's fp8_ds_mla cache is laid out for head_dim {HEAD_DIM} "
            f"(584 B a token); head_dim {head_dim} is not modelled"
        )
    entries = MLA_BLOCK // rate  # compressed entries a block holds (storage_block_size)
    compressed = _Cache(f"C{rate}A", MLA_BLOCK, None, _page(entries * FP8_DS_MLA_TOKEN_BYTES))
    if kind.index_head_dim is None:
        return swa, compressed, _state("C128 state", rate, head_dim)
    di = kind.index_head_dim
    indexer = _Cache("C4I", MLA_BLOCK, None, _page(entries * (di + di // 128 * 4)))
    return (
        swa,
        compressed,
        indexer,
        _state("C4 state", rate, head_dim),
        _state("C4I state", rate, di),
    )


def approximate_gcd(values: Sequence[int], lower_bound: int) -> int:
    """Return the chunk d ≥ lower_bound that pads Σ values up to multiples of d least.

    vllm/v1/core/kv_cache_planning.py:_approximate_gcd: brute force over
    [lower_bound, max(values)], ties to the larger d.
    """
    best, best_pad = lower_bound, None
    for d in range(lower_bound, max(values) + 1):
        pad = sum((d - x % d) % d for x in values)
        if best_pad is None or pad <= best_pad:
            best, best_pad = d, pad
    return best


def _names(caches: Sequence[_Cache]) -> str:
    return " + ".join(dict.fromkeys(c.name for c in caches))


def block_pool(caches: Sequence[_Cache], seq: int, n_batched: int | None) -> BlockPool:
    """Return the pool vLLM builds from these per-layer caches, and one sequence's blocks."""
    full = [c for c in caches if c.window is None]
    if not full:
        raise KvcalcError("engine vllm: a DeepSeek-V4 model without compressed layers")
    sliding: dict[tuple[int, int], list[_Cache]] = {}
    for c in caches:
        if c.window is not None:
            sliding.setdefault((c.block_size, c.window), []).append(c)
    full_counts = Counter(c.page for c in full)
    tuple_pages = tuple(sorted(full_counts))
    full_tuples = max(full_counts.values())  # UniformTypeKVCacheSpecs.get_num_layer_tuples
    counts = [max(Counter(c.page for c in group).values()) for group in sliding.values()]
    tuples = approximate_gcd([full_tuples, *counts], lower_bound=full_tuples)

    def sized(name: str, layers: int, split: int, block: int, window: int | None,
              pages: tuple[int, ...]) -> PoolGroup:  # fmt: skip
        blocks = pool_blocks(_key(block, window), block, seq, n_batched)
        return PoolGroup(name, layers, split, block, window, pages, blocks)

    groups = [sized(_names(full), len(full), 1, MLA_BLOCK, None, tuple_pages)]
    longest = full_tuples  # the longest page bucket of any group: the pool's layer tuples
    for (block, window), group in sliding.items():
        padded = []
        for c in group:  # each page up to the nearest full-MLA page
            larger = [p for p in tuple_pages if p >= c.page]
            if not larger:
                raise KvcalcError(
                    f"engine vllm: a {c.name} page of {c.page:,} B exceeds every full-MLA "
                    "page (vLLM asserts against it)"
                )
            padded.append(min(larger))
        per_page = Counter(padded)
        if len(set(per_page.values())) != 1:
            raise KvcalcError(
                f"engine vllm: {_names(group)} pages pad to sizes of unequal layer counts "
                "(vLLM asserts against it)"
            )
        n = next(iter(per_page.values()))
        split = cdiv(n, tuples)  # sub-groups of layer_tuples[i::split]
        longest = max(longest, cdiv(n, split))
        pages = tuple(sorted(per_page))
        groups.append(sized(_names(group), len(group), split, block, window, pages))
    return BlockPool(tuple_pages, longest, longest * sum(tuple_pages), tuple(groups))


def _key(block: int, window: int | None) -> Window:
    """The window a group's blocks follow (formula.POOL_KINDS)."""
    if window is None:
        return Window("pool_full", block)
    return Window("pool_sliding", window)


def _check(model: ModelSpec, workload: Workload, k_dtype: KvDtype, v_dtype: KvDtype) -> int:
    """Return the sliding window; refuse what vLLM refuses for DeepSeek-V4 or kvcalc has not
    read of it."""
    for dtype in (k_dtype, v_dtype):
        if not dtype.name.startswith("fp8"):
            raise KvcalcError(
                f"engine vllm: DeepSeek-V4 needs an fp8 KV cache (DeepseekV4MLAAttention "
                f"asserts --kv-cache-dtype fp8*, stored as fp8_ds_mla); {dtype.name} is "
                "refused there: pass --kv-dtype fp8"
            )
    if workload.pp > 1:
        raise KvcalcError(
            "engine vllm: DeepSeek-V4 under pipeline parallelism is not modelled (each "
            "stage's layer tuples and pool are not read): use --pp 1"
        )
    if workload.mtp:
        raise KvcalcError(
            "engine vllm: DeepSeek-V4's MTP layer (speculative decoding) is not modelled: "
            "drop --mtp"
        )
    if workload.block_size not in (None, MLA_BLOCK):
        raise KvcalcError(
            f"engine vllm: DeepSeek-V4 takes {MLA_BLOCK}-token blocks only (FlashMLA sparse "
            f"V4 kernel); --block-size {workload.block_size} is not modelled"
        )
    for name in set(model.layer_kind_names()):
        if isinstance(model.layer_kind(name), NoCacheKind | StateKind):
            raise KvcalcError(f"engine vllm: DeepSeek-V4 layers of kind {name!r} are not modelled")
    if model.layers is None or model.layers.sliding_window is None:
        raise KvcalcError("engine vllm: a DeepSeek-V4 model without a sliding window")
    return model.layers.sliding_window


def compressed_cache(
    model: ModelSpec,
    workload: Workload,
    engine: EngineProfile,
    k_dtype: KvDtype,
    v_dtype: KvDtype,
) -> KvBreakdown:
    """Return vLLM's KV cache for a DeepSeek-V4 workload: pool blocks × block bytes.

    A sequence takes cdiv(seq, 256) blocks of the full-MLA group and, in every sliding
    group, cdiv(min(W - 1 + N, seq), B) + 1 (formula.pool_blocks); every block costs
    BlockPool.block_bytes on every TP rank (the cache is not split: one latent head,
    replicated linears), so the workload holds tp · batch · blocks · block_bytes.
    """
    window = _check(model, workload, k_dtype, v_dtype)
    tp, batch = workload.tp, workload.batch
    heads = kv_heads_per_gpu(model, engine, tp)  # tp must divide the query heads
    names = model.layer_kind_names()
    per_kind = {name: layer_caches(model, name, window) for name in set(names)}
    caches = [c for name in names for c in per_kind[name]]
    n_batched = workload.max_num_batched_tokens or engine.max_num_batched_tokens
    pool = block_pool(caches, workload.seq_len, n_batched)
    groups = tuple(
        LayerGroup(
            kind=_key(g.block_size, g.window).kind,
            window=g.window,
            count=g.groups,
            padded_count=g.groups,
            tokens=g.blocks,
            bytes_per_token_per_layer=pool.block_bytes,
            bytes=tp * g.groups * g.blocks * batch * pool.block_bytes,
            key=_key(g.block_size, g.window),
            layer_kind=_group_text(g),
            block_size=g.block_size,
        )
        for g in pool.groups
    )
    total = sum(g.bytes for g in groups)
    token_bytes = tuple(sum(c.token_bytes for c in per_kind[name]) for name in names)
    pages = ", ".join(f"{p:,}" for p in pool.tuple_pages)
    blocks = " + ".join(f"{g.groups}·{g.blocks:,}" for g in pool.groups)
    formula = f"({blocks}) blocks × {batch:,} seq × {pool.block_bytes:,} B"
    if tp > 1:
        formula += f" × {tp} TP ranks"
    notes = list(engine.assumptions_for({"compressed"}))
    notes = [n for n in notes if n.startswith("DeepSeek-V4")] or notes
    if tp > 1:
        notes.append("every TP rank holds the whole DeepSeek-V4 cache: TP does not shrink it")
    if model.mtp_layers:
        notes.append(
            f"the model's {model.mtp_layers} MTP layer(s) are not counted (speculative "
            "decoding off)"
        )
    return KvBreakdown(
        model=model,
        engine=engine,
        workload=workload,
        k_dtype=k_dtype,
        v_dtype=v_dtype,
        kv_heads_per_gpu=heads,
        block_size=MLA_BLOCK,
        groups=groups,
        bytes_per_token=sum(token_bytes),
        per_gpu_bytes_per_token=sum(token_bytes),
        per_sequence_bytes=total // batch,
        total_bytes=total,
        per_gpu_bytes=total // tp,
        layer_windows=model.layer_windows(),
        stage_layers=((0, model.n_layers),),
        stage_bytes=(total // tp,),
        busiest_stage=0,
        formula=f"{formula} = {total:,} B",
        layer_formula=(
            f"a block is {pool.layer_tuples} layer tuples × ({pages}) B full-MLA pages = "
            f"{pool.block_bytes:,} B of the pool, whichever group holds it"
        ),
        assumptions=tuple(notes),
        layer_kinds=names,
        layer_bytes_per_token=token_bytes,
        block_pool=pool,
    )


def _group_text(group: PoolGroup) -> str:
    """Name a pool group for reports: its caches, layers, block and window."""
    window = "" if group.window is None else f", W={group.window:,}"
    return f"{group.name} ({group.layers} layers, {group.block_size}-token blocks{window})"
