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
from typer.testing import CliRunner

from kvcalc.cli import app
from kvcalc.dtypes import KV_DTYPES, weight_dtype
from kvcalc.engines import ENGINES
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, kv_cache
from kvcalc.planner import Plan, budget, fit
from kvcalc.presets import load_gpu, load_model
from kvcalc.specs import GpuSpec

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


# ---- the GPU: SGLang's DSA defaults follow the CUDA capability (fit / budget) ------------

# a 1,600,000,000,000 B device, no reserve, bf16 weights (as tests/test_sparse_mla_fp8.py):
# KV budget = capacity − CUDA context 552,402,944 (planner.CUDA_CONTEXT_BYTES) − DeepSeek-V3.2's
# bf16 weights 1,343,755,858,432 B
BUDGET = 1_600_000_000_000 - 552_402_944 - 1_343_755_858_432  # 255,691,738,624


def _device(capability: str | None, vendor: str = "nvidia") -> GpuSpec:
    return GpuSpec(
        name=f"sm{capability}",
        vendor=vendor,  # type: ignore[arg-type]
        memory_bytes=1_600_000_000_000,
        memory_kind="user",
        compute_capability=capability,
        source="t",
    )


def _plan(gpu: GpuSpec, dtype: str | None = None, preset: str = "deepseek-v3.2") -> Plan:
    return Plan(
        load_model(preset),
        gpu,
        SGLANG,
        _work(dtype),
        weights_dtype=weight_dtype("bf16"),
        reserve_bytes=0,
    )


@pytest.mark.parametrize("capability", ["10.0", "12.0"])
def test_fit_on_sm100_follows_sglangs_blackwell_defaults(capability: str) -> None:
    """On a GPU of capability major 10 or more, _dsa_kv_cache_dtype_default makes auto
    fp8_e4m3 and _dsa_split_backend_resolution picks the trtllm DSA backends, whose rows
    calculate_mla_kv_cache_dim keeps raw: 576 fp8 + 132 B indexer = 708 B a layer,
    61 · 708 = 43,188 B a token; 255,691,738,624 // 43,188 = 5,920,434 tokens, 5,920,384 in
    64-token pages, max batch 5,920,384 // 8,192 = 722."""
    plan = _plan(_device(capability))
    assert plan.engine.name == "sglang"
    result = fit(plan)
    assert result.kv.k_dtype.name == "fp8_e4m3"
    assert result.kv.bytes_per_token == 61 * (LATENT_FP8 + INDEXER) == 43_188
    assert "fp8_e4m3 from SM100" in result.kv.kv_dtype_source
    assert budget(plan).kv_budget_bytes == BUDGET == 255_691_738_624
    assert result.max_tokens == BUDGET // 43_188 // 64 * 64 == 5_920_384
    assert result.max_batch == 5_920_384 // 8192 == 722


@pytest.mark.parametrize(
    ("dtype", "stored", "row"),
    [("fp8_e4m3", "fp8_e4m3", LATENT_FP8 + INDEXER), ("bf16", "bf16", LATENT_BF16 + INDEXER)],
)
def test_fit_on_sm100_with_the_dtype_given(dtype: str, stored: str, row: int) -> None:
    """--kv-dtype on SM100: fp8_e4m3 is stored raw (trtllm backends), 61 · 708 = 43,188 B a
    token, not the Hopper 656 B scaled rows; bfloat16 (flashmla_sparse prefill, trtllm
    decode) is 61 · 1,284 = 78,324 B, as on Hopper."""
    kv = fit(_plan(_device("10.0"), dtype)).kv
    assert kv.k_dtype.name == stored
    assert kv.bytes_per_token == 61 * row
    assert kv.bytes_per_token in (43_188, 78_324)


@pytest.mark.parametrize(("gpu", "capability"), [("h100", "9.0"), ("a100-80gb", "8.0")])
def test_fit_below_sm100_keeps_the_hopper_figures(gpu: str, capability: str) -> None:
    """Below SM100 (the presets carry their capability) auto stays bfloat16 and fp8_e4m3
    keeps the 656 B scaled rows: 61 · 1,284 = 78,324 and 61 · 788 = 48,068 B a token;
    BUDGET // 48,068 = 5,319,375 tokens, 5,319,360 in pages, max batch 649 (the Hopper
    answer of tests/test_sparse_mla_fp8.py)."""
    assert load_gpu(gpu).compute_capability == capability
    assert fit(_plan(_device(capability))).kv.bytes_per_token == 61 * 1_284 == 78_324
    result = fit(_plan(_device(capability), "fp8_e4m3"))
    assert result.kv.k_dtype.name == "fp8_ds_mla"
    assert result.kv.bytes_per_token == 61 * (SCALED_FP8 + INDEXER) == 48_068
    assert result.max_tokens == BUDGET // 48_068 // 64 * 64 == 5_319_360
    assert result.max_batch == 5_319_360 // 8192 == 649


