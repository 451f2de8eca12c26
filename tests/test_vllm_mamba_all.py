"""vLLM prefix caching on hybrid models in mamba_cache_mode all, hand-derived from the configs.

Sources (kvcalc/engines.py VLLM_MAMBA_PREFIX_SOURCES):
- vllm-project/vllm@c77619938d1cca436ad7e674241811f9e6ea539f:vllm/platforms/interface.py
  Platform._align_hybrid_block_size, mode all: base = get_mamba_chunk_size() (the config's
  mamba_chunk_size, else chunk_size); attn_tokens = cdiv(mamba_page, attn_page_1_token);
  chunk = lcm(base, kernel_block_alignment_size); block = chunk · cdiv(attn_tokens, chunk)
  = mamba_block_size; the mamba page padded to block · attn_page_1_token.
- vllm-project/vllm@001cabc1be16a59a70d720ed61a13b678c060a18:vllm/v1/kv_cache_interface.py
  MambaSpec.max_memory_usage_bytes, mode all: cdiv(max_model_len, block_size) pages;
  vllm-project/vllm@129ab7c60cbb:vllm/v1/core/single_type_kv_cache_manager.py MambaManager
  (all: cdiv(tokens, block_size) blocks, as a full-attention group).
- vllm/model_executor/models/config.py MambaModelConfig: all where the class is
  SupportsMambaPrefixCaching (NemotronHForCausalLM, GraniteMoeHybridForCausalLM), else
  align, and an asked-for all falls back to align.

The kernel block alignment is 16 (kvcalc's vLLM page for GQA attention).
"""

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from kvcalc import hf
from kvcalc.cli import app
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.planner import Plan, budget, max_batch, max_seq_len
from kvcalc.presets import load_gpu, load_model
from kvcalc.specs import StateKind

VLLM = ENGINES["vllm"]
BUDGET = 60 * 2**30  # 64,424,509,440 B of KV budget on one GPU, for the max-batch figures

# NVIDIA-Nemotron-3-Nano-30B-A3B (tests/data/hf_configs/nemotron-3-nano-30b-a3b.json):
# hybrid_override_pattern with 6 attention '*' and 23 Mamba2 'M' layers; bfloat16;
# num_key_value_heads 2, head_dim 128 → attention 2 (K,V) · 2 · 128 · 2 B = 1,024 B a token
# and layer. Mamba2: mamba_num_heads 64, mamba_head_dim 64, ssm_state_size 128, n_groups 8,
# conv_kernel 4, mamba_ssm_cache_dtype float32: conv (64·64 + 2·8·128) = 6,144 channels ×
# (4 − 1) × 2 B = 36,864 B, recurrent 64 · 64 · 128 · 4 B = 2,097,152 B; state 2,134,016 B.
# chunk_size 128. Mode all: cdiv(2,134,016, 1,024) = 2,084 tokens; lcm(128, 16) = 128;
# block 128 · cdiv(2,084, 128) = 128 · 17 = 2,176 tokens (mode none: 16 · cdiv(2,134,016,
# 16 · 1,024) = 16 · 131 = 2,096); page 2,176 · 1,024 = 2,228,224 B.
# Groups: 6 and 23 layers, group size 6 (23 ≥ 1.5 · 6): 23 Mamba layers pad to 24.
NANO_BLOCK = 128 * 17
NANO_PAGE = NANO_BLOCK * 2 * 2 * 128 * 2
NANO_STATE = (64 * 64 + 2 * 8 * 128) * 3 * 2 + 64 * 64 * 128 * 4
NANO_ATTENTION_LAYERS, NANO_STATE_SLOTS = 6, 24


def _on(seq_len: int, batch: int = 1, **changes: object) -> Workload:
    return replace(Workload(seq_len=seq_len, batch=batch, prefix_caching=True), **changes)


