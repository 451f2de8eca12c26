"""The only file reader: bundled and user presets (YAML), and Hugging Face config.json files."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kvcalc.errors import KvcalcError, did_you_mean
from kvcalc.specs import GpuSpec, ModelSpec, format_validation_error

PRESETS_ENV = "KVCALC_PRESETS"
_M = TypeVar("_M", bound=BaseModel)


def bundled_presets_dir() -> Path:
    """Return the bundled presets: inside the wheel, or the source tree's presets/ when editable."""
    packaged = Path(__file__).parent / "presets_data"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "presets"


def _user_dirs(presets_dir: str | Path | None) -> list[Path]:
    dirs = []
    if presets_dir is not None:
        dirs.append(Path(presets_dir))
    env = os.environ.get(PRESETS_ENV)
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    for d in dirs:
        if not d.is_dir():
            raise KvcalcError(f"presets directory {str(d)!r} does not exist")
    return dirs


def preset_files(kind: str, presets_dir: str | Path | None = None) -> dict[str, Path]:
    """Return {name: file} for 'models' or 'gpus': user directories first, then bundled ones.

    A user directory may hold YAML files directly or in models/ and gpus/ subfolders.
    """
    found: dict[str, Path] = {}
    candidates = []
    for d in _user_dirs(presets_dir):
        candidates.append(d / kind)
        if kind == "models":
            candidates.append(d)
    candidates.append(bundled_presets_dir() / kind)
    for directory in candidates:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.y*ml")):
            found.setdefault(path.stem.lower(), path)
    return found


