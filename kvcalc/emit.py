"""The engine command line that realises a plan: `fit ... --emit vllm|sglang|llama.cpp|trtllm` (pure).

Each builder maps kvcalc's settings to the engine's own flags, as the engines spell them:

- vLLM (`vllm serve`, vllm/engine/arg_utils.py EngineArgs): --max-model-len,
  --gpu-memory-utilization, --max-num-seqs, --kv-cache-dtype (auto, bfloat16, fp8,
  fp8_e4m3, fp8_e5m2), --tensor-parallel-size, --pipeline-parallel-size,
  --max-num-batched-tokens, --block-size.
- SGLang (`python -m sglang.launch_server`, sglang/srt/server_args.py): --model-path,
  --context-length, --mem-fraction-static, --max-running-requests, --kv-cache-dtype (auto,
  fp8_e5m2, fp8_e4m3), --tp-size, --pp-size, --page-size.
- llama.cpp (`llama-server`, common/arg.cpp): -m, -c (cells for all slots), -np (slots),
  -ctk / -ctv (cache types), -b, -ub, -fa, --kv-unified, --swa-full, -ngl.
- TensorRT-LLM (`trtllm-serve`, docs commands/trtllm-serve): --max_seq_len,
  --max_batch_size, --max_num_tokens, --tp_size, --pp_size,
  --kv_cache_free_gpu_memory_fraction; the KV cache dtype goes in an
  --extra_llm_api_options YAML (kv_cache_config.dtype), which is noted, not written.
"""

from __future__ import annotations

import shlex
from dataclasses import field

from kvcalc.errors import KvcalcError
from kvcalc.formula import auto_kv_dtype_name
from kvcalc.llamacpp import LlamaCppOptions
from kvcalc.planner import Fit, Plan, reserves_state_slots, state_pool_bytes
from kvcalc.records import record

EMIT_ENGINES = ("vllm", "sglang", "llama.cpp", "trtllm")

# kvcalc KV dtype name -> the engine's spelling (absent: the engine has no such cache type)
_VLLM_KV = {
    "bf16": "bfloat16",
    "fp8": "fp8",
    "fp8_e4m3": "fp8_e4m3",
    "fp8_e5m2": "fp8_e5m2",
    "fp8_ds_mla": "fp8_ds_mla",
}
# (bf16: needed where auto would not give it, e.g. a checkpoint that publishes an fp8 KV
# cache; sgl-project/sglang:python/sglang/srt/server_args.py --kv-cache-dtype choices)
_SGLANG_KV = {"fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2", "bf16": "bf16"}
_GGML_KV = {
    "fp16": "f16",
    "bf16": "bf16",
    "fp32": "f32",
    "q8_0": "q8_0",
    "q5_1": "q5_1",
    "q5_0": "q5_0",
    "q4_1": "q4_1",
    "q4_0": "q4_0",
    "iq4_nl": "iq4_nl",
}


@record
class ServeSettings:
    """What the command must carry: the plan's model, lengths, memory fraction and layout."""

    engine: str
    model: str  # Hugging Face repo id or a path
    model_dtype: str  # the model's own dtype (auto cache type when the KV dtype equals it)
    max_model_len: int
    max_num_seqs: int | None = None  # None: leave the engine's default
    util: float | None = None  # gpu_memory_utilization / mem_fraction_static / free fraction
    k_dtype: str | None = None  # kvcalc dtype names; None: the engine's default ("auto")
    # the KV dtype the engine's "auto" gives this checkpoint, so a flag for it can be left
    # out (a ModelOpt checkpoint's published fp8: kvcalc/checkpoint_kv.py); None: model_dtype;
    # "unread" (no dtype's name): not read for this engine, so the dtype is always spelled out
    auto_kv_dtype: str | None = None
    v_dtype: str | None = None
    tp: int = 1
    pp: int = 1
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    prefix_caching: bool = False  # vLLM --enable-prefix-caching (hybrids: off by default)
    mamba_cache_mode: str | None = None
    llamacpp: LlamaCppOptions | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


@record
class EngineCommand:
    """An engine's argv and what could not be said in it."""

    argv: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        """Return the command as one shell line (arguments quoted where needed)."""
        return shlex.join(self.argv)


def _one_kv_dtype(s: ServeSettings, engine: str) -> str | None:
    if s.k_dtype != s.v_dtype:
        raise KvcalcError(
            f"{engine} has one KV cache dtype for K and V, not {s.k_dtype}/{s.v_dtype}"
        )
    if s.k_dtype is None or s.k_dtype == (s.auto_kv_dtype or s.model_dtype):
        return None
    return s.k_dtype


