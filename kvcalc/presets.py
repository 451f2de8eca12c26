"""The only file reader: bundled and user presets (YAML), and Hugging Face config.json files."""

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

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
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for file_name in names:
            stem, dot, suffix = file_name.rpartition(".")
            if dot and suffix in ("yaml", "yml"):
                found.setdefault(stem.lower(), directory / file_name)
    return found


@functools.cache
def _read_yaml(path: Path) -> Any:
    import yaml

    text = read_text(path)
    try:
        # libyaml's loader when PyYAML was built with it (10-20x faster), else pure Python
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except RecursionError:
        raise KvcalcError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise KvcalcError(f"{path}: malformed YAML{where}: {problem}") from None
    _check_shape(data, path)
    return data


def read_yaml(path: Path) -> Any:
    """Return a YAML file's content (uncached); KvcalcError naming the file when bad."""
    _read_yaml.cache_clear()
    return _read_yaml(path)


def read_json(path: Path) -> Any:
    """Return a JSON file's content; KvcalcError naming the file when it is unreadable or bad."""
    text = read_text(path)
    try:
        data = json.loads(text)  # NaN and Infinity too: published configs carry them
    except RecursionError:
        raise KvcalcError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise KvcalcError(f"{path}: malformed JSON (line {exc.lineno}): {exc.msg}") from None
    _check_shape(data, path)
    return data


# Limits on what a config, spec or deployments file may be: the largest published config.json
# is tens of KB and no spec nests more than a few levels, so these only stop wrong files
# (a checkpoint, /dev/zero, a YAML alias bomb) from hanging kvcalc.
MAX_FILE_BYTES = 16 * 2**20
MAX_DEPTH = 64
MAX_VALUES = 200_000


def open_regular(path: Path | str) -> BinaryIO:
    """Return a regular file opened for binary reading; KvcalcError naming the file when it is
    missing, unreadable, a symlink loop, a directory, a FIFO, a socket or a device."""
    import stat

    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang; fstat then refuses it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise KvcalcError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the name
        raise KvcalcError(f"{str(path)!r}: not a valid file name") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise KvcalcError(f"{path}: is a directory, not a file")
        raise KvcalcError(f"{path}: not a regular file (a FIFO, socket or device?)")
    return os.fdopen(fd, "rb")


