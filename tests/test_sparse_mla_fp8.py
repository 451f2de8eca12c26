"""DSA models (MLA with a lightning indexer) under an fp8 KV cache, derived by hand from the
published configs and the engines' cache code (kvcalc/engines.py VLLM_DSA_SOURCES,
SGLANG_DSA_SOURCES).

Configs (tests/data/hf_configs/deepseek-v3.2.json, glm-5.json): DeepSeek-V3.2 61 layers,
GLM-5 78 layers, both kv_lora_rank 512, qk_rope_head_dim 64, index_head_dim 128, bf16, one
MTP layer (num_nextn_predict_layers 1, not in num_hidden_layers).

Per token and layer:
  latent, bf16:              (512 + 64) · 2                       = 1,152 B
  latent, plain fp8:         (512 + 64) · 1                       =   576 B
  latent, fp8_ds_mla:        512 fp8 + 512 // 128 · 4 fp32 scales + 64 · 2 bf16 rope
                             = 512 + 16 + 128                     =   656 B
  indexer key (any KV dtype): 128 fp8 + 128 // 128 · 4 fp32 scale =   132 B
vLLM: DeepseekV32ForCausalLM.verify_and_update_config rewrites every fp8* cache dtype to
fp8_ds_mla (MLAAttentionSpec.real_page_size_bytes = block · 656); MODELS_CONFIG_MAP maps no
GlmMoeDsaForCausalLM, so GLM-5's fp8 stays plain; the latent and the indexer's
DeepseekV32IndexerCache (MLAAttentionSpec, head 132, uint8) share one 64-token block
(FlashMLASparseBackend's kernel block), on every TP rank.
SGLang: calculate_mla_kv_cache_dim stores fp8_e4m3 DSA rows as 512 + 16 + 128 = 656 B
(Hopper's flashmla_kv default), plus the 132 B indexer row; pages of 64 tokens.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kvcalc.cli import app
from kvcalc.dtypes import KV_DTYPES, weight_dtype
from kvcalc.engines import ENGINES, EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.formula import Workload, dsa_stored_dtypes, kv_cache
from kvcalc.planner import Plan, budget, fit
from kvcalc.presets import load_model
from kvcalc.specs import GpuSpec, ModelSpec

VLLM = ENGINES["vllm"]
SGLANG = ENGINES["sglang"]

LATENT_BF16 = (512 + 64) * 2  # 1,152
LATENT_FP8 = (512 + 64) * 1  # 576
DS_MLA = 512 + 512 // 128 * 4 + 64 * 2  # 656
INDEXER = 128 + 128 // 128 * 4  # 132


@pytest.fixture(scope="module")
def v32() -> ModelSpec:
    return load_model("deepseek-v3.2")


@pytest.fixture(scope="module")
def glm5() -> ModelSpec:
    return load_model("glm-5")


def _work(dtype: str, seq_len: int = 8001, **kw: int | bool) -> Workload:
    d = KV_DTYPES[dtype]
    return Workload(seq_len=seq_len, k_dtype=d, v_dtype=d, **kw)  # type: ignore[arg-type]


def _gpu(memory_bytes: int) -> GpuSpec:
    return GpuSpec(
        name="user", vendor="other", memory_bytes=memory_bytes, memory_kind="user", source="t"
    )


def _plan_8k(model: ModelSpec, memory_bytes: int, engine: EngineProfile, dtype: str) -> Plan:
    """8,192 tokens of `dtype` KV on one device of memory_bytes, bf16 weights, no reserve."""
    return Plan(
        model,
        _gpu(memory_bytes),
        engine,
        _work(dtype, 8192),
        weights_dtype=weight_dtype("bf16"),
        reserve_bytes=0,
    )


@pytest.mark.parametrize(
    ("preset", "engine", "kv_dtype", "stored", "per_layer"),
    [
        # vLLM rewrites DeepSeek-V3.2's fp8 (e4m3 or e5m2) to fp8_ds_mla: 656 + 132 = 788
        ("deepseek-v3.2", "vllm", "fp8_e4m3", "fp8_ds_mla", DS_MLA + INDEXER),
        ("deepseek-v3.2", "vllm", "fp8_e5m2", "fp8_ds_mla", DS_MLA + INDEXER),
        ("deepseek-v3.2", "vllm", "fp8_ds_mla", "fp8_ds_mla", DS_MLA + INDEXER),
        ("deepseek-v3.2", "vllm", "bf16", "bf16", LATENT_BF16 + INDEXER),  # 1,284
        # GLM-5 is not in MODELS_CONFIG_MAP: plain fp8 rows, 576 + 132 = 708 ...
        ("glm-5", "vllm", "fp8_e4m3", "fp8_e4m3", LATENT_FP8 + INDEXER),
        # ... unless fp8_ds_mla is asked for (FlashMLA sparse): 788
        ("glm-5", "vllm", "fp8_ds_mla", "fp8_ds_mla", DS_MLA + INDEXER),
        ("glm-5", "vllm", "bf16", "bf16", LATENT_BF16 + INDEXER),
        # SGLang: fp8_e4m3 DSA rows in the 656 B scaled layout, whatever the architecture
        ("deepseek-v3.2", "sglang", "fp8_e4m3", "fp8_ds_mla", DS_MLA + INDEXER),
        ("glm-5", "sglang", "fp8_e4m3", "fp8_ds_mla", DS_MLA + INDEXER),
        ("glm-5", "sglang", "bf16", "bf16", LATENT_BF16 + INDEXER),
    ],
)
def test_per_token_and_per_sequence(
    preset: str, engine: str, kv_dtype: str, stored: str, per_layer: int
) -> None:
    """Per token all layers (61 for DeepSeek-V3.2, 78 for GLM-5) × the stored row + the 132 B
    indexer key; 8,001 tokens hold cdiv(8001, 64) = 126 blocks of 64 = 8,064 token slots."""
    model = load_model(preset)
    n_layers = {"deepseek-v3.2": 61, "glm-5": 78}[preset]
    kv = kv_cache(model, _work(kv_dtype), ENGINES[engine])
    assert kv.k_dtype.name == kv.v_dtype.name == stored
    assert kv.block_size == 64
    assert kv.bytes_per_token == n_layers * per_layer
    assert kv.per_sequence_bytes == 126 * 64 * n_layers * per_layer


def test_worked_figures(v32: ModelSpec, glm5: ModelSpec) -> None:
    """The figures written out: DeepSeek-V3.2 under vLLM with fp8, 61 · 788 = 48,068 B a token
    (was 61 · 708 = 43,188), 8,192 tokens 393,773,056 B; GLM-5 fp8 78 · 708 = 55,224 B, its
    fp8_ds_mla 78 · 788 = 61,464 B; SGLang fp8_e4m3 DeepSeek-V3.2 48,068 B (was 43,188)."""
    assert kv_cache(v32, _work("fp8_e4m3"), VLLM).bytes_per_token == 48_068
    assert kv_cache(v32, _work("fp8_e4m3", 8192), VLLM).total_bytes == 393_773_056
    assert 61 * 8192 * 788 == 393_773_056
    assert kv_cache(glm5, _work("fp8_e4m3"), VLLM).bytes_per_token == 55_224
    assert kv_cache(glm5, _work("fp8_ds_mla"), VLLM).bytes_per_token == 61_464
    assert kv_cache(v32, _work("fp8_e4m3"), SGLANG).bytes_per_token == 48_068


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_tensor_parallel_replicates_the_latent_and_indexer(v32: ModelSpec, engine: str) -> None:
    """tp 8: the latent and the indexer key sit on every rank (one latent head, replicated
    indexer linears), so each GPU holds one sequence's 8,064 · 48,068 B and the workload 8×."""
    kv = kv_cache(v32, _work("fp8_e4m3", tp=8), ENGINES[engine])
    assert kv.per_gpu_bytes == 8064 * 61 * 788
    assert kv.total_bytes == 8 * 8064 * 61 * 788


