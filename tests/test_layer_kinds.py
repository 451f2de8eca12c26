"""Layer kinds beyond uniform attention: the planner counts fixed state, calc reports it apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kvcalc import hf
from kvcalc.cli import app
from kvcalc.dtypes import KV_DTYPES
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.planner import Plan, fit, hf_decode_working_set
from kvcalc.presets import load_gpu
from kvcalc.specs import ModelSpec

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
NANO = CONFIGS / "nemotron-3-nano-30b-a3b.json"


def _nano() -> ModelSpec:
    return hf.import_config(json.loads(NANO.read_text()), source="t").spec


# (not sglang: its state pool split is refused, tests/test_planner.py)
@pytest.mark.parametrize("engine", ["vllm", "hf", "llama.cpp", "formula"])
@pytest.mark.parametrize("seq", [1, 8192, 100_000])
def test_max_batch_counts_state(engine: str, seq: int) -> None:
    """Nemotron-3-Nano on an H100: max_batch sequences' KV plus state fit the KV budget of the
    GPU and one more sequence does not, under every engine."""
    model, gpu = _nano(), load_gpu("h100")
    answer = fit(Plan(model, gpu, ENGINES[engine], Workload(seq_len=seq)))
    budget = answer.budget.kv_budget_bytes

    def on_gpu(batch: int) -> int:
        kv = kv_cache(model, Workload(seq_len=seq, batch=batch), ENGINES[engine])
        # transformers: each sequence also holds the decode step's working set
        working = 0
        if ENGINES[engine].decode_working_set:
            working = sum(b for _, b in hf_decode_working_set(model, kv.layer_windows, seq))
        return kv.per_gpu_bytes + kv.state_per_gpu_bytes + batch * working

    assert answer.max_batch > 0
    assert on_gpu(answer.max_batch) <= budget < on_gpu(answer.max_batch + 1)


def test_state_limits_batch_at_short_context() -> None:
    """At 1 token per sequence the state (2,134,016 B × 23 layers per sequence under the formula
    engine) dominates: max batch is far below what the KV alone (6,144 B per sequence) allows."""
    model, gpu = _nano(), load_gpu("h100")
    answer = fit(Plan(model, gpu, ENGINES["formula"], Workload(seq_len=1)))
    per_sequence = 6_144 + 23 * 2_134_016
    assert answer.max_batch == answer.budget.kv_budget_bytes // per_sequence


def test_calc_json_reports_state_apart() -> None:
    """calc --format json: growing KV and fixed state in separate fields, summed in cache_*."""
    result = CliRunner().invoke(
        app, ["calc", str(NANO), "--seq", "8192", "--engine", "formula", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["per_sequence_bytes"] == 50_331_648
    assert data["state_bytes_per_sequence"] == 49_082_368
    assert data["cache_total_bytes"] == 50_331_648 + 49_082_368
    assert data["state_layers"][0]["mixer"] == "mamba2"
    assert data["state_layers"][0]["count"] == 23


def test_calc_table_shows_state_rows() -> None:
    """The calc table names the state layers and the KV + state total."""
    result = CliRunner().invoke(app, ["calc", str(NANO), "--engine", "hf"])
    assert result.exit_code == 0, result.output
    assert "mamba2 state layers" in result.stdout
    assert "KV + state total" in result.stdout


def test_import_list_families_and_refusal_exit_codes(tmp_path: Path) -> None:
    """import --list-families lists the table; an unknown family is one error line, exit 2."""
    runner = CliRunner()
    listed = runner.invoke(app, ["import", "--list-families"])
    assert listed.exit_code == 0
    assert "nemotron_h:" in listed.stdout and "qwen3_5_text" in listed.stdout
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "my_llama", "num_hidden_layers": 2}))
    refused = runner.invoke(app, ["calc", str(config)])
    assert refused.exit_code == 2
    assert refused.stderr.count("error:") == 1 and "Traceback" not in refused.output
    assert "--assume-standard" in refused.stderr


def test_assume_standard_on_calc_and_fit(tmp_path: Path) -> None:
    """--assume-standard reads an unknown family the standard way on calc and fit, with one
    warning on stderr; without it both refuse in one error line (exit 2)."""
    config = json.loads(
        (Path(__file__).parent / "data" / "hf_synthetic" / "unknown_llama_like.json").read_text()
    )
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    runner = CliRunner()
    for args in (["calc", str(path)], ["fit", str(path), "--gpu", "h100"]):
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2 and refused.stderr.count("error:") == 1
        assumed = runner.invoke(app, [*args, "--assume-standard", "--format", "json"])
        assert assumed.exit_code in (0, 1), assumed.output
        assert "warning:" in assumed.stderr and "my_llama" in assumed.stderr
        json.loads(assumed.stdout)


def test_mtp_flag_counts_the_mtp_layer() -> None:
    """DeepSeek-V3 (61 MLA layers, num_nextn_predict_layers 1): --mtp adds one layer's latent,
    (512 + 64) · 2 = 1,152 B per token: 61 · 1,152 = 70,272 → 62 · 1,152 = 71,424 B."""
    runner = CliRunner()
    plain = json.loads(runner.invoke(app, ["calc", "deepseek-v3", "-f", "json"]).stdout)
    mtp = json.loads(runner.invoke(app, ["calc", "deepseek-v3", "--mtp", "-f", "json"]).stdout)
    assert (plain["bytes_per_token"], mtp["bytes_per_token"]) == (70_272, 71_424)
    assert (plain["mtp_layers"], mtp["mtp_layers"]) == (0, 1)
    assert any("MTP" in line for line in plain["assumptions"])


def test_presets_list_names_each_layer_kind() -> None:
    """presets list: a model with its own layer kinds shows each kind and its layer count
    (Nemotron-3-Nano: 23 Mamba2, 23 MoE-only, 6 attention layers), not 'chunk=None'."""
    result = CliRunner().invoke(app, ["presets", "list", "-f", "csv"])
    assert result.exit_code == 0
    row = next(
        line for line in result.stdout.splitlines() if line.startswith("nemotron-3-nano-30b-a3b,")
    )
    assert "mamba×23 moe×23 full×6" in row
    assert "chunk=None" not in result.stdout


GEMMA4 = CONFIGS / "gemma-4-26b-a4b.json"


@pytest.mark.parametrize(
    ("seq", "full_tokens", "sliding_tokens"),
    [
        # 8,192: full 8,192 / 32 = 256 blocks · 32 = 8,192; sliding min(1,023 + 8,192, 8,192)
        # = 8,192 → 8,192 / 16 + 1 = 513 blocks · 16 = 8,208
        (8192, 8192, 8208),
        # 8,200: full cdiv(8,200, 32) = 257 blocks · 32 = 8,224 (16-token blocks would give
        # 8,208); sliding cdiv(8,200, 16) + 1 = 514 blocks · 16 = 8,224
        (8200, 8224, 8224),
    ],
)
def test_gemma4_vllm_caches_k_and_v_on_k_eq_v_layers(
    seq: int, full_tokens: int, sliding_tokens: int
) -> None:
    """Gemma-4-26B-A4B under vLLM (published config: 30 layers, 25 sliding + 5 full; sliding
    num_key_value_heads 8 × head_dim 256, W = 1,024; full num_global_key_value_heads 2 ×
    global_head_dim 512 with attention_k_eq_v; num_kv_shared_layers 0; bf16).

    vllm/model_executor/models/gemma4.py Gemma4Attention builds an ordinary Attention for the
    K = V layers (K weights loaded into the V slot too), so both planes are cached:
    sliding 2 · 8 · 256 · 2 = 8,192 B per token per layer, full 2 · 2 · 512 · 2 = 4,096 B.
    Pages at 16 tokens: sliding 131,072 B, full 65,536 B; unify_kv_cache_spec_page_size
    (vllm/v1/core/kv_cache_utils.py) re-blocks the full layers to 16 · 131,072 / 65,536 = 32
    tokens. Sliding layers hold vLLM's planning bound with max_num_batched_tokens 8,192."""
    model = hf.import_config(json.loads(GEMMA4.read_text()), source="t").spec
    result = kv_cache(model, Workload(seq_len=seq), ENGINES["vllm"])
    assert result.bytes_per_token == 25 * 8192 + 5 * 4096  # 225,280
    by_kind = {group.kind: group for group in result.groups}
    assert by_kind["full"].tokens == full_tokens
    assert by_kind["full"].block_size == 32
    assert by_kind["sliding"].tokens == sliding_tokens
    assert result.per_sequence_bytes == 5 * full_tokens * 4096 + 25 * sliding_tokens * 8192