@functools.cache
def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KvcalcError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise KvcalcError(f"{path}: not a UTF-8 text file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise KvcalcError(f"{path}: malformed YAML{where}: {problem}") from None


def read_yaml(path: Path) -> Any:
    """Return a YAML file's content (uncached); KvcalcError naming the file when bad."""
    _read_yaml.cache_clear()
    return _read_yaml(path)


def read_json(path: Path) -> Any:
    """Return a JSON file's content; KvcalcError naming the file when it is unreadable or bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KvcalcError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise KvcalcError(f"{path}: malformed JSON (line {exc.lineno}): {exc.msg}") from None


def validate(model: type[_M], data: Any, path: Path | str) -> _M:
    """Return data validated as `model`; errors name the file and the field."""
    if not isinstance(data, dict):
        raise KvcalcError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise KvcalcError(f"{path}: {format_validation_error(exc)}") from None


def load_model_file(path: Path) -> ModelSpec:
    """Return the model spec in a YAML preset file, or imported from a config.json (or folder)."""
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise KvcalcError(f"{path.parent}: folder holds no config.json")
    if path.suffix.lower() == ".json":
        return load_hf_config(path)
    return validate(ModelSpec, _read_yaml(path), path)


def checkpoint_bytes(config_path: Path) -> int | None:
    """Return the exact weight bytes of the safetensors checkpoint beside a config.json, if any.

    model.safetensors.index.json's metadata.total_size when present; otherwise the sum of
    the tensors' byte ranges in each *.safetensors header (8-byte little-endian length,
    then a JSON header; only the header is read, never the weights).
    """
    folder = config_path.parent
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = read_json(index)
        total = data.get("metadata", {}).get("total_size") if isinstance(data, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise KvcalcError(f"{index}: metadata.total_size is missing or not a positive integer")
        return total
    total = 0
    for shard in sorted(folder.glob("*.safetensors")):
        total += _safetensors_data_bytes(shard)
    return total or None


def _safetensors_data_bytes(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            size_bytes = handle.read(8)
            if len(size_bytes) != 8:
                raise KvcalcError(f"{path}: not a safetensors file (too short)")
            header_len = int.from_bytes(size_bytes, "little")
            if header_len > 100_000_000:
                raise KvcalcError(f"{path}: not a safetensors file (header length {header_len})")
            header = json.loads(handle.read(header_len))
    except OSError as exc:
        raise KvcalcError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise KvcalcError(f"{path}: not a safetensors file (bad JSON header)") from None
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise KvcalcError(f"{path}: tensor {name!r} has no data_offsets") from None
        total += int(end) - int(start)
    return total


def import_hf(path: Path, name: str | None = None, source: str | None = None) -> Any:
    """Return hf.Imported for a config.json (or its folder), checkpoint size included."""
    from kvcalc import hf

    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise KvcalcError(f"config file {str(path)!r} does not exist")
    config = read_json(path)
    if not isinstance(config, dict):
        raise KvcalcError(f"{path}: expected a JSON object")
    try:
        return hf.import_config(
            config, source=source or str(path), name=name, checkpoint_bytes=checkpoint_bytes(path)
        )
    except KvcalcError as exc:
        raise KvcalcError(f"{path}: {exc}") from None


def load_hf_config(path: Path) -> ModelSpec:
    """Return the spec imported from an HF config.json; warnings go to stderr."""
    import sys

    imported = import_hf(path)
    for warning in imported.warnings:
        print(f"warning: {path}: {warning}", file=sys.stderr)
    spec: ModelSpec = imported.spec
    return spec


def looks_like_path(name: str) -> bool:
    """Return True when a model argument names a file or folder rather than a preset."""
    return (
        name.lower().endswith((".yaml", ".yml", ".json"))
        or os.sep in name
        or "/" in name
        or Path(name).is_dir()
    )


def load_model(name: str, presets_dir: str | Path | None = None) -> ModelSpec:
    """Return the model spec for a preset name (case-insensitive) or a path to a spec/config."""
    if looks_like_path(name):
        path = Path(name)
        if not path.exists():
            raise KvcalcError(f"model file {name!r} does not exist")
        return load_model_file(path)
    files = preset_files("models", presets_dir)
    preset = files.get(name.lower())
    if preset is None:
        raise KvcalcError(
            f"unknown model preset {name!r}{did_you_mean(name, list(files))}; "
            "see `kvcalc presets list`"
        )
    return load_model_file(preset)


def load_all_models(presets_dir: str | Path | None = None) -> dict[str, ModelSpec]:
    """Return every model preset by name, validated."""
    return {name: load_model_file(p) for name, p in preset_files("models", presets_dir).items()}


def load_gpu(name: str, presets_dir: str | Path | None = None) -> GpuSpec:
    """Return the GPU preset for a name or alias (case-insensitive), or a path to a GPU YAML."""
    if name.lower().endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise KvcalcError(f"GPU file {name!r} does not exist")
        return validate(GpuSpec, _read_yaml(path), path)
    gpus = load_all_gpus(presets_dir)
    key = name.strip().lower()
    if key in gpus:
        return gpus[key]
    for gpu in gpus.values():
        if key in (a.lower() for a in gpu.aliases):
            return gpu
    known = list(gpus) + [a for g in gpus.values() for a in g.aliases]
    raise KvcalcError(f"unknown GPU {name!r}{did_you_mean(name, known)}; see `kvcalc gpus list`")


def load_all_gpus(presets_dir: str | Path | None = None) -> dict[str, GpuSpec]:
    """Return every GPU preset by name, validated."""
    return {
        name: validate(GpuSpec, _read_yaml(path), path)
        for name, path in preset_files("gpus", presets_dir).items()
    }


def fetch_hf_config(repo: str) -> Path:
    """Return the local path of a Hub repo's config.json, fetched with huggingface_hub.

    The safetensors index is fetched beside it when the repo has one, so the checkpoint's
    exact size is known. Needs huggingface_hub installed and the Hub reachable (or cached).
    """
    import importlib

    try:
        hub = importlib.import_module("huggingface_hub")
    except ImportError:
        raise KvcalcError(
            "--hf needs the huggingface_hub package (pip install huggingface_hub)"
        ) from None
    try:
        path = Path(hub.hf_hub_download(repo, "config.json"))
    # the hub raises many error types (offline, gated, unknown repo, HTTP): all mean "cannot"
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KvcalcError(
            f"cannot fetch {repo}/config.json from the Hugging Face Hub: {reason}"
        ) from None
    import contextlib

    with contextlib.suppress(Exception):  # a single-file or non-safetensors repo has no index
        hub.hf_hub_download(repo, "model.safetensors.index.json")
    return path
