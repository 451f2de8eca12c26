"""llama.cpp's context options and how they size the KV cache (pure, integer).

Read from ggml-org/llama.cpp at commit 0c1e57098 (the tree llama-cpp-python 0.3.36
vendors) and checked byte for byte against that llama.cpp (tests/test_llamacpp.py, cases
recorded by scripts/measure_llamacpp.py):

- src/llama-context.cpp:llama_context::llama_context:
  n_batch = min(n_ctx, -b) (causal models), n_ubatch = min(n_batch, -ub), both before
  padding; n_ctx = GGML_PAD(-c, 256); unified: one stream of n_ctx cells, else
  n_ctx_seq = GGML_PAD(n_ctx / n_seq_max, 256) cells in each of n_seq_max streams.
- src/llama-kv-cache-iswa.cpp:llama_kv_cache_iswa: sliding (and chunked) layers hold
  GGML_PAD(min(n_ctx_seq, n_swa · (unified ? n_seq_max : 1) + n_ubatch), 256) cells per
  stream, or the full size with --swa-full.
- src/llama-context.cpp:llama_init_from_model: MLA models refuse different K and V types;
  a quantised V cache needs flash attention ('auto' turns it on, 'off' is refused); with
  flash attention a quantised K or V type's block must divide the head dim.
- src/llama-kv-cache.cpp:llama_kv_cache::llama_kv_cache: one [n_embd_k_gqa, cells,
  n_stream] tensor per layer for K and one for V (no V for MLA: the latent is K).

The tools' defaults (common/common.h, common/arg.cpp, tools/server/server.cpp): -c 0 (the
model's training context), -b 2048, -ub 512, --swa-full off, --kv-unified off, -np 1;
llama-server without -np runs 4 slots with a unified cache.
"""

from typing import Literal

from kvcalc.dtypes import KvDtype
from kvcalc.errors import KvcalcError
from kvcalc.records import record
from kvcalc.specs import MLA, AttentionKind, CompressedKind, ModelSpec

FlashAttn = Literal["auto", "on", "off"]

PAD = 256  # GGML_PAD(n_ctx, 256) and the iSWA cache padding
DEFAULT_N_BATCH = 2048  # common_params.n_batch
DEFAULT_N_UBATCH = 512  # common_params.n_ubatch
SERVER_AUTO_SLOTS = 4  # tools/server/server.cpp: n_parallel < 0 -> 4 slots, kv_unified