@pytest.mark.parametrize(("preset", "n_layers"), [("deepseek-v3.2", 61), ("glm-5", 78)])
def test_mtp_layer_is_counted_with_speculative_decoding(preset: str, n_layers: int) -> None:
    """--mtp: the one MTP layer (its own latent and indexer, DeepSeekMTP) caches like a trunk
    layer: (n_layers + 1) · 788 B a token under vLLM's fp8_ds_mla; off, n_layers · 788."""
    model = load_model(preset)
    assert model.mtp_layers == 1
    ds = "fp8_ds_mla"
    assert kv_cache(model, _work(ds), VLLM).bytes_per_token == n_layers * 788
    assert kv_cache(model, _work(ds, mtp=True), VLLM).bytes_per_token == (n_layers + 1) * 788


def test_vllm_max_batch_deepseek_v32_fp8(v32: ModelSpec) -> None:
    """A 1,600,000,000,000 B device, tp 1, no reserve, bf16 weights 2 · 671,877,929,216
    (n_params, tests/test_hf.py) = 1,343,755,858,432 B: usable ceil(1.6e12 · 0.9) =
    1,440,000,000,000, KV budget 96,244,141,568 B. A block is 61 layers × 64 × 788 =
    3,076,352 B: 31,285 blocks; 8,192 tokens take 128: max batch 31,285 // 128 = 244 (with
    the old 708 B rows it was 96,244,141,568 // (61 · 64 · 708) // 128 = 272)."""
    plan = _plan_8k(v32, 1_600_000_000_000, VLLM, "fp8_e4m3")
    b = budget(plan)
    assert b.weights_bytes == 2 * 671_877_929_216
    assert b.kv_budget_bytes == 1_440_000_000_000 - 1_343_755_858_432 == 96_244_141_568
    assert 96_244_141_568 // (61 * 64 * 788) == 31_285
    assert fit(plan).max_batch == 31_285 // 128 == 244
    assert 96_244_141_568 // (61 * 64 * 708) // 128 == 272


