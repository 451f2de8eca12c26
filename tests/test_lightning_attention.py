"""MiniMax lightning attention (transformers' model_type minimax: MiniMax-Text-01, MiniMax-M1),
derived by hand from the config and the engines' sources.

No published config.json in transformers' format (MiniMaxAI/MiniMax-Text-01-hf,
MiniMax-M1-80k-hf) could be read whole, so there is no preset: these tests use
tests/data/hf_synthetic/minimax_text01_shape.json, MiniMax-Text-01's shape as its model card
gives it (huggingface.co/MiniMaxAI/MiniMax-Text-01: 80 layers, a softmax layer after every 7
lightning ones, 64 heads of head_dim 128, 32 experts of 9216, top-2, hidden 6144, vocab
200,064) with its remote-code config's 8 KV heads, written in transformers' keys, and the
small tests/data/hf_synthetic/minimax.json (6 layers: lightning, full, lightning, lightning,
full, lightning; 4 heads of 16, 2 KV heads). tests/test_crosscheck.py proves both against
transformers 5.25.0 on the meta device.

Sources:
- transformers 5.25.0 models/minimax/modeling_minimax.py: MiniMaxCache keeps K / V of the
  softmax layers (DynamicCache) and, per lightning layer, linear_cache [batch,
  num_attention_heads, head_dim, head_dim] in the model dtype (MiniMaxLightningAttention).
- vllm-project/vllm@98370df70c1813f5f9c9c127e8baed660cd09280:vllm/model_executor/models/
  minimax_text_01.py MiniMaxText01ForCausalLM.get_mamba_state_shape_from_config
  (MambaStateShapeCalculator.linear_attention_state_shape: (num_heads // tp, head_dim,
  head_dim)), get_mamba_state_dtype_from_config (linear_attention_state_dtype:
  mamba_cache_dtype, auto = the model dtype); MiniMaxText01Attention (max(1, n_kv // tp) KV
  heads).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kvcalc import hf
from kvcalc.dtypes import kv_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.hf.families import families_text
from kvcalc.planner import weights_per_stage
from kvcalc.specs import ModelSpec, StateKind

SYNTHETIC = Path(__file__).parent / "data" / "hf_synthetic"
BF16 = kv_dtype("bf16")

# MiniMax-Text-01's shape (minimax_text01_shape.json)
H, VOCAB, LAYERS, FULL, LIGHTNING = 6144, 200_064, 80, 10, 70
HEADS, KV_HEADS, HEAD_DIM, EXPERTS, INTER = 64, 8, 128, 32, 9216


def _config(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SYNTHETIC / f"{stem}.json").read_text())
    return data


def _spec(config: dict[str, Any]) -> ModelSpec:
    return hf.import_config(config, source="test").spec


@pytest.fixture(scope="module")
def text01() -> ModelSpec:
    return _spec(_config("minimax_text01_shape"))


def _workload(seq: int, batch: int, tp: int = 1) -> Workload:
    return Workload(seq_len=seq, batch=batch, tp=tp, k_dtype=BF16, v_dtype=BF16)


def test_layers_one_softmax_after_seven_lightning(text01: ModelSpec) -> None:
    """layer_types (full_attention every 8th layer) gives 10 softmax (GQA 64 / 8 heads of 128)
    and 70 lightning layers, each lightning layer a state kind with no conv state and 64
    heads of a 128 × 128 state."""
    names = text01.layer_kind_names()
    assert names.count("full") == FULL and names.count("lightning") == LIGHTNING
    assert [i for i, n in enumerate(names) if n == "full"] == list(range(7, 80, 8))
    kind = text01.layer_kind("lightning")
    assert isinstance(kind, StateKind)
    assert (kind.mixer, kind.conv_kernel, kind.state_heads, kind.state_head_elems) == (
        "lightning", 0, HEADS, HEAD_DIM * HEAD_DIM
    )  # fmt: skip
    assert text01.attention.kind == "gqa" and text01.attention.n_kv_heads == KV_HEADS


def test_parameter_count_is_transformers_456b(text01: ModelSpec) -> None:
    """Exact parameters of MiniMaxForCausalLM (the model card's 456B total): embeddings and an
    untied lm_head; softmax layers q/k/v/o; lightning layers qkv_proj, output_gate, out_proj
    and the H·d RMSNorm; 32 experts (gate_up, down) and a router in every layer; two RMSNorms
    a layer and the final one."""
    embedding = VOCAB * H  # 1,229,193,216
    softmax = H * HEADS * HEAD_DIM + 2 * H * KV_HEADS * HEAD_DIM + HEADS * HEAD_DIM * H
    assert softmax == 113_246_208
    inner = HEADS * HEAD_DIM  # 8192
    lightning = 3 * H * inner + H * inner + inner * H + inner
    assert lightning == 251_666_432
    moe = EXPERTS * 3 * H * INTER + EXPERTS * H
    assert moe == 5_436_014_592
    norms = LAYERS * 2 * H + H
    total = 2 * embedding + FULL * softmax + LIGHTNING * lightning + LAYERS * moe + norms
    assert total == 456_089_655_296
    assert text01.n_params == total
    assert text01.params is not None
    assert text01.params.experts == LAYERS * moe
    assert text01.params.attention == FULL * softmax + LIGHTNING * lightning


@pytest.mark.parametrize("engine", ["hf", "formula"])
def test_kv_grows_in_the_softmax_layers_only(text01: ModelSpec, engine: str) -> None:
    """Per token, the 10 softmax layers cache K and V of 8 heads × 128 in bf16:
    10 · 2 · 8 · 128 · 2 B = 40,960 B; the lightning layers cache nothing per token."""
    per_token = FULL * 2 * KV_HEADS * HEAD_DIM * 2
    assert per_token == 40_960
    result = kv_cache(text01, _workload(100_000, 3), ENGINES[engine])
    assert result.bytes_per_token == per_token
    assert result.total_bytes == 3 * 100_000 * 40_960 == 12_288_000_000


@pytest.mark.parametrize("engine", ["hf", "formula"])
def test_lightning_state_is_fixed_per_sequence_in_the_model_dtype(
    text01: ModelSpec, engine: str
) -> None:
    """Each lightning layer keeps one 64 × 128 × 128 state per sequence in bf16 (transformers'
    linear_cache is built in the dtype of the values): 2,097,152 B a layer, 70 layers
    146,800,640 B a sequence, the same at 1 token and at 1M."""
    per_layer = HEADS * HEAD_DIM * HEAD_DIM * 2
    assert per_layer == 2_097_152
    for seq in (1, 1_000_000):
        result = kv_cache(text01, _workload(seq, 2), ENGINES[engine])
        (group,) = result.state_groups
        assert (group.conv_bytes_per_layer, group.recurrent_bytes_per_layer) == (0, per_layer)
        assert result.state_bytes_per_sequence == LIGHTNING * per_layer == 146_800_640
        assert result.state_total_bytes == 2 * 146_800_640


def test_fp32_model_keeps_an_fp32_state() -> None:
    """With torch_dtype float32 the state is 4 B an element (the model dtype, not a fixed
    fp32 rule): synthetic minimax.json, 4 heads × 16 × 16 × 4 B = 4,096 B a layer, 4 layers."""
    config = {**_config("minimax"), "torch_dtype": "float32"}
    fp32 = kv_dtype("fp32")
    result = kv_cache(
        _spec(config), Workload(seq_len=300, batch=1, k_dtype=fp32, v_dtype=fp32), ENGINES["hf"]
    )
    assert result.state_bytes_per_sequence == 4 * (4 * 16 * 16 * 4) == 16_384


def test_small_synthetic_model_by_hand() -> None:
    """minimax.json at seq 300, batch 2 under hf: the 2 softmax layers hold 300 tokens of K and
    V, 2 KV heads × 16 in bf16 (2 · 2 · 16 · 2 B = 128 B a token a layer); the 4 lightning
    layers a 4 × 16 × 16 bf16 state each (2,048 B)."""
    spec = _spec(_config("minimax"))
    result = kv_cache(spec, _workload(300, 2), ENGINES["hf"])
    assert result.total_bytes == 2 * 300 * 2 * 128 == 153_600
    assert result.state_total_bytes == 2 * 4 * (4 * 16 * 16 * 2) == 16_384


def test_config_defaults_are_minimaxconfigs() -> None:
    """minimax_defaults.json sets neither layer_types nor num_key_value_heads: MiniMaxConfig
    alternates full (even layers) and lightning (odd) and takes 8 KV heads; 8 heads of
    64 / 8 = 8, so a softmax layer caches 2 · 8 · 8 · 2 = 256 B a token."""
    spec = _spec(_config("minimax_defaults"))
    assert spec.layer_kind_names() == ("full", "lightning", "full")
    assert spec.attention.kind == "mha" and spec.attention.head_dim == 8
    result = kv_cache(spec, _workload(10, 1), ENGINES["hf"])
    assert result.bytes_per_token == 2 * (2 * 8 * 8 * 2) == 512
    assert result.state_bytes_per_sequence == 8 * 8 * 8 * 2 == 1024


def test_vllm_splits_the_state_heads_and_aligns_the_block_to_the_state_page(
    text01: ModelSpec,
) -> None:
    """vLLM at tp 8: each rank keeps 64 // 8 = 8 state heads, 8 · 128 · 128 · 2 B = 262,144 B a
    lightning layer, and 8 // 8 = 1 KV head, 2 · 128 · 2 = 512 B a token a softmax layer;
    the hybrid alignment grows the 16-token block to 16 · cdiv(262,144, 16 · 512) = 512
    tokens, whose page (512 · 512 B) equals the state page. At 10,000 tokens a sequence holds
    cdiv(10,000, 512) = 20 blocks."""
    state_page = (HEADS // 8) * HEAD_DIM * HEAD_DIM * 2
    assert state_page == 262_144
    per_token_layer = 2 * (KV_HEADS // 8) * HEAD_DIM * 2
    assert per_token_layer == 512
    block = 16 * -(-state_page // (16 * per_token_layer))
    assert block == 512
    result = kv_cache(text01, _workload(10_000, 4, tp=8), ENGINES["vllm"])
    (group,) = result.state_groups
    assert group.bytes_per_sequence_per_layer == state_page
    assert result.state_per_gpu_bytes == 4 * LIGHTNING * state_page == 73_400_320
    assert result.per_gpu_bytes == 4 * 20 * 512 * FULL * per_token_layer == 209_715_200


def test_vllm_replicates_kv_heads_past_eight_ranks_and_refuses_an_uneven_state_split(
    text01: ModelSpec,
) -> None:
    """At tp 16 each rank still holds max(1, 8 // 16) = 1 KV head while the state heads halve
    again (64 // 16 = 4: 131,072 B a layer); tp 3 does not divide the 64 heads, which
    MiniMaxText01LinearAttention asserts."""
    result = kv_cache(text01, _workload(4096, 1, tp=16), ENGINES["vllm"])
    (group,) = result.state_groups
    assert group.recurrent_bytes_per_layer == 4 * HEAD_DIM * HEAD_DIM * 2 == 131_072
    with pytest.raises(KvcalcError, match="tp 3 does not divide the 64 state heads"):
        kv_cache(text01, _workload(4096, 1, tp=3), ENGINES["vllm"])


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ("sglang", "MiniMaxText01Config, read only for the remote-code model_types"),
        ("llama.cpp", "conversion/minimax.py MiniMaxText01Model"),
        ("llama-server", "conversion/minimax.py MiniMaxText01Model"),
        ("trtllm", "lightning state layers are not modelled"),
        ("hf@4", "transformers 4.x's MiniMaxCache is not read"),
        ("vllm@v0", "MinimaxCacheManager"),
    ],
)
def test_engines_whose_lightning_cache_is_not_read_refuse_it(
    text01: ModelSpec, engine: str, message: str
) -> None:
    """SGLang (its MiniMax state sizing is read for the remote-code model_types only),
    llama.cpp (its converter takes the remote-code checkpoints only), TensorRT-LLM (no
    lightning state), transformers 4.x and vLLM V0 refuse in one line naming the source."""
    with pytest.raises(KvcalcError, match=message) as exc:
        kv_cache(text01, _workload(1024, 1), ENGINES[engine])
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attn_type_list": [0, 1, 0, 0, 1, 0]}, "config key 'attn_type_list' changes"),
        ({"sliding_window": 4096}, "config key 'sliding_window' changes"),
        ({"shared_intermediate_size": 512}, "'shared_intermediate_size' (a shared expert)"),
        ({"layer_types": ["linear_attention"] * 5}, "each of the 6 layers"),
        ({"layer_types": ["sliding_attention"] * 6}, "must list full_attention or linear"),
        ({"num_key_value_heads": 3}, "divisible by num_key_value_heads"),
    ],
)
def test_import_refuses_what_it_does_not_model(change: dict[str, Any], message: str) -> None:
    """The remote-code attn_type_list (transformers ignores it and alternates the layers), a
    sliding window, a shared expert transformers does not build, and malformed layer_types or
    heads are refused in one line naming the key."""
    with pytest.raises(KvcalcError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _spec({**_config("minimax"), **change})


def test_family_is_listed_and_no_longer_refused() -> None:
    """`kvcalc import --list-families` lists minimax as supported, not under refused."""
    text = families_text()
    supported, refused = text.split("refused (known, not modelled yet):")
    assert "minimax: MiniMax-Text-01 / MiniMax-M1" in supported
    assert "minimax:" not in refused


def test_vllm_holds_the_lm_head_in_fp32(text01: ModelSpec) -> None:
    """vLLM's MiniMaxText01ForCausalLM calls self.lm_head.float(): at tp 8 a GPU holds
    cdiv(200,064 · 6144, 8) = 153,649,152 LM-head weights in 4 B instead of 2 B, 307,298,304 B
    more than the textbook profile counts; the rest of the weights are the same."""
    head_per_gpu = -(-VOCAB * H // 8)
    assert head_per_gpu == 153_649_152
    (vllm,) = weights_per_stage(text01, ENGINES["vllm"], 8, 1, None)
    (textbook,) = weights_per_stage(text01, ENGINES["formula"], 8, 1, None)
    assert vllm - textbook == head_per_gpu * (4 - 2) == 307_298_304


@pytest.mark.parametrize(
    ("engine", "said", "not_said"),
    [
        ("hf", "in the model dtype (not fp32), no conv state", "recurrent state in fp32"),
        ("vllm", "in --mamba-cache-dtype (auto: the model dtype)", "mamba_ssm_cache_dtype"),
    ],
)
def test_assumptions_say_how_the_lightning_state_is_held(
    text01: ModelSpec, engine: str, said: str, not_said: str
) -> None:
    """The result's assumptions carry the family's note and not the engine's general [state]
    lines, written for conv + recurrent mixers (transformers' fp32 recurrent state, vLLM's
    mamba_ssm_cache_dtype), which do not hold for the lightning state."""
    assumptions = " ".join(kv_cache(text01, _workload(4096, 1), ENGINES[engine]).assumptions)
    assert said in assumptions
    assert not_said not in assumptions
    assert "a recurrent state only, no conv state" in assumptions


def test_cli_sizes_the_config_and_refuses_sglang_in_one_line(run_cli: Callable[..., Any]) -> None:
    """`kvcalc calc <minimax config.json> --format json` reports the KV and the state apart
    (hf at seq 300, batch 2 on the small synthetic config: 153,600 B of K/V, 16,384 B of
    state, as derived above); `--engine sglang` is one `error:` line, exit 2, no traceback."""
    path = str(SYNTHETIC / "minimax.json")
    ok = run_cli("calc", path, "--seq", "300", "--batch", "2", "-e", "hf", "--format", "json")
    assert ok.exit_code == 0
    data = json.loads(ok.stdout)
    assert (data["total_bytes"], data["state_total_bytes"]) == (153_600, 16_384)
    refused = run_cli("calc", path, "-e", "sglang")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: engine sglang: minimax: ")
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
