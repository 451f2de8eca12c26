"""kvcalc import: a Hugging Face config.json as a kvcalc preset."""

import sys
from pathlib import Path

import typer

from kvcalc.commands._shared import ASSUME_STANDARD_OPTION
from kvcalc.errors import KvcalcError


def import_(
    config: Path | None = typer.Argument(
        None,
        metavar="CONFIG",
        help="An HF config.json, a folder holding one, or a Hub id org/name (kvcalc[hf]).",
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

    from kvcalc.hub import is_hub_id
    from kvcalc.presets import import_hf

    if not config.exists() and is_hub_id(str(config)):  # org/name: through the Hub
        from kvcalc.hub import load_spec

        imported = load_spec(str(config), assume_standard, name=name, source=source)
    else:
        imported = import_hf(config, name=name, source=source, assume_standard=assume_standard)
    path = config
    for warning in imported.warnings:
        sys.stderr.write(f"warning: {path}: {warning}\n")
    text = yaml.safe_dump(imported.spec.to_data(), sort_keys=False)
    if output is None:
        sys.stdout.write(text)
        return
    import os
    import tempfile

    tmp: Path | None = None
    try:  # atomic: a temporary file beside the target, renamed over it; never a partial file
        fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        mode = output.stat().st_mode & 0o777 if output.is_file() else 0o666 & ~umask
        tmp.chmod(mode)  # mkstemp makes 0600; the preset gets what a plain write would
        tmp.replace(output)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise KvcalcError(f"cannot write {output}: {exc.strerror or exc}") from None
    sys.stderr.write(f"wrote {output}\n")