@pytest.mark.parametrize(
    ("seq_len", "batch", "blocks"),
    [
        (1, 1, 1),
        (2176, 3, 1),  # exactly one block
        (2177, 2, 2),  # one token into the second
        (8192, 1, 4),  # cdiv(8,192, 2,176) = 4
        (100_000, 5, 46),  # 45 · 2,176 = 97,920 < 100,000 ≤ 46 · 2,176 = 100,096
    ],
)
def test_nemotron_nano_all_mode_pages(seq_len: int, batch: int, blocks: int) -> None:
    """Nemotron-3-Nano under vLLM with prefix caching runs mamba_cache_mode all (its class is
    SupportsMambaPrefixCaching): block 2,176, the state padded to 2,228,224 B and one page per
    block of the sequence in each of the 24 Mamba slots; attention cdiv(seq, 2,176) blocks in
    each of the 6 attention layers."""
    assert NANO_STATE == 2_134_016 and NANO_PAGE == 2_228_224
    result = kv_cache(load_model("nemotron-3-nano-30b-a3b"), _on(seq_len, batch), VLLM)
    assert result.block_size == NANO_BLOCK == 2_176
    (group,) = result.state_groups
    assert (group.count, group.padded_count) == (23, NANO_STATE_SLOTS)
    assert group.pages_per_sequence == blocks
    assert group.bytes_per_sequence_per_layer == blocks * NANO_PAGE
    assert result.per_sequence_bytes == NANO_ATTENTION_LAYERS * blocks * NANO_BLOCK * 1_024
    assert result.state_bytes_per_sequence == NANO_STATE_SLOTS * blocks * NANO_PAGE
    assert result.state_total_bytes == batch * NANO_STATE_SLOTS * blocks * NANO_PAGE
    assert any("mamba_cache_mode all" in note for note in result.assumptions)


def test_nemotron_nano_all_mode_at_8k() -> None:
    """The 8k point written out: attention 6 · 4 · 2,176 · 1,024 = 53,477,376 B; state
    24 · 4 · 2,228,224 = 213,909,504 B (align: 24 · 2 · 2,146,304 = 103,022,592 B)."""
    model = load_model("nemotron-3-nano-30b-a3b")
    result = kv_cache(model, _on(8192), VLLM)
    assert result.per_sequence_bytes == 53_477_376
    assert result.state_bytes_per_sequence == 213_909_504
    align = kv_cache(model, _on(8192, mamba_cache_mode="align"), VLLM)
    assert align.block_size == 2_096
    assert align.state_bytes_per_sequence == 24 * 2 * 2_096 * 1_024 == 103_022_592


def test_nemotron_nano_all_mode_tp2() -> None:
    """At tp 2 each GPU holds one KV head (2 · 1 · 128 · 2 = 512 B a token) and half the
    state: conv (2,048 + 4 groups · 256) = 3,072 channels × 3 × 2 B = 18,432 B, recurrent
    32 · 64 · 128 · 4 B = 1,048,576 B, 1,067,008 B; cdiv(1,067,008, 512) = 2,084 tokens, so
    the block is 2,176 again and the page 2,176 · 512 = 1,114,112 B; at 8k 4 pages a slot."""
    result = kv_cache(load_model("nemotron-3-nano-30b-a3b"), _on(8192, tp=2), VLLM)
    assert result.block_size == 2_176
    (group,) = result.state_groups
    assert group.conv_bytes_per_layer + group.recurrent_bytes_per_layer == 1_067_008
    assert group.bytes_per_sequence_per_layer == 4 * 2_176 * 512 == 4 * 1_114_112


def test_fp8_kv_halves_the_page_and_doubles_the_block() -> None:
    """Nemotron-3-Nano NVFP4 (nemotron-3-nano-30b-a3b-nvfp4.json, the same shapes) publishes an
    fp8 KV cache, which vLLM's auto follows: attention 2 · 2 · 128 · 1 B = 512 B a token, the
    state unchanged (2,134,016 B); cdiv(2,134,016, 512) = 4,168 tokens, block 128 ·
    cdiv(4,168, 128) = 128 · 33 = 4,224, page 4,224 · 512 = 2,162,688 B; at 8k 2 pages."""
    result = kv_cache(load_model("nemotron-3-nano-30b-a3b-nvfp4"), _on(8192), VLLM)
    assert result.k_dtype.name == "fp8_e4m3"
    assert result.block_size == 128 * 33 == 4_224
    (group,) = result.state_groups
    assert group.conv_bytes_per_layer + group.recurrent_bytes_per_layer == NANO_STATE
    assert group.bytes_per_sequence_per_layer == 2 * 4_224 * 512 == 2 * 2_162_688
    assert result.per_sequence_bytes == 6 * 2 * 4_224 * 512