def test_gemma4_sglang_caches_k_and_v_on_k_eq_v_layers() -> None:
    """Gemma-4-26B-A4B under SGLang (published config: 30 layers, 25 sliding + 5 full; sliding
    num_key_value_heads 8 × head_dim 256; full num_global_key_value_heads 2 × global_head_dim
    512 with attention_k_eq_v; bf16).

    sglang python/sglang/srt/models/gemma4_causal.py Gemma4ForCausalLM.load_weights copies each
    K = V layer's k_proj into the "v" shard too, and the layer saves K and V; the gemma4 config
    branch (python/sglang/srt/utils/hf_transformers/config.py) sets head_dim = v_head_dim = 512
    and num_key_value_heads = 2 for full layers, swa_head_dim 256 and 8 heads for sliding ones.
    get_cell_size_per_token (hybrid SWA): full 2 · (512 + 512) · 2 B = 4,096 B per layer,
    sliding 8 · (256 + 256) · 2 B = 8,192 B; cell = 5 · 4,096 + 25 · 8,192 = 225,280 B/token."""
    model = hf.import_config(json.loads(GEMMA4.read_text()), source="t").spec
    result = kv_cache(model, Workload(seq_len=8192), ENGINES["sglang"])
    assert result.bytes_per_token == 225_280
    assert ENGINES["sglang"].k_eq_v == "both"


