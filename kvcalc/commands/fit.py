"""kvcalc fit: does a workload fit on a GPU, and the largest batch and context that do."""

import sys
from pathlib import Path
from typing import Any

import typer

from kvcalc.commands import _llamacpp as llama_opts
from kvcalc.commands._shared import (
    ASSUME_STANDARD_OPTION,
    BATCH_OPTION,
    BLOCK_SIZE_OPTION,
    FORMAT_OPTION,
    HF_OPTION,
    K_DTYPE_OPTION,
    KV_DTYPE_OPTION,
    MAMBA_CACHE_MODE_OPTION,
    MAX_BATCHED_TOKENS_OPTION,
    MTP_OPTION,
    PREFIX_CACHING_OPTION,
    PRESETS_OPTION,
    SEQ_OPTION,
    V_DTYPE_OPTION,
    WINDOW_OPTION,
    OutputFormat,
    _answer,
    _console,
    _emit,
    _model_argument,
    _plan_inputs,
    _with_capacity,
    pp_option,
    tp_option,
)
from kvcalc.errors import KvcalcError


def fit_command(
    model: str | None = typer.Argument(
        None, metavar="MODEL", help="Preset name, spec .yaml or config.json."
    ),
    gpu: str | None = typer.Option(
        None,
        "--gpu",
        "-g",
        metavar="GPU",
        help="GPU preset (`kvcalc gpus list`); all when omitted.",
    ),
    gpus: str | None = typer.Option(
        None, "--gpus", metavar="N", help="GPUs per replica (split into tp × pp for you)."
    ),
    tp: str | None = tp_option(None),
    pp: str | None = pp_option(None),
    seq: str = SEQ_OPTION,
    batch: str = BATCH_OPTION,
    kv_dtype: str = KV_DTYPE_OPTION,
    k_dtype: str | None = K_DTYPE_OPTION,
    v_dtype: str | None = V_DTYPE_OPTION,
    block_size: str | None = BLOCK_SIZE_OPTION,
    weights_dtype: str | None = typer.Option(
        None,
        "--weights-dtype",
        metavar="DTYPE",
        help="Weights: bf16, fp16, fp8, fp8-block, int8, int4-gptq, int4-awq, mxfp4, nvfp4, "
        "a GGUF type (q8_0, q5_k, q4_k, q4_0, q6_k-pure ...) or a llama.cpp file type "
        "sized tensor by tensor (q4_k_m, q5_k_m, q6_k ...; docs/weights.md) (default: as "
        "published, from the checkpoint's quantization_config, else the model's dtype).",
    ),
    engine: str = typer.Option("vllm", "--engine", "-e", metavar="ENGINE", help="Engine profile."),
    util: float | None = typer.Option(
        None,
        "--util",
        "--gpu-memory-utilization",
        metavar="F",
        help="vLLM gpu_memory_utilization (0.9), SGLang mem_fraction_static, TRT-LLM free fraction.",
    ),
    reserve: str | None = typer.Option(
        None, "--reserve", metavar="SIZE", help="Non-KV, non-weight memory per GPU, e.g. 4GiB."
    ),
    gpu_mem: str | None = typer.Option(
        None, "--gpu-mem", metavar="SIZE", help="Override the GPU's memory, e.g. 80GiB."
    ),
    max_batched_tokens: str | None = MAX_BATCHED_TOKENS_OPTION,
    attention_window: str | None = WINDOW_OPTION,
    ctx_size: str | None = llama_opts.CTX_SIZE_OPTION,
    parallel: str | None = llama_opts.PARALLEL_OPTION,
    kv_unified: bool | None = llama_opts.KV_UNIFIED_OPTION,
    batch_size: str | None = llama_opts.BATCH_SIZE_OPTION,
    ubatch_size: str | None = llama_opts.UBATCH_SIZE_OPTION,
    swa_full: bool = llama_opts.SWA_FULL_OPTION,
    flash_attn: str | None = llama_opts.FLASH_ATTN_OPTION,
    mtp: bool = MTP_OPTION,
    prefix_caching: bool = PREFIX_CACHING_OPTION,
    mamba_cache_mode: str | None = MAMBA_CACHE_MODE_OPTION,
    hf_repo: str | None = HF_OPTION,
    assume_standard: bool = ASSUME_STANDARD_OPTION,
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when it does not fit (without --gpu: when no GPU fits)."
    ),
    emit: str | None = typer.Option(
        None,
        "--emit",
        metavar="ENGINE",
        help="Print the vllm|sglang|llama.cpp|trtllm command line that realises the plan.",
    ),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Does it fit? Per-GPU budget, verdict, headroom, max batch, max context, minimum GPUs."""
    from kvcalc.kernel import fit_fast, min_gpus_fast
    from kvcalc.planner import Plan
    from kvcalc.presets import canonical_gpu_name, canonical_model_name, load_all_gpus, load_gpu
    from kvcalc.report import FIT_CSV_COLUMNS, fit_report

    model_path = _model_argument(model, hf_repo)
    spec, profile, workload, extras = _plan_inputs(
        model_path, seq, batch, kv_dtype, engine, tp, pp, gpus, weights_dtype, util, reserve,
        max_batched_tokens, presets, attention_window, assume_standard, mtp, prefix_caching,
        mamba_cache_mode,
    )  # fmt: skip
    workload = llama_opts.llamacpp_workload(
        workload, profile, batch, ctx_size, parallel, kv_unified, batch_size, ubatch_size,
        swa_full, flash_attn,
    )  # fmt: skip
    workload = _engine_vocabulary(workload, k_dtype, v_dtype, block_size)
    if emit is not None and gpu is None:
        raise KvcalcError("--emit needs --gpu: the command realises one GPU's plan")
    if gpu is not None:
        targets = [(canonical_gpu_name(gpu, presets), load_gpu(gpu, presets))]
    else:
        targets = sorted(load_all_gpus(presets).items())
    reports = []
    model_label = hf_repo or canonical_model_name(str(model), presets)
    for label, gpu_spec in targets:
        plan = Plan(spec, _with_capacity(gpu_spec, gpu_mem), profile, workload, **extras)
        result = fit_fast(plan)
        report = fit_report(
            result,
            model_label,
            label,
            min_gpus_fast(plan),
            min_gpus_fast(plan, max_pp=1),
        )
        llama_opts.add_llamacpp_fit(report, result, extras["reserve_bytes"] is None)
        reports.append(report)
    if gpu is None:
        reports.sort(
            key=lambda r: (not r["fits"], r["min_gpus"] or 10**9, -r["max_batch"], r["gpu"])
        )
    if check:
        _answer(0 if any(r["fits"] for r in reports) else 1)
    if emit is not None:
        _print_command(emit, hf_repo, model_path, plan, result)
    elif fmt is OutputFormat.table:
        from kvcalc.render import render_fit, render_fit_table

        if gpu is not None:
            render_fit(_console(), reports[0])
        else:
            render_fit_table(_console(), reports)
    else:
        _emit(reports[0] if gpu is not None else reports, fmt, FIT_CSV_COLUMNS)
    if check and not any(r["fits"] for r in reports):
        raise typer.Exit(1)


def _engine_vocabulary(
    workload: Any, k_dtype: str | None, v_dtype: str | None, block_size: str | None
) -> Any:
    """Return the workload with fit's --cache-type-k/-v and --block-size applied."""
    from dataclasses import replace

    from kvcalc.commands._shared import _dtype_option
    from kvcalc.units import parse_count

    changes: dict[str, Any] = {}
    if k_dtype is not None:
        changes["k_dtype"] = _dtype_option(k_dtype)
    if v_dtype is not None:
        changes["v_dtype"] = _dtype_option(v_dtype)
    if block_size is not None:
        changes["block_size"] = parse_count(block_size, "--block-size", 2**20)
    return replace(workload, **changes) if changes else workload


def _print_command(
    engine: str, hf_repo: str | None, model_path: str, plan: Any, result: Any
) -> None:
    """Write the engine command line of the plan on stdout, its notes on stderr."""
    from kvcalc.emit import engine_command, hf_repo_of, settings_for_plan

    model_id = hf_repo or hf_repo_of(plan.model.source) or model_path
    command = engine_command(settings_for_plan(engine, model_id, plan, result))
    sys.stdout.write(command.line + "\n")
    for note in command.notes:
        sys.stderr.write(f"note: {note}\n")