def test_a_gpu_without_a_capability_keeps_the_hopper_assumption() -> None:
    """A user-sized GPU (no compute_capability) is planned as Hopper, as calc is, and the
    [indexer] note says so: auto bf16, 61 · 1,284 = 78,324 B a token."""
    result = fit(_plan(_device(None, vendor="other")))
    assert result.kv.bytes_per_token == 78_324
    assert any("calc assumes it" in note for note in result.kv.assumptions)


def test_amd_gpus_are_refused_for_dsa_models() -> None:
    """SGLang's HIP DSA path (tilelang / aiter, raw fp8 rows, other page sizes) is not read:
    a DSA plan on an AMD GPU is refused in one line; a non-DSA model is not."""
    with pytest.raises(KvcalcError, match=r"^engine sglang: DSA models on AMD GPUs ") as err:
        _plan(load_gpu("mi300x"))
    assert "\n" not in str(err.value)
    plan = Plan(load_model("llama-3.1-8b"), load_gpu("mi300x"), SGLANG, _work())
    assert plan.engine is SGLANG


def test_other_engines_and_models_keep_their_profile_on_sm100() -> None:
    """Only SGLang's DSA defaults follow the GPU: vLLM on a B200 and a non-DSA model under
    SGLang on a B200 keep their profiles (the same object)."""
    b200 = load_gpu("b200")
    assert b200.compute_capability == "10.0"
    model = load_model("deepseek-v3.2")
    assert Plan(model, b200, ENGINES["vllm"], _work()).engine is ENGINES["vllm"]
    assert Plan(load_model("llama-3.1-8b"), b200, SGLANG, _work()).engine is SGLANG


def test_calc_keeps_the_hopper_assumption_and_says_so() -> None:
    """calc knows no GPU: auto bf16, fp8_e4m3 in 656 B rows, and the note names Hopper."""
    kv = kv_cache(load_model("deepseek-v3.2"), _work("fp8_e4m3"), SGLANG)
    assert kv.bytes_per_token == 61 * 788
    assert any(
        note.startswith("DSA (DeepSeek-V3.2, GLM-5) as SGLang serves it on Hopper")
        for note in kv.assumptions
    )


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [("b200", "KV fp8_e4m3"), ("h100", "KV bf16")],
)
def test_cli_fit_names_the_gpus_dtype(gpu: str, expected: str) -> None:
    """fit --gpu b200 answers with SGLang's SM100 auto (fp8_e4m3), --gpu h100 with bf16."""
    result = CliRunner().invoke(
        app,
        ["fit", "deepseek-v3.2", "--engine", "sglang", "--gpu", gpu, "--tp", "8", "--seq", "8192"],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code in (0, 1), result.output
    assert expected in result.stdout


def test_cli_fit_on_amd_is_one_error_line() -> None:
    """fit of a DSA model under SGLang on an MI300X: one error line, exit 2."""
    result = CliRunner().invoke(
        app,
        ["fit", "deepseek-v3.2", "--engine", "sglang", "--gpu", "mi300x", "--tp", "8"],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("gpu", "kv_dtype", "flag"),
    [
        ("b200", "bf16", "--kv-cache-dtype bf16"),  # SM100 auto is fp8_e4m3: bf16 spelt out
        ("b200", "fp8", None),  # SGLang's own auto there
        ("h100", "fp8", "--kv-cache-dtype fp8_e4m3"),  # Hopper auto is bfloat16
        ("h100", "bf16", None),
    ],
)
def test_emit_spells_out_the_dtype_where_the_gpus_auto_differs(
    gpu: str, kv_dtype: str, flag: str | None
) -> None:
    """fit --emit sglang writes --kv-cache-dtype only where SGLang's auto on that GPU would
    give another dtype (fp8_e4m3 from SM100, bfloat16 below)."""
    result = CliRunner().invoke(
        app,
        [
            "fit", "deepseek-v3.2", "--engine", "sglang", "--gpu", gpu, "--tp", "8",
            "--seq", "8192", "--kv-dtype", kv_dtype, "--emit", "sglang",
        ],
        env={"COLUMNS": "100"},
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    if flag is None:
        assert "--kv-cache-dtype" not in result.stdout
    else:
        assert f"{flag} " in result.stdout or result.stdout.rstrip().endswith(flag)