def test_nemotron_super_all_mode_block() -> None:
    """Nemotron-3-Super-120B-A12B (nemotron-3-super-120b-a12b.json): 8 attention and 40 Mamba2
    layers; attention 2 · 2 · 128 · 2 B = 1,024 B a token; Mamba2 mamba_num_heads 128,
    mamba_head_dim 64, ssm_state_size 128, n_groups 8, conv_kernel 4, float32 SSM cache:
    conv (128 · 64 + 2 · 8 · 128) = 10,240 × 3 × 2 B = 61,440 B + recurrent 128 · 64 · 128 · 4
    = 4,194,304 B = 4,255,744 B; chunk_size 128. Block 128 · cdiv(4,156, 128) = 128 · 33 =
    4,224 (mode none: 16 · cdiv(4,255,744, 16,384) = 16 · 260 = 4,160); page 4,325,376 B.
    Groups 8 and 40: size 8, no padding. At 8k: attention 8 · 2 · 4,224 · 1,024 = 69,206,016
    B; state 40 · 2 · 4,325,376 = 346,030,080 B."""
    model = load_model("nemotron-3-super-120b-a12b")
    assert kv_cache(model, Workload(seq_len=8192), VLLM).block_size == 16 * 260 == 4_160
    result = kv_cache(model, _on(8192), VLLM)
    assert result.block_size == 128 * 33 == 4_224
    (group,) = result.state_groups
    assert group.conv_bytes_per_layer + group.recurrent_bytes_per_layer == 4_255_744
    assert (group.padded_count, group.pages_per_sequence) == (40, 2)
    assert result.per_sequence_bytes == 8 * 2 * 4_224 * 1_024 == 69_206_016
    assert result.state_bytes_per_sequence == 40 * 2 * 4_224 * 1_024 == 346_030_080


@pytest.mark.parametrize(
    ("seq_len", "expected"),
    [
        # a request: 4 attention blocks + 4 state groups · 4 pages = 20 blocks → 4,818 // 20
        (8192, 240),
        # 46 + 4 · 46 = 230 blocks → 4,818 // 230 = 20 (21 · 230 = 4,830 > 4,818)
        (100_000, 20),
    ],
)
def test_max_batch_counts_a_block_per_state_page(seq_len: int, expected: int) -> None:
    """vLLM's shared pool: a block is one page per slot of a group, 2,228,224 · 6 =
    13,369,344 B; 64,424,509,440 // 13,369,344 = 4,818 blocks (4,818 · 13,369,344 =
    64,413,499,392). A request takes cdiv(seq, 2,176) blocks in the attention group and as
    many in each of the 4 state groups (24 slots / 6)."""
    plan = Plan(load_model("nemotron-3-nano-30b-a3b"), load_gpu("h200"), VLLM, _on(seq_len))
    assert max_batch(plan, replace(budget(plan), stage_kv_budget_bytes=(BUDGET,))) == expected


def test_max_context_grows_a_block_at_a_time() -> None:
    """At batch 100 on the same 4,818 blocks a length of n blocks takes 100 · 5 · n blocks
    (attention and 4 state groups): n ≤ 4,818 // 500 = 9, so the longest context is
    9 · 2,176 = 19,584 tokens (19,585 would take a tenth block: 5,000 > 4,818)."""
    plan = Plan(load_model("nemotron-3-nano-30b-a3b"), load_gpu("h200"), VLLM, _on(8192, 100))
    limit = replace(budget(plan), stage_kv_budget_bytes=(BUDGET,))
    assert max_seq_len(plan, limit) == (9 * 2_176, False)


def test_asked_for_all_falls_back_to_align_on_qwen3_next() -> None:
    """Qwen3NextForCausalLM is not SupportsMambaPrefixCaching: vLLM turns an asked-for all into
    align, so the answer is align's (block 544; 36 GDN layers · 2 pages · 544 · 2,048 B =
    80,216,064 B, tests/test_vllm_mamba_prefix.py)."""
    model = load_model("qwen3-next-80b-a3b")
    asked = kv_cache(model, _on(8192, mamba_cache_mode="all"), VLLM)
    align = kv_cache(model, _on(8192, mamba_cache_mode="align"), VLLM)
    assert asked.block_size == align.block_size == 544
    assert asked.state_bytes_per_sequence == align.state_bytes_per_sequence == 80_216_064


@pytest.mark.parametrize(
    ("name", "workload", "match"),
    [
        # jamba's class is not read: an asked-for all may fall back to align or not
        ("jamba-1.5-mini", _on(8192, mamba_cache_mode="all"), "SupportsMambaPrefixCaching"),
        ("jamba-1.5-mini", _on(8192), "not read"),
        # speculative decoding adds num_speculative_blocks pages, not read
        ("nemotron-3-super-120b-a12b", _on(8192, mtp=True), "drop --mtp"),
    ],
)
def test_unmodelled_all_mode_refused(name: str, workload: Workload, match: str) -> None:
    """What mode all cannot size is refused in one line naming it."""
    with pytest.raises(KvcalcError, match=match) as error:
        kv_cache(load_model(name), workload, VLLM)
    assert "\n" not in str(error.value)