def vllm_command(s: ServeSettings) -> EngineCommand:
    """Return `vllm serve MODEL ...` for the settings."""
    argv = ["vllm", "serve", s.model, "--max-model-len", str(s.max_model_len)]
    if s.util is not None:
        argv += ["--gpu-memory-utilization", _number(s.util)]
    if s.max_num_seqs is not None:
        argv += ["--max-num-seqs", str(s.max_num_seqs)]
    dtype = _one_kv_dtype(s, "vLLM")
    if dtype is not None:
        if dtype not in _VLLM_KV:
            raise KvcalcError(
                f"vLLM has no KV cache dtype {dtype!r} (it takes {', '.join(_VLLM_KV)})"
            )
        argv += ["--kv-cache-dtype", _VLLM_KV[dtype]]
    if s.tp > 1:
        argv += ["--tensor-parallel-size", str(s.tp)]
    if s.pp > 1:
        argv += ["--pipeline-parallel-size", str(s.pp)]
    if s.max_num_batched_tokens is not None:
        argv += ["--max-num-batched-tokens", str(s.max_num_batched_tokens)]
    if s.block_size is not None:
        argv += ["--block-size", str(s.block_size)]
    if s.prefix_caching:
        argv += ["--enable-prefix-caching"]
    if s.mamba_cache_mode is not None:
        argv += ["--mamba-cache-mode", s.mamba_cache_mode]
    return EngineCommand(tuple(argv), s.notes)


def sglang_command(s: ServeSettings) -> EngineCommand:
    """Return `python -m sglang.launch_server --model-path MODEL ...` for the settings."""
    argv = ["python", "-m", "sglang.launch_server", "--model-path", s.model]
    argv += ["--context-length", str(s.max_model_len)]
    if s.util is not None:
        argv += ["--mem-fraction-static", _number(s.util)]
    if s.max_num_seqs is not None:
        argv += ["--max-running-requests", str(s.max_num_seqs)]
    dtype = _one_kv_dtype(s, "SGLang")
    if dtype is not None:
        if dtype not in _SGLANG_KV:
            raise KvcalcError(
                f"SGLang has no KV cache dtype {dtype!r} (it takes {', '.join(_SGLANG_KV)})"
            )
        argv += ["--kv-cache-dtype", _SGLANG_KV[dtype]]
    if s.tp > 1:
        argv += ["--tp-size", str(s.tp)]
    if s.pp > 1:
        argv += ["--pp-size", str(s.pp)]
    if s.max_num_batched_tokens is not None:
        argv += ["--chunked-prefill-size", str(s.max_num_batched_tokens)]
    if s.block_size is not None:
        argv += ["--page-size", str(s.block_size)]
    return EngineCommand(tuple(argv), s.notes)


def llama_cpp_command(s: ServeSettings) -> EngineCommand:
    """Return `llama-server -m MODEL.gguf -c ... -np ...` for the settings.

    -c is the cells of all slots together: max_model_len × slots unless the plan gave -c.
    """
    if s.tp > 1:
        raise KvcalcError(
            "llama.cpp has no tensor parallelism: plan with --tp 1 (layers split with --pp)"
        )
    options = s.llamacpp or LlamaCppOptions()
    slots = s.max_num_seqs or 1
    ctx = options.ctx_size if options.ctx_size is not None else s.max_model_len * slots
    model = s.model if s.model.endswith(".gguf") else f"{s.model.split('/')[-1]}.gguf"
    argv = ["llama-server", "-m", model, "-c", str(ctx), "-np", str(slots)]
    notes = list(s.notes)
    if not s.model.endswith(".gguf"):
        notes.append(f"-m {model}: the GGUF conversion of {s.model}")
    for flag, dtype in (("-ctk", s.k_dtype), ("-ctv", s.v_dtype)):
        if dtype is None or dtype == "fp16":
            continue
        if dtype not in _GGML_KV:
            raise KvcalcError(
                f"llama.cpp has no cache type {dtype!r} (it takes {', '.join(_GGML_KV)})"
            )
        argv += [flag, _GGML_KV[dtype]]
    if options.n_batch is not None:
        argv += ["-b", str(options.n_batch)]
    if options.n_ubatch is not None:
        argv += ["-ub", str(options.n_ubatch)]
    if options.flash_attn != "auto":
        argv += ["-fa", options.flash_attn]
    if options.kv_unified:
        argv.append("--kv-unified")
    if options.swa_full:
        argv.append("--swa-full")
    argv += ["-ngl", "999"]
    if s.pp > 1:
        argv += ["--split-mode", "layer"]
    return EngineCommand(tuple(argv), tuple(notes))


