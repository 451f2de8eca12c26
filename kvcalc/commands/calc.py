"""kvcalc calc: exact KV-cache bytes of one workload."""

from pathlib import Path

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
    _console,
    _emit,
    _model_argument,
    _workload,
    pp_option,
    tp_option,
)


def calc(
    model: str | None = typer.Argument(
        None,
        metavar="MODEL",
        help="Preset name (see `kvcalc presets list`), a spec .yaml, or an HF config.json.",
    ),
    seq: str = SEQ_OPTION,
    batch: str = BATCH_OPTION,
    kv_dtype: str = KV_DTYPE_OPTION,
    k_dtype: str | None = K_DTYPE_OPTION,
    v_dtype: str | None = V_DTYPE_OPTION,
    engine: str = typer.Option(
        "vllm", "--engine", "-e", metavar="ENGINE", help="Engine profile (`kvcalc engines`)."
    ),
    tp: str = tp_option("1"),
    pp: str = pp_option("1"),
    block_size: str | None = BLOCK_SIZE_OPTION,
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
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Exact KV-cache bytes of one workload: per token, per layer kind, per sequence, per GPU."""
    from kvcalc.engines import engine_profile
    from kvcalc.formula import kv_cache
    from kvcalc.presets import load_model
    from kvcalc.report import CALC_CSV_COLUMNS, calc_report
    from kvcalc.units import parse_count

    workload = _workload(
        seq,
        batch,
        k_dtype or kv_dtype,
        v_dtype or kv_dtype,
        parse_count(tp, "--tp", 4096),
        parse_count(pp, "--pp", 4096),
        max_batched_tokens,
        attention_window,
        block_size=None if block_size is None else parse_count(block_size, "--block-size", 2**20),
        mtp=mtp,
        prefix_caching=prefix_caching,
        mamba_cache_mode=mamba_cache_mode,
    )
    profile = engine_profile(engine)
    workload = llama_opts.llamacpp_workload(
        workload, profile, batch, ctx_size, parallel, kv_unified, batch_size, ubatch_size,
        swa_full, flash_attn,
    )  # fmt: skip
    spec = load_model(_model_argument(model, hf_repo), presets, assume_standard)
    report = calc_report(kv_cache(spec, workload, profile), hf_repo or str(model))
    if fmt is OutputFormat.table:
        from kvcalc.render import render_calc

        render_calc(_console(), report)
    else:
        _emit(report, fmt, CALC_CSV_COLUMNS)