def test_granite_4_h_all_mode_takes_its_config_class_chunk() -> None:
    """Granite-4.0-H-350M (tests/data/hf_configs/granite-4.0-h-350m.json): 4 attention and 28
    Mamba2 layers (layer_types), bf16, num_key_value_heads 4, head_dim 768 / 12 = 64:
    attention 2 · 4 · 64 · 2 = 1,024 B a token and layer. Mamba2: 48 heads × 32, d_state 128,
    1 group, d_conv 4, state in the model dtype: conv (1,536 + 2 · 128) = 1,792 × 3 × 2 B =
    10,752 B, recurrent 48 · 32 · 128 · 2 B = 393,216 B; 403,968 B. The config publishes no
    mamba_chunk_size, so vLLM takes GraniteMoeHybridConfig's default 256 (transformers
    configuration_granitemoehybrid.py): cdiv(403,968, 1,024) = 395 tokens, lcm(256, 16) = 256,
    block 256 · cdiv(395, 256) = 512, page 512 · 1,024 = 524,288 B. Groups of 4: the 28 Mamba
    layers take 28 slots. At 8k: 16 blocks; attention 4 · 16 · 512 · 1,024 = 33,554,432 B,
    state 28 · 16 · 524,288 = 234,881,024 B."""
    result = kv_cache(load_model("granite-4.0-h-350m"), _on(8192), VLLM)
    assert result.block_size == 256 * 2 == 512
    (group,) = result.state_groups
    assert (group.conv_bytes_per_layer, group.recurrent_bytes_per_layer) == (10_752, 393_216)
    assert (group.count, group.padded_count, group.pages_per_sequence) == (28, 28, 16)
    assert result.per_sequence_bytes == 4 * 16 * 512 * 1_024 == 33_554_432
    assert result.state_bytes_per_sequence == 28 * 16 * 512 * 1_024 == 234_881_024


def _chunk(config: dict[str, object]) -> int | None:
    kind = hf.import_config(config, source="test").spec.layer_kind("mamba")
    assert isinstance(kind, StateKind)
    return kind.chunk_size


def test_chunk_size_read_from_the_config() -> None:
    """nemotron_h takes chunk_size (or mamba_chunk_size, which transformers' NemotronHConfig
    stores as chunk_size) into the state kind; two different values are refused; a config
    with neither has none, and mode all is then refused instead of guessed."""
    with open("tests/data/hf_configs/nemotron-3-nano-30b-a3b.json") as f:
        config = json.load(f)
    assert _chunk(config) == 128
    renamed = {k: v for k, v in config.items() if k != "chunk_size"} | {"mamba_chunk_size": 256}
    assert _chunk(renamed) == 256
    with pytest.raises(KvcalcError, match="mamba_chunk_size 256, chunk_size 128"):
        hf.import_config(config | {"mamba_chunk_size": 256}, source="test")
    bare = hf.import_config(
        {k: v for k, v in config.items() if k != "chunk_size"}, source="test"
    ).spec
    with pytest.raises(KvcalcError, match="does not publish"):
        kv_cache(bare, _on(8192), VLLM)


def test_cli_calc_all_mode() -> None:
    """calc --prefix-caching on Nemotron-3-Nano reports mode all's pages; --emit vllm carries
    the mode."""
    runner = CliRunner()
    calc = runner.invoke(
        app, ["calc", "nemotron-3-nano-30b-a3b", "--seq", "8192", "--prefix-caching", "-f", "json"]
    )
    assert calc.exit_code == 0, calc.output
    report = json.loads(calc.stdout)
    assert report["block_size"] == 2_176
    assert report["state_layers"][0]["pages_per_sequence"] == 4
    assert report["state_bytes_per_sequence"] == 24 * 4 * 2_228_224
    emit = runner.invoke(
        app,
        ["fit", "nemotron-3-nano-30b-a3b", "--gpu", "h200", "--prefix-caching",
         "--mamba-cache-mode", "all", "--emit", "vllm"],
    )  # fmt: skip
    assert emit.exit_code == 0, emit.output
    assert emit.stdout.rstrip().endswith("--enable-prefix-caching --mamba-cache-mode all")
