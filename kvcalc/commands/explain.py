"""kvcalc explain: the derivation of one workload's KV cache, in words and numbers."""

from pathlib import Path
from typing import Any, Literal

import typer

from kvcalc.commands._shared import (
    BATCH_OPTION,
    FORMAT_OPTION,
    HF_OPTION,
    KV_DTYPE_OPTION,
    PRESETS_OPTION,
    SEQ_OPTION,
    OutputFormat,
    _console,
    _emit,
    _model_argument,
    _workload,
    pp_option,
    tp_option,
)
from kvcalc.errors import KvcalcError


def _origin(model: str) -> tuple[Literal["preset", "config", "spec"], dict[str, Any] | None]:
    """Return where a model argument comes from (preset, config, spec) and its config dict."""
    from kvcalc.presets import looks_like_path, read_json

    if not looks_like_path(model):
        return "preset", None
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if path.suffix.lower() == ".json" and path.is_file():
        from kvcalc.hf import text_config

        config = read_json(path)
        return "config", text_config(config) if isinstance(config, dict) else None
    return "spec", None


def explain_command(
    model: str | None = typer.Argument(
        None, metavar="MODEL", help="Preset name, spec .yaml or config.json."
    ),
    seq: str = SEQ_OPTION,
    batch: str = BATCH_OPTION,
    kv_dtype: str = KV_DTYPE_OPTION,
    engine: str = typer.Option("vllm", "--engine", "-e", metavar="ENGINE", help="Engine profile."),
    tp: str = tp_option("1"),
    pp: str = pp_option("1"),
    output_tokens: str | None = typer.Option(
        None,
        "--output-tokens",
        "-M",
        metavar="TOKENS",
        help="Generated tokens M of the --seq context, for what the cache buys "
        "(default min(256, seq − 1)).",
    ),
    hf_repo: str | None = HF_OPTION,
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Why the KV cache is this size: layout, each factor and its source, what the engine adds."""
    from kvcalc.engines import engine_profile
    from kvcalc.explain import explain, explanation_data
    from kvcalc.formula import kv_cache
    from kvcalc.presets import load_model
    from kvcalc.units import parse_count, parse_tokens

    if fmt is OutputFormat.csv:
        raise KvcalcError("explain has no CSV form: use --format json or yaml")
    workload = _workload(
        seq,
        batch,
        kv_dtype,
        kv_dtype,
        parse_count(tp, "--tp", 4096),
        parse_count(pp, "--pp", 4096),
        None,
        None,
    )
    profile = engine_profile(engine)
    path = _model_argument(model, hf_repo)
    spec = load_model(path, presets)
    origin, config = _origin(path)
    label = hf_repo or str(model)
    m = None
    if output_tokens is not None:
        m = 0 if output_tokens.strip() == "0" else parse_tokens(output_tokens, "--output-tokens")
    result = explain(kv_cache(spec, workload, profile), label, origin, m, config)
    data = explanation_data(result, label)
    if fmt is OutputFormat.table:
        from kvcalc.render_insight import render_explain

        render_explain(_console(), data)
    else:
        _emit(data, fmt)