GEMMA4_31B = CONFIGS / "gemma-4-31b.json"
TRTLLM = ENGINES["trtllm"]
# the 31B config.json publishes an fp8 KV cache (kv_cache_scheme), which TensorRT-LLM's auto
# follows (tests/test_checkpoint_kv.py): the bf16 figures below ask for bf16
BF16 = KV_DTYPES["bf16"]


def _gemma4(path: Path) -> ModelSpec:
    return hf.import_config(json.loads(path.read_text()), source="t").spec


# Gemma-4-31B (published config): 60 layers, 50 sliding (num_key_value_heads 16 ×
# head_dim 256, W = 1,024) + 10 full (num_global_key_value_heads 4 × global_head_dim 512,
# attention_k_eq_v), bf16. TensorRT-LLM (KVCacheManagerV2, 32-token blocks) keeps K and V
# in every layer: sliding 2 · 16 · 256 · 2 = 16,384 B per token per layer, full
# 2 · 4 · 512 · 2 = 8,192 B. A full layer holds cdiv(seq, 32) blocks; a sliding layer
# cdiv(seq, 32) − max(0, (seq − 1,024) // 32) (AttnLifeCycle.get_stale_range at history
# seq − 1: the blocks wholly behind the window are freed).
@pytest.mark.parametrize(
    ("seq", "per_sequence"),
    [
        # below the window: 16 blocks everywhere, 512 · (50 · 16,384 + 10 · 8,192)
        (512, 512 * 901_120),
        # at the window: 32 blocks everywhere, nothing stale yet
        (1024, 1024 * 901_120),
        # full cdiv(2,000, 32) = 63 blocks (2,016 tokens); sliding 63 − 976 // 32 = 33 (1,056)
        (2000, 10 * 2016 * 8192 + 50 * 1056 * 16384),  # 1,030,225,920
        # full 256 blocks (8,192 tokens); sliding 256 − 7,168 // 32 = 32 (1,024)
        (8192, 10 * 8192 * 8192 + 50 * 1024 * 16384),  # 1,509,949,440
        # full 257 blocks (8,224 tokens); sliding 257 − 7,169 // 32 = 33 (1,056)
        (8193, 10 * 8224 * 8192 + 50 * 1056 * 16384),  # 1,538,785,280
    ],
)
def test_gemma4_trtllm_v2_frees_blocks_behind_the_window(seq: int, per_sequence: int) -> None:
    """Gemma-4-31B under TensorRT-LLM: K = V full layers cache K and V, sliding layers hold
    only the blocks their window still reaches (KVCacheManagerV2), below and above W."""
    result = kv_cache(
        _gemma4(GEMMA4_31B), Workload(seq_len=seq, k_dtype=BF16, v_dtype=BF16), TRTLLM
    )
    assert result.bytes_per_token == 50 * 16384 + 10 * 8192  # 901,120
    assert result.per_sequence_bytes == per_sequence