def read_text(path: Path) -> str:
    """Return a regular file's UTF-8 text (a BOM dropped); KvcalcError naming the file when it
    is not a regular readable file (open_regular), larger than MAX_FILE_BYTES, or not UTF-8."""
    with open_regular(path) as handle:
        try:
            raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise KvcalcError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise KvcalcError(
            f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB: not a config or spec file"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KvcalcError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _check_shape(data: Any, path: Path) -> None:
    """Refuse data nested deeper than MAX_DEPTH or expanding to more than MAX_VALUES values
    (YAML aliases can make a few lines expand exponentially); linear in the distinct nodes."""
    sizes: dict[int, tuple[int, int]] = {}  # id -> (expanded values, depth)
    stack: list[tuple[Any, bool]] = [(data, False)]
    open_nodes: set[int] = set()  # ancestors of the node being expanded: a cycle's witness
    while stack:
        node, done = stack.pop()
        if not isinstance(node, dict | list) or (id(node) in sizes and not done):
            continue
        children = [
            c
            for c in (list(node.keys()) + list(node.values()) if isinstance(node, dict) else node)
            if isinstance(c, dict | list)
        ]
        if not done:
            if any(id(c) in open_nodes for c in children):
                raise KvcalcError(f"{path}: a YAML alias refers to its own anchor")
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        open_nodes.discard(id(node))
        count = len(node) + sum(sizes[id(c)][0] for c in children)
        depth = 1 + max((sizes[id(c)][1] for c in children), default=0)
        if depth > MAX_DEPTH:
            raise KvcalcError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        if count > MAX_VALUES:
            raise KvcalcError(
                f"{path}: expands to more than {MAX_VALUES:,} values (YAML aliases?): "
                "not a config or spec file"
            )
        sizes[id(node)] = (count, depth)


def validate(model: type[_M], data: Any, path: Path | str) -> _M:
    """Return data validated as `model`; errors name the file and the field."""
    if not isinstance(data, dict):
        raise KvcalcError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise KvcalcError(f"{path}: {format_validation_error(exc)}") from None


def load_model_file(path: Path, assume_standard: bool = False) -> ModelSpec:
    """Return the model spec in a YAML preset file, or imported from a config.json (or folder).

    assume_standard: read a config of an unknown family with the standard keys (hf).
    """
    indexed = _from_index("models", path)
    if indexed is not None:
        return indexed  # type: ignore[return-value]
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise KvcalcError(f"{path.parent}: folder holds no config.json")
    if path.suffix.lower() == ".json":
        return load_hf_config(path, assume_standard)
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


def import_hf(
    path: Path, name: str | None = None, source: str | None = None, assume_standard: bool = False
) -> Any:
    """Return hf.Imported for a config.json (or its folder), checkpoint size included."""
    from kvcalc import hf

    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise KvcalcError(f"config file {str(path)!r} does not exist")
    config = read_json(path)
    if not isinstance(config, dict):
        raise KvcalcError(f"{path}: expected a JSON object")
    hf_quant = path.parent / "hf_quant_config.json"  # NVIDIA ModelOpt's recipe
    if hf_quant.is_file():
        from kvcalc.quant import with_hf_quant_config

        recipe = read_json(hf_quant)
        if not isinstance(recipe, dict):
            raise KvcalcError(f"{hf_quant}: expected a JSON object")
        try:
            config = with_hf_quant_config(config, recipe)
        except KvcalcError as exc:
            raise KvcalcError(f"{hf_quant}: {exc}") from None
    try:
        return hf.import_config(
            config,
            source=source or str(path),
            name=name,
            checkpoint_bytes=checkpoint_bytes(path),
            assume_standard=assume_standard,
        )
    except KvcalcError as exc:
        raise KvcalcError(f"{path}: {exc}") from None
    except ValidationError as exc:  # a value the config allows but a model cannot have
        raise KvcalcError(f"{path}: {format_validation_error(exc)}") from None
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, ArithmeticError) as exc:
        # hf reads the keys it knows with their published types; any other shape (a dict
        # where a list belongs, a string for a count) is a malformed config, not a crash
        what = f"{type(exc).__name__}: {exc}"
        raise KvcalcError(
            f"{path}: malformed config.json (a value of an unexpected type; {what})"
        ) from None


def load_hf_config(path: Path, assume_standard: bool = False) -> ModelSpec:
    """Return the spec imported from an HF config.json; warnings go to stderr."""
    import sys

    imported = import_hf(path, assume_standard=assume_standard)
    for warning in imported.warnings:
        print(f"warning: {path}: {warning}", file=sys.stderr)
    spec: ModelSpec = imported.spec
    return spec


def _is_hub_id(name: str) -> bool:
    from kvcalc.hub import is_hub_id

    return is_hub_id(name)


def _load_hub(repo: str, assume_standard: bool = False) -> ModelSpec:
    """Return the spec of a Hugging Face Hub id (org/name), fetched by kvcalc.hub."""
    import sys

    from kvcalc.hub import load_spec

    imported = load_spec(repo, assume_standard=assume_standard)
    for warning in imported.warnings:
        print(f"warning: {repo}: {warning}", file=sys.stderr)
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


def load_model(
    name: str, presets_dir: str | Path | None = None, assume_standard: bool = False
) -> ModelSpec:
    """Return the model spec for a preset name (case-insensitive) or a path to a spec/config."""
    if looks_like_path(name):
        path = Path(name)
        if not path.exists() and _is_hub_id(name):
            return _load_hub(name, assume_standard)
        if not path.exists():
            raise KvcalcError(f"model file {name!r} does not exist")
        return load_model_file(path, assume_standard)
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


def load_gpu_file(path: Path) -> GpuSpec:
    """Return the GPU spec in a YAML file (bundled ones from the pre-validated index)."""
    indexed = _from_index("gpus", path)
    if indexed is not None:
        return indexed  # type: ignore[return-value]
    return validate(GpuSpec, _read_yaml(path), path)


def load_all_gpus(presets_dir: str | Path | None = None) -> dict[str, GpuSpec]:
    """Return every GPU preset by name, validated."""
    return {name: load_gpu_file(path) for name, path in preset_files("gpus", presets_dir).items()}


def canonical_model_name(name: str, presets_dir: str | Path | None = None) -> str:
    """Return the preset name a model argument resolves to ('LLAMA-3.1-8B' -> 'llama-3.1-8b').

    A path is returned as given; an unknown name raises KvcalcError as load_model does.
    """
    if looks_like_path(name):
        return name
    key = name.lower()
    if key not in preset_files("models", presets_dir):
        load_model(name, presets_dir)  # raises the usual "unknown model preset" error
    return key