def _pad(n: int) -> int:
    return -(-n // PAD) * PAD


@record
class LlamaCppOptions:
    """The llama.cpp flags that change what the KV cache allocates (None: the tools' default)."""

    ctx_size: int | None = None  # -c: cells for all slots together; None: seq_len × slots
    kv_unified: bool = False  # -kvu
    n_batch: int | None = None  # -b
    n_ubatch: int | None = None  # -ub
    swa_full: bool = False  # --swa-full
    flash_attn: FlashAttn = "auto"  # -fa

    def __post_init__(self) -> None:
        for name in ("ctx_size", "n_batch", "n_ubatch"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise KvcalcError(f"llama.cpp {name} must be a positive integer, got {value!r}")
        if self.flash_attn not in ("auto", "on", "off"):
            raise KvcalcError(f"flash attention must be on, off or auto, got {self.flash_attn!r}")


@record
class LlamaCppContext:
    """What llama_context derives from the options: cells, streams and batch sizes."""

    n_seq: int  # n_seq_max (slots, -np)
    n_ctx: int  # GGML_PAD(-c, 256), then n_ctx_seq · n_seq when not unified
    n_ctx_seq: int  # cells of one stream
    n_stream: int  # 1 when unified, else n_seq
    n_batch: int
    n_ubatch: int
    unified: bool
    swa_full: bool
    flash_attn: bool  # as resolved ('auto' is on where the backend supports it)

    def stream_cells(self, window: int | None) -> int:
        """Return the cells one stream of a layer holds (window: its sliding window or chunk)."""
        if window is None or self.swa_full:
            return self.n_ctx_seq
        swa = window * (self.n_seq if self.unified else 1) + self.n_ubatch
        return _pad(min(self.n_ctx_seq, swa))

    def cells(self, window: int | None) -> int:
        """Return the cells of a layer over all streams."""
        return self.n_stream * self.stream_cells(window)


def llama_context(options: LlamaCppOptions | None, seq_len: int, n_seq: int) -> LlamaCppContext:
    """Return llama.cpp's context for these options, n_seq slots of seq_len tokens each.

    Without -c the context is seq_len · n_seq (each of n_seq slots gets seq_len tokens, as
    `-c seq·n -np n` gives). Flash attention 'auto' counts as on: it is on the CPU and CUDA
    backends (measured), and a quantised V cache turns it on.
    """
    opts = options or LlamaCppOptions()
    requested = opts.ctx_size if opts.ctx_size is not None else seq_len * n_seq
    n_batch = min(requested, opts.n_batch or DEFAULT_N_BATCH)
    n_ubatch = min(n_batch, opts.n_ubatch or DEFAULT_N_UBATCH)
    n_ctx = _pad(requested)
    if opts.kv_unified:
        n_ctx_seq, n_stream = n_ctx, 1
    else:
        n_ctx_seq, n_stream = _pad(n_ctx // n_seq), n_seq
        n_ctx = n_ctx_seq * n_seq
    return LlamaCppContext(
        n_seq=n_seq,
        n_ctx=n_ctx,
        n_ctx_seq=n_ctx_seq,
        n_stream=n_stream,
        n_batch=n_batch,
        n_ubatch=n_ubatch,
        unified=opts.kv_unified,
        swa_full=opts.swa_full,
        flash_attn=opts.flash_attn != "off",
    )


# common/arg.cpp kv_cache_types: what -ctk/-ctv accept ("Unsupported cache type" otherwise)
CACHE_TYPES = ("fp32", "fp16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def check_cache_type_names(k_dtype: KvDtype | None, v_dtype: KvDtype | None) -> None:
    """Refuse a cache type llama.cpp's -ctk/-ctv do not accept (fp8, say); KvcalcError."""
    for role, dtype in (("K", k_dtype), ("V", v_dtype)):
        if dtype is not None and dtype.name not in CACHE_TYPES:
            raise KvcalcError(
                f"llama.cpp has no {dtype.name} {role} cache type "
                "(-ctk/-ctv: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)"
            )


def is_quantised(dtype: KvDtype) -> bool:
    """Return True for ggml's block-quantised cache types (q8_0, q4_0, ...)."""
    return dtype.block_elems > 1


def check_cache_types(
    k_dtype: KvDtype,
    v_dtype: KvDtype,
    is_mla: bool,  # or any K-only cache (DeepSeek-V4)
    head_dims: tuple[int, int],
    flash_attn: FlashAttn,
) -> None:
    """Refuse what llama_init_from_model refuses (src/llama-context.cpp); KvcalcError.

    head_dims: (K head dim, V head dim) of the model's attention layers.
    """
    if is_mla and k_dtype != v_dtype:
        raise KvcalcError(
            f"llama.cpp: model does not support different K ({k_dtype.name}) and V "
            f"({v_dtype.name}) cache types (MLA, DeepSeek-V4: src/llama-context.cpp "
            "llama_init_from_model)"
        )
    if is_quantised(v_dtype) and flash_attn == "off":
        raise KvcalcError(
            "llama.cpp: quantized V cache requires flash_attn to be enabled (-fa on or auto)"
        )
    if flash_attn == "off":
        return
    for role, dtype, dim in (("K", k_dtype, head_dims[0]), ("V", v_dtype, head_dims[1])):
        if is_quantised(dtype) and dim % dtype.block_elems:
            raise KvcalcError(
                f"llama.cpp: {role} cache type {dtype.name} with block size {dtype.block_elems} "
                f"does not divide the head dim {dim}"
            )


# src/models/glm-dsa.cpp GLM_5_2_DEFAULT_INDEXER_TYPES: layers 0 and 1, then every fourth
# from layer 2, run their own indexer; the array ends at layer 77 (the rest are 0)
_GLM_5_2_INDEXER_LAYERS = 78
GLM_5_2_CONTEXT = 1_048_576  # n_ctx_train below this: GLM-5 / 5.1, every layer indexed


def indexer_layers(model: ModelSpec) -> tuple[bool, ...] | None:
    """Return which trunk layers llama.cpp keeps indexer keys for, or None (kvcalc cannot say).

    src/llama-model.cpp:create_memory filter_lid: DEEPSEEK32 every trunk layer; GLM_DSA the
    is_indexer_full ones, which src/models/glm-dsa.cpp:load_arch_hparams reads from the
    GGUF's indexer_types (conversion/glm.py writes it only when config.json lists
    indexer_types) or, without it, takes as every layer when n_ctx_train (the converter's
    max_position_embeddings) < 1,048,576, else GLM_5_2_DEFAULT_INDEXER_TYPES.
    """
    n = model.n_layers
    if model.family != "glm_moe_dsa":
        return (True,) * n
    if model.max_position_embeddings is None:
        return None
    if model.max_position_embeddings < GLM_5_2_CONTEXT:
        return (True,) * n
    return tuple(i < 2 or (i < _GLM_5_2_INDEXER_LAYERS and (i - 2) % 4 == 0) for i in range(n))


def check_layers(model: ModelSpec, mtp: bool) -> None:
    """Refuse what kvcalc has not modelled of a DSA model's llama.cpp caches; KvcalcError."""
    attention = model.attention
    if not isinstance(attention, MLA) or attention.index_head_dim is None:
        return
    if mtp and model.mtp_layers:
        raise KvcalcError(
            "llama.cpp runs a DSA model's NextN/MTP layers in their own context (dense MLA, "
            "no indexer cache): not modelled (drop --mtp)"
        )
    indexed = tuple(_kind_indexed(model, name) for name in model.layer_kind_names())
    if indexer_layers(model) == indexed:
        return
    if model.family != "glm_moe_dsa":
        raise KvcalcError(
            f"llama.cpp keeps indexer keys in every layer of {model.family} (deepseek32), "
            "but this config shares some layers' indexer: not modelled"
        )
    raise KvcalcError(
        "llama.cpp (glm-dsa) keeps indexer keys where the GGUF's indexer_types says (written "
        "only when config.json lists them), else in every layer below a 1,048,576 context "
        "and in GLM-5.2's pattern above; this config's pattern is neither fallback (or its "
        "context is unknown), and which one its GGUF carries is not known"
    )


def _kind_indexed(model: ModelSpec, name: str) -> bool:
    kind = model.layer_kind(name)
    return isinstance(kind, AttentionKind) and kind.indexer


def _ffn_elems_per_token(model: ModelSpec) -> int:
    """Return the FFN activations one token holds at once, in elements (gate, up, act, mul).

    From the published parameter counts: a gated MLP of width d_ff has 3·d_model·d_ff
    weights and keeps 4·d_ff activations, so 4/3 of the active MLP weights per layer / d_model;
    MoE layers count the routed experts a token uses.
    """
    d = model.d_model
    if model.params is None:
        return 16 * d
    active = model.params.mlp
    if model.moe is not None and model.params.experts:
        active += model.params.experts * model.moe.n_experts_per_token // model.moe.n_experts
    return max(1, active * 4 // (3 * d * model.n_layers))


def _compute_parts(model: ModelSpec, n_ubatch: int, n_kv: int, flash: bool) -> tuple[int, ...]:
    """Return (logits + output, mask, FFN, attention) bytes of one ubatch's graph."""
    ub, d = n_ubatch, model.d_model
    attention = model.attention
    n_heads = attention.n_heads
    if isinstance(attention, MLA):
        qkv = n_heads * (2 * (attention.qk_nope_head_dim + attention.qk_rope_head_dim))
        qkv += n_heads * attention.v_head_dim
    else:
        qkv = n_heads * attention.head_dim_k + attention.n_kv_heads * (
            attention.head_dim_k + attention.v_dim
        )
    output = ub * (model.vocab_size + 2 * d) * 4
    mask = n_kv * ub * (2 if flash else 4)
    ffn = ub * (_ffn_elems_per_token(model) + 2 * d) * 4
    attn = ub * (2 * d + qkv) * 4
    if not flash:
        attn += n_heads * n_kv * ub * 4
    return output, mask, ffn, attn


def compute_buffer_modelled(model: ModelSpec) -> bool:
    """Return False for models whose compute buffer the estimate leaves out a part of.

    DSA models (deepseek32, glm-dsa): the lightning indexer's score tensors; llama.cpp's
    buffer measured 1.2-3.9× the estimate at n_ubatch 512 on the CPU for DeepSeek-V3.2 and
    GLM-5 (tests/data/llamacpp/cases.json). DeepSeek-V4 (compressed layers): the
    compressors, indexer and hyper-connections; measured 1.0-2.0× the estimate there.
    Kimi-K3 (kimi_k3): Attention Residuals keep the earlier blocks' outputs; measured 1.56-1.63×
    the estimate (tests/data/llamacpp/state_cases.json).
    """
    attention = model.attention
    dsa = isinstance(attention, MLA) and attention.index_head_dim is not None
    compressed = any(isinstance(k, CompressedKind) for k in (model.kinds or {}).values())
    return not (dsa or compressed or model.family == "kimi_k3")


def _check_compute_modelled(model: ModelSpec) -> None:
    if not compute_buffer_modelled(model):
        raise KvcalcError(
            "llama.cpp's compute buffer of DSA, DeepSeek-V4 and Kimi-K3 models (indexer "
            "scores, compressors, attention residuals) is not modelled: pass --reserve with its "
            "size (llama.cpp's 'compute buffer size')"
        )


def compute_buffer_bytes(model: ModelSpec, ctx: LlamaCppContext) -> int:
    """Return an estimate of llama.cpp's compute buffer (its "compute buffer size"), bytes.

    The buffer is ggml-alloc's peak over the graph reserved for one ubatch
    (src/llama-context.cpp sched_reserve); fitted to the CPU measurements in
    tests/data/llamacpp/cases.json (mean error under 5%, see tests/test_llamacpp.py):
      max(logits + output,  mask + max(FFN, attention))
      logits + output = n_ubatch · (n_vocab + 2·d_model) · 4 B
      mask            = n_kv · n_ubatch · (2 B with flash attention, else 4 B)
      FFN             = n_ubatch · (ffn activations + 2·d_model) · 4 B
      attention       = n_ubatch · (2·d_model + q + k + v) · 4 B
                        + n_heads · n_kv · n_ubatch · 4 B without flash attention (KQ)
    n_kv: the full layers' cells of one stream. DSA models are refused (KvcalcError).
    """
    _check_compute_modelled(model)
    output, mask, ffn, attn = _compute_parts(model, ctx.n_ubatch, ctx.n_ctx_seq, ctx.flash_attn)
    return max(output, mask + max(ffn, attn))


def compute_reserve_terms(
    model: ModelSpec, options: LlamaCppOptions | None
) -> tuple[tuple[str, int], ...]:
    """Return the planner's reserve term for llama.cpp's compute buffer, (label, bytes).

    The part that does not grow with the context (the context-sized mask and, without flash
    attention, KQ are left out), so the planner's reserve is one figure for every seq and
    batch; kvcalc/llamacpp_plan.py counts the whole buffer at each context it tries.
    """
    _check_compute_modelled(model)
    opts = options or LlamaCppOptions()
    n_ubatch = min(opts.n_batch or DEFAULT_N_BATCH, opts.n_ubatch or DEFAULT_N_UBATCH)
    output, _, ffn, attn = _compute_parts(model, n_ubatch, 0, opts.flash_attn != "off")
    label = f"compute buffer (llama.cpp, n_ubatch {n_ubatch}, context-sized part aside)"
    return ((label, max(output, ffn, attn)),)
