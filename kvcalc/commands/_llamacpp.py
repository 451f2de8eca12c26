"""llama.cpp's own flags on calc and fit: -c, -np, --kv-unified, -b/-ub, --swa-full, -fa."""

from dataclasses import replace
from typing import Any, cast

import typer

from kvcalc.errors import KvcalcError

_PANEL = "llama.cpp (--engine llama.cpp or llama-server)"

CTX_SIZE_OPTION = typer.Option(
    None,
    "--ctx-size",
    "-c",
    metavar="TOKENS",
    help="llama.cpp -c: KV cells for all slots together (default: --seq × slots).",
    rich_help_panel=_PANEL,
)
PARALLEL_OPTION = typer.Option(
    None,
    "--parallel",
    "-np",
    metavar="N",
    help="llama.cpp -np: slots (sequences); llama-server without it runs 4 with a unified cache.",
    rich_help_panel=_PANEL,
)
KV_UNIFIED_OPTION = typer.Option(
    None,
    "--kv-unified/--no-kv-unified",
    help="llama.cpp -kvu: one KV stream shared by all slots (sliding layers hold n_swa × slots).",
    rich_help_panel=_PANEL,
)
BATCH_SIZE_OPTION = typer.Option(
    None,
    "--batch-size",
    metavar="N",
    help="llama.cpp -b: logical batch (default 2048); n_ubatch = min(-b, -ub).",
    rich_help_panel=_PANEL,
)
UBATCH_SIZE_OPTION = typer.Option(
    None,
    "--ubatch-size",
    "-ub",
    metavar="N",
    help="llama.cpp -ub: physical batch (default 512); sliding layers hold n_ubatch more cells.",
    rich_help_panel=_PANEL,
)
SWA_FULL_OPTION = typer.Option(
    False,
    "--swa-full",
    help="llama.cpp --swa-full: sliding-window layers hold the full context.",
    rich_help_panel=_PANEL,
)
FLASH_ATTN_OPTION = typer.Option(
    None,
    "--flash-attn",
    "-fa",
    metavar="on|off|auto",
    help="llama.cpp -fa (default auto); a quantised V cache needs it.",
    rich_help_panel=_PANEL,
)


def llamacpp_workload(
    workload: Any,
    profile: Any,
    batch: str,
    ctx_size: str | None,
    parallel: str | None,
    kv_unified: bool | None,
    batch_size: str | None,
    ubatch_size: str | None,
    swa_full: bool,
    flash_attn: str | None,
) -> Any:
    """Return the workload with llama.cpp's flags applied (unchanged for other engines).

    -np sets the slots (kvcalc's --batch); -c the cells of all slots together, and then
    each slot's context (--seq) is -c / slots (-c with --kv-unified). llama-server without
    -np (and without --batch) runs 4 slots with a unified cache (tools/server/server.cpp).
    """
    given = {
        "--ctx-size": ctx_size,
        "--parallel": parallel,
        "--kv-unified": kv_unified,
        "--batch-size": batch_size,
        "--ubatch-size": ubatch_size,
        "--swa-full": swa_full or None,
        "--flash-attn": flash_attn,
    }
    is_llama = profile.sliding == "llama_cpp"
    if not is_llama:
        used = [name for name, value in given.items() if value is not None]
        if used:
            raise KvcalcError(
                f"{', '.join(used)}: llama.cpp options, for --engine llama.cpp or llama-server"
            )
        return workload
    from kvcalc.llamacpp import (
        SERVER_AUTO_SLOTS,
        FlashAttn,
        LlamaCppOptions,
        check_cache_type_names,
    )
    from kvcalc.units import parse_count, parse_tokens

    check_cache_type_names(workload.k_dtype, workload.v_dtype)
    slots = workload.batch
    if parallel is not None:
        slots = parse_count(parallel, "--parallel", 256)
        if batch != "1" and workload.batch != slots:
            raise KvcalcError(f"--batch {workload.batch} and --parallel {slots}: give one")
    unified = bool(kv_unified)
    if profile.name == "llama-server" and parallel is None and batch == "1":
        slots = SERVER_AUTO_SLOTS
        unified = kv_unified is None or kv_unified
    fa = (flash_attn or "auto").lower()
    if fa not in ("on", "off", "auto"):
        raise KvcalcError(f"invalid --flash-attn {flash_attn!r}: on, off or auto")
    ctx = None if ctx_size is None else parse_tokens(ctx_size, "--ctx-size")
    options = LlamaCppOptions(
        ctx_size=ctx,
        kv_unified=unified,
        n_batch=None if batch_size is None else parse_count(batch_size, "--batch-size", 2**20),
        n_ubatch=None if ubatch_size is None else parse_count(ubatch_size, "--ubatch-size", 2**20),
        swa_full=swa_full,
        flash_attn=cast(FlashAttn, fa),
    )
    seq_len = workload.seq_len
    if ctx is not None:
        seq_len = ctx if unified else max(1, ctx // slots)
    return replace(workload, seq_len=seq_len, batch=slots, llamacpp=options)


def add_llamacpp_fit(report: dict[str, Any], result: Any, compute_in_reserve: bool) -> None:
    """Put llama.cpp's own answers into a fit report (engine llama.cpp / llama-server only).

    The verdict, KV bytes and headroom become exact for llama.cpp's streams and compute
    buffer; "llamacpp" carries its context, slots and limits (kvcalc/llamacpp_plan.py);
    max_batch is the most slots (-np) of seq_len tokens and max_seq_len the context per
    slot at the largest -c.
    """
    if result.plan.engine.sliding != "llama_cpp":
        return
    from kvcalc.formula import is_compressed
    from kvcalc.llamacpp_plan import llamacpp_fit

    lf = llamacpp_fit(result, compute_in_reserve)
    ctx = lf.ctx
    report["fits"] = lf.fits and report["kv_budget_bytes"] > 0
    report["headroom_bytes"] = lf.headroom_bytes
    report["kv_bytes"] = lf.kv_bytes
    report["max_batch"] = lf.max_slots
    report["max_seq_len"] = lf.max_ctx_size if ctx.unified else lf.max_ctx_size // ctx.n_seq
    report["llamacpp"] = {
        "n_ctx": ctx.n_ctx,
        "n_ctx_seq": ctx.n_ctx_seq,
        "slots": ctx.n_seq,
        "kv_unified": ctx.unified,
        # DeepSeek-V4's caches keep a stream per slot even under --kv-unified
        # (llama_kv_cache_dsv4: kvcalc/llamacpp_compressed.py raw_context)
        "n_stream": ctx.n_seq if is_compressed(result.plan.model) else ctx.n_stream,
        "n_batch": ctx.n_batch,
        "n_ubatch": ctx.n_ubatch,
        "swa_full": ctx.swa_full,
        "flash_attn": ctx.flash_attn,
        "compute_bytes": lf.compute_bytes,
        "room_bytes": lf.room_bytes,
        "max_ctx_size": lf.max_ctx_size,
        "max_slots": lf.max_slots,
    }
