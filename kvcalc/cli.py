"""The command line: argv -> specs -> formulas/planner -> rendered or machine output.

The only module that imports typer. Every user error is a KvcalcError (or a click usage
error) and becomes one `error: ...` line on stderr with exit code 2.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer

# typer 0.29 vendors click as typer._click; its exceptions are what commands raise
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from kvcalc import __version__
from kvcalc.errors import KvcalcError


class _Group(TyperGroup):
    """Runs commands so that every bad input becomes one `error:` line and exit code 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except KvcalcError as exc:
            _fail(str(exc))
        except NoArgsIsHelpError as exc:
            if exc.ctx is not None:
                sys.stdout.write(exc.ctx.get_help() + "\n")
            sys.exit(0)
        except UsageError as exc:
            _fail(_usage_message(exc))
        except ClickException as exc:
            _fail(exc.format_message())
        except typer.Abort:
            sys.stderr.write("aborted\n")
            sys.exit(130)
        except BrokenPipeError:  # `kvcalc ... | head`: the reader left, nothing is wrong
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        sys.exit(result if isinstance(result, int) else 0)


def _usage_message(exc: UsageError) -> str:
    message = exc.format_message().replace("\n", " ").strip()
    if exc.ctx is not None and exc.ctx.command_path:
        return f"{message} (see `{exc.ctx.command_path} --help`)"
    return message


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.exit(2)