@pytest.mark.parametrize(
    ("path", "tp", "per_gpu"),
    [
        # 31B tp 8: sliding ceil(16/8) = 2 heads → 2,048 B; full ceil(4/8) = 1 head (each on
        # 2 ranks) → 2 · 1 · 512 · 2 = 2,048 B; at 8,192: 10 · 8,192 + 50 · 1,024 tokens
        (GEMMA4_31B, 8, 10 * 8192 * 2048 + 50 * 1024 * 2048),  # 272,629,760
        # 26B-A4B (30 layers: 25 sliding 8 × 256, 5 full 2 × 512): tp 1, sliding
        # 2 · 8 · 256 · 2 = 8,192 B, full 2 · 2 · 512 · 2 = 4,096 B
        (GEMMA4, 1, 5 * 8192 * 4096 + 25 * 1024 * 8192),  # 377,487,360
        # tp 2: sliding 4 heads → 4,096 B, full 1 head → 2,048 B
        (GEMMA4, 2, 5 * 8192 * 2048 + 25 * 1024 * 4096),  # 188,743,680
        # tp 4: sliding 2 heads → 2,048 B, full ceil(2/4) = 1 head → 2,048 B
        (GEMMA4, 4, 5 * 8192 * 2048 + 25 * 1024 * 2048),  # 136,314,880
    ],
)
def test_gemma4_trtllm_heads_per_layer_ceil_over_tp(path: Path, tp: int, per_gpu: int) -> None:
    """KVCacheManagerV2 gives each layer ceil(n_kv / tp) of its own KV heads: Gemma 4's 2 or
    4 full-layer heads stop shrinking once tp passes them (one sequence of 8,192 tokens)."""
    result = kv_cache(
        _gemma4(path), Workload(seq_len=8192, tp=tp, k_dtype=BF16, v_dtype=BF16), TRTLLM
    )
    assert result.per_gpu_bytes == per_gpu


