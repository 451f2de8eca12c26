"""The KV cache a ModelOpt checkpoint publishes, and what each engine's "auto" KV dtype makes
of it (kvcalc/quant.py checkpoint_kv, kvcalc/checkpoint_kv.py, docs/engines.md).

Engine behaviour read in source: vLLM resolve_kv_cache_dtype_string /
get_kv_cache_quant_algo_string (vllm/utils/torch_utils.py, called by EngineArgs.
create_engine_config) and get_config (hf_quant_config.json only without a config.json
quantization_config); SGLang ModelRunner.configure_kv_cache_dtype (quant_config.
kv_cache_quant_algo 'FP8' -> float8_e4m3fn) and modelopt_quant.py's from_config (flat
kv_cache_scheme {type float, num_bits 8} -> 'FP8'); TensorRT-LLM ModelConfig.from_pretrained
(hf_quant_config.json authoritative) and validate_and_set_kv_cache_quant (auto keeps the
checkpoint's kv_cache_quant_algo). transformers and llama.cpp do not follow it.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kvcalc import hf
from kvcalc.cli import app
from kvcalc.dtypes import kv_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.presets import load_model
from kvcalc.quant import with_hf_quant_config

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
BF16 = kv_dtype("bf16")
FP8 = kv_dtype("fp8")

# Qwen3.6-27B (tests/data/hf_configs/qwen3.6-27b.json, nvidia/Qwen3.6-27B-NVFP4): 64 layers,
# full_attention_interval 4 -> 16 full-attention layers of 4 KV heads x head_dim 256, 48
# Gated DeltaNet layers (linear_num_key_heads 16 x 128, linear_num_value_heads 48 x 128,
# conv kernel 4, mamba_ssm_dtype float32), bf16. Its config.json quantization_config carries
# kv_cache_scheme {dynamic false, num_bits 8, type float}; hf_quant_config.json
# kv_cache_quant_algo FP8.
Q27_FULL_LAYERS = 64 // 4
Q27_KV_FP8 = 2 * 4 * 256 * 1  # K and V, 4 heads x 256, 1 B: bytes per token per layer
Q27_KV_BF16 = 2 * 4 * 256 * 2
Q27_GDN_LAYERS = 64 - 16
Q27_CONV = 3 * (2 * 16 * 128 + 48 * 128) * 2  # kernel - 1 columns x 10,240 channels, bf16
Q27_SSM_FP32 = 48 * 128 * 128 * 4
SEQ, BATCH = 8192, 2


def _vllm_page(per_token: int) -> tuple[int, int]:
    """Return (block, page bytes) of vLLM's hybrid alignment for Qwen3.6-27B: the 16-token
    attention block grown to cover one GDN state page (Platform._align_hybrid_block_size):
    16 x cdiv(state, 16 x per_token) tokens; state = conv + fp32 SSM (vLLM reads
    mamba_ssm_dtype)."""
    state = Q27_CONV + Q27_SSM_FP32  # 61,440 + 3,145,728 = 3,207,168 B
    block = 16 * -(-state // (16 * per_token))
    return block, block * per_token


def test_qwen36_27b_auto_kv_dtype_by_engine() -> None:
    """Qwen3.6-27B at 8,192 tokens x 2 sequences, no --kv-dtype: vLLM, SGLang and TensorRT-LLM
    follow the checkpoint's fp8 KV cache, transformers keeps bf16, llama.cpp f16.

    vLLM: per token fp8 2 x 4 x 256 x 1 = 2,048 B a layer; block 16 x cdiv(3,207,168, 32,768) =
    1,568 tokens, page 3,211,264 B; 8,192 tokens take cdiv(8,192, 1,568) = 6 blocks:
    16 layers x 6 x 3,211,264 = 308,281,344 B a sequence. SGLang (page 1) and TensorRT-LLM
    (32-token blocks, 8,192 = 256 x 32): 16 x 8,192 x 2,048 = 268,435,456 B. transformers
    (DynamicCache, bf16) and llama.cpp (f16, GGML_PAD(8,192, 256) = 8,192 cells):
    16 x 8,192 x 4,096 = 536,870,912 B."""
    model = load_model("qwen3.6-27b")
    workload = Workload(seq_len=SEQ, batch=BATCH)
    block, page = _vllm_page(Q27_KV_FP8)
    assert (block, page) == (1568, 3_211_264)
    expected = {
        "vllm": ("fp8_e4m3", Q27_FULL_LAYERS * -(-SEQ // block) * page),
        "sglang": ("fp8_e4m3", Q27_FULL_LAYERS * SEQ * Q27_KV_FP8),
        "trtllm": ("fp8_e4m3", Q27_FULL_LAYERS * SEQ * Q27_KV_FP8),
        "hf": ("bf16", Q27_FULL_LAYERS * SEQ * Q27_KV_BF16),
        "llama.cpp": ("fp16", Q27_FULL_LAYERS * SEQ * Q27_KV_BF16),
    }
    assert expected["vllm"][1] == 308_281_344
    assert expected["sglang"][1] == 268_435_456
    assert expected["hf"][1] == 536_870_912
    for engine, (dtype, per_sequence) in expected.items():
        kv = kv_cache(model, workload, ENGINES[engine])
        assert (kv.k_dtype.name, kv.v_dtype.name) == (dtype, dtype), engine
        assert kv.per_sequence_bytes == per_sequence, engine
        assert kv.total_bytes == BATCH * per_sequence, engine
    # vLLM's state page is the attention page it was aligned to: 48 x 3,211,264 B a sequence
    vllm = kv_cache(model, workload, ENGINES["vllm"])
    assert vllm.state_bytes_per_sequence == Q27_GDN_LAYERS * page == 154_140_672


def test_explicit_kv_dtype_overrides_the_checkpoint() -> None:
    """--kv-dtype bf16 gives bf16 whatever the checkpoint publishes (vLLM, SGLang and
    TensorRT-LLM resolve only "auto" from it). vLLM bf16: 4,096 B a token and layer, block
    16 x cdiv(3,207,168, 65,536) = 784 tokens, page 3,211,264 B, 8,192 tokens in cdiv(8,192,
    784) = 11 blocks: 16 x 11 x 3,211,264 = 565,182,464 B; SGLang / TensorRT-LLM
    16 x 8,192 x 4,096 = 536,870,912 B."""
    model = load_model("qwen3.6-27b")
    workload = Workload(seq_len=SEQ, k_dtype=BF16, v_dtype=BF16)
    block, page = _vllm_page(Q27_KV_BF16)
    assert (block, page) == (784, 3_211_264)
    vllm = kv_cache(model, workload, ENGINES["vllm"])
    assert vllm.k_dtype == BF16
    assert vllm.per_sequence_bytes == Q27_FULL_LAYERS * -(-SEQ // block) * page == 565_182_464
    for engine in ("sglang", "trtllm"):
        kv = kv_cache(model, workload, ENGINES[engine])
        assert kv.k_dtype == BF16
        assert kv.per_sequence_bytes == Q27_FULL_LAYERS * SEQ * Q27_KV_BF16 == 536_870_912
    assert vllm.kv_dtype_source == "--kv-dtype bf16"
    # an fp8 cache asked for explicitly is the one auto gives
    asked = kv_cache(model, Workload(seq_len=SEQ, k_dtype=FP8, v_dtype=FP8), ENGINES["vllm"])
    auto = kv_cache(model, Workload(seq_len=SEQ), ENGINES["vllm"])
    assert asked.per_sequence_bytes == auto.per_sequence_bytes


def test_qwen36_35b_engines_read_different_files() -> None:
    """Qwen3.6-35B-A3B's config.json quantization_config (modelopt, MIXED_PRECISION) has no KV
    scheme; its hf_quant_config.json says kv_cache_quant_algo FP8. vLLM and SGLang read
    config.json's (hf_quant_config.json only without one): bf16. TensorRT-LLM reads
    hf_quant_config.json first: fp8. 40 layers, 10 full-attention layers of 2 KV heads x 256:
    bf16 10 x 2 x 2 x 256 x 2 = 20,480 B a token, fp8 10,240 B."""
    model = load_model("qwen3.6-35b-a3b")
    workload = Workload(seq_len=SEQ)
    for engine in ("vllm", "sglang"):
        kv = kv_cache(model, workload, ENGINES[engine])
        assert kv.k_dtype == BF16, engine
        assert kv.bytes_per_token == 10 * 2 * 2 * 256 * 2
        assert "does not read the fp8 in its hf_quant_config.json" in kv.kv_dtype_source
    trt = kv_cache(model, workload, ENGINES["trtllm"])
    assert trt.k_dtype.name == "fp8_e4m3"
    assert trt.bytes_per_token == 10 * 2 * 2 * 256 * 1
    # SGLang page 1: 8,192 tokens x 20,480 B
    assert kv_cache(model, workload, ENGINES["sglang"]).per_sequence_bytes == SEQ * 20_480


def test_mla_checkpoint_fp8_is_the_latent_in_one_byte() -> None:
    """Kimi-K2.6-NVFP4 (61 MLA layers, kv_lora_rank 512 + qk_rope_head_dim 64; config.json
    kv_cache_scheme fp8): vLLM's auto gives fp8_e4m3, the 576-element latent in 1 B a layer:
    61 x 576 = 35,136 B a token, as --kv-dtype fp8 does; transformers keeps the bf16 latent,
    61 x 576 x 2 = 70,272 B."""
    model = load_model("kimi-k2.6-nvfp4")
    vllm = kv_cache(model, Workload(seq_len=SEQ), ENGINES["vllm"])
    assert vllm.k_dtype.name == "fp8_e4m3"
    assert vllm.bytes_per_token == 61 * 576 * 1 == 35_136
    assert kv_cache(model, Workload(seq_len=SEQ), ENGINES["hf"]).bytes_per_token == 61 * 576 * 2


def test_sparse_mla_checkpoint_fp8_takes_the_engines_layout() -> None:
    """DeepSeek-V3.2-NVFP4 (61 MLA layers, kv_lora_rank 512 + rope 64, index_head_dim 128;
    hf_quant_config.json kv_cache_quant_algo FP8): vLLM's DeepseekV32ForCausalLM.
    verify_and_update_config turns an fp8 cache into fp8_ds_mla, 512 fp8 + 4 fp32 scales + 64
    bf16 rope = 656 B, beside the fp8 indexer key and its fp32 scale, 128 + 4 = 132 B:
    61 x (656 + 132) = 48,068 B a token. SGLang's auto never reads it: its server-args pass
    _dsa_kv_cache_dtype_default makes auto bfloat16 below SM100 before the model loads, so
    61 x ((512 + 64) x 2 + 132) = 78,324 B, --kv-dtype still taken; TensorRT-LLM refuses DSA
    models whatever the dtype (its DSACacheManager is not pinned)."""
    model = load_model("deepseek-v3.2-nvfp4")
    vllm = kv_cache(model, Workload(seq_len=SEQ), ENGINES["vllm"])
    assert vllm.k_dtype.name == "fp8_ds_mla"
    assert vllm.bytes_per_token == 61 * ((512 + 4 * 4 + 64 * 2) + (128 + 4)) == 48_068
    sglang = kv_cache(model, Workload(seq_len=SEQ), ENGINES["sglang"])
    assert sglang.k_dtype == BF16
    assert sglang.bytes_per_token == 61 * ((512 + 64) * 2 + (128 + 4)) == 78_324
    assert "passed over" in sglang.kv_dtype_source
    asked = Workload(seq_len=SEQ, k_dtype=BF16, v_dtype=BF16)
    assert kv_cache(model, asked, ENGINES["sglang"]).k_dtype == BF16
    for workload in (Workload(seq_len=SEQ), asked):
        with pytest.raises(KvcalcError, match=r"DSACacheManager"):
            kv_cache(model, workload, ENGINES["trtllm"])


def test_source_says_where_the_dtype_came_from() -> None:
    """kv_dtype_source names the file, key and engine function that decided "auto"."""
    model = load_model("qwen3.6-27b")
    by_engine = {
        e: kv_cache(model, Workload(seq_len=100), ENGINES[e]).kv_dtype_source
        for e in ("vllm", "sglang", "trtllm", "hf")
    }
    assert by_engine["vllm"] == (
        "auto → fp8_e4m3: the checkpoint's config.json quantization_config.kv_cache_scheme "
        "fp8 (vLLM resolve_kv_cache_dtype_string)"
    )
    assert by_engine["sglang"].endswith("(SGLang configure_kv_cache_dtype)")
    assert by_engine["trtllm"] == (
        "auto → fp8_e4m3: the checkpoint's hf_quant_config.json kv_cache_quant_algo FP8 "
        "(TensorRT-LLM QuantConfig.kv_cache_quant_algo)"
    )
    assert by_engine["hf"] == (
        "auto → bf16: the model's dtype bf16; hf does not follow the checkpoint's published "
        "fp8 KV cache"
    )
    plain = kv_cache(load_model("llama-3.1-8b"), Workload(seq_len=100), ENGINES["vllm"])
    assert plain.kv_dtype_source == "auto → bf16: the model's dtype bf16"


def test_vllm_v0_refuses_auto_on_a_published_kv_cache() -> None:
    """vLLM's V0 engine predates resolve_kv_cache_dtype_string: what its auto made of the
    checkpoint's KV cache is not read, so auto is refused and --kv-dtype accepted."""
    model = load_model("llama-3.1-70b-fp8")
    with pytest.raises(KvcalcError, match="vllm@v0: whether its auto KV dtype follows"):
        kv_cache(model, Workload(seq_len=100), ENGINES["vllm@v0"])
    kv = kv_cache(model, Workload(seq_len=100, k_dtype=FP8, v_dtype=FP8), ENGINES["vllm@v0"])
    assert kv.bytes_per_token == 80 * 2 * 8 * 128 * 1


