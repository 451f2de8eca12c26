"""vLLM prefix caching on hybrid models: mamba_cache_mode align, hand-derived from the configs.

Sources (kvcalc/engines.py VLLM_MAMBA_PREFIX_SOURCES): vllm-project/vllm@129ab7c60cbb
vllm/v1/core/single_type_kv_cache_manager.py MambaManager (align: a sequence holds the block
of its running state and, on the step that crosses into a new block, the previous one),
MambaSpec.max_memory_usage_bytes (align: 2 + num_speculative_blocks pages), config.py
HybridAttentionMambaModelConfig (align: mamba_block_size = the attention block, so block and
padded page are those of mamba_cache_mode none), MambaModelConfig (with prefix caching: all
where the model class is SupportsMambaPrefixCaching, else align). Mode all:
tests/test_vllm_mamba_all.py.
"""

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from kvcalc.cli import app
from kvcalc.dtypes import KV_DTYPES
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.kernel import fit_fast
from kvcalc.planner import Plan, budget, max_batch
from kvcalc.presets import load_gpu, load_model

VLLM = ENGINES["vllm"]
BF16 = KV_DTYPES["bf16"]
BUDGET = 60 * 2**30  # 64,424,509,440 B of KV budget on one GPU, for the max-batch figures

# Qwen3-Next-80B-A3B (tests/data/hf_configs/qwen3-next-80b-a3b.json): 48 layers,
# full_attention_interval 4 → 12 attention + 36 Gated DeltaNet layers; bfloat16.
# Attention: 2 (K,V) × 2 KV heads × head_dim 256 × 2 B = 2,048 B per token and layer.
# GDN state: conv (2 · 16 key heads · 128 + 32 value heads · 128) = 8,192 channels ×
# (linear_conv_kernel_dim 4 − 1) × 2 B = 49,152 B; recurrent 32 × 128 × 128 × 2 B =
# 1,048,576 B; one state 1,097,728 B.
# Block: 16 · cdiv(1,097,728, 16 · 2,048) = 16 · 34 = 544 tokens; page 544 · 2,048 = 1,114,112 B.
QWEN_PAGE = 544 * 2 * 2 * 256 * 2
# Nemotron-3-Nano-30B-A3B (nemotron-3-nano-30b-a3b.json): 6 attention '*', 23 Mamba2 'M'.
# Attention 2 × 2 × 128 × 2 = 1,024 B per token and layer; Mamba2 state: conv (64·64 +
# 2·8·128) = 6,144 channels × 3 × 2 B = 36,864 + 64 heads × 64 × 128 × 4 B (float32) =
# 2,097,152 → 2,134,016 B; block 16 · cdiv(2,134,016, 16 · 1,024) = 16 · 131 = 2,096 tokens,
# page 2,096 · 1,024 = 2,146,304 B.
NANO_PAGE = 2096 * 1024


def _nano_align(seq_len: int = 8192, **changes: object) -> Workload:
    base = Workload(seq_len=seq_len, prefix_caching=True, mamba_cache_mode="align")
    return replace(base, **changes)


def test_qwen3_next_align_holds_two_state_pages() -> None:
    """Qwen3-Next under vLLM with prefix caching (align, vLLM's default for it: its model class is
    not SupportsMambaPrefixCaching): block 544 and page 1,114,112 B as without it, the 12
    attention layers unchanged, each of the 36 GDN layers holding two pages per sequence.

    Attention at 8,192 tokens: cdiv(8192, 544) = 16 blocks = 8,704 tokens · 2,048 B · 12 layers
    = 213,909,504 B. State: none 36 · 1,114,112 = 40,108,032 B; align 36 · 2 · 1,114,112 =
    80,216,064 B. Groups: 12 and 36 layers, group size 12 (36 ≥ 1.5 · 12), no padding.
    """
    model = load_model("qwen3-next-80b-a3b")
    off = kv_cache(model, Workload(seq_len=8192), VLLM)
    on = kv_cache(model, Workload(seq_len=8192, prefix_caching=True), VLLM)
    assert on.block_size == off.block_size == 544
    assert on.state_groups[0].bytes_per_sequence_per_layer == 2 * QWEN_PAGE == 2 * 1_114_112
    assert on.state_groups[0].pages_per_sequence == 2
    assert on.per_sequence_bytes == off.per_sequence_bytes == 16 * 544 * 2_048 * 12
    assert off.state_bytes_per_sequence == 36 * QWEN_PAGE == 40_108_032
    assert on.state_bytes_per_sequence == 36 * 2 * QWEN_PAGE == 80_216_064
    assert any("mamba_cache_mode align" in note for note in on.assumptions)


def test_nemotron_nano_align_pages() -> None:
    """Nemotron-3-Nano with --mamba-cache-mode align: block 2,096, page 2,146,304 B; the 23 Mamba
    layers pad to 4 groups of 6 (24 slots), each slot two pages per sequence:
    24 · 2 · 2,146,304 = 103,022,592 B; attention 6 · cdiv(8192, 2096) · 2,096 · 1,024 =
    51,511,296 B as without prefix caching."""
    model = load_model("nemotron-3-nano-30b-a3b")
    result = kv_cache(model, _nano_align(k_dtype=BF16, v_dtype=BF16), VLLM)
    assert result.block_size == 2096
    assert result.per_sequence_bytes == 6 * 4 * 2096 * 1024 == 51_511_296
    assert result.state_groups[0].padded_count == 24
    assert result.state_bytes_per_sequence == 24 * 2 * NANO_PAGE == 103_022_592