def canonical_gpu_name(name: str, presets_dir: str | Path | None = None) -> str:
    """Return the GPU preset name a GPU argument or alias resolves to ('h100' -> 'h100-80gb')."""
    if name.lower().endswith((".yaml", ".yml")):
        return name
    key = name.strip().lower()
    files = preset_files("gpus", presets_dir)
    if key in files:
        return key
    for preset, path in files.items():
        if key in (a.lower() for a in load_gpu_file(path).aliases):
            return preset
    load_gpu(name, presets_dir)  # raises the usual "unknown GPU" error
    return key


# ---- the pre-validated index of bundled presets ----------------------------------------
#
# kvcalc/presets_index.py holds every bundled preset already validated, keyed by kind and
# file stem, with the SHA-256 of the file it came from. A bundled file whose bytes match
# its entry is built from the entry without YAML parsing or pydantic validation; any
# other file (a user's, or a bundled one edited since) is read and validated as usual, so
# a stale index is only slower, never wrong. tests/test_startup.py fails when it is stale:
# regenerate it with `python scripts/make_presets_index.py`.

INDEX_FILE = Path(__file__).parent / "presets_index.py"
_INDEX_KINDS: dict[str, type[BaseModel]] = {"models": ModelSpec, "gpus": GpuSpec}
_built: dict[tuple[str, str], BaseModel] = {}


@functools.cache
def _index() -> dict[str, dict[str, tuple[str, str]]]:
    try:
        from kvcalc.presets_index import INDEX
    except ImportError:  # not generated yet: every preset is read and validated
        return {}
    return INDEX


def _from_index(kind: str, path: Path) -> BaseModel | None:
    """Return the indexed spec for a bundled preset file whose bytes match the index, else None."""
    if path.parent.parent != bundled_presets_dir() or path.suffix != ".yaml":
        return None
    entry = _index().get(kind, {}).get(path.stem)
    if entry is None:
        return None
    try:
        content = path.read_bytes()
    except OSError:
        return None
    import hashlib

    digest = hashlib.sha256(content).hexdigest()
    sha256, data = entry
    if sha256 != digest:
        return None
    key = (kind, digest)
    if key not in _built:
        _built[key] = construct(_INDEX_KINDS[kind], json.loads(data))
    return _built[key]


def construct(model: type[_M], data: dict[str, Any]) -> _M:
    """Return `model` built from already-validated data, nested models included, unchecked.

    pydantic's model_construct does not descend into nested models; this does, choosing a
    union member by its literal `kind`. Only for data that validated before (the index).
    """
    values = {}
    for name, value in data.items():
        info = model.model_fields[name]
        values[name] = _construct_value(info.annotation, value)
    return model.model_construct(**values)