# The presets whose published files say fp8 (tests/data/hf_configs/<stem>.json
# quantization_config.kv_cache_scheme, hf_quant/<stem>.json quantization.kv_cache_quant_algo)
PUBLISHED = {
    "gemma-4-31b": ("kv_cache_scheme", True, True),
    "kimi-k2.6-nvfp4": ("kv_cache_scheme", True, True),
    "minimax-m2.5-nvfp4": ("kv_cache_scheme", True, True),
    "qwen3.5-122b-a10b-nvfp4": ("kv_cache_scheme", True, True),
    "qwen3.5-397b-a17b-nvfp4": ("kv_cache_scheme", True, True),
    "qwen3.6-27b": ("kv_cache_scheme", True, True),
    "qwen3.6-35b-a3b": (None, True, True),  # config.json quantization_config, no KV key
    "deepseek-v3.1-nvfp4": (None, False, True),  # hf_quant_config.json only
    "deepseek-v3.2-nvfp4": (None, False, True),
    "llama-3.1-70b-fp8": (None, False, True),
    "nemotron-3-nano-30b-a3b-nvfp4": (None, False, True),
    "qwen3-235b-a22b-nvfp4": (None, False, True),
}


@pytest.mark.parametrize("stem", sorted(PUBLISHED))
def test_presets_record_the_published_kv_cache(stem: str) -> None:
    """Every preset whose published files carry a KV scheme records it, file by file."""
    key, quantized, in_hf_quant = PUBLISHED[stem]
    ck = load_model(stem).checkpoint_kv
    assert ck is not None
    assert ck.config_json_key == key
    assert ck.config_json == ("fp8_e4m3" if key else None)
    assert ck.config_json_quantized is quantized
    assert ck.hf_quant_config == ("fp8_e4m3" if in_hf_quant else None)
    assert ck.hf_quant_config_file is True  # every one ships an hf_quant_config.json