def trtllm_command(s: ServeSettings) -> EngineCommand:
    """Return `trtllm-serve MODEL --max_seq_len ...` for the settings."""
    argv = ["trtllm-serve", s.model, "--max_seq_len", str(s.max_model_len)]
    if s.max_num_seqs is not None:
        argv += ["--max_batch_size", str(s.max_num_seqs)]
    if s.max_num_batched_tokens is not None:
        argv += ["--max_num_tokens", str(s.max_num_batched_tokens)]
    if s.tp > 1:
        argv += ["--tp_size", str(s.tp)]
    if s.pp > 1:
        argv += ["--pp_size", str(s.pp)]
    if s.util is not None:
        argv += ["--kv_cache_free_gpu_memory_fraction", _number(s.util)]
    notes = list(s.notes)
    dtype = _one_kv_dtype(s, "TensorRT-LLM")
    if dtype is not None:
        notes.append(
            f"KV cache dtype {dtype}: set kv_cache_config.dtype in an --extra_llm_api_options "
            "YAML file (trtllm-serve has no flag for it)"
        )
    if s.block_size is not None:
        notes.append(
            f"{s.block_size} tokens per block: kv_cache_config.tokens_per_block in that YAML"
        )
    return EngineCommand(tuple(argv), tuple(notes))


_BUILDERS = {
    "vllm": vllm_command,
    "sglang": sglang_command,
    "llama.cpp": llama_cpp_command,
    "trtllm": trtllm_command,
}


def _engine_key(engine: str) -> str:
    """Return the engine an --emit name means; KvcalcError when there is no builder for it."""
    key = engine.strip().lower()
    key = {"llamacpp": "llama.cpp", "llama-cpp": "llama.cpp", "tensorrt-llm": "trtllm"}.get(
        key, key
    )
    if key not in _BUILDERS:
        raise KvcalcError(f"--emit takes one of {', '.join(EMIT_ENGINES)}, not {engine!r}")
    return key


def engine_command(settings: ServeSettings) -> EngineCommand:
    """Return the command line of settings.engine that realises the settings."""
    return _BUILDERS[_engine_key(settings.engine)](settings)


def _number(value: float) -> str:
    """Return a fraction as the user would type it: 0.9, not 0.9000000000000001."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def hf_repo_of(source: str | None) -> str | None:
    """Return the Hugging Face repo id a preset's source URL names (org/name), or None."""
    if not source or "huggingface.co/" not in source:
        return None
    parts = source.split("huggingface.co/", 1)[1].split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return f"{parts[0]}/{parts[1]}"


def settings_for_plan(
    engine: str,
    model: str,
    plan: Plan,
    result: Fit,
) -> ServeSettings:
    """Return what an engine's command must carry to run the plan.

    max model len: the plan's seq; utilisation: the fraction the budget used (the one asked
    for, else the engine's default); max num seqs: the plan's batch when above 1 (else the
    engine keeps its own); cache dtype, tp, pp, max_num_batched_tokens, block size: as planned.
    """
    key = _engine_key(engine)
    planned = plan.engine.name.split("@")[0]
    if key != planned:
        raise KvcalcError(
            f"--emit {key} needs a plan for {key}: add --engine {key} (the plan was made for "
            f"{plan.engine.name}, whose utilisation and reserve mean other things)"
        )
    workload = result.kv.workload
    # TensorRT-LLM's MixedMambaHybridCacheManager (Kimi-K3): a state pool of max_batch_size
    # + 1 slots before the fraction, on the compatibility manager the plan assumes
    state_pool = any(state_pool_bytes(plan))
    notes: list[str] = []
    if state_pool:
        notes.append(
            "kv_cache_config.use_kv_cache_manager_v2: false in an --extra_llm_api_options "
            "YAML file (the plan assumes MixedMambaHybridCacheManager; the model's own "
            "default is V2), enable_block_reuse left false (the model's default)"
        )
    if not result.fits:
        notes.append(
            f"the plan does not fit on {plan.gpu.name}: the engine will refuse to start or preempt"
        )
    # the dtype asked for, not the layout stored (vLLM stores DeepSeek-V3.2's fp8 as fp8_ds_mla)
    k = workload.k_dtype.name if workload.k_dtype is not None else None
    v = workload.v_dtype.name if workload.v_dtype is not None else None
    auto_kv: str | None = None
    if k is not None:
        try:
            auto_kv = auto_kv_dtype_name(plan.model, plan.engine)
        except KvcalcError:  # what auto gives is not read (kvcalc/checkpoint_kv.py): say it
            auto_kv = "unread"
    return ServeSettings(
        engine=engine,
        model=model,
        model_dtype=plan.model.dtype,
        max_model_len=workload.seq_len,
        # TensorRT-LLM reserves state for max_batch_size + 1 slots before the KV pool (its
        # default 2048 would take them all): state models always carry the batch
        max_num_seqs=(
            workload.batch
            if workload.batch > 1 or reserves_state_slots(plan.engine, result.kv) or state_pool
            else None
        ),
        util=result.budget.util if plan.engine.budget_rule != "whole" else None,
        k_dtype=k,
        v_dtype=v,
        auto_kv_dtype=auto_kv,
        tp=workload.tp,
        pp=workload.pp,
        max_num_batched_tokens=workload.max_num_batched_tokens,
        block_size=workload.block_size or result.kv.kernel_block_size,
        prefix_caching=workload.prefix_caching,
        mamba_cache_mode=workload.mamba_cache_mode,
        llamacpp=workload.llamacpp,
        notes=tuple(notes),
    )