app = typer.Typer(
    cls=_Group,
    help="Exact KV-cache memory calculator and capacity planner for LLM inference.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
presets_app = typer.Typer(help="List and show model presets.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")
gpus_app = typer.Typer(help="List GPU presets.", no_args_is_help=True)
app.add_typer(gpus_app, name="gpus")


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    yaml = "yaml"


def _version(value: bool) -> None:
    if value:
        print(f"kvcalc {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Exact KV-cache memory calculator and capacity planner for LLM inference."""


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


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
    help="Read the model's config.json from the Hugging Face Hub (needs huggingface_hub).",
)


def _model_argument(model: str | None, hf_repo: str | None) -> str:
    """Return the model to load: a preset or path, or the fetched config of --hf ORG/NAME."""
    if model is not None and hf_repo is None:
        return model
    if model is None and hf_repo is not None:
        from kvcalc.presets import fetch_hf_config

        return str(fetch_hf_config(hf_repo))
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


@app.command()
def calc(
    model: str | None = typer.Argument(
        None,
        metavar="MODEL",
        help="Preset name (see `kvcalc presets list`), a spec .yaml, or an HF config.json.",
    ),
    seq: str = typer.Option(
        "8k", "--seq", "-s", metavar="TOKENS", help="Tokens per sequence: 8192, 8k, 128k."
    ),
    batch: str = typer.Option("1", "--batch", "-b", metavar="N", help="Concurrent sequences."),
    kv_dtype: str = typer.Option(
        "auto",
        "--kv-dtype",
        metavar="DTYPE",
        help="KV-cache dtype (auto = the model's dtype): fp16, bf16, fp8, q8_0...",
    ),
    k_dtype: str | None = typer.Option(
        None, "--k-dtype", "--cache-type-k", metavar="DTYPE", help="K dtype."
    ),
    v_dtype: str | None = typer.Option(
        None, "--v-dtype", "--cache-type-v", metavar="DTYPE", help="V dtype."
    ),
    engine: str = typer.Option(
        "vllm", "--engine", "-e", metavar="ENGINE", help="Engine profile (`kvcalc engines`)."
    ),
    tp: str = typer.Option("1", "--tp", metavar="N", help="Tensor-parallel size."),
    pp: str = typer.Option("1", "--pp", metavar="N", help="Pipeline-parallel size."),
    block_size: str | None = typer.Option(
        None, "--block-size", metavar="TOKENS", help="Tokens per KV block (overrides the engine's)."
    ),
    max_batched_tokens: str | None = typer.Option(
        None,
        "--max-batched-tokens",
        metavar="TOKENS",
        help="vLLM max_num_batched_tokens (sliding-window planning).",
    ),
    attention_window: str | None = WINDOW_OPTION,
    hf_repo: str | None = HF_OPTION,
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
    )
    profile = engine_profile(engine)
    spec = load_model(_model_argument(model, hf_repo), presets)
    report = calc_report(kv_cache(spec, workload, profile), hf_repo or str(model))
    if fmt is OutputFormat.table:
        from kvcalc.render import render_calc

        render_calc(_console(), report)
    else:
        _emit(report, fmt, CALC_CSV_COLUMNS)


@presets_app.command("list")
def presets_list(
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """List model presets: name, attention layout, layers, KV bytes per token in bf16."""
    from kvcalc.dtypes import KV_DTYPES
    from kvcalc.engines import ENGINES
    from kvcalc.formula import Workload, kv_cache
    from kvcalc.presets import load_all_models
    from kvcalc.report import preset_row

    rows = []
    one_token = Workload(seq_len=1, k_dtype=KV_DTYPES["bf16"], v_dtype=KV_DTYPES["bf16"])
    for name, spec in sorted(load_all_models(presets).items()):
        per_token = kv_cache(spec, one_token, ENGINES["formula"]).bytes_per_token
        rows.append(preset_row(name, spec, per_token))
    columns = ["name", "attention", "layers", "sliding", "n_params", "kv_bytes_per_token_bf16"]
    _show_rows(fmt, f"{len(rows)} model presets", rows, columns)


@presets_app.command("show")
def presets_show(
    name: str = typer.Argument(..., metavar="MODEL", help="Preset name or path."),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = typer.Option(OutputFormat.yaml, "--format", "-f", help="Output format."),
) -> None:
    """Show one model spec, validated, as YAML (or JSON)."""
    from kvcalc.presets import load_model

    spec = load_model(name, presets)
    data = spec.to_data()
    _emit(data, OutputFormat.json if fmt is OutputFormat.json else OutputFormat.yaml)


@app.command()
def engines(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """List the engine profiles and what each assumes."""
    from kvcalc.engines import ENGINES

    rows: list[dict[str, Any]] = [
        {
            "engine": p.name,
            "summary": p.summary,
            "block_size": p.block_size,
            "assumptions": list(p.assumptions_for({"sliding", "chunked", "mla", "pp", "falcon"})),
            "sources": list(p.sources),
        }
        for p in ENGINES.values()
    ]
    if fmt is OutputFormat.table:
        from kvcalc.render import render_text

        console = _console()
        for row in rows:
            body = "\n".join(f"· {a}" for a in row["assumptions"])
            body += "\n" + "\n".join(f"source: {s}" for s in row["sources"])
            render_text(console, body, title=f"{row['engine']}: {row['summary']}")
    else:
        _emit(rows, fmt, ["engine", "summary", "block_size"])


@app.command("import")
def import_(
    config: Path = typer.Argument(
        ..., metavar="CONFIG", help="An HF config.json, or a folder holding one."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write the preset YAML here."
    ),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="Display name for the preset."
    ),
    source: str | None = typer.Option(
        None, "--source", metavar="URL", help="Source URL to cite in the preset."
    ),
) -> None:
    """Import a Hugging Face config.json as a kvcalc preset (YAML on stdout or to -o FILE)."""
    import yaml

    from kvcalc.presets import import_hf

    imported = import_hf(config, name=name, source=source)
    path = config
    for warning in imported.warnings:
        sys.stderr.write(f"warning: {path}: {warning}\n")
    text = yaml.safe_dump(imported.spec.to_data(), sort_keys=False)
    if output is None:
        sys.stdout.write(text)
        return
    tmp = output.with_name(output.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)  # atomic: never a partial file
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise KvcalcError(f"cannot write {output}: {exc.strerror or exc}") from None
    sys.stderr.write(f"wrote {output}\n")


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
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Parse the planner's shared options: (spec, engine profile, workload, plan extras)."""
    from kvcalc.dtypes import weight_dtype
    from kvcalc.engines import engine_profile
    from kvcalc.planner import split_gpus
    from kvcalc.presets import load_model
    from kvcalc.units import parse_count, parse_size

    profile = engine_profile(engine)
    spec = load_model(model, presets)
    if gpus is not None and (tp is not None or pp is not None):
        raise KvcalcError("give --gpus N or --tp/--pp, not both")
    if gpus is not None:
        tp_n, pp_n = split_gpus(spec, profile, parse_count(gpus, "--gpus", 4096))
    else:
        tp_n = parse_count(tp or "1", "--tp", 4096)
        pp_n = parse_count(pp or "1", "--pp", 4096)
    workload = _workload(
        seq, batch, kv_dtype, kv_dtype, tp_n, pp_n, max_batched_tokens, attention_window
    )
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


@app.command("fit")
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
    tp: str | None = typer.Option(None, "--tp", metavar="N", help="Tensor-parallel size."),
    pp: str | None = typer.Option(None, "--pp", metavar="N", help="Pipeline-parallel size."),
    seq: str = typer.Option("8k", "--seq", "-s", metavar="TOKENS", help="Tokens per sequence."),
    batch: str = typer.Option("1", "--batch", "-b", metavar="N", help="Concurrent sequences."),
    kv_dtype: str = typer.Option("auto", "--kv-dtype", metavar="DTYPE", help="KV-cache dtype."),
    weights_dtype: str | None = typer.Option(
        None,
        "--weights-dtype",
        metavar="DTYPE",
        help="Weights: bf16, fp16, fp8, int8, int4-gptq, int4-awq (default: the model's).",
    ),
    engine: str = typer.Option("vllm", "--engine", "-e", metavar="ENGINE", help="Engine profile."),
    util: float | None = typer.Option(
        None,
        "--util",
        metavar="F",
        help="vLLM gpu_memory_utilization (0.9), SGLang mem_fraction_static, TRT-LLM free fraction.",
    ),
    reserve: str | None = typer.Option(
        None, "--reserve", metavar="SIZE", help="Non-KV, non-weight memory per GPU, e.g. 4GiB."
    ),
    gpu_mem: str | None = typer.Option(
        None, "--gpu-mem", metavar="SIZE", help="Override the GPU's memory, e.g. 80GiB."
    ),
    max_batched_tokens: str | None = typer.Option(
        None, "--max-batched-tokens", metavar="TOKENS", help="vLLM max_num_batched_tokens."
    ),
    attention_window: str | None = WINDOW_OPTION,
    hf_repo: str | None = HF_OPTION,
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when it does not fit (without --gpu: when no GPU fits)."
    ),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Does it fit? Per-GPU budget, verdict, headroom, max batch, max context, minimum GPUs."""
    from kvcalc.planner import Plan, fit, min_gpus
    from kvcalc.presets import load_all_gpus, load_gpu
    from kvcalc.report import FIT_CSV_COLUMNS, fit_report

    model_path = _model_argument(model, hf_repo)
    spec, profile, workload, extras = _plan_inputs(
        model_path, seq, batch, kv_dtype, engine, tp, pp, gpus, weights_dtype, util, reserve,
        max_batched_tokens, presets, attention_window,
    )  # fmt: skip
    if gpu is not None:
        targets = [(gpu, load_gpu(gpu, presets))]
    else:
        targets = sorted(load_all_gpus(presets).items())
    reports = []
    for label, gpu_spec in targets:
        plan = Plan(spec, _with_capacity(gpu_spec, gpu_mem), profile, workload, **extras)
        reports.append(
            fit_report(
                fit(plan), hf_repo or str(model), label, min_gpus(plan), min_gpus(plan, max_pp=1)
            )
        )
    if gpu is None:
        reports.sort(
            key=lambda r: (not r["fits"], r["min_gpus"] or 10**9, -r["max_batch"], r["gpu"])
        )
    if fmt is OutputFormat.table:
        from kvcalc.render import render_fit, render_fit_table

        if gpu is not None:
            render_fit(_console(), reports[0])
        else:
            render_fit_table(_console(), reports)
    else:
        _emit(reports[0] if gpu is not None else reports, fmt, FIT_CSV_COLUMNS)
    if check and not any(r["fits"] for r in reports):
        raise typer.Exit(1)


@gpus_app.command("list")
def gpus_list(presets: Path | None = PRESETS_OPTION, fmt: OutputFormat = FORMAT_OPTION) -> None:
    """List GPU presets: the memory engines size from (GiB and GB), its kind, bandwidth."""
    from kvcalc.presets import load_all_gpus
    from kvcalc.report import gpu_row

    rows = [gpu_row(name, g) for name, g in sorted(load_all_gpus(presets).items())]
    columns = ["name", "gpu", "memory_bytes", "memory_gib", "memory_gb", "memory_kind",
               "datasheet_memory"]  # fmt: skip
    _show_rows(fmt, f"{len(rows)} GPU presets", rows, columns)


@app.command("check")
def check_command(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Deployment YAML files."),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """CI sanity check: one line per deployment; exit 0 all fit, 1 any does not, 2 bad file."""
    from kvcalc.checks import run_checks

    results = []
    for path in files:
        results.extend(run_checks(path, presets))
    if fmt is OutputFormat.table:
        for r in results:
            status = "PASS" if r["ok"] else "FAIL"
            sys.stdout.write(f"{status} {r['name']}: {r['message']}\n")
        passed = sum(r["ok"] for r in results)
        sys.stdout.write(f"{passed} passed, {len(results) - passed} failed\n")
    else:
        _emit(results, fmt, ["file", "name", "ok", "message"])
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()
