"""SGLang and the DSA models (MLA + lightning indexer: DeepSeek-V3.2, GLM-5.x), derived by hand
from the published configs and SGLang's pool code (kvcalc/engines.py SGLANG_DSA_SOURCES).

Configs (tests/data/hf_configs/<stem>.json): GLM-5.2 and GLM-5.3 78 layers, indexer_types
21 "full" and 57 "shared" (index_topk_freq 4, index_skip_topk_offset 3); DeepSeek-V3.2 61
layers; all kv_lora_rank 512, qk_rope_head_dim 64, index_head_dim 128, bf16, one MTP layer
(not counted without --mtp).

Per token and layer:
  latent, bf16:        (512 + 64) · 2                              = 1,152 B
  latent, plain fp8:   (512 + 64) · 1                              =   576 B
  latent, fp8 scaled:  512 fp8 + 512 // 128 · 4 fp32 + 64 · 2 bf16 =   656 B
                       (calculate_mla_kv_cache_dim, the flashmla_kv backends)
  indexer key:         128 fp8 + 128 // 128 · 4 fp32 scale         =   132 B
                       (DSATokenToKVPool index_k_with_scale_buffer, whatever the KV dtype)

SGLang's CUDA pool gives every layer an indexer key, the shared-indexer layers included:
DSATokenToKVPool.__init__ appends one index_k_with_scale_buffer per layer for
range(layer_num), layer_num = num_effective_layers (kv_cache_configurator.py
_build_dsa_kv_pool), and DefaultPoolConfigurator._compute_cell_size adds the 132 B key times
effective_num_layers (only its Ascend branch counts resolve_dsa_indexer_layer_ids). The
transformers cache, like kvcalc's import, keeps keys for the 21 "full" layers only.
"""

from __future__ import annotations

import pytest

from kvcalc.dtypes import KV_DTYPES
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.presets import load_model

SGLANG = ENGINES["sglang"]

LATENT_BF16 = (512 + 64) * 2  # 1,152
LATENT_FP8 = (512 + 64) * 1  # 576
SCALED_FP8 = 512 + 512 // 128 * 4 + 64 * 2  # 656
INDEXER = 128 + 128 // 128 * 4  # 132
FULL, SHARED = 21, 57  # GLM-5.2 / 5.3 indexer_types
SEQ = 8192


def _work(dtype: str | None = None, seq_len: int = SEQ) -> Workload:
    if dtype is None:
        return Workload(seq_len=seq_len)
    d = KV_DTYPES[dtype]
    return Workload(seq_len=seq_len, k_dtype=d, v_dtype=d)


@pytest.mark.parametrize("preset", ["glm-5.2", "glm-5.3"])
@pytest.mark.parametrize(
    ("kv_dtype", "row"),
    [("fp8_e4m3", SCALED_FP8 + INDEXER), ("bf16", LATENT_BF16 + INDEXER)],
)
def test_sglang_counts_an_indexer_key_in_every_layer(preset: str, kv_dtype: str, row: int) -> None:
    """GLM-5.2 / 5.3 under SGLang: all 78 layers hold the latent and the 132 B indexer key,
    the 57 shared-indexer layers too: fp8_e4m3 78 · (656 + 132) = 78 · 788 = 61,464 B a
    token (was 21 · 788 + 57 · 656 = 53,940); bf16 78 · (1,152 + 132) = 78 · 1,284 =
    100,152 B (was 21 · 1,284 + 57 · 1,152 = 92,628)."""
    kv = kv_cache(load_model(preset), _work(kv_dtype), SGLANG)
    assert kv.bytes_per_token == (FULL + SHARED) * row
    assert kv.bytes_per_token == {"fp8_e4m3": 61_464, "bf16": 100_152}[kv_dtype]
    assert kv.total_bytes == 78 * row * SEQ
    assert FULL * row + SHARED * (row - INDEXER) == {"fp8_e4m3": 53_940, "bf16": 92_628}[kv_dtype]


