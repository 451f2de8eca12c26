"""kvcalc verify: an engine's start-up log beside kvcalc's prediction, term by term."""

import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import typer

from kvcalc.commands._shared import (
    FORMAT_OPTION,
    PRESETS_OPTION,
    OutputFormat,
    _answer,
    _console,
    _emit,
    _with_capacity,
)
from kvcalc.errors import KvcalcError

VERIFY_CSV_COLUMNS = (
    "term", "unit", "engine", "engine_text", "kvcalc", "difference", "error",
    "within_tolerance", "counts", "basis",
)  # fmt: skip


def _read_log(path: str) -> str:
    """Return the log's text: a file, or stdin for '-' (undecodable bytes replaced)."""
    if path == "-":
        return sys.stdin.read()
    from kvcalc.presets import open_regular  # refuses FIFOs, directories, symlink loops

    try:
        with open_regular(path) as handle:
            return handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise KvcalcError(f"cannot read {path}: {exc.strerror or exc}") from None


def _tolerance(text: str) -> Fraction:
    """Return a tolerance from '1%' or '0.01'."""
    raw = text.strip()
    try:
        value = Fraction(raw[:-1]) / 100 if raw.endswith("%") else Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise KvcalcError(
            f"invalid --tolerance {text!r}: give a percentage (1%) or a fraction"
        ) from None
    if value < 0 or value >= 1:
        raise KvcalcError(f"invalid --tolerance {text!r}: must be at least 0 and below 100%")
    return value


def _repo_of(source: str | None) -> str:
    """Return the Hugging Face repo id a preset's source URL names, or ''."""
    if not source or "huggingface.co/" not in source:
        return ""
    parts = source.split("huggingface.co/", 1)[1].split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 else ""


def _gpu_from_name(device: str | None, presets: Path | None) -> Any:
    """Return the GPU preset a log's device name (NVIDIA_GeForce_RTX_3090) means, or None."""
    from kvcalc.presets import load_gpu

    if not device:
        return None
    name = device.lower().replace("_", "-")
    for prefix in ("nvidia-", "geforce-"):
        name = name.removeprefix(prefix)
    try:
        return load_gpu(name, presets)
    except KvcalcError:
        return None