def _construct_value(annotation: Any, value: Any) -> Any:
    import typing

    if isinstance(value, dict):
        candidates = [
            t for t in _members(annotation) if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        if candidates:
            chosen = candidates[0]
            if len(candidates) > 1:
                for c in candidates:
                    kind = c.model_fields.get("kind")
                    if kind is not None and value.get("kind") in typing.get_args(kind.annotation):
                        chosen = c
                        break
            return construct(chosen, value)
        args = [a for a in _members(annotation) if typing.get_origin(a) is dict]
        if args:
            item = typing.get_args(args[0])[1]
            return {k: _construct_value(item, v) for k, v in value.items()}
        return value
    if isinstance(value, list):
        lists = [a for a in _members(annotation) if typing.get_origin(a) in (list, tuple)]
        if lists:
            item_args = typing.get_args(lists[0])
            item = item_args[0] if item_args else Any
            items = [_construct_value(item, v) for v in value]
            return tuple(items) if typing.get_origin(lists[0]) is tuple else items
    return value


def _members(annotation: Any) -> list[Any]:
    """Return the alternatives of a Union / Optional / Annotated annotation, flattened."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        found = []
        for arg in typing.get_args(annotation):
            found.extend(_members(arg))
        return found
    return [annotation]


def build_index() -> dict[str, Any]:
    """Return the index of the bundled presets: each validated, with its file's SHA-256."""
    import hashlib

    index: dict[str, Any] = {}
    for kind, model in _INDEX_KINDS.items():
        entries = {}
        for path in sorted((bundled_presets_dir() / kind).glob("*.yaml")):
            content = path.read_bytes()
            spec = validate(model, read_yaml(path), path)
            entries[path.stem] = {
                "sha256": hashlib.sha256(content).hexdigest(),
                # a JSON text of its own: parsed only for the preset asked for
                "data": json.dumps(
                    spec.model_dump(mode="json", exclude_unset=True),
                    sort_keys=True,
                    separators=(",", ":"),
                    ensure_ascii=False,
                ),
            }
        index[kind] = entries
    return index


def fetch_hf_config(repo: str) -> Path:
    """Return the local path of a Hub repo's config.json (kvcalc.hub: fast and quiet offline)."""
    from kvcalc.hub import fetch_config

    return fetch_config(repo)


def iter_yaml_list(path: Path, key: str, what: str) -> Iterator[Any]:
    """Yield the items of a YAML file's top-level list (or of its `key:` list), one at a time.

    The file is read as YAML events (libyaml's parser when available) and each item is
    built only when reached, so a list of any length takes flat memory. Anchors and aliases
    are refused; errors name the file (and the line for malformed YAML).
    """
    import io

    import yaml

    handle = io.TextIOWrapper(open_regular(path), encoding="utf-8-sig")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(handle)
    try:
        yield from _list_items(_events(loader, path), loader, path, key, what)
    except yaml.YAMLError as exc:
        raise KvcalcError(_yaml_message(path, exc)) from None
    except UnicodeDecodeError:
        raise KvcalcError(f"{path}: not a UTF-8 text file") from None
    finally:
        loader.dispose()
        handle.close()


def _yaml_message(path: Path, exc: Any) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{path}: malformed YAML{where}: {problem}"


def _events(loader: Any, path: Path) -> Iterator[Any]:
    while loader.check_event():
        yield loader.get_event()


def _list_items(
    events: Iterator[Any], loader: Any, path: Path, key: str, what: str
) -> Iterator[Any]:
    import yaml

    empty = f"{path}: expected a non-empty list of {what}"
    first = None
    for event in events:
        if not isinstance(event, yaml.StreamStartEvent | yaml.DocumentStartEvent):
            first = event
            break
    if isinstance(first, yaml.SequenceStartEvent):
        yield from _sequence(events, loader, empty)
        return
    if not isinstance(first, yaml.MappingStartEvent):
        raise KvcalcError(empty)
    found = False
    for event in events:
        if isinstance(event, yaml.MappingEndEvent):
            break
        name = _build(event, events, loader)
        if name != key:
            raise KvcalcError(f"{path}: unknown top-level key {str(name)!r} (expected {key!r})")
        value = next(events)
        if not isinstance(value, yaml.SequenceStartEvent):
            raise KvcalcError(empty)
        found = True
        yield from _sequence(events, loader, empty)
    if not found:
        raise KvcalcError(empty)


def _sequence(events: Iterator[Any], loader: Any, empty: str) -> Iterator[Any]:
    import yaml

    count = 0
    for event in events:
        if isinstance(event, yaml.SequenceEndEvent):
            break
        count += 1
        yield _build(event, events, loader)
    if not count:
        raise KvcalcError(empty)


def _build(event: Any, events: Iterator[Any], loader: Any) -> Any:
    """Return the value starting at `event` (scalar, list or mapping), built from the events."""
    import yaml

    if isinstance(event, yaml.ScalarEvent):
        tag = event.tag
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        start: Any = event.start_mark  # libyaml marks quack like yaml.Mark
        end: Any = event.end_mark
        node = yaml.ScalarNode(tag, event.value, start, end, event.style)
        # the tag's constructor directly: construct_object would keep every node it built
        constructors = loader.yaml_constructors
        construct = constructors.get(tag) or constructors[None]
        return construct(loader, node)
    if isinstance(event, yaml.SequenceStartEvent):
        items = []
        for item in events:
            if isinstance(item, yaml.SequenceEndEvent):
                break
            items.append(_build(item, events, loader))
        return items
    if isinstance(event, yaml.MappingStartEvent):
        mapping: dict[Any, Any] = {}
        for item in events:
            if isinstance(item, yaml.MappingEndEvent):
                break
            name = _build(item, events, loader)
            if isinstance(name, list | dict):
                raise KvcalcError("mapping keys must be plain values")
            mapping[name] = _build(next(events), events, loader)
        return mapping
    raise KvcalcError("YAML anchors and aliases (&name, *name) are not supported here")
