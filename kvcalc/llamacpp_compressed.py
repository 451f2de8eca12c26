"""llama.cpp's DeepSeek-V4 cache (pure): llama_kv_cache_dsv4's tensors per layer.

Read from ggml-org/llama.cpp@0c1e57098bba43ac29e6e3b677cdceebdd22334f (vendored by
llama-cpp-python 0.3.36), src/llama-kv-cache-dsv4.cpp:llama_kv_cache_dsv4 and
src/llama-model.cpp:create_memory (LLM_ARCH_DEEPSEEK4, main context):

- raw: a llama_kv_cache_iswa, K only (dsv4_make_k_only: the MLA path, no V tensor), every
  layer sliding (src/models/deepseek4.cpp set_swa_pattern(0)), built with unified = false
  whatever --kv-unified says: n_seq_max streams of GGML_PAD(min(n_ctx_seq, n_swa +
  n_ubatch), 256) cells, one head_dim row of type_k per cell;
- CSA layers (compress ratio 4): kv_csa, K rows of head_dim, and kv_lid (the lightning
  indexer), one head of indexer_head_size, both type_k, GGML_PAD(max(1, ceil(n_ctx_seq / 4)),
  256) cells per stream; HCA layers (128): kv_hca, head_dim rows, GGML_PAD(max(1,
  ceil(n_ctx_seq / 128)), 256) cells per stream; n_seq_max streams (unified_compressed false);
- compressor state (llama_dsv4_comp_state), F32, a kv and a score tensor per layer of
  [n_embd_state, state_size, n_seq_max · (1 + n_rs_seq)]: CSA [2·head_dim, 8] and lid
  [2·indexer_head_size, 8], HCA [head_dim, 128]; n_rs_seq is 0 (llama_context_default_params;
  the tools set it only for speculative decoding).
"""

from __future__ import annotations

from dataclasses import replace

from kvcalc.dtypes import KvDtype
from kvcalc.errors import KvcalcError
from kvcalc.formula import compressed_head_dim
from kvcalc.llamacpp import PAD, LlamaCppContext
from kvcalc.specs import CompressedKind, ModelSpec, Window

CSA_RATIO = 4  # DSV4_CSA_RATIO
HCA_RATIO = 128  # DSV4_HCA_RATIO
STATE_BYTES = 4  # GGML_TYPE_F32
CELLS = "cells"  # the part kind of a compressed cache: its cells per stream


def compressed_cells(ctx: LlamaCppContext, ratio: int) -> int:
    """Return a compressed cache's cells per stream: GGML_PAD(dsv4_comp_size(kv_size, m), 256)."""
    comp = max(1, -(-ctx.n_ctx_seq // ratio))
    return -(-comp // PAD) * PAD


def raw_context(ctx: LlamaCppContext) -> LlamaCppContext:
    """Return the context kv_raw sees: per-sequence streams even under --kv-unified."""
    return replace(ctx, unified=False, n_stream=ctx.n_seq)


def llamacpp_compressed_parts(
    model: ModelSpec, kind: CompressedKind, k_dtype: KvDtype, name: str
) -> tuple[int, tuple[tuple[Window, int, str], ...], str]:
    """Return (raw-cache bytes per cell, the other parts, formula) of one compressed layer.

    Per cell, D = head_dim, Di = index_head_dim, k = type_k: raw K row k(D); CSA: a kv_csa row
    k(D) and a kv_lid row k(Di) per compressed cell, compressor state 2 (kv, score) ×
    (2D + 2Di) × 4 B per state row (8 rows); HCA: a kv_hca row k(D), state 2 × D × 4 B per
    state row (128 rows).
    """
    d = compressed_head_dim(model, kind)
    m = kind.rate
    csa = kind.index_head_dim is not None
    if m != (CSA_RATIO if csa else HCA_RATIO):
        raise KvcalcError(
            f"engine llama.cpp: kinds.{name} (rate {m}) is not DeepSeek-V4's CSA m=4 / HCA "
            "m=128, the only ratios llama_kv_cache_dsv4 caches"
        )
    key = k_dtype.row_bytes(d)
    key_text = f"{key:,} B {k_dtype.name} K row of {d}"
    if not csa:
        state = 2 * d * STATE_BYTES
        return (
            key,
            (
                (Window(CELLS, m), key, key_text),
                (Window("ring", m), state, f"2 (kv, score) × {d}·{STATE_BYTES} B f32 state"),
            ),
            f"HCA m={m}: {key_text} per raw cell",
        )
    di = kind.index_head_dim or 0
    index = k_dtype.row_bytes(di)
    state = 2 * (2 * d + 2 * di) * STATE_BYTES
    return (
        key,
        (
            (Window(CELLS, m), key + index, f"{key_text} + {index:,} B indexer row of {di}"),
            (
                Window("ring", 2 * m),
                state,
                f"2 (kv, score) × (2·{d} + 2·{di})·{STATE_BYTES} B f32 state",
            ),
        ),
        f"CSA m={m}: {key_text} per raw cell",
    )