def test_trtllm_reads_config_json_only_without_hf_quant_config() -> None:
    """TensorRT-LLM without an hf_quant_config.json reads config.json's flat kv_cache_scheme
    (modelopt_config.py _read_flat: type float, num_bits 8 -> FP8): Gemma-4-31B's config.json
    alone gives fp8, 50 sliding layers x 2 x 16 x 256 x 1 B + 10 full x 2 x 4 x 512 x 1 B =
    450,560 B a token. With an hf_quant_config.json that publishes no KV algo it reads that
    file alone: the model's bf16."""
    config = json.loads((CONFIGS / "gemma-4-31b.json").read_text())
    alone = hf.import_config(config, "t").spec
    kv = kv_cache(alone, Workload(seq_len=SEQ), ENGINES["trtllm"])
    assert kv.k_dtype.name == "fp8_e4m3"
    assert kv.bytes_per_token == 50 * 2 * 16 * 256 * 1 + 10 * 2 * 4 * 512 * 1 == 450_560
    recipe = json.loads((CONFIGS / "hf_quant" / "gemma-4-31b.json").read_text())
    del recipe["quantization"]["kv_cache_quant_algo"]
    spec = hf.import_config(with_hf_quant_config(config, recipe), "t").spec
    assert spec.checkpoint_kv is not None and spec.checkpoint_kv.hf_quant_config is None
    trt = kv_cache(spec, Workload(seq_len=SEQ), ENGINES["trtllm"])
    assert trt.k_dtype == BF16
    assert "hf_quant_config.json alone, which publishes no KV algo" in trt.kv_dtype_source
    # vLLM reads config.json's kv_cache_scheme either way
    assert kv_cache(spec, Workload(seq_len=SEQ), ENGINES["vllm"]).k_dtype.name == "fp8_e4m3"


