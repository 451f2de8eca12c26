"""The built wheel: it ships every preset, installs into a fresh venv, and runs from elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("kvcalc-*.whl")
    return built


def test_wheel_contains_every_preset(wheel: Path) -> None:
    """Every YAML under presets/ is inside the wheel as kvcalc/presets_data/..."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for preset in (ROOT / "presets").rglob("*.yaml"):
        relative = preset.relative_to(ROOT / "presets").as_posix()
        assert f"kvcalc/presets_data/{relative}" in names
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_installs_and_lists_presets_from_elsewhere(wheel: Path, tmp_path: Path) -> None:
    """A fresh venv with the wheel runs `kvcalc presets list` from an unrelated directory.

    The venv gets the wheel without dependencies (no network in tests); a .pth file lends
    it this environment's site-packages for typer, rich, pydantic and pyyaml only.
    """
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # appended after the venv's own site-packages, so the wheel's kvcalc wins
    Path(site, "_parent_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kvcalc = env_dir / "bin" / "kvcalc"
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KVCALC_PRESETS")}
    result = subprocess.run(
        [str(kvcalc), "presets", "list", "--format", "json"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=clean_env,
    )
    assert result.returncode == 0, result.stderr
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"opt-30b", "llama-3.1-8b", "deepseek-v3"} <= names
    where = subprocess.run(
        [str(python), "-c", "import kvcalc, sys; print(kvcalc.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=clean_env,
    ).stdout
    assert str(env_dir) in where