@pytest.mark.parametrize(
    ("engine", "kv_dtype", "per_token"),
    [
        # transformers: the 21 full layers keep a 128-wide key in the K dtype, bf16 256 B
        ("hf", "bf16", FULL * (LATENT_BF16 + 128 * 2) + SHARED * LATENT_BF16),
        # vLLM: DeepseekV32IndexerCache on the indexer layers only; GLM keeps plain fp8 rows
        ("vllm", "fp8_e4m3", FULL * (LATENT_FP8 + INDEXER) + SHARED * LATENT_FP8),
        ("vllm", "bf16", FULL * (LATENT_BF16 + INDEXER) + SHARED * LATENT_BF16),
    ],
)
def test_other_engines_keep_the_shared_layers_without_keys(
    engine: str, kv_dtype: str, per_token: int
) -> None:
    """The rule is SGLang's alone: transformers and vLLM still give GLM-5.2's shared layers
    no indexer key (hf bf16 21 · 1,408 + 57 · 1,152 = 95,232 B; vLLM fp8 21 · 708 + 57 · 576
    = 47,700 B; vLLM bf16 21 · 1,284 + 57 · 1,152 = 92,628 B a token)."""
    kv = kv_cache(load_model("glm-5.2"), _work(kv_dtype), ENGINES[engine])
    assert kv.bytes_per_token == per_token
    assert per_token in (95_232, 47_700, 92_628)


def test_models_without_shared_layers_are_unchanged() -> None:
    """DeepSeek-V3.2 and GLM-5 run an indexer in every layer already: SGLang fp8_e4m3
    61 · 788 = 48,068 B and 78 · 788 = 61,464 B a token, as before."""
    assert kv_cache(load_model("deepseek-v3.2"), _work("fp8_e4m3"), SGLANG).bytes_per_token == (
        61 * (SCALED_FP8 + INDEXER)
    )
    assert kv_cache(load_model("glm-5"), _work("fp8_e4m3"), SGLANG).bytes_per_token == (
        78 * (SCALED_FP8 + INDEXER)
    )


@pytest.mark.parametrize(
    ("preset", "layers"),
    [
        ("deepseek-v3.2-nvfp4", 61),  # hf_quant_config.json kv_cache_quant_algo FP8
        ("glm-5.1-nvfp4", 78),  # config.json quantization_config.kv_cache_scheme fp8
    ],
)
def test_auto_passes_over_the_checkpoints_fp8_kv(preset: str, layers: int) -> None:
    """A ModelOpt DSA checkpoint that publishes an fp8 KV cache: SGLang's
    _dsa_kv_cache_dtype_default rewrites auto to bfloat16 (below SM100) while the server
    arguments are resolved, before ModelRunner.configure_kv_cache_dtype could read the
    quant config's kv_cache_quant_algo, so the cache is bf16: DeepSeek-V3.2-NVFP4
    61 · (1,152 + 132) = 78,324 B, GLM-5.1-NVFP4 78 · 1,284 = 100,152 B a token (kvcalc
    refused auto here before)."""
    model = load_model(preset)
    assert model.checkpoint_kv is not None
    kv = kv_cache(model, _work(), SGLANG)
    assert kv.k_dtype.name == kv.v_dtype.name == "bf16"
    assert kv.bytes_per_token == layers * (LATENT_BF16 + INDEXER)
    assert kv.bytes_per_token == {61: 78_324, 78: 100_152}[layers]
    assert kv.kv_dtype_source.startswith("auto → bf16: SGLang's DSA default")
    assert "passed over" in kv.kv_dtype_source


def test_auto_without_a_checkpoint_kv_is_bf16_too() -> None:
    """A DSA checkpoint that publishes no KV quantization takes the same bfloat16 default,
    without the passed-over clause: GLM-5.2 78 · 1,284 = 100,152 B a token."""
    kv = kv_cache(load_model("glm-5.2"), _work(), SGLANG)
    assert kv.k_dtype.name == "bf16"
    assert kv.bytes_per_token == 78 * (LATENT_BF16 + INDEXER) == 100_152
    assert "passed over" not in kv.kv_dtype_source


def test_auto_for_an_architecture_sglang_does_not_list_is_refused() -> None:
    """_dsa_kv_cache_dtype_default acts on _DEEPSEEK_FAMILY_ARCHS only: a DSA spec of
    another (or no) architecture is refused under auto in one line, and sized when the
    dtype is given (bf16: 61 · 1,284 = 78,324 B a token)."""
    model = load_model("deepseek-v3.2").model_copy(update={"architecture": "OtherDsaForCausalLM"})
    with pytest.raises(KvcalcError, match=r"^engine sglang: what KV dtype auto gives") as err:
        kv_cache(model, _work(), SGLANG)
    assert "\n" not in str(err.value)
    assert kv_cache(model, _work("bf16"), SGLANG).bytes_per_token == 61 * 1_284