@pytest.mark.parametrize("stem", ["kimi-k2.5", "llama-3.1-8b", "deepseek-v3"])
def test_no_published_kv_cache_records_nothing(stem: str) -> None:
    """kimi-k2.5's compressed-tensors kv_cache_scheme is null; others publish none."""
    assert load_model(stem).checkpoint_kv is None


def _qwen27_with(key: str, value: Any) -> dict[str, Any]:
    """Return Qwen3.6-27B's config.json with quantization_config[key] = value, and its
    hf_quant_config.json merged in as presets are."""
    config = json.loads((CONFIGS / "qwen3.6-27b.json").read_text())
    config["quantization_config"][key] = value
    recipe = json.loads((CONFIGS / "hf_quant" / "qwen3.6-27b.json").read_text())
    return with_hf_quant_config(config, recipe)


@pytest.mark.parametrize(
    "value",
    [
        {"dynamic": False, "num_bits": 4, "type": "float"},  # NVFP4 KV: vLLM nvfp4, SGLang not
        {"dynamic": True, "num_bits": 8, "type": "float"},  # vLLM falls back to auto on it
        {"dynamic": False, "num_bits": 8, "type": "int"},
        {"num_bits": 8, "type": "float"},  # no dynamic: vLLM auto, SGLang FP8
        "NVFP4",
        "INT8",
    ],
)
def test_unknown_kv_scheme_is_refused_at_import(value: Any) -> None:
    """A KV scheme other than ModelOpt's static fp8 is refused in one line naming the key."""
    with pytest.raises(KvcalcError, match=r"quantization_config\.kv_cache_scheme .* not modelled"):
        hf.import_config(_qwen27_with("kv_cache_scheme", value), "t")