def verify_command(
    log: str = typer.Argument(
        ..., metavar="LOG", help="The engine's start-up log (file, or - for stdin)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        metavar="MODEL",
        help="Preset or spec of the model (default: from the log).",
    ),
    gpu: str | None = typer.Option(
        None, "--gpu", "-g", metavar="GPU", help="GPU preset the log ran on."
    ),
    gpu_mem: str | None = typer.Option(
        None, "--gpu-mem", metavar="SIZE", help="The GPU's memory, e.g. 80GiB."
    ),
    engine: str | None = typer.Option(
        None, "--engine", "-e", metavar="ENGINE", help="Engine profile (default: the log's engine)."
    ),
    tp: int | None = typer.Option(
        None,
        "--tp",
        "--tensor-parallel-size",
        "-tp",
        metavar="N",
        help="Tensor-parallel size (default: the log's).",
    ),
    pp: int | None = typer.Option(
        None,
        "--pp",
        "--pipeline-parallel-size",
        "-pp",
        metavar="N",
        help="Pipeline-parallel size (default: the log's).",
    ),
    max_model_len: int | None = typer.Option(
        None,
        "--max-model-len",
        metavar="TOKENS",
        help="Max model len / llama.cpp context per sequence.",
    ),
    util: float | None = typer.Option(
        None,
        "--util",
        "--gpu-memory-utilization",
        metavar="F",
        help="Utilisation / memory fraction (default: the log's).",
    ),
    kv_cache_dtype: str | None = typer.Option(
        None, "--kv-cache-dtype", metavar="DTYPE", help="KV-cache dtype (default: the log's)."
    ),
    weights_dtype: str | None = typer.Option(
        None,
        "--weights-dtype",
        metavar="DTYPE",
        help="Weights dtype for kvcalc's own weight estimate.",
    ),
    block_size: int | None = typer.Option(
        None, "--block-size", metavar="TOKENS", help="Tokens per KV block."
    ),
    reserve: str | None = typer.Option(
        None, "--reserve", metavar="SIZE", help="Non-KV, non-weight memory per GPU."
    ),
    weights: str = typer.Option(
        "engine",
        "--weights",
        metavar="FROM",
        help="Weights in kvcalc's budget: engine (the log's figure, when it has one) or kvcalc.",
    ),
    tolerance: str = typer.Option(
        "1%", "--tolerance", metavar="PCT", help="Largest error that agrees."
    ),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Compare an engine's start-up log with kvcalc: exit 0 within tolerance, 1 not, 2 unreadable."""
    from kvcalc.dtypes import weight_dtype
    from kvcalc.engines import engine_profile
    from kvcalc.logs import parse_log
    from kvcalc.presets import load_all_models, load_gpu, load_model
    from kvcalc.units import parse_size
    from kvcalc.verify import VerifyOptions, match_preset, verification_report, verify

    parsed = parse_log(_read_log(log))
    if model is None:
        catalogue = {name: _repo_of(spec.source) for name, spec in load_all_models(presets).items()}
        model = match_preset(parsed.model, catalogue)
        if model is None:
            raise KvcalcError(
                f"cannot tell which preset the log's model {parsed.model!r} is: pass --model"
                if parsed.model
                else "the log does not name its model: pass --model"
            )
    spec = load_model(model, presets)
    profile = engine_profile(engine or parsed.engine)
    gpu_spec = load_gpu(gpu, presets) if gpu is not None else None
    if gpu_spec is None and isinstance(parsed.settings.get("device_name"), str):
        gpu_spec = _gpu_from_name(str(parsed.settings["device_name"]), presets)
    if gpu_mem is not None:
        if gpu_spec is None:
            gpu_spec = load_gpu("h100-80gb", presets).model_copy(
                update={"name": f"GPU of {gpu_mem}", "aliases": []}
            )
        gpu_spec = _with_capacity(gpu_spec, gpu_mem)
    options = VerifyOptions(
        tp=tp,
        pp=pp,
        max_model_len=max_model_len,
        util=util,
        kv_dtype=kv_cache_dtype,
        weights_dtype=None if weights_dtype in (None, "auto") else weight_dtype(weights_dtype),
        block_size=block_size,
        reserve_bytes=None if reserve is None else parse_size(reserve, "--reserve"),
        weights=weights,
        tolerance=_tolerance(tolerance),
    )
    result = verify(parsed, spec, profile, gpu_spec, options, model_name=model)
    report = verification_report(result)
    _answer(0 if result.agrees else 1)
    if fmt is OutputFormat.table:
        _render(report)
    else:
        _emit(report if fmt is not OutputFormat.csv else report["terms"], fmt, VERIFY_CSV_COLUMNS)
    if not result.agrees:
        raise typer.Exit(1)


def _cell(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{value / 2**30:,.2f} GiB" if abs(value) >= 2**30 else f"{value / 2**20:,.2f} MiB"
    if unit == "x":
        return f"{value:,.2f}x"
    return f"{value:,}"


def _render(report: dict[str, Any]) -> None:
    from kvcalc.render import render_rows

    console = _console()
    version = f" {report['engine_version']}" if report["engine_version"] else ""
    title = (
        f"{report['engine']}{version} log · model {report['log_model'] or '?'} → kvcalc "
        f"{report['model']} · GPU {report['gpu'] or '?'}"
    )
    bases: list[str] = []
    rows = []
    for t in report["terms"]:
        if t["basis"] not in bases:
            bases.append(t["basis"])
        error = t["error"]
        ok = t["within_tolerance"]
        rows.append(
            {
                "term": t["term"],
                "engine": t["engine_text"] or "-",
                "kvcalc": _cell(t["kvcalc"], t["unit"]),
                "error": "-" if error is None else f"{error:+.2%}",
                "ok": "-" if ok is None else ("yes" if ok else "NO") + ("" if t["counts"] else "*"),
                "from": f"[{bases.index(t['basis']) + 1}]",
            }
        )
    render_rows(console, title, rows, ["term", "engine", "kvcalc", "error", "ok", "from"])
    if any(not t["counts"] for t in report["terms"]):
        console.print("* informational: not part of the verdict", markup=False)
    for index, basis in enumerate(bases, 1):
        console.print(f"[{index}] {basis}", markup=False)
    settings = ", ".join(f"{s['name']} {s['value']} ({s['source']})" for s in report["settings"])
    console.print(f"settings: {settings}", markup=False)
    for note in report["notes"]:
        console.print(f"note: {note}", markup=False)
    verdict = "agrees" if report["agrees"] else "does not agree"
    console.print(
        f"verdict: kvcalc {verdict} with the log within {report['tolerance']:.2%} "
        "(error: beyond the printed figures' rounding)",
        markup=False,
    )
