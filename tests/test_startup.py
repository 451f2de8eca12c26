"""Start-up work: what each command imports and builds, and the pre-validated preset index.

`kvcalc --version` and `--help` must not import pydantic's model machinery (specs.py's
models are what made start-up slow); a command on a bundled preset builds its specs from
kvcalc/presets_index.py without YAML parsing or pydantic validation. Measured in a
fresh interpreter (a subprocess), never timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kvcalc.presets import (
    INDEX_FILE,
    _read_yaml,
    bundled_presets_dir,
    load_gpu_file,
    load_model_file,
    preset_files,
    validate,
)
from kvcalc.specs import GpuSpec, ModelSpec

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import contextlib, io, json, sys
COUNT = len(sys.argv) > 2
sys.argv = ["kvcalc", *json.loads(sys.argv[1])]
ADAPTERS = []
if COUNT:  # count typer's adapters (importing typer._adapters imports pydantic)
    from typer import _adapters
    _build = _adapters.build_adapter
    def _counted(annotation, info):
        ADAPTERS.append(getattr(annotation, "__name__", repr(annotation)))
        return _build(annotation, info)
    _adapters.build_adapter = _counted
from kvcalc.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
specs = sys.modules.get("kvcalc.specs")
print(json.dumps({
    "pydantic_main": "pydantic.main" in sys.modules,
    "specs": specs is not None,
    "yaml": "yaml" in sys.modules,
    "rich": "rich" in sys.modules,
    "schema_built": bool(specs and specs.ModelSpec.__pydantic_complete__),
    "adapters": sorted(ADAPTERS),
}), file=sys.stderr)
"""


def _imports(*args: str, count_adapters: bool = False) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(args)), *(["count"] * count_adapters)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stderr.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_build_no_pydantic_models(args: list[str]) -> None:
    """--version and --help import neither pydantic.main nor kvcalc.specs, YAML or rich."""
    found = _imports(*args)
    assert found == {
        "pydantic_main": False,
        "specs": False,
        "yaml": False,
        "rich": False,
        "schema_built": False,
        "adapters": [],
    }


@pytest.mark.parametrize("command", ["calc", "fit", "sweep", "check"])
def test_command_help_loads_no_specs(command: str) -> None:
    """A command's --help imports no kvcalc models (typer itself may look at pydantic)."""
    found = _imports(command, "--help")
    assert found["specs"] is False and found["yaml"] is False


@pytest.mark.parametrize(
    "args",
    [
        ["calc", "llama-3.1-8b", "--format", "json"],
        ["fit", "llama-3.1-8b", "--format", "json"],
        ["sweep", "-m", "llama-3.1-8b", "-g", "h100", "--seq", "1k..8k:x2"],
    ],
)
def test_bundled_presets_skip_yaml_and_validation(args: list[str]) -> None:
    """On bundled presets, calc/fit/sweep parse no YAML and never build a pydantic validator."""
    found = _imports(*args)
    assert found["yaml"] is False
    assert found["schema_built"] is False


@pytest.mark.parametrize(
    ("args", "adapters"),
    [
        (["calc", "llama-3.1-8b", "--format", "json", "--presets", "presets"], []),
        (["fit", "llama-3.1-8b", "--gpu", "h100", "--util", "0.9", "--mtp"], []),
    ],
)
def test_commands_build_no_adapter_for_plain_options(args: list[str], adapters: list[str]) -> None:
    """typer builds a pydantic TypeAdapter per parsed option (~1 ms each); kvcalc coerces its
    str, bool, enum and Path options itself (kvcalc/cli.py _coerce_without_adapters), so
    only the rest (sweep's list options) get one."""
    assert _imports(*args, count_adapters=True)["adapters"] == adapters


def test_presets_index_is_current() -> None:
    """kvcalc/presets_index.py is what scripts/make_presets_index.py writes now.

    When this fails: python scripts/make_presets_index.py (a stale entry is only slower:
    the file is then read and validated as a user file would be).
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_presets_index", ROOT / "scripts" / "make_presets_index.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert INDEX_FILE.read_text(encoding="utf-8") == module.render()


@pytest.mark.parametrize("kind", ["models", "gpus"])
def test_indexed_presets_equal_validated_files(kind: str) -> None:
    """Every bundled preset built from the index equals the same YAML file validated."""
    model = ModelSpec if kind == "models" else GpuSpec
    load = load_model_file if kind == "models" else load_gpu_file
    files = {
        n: p for n, p in preset_files(kind).items() if p.parent.parent == bundled_presets_dir()
    }
    assert len(files) >= (40 if kind == "models" else 15)
    for path in files.values():
        indexed = load(path)
        checked = validate(model, _read_yaml(path), path)
        assert indexed == checked, path.name
        assert indexed.model_dump() == checked.model_dump(), path.name


def test_edited_bundled_file_is_validated_not_indexed(tmp_path: Path) -> None:
    """A file whose bytes differ from its index entry is read and validated, never indexed."""
    from kvcalc.presets import _from_index

    path = bundled_presets_dir() / "models" / "llama-3.1-8b.yaml"
    assert _from_index("models", path) is not None
    copy = tmp_path / "models" / "llama-3.1-8b.yaml"
    copy.parent.mkdir()
    copy.write_text(path.read_text() + "\n# edited\n")
    assert _from_index("models", copy) is None  # not a bundled path
    assert load_model_file(copy).n_layers == 32


def test_yaml_falls_back_to_the_pure_python_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without libyaml (no yaml.CSafeLoader) user YAML still loads, with the same result."""
    import yaml

    from kvcalc.presets import read_yaml

    path = tmp_path / "x.yaml"
    path.write_text("a: 1\nb: [x, 2.5]\n")
    with_c = read_yaml(path)
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    assert read_yaml(path) == with_c == {"a": 1, "b": ["x", 2.5]}


# Modules whose annotations are read at start-up: typer reads every command's signature and
# pydantic every spec field; postponed (string) annotations would be compiled and evaluated
# one by one on each run (about 2 ms for `calc`'s 25 parameters, 2.5 ms for specs.py).
_EAGER_ANNOTATIONS = [
    ROOT / "kvcalc" / "specs.py",
    ROOT / "kvcalc" / "cli.py",
    *sorted((ROOT / "kvcalc" / "commands").glob("*.py")),
]


@pytest.mark.parametrize("path", _EAGER_ANNOTATIONS, ids=lambda p: p.name)
def test_start_up_modules_do_not_postpone_annotations(path: Path) -> None:
    assert "from __future__ import annotations" not in path.read_text(encoding="utf-8")