def test_unknown_hf_quant_kv_algo_is_refused_at_import() -> None:
    """hf_quant_config.json's kv_cache_quant_algo other than FP8 is refused, naming the key."""
    config = json.loads((CONFIGS / "llama-3.1-70b-fp8.json").read_text())
    recipe = json.loads((CONFIGS / "hf_quant" / "llama-3.1-70b-fp8.json").read_text())
    recipe = copy.deepcopy(recipe)
    recipe["quantization"]["kv_cache_quant_algo"] = "NVFP4"
    with pytest.raises(
        KvcalcError, match=r"hf_quant_config\.json quantization\.kv_cache_quant_algo"
    ):
        hf.import_config(with_hf_quant_config(config, recipe), "t")


def test_compressed_tensors_kv_scheme_is_refused_not_ignored() -> None:
    """A non-null compressed-tensors kv_cache_scheme is refused (vLLM's Attention switches such
    a checkpoint's cache to fp8 whatever --kv-cache-dtype says, which is not modelled); Kimi-K2.5
    publishes null, which imports."""
    config = json.loads((CONFIGS / "kimi-k2.5.json").read_text())
    hf.import_config(config, "t")
    scheme = {"dynamic": False, "num_bits": 8, "type": "float", "strategy": "tensor"}
    config["text_config"]["quantization_config"]["kv_cache_scheme"] = scheme
    with pytest.raises(KvcalcError, match="compressed-tensors KV cache scheme is not modelled"):
        hf.import_config(config, "t")


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_cli_calc_says_where_the_kv_dtype_came_from() -> None:
    """`calc` prints a 'KV dtype:' line naming the checkpoint's key and the engine function;
    its JSON carries kv_dtype_source beside the existing kv_dtype keys."""
    code, out, err = _cli("calc", "qwen3.6-27b", "--engine", "vllm", "--seq", "8192")
    assert code == 0, err
    assert "KV dtype:" in out
    assert "auto → fp8_e4m3: the checkpoint's config.json" in " ".join(out.split())
    code, out, err = _cli(
        "calc", "qwen3.6-27b", "--engine", "sglang", "--seq", "8192", "--format", "json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert (data["kv_dtype"], data["k_dtype"], data["v_dtype"]) == ("fp8_e4m3",) * 3
    assert data["kv_dtype_source"].endswith("(SGLang configure_kv_cache_dtype)")
    assert data["per_sequence_bytes"] == Q27_FULL_LAYERS * SEQ * Q27_KV_FP8
    code, out, err = _cli(
        "calc", "qwen3.6-27b", "--engine", "sglang", "--seq", "8192", "--kv-dtype", "bf16",
        "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["kv_dtype_source"] == "--kv-dtype bf16"


def test_cli_fit_and_refusal_lines() -> None:
    """`fit` shows the same line; vllm@v0 refuses auto in one error line, no traceback."""
    code, out, err = _cli(
        "fit", "qwen3.6-27b", "--gpu", "h100", "--seq", "8k", "--engine", "trtllm"
    )
    assert code == 0, err
    assert "KV dtype: auto → fp8_e4m3" in out
    code, out, err = _cli("calc", "llama-3.1-70b-fp8", "--engine", "vllm@v0", "--seq", "8k")
    assert code == 2
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "pass --kv-dtype" in err


def test_emit_spells_the_dtype_out_when_auto_would_differ() -> None:
    """fit --emit: with the checkpoint's fp8 as auto, no --kv-cache-dtype is needed for fp8,
    but --kv-dtype bf16 must be spelled out (vLLM bfloat16, SGLang bf16), or the engine would
    run fp8."""
    base = ("fit", "qwen3.6-27b", "--gpu", "h100", "--seq", "8k")
    code, out, err = _cli(*base, "--engine", "vllm", "--emit", "vllm")
    assert code == 0, err
    assert "--kv-cache-dtype" not in shlex.split(out)
    code, out, err = _cli(*base, "--engine", "vllm", "--kv-dtype", "bf16", "--emit", "vllm")
    assert code == 0, err
    argv = shlex.split(out)
    assert argv[argv.index("--kv-cache-dtype") + 1] == "bfloat16"
    code, out, err = _cli(*base, "--engine", "sglang", "--kv-dtype", "bf16", "--emit", "sglang")
    assert code == 0, err
    argv = shlex.split(out)
    assert argv[argv.index("--kv-cache-dtype") + 1] == "bf16"


def test_deepseek_v4_sglang_rule_stands() -> None:
    """SGLang's own DeepSeek-V4 default (fp8_e4m3, arg_groups/overrides.py
    _deepseek_v4_kv_cache_dtype) still decides auto for DeepSeek-V4, which publishes no KV
    scheme; the other engines keep theirs."""
    model = load_model("deepseek-v4-flash")
    assert model.checkpoint_kv is None
    kv = kv_cache(model, Workload(seq_len=1024), ENGINES["sglang"])
    assert kv.k_dtype.name == "fp8_e4m3"
    assert kv.kv_dtype_source == (
        "auto → fp8_e4m3: SGLang's DeepSeek-V4 default (_deepseek_v4_kv_cache_dtype)"
    )


def test_glm_dsa_checkpoint_fp8_under_vllm_keeps_plain_fp8_rows() -> None:
    """nvidia/GLM-5.1-NVFP4 (78 MLA layers, kv_lora_rank 512 + rope 64, index_head_dim 128;
    config.json kv_cache_scheme fp8): vLLM's auto resolves to fp8_e4m3, and its
    MODELS_CONFIG_MAP has no GlmMoeDsaForCausalLM entry to rewrite it to fp8_ds_mla, so each
    layer keeps the 576 fp8 latent beside the 128 + 4 B indexer key: 78 x 708 = 55,224 B a
    token, as --kv-dtype fp8 gives."""
    model = load_model("glm-5.1-nvfp4")
    auto = kv_cache(model, Workload(seq_len=SEQ), ENGINES["vllm"])
    assert auto.k_dtype.name == "fp8_e4m3"
    assert auto.bytes_per_token == 78 * ((512 + 64) + (128 + 4)) == 55_224
    assert "GlmMoeDsaForCausalLM" in auto.kv_dtype_source


def test_hf_quant_kv_algo_beside_another_quant_method_is_kept() -> None:
    """A config.json whose quantization_config is another method (Llama-3.1-8B with an fp8
    block recipe) keeps that recipe for the weights, but the hf_quant_config.json beside it
    still publishes kv_cache_quant_algo FP8, which TensorRT-LLM reads whenever the file ships
    (ModelConfig.from_pretrained): 32 layers x 2 x 8 KV heads x 128 x 1 B = 65,536 B a token.
    vLLM reads config.json's quantization_config, which publishes no KV scheme: bf16,
    32 x 2 x 8 x 128 x 2 = 131,072 B."""
    config = json.loads((CONFIGS / "llama-3.1-8b.json").read_text())
    config["quantization_config"] = {
        "quant_method": "fp8",
        "activation_scheme": "dynamic",
        "weight_block_size": [128, 128],
    }
    recipe = {"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}
    merged = with_hf_quant_config(config, recipe)
    assert merged["quantization_config"]["quant_method"] == "fp8"  # the weights' recipe
    spec = hf.import_config(merged, "t").spec
    assert spec.checkpoint_kv is not None and spec.checkpoint_kv.hf_quant_config == "fp8_e4m3"
    trt = kv_cache(spec, Workload(seq_len=SEQ), ENGINES["trtllm"])
    assert trt.bytes_per_token == 32 * 2 * 8 * 128 * 1 == 65_536
    vllm = kv_cache(spec, Workload(seq_len=SEQ), ENGINES["vllm"])
    assert vllm.bytes_per_token == 32 * 2 * 8 * 128 * 2 == 131_072
