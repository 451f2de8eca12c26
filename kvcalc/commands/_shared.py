"""What the commands share: output formats and emitters, option definitions, option parsing."""

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from kvcalc.errors import KvcalcError

# The exit code of the answer being printed (1: "does not fit"), kept when the reader of
# stdout leaves early (`kvcalc check d.yaml | head -1` under pipefail still fails CI).
_answer_code = [0]


def _answer(code: int) -> None:
    """Record the exit code of the answer about to be printed (see _answer_code)."""
    _answer_code[0] = code


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    yaml = "yaml"


def _console() -> Any:
    """Return the Console every table goes to (render.make_console: a closed pipe exits 0)."""
    from kvcalc.render import make_console

    return make_console()


def _emit(data: Any, fmt: OutputFormat, columns: tuple[str, ...] | list[str] = ()) -> None:
    """Write machine output to stdout: JSON, YAML, or CSV (rows of the given columns)."""
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif fmt is OutputFormat.yaml:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    else:
        rows = data if isinstance(data, list) else [data]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
        sys.stdout.write(buffer.getvalue())


def _show_rows(
    fmt: OutputFormat, title: str, rows: list[dict[str, Any]], columns: list[str]
) -> None:
    """Print rows as a table, or emit them as machine output."""
    if fmt is OutputFormat.table:
        from kvcalc.render import render_rows

        render_rows(_console(), title, rows, columns)
    else:
        _emit(rows, fmt, columns)


HF_OPTION = typer.Option(
    None,
    "--hf",
    metavar="ORG/NAME",
    help="A Hugging Face Hub id (MODEL takes org/name too); needs pip install 'kvcalc[hf]'.",
)


def _model_argument(model: str | None, hf_repo: str | None) -> str:
    """Return the model to load: a preset or path, or the fetched config of --hf ORG/NAME."""
    if model is not None and hf_repo is None:
        return model
    if model is None and hf_repo is not None:
        if "/" in hf_repo:  # org/name: load_model fetches it (kvcalc.hub), citing the Hub
            return hf_repo
        from kvcalc.presets import fetch_hf_config

        return str(fetch_hf_config(hf_repo))  # a bare legacy id (gpt2) is not a preset name
    raise KvcalcError("give a MODEL (preset name or file) or --hf ORG/NAME, exactly one")


PRESETS_OPTION = typer.Option(
    None,
    "--presets",
    metavar="DIR",
    help="Extra directory of model presets (also $KVCALC_PRESETS), searched before the bundled ones.",
)
FORMAT_OPTION = typer.Option(OutputFormat.table, "--format", "-f", help="Output format.")


def _windows_option(value: str | None) -> tuple[int, ...] | None:
    from kvcalc.units import parse_tokens

    if value is None:
        return None
    return (
        tuple(
            parse_tokens(part, "--max-attention-window")
            for part in value.split(",")
            if part.strip()
        )
        or None
    )


# Options that calc, fit and explain declare alike (one wording, the engines' aliases too).
SEQ_OPTION: Any = typer.Option(
    "8k", "--seq", "-s", "--max-model-len", metavar="TOKENS",
    help="Tokens per sequence: 8192, 8k, 128k.",
)  # fmt: skip
BATCH_OPTION: Any = typer.Option(
    "1", "--batch", "-b", "--max-num-seqs", metavar="N", help="Concurrent sequences."
)
KV_DTYPE_OPTION: Any = typer.Option(
    "auto", "--kv-dtype", "--kv-cache-dtype", metavar="DTYPE",
    help="KV-cache dtype (auto = the model's dtype): fp16, bf16, fp8, q8_0...",
)  # fmt: skip
K_DTYPE_OPTION: Any = typer.Option(
    None, "--k-dtype", "--cache-type-k", "-ctk", metavar="DTYPE", help="K dtype."
)
V_DTYPE_OPTION: Any = typer.Option(
    None, "--v-dtype", "--cache-type-v", "-ctv", metavar="DTYPE", help="V dtype."
)
BLOCK_SIZE_OPTION: Any = typer.Option(
    None, "--block-size", metavar="TOKENS", help="Tokens per KV block (overrides the engine's)."
)
MAX_BATCHED_TOKENS_OPTION: Any = typer.Option(
    None, "--max-batched-tokens", "--max-num-batched-tokens", metavar="TOKENS",
    help="vLLM max_num_batched_tokens (sliding-window planning).",
)  # fmt: skip


def tp_option(default: str | None) -> Any:
    """Return the --tp option; fit's default is None (chosen for --gpus), the others' 1."""
    return typer.Option(
        default, "--tp", "--tensor-parallel-size", "-tp", metavar="N",
        help="Tensor-parallel size.",
    )  # fmt: skip


def pp_option(default: str | None) -> Any:
    """Return the --pp option (defaults as tp_option's)."""
    return typer.Option(
        default, "--pp", "--pipeline-parallel-size", "-pp", metavar="N",
        help="Pipeline-parallel size.",
    )  # fmt: skip


WINDOW_OPTION = typer.Option(
    None,
    "--max-attention-window",
    metavar="W[,W...]",
    help="TensorRT-LLM max_attention_window: per-layer windows, cycled (e.g. 4096,8192).",
)


