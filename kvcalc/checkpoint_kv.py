"""What an engine's "auto" KV dtype makes of the KV quantisation a checkpoint publishes (pure).

A ModelOpt checkpoint says its KV cache is fp8 in config.json's quantization_config
(`kv_cache_scheme`, newer ModelOpt) and / or in hf_quant_config.json
(`quantization.kv_cache_quant_algo`); kvcalc/quant.py checkpoint_kv reads both into
`ModelSpec.checkpoint_kv`. Engines differ in which file they read and whether "auto"
follows it (`EngineProfile.checkpoint_kv`):

| rule | file read | auto |
|---|---|---|
| vllm | config.json's quantization_config; hf_quant_config.json only without one | its KV scheme |
| sglang | the same | its KV algo when FP8, else the model dtype |
| trtllm | hf_quant_config.json; config.json's flat kv_cache_scheme only without it | its KV algo |
| ignored | none (transformers, llama.cpp, the textbook formula) | engine default / model dtype |
| unread | not read (vLLM's V0 engine) | refused |

Sources, cited where each rule is applied below.
"""

from __future__ import annotations

from kvcalc.engines import EngineProfile
from kvcalc.errors import KvcalcError
from kvcalc.formula import is_dsa
from kvcalc.specs import CheckpointKv, ModelSpec

# vllm-project/vllm@0024350b5da3ad174435e62a15273c0d3caba57b:vllm/utils/torch_utils.py
# resolve_kv_cache_dtype_string -> get_kv_cache_quant_algo_string, called by
# vllm-project/vllm:vllm/engine/arg_utils.py EngineArgs.create_engine_config for
# CacheConfig.cache_dtype
_VLLM = "vLLM resolve_kv_cache_dtype_string"
# sgl-project/sglang:python/sglang/srt/model_executor/model_runner.py
# ModelRunner.configure_kv_cache_dtype reading ModelOptQuantConfig.kv_cache_quant_algo
_SGLANG = "SGLang configure_kv_cache_dtype"
# NVIDIA/TensorRT-LLM@008e0af8980fc560003631ba4ac37828836a91c8:tensorrt_llm/_torch/
# model_config.py ModelConfig.from_pretrained -> QuantConfig.kv_cache_quant_algo, kept by
# tensorrt_llm/_torch/pyexecutor/model_loader.py validate_and_set_kv_cache_quant under auto
_TRTLLM = "TensorRT-LLM QuantConfig.kv_cache_quant_algo"

_HF_QUANT = "hf_quant_config.json kv_cache_quant_algo FP8"


def _config_json_text(ck: CheckpointKv) -> str:
    """Return how config.json's quantization_config publishes the fp8 KV cache, in words."""
    if ck.config_json_key is not None and ck.config_json_key.endswith("kv_cache_scheme"):
        return f"config.json quantization_config.{ck.config_json_key} fp8"
    return f"config.json quantization_config.{ck.config_json_key} FP8"


def _config_first(ck: CheckpointKv, engine: str, why: str) -> tuple[str | None, str]:
    """Return (KV dtype or None, where it came from) for an engine that reads config.json's
    quantization_config and hf_quant_config.json only when config.json has none."""
    if ck.config_json_quantized:
        if ck.config_json is not None:
            return ck.config_json, f"the checkpoint's {_config_json_text(ck)} ({why})"
        return None, (
            f"the checkpoint's config.json quantization_config publishes no KV scheme, and "
            f"{engine} does not read the fp8 in its hf_quant_config.json beside it"
        )
    return ck.hf_quant_config, f"the checkpoint's {_HF_QUANT} ({why})"