@pytest.mark.parametrize("name", ["qwen3-next-80b-a3b", "qwen3.5-27b", "qwen3.5-35b-a3b"])
@pytest.mark.parametrize("seq_len", [1, 544, 545, 8192, 100_000])
@pytest.mark.parametrize("batch", [1, 7])
def test_align_doubles_state_and_keeps_kv(name: str, seq_len: int, batch: int) -> None:
    """Invariant: align (vLLM's default for Qwen3-Next and Qwen3.5, whose classes are not
    SupportsMambaPrefixCaching) holds exactly twice the none-mode state at any length and
    batch (two pages, not one per block of the sequence) and leaves the attention KV as it is."""
    model = load_model(name)
    off = kv_cache(model, Workload(seq_len=seq_len, batch=batch), VLLM)
    on = kv_cache(model, Workload(seq_len=seq_len, batch=batch, prefix_caching=True), VLLM)
    assert on.state_total_bytes == 2 * off.state_total_bytes
    assert on.total_bytes == off.total_bytes


def test_max_batch_counts_two_blocks_per_state_group() -> None:
    """vLLM's shared pool: a block is one page per slot of a group, page · group size bytes; a
    request takes cdiv(tokens, B) blocks in the attention group and one block per state page
    in each state group. On a 60 GiB budget at 8,192 tokens:

    Qwen3-Next: block 1,114,112 · 12 = 13,369,344 B; 64,424,509,440 // 13,369,344 = 4,818
    blocks; a request 16 + 3 groups · 1 = 19 blocks (none) → 4,818 // 19 = 253; align
    16 + 3 · 2 = 22 → 4,818 // 22 = 219.
    Nemotron-3-Nano: block 2,146,304 · 6 = 12,877,824 B; 5,002 blocks; none 4 + 4 = 8 → 625;
    align 4 + 4 · 2 = 12 → 416.
    """
    h200 = load_gpu("h200")
    cases = (
        ("qwen3-next-80b-a3b", Workload(seq_len=8192, prefix_caching=True), 253, 219),
        ("nemotron-3-nano-30b-a3b", _nano_align(), 625, 416),
    )
    for name, workload, none_batch, align_batch in cases:
        off = Plan(load_model(name), h200, VLLM, Workload(seq_len=8192))
        on = replace(off, workload=workload)
        assert max_batch(off, replace(budget(off), stage_kv_budget_bytes=(BUDGET,))) == none_batch
        assert max_batch(on, replace(budget(on), stage_kv_budget_bytes=(BUDGET,))) == align_batch


def test_fit_kernel_agrees_with_the_planner_under_align() -> None:
    """fit's fast path (kernel.fit_fast) gives the planner's max batch with prefix caching on."""
    plan = Plan(load_model("nemotron-3-nano-30b-a3b"), load_gpu("h200"), VLLM, _nano_align())
    assert fit_fast(plan).max_batch == max_batch(plan) > 0


def test_attention_only_model_unchanged_by_prefix_caching() -> None:
    """Without state layers prefix caching changes no byte (cached blocks are evictable); a note
    says so."""
    model = load_model("llama-3.1-8b")
    off = kv_cache(model, Workload(seq_len=8192), VLLM)
    on = kv_cache(model, Workload(seq_len=8192, prefix_caching=True), VLLM)
    assert on.total_bytes == off.total_bytes
    assert any(note.startswith("prefix caching on") for note in on.assumptions)


@pytest.mark.parametrize(
    ("name", "workload", "engine", "match"),
    [
        (
            "qwen3-next-80b-a3b",
            Workload(8192, prefix_caching=True),
            "sglang",
            "vllm, vllm@main only",
        ),
        ("jamba-1.5-mini", Workload(8192, prefix_caching=True), "vllm", "not read"),
        ("nemotron-3-super-120b-a12b", _nano_align(mtp=True), "vllm", "drop --mtp"),
    ],
)
def test_unmodelled_prefix_caching_refused(
    name: str, workload: Workload, engine: str, match: str
) -> None:
    """Other engines, families whose default mode is not read and align with speculative
    decoding are refused in one line (mode all: tests/test_vllm_mamba_all.py)."""
    with pytest.raises(KvcalcError, match=match) as error:
        kv_cache(load_model(name), workload, ENGINES[engine])
    assert "\n" not in str(error.value)


def test_mamba_cache_mode_needs_prefix_caching() -> None:
    """vLLM resets mamba_cache_mode to none without prefix caching: asking for align alone is an
    input error."""
    with pytest.raises(KvcalcError, match="needs --prefix-caching"):
        Workload(seq_len=8192, mamba_cache_mode="align")


def test_cli_calc_and_fit_take_prefix_caching() -> None:
    """calc --prefix-caching reports two state pages per layer; fit --emit vllm carries
    --enable-prefix-caching and the mode; a bad mode is one error line, exit 2."""
    runner = CliRunner()
    calc = runner.invoke(app, ["calc", "qwen3-next-80b-a3b", "--prefix-caching", "-f", "json"])
    assert calc.exit_code == 0, calc.output
    report = json.loads(calc.stdout)
    assert report["state_bytes_per_sequence"] == 80_216_064
    assert report["state_layers"][0]["pages_per_sequence"] == 2
    emit = runner.invoke(
        app,
        ["fit", "nemotron-3-nano-30b-a3b", "--gpu", "h200", "--prefix-caching",
         "--mamba-cache-mode", "align", "--emit", "vllm"],
    )  # fmt: skip
    assert emit.exit_code == 0, emit.output
    assert emit.stdout.rstrip().endswith("--enable-prefix-caching --mamba-cache-mode align")
    bad = runner.invoke(app, ["calc", "qwen3-next-80b-a3b", "--mamba-cache-mode", "align"])
    assert bad.exit_code == 2
    assert bad.stderr.count("error:") == 1 and "Traceback" not in bad.output