@pytest.mark.parametrize(
    ("kv_dtype", "per_layer", "max_batch"), [("fp8_e4m3", 708, 690), ("fp8_ds_mla", 788, 619)]
)
def test_vllm_max_batch_glm5(
    glm5: ModelSpec, kv_dtype: str, per_layer: int, max_batch: int
) -> None:
    """A 2,000,000,000,000 B device, tp 1, no reserve, bf16 weights 2 · 743,911,199,232 =
    1,487,822,398,464 B: KV budget 1,800,000,000,000 − 1,487,822,398,464 = 312,177,601,536 B.
    Blocks of 78 × 64 × 708 = 3,534,336 B (plain fp8): 88,327, max batch 88,327 // 128 = 690;
    of 78 × 64 × 788 = 3,933,696 B (fp8_ds_mla): 79,359, max batch 79,359 // 128 = 619."""
    plan = _plan_8k(glm5, 2_000_000_000_000, VLLM, kv_dtype)
    kv_budget = 1_800_000_000_000 - 2 * 743_911_199_232
    assert budget(plan).kv_budget_bytes == kv_budget == 312_177_601_536
    assert kv_budget // (78 * 64 * per_layer) == {708: 88_327, 788: 79_359}[per_layer]
    assert fit(plan).max_batch == kv_budget // (78 * 64 * per_layer) // 128 == max_batch


def test_sglang_max_batch_deepseek_v32_fp8(v32: ModelSpec) -> None:
    """SGLang, a 1,600,000,000,000 B device, no reserve: KV budget = capacity − CUDA context
    (552,402,944 B, kvcalc/planner.py CUDA_CONTEXT_BYTES) − bf16 weights 1,343,755,858,432 =
    255,691,738,624 B; a token costs 61 · 788 = 48,068 B (DefaultPoolConfigurator: 656 B row
    + 132 B indexer a layer), so 5,319,375 tokens, 5,319,360 in whole 64-token pages: max
    batch 5,319,360 // 8,192 = 649."""
    plan = _plan_8k(v32, 1_600_000_000_000, SGLANG, "fp8_e4m3")
    kv_budget = 1_600_000_000_000 - 552_402_944 - 1_343_755_858_432
    assert budget(plan).kv_budget_bytes == kv_budget == 255_691_738_624
    assert kv_budget // 48_068 == 5_319_375
    result = fit(plan)
    assert result.max_tokens == 5_319_375 // 64 * 64 == 5_319_360
    assert result.max_batch == 5_319_360 // 8192 == 649


@pytest.mark.parametrize(
    ("preset", "engine", "kv_dtype"),
    [
        ("deepseek-v3.2", "vllm", "fp16"),  # FlashMLASparseBackend: auto, bfloat16, fp8_ds_mla
        ("glm-5", "vllm", "fp8_e5m2"),  # no rewrite for GLM, and no sparse backend read for e5m2
        ("glm-5", "vllm", "nvfp4"),
        ("deepseek-v3.2", "sglang", "fp8_e5m2"),  # server_args: bfloat16 or fp8_e4m3 only
        ("deepseek-v3.2", "sglang", "fp8_ds_mla"),  # not an SGLang cache dtype
        ("glm-5", "sglang", "fp16"),
    ],
)
def test_kv_dtypes_the_engine_does_not_take_are_refused(
    preset: str, engine: str, kv_dtype: str
) -> None:
    """A KV dtype the engine's DSA path does not take is refused in one line naming it."""
    with pytest.raises(KvcalcError, match=rf"^engine {engine}: KV dtype {kv_dtype} for ") as err:
        kv_cache(load_model(preset), _work(kv_dtype), ENGINES[engine])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("preset", ["deepseek-v3.2", "glm-5"])
@pytest.mark.parametrize("engine", ["trtllm", "vllm@v0"])
def test_engines_without_a_pinned_dsa_cache_refuse(preset: str, engine: str) -> None:
    """TensorRT-LLM (its DSACacheManager's indexer pool differs between the versions read) and
    vLLM's V0 engine (the DSA code is V1-only) refuse DSA models in one line."""
    family = load_model(preset).family
    with pytest.raises(KvcalcError, match=rf"^engine {engine}: {family}: ") as err:
        kv_cache(load_model(preset), _work("bf16"), ENGINES[engine])
    assert "\n" not in str(err.value)