def auto_kv_dtype(model: ModelSpec, engine: EngineProfile) -> tuple[str | None, str]:
    """Return (the KV dtype "auto" takes from the checkpoint, or None for the engine's own
    default; the reason, in words, "" when the checkpoint publishes no KV quantisation)."""
    dtype, why = _published(model, engine)
    if dtype is None or not is_dsa(model):
        return dtype, why
    # a sparse-MLA (DSA) model's fp8 cache is a layout of the engine's own. vLLM resolves
    # auto to the checkpoint's string in EngineArgs.create_engine_config, before
    # VllmConfig runs the model's verify_and_update_config, so the layout is the one the
    # engine stores that dtype in (EngineProfile.dsa_layouts: DeepseekV32ForCausalLM makes
    # every fp8* fp8_ds_mla; MODELS_CONFIG_MAP rewrites no other architecture)
    stored = engine.dsa_layouts(model.architecture).get(dtype)
    if engine.checkpoint_kv == "vllm" and model.architecture is not None and stored:
        if stored == dtype:
            return (
                dtype,
                f"{why}, which no MODELS_CONFIG_MAP entry rewrites for {model.architecture}",
            )
        return stored, f"{why}, which {model.architecture} makes {stored}"
    # SGLang never gets here for a DSA model: its auto is settled before the checkpoint is
    # read (EngineProfile.dsa_auto_kv_dtypes, formula._dsa_auto_kv_dtype)
    raise KvcalcError(
        f"engine {engine.name}: the checkpoint's fp8 KV cache on a sparse-MLA (indexer) "
        f"model, {model.architecture or model.name}, would take {engine.name}'s own DSA fp8 "
        "layout, which is not read under auto: pass --kv-dtype"
    )


def _published(model: ModelSpec, engine: EngineProfile) -> tuple[str | None, str]:
    """Return auto_kv_dtype's answer before the sparse-MLA layouts."""
    ck = model.checkpoint_kv
    if ck is None:
        return None, ""
    rule = engine.checkpoint_kv
    if rule == "unread":
        raise KvcalcError(
            f"engine {engine.name}: whether its auto KV dtype follows the checkpoint's published "
            "fp8 KV cache is not read: pass --kv-dtype"
        )
    if rule == "ignored":
        return None, f"{engine.name} does not follow the checkpoint's published fp8 KV cache"
    if rule == "vllm":
        # vllm-project/vllm:vllm/transformers_utils/config.py get_config reads
        # hf_quant_config.json only when config.json has no quantization_config, and
        # _normalize_quantization_config then sets its quant_method to modelopt*; every
        # modelopt* config goes through get_kv_cache_quant_algo_string, whose {dynamic false,
        # num_bits 8, type float} scheme and 'fp8' algo map to fp8_e4m3
        # (MODELOPT_TO_VLLM_KV_CACHE_DTYPE_MAP)
        return _config_first(ck, "vLLM", _VLLM)
    if rule == "sglang":
        # sgl-project/sglang:python/sglang/srt/model_loader/weight_utils.py get_quant_config
        # builds the quant config from config.json's quantization_config, from
        # hf_quant_config.json only without one; ModelOptFp8Config / ModelOptFp4Config /
        # ModelOptMixedPrecisionConfig.from_config (layers/quantization/modelopt_quant.py) map
        # the flat config.json kv_cache_scheme {type float, num_bits 8} to 'FP8' and read
        # quantization.kv_cache_quant_algo from hf_quant_config.json
        if ck.config_json_quantized and ck.config_json_key not in (None, "kv_cache_scheme"):
            raise KvcalcError(
                f"engine {engine.name}: SGLang's reading of quantization_config."
                f"{ck.config_json_key} (not the flat kv_cache_scheme) is not modelled: pass "
                "--kv-dtype"
            )
        return _config_first(ck, "SGLang", _SGLANG)
    # rule == "trtllm": hf_quant_config.json is authoritative when present
    if ck.hf_quant_config_file:
        if ck.hf_quant_config is not None:
            return ck.hf_quant_config, f"the checkpoint's {_HF_QUANT} ({_TRTLLM})"
        return None, (
            "TensorRT-LLM reads the checkpoint's hf_quant_config.json alone, which publishes "
            "no KV algo"
        )
    # without it, config.json's quantization_config: NVIDIA/TensorRT-LLM@2edf354d4b92161efd50
    # b10b71e8e20fb6c5925a:tensorrt_llm/quantization/modelopt_config.py _read_flat maps the
    # flat kv_cache_scheme {type float, num_bits 8} to FP8 (and reads no other KV key there)
    if ck.config_json_key == "kv_cache_scheme":
        return ck.config_json, f"the checkpoint's {_config_json_text(ck)} ({_TRTLLM})"
    raise KvcalcError(
        f"engine {engine.name}: TensorRT-LLM's reading of config.json's "
        f"quantization_config.{ck.config_json_key} without an hf_quant_config.json is not "
        "modelled (its flat reader takes kv_cache_scheme only): pass --kv-dtype"
    )
