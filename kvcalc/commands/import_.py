"""kvcalc import: a Hugging Face config.json as a kvcalc preset."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from kvcalc.commands._shared import ASSUME_STANDARD_OPTION
from kvcalc.errors import KvcalcError


def import_(
    config: Path | None = typer.Argument(
        None, metavar="CONFIG", help="An HF config.json, or a folder holding one."
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
    assume_standard: bool = ASSUME_STANDARD_OPTION,
    list_families: bool = typer.Option(
        False, "--list-families", help="List the model families (HF model_type) kvcalc imports."
    ),
) -> None:
    """Import a Hugging Face config.json as a kvcalc preset (YAML on stdout or to -o FILE)."""
    if list_families:
        from kvcalc.hf.families import families_text

        sys.stdout.write(families_text())
        return
    if config is None:
        raise KvcalcError("give a CONFIG (config.json or its folder), or --list-families")
    import yaml

    from kvcalc.presets import import_hf

    imported = import_hf(config, name=name, source=source, assume_standard=assume_standard)
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
