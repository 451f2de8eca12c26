"""SGLang's DeepSeek-V4 cache rows (pure): the per-token bytes of its pools' rows.

planner._dsv4_pools sizes the pools from these; formula.compressed_parts calls in here for
engine sglang, as it calls kvcalc.vllm_compressed for vllm.
"""

from __future__ import annotations

from kvcalc.dtypes import KvDtype
from kvcalc.errors import KvcalcError
from kvcalc.formula import compressed_head_dim, round_up
from kvcalc.specs import CompressedKind, ModelSpec, Window

# SGLang's DeepSeek-V4 cache (sgl-project/sglang@v0.5.23, PyPI wheel sglang 0.5.23):
# DeepSeekV4SingleKVPool keeps each token as one FlashMLA KVLayout.V4 row of 584 B (the
# 448 no-RoPE dims in fp8, the 64 RoPE dims in bf16, 448 / 64 = 7 fp8 scales, 1 pad;
# mem_cache/deepseek_v4_memory_pool.py asserts exactly this shape, so head_dim 512 with
# qk_rope_head_dim 64), its pages padded to a multiple of 576 B
# (kernels/ops/attention/dsv4/kv_layout.py KVLayout.page_bytes); the C4 indexer keeps
# Di fp8 values + one fp32 scale per 128 (get_dsv4_indexer_bytes_per_token); compress
# state is fp32 (SGLANG_DSV4_COMPRESS_STATE_DTYPE default) rows of 2·(1 + overlap) head
# widths (kv and score), C4 in a ring of 8 rows per sliding-window page, C128 in a ring of
# 128 rows per request slot (get_compress_state_ring_size without speculative decoding).
SGLANG_V4_ROW_BYTES = 584
SGLANG_V4_PAGE_ALIGN = 576
SGLANG_V4_HEAD_DIM = 512
SGLANG_V4_STATE_DTYPE_BYTES = 4
SGLANG_V4_RING_ROWS = {4: 8, 128: 128}


def sglang_v4_row_bytes(page: int) -> int:
    """Return bytes per token of a DeepSeek-V4 KV row in pages of `page` rows (SGLang).

    KVLayout.V4.page_bytes(page) / page = ceil(page · 584 / 576) · 576 / page: 585 for pages
    of 256 (sliding window) and 64 (C4), 864 for pages of 2 (C128).
    """
    page_bytes = round_up(page * SGLANG_V4_ROW_BYTES, SGLANG_V4_PAGE_ALIGN)
    if page_bytes % page:
        raise KvcalcError(
            f"engine sglang: DeepSeek-V4 pages of {page} rows ({page_bytes:,} B) do not "
            "split into whole bytes per row (use the default page size 256)"
        )
    return page_bytes // page


def sglang_compressed_parts(
    model: ModelSpec,
    kind: CompressedKind,
    dtypes: tuple[KvDtype, KvDtype],
    page: int,
    name: str,
) -> tuple[int, tuple[tuple[Window, int, str], ...], str]:
    """Return (sliding-pool bytes per window token, the other parts, formula) under SGLang.

    Per layer, page P (256): the sliding pool's row sglang_v4_row_bytes(P) (585 B), plus
    for a CSA layer its C4 compress state, 8 ring rows per sliding page of
    (4·D + 4·Di)·4 B (8 · 10,240 / 256 = 320 B a token); CSA: a C4 row per 4 paged tokens,
    585 B KV (pages of P / 4) + Di + Di / 128 · 4 = 132 B indexer; HCA: a C128 row per 128
    paged tokens, 864 B (pages of P / 128), and its compress-state ring of 128 rows of
    2·D·4 B (4,096 B) per request. mem_cache/deepseek_v4_memory_pool.py
    (DeepSeekV4TokenToKVPool), model_executor/pool_configurator.py (DSV4PoolConfigurator).
    """
    for dtype in dtypes:  # K = V: one row
        if dtype.name != "fp8_e4m3":
            raise KvcalcError(
                f"engine sglang: DeepSeek-V4 caches its KV as fp8_e4m3 FlashMLA rows on CUDA "
                f"(bfloat16 only on NPU); a {dtype.name} KV cache is not modelled"
            )
    d = compressed_head_dim(model, kind)
    m = kind.rate
    csa = kind.index_head_dim is not None
    if d != SGLANG_V4_HEAD_DIM or m != (4 if csa else 128):
        raise KvcalcError(
            f"engine sglang: kinds.{name} (head_dim {d}, rate {m}) is not DeepSeek-V4's "
            "512-wide CSA m=4 / HCA m=128 layout, the only one SGLang's pool builds"
        )
    state = SGLANG_V4_STATE_DTYPE_BYTES
    swa = sglang_v4_row_bytes(page)
    ring = SGLANG_V4_RING_ROWS[m]
    if csa:
        di = kind.index_head_dim or 0
        state_row = (4 * d + 4 * di) * state
        if (ring * state_row) % page:
            raise KvcalcError(
                f"engine sglang: C4 compress state does not split per token in pages of {page}"
            )
        keys = swa + ring * state_row // page
        index = di + di // 128 * 4
        row = sglang_v4_row_bytes(page // m)
        parts: tuple[tuple[Window, int, str], ...] = (
            (Window("paged", m), row + index, f"{row} B C4 row + {index} B indexer"),
        )
        text = (
            f"CSA m={m}: {swa} B sliding row + {ring}·{state_row:,} B / {page} C4 state "
            "per window token"
        )
        return keys, parts, text
    row = sglang_v4_row_bytes(page // m)
    parts = (
        (Window("paged", m), row, f"{row} B C128 row"),
        (Window("ring", ring), 2 * d * state, f"2·{d}·{state} B fp32 compress state"),
    )
    return swa, parts, f"HCA m={m}: {swa} B sliding row per window token"