def _dtype_option(value: str | None) -> Any:
    from kvcalc.dtypes import kv_dtype

    if value is None or value.lower() == "auto":
        return None
    return kv_dtype(value)


ASSUME_STANDARD_OPTION = typer.Option(
    False,
    "--assume-standard",
    help="Read a config of an unknown family (or with keys kvcalc does not model) with the "
    "standard keys, with a warning, instead of refusing it.",
)
MTP_OPTION = typer.Option(
    False,
    "--mtp",
    help="Speculative decoding with the model's MTP / next-n layers: count their KV too.",
)


PREFIX_CACHING_OPTION = typer.Option(
    False,
    "--prefix-caching",
    "--enable-prefix-caching",
    help="vLLM prefix caching on a model with state layers (vLLM turns it off for them by "
    "default): state pages as its mamba_cache_mode keeps them.",
)
MAMBA_CACHE_MODE_OPTION = typer.Option(
    None,
    "--mamba-cache-mode",
    metavar="MODE",
    help="vLLM mamba_cache_mode with --prefix-caching: align (two state pages a sequence) "
    "or all (one a block, the block aligned to the config's mamba chunk size); default: the "
    "mode vLLM picks for the model.",
)


def _mamba_cache_mode(value: str | None) -> Any:
    """Return the --mamba-cache-mode value, refusing anything but vLLM's modes."""
    if value is None:
        return None
    if value not in ("align", "all", "none"):
        raise KvcalcError(f"unknown --mamba-cache-mode {value!r} (vLLM's: none, align, all)")
    return None if value == "none" else value


def _workload(
    seq: str,
    batch: str,
    k_dtype: str,
    v_dtype: str,
    tp: int,
    pp: int,
    max_batched_tokens: str | None,
    attention_window: str | None,
    block_size: int | None = None,
    mtp: bool = False,
    prefix_caching: bool = False,
    mamba_cache_mode: str | None = None,
) -> Any:
    """Return the Workload the shared calc/fit options describe."""
    from kvcalc.formula import Workload
    from kvcalc.units import parse_count, parse_tokens

    return Workload(
        seq_len=parse_tokens(seq, "--seq"),
        batch=parse_count(batch, "--batch"),
        k_dtype=_dtype_option(k_dtype),
        v_dtype=_dtype_option(v_dtype),
        tp=tp,
        pp=pp,
        block_size=block_size,
        max_num_batched_tokens=(
            None
            if max_batched_tokens is None
            else parse_tokens(max_batched_tokens, "--max-batched-tokens")
        ),
        attention_windows=_windows_option(attention_window),
        mtp=mtp,
        prefix_caching=prefix_caching,
        mamba_cache_mode=_mamba_cache_mode(mamba_cache_mode),
    )


def _plan_inputs(
    model: str,
    seq: str,
    batch: str,
    kv_dtype: str,
    engine: str,
    tp: str | None,
    pp: str | None,
    gpus: str | None,
    weights_dtype: str | None,
    util: float | None,
    reserve: str | None,
    max_batched_tokens: str | None,
    presets: Path | None,
    attention_window: str | None = None,
    assume_standard: bool = False,
    mtp: bool = False,
    prefix_caching: bool = False,
    mamba_cache_mode: str | None = None,
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Parse the planner's shared options: (spec, engine profile, workload, plan extras)."""
    from kvcalc.dtypes import weight_dtype
    from kvcalc.engines import engine_profile
    from kvcalc.planner import split_gpus
    from kvcalc.presets import load_model
    from kvcalc.units import parse_count, parse_size

    profile = engine_profile(engine)
    spec = load_model(model, presets, assume_standard)
    if gpus is not None and (tp is not None or pp is not None):
        raise KvcalcError("give --gpus N or --tp/--pp, not both")
    if gpus is not None:
        tp_n, pp_n = split_gpus(spec, profile, parse_count(gpus, "--gpus", 4096))
    else:
        tp_n = parse_count(tp or "1", "--tp", 4096)
        pp_n = parse_count(pp or "1", "--pp", 4096)
    workload = _workload(
        seq, batch, kv_dtype, kv_dtype, tp_n, pp_n, max_batched_tokens, attention_window,
        mtp=mtp, prefix_caching=prefix_caching, mamba_cache_mode=mamba_cache_mode,
    )  # fmt: skip
    extras = {
        "weights_dtype": None if weights_dtype in (None, "auto") else weight_dtype(weights_dtype),
        "util": util,
        "reserve_bytes": None if reserve is None else parse_size(reserve, "--reserve"),
    }
    return spec, profile, workload, extras


def _with_capacity(gpu: Any, gpu_mem: str | None) -> Any:
    from kvcalc.units import parse_size

    if gpu_mem is None:
        return gpu
    capacity = parse_size(gpu_mem, "--gpu-mem")
    if capacity <= 0:
        raise KvcalcError(f"invalid --gpu-mem {gpu_mem!r}: must be positive")
    return gpu.model_copy(update={"memory_bytes": capacity, "memory_kind": "user"})