def test_auto_resolving_to_fp8_is_refused_where_the_rewrite_would_apply(v32: ModelSpec) -> None:
    """Were "auto" to resolve to fp8 (a checkpoint's KV quantization), whether vLLM's rewrite of
    the --kv-cache-dtype string still applies is not read: refused, not guessed; an fp8 that
    needs no rewrite (GLM-5's plain rows) passes through."""
    fp8 = KV_DTYPES["fp8_e4m3"]
    with pytest.raises(KvcalcError, match=r"auto resolves to fp8_e4m3"):
        dsa_stored_dtypes(v32, VLLM, fp8, fp8, auto=True)
    assert dsa_stored_dtypes(load_model("glm-5"), VLLM, fp8, fp8, auto=True) == (fp8, fp8)
    bf16 = KV_DTYPES["bf16"]
    assert dsa_stored_dtypes(v32, VLLM, bf16, bf16, auto=True) == (bf16, bf16)


def test_unnamed_architecture_is_refused_where_it_decides(v32: ModelSpec) -> None:
    """A DSA spec without an architecture: vLLM's fp8 layout depends on it (MODELS_CONFIG_MAP),
    so fp8 is refused; bf16, the same under every rule, is sized."""
    anonymous = v32.model_copy(update={"architecture": None})
    with pytest.raises(KvcalcError, match=r"depends on its architecture"):
        kv_cache(anonymous, _work("fp8_e4m3"), VLLM)
    assert kv_cache(anonymous, _work("bf16"), VLLM).bytes_per_token == 61 * 1284


def test_default_is_the_model_dtype(v32: ModelSpec) -> None:
    """Without --kv-dtype both engines cache bf16 (vLLM: auto; SGLang: bfloat16 below SM100):
    61 · (1,152 + 132) = 78,324 B a token."""
    for engine in (VLLM, SGLANG):
        kv = kv_cache(v32, Workload(seq_len=100), engine)
        assert kv.k_dtype.name == "bf16"
        assert kv.bytes_per_token == 61 * (LATENT_BF16 + INDEXER) == 78_324


def test_other_engines_are_unchanged(v32: ModelSpec) -> None:
    """transformers and llama.cpp keep the indexer key in the K dtype (no fp8_ds_mla rewrite):
    hf fp8 61 · (576 + 128) = 42,944 B a token, as before."""
    assert kv_cache(v32, _work("fp8_e4m3"), ENGINES["hf"]).bytes_per_token == 61 * (576 + 128)


@pytest.mark.parametrize(("kv_dtype", "flag"), [("fp8", "fp8_e4m3"), ("fp8_ds_mla", "fp8_ds_mla")])
def test_emit_vllm_keeps_the_dtype_asked_for(kv_dtype: str, flag: str) -> None:
    """fit --emit vllm writes the --kv-cache-dtype asked for (vLLM itself rewrites fp8 to
    fp8_ds_mla for DeepSeek-V3.2), not the stored layout's name."""
    result = CliRunner().invoke(
        app,
        [
            "fit", "deepseek-v3.2", "--gpu", "h200", "--tp", "8", "--seq", "8192",
            "--kv-dtype", kv_dtype, "--emit", "vllm",
        ],
        env={"COLUMNS": "100"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"--kv-cache-dtype {flag} " in result.stdout


@pytest.mark.parametrize(
    ("engine", "kv_dtype"), [("sglang", "fp16"), ("vllm", "int8"), ("trtllm", "fp8")]
)
def test_cli_refusals_are_one_error_line(engine: str, kv_dtype: str) -> None:
    """calc refuses what it does not size for a DSA model with one `error:` line and exit 2."""
    result = CliRunner().invoke(
        app,
        ["calc", "deepseek-v3.2", "--engine", engine, "--kv-dtype", kv_dtype],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("error:") == 1
    assert result.stderr.startswith(f"error: engine {engine}: ")
    assert "Traceback" not in result.output


def test_cli_calc_names_the_stored_layout() -> None:
    """calc deepseek-v3.2 --engine vllm --kv-dtype fp8 heads its table with the layout vLLM
    stores, fp8_ds_mla, and totals 61 · 8,192 · 788 = 393,773,056 B at 8k."""
    result = CliRunner().invoke(
        app,
        ["calc", "deepseek-v3.2", "--engine", "vllm", "--kv-dtype", "fp8", "--seq", "8192"],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    assert "fp8_ds_mla" in result.stdout
    assert "393,773,056" in result.stdout