@settings(max_examples=200, deadline=None)
@given(seq=st.integers(1, 300_000))
def test_gemma4_trtllm_sliding_layers_hold_the_window_and_one_block_at_most(seq: int) -> None:
    """Under TensorRT-LLM a Gemma 4 sliding layer (W = 1,024, 32-token blocks) holds every
    token up to the window and never more than W + 32 tokens after it; a full layer holds
    cdiv(seq, 32) blocks."""
    by_kind = {
        g.kind: g.tokens for g in kv_cache(_gemma4(GEMMA4), Workload(seq_len=seq), TRTLLM).groups
    }
    assert min(seq, 1024) <= by_kind["sliding"] <= min(-(-seq // 32) * 32, 1024 + 32)
    assert by_kind["full"] == -(-seq // 32) * 32


def test_gemma4_trtllm_given_windows_free_blocks_too() -> None:
    """--max-attention-window replaces Gemma 4's windows in TensorRT-LLM's KVCacheManagerV2 and
    blocks behind them are freed: windows (4,096 ×5, 8,192) cycled over 60 layers put 4,096
    on the 50 sliding layers (256 − 4,096 // 32 = 128 blocks at 8,192 tokens) and 8,192 =
    seq (no window) on the 10 full ones."""
    windows = (4096, 4096, 4096, 4096, 4096, 8192)
    workload = Workload(seq_len=8192, attention_windows=windows, k_dtype=BF16, v_dtype=BF16)
    result = kv_cache(_gemma4(GEMMA4_31B), workload, TRTLLM)
    assert result.per_sequence_bytes == 10 * 8192 * 8192 + 50 * 4096 * 16384  # 4,026,531,840


def test_gemma4_trtllm_refuses_what_it_does_not_model() -> None:
    """TensorRT-LLM with Gemma 4: pipeline parallelism (Gemma4ForCausalLM asserts pp_size ==
    1) and the pool split behind max batch (rebalanced at run time) are each refused in one
    line (KV-shared layers are sized: tests/test_trtllm_hybrid.py)."""
    model = _gemma4(GEMMA4_31B)
    with pytest.raises(KvcalcError, match="pp_size == 1"):
        kv_cache(model, Workload(seq_len=8192, pp=2), TRTLLM)
    with pytest.raises(KvcalcError, match="no max batch or fit"):
        fit(Plan(model, load_gpu("h200"), TRTLLM, Workload(seq_len=8192)))
    result = CliRunner().invoke(app, ["fit", "gemma-4-31b", "--engine", "trtllm", "--gpu", "h200"])
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.output


def _gqa_with_indexed_kind(index_head_dim: int) -> dict[str, object]:
    return {
        "name": "toy", "source": "t", "n_layers": 4, "d_model": 256, "vocab_size": 1000,
        "attention": {"kind": "gqa", "n_heads": 8, "n_kv_heads": 2, "head_dim": 32},
        "layers": {"pattern": ["full", "sparse"]},
        "kinds": {"sparse": {"kind": "attention", "index_head_dim": index_head_dim}},
    }  # fmt: skip


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_gqa_indexer_key_adds_one_head_per_token(tp: int) -> None:
    """A GQA kind with index_head_dim 16 (MiniMax-M3's sparse layers) adds 16 · 2 B = 32 B per
    token to each of its layers, one head, not split by tp (formula engine, bf16): per GPU at
    tp 1 and 2, 2 full layers × 2·(2/tp)·32·2 B + 2 sparse × (that + 32) B; at tp 4 and 8
    the 2 KV heads are replicated to one per rank."""
    spec = ModelSpec.model_validate(_gqa_with_indexed_kind(16))
    kv = kv_cache(spec, Workload(seq_len=10, tp=tp), ENGINES["formula"])
    heads = max(1, 2 // tp)
    kv_bytes = 2 * heads * 32 * 2
    assert kv.per_gpu_bytes_per_token == 2 * kv_bytes + 2 * (kv_bytes + 32)
    assert kv.bytes_per_token == 2 * 256 + 2 * (256 + 32)


def test_indexer_key_width_on_an_mla_kind_is_refused() -> None:
    """MLA models keep their DSA indexer width on `attention`; a kind giving one is an error."""
    data = _gqa_with_indexed_kind(16)
    data["attention"] = {
        "kind": "mla", "n_heads": 8, "kv_lora_rank": 64, "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 32, "v_head_dim": 32,
    }  # fmt: skip
    with pytest.raises(ValueError, match="MLA layers take index_head_dim from attention"):
        ModelSpec.model_validate(data)


# MiniMax-M3 (tests/data/hf_configs/minimax-m3.json): 60 layers, sparse_attention_freq 0 for
# layers 0-2 and 1 for 3-59 (3 full + 57 sparse), 4 KV heads of head_dim 128, bf16,
# sparse_index_dim 128, sparse_disable_index_value 1 on every sparse layer (K-only indexer).
M3 = CONFIGS / "minimax-m3.json"


def _m3() -> ModelSpec:
    return hf.import_config(json.loads(M3.read_text()), source="t").spec


@pytest.mark.parametrize(
    ("tp", "kv_dtype", "cell"),
    [
        (1, "bf16", 60 * 2 * 4 * 128 * 2 + 57 * 128 * 2),  # 122,880 + 14,592 = 137,472
        (4, "bf16", 60 * 2 * 1 * 128 * 2 + 57 * 128 * 2),  # 30,720 + 14,592 = 45,312
        (8, "fp8_e4m3", 60 * 2 * 1 * 128 * 1 + 57 * 128 * 2),  # 15,360 + 14,592 = 29,952
    ],
)
def test_minimax_m3_sglang_cell_size(tp: int, kv_dtype: str, cell: int) -> None:
    """SGLang's MiniMax-M3 cell (sgl-project/sglang@003fca8027387a3d6565b2c08e497e3020ac6211
    pool_configurator.py DefaultPoolConfigurator._compute_cell_size, is_minimax_sparse):
    (num_dense + num_sparse) · 2 · kv_heads · head_dim · kv_size, kv_heads = max(1, 4 // tp)
    (at tp 8 the 4 heads are replicated, one a rank), plus num_indexer_k_only ·
    sparse_index_dim · element_size(model_dtype) = 57 · 128 · 2 B, bf16 whatever the KV dtype
    and on every rank (kv_cache_configurator.py _build_minimax_sparse_kv_pool: index_dtype
    model_dtype, index pools head_num 1)."""
    dtype = KV_DTYPES[kv_dtype]
    workload = Workload(seq_len=8192, tp=tp, k_dtype=dtype, v_dtype=dtype)
    kv = kv_cache(_m3(), workload, ENGINES["sglang"])
    assert kv.per_gpu_bytes_per_token == cell
    assert kv.per_gpu_bytes == cell * 8192  # 8,192 tokens are 64 whole pages of 128


def test_minimax_m3_sglang_holds_whole_128_token_pages() -> None:
    """SGLang sets page_size 128 for MiniMax-M3 on Hopper (fa3) and Blackwell (fa4,
    trtllm_mha) when none is given (sgl-project/sglang@1ee3fb2aa1cae4ae576917b6ac10c0a0e6512298
    arg_groups/model_overrides/minimax_m3.py): 8,000 tokens take cdiv(8000, 128) = 63 pages =
    8,064 tokens; at tp 8, fp8 KV, 29,952 B a token: 8,064 · 29,952 = 241,532,928 B a GPU.
    --block-size 1 (ROCm's triton backend) holds the 8,000: 239,616,000 B."""
    fp8 = KV_DTYPES["fp8_e4m3"]
    workload = Workload(seq_len=8000, tp=8, k_dtype=fp8, v_dtype=fp8)
    kv = kv_cache(_m3(), workload, ENGINES["sglang"])
    assert (kv.block_size, kv.per_gpu_bytes) == (128, 8064 * 29_952)
    assert kv.per_gpu_bytes == 241_532_928
    paged_1 = kv_cache(
        _m3(),
        Workload(seq_len=8000, tp=8, k_dtype=fp8, v_dtype=fp8, block_size=1),
        ENGINES["sglang"],
    )
    assert paged_1.per_gpu_bytes == 8000 * 29_952 == 239_616_000


@pytest.mark.parametrize(
    ("kv_dtype", "cell"),
    [
        # f16 (llama.cpp's default): per layer 2 · 4 · 128 · 2 = 2,048; per sparse layer the
        # indexer cache's K 128 · 2 and its V 128 · 2: 3 · 2,048 + 57 · (2,048 + 512)
        ("fp16", 3 * 2048 + 57 * (2048 + 256 + 256)),  # 6,144 + 145,920 = 152,064
        # q8_0: 128 values are 4 blocks of 34 B = 136 B a row
        ("q8_0", 60 * 2 * 4 * 136 + 57 * (136 + 136)),  # 65,280 + 15,504 = 80,784
    ],
)
def test_minimax_m3_llama_cpp_indexer_cache_keeps_a_v_row(kv_dtype: str, cell: int) -> None:
    """llama.cpp 0c1e57098 (vendored by llama-cpp-python 0.3.36): llama_kv_cache_msa keeps the
    usual cache for all 60 layers and a second llama_kv_cache (src/llama-kv-cache-msa.cpp)
    with n_head_kv 1 and n_embd_head_k_full = indexer_head_size 128 for the layers past
    n_layer_dense_lead = 3 (src/llama-model.cpp create_memory); its hparams keep
    n_embd_head_v 128, and llama_kv_cache allocates a V tensor for every non-MLA layer, so
    each of the 57 sparse layers adds a K row of 128 and a V row of 128 per cell, both in the
    cache types. 8,192 tokens, one slot: 8,192 cells (a multiple of 256)."""
    dtype = KV_DTYPES[kv_dtype]
    kv = kv_cache(_m3(), Workload(seq_len=8192, k_dtype=dtype, v_dtype=dtype), ENGINES["llama.cpp"])
    assert kv.per_gpu_bytes_per_token == cell
    assert kv.total_bytes == cell * 8192


def test_gqa_indexer_layouts_not_modelled_are_refused_in_one_line() -> None:
    """SGLang's MiniMax-M3 pool takes whole-byte KV dtypes (nvfp4 is refused), and llama.cpp's
    indexer cache covers the layers past the leading dense ones, so indexer layers that are not
    the last ones (full, sparse, full, sparse) are refused there."""
    nvfp4 = KV_DTYPES["nvfp4"]
    with pytest.raises(KvcalcError, match=r"^engine sglang: KV dtype nvfp4 in a MiniMax-M3 pool"):
        kv_cache(_m3(), Workload(seq_len=64, k_dtype=nvfp4, v_dtype=nvfp4), ENGINES["sglang"])
    toy = ModelSpec.model_validate(_gqa_with_indexed_kind(16))
    with pytest.raises(
        KvcalcError, match=r"^engine llama\.cpp: indexer layers that are not the last"
    ):
        kv_cache(toy, Workload(seq_len=64), ENGINES["llama.cpp"])


def test_sglang_keeps_recurrent_state_fp32_unless_the_config_says_mamba_ssm_dtype() -> None:
    """SGLang's configs/mamba_utils.py mamba2_state_dtype: the SSM / recurrent state is
    SGLANG_MAMBA_SSM_DTYPE, else the config's mamba_ssm_dtype, else float32; the conv state
    bf16. Qwen3-Next-80B-A3B (no mamba_ssm_dtype; config.json: 48 layers, full attention
    every 4th, so 36 Gated DeltaNet layers; 16 key heads and 32 value heads of 128, conv
    kernel 4): conv (2 · 16 · 128 + 32 · 128) channels × 3 × 2 B = 49,152 B, recurrent
    32 × 128 × 128 × 4 B = 2,097,152 B a layer (kvcalc said the model dtype's 2 B)."""
    config = json.loads((CONFIGS / "qwen3-next-80b-a3b.json").read_text())
    model = hf.import_config(config, source="t").spec
    conv = (2 * 16 * 128 + 32 * 128) * 3 * 2
    assert conv == 49_152
    sglang = kv_cache(model, Workload(seq_len=8192), ENGINES["sglang"])
    assert sglang.state_bytes_per_sequence == 36 * (conv + 32 * 128 * 128 * 4) == 77_266_944
    # a config that names a dtype is read: Qwen3.5-27B's mamba_ssm_dtype float32 stays fp32,
    # and one saying bfloat16 halves the recurrent part
    config["mamba_ssm_dtype"] = "bfloat16"
    bf16 = kv_cache(hf.import_config(config, source="t").spec, Workload(seq_len=8192),
                    ENGINES["sglang"])  # fmt: skip
    assert bf16.state_bytes_per_sequence == 39_518_208
