"""Presets added from published configs found verbatim in public repositories.

MiniMax-M1 (preset minimax-m1): tests/data/hf_configs/minimax-m1.json is, byte for byte,
config.json of MiniMax's own GitHub repository MiniMax-AI/MiniMax-M1 (commit 2abb4f4): the
remote-code form (model_type minimax_m1, architectures MiniMaxM1ForCausalLM), 80 layers of
hidden 6144, attn_type_list seven 0 (lightning) then one 1 (softmax), ten times; 64 heads of
head_dim 128, 8 KV heads, 32 experts of intermediate 9216 in every layer, vocab 200,064, untied
LM head. The layers are read as vLLM reads them (vllm-project/vllm@98370df70c1813f5f9c9c127e8
baed660cd09280:vllm/model_executor/models/minimax_text_01.py:MiniMaxText01Model.__init__:
attn_type_list first, 0 builds MiniMaxText01LinearAttention, 1 MiniMaxText01Attention).
Every expected value below is written out from those published numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvcalc import hf
from kvcalc.dtypes import kv_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.presets import load_model

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
BF16 = kv_dtype("bf16")

# MiniMax-M1's config.json (MiniMax-AI/MiniMax-M1:config.json)
H, VOCAB, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 6144, 200_064, 80, 64, 8, 128
EXPERTS, INTER = 32, 9216
FULL = 10  # attn_type_list is 1 at layers 7, 15, ..., 79
LIGHTNING = LAYERS - FULL


def _m1_config() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONFIGS / "minimax-m1.json").read_text())
    return data


def _workload(seq: int, batch: int) -> Workload:
    return Workload(seq_len=seq, batch=batch, tp=1, k_dtype=BF16, v_dtype=BF16)


def test_minimax_m1_layers_follow_attn_type_list() -> None:
    """The published attn_type_list is 0 seven times then 1, ten times over: 10 softmax
    layers (7, 15, ..., 79) and 70 lightning ones."""
    types = _m1_config()["attn_type_list"]
    assert types == ([0] * 7 + [1]) * 10
    names = load_model("minimax-m1").layer_kind_names()
    assert [i for i, n in enumerate(names) if n == "full"] == list(range(7, 80, 8))
    assert names.count("lightning") == LIGHTNING == 70


def test_minimax_m1_kv_per_token_and_state_per_sequence() -> None:
    """Formula engine, bf16: each softmax layer keeps 2 (K, V) · 8 KV heads · 128 · 2 B =
    4,096 B a token, 10 layers 40,960 B; each lightning layer one 64 · 128 · 128 state of
    2 B elements (2,097,152 B) a sequence, 70 layers 146,800,640 B whatever the length."""
    per_token = FULL * 2 * KV_HEADS * HEAD_DIM * 2
    assert per_token == 40_960
    state = LIGHTNING * HEADS * HEAD_DIM * HEAD_DIM * 2
    assert state == 146_800_640
    result = kv_cache(load_model("minimax-m1"), _workload(8192, 3), ENGINES["formula"])
    assert result.bytes_per_token == per_token
    assert result.total_bytes == 3 * 8192 * per_token == 1_006_632_960
    assert result.state_bytes_per_sequence == state
    assert result.state_total_bytes == 3 * state == 440_401_920


def test_minimax_m1_parameter_count_and_published_weight_bytes() -> None:
    """Lightning layer: qkv_proj 6144 → 3 · 8192, output_gate 6144 → 8192, out_proj 8192 →
    6144, norm 8192 = 251,666,432; softmax layer q/o 6144 · 8192 each, k/v 6144 · 1024 each =
    113,246,208; MoE per layer 32 · 3 · 6144 · 9216 + router 32 · 6144 = 5,436,014,592;
    norms 80 · 2 · 6144 + 6144; embed_tokens and lm_head 200,064 · 6144 each. Total
    456,089,655,296. The repository's model.safetensors.index.json (metadata.total_size
    912,210,767,872 B) is that count in 2 B plus the 80 routers' 32 · 6144 weights stored in
    4 B (float32) instead of 2 B."""
    inner = HEADS * HEAD_DIM
    lightning = 3 * H * inner + H * inner + inner * H + inner
    assert lightning == 251_666_432
    softmax = 2 * H * inner + 2 * H * KV_HEADS * HEAD_DIM
    assert softmax == 113_246_208
    router = EXPERTS * H
    moe = EXPERTS * 3 * H * INTER + router
    assert moe == 5_436_014_592
    norms = LAYERS * 2 * H + H
    embedding = VOCAB * H
    total = LIGHTNING * lightning + FULL * softmax + LAYERS * moe + norms + 2 * embedding
    assert total == 456_089_655_296
    spec = load_model("minimax-m1")
    assert spec.n_params == total
    assert spec.params.experts == LAYERS * moe
    meta = yaml.safe_load((CONFIGS / "minimax-m1.meta.yaml").read_text())
    assert meta["safetensors_total_size"] == 2 * total + LAYERS * router * (4 - 2)
    assert meta["safetensors_total_size"] == 912_210_767_872


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attn_type_list": [0, 1] * 39}, "'attn_type_list' must list 0 .* each of the 80"),
        ({"attn_type_list": [2] * 80}, "'attn_type_list' must list 0 \\(lightning\\) or 1"),
        ({"layer_types": ["full_attention"] * 80}, "'layer_types' changes what a minimax_m1"),
        ({"shared_intermediate_size": 512}, "'shared_intermediate_size' \\(a shared expert\\)"),
    ],
)
def test_minimax_m1_refuses_what_it_does_not_read(change: dict[str, Any], message: str) -> None:
    """A malformed attn_type_list, a second layer list, or a shared expert is refused in one
    line naming the key."""
    with pytest.raises(KvcalcError, match=message) as exc:
        hf.import_config({**_m1_config(), **change}, source="test")
    assert "\n" not in str(exc.value)


def test_minimax_text_01_is_the_same_family() -> None:
    """model_type minimax_text_01 (MiniMax-Text-01's remote code) reads like minimax_m1."""
    spec = hf.import_config({**_m1_config(), "model_type": "minimax_text_01"}, source="t").spec
    assert spec.family == "minimax_m1"
    assert spec.n_params == 456_089_655_296


@pytest.mark.parametrize(
    ("engine", "reason"),
    [
        ("hf", "transformers has no model_type minimax_m1"),
        ("sglang", "SGLang keeps the remote-code MiniMax lightning state in fp32"),
        ("llama.cpp", "its lightning-state cache is not read"),
        ("vllm@v0", "MinimaxCacheManager"),
        ("trtllm", "lightning state layers are not modelled"),
    ],
)
def test_minimax_m1_unread_engines_refuse(engine: str, reason: str) -> None:
    """Engines whose cache for the remote-code release was not read refuse it in one line."""
    with pytest.raises(KvcalcError, match=reason) as exc:
        kv_cache(load_model("minimax-m1"), _workload(1024, 1), ENGINES[engine])
    assert "\n" not in str(exc.value)


def test_minimax_m1_vllm_sizes_as_the_transformers_format() -> None:
    """vLLM V1 builds both forms with MiniMaxText01ForCausalLM: bf16, tp 1, 8,192 tokens is
    10 softmax layers in 512-token blocks (the hybrid alignment: 16 · cdiv(2,097,152,
    16 · 4,096) = 512), cdiv(8,192, 512) = 16 blocks of 512 · 4,096 B each, and 70 state pages
    of 2,097,152 B."""
    state_page = HEADS * HEAD_DIM * HEAD_DIM * 2
    per_token_layer = 2 * KV_HEADS * HEAD_DIM * 2
    block = 16 * -(-state_page // (16 * per_token_layer))
    assert block == 512
    result = kv_cache(load_model("minimax-m1"), _workload(8192, 1), ENGINES["vllm"])
    assert result.per_gpu_bytes == FULL * 16 * block * per_token_layer == 335_544_320
    assert result.state_per_gpu_bytes == LIGHTNING * state_page == 146_800_640
